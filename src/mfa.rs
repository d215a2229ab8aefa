//! Where MFA codes come from: the terminal, or a command (`mfa_process`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::tty::Tty;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Typed at `/dev/tty`.
    Prompt,
    /// `sh -c CMD`; its stdout is the code.
    Process(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Prompt => "prompt".into(),
            Source::Process(_) => "process".into(),
        }
    }

    /// `prompt` or `process:CMD`, as written in config.toml.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text.split_once(':') {
            _ if text == "prompt" => Ok(Source::Prompt),
            Some(("process", cmd)) if !cmd.trim().is_empty() => Ok(Source::Process(cmd.into())),
            _ => bail!("unknown MFA source `{text}`; expected `prompt` or `process:COMMAND`"),
        }
    }
}

/// What the code is for, for the prompt text and messages.
pub struct Request<'a> {
    pub profile: &'a str,
    pub serial: &'a str,
    /// 1 for the first try; later tries say the previous code was rejected.
    pub attempt: u32,
}

pub const MAX_ATTEMPTS: u32 = 3;
/// ykman waits ~15 s for a touch; 1Password for a biometric approval. A minute
/// covers a person, and still ends a command that would hang forever.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

pub fn code(sources: &[Source], req: &Request) -> anyhow::Result<SecretString> {
    let mut errors = Vec::new();
    for source in sources {
        let result = match source {
            Source::Prompt => from_prompt(req),
            Source::Process(cmd) => from_process(cmd, req),
        };
        match result {
            Ok(code) => return Ok(code),
            Err(e) => errors.push(format!("{}: {e:#}", source.describe())),
        }
    }
    Err(anyhow!(
        "no MFA code for profile {} ({})\n  {}",
        req.profile,
        req.serial,
        errors.join("\n  ")
    ))
}

fn from_prompt(req: &Request) -> anyhow::Result<SecretString> {
    let mut tty = Tty::open().map_err(|_| {
        anyhow!(
            "there is no terminal to type it at; set `mfa_process = COMMAND` in [profile {}] \
             (e.g. `ykman oath accounts code --single NAME`), or run `awsmfa exec {} -- true` in a terminal first",
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
    let tty = Tty::open().ok();
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd).stdout(Stdio::piped());
    // "Touch your YubiKey" must reach the person even when the SDK captures our
    // stderr, and a tool that reads a PIN needs the terminal as its stdin.
    match &tty {
        Some(t) => {
            command.stdin(t.file()?).stderr(t.file()?);
        }
        None => {
            command.stdin(Stdio::null());
        }
    }
    for var in crate::exec::CREDENTIAL_VARS {
        command.env_remove(var);
    }
    crate::debug!("running mfa_process for {}", req.profile);
    let mut child = command
        .spawn()
        .with_context(|| "cannot start `sh` to run mfa_process".to_string())?;
    let mut stdout = child.stdout.take().context("mfa_process has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Zeroizing::new(Vec::new());
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > PROCESS_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "mfa_process for profile {} did not finish within {}s and was stopped",
                req.profile,
                PROCESS_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow!("reading mfa_process output failed"))?;
    if !status.success() {
        bail!(
            "mfa_process for profile {} failed ({status}); run it by hand to see why",
            req.profile
        );
    }
    let text = std::str::from_utf8(&out).unwrap_or("").trim();
    if !is_code(text) {
        // Its output is not shown: it may be a code, or worse.
        bail!(
            "mfa_process for profile {} printed something other than a 6-digit code",
            req.profile
        );
    }
    Ok(SecretString::from(text.to_string()))
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
        assert!(Source::parse("sms").is_err());
    }
}
