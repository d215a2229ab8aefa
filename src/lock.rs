//! A cross-process lock around look-up → MFA → STS → store, so that 32
//! `credential-process` calls racing on a cold cache cause one MFA prompt, not 32.
//! `File::lock` is `flock` on Unix, which the kernel releases when the holder
//! dies, even by `kill -9`: there is no stale lock to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Lock {
    file: File,
}

/// Long enough for a person to find their YubiKey while another process asks.
const WAIT: Duration = Duration::from_secs(300);

impl Lock {
    /// [`Lock::acquire`], except that a state directory that refuses the lock
    /// file (read-only, full) does not stop the command: it goes on unlocked,
    /// with a warning that says what that costs (`unguarded`). One that others
    /// can write into still does stop it.
    pub fn acquire_if_writable(
        path: &Path,
        what: &str,
        unguarded: &str,
    ) -> anyhow::Result<Option<Self>> {
        match Self::acquire(path, what) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if crate::state::is_unwritable(&e) => {
                crate::log::warn(format_args!("{e:#}\n  {unguarded}"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn acquire(path: &Path, what: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::state::create_private_dir(dir)?;
        }
        // O_NOFOLLOW: the pid written below would otherwise truncate and
        // overwrite whatever file a planted symlink points at.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => anyhow::anyhow!(
                    "{} is a symbolic link; awsmfa does not follow it for a lock file, remove it",
                    path.display()
                ),
                _ => anyhow::Error::new(e)
                    .context(format!("cannot open lock file {}", path.display())),
            })?;
        let start = Instant::now();
        let mut told = false;
        loop {
            // Polling rather than a blocking lock keeps the wait bounded without signals.
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            if !told && start.elapsed() > Duration::from_secs(2) {
                crate::log::info(format_args!(
                    "waiting for another awsmfa that is minting {what}…"
                ));
                told = true;
            }
            if start.elapsed() > WAIT {
                bail!(
                    "gave up after {}s waiting for another awsmfa minting {what} (lock {}); if it is stuck at an MFA prompt, answer or stop it",
                    WAIT.as_secs(),
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        // The holder's pid helps whoever finds a hung lock; it is not used for locking.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        Ok(Self { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file would release it too; unlocking first does not
        // depend on no other handle to it being open.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let held = Lock::acquire(&path, "p").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // Another open file description is another flock holder.
        let other = File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
        drop(other);

        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("q.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Lock::acquire(&link, "q").err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }
}
