//! Proves the test support behaves before other tests lean on it: the STS stub
//! answers like STS (to a raw client, the Rust SDK, and the AWS CLI), the pty
//! is a real terminal, `Env` isolates, and the real peers start.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::http::xml_text;
use support::sigv4;
use support::*;

const KEY: &str = "AKIASTUBTESTKEY00001";
const SECRET: &str = "longlivedsecret/abc+def0123456789ABCDEFG";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
// 160-bit seed, base32 (as IAM shows virtual MFA seeds).
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const ROLE: &str = "arn:aws:iam::123456789012:role/tf-deployer";

fn stub() -> StsStub {
    let s = StsStub::start();
    s.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
    s
}

fn get_session_token(stub: &StsStub, code: &str) -> HttpResponse {
    sts_request(
        &stub.url(),
        KEY,
        SECRET,
        None,
        &[
            ("Action", "GetSessionToken"),
            ("Version", "2011-06-15"),
            ("DurationSeconds", "3600"),
            ("SerialNumber", SERIAL),
            ("TokenCode", code),
        ],
    )
}

/// A code that is valid now but not within ±1 step: certainly wrong.
fn wrong_code() -> String {
    let valid: Vec<String> = (-1..=1).map(|s| totp_at(SEED, s)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[test]
fn dates_round_trip() {
    let t = UNIX_EPOCH + Duration::from_secs(1_795_327_200);
    assert_eq!(support::rfc3339(t), "2026-11-22T06:00:00Z");
    assert_eq!(support::parse_rfc3339("2026-11-22T06:00:00Z"), Some(t));
    assert_eq!(support::parse_rfc3339("2026-11-22T06:00:00.250Z"), Some(t));
    assert_eq!(support::http_date(t), "Sun, 22 Nov 2026 06:00:00 GMT");
}

#[test]
fn get_session_token_with_correct_code() {
    let stub = stub();
    let r = get_session_token(&stub, &totp_now(SEED));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with(
        "<GetSessionTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    let issued = stub.last_issued().expect("issued");
    assert_eq!(r.xml("AccessKeyId").unwrap(), issued.access_key_id);
    assert_eq!(r.xml("SecretAccessKey").unwrap(), issued.secret_access_key);
    assert_eq!(r.xml("SessionToken").unwrap(), issued.session_token);
    assert_eq!(r.xml("Expiration").unwrap(), issued.expiration_text);
    assert_eq!(r.header("x-amzn-RequestId"), r.xml("RequestId").as_deref());
    assert!(issued.access_key_id.starts_with("ASIA") && issued.access_key_id.len() == 20);
    assert!(issued.secret_access_key.starts_with("stubsecret"));
    assert!(issued.session_token.starts_with("stubtoken") && issued.session_token.len() > 100);
    let left = issued
        .expiration
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3590..=3600).contains(&left), "{left}");

    let rec = stub.last_request().unwrap();
    assert_eq!(rec.action, "GetSessionToken");
    assert_eq!(rec.access_key_id.as_deref(), Some(KEY));
    assert_eq!(rec.serial_number.as_deref(), Some(SERIAL));
    assert_eq!(rec.duration_seconds, Some(3600));
    assert_eq!(rec.error, None);
    assert_eq!(stub.calls("GetSessionToken"), 1);
    assert_eq!(stub.successes("GetSessionToken"), 1);
}

#[test]
fn get_session_token_errors_like_sts() {
    let stub = stub();
    let r = get_session_token(&stub, &wrong_code());
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    <Message>MultiFactorAuthentication failed with invalid MFA one time pass code. </Message>"
        ),
        "{}",
        r.body
    );
    assert!(r.xml("RequestId").is_some());

    // No code at all.
    let r = sts_request(
        &stub.url(),
        KEY,
        SECRET,
        None,
        &[("Action", "GetSessionToken"), ("Version", "2011-06-15")],
    );
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (403, "AccessDenied")
    );

    // Malformed code: a validation error, as STS checks the shape first.
    let r = get_session_token(&stub, "12345");
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (400, "ValidationError")
    );

    // Unknown key id.
    let r = sts_request(
        &stub.url(),
        "AKIAUNKNOWN000000000",
        SECRET,
        None,
        &[("Action", "GetSessionToken"), ("Version", "2011-06-15")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.xml("Code").unwrap(), "InvalidClientTokenId");
    assert_eq!(
        r.xml("Message").unwrap(),
        "The security token included in the request is invalid."
    );

    // Right key id, wrong secret.
    let r = sts_request(
        &stub.url(),
        KEY,
        "not-the-secret",
        None,
        &[
            ("Action", "GetSessionToken"),
            ("Version", "2011-06-15"),
            ("SerialNumber", SERIAL),
            ("TokenCode", &totp_now(SEED)),
        ],
    );
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (403, "SignatureDoesNotMatch")
    );

    // Out-of-range duration.
    let r = sts_request(
        &stub.url(),
        KEY,
        SECRET,
        None,
        &[
            ("Action", "GetSessionToken"),
            ("Version", "2011-06-15"),
            ("DurationSeconds", "60"),
            ("SerialNumber", SERIAL),
            ("TokenCode", &totp_now(SEED)),
        ],
    );
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (400, "ValidationError")
    );

    assert_eq!(stub.calls("GetSessionToken"), 6);
    assert_eq!(stub.successes("GetSessionToken"), 0);
    assert!(stub.issued().is_empty());
    let errors: Vec<_> = stub.requests().into_iter().map(|r| r.error).collect();
    assert_eq!(errors[0].as_deref(), Some("AccessDenied"));
    assert_eq!(errors[3].as_deref(), Some("InvalidClientTokenId"));
}

#[test]
fn reused_codes_rejected_as_real_sts_does() {
    let stub = stub();
    let code = totp_now(SEED);
    assert_eq!(get_session_token(&stub, &code).status, 200);
    let r = get_session_token(&stub, &code);
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (403, "AccessDenied"),
        "a code accepted once is refused"
    );
    // The next step's code is still accepted (±1 step window).
    assert_eq!(get_session_token(&stub, &totp_at(SEED, 1)).status, 200);
    // Each valid code is recorded with its step; the refused reuse too.
    let steps: Vec<_> = stub.requests().iter().map(|r| r.totp_step).collect();
    let now = unix_now() / 30;
    assert!(
        steps[0] == steps[1] && steps[0].is_some_and(|s| s + 1 >= now && s <= now),
        "{steps:?}"
    );
    assert!(steps[2] > steps[0], "{steps:?}");
    stub.reject_reused_codes(false);
    assert_eq!(
        get_session_token(&stub, &code).status,
        200,
        "reuse allowed when asked"
    );
}

#[test]
fn assume_role_needs_an_issued_session() {
    let stub = stub();
    let assume = |key: &str, secret: &str, token: Option<&str>| {
        sts_request(
            &stub.url(),
            key,
            secret,
            token,
            &[
                ("Action", "AssumeRole"),
                ("Version", "2011-06-15"),
                ("RoleArn", ROLE),
                ("RoleSessionName", "awsmfa-alice"),
                ("ExternalId", "ext-123"),
                ("DurationSeconds", "900"),
            ],
        )
    };
    // Long-lived keys: refused.
    let r = assume(KEY, SECRET, None);
    assert_eq!(r.status, 403);
    assert_eq!(r.xml("Code").unwrap(), "AccessDenied");
    assert!(
        r.xml("Message")
            .unwrap()
            .contains("is not authorized to perform: sts:AssumeRole")
    );

    // With the session GetSessionToken issued: accepted.
    assert_eq!(get_session_token(&stub, &totp_now(SEED)).status, 200);
    let s = stub.last_issued().unwrap();
    let r = assume(
        &s.access_key_id,
        &s.secret_access_key,
        Some(&s.session_token),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.xml("Arn").unwrap(),
        "arn:aws:sts::123456789012:assumed-role/tf-deployer/awsmfa-alice"
    );
    assert!(r.xml("AssumedRoleId").unwrap().ends_with(":awsmfa-alice"));
    let role = stub.last_issued().unwrap();
    assert_eq!(role.action, "AssumeRole");
    assert_eq!(role.role_arn.as_deref(), Some(ROLE));
    assert_eq!(role.caller_key_id, s.access_key_id);
    assert_eq!(r.xml("SessionToken").unwrap(), role.session_token);
    let rec = stub.last_request().unwrap();
    assert_eq!(rec.external_id.as_deref(), Some("ext-123"));
    assert_eq!(rec.role_session_name.as_deref(), Some("awsmfa-alice"));
    assert_eq!(rec.session_token.as_deref(), Some(s.session_token.as_str()));

    // A token the stub never issued.
    let r = assume(
        &s.access_key_id,
        &s.secret_access_key,
        Some("stubtokenforged"),
    );
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (403, "InvalidClientTokenId")
    );

    // Chained sessions are capped at an hour.
    let r = sts_request(
        &stub.url(),
        &s.access_key_id,
        &s.secret_access_key,
        Some(&s.session_token),
        &[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "x1"),
            ("DurationSeconds", "7200"),
        ],
    );
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (400, "ValidationError")
    );

    // Marked expired: ExpiredToken.
    stub.expire(&s.access_key_id);
    let r = assume(
        &s.access_key_id,
        &s.secret_access_key,
        Some(&s.session_token),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.xml("Code").unwrap(), "ExpiredToken");
}

#[test]
fn session_lifetime_expires_sessions() {
    let stub = stub();
    stub.session_lifetime(Some(Duration::from_secs(2)));
    assert_eq!(get_session_token(&stub, &totp_now(SEED)).status, 200);
    let s = stub.last_issued().unwrap();
    let left = s
        .expiration
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(left <= Duration::from_secs(2), "{left:?}");
    let identity = || {
        sts_request(
            &stub.url(),
            &s.access_key_id,
            &s.secret_access_key,
            Some(&s.session_token),
            &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        )
    };
    let r = identity();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.xml("Arn").unwrap(),
        format!("arn:aws:iam::123456789012:user/user-{}", KEY.to_lowercase())
    );
    assert_eq!(r.xml("Account").unwrap(), StsStub::ACCOUNT);
    assert!(r.xml("UserId").unwrap().starts_with("AIDA"));
    thread::sleep(
        s.expiration
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    );
    thread::sleep(Duration::from_millis(100));
    let r = identity();
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (400, "ExpiredToken")
    );
}

#[test]
fn role_session_lifetime_shortens_roles_only() {
    let stub = stub();
    stub.role_session_lifetime(Some(Duration::from_secs(2)));
    assert_eq!(get_session_token(&stub, &totp_now(SEED)).status, 200);
    let left = |i: &Issued| {
        i.expiration
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    let signed_by = |i: &Issued, params: &[(&str, &str)]| {
        let token = Some(i.session_token.as_str());
        sts_request(
            &stub.url(),
            &i.access_key_id,
            &i.secret_access_key,
            token,
            params,
        )
    };
    let mfa = stub.last_issued().unwrap();
    assert!(left(&mfa) > Duration::from_secs(3500), "{:?}", left(&mfa));
    let r = signed_by(
        &mfa,
        &[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "short"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let role = stub.last_issued().unwrap();
    assert_eq!(role.action, "AssumeRole");
    assert!(left(&role) <= Duration::from_secs(2), "{:?}", left(&role));
    thread::sleep(left(&role) + Duration::from_millis(100));
    let identity = [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")];
    let r = signed_by(&role, &identity);
    assert_eq!(
        (r.status, r.xml("Code").unwrap().as_str()),
        (400, "ExpiredToken")
    );
    // The MFA session it came from lives on.
    assert_eq!(signed_by(&mfa, &identity).status, 200);
}

#[test]
fn throttling_and_counting() {
    let stub = stub();
    stub.throttle_next(2);
    for _ in 0..2 {
        let r = get_session_token(&stub, &totp_now(SEED));
        assert_eq!(r.status, 400);
        assert_eq!(r.xml("Code").unwrap(), "Throttling");
        assert_eq!(r.xml("Message").unwrap(), "Rate exceeded");
    }
    assert_eq!(get_session_token(&stub, &totp_now(SEED)).status, 200);
    let r = sts_request(
        &stub.url(),
        KEY,
        SECRET,
        None,
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(stub.calls("GetSessionToken"), 3);
    assert_eq!(stub.successes("GetSessionToken"), 1);
    assert_eq!(stub.calls("GetCallerIdentity"), 1);
    assert_eq!(stub.calls("AssumeRole"), 0);
    assert_eq!(stub.total_calls(), 4);
    assert_eq!(stub.issued_secrets().len(), 2);
    stub.clear_log();
    assert_eq!(stub.total_calls(), 0);
}

#[test]
fn concurrent_clients_are_served_in_parallel() {
    let stub = stub();
    // Six clients, one code: this is about serving them at once, not MFA.
    stub.reject_reused_codes(false)
        .delay(Duration::from_millis(400));
    let start = Instant::now();
    let url = stub.url();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || {
                sts_request(
                    &url,
                    KEY,
                    SECRET,
                    None,
                    &[
                        ("Action", "GetSessionToken"),
                        ("Version", "2011-06-15"),
                        ("SerialNumber", SERIAL),
                        ("TokenCode", &totp_now(SEED)),
                    ],
                )
                .status
            })
        })
        .collect();
    assert!(stub.wait_for_calls("GetSessionToken", 6, Duration::from_secs(5)));
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses, vec![200; 6]);
    assert!(
        start.elapsed() < Duration::from_millis(6 * 400),
        "served serially: {:?}",
        start.elapsed()
    );
    let keys: std::collections::HashSet<_> =
        stub.issued().into_iter().map(|i| i.access_key_id).collect();
    assert_eq!(keys.len(), 6, "issued credentials must be unique");
}

#[test]
fn keep_alive_and_chunked_bodies() {
    let stub = stub();
    stub.verify_signatures(false);
    let mut conn = TcpStream::connect(stub.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={KEY}/20261122/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"
    );
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let read_response = |conn: &mut TcpStream| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed early");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if text.contains("</GetCallerIdentityResponse>") {
                return text;
            }
        }
    };
    // Two requests on one connection, the second with a chunked body.
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let first = read_response(&mut conn);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(!first.to_ascii_lowercase().contains("connection: close"));
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &body[..10],
        body.len() - 10,
        &body[10..]
    )
    .unwrap();
    let second = read_response(&mut conn);
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
    assert_eq!(stub.calls("GetCallerIdentity"), 2);
}

#[test]
fn stub_speaks_the_rust_sdk_wire_format() {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let stub = stub();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = |key: &str, secret: &str, token: Option<&str>| {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(stub.url())
            .credentials_provider(Credentials::new(
                key,
                secret,
                token.map(str::to_string),
                None,
                "test",
            ))
            // The client awsmfa builds too: the SDK's default TLS stack is not compiled in.
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    };
    let long_lived = client(KEY, SECRET, None);
    let out = rt
        .block_on(
            long_lived
                .get_session_token()
                .duration_seconds(3600)
                .serial_number(SERIAL)
                .token_code(totp_now(SEED))
                .send(),
        )
        .expect("GetSessionToken through the SDK");
    let c = out.credentials().unwrap();
    let issued = stub.last_issued().unwrap();
    assert_eq!(c.access_key_id(), issued.access_key_id);
    assert_eq!(c.secret_access_key(), issued.secret_access_key);
    assert_eq!(c.session_token(), issued.session_token);
    assert_eq!(
        c.expiration().secs(),
        issued
            .expiration
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    );
    let rec = stub.last_request().unwrap();
    eprintln!("SDK request headers: {:#?}", rec.headers);
    eprintln!("SDK request params: {:?}", rec.params);
    assert_eq!(
        rec.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str()),
        Some("application/x-www-form-urlencoded")
    );

    let session = client(
        &issued.access_key_id,
        &issued.secret_access_key,
        Some(&issued.session_token),
    );
    let out = rt
        .block_on(
            session
                .assume_role()
                .role_arn(ROLE)
                .role_session_name("awsmfa")
                .external_id("ext-1")
                .send(),
        )
        .expect("AssumeRole through the SDK");
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::123456789012:assumed-role/tf-deployer/awsmfa"
    );
    let who = rt
        .block_on(session.get_caller_identity().send())
        .expect("GetCallerIdentity through the SDK");
    assert_eq!(who.account(), Some(StsStub::ACCOUNT));

    // Errors surface with STS's code and message.
    let e = rt
        .block_on(
            long_lived
                .get_session_token()
                .serial_number(SERIAL)
                .token_code(wrong_code())
                .send(),
        )
        .expect_err("wrong code");
    let se = e.into_service_error();
    use aws_sdk_sts::error::ProvideErrorMetadata;
    assert_eq!(se.code(), Some("AccessDenied"));
    assert_eq!(
        se.message(),
        Some("MultiFactorAuthentication failed with invalid MFA one time pass code. ")
    );

    // The SDK retries throttling on its own.
    stub.clear_log();
    stub.throttle_next(1);
    rt.block_on(long_lived.get_caller_identity().send())
        .expect("retried after Throttling");
    assert_eq!(stub.calls("GetCallerIdentity"), 2);

    // Expired sessions: ExpiredToken, not retried.
    stub.expire_all();
    let e = rt
        .block_on(session.get_caller_identity().send())
        .expect_err("expired");
    assert_eq!(e.into_service_error().code(), Some("ExpiredToken"));
}

#[test]
fn stub_speaks_the_aws_cli_wire_format() {
    let Some(aws) = aws_cli_v2() else { return };
    let stub = stub();
    let env = Env::new();
    let mut cmd = env.command(&aws);
    cmd.args([
        "sts",
        "get-session-token",
        "--endpoint-url",
        &stub.url(),
        "--serial-number",
        SERIAL,
        "--token-code",
        &totp_now(SEED),
        "--duration-seconds",
        "900",
        "--output",
        "json",
    ])
    .env("AWS_ACCESS_KEY_ID", KEY)
    .env("AWS_SECRET_ACCESS_KEY", SECRET)
    .env("AWS_REGION", "us-east-1");
    let out = env.run_cmd(cmd);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout_str()).unwrap();
    let issued = stub.last_issued().unwrap();
    assert_eq!(
        v["Credentials"]["AccessKeyId"],
        issued.access_key_id.as_str()
    );
    assert_eq!(
        v["Credentials"]["SessionToken"],
        issued.session_token.as_str()
    );
    assert_eq!(stub.last_request().unwrap().duration_seconds, Some(900));
}

#[test]
fn stub_speaks_the_boto3_wire_format() {
    let Some(python) = venv_python() else { return };
    let stub = stub();
    let env = Env::new();
    let mut cmd = env.command(&python);
    cmd.args([
        "-c",
        "import boto3, sys\n\
         c = boto3.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')\n\
         r = c.get_session_token(SerialNumber=sys.argv[2], TokenCode=sys.argv[3])\n\
         print(r['Credentials']['AccessKeyId'])\n",
        &stub.url(),
        SERIAL,
        &totp_now(SEED),
    ])
    .env("AWS_ACCESS_KEY_ID", KEY)
    .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let out = env.run_cmd(cmd);
    assert_ok(&out);
    assert_eq!(
        out.stdout_str().trim(),
        stub.last_issued().unwrap().access_key_id
    );
}

#[test]
fn env_is_isolated() {
    let mut env = Env::new();
    env.set("EXTRA", "1");
    let out = env.run_cmd(env.command("env"));
    assert_ok(&out);
    let mut names: Vec<String> = out
        .stdout_str()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AWSMFA_KEYRING",
            "AWSMFA_KEYRING_SERVICE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "EXTRA",
            "HOME",
            "LANG",
            "PATH",
            "TMPDIR",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME",
        ]
    );
    assert!(env.aws_config_path().is_file());
    assert!(!env.credentials_path().exists());
    assert_ne!(Env::new().keyring_service(), env.keyring_service());

    // No controlling terminal: /dev/tty cannot be opened.
    let mut sh = env.command("sh");
    sh.args(["-c", "echo hi >/dev/tty"]);
    assert_fail(&env.run_cmd(sh));

    // cwd is work/.
    let out = env.run_cmd(env.command("pwd"));
    assert_eq!(out.stdout_str().trim(), env.work.to_str().unwrap());

    env.write_awsmfa_config("refresh_before = \"15m\"\n");
    let planted = env.write_file("home/.local/state/leak.bin", "xx\0stubsecretdeadbeef\0");
    assert_eq!(env.scan_for(&["stubsecretdeadbeef"]), vec![planted]);
    assert!(env.scan_for(&["stubsecretnothere"]).is_empty());

    env.unset("EXTRA");
    assert!(env.var("EXTRA").is_none());
    assert!(env.var("HOME").is_some());
    let root = env.root.clone();
    drop(env);
    assert!(!root.exists() || std::env::var_os("AWSMFA_KEEP_TMP").is_some());
}

#[test]
fn run_times_out_instead_of_hanging() {
    let env = Env::new();
    let start = Instant::now();
    let result = std::panic::catch_unwind(|| {
        let mut sh = env.command("sh");
        sh.args(["-c", "echo started; sleep 60 & sleep 60"]);
        run_with_timeout(sh, None, Duration::from_millis(500))
    });
    let msg = *result
        .expect_err("must time out")
        .downcast::<String>()
        .unwrap();
    assert!(
        msg.contains("timed out") && msg.contains("started"),
        "{msg}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn awsmfa_binary_runs_in_env() {
    let env = Env::new();
    let out = env.run(["--help"]);
    assert_ok(&out);
    assert!(
        out.stdout_str().contains("credential-process"),
        "{}",
        out.dump()
    );
}

#[test]
fn pty_round_trip() {
    let env = Env::new();
    let mut sh = env.command("sh");
    sh.args([
        "-c",
        r#"printf "code: " >/dev/tty; read x </dev/tty; echo got=$x"#,
    ]);
    let mut pty = Pty::spawn(sh, PtyOpts::default());
    pty.expect_ok("code: ", Duration::from_secs(10));
    pty.send_line("123456");
    pty.expect_ok("got=123456", Duration::from_secs(10));
    assert!(pty.wait(Duration::from_secs(10)).success());
    // Echo is on, like a fresh terminal: the typed code shows once, then the result.
    assert!(
        pty.output().contains("code: 123456\r\ngot=123456"),
        "{:?}",
        pty.output()
    );
}

#[test]
fn pty_keeps_stdout_clean_for_credential_process() {
    let env = Env::new();
    let mut sh = env.command("sh");
    sh.args([
        "-c",
        r#"stty -echo </dev/tty; printf "MFA code: " >/dev/tty; read x </dev/tty; stty echo </dev/tty; echo >/dev/tty; echo "{\"code\":\"$x\"}"; echo oops >&2; [ -t 1 ] || echo stdout-is-pipe >/dev/tty"#,
    ]);
    let mut pty = Pty::spawn(sh, PtyOpts::tty_only());
    pty.expect_ok("MFA code: ", Duration::from_secs(10));
    pty.send_line("654321");
    pty.expect_ok("stdout-is-pipe", Duration::from_secs(10));
    assert_eq!(pty.wait_code(Duration::from_secs(10)), 0);
    assert_eq!(pty.stdout(), "{\"code\":\"654321\"}\n");
    assert_eq!(pty.stderr(), "oops\n");
    // Hidden input stays hidden.
    assert!(!pty.output().contains("654321"), "{:?}", pty.output());
}

#[test]
fn pty_expect_reports_what_it_saw() {
    let env = Env::new();
    let mut sh = env.command("sh");
    sh.args(["-c", "echo hello; exit 3"]);
    let mut pty = Pty::spawn(sh, PtyOpts::default());
    let err = pty
        .expect("never printed", Duration::from_secs(10))
        .unwrap_err();
    assert!(err.contains("hello"), "{err}");
    assert_eq!(pty.wait_code(Duration::from_secs(10)), 3);
}

#[test]
fn moto_answers() {
    let Some(moto) = Moto::start() else { return };
    let r = http_request(moto.url(), "GET", "/", &[], b"", Duration::from_secs(10)).unwrap();
    assert_eq!(r.status, 200);
    // moto accepts any credentials and does not check MFA codes.
    let r = sts_request(
        moto.url(),
        "AKIAANYTHING00000000",
        "anything",
        None,
        &[
            ("Action", "GetSessionToken"),
            ("Version", "2011-06-15"),
            ("SerialNumber", SERIAL),
            ("TokenCode", "000000"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.xml("SessionToken").is_some());
    let r = sts_request(
        moto.url(),
        "AKIAANYTHING00000000",
        "anything",
        None,
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        xml_text(&r.body, "Account").as_deref(),
        Some("123456789012")
    );
    moto.reset();
}

#[test]
fn secret_service_round_trip() {
    let mut env = Env::new();
    let Some(ss) = SecretService::start(&env) else {
        return;
    };
    assert!(ss.bus_address().starts_with("unix:path="));
    let secret = format!("stubsecret{}", support::random_hex(8));
    let out = ss.secret_tool(
        &env,
        &[
            "store",
            "--label=t",
            "service",
            env.keyring_service(),
            "username",
            "p",
        ],
        Some(&secret),
    );
    assert_ok(&out);
    let out = ss.secret_tool(
        &env,
        &["lookup", "service", env.keyring_service(), "username", "p"],
        None,
    );
    assert_ok(&out);
    assert_eq!(out.stdout_str(), secret);
    // gnome-keyring encrypts its file: the secret is not on disk in the clear.
    env.assert_not_on_disk(&[&secret]);
    ss.apply(&mut env);
    assert_eq!(
        env.var("DBUS_SESSION_BUS_ADDRESS").and_then(|v| v.to_str()),
        Some(ss.bus_address())
    );
    assert_eq!(
        env.var("AWSMFA_KEYRING").and_then(|v| v.to_str()),
        Some("secret-service")
    );
}

#[test]
fn keyutils_works_here() {
    if !keyutils_available() {
        return;
    }
    let env = Env::new();
    let mut cmd = env.command("keyctl");
    cmd.args(["show", "@s"]);
    assert_ok(&env.run_cmd(cmd));
}

#[test]
fn sigv4_matches_the_aws_documentation_example() {
    // The GET ListUsers example from the SigV4 documentation.
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), "iam.amazonaws.com".to_string()),
        ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
    ];
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let canonical = sigv4::canonical_request(
        "GET",
        "/?Action=ListUsers&Version=2010-05-08",
        &headers,
        &signed,
        b"",
    );
    assert_eq!(
        sigv4::sha256_hex(canonical.as_bytes()),
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    assert_eq!(
        sigv4::signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z",
            "20150830/us-east-1/iam/aws4_request",
            &canonical
        ),
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[test]
fn other_processes_can_use_the_env_vars() {
    let env = Env::new();
    let vars: Vec<_> = env.vars().map(|(k, _)| k.to_owned()).collect();
    assert!(vars.iter().any(|k| k == "AWSMFA_KEYRING_SERVICE"));
    let mut c = Command::new("true");
    c.env_clear().envs(env.vars());
    assert!(env.run_cmd(c).status.success());
}

/// Runs inside `require_rule_skips_or_fails` as a child test process; a no-op
/// in a normal run.
#[test]
fn require_rule_child() {
    if std::env::var_os("AWSMFA_SELFTEST_REQUIRE_CHILD").is_none() {
        return;
    }
    let got = require("imaginary-tool (apt install imaginary)", None::<PathBuf>);
    assert!(got.is_none());
    println!("child returned");
}

#[test]
fn require_rule_skips_or_fails() {
    let env = Env::new();
    let run = |require_all: Option<&str>| {
        let mut c = env.command(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "require_rule_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AWSMFA_SELFTEST_REQUIRE_CHILD", "1");
        if let Some(v) = require_all {
            c.env("AWSMFA_REQUIRE_ALL", v);
        }
        env.run_cmd(c)
    };
    let skipped = run(None);
    assert_ok(&skipped);
    assert!(
        skipped
            .stderr_str()
            .contains("SKIP: imaginary-tool (apt install imaginary) is not available"),
        "{}",
        skipped.dump()
    );
    assert!(skipped.stdout_str().contains("child returned"));
    // Only "1" turns skipping into failing.
    assert_ok(&run(Some("0")));
    let failed = run(Some("1"));
    assert_fail(&failed);
    assert!(
        failed.stderr_str().contains("AWSMFA_REQUIRE_ALL=1"),
        "{}",
        failed.dump()
    );
    assert!(!failed.stdout_str().contains("child returned"));
}
