//! `hook-env`: run by the shell hook on every directory change. The shell passes
//! what it last applied in `__AWSMFA_STATE`; when the root, profile and wrapped
//! commands are unchanged nothing is printed, otherwise the code that removes the
//! old wrappers and defines the new ones.

use std::fmt::Write;

use super::Shell;
use crate::config::Settings;
use crate::{roots, state};

/// What the shell has applied, as one comparable string.
#[derive(Debug, PartialEq, Eq)]
struct Applied {
    dir: String,
    profile: String,
    wrap: Vec<String>,
    refresh_secs: u64,
}

impl Applied {
    fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.dir,
            self.profile,
            self.wrap.join(" "),
            self.refresh_secs
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.split('\n');
        let dir = lines.next()?.to_string();
        let profile = lines.next()?.to_string();
        let wrap = lines.next()?.split_whitespace().map(String::from).collect();
        let refresh_secs = lines.next()?.parse().ok()?;
        Some(Self {
            dir,
            profile,
            wrap,
            refresh_secs,
        })
    }
}

pub fn hook_env(shell: Shell) -> anyhow::Result<()> {
    let previous = std::env::var("__AWSMFA_STATE").unwrap_or_default();
    let settings = Settings::load()?;
    let cwd = std::env::current_dir()?;
    let current = roots::find(&cwd, &settings)?.map(|found| Applied {
        dir: found.dir.to_string_lossy().into_owned(),
        profile: found.root.profile,
        wrap: settings.wrap.clone(),
        refresh_secs: settings.refresh_before.as_secs(),
    });
    let encoded = current.as_ref().map(Applied::encode).unwrap_or_default();
    if encoded == previous {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(old) = Applied::decode(&previous) {
        leave(shell, &old, &mut out);
    }
    if let Some(new) = &current {
        enter(shell, new, &mut out);
    }
    set_var(shell, "__awsmfa_state", &encoded, &mut out);
    print!("{out}");
    Ok(())
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
    let session_file = state::session_file(&new.profile);
    set_var(shell, "__awsmfa_profile", &new.profile, out);
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
    // Command names are validated when config.toml is read: safe as function names.
    for cmd in &new.wrap {
        save_user_function(shell, cmd, out);
        let _ = match shell {
            // `function NAME {` rather than `NAME() {`: an alias of the same name is
            // not expanded in the definition, so it cannot break it.
            Shell::Zsh | Shell::Bash => writeln!(
                out,
                "function {cmd} {{ \"$__awsmfa_bin\" exec -- {cmd} \"$@\"; }}"
            ),
            Shell::Fish => writeln!(
                out,
                "function {cmd} --wraps {cmd} --description 'awsmfa: {cmd} under {}'\n    $__awsmfa_bin exec -- {cmd} $argv\nend",
                new.profile.replace(['\'', '\\'], "")
            ),
        };
    }
}

fn leave(shell: Shell, old: &Applied, out: &mut String) {
    let vars = "__awsmfa_profile __awsmfa_session_file __awsmfa_refresh";
    let cmds = old.wrap.join(" ");
    let _ = match shell {
        Shell::Zsh | Shell::Bash if cmds.is_empty() => writeln!(out, "unset {vars}"),
        Shell::Zsh | Shell::Bash => writeln!(out, "unset -f {cmds} 2>/dev/null\nunset {vars}"),
        Shell::Fish if cmds.is_empty() => writeln!(out, "set -e {vars}"),
        Shell::Fish => writeln!(out, "functions -e {cmds}\nset -e {vars}"),
    };
    for cmd in &old.wrap {
        restore_user_function(shell, cmd, out);
    }
}

/// The user's own function of a wrapped command's name (a personal `tofu`
/// wrapper, fish's autoloaded `tofu.fish`) is kept as `__awsmfa_saved_NAME`
/// while inside a root, and put back on leaving instead of being lost. awsmfa's
/// own wrapper (left over after re-sourcing the rc file) is never saved.
fn save_user_function(shell: Shell, cmd: &str, out: &mut String) {
    let ours = "\"$__awsmfa_bin\" exec -- ";
    let _ = match shell {
        Shell::Bash => writeln!(
            out,
            "if declare -F {cmd} >/dev/null && ! declare -F __awsmfa_saved_{cmd} >/dev/null; then\n  \
             __awsmfa_def=$(declare -f {cmd})\n  \
             [[ $__awsmfa_def == *'{ours}'* ]] || eval \"function __awsmfa_saved_$__awsmfa_def\"\n  \
             unset __awsmfa_def\nfi"
        ),
        Shell::Zsh => writeln!(
            out,
            "if (( ${{+functions[{cmd}]}} && ! ${{+functions[__awsmfa_saved_{cmd}]}} )) \
             && [[ $functions[{cmd}] != *'{ours}'* ]]; then\n  \
             functions[__awsmfa_saved_{cmd}]=$functions[{cmd}]\nfi"
        ),
        Shell::Fish => writeln!(
            out,
            "if functions -q {cmd}; and not functions -q __awsmfa_saved_{cmd}\n    \
             and not functions {cmd} | string match -q '*$__awsmfa_bin exec -- *'\n    \
             functions -c {cmd} __awsmfa_saved_{cmd}\nend"
        ),
    };
}

fn restore_user_function(shell: Shell, cmd: &str, out: &mut String) {
    let _ = match shell {
        Shell::Bash => writeln!(
            out,
            "if declare -F __awsmfa_saved_{cmd} >/dev/null; then\n  \
             __awsmfa_def=$(declare -f __awsmfa_saved_{cmd})\n  \
             eval \"function ${{__awsmfa_def#__awsmfa_saved_}}\"\n  \
             unset -f __awsmfa_saved_{cmd}\n  unset __awsmfa_def\nfi"
        ),
        Shell::Zsh => writeln!(
            out,
            "if (( ${{+functions[__awsmfa_saved_{cmd}]}} )); then\n  \
             functions[{cmd}]=$functions[__awsmfa_saved_{cmd}]\n  \
             unset -f __awsmfa_saved_{cmd}\nfi"
        ),
        Shell::Fish => writeln!(
            out,
            "if functions -q __awsmfa_saved_{cmd}\n    \
             functions -c __awsmfa_saved_{cmd} {cmd}\n    \
             functions -e __awsmfa_saved_{cmd}\nend"
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let a = Applied {
            dir: "/home/me/src/tofu-proxmox".into(),
            profile: "tf-proxmox".into(),
            wrap: vec!["terragrunt".into(), "tofu".into()],
            refresh_secs: 900,
        };
        assert_eq!(Applied::decode(&a.encode()), Some(a));
        assert_eq!(Applied::decode(""), None);
    }

    #[test]
    fn renders_wrappers_and_removal() {
        let a = Applied {
            dir: "/r".into(),
            profile: "p'x".into(),
            wrap: vec!["tofu".into()],
            refresh_secs: 60,
        };
        let mut out = String::new();
        enter(Shell::Bash, &a, &mut out);
        assert!(out.contains("__awsmfa_profile='p'\\''x'"), "{out}");
        assert!(
            out.contains("function tofu { \"$__awsmfa_bin\" exec -- tofu \"$@\"; }"),
            "{out}"
        );
        // The user's own `tofu` is saved before the wrapper replaces it...
        let save = out
            .find("__awsmfa_saved_tofu")
            .expect("saves a user function");
        assert!(save < out.find("function tofu {").unwrap(), "{out}");
        let mut out = String::new();
        leave(Shell::Fish, &a, &mut out);
        assert!(out.starts_with("functions -e tofu\n"), "{out}");
        // ...and put back after the wrapper is gone.
        assert!(
            out.contains("functions -c __awsmfa_saved_tofu tofu\n"),
            "{out}"
        );
    }
}
