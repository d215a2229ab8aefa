//! `mfa = "ykman[:ACCOUNT]"`: `ykman oath accounts code --single ACCOUNT`, a
//! code from a YubiKey's OATH applet (after a touch, if the account wants one).

use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::{MfaSource, Request, Source};
use crate::health::Health;
use crate::{paths, tool};

#[derive(Debug)]
pub(super) struct Ykman {
    /// None means the mfa_serial.
    account: Option<String>,
}

pub(super) fn parse(rest: Option<&str>) -> anyhow::Result<Option<Source>> {
    let account = match rest {
        None => None,
        Some("") => return Ok(None),
        Some(account) => Some(account.to_string()),
    };
    Ok(Some(Arc::new(Ykman { account })))
}

impl MfaSource for Ykman {
    fn describe(&self) -> String {
        "ykman".into()
    }

    fn code(&self, req: &Request, _attempt: u32) -> anyhow::Result<SecretString> {
        let account = self.account.as_deref().unwrap_or(req.serial);
        let ykman = paths::which("ykman").context(
            "ykman is not installed (YubiKey Manager CLI: `pipx install yubikey-manager`)",
        )?;
        let mut command = Command::new(ykman);
        if let Some(serial) = req.ykman_device {
            command.args(["--device", serial]);
        }
        command.args(["oath", "accounts", "code", "--single", account]);
        let out = tool::run(command, "ykman")?;
        if out.status.success() {
            return Ok(out.stdout_secret());
        }
        let said = out.stderr.to_lowercase();
        let several_keys;
        let hint = if said.contains("no yubikey") || said.contains("no device") {
            "no YubiKey found: plug it in"
        } else if said.contains("multiple yubikeys") {
            // ykman: "Multiple YubiKeys detected. Use --device SERIAL …"
            several_keys = format!(
                "several YubiKeys are plugged in: choose one with `ykman_device = \"SERIAL\"` under [profiles.{}] in config.toml (serials: `ykman list --serials`)",
                req.profile
            );
            several_keys.as_str()
        } else if said.contains("multiple") {
            "several OATH accounts match: name the exact one, e.g. mfa = \"ykman:ISSUER:NAME\" (see `ykman oath accounts list`)"
        } else if said.contains("touch") || said.contains("timed out") || said.contains("timeout") {
            "the YubiKey was not touched in time"
        } else if said.contains("no matching") || said.contains("not found") {
            "no OATH account by that name on the YubiKey: see `ykman oath accounts list`"
        } else {
            "see ykman's message above"
        };
        bail!("ykman failed ({}): {hint}", out.status)
    }

    /// `ykman list --serials` answers without a touch: it proves the tool runs
    /// and a key is plugged in.
    fn health(&self, req: &Request) -> Health {
        let Some(ykman) = paths::which("ykman") else {
            return Health::fail(
                "ykman is not installed",
                "install YubiKey Manager (`pipx install yubikey-manager`)",
            );
        };
        let mut cmd = Command::new(ykman);
        cmd.args(["list", "--serials"]);
        let serials = match tool::run(cmd, "ykman") {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => {
                return Health::fail(
                    format!("`ykman list` failed ({})", out.status),
                    "see ykman's message above",
                );
            }
            Err(e) => return Health::fail(format!("{e:#}"), "see above"),
        };
        let found: Vec<&str> = serials.split_whitespace().collect();
        match req.ykman_device {
            _ if found.is_empty() => Health::fail(
                "no YubiKey plugged in",
                "plug in the YubiKey that holds the OATH account",
            ),
            Some(serial) if !found.contains(&serial) => Health::fail(
                format!(
                    "YubiKey {serial} is not plugged in (found {})",
                    found.join(", ")
                ),
                "plug it in, or fix ykman_device in config.toml",
            ),
            _ => Health::Ok(format!("YubiKey present ({})", found.join(", "))),
        }
    }
}
