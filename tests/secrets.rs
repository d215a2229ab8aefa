//! Secrets stay put: long-lived keys and sessions live in a keyring and in the
//! child's environment, and nowhere else — not in files, not in any process's
//! argv, not in awsmfa's messages.
//!
//! These run against the STS stub, which remembers every credential it issued:
//! the scans below look for exactly those values.

mod support;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::env::awsmfa_bin;
use support::process::wait_until;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXP";
const DEV_SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const OTHER_SERIAL: &str = "arn:aws:iam::123456789012:mfa/other";
const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/admin";

struct World {
    env: Env,
    stub: StsStub,
    dev: Key,
    other: Key,
}

/// Keyring entries outlive the test otherwise: the keyutils store links them
/// into the user's persistent keyring, which no session ending clears (and a
/// non-root user's key quota is small: 200 keys, 20000 bytes).
impl Drop for World {
    fn drop(&mut self) {
        let _ = self.env.run(["clear"]);
        for p in ["dev", "other", "ghost", "leaky"] {
            let _ = self.env.run(["remove", p, "--yes"]);
        }
    }
}

/// An Env on the stub, with `dev` and `other` (MFA profiles, keys known to the
/// stub) and `admin` (a role on dev's session) in `~/.aws/config`. No key is
/// stored yet.
fn world() -> Option<World> {
    if !keyutils_available() {
        return None;
    }
    require("oathtool (Debian package oathtool)", which("oathtool"))?;
    let stub = StsStub::start();
    let (dev, other) = (Key::new(), Key::new());
    stub.add_user(&dev.id, &dev.secret)
        .add_user(&other.id, &other.secret)
        .add_mfa(DEV_SERIAL, SEED)
        .add_mfa(OTHER_SERIAL, SEED)
        .add_role(ADMIN_ROLE, None);
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url());
    env.write_aws_config(&config(""));
    Some(World {
        env,
        stub,
        dev,
        other,
    })
}

fn config(extra: &str) -> String {
    let bin = awsmfa_bin();
    let bin = bin.display();
    format!(
        "[profile dev]\n\
         region = us-east-1\n\
         mfa_serial = {DEV_SERIAL}\n\
         mfa_process = oathtool --totp -b {SEED}\n\
         credential_process = {bin} credential-process dev\n\
         \n\
         [profile other]\n\
         region = us-east-1\n\
         mfa_serial = {OTHER_SERIAL}\n\
         mfa_process = oathtool --totp -b {SEED}\n\
         credential_process = {bin} credential-process other\n\
         \n\
         [profile admin]\n\
         region = us-east-1\n\
         role_arn = {ADMIN_ROLE}\n\
         source_profile = dev\n\
         {extra}"
    )
}

fn add_args(verbose: bool, profile: &str) -> Vec<String> {
    let mut v = Vec::new();
    if verbose {
        v.push("-v".to_string());
    }
    v.extend(["add", profile, "--from-env"].map(String::from));
    v
}

fn add(env: &Env, profile: &str, id: &str, secret: &str) -> Output {
    let mut cmd = env.cmd(add_args(true, profile));
    cmd.env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    env.run_cmd(cmd)
}

/// Every secret of the run: the long-lived secrets given, and every session
/// secret and token the stub issued so far.
fn secrets(w: &World) -> Vec<String> {
    let mut all = vec![w.dev.secret.clone(), w.other.secret.clone()];
    all.extend(w.stub.issued_secrets());
    all
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[track_caller]
fn assert_clean(what: &str, bytes: &[u8], secrets: &[String]) {
    for s in secrets {
        assert!(
            find_bytes(bytes, s.as_bytes()).is_none(),
            "{what} contains a secret ({}…):\n{}",
            &s[..8],
            String::from_utf8_lossy(bytes)
        );
    }
}

#[track_caller]
fn assert_contains_secret(what: &str, bytes: &[u8], secret: &str) {
    assert!(
        find_bytes(bytes, secret.as_bytes()).is_some(),
        "{what} should carry the session ({}…)",
        &secret[..8]
    );
}

/// The value of a keyutils entry as a fresh process (its own session keyring,
/// like any later awsmfa) finds it through the user's persistent keyring.
fn keyutils_lookup(env: &Env, user: &str) -> Option<String> {
    let description = format!("keyring:{user}@{}", env.keyring_service());
    let mut cmd = env.command("keyctl");
    cmd.args([
        "session",
        "-",
        "sh",
        "-c",
        r#"keyctl get_persistent @s >/dev/null && id=$(keyctl search @s user "$1") && keyctl pipe "$id""#,
        "sh",
        &description,
    ]);
    let out = env.run_cmd(cmd);
    out.status.success().then(|| out.stdout_str())
}

/// `session:PROFILE:FINGERPRINT`, the keyring entry of the profile's current
/// session, from awsmfa's non-secret metadata file.
fn session_entry(env: &Env, profile: &str) -> String {
    let meta = std::fs::read_to_string(env.state_home.join("awsmfa/sessions").join(profile))
        .unwrap_or_else(|e| panic!("no session metadata for {profile}: {e}"));
    let fp = meta.split_whitespace().nth(1).expect("EXPIRY FINGERPRINT");
    format!("session:{profile}:{fp}")
}

fn credential_process(env: &Env, profile: &str) -> serde_json::Value {
    let out = env.run(["credential-process", profile]);
    assert_ok(&out);
    serde_json::from_str(&out.stdout_str()).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()))
}

/// Waits until `pid`'s argv is exactly `argv` (execve happened).
fn wait_for_argv(reaper: &mut Reaper, argv: &[u8]) {
    let pid = reaper.child().id();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline == argv {
            return;
        }
        assert!(
            reaper.child().try_wait().unwrap().is_none(),
            "pid {pid} ended before becoming {:?}",
            String::from_utf8_lossy(argv)
        );
        assert!(
            Instant::now() < deadline,
            "pid {pid} never became {:?}: {:?}",
            String::from_utf8_lossy(argv),
            String::from_utf8_lossy(&cmdline)
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Every process's argv on the machine: (pid, cmdline bytes).
fn all_cmdlines() -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while we read: a vanished one is fine.
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            out.push((pid, cmdline));
        }
    }
    out
}

#[track_caller]
fn assert_no_cmdline_has(cmdlines: &[(u32, Vec<u8>)], secrets: &[String]) {
    for (pid, cmdline) in cmdlines {
        assert_clean(&format!("/proc/{pid}/cmdline"), cmdline, secrets);
    }
}

// ---------------------------------------------------------------------------

#[test]
fn a_full_run_leaves_no_secret_on_disk_or_in_messages() {
    let Some(w) = world() else { return };
    let env = &w.env;
    // (what, output, whether its stdout may carry credentials by design)
    let mut runs: Vec<(String, Output, bool)> = Vec::new();
    let mut record = |what: &str, out: Output, stdout_may_hold_creds: bool| {
        assert_ok(&out);
        runs.push((what.to_string(), out, stdout_may_hold_creds));
    };

    record("add dev", add(env, "dev", &w.dev.id, &w.dev.secret), false);
    record(
        "add other",
        add(env, "other", &w.other.id, &w.other.secret),
        false,
    );
    let dump = env.run(["-v", "exec", "dev", "--", "env"]);
    record("exec dev -- env", dump.clone(), true);
    record(
        "exec admin",
        env.run(["-v", "exec", "admin", "--", "true"]),
        false,
    );
    let cp_dev = env.run(["-v", "credential-process", "dev"]);
    record("credential-process dev", cp_dev.clone(), true);
    let mut cmd = env.cmd(["credential-process", "admin"]);
    cmd.env("AWSMFA_LOG", "1");
    let cp_admin = env.run_cmd(cmd);
    record("credential-process admin", cp_admin.clone(), true);
    record("list", env.run(["-v", "list"]), false);
    record("list --json", env.run(["-v", "list", "--json"]), false);
    record("status", env.run(["-v", "status"]), false);
    record("status --json", env.run(["status", "--json"]), false);
    record("doctor", env.run(["-v", "doctor"]), false);
    record("clear dev", env.run(["-v", "clear", "dev"]), false);
    // A second mint after the clear: more issued secrets to look for.
    as_if_a_step_passed(env, &w.stub);
    record(
        "exec dev again",
        env.run(["-v", "exec", "dev", "--", "true"]),
        false,
    );
    record("clear", env.run(["-v", "clear"]), false);
    record(
        "remove dev",
        env.run(["-v", "remove", "dev", "--yes"]),
        false,
    );

    let issued = w.stub.issued();
    assert_eq!(
        issued.iter().map(|i| i.action.as_str()).collect::<Vec<_>>(),
        ["GetSessionToken", "AssumeRole", "GetSessionToken"],
        "the run should have minted dev, admin, then dev again"
    );
    // The needles are right: the child's env and credential-process's stdout
    // do carry the sessions (the only places they may appear).
    assert_contains_secret("exec dev -- env", &dump.stdout, &issued[0].session_token);
    assert_contains_secret(
        "exec dev -- env",
        &dump.stdout,
        &issued[0].secret_access_key,
    );
    assert_contains_secret(
        "credential-process dev",
        &cp_dev.stdout,
        &issued[0].secret_access_key,
    );
    assert_contains_secret(
        "credential-process admin",
        &cp_admin.stdout,
        &issued[1].session_token,
    );

    let all = secrets(&w);
    assert_eq!(all.len(), 2 + 2 * issued.len());
    for (what, out, stdout_may_hold_creds) in &runs {
        assert_clean(&format!("stderr of {what}"), &out.stderr, &all);
        if !stdout_may_hold_creds {
            assert_clean(&format!("stdout of {what}"), &out.stdout, &all);
        }
    }
    // The long-lived key never reaches a child, not even the env dump.
    assert_clean(
        "exec dev -- env",
        &dump.stdout,
        std::slice::from_ref(&w.dev.secret),
    );

    env.assert_not_on_disk(&refs(&all));
    assert!(
        !env.credentials_path().exists(),
        "~/.aws/credentials was written"
    );
    // What awsmfa does keep on disk is there, and holds none of it (above).
    assert!(env.state_home.join("awsmfa").is_dir());
}

#[test]
fn no_secret_in_any_process_argv() {
    let Some(w) = world() else { return };
    let env = &w.env;
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));
    assert_ok(&add(env, "other", &w.other.id, &w.other.secret));

    // Long enough to outlive the scans on a loaded machine; killed below.
    let mut cmd = env.cmd(["exec", "dev", "--", "sleep", "10"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut sleeper = Reaper(cmd.spawn().expect("spawn exec"));
    wait_for_argv(&mut sleeper, b"sleep\x0010\x00");
    let sleep_pid = sleeper.child().id();
    assert_eq!(w.stub.successes("GetSessionToken"), 1);

    // Slow STS: the next two awsmfa processes sit mid-mint, one holding dev's
    // session (AssumeRole for admin), one other's long-lived key
    // (GetSessionToken), while every argv on the machine is read.
    w.stub.delay(Duration::from_secs(2));
    let spawn_cp = |profile: &str| {
        let mut cmd = env.cmd(["credential-process", profile]);
        // Its output (one short line) fits in the pipe: it never blocks on it.
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        Reaper(cmd.spawn().expect("spawn credential-process"))
    };
    let mut cp_admin = spawn_cp("admin");
    let mut cp_other = spawn_cp("other");
    let (admin_pid, other_pid) = (cp_admin.child().id(), cp_other.child().id());
    assert!(w.stub.wait_for_calls("AssumeRole", 1, TIMEOUT));
    assert!(w.stub.wait_for_calls("GetSessionToken", 2, TIMEOUT));
    let during = all_cmdlines();
    // The scan saw what it is meant to see: the exec'd child, and both
    // credential-process runs still waiting on STS.
    let argv_of = |pid: u32| {
        during
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, c)| String::from_utf8_lossy(c).replace('\0', " "))
    };
    assert_eq!(argv_of(sleep_pid).as_deref(), Some("sleep 10 "));
    let bin = awsmfa_bin().display().to_string();
    assert_eq!(
        argv_of(admin_pid),
        Some(format!("{bin} credential-process admin "))
    );
    assert_eq!(
        argv_of(other_pid),
        Some(format!("{bin} credential-process other "))
    );
    assert_no_cmdline_has(&during, &secrets(&w));

    for cp in [&mut cp_admin, &mut cp_other] {
        let status =
            wait_until(cp.child(), Instant::now() + TIMEOUT).expect("credential-process ended");
        assert!(status.success(), "credential-process failed: {status}");
        let mut json = String::new();
        cp.child()
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut json)
            .unwrap();
        assert!(json.starts_with("{\"Version\":1,"), "{json}");
    }
    assert_eq!(w.stub.issued().len(), 3);
    // Again with every session now issued, the sleeper still running.
    assert!(sleeper.child().try_wait().unwrap().is_none());
    assert_no_cmdline_has(&all_cmdlines(), &secrets(&w));
    // The needles are right: the session is in the child's environment.
    let environ = std::fs::read(format!("/proc/{sleep_pid}/environ")).expect("read environ");
    assert_contains_secret(
        "the child's environment",
        &environ,
        &w.stub.issued()[0].session_token,
    );

    // SAFETY: kill(2) on the pid of our own child.
    assert_eq!(unsafe { libc::kill(sleep_pid as i32, libc::SIGTERM) }, 0);
    let status = wait_until(sleeper.child(), Instant::now() + TIMEOUT).expect("sleep ended");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn secret_service_holds_the_key_encrypted_and_shares_it_across_processes() {
    let Some(mut w) = world() else { return };
    let Some(ss) = SecretService::start(&w.env) else {
        return;
    };
    ss.apply(&mut w.env);
    let env = &w.env;
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));

    // Really in the Secret Service, under awsmfa's service name…
    let out = ss.secret_tool(
        env,
        &[
            "lookup",
            "service",
            env.keyring_service(),
            "username",
            "key:dev",
        ],
        None,
    );
    assert_ok(&out);
    assert!(
        out.stdout_str().contains(&w.dev.secret) && out.stdout_str().contains(&w.dev.id),
        "the Secret Service entry should hold the key"
    );
    // …and not in the kernel keyring.
    assert_eq!(keyutils_lookup(env, "key:dev"), None);

    // Two processes, one STS call: the second finds the session the first cached.
    let first = credential_process(env, "dev");
    let second = credential_process(env, "dev");
    assert_eq!(first, second);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(
        w.stub.last_request().unwrap().access_key_id.as_deref(),
        Some(w.dev.id.as_str())
    );

    // gnome-keyring persisted the item to its file, encrypted.
    let keyrings = env.data_home.join("keyrings");
    let files: Vec<PathBuf> = std::fs::read_dir(&keyrings)
        .unwrap_or_else(|e| panic!("{}: {e}", keyrings.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "keyring"))
        .collect();
    assert!(!files.is_empty(), "gnome-keyring wrote no keyring file");
    env.assert_not_on_disk(&refs(&secrets(&w)));
    assert!(!env.credentials_path().exists());

    assert_ok(&env.run(["remove", "dev", "--yes"]));
    let out = ss.secret_tool(
        env,
        &[
            "lookup",
            "service",
            env.keyring_service(),
            "username",
            "key:dev",
        ],
        None,
    );
    assert!(out.stdout.is_empty(), "remove left the key: {}", out.dump());
}

#[test]
fn secret_service_can_hold_the_sessions_too() {
    let Some(mut w) = world() else { return };
    let Some(ss) = SecretService::start(&w.env) else {
        return;
    };
    ss.apply(&mut w.env);
    w.env.set("AWSMFA_SESSION_KEYRING", "secret-service");
    let env = &w.env;
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));

    let first = credential_process(env, "dev");
    let second = credential_process(env, "dev");
    assert_eq!(first, second);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let issued = w.stub.last_issued().unwrap();

    let entry = session_entry(env, "dev");
    let out = ss.secret_tool(
        env,
        &[
            "lookup",
            "service",
            env.keyring_service(),
            "username",
            &entry,
        ],
        None,
    );
    assert_ok(&out);
    assert!(
        out.stdout_str().contains(&issued.session_token),
        "the session should be in the Secret Service"
    );
    assert_eq!(keyutils_lookup(env, &entry), None, "and not in keyutils");

    // A role's session goes there as well, and exec reads from there.
    let out = env.run(["exec", "admin", "--", "true"]);
    assert_ok(&out);
    let role_entry = session_entry(env, "admin");
    let out = ss.secret_tool(
        env,
        &[
            "lookup",
            "service",
            env.keyring_service(),
            "username",
            &role_entry,
        ],
        None,
    );
    assert!(
        out.stdout_str()
            .contains(&w.stub.last_issued().unwrap().session_token)
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.calls("AssumeRole"), 1);

    env.assert_not_on_disk(&refs(&secrets(&w)));

    // clear drops it from the Secret Service.
    assert_ok(&env.run(["clear", "dev"]));
    let out = ss.secret_tool(
        env,
        &[
            "lookup",
            "service",
            env.keyring_service(),
            "username",
            &entry,
        ],
        None,
    );
    assert!(
        out.stdout.is_empty(),
        "clear left the session: {}",
        out.dump()
    );
}

#[test]
fn keyutils_holds_keys_and_sessions_across_processes() {
    let Some(w) = world() else { return };
    let env = &w.env;
    assert_eq!(
        env.var("AWSMFA_KEYRING").and_then(|v| v.to_str()),
        Some("keyutils")
    );
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));
    let stored = keyutils_lookup(env, "key:dev").expect("the key is in the kernel keyring");
    assert!(stored.contains(&w.dev.secret));

    let first = credential_process(env, "dev");
    let second = credential_process(env, "dev");
    assert_eq!(first, second);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let issued = w.stub.last_issued().unwrap();
    assert_eq!(first["SessionToken"], issued.session_token.as_str());
    let entry = session_entry(env, "dev");
    let session = keyutils_lookup(env, &entry).expect("the session is in the kernel keyring");
    assert!(session.contains(&issued.session_token));

    env.assert_not_on_disk(&refs(&secrets(&w)));
    assert!(!env.credentials_path().exists());

    // remove deletes both from the keyring itself.
    assert_ok(&env.run(["remove", "dev", "--yes"]));
    assert_eq!(keyutils_lookup(env, "key:dev"), None);
    assert_eq!(keyutils_lookup(env, &entry), None);
}

#[test]
fn error_messages_never_print_secrets() {
    let Some(w) = world() else { return };
    let env = &w.env;
    let unknown = Key::new(); // never told to the stub
    let wrong = Key {
        id: w.other.id.clone(),
        secret: Key::new().secret, // the stub knows another secret for this id
    };
    let mfa_leak = format!("PRINTED/{}", random_hex(12));
    let (ghost, leaky) = (mfa_device("ghost"), mfa_device("leaky"));
    env.write_aws_config(&config(&format!(
        "\n[profile ghost]\nregion = us-east-1\nmfa_serial = {ghost}\nmfa_process = oathtool --totp -b {SEED}\n\
         \n[profile leaky]\nregion = us-east-1\nmfa_serial = {leaky}\nmfa_process = printf '%s\\n' {mfa_leak}\n\
         \n[profile denied]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/not-allowed\nsource_profile = dev\n"
    )));
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));
    assert_ok(&add(env, "ghost", &unknown.id, &unknown.secret));
    assert_ok(&add(env, "other", &wrong.id, &wrong.secret));
    assert_ok(&add(env, "leaky", &w.dev.id, &w.dev.secret));
    assert_ok(&env.run(["exec", "dev", "--", "true"]));

    let mut secrets = secrets(&w);
    secrets.extend([
        unknown.secret.clone(),
        wrong.secret.clone(),
        mfa_leak.clone(),
    ]);

    let check = |args: &[&str], expect: &[&str]| {
        let out = env.run(args);
        assert_code(&out, 1);
        let err = out.stderr_str();
        for e in expect {
            assert!(err.contains(e), "{args:?} should say {e:?}\n{}", out.dump());
        }
        assert_clean(&format!("stderr of {args:?}"), &out.stderr, &secrets);
        assert_clean(&format!("stdout of {args:?}"), &out.stdout, &secrets);
    };
    // A key STS does not know.
    for cmd in [
        &["-v", "exec", "ghost", "--", "true"][..],
        &["-v", "credential-process", "ghost"][..],
    ] {
        check(cmd, &["InvalidClientTokenId", "awsmfa add ghost"]);
    }
    // A known key id with the wrong secret.
    check(
        &["-v", "credential-process", "other"],
        &["SignatureDoesNotMatch", "awsmfa add other"],
    );
    // An mfa_process that prints something else than a code: not echoed.
    check(
        &["-v", "exec", "leaky", "--", "true"],
        &["something other than a 6-digit code"],
    );
    // A role the source may not assume, from a cached session.
    check(
        &["-v", "credential-process", "denied"],
        &["AccessDenied", "role/not-allowed"],
    );
    assert_eq!(w.stub.calls("AssumeRole"), 1);
    assert_eq!(
        w.stub.issued().len(),
        1,
        "only dev's session was ever issued"
    );
    // STS unreachable (another endpoint, another session to mint for dev: at
    // once, not after waiting out the step of dev's first code).
    env.forget_totp_steps();
    let mut cmd = env.cmd(["-v", "credential-process", "dev"]);
    cmd.env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9");
    let out = env.run_cmd(cmd);
    assert_code(&out, 1);
    assert!(out.stderr_str().contains("127.0.0.1:9"), "{}", out.dump());
    assert_clean("stderr of an unreachable STS", &out.stderr, &secrets);
    assert!(out.stdout.is_empty());

    // `add` refusing malformed input does not echo it back.
    let pasted = format!("wJalr/{}+KEY", random_hex(12));
    let spaced = format!("secret with spaces {}", random_hex(12));
    for (id, secret, bad) in [
        (pasted.as_str(), w.dev.secret.as_str(), pasted.as_str()),
        (w.dev.id.as_str(), spaced.as_str(), spaced.as_str()),
    ] {
        let out = add(env, "dev", id, secret);
        assert_code(&out, 1);
        let mut needles = secrets.clone();
        needles.push(bad.to_string());
        assert_clean("stderr of a refused add", &out.stderr, &needles);
        assert_clean("stdout of a refused add", &out.stdout, &needles);
    }
}

#[test]
fn mfa_process_does_not_inherit_the_enclosing_session() {
    let Some(w) = world() else { return };
    let env = &w.env;
    let seen = env.root.join("mfa-env.txt");
    env.write_aws_config(&config("").replace(
        &format!("mfa_serial = {OTHER_SERIAL}\nmfa_process = oathtool --totp -b {SEED}"),
        &format!(
            "mfa_serial = {OTHER_SERIAL}\nmfa_process = env > {} && oathtool --totp -b {SEED}",
            seen.display()
        ),
    ));
    assert_ok(&add(env, "dev", &w.dev.id, &w.dev.secret));
    assert_ok(&add(env, "other", &w.other.id, &w.other.secret));

    // An SDK inside `exec dev` runs credential_process for `other`, which
    // needs an MFA code: the code's helper must not see dev's session.
    let mut cmd = env.cmd(["exec", "dev", "--"]);
    cmd.arg(awsmfa_bin()).args(["credential-process", "other"]);
    let out = env.run_cmd(cmd);
    assert_ok(&out);
    let issued = w.stub.issued();
    assert_eq!(issued.len(), 2);
    let dumped = std::fs::read_to_string(&seen).expect("mfa_process ran");
    assert!(dumped.contains("AWSMFA_PROFILE=dev"), "{dumped}");
    for var in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_SESSION_TOKEN=",
    ] {
        assert!(
            !dumped.lines().any(|l| l.starts_with(var)),
            "{var} reached mfa_process"
        );
    }
    env.assert_not_on_disk(&refs(&secrets(&w)));
    // Not vacuous: what the SDK got is other's session.
    let v: serde_json::Value = serde_json::from_str(&out.stdout_str()).unwrap();
    assert_eq!(v["SessionToken"], issued[1].session_token.as_str());
    assert_eq!(issued[1].caller_key_id, w.other.id);
}
