//! The controlling terminal. Prompts go here rather than to stdout/stderr because
//! under `credential_process` the SDK owns both: `/dev/tty` is the only way to
//! reach the person. Without one, or from a background job, callers fail at
//! once instead of hanging or being stopped.

use std::cell::UnsafeCell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use zeroize::Zeroizing;

pub struct Tty {
    file: File,
}

/// Why the terminal cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// No controlling terminal: CI, a daemon, an SDK started without one.
    Missing,
    /// A background job of its terminal (`terragrunt plan &`): a read would
    /// stop the whole job with SIGTTIN until `fg`, and so would a write
    /// under `stty tostop` (SIGTTOU).
    Background,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unusable::Missing => "there is no terminal",
            Unusable::Background => {
                "awsmfa runs in a background job of its terminal (started with `&`), \
                 where reading a typed answer would stop the job"
            }
        })
    }
}

/// How long a typed MFA code is waited for: `AWSMFA_PROMPT_TIMEOUT` seconds,
/// else 2 minutes. The prompt holds the minting lock, so every other awsmfa
/// for the profile waits on it (see `lock.rs`).
pub fn prompt_limit() -> Duration {
    const DEFAULT: Duration = Duration::from_secs(120);
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let Some(raw) = std::env::var_os("AWSMFA_PROMPT_TIMEOUT") else {
            return DEFAULT;
        };
        match raw.to_str().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(secs @ 1..=86_400) => Duration::from_secs(secs),
            _ => {
                crate::log::warn(format_args!(
                    "AWSMFA_PROMPT_TIMEOUT={} is not a number of seconds from 1 to 86400; using {}",
                    raw.to_string_lossy(),
                    crate::time::spoken(DEFAULT)
                ));
                DEFAULT
            }
        }
    })
}

impl Tty {
    /// The terminal, when this process may read and write it: it has one
    /// (without, `/dev/tty` fails with ENXIO straight away) and its process
    /// group is the terminal's foreground group. Checked before anything is
    /// written, since the write alone can stop a background job.
    pub fn open() -> Result<Self, Unusable> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|_| Unusable::Missing)?;
        // SAFETY: plain queries; tcgetpgrp on a valid fd.
        let (foreground, ours) = unsafe { (libc::tcgetpgrp(file.as_raw_fd()), libc::getpgrp()) };
        match foreground {
            -1 => Err(Unusable::Missing),
            pgrp if pgrp != ours => Err(Unusable::Background),
            _ => Ok(Self { file }),
        }
    }

    pub fn available() -> bool {
        Self::open().is_ok()
    }

    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    pub fn say(&mut self, msg: &str) -> io::Result<()> {
        self.file.write_all(msg.as_bytes())?;
        self.file.flush()
    }

    /// Reads one line; with `echo` false the terminal does not show what is typed.
    pub fn ask(&mut self, prompt: &str, echo: bool) -> io::Result<SecretString> {
        self.ask_until(prompt, echo, None)
    }

    /// [`Tty::ask`], given up at `deadline` with [`io::ErrorKind::TimedOut`].
    /// What was typed of the line by then is discarded, so that it does not
    /// reach the shell as a command once awsmfa has exited.
    pub fn ask_until(
        &mut self,
        prompt: &str,
        echo: bool,
        deadline: Option<Instant>,
    ) -> io::Result<SecretString> {
        self.say(prompt)?;
        let _guard = if echo {
            None
        } else {
            Some(EchoOff::new(&self.file)?)
        };
        let line = self.read_line(deadline);
        let timed_out = matches!(&line, Err(e) if e.kind() == io::ErrorKind::TimedOut);
        if timed_out {
            // SAFETY: a valid fd; drops the unread input, the half-typed line included.
            unsafe { libc::tcflush(self.file.as_raw_fd(), libc::TCIFLUSH) };
        }
        if !echo || timed_out {
            // The newline the user typed was not echoed either, or never came.
            let _ = self.say("\n");
        }
        line
    }

    /// Byte by byte, so nothing past the newline is consumed from the terminal.
    fn read_line(&mut self, deadline: Option<Instant>) -> io::Result<SecretString> {
        let mut buf = Zeroizing::new(Vec::with_capacity(128));
        let mut byte = [0u8; 1];
        loop {
            if let Some(deadline) = deadline {
                self.wait_readable(deadline)?;
            }
            match self.file.read(&mut byte) {
                Ok(0) if buf.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the terminal closed",
                    ));
                }
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if byte[0] == b'\r' => {}
                Ok(_) => buf.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let text = String::from_utf8(std::mem::take(&mut *buf))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "input is not UTF-8"))?;
        Ok(SecretString::from(text))
    }

    /// Until there is input to read (a whole line, in the terminal's usual
    /// canonical mode) or `deadline`. poll(2) rather than a reader thread: a
    /// thread blocked in read(2) could not be stopped, and would eat the
    /// user's next line.
    fn wait_readable(&self, deadline: Instant) -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Rounded up, so the last wait does not end just short of the
            // deadline; past it, one last look without waiting.
            let ms = if left.is_zero() {
                0
            } else {
                libc::c_int::try_from(left.as_millis() + 1).unwrap_or(libc::c_int::MAX)
            };
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd we own, on a valid fd.
            match unsafe { libc::poll(&mut pfd, 1, ms) } {
                -1 => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                0 if left.is_zero() => return Err(io::ErrorKind::TimedOut.into()),
                0 => {}
                // Input, or a hang-up or error that the read will report.
                _ => return Ok(()),
            }
        }
    }
}

/// Echo off for one hidden answer. The saved settings come back when this is
/// dropped (error paths included) and also when SIGINT (Ctrl-C), SIGQUIT or
/// SIGTERM ends the process mid-answer: those signals' default action kills
/// the process without running any destructor, which used to leave the shell
/// with echo off. rpassword has the same gap (7.5 even raises SIGINT itself
/// with the terminal still raw), hence this guard rather than the crate.
struct EchoOff {
    fd: RawFd,
    saved: libc::termios,
    /// Whether this guard holds `CLAIMED` (and so `SAVED` and `ACTIVE`).
    claimed: bool,
    /// The signals whose handler this guard installed, with the action before it.
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

/// What the signal handler restores: `SAVED` is written before `ACTIVE`
/// publishes the terminal's fd (-1: none), and only by the guard that holds
/// `CLAIMED`, so the handler reads a complete value without taking a lock
/// (locks are not async-signal-safe).
static ACTIVE: AtomicI32 = AtomicI32::new(-1);
static CLAIMED: AtomicBool = AtomicBool::new(false);
static SAVED: SavedTermios = SavedTermios(UnsafeCell::new(MaybeUninit::uninit()));

struct SavedTermios(UnsafeCell<MaybeUninit<libc::termios>>);

// SAFETY: written only by the one guard that holds CLAIMED, before ACTIVE
// (Release) lets the handler read it (Acquire); never written while published.
unsafe impl Sync for SavedTermios {}

/// Puts the terminal back, then lets the signal do what it would have done:
/// with the default action restored and the signal raised again, it is
/// delivered as soon as this handler returns (it is blocked until then), so
/// the process dies of it and the parent sees the real cause.
extern "C" fn restore_then_reraise(sig: libc::c_int) {
    let fd = ACTIVE.load(Ordering::Acquire);
    // SAFETY: tcsetattr, sigaction and raise are async-signal-safe
    // (signal-safety(7)); SAVED holds a complete termios while ACTIVE is set.
    // errno is not preserved: the process does not outlive this handler.
    unsafe {
        if fd >= 0 {
            libc::tcsetattr(fd, libc::TCSANOW, (*SAVED.0.get()).as_ptr());
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &default, std::ptr::null_mut());
        libc::raise(sig);
    }
}

impl EchoOff {
    fn new(file: &File) -> io::Result<Self> {
        let fd = file.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and a termios we own.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut guard = Self {
            fd,
            saved,
            claimed: false,
            previous: Vec::new(),
        };
        // Handlers before echo goes off, so there is no moment when a signal
        // could leave it off. Two hidden prompts at once (never in awsmfa)
        // would share one SAVED: the second goes without handlers.
        if CLAIMED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: CLAIMED makes this the only writer, and ACTIVE is -1
            // so no handler reads SAVED now.
            unsafe { (*SAVED.0.get()).write(saved) };
            ACTIVE.store(fd, Ordering::Release);
            guard.claimed = true;
            guard.install_handlers();
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a valid fd and a termios we own. On failure `guard` drops,
        // putting back the handlers and the (unchanged) settings.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(guard)
    }

    fn install_handlers(&mut self) {
        for sig in SIGNALS {
            // SAFETY: sigaction with structs we own; the handler only makes
            // async-signal-safe calls.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                // An ignored signal stays ignored: it cannot end the prompt.
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut ours: libc::sigaction = std::mem::zeroed();
                ours.sa_sigaction = restore_then_reraise as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut ours.sa_mask);
                if libc::sigaction(sig, &ours, std::ptr::null_mut()) == 0 {
                    self.previous.push((sig, old));
                }
            }
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // Settings first: a signal arriving before the handlers are put back
        // restores them once more, which is harmless.
        // SAFETY: a valid fd and the termios saved from it.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        for (sig, old) in self.previous.drain(..) {
            // SAFETY: putting back the action sigaction gave us.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
        if self.claimed {
            ACTIVE.store(-1, Ordering::Release);
            CLAIMED.store(false, Ordering::Release);
        }
    }
}
