//! Messages for people, on stderr: stdout belongs to credential_process JSON
//! and to scripts that eval awsmfa's output. Nothing logged here may contain a
//! secret; callers pass names, ARNs, paths and times only.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::names::printable_lines;

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// `-v`, or `AWSMFA_LOG=1` for runs where there is no command line to add
/// `-v` to (credential_process invoked by an SDK).
pub fn init(verbose: bool) {
    let from_env = std::env::var_os("AWSMFA_LOG").is_some_and(|v| !v.is_empty() && v != "0");
    VERBOSE.store(verbose || from_env, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Only with `-v`; the arguments are not even formatted otherwise.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::verbose() {
            $crate::log::info(format_args!($($arg)*));
        }
    };
}

// Messages carry names and paths from files and directories anyone can make:
// their control characters are shown escaped (see `names::printable`).

pub fn info(msg: impl Display) {
    eprintln!("awsmfa: {}", printable_lines(&msg.to_string()));
}

pub fn warn(msg: impl Display) {
    eprintln!("awsmfa: warning: {}", printable_lines(&msg.to_string()));
}

pub fn error(msg: impl Display) {
    eprintln!("awsmfa: error: {}", printable_lines(&msg.to_string()));
}
