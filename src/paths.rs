//! Where awsmfa's files live. Only non-secret files: configuration, session
//! metadata for the prompt, key stamps and lock files.

use std::env;
use std::path::{Path, PathBuf};

pub fn home() -> PathBuf {
    env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match env::var_os(var) {
        Some(dir) if PathBuf::from(&dir).is_absolute() => PathBuf::from(dir),
        _ => home().join(fallback),
    }
}

/// `~/.aws/config`, or `AWS_CONFIG_FILE`.
pub fn aws_config() -> PathBuf {
    match env::var_os("AWS_CONFIG_FILE") {
        Some(p) if !p.is_empty() => expand_tilde(&p.to_string_lossy()),
        _ => home().join(".aws/config"),
    }
}

/// `~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`. awsmfa never reads
/// keys from it; only whether it would shadow an `exec --server` endpoint.
pub fn aws_credentials() -> PathBuf {
    match env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) if !p.is_empty() => expand_tilde(&p.to_string_lossy()),
        _ => home().join(".aws/credentials"),
    }
}

/// awsmfa's own `config.toml`, or `AWSMFA_CONFIG`.
pub fn awsmfa_config() -> PathBuf {
    match env::var_os("AWSMFA_CONFIG") {
        Some(p) if !p.is_empty() => expand_tilde(&p.to_string_lossy()),
        _ => xdg("XDG_CONFIG_HOME", ".config").join("awsmfa/config.toml"),
    }
}

/// State that must survive a new shell but holds no secret. The session
/// metadata here is what the prompt reads, so it lives in one fixed place
/// rather than in `XDG_RUNTIME_DIR`, which cron jobs and `sudo -u` often lack.
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("awsmfa")
}

/// `XDG_RUNTIME_DIR` when it is set to an absolute path: per-login, memory
/// backed, for files that must not outlive the session.
pub fn runtime_dir() -> Option<PathBuf> {
    env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
}

pub fn expand_tilde(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if path == "~" => home(),
        None => PathBuf::from(path),
    }
}

/// `/home/me/src` → `~/src`, for messages. A directory name is anyone's
/// choice: control characters in it are shown escaped, never sent raw.
pub fn display(path: &Path) -> String {
    let home = home();
    let text = match path.strip_prefix(&home) {
        Ok(rest) if home != Path::new("/") => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    };
    crate::log::printable(&text).into_owned()
}

/// The first executable `program` on PATH (or `program` itself when it names a
/// path), as the `which` crate finds it: `access(X_OK)`, so what the kernel
/// would refuse to run is passed over.
pub fn which(program: &str) -> Option<PathBuf> {
    which::which(program).ok()
}

/// The first executable `program` on PATH, passing over the directory `skip`
/// (awsmfa's own shims, which would otherwise find themselves).
pub fn which_except(program: &str, skip: Option<&Path>) -> Option<PathBuf> {
    let Some(skip) = skip else {
        return which(program);
    };
    if program.contains('/') {
        return which(program);
    }
    let path = env::var_os("PATH")?;
    let kept: Vec<PathBuf> = env::split_paths(&path)
        .filter(|dir| dir.canonicalize().map_or(true, |d| d != skip))
        .collect();
    // An empty list would join to "", which a PATH search reads as the
    // current directory.
    if kept.is_empty() {
        return None;
    }
    let kept = env::join_paths(kept).ok()?;
    match env::current_dir() {
        Ok(cwd) => which::which_in(program, Some(kept), cwd).ok(),
        Err(_) => which::which_in_global(program, Some(kept)).ok()?.next(),
    }
}
