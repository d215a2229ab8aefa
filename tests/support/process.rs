//! Running child processes so that no test can hang and every failure shows
//! what the child said.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Drains a pipe on its own thread, so a chatty child never blocks on a full
/// pipe while we wait for it, and so we can give up on a pipe that a leftover
/// grandchild keeps open.
pub struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Collector {
    pub fn new<R: Read + Send + 'static>(source: Option<R>) -> Collector {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(source.is_none()));
        if let Some(mut r) = source {
            let (b, d) = (buf.clone(), done.clone());
            thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                d.store(true, Ordering::SeqCst);
            });
        }
        Collector { buf, done }
    }

    /// Everything read so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits (at most `grace`) for the writer side to close, then returns all
    /// bytes read.
    pub fn finish(&self, grace: Duration) -> Vec<u8> {
        let deadline = Instant::now() + grace;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        self.bytes()
    }
}

/// SIGKILL to the child's process group (children started by `Env::command`,
/// `Pty` and the peers lead their own group) and to the child itself.
pub fn kill_tree(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// A spawned child (and its process group) killed when the test ends, so a
/// failing assertion leaves nothing running.
pub struct Reaper(pub Child);

impl Reaper {
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        kill_tree(&mut self.0);
        let _ = self.0.wait();
    }
}

/// Waits for `child` until `deadline`; `None` on timeout (the child is left
/// running for the caller to kill).
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // Short first naps keep fast commands fast; later ones keep a slow
        // command from burning a core of a 2-core box.
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion with stdout/stderr captured, feeding it `input` on
/// stdin when given. After `timeout` the child (and its process group) is
/// killed and the test panics with everything it printed.
pub fn run_with_timeout(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let out = Collector::new(child.stdout.take());
    let err = Collector::new(child.stderr.take());
    if let (Some(data), Some(mut w)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        // A thread, because a child that never reads would otherwise block us
        // on a full pipe before the timeout can fire.
        thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let Some(status) = wait_until(&mut child, Instant::now() + timeout) else {
        kill_tree(&mut child);
        let _ = child.wait();
        panic!(
            "timed out after {timeout:?}, killed: {desc}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.finish(Duration::from_millis(500))),
            String::from_utf8_lossy(&err.finish(Duration::from_millis(500))),
        );
    };
    // A grandchild that outlives the child may hold the pipes open; don't wait
    // for it forever.
    let grace = Duration::from_secs(2);
    Output {
        status,
        stdout: out.finish(grace),
        stderr: err.finish(grace),
    }
}

pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    /// stdout and stderr, labelled, for failure messages.
    fn dump(&self) -> String;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn dump(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }
}

/// A Rust panic's message on stderr: awsmfa must fail with a message, never this.
#[track_caller]
pub fn assert_no_panic(out: &Output) {
    assert!(
        !out.stderr_str().contains("panicked"),
        "awsmfa panicked\n{}",
        out.dump()
    );
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success\n{}", out.dump());
}

#[track_caller]
pub fn assert_fail(out: &Output) {
    assert!(!out.status.success(), "expected failure\n{}", out.dump());
}

#[track_caller]
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}\n{}",
        out.dump()
    );
}

/// A command started in the background, killed with its group if the test
/// fails, its output collected.
pub struct Bg {
    desc: String,
    child: Child,
    out: Collector,
    err: Collector,
}

impl Bg {
    pub fn spawn(mut cmd: std::process::Command) -> Bg {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        let out = Collector::new(child.stdout.take());
        let err = Collector::new(child.stderr.take());
        Bg {
            desc,
            child,
            out,
            err,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill {sig}");
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn wait(&mut self, timeout: Duration) -> Output {
        let Some(status) = wait_until(&mut self.child, Instant::now() + timeout) else {
            kill_tree(&mut self.child);
            let _ = self.child.wait();
            panic!(
                "{} did not end within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.desc,
                self.out.text(),
                self.err.text()
            );
        };
        self.output(status)
    }

    pub fn output(&self, status: ExitStatus) -> Output {
        Output {
            status,
            stdout: self.out.finish(Duration::from_secs(2)),
            stderr: self.err.finish(Duration::from_secs(2)),
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.out.text(),
            self.err.text()
        )
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
        let _ = self.child.wait();
    }
}
