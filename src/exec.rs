//! Running the command: credentials go into the child's environment and nowhere
//! else, then awsmfa replaces itself with the command (execve), so signals reach
//! it directly and its exit status is the caller's. Under `exec --server` the
//! child gets the endpoint instead and awsmfa stays its parent (`supervise`).
//! Along the secrets-manager chain the session, or the endpoint, reaches the
//! inner awsmfa through `handover`.

mod handover;
mod supervise;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use secrecy::ExposeSecret;

use crate::creds::{CONTAINER_VARS, ContainerEndpoint, Creds};
use crate::{Exit, time};

pub use handover::{
    Handed, Received, receive as receive_handover, send as send_handover,
    send_endpoint as send_endpoint_handover,
};
pub use supervise::{Running, Supervisor, arm as supervise};

/// Set in the child: the profile it runs under. Its presence with credentials,
/// or with the endpoint of `exec --server`, marks "inside awsmfa exec" (the
/// nesting guard).
pub const PROFILE_VAR: &str = "AWSMFA_PROFILE";

pub use crate::creds::CREDENTIAL_VARS;

/// The profile of the awsmfa exec we are running inside, if any.
pub fn enclosing_profile() -> Option<String> {
    let profile = std::env::var(PROFILE_VAR).ok().filter(|p| !p.is_empty())?;
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    // A stray AWSMFA_PROFILE without the credentials it names is not a session to reuse.
    let has_creds = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .iter()
    .all(|v| set(v));
    // Nor is it without a way to reach the endpoint: the URI and a token.
    let has_endpoint = set(FULL_URI)
        && (set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            || set("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    (has_creds || has_endpoint).then_some(profile)
}

const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";

/// The environment changes for a child of `profile`.
pub fn child_env(cmd: &mut Command, profile: &str, region: Option<&str>, creds: &Creds) {
    clear_inherited(cmd);
    cmd.env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            creds.secret_access_key.expose_secret(),
        )
        .env("AWS_SESSION_TOKEN", creds.session_token.expose_secret())
        .env("AWS_CREDENTIAL_EXPIRATION", time::rfc3339(creds.expiration));
    common_env(cmd, profile, region);
}

/// The environment changes for a child of `profile` under `exec --server`:
/// the endpoint and its token, and no credential variable or profile, which
/// every SDK would try before the container provider.
pub fn endpoint_env(
    cmd: &mut Command,
    profile: &str,
    region: Option<&str>,
    endpoint: &ContainerEndpoint,
) {
    clear_inherited(cmd);
    // The file is re-read on every fetch and wins; the variable is for the SDKs
    // that know only it (Go SDK v1: Terraform <= 1.5's S3 backend).
    cmd.env(FULL_URI, &endpoint.url)
        .env(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            &endpoint.token_file,
        )
        .env(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            endpoint.token.expose_secret(),
        );
    common_env(cmd, profile, region);
}

fn clear_inherited(cmd: &mut Command) {
    for var in CREDENTIAL_VARS.iter().chain(CONTAINER_VARS) {
        cmd.env_remove(var);
    }
}

fn common_env(cmd: &mut Command, profile: &str, region: Option<&str>) {
    cmd.env(PROFILE_VAR, profile);
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
    crate::coredump::restore_on_exec(&mut cmd);
    let err = cmd.exec();
    // Still awsmfa, with the command's secrets in memory.
    crate::coredump::disable();
    cannot_run(&cmd, &err)
}

/// Why `cmd` did not start, with the exit code a shell would use.
fn cannot_run(cmd: &Command, err: &std::io::Error) -> anyhow::Error {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    Exit {
        code,
        message: format!(
            "cannot run `{}`: {err}",
            cmd.get_program().to_string_lossy()
        ),
    }
    .into()
}
