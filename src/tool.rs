//! Running the helper tools MFA codes and keys come from (mfa_process, ykman,
//! op): stdout captured, stderr shown to the person *and* kept so failures can
//! be explained, stdin on the terminal, and a time limit so a tool waiting on a
//! touch or an unlock dialog can never hang awsmfa.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::tty::Tty;

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Zeroizing<Vec<u8>>,
    /// What the tool said on stderr (it was also shown as it came).
    pub stderr: String,
}

impl Output {
    /// What the tool printed, trimmed: the code or secret it was run for.
    pub fn stdout_secret(&self) -> SecretString {
        SecretString::from(String::from_utf8_lossy(&self.stdout).trim().to_string())
    }
}

/// ykman waits ~15 s for a touch, 1Password for a biometric approval: a minute
/// covers a person. `AWSMFA_TOOL_TIMEOUT` (seconds) overrides it.
pub fn timeout() -> Duration {
    std::env::var("AWSMFA_TOOL_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Secrets awsmfa may find in its own environment that no helper needs: an
/// `mfa_process` or a plugin on PATH is not to be handed the OpenBao token or
/// the single-use wrapped SecretID (besides the AWS credentials, withheld too).
const WITHHELD: &[&str] = &[
    "BAO_TOKEN",
    "VAULT_TOKEN",
    "AWSMFA_OPENBAO_WRAPPED_SECRET_ID",
];

/// Runs `cmd` to completion or until the time limit. `what` names it in messages.
pub fn run(cmd: Command, what: &str) -> anyhow::Result<Output> {
    run_inner(cmd, what, None)
}

/// [`run`], with `input` on the tool's stdin instead of the terminal (a
/// secret handed over off the command line).
pub fn run_with_input(
    cmd: Command,
    what: &str,
    input: Zeroizing<Vec<u8>>,
) -> anyhow::Result<Output> {
    run_inner(cmd, what, Some(input))
}

fn run_inner(
    mut cmd: Command,
    what: &str,
    input: Option<Zeroizing<Vec<u8>>>,
) -> anyhow::Result<Output> {
    let tty = Tty::open().ok();
    // A tool that asks for a PIN reads the terminal; "Touch your YubiKey" must
    // reach the person even when an SDK captures awsmfa's own stderr.
    match (&input, &tty) {
        (Some(_), _) => cmd.stdin(Stdio::piped()),
        (None, Some(t)) => cmd.stdin(t.file()?),
        (None, None) => cmd.stdin(Stdio::null()),
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in crate::creds::CREDENTIAL_VARS
        .iter()
        .chain(crate::creds::CONTAINER_VARS)
        .chain(WITHHELD)
    {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().context("no stdin")?;
        // A thread: a tool that reads nothing must not block awsmfa on a full
        // pipe before the time limit can stop it. Closed when written.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;

    // Chunk by chunk, so what the tool printed is ours even if its pipe never closes.
    let (out_tx, out_rx) = mpsc::channel::<Zeroizing<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut chunk = Zeroizing::new([0u8; 1024]);
        loop {
            match stdout.read(&mut chunk[..]) {
                Ok(0) => break,
                Ok(n) => {
                    if out_tx.send(Zeroizing::new(chunk[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    let (err_tx, err_rx) = mpsc::channel();
    let mut echo: Box<dyn Write + Send> = match tty.as_ref().and_then(|t| t.file().ok()) {
        Some(file) => Box::new(file),
        None => Box::new(std::io::stderr()),
    };
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let _ = echo.write_all(&chunk[..n]);
            if kept.len() < 8192 {
                kept.extend_from_slice(&chunk[..n]);
            }
        }
        let _ = err_tx.send(String::from_utf8_lossy(&kept).into_owned());
    });

    let limit = timeout();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            // `sh -c "a; b"` (mfa_process) runs `a` as its own child: stop
            // those too, or they outlive awsmfa. Not by process group: the
            // tool must stay in the terminal's foreground group to prompt.
            for pid in descendants(child.id()) {
                // SAFETY: kill(2) on a pid we just found below our child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} did not finish within {}s and was stopped",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild (an agent the tool started) may still hold the pipes open;
    // don't wait on it for long, and keep what the tool itself printed.
    let grace = Duration::from_millis(500);
    let until = Instant::now() + grace;
    let mut stdout = Zeroizing::new(Vec::new());
    while let Ok(chunk) = out_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        stdout.extend_from_slice(&chunk);
    }
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Every process below `root`, deepest first (Linux: from /proc; elsewhere none).
fn descendants(root: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, ppid) of every process: the ppid is the field after "(comm)".
    let links: Vec<(i32, i32)> = dir
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![i32::try_from(root).unwrap_or(-1)];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &links {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found.reverse();
    found
}
