//! awsmfa's non-secret files under `$XDG_STATE_HOME/awsmfa`:
//!
//! - `sessions/<profile>`: `EXPIRY FINGERPRINT` of the profile's cached session,
//!   one line, so the prompt can show the time left with a shell `read` builtin
//!   and never touch the keyring;
//! - `keys/<profile>`: a stamp derived from the stored key's id, which makes the
//!   key part of every session fingerprint without a keyring read on the fast path;
//! - `locks/<profile>.lock`: the minting lock.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::paths;

/// Profile names become file names; anything outside a safe set is escaped so
/// a name like `a/b` cannot walk out of the directory.
pub fn file_name(profile: &str) -> String {
    let mut out = String::with_capacity(profile.len());
    for b in profile.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(b as char),
            b'.' if !out.is_empty() => out.push('.'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn session_file(profile: &str) -> PathBuf {
    paths::state_dir().join("sessions").join(file_name(profile))
}

pub fn key_stamp_file(profile: &str) -> PathBuf {
    paths::state_dir().join("keys").join(file_name(profile))
}

pub fn lock_file(profile: &str) -> PathBuf {
    paths::state_dir()
        .join("locks")
        .join(format!("{}.lock", file_name(profile)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    pub expiry: u64,
    pub fingerprint: String,
}

pub fn read_session(profile: &str) -> Option<SessionMeta> {
    let text = fs::read_to_string(session_file(profile)).ok()?;
    let mut fields = text.split_whitespace();
    let expiry = fields.next()?.parse().ok()?;
    let fingerprint = fields.next()?.to_string();
    Some(SessionMeta {
        expiry,
        fingerprint,
    })
}

pub fn write_session(profile: &str, meta: &SessionMeta) -> anyhow::Result<()> {
    write_atomic(
        &session_file(profile),
        format!("{} {}\n", meta.expiry, meta.fingerprint).as_bytes(),
    )
}

pub fn remove_session(profile: &str) {
    let _ = fs::remove_file(session_file(profile));
}

/// Every profile that has session metadata, for `clear` with no profile.
pub fn session_profiles() -> Vec<String> {
    let Ok(dir) = fs::read_dir(paths::state_dir().join("sessions")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .map(|name| unescape(&name))
        .collect()
}

fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(b) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn read_key_stamp(profile: &str) -> Option<String> {
    let text = fs::read_to_string(key_stamp_file(profile)).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

pub fn write_key_stamp(profile: &str, stamp: &str) -> anyhow::Result<()> {
    write_atomic(&key_stamp_file(profile), format!("{stamp}\n").as_bytes())
}

pub fn remove_key_stamp(profile: &str) {
    let _ = fs::remove_file(key_stamp_file(profile));
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Write-then-rename, so a reader (or a crash) never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("state path has no parent")?;
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("tmp"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_escape_and_round_trip() {
        for name in ["tf-proxmox", "a/b", "..", ".hidden", "é x", "dev.v2"] {
            let f = file_name(name);
            assert!(!f.contains('/') && !f.starts_with('.'), "{f}");
            assert_eq!(unescape(&f), name);
        }
        assert_eq!(file_name("tf-proxmox"), "tf-proxmox");
    }
}
