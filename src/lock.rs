//! A cross-process lock around look-up → MFA → STS → store, so that 32
//! `credential-process` calls racing on a cold cache cause one MFA prompt, not 32.
//! `flock` is released by the kernel when the holder dies, even by `kill -9`:
//! there is no stale lock to clean up.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Lock {
    file: File,
}

/// Long enough for a person to find their YubiKey while another process asks.
const WAIT: Duration = Duration::from_secs(300);

impl Lock {
    pub fn acquire(path: &Path, what: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::state::create_private_dir(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        let start = Instant::now();
        let mut told = false;
        loop {
            // Polling rather than a blocking flock keeps the wait bounded without signals.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
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
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}
