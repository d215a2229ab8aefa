//! The command line: clap definitions and dispatch, nothing else.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::cmd;

#[derive(Parser)]
#[command(
    name = "awsmfa",
    version,
    about = "MFA-protected, cached AWS sessions for OpenTofu and Terragrunt — credentials only ever in the child process",
    propagate_version = true
)]
pub struct Cli {
    /// Say what awsmfa is doing (on stderr; never secrets). AWSMFA_LOG=1 does the same.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Store a profile's long-lived IAM key in the OS keyring
    Add {
        profile: String,
        /// Read AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead of asking
        #[arg(long)]
        from_env: bool,
    },
    /// Delete a profile's stored key and cached sessions
    Remove {
        profile: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Profiles, where their keys and MFA codes come from, and session time left
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run a command with the profile's session in its environment
    Exec {
        /// The profile; defaults to the one mapped to the current directory's root
        profile: Option<String>,
        /// Session length for this profile, e.g. 2h (STS allows 15m–36h; roles ≤ 1h)
        #[arg(long, value_name = "D")]
        duration: Option<String>,
        /// Do not run the root's secrets manager (Doppler, Infisical)
        #[arg(long)]
        no_secrets: bool,
        /// Internal: the awsmfa that a secrets manager runs, innermost in the chain
        #[arg(long, hide = true)]
        chained: bool,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Print the session as AWS credential_process JSON (for ~/.aws/config)
    CredentialProcess { profile: String },
    /// Drop cached sessions (all, or one profile's)
    Clear { profile: Option<String> },
    /// What applies in the current directory: root, profile, secrets, session
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check the setup and say what to fix
    Doctor,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Add { profile, from_env } => cmd::add(&profile, from_env),
        Command::Remove { profile, yes } => cmd::remove(&profile, yes),
        Command::List { json } => cmd::list(json),
        Command::Exec {
            profile,
            duration,
            no_secrets,
            chained,
            command,
        } => cmd::exec(cmd::ExecArgs {
            profile: profile.as_deref(),
            duration: duration.as_deref(),
            no_secrets,
            chained,
            argv: &command,
        }),
        Command::CredentialProcess { profile } => cmd::credential_process(&profile),
        Command::Clear { profile } => cmd::clear(profile.as_deref()),
        Command::Status { json } => cmd::status(json),
        Command::Doctor => cmd::doctor(),
    }
}
