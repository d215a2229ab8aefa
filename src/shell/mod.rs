//! Shell integration: `init` scripts (kept as files under `shell/`), the `cd`
//! hook, the prompt segment, and the direnv library with its shims. Nothing
//! here touches a secret, the keyring or the network.

mod complete;
mod direnv;
mod hook;
mod prompt;

pub use complete::{COMPLETE_VAR, COMPLETERS};
pub use direnv::{library as direnv_library, shim, shims};
pub use hook::hook_env;
pub use prompt::prompt;

use std::path::PathBuf;

use clap::ValueEnum;

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
    // The same registration `_AWSMFA_COMPLETE=SHELL awsmfa --` prints, asking
    // this binary for candidates at each <TAB>.
    if let Some(completer) = COMPLETERS.completer(shell.name()) {
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
