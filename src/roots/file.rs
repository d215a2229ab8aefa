//! Reading a repository's `.awsmfa.toml` without trusting it to be a file. A
//! cloned repository (or another user, in `/tmp`) chooses what sits at that
//! path: a FIFO that would block every `cd`, a link to `/dev/zero`, a file
//! someone else can rewrite. Each is ignored with a reason; only a small
//! regular file owned by the user (or root), in a directory others cannot
//! write, is read at all.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const ROOT_FILE: &str = ".awsmfa.toml";
/// direnv reads `.envrc` whole; a root file holds three keys. Anything larger
/// is not one.
pub const MAX_LEN: u64 = 64 * 1024;

/// A root file's text, as read once: what is parsed is what was hashed.
#[derive(Debug, Clone)]
pub struct RootFile {
    /// Where it was found (a symbolic link's own path, not its target).
    pub path: PathBuf,
    pub text: String,
    /// SHA-256 of `text`, hex: what `awsmfa allow` records.
    pub hash: String,
}

pub enum Seen {
    Absent,
    File(RootFile),
    /// Present, but not something awsmfa reads; the reason, for a warning.
    Ignored(String),
}

/// The root file in `dir` (a canonical directory), checked before it is read.
pub fn read(dir: &Path) -> Seen {
    let path = dir.join(ROOT_FILE);
    match checked(&path, dir) {
        Ok(Some(file)) => Seen::File(file),
        Ok(None) => Seen::Absent,
        Err(why) => Seen::Ignored(why),
    }
}

fn checked(path: &Path, dir: &Path) -> Result<Option<RootFile>, String> {
    // One lstat per directory on the way up: the common answer is "absent".
    let link = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    check_owner(&link)?;
    check_dir(dir)?;
    let target = if link.file_type().is_symlink() {
        let target = path
            .canonicalize()
            .map_err(|e| format!("it is a symbolic link that cannot be followed: {e}"))?;
        if let Some(parent) = target.parent() {
            check_dir(parent)?;
        }
        target
    } else {
        path.to_path_buf()
    };
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a
    // writer. O_NOFOLLOW: the target was resolved above; a link swapped in
    // since then is refused rather than followed.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&target)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    check_owner(&meta)?;
    if meta.len() > MAX_LEN {
        return Err(format!("it is larger than {} KiB", MAX_LEN / 1024));
    }
    let mut bytes = Vec::new();
    file.take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(format!("it is larger than {} KiB", MAX_LEN / 1024));
    }
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let hash = hash(text.as_bytes());
    Ok(Some(RootFile {
        path: path.to_path_buf(),
        text,
        hash,
    }))
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Another user's file speaks for that user, not for this one.
fn check_owner(meta: &Metadata) -> Result<(), String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    match meta.uid() {
        uid if uid == me || uid == 0 => Ok(()),
        uid => Err(format!("it is owned by another user (uid {uid})")),
    }
}

/// A directory anyone can write to without the sticky bit lets anyone replace
/// the file in it.
fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| format!("cannot read its directory: {e}"))?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err("its directory is writable by every user (and not sticky)".into());
    }
    Ok(())
}

pub fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
