//! Messages for people, on stderr: stdout belongs to credential_process JSON
//! and to scripts that eval awsmfa's output. Nothing logged here may contain a
//! secret; callers pass names, ARNs, paths and times only.

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

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
// their control characters are shown escaped (see [`printable`]).

pub fn info(msg: impl Display) {
    eprintln!("awsmfa: {}", printable_lines(&msg.to_string()));
}

pub fn warn(msg: impl Display) {
    eprintln!("awsmfa: warning: {}", printable_lines(&msg.to_string()));
}

pub fn error(msg: impl Display) {
    eprintln!("awsmfa: error: {}", printable_lines(&msg.to_string()));
}

/// Text for a terminal: control characters (escape sequences, newlines in a
/// directory name, a carriage return that rewrites the line) shown as escapes,
/// so a hostile name or path can neither draw on the screen nor fake a message.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape_controls(text, |_| false)
}

/// [`printable`] for a message of several lines: its own line breaks stay.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape_controls(text, |c| c == '\n')
}

/// `a, b or c`, for a message that lists the choices.
pub fn one_of(choices: &[&str]) -> String {
    match choices {
        [] => String::new(),
        [only] => (*only).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn escape_controls(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    // Bidirectional overrides are not control characters to Rust, but they
    // reorder what follows them on screen just as well.
    let escape = |c: char| {
        (c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
            && !keep(c)
    };
    if !text.chars().any(escape) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(printable("~/src/tofu ü"), "~/src/tofu ü");
        assert_eq!(printable("a\nb\u{1b}[2J\r"), "a\\nb\\u{1b}[2J\\r");
        assert_eq!(printable_lines("a\n  b\u{7}"), "a\n  b\\u{7}");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
