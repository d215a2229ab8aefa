//! A cross-process lock around look-up → MFA → STS → store, so that 32
//! `credential-process` calls racing on a cold cache cause one MFA prompt, not 32.
//! `File::lock` is `flock` on Unix, which the kernel releases when the holder
//! dies, even by `kill -9`: there is no stale lock to clean up.
//!
//! The lock file's one line says who holds it, for those who wait: `PID` while
//! it mints, `PID typed` while it waits for a code typed at a terminal. A
//! waiter says what it waits for within a second, and gives up at a limit
//! longer than a typed prompt's.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::tty::{self, Tty};
use crate::{log, time};

pub struct Lock {
    file: Arc<File>,
}

/// The lock files this process holds, for [`TypedPrompt`] to mark.
static HELD: Mutex<Vec<Arc<File>>> = Mutex::new(Vec::new());

/// When a waiter first speaks of a holder that is not at a typed prompt:
/// most mints are over by then.
const TELL_AFTER: Duration = Duration::from_secs(1);

/// How long a waiter waits: a typed prompt's limit and a quarter more (2 min
/// 30 s by default), counted again whenever the holder is seen starting a
/// prompt, so that a wait outlasts every prompt it waits on. A holder that
/// takes longer is stuck.
fn wait_limit() -> Duration {
    let prompt = tty::prompt_limit().as_secs();
    Duration::from_secs(prompt + prompt.div_ceil(4))
}

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
        let file = OpenOptions::new()
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
        wait_for(&file, path, what)?;
        write_holder(&file, false);
        let file = Arc::new(file);
        held().push(file.clone());
        Ok(Self { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Out of the list first, so that no TypedPrompt writes into the file
        // once another process may hold it.
        held().retain(|f| !Arc::ptr_eq(f, &self.file));
        // Closing the file would release it too; unlocking first does not
        // depend on no other handle to it being open.
        let _ = self.file.unlock();
    }
}

fn held() -> std::sync::MutexGuard<'static, Vec<Arc<File>>> {
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// While it lives, every lock this process holds says that it waits for a
/// code typed at the terminal, so that those waiting on them can tell the
/// person where the code is wanted.
pub struct TypedPrompt(());

impl TypedPrompt {
    pub fn begin() -> Self {
        mark_held(true);
        TypedPrompt(())
    }
}

impl Drop for TypedPrompt {
    fn drop(&mut self) {
        mark_held(false);
    }
}

fn mark_held(typed: bool) {
    for file in held().iter() {
        write_holder(file, typed);
    }
}

/// What the lock file says of its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder {
    pid: u32,
    typed: bool,
}

/// The holder's line, written over the old one in place and then trimmed:
/// a waiter reading meanwhile sees the new first line, or a moment of
/// garbage, never an empty file. The pid is for waiters and for whoever
/// finds a hung lock; it is not used for locking.
fn write_holder(file: &File, typed: bool) {
    let line = format!(
        "{}{}\n",
        std::process::id(),
        if typed { " typed" } else { "" }
    );
    if file.write_all_at(line.as_bytes(), 0).is_ok() {
        let _ = file.set_len(line.len() as u64);
    }
}

/// Read through the waiter's own descriptor, which was opened without
/// following links. `None` for anything but a holder's line: a line being
/// rewritten, garbage.
fn read_holder(file: &File) -> Option<Holder> {
    let mut buf = [0u8; 64];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_holder(&buf[..n])
}

fn parse_holder(bytes: &[u8]) -> Option<Holder> {
    let line = std::str::from_utf8(bytes).ok()?.split_once('\n')?.0;
    let (pid, state) = match line.split_once(' ') {
        Some((pid, state)) => (pid, Some(state)),
        None => (line, None),
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid = pid
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0 && libc::pid_t::try_from(p).is_ok())?;
    let typed = match state {
        None => false,
        Some("typed") => true,
        Some(_) => return None,
    };
    Some(Holder { pid, typed })
}

/// Until `file` is locked, saying what it waits for.
fn wait_for(file: &File, path: &Path, what: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    let limit = wait_limit();
    let mut counted_from = start;
    let mut holder = None;
    let mut told = Vec::new();
    loop {
        // Polling rather than a blocking lock keeps the wait bounded without signals.
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Garbage (a line being rewritten) leaves the last good reading.
        if let Some(now) = read_holder(file) {
            if now.typed && holder != Some(now) {
                // A prompt starts, or is first seen: it has its own limit to run.
                counted_from = Instant::now();
            }
            holder = Some(now);
        }
        let doing = waiting_for(holder, what);
        // A person at a prompt takes a while: said at once. Each thing once.
        if (holder.is_some_and(|h| h.typed) || start.elapsed() >= TELL_AFTER)
            && !told.contains(&doing)
        {
            tell(&format!("waiting for {doing}…"), holder);
            told.push(doing);
        }
        if counted_from.elapsed() > limit {
            let fix = match holder {
                Some(Holder { pid, typed: true }) => format!(
                    "type the code at that prompt or press Ctrl-C there, or end it with `kill {pid}`"
                ),
                Some(Holder { pid, .. }) => format!("if it is stuck, end it with `kill {pid}`"),
                None => format!(
                    "lock {}; if it is stuck at an MFA prompt, answer it or stop it",
                    path.display()
                ),
            };
            bail!(
                "gave up after {} waiting for {}; {fix}",
                time::spoken(limit),
                waiting_for(holder, what)
            );
        }
        std::thread::sleep(Duration::from_millis(15));
    }
}

fn waiting_for(holder: Option<Holder>, what: &str) -> String {
    match holder {
        Some(Holder { pid, typed: true }) => {
            format!("an MFA code being entered in another terminal (pid {pid})")
        }
        Some(Holder { pid, .. }) => format!("another awsmfa (pid {pid}) minting {what}"),
        None => format!("another awsmfa minting {what}"),
    }
}

/// On this process's terminal, where the person is; on stderr without one
/// (or from a background job). Not at all when the holder shares the terminal
/// (a terminal has one session): what it asks or shows is on that screen
/// already, and a line written now would land in the middle of its prompt.
fn tell(msg: &str, holder: Option<Holder>) {
    match Tty::open() {
        Ok(_) if holder.is_some_and(|h| same_session(h.pid)) => {}
        Ok(mut tty) => {
            let _ = tty.say(&format!("awsmfa: {}\n", log::printable(msg)));
        }
        Err(_) => log::info(msg),
    }
}

fn same_session(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: getsid only queries; a pid that is gone gives -1.
    let (theirs, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    theirs != -1 && theirs == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let held = Lock::acquire(&path, "p").unwrap();
        let line = |path: &Path| std::fs::read_to_string(path).unwrap();
        let pid = std::process::id();
        assert_eq!(line(&path), format!("{pid}\n"));
        // The only test that marks: HELD is the whole process's.
        let typing = TypedPrompt::begin();
        assert_eq!(line(&path), format!("{pid} typed\n"));
        drop(typing);
        assert_eq!(line(&path), format!("{pid}\n"));
        // Another open file description is another flock holder.
        let other = File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
        // Released locks are not marked: the file may be another's by now.
        drop(TypedPrompt::begin());
        assert_eq!(line(&path), format!("{pid}\n"));
        drop(other);

        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("q.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Lock::acquire(&link, "q").err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn holder_lines_parse_and_garbage_is_unknown() {
        let parsed = |text: &str| parse_holder(text.as_bytes());
        assert_eq!(
            parsed("42\n"),
            Some(Holder {
                pid: 42,
                typed: false
            })
        );
        assert_eq!(
            parsed("42 typed\n"),
            Some(Holder {
                pid: 42,
                typed: true
            })
        );
        // What a shorter line written over a longer one leaves for a moment.
        assert_eq!(
            parsed("42\nyped\n"),
            Some(Holder {
                pid: 42,
                typed: false
            })
        );
        for garbage in [
            "",
            "42",
            "42 typ",
            "42 typed",
            "42 typed extra\n",
            "+42\n",
            "-1\n",
            "0\n",
            "4294967295\n",
            " 42\n",
            "42 sleeping\n",
            "\u{0}\n",
        ] {
            assert_eq!(parsed(garbage), None, "{garbage:?}");
        }
        assert_eq!(parse_holder(b"\xff\xfe\n"), None);
    }
}
