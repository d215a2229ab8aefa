//! Completion at <TAB>: the shell asks awsmfa itself for candidates
//! (`_AWSMFA_COMPLETE=SHELL awsmfa -- WORDS…`, answered in `main`), so profile
//! names always come from the current configuration. The code that asks is
//! registered by `init`, and printed by `_AWSMFA_COMPLETE=SHELL awsmfa --`
//! for the completion files a package or plugin manager installs (`shell/`,
//! `completions/`), which therefore work without `init`.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap_complete::env::{EnvCompleter, Fish, Shells, Zsh};

use super::posix_quote;

/// The variable the registered code sets at <TAB> (see `main`): a private
/// name, since the environment alone must never make awsmfa a completer.
pub const COMPLETE_VAR: &str = "_AWSMFA_COMPLETE";

/// clap's registrations for zsh and fish, awsmfa's own for bash.
pub const COMPLETERS: Shells<'static> = Shells(&[&Bash, &Zsh, &Fish]);

/// clap's bash candidates, registered by a function of awsmfa's own: it reads
/// them a line each with `mapfile` (clap's passes them through word splitting
/// and globbing) and falls back to file names (`allow DIR`, `exec -- CMD`).
struct Bash;

impl EnvCompleter for Bash {
    fn name(&self) -> &'static str {
        "bash"
    }

    fn is(&self, name: &str) -> bool {
        name == "bash"
    }

    /// The variable and the command name are awsmfa's own, written in the
    /// script; `completer` is the binary it asks.
    fn write_registration(
        &self,
        _var: &str,
        _name: &str,
        _bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        let script = include_str!("../../shell/bash/complete.bash");
        buf.write_all(
            script
                .replace("@AWSMFA@", &posix_quote(completer))
                .as_bytes(),
        )
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        clap_complete::env::Bash.write_complete(cmd, args, current_dir, buf)
    }
}
