//! Property tests for every parser of outside input, through the library: the
//! `~/.aws/config` reader, config.toml, a repository's `.awsmfa.toml`, the
//! secrets-manager hand-over, the hook's state in the shell's environment, and
//! the answers of STS (XML, which the SDK parses)
//! and OpenBao (JSON, which awsmfa reads), served by a loopback server. Whatever
//! the bytes, each one answers with a value or an error — never a panic or a
//! hang — and what it accepts keeps awsmfa's own rules (names in their character
//! sets, errors that name file and line, no secret in a message).
//!
//! Inputs are built from fragments of each format mixed with arbitrary text, or
//! from a valid document cut and patched, so the cases reach deep into the
//! grammar rather than failing at the first byte.

mod support;

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awsmfa::config::AwsConfig;
use awsmfa::config::names::{is_command_name, is_profile_name};
use awsmfa::config::settings::{Settings, parse_root_file};
use awsmfa::creds::{Creds, LongLivedKey};
use awsmfa::sts::{self, Endpoint, Origin, RoleRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use support::http::{Reply, TinyServer};

fn text_from(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(fragments).prop_map(str::to_string),
        1 => "\\PC{0,6}",
        1 => prop::sample::select(&["\n", "\r\n", "\t", " ", "\u{0}", "\u{1b}", "\u{202e}"][..])
            .prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

const INI: &[&str] = &[
    "[profile ",
    "[default]",
    "[sso-session x]",
    "[services s]",
    "]",
    "\n",
    "\n  ",
    "=",
    ":",
    " = ",
    "region",
    "mfa_serial",
    "role_arn",
    "source_profile",
    "duration_seconds",
    "session_ttl",
    "endpoint_url",
    "mfa_process",
    "credential_process",
    "s3 =\n  x = 1",
    "#",
    ";",
    "90m",
    "3600",
    "-1",
    "99999999999999999999",
    "arn:aws:iam::1:mfa/x",
    "dev",
];

const TOML: &[&str] = &[
    "[roots.",
    "[roots.\"",
    "[profiles.",
    "[openbao]",
    "]",
    "\"",
    "\n",
    " = ",
    "profile",
    "wrap",
    "refresh_before",
    "doppler",
    "infisical",
    "{ project_id = \"p\", env = \"e\" }",
    "server",
    "min_remaining",
    "mfa",
    "keys",
    "session_ttl",
    "[\"tofu\", \"cd\"]",
    "[",
    ",",
    "true",
    "\"15m\"",
    "\"a/b\"",
    "\"x;y\"",
    "\"tf-x\"",
    "'",
    "#",
    "\\n",
    "\\u0000",
    "~/",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn aws_config_reader_never_panics(text in text_from(INI)) {
        let path = PathBuf::from("/h/.aws/config");
        match AwsConfig::parse(&text, path) {
            Ok(cfg) => {
                for p in &cfg.profiles {
                    prop_assert!(p.line >= 1);
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/h/.aws/config"), "{}", msg);
            }
        }
    }

    #[test]
    fn config_toml_keeps_its_name_rules(text in text_from(TOML)) {
        match Settings::parse(&text, PathBuf::from("/c/config.toml")) {
            Ok(s) => {
                prop_assert!(s.wrap.iter().all(|w| is_command_name(w)), "{:?}", s.wrap);
                prop_assert!(s.profiles.keys().all(|p| is_profile_name(p)));
                prop_assert!(s.roots.values().all(|r| is_profile_name(&r.profile)));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/c/config.toml"), "{}", msg);
            }
        }
    }

    #[test]
    fn root_files_keep_their_name_rules(text in text_from(TOML)) {
        let path = Path::new("/r/.awsmfa.toml");
        match parse_root_file(&text, path) {
            Ok(root) => {
                prop_assert!(is_profile_name(&root.profile), "{:?}", root.profile);
                // Only the user's own config.toml decides how sessions are served.
                prop_assert!(root.server.is_none() && root.min_remaining.is_none());
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/r/.awsmfa.toml"), "{}", msg);
            }
        }
    }

    /// Whatever a secrets manager leaves on the descriptor, the inner awsmfa
    /// refuses it (a nonce it did not write cannot match) without a panic.
    #[test]
    fn the_chain_hand_over_refuses_what_it_did_not_send(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\{\"v\":1,\"nonce\":\"[0-9a-f]{0,40}\",\"profile\":\"dev\".{0,80}".prop_map(String::into_bytes),
        ]
    ) {
        let (read, mut write) = std::io::pipe().expect("pipe");
        write.write_all(&bytes).expect("fill pipe");
        drop(write);
        let fd = read.into_raw_fd();
        let arg = format!("{fd}:{}", "ab".repeat(16));
        let result = awsmfa::exec::receive_handover(&arg, "dev");
        prop_assert!(result.is_err());
    }
}

// --- answers from the network ---------------------------------------------------------

/// Planted in answers as a session's secrets: a message must never show them.
const SECRET: &str = "PlantedSecret/0123456789abcdef+XYZ";
const TOKEN: &str = "PlantedSessionToken/0123456789+abc==";

/// What a loopback server answers, by request path: status, content type, body.
type Answers = Arc<Mutex<Vec<(&'static str, u16, &'static str, String)>>>;

/// A server that answers each request from `Answers` (404 for other paths).
fn answering() -> (TinyServer, Answers) {
    let answers: Answers = Arc::default();
    let current = answers.clone();
    let server = TinyServer::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        let found = current
            .lock()
            .unwrap()
            .iter()
            .find(|(p, ..)| *p == path)
            .map(|(_, status, kind, body)| (*status, *kind, body.clone()));
        let (status, kind, body) = found.unwrap_or((404, "text/plain", String::new()));
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), kind.into())],
            body,
        }
    });
    (server, answers)
}

/// Runs `cases` cases of `strategy` through `test` (proptest's runner, for a
/// server that lives across the cases).
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// `valid` cut short, or with a range replaced by one of `pieces`.
fn mutated(valid: String, pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(String::new()),
        prop::sample::select(pieces).prop_map(str::to_string),
        "\\PC{0,6}",
    ];
    (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        piece,
    )
        .prop_map(move |(a, b, piece)| {
            // `valid` is ASCII: every index is a character boundary.
            let (a, b) = (a.index(valid.len() + 1), b.index(valid.len() + 1));
            let (from, to) = (a.min(b), a.max(b));
            format!("{}{piece}{}", &valid[..from], &valid[to..])
        })
}

const STS_XML: &[&str] = &[
    "<GetSessionTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">",
    "</GetSessionTokenResponse>",
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">",
    "</AssumeRoleResponse>",
    "<GetSessionTokenResult>",
    "</GetSessionTokenResult>",
    "<AssumeRoleResult>",
    "</AssumeRoleResult>",
    "<Credentials>",
    "</Credentials>",
    "<AccessKeyId>",
    "ASIAPROPTEST",
    "</AccessKeyId>",
    "<SecretAccessKey>",
    SECRET,
    "</SecretAccessKey>",
    "<SessionToken>",
    TOKEN,
    "</SessionToken>",
    "<Expiration>",
    "2099-11-22T18:36:00Z",
    "2026-11-22T18:36:00Z",
    "9999-12-31T23:59:59Z",
    "99999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2026-02-30T25:61:61Z",
    "1e400",
    "</Expiration>",
    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">",
    "</ErrorResponse>",
    "<Error>",
    "</Error>",
    "<Type>Sender</Type>",
    "<Code>",
    "AccessDenied",
    "ExpiredToken",
    "InvalidClientTokenId",
    "ValidationError",
    "</Code>",
    "<Message>",
    "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
    "</Message>",
    "<RequestId>",
    "</RequestId>",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<!-- c -->",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "&#65;",
    "&bogus;",
    "<!DOCTYPE x [<!ENTITY e \"eeee\">]>",
    "&e;",
    "<a b='c'>",
    "</a>",
    "&",
    "<",
    ">",
    "\"",
    "\n",
];

fn sts_document(action: &str) -> String {
    format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
         <{action}Result><Credentials><AccessKeyId>ASIAPROPTEST</AccessKeyId>\
         <SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken>\
         <Expiration>2099-11-22T18:36:00Z</Expiration></Credentials></{action}Result>\n\
         <ResponseMetadata><RequestId>0f1e2d3c</RequestId></ResponseMetadata>\n\
         </{action}Response>\n"
    )
}

/// STS XML cases: `(status, body, whether the call is AssumeRole)`.
fn sts_answers() -> impl Strategy<Value = (u16, String, bool)> {
    // The document as it is, too: the cases must reach a session.
    let body = |action: &str| {
        prop_oneof![
            3 => text_from(STS_XML),
            6 => mutated(sts_document(action), STS_XML),
            1 => Just(sts_document(action)),
        ]
    };
    // No 5xx and no throttling code: the SDK would retry those, with backoff,
    // the same answer (tests/faults.rs covers retries).
    let status = prop::sample::select(&[200u16, 200, 200, 400, 403][..]);
    prop_oneof![
        (status.clone(), body("GetSessionToken"), Just(false)),
        (status, body("AssumeRole"), Just(true)),
    ]
}

/// Whatever STS answers, GetSessionToken and AssumeRole end in seconds with
/// the session it sent, whole and not yet over, or with an error that names
/// no secret of the answer.
#[test]
fn sts_answers_are_a_session_or_an_error_without_secrets() {
    let (server, answers) = answering();
    let endpoint = Endpoint {
        region: "us-east-1".into(),
        url: Some(server.url()),
        origin: Origin::StsVar,
    };
    let key = LongLivedKey {
        access_key_id: "AKIAPROPTEST".into(),
        secret_access_key: SecretString::from("long-lived-secret"),
    };
    let base = Creds {
        access_key_id: "ASIABASE".into(),
        secret_access_key: SecretString::from("base-secret"),
        session_token: SecretString::from("base-token"),
        expiration: 0,
    };
    let sessions = AtomicUsize::new(0);
    run_cases(128, sts_answers(), |(status, body, role)| {
        *answers.lock().unwrap() = vec![("/", status, "text/xml", body.clone())];
        let start = Instant::now();
        let answer = if role {
            let request = RoleRequest {
                role_arn: "arn:aws:iam::123456789012:role/r",
                session_name: "prop",
                external_id: None,
                duration: Duration::from_secs(900),
            };
            sts::assume_role(&endpoint, &base, &request)
        } else {
            let code = SecretString::from("123456");
            let serial = "arn:aws:iam::123456789012:mfa/prop";
            sts::get_session_token(&endpoint, &key, serial, &code, Duration::from_secs(3600))
        };
        let took = start.elapsed();
        prop_assert!(took < Duration::from_secs(10), "took {took:?}");
        match answer.expect("an SDK client") {
            // What STS sent, and a session that can be used: the SDK itself
            // fills a missing element with "" or the epoch.
            // (A mutation may have changed a value inside its element: then
            // the session is that value, still exactly what was sent.)
            Ok(creds) => {
                let sent = |element: &str, value: &str| {
                    !value.is_empty() && body.contains(&format!("<{element}>{value}</{element}>"))
                };
                prop_assert!(sent("AccessKeyId", &creds.access_key_id), "{}", body);
                prop_assert!(
                    sent("SecretAccessKey", creds.secret_access_key.expose_secret()),
                    "{}",
                    body
                );
                prop_assert!(
                    sent("SessionToken", creds.session_token.expose_secret()),
                    "{}",
                    body
                );
                prop_assert!(creds.expiration > awsmfa::time::now());
                sessions.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                prop_assert!(!msg.contains(SECRET) && !msg.contains(TOKEN), "{}", msg);
            }
        }
        Ok(())
    });
    assert!(sessions.into_inner() > 0, "no case reached a session");
}

const OPENBAO_PATHS: [&str; 5] = [
    "/v1/sys/wrapping/unwrap",
    "/v1/auth/approle/login",
    "/v1/secret/data/x",
    "/v1/totp/code/x",
    "/v1/aws/sts/deploy",
];

/// The answers of a working OpenBao, for `OPENBAO_PATHS` in order.
fn openbao_documents() -> [Value; 5] {
    [
        json!({"data": {"secret_id": SECRET}}),
        json!({"auth": {"client_token": TOKEN}}),
        json!({"data": {"data": {"access_key_id": "AKIAPROPTEST", "secret_access_key": SECRET}}}),
        json!({"data": {"code": "123456"}}),
        json!({"lease_duration": 3600, "data":
            {"access_key": "ASIAPROPTEST", "secret_key": SECRET, "security_token": TOKEN}}),
    ]
}

const JSON_KEYS: &[&str] = &[
    "data",
    "auth",
    "client_token",
    "secret_id",
    "code",
    "lease_duration",
    "access_key",
    "secret_key",
    "security_token",
    "access_key_id",
    "secret_access_key",
    "errors",
    "sealed",
    "",
];

const JSON_TEXT: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"data\"",
    "\"auth\"",
    "\"lease_duration\"",
    "\"errors\"",
    "\"client_token\"",
    "\"secret_id\"",
    "\"code\"",
    "null",
    "true",
    "1e999",
    "-1",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\\",
    "\n",
];

/// Any JSON value, with OpenBao's keys and awkward numbers and strings.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(&[0i64, 1, -1, 3600, i64::MAX, i64::MIN][..]).prop_map(Value::from),
        prop::sample::select(&[u64::MAX, 253_402_300_800][..]).prop_map(Value::from),
        prop::sample::select(&[1.5f64, -0.0, 1e300][..]).prop_map(Value::from),
        prop::sample::select(&[SECRET, TOKEN, "", "123456", "\u{0}", "permission denied"][..])
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(JSON_KEYS), inner), 0..6).prop_map(
                |fields| Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                )
            ),
        ]
    })
}

/// OpenBao cases: `(which read, which answer is broken, its status, its body)`.
/// The read is KV-v2, TOTP or the AWS engine; the broken answer is the
/// unwrap, the login or that read.
fn openbao_answers() -> impl Strategy<Value = (usize, usize, u16, String)> {
    (2..5usize, 0..3usize).prop_flat_map(|(read, which)| {
        let broken = if which == 2 { read } else { which };
        let valid = openbao_documents()[broken].to_string();
        let body = prop_oneof![
            4 => json_value().prop_map(|v| v.to_string()),
            4 => mutated(valid.clone(), JSON_TEXT),
            2 => text_from(JSON_TEXT),
            1 => Just(valid),
        ];
        // No 5xx: a cluster's failover waits are tests/openbao_cluster.rs's.
        let status = prop::sample::select(&[200u16, 200, 200, 400, 403, 404][..]);
        (Just(read), Just(broken), status, body)
    })
}

/// Whatever OpenBao answers to the unwrap, the AppRole login, or a read of a
/// key, a TOTP code or an AWS session, awsmfa ends in seconds with the value
/// or an error that says what OpenBao gave.
#[test]
fn openbao_answers_are_a_value_or_an_error() {
    let (server, answers) = answering();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_id_file = dir.path().join("wrapped");
    std::fs::write(&secret_id_file, "wrapping-token\n").expect("secret_id_file");
    let toml = format!(
        "[openbao]\naddress = \"{}\"\nrole_id = \"role\"\nsecret_id_file = \"{}\"\nfailover_wait = \"1s\"\n",
        server.url(),
        secret_id_file.display()
    );
    let settings = Settings::parse(&toml, dir.path().join("config.toml")).expect("settings");
    let values = AtomicUsize::new(0);
    run_cases(128, openbao_answers(), |(read, broken, status, body)| {
        let documents = openbao_documents();
        *answers.lock().unwrap() = OPENBAO_PATHS
            .iter()
            .zip(documents)
            .enumerate()
            .map(|(i, (&path, valid))| {
                let (status, body) = if i == broken {
                    (status, body.clone())
                } else {
                    (200, valid.to_string())
                };
                (path, status, "application/json", body)
            })
            .collect();
        let client = awsmfa::openbao::Client::new(settings.openbao.as_ref()).expect("a client");
        let start = Instant::now();
        // The AWS engine's session, with when it ends.
        let result = match read {
            2 => client
                .kv_fields("secret/x", ["access_key_id", "secret_access_key"])
                .map(|_| None),
            3 => client.totp("totp/code/x").map(|_| None),
            _ => client
                .aws_sts("aws/deploy")
                .map(|creds| Some(creds.expiration)),
        };
        let took = start.elapsed();
        prop_assert!(took < Duration::from_secs(10), "took {took:?}");
        match result {
            Ok(expiration) => {
                prop_assert!(expiration.is_none_or(awsmfa::time::plausible));
                values.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(!msg.is_empty());
            }
        }
        Ok(())
    });
    assert!(values.into_inner() > 0, "no case reached a value");
}

/// The hook's state comes back from the shell's environment, where anything
/// may have set it: it is only ever compared. Whatever bytes it holds, unless
/// they are the digest hook-env itself gave, hook-env undoes what the shell
/// applied and applies the root afresh — the same output, byte for byte,
/// whatever the bytes — and with that digest it prints nothing.
#[test]
fn hook_state_from_the_environment_is_only_compared() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use support::*;

    let env = Env::new();
    env.write_aws_config("[profile dev]\nmfa_serial = arn:aws:iam::123456789012:mfa/dev\n");
    env.write_awsmfa_config("[roots.infra]\nprofile = \"dev\"\n");
    let root = env.work.join("infra");
    std::fs::create_dir_all(&root).expect("root dir");
    let hook = |state: Option<&[u8]>| {
        let mut cmd = env.cmd(["hook-env", "bash"]);
        cmd.current_dir(&root);
        match state {
            Some(state) => cmd.env("__AWSMFA_STATE", OsStr::from_bytes(state)),
            None => cmd.env_remove("__AWSMFA_STATE"),
        };
        env.run_cmd(cmd)
    };
    let fresh = hook(None);
    assert_ok(&fresh);
    let text = fresh.stdout_str();
    assert!(text.contains("terragrunt"), "{text}");
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("__awsmfa_state="))
        .expect("a state line")
        .trim_matches('\'')
        .to_string();
    assert!(hook(Some(digest.as_bytes())).stdout.is_empty());
    // Bytes a shell can hold in a variable: anything but NUL.
    let state = prop::collection::vec(1u8..=255, 0..160);
    run_cases(64, state, |state| {
        let out = hook(Some(&state));
        prop_assert!(out.status.success(), "{}", out.dump());
        prop_assert!(!out.stderr_str().contains("panicked"), "{}", out.dump());
        if state == digest.as_bytes() {
            prop_assert!(out.stdout.is_empty());
        } else if state.is_empty() {
            prop_assert_eq!(&out.stdout, &fresh.stdout);
        } else {
            // Some state: whatever it was is first undone, by the shell's own
            // list of what it defined.
            let undone = [
                b"__awsmfa_leave
"
                .as_slice(),
                &fresh.stdout,
            ]
            .concat();
            prop_assert_eq!(&out.stdout, &undone);
        }
        Ok(())
    });
}
