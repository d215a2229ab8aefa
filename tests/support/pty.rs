//! `Pty`: a child with a real controlling terminal, for prompts that go to
//! `/dev/tty`, hidden input, and interactive shells.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::find_bytes;
use super::process::{Collector, kill_tree, wait_until};

/// Which of the child's stdio go to the terminal. Those that don't: stdin is
/// /dev/null, stdout and stderr are captured pipes (see `Pty::stdout`), which
/// is how `credential-process` runs under an SDK: JSON on a pipe, the prompt
/// on /dev/tty.
#[derive(Debug, Clone, Copy)]
pub struct PtyOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub cols: u16,
    pub rows: u16,
}

impl Default for PtyOpts {
    fn default() -> Self {
        PtyOpts {
            stdin: true,
            stdout: true,
            stderr: true,
            cols: 80,
            rows: 24,
        }
    }
}

impl PtyOpts {
    /// Only /dev/tty is the terminal; stdin null, stdout and stderr piped: an
    /// SDK running `credential_process` in a user's terminal.
    pub fn tty_only() -> Self {
        PtyOpts {
            stdin: false,
            stdout: false,
            stderr: false,
            ..Self::default()
        }
    }

    /// stdin and stderr on the terminal, stdout piped: `$(awsmfa …)` typed in
    /// a shell.
    pub fn stdout_piped() -> Self {
        PtyOpts {
            stdout: false,
            ..Self::default()
        }
    }
}

#[derive(Default)]
struct Screen {
    data: Vec<u8>,
    eof: bool,
}

pub struct Pty {
    master: Arc<OwnedFd>,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Where the next `expect` starts looking.
    cursor: Mutex<usize>,
    stop: Arc<AtomicBool>,
    reaped: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    stdout: Option<Collector>,
    stderr: Option<Collector>,
    status: Option<ExitStatus>,
    desc: String,
}

fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret == -1 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

/// A new pty pair: (master, non-blocking; slave). Both close-on-exec, so
/// children spawned concurrently by other tests never inherit them.
fn open_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain libc calls on fds we own; ptsname_r writes into our
    // buffer and NUL-terminates within its length.
    unsafe {
        let m = check(
            libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC),
            "posix_openpt",
        )?;
        let master = OwnedFd::from_raw_fd(m);
        check(libc::grantpt(m), "grantpt")?;
        check(libc::unlockpt(m), "unlockpt")?;
        let mut name = [0 as libc::c_char; 128];
        let rc = libc::ptsname_r(m, name.as_mut_ptr(), name.len());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let path = CStr::from_ptr(name.as_ptr());
        let s = check(
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ),
            "open pty slave",
        )?;
        let slave = OwnedFd::from_raw_fd(s);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        check(libc::ioctl(m, libc::TIOCSWINSZ, &ws), "TIOCSWINSZ")?;
        let flags = check(libc::fcntl(m, libc::F_GETFL), "F_GETFL")?;
        check(
            libc::fcntl(m, libc::F_SETFL, flags | libc::O_NONBLOCK),
            "F_SETFL",
        )?;
        Ok((master, slave))
    }
}

/// Whether the child has exited, without reaping it (`Child::wait` still
/// works afterwards). `reaped` is set once `Pty::wait` has reaped it, after
/// which the pid may belong to someone else.
fn child_gone(pid: libc::pid_t, reaped: &AtomicBool) -> bool {
    if reaped.load(Ordering::SeqCst) {
        return true;
    }
    // SAFETY: waitid fills the zeroed siginfo we own; WNOWAIT leaves the
    // zombie for Child::wait.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == -1 || info.si_pid() != 0
    }
}

struct Reader {
    master: Arc<OwnedFd>,
    /// Our own slave fd, held while the child lives. Without it, the master
    /// reports hang-up (EIO) whenever the child has no fd open on the terminal,
    /// e.g. a child that only opens /dev/tty now and then.
    slave: Option<OwnedFd>,
    pid: libc::pid_t,
    reaped: Arc<AtomicBool>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    stop: Arc<AtomicBool>,
}

fn read_loop(mut r: Reader) {
    let fd = r.master.as_raw_fd();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd outlives this thread (Arc).
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready == 0 {
            if r.stop.load(Ordering::SeqCst) {
                break;
            }
            // Quiet for 50 ms and the child is gone: everything it wrote has
            // been read, so let go of the slave to get EOF once any
            // grandchildren let go too.
            if r.slave.is_some() && child_gone(r.pid, &r.reaped) {
                r.slave = None;
            }
            continue;
        }
        // SAFETY: reading into our own buffer from a valid fd.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let (lock, cv) = &*r.screen;
            lock.lock()
                .unwrap()
                .data
                .extend_from_slice(&buf[..n as usize]);
            cv.notify_all();
            continue;
        }
        let e = io::Error::last_os_error();
        if n < 0
            && matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            )
        {
            if r.stop.load(Ordering::SeqCst) {
                break;
            }
            continue;
        }
        // 0 or EIO: every slave fd is closed.
        break;
    }
    let (lock, cv) = &*r.screen;
    lock.lock().unwrap().eof = true;
    cv.notify_all();
}

impl Pty {
    /// Starts `cmd` on a new 80x24 (or `opts`) terminal, as the session leader
    /// with that terminal as its controlling tty. Works with commands from
    /// `Env::command`/`Env::cmd` (which already start a new session).
    pub fn spawn(mut cmd: Command, opts: PtyOpts) -> Pty {
        let (master, slave) = open_pty(opts.cols, opts.rows).expect("open a pty");
        let on_tty = |yes: bool, other: Stdio| -> Stdio {
            if yes {
                Stdio::from(slave.try_clone().expect("dup pty slave"))
            } else {
                other
            }
        };
        cmd.stdin(on_tty(opts.stdin, Stdio::null()));
        cmd.stdout(on_tty(opts.stdout, Stdio::piped()));
        cmd.stderr(on_tty(opts.stderr, Stdio::piped()));
        let slave_fd: RawFd = slave.as_raw_fd();
        // SAFETY: setsid, getsid, getpid and ioctl are async-signal-safe. The
        // slave fd is close-on-exec but still open here, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() == -1 && libc::getsid(0) != libc::getpid() {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc} on a pty: {e}"));
        // The Stdio copies in `cmd` would keep the terminal open forever.
        drop(cmd);
        let stdout = child.stdout.take().map(|s| Collector::new(Some(s)));
        let stderr = child.stderr.take().map(|s| Collector::new(Some(s)));
        let master = Arc::new(master);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reaped = Arc::new(AtomicBool::new(false));
        let reader = {
            let r = Reader {
                master: master.clone(),
                slave: Some(slave),
                pid: child.id() as libc::pid_t,
                reaped: reaped.clone(),
                screen: screen.clone(),
                stop: stop.clone(),
            };
            thread::Builder::new()
                .name("pty-reader".into())
                .spawn(move || read_loop(r))
                .expect("spawn pty reader")
        };
        Pty {
            master,
            child,
            screen,
            cursor: Mutex::new(0),
            stop,
            reaped,
            reader: Some(reader),
            stdout,
            stderr,
            status: None,
            desc,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `needle` appears after the previous match. `Ok`: the text
    /// from the previous match up to and including this one. `Err`: why, with
    /// everything the terminal showed.
    pub fn expect(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        let mut cursor = self.cursor.lock().unwrap();
        loop {
            if let Some(pos) = find_bytes(&screen.data[*cursor..], needle.as_bytes()) {
                let end = *cursor + pos + needle.len();
                let seen = String::from_utf8_lossy(&screen.data[*cursor..end]).into_owned();
                *cursor = end;
                return Ok(seen);
            }
            let why = if screen.eof {
                "the terminal closed"
            } else if Instant::now() >= deadline {
                "timed out"
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                screen = cv.wait_timeout(screen, left).unwrap().0;
                continue;
            };
            return Err(format!(
                "{why} waiting {timeout:?} for {needle:?} from {}\n--- terminal ---\n{}\n--- end ---",
                self.desc,
                String::from_utf8_lossy(&screen.data)
            ));
        }
    }

    /// `expect`, panicking with the terminal contents on failure.
    #[track_caller]
    pub fn expect_ok(&self, needle: &str, timeout: Duration) -> String {
        self.expect(needle, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Types `text` (no newline added).
    pub fn send(&self, text: &str) {
        let fd = self.master.as_raw_fd();
        let mut data = text.as_bytes();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !data.is_empty() {
            // SAFETY: writing our own buffer to a valid fd.
            let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if n > 0 {
                data = &data[n as usize..];
                continue;
            }
            let e = io::Error::last_os_error();
            let retry = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            );
            assert!(
                retry && Instant::now() < deadline,
                "writing to the pty of {}: {e}\n--- terminal ---\n{}",
                self.desc,
                self.output()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Types `line` and Enter. Enter is `\r`, as a real keyboard sends it; the
    /// terminal's ICRNL turns it into `\n` for line-reading programs.
    pub fn send_line(&self, line: &str) {
        self.send(&format!("{line}\r"));
    }

    /// Whether the terminal echoes what is typed (its ECHO flag). On Linux the
    /// master reads the settings of its slave, which is what the child sets.
    pub fn echo(&self) -> bool {
        // SAFETY: tcgetattr fills the zeroed termios we own from a valid fd.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::tcgetattr(self.master.as_raw_fd(), &mut t) };
        assert_eq!(
            rc,
            0,
            "tcgetattr on the pty of {}: {}",
            self.desc,
            io::Error::last_os_error()
        );
        t.c_lflag & libc::ECHO != 0
    }

    /// Waits until the terminal's ECHO flag is `on`; panics with the terminal
    /// contents after `timeout`.
    #[track_caller]
    pub fn wait_echo(&self, on: bool, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.echo() != on {
            assert!(
                Instant::now() < deadline,
                "the terminal's echo did not turn {} within {timeout:?}: {}\n--- terminal ---\n{}",
                if on { "on" } else { "off" },
                self.desc,
                self.output()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the terminal showed so far (raw: `\r\n`, escapes and all).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap().data).into_owned()
    }

    /// Waits for the child; after `timeout` kills it (and its process group)
    /// and panics with the terminal contents.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let Some(status) = wait_until(&mut self.child, Instant::now() + timeout) else {
            kill_tree(&mut self.child);
            let _ = self.child.wait();
            panic!(
                "timed out after {timeout:?}, killed: {}\n--- terminal ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.desc,
                self.output(),
                self.stdout
                    .as_ref()
                    .map(Collector::text)
                    .unwrap_or_default(),
                self.stderr
                    .as_ref()
                    .map(Collector::text)
                    .unwrap_or_default(),
            );
        };
        self.status = Some(status);
        self.reaped.store(true, Ordering::SeqCst);
        // Let the reader drain what the child wrote just before exiting. A
        // grandchild still holding the terminal delays EOF, hence the bound.
        let (lock, cv) = &*self.screen;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut screen = lock.lock().unwrap();
        while !screen.eof && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            screen = cv.wait_timeout(screen, left).unwrap().0;
        }
        status
    }

    /// The exit code, or 128+N for signal N (as a shell reports it).
    pub fn wait_code(&mut self, timeout: Duration) -> i32 {
        let s = self.wait(timeout);
        s.code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .unwrap_or(-1)
    }

    /// Captured stdout (when `PtyOpts` piped it); call after `wait`.
    pub fn stdout(&self) -> String {
        self.stdout.as_ref().map_or_else(String::new, |c| {
            String::from_utf8_lossy(&c.finish(Duration::from_secs(2))).into_owned()
        })
    }

    /// Captured stderr (when `PtyOpts` piped it); call after `wait`.
    pub fn stderr(&self) -> String {
        self.stderr.as_ref().map_or_else(String::new, |c| {
            String::from_utf8_lossy(&c.finish(Duration::from_secs(2))).into_owned()
        })
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.status.is_none() {
            kill_tree(&mut self.child);
            let _ = self.child.wait();
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
