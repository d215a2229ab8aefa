//! `mfa_process = CMD` in ~/.aws/config, or `mfa = "process:CMD"`: `sh -c CMD`,
//! whose stdout is the code.

use std::process::Command;
use std::sync::Arc;

use anyhow::bail;
use secrecy::SecretString;

use super::{MfaSource, Request, Source};
use crate::health::Health;
use crate::{paths, tool};

#[derive(Debug)]
pub(super) struct Process {
    cmd: String,
}

impl Process {
    pub(super) fn new(cmd: &str) -> Self {
        Process {
            cmd: cmd.to_string(),
        }
    }
}

pub(super) fn parse(rest: Option<&str>) -> anyhow::Result<Option<Source>> {
    Ok(rest
        .filter(|cmd| !cmd.is_empty())
        .map(|cmd| Arc::new(Process::new(cmd)) as Source))
}

impl MfaSource for Process {
    fn describe(&self) -> String {
        "process".into()
    }

    fn blame(&self) -> String {
        "mfa_process".into()
    }

    fn code(&self, req: &Request, _attempt: u32) -> anyhow::Result<SecretString> {
        crate::debug!("running mfa_process for {}", req.profile);
        let mut command = Command::new("sh");
        command.arg("-c").arg(&self.cmd);
        let out = tool::run(command, &format!("mfa_process for profile {}", req.profile))?;
        if !out.status.success() {
            bail!(
                "mfa_process for profile {} failed ({}); run it by hand to see why",
                req.profile,
                out.status
            );
        }
        Ok(out.stdout_secret())
    }

    fn health(&self, _req: &Request) -> Health {
        let program = self.cmd.split_whitespace().next().unwrap_or("");
        if paths::which(program).is_some() {
            Health::Ok(format!("mfa_process `{program}` found"))
        } else {
            Health::fail(
                format!("mfa_process `{program}` is not on PATH"),
                "install it or fix mfa_process",
            )
        }
    }
}
