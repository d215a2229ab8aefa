//! Sessions: resolve what shapes one, find it in the cache, or mint it under a
//! cross-process lock. `get` is the one entry point; everything else in awsmfa
//! that needs credentials goes through it.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::config::settings::OpenBaoSettings;
use crate::lock::Lock;
use crate::store::Store;
use crate::sts::{self, Endpoint};
use crate::{keys, mfa, paths, state, time};

/// STS limits for GetSessionToken.
const MIN_TTL: Duration = Duration::from_secs(15 * 60);
const MAX_TTL: Duration = Duration::from_secs(36 * 3600);
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// AssumeRole from a session token is capped at one hour by STS.
const DEFAULT_ROLE_DURATION: Duration = Duration::from_secs(3600);
/// When minting fails, a cached session with at least this much left still
/// beats no credentials at all.
const LAST_RESORT: u64 = 120;

pub use crate::creds::Creds;

/// Everything that shapes one profile's session.
#[derive(Debug, Clone)]
pub struct Plan {
    pub profile: String,
    /// For the child's `AWS_REGION`; None when nothing configures one.
    pub region: Option<String>,
    pub endpoint: Endpoint,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// GetSessionToken with the profile's own long-lived key and an MFA code.
    Mfa {
        keys: keys::Source,
        serial: String,
        mfa: Vec<mfa::Source>,
        ykman_device: Option<String>,
        ttl: Duration,
        openbao: Option<OpenBaoSettings>,
    },
    /// Ready-made STS credentials from OpenBao's AWS secrets engine
    /// (`openbao-aws:MOUNT/ROLE`), for agents that hold no static key.
    Vended {
        path: String,
        openbao: Option<OpenBaoSettings>,
    },
    /// AssumeRole with the source profile's MFA session, so one code serves
    /// every role on the same source.
    Role {
        source: Box<Plan>,
        role_arn: String,
        external_id: Option<String>,
        session_name: Option<String>,
        duration: Duration,
    },
}

impl Plan {
    pub fn resolve(cfg: &Config, name: &str, duration: Option<Duration>) -> anyhow::Result<Self> {
        Self::resolve_inner(cfg, name, duration, None, &mut Vec::new())
    }

    fn resolve_inner(
        cfg: &Config,
        name: &str,
        duration: Option<Duration>,
        serial_from_role: Option<&str>,
        seen: &mut Vec<String>,
    ) -> anyhow::Result<Self> {
        if seen.iter().any(|s| s == name) {
            seen.push(name.to_string());
            bail!(
                "source_profile loop in {}: {}",
                paths::display(&cfg.aws.path),
                seen.join(" → ")
            );
        }
        seen.push(name.to_string());
        let p = cfg.aws.require(name)?;
        let at = format!("{}:{}", paths::display(&cfg.aws.path), p.line);
        let mut region = p
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"));
        let settings = cfg.settings.profile(name);

        let vended = settings
            .and_then(|s| s.source.as_deref())
            .map(|text| match text.strip_prefix("openbao-aws:") {
                Some(path) if path.contains('/') => Ok(path.to_string()),
                _ => Err(anyhow!(
                    "{}: [profiles.{name}] source = \"{text}\" should be \"openbao-aws:MOUNT/ROLE\"",
                    cfg.settings.path.display()
                )),
            })
            .transpose()?;
        let kind = if let Some(path) = vended {
            Kind::Vended {
                path,
                openbao: cfg.settings.openbao.clone(),
            }
        } else if let Some(role_arn) = &p.role_arn {
            let Some(source_name) = &p.source_profile else {
                bail!(
                    "{at}: profile {name} has role_arn but no source_profile\n  awsmfa assumes roles with a source profile's MFA session: add `source_profile = NAME`"
                );
            };
            let serial = p.mfa_serial.as_deref().or(serial_from_role);
            let source = Self::resolve_inner(cfg, source_name, None, serial, seen)?;
            // A role profile often names only the role; its commands still need a region.
            if region.is_none() {
                region.clone_from(&source.region);
            }
            Kind::Role {
                source: Box::new(source),
                role_arn: role_arn.clone(),
                external_id: p.external_id.clone(),
                session_name: p.role_session_name.clone(),
                duration: duration
                    .or(p.duration_seconds.map(|s| Duration::from_secs(s.into())))
                    .unwrap_or(DEFAULT_ROLE_DURATION),
            }
        } else {
            let Some(serial) = serial_from_role.or(p.mfa_serial.as_deref()) else {
                bail!(
                    "{at}: profile {name} has no mfa_serial (awsmfa mints MFA sessions)\n  add under [profile {name}]:\n    mfa_serial = arn:aws:iam::ACCOUNT_ID:mfa/DEVICE_NAME\n  (the ARN is on the IAM console's \"Security credentials\" tab)"
                );
            };
            let config_file = cfg.settings.path.display();
            let key_fields = settings.and_then(|s| s.key_fields.as_deref());
            let keys = match settings.and_then(|s| s.keys.as_deref()) {
                Some(text) => keys::Source::parse(text, key_fields)
                    .with_context(|| format!("{config_file}: [profiles.{name}] keys"))?,
                None => keys::Source::Keyring,
            };
            let mfa = match settings.and_then(|s| s.mfa.as_ref()) {
                Some(list) => list
                    .items()
                    .into_iter()
                    .map(mfa::Source::parse)
                    .collect::<anyhow::Result<Vec<_>>>()
                    .with_context(|| format!("{config_file}: [profiles.{name}] mfa"))?,
                None => match &p.mfa_process {
                    Some(cmd) => vec![mfa::Source::Process(cmd.clone())],
                    None => vec![mfa::Source::Prompt],
                },
            };
            if mfa.is_empty() {
                bail!(
                    "{config_file}: [profiles.{name}] mfa is an empty list; name at least one source, e.g. mfa = [\"prompt\"]"
                );
            }
            let ttl = match (duration, settings.and_then(|s| s.session_ttl.as_deref())) {
                (Some(d), _) => d,
                (None, Some(text)) => time::parse_duration(text)
                    .with_context(|| format!("{config_file}: [profiles.{name}] session_ttl"))?,
                (None, None) => p.session_ttl.unwrap_or(DEFAULT_TTL),
            };
            if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
                bail!(
                    "profile {name}: a session of {} is outside what STS issues (15m to 36h); change session_ttl or --duration",
                    humantime::format_duration(ttl)
                );
            }
            Kind::Mfa {
                keys,
                serial: serial.to_string(),
                mfa,
                ykman_device: settings.and_then(|s| s.ykman_device.clone()),
                ttl,
                openbao: cfg.settings.openbao.clone(),
            }
        };

        let (url, origin) = if let Some(url) = env_nonempty("AWS_ENDPOINT_URL_STS") {
            (Some(url), sts::Origin::StsVar)
        } else if let Some(url) = env_nonempty("AWS_ENDPOINT_URL") {
            (Some(url), sts::Origin::AnyVar)
        } else if let Some(url) = &p.endpoint_url {
            let origin = sts::Origin::Profile {
                name: name.to_string(),
                at: at.clone(),
            };
            (Some(url.clone()), origin)
        } else {
            (None, sts::Origin::Default)
        };
        let endpoint = Endpoint {
            region: region.clone().unwrap_or_else(|| "us-east-1".into()),
            url,
            origin,
        };
        Ok(Plan {
            profile: name.to_string(),
            region,
            endpoint,
            kind,
        })
    }

    /// A digest of every input that shapes the session. A change in any of them
    /// (a new key, another MFA device, role or endpoint) misses the cache.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        self.feed(&mut h);
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn feed(&self, h: &mut Sha256) {
        let mut put = |field: &str| {
            h.update(field.as_bytes());
            h.update([0]);
        };
        put("v1");
        put(&self.profile);
        put(&self.endpoint.region);
        put(self.endpoint.url.as_deref().unwrap_or("-"));
        match &self.kind {
            Kind::Mfa {
                keys,
                serial,
                ttl,
                openbao,
                ..
            } => {
                put("mfa");
                put(&keys.identity(&self.profile));
                put(serial);
                put(&ttl.as_secs().to_string());
                if matches!(keys, keys::Source::OpenBao { .. }) {
                    put(&bao_identity(openbao));
                }
            }
            Kind::Vended { path, openbao } => {
                put("openbao-aws");
                put(path);
                put(&bao_identity(openbao));
            }
            Kind::Role {
                source,
                role_arn,
                external_id,
                session_name,
                duration,
            } => {
                put("role");
                put(role_arn);
                put(external_id.as_deref().unwrap_or("-"));
                put(session_name.as_deref().unwrap_or("-"));
                put(&duration.as_secs().to_string());
                source.feed(h);
            }
        }
    }
}

/// Which OpenBao a secret comes from: another server is another secret.
fn bao_identity(settings: &Option<OpenBaoSettings>) -> String {
    settings
        .as_ref()
        .and_then(|s| s.address.clone())
        .or_else(|| env_nonempty("BAO_ADDR"))
        .or_else(|| env_nonempty("VAULT_ADDR"))
        .unwrap_or_default()
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn entry_name(profile: &str, fingerprint: &str) -> String {
    format!("session:{profile}:{fingerprint}")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cached {
    version: u32,
    fingerprint: String,
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: SecretString,
    expiration: u64,
    /// When it was minted; absent in entries from before it was recorded.
    #[serde(default)]
    issued: u64,
}

// SecretString deliberately has no Serialize; this borrows the exposed values
// only long enough to build the keyring blob.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CachedRef<'a> {
    version: u32,
    fingerprint: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: u64,
    issued: u64,
}

/// The session for `plan`: cached when more than `refresh_before` remains,
/// otherwise minted — at most once across all concurrent awsmfa processes.
pub fn get(plan: &Plan, refresh_before: Duration) -> anyhow::Result<Creds> {
    let store = match Store::for_sessions() {
        Ok(store) => Some(store),
        Err(e) if e.is::<crate::store::UnknownStore>() => return Err(e),
        Err(e) => {
            // Without a cache every command asks for MFA, but it still runs.
            crate::log::warn(format_args!("sessions will not be cached: {e:#}"));
            None
        }
    };
    let store = store.as_ref();
    let fp = plan.fingerprint();
    // Reused while more than `refresh_before` remains, but never asking for more
    // than half the session's life (as requested, or as OpenBao leased it): a
    // 15-minute session would otherwise be due the moment it is minted, and cost
    // an MFA code on every call.
    let refresh = refresh_before.as_secs();
    let requested = match &plan.kind {
        Kind::Mfa { ttl, .. } => Some(ttl.as_secs()),
        Kind::Role { duration, .. } => Some(duration.as_secs()),
        Kind::Vended { .. } => None,
    };
    let fresh = |lifetime: u64| refresh.min(requested.unwrap_or(lifetime) / 2);
    if let Some(creds) = lookup(store, plan, &fp, &fresh) {
        crate::debug!(
            "session for {}: cache hit, {} left",
            plan.profile,
            time::short_left(creds.expiration.saturating_sub(time::now()))
        );
        repair_meta(plan, &fp, creds.expiration);
        return Ok(creds);
    }
    let _lock = Lock::acquire(
        &state::lock_file(&plan.profile),
        &format!("a session for {}", plan.profile),
    )?;
    // Whoever held the lock before us may have just minted it.
    if let Some(creds) = lookup(store, plan, &fp, &fresh) {
        crate::debug!("session for {}: minted by another awsmfa", plan.profile);
        return Ok(creds);
    }
    let creds = match mint(plan, refresh_before) {
        Ok(creds) => creds,
        Err(e) => {
            if let Some(old) = lookup(store, plan, &fp, &|_| LAST_RESORT) {
                crate::log::warn(format_args!(
                    "{e:#}\n  using the cached session for {}, which expires in {}",
                    plan.profile,
                    time::short_left(old.expiration.saturating_sub(time::now()))
                ));
                return Ok(old);
            }
            return Err(e);
        }
    };
    if let Some(store) = store
        && let Err(e) = save(store, plan, &fp, &creds)
    {
        // The command can still run; only the next one will ask for MFA again.
        crate::log::warn(format_args!("could not cache the session: {e:#}"));
    }
    Ok(creds)
}

/// The cached session, if it has more than `min_left(its lifetime)` seconds left.
fn lookup(
    store: Option<&Store>,
    plan: &Plan,
    fp: &str,
    min_left: &dyn Fn(u64) -> u64,
) -> Option<Creds> {
    let store = store?;
    let name = entry_name(&plan.profile, fp);
    let blob = match store.get(&name) {
        Ok(Some(blob)) => blob,
        Ok(None) => return None,
        Err(e) => {
            crate::debug!("session cache unavailable: {e:#}");
            return None;
        }
    };
    let cached = match serde_json::from_str::<Cached>(blob.expose_secret()) {
        Ok(c) if c.version == 1 && c.fingerprint == fp => c,
        _ => {
            crate::log::warn(format_args!(
                "discarding an unreadable cached session for {}",
                plan.profile
            ));
            let _ = store.delete(&name);
            return None;
        }
    };
    let lifetime = cached.expiration.saturating_sub(cached.issued);
    if cached.expiration <= time::now() + min_left(lifetime) {
        crate::debug!("session for {}: expires too soon, not reused", plan.profile);
        return None;
    }
    Some(Creds {
        access_key_id: cached.access_key_id,
        secret_access_key: cached.secret_access_key,
        session_token: cached.session_token,
        expiration: cached.expiration,
    })
}

/// The prompt and `list` read the metadata file, not the keyring: if it was
/// lost or damaged while the session lives on, put it back (one small read on
/// the cached path; a write only when it differs).
fn repair_meta(plan: &Plan, fp: &str, expiry: u64) {
    let meta = state::SessionMeta {
        expiry,
        fingerprint: fp.to_string(),
    };
    if state::read_session(&plan.profile).as_ref() != Some(&meta) {
        let _ = state::write_session(&plan.profile, &meta);
    }
}

fn save(store: &Store, plan: &Plan, fp: &str, creds: &Creds) -> anyhow::Result<()> {
    let blob = SecretString::from(serde_json::to_string(&CachedRef {
        version: 1,
        fingerprint: fp,
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose_secret(),
        session_token: creds.session_token.expose_secret(),
        expiration: creds.expiration,
        issued: time::now(),
    })?);
    // One session per profile: the one minted with other inputs is retired.
    if let Some(old) = state::read_session(&plan.profile)
        && old.fingerprint != fp
    {
        let _ = store.delete(&entry_name(&plan.profile, &old.fingerprint));
    }
    store.set(&entry_name(&plan.profile, fp), &blob)?;
    state::write_session(
        &plan.profile,
        &state::SessionMeta {
            expiry: creds.expiration,
            fingerprint: fp.to_string(),
        },
    )
}

fn mint(plan: &Plan, refresh_before: Duration) -> anyhow::Result<Creds> {
    match &plan.kind {
        Kind::Vended { path, openbao } => {
            crate::debug!("taking a session for {} from OpenBao {path}", plan.profile);
            crate::openbao::Lazy::new(openbao.clone())
                .get()?
                .aws_sts(path)
        }
        Kind::Mfa {
            keys: key_source,
            serial,
            mfa: sources,
            ykman_device,
            ttl,
            openbao,
        } => {
            let bao = crate::openbao::Lazy::new(openbao.clone());
            // Every refusal that needs no network comes before anything that
            // costs the user something: a key fetch, an MFA code.
            plan.endpoint.check()?;
            if matches!(key_source, keys::Source::OpenBao { .. })
                || sources.iter().any(|s| matches!(s, mfa::Source::OpenBao(_)))
            {
                bao.check_address()?;
            }
            preflight(plan)?;
            let key = keys::load(&plan.profile, key_source, &bao)?;
            for attempt in 1..=mfa::MAX_ATTEMPTS {
                let code = mfa::code(
                    sources,
                    &mfa::Request {
                        profile: &plan.profile,
                        serial,
                        attempt,
                        ykman_device: ykman_device.as_deref(),
                    },
                    &bao,
                )?;
                crate::debug!(
                    "minting a session for {} with GetSessionToken at {}",
                    plan.profile,
                    plan.endpoint.describe()
                );
                match sts::get_session_token(&plan.endpoint, &key, serial, &code, *ttl)? {
                    Ok(creds) => return Ok(creds),
                    Err(sts::Error::WrongMfa) if attempt < mfa::MAX_ATTEMPTS => continue,
                    Err(sts::Error::WrongMfa) => bail!(
                        "STS rejected the MFA code for {serial} {} times; check the device matches mfa_serial in [profile {}]",
                        mfa::MAX_ATTEMPTS,
                        plan.profile
                    ),
                    Err(e) => return Err(explain(e, plan)),
                }
            }
            unreachable!("the loop returns on its last attempt")
        }
        Kind::Role {
            source,
            role_arn,
            external_id,
            session_name,
            duration,
        } => {
            let default_name = format!("awsmfa-{}", time::now());
            let request = sts::RoleRequest {
                role_arn,
                session_name: session_name.as_deref().unwrap_or(&default_name),
                external_id: external_id.as_deref(),
                duration: *duration,
            };
            // Before the source session, which may cost an MFA code of its own.
            preflight(plan)?;
            let base = get(source, refresh_before)?;
            crate::debug!(
                "minting a session for {} with AssumeRole {role_arn} from {}",
                plan.profile,
                source.profile
            );
            match sts::assume_role(&plan.endpoint, &base, &request)? {
                Ok(creds) => Ok(creds),
                // The cached source session was revoked or expired early: mint a
                // new one once, rather than failing until it times out.
                Err(e) if e.is_bad_credential() => {
                    crate::debug!("source session for {} refused: {e}", source.profile);
                    clear(&source.profile)?;
                    let base = get(source, refresh_before)?;
                    sts::assume_role(&plan.endpoint, &base, &request)?.map_err(|e| explain(e, plan))
                }
                Err(e) => Err(explain(e, plan)),
            }
        }
    }
}

/// The endpoint's checks before a mint (see [`Endpoint::preflight`]), and one
/// line naming an endpoint that is not AWS's: a session minted at LocalStack,
/// or at an override the user forgot, should not pass unnoticed. Minting only:
/// a cache hit does none of this.
fn preflight(plan: &Plan) -> anyhow::Result<()> {
    if !plan.endpoint.preflight()? {
        crate::log::info(format_args!(
            "minting a session for {} at {}, which is not an AWS endpoint (from {})",
            plan.profile,
            plan.endpoint.describe(),
            plan.endpoint.origin
        ));
    }
    Ok(())
}

fn explain(e: sts::Error, plan: &Plan) -> anyhow::Error {
    let p = &plan.profile;
    match &e {
        sts::Error::Unreachable(_) => anyhow!(
            "{e}\n  endpoint: {} (from {}); check it and the network",
            plan.endpoint.describe(),
            plan.endpoint.origin
        ),
        _ if e.is_bad_credential() && matches!(plan.kind, Kind::Mfa { .. }) => anyhow!(
            "{e}\n  the long-lived key for {p} is not valid (deleted, deactivated, or mistyped); store a working one with `awsmfa add {p}`"
        ),
        sts::Error::Rejected { message, .. } if message.contains("serial number") => {
            let serial = match &plan.kind {
                Kind::Mfa { serial, .. } => serial.as_str(),
                _ => "its source's mfa_serial",
            };
            anyhow!(
                "{e}\n  STS does not know the MFA device {serial} for this key: check mfa_serial in [profile {p}] (IAM console, \"Security credentials\")"
            )
        }
        sts::Error::Rejected { code, .. } if code == "AccessDenied" => {
            anyhow!("{e}\n  check the IAM policy allows this for {p}")
        }
        _ => anyhow!("{e}"),
    }
}

/// Drops the profile's cached session. True when there was one.
pub fn clear(profile: &str) -> anyhow::Result<bool> {
    let had = state::read_session(profile);
    state::remove_session(profile);
    let Some(meta) = had else {
        return Ok(false);
    };
    let store = Store::for_sessions()?;
    store.delete(&entry_name(profile, &meta.fingerprint))?;
    Ok(true)
}

/// Drops the session cached for `plan` as configured now, even when the
/// metadata that names its fingerprint is missing or damaged. True when there was one.
pub fn clear_plan(plan: &Plan) -> anyhow::Result<bool> {
    let fp = plan.fingerprint();
    let recorded = state::read_session(&plan.profile).is_some_and(|m| m.fingerprint == fp);
    let had = clear(&plan.profile)?;
    if recorded {
        return Ok(had);
    }
    let store = Store::for_sessions()?;
    Ok(store.delete(&entry_name(&plan.profile, &fp))? || had)
}

/// What the non-secret metadata says about the profile's session, for `list`
/// and the prompt: `Some(expiry)` when it matches the current configuration.
pub fn known_expiry(plan: &Plan) -> Option<u64> {
    state::read_session(&plan.profile)
        .filter(|m| m.fingerprint == plan.fingerprint())
        .map(|m| m.expiry)
}
