//! `mfa = "op:VAULT/ITEM"`: the item's one-time password, from 1Password.

use std::sync::Arc;

use secrecy::SecretString;

use super::{MfaSource, Request, Source};
use crate::health::Health;
use crate::onepassword::Item;

#[derive(Debug)]
pub(super) struct OnePassword {
    item: Item,
}

pub(super) fn parse(rest: Option<&str>) -> anyhow::Result<Option<Source>> {
    let Some(spec) = rest else {
        return Ok(None);
    };
    Ok(Some(Arc::new(OnePassword {
        item: Item::parse(spec)?,
    })))
}

impl MfaSource for OnePassword {
    fn describe(&self) -> String {
        "op".into()
    }

    fn code(&self, _req: &Request, _attempt: u32) -> anyhow::Result<SecretString> {
        self.item.otp()
    }

    fn health(&self, _req: &Request) -> Health {
        crate::onepassword::health(&format!("one-time codes from {}", self.item))
    }
}
