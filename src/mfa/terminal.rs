//! `mfa = "prompt"`: a code typed at `/dev/tty`.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};

use super::{MAX_ATTEMPTS, MfaSource, Request, Source, step};
use crate::health::Health;
use crate::lock::TypedPrompt;
use crate::tty::{self, Tty, Unusable};

#[derive(Debug)]
pub(super) struct Terminal;

pub(super) fn parse(rest: Option<&str>) -> anyhow::Result<Option<Source>> {
    Ok(rest.is_none().then(|| Arc::new(Terminal) as Source))
}

impl MfaSource for Terminal {
    fn describe(&self) -> String {
        "prompt".into()
    }

    fn typed(&self) -> bool {
        true
    }

    fn code(&self, req: &Request, attempt: u32) -> anyhow::Result<SecretString> {
        let mut tty = Tty::open().map_err(|why| match why {
            Unusable::Missing => anyhow!(
                "there is no terminal to type it at; set `mfa_process = COMMAND` in [profile {}] \
                 (or `mfa = \"ykman\"` in config.toml), or run `awsmfa exec {} -- true` in a terminal first",
                req.profile,
                req.profile
            ),
            Unusable::Background => anyhow!(
                "{why}; run the command in the foreground, or give {} an MFA source that needs no \
                 typing: `mfa = \"ykman\"` or `mfa = \"op:VAULT/ITEM\"` (1Password) in config.toml, \
                 or `mfa_process = COMMAND` in [profile {}]",
                req.profile,
                req.profile
            ),
        })?;
        // The lock stays held while a person types: those waiting on it are
        // told so, and the prompt ends at its limit to let them go on.
        let _typing = TypedPrompt::begin();
        let limit = tty::prompt_limit();
        let deadline = Instant::now().checked_add(limit);
        if attempt > 1 {
            tty.say(&format!(
                "awsmfa: STS rejected that code (try {attempt} of {MAX_ATTEMPTS})\n"
            ))?;
        }
        for _ in 0..MAX_ATTEMPTS {
            let prompt = format!("MFA code for {} ({}): ", req.serial, req.profile);
            let answer = match tty.ask_until(&prompt, true, deadline) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => bail!(
                    "no MFA code typed within {}; run the command again to be asked again \
                     (AWSMFA_PROMPT_TIMEOUT sets this limit, in seconds)",
                    crate::time::spoken(limit)
                ),
                answer => answer.context("cannot read from the terminal")?,
            };
            let code = answer.expose_secret().trim();
            if !super::is_code(code) {
                tty.say("awsmfa: an MFA code is 6 digits\n")?;
                continue;
            }
            // The device shows the same code until the step ends, and STS
            // would refuse it: a try spent here costs no STS call.
            if let Some(left) = step::left_in_used_step(req.last_step) {
                tty.say(&format!(
                    "awsmfa: a code from this 30 s step was already sent to STS for {}; \
                     wait {} s and type the next code\n",
                    req.serial,
                    step::secs(left)
                ))?;
                continue;
            }
            return Ok(SecretString::from(code.to_string()));
        }
        bail!("no usable 6-digit code after {MAX_ATTEMPTS} tries")
    }

    fn health(&self, _req: &Request) -> Health {
        if Tty::available() {
            Health::Ok("MFA codes typed at the terminal".into())
        } else {
            Health::Warn {
                what: "MFA codes are typed, but there is no terminal here".into(),
                fix: "runs without a terminal will fail until a session is cached; consider mfa_process or mfa = \"ykman\"".into(),
            }
        }
    }
}
