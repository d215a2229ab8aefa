//! Where MFA codes come from: the terminal, a command (`mfa_process`), a YubiKey
//! (ykman), 1Password (op), or OpenBao's TOTP engine — one, or a list tried in
//! order (an absent tool or device moves on to the next).

use std::process::Command;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::tty::Tty;
use crate::{log, paths, tool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Typed at `/dev/tty`.
    Prompt,
    /// `sh -c CMD`; its stdout is the code.
    Process(String),
    /// `ykman oath accounts code --single ACCOUNT`; None means the mfa_serial.
    Ykman(Option<String>),
    /// `op item get ITEM --vault VAULT --otp`.
    Op { vault: String, item: String },
    /// OpenBao's TOTP engine, e.g. `totp/code/aws-jacob`.
    OpenBao(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Prompt => "prompt".into(),
            Source::Process(_) => "process".into(),
            Source::Ykman(_) => "ykman".into(),
            Source::Op { .. } => "op".into(),
            Source::OpenBao(_) => "openbao".into(),
        }
    }

    /// `prompt | ykman[:ACCOUNT] | op:VAULT/ITEM | process:CMD | openbao:PATH`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (kind, Some(rest.trim())),
            None => (text, None),
        };
        Ok(match (kind.trim(), rest) {
            ("prompt", None) => Source::Prompt,
            ("ykman", None) => Source::Ykman(None),
            ("ykman", Some(account)) if !account.is_empty() => Source::Ykman(Some(account.into())),
            ("process", Some(cmd)) if !cmd.is_empty() => Source::Process(cmd.into()),
            ("op", Some(spec)) => {
                let (vault, item) = split_op(spec)?;
                Source::Op { vault, item }
            }
            ("openbao", Some(path)) if !path.is_empty() => Source::OpenBao(path.into()),
            _ => bail!(
                "unknown MFA source `{text}`; expected prompt, ykman[:ACCOUNT], op:VAULT/ITEM, process:COMMAND or openbao:PATH"
            ),
        })
    }
}

pub fn split_op(spec: &str) -> anyhow::Result<(String, String)> {
    match spec.split_once('/') {
        Some((vault, item)) if !vault.is_empty() && !item.is_empty() => {
            Ok((vault.to_string(), item.to_string()))
        }
        _ => bail!("`op:{spec}` should be op:VAULT/ITEM"),
    }
}

/// What the code is for, for the prompt text and messages.
pub struct Request<'a> {
    pub profile: &'a str,
    pub serial: &'a str,
    /// 1 for the first try; later tries say the previous code was rejected.
    pub attempt: u32,
    /// `ykman --device SERIAL`, when several keys are plugged in.
    pub ykman_device: Option<&'a str>,
}

pub const MAX_ATTEMPTS: u32 = 3;

/// The first code any source gives. A source that cannot give one (tool not
/// installed, no key plugged in, no terminal) passes to the next.
pub fn code(
    sources: &[Source],
    req: &Request,
    openbao: &crate::openbao::Lazy,
) -> anyhow::Result<SecretString> {
    let mut errors = Vec::new();
    for source in sources {
        let result = match source {
            Source::Prompt => from_prompt(req),
            Source::Process(cmd) => from_process(cmd, req),
            Source::Ykman(account) => from_ykman(account.as_deref().unwrap_or(req.serial), req),
            Source::Op { vault, item } => from_op(vault, item),
            Source::OpenBao(path) => openbao.get().and_then(|c| c.totp(path)),
        };
        match result.and_then(|code| check(code, source)) {
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

fn check(code: SecretString, source: &Source) -> anyhow::Result<SecretString> {
    let text = code.expose_secret().trim();
    if is_code(text) {
        return Ok(SecretString::from(text.to_string()));
    }
    // What it printed is not shown: it may be a code, or worse.
    let what = match source {
        Source::Process(_) => "mfa_process".to_string(),
        other => other.describe(),
    };
    bail!("{what} gave something other than a 6-digit code")
}

fn from_prompt(req: &Request) -> anyhow::Result<SecretString> {
    let mut tty = Tty::open().map_err(|_| {
        anyhow!(
            "there is no terminal to type it at; set `mfa_process = COMMAND` in [profile {}] \
             (or `mfa = \"ykman\"` in config.toml), or run `awsmfa exec {} -- true` in a terminal first",
            req.profile,
            req.profile
        )
    })?;
    if req.attempt > 1 {
        tty.say(&format!(
            "awsmfa: STS rejected that code (try {} of {MAX_ATTEMPTS})\n",
            req.attempt
        ))?;
    }
    for _ in 0..MAX_ATTEMPTS {
        let prompt = format!("MFA code for {} ({}): ", req.serial, req.profile);
        let answer = tty
            .ask(&prompt, true)
            .context("cannot read from the terminal")?;
        let code = answer.expose_secret().trim();
        if is_code(code) {
            return Ok(SecretString::from(code.to_string()));
        }
        tty.say("awsmfa: an MFA code is 6 digits\n")?;
    }
    bail!("no valid 6-digit code after {MAX_ATTEMPTS} tries")
}

fn from_process(cmd: &str, req: &Request) -> anyhow::Result<SecretString> {
    crate::debug!("running mfa_process for {}", req.profile);
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd);
    let out = tool::run(command, &format!("mfa_process for profile {}", req.profile))?;
    if !out.status.success() {
        bail!(
            "mfa_process for profile {} failed ({}); run it by hand to see why",
            req.profile,
            out.status
        );
    }
    Ok(stdout_secret(&out))
}

fn stdout_secret(out: &tool::Output) -> SecretString {
    SecretString::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_ykman(account: &str, req: &Request) -> anyhow::Result<SecretString> {
    let ykman = paths::which("ykman")
        .context("ykman is not installed (YubiKey Manager CLI: `pipx install yubikey-manager`)")?;
    let mut command = Command::new(ykman);
    if let Some(serial) = req.ykman_device {
        command.args(["--device", serial]);
    }
    command.args(["oath", "accounts", "code", "--single", account]);
    let out = tool::run(command, "ykman")?;
    if out.status.success() {
        return Ok(stdout_secret(&out));
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

fn from_op(vault: &str, item: &str) -> anyhow::Result<SecretString> {
    let op = paths::which("op").context("the 1Password CLI `op` is not installed")?;
    let mut command = Command::new(op);
    command.args(["item", "get", item, "--vault", vault, "--otp"]);
    let out = tool::run(command, "op (1Password)")?;
    if !out.status.success() {
        bail!(
            "op could not read the one-time password of {vault}/{item} ({}): sign in (`op signin`) or set OP_SERVICE_ACCOUNT_TOKEN",
            out.status
        );
    }
    Ok(stdout_secret(&out))
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
        assert_eq!(Source::parse("prompt").unwrap(), Source::Prompt);
        assert_eq!(
            Source::parse("process:oathtool --totp x").unwrap(),
            Source::Process("oathtool --totp x".into())
        );
        assert_eq!(Source::parse("ykman").unwrap(), Source::Ykman(None));
        assert_eq!(
            Source::parse("ykman:AWS:jacob").unwrap(),
            Source::Ykman(Some("AWS:jacob".into()))
        );
        assert_eq!(
            Source::parse("op:Private/AWS").unwrap(),
            Source::Op {
                vault: "Private".into(),
                item: "AWS".into()
            }
        );
        assert_eq!(
            Source::parse("openbao:totp/code/me").unwrap(),
            Source::OpenBao("totp/code/me".into())
        );
        assert!(Source::parse("sms").is_err());
        assert!(Source::parse("op:novault").is_err());
    }
}
