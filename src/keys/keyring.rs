//! `keys = "keyring"` (the default): the key `awsmfa add` stored in the OS
//! keyring, and that storage itself.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KeySource, LongLivedKey, Source};
use crate::health::Health;
use crate::state;
use crate::store::Store;

#[derive(Debug)]
pub(super) struct Keyring;

pub(super) fn parse(
    rest: Option<&str>,
    _fields: Option<&[String]>,
) -> anyhow::Result<Option<Source>> {
    Ok(rest.is_none().then(|| Arc::new(Keyring) as Source))
}

impl KeySource for Keyring {
    fn describe(&self) -> String {
        "keyring".into()
    }

    fn identity(&self, profile: &str) -> String {
        format!(
            "keyring:{}",
            state::read_key_stamp(profile).unwrap_or_else(|| "none".into())
        )
    }

    fn load(&self, profile: &str, _bao: &crate::openbao::Lazy) -> anyhow::Result<LongLivedKey> {
        let store = Store::for_keys()?;
        let Some(blob) = store.get(&entry_name(profile))? else {
            bail!(
                "no long-lived key for profile {profile} in the {} keyring; store one with `awsmfa add {profile}`",
                store.backend().name()
            );
        };
        let stored: Stored = serde_json::from_str(blob.expose_secret()).with_context(|| {
            format!(
                "the {} keyring entry for profile {profile} is not awsmfa's; replace it with `awsmfa add {profile}`",
                store.backend().name()
            )
        })?;
        Ok(LongLivedKey {
            access_key_id: stored.access_key_id,
            secret_access_key: stored.secret_access_key,
        })
    }

    fn replace(
        &self,
        profile: &str,
        new: &LongLivedKey,
        _bao: &crate::openbao::Lazy,
    ) -> anyhow::Result<()> {
        save(profile, new).map(drop)
    }

    fn current_stamp(&self, profile: &str) -> Option<String> {
        state::read_key_stamp(profile)
    }

    fn stored(&self, profile: &str) -> Option<bool> {
        Some(recorded(profile))
    }

    fn health(&self, profile: &str, _bao: &crate::openbao::Lazy) -> Health {
        if recorded(profile) {
            Health::Ok("key in the keyring".into())
        } else {
            Health::fail("no key stored", format!("awsmfa add {profile}"))
        }
    }
}

fn entry_name(profile: &str) -> String {
    format!("key:{profile}")
}

fn pending_name(profile: &str) -> String {
    format!("rotating:{profile}")
}

/// Not secret, and not the key id itself either: just enough to notice a change.
pub fn stamp(access_key_id: &str) -> String {
    let digest = Sha256::digest(format!("awsmfa-key-stamp:{access_key_id}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `add` has stored a key, judged from the stamp alone (no keyring call).
fn recorded(profile: &str) -> bool {
    state::read_key_stamp(profile).is_some()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StoredRef<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stored {
    access_key_id: String,
    secret_access_key: SecretString,
}

/// Saves to the keys' store and records the stamp. Returns the store's name.
pub fn save(profile: &str, key: &LongLivedKey) -> anyhow::Result<&'static str> {
    let store = Store::for_keys()?;
    let blob = SecretString::from(serde_json::to_string(&StoredRef {
        access_key_id: &key.access_key_id,
        secret_access_key: key.secret_access_key.expose_secret(),
    })?);
    store.set(&entry_name(profile), &blob)?;
    state::write_key_stamp(profile, &stamp(&key.access_key_id))?;
    // What was known of the previous key's age is not this key's.
    state::remove_key_age(profile);
    Ok(store.backend().name())
}

/// True when a key was there to delete.
pub fn delete(profile: &str) -> anyhow::Result<bool> {
    let store = Store::for_keys()?;
    let deleted = store.delete(&entry_name(profile))?;
    state::remove_key_stamp(profile);
    state::remove_key_age(profile);
    Ok(deleted)
}

/// A rotation under way: the key IAM made, kept in the keys' store from the
/// moment it exists until the old one is deleted, so that a rotation killed
/// at any step can be finished by the next `rotate` instead of leaving a key
/// in IAM whose secret nobody has.
pub struct Pending {
    pub new: LongLivedKey,
    /// The key being replaced, the one to delete in IAM.
    pub old_id: String,
    pub user: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PendingRef<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    old_access_key_id: &'a str,
    user_name: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PendingStored {
    access_key_id: String,
    secret_access_key: SecretString,
    old_access_key_id: String,
    user_name: String,
}

/// Records `pending` in the keys' store (whatever source the key comes from).
pub fn stage(profile: &str, pending: &Pending) -> anyhow::Result<()> {
    let blob = SecretString::from(serde_json::to_string(&PendingRef {
        access_key_id: &pending.new.access_key_id,
        secret_access_key: pending.new.secret_access_key.expose_secret(),
        old_access_key_id: &pending.old_id,
        user_name: &pending.user,
    })?);
    Store::for_keys()?.set(&pending_name(profile), &blob)
}

/// The rotation a previous `rotate` left unfinished, if any. An entry that is
/// not one is dropped.
pub fn staged(profile: &str) -> anyhow::Result<Option<Pending>> {
    let store = Store::for_keys()?;
    let Some(blob) = store.get(&pending_name(profile))? else {
        return Ok(None);
    };
    match serde_json::from_str::<PendingStored>(blob.expose_secret()) {
        Ok(p) => Ok(Some(Pending {
            new: LongLivedKey {
                access_key_id: p.access_key_id,
                secret_access_key: p.secret_access_key,
            },
            old_id: p.old_access_key_id,
            user: p.user_name,
        })),
        Err(_) => {
            store.delete(&pending_name(profile))?;
            Ok(None)
        }
    }
}

pub fn unstage(profile: &str) -> anyhow::Result<()> {
    Store::for_keys()?.delete(&pending_name(profile)).map(drop)
}

/// Shape checks that catch a pasted secret in the id field and the like,
/// without rejecting ids from test servers.
pub fn validate(access_key_id: &str, secret: &str) -> anyhow::Result<()> {
    if access_key_id.len() < 16
        || access_key_id.len() > 128
        || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        bail!("the access key id should be 16–128 letters and digits, like AKIAIOSFODNN7EXAMPLE");
    }
    if access_key_id.starts_with("ASIA") {
        bail!("that is a temporary (ASIA…) key id; awsmfa stores long-lived IAM user keys (AKIA…)");
    }
    if secret.len() < 16 || secret.chars().any(char::is_whitespace) {
        bail!("the secret access key should be at least 16 characters without spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_stable_and_hides_the_id() {
        let s = stamp("AKIAIOSFODNN7EXAMPLE");
        assert_eq!(s, stamp("AKIAIOSFODNN7EXAMPLE"));
        assert_ne!(s, stamp("AKIAIOSFODNN7EXAMPLF"));
        assert!(!s.contains("AKIA"));
        assert_eq!(s.len(), 16);
    }

    #[test]
    fn validation() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(validate("AKIAIOSFODNN7EXAMPLE", secret).is_ok());
        assert!(validate("ASIAIOSFODNN7EXAMPLE", secret).is_err());
        assert!(validate("short", secret).is_err());
        assert!(validate("AKIAIOSFODNN7EXAMPLE", "short").is_err());
    }
}
