//! Running the command: credentials go into the child's environment and nowhere
//! else, then awsmfa replaces itself with the command (execve), so signals reach
//! it directly and its exit status is the caller's. Along the secrets-manager
//! chain the session reaches the inner awsmfa through `handover`.

mod handover;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use secrecy::ExposeSecret;

use crate::creds::Creds;
use crate::{Exit, time};

pub use handover::{Received, receive as receive_handover, send as send_handover};

/// Set in the child: the profile it runs under. Its presence with credentials
/// marks "inside awsmfa exec" (the nesting guard).
pub const PROFILE_VAR: &str = "AWSMFA_PROFILE";

pub use crate::creds::CREDENTIAL_VARS;

/// The profile of the awsmfa exec we are running inside, if any.
pub fn enclosing_profile() -> Option<String> {
    let profile = std::env::var(PROFILE_VAR).ok().filter(|p| !p.is_empty())?;
    // A stray AWSMFA_PROFILE without the credentials it names is not a session to reuse.
    let has_creds = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .iter()
    .all(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    has_creds.then_some(profile)
}

/// The environment changes for a child of `profile`.
pub fn child_env(cmd: &mut Command, profile: &str, region: Option<&str>, creds: &Creds) {
    for var in CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            creds.secret_access_key.expose_secret(),
        )
        .env("AWS_SESSION_TOKEN", creds.session_token.expose_secret())
        .env("AWS_CREDENTIAL_EXPIRATION", time::rfc3339(creds.expiration))
        .env(PROFILE_VAR, profile);
    if let Some(region) = region {
        cmd.env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region);
    }
}

pub fn command(argv: &[OsString]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// Replaces this process with `cmd`. Returns only on failure, with the exit
/// code a shell would use: 127 not found, 126 not executable.
pub fn replace_with(mut cmd: Command) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let err = cmd.exec();
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    Exit {
        code,
        message: format!("cannot run `{program}`: {err}"),
    }
    .into()
}
