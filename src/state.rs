//! awsmfa's non-secret files under `$XDG_STATE_HOME/awsmfa`:
//!
//! - `sessions/<profile>`: `EXPIRY FINGERPRINT` of the profile's cached session,
//!   one line, so the prompt can show the time left with a shell `read` builtin
//!   and never touch the keyring;
//! - `keys/<profile>`: a stamp derived from the stored key's id, which makes the
//!   key part of every session fingerprint without a keyring read on the fast path;
//! - `key-age/<profile>`: when IAM created the profile's key, as last found out
//!   (at a mint, or by `rotate`), for `list` and `doctor`;
//! - `locks/<profile>.lock`: the minting lock;
//! - `totp/<mfa serial>`: the last TOTP step (a number, never a code) whose code
//!   went to STS for that MFA device, and `locks/totp/<mfa serial>.lock` around
//!   reading it, getting a code, sending it and recording it.
//!
//! Files here are read without following a symbolic link ([`read_nofollow`]),
//! and written by replacing them whole ([`write_atomic`]), never through a
//! link; a directory awsmfa writes into must be the user's own and closed to
//! group and others ([`create_private_dir`]).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{paths, time};

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

pub fn key_age_file(profile: &str) -> PathBuf {
    paths::state_dir().join("key-age").join(file_name(profile))
}

pub fn lock_file(profile: &str) -> PathBuf {
    paths::state_dir()
        .join("locks")
        .join(format!("{}.lock", file_name(profile)))
}

/// In a directory of its own: a device's serial is not a profile name, and
/// the two must never share a lock file.
pub fn totp_lock_file(serial: &str) -> PathBuf {
    paths::state_dir()
        .join("locks/totp")
        .join(format!("{}.lock", file_name(serial)))
}

pub fn totp_step_file(serial: &str) -> PathBuf {
    paths::state_dir().join("totp").join(file_name(serial))
}

/// The last TOTP step recorded for the device; None without a readable record.
pub fn read_totp_step(serial: &str) -> Option<u64> {
    fs::read_to_string(totp_step_file(serial))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn write_totp_step(serial: &str, step: u64) -> anyhow::Result<()> {
    write_atomic(&totp_step_file(serial), format!("{step}\n").as_bytes())
}

pub fn remove_totp_step(serial: &str) -> anyhow::Result<()> {
    let path = totp_step_file(serial);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    pub expiry: u64,
    pub fingerprint: String,
}

/// The profile's metadata; `None` when absent, unreadable, a symbolic link,
/// or damaged (an expiry no session can have is damage, not a session).
pub fn read_session(profile: &str) -> Option<SessionMeta> {
    let bytes = read_nofollow(&session_file(profile)).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut fields = text.split_whitespace();
    // Written as plain decimal: a sign or a leading zero (which the shells'
    // segments read as octal or refuse) is damage, and shown as such by both.
    let expiry = fields
        .next()
        .filter(|e| e.bytes().all(|b| b.is_ascii_digit()) && !e.starts_with('0'))?
        .parse()
        .ok()
        .filter(|&e| time::plausible(e))?;
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
    let bytes = read_nofollow(&key_stamp_file(profile)).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// What is known of a key's age: `CREATED CHECKED KEY` on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAge {
    /// When IAM created the key (Unix seconds); None when IAM could not be asked.
    pub created: Option<u64>,
    /// When this was found out.
    pub checked: u64,
    /// Which key it is about: a stamp of its id, never the id.
    pub key: String,
}

pub fn read_key_age(profile: &str) -> Option<KeyAge> {
    let bytes = read_nofollow(&key_age_file(profile)).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut fields = text.split_whitespace();
    let created = match fields.next()? {
        "-" => None,
        n => Some(n.parse().ok().filter(|&t| time::plausible(t))?),
    };
    let checked = fields.next()?.parse().ok()?;
    let key = fields.next()?.to_string();
    Some(KeyAge {
        created,
        checked,
        key,
    })
}

pub fn write_key_age(profile: &str, age: &KeyAge) -> anyhow::Result<()> {
    let created = age.created.map_or("-".to_string(), |t| t.to_string());
    write_atomic(
        &key_age_file(profile),
        format!("{created} {} {}\n", age.checked, age.key).as_bytes(),
    )
}

pub fn remove_key_age(profile: &str) {
    let _ = fs::remove_file(key_age_file(profile));
}

/// The most a state file is read to: they hold one line.
const MAX_READ: u64 = 64 * 1024;

/// The contents of a file in the state directory, never through a symbolic
/// link (`O_NOFOLLOW`: a link there is not awsmfa's and fails the read) nor
/// from a FIFO that would block the prompt (`O_NONBLOCK`), and at most
/// [`MAX_READ`] bytes. No more system calls than `fs::read`: the prompt's
/// budget is counted in them.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    // Room for the usual line up front: one read fills it, one sees the end.
    let mut bytes = Vec::with_capacity(256);
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn write_key_stamp(profile: &str, stamp: &str) -> anyhow::Result<()> {
    write_atomic(&key_stamp_file(profile), format!("{stamp}\n").as_bytes())
}

pub fn remove_key_stamp(profile: &str) {
    let _ = fs::remove_file(key_stamp_file(profile));
}

/// Creates `dir` (0700) if needed, then checks that it, and every directory
/// above it up to the state directory (or `XDG_RUNTIME_DIR`) it lies in, is
/// the user's own and not writable by group or others: whoever can write there
/// can replace the files the prompt trusts or hold the minting lock. Called
/// wherever awsmfa writes, never on the prompt's read-only path.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let top = [Some(paths::state_dir()), paths::runtime_dir()]
        .into_iter()
        .flatten()
        .find(|top| dir.starts_with(top));
    let mut at = dir;
    loop {
        check_private(at)?;
        match (&top, at.parent()) {
            (Some(top), Some(parent)) if at != top && parent.starts_with(top) => at = parent,
            _ => return Ok(()),
        }
    }
}

fn check_private(dir: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let shown = paths::display(dir);
    if meta.uid() != me {
        return Err(UnsafeDir(format!(
            "{shown} belongs to uid {}, not to you (uid {me}): awsmfa keeps its files only in directories of yours; \
             have it given to you (`chown {me} {shown}`, as root), or point XDG_STATE_HOME at a directory of yours",
            meta.uid()
        ))
        .into());
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(UnsafeDir(format!(
            "{shown} is writable by {who} (mode {mode:04o}), who could replace awsmfa's files there; run `chmod 700 {shown}`"
        ))
        .into());
    }
    Ok(())
}

/// A directory of awsmfa's that others can write into: refused, with the fix.
#[derive(Debug)]
pub struct UnsafeDir(String);

impl std::fmt::Display for UnsafeDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnsafeDir {}

/// Whether `err` is the file system refusing a write (read-only, full, no
/// permission), which a cache can live with, rather than a directory that is
/// unsafe to use.
pub fn is_unwritable(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .is_some_and(|code| {
                [
                    libc::EACCES,
                    libc::EPERM,
                    libc::EROFS,
                    libc::ENOSPC,
                    libc::EDQUOT,
                ]
                .contains(&code)
            })
    })
}

/// Write-then-rename, so a reader (or a crash) never sees half a file. The
/// file ends up 0600.
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// `write_atomic`, the file ending up with `mode`. The temporary file beside
/// `path` comes from `tempfile`: an unpredictable name opened with `O_EXCL`
/// and mode 0600, so nobody who can write the directory can plant a symlink
/// or open it first; its name starts with `.`, which the directory's readers
/// skip, and carries the writer's pid, so that the next write of `path` can
/// remove what a writer killed half-way (`kill -9`) left behind.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().context("state path has no parent")?;
    create_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tmp");
    let result = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.{}.", std::process::id()))
            .tempfile_in(dir)?;
        tmp.write_all(data)?;
        if mode != 0o600 {
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))?;
        }
        // On failure the temporary file is removed when the error drops it.
        tmp.persist(path).map_err(|e| e.error)?;
        Ok::<_, std::io::Error>(())
    })();
    remove_orphans(dir, name);
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Removes `.NAME.PID.RANDOM` files in `dir` whose writer is no longer running.
/// Best effort: one left now goes with a later write.
fn remove_orphans(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        // RANDOM has no dot: `.a.1.x` for `a` is not `.a.1.1.x`, a temporary
        // file of the profile `a.1`.
        let Some((pid, random)) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else {
            continue;
        };
        if pid > 0 && !random.contains('.') && !running(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process `pid` exists (one of another user's included).
fn running(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 is only the existence and permission check.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
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

    #[test]
    fn reads_do_not_follow_links_and_writes_need_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "1 fp\n").unwrap();
        assert_eq!(read_nofollow(&file).unwrap(), b"1 fp\n");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = read_nofollow(&link).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");

        let shared = dir.path().join("shared");
        create_private_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).unwrap();
        let e = write_atomic(&shared.join("f"), b"x").unwrap_err();
        assert!(e.is::<UnsafeDir>(), "{e:#}");
        assert!(
            e.to_string().contains("writable by its group (mode 0775)"),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 700"), "{e}");
        assert!(!is_unwritable(&e));
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o700)).unwrap();
        write_atomic(&shared.join("f"), b"x").unwrap();
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_the_mode_asked_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let script = dir.path().join("sub").join("s");
        write_atomic_mode(&script, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(mode(&script), 0o755);
        let mut names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f", "s"]);
        // A directory in the way: an error naming the file, and no temporary left.
        fs::create_dir(dir.path().join("sub").join("d")).unwrap();
        let e = write_atomic(&dir.path().join("sub").join("d"), b"x").unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 3);
    }

    #[test]
    fn a_write_removes_what_a_dead_writer_of_the_same_file_left() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let me = std::process::id();
        let left = [
            format!(".f.{dead}.a1B2c3"),
            // A live writer's, another file's (`f.1`), and not ours at all.
            format!(".f.{me}.d4E5f6"),
            format!(".f.1.{dead}.g7H8i9"),
            format!(".g.{dead}.j0K1l2"),
        ];
        for name in &left {
            fs::write(dir.path().join(name), "").unwrap();
        }
        write_atomic(&dir.path().join("f"), b"x").unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut kept = vec!["f".to_string()];
        kept.extend(left[1..].iter().cloned());
        kept.sort();
        assert_eq!(names, kept);
    }
}
