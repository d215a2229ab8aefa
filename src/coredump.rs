//! Core dumps off while awsmfa may hold a secret: a crash must not write a
//! long-lived key, a session or an OpenBao token to disk. Every command but the
//! prompt and `cd` paths (which touch no secret) starts with [`disable`]: the
//! soft `RLIMIT_CORE` goes to 0 and, on Linux, the process is made
//! non-dumpable (`PR_SET_DUMPABLE` 0), which holds where `core_pattern` pipes
//! dumps to a helper the limit does not bind (systemd-coredump, apport), and
//! keeps other processes of the same user out of its memory (ptrace,
//! `/proc/PID/mem`) unless they hold `CAP_SYS_PTRACE`.
//!
//! The command awsmfa runs for the user (`exec`, `exec --server`, the secrets
//! manager of a chain) gets the soft limit it would have had without awsmfa
//! ([`restore_on_exec`]): terragrunt and tofu dump core as the user set up.
//! `execve` makes it dumpable again by itself. Helpers that hand awsmfa a
//! secret (`mfa_process`, ykman, op) keep the limit at 0: they hold the same
//! secret.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

/// `RLIMIT_CORE` as awsmfa found it: what the user's command gets back.
static ORIGINAL: OnceLock<libc::rlimit> = OnceLock::new();

/// Core dumps off for the rest of this process's life (until [`restore_on_exec`]
/// hands the command its own limit). A failure, which the kernel has no reason
/// for, is a warning: the command still runs.
pub fn disable() {
    if let Err(e) = try_disable() {
        crate::log::warn(format_args!(
            "cannot turn core dumps off ({e}): a crash of awsmfa could write secrets to disk"
        ));
    }
}

fn try_disable() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one rlimit into memory we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    ORIGINAL.get_or_init(|| limit);
    // The soft limit only: a process may raise it again up to the hard limit,
    // which is how the command gets it back.
    limit.rlim_cur = 0;
    // SAFETY: setrlimit(2) reads one initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives `cmd` the core limit awsmfa started with, set in the last moment
/// before its `execve`: in the forked child for `spawn`, in this process for
/// `exec` (which calls [`disable`] again if the `execve` fails).
pub fn restore_on_exec(cmd: &mut Command) {
    let Some(&original) = ORIGINAL.get() else {
        return;
    };
    // SAFETY: setrlimit(2) is async-signal-safe, and the closure touches only
    // its own copy of the limit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Raising the soft limit back to at most the unchanged hard limit
            // cannot fail; if it did, the command would still better run.
            libc::setrlimit(libc::RLIMIT_CORE, &original);
            Ok(())
        });
    }
}
