//! OpenBao as the place an agent's secrets live: the long-lived key in KV-v2,
//! the MFA seed in the TOTP engine, and awsmfa's own credentials as an AppRole
//! with a response-wrapped SecretID — against a real `bao server -dev`. The
//! AWS secrets engine is an external plugin in OpenBao 2.x, so
//! `source = "openbao-aws:…"` runs against a loopback stand-in of its API.

mod support;

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use support::http::{Reply, Request, TinyServer};
use support::*;

const SERIAL: &str = BAO_SERIAL;
const ROLE: &str = BAO_ROLE;

/// A dev OpenBao and the agent's world around it ([`BaoProfile`]).
struct World {
    bao: OpenBao,
    profile: BaoProfile,
}

impl Deref for World {
    type Target = BaoProfile;

    fn deref(&self) -> &BaoProfile {
        &self.profile
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut BaoProfile {
        &mut self.profile
    }
}

fn world() -> Option<World> {
    if !keyutils_available() {
        return None;
    }
    let bao = OpenBao::start()?;
    let profile = BaoProfile::provision(&bao);
    Some(World { bao, profile })
}

impl World {
    /// [openbao] with this server's address and the AppRole's RoleID.
    fn approle_config(&self, extra: &str) {
        self.profile.approle_config(&[self.bao.url()], extra);
    }

    /// Paths of the requests OpenBao saw after audit entry `mark`.
    fn paths_since(&self, mark: usize) -> Vec<String> {
        self.bao
            .requests_since(mark)
            .into_iter()
            .map(|e| e.path)
            .collect()
    }
}

#[track_caller]
fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "expected {n:?} in:\n{haystack}");
    }
}

// --- AppRole, KV-v2, TOTP --------------------------------------------------------

#[test]
fn approle_with_a_wrapped_secret_id_mints_with_no_add_and_no_terminal() {
    let Some(mut w) = world() else { return };
    w.approle_config("");
    let wrapping = w.bao.wrapped_secret_id(ROLE);
    w.env.set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &wrapping);

    let mark = w.bao.audit().len();
    let out = w.exec();
    w.assert_minted(&out, 1);
    // One unwrap, one login, then the key and a code with that one token.
    assert_eq!(
        w.paths_since(mark),
        [
            "sys/wrapping/unwrap",
            "auth/approle/login",
            "secret/data/aws/dev",
            "totp/code/dev"
        ]
    );
    let reads = w.bao.requests_since(mark);
    assert_eq!(reads[0].client_token.as_deref(), Some(wrapping.as_str()));
    let login = w.bao.issued_tokens();
    assert_eq!(login.len(), 1, "one AppRole login: {login:?}");
    assert_eq!(reads[2].client_token, reads[3].client_token);
    assert_eq!(reads[2].client_token.as_deref(), Some(login[0].as_str()));

    // The session is cached: the next run needs nothing from OpenBao.
    let mark = w.bao.audit().len();
    w.assert_minted(&w.exec(), 1);
    assert!(w.paths_since(mark).is_empty(), "{:?}", w.paths_since(mark));
}

#[test]
fn a_used_wrapping_token_is_refused_as_possibly_intercepted() {
    let Some(mut w) = world() else { return };
    w.approle_config("");
    let wrapping = w.bao.wrapped_secret_id(ROLE);
    w.env.set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &wrapping);
    w.assert_minted(&w.exec(), 1);

    // The same wrapping token again, once the session is gone.
    w.env.run_ok(["clear", "dev"]);
    let out = w.exec();
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[
            "already used or has expired",
            "it may have been intercepted",
        ],
    );
    assert_eq!(w.stub.total_calls(), 1, "no second mint");

    // Someone else unwrapped a fresh one first: the same warning.
    let stolen = w.bao.wrapped_secret_id(ROLE);
    let (status, body) = w
        .bao
        .call("POST", "sys/wrapping/unwrap", Some(&stolen), &[], None);
    assert_eq!(status, 200, "{body}");
    w.env.set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &stolen);
    let out = w.exec();
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[
            "already used or has expired",
            "it may have been intercepted",
        ],
    );
    assert!(
        !out.stderr_str().contains(&stolen),
        "the wrapping token is not repeated in the message"
    );
    assert_eq!(w.stub.total_calls(), 1);
}

#[test]
fn a_wrapped_secret_id_in_secret_id_file_works_too() {
    let Some(w) = world() else { return };
    w.approle_config("secret_id_file = \"~/.config/awsmfa/secret-id\"");
    let wrapping = w.bao.wrapped_secret_id(ROLE);
    w.env.write_file(
        w.env.config_home.join("awsmfa/secret-id"),
        &format!("{wrapping}\n"),
    );
    assert!(w.env.var("AWSMFA_OPENBAO_WRAPPED_SECRET_ID").is_none());

    let mark = w.bao.audit().len();
    w.assert_minted(&w.exec(), 1);
    let reads = w.bao.requests_since(mark);
    assert_eq!(reads[0].path, "sys/wrapping/unwrap");
    assert_eq!(reads[0].client_token.as_deref(), Some(wrapping.as_str()));
}

#[test]
fn bao_token_and_bao_addr_need_no_approle() {
    let Some(mut w) = world() else { return };
    w.write_config(""); // no [openbao] at all
    let token = w
        .bao
        .create_token(&[ROLE], Some(&format!("tok-{}", random_hex(12))));
    let url = w.bao.url().to_string();
    w.env.set("BAO_ADDR", &url).set("BAO_TOKEN", &token);

    let out = w.env.run(["doctor"]);
    assert_ok(&out);
    assert_contains(
        &out.stdout_str(),
        &[&format!(
            "ok    profile dev: OpenBao at {} for keys from secret/aws/dev: token valid",
            w.bao.url()
        )],
    );

    let mark = w.bao.audit().len();
    w.assert_minted(&w.exec(), 1);
    let reads = w.bao.requests_since(mark);
    let paths: Vec<&str> = reads.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["secret/data/aws/dev", "totp/code/dev"]);
    assert!(
        reads
            .iter()
            .all(|e| e.client_token.as_deref() == Some(token.as_str())),
        "{reads:#?}"
    );
}

// --- doctor ----------------------------------------------------------------------

#[test]
fn doctor_checks_the_wrapped_secret_id_without_consuming_it() {
    let Some(mut w) = world() else { return };
    w.approle_config("");
    let wrapping = w.bao.wrapped_secret_id(ROLE);
    w.env.set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &wrapping);
    let url = w.bao.url().to_string();

    let mark = w.bao.audit().len();
    let out = w.env.run(["doctor"]);
    assert_ok(&out);
    assert_contains(
        &out.stdout_str(),
        &[
            &format!(
                "ok    profile dev: OpenBao at {url} for keys from secret/aws/dev: wrapped SecretID valid (not unwrapped)"
            ),
            &format!(
                "ok    profile dev: OpenBao at {url} for MFA codes from totp/code/dev: wrapped SecretID valid (not unwrapped)"
            ),
        ],
    );
    let paths = w.paths_since(mark);
    assert!(
        paths.iter().any(|p| p == "sys/wrapping/lookup"),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p == "sys/wrapping/unwrap" || p == "auth/approle/login"),
        "doctor must not use up the SecretID: {paths:?}"
    );
    assert_eq!(w.stub.total_calls(), 0, "doctor mints nothing");

    // Without role_id the login cannot work: doctor must not call that fine.
    w.write_config(&format!("address = \"{url}\""));
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    assert_contains(
        &out.stdout_str(),
        &[
            "FAIL  profile dev: keys from secret/aws/dev: ",
            "needs `role_id` under [openbao]",
        ],
    );
    let out = w.exec();
    assert_code(&out, 1);
    assert_contains(&out.stderr_str(), &["needs `role_id` under [openbao]"]);
    w.approle_config("");

    // Still good for the real thing.
    w.assert_minted(&w.exec(), 1);

    // And once used, doctor says so.
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    assert_contains(
        &out.stdout_str(),
        &[
            "FAIL  profile dev: keys from secret/aws/dev: the wrapped SecretID is not valid",
            "it was used already or expired",
        ],
    );
}

#[test]
fn openbao_down_is_reported_by_doctor_and_exec() {
    // No server at all: this one needs neither bao nor a keyring.
    let stub = StsStub::start();
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url());
    env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n"
    ));
    let url = format!("http://127.0.0.1:{}", free_port());
    env.write_awsmfa_config(&format!(
        "[openbao]\naddress = \"{url}\"\nrole_id = \"some-role\"\n\n[profiles.dev]\n\
         keys = \"openbao:secret/aws/dev\"\nmfa = \"openbao:totp/code/dev\"\n"
    ));
    env.set(
        "AWSMFA_OPENBAO_WRAPPED_SECRET_ID",
        "s.not-a-real-wrapping-token",
    );

    let out = env.run(["doctor"]);
    assert_code(&out, 1);
    assert_contains(
        &out.stdout_str(),
        &[
            &format!("FAIL  profile dev: keys from secret/aws/dev: cannot reach OpenBao at {url}"),
            &format!(
                "FAIL  profile dev: MFA codes from totp/code/dev: cannot reach OpenBao at {url}"
            ),
        ],
    );

    let start = Instant::now();
    let out = env.run(["exec", "dev", "--", "true"]);
    assert_code(&out, 1);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_contains(
        &out.stderr_str(),
        &[&format!("cannot reach OpenBao at {url}")],
    );
    assert_eq!(stub.total_calls(), 0);
}

// --- the AWS secrets engine (a loopback stand-in) ---------------------------------

/// What OpenBao's AWS secrets engine answers at `/v1/aws/sts/deploy` (and
/// `sys/health`, `auth/token/lookup-self` for doctor), for one token.
struct AwsEngine {
    server: TinyServer,
    /// (access_key, secret_key, security_token) handed out.
    issued: Arc<Mutex<Vec<(String, String, String)>>>,
}

const LEASE: u64 = 900;

impl AwsEngine {
    fn start(token: &str) -> AwsEngine {
        let issued = Arc::new(Mutex::new(Vec::new()));
        let (handed_out, token) = (issued.clone(), token.to_string());
        let server = TinyServer::start(move |req| answer(req, &token, &handed_out));
        AwsEngine { server, issued }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// (method, path, X-Vault-Token) of the requests for the STS path (what
    /// costs a new IAM credential).
    fn sts_requests(&self) -> Vec<(String, String, Option<String>)> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.target == "/v1/aws/sts/deploy")
            .map(|r| {
                let token = r.header("x-vault-token").map(str::to_string);
                (r.method, r.target, token)
            })
            .collect()
    }

    fn issued(&self) -> Vec<(String, String, String)> {
        self.issued.lock().unwrap().clone()
    }
}

fn answer(req: &Request, token: &str, issued: &Mutex<Vec<(String, String, String)>>) -> Reply {
    let authorized = req.header("x-vault-token") == Some(token);
    let path = req.target.split('?').next().unwrap_or("");
    let denied = Reply::json(403, &json!({"errors": ["permission denied"]}));
    match (req.method.as_str(), path) {
        ("GET", "/v1/sys/health") => Reply::json(
            200,
            &json!({"initialized": true, "sealed": false, "standby": false, "version": "2.7.2"}),
        ),
        ("GET", "/v1/auth/token/lookup-self") if authorized => {
            Reply::json(200, &json!({"data": {"policies": ["deploy"], "ttl": 3600}}))
        }
        ("GET", "/v1/aws/sts/deploy") if authorized => {
            let creds = (
                format!("ASIA{}", random_hex(8).to_ascii_uppercase()),
                format!("vended/{}", random_hex(16)),
                format!("FwoGZXIvYXdzE{}", random_hex(32)),
            );
            issued.lock().unwrap().push(creds.clone());
            Reply::json(
                200,
                &json!({
                    "request_id": random_hex(8),
                    "lease_id": format!("aws/sts/deploy/{}", random_hex(8)),
                    "renewable": false,
                    "lease_duration": LEASE,
                    "data": {
                        "access_key": creds.0,
                        "secret_key": creds.1,
                        "security_token": creds.2,
                        "arn": "arn:aws:sts::123456789012:assumed-role/deploy/vault-token",
                    },
                    "wrap_info": null,
                    "warnings": null,
                    "auth": null,
                }),
            )
        }
        ("GET", "/v1/auth/token/lookup-self" | "/v1/aws/sts/deploy") => denied,
        _ => Reply::json(404, &json!({"errors": []})),
    }
}

#[test]
fn openbao_aws_source_vends_sts_credentials_without_mfa() {
    if !keyutils_available() {
        return;
    }
    let token = format!("tok-{}", random_hex(12));
    let engine = AwsEngine::start(&token);
    let sts = StsStub::start();
    let mut env = Env::new();
    env.set_sts_endpoint(&sts.url());
    env.set("BAO_TOKEN", &token);
    env.write_aws_config("[profile deploy]\nregion = eu-west-1\n");
    // Vended sessions last LEASE (15 min), no longer than the default refresh_before:
    // they are reused for the first half of their lease rather than never.
    env.write_awsmfa_config(&format!(
        "[openbao]\naddress = \"{}\"\n\n[profiles.deploy]\nsource = \"openbao-aws:aws/deploy\"\n",
        engine.url()
    ));

    let out = env.run(["doctor"]);
    assert_contains(
        &out.stdout_str(),
        &[&format!(
            "ok    profile deploy: OpenBao at {} for sessions from aws/deploy: token valid",
            engine.url()
        )],
    );
    assert!(
        engine.sts_requests().is_empty(),
        "doctor fetches no credentials"
    );

    let print = [
        "exec",
        "deploy",
        "--",
        "printenv",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_REGION",
    ];
    let before = SystemTime::now();
    let out = env.run(print);
    let after = SystemTime::now();
    assert_ok(&out);
    let lines: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
    let issued = engine.issued();
    assert_eq!(issued.len(), 1);
    let (id, secret, session) = &issued[0];
    assert_eq!(
        lines[..3],
        [id.clone(), secret.clone(), session.clone()],
        "{}",
        out.dump()
    );
    let expiry = parse_rfc3339(&lines[3]).unwrap_or_else(|| panic!("{}", out.dump()));
    let lease = Duration::from_secs(LEASE);
    assert!(
        expiry + Duration::from_secs(2) >= before + lease
            && expiry <= after + lease + Duration::from_secs(2),
        "AWS_CREDENTIAL_EXPIRATION {} is not about now + {LEASE} s",
        lines[3]
    );
    assert_eq!(lines[4], "eu-west-1");
    let reqs = engine.sts_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].0, "GET");
    assert_eq!(reqs[0].2.as_deref(), Some(token.as_str()));
    assert_eq!(sts.total_calls(), 0, "no MFA, no STS call");

    // Cached: the same credentials, no second request.
    let again = env.run(print);
    assert_ok(&again);
    assert_eq!(again.stdout_str(), out.stdout_str());
    assert_eq!(engine.sts_requests().len(), 1, "served from the cache");

    // --min-remaining: the lease is known only once fetched, so a minimum
    // longer than it is reported after the fetch, and nothing runs.
    let marker = env.root.join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let out = env.run([&["exec", "deploy", "--min-remaining", "20m"][..], &touch].concat());
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &["--min-remaining 20m is longer than the session OpenBao leased for deploy (15m)"],
    );
    assert!(!marker.exists(), "the command ran");
    assert_eq!(
        engine.sts_requests().len(),
        2,
        "the cached lease was too short"
    );
    // The new lease meets a shorter minimum, from the cache.
    let out = env.run([&["exec", "deploy", "--min-remaining", "10m"][..], &touch].concat());
    assert_ok(&out);
    assert!(marker.exists());
    assert_eq!(engine.sts_requests().len(), 2);

    // A token OpenBao refuses: its words, and nothing to run.
    env.run_ok(["clear", "deploy"]);
    env.set("BAO_TOKEN", "tok-wrong");
    let out = env.run(print);
    assert_code(&out, 1);
    assert_contains(&out.stderr_str(), &["aws/sts/deploy", "permission denied"]);
    assert_eq!(engine.sts_requests().len(), 3);
    assert_eq!(engine.issued().len(), 2);
    assert_eq!(sts.total_calls(), 0);
}

// --- where OpenBao's secrets must not go -------------------------------------------

/// Every process's argv, over and over, until `stop`: the distinct ones seen.
fn watch_argv(stop: Arc<AtomicBool>) -> JoinHandle<BTreeSet<Vec<u8>>> {
    thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for entry in dir.flatten() {
                    let name = entry.file_name();
                    if !name
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    {
                        continue;
                    }
                    if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                        seen.insert(cmdline);
                    }
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

/// Runs `args` while watching every argv on the machine.
fn run_watched(env: &Env, args: &[&str]) -> (std::process::Output, BTreeSet<Vec<u8>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_argv(stop.clone());
    let out = env.run(args);
    stop.store(true, Ordering::SeqCst);
    (out, watcher.join().expect("argv watcher"))
}

#[track_caller]
fn assert_nowhere(
    what: &str,
    env: &Env,
    out: &std::process::Output,
    argvs: &BTreeSet<Vec<u8>>,
    needles: &[(&str, &str)],
) {
    let said = format!("{}{}", out.stdout_str(), out.stderr_str());
    for (name, secret) in needles {
        assert!(
            !said.contains(secret),
            "{what}: the {name} is in awsmfa's output:\n{said}"
        );
        for argv in argvs {
            assert!(
                find_bytes(argv, secret.as_bytes()).is_none(),
                "{what}: the {name} is in an argv: {:?}",
                String::from_utf8_lossy(argv)
            );
        }
        let hits = env.scan_for(&[secret]);
        assert!(
            hits.is_empty(),
            "{what}: the {name} is on disk in {hits:#?}"
        );
    }
}

#[test]
fn no_openbao_secret_reaches_a_file_an_argv_or_the_output() {
    let Some(mut w) = world() else { return };
    w.approle_config("");
    let secret_id = format!("secretid-{}", random_hex(16));
    let wrapping = w.bao.wrapped_custom_secret_id(ROLE, &secret_id);
    w.env.set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &wrapping);
    // A slow STS keeps awsmfa alive, tokens in memory, while argv is watched.
    w.stub.delay(Duration::from_millis(1500));

    let (out, argvs) = run_watched(&w.env, &["-v", "exec", "dev", "--", "true"]);
    assert_ok(&out);
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    assert!(
        out.stderr_str().contains("logged in to OpenBao"),
        "-v is on: {}",
        out.dump()
    );
    assert!(
        argvs
            .iter()
            .any(|a| find_bytes(a, b"exec\0dev\0--\0true").is_some()),
        "the watcher saw awsmfa running"
    );
    assert!(
        argvs
            .iter()
            .any(|a| find_bytes(a, w.bao.root_token().as_bytes()).is_some()),
        "the watcher finds a secret in an argv: the dev server's root token, given with -dev-root-token-id"
    );
    let client = w.bao.issued_tokens();
    assert_eq!(client.len(), 1, "awsmfa's AppRole login: {client:?}");
    let issued = w.stub.last_issued().expect("issued");
    assert_nowhere(
        "AppRole",
        &w.env,
        &out,
        &argvs,
        &[
            ("wrapping token", &wrapping),
            ("SecretID", &secret_id),
            ("AppRole client token", &client[0]),
            ("long-lived secret from KV", &w.key.secret),
            ("session secret", &issued.secret_access_key),
            ("session token", &issued.session_token),
        ],
    );

    // The same with a token in BAO_TOKEN.
    w.env.run_ok(["clear", "dev"]);
    as_if_a_step_passed(&w.env, &w.stub);
    let token = w
        .bao
        .create_token(&[ROLE], Some(&format!("tok-{}", random_hex(16))));
    w.env.set("BAO_TOKEN", &token);
    w.env.unset("AWSMFA_OPENBAO_WRAPPED_SECRET_ID");
    let (out, argvs) = run_watched(&w.env, &["-v", "exec", "dev", "--", "true"]);
    assert_ok(&out);
    assert_eq!(w.stub.successes("GetSessionToken"), 2);
    let issued = w.stub.last_issued().expect("issued");
    assert_nowhere(
        "BAO_TOKEN",
        &w.env,
        &out,
        &argvs,
        &[
            ("OpenBao token", &token),
            ("long-lived secret from KV", &w.key.secret),
            ("session secret", &issued.secret_access_key),
            ("session token", &issued.session_token),
        ],
    );
}
