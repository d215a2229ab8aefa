//! `hook-env`: run by the shell hook on every directory change. The shell passes
//! a digest of what it last applied in `__AWSMFA_STATE`; when the same root,
//! profile and wrapped commands apply, nothing is printed. Otherwise it prints
//! code that calls the hook script's `__awsmfa_leave` (which removes the
//! wrappers the shell itself recorded in `__awsmfa_wrapped`), then sets up the
//! new root.
//!
//! Directory names and repository files are anyone's: nothing read from them is
//! ever spliced into code. The state is a hex digest that is only compared;
//! values are quoted for their shell; the only words in code position are
//! wrapped command names, which are checked against `names::is_command_name`
//! here, whatever config.toml said.

use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;

use sha2::{Digest, Sha256};

use super::Shell;
use crate::config::{Settings, names};
use crate::roots::{self, Note};
use crate::{log, state};

/// What the shell applies inside a root.
#[derive(Debug, PartialEq, Eq)]
struct Applied<'a> {
    profile: &'a str,
    wrap: Vec<&'a str>,
    refresh_secs: u64,
}

pub fn hook_env(shell: Shell) -> anyhow::Result<()> {
    let previous = std::env::var_os("__AWSMFA_STATE").unwrap_or_default();
    let settings = Settings::load()?;
    let cwd = std::env::current_dir()?;
    let lookup = roots::lookup(&cwd, &settings);
    let applied = lookup.found.as_ref().map(|found| Applied {
        profile: &found.root.profile,
        wrap: settings
            .wrap
            .iter()
            .map(String::as_str)
            .filter(|w| names::is_command_name(w))
            .collect(),
        refresh_secs: settings.refresh_before.as_secs(),
    });
    let digest = state_digest(
        lookup.found.as_ref().map(|f| f.dir.as_os_str().as_bytes()),
        applied.as_ref(),
        &lookup.notes,
    );
    if previous.as_bytes() == digest.as_bytes() {
        return Ok(());
    }
    // Said once per change of what applies, like direnv's "is blocked".
    for note in &lookup.notes {
        match note {
            Note::NotAllowed { .. } => log::info(note.message()),
            Note::Ignored { .. } => log::warn(note.message()),
        }
    }
    let mut out = String::new();
    if !previous.is_empty() {
        out.push_str("__awsmfa_leave\n");
    }
    if let Some(applied) = &applied {
        enter(shell, applied, &mut out);
    }
    set_var(shell, "__awsmfa_state", &digest, &mut out);
    print!("{out}");
    Ok(())
}

/// Empty when nothing applies and nothing is to be said (the shell's starting
/// state), else a digest of everything that decides the output.
fn state_digest(dir: Option<&[u8]>, applied: Option<&Applied>, notes: &[Note]) -> String {
    if applied.is_none() && notes.is_empty() {
        return String::new();
    }
    let mut h = Sha256::new();
    let mut put = |field: &[u8]| {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field);
    };
    put(b"v2");
    put(dir.unwrap_or_default());
    if let Some(a) = applied {
        put(a.profile.as_bytes());
        put(&a.refresh_secs.to_le_bytes());
        for w in &a.wrap {
            put(w.as_bytes());
        }
    }
    for note in notes {
        put(note.file().as_os_str().as_bytes());
        put(note.state().as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn set_var(shell: Shell, name: &str, value: &str, out: &mut String) {
    let value = shell.quote(value);
    let _ = match shell {
        Shell::Zsh => writeln!(out, "typeset -g {name}={value}"),
        Shell::Bash => writeln!(out, "{name}={value}"),
        Shell::Fish => writeln!(out, "set -g {name} {value}"),
    };
}

fn enter(shell: Shell, new: &Applied, out: &mut String) {
    let session_file = state::session_file(new.profile);
    set_var(shell, "__awsmfa_profile", new.profile, out);
    set_var(
        shell,
        "__awsmfa_session_file",
        &session_file.to_string_lossy(),
        out,
    );
    set_var(
        shell,
        "__awsmfa_refresh",
        &new.refresh_secs.to_string(),
        out,
    );
    let list: Vec<String> = new.wrap.iter().map(|w| shell.quote(w)).collect();
    let list = list.join(" ");
    let _ = match shell {
        Shell::Zsh => writeln!(out, "typeset -ga __awsmfa_wrapped=({list})"),
        Shell::Bash => writeln!(out, "__awsmfa_wrapped=({list})"),
        // fish defines each wrapper from the list itself (`function $name`).
        Shell::Fish => writeln!(out, "set -g __awsmfa_wrapped {list}\n__awsmfa_enter"),
    };
    if shell == Shell::Fish {
        return;
    }
    for cmd in &new.wrap {
        // `function NAME {` rather than `NAME() {`: an alias of the same name is
        // not expanded in the definition, so it cannot break it. `cmd` passed
        // is_command_name: a plain word, safe in code position.
        let quoted = shell.quote(cmd);
        let _ = writeln!(
            out,
            "__awsmfa_save {quoted}\nfunction {cmd} {{ \"$__awsmfa_bin\" exec -- {quoted} \"$@\"; }}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied() -> Applied<'static> {
        Applied {
            profile: "tf-x",
            wrap: vec!["terragrunt", "tofu"],
            refresh_secs: 900,
        }
    }

    #[test]
    fn state_is_empty_outside_and_changes_with_what_applies() {
        assert_eq!(state_digest(None, None, &[]), "");
        let a = state_digest(Some(b"/r"), Some(&applied()), &[]);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, state_digest(Some(b"/r"), Some(&applied()), &[]));
        assert_ne!(a, state_digest(Some(b"/r2"), Some(&applied()), &[]));
        let mut b = applied();
        b.wrap.pop();
        assert_ne!(a, state_digest(Some(b"/r"), Some(&b), &[]));
        let note = Note::Ignored {
            file: "/x/.awsmfa.toml".into(),
            why: "w".into(),
        };
        assert_ne!(state_digest(None, None, &[note]), "");
    }

    #[test]
    fn renders_quoted_values_and_validated_names() {
        let mut out = String::new();
        enter(Shell::Bash, &applied(), &mut out);
        assert!(out.contains("__awsmfa_profile='tf-x'\n"), "{out}");
        assert!(
            out.contains("__awsmfa_wrapped=('terragrunt' 'tofu')\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "__awsmfa_save 'tofu'\nfunction tofu { \"$__awsmfa_bin\" exec -- 'tofu' \"$@\"; }"
            ),
            "{out}"
        );
        let mut out = String::new();
        enter(Shell::Fish, &applied(), &mut out);
        assert!(
            out.contains("set -g __awsmfa_wrapped 'terragrunt' 'tofu'\n__awsmfa_enter\n"),
            "{out}"
        );
        assert!(!out.contains("function"), "{out}");
    }
}
