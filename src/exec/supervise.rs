//! Running the command as awsmfa's child, for `exec --server`: awsmfa serves
//! the command's credentials for as long as it runs, so it cannot execve. It
//! stays as invisible as the execve of plain `exec`: the child is in the same
//! process group (the terminal's Ctrl-C and Ctrl-\ reach both, and awsmfa lets
//! the command decide), SIGTERM and SIGHUP sent to awsmfa alone are passed on
//! to it, and its exit status becomes awsmfa's (128+N when signal N killed it).
//! A SIGTERM or SIGHUP that comes after [`arm`] but before the command exists
//! is delivered to it as soon as it does.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;

/// The child's pid while it runs (0 before and after): where the handler
/// forwards to.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A SIGTERM or SIGHUP that arrived before the child existed.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Only async-signal-safe work: two atomics and kill(2).
extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; the pid is our unreaped child
        // (see `supervise`), so it names no other process.
        unsafe { libc::kill(pid, sig) };
    } else {
        PENDING.store(sig, Ordering::SeqCst);
    }
}

/// awsmfa's signal handling while it supervises a command, from [`arm`]
/// (before anything that must be cleaned up exists) to the end.
pub struct Supervisor {
    /// What the command gets for SIGINT and SIGQUIT: ignored only if they
    /// were when awsmfa started.
    int: libc::sighandler_t,
    quit: libc::sighandler_t,
}

/// The command, started by [`Supervisor::spawn`].
pub struct Running {
    child: Child,
    pid: libc::pid_t,
}

/// From here on awsmfa ignores SIGINT and SIGQUIT and passes SIGTERM and
/// SIGHUP on to the command (or to the command it is about to start): it
/// ends when the command ends, cleaning up behind it.
pub fn arm() -> anyhow::Result<Supervisor> {
    // Dispositions are process-wide, so no thread (the server's included) can
    // be the one a terminal's SIGINT kills.
    let int = set_handler(libc::SIGINT, libc::SIG_IGN)?;
    let quit = set_handler(libc::SIGQUIT, libc::SIG_IGN)?;
    let handler = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
    set_handler(libc::SIGTERM, handler)?;
    set_handler(libc::SIGHUP, handler)?;
    let restore = |old: libc::sighandler_t| {
        if old == libc::SIG_IGN {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        }
    };
    Ok(Supervisor {
        int: restore(int),
        quit: restore(quit),
    })
}

impl Supervisor {
    /// Starts `cmd` as a child that awsmfa will outlive. A command that cannot
    /// start is 127 (not found) or 126, as from a shell.
    pub fn spawn(self, mut cmd: Command) -> anyhow::Result<Running> {
        let Supervisor { int, quit } = self;
        // An ignored signal stays ignored across execve: give the command the
        // dispositions awsmfa was started with.
        // SAFETY: signal(2) is async-signal-safe, and this closure touches
        // nothing else between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGINT, int);
                libc::signal(libc::SIGQUIT, quit);
                Ok(())
            });
        }
        crate::coredump::restore_on_exec(&mut cmd);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Err(super::cannot_run(&cmd, &e)),
        };
        let pid = libc::pid_t::try_from(child.id()).context("the command's pid is out of range")?;
        CHILD.store(pid, Ordering::SeqCst);
        let early = PENDING.swap(0, Ordering::SeqCst);
        if early != 0 {
            // SAFETY: kill(2) on our own, running child.
            unsafe { libc::kill(pid, early) };
        }
        Ok(Running { child, pid })
    }
}

impl Running {
    /// Waits for the command's end: its exit code, or 128+N when signal N
    /// ended it.
    pub fn wait(mut self) -> anyhow::Result<i32> {
        // Without reaping first: until it is reaped the pid cannot be reused,
        // so a signal forwarded in between never reaches a stranger.
        wait_exited(self.pid).context("cannot wait for the command")?;
        CHILD.store(0, Ordering::SeqCst);
        let status = self.child.wait().context("cannot wait for the command")?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// Sets `sig`'s disposition; returns the previous one.
fn set_handler(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> anyhow::Result<libc::sighandler_t> {
    // SAFETY: sigaction(2) with fully initialised structures that outlive the
    // call; a zeroed sigaction is a valid "no flags, empty mask" value.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = handler;
        // Restart interrupted system calls: a forwarded SIGTERM must not turn
        // a read in the server or the refresher into an error.
        new.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, &new, &mut old) != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot set up signal {sig} for the command"));
        }
        Ok(old.sa_sigaction)
    }
}

/// Blocks until `pid` has exited, leaving it to be reaped.
fn wait_exited(pid: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: waitid(2) writes one siginfo_t into a buffer of that size.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
