//! Long-lived IAM keys: where they come from (the OS keyring, 1Password,
//! OpenBao KV), how `add` stores them, and how `rotate` puts a new one in the
//! old one's place. One file per source, each a [`KeySource`]; [`SOURCES`] is
//! the only place that knows them all.

mod keyring;
mod onepassword;
mod openbao;

use std::fmt;
use std::sync::Arc;

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};

use crate::health::Health;

pub use crate::creds::LongLivedKey;
pub use keyring::{Pending, delete, save, stage, staged, stamp, unstage, validate};

/// Where one profile's long-lived key comes from.
pub trait KeySource: fmt::Debug + Send + Sync {
    /// As written in config.toml's `keys =`.
    fn describe(&self) -> String;

    /// What identifies the key without reading it: part of the session
    /// fingerprint, so replacing the key (or pointing at another item) retires
    /// sessions minted with the old one.
    fn identity(&self, profile: &str) -> String;

    /// Whether the key comes from OpenBao: which server then shapes the
    /// session too, and its address is checked before anything is fetched.
    fn uses_openbao(&self) -> bool {
        false
    }

    /// The key, for one mint.
    fn load(&self, profile: &str, bao: &crate::openbao::Lazy) -> anyhow::Result<LongLivedKey>;

    /// For `rotate`: puts `new` where `load` finds it, in place of the key
    /// there now, in one step of the store's (one keyring write, one item edit,
    /// one new KV version), so that an interruption leaves one key or the other.
    fn replace(
        &self,
        profile: &str,
        new: &LongLivedKey,
        bao: &crate::openbao::Lazy,
    ) -> anyhow::Result<()>;

    /// The [`stamp`] of the key `load` would give, where that is known without
    /// reading it (the keyring's); None where only a mint finds out.
    fn current_stamp(&self, _profile: &str) -> Option<String> {
        None
    }

    /// For `list`: whether `add` has stored the key, where awsmfa stores it
    /// (the keyring); None where it is read afresh on every mint (op, OpenBao).
    fn stored(&self, _profile: &str) -> Option<bool> {
        None
    }

    /// For `doctor`: whether `load` would work, found without reading the key.
    fn health(&self, profile: &str, bao: &crate::openbao::Lazy) -> Health;
}

/// Cheap to clone: a session plan holds one, and plans are cloned.
pub type Source = Arc<dyn KeySource>;

/// What follows the source's name in `keys = "NAME:REST"` (None without a
/// `:`), and `key_fields`. `Ok(None)` when `rest` does not fit that source.
type Parse = fn(rest: Option<&str>, fields: Option<&[String]>) -> anyhow::Result<Option<Source>>;

/// Every key source: its name, its syntax for messages, and how to parse it.
/// Adding a source is one file and one line here.
const SOURCES: &[(&str, &str, Parse)] = &[
    ("keyring", "keyring", keyring::parse),
    ("op", "op:VAULT/ITEM", onepassword::parse),
    ("openbao", "openbao:MOUNT/PATH", openbao::parse),
];

/// `keys = "…"` from config.toml; `fields` are the labels of the key id and
/// secret (`key_fields`).
pub fn parse(text: &str, fields: Option<&[String]>) -> anyhow::Result<Source> {
    let (name, rest) = match text.split_once(':') {
        Some((name, rest)) => (name, Some(rest)),
        None => (text, None),
    };
    for (known, _, parse) in SOURCES {
        if *known == name
            && let Some(source) = parse(rest, fields)?
        {
            return Ok(source);
        }
    }
    let syntaxes: Vec<&str> = SOURCES.iter().map(|(_, syntax, _)| *syntax).collect();
    bail!(
        "unknown key source `{text}`; expected {}",
        crate::log::one_of(&syntaxes)
    )
}

/// Without `keys =`: the keyring, where `awsmfa add` puts the key.
pub fn default_source() -> Source {
    Arc::new(keyring::Keyring)
}

/// The labels of the key id's and the secret's fields, for a source that
/// keeps the key as two fields of a secret (a 1Password item, an OpenBao KV).
#[derive(Debug)]
struct Fields([String; 2]);

impl Fields {
    /// `key_fields`, or the source's own default labels.
    fn parse(given: Option<&[String]>, default: [&str; 2]) -> anyhow::Result<Self> {
        match given {
            None => Ok(Fields(default.map(String::from))),
            Some([id, secret]) => Ok(Fields([id.clone(), secret.clone()])),
            Some(_) => bail!("key_fields takes two names: the key id's and the secret's"),
        }
    }

    fn labels(&self) -> [&str; 2] {
        [&self.0[0], &self.0[1]]
    }

    /// Where the key is and which fields: reading other fields is using another key.
    fn identity(&self, source: &dyn KeySource) -> String {
        format!("{}:{}:{}", source.describe(), self.0[0], self.0[1])
    }

    fn key([id, secret]: [SecretString; 2]) -> LongLivedKey {
        LongLivedKey {
            access_key_id: id.expose_secret().to_string(),
            secret_access_key: secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(parse("keyring", None).unwrap().describe(), "keyring");
        let op = parse("op:Private/AWS jacob", None).unwrap();
        assert_eq!(op.describe(), "op:Private/AWS jacob");
        let custom = ["id".to_string(), "secret".to_string()];
        let bao = parse("openbao:secret/aws/jacob", Some(&custom)).unwrap();
        assert_eq!(bao.describe(), "openbao:secret/aws/jacob");
        assert_eq!(bao.identity("p"), "openbao:secret/aws/jacob:id:secret");
        assert!(parse("vault", None).is_err());
        assert!(parse("openbao:nomount", None).is_err());
    }

    #[test]
    fn unknown_sources_name_every_known_one() {
        let err = parse("vault", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown key source `vault`; expected keyring, op:VAULT/ITEM or openbao:MOUNT/PATH"
        );
    }
}
