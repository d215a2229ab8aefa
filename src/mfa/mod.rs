//! Where MFA codes come from: the terminal, a command (`mfa_process`), a YubiKey
//! (ykman), 1Password (op), or OpenBao's TOTP engine — one, or a list tried in
//! order (an absent tool or device moves on to the next). One file per source,
//! each an [`MfaSource`]; [`SOURCES`] is the only place that knows them all.

mod onepassword;
mod openbao;
mod process;
mod step;
mod terminal;
mod ykman;

use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::health::Health;
use crate::log;
pub use step::Device;

/// One place an MFA code can come from.
pub trait MfaSource: fmt::Debug + Send + Sync {
    /// Its kind, in messages and `list`: `prompt`, `ykman`, …
    fn describe(&self) -> String;

    /// Who is named when it answers with something other than a code.
    fn blame(&self) -> String {
        self.describe()
    }

    /// Whether codes come from OpenBao, whose address is then checked before
    /// anything is fetched.
    fn uses_openbao(&self) -> bool {
        false
    }

    /// Whether a person types the code. A typed code from a step already used
    /// is refused at the prompt (the person waits); for any other source awsmfa
    /// waits for the next step before asking.
    fn typed(&self) -> bool {
        false
    }

    /// A code, or why this source cannot give one (the next one is tried).
    /// `attempt` is 1 for the first try; later tries follow a rejected code.
    fn code(&self, req: &Request, attempt: u32) -> anyhow::Result<SecretString>;

    /// For `doctor`: whether `code` could work here, found without asking for one.
    fn health(&self, req: &Request) -> Health;
}

/// Cheap to clone: a session plan holds a list of them.
pub type Source = Arc<dyn MfaSource>;

/// What follows the source's name in `mfa = "NAME:REST"`, trimmed (None
/// without a `:`). `Ok(None)` when `rest` does not fit that source.
type Parse = fn(rest: Option<&str>) -> anyhow::Result<Option<Source>>;

/// Every MFA source: its name, its syntax for messages, and how to parse it.
/// Adding a source is one file and one line here.
const SOURCES: &[(&str, &str, Parse)] = &[
    ("prompt", "prompt", terminal::parse),
    ("ykman", "ykman[:ACCOUNT]", ykman::parse),
    ("op", "op:VAULT/ITEM", onepassword::parse),
    ("process", "process:COMMAND", process::parse),
    ("openbao", "openbao:PATH", openbao::parse),
];

/// One entry of `mfa = …` in config.toml.
pub fn parse(text: &str) -> anyhow::Result<Source> {
    let (name, rest) = match text.split_once(':') {
        Some((name, rest)) => (name, Some(rest.trim())),
        None => (text, None),
    };
    for (known, _, parse) in SOURCES {
        if *known == name.trim()
            && let Some(source) = parse(rest)?
        {
            return Ok(source);
        }
    }
    let syntaxes: Vec<&str> = SOURCES.iter().map(|(_, syntax, _)| *syntax).collect();
    bail!(
        "unknown MFA source `{text}`; expected {}",
        log::one_of(&syntaxes)
    )
}

/// Without `mfa =`: the profile's `mfa_process` from ~/.aws/config, as the AWS
/// CLI would use it, or else the terminal.
pub fn default_source(mfa_process: Option<&str>) -> Source {
    match mfa_process {
        Some(cmd) => Arc::new(process::Process::new(cmd)),
        None => Arc::new(terminal::Terminal),
    }
}

/// What the code is for, and what a source may use to get it.
pub struct Request<'a> {
    pub profile: &'a str,
    pub serial: &'a str,
    /// `ykman --device SERIAL`, when several keys are plugged in.
    pub ykman_device: Option<&'a str>,
    pub openbao: &'a crate::openbao::Lazy,
    /// The last TOTP step whose code for this device went to STS (see [`Device`]).
    pub last_step: Option<u64>,
}

pub const MAX_ATTEMPTS: u32 = 3;

/// A code, and the TOTP step it was had in.
pub struct Code {
    pub secret: SecretString,
    pub step: u64,
}

/// The first code any source gives. A source that cannot give one (tool not
/// installed, no key plugged in, no terminal) passes to the next.
pub fn code(sources: &[Source], req: &Request, attempt: u32) -> anyhow::Result<Code> {
    let mut errors = Vec::new();
    for source in sources {
        match fresh_code(source.as_ref(), req, attempt) {
            Ok(code) => {
                if sources.len() > 1 {
                    log::info(format_args!(
                        "MFA code for {} from {}",
                        req.profile,
                        source.describe()
                    ));
                }
                return Ok(code);
            }
            Err(e) => {
                if sources.len() > 1 {
                    log::info(format_args!(
                        "{}: {e:#}; trying the next source",
                        source.describe()
                    ));
                }
                errors.push(format!("{}: {e:#}", source.describe()));
            }
        }
    }
    Err(anyhow!(
        "no MFA code for profile {} ({})\n  {}",
        req.profile,
        req.serial,
        errors.join("\n  ")
    ))
}

/// A code from `source` in a step whose code was not sent yet. Asking while the
/// step is used would cost a touch or an unlock for a code STS refuses: other
/// sources wait for the next step first (the prompt refuses such a code itself).
/// Checked again on the answer, by the step it came back in: a source that
/// answered across a step boundary, or a clock set back, is waited out once more.
fn fresh_code(source: &dyn MfaSource, req: &Request, attempt: u32) -> anyhow::Result<Code> {
    if !source.typed() {
        step::wait_out(req.last_step, &source.blame());
    }
    for _ in 0..2 {
        let code = check(source.code(req, attempt)?, source)?;
        let now = step::now();
        if req.last_step.is_none_or(|last| now > last) {
            return Ok(Code {
                secret: code,
                step: now,
            });
        }
        step::wait_out(req.last_step, &source.blame());
    }
    bail!(
        "{} gave only codes from a 30 s step already used for {}; check the system clock",
        source.blame(),
        req.serial
    )
}

fn check(code: SecretString, source: &dyn MfaSource) -> anyhow::Result<SecretString> {
    let text = code.expose_secret().trim();
    if is_code(text) {
        return Ok(SecretString::from(text.to_string()));
    }
    // What it printed is not shown: it may be a code, or worse.
    bail!(
        "{} gave something other than a 6-digit code",
        source.blame()
    )
}

fn is_code(text: &str) -> bool {
    text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        assert!(is_code("012345"));
        assert!(!is_code("12345"));
        assert!(!is_code("12345a"));
        assert!(!is_code("1234567"));
    }

    #[test]
    fn sources_parse() {
        let parsed = |text: &str| format!("{:?}", parse(text).unwrap());
        assert_eq!(parsed("prompt"), "Terminal");
        assert_eq!(
            parsed("process:oathtool --totp x"),
            r#"Process { cmd: "oathtool --totp x" }"#
        );
        assert_eq!(parsed("ykman"), "Ykman { account: None }");
        assert_eq!(
            parsed("ykman:AWS:jacob"),
            r#"Ykman { account: Some("AWS:jacob") }"#
        );
        assert_eq!(
            parsed("op:Private/AWS"),
            r#"OnePassword { item: Item { vault: "Private", item: "AWS" } }"#
        );
        assert_eq!(
            parsed("openbao:totp/code/me"),
            r#"OpenBao { path: "totp/code/me" }"#
        );
        assert!(parse("sms").is_err());
        assert!(parse("op:novault").is_err());
    }

    #[test]
    fn unknown_sources_name_every_known_one() {
        let err = parse("sms").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown MFA source `sms`; expected prompt, ykman[:ACCOUNT], op:VAULT/ITEM, process:COMMAND or openbao:PATH"
        );
    }
}
