//! `mfa = "openbao:PATH"`: OpenBao's TOTP engine, e.g. `totp/code/aws-jacob`.
//! The seed stays in OpenBao.

use std::sync::Arc;

use secrecy::SecretString;

use super::{MfaSource, Request, Source};
use crate::health::Health;

#[derive(Debug)]
pub(super) struct OpenBao {
    path: String,
}

pub(super) fn parse(rest: Option<&str>) -> anyhow::Result<Option<Source>> {
    Ok(rest
        .filter(|path| !path.is_empty())
        .map(|path| Arc::new(OpenBao { path: path.into() }) as Source))
}

impl MfaSource for OpenBao {
    fn describe(&self) -> String {
        "openbao".into()
    }

    fn uses_openbao(&self) -> bool {
        true
    }

    fn code(&self, req: &Request, _attempt: u32) -> anyhow::Result<SecretString> {
        req.openbao.get()?.totp(&self.path)
    }

    fn health(&self, req: &Request) -> Health {
        req.openbao.health(&format!("MFA codes from {}", self.path))
    }
}
