//! The `awsmfa` binary: parses the command line and dispatches into the
//! library, then turns the outcome into an exit code and a message.

use std::process::ExitCode;

use awsmfa::{Exit, cli, log, shell};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when a reader goes away (`awsmfa list |
    // head -1`) instead of failing on EPIPE; commands run by `exec` inherit the
    // default disposition they expect.
    // SAFETY: no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if let Some(result) = cli::fast_path() {
        return finish(result);
    }
    // At <TAB>, the shell runs `_AWSMFA_COMPLETE=<shell> awsmfa -- words…`; this
    // answers and exits (with no words, it prints the code that registers the
    // completion: shell/complete.rs). A private variable name, and only with
    // that `--` first: the environment alone (a common `COMPLETE`, or a secrets
    // manager setting anything it likes for the inner awsmfa of a chain) must
    // never turn a real command into a completion printer that exits 0 without
    // running it.
    if std::env::args_os().nth(1).is_some_and(|a| a == "--") {
        clap_complete::CompleteEnv::with_factory(cli::Cli::command)
            .var(shell::COMPLETE_VAR)
            .shells(shell::COMPLETERS)
            .complete();
    }
    let cli = cli::Cli::parse();
    log::init(cli.verbose);
    finish(cli::run(cli))
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let exit = e.downcast_ref::<Exit>();
            let code = exit.map_or(1, |x| x.code);
            // A command's own exit status (`exec --server`) carries no message.
            if exit.is_none_or(|x| !x.message.is_empty()) {
                log::error(format_args!("{e:#}"));
            }
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
