//! awsmfa's core paths against moto: the real STS wire format (GetSessionToken,
//! AssumeRole, GetCallerIdentity) consumed by awsmfa's Rust SDK, and awsmfa's
//! output consumed by the tools people actually use (the AWS CLI v2 and boto3).
//!
//! moto accepts any key and never checks MFA codes, so these tests count MFA
//! codes themselves: every profile's `mfa_process` appends a line to a counter
//! file before printing the code. One line = one minted session.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::env::awsmfa_bin;
use support::process::wait_until;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXP";
const ACCOUNT: &str = "123456789012";
const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/admin";
const OPS_ROLE: &str = "arn:aws:iam::123456789012:role/ops";

/// One test's world: its own moto, its own Env pointed at it.
struct World {
    env: Env,
    moto: Moto,
}

fn world() -> Option<World> {
    if !keyutils_available() {
        return None;
    }
    require("oathtool (Debian package oathtool)", which("oathtool"))?;
    let moto = Moto::start()?;
    let mut env = Env::new();
    env.set_sts_endpoint(moto.url());
    Some(World { env, moto })
}

/// Keyring entries outlive the test otherwise: the keyutils store links them
/// into the user's persistent keyring, which no session ending clears (and a
/// non-root user's key quota is small: 200 keys, 20000 bytes).
impl Drop for World {
    fn drop(&mut self) {
        let _ = self.env.run(["clear"]);
        for p in ["dev", "other"] {
            let _ = self.env.run(["remove", p, "--yes"]);
        }
    }
}

fn counter(env: &Env, profile: &str) -> PathBuf {
    env.root.join(format!("mfa-{profile}.count"))
}

/// How many MFA codes `profile`'s mfa_process has handed out.
fn mfa_count(env: &Env, profile: &str) -> usize {
    std::fs::read_to_string(counter(env, profile))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// An `mfa_process` that counts its runs, then prints a real TOTP code.
fn counting_mfa(env: &Env, profile: &str) -> String {
    format!(
        "echo {profile} >> {} && oathtool --totp -b {SEED}",
        counter(env, profile).display()
    )
}

/// `dev` and `other` mint MFA sessions with their own keys; `admin` and `ops`
/// are roles on dev's session; `admin-cli` is the consumer profile the README
/// recommends for the AWS CLI and SDKs (botocore resolves role_arn before
/// credential_process, so the role profile itself cannot carry it).
fn standard_config(env: &Env, dev_mfa: &str) -> String {
    let bin = awsmfa_bin();
    let bin = bin.display();
    format!(
        "[profile dev]\n\
         region = us-east-1\n\
         mfa_serial = arn:aws:iam::{ACCOUNT}:mfa/dev\n\
         mfa_process = {dev_mfa}\n\
         credential_process = {bin} credential-process dev\n\
         \n\
         [profile other]\n\
         region = us-west-2\n\
         mfa_serial = arn:aws:iam::{ACCOUNT}:mfa/other\n\
         mfa_process = {other_mfa}\n\
         credential_process = {bin} credential-process other\n\
         \n\
         [profile admin]\n\
         region = us-east-1\n\
         role_arn = {ADMIN_ROLE}\n\
         source_profile = dev\n\
         \n\
         [profile ops]\n\
         region = us-east-1\n\
         role_arn = {OPS_ROLE}\n\
         source_profile = dev\n\
         \n\
         [profile admin-cli]\n\
         region = us-east-1\n\
         credential_process = {bin} credential-process admin\n",
        other_mfa = counting_mfa(env, "other"),
    )
}

fn write_config(env: &Env) {
    env.write_aws_config(&standard_config(env, &counting_mfa(env, "dev")));
}

/// A fresh long-lived key (never the moto example key: moto hands out
/// `AKIAIOSFODNN7EXAMPLE` as every GetSessionToken session's key id).
fn new_key() -> (String, String) {
    (
        format!("AKIA{}", random_hex(8).to_ascii_uppercase()),
        format!("longlived{}", random_hex(16)),
    )
}

fn add_key(env: &Env, profile: &str) -> (String, String) {
    let (id, secret) = new_key();
    let mut cmd = env.cmd(["add", profile, "--from-env"]);
    cmd.env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret);
    let out = env.run_cmd(cmd);
    assert_ok(&out);
    (id, secret)
}

/// `exec PROFILE -- aws sts get-caller-identity` (AWS CLI v2 needs
/// `--endpoint-url`: it predates AWS_ENDPOINT_URL_STS).
fn exec_caller_identity(w: &World, aws: &Path, profile: &str, verbose: bool) -> Output {
    let mut args: Vec<String> = Vec::new();
    if verbose {
        args.push("-v".into());
    }
    args.extend([
        "exec".into(),
        profile.into(),
        "--".into(),
        aws.display().to_string(),
        "sts".into(),
        "get-caller-identity".into(),
        "--endpoint-url".into(),
        w.moto.url().into(),
        "--output".into(),
        "json".into(),
    ]);
    w.env.run(&args)
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout_str())
        .unwrap_or_else(|e| panic!("stdout is not one JSON value: {e}\n{}", out.dump()))
}

/// `2026-11-22T06:00:00Z`, nothing else: RFC 3339, UTC, whole seconds.
#[track_caller]
fn assert_rfc3339_utc(s: &str) -> SystemTime {
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape, "not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ): {s:?}");
    parse_rfc3339(s).unwrap_or_else(|| panic!("unparsable time {s:?}"))
}

/// Seconds from now until `t` (negative when past).
fn secs_until(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap(),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap(),
    }
}

/// `credential-process PROFILE`, checked to be exactly one Version 1 object.
#[track_caller]
fn credential_process(env: &Env, profile: &str) -> Value {
    let out = env.run(["credential-process", profile]);
    assert_ok(&out);
    assert_credential_process_json(&out)
}

#[track_caller]
fn assert_credential_process_json(out: &Output) -> Value {
    let stdout = out.stdout_str();
    // Exactly one object and one newline: serde_json::from_str refuses
    // trailing content, and nothing may precede it.
    assert!(
        stdout.starts_with('{') && stdout.ends_with("}\n") && stdout.matches('\n').count() == 1,
        "credential-process stdout must be one JSON object on one line\n{}",
        out.dump()
    );
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    let obj = v.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "AccessKeyId",
            "Expiration",
            "SecretAccessKey",
            "SessionToken",
            "Version"
        ],
        "{stdout}"
    );
    assert_eq!(v["Version"], Value::from(1), "Version must be the number 1");
    for k in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        assert!(
            v[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} must be a non-empty string: {stdout}"
        );
    }
    let exp = assert_rfc3339_utc(v["Expiration"].as_str().expect("Expiration is a string"));
    let left = secs_until(exp);
    assert!(
        (15 * 60..=3600).contains(&left),
        "a fresh 1 h session should have 15–60 min left, has {left}s: {stdout}"
    );
    v
}

/// `env -0` output as a map.
fn env_map(out: &Output) -> BTreeMap<String, String> {
    out.stdout
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn exec_runs_the_aws_cli_and_a_second_exec_reuses_the_cache() {
    let Some(w) = world() else { return };
    let Some(aws) = aws_cli_v2() else { return };
    write_config(&w.env);
    let (long_id, _) = add_key(&w.env, "dev");

    let first = exec_caller_identity(&w, &aws, "dev", true);
    assert_ok(&first);
    let id = json(&first);
    assert_eq!(id["Account"], ACCOUNT, "{}", first.dump());
    assert!(
        first
            .stderr_str()
            .contains("minting a session for dev with GetSessionToken"),
        "{}",
        first.dump()
    );
    assert_eq!(
        mfa_count(&w.env, "dev"),
        1,
        "one MFA code for the first exec"
    );
    // The CLI signed with the session, not with the long-lived key (moto
    // answers UserId = the caller's key id for keys it does not know).
    assert_ne!(id["UserId"], long_id.as_str(), "{}", first.dump());

    // From now on an MFA code cannot be had: only the cache can serve.
    w.env.write_aws_config(&standard_config(&w.env, "false"));
    let second = exec_caller_identity(&w, &aws, "dev", true);
    assert_ok(&second);
    assert_eq!(json(&second)["Account"], ACCOUNT);
    assert_eq!(json(&second)["UserId"], id["UserId"]);
    let err = second.stderr_str();
    assert!(
        err.contains("session for dev: cache hit"),
        "{}",
        second.dump()
    );
    assert!(
        !err.contains("mfa_process") && !err.contains("minting"),
        "{}",
        second.dump()
    );
    assert_eq!(mfa_count(&w.env, "dev"), 1);

    // And the failing mfa_process really would have failed a mint (asked at
    // once, not after waiting out the step of the first mint's code).
    w.env.run_ok(["clear", "dev"]);
    w.env.forget_totp_steps();
    let third = w.env.run(["exec", "dev", "--", "true"]);
    assert_code(&third, 1);
    assert!(
        third
            .stderr_str()
            .contains("mfa_process for profile dev failed"),
        "{}",
        third.dump()
    );
}

#[test]
fn exec_child_environment_replaces_inherited_credentials() {
    let Some(w) = world() else { return };
    write_config(&w.env);
    let (long_id, long_secret) = add_key(&w.env, "dev");

    let stale = [
        ("AWS_ACCESS_KEY_ID", "AKIASTALESTALESTALE0"),
        ("AWS_SECRET_ACCESS_KEY", "stale-secret-stale-secret"),
        ("AWS_SESSION_TOKEN", "stale-session-token"),
        ("AWS_SECURITY_TOKEN", "stale-security-token"),
        ("AWS_PROFILE", "stale-profile"),
        ("AWS_DEFAULT_PROFILE", "stale-default-profile"),
        ("AWS_CREDENTIAL_FILE", "/nonexistent/credentials"),
        ("AWS_CREDENTIAL_EXPIRATION", "2001-01-01T00:00:00Z"),
        ("AWS_SDK_LOAD_CONFIG", "1"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-2"),
        ("KEEP_ME", "kept"),
    ];
    let mut cmd = w.env.cmd(["exec", "dev", "--", "env", "-0"]);
    cmd.envs(stale);
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    let child = env_map(&out);

    // The same session, as credential-process hands it out (a cache hit now).
    let creds = credential_process(&w.env, "dev");
    assert_eq!(mfa_count(&w.env, "dev"), 1);
    let get = |k: &str| child.get(k).map(String::as_str);
    assert_eq!(get("AWS_ACCESS_KEY_ID"), creds["AccessKeyId"].as_str());
    assert_eq!(
        get("AWS_SECRET_ACCESS_KEY"),
        creds["SecretAccessKey"].as_str()
    );
    assert_eq!(get("AWS_SESSION_TOKEN"), creds["SessionToken"].as_str());
    assert_eq!(
        get("AWS_CREDENTIAL_EXPIRATION"),
        creds["Expiration"].as_str()
    );
    let exp = assert_rfc3339_utc(get("AWS_CREDENTIAL_EXPIRATION").unwrap());
    assert!((50 * 60..=3600).contains(&secs_until(exp)));
    assert_ne!(get("AWS_ACCESS_KEY_ID"), Some(long_id.as_str()));
    assert_ne!(get("AWS_SECRET_ACCESS_KEY"), Some(long_secret.as_str()));
    // The profile's region wins over the inherited one.
    assert_eq!(get("AWS_REGION"), Some("us-east-1"));
    assert_eq!(get("AWS_DEFAULT_REGION"), Some("us-east-1"));
    assert_eq!(get("AWSMFA_PROFILE"), Some("dev"));
    for gone in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_FILE",
        "AWS_SDK_LOAD_CONFIG",
    ] {
        assert_eq!(
            get(gone),
            None,
            "{gone} must not reach the child: {child:#?}"
        );
    }
    for (k, v) in stale {
        if k != "KEEP_ME" {
            assert_ne!(get(k), Some(v), "stale {k} reached the child");
        }
    }
    // Everything unrelated passes through untouched.
    assert_eq!(get("KEEP_ME"), Some("kept"));
    assert_eq!(get("HOME"), w.env.home.to_str());
    assert_eq!(get("AWS_CONFIG_FILE"), w.env.aws_config_path().to_str());
}

#[test]
fn boto3_and_the_aws_cli_resolve_credentials_through_credential_process() {
    let Some(w) = world() else { return };
    let Some(python) = venv_python() else { return };
    let Some(aws) = aws_cli_v2() else { return };
    write_config(&w.env);
    let (long_id, _) = add_key(&w.env, "dev");

    // boto3 honours AWS_ENDPOINT_URL_STS (set by set_sts_endpoint).
    let mut py = w.env.command(&python);
    py.args([
        "-c",
        "import boto3, json\n\
         s = boto3.Session(profile_name='dev')\n\
         ident = s.client('sts').get_caller_identity()\n\
         c = s.get_credentials()\n\
         f = c.get_frozen_credentials()\n\
         print(json.dumps({'account': ident['Account'], 'user_id': ident['UserId'],\n\
                           'method': c.method, 'key': f.access_key, 'token': f.token}))\n",
    ]);
    let out = w.env.run_cmd(py);
    assert_ok(&out);
    let got = json(&out);
    assert_eq!(got["account"], ACCOUNT, "{}", out.dump());
    assert_eq!(got["method"], "custom-process", "{}", out.dump());
    assert_eq!(mfa_count(&w.env, "dev"), 1);

    let creds = credential_process(&w.env, "dev");
    assert_eq!(got["key"], creds["AccessKeyId"]);
    assert_eq!(got["token"], creds["SessionToken"]);
    assert_eq!(got["user_id"], creds["AccessKeyId"]);
    assert_ne!(got["key"], long_id.as_str());

    let mut cli = w.env.command(&aws);
    cli.args([
        "sts",
        "get-caller-identity",
        "--profile",
        "dev",
        "--endpoint-url",
        w.moto.url(),
        "--output",
        "json",
    ]);
    let out = w.env.run_cmd(cli);
    assert_ok(&out);
    let ident = json(&out);
    assert_eq!(ident["Account"], ACCOUNT);
    assert_eq!(ident["UserId"], creds["AccessKeyId"]);

    // One MFA code served boto3, credential-process and the CLI; nothing
    // wrote the shared credentials file.
    assert_eq!(mfa_count(&w.env, "dev"), 1);
    assert!(!w.env.credentials_path().exists());
}

#[test]
fn assume_role_through_a_source_profile() {
    let Some(w) = world() else { return };
    let Some(aws) = aws_cli_v2() else { return };
    write_config(&w.env);
    add_key(&w.env, "dev");

    let out = exec_caller_identity(&w, &aws, "admin", true);
    assert_ok(&out);
    let via_exec = json(&out);
    let arn = via_exec["Arn"].as_str().expect("Arn").to_string();
    assert!(
        arn.starts_with(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/admin/")),
        "{}",
        out.dump()
    );
    assert!(
        out.stderr_str()
            .contains("minting a session for admin with AssumeRole arn:aws:iam::123456789012:role/admin from dev"),
        "{}",
        out.dump()
    );
    assert_eq!(mfa_count(&w.env, "dev"), 1);

    let role = credential_process(&w.env, "admin");
    let source = credential_process(&w.env, "dev");
    assert!(
        role["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{role}"
    );
    assert_ne!(role["AccessKeyId"], source["AccessKeyId"]);
    assert_ne!(role["SessionToken"], source["SessionToken"]);

    // The AWS CLI through the consumer profile gets the same cached role
    // session: the same role session name, hence the same ARN.
    let mut cli = w.env.command(&aws);
    cli.args([
        "sts",
        "get-caller-identity",
        "--profile",
        "admin-cli",
        "--endpoint-url",
        w.moto.url(),
        "--output",
        "json",
    ]);
    let out = w.env.run_cmd(cli);
    assert_ok(&out);
    assert_eq!(json(&out)["Arn"], arn.as_str(), "{}", out.dump());

    // One MFA code serves every role on the same source.
    let out = exec_caller_identity(&w, &aws, "ops", false);
    assert_ok(&out);
    assert!(
        json(&out)["Arn"]
            .as_str()
            .unwrap()
            .starts_with(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/ops/")),
        "{}",
        out.dump()
    );
    assert_eq!(mfa_count(&w.env, "dev"), 1);
}

#[test]
fn credential_process_prints_one_json_object_even_inside_exec() {
    let Some(w) = world() else { return };
    write_config(&w.env);
    add_key(&w.env, "dev");
    add_key(&w.env, "other");

    // Minting, with -v: messages go to stderr, stdout stays one object.
    let out = w.env.run(["-v", "credential-process", "dev"]);
    assert_ok(&out);
    let minted = assert_credential_process_json(&out);
    assert!(out.stderr_str().contains("minting"), "{}", out.dump());
    // Cached, with AWSMFA_LOG (how one asks an SDK-run helper to talk).
    let mut cmd = w.env.cmd(["credential-process", "dev"]);
    cmd.env("AWSMFA_LOG", "1");
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    let cached = assert_credential_process_json(&out);
    assert!(out.stderr_str().contains("cache hit"), "{}", out.dump());
    assert_eq!(minted, cached);
    assert_eq!(mfa_count(&w.env, "dev"), 1);

    // Inside `exec dev`, a provider configured with another profile's
    // credential_process gets that profile's own session.
    let mut cmd = w.env.cmd(["exec", "dev", "--"]);
    cmd.arg(awsmfa_bin()).args(["credential-process", "other"]);
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    assert_credential_process_json(&out);
    assert_eq!(mfa_count(&w.env, "other"), 1, "other's session was minted");
    assert_eq!(mfa_count(&w.env, "dev"), 1);
    let list = w.env.run_ok(["list", "--json"]);
    let rows = json(&list);
    let other = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["profile"] == "other")
        .expect("other listed");
    assert_eq!(other["session"], "active", "{}", list.dump());
}

#[test]
fn exec_passes_exit_codes_and_signals_through() {
    let Some(w) = world() else { return };
    write_config(&w.env);
    add_key(&w.env, "dev");
    // Warm the cache so the timing below is the child's, not the mint's.
    w.env.run_ok(["exec", "dev", "--", "true"]);

    let out = w.env.run(["exec", "dev", "--", "sh", "-c", "exit 7"]);
    assert_code(&out, 7);

    // execve: awsmfa *is* the shell, so the caller sees the signal itself,
    // not 143 as it would from a parent that waited for a child.
    let out = w
        .env
        .run(["exec", "dev", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", out.dump());
    assert_eq!(out.status.code(), None);

    let out = w
        .env
        .run(["exec", "dev", "--", "no-such-command-awsmfa-test"]);
    assert_code(&out, 127);
    assert!(
        out.stderr_str()
            .contains("cannot run `no-such-command-awsmfa-test`"),
        "{}",
        out.dump()
    );
    let not_exe = w.env.write_file("work/not-executable", "#!/bin/sh\n");
    let mut cmd = w.env.cmd(["exec", "dev", "--"]);
    cmd.arg(&not_exe);
    let out = w.env.run_cmd(cmd);
    assert_code(&out, 126);

    // A signal sent to the pid we started reaches the command: same process.
    let mut cmd = w.env.cmd(["exec", "dev", "--", "sleep", "30"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut reaper = Reaper(cmd.spawn().expect("spawn exec"));
    let pid = reaper.child().id();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline == b"sleep\x0030\x00" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never became `sleep 30`: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
        assert!(
            reaper.child().try_wait().unwrap().is_none(),
            "exec ended before sleep started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    // SAFETY: kill(2) on the pid of our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let status = wait_until(reaper.child(), Instant::now() + TIMEOUT).expect("sleep ended");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn nested_exec_reuses_the_same_profile_and_refuses_another() {
    let Some(w) = world() else { return };
    write_config(&w.env);
    add_key(&w.env, "dev");
    add_key(&w.env, "other");
    let script = w.env.write_script(
        "nest.sh",
        r#"#!/bin/sh
B=$1
printf 'outer=%s\n' "$AWS_SESSION_TOKEN"
# The cache is emptied first: a nested exec that minted would need a new code.
"$B" clear dev || exit 90
"$B" -v exec dev -- sh -c 'printf "inner=%s %s\n" "$AWS_SESSION_TOKEN" "$AWSMFA_PROFILE"' || exit 91
"$B" -v exec -- sh -c 'printf "unnamed=%s\n" "$AWS_SESSION_TOKEN"' || exit 92
"$B" exec other -- sh -c 'echo RAN-OTHER'
echo "other_rc=$?"
"#,
    );
    let mut cmd = w.env.cmd(["exec", "dev", "--"]);
    cmd.arg(&script).arg(awsmfa_bin());
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    let stdout = out.stdout_str();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} line\n{}", out.dump()))
            .to_string()
    };
    let outer = field("outer=");
    assert!(outer.len() > 20, "{}", out.dump());
    assert_eq!(field("inner="), format!("{outer} dev"));
    assert_eq!(field("unnamed="), outer);
    // Refused: exit 1, a message, and the command never ran.
    assert_eq!(field("other_rc="), "1");
    assert!(!stdout.contains("RAN-OTHER"), "{}", out.dump());
    let err = out.stderr_str();
    assert!(
        err.contains("already inside `awsmfa exec dev`")
            && err.contains("refusing to nest a session for other"),
        "{}",
        out.dump()
    );
    // No session was looked up or minted by the nested runs (they ran -v). The
    // one `minting` line is the outer exec's, naming moto as not AWS's endpoint.
    assert!(
        !err.contains("cache hit") && err.matches("minting").count() == 1,
        "{}",
        out.dump()
    );
    assert!(
        err.contains("which is not an AWS endpoint"),
        "{}",
        out.dump()
    );
    assert_eq!(mfa_count(&w.env, "dev"), 1);
    assert_eq!(mfa_count(&w.env, "other"), 0);
    let rows = json(&w.env.run_ok(["list", "--json"]));
    let dev = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["profile"] == "dev")
        .unwrap()
        .clone();
    assert_eq!(dev["session"], "none", "the nested execs cached nothing");
}

fn row(rows: &Value, profile: &str) -> Value {
    rows.as_array()
        .expect("list --json is an array")
        .iter()
        .find(|r| r["profile"] == profile)
        .unwrap_or_else(|| panic!("{profile} not in {rows:#}"))
        .clone()
}

fn text_row(out: &Output, profile: &str) -> String {
    out.stdout_str()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(profile))
        .unwrap_or_else(|| panic!("no {profile} row\n{}", out.dump()))
        .to_string()
}

#[test]
fn list_clear_and_remove() {
    let Some(w) = world() else { return };
    write_config(&w.env);
    add_key(&w.env, "dev");
    let out = w.env.run_ok(["exec", "admin", "--", "env", "-0"]);
    let child = env_map(&out);

    let list = w.env.run_ok(["list"]);
    assert!(list.stdout_str().starts_with("PROFILE"), "{}", list.dump());
    let dev_line = text_row(&list, "dev");
    let cols: Vec<&str> = dev_line.split_whitespace().collect();
    assert_eq!(cols[1], "keyring", "{dev_line}");
    let minutes_left = match cols[3] {
        "1h00m" => 60,
        m => m
            .strip_suffix('m')
            .and_then(|m| m.parse().ok())
            .unwrap_or(0),
    };
    assert!(
        (50..=60).contains(&minutes_left) && cols[4] == "left",
        "{dev_line}"
    );
    let admin_line = text_row(&list, "admin");
    assert!(admin_line.contains("role via dev"), "{admin_line}");
    assert!(admin_line.contains("m left"), "{admin_line}");

    let rows = json(&w.env.run_ok(["list", "--json"]));
    let dev = row(&rows, "dev");
    assert_eq!(dev["keys"], "keyring");
    assert_eq!(dev["key_stored"], true);
    assert_eq!(dev["mfa"], serde_json::json!(["process"]));
    assert_eq!(dev["session"], "active");
    let left = dev["seconds_left"].as_u64().expect("seconds_left");
    assert!((55 * 60..=3600).contains(&left), "{dev}");
    assert_rfc3339_utc(dev["expires"].as_str().unwrap());
    let admin = row(&rows, "admin");
    assert_eq!(admin["session"], "active");
    assert_eq!(admin["role_arn"], ADMIN_ROLE);
    assert_eq!(admin["source_profile"], "dev");
    // What the child was told is what list says.
    assert_eq!(
        admin["expires"].as_str(),
        child.get("AWS_CREDENTIAL_EXPIRATION").map(String::as_str)
    );
    assert_eq!(row(&rows, "other")["session"], "none");
    assert_eq!(row(&rows, "other")["key_stored"], false);
    // The consumer profile the README recommends is not an awsmfa profile
    // gone wrong: list must not report it as a problem.
    let consumer = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["profile"] == "admin-cli");
    assert!(
        consumer.is_none_or(|r| r["problem"].is_null() && r["session"] != "unusable"),
        "{rows:#}"
    );
    assert!(!list.stdout_str().contains("mfa_serial"), "{}", list.dump());

    let out = w.env.run_ok(["clear", "dev"]);
    assert!(out.stdout.is_empty(), "{}", out.dump());
    let rows = json(&w.env.run_ok(["list", "--json"]));
    let dev = row(&rows, "dev");
    assert_eq!(dev["session"], "none");
    assert_eq!(dev["seconds_left"], Value::Null);
    assert_eq!(dev["key_stored"], true, "clear keeps the key");
    let dev_line = text_row(&w.env.run_ok(["list"]), "dev");
    assert_eq!(
        dev_line.split_whitespace().nth(3),
        Some("none"),
        "{dev_line}"
    );

    let out = w.env.run_ok(["remove", "dev", "--yes"]);
    assert!(out.stdout.is_empty(), "{}", out.dump());
    let rows = json(&w.env.run_ok(["list", "--json"]));
    assert_eq!(row(&rows, "dev")["key_stored"], false);
    // Roles minted from dev's session go with its key.
    assert_eq!(row(&rows, "admin")["session"], "none");
    let dev_line = text_row(&w.env.run_ok(["list"]), "dev");
    assert!(dev_line.contains("keyring (none)"), "{dev_line}");

    // The key is gone from the keyring itself, not only from the listing.
    let out = w.env.run(["exec", "dev", "--", "true"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str().contains("awsmfa add dev"),
        "{}",
        out.dump()
    );
    assert_eq!(
        mfa_count(&w.env, "dev"),
        1,
        "no MFA code asked for a keyless mint"
    );
    // Removing again says there was nothing.
    let out = w.env.run(["remove", "dev", "--yes"]);
    assert_code(&out, 1);
}
