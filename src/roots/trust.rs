//! `awsmfa allow` / `deny`: which repository root files the user approved, as
//! direnv approves an `.envrc`. A record is a small file under the state
//! directory named after the root file's path, holding the SHA-256 of the text
//! that was approved: any change to the file, a rename or a move needs a new
//! allow. The user's own config.toml needs none.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::file::{self, RootFile};
use crate::{paths, state};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Allowed,
    /// Never allowed, or denied.
    NotAllowed,
    /// Allowed once, but the text is no longer what was approved.
    Changed,
}

fn record(path: &Path) -> PathBuf {
    paths::state_dir()
        .join("allowed")
        .join(file::hash(path.as_os_str().as_bytes()))
}

pub fn trust(file: &RootFile) -> Trust {
    // Bytes, not text: the path kept on the second line may be any bytes a
    // directory name can hold.
    match state::read_nofollow(&record(&file.path)) {
        Ok(bytes) if bytes.split(|&b| b == b'\n').next() == Some(file.hash.as_bytes()) => {
            Trust::Allowed
        }
        Ok(_) => Trust::Changed,
        Err(_) => Trust::NotAllowed,
    }
}

pub fn allow(file: &RootFile) -> anyhow::Result<()> {
    // The path is kept beside the hash only for a person reading the directory.
    let mut text = format!("{}\n", file.hash).into_bytes();
    text.extend_from_slice(file.path.as_os_str().as_bytes());
    text.push(b'\n');
    state::write_atomic(&record(&file.path), &text)
}

/// True when there was a record to remove.
pub fn deny(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(record(path)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow::anyhow!(
            "cannot remove the allow record for {}: {e}",
            paths::display(path)
        )),
    }
}
