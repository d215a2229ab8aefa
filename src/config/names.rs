//! Which names awsmfa accepts from configuration. Profile names and wrapped
//! commands end up in shell code (function names, quoted values), the prompt,
//! file names and argv: a name from a cloned repository's `.awsmfa.toml` is
//! attacker-chosen, so each kind of name is held to a small character set here,
//! once, and everything downstream relies on it.

/// Long enough for any IAM-style name; short enough for a prompt.
const MAX_LEN: usize = 128;

/// IAM's own character set for names: `[A-Za-z0-9_.@+=,-]+`. No quote, no `$`,
/// no `%` (a prompt escape), no whitespace or control character.
pub fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'+' | b'=' | b',' | b'-')
        })
}

pub const PROFILE_RULE: &str = "letters, digits and _ . @ + = , - (IAM's set)";

/// A command the hooks define a function for: `[A-Za-z0-9_.+-]+`, not an option
/// and not a word the hooks or the shells themselves rely on.
pub fn is_command_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
        && !name.starts_with("__awsmfa")
        && !RESERVED.contains(&name)
}

pub const COMMAND_RULE: &str =
    "letters, digits and _ . + -, not starting with -, and not a shell builtin or keyword";

/// Builtins and keywords of bash, zsh and fish (and the commands their hooks
/// call): a wrapper by one of these names would change how the hook itself, or
/// the shell, works.
const RESERVED: &[&str] = &[
    ".",
    "[",
    "[[",
    "alias",
    "and",
    "autoload",
    "awsmfa",
    "begin",
    "bg",
    "bind",
    "break",
    "builtin",
    "case",
    "cd",
    "command",
    "compdef",
    "complete",
    "continue",
    "declare",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "emulate",
    "end",
    "env",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "functions",
    "getopts",
    "hash",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "mapfile",
    "not",
    "or",
    "popd",
    "print",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readonly",
    "return",
    "select",
    "set",
    "setopt",
    "shift",
    "source",
    "status",
    "string",
    "test",
    "then",
    "time",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unfunction",
    "unset",
    "until",
    "wait",
    "while",
    "zmodload",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names() {
        for ok in ["tf-proxmox", "a@b=c,d+e.f_g", "DEV01"] {
            assert!(is_profile_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a\nb",
            "a\tb",
            "x;y",
            "$(id)",
            "`id`",
            "a'b",
            "a%b",
            "a/b",
            "é",
            "a\u{1b}[31m",
        ] {
            assert!(!is_profile_name(bad), "{bad:?}");
        }
        assert!(!is_profile_name(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn command_names() {
        for ok in ["tofu", "terragrunt", "terraform1.5", "tg+", "make_x"] {
            assert!(is_command_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-v",
            "rm -rf",
            "a;b",
            "cd",
            "unset",
            "eval",
            "functions",
            "__awsmfa_hook",
            "a/b",
            "x\ny",
        ] {
            assert!(!is_command_name(bad), "{bad:?}");
        }
    }
}
