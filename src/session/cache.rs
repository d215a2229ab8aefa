//! The session cache: one keyring entry per profile, named by the plan's
//! fingerprint, and the non-secret metadata beside it that the prompt and
//! `list` read.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Creds, Plan};
use crate::lock::Lock;
use crate::store::Store;
use crate::{state, time};

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

/// The sessions' store; without one, every command asks for MFA, but it still runs.
pub(super) struct Cache {
    store: Option<Store>,
}

impl Cache {
    pub(super) fn open() -> anyhow::Result<Self> {
        let store = match Store::for_sessions() {
            Ok(store) => Some(store),
            Err(e) if e.is::<crate::store::UnknownStore>() => return Err(e),
            Err(e) => {
                crate::log::warn(format_args!("sessions will not be cached: {e:#}"));
                None
            }
        };
        Ok(Cache { store })
    }

    /// The cached session, if it has more than `min_left(its lifetime)` seconds left.
    pub(super) fn lookup(
        &self,
        plan: &Plan,
        fp: &str,
        min_left: &dyn Fn(u64) -> u64,
    ) -> Option<Creds> {
        let store = self.store.as_ref()?;
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
            // An expiry past year 9999 is damage, and no consumer could be told it.
            Ok(c) if c.version == 1 && c.fingerprint == fp && time::plausible(c.expiration) => c,
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
        if cached.expiration <= time::now().saturating_add(min_left(lifetime)) {
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

    /// Stores a freshly minted session; a no-op without a store. An error
    /// means it is not cached; metadata that cannot be written only costs the
    /// prompt its display, with a warning.
    pub(super) fn save(&self, plan: &Plan, fp: &str, creds: &Creds) -> anyhow::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if !time::plausible(creds.expiration) {
            anyhow::bail!(
                "the session for {} claims to expire after year 9999 (expiration {}), which no session does",
                plan.profile,
                creds.expiration
            );
        }
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
        store.set_with_expiry(&entry_name(&plan.profile, fp), &blob, creds.expiration)?;
        let meta = state::SessionMeta {
            expiry: creds.expiration,
            fingerprint: fp.to_string(),
        };
        if let Err(e) = state::write_session(&plan.profile, &meta) {
            // The next command finds the session in the keyring and writes this again.
            crate::log::warn(format_args!(
                "{e:#}\n  the session is cached, but `awsmfa prompt` and `list` will not show it until that directory is writable"
            ));
        }
        Ok(())
    }
}

/// Held from the second look-up to the save, so that one process mints and
/// the others find its session.
pub(super) fn lock(plan: &Plan) -> anyhow::Result<Option<Lock>> {
    Lock::acquire_if_writable(
        &state::lock_file(&plan.profile),
        &format!("a session for {}", plan.profile),
        "minting without the lock: other awsmfa commands starting now may each ask for a code",
    )
}

/// The prompt and `list` read the metadata file, not the keyring: if it was
/// lost or damaged while the session lives on, put it back (one small read on
/// the cached path; a write only when it differs).
pub(super) fn repair_meta(plan: &Plan, fp: &str, expiry: u64) {
    let meta = state::SessionMeta {
        expiry,
        fingerprint: fp.to_string(),
    };
    if state::read_session(&plan.profile).as_ref() != Some(&meta) {
        let _ = state::write_session(&plan.profile, &meta);
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
