//! `keys = "openbao:MOUNT/PATH"`: a KV-v2 secret, fetched at mint time.

use std::sync::Arc;

use secrecy::SecretString;

use super::{Fields, KeySource, LongLivedKey, Source};
use crate::health::Health;

#[derive(Debug)]
pub(super) struct OpenBao {
    path: String,
    fields: Fields,
}

pub(super) fn parse(
    rest: Option<&str>,
    fields: Option<&[String]>,
) -> anyhow::Result<Option<Source>> {
    let Some(path) = rest.filter(|path| path.contains('/')) else {
        return Ok(None);
    };
    Ok(Some(Arc::new(OpenBao {
        path: path.to_string(),
        fields: Fields::parse(fields, ["access_key_id", "secret_access_key"])?,
    })))
}

impl KeySource for OpenBao {
    fn describe(&self) -> String {
        format!("openbao:{}", self.path)
    }

    fn identity(&self, _profile: &str) -> String {
        self.fields.identity(self)
    }

    fn uses_openbao(&self) -> bool {
        true
    }

    fn load(&self, _profile: &str, bao: &crate::openbao::Lazy) -> anyhow::Result<LongLivedKey> {
        let values = bao.get()?.kv_fields(&self.path, self.fields.labels())?;
        Ok(Fields::key(values))
    }

    fn replace(
        &self,
        _profile: &str,
        new: &LongLivedKey,
        bao: &crate::openbao::Lazy,
    ) -> anyhow::Result<()> {
        let id = SecretString::from(new.access_key_id.clone());
        bao.get()?.kv_set_fields(
            &self.path,
            self.fields.labels(),
            [&id, &new.secret_access_key],
        )
    }

    fn health(&self, _profile: &str, bao: &crate::openbao::Lazy) -> Health {
        bao.health(&format!("keys from {}", self.path))
    }
}
