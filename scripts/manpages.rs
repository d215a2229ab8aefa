//! `cargo run --example manpages -- DIR`: writes awsmfa(1) and a page per
//! subcommand (awsmfa-exec(1), …) into DIR, from the clap definitions, for
//! scripts/package. What clap cannot say (files, environment, exit status) is
//! written here by hand, from README.md and the code that reads them.
//!
//! An example target rather than build.rs or a flag of the binary: it links
//! the library for `Cli::command()` (a build script cannot see the crate it
//! builds), and clap_mangen stays a dev-dependency, out of the shipped binary.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use awsmfa::cli::Cli;
use clap::CommandFactory;
use clap_mangen::Man;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example manpages -- DIR");
        std::process::exit(2);
    };
    fs::create_dir_all(&dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_page(&dir, &cmd, MAIN_SECTIONS)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(&dir, sub, SUBCOMMAND_SECTIONS)?;
    }
    Ok(())
}

/// clap's sections, then `extra` (roff) before VERSION, where man-pages(7)
/// puts EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.
fn write_page(dir: &Path, cmd: &clap::Command, extra: &str) -> std::io::Result<()> {
    let source = format!("awsmfa {}", cmd.get_version().unwrap_or_default());
    let man = Man::new(cmd.clone()).source(source).manual("awsmfa manual");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    page.write_all(extra.as_bytes())?;
    man.render_version_section(&mut page)?;
    fs::write(path, page)
}

const SUBCOMMAND_SECTIONS: &str = r#".SH "SEE ALSO"
\fBawsmfa\fR(1): configuration files, environment variables and exit status.
"#;

const MAIN_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
An error; the message on stderr says what went wrong, where (file and line for
configuration), and what to do next.
.TP
\fB2\fR
A usage error.
.TP
\fBexec\fR
The command's own exit status, or 128+N when signal N ended it; 127 when the
command does not exist and 126 when it cannot be run, as a shell would say.
.SH ENVIRONMENT
.TP
\fBAWS_CONFIG_FILE\fR
The AWS configuration file, instead of \fI~/.aws/config\fR.
.TP
\fBAWSMFA_CONFIG\fR
awsmfa's own configuration file, instead of \fI$XDG_CONFIG_HOME/awsmfa/config.toml\fR.
.TP
\fBXDG_CONFIG_HOME\fR, \fBXDG_STATE_HOME\fR, \fBXDG_RUNTIME_DIR\fR
Where the files below live (default \fI~/.config\fR, \fI~/.local/state\fR; no
runtime directory).
.TP
\fBAWS_ENDPOINT_URL_STS\fR, \fBAWS_ENDPOINT_URL\fR
The STS endpoint, before a profile's \fBendpoint_url\fR. It must be https://, or
http:// to loopback only.
.TP
\fBAWS_ENDPOINT_URL_IAM\fR
The IAM endpoint for \fBrotate\fR and key ages, before \fBAWS_ENDPOINT_URL\fR and a
profile's \fBendpoint_url\fR; the same rule as for STS.
.TP
\fBAWS_SHARED_CREDENTIALS_FILE\fR
Never read for keys; only to warn when its [default] profile would shadow an
\fBexec --server\fR endpoint.
.TP
\fBAWS_REGION\fR, \fBAWS_DEFAULT_REGION\fR
The region for a profile that names none.
.TP
\fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR
Read by \fBadd \-\-from\-env\fR only.
.TP
\fBAWSMFA_LOG\fR
\fB1\fR says what awsmfa is doing on stderr, as \fB\-v\fR does, for runs started
by an SDK. It never prints a secret.
.TP
\fBAWSMFA_KEYRING\fR, \fBAWSMFA_SESSION_KEYRING\fR
The store for long-lived keys (and for sessions): \fBkeyutils\fR,
\fBsecret-service\fR, \fBkeychain\fR or \fBwindows\fR. By default the Secret
Service when a desktop session bus (\fBDBUS_SESSION_BUS_ADDRESS\fR) offers one,
else the kernel keyring.
.TP
\fBAWSMFA_KEYRING_SERVICE\fR
The service name of awsmfa's keyring entries (default \fBawsmfa\fR).
.TP
\fBAWSMFA_TOOL_TIMEOUT\fR
Seconds an MFA or key tool (ykman, op, an \fBmfa_process\fR) may take (default 60).
.TP
\fBAWSMFA_PROMPT_TIMEOUT\fR
Seconds a typed MFA code is waited for (default 120); another awsmfa waiting on
the same profile gives up a quarter later.
.TP
\fBBAO_ADDR\fR, \fBVAULT_ADDR\fR
The OpenBao address (one URL or a comma-separated list of a cluster's nodes) when
config.toml has no \fB[openbao] address\fR.
.TP
\fBBAO_TOKEN\fR, \fBVAULT_TOKEN\fR
An OpenBao token; without one, awsmfa logs in with AppRole.
.TP
\fBAWSMFA_OPENBAO_WRAPPED_SECRET_ID\fR
A response-wrapped AppRole SecretID, unwrapped exactly once.
.TP
\fBAWSMFA_PROFILE\fR
Set by \fBexec\fR for the command it runs: inside it, \fBawsmfa exec\fR for the
same profile runs the command with what it was given.
.TP
\fBAWSMFA_DIRENV_PROFILE\fR
Set by direnv's \fBuse awsmfa\fR: the profile the shims and the prompt use.
.TP
\fB_AWSMFA_COMPLETE\fR
The completion protocol: with a first argument \fB\-\-\fR, awsmfa prints
completion candidates (or, with nothing after it, the shell code that asks for
them) instead of running a command.
.SH FILES
.TP
\fI~/.aws/config\fR
Read, never written. Keys honoured per \fB[profile NAME]\fR: \fBregion\fR,
\fBmfa_serial\fR, \fBrole_arn\fR, \fBsource_profile\fR, \fBexternal_id\fR,
\fBrole_session_name\fR, \fBduration_seconds\fR, \fBmfa_process\fR,
\fBsession_ttl\fR (awsmfa's: 1h by default, 15m\(en36h) and \fBendpoint_url\fR.
\fBcredential_process = awsmfa credential-process PROFILE\fR makes the AWS CLI
and the SDKs use awsmfa's sessions.
.TP
\fI~/.config/awsmfa/config.toml\fR
awsmfa's own configuration, never written by awsmfa: \fBwrap\fR (the commands
wrapped inside a root), \fBrefresh_before\fR, \fB[roots.NAME]\fR (a directory
name or path: \fBprofile\fR, \fBdoppler\fR, \fBinfisical\fR, \fBserver\fR,
\fBmin_remaining\fR), \fB[profiles.NAME]\fR (\fBmfa\fR, \fBkeys\fR,
\fBsource\fR, \fBsession_ttl\fR, \fBkey_fields\fR, \fBykman_device\fR,
\fBserver\fR, \fBmin_remaining\fR) and \fB[openbao]\fR (\fBaddress\fR,
\fBrole_id\fR, \fBsecret_id_file\fR, \fBfailover_wait\fR).
.TP
\fI.awsmfa.toml\fR
A repository's root mapping, with the keys of one \fB[roots.NAME]\fR entry. It
counts only after \fBawsmfa allow\fR, and again after every change; only a
regular file of at most 64 KiB owned by the user (or root) is read.
.TP
\fI~/.local/state/awsmfa/\fR
State that holds no secret: \fIsessions/\fR (expiry and fingerprint, for the
prompt), \fIkeys/\fR, \fIlocks/\fR, \fItotp/\fR (the last 30 s step whose code was
sent per MFA device, never the code), \fIallowed/\fR (\fBallow\fR records),
\fIshims/\fR (direnv's) and \fIrun/\fR (the \fB\-\-server\fR token without a
runtime directory).
.TP
\fI$XDG_RUNTIME_DIR/awsmfa/\fR
The \fBexec \-\-server\fR token file (0600), removed when awsmfa exits.
.TP
\fI/usr/share/awsmfa/direnv.sh\fR
The direnv library that defines \fBuse awsmfa\fR (in the Debian package; what
\fBawsmfa direnv\fR prints, calling the awsmfa on PATH).
.PP
Long-lived keys and sessions are kept in the OS keyring (or fetched from
1Password or OpenBao), never in a file.
.SH "SEE ALSO"
\fBaws\fR(1), \fBdirenv\fR(1); \fBawsmfa\-COMMAND\fR(1) for each command above.
"#;
