//! `keys = "op:VAULT/ITEM"`: fetched from 1Password at mint time, never stored
//! by awsmfa (`rotate` writes a new one into the item).

use std::sync::Arc;

use secrecy::SecretString;

use super::{Fields, KeySource, LongLivedKey, Source};
use crate::health::Health;
use crate::onepassword::Item;

#[derive(Debug)]
pub(super) struct OnePassword {
    item: Item,
    fields: Fields,
}

pub(super) fn parse(
    rest: Option<&str>,
    fields: Option<&[String]>,
) -> anyhow::Result<Option<Source>> {
    let Some(spec) = rest else {
        return Ok(None);
    };
    Ok(Some(Arc::new(OnePassword {
        item: Item::parse(spec)?,
        // op-aws-credential-process's defaults: a 1Password "API Credential" item.
        fields: Fields::parse(fields, ["username", "credential"])?,
    })))
}

impl KeySource for OnePassword {
    fn describe(&self) -> String {
        format!("op:{}", self.item)
    }

    fn identity(&self, _profile: &str) -> String {
        self.fields.identity(self)
    }

    fn load(&self, _profile: &str, _bao: &crate::openbao::Lazy) -> anyhow::Result<LongLivedKey> {
        Ok(Fields::key(self.item.fields(self.fields.labels())?))
    }

    fn replace(
        &self,
        _profile: &str,
        new: &LongLivedKey,
        _bao: &crate::openbao::Lazy,
    ) -> anyhow::Result<()> {
        let id = SecretString::from(new.access_key_id.clone());
        self.item
            .set_fields(self.fields.labels(), [&id, &new.secret_access_key])
    }

    fn health(&self, _profile: &str, _bao: &crate::openbao::Lazy) -> Health {
        crate::onepassword::health(&format!("keys from {}", self.describe()))
    }
}
