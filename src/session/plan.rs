//! What shapes a session: the profile's configuration resolved into a [`Plan`],
//! and the fingerprint that ties a cached session to it.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::config::settings::OpenBaoSettings;
use crate::sts::{Endpoint, Origin};
use crate::{iam, keys, mfa, paths, time};

/// STS limits for GetSessionToken.
const MIN_TTL: Duration = Duration::from_secs(15 * 60);
const MAX_TTL: Duration = Duration::from_secs(36 * 3600);
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// AssumeRole from a session token is capped at one hour by STS.
const DEFAULT_ROLE_DURATION: Duration = Duration::from_secs(3600);

/// Everything that shapes one profile's session.
#[derive(Debug, Clone)]
pub struct Plan {
    pub profile: String,
    /// For the child's `AWS_REGION`; None when nothing configures one.
    pub region: Option<String>,
    pub endpoint: Endpoint,
    /// Where IAM is, for `rotate` and the key's age.
    pub iam: iam::Endpoint,
    pub kind: Kind,
    /// The setting that decides how long a session lasts, for messages:
    /// `--duration`, `session_ttl`, `duration_seconds`, or OpenBao's lease.
    pub lifetime_from: &'static str,
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
                Some(text) => keys::parse(text, key_fields)
                    .with_context(|| format!("{config_file}: [profiles.{name}] keys"))?,
                None => keys::default_source(),
            };
            let mfa = match settings.and_then(|s| s.mfa.as_ref()) {
                Some(list) => list
                    .items()
                    .into_iter()
                    .map(mfa::parse)
                    .collect::<anyhow::Result<Vec<_>>>()
                    .with_context(|| format!("{config_file}: [profiles.{name}] mfa"))?,
                None => vec![mfa::default_source(p.mfa_process.as_deref())],
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

        // The service's own variable, then AWS_ENDPOINT_URL, then the profile's.
        let endpoint_url = |var: &str, own: Origin| {
            if let Some(url) = env_nonempty(var) {
                (Some(url), own)
            } else if let Some(url) = env_nonempty("AWS_ENDPOINT_URL") {
                (Some(url), Origin::AnyVar)
            } else if let Some(url) = &p.endpoint_url {
                let origin = Origin::Profile {
                    name: name.to_string(),
                    at: at.clone(),
                };
                (Some(url.clone()), origin)
            } else {
                (None, Origin::Default)
            }
        };
        let signing_region = region.clone().unwrap_or_else(|| "us-east-1".into());
        let (url, origin) = endpoint_url("AWS_ENDPOINT_URL_STS", Origin::StsVar);
        let endpoint = Endpoint {
            region: signing_region.clone(),
            url,
            origin,
        };
        let (url, origin) = endpoint_url("AWS_ENDPOINT_URL_IAM", Origin::IamVar);
        let iam = iam::Endpoint {
            region: signing_region,
            url,
            origin,
        };
        let lifetime_from = match (&kind, duration) {
            (Kind::Vended { .. }, _) => "the lease OpenBao gives",
            (_, Some(_)) => "--duration",
            (Kind::Mfa { .. }, None) => "session_ttl",
            (Kind::Role { .. }, None) => "duration_seconds",
        };
        Ok(Plan {
            profile: name.to_string(),
            region,
            endpoint,
            iam,
            kind,
            lifetime_from,
        })
    }

    /// The longest session this plan can give; None for OpenBao-vended
    /// sessions, whose lease is known only once fetched.
    pub fn lifetime(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Mfa { ttl, .. } => Some(*ttl),
            Kind::Role { duration, .. } => Some(*duration),
            Kind::Vended { .. } => None,
        }
    }

    /// A digest of every input that shapes the session. A change in any of them
    /// (a new key, another MFA device, role or endpoint) misses the cache. The
    /// region does not shape one: STS sessions are valid in every region, and
    /// with it here two shells with different `AWS_REGION`s would replace each
    /// other's session, one MFA code each time. (An endpoint URL does: another
    /// STS, another session.)
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
        // v2: the region left; v1 entries are simply not found again.
        put("v2");
        put(&self.profile);
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
                if keys.uses_openbao() {
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
    crate::openbao::identity(settings.as_ref())
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(region: &str, url: Option<&str>) -> Plan {
        Plan {
            profile: "dev".into(),
            region: Some(region.into()),
            endpoint: Endpoint {
                region: region.into(),
                url: url.map(str::to_string),
                origin: Origin::Default,
            },
            iam: iam::Endpoint {
                region: region.into(),
                url: None,
                origin: Origin::Default,
            },
            kind: Kind::Vended {
                path: "aws/dev".into(),
                openbao: None,
            },
            lifetime_from: "the lease",
        }
    }

    #[test]
    fn the_endpoint_shapes_a_session_and_the_region_does_not() {
        let fp = plan("eu-west-1", None).fingerprint();
        assert_eq!(plan("us-west-2", None).fingerprint(), fp);
        assert_ne!(
            plan("eu-west-1", Some("https://sts.example")).fingerprint(),
            fp
        );
    }
}
