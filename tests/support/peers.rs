//! Real components the tests talk to when they are installed: moto, the AWS
//! CLI v2, boto3, a private Secret Service, the kernel keyring.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::env::Env;
use super::http::http_request;
use super::process::{OutputExt, kill_tree, run_with_timeout, wait_until};
use super::{is_executable, which};

/// `AWSMFA_REQUIRE_ALL=1`: every real component must be present.
pub fn require_all() -> bool {
    std::env::var("AWSMFA_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The one skip/fail rule for real components. `found` is the component when
/// it is available. When it is not: under `AWSMFA_REQUIRE_ALL=1` the test
/// panics (a green `scripts/test` run must mean everything really ran);
/// otherwise a `SKIP:` line goes to stderr and the caller returns early:
///
/// ```ignore
/// let Some(moto) = Moto::start() else { return };
/// ```
///
/// `component` names the thing and how to get it.
#[track_caller]
pub fn require<T>(component: &str, found: Option<T>) -> Option<T> {
    if found.is_some() {
        return found;
    }
    if require_all() {
        panic!(
            "{component} is not available, and AWSMFA_REQUIRE_ALL=1 requires every test peer; \
             install it (scripts/test installs them all)"
        );
    }
    let caller = std::panic::Location::caller();
    eprintln!(
        "SKIP: {component} is not available ({}:{}); set AWSMFA_REQUIRE_ALL=1 to fail instead",
        caller.file(),
        caller.line()
    );
    None
}

/// The virtualenv the tests use: `$AWSMFA_VENV`, else `<repo>/.venv`.
fn venv_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(v) = std::env::var_os("AWSMFA_VENV").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(v));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    dirs
}

/// `name` from the venv(s), then from PATH.
pub(super) fn find_tool(name: &str) -> Option<PathBuf> {
    venv_dirs()
        .into_iter()
        .map(|d| d.join("bin").join(name))
        .find(|p| is_executable(p))
        .or_else(|| which(name))
}

/// Sends SIGTERM to the group, then SIGKILL if it lingers: servers get a
/// chance to clean up their sockets, but nothing outlives the test.
pub(super) fn stop_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the child's own process group only.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
    }
    if wait_until(child, Instant::now() + Duration::from_secs(3)).is_none() {
        kill_tree(child);
        let _ = child.wait();
    } else {
        // The leader is gone; make sure helpers it left in the group are too.
        kill_tree(child);
    }
}

fn log_file(tag: &str) -> (PathBuf, File) {
    let path = std::env::temp_dir().join(format!("awsmfa-{tag}-{}.log", super::unique_suffix()));
    let file = File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    (path, file)
}

/// moto's server mode: the SDK's real STS wire format, any credentials
/// accepted, MFA codes not checked.
pub struct Moto {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Moto {
    /// Finds `moto_server` (`$AWSMFA_VENV/bin`, `<repo>/.venv/bin`, PATH), starts
    /// it on a free loopback port and waits until it answers HTTP.
    pub fn start() -> Option<Moto> {
        let bin = require(
            "moto_server (pip install \"moto[server]\" into .venv)",
            find_tool("moto_server"),
        )?;
        let port = super::free_port();
        let (log, file) = log_file("moto");
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            // A file, not a pipe: werkzeug logs every request, and an unread
            // pipe would eventually block the server.
            .stdout(file.try_clone().expect("dup log fd"))
            .stderr(file)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let out = fs::read_to_string(&log).unwrap_or_default();
                let _ = fs::remove_file(&log);
                panic!(
                    "{} exited ({status}) before answering:\n{out}",
                    bin.display()
                );
            }
            if http_request(&url, "GET", "/", &[], b"", Duration::from_secs(2)).is_ok() {
                return Some(Moto { child, url, log });
            }
            if Instant::now() >= deadline {
                stop_group(&mut child);
                let out = fs::read_to_string(&log).unwrap_or_default();
                let _ = fs::remove_file(&log);
                panic!(
                    "{} did not answer on {url} within 20 s:\n{out}",
                    bin.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops every resource moto holds (its own reset API).
    pub fn reset(&self) {
        let r = http_request(
            &self.url,
            "POST",
            "/moto-api/reset",
            &[],
            b"",
            super::TIMEOUT,
        )
        .expect("moto reset");
        assert_eq!(r.status, 200, "moto reset: {}", r.body);
    }

    /// What moto logged (one line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        let _ = fs::remove_file(&self.log);
    }
}

fn version_output(bin: &Path, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    out.status
        .success()
        .then(|| format!("{}{}", out.stdout_str(), out.stderr_str()))
}

/// The AWS CLI v2 (`aws --version` says `aws-cli/2…`): `$AWSMFA_AWS_CLI`
/// (scripts/test finds it once), else every `aws` on PATH (a pip-installed v1
/// may come first), then /usr/bin/aws.
pub fn aws_cli_v2() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = std::env::var_os("AWSMFA_AWS_CLI")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .into_iter()
            .collect();
        if let Some(p) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&p).map(|d| d.join("aws")));
        }
        candidates.push(PathBuf::from("/usr/bin/aws"));
        candidates.push(PathBuf::from("/usr/local/bin/aws"));
        candidates
            .into_iter()
            .filter(|p| is_executable(p))
            .find(|p| {
                version_output(p, &["--version"])
                    .is_some_and(|v| v.trim_start().starts_with("aws-cli/2"))
            })
    });
    require(
        "the AWS CLI v2 (Debian package awscli; `aws --version` must say aws-cli/2)",
        found.clone(),
    )
}

/// A Python that can `import boto3`: the venv's, else python3 on PATH.
pub fn venv_python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = venv_dirs()
            .into_iter()
            .map(|d| d.join("bin/python"))
            .collect();
        candidates.extend(which("python3"));
        candidates
            .into_iter()
            .filter(|p| is_executable(p))
            .find(|p| version_output(p, &["-c", "import boto3"]).is_some())
    });
    require(
        "a Python with boto3 (pip install boto3 into .venv)",
        found.clone(),
    )
}

/// Whether the kernel keyring works here (`keyctl show @s` succeeds). It does
/// not inside Docker's default seccomp profile.
pub fn keyutils_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let ok = *FOUND.get_or_init(|| {
        which("keyctl").is_some_and(|k| {
            let mut cmd = Command::new(k);
            cmd.args(["show", "@s"]).stdin(Stdio::null());
            run_with_timeout(cmd, None, Duration::from_secs(10))
                .status
                .success()
        })
    });
    require(
        "the kernel keyring (Debian package keyutils; `keyctl show @s` must succeed)",
        ok.then_some(()),
    )
    .is_some()
}

/// A private D-Bus session bus with an unlocked gnome-keyring Secret Service,
/// living in one test's `Env` (its HOME, XDG dirs and runtime dir).
pub struct SecretService {
    bus: Child,
    keyring: Child,
    address: String,
    secret_tool: PathBuf,
    log: PathBuf,
}

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// The unlock password of the test keyring (not a secret: it protects
/// throw-away data in a temp dir).
const KEYRING_PASSWORD: &str = "awsmfa-test";

impl SecretService {
    /// Starts the bus and the keyring and waits until `secret-tool` can store
    /// and read back a secret.
    pub fn start(env: &Env) -> Option<SecretService> {
        let dbus = require("dbus-daemon (Debian package dbus)", which("dbus-daemon"))?;
        let gkd = require(
            "gnome-keyring-daemon (Debian package gnome-keyring)",
            which("gnome-keyring-daemon"),
        )?;
        let secret_tool = require(
            "secret-tool (Debian package libsecret-tools)",
            which("secret-tool"),
        )?;
        let dir = env.root.join("secret-service");
        fs::create_dir_all(&dir).expect("create secret-service dir");
        // gnome-keyring wants these to exist before it creates the login keyring.
        fs::create_dir_all(&env.cache_home).expect("create cache home");
        fs::create_dir_all(&env.data_home).expect("create data home");
        let socket = env.runtime_dir.join("bus");
        let config = dir.join("bus.conf");
        // Our own config rather than --session: no service activation, so no
        // second, locked keyring daemon gets auto-started behind our back, and
        // the socket is a path inside the test root rather than abstract.
        fs::write(
            &config,
            BUS_CONFIG.replace("@SOCKET@", &socket.to_string_lossy()),
        )
        .expect("write bus config");
        let log = dir.join("daemons.log");
        let log_file = File::create(&log).expect("create daemon log");

        let mut bus_cmd = env.command(&dbus);
        bus_cmd
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone().expect("dup log fd"));
        let mut bus = bus_cmd.spawn().expect("start dbus-daemon");
        let stdout = bus.stdout.take().expect("dbus-daemon stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let mut r = BufReader::new(stdout);
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe open (and drained) for the daemon's lifetime.
            let mut sink = String::new();
            while r.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if !line.trim().is_empty() => line.trim().to_string(),
            _ => {
                stop_group(&mut bus);
                panic!(
                    "dbus-daemon printed no address:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };

        let mut kr_cmd = env.command(&gkd);
        kr_cmd
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("dup log fd"))
            .stderr(log_file);
        let mut keyring = match kr_cmd.spawn() {
            Ok(k) => k,
            Err(e) => {
                stop_group(&mut bus);
                panic!("start gnome-keyring-daemon: {e}");
            }
        };
        // --unlock reads the password until EOF: write it and close stdin.
        if let Some(mut stdin) = keyring.stdin.take() {
            let _ = stdin.write_all(KEYRING_PASSWORD.as_bytes());
        }
        let ss = SecretService {
            bus,
            keyring,
            address,
            secret_tool,
            log,
        };
        ss.wait_ready(env);
        Some(ss)
    }

    fn wait_ready(&self, env: &Env) {
        let probe = format!("probe-{}", super::random_hex(8));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let store = self.secret_tool(
                env,
                &["store", "--label=awsmfa probe", "awsmfa-probe", "1"],
                Some(&probe),
            );
            let last = if store.status.success() {
                let lookup = self.secret_tool(env, &["lookup", "awsmfa-probe", "1"], None);
                if lookup.stdout_str() == probe {
                    let _ = self.secret_tool(env, &["clear", "awsmfa-probe", "1"], None);
                    return;
                }
                lookup.dump()
            } else {
                store.dump()
            };
            assert!(
                Instant::now() < deadline,
                "the Secret Service did not come up within 20 s\n--- last secret-tool ---\n{last}\n--- daemons ---\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `unix:path=…,guid=…`
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// Routes later `env` commands to this Secret Service: sets
    /// `DBUS_SESSION_BUS_ADDRESS` and `AWSMFA_KEYRING=secret-service`.
    pub fn apply(&self, env: &mut Env) {
        env.set("DBUS_SESSION_BUS_ADDRESS", &self.address);
        env.set("AWSMFA_KEYRING", "secret-service");
    }

    /// Runs `secret-tool ARGS` against this service, `input` on stdin (for
    /// `store`).
    pub fn secret_tool(
        &self,
        env: &Env,
        args: &[&str],
        input: Option<&str>,
    ) -> std::process::Output {
        let mut cmd = env.command(&self.secret_tool);
        cmd.args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        run_with_timeout(cmd, input.map(str::as_bytes), Duration::from_secs(10))
    }

    /// What the daemons logged.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        // The keyring first, so it does not log a lost bus as an error.
        stop_group(&mut self.keyring);
        stop_group(&mut self.bus);
    }
}
