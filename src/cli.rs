//! The command line: clap definitions, dispatch, and the dynamic completers.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::shell::{self, Shell};
use crate::{cmd, config};

#[derive(Parser)]
#[command(
    name = "awsmfa",
    // "0.1.0 (commit 0123abcde)", made by build.rs
    version = env!("AWSMFA_VERSION"),
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
        #[arg(add = profiles())]
        profile: String,
        /// Read AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead of asking
        #[arg(long)]
        from_env: bool,
    },
    /// Delete a profile's stored key and cached sessions
    Remove {
        #[arg(add = profiles())]
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
        #[arg(add = profiles())]
        profile: Option<String>,
        /// Session length for this profile, e.g. 2h (STS allows 15m–36h; roles ≤ 1h)
        #[arg(long, value_name = "D")]
        duration: Option<String>,
        /// Do not run the root's secrets manager (Doppler, Infisical)
        #[arg(long)]
        no_secrets: bool,
        /// Serve the session to the command from a loopback endpoint that refreshes
        /// it, instead of putting it in its environment (for long applies)
        #[arg(long, overrides_with = "no_server")]
        server: bool,
        /// Put the session in the command's environment even where `server = true`
        #[arg(long, overrides_with = "server")]
        no_server: bool,
        /// Mint anew first if less than D of session would be left, e.g. 45m
        #[arg(long, value_name = "D")]
        min_remaining: Option<String>,
        /// Internal: the awsmfa that a secrets manager runs, innermost in the chain
        #[arg(long, hide = true, value_name = "HANDOVER")]
        chained: Option<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Print the session as AWS credential_process JSON (for ~/.aws/config)
    CredentialProcess {
        #[arg(add = profiles())]
        profile: String,
    },
    /// Drop cached sessions (all, or one profile's)
    Clear {
        #[arg(add = profiles())]
        profile: Option<String>,
    },
    /// What applies in the current directory: root, profile, secrets, session
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The prompt segment: "tf-proxmox 42m" inside a mapped root, nothing outside
    Prompt {
        /// Placeholders {profile} and {ttl}
        #[arg(long, value_name = "FMT")]
        format: Option<String>,
    },
    /// The script to eval from your shell's rc file
    Init { shell: Shell },
    /// Called by the shell hook on directory changes
    HookEnv { shell: Shell },
    /// The direnv library that defines `use awsmfa`
    Direnv,
    /// Internal: writes direnv's shims, prints "PROFILE<TAB>DIR"
    #[command(hide = true)]
    Shims { profile: Option<String> },
    /// Trust a repository's .awsmfa.toml, once you have read it (as `direnv allow`)
    Allow {
        /// A directory (its nearest .awsmfa.toml) or the file itself; default: here
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        dir: Option<PathBuf>,
    },
    /// Stop trusting a repository's .awsmfa.toml
    Deny {
        /// A directory (its nearest .awsmfa.toml) or the file itself; default: here
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        dir: Option<PathBuf>,
    },
    /// Check the setup and say what to fix
    Doctor,
    /// Replace a profile's long-lived IAM key with a new one (one MFA code at most)
    #[command(group(clap::ArgGroup::new("which").required(true).args(["profile", "all"])))]
    Rotate {
        #[arg(add = profiles())]
        profile: Option<String>,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        /// Every profile with a key of its own whose key is older than --older-than;
        /// never prompts (for a timer or cron job)
        #[arg(long, requires = "older_than")]
        all: bool,
        /// Only a key older than D, e.g. 90d
        #[arg(long, value_name = "D")]
        older_than: Option<String>,
    },
}

/// Profile names for <TAB>, from ~/.aws/config and config.toml, read at each
/// completion so the list is always current.
fn profiles() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut names: Vec<String> = config::AwsConfig::load()
            .map(|c| c.names().map(String::from).collect())
            .unwrap_or_default();
        if let Ok(settings) = config::Settings::load() {
            names.extend(settings.profiles.keys().cloned());
            names.extend(settings.roots.values().map(|r| r.profile.clone()));
        }
        names.sort();
        names.dedup();
        names.into_iter().map(CompletionCandidate::new).collect()
    })
}

/// Dispatched without building the clap parser. `prompt` and `hook-env` run at
/// every prompt and `cd`, and clap costs a third of their start-up (anything
/// else, flags, `--help`, typos, goes through clap). `shim` must never go
/// through clap: everything after the command name belongs to the wrapped
/// tool, `--version`, `-h`, `-v` and `--` included.
pub fn fast_path() -> Option<anyhow::Result<()>> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == "shim" {
        let name = args.next()?.into_string().ok()?;
        let rest: Vec<OsString> = args.collect();
        crate::log::init(false);
        crate::coredump::disable();
        return Some(cmd::shim(&name, &rest));
    }
    let second = args.next();
    if args.next().is_some() {
        return None;
    }
    match (first.to_str()?, second.as_ref().map(|a| a.to_str())) {
        ("prompt", None) => Some(shell::prompt(None)),
        ("hook-env", Some(Some(name))) => {
            let shell = Shell::from_str(name, false).ok()?;
            Some(shell::hook_env(shell))
        }
        _ => None,
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Every command here may read a key or a session, or will one day: three
    // system calls cost less than deciding which.
    crate::coredump::disable();
    match cli.command {
        Command::Add { profile, from_env } => cmd::add(&profile, from_env),
        Command::Remove { profile, yes } => cmd::remove(&profile, yes),
        Command::List { json } => cmd::list(json),
        Command::Exec {
            profile,
            duration,
            no_secrets,
            server,
            no_server,
            min_remaining,
            chained,
            command,
        } => cmd::exec(cmd::ExecArgs {
            profile: profile.as_deref(),
            duration: duration.as_deref(),
            no_secrets,
            server: match (server, no_server) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            min_remaining: min_remaining.as_deref(),
            chained: chained.as_deref(),
            argv: &command,
        }),
        Command::CredentialProcess { profile } => cmd::credential_process(&profile),
        Command::Clear { profile } => cmd::clear(profile.as_deref()),
        Command::Status { json } => cmd::status(json),
        Command::Prompt { format } => shell::prompt(format.as_deref()),
        Command::Init { shell } => shell::init(shell),
        Command::HookEnv { shell } => shell::hook_env(shell),
        Command::Direnv => {
            print!("{}", shell::direnv_library());
            Ok(())
        }
        Command::Shims { profile } => shell::shims(profile.as_deref()),
        Command::Allow { dir } => cmd::allow(dir.as_deref()),
        Command::Deny { dir } => cmd::deny(dir.as_deref()),
        Command::Doctor => cmd::doctor(),
        Command::Rotate {
            profile,
            yes,
            all,
            older_than,
        } => cmd::rotate(cmd::RotateArgs {
            profile: profile.as_deref(),
            yes,
            all,
            older_than: older_than.as_deref(),
        }),
    }
}
