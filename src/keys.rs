//! Long-lived IAM keys: where they come from (the OS keyring, 1Password,
//! OpenBao KV) and how `add` stores them.

use std::process::Command;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::Store;
use crate::{openbao, paths, tool};

pub use crate::creds::LongLivedKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Keyring,
    /// Fetched at mint time with `op item get`, never stored by awsmfa.
    Op {
        vault: String,
        item: String,
        fields: [String; 2],
    },
    /// KV-v2 at `MOUNT/PATH`, fetched at mint time.
    OpenBao {
        path: String,
        fields: [String; 2],
    },
}

impl Source {
    /// `keyring | op:VAULT/ITEM | openbao:MOUNT/PATH`, as written in config.toml's
    /// `keys =`; `fields` are the labels of the key id and secret (`key_fields`).
    pub fn parse(text: &str, fields: Option<&[String]>) -> anyhow::Result<Self> {
        let fields = |default: [&str; 2]| -> anyhow::Result<[String; 2]> {
            match fields {
                None => Ok(default.map(String::from)),
                Some([id, secret]) => Ok([id.clone(), secret.clone()]),
                Some(_) => bail!("key_fields takes two names: the key id's and the secret's"),
            }
        };
        match text.split_once(':') {
            None if text == "keyring" => Ok(Source::Keyring),
            Some(("op", spec)) => {
                let (vault, item) = crate::mfa::split_op(spec)?;
                Ok(Source::Op {
                    vault,
                    item,
                    // op-aws-credential-process's defaults: a 1Password "API Credential" item.
                    fields: fields(["username", "credential"])?,
                })
            }
            Some(("openbao", path)) if path.contains('/') => Ok(Source::OpenBao {
                path: path.to_string(),
                fields: fields(["access_key_id", "secret_access_key"])?,
            }),
            _ => bail!(
                "unknown key source `{text}`; expected keyring, op:VAULT/ITEM or openbao:MOUNT/PATH"
            ),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Keyring => "keyring".into(),
            Source::Op { vault, item, .. } => format!("op:{vault}/{item}"),
            Source::OpenBao { path, .. } => format!("openbao:{path}"),
        }
    }

    /// What identifies the key without reading it: part of the session
    /// fingerprint, so replacing the key (or pointing at another item) retires
    /// sessions minted with the old one.
    pub fn identity(&self, profile: &str) -> String {
        match self {
            Source::Keyring => format!(
                "keyring:{}",
                crate::state::read_key_stamp(profile).unwrap_or_else(|| "none".into())
            ),
            Source::Op { fields, .. } | Source::OpenBao { fields, .. } => {
                format!("{}:{}:{}", self.describe(), fields[0], fields[1])
            }
        }
    }
}

fn entry_name(profile: &str) -> String {
    format!("key:{profile}")
}

/// Not secret, and not the key id itself either: just enough to notice a change.
pub fn stamp(access_key_id: &str) -> String {
    let digest = Sha256::digest(format!("awsmfa-key-stamp:{access_key_id}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
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

pub fn load(profile: &str, source: &Source, bao: &openbao::Lazy) -> anyhow::Result<LongLivedKey> {
    match source {
        Source::Keyring => from_keyring(profile),
        Source::Op {
            vault,
            item,
            fields,
        } => from_op(vault, item, fields),
        Source::OpenBao { path, fields } => {
            let [id, secret] = bao.get()?.kv_fields(path, [&fields[0], &fields[1]])?;
            Ok(LongLivedKey {
                access_key_id: id.expose_secret().to_string(),
                secret_access_key: secret,
            })
        }
    }
}

fn from_keyring(profile: &str) -> anyhow::Result<LongLivedKey> {
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

#[derive(Deserialize)]
struct OpField {
    label: Option<String>,
    value: Option<SecretString>,
}

fn from_op(vault: &str, item: &str, fields: &[String; 2]) -> anyhow::Result<LongLivedKey> {
    let op = paths::which("op").context("the 1Password CLI `op` is not installed")?;
    let mut command = Command::new(op);
    command
        .args(["item", "get", item, "--vault", vault])
        .arg(format!("--fields=label={},label={}", fields[0], fields[1]))
        // op ≥ 2.30 masks concealed fields without it.
        .args(["--reveal", "--format", "json"]);
    let out = tool::run(command, "op (1Password)")?;
    if !out.status.success() {
        bail!(
            "op could not read {vault}/{item} ({}): sign in (`op signin`) or set OP_SERVICE_ACCOUNT_TOKEN",
            out.status
        );
    }
    let parsed: Vec<OpField> = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("op's answer for {vault}/{item} is not the JSON list of fields expected")
    })?;
    let take = |label: &str| {
        parsed
            .iter()
            .find(|f| f.label.as_deref() == Some(label))
            .and_then(|f| f.value.as_ref())
            .map(|v| SecretString::from(v.expose_secret().to_string()))
            .with_context(|| {
                format!("1Password item {vault}/{item} has no field labelled `{label}`")
            })
    };
    let id = take(&fields[0])?;
    let secret = take(&fields[1])?;
    Ok(LongLivedKey {
        access_key_id: id.expose_secret().to_string(),
        secret_access_key: secret,
    })
}

/// Saves to the keys' store and records the stamp. Returns the store's name.
pub fn save(profile: &str, key: &LongLivedKey) -> anyhow::Result<&'static str> {
    let store = Store::for_keys()?;
    let blob = SecretString::from(serde_json::to_string(&StoredRef {
        access_key_id: &key.access_key_id,
        secret_access_key: key.secret_access_key.expose_secret(),
    })?);
    store.set(&entry_name(profile), &blob)?;
    crate::state::write_key_stamp(profile, &stamp(&key.access_key_id))?;
    Ok(store.backend().name())
}

/// True when a key was there to delete.
pub fn delete(profile: &str) -> anyhow::Result<bool> {
    let store = Store::for_keys()?;
    let deleted = store.delete(&entry_name(profile))?;
    crate::state::remove_key_stamp(profile);
    Ok(deleted)
}

/// Whether `add` has stored a key, judged from the stamp alone (no keyring call).
pub fn recorded(profile: &str) -> bool {
    crate::state::read_key_stamp(profile).is_some()
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

    #[test]
    fn sources_parse() {
        assert_eq!(Source::parse("keyring", None).unwrap(), Source::Keyring);
        let op = Source::parse("op:Private/AWS jacob", None).unwrap();
        assert_eq!(op.describe(), "op:Private/AWS jacob");
        let custom = ["id".to_string(), "secret".to_string()];
        match Source::parse("openbao:secret/aws/jacob", Some(&custom)).unwrap() {
            Source::OpenBao { path, fields } => {
                assert_eq!(path, "secret/aws/jacob");
                assert_eq!(fields, custom);
            }
            other => panic!("{other:?}"),
        }
        assert!(Source::parse("vault", None).is_err());
        assert!(Source::parse("openbao:nomount", None).is_err());
    }
}
