//! Shell integration: `init` scripts (kept as files under `shell/`), the `cd`
//! hook, the prompt segment, and the direnv library with its shims. Nothing
//! here touches a secret, the keyring or the network.

mod direnv;
mod hook;
mod prompt;

pub use direnv::{library as direnv_library, shim, shims};
pub use hook::hook_env;
pub use prompt::prompt;

use std::path::PathBuf;

use clap::ValueEnum;

/// The variable the completion scripts set at <TAB> (see `main`): a private
/// name, since the environment alone must never make awsmfa a completer.
pub const COMPLETE_VAR: &str = "_AWSMFA_COMPLETE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Zsh,
    Bash,
    Fish,
}

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Zsh => "zsh",
            Shell::Bash => "bash",
            Shell::Fish => "fish",
        }
    }

    fn quote(self, text: &str) -> String {
        match self {
            Shell::Zsh | Shell::Bash => posix_quote(text),
            Shell::Fish => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }
}

pub fn posix_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The running binary, so hooks call this awsmfa even if PATH changes later.
pub fn self_path() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("awsmfa"))
}

pub fn init(shell: Shell) -> anyhow::Result<()> {
    let template = match shell {
        Shell::Zsh => include_str!("../../shell/zsh/awsmfa.zsh"),
        Shell::Bash => include_str!("../../shell/bash/awsmfa.bash"),
        Shell::Fish => include_str!("../../shell/fish/awsmfa.fish"),
    };
    let bin = self_path();
    let bin = bin.to_string_lossy();
    let mut script = template.replace("@AWSMFA@", &shell.quote(&bin));
    // bash's completion function lives in its script; zsh and fish use clap's
    // registration, which asks this binary for candidates at each <TAB>.
    let shells = clap_complete::env::Shells::builtins();
    let completer = match shell {
        Shell::Bash => None,
        Shell::Zsh | Shell::Fish => shells.completer(shell.name()),
    };
    if let Some(completer) = completer {
        let mut buf = Vec::new();
        completer.write_registration(COMPLETE_VAR, "awsmfa", "awsmfa", &bin, &mut buf)?;
        let registration = String::from_utf8_lossy(&buf);
        if shell == Shell::Zsh {
            // compdef exists only after compinit; without it, skip rather than error.
            script.push_str("\nif (( $+functions[compdef] )); then\n");
            script.push_str(&registration);
            script.push_str("\nfi\n");
        } else {
            script.push('\n');
            script.push_str(&registration);
        }
    }
    print!("{script}");
    Ok(())
}
