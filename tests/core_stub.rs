//! The core promises of awsmfa, against the loopback STS stub: one MFA per
//! session lifetime, across sequential calls, 32 concurrent processes, role
//! chains and a `kill -9`; wrong codes asked again; expired, corrupted and
//! foreign cache entries replaced; throttling retried; both keyring stores;
//! durations reaching STS; one code per 30 s step on one MFA device (the stub
//! refuses a code it accepted before, as STS does); `exec --min-remaining`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;
use support::process::{Collector, kill_tree, wait_until};
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const KEY: &str = "AKIASTUBCORETEST0001";
const SECRET: &str = "corelonglivedsecret/0123456789abcdefGHIJ";
const ROLE_A: &str = "arn:aws:iam::123456789012:role/deployer-a";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/deployer-b";
const T: Duration = Duration::from_secs(20);

/// One test's world: an Env pointed at its own STS stub, a `dev` profile whose
/// key is stored, and an `mfa_process` script that counts its runs.
struct World {
    env: Env,
    stub: StsStub,
    /// One line per mfa_process run.
    counter: PathBuf,
    /// The counting mfa_process script (prints the current TOTP via oathtool).
    mfa: PathBuf,
}

/// The components every test here needs; `None` (after a SKIP line, or a
/// panic under AWSMFA_REQUIRE_ALL=1) when one is missing.
fn prerequisites() -> Option<()> {
    if !keyutils_available() {
        return None;
    }
    require("oathtool (Debian package oathtool)", which("oathtool"))?;
    Some(())
}

impl World {
    /// `dev` with `mfa_process` = the counting script.
    fn new() -> Option<World> {
        Self::with_mfa(true)
    }

    /// `dev` without `mfa_process`: codes are typed at /dev/tty.
    fn prompting() -> Option<World> {
        Self::with_mfa(false)
    }

    fn with_mfa(process: bool) -> Option<World> {
        Self::build(process, |_| {})
    }

    fn build(process: bool, before_add: impl FnOnce(&mut Env)) -> Option<World> {
        prerequisites()?;
        let stub = StsStub::start();
        stub.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
        let mut env = Env::new();
        env.set_sts_endpoint(&stub.url());
        let counter = env.root.join("mfa-runs");
        let mfa = env.write_script(
            "bin/mfa",
            &format!(
                "#!/bin/sh\necho run >> '{}'\nexec oathtool --totp -b {SEED}\n",
                counter.display()
            ),
        );
        before_add(&mut env);
        let w = World {
            env,
            stub,
            counter,
            mfa,
        };
        w.write_config(if process { Some(&w.mfa) } else { None }, "");
        w.add_key("dev");
        Some(w)
    }

    /// Rewrites ~/.aws/config: `dev` (with `mfa_process` when given) plus `extra`.
    fn write_config(&self, mfa_process: Option<&Path>, extra: &str) {
        let mfa = mfa_process
            .map(|p| format!("mfa_process = {}\n", p.display()))
            .unwrap_or_default();
        self.env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n{mfa}\n{extra}"
        ));
    }

    fn add_key(&self, profile: &str) {
        let mut cmd = self.env.cmd(["add", profile, "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET);
        let out = self.env.run_cmd(cmd);
        assert_ok(&out);
    }

    /// `deploy`: ROLE_A, 15 minutes, assumed with dev's session.
    fn add_deploy_role(&self) {
        self.write_config(
            Some(&self.mfa),
            &format!(
                "[profile deploy]\nrole_arn = {ROLE_A}\nsource_profile = dev\nduration_seconds = 900\n"
            ),
        );
    }

    /// See [`support::as_if_a_step_passed`].
    fn as_if_a_step_passed(&self) {
        as_if_a_step_passed(&self.env, &self.stub);
    }

    fn mfa_runs(&self) -> usize {
        fs::read_to_string(&self.counter).map_or(0, |s| s.lines().count())
    }

    /// `credential-process PROFILE`, which must succeed; returns its stdout.
    #[track_caller]
    fn cp(&self, profile: &str) -> String {
        let out = self.env.run_ok(["credential-process", profile]);
        assert_no_panic(&out);
        out.stdout_str()
    }

    /// The session metadata file of `profile`: `EXPIRY FINGERPRINT`.
    fn meta_path(&self, profile: &str) -> PathBuf {
        self.env.state_home.join("awsmfa/sessions").join(profile)
    }

    fn fingerprint(&self, profile: &str) -> String {
        let text = fs::read_to_string(self.meta_path(profile))
            .unwrap_or_else(|e| panic!("session metadata of {profile}: {e}"));
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields.len(), 2, "metadata {text:?}");
        assert_eq!(fields[1].len(), 24, "fingerprint in {text:?}");
        fields[1].to_string()
    }

    /// The keyutils description of a keyring entry named `user`.
    fn key_description(&self, user: &str) -> String {
        format!("keyring:{user}@{}", self.env.keyring_service())
    }

    /// The `list --json` row of `profile`.
    fn list_row(&self, profile: &str) -> Value {
        let out = self.env.run_ok(["list", "--json"]);
        let rows: Value = serde_json::from_str(&out.stdout_str())
            .unwrap_or_else(|e| panic!("list --json is not JSON ({e})\n{}", out.dump()));
        rows.as_array()
            .expect("list --json is an array")
            .iter()
            .find(|r| r["profile"] == profile)
            .unwrap_or_else(|| panic!("no {profile} in {rows:#}"))
            .clone()
    }
}

/// The exact credential_process line for credentials the stub issued.
fn expected_json(i: &Issued) -> String {
    format!(
        "{{\"Version\":1,\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\",\"SessionToken\":\"{}\",\"Expiration\":\"{}\"}}\n",
        i.access_key_id, i.secret_access_key, i.session_token, i.expiration_text
    )
}

/// The issued credentials of `action`, in order.
fn issued(stub: &StsStub, action: &str) -> Vec<Issued> {
    stub.issued()
        .into_iter()
        .filter(|i| i.action == action)
        .collect()
}

/// A 6-digit code that is not valid anywhere near now: certainly rejected.
fn wrong_code() -> String {
    let valid: Vec<String> = (-3..=3).map(|s| totp_at(SEED, s)).collect();
    (0..1_000_000)
        .map(|n| format!("{:06}", (n * 7919 + 123_456) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// Runs `script` (with `args` as $1…) in a fresh anonymous keyutils session
/// that has the user's persistent keyring linked in, which is where awsmfa's
/// entries live.
fn keyctl_sh(env: &Env, script: &str, args: &[&str]) -> Output {
    let mut cmd = env.command("keyctl");
    cmd.args(["session", "-", "sh", "-c", script, "sh"])
        .args(args);
    env.run_cmd(cmd)
}

/// The key id of the keyutils entry `description`, if there is one.
fn keyutils_find(env: &Env, description: &str) -> Option<String> {
    let out = keyctl_sh(
        env,
        r#"P=$(keyctl get_persistent @s) || exit 3; keyctl search "$P" user "$1""#,
        &[description],
    );
    out.status
        .success()
        .then(|| out.stdout_str().trim().to_string())
}

/// Replaces the content of the existing keyutils entry `description`.
#[track_caller]
fn keyutils_overwrite(env: &Env, description: &str, content: &[u8]) {
    let file = env.root.join("keyring-blob");
    fs::write(&file, content).unwrap();
    let out = keyctl_sh(
        env,
        r#"P=$(keyctl get_persistent @s) || exit 3
K=$(keyctl search "$P" user "$1") || exit 4
keyctl pupdate "$K" < "$2" || exit 5
keyctl pipe "$K" | cmp -s - "$2" || exit 6"#,
        &[description, file.to_str().unwrap()],
    );
    assert_ok(&out);
}

// 1 ─────────────────────────────────────────────────────────────────────────

#[test]
fn one_mfa_per_ttl_across_sequential_calls_and_exec() {
    let Some(w) = World::new() else { return };
    let outputs: Vec<String> = (0..5).map(|_| w.cp("dev")).collect();
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.total_calls(), 1);
    assert_eq!(w.mfa_runs(), 1);
    let issued = w.stub.last_issued().unwrap();
    for out in &outputs {
        assert_eq!(out, &expected_json(&issued));
    }
    // The one request carried the device and a code.
    let req = w.stub.last_request().unwrap();
    assert_eq!(req.serial_number.as_deref(), Some(SERIAL));
    assert_eq!(req.access_key_id.as_deref(), Some(KEY));

    let mut cmd = w.env.cmd(["exec", "dev", "--", "sh", "-c"]);
    cmd.arg(r#"printf '%s\n%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SESSION_TOKEN""#);
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    assert_eq!(
        out.stdout_str(),
        format!("{}\n{}\n", issued.access_key_id, issued.session_token)
    );
    w.env.run_ok(["exec", "dev", "--", "true"]);
    assert_eq!(w.stub.total_calls(), 1);
    assert_eq!(w.mfa_runs(), 1);
    assert_eq!(w.list_row("dev")["session"], "active");
    // The session never touched the disk in the clear.
    w.env
        .assert_not_on_disk(&[&issued.secret_access_key, &issued.session_token, SECRET]);
}

// 2 ─────────────────────────────────────────────────────────────────────────

const PROMPT: &str = "MFA code for arn:aws:iam::123456789012:mfa/dev (dev): ";

#[test]
fn wrong_typed_code_is_asked_again_then_accepted() {
    let Some(w) = World::prompting() else { return };
    // The wrong code and the first retyped one within one step.
    room_in_step(Duration::from_secs(10));
    let mut pty = Pty::spawn(
        w.env.cmd(["credential-process", "dev"]),
        PtyOpts::tty_only(),
    );
    pty.expect_ok(PROMPT, T);
    pty.send_line(&wrong_code());
    let seen = pty.expect_ok("rejected", T);
    assert!(seen.contains("STS"), "{seen:?}");
    pty.expect_ok(PROMPT, T);
    // STS answers a reused code as it answers a wrong one, so the rejected
    // code's step counts as used: a code from it is refused here, unsent.
    let refused = totp_now(SEED);
    pty.send_line(&refused);
    let said = pty.expect_ok(" s and type the next code", T);
    assert!(said.contains("already sent to STS"), "{said:?}");
    assert_eq!(
        w.stub.calls("GetSessionToken"),
        1,
        "the refused code was sent"
    );
    pty.expect_ok(PROMPT, T);
    thread::sleep(Duration::from_secs(waited(&said, "wait ")));
    pty.send_line(&totp_now(SEED));
    assert_eq!(pty.wait_code(T), 0, "{}\n{}", pty.output(), pty.stderr());
    let issued = w.stub.last_issued().unwrap();
    assert_eq!(pty.stdout(), expected_json(&issued));
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    assert!(
        w.stub
            .requests()
            .iter()
            .all(|r| r.token_code.as_deref() != Some(&*refused)),
        "STS saw the refused code"
    );
    assert!(!pty.stderr().contains("panicked"), "{}", pty.stderr());
    // Nothing of the session reached the terminal.
    assert!(!pty.output().contains(&issued.secret_access_key));
    // Cached now: no terminal needed for the next call.
    assert_eq!(w.cp("dev"), expected_json(&issued));
    assert_eq!(w.stub.total_calls(), 2);
}

/// N from "…{before}N s…" in what awsmfa said.
#[track_caller]
fn waited(said: &str, before: &str) -> u64 {
    said.rsplit_once(before)
        .and_then(|(_, rest)| rest.split_once(" s")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no \"{before}N s\" in {said:?}"))
}

#[test]
fn non_numeric_typed_code_is_asked_again_without_an_sts_call() {
    let Some(w) = World::prompting() else { return };
    let mut pty = Pty::spawn(
        w.env.cmd(["credential-process", "dev"]),
        PtyOpts::tty_only(),
    );
    pty.expect_ok(PROMPT, T);
    pty.send_line("12ab56");
    pty.expect_ok("6 digits", T);
    pty.expect_ok(PROMPT, T);
    assert_eq!(w.stub.total_calls(), 0, "a malformed code reached STS");
    pty.send_line(&totp_now(SEED));
    assert_eq!(pty.wait_code(T), 0, "{}\n{}", pty.output(), pty.stderr());
    assert_eq!(pty.stdout(), expected_json(&w.stub.last_issued().unwrap()));
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
}

#[test]
fn wrong_typed_codes_within_one_step_reach_sts_once_and_fail_clearly() {
    let Some(w) = World::prompting() else { return };
    room_in_step(Duration::from_secs(10));
    let mut pty = Pty::spawn(
        w.env.cmd(["credential-process", "dev"]),
        PtyOpts::tty_only(),
    );
    pty.expect_ok(PROMPT, T);
    pty.send_line(&wrong_code());
    pty.expect_ok("rejected that code (try 2 of 3)", T);
    // The rest of the step is spent: each code typed in it is refused here
    // (a try each), and none reaches STS.
    for _ in 0..3 {
        pty.expect_ok(PROMPT, T);
        pty.send_line(&wrong_code());
        pty.expect_ok("s and type the next code", T);
    }
    assert_eq!(pty.wait_code(T), 1, "{}", pty.output());
    assert_eq!(pty.stdout(), "", "nothing on stdout after a failure");
    let err = pty.stderr();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("no MFA code") && err.contains("no usable 6-digit code after 3 tries"),
        "{err}"
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.successes("GetSessionToken"), 0);
    assert!(!w.meta_path("dev").exists(), "a failed mint left metadata");
}

#[test]
fn wrong_code_from_mfa_process_is_retried_with_a_new_code() {
    let Some(mut w) = World::new() else { return };
    // The retry waits for the next step: the same code again would be refused.
    w.env.set_timeout(Duration::from_secs(60));
    // First run prints a wrong code, later runs the right one.
    let wrong = wrong_code();
    let script = w.env.write_script(
        "bin/mfa-flaky",
        &format!(
            "#!/bin/sh\necho run >> '{c}'\nif [ \"$(wc -l < '{c}')\" -eq 1 ]; then echo {wrong}; else exec oathtool --totp -b {SEED}; fi\n",
            c = w.counter.display()
        ),
    );
    w.write_config(Some(&script), "");
    // Not at a step's end, where the wrong code could reach STS in the next.
    room_in_step(Duration::from_secs(5));
    let out = w.env.run_ok(["credential-process", "dev"]);
    assert_eq!(
        out.stdout_str(),
        expected_json(&w.stub.last_issued().unwrap())
    );
    assert!(
        out.stderr_str()
            .contains("s for a fresh code from mfa_process"),
        "{}",
        out.dump()
    );
    assert_eq!(w.mfa_runs(), 2, "a code asked for only once its step came");
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    let reqs = w.stub.requests();
    assert_eq!(reqs[0].token_code.as_deref(), Some(&*wrong));
    assert_ne!(reqs[1].token_code.as_deref(), Some(&*wrong));
    // The retried code is from a later step than the rejected one was sent in.
    let sent = reqs[0].at.duration_since(UNIX_EPOCH).unwrap().as_secs() / 30;
    assert!(reqs[1].totp_step.is_some_and(|s| s > sent), "{reqs:#?}");
}

// 3 ─────────────────────────────────────────────────────────────────────────

#[test]
fn expired_session_is_minted_again() {
    let Some(w) = World::new() else { return };
    w.env.write_awsmfa_config("refresh_before = \"1s\"\n");
    w.stub.session_lifetime(Some(Duration::from_secs(3)));
    let first = w.cp("dev");
    let second = w.cp("dev");
    assert_eq!(first, second, "a session with 2 s left was not reused");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let exp = parse_rfc3339(&w.stub.last_issued().unwrap().expiration_text).unwrap();
    // Past its expiry (whole seconds, as STS and awsmfa count).
    while std::time::SystemTime::now() < exp + Duration::from_millis(100) {
        thread::sleep(Duration::from_millis(50));
    }
    w.as_if_a_step_passed();
    let third = w.cp("dev");
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.mfa_runs(), 2);
    assert_ne!(third, first);
    assert_eq!(third, expected_json(&w.stub.last_issued().unwrap()));
}

#[test]
fn role_with_a_revoked_source_session_re_mints_the_source_once() {
    let Some(w) = World::new() else { return };
    w.write_config(
        Some(&w.mfa),
        &format!("[profile deploy]\nrole_arn = {ROLE_A}\nsource_profile = dev\n"),
    );
    let dev = w.cp("dev");
    let old = w.stub.last_issued().unwrap();
    assert_eq!(dev, expected_json(&old));
    // STS revokes the session early; awsmfa cannot know without asking.
    w.stub.expire(&old.access_key_id);
    // GetSessionToken does not use the session, so dev's cache hit is served.
    assert_eq!(w.cp("dev"), dev);
    assert_eq!(w.stub.total_calls(), 1);

    w.as_if_a_step_passed();
    let role = w.cp("deploy");
    assert_eq!(w.stub.calls("GetSessionToken"), 2, "source re-minted once");
    assert_eq!(w.stub.calls("AssumeRole"), 2);
    assert_eq!(w.stub.successes("AssumeRole"), 1);
    assert_eq!(w.mfa_runs(), 2);
    let reqs = w.stub.requests();
    let assumes: Vec<_> = reqs.iter().filter(|r| r.action == "AssumeRole").collect();
    assert_eq!(assumes[0].error.as_deref(), Some("ExpiredToken"));
    assert_eq!(
        assumes[0].access_key_id.as_deref(),
        Some(&*old.access_key_id)
    );
    let new_src = &issued(&w.stub, "GetSessionToken")[1];
    assert_eq!(
        assumes[1].access_key_id.as_deref(),
        Some(&*new_src.access_key_id)
    );
    assert_eq!(role, expected_json(&issued(&w.stub, "AssumeRole")[0]));
    // dev's cache holds the new source session now.
    assert_eq!(w.cp("dev"), expected_json(new_src));
    assert_eq!(w.stub.total_calls(), 4);
}

// 4 ─────────────────────────────────────────────────────────────────────────

/// Starts `credential-process P` for every P in `profiles` at once and waits
/// for all of them.
fn race(w: &World, profiles: &[&str]) -> Vec<Output> {
    let mut children: Vec<_> = profiles
        .iter()
        .map(|profile| {
            let mut cmd = w.env.cmd(["credential-process", profile]);
            // The debug log says how each process got its session.
            cmd.env("AWSMFA_LOG", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn awsmfa");
            let out = Collector::new(child.stdout.take());
            let err = Collector::new(child.stderr.take());
            (child, out, err)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut outputs = Vec::new();
    for i in 0..children.len() {
        let status = wait_until(&mut children[i].0, deadline);
        let Some(status) = status else {
            for (c, _, _) in &mut children {
                kill_tree(c);
                let _ = c.wait();
            }
            panic!("concurrent credential-process #{i} hung");
        };
        let (_, out, err) = &children[i];
        outputs.push(Output {
            status,
            stdout: out.finish(Duration::from_secs(2)),
            stderr: err.finish(Duration::from_secs(2)),
        });
    }
    outputs
}

#[test]
fn thirty_two_concurrent_calls_cost_one_mfa_and_one_sts_call() {
    let Some(w) = World::new() else { return };
    w.stub.delay(Duration::from_millis(300));
    for round in 1..=2 {
        let start = Instant::now();
        let outputs = race(&w, &["dev"; 32]);
        let took = start.elapsed();
        for out in &outputs {
            assert_ok(out);
            assert_no_panic(out);
        }
        assert_eq!(w.mfa_runs(), round, "MFA requests in round {round}");
        assert_eq!(w.stub.calls("GetSessionToken"), round, "round {round}");
        assert_eq!(w.stub.total_calls(), round);
        let expected = expected_json(&w.stub.last_issued().unwrap());
        for (i, out) in outputs.iter().enumerate() {
            assert_eq!(out.stdout_str(), expected, "process #{i} of round {round}");
        }
        // They really raced: most missed the cache, queued on the lock, and
        // found the session the winner minted meanwhile.
        let queued = outputs
            .iter()
            .filter(|o| o.stderr_str().contains("minted by another awsmfa"))
            .count();
        eprintln!("round {round}: 32 processes in {took:?}, {queued} queued on the lock");
        assert!(queued >= 16, "only {queued} of 32 overlapped the mint");
        w.env.run_ok(["clear"]);
        assert!(!w.meta_path("dev").exists());
        w.as_if_a_step_passed();
    }
}

// 5 ─────────────────────────────────────────────────────────────────────────

#[test]
fn kill_9_while_minting_leaves_no_stale_lock_and_no_partial_entry() {
    let Some(w) = World::new() else { return };
    let started = w.env.root.join("started");
    let slow = w.env.write_script(
        "bin/mfa-slow",
        &format!(
            "#!/bin/sh\necho run >> '{}'\necho started > '{}'\nexec sleep 10\n",
            w.counter.display(),
            started.display()
        ),
    );
    w.write_config(Some(&slow), "");
    let mut cmd = w.env.cmd(["credential-process", "dev"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn awsmfa");
    let deadline = Instant::now() + T;
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "mfa_process never started; awsmfa {:?}",
            child.try_wait()
        );
        thread::sleep(Duration::from_millis(10));
    }
    // awsmfa leads its own process group (Env::command): this kills it, its sh and sleep.
    kill_tree(&mut child);
    let status = child.wait().unwrap();
    assert!(!status.success());
    // Nothing half-written: no metadata, no keyring entry, list says none.
    assert!(!w.meta_path("dev").exists());
    assert_eq!(w.list_row("dev")["session"], "none");
    assert_eq!(w.stub.total_calls(), 0);

    w.write_config(Some(&w.mfa), "");
    let start = Instant::now();
    let out = w.env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    assert_ok(&out);
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}: waited for a dead process's lock?\n{}",
        out.dump()
    );
    assert!(!out.stderr_str().contains("waiting"), "{}", out.dump());
    assert_eq!(
        out.stdout_str(),
        expected_json(&w.stub.last_issued().unwrap())
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let row = w.list_row("dev");
    assert_eq!(row["session"], "active", "{row:#}");
    assert!(row["seconds_left"].as_u64().unwrap() > 3000, "{row:#}");
    let fp = w.fingerprint("dev");
    assert!(keyutils_find(&w.env, &w.key_description(&format!("session:dev:{fp}"))).is_some());
}

#[test]
fn a_process_waiting_on_the_lock_proceeds_when_the_holder_is_killed() {
    let Some(w) = World::new() else { return };
    let started = w.env.root.join("started");
    let slow_flag = w.env.root.join("slow");
    fs::write(&slow_flag, "").unwrap();
    // Slow (and never answering) while the flag file exists, a working
    // mfa_process once it is gone.
    let script = w.env.write_script(
        "bin/mfa-maybe-slow",
        &format!(
            "#!/bin/sh\necho run >> '{c}'\nif [ -e '{f}' ]; then echo started > '{s}'; exec sleep 10; fi\nexec oathtool --totp -b {SEED}\n",
            c = w.counter.display(),
            f = slow_flag.display(),
            s = started.display()
        ),
    );
    w.write_config(Some(&script), "");
    let mut holder = w.env.cmd(["credential-process", "dev"]);
    holder.stdout(Stdio::null()).stderr(Stdio::null());
    let mut holder = holder.spawn().expect("spawn awsmfa");
    let deadline = Instant::now() + T;
    while !started.exists() {
        assert!(Instant::now() < deadline, "mfa_process never started");
        thread::sleep(Duration::from_millis(10));
    }
    let mut waiter = w.env.cmd(["credential-process", "dev"]);
    waiter.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut waiter = waiter.spawn().expect("spawn awsmfa");
    let out = Collector::new(waiter.stdout.take());
    let err = Collector::new(waiter.stderr.take());
    // The waiter is queued on the lock, not minting: no second mfa_process.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(w.mfa_runs(), 1);
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "the waiter did not wait"
    );
    fs::remove_file(&slow_flag).unwrap();
    kill_tree(&mut holder);
    holder.wait().unwrap();
    let killed_at = Instant::now();
    let status = wait_until(&mut waiter, Instant::now() + T);
    let Some(status) = status else {
        kill_tree(&mut waiter);
        panic!("the waiter hung after the holder died: {}", err.text());
    };
    assert!(
        killed_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        killed_at.elapsed()
    );
    let stderr = String::from_utf8_lossy(&err.finish(T)).into_owned();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.finish(T)),
        expected_json(&w.stub.last_issued().unwrap())
    );
    assert_eq!(w.mfa_runs(), 2);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
}

// 6 ─────────────────────────────────────────────────────────────────────────

#[test]
fn one_mfa_serves_two_roles_on_the_same_source() {
    let Some(w) = World::new() else { return };
    w.write_config(
        Some(&w.mfa),
        &format!(
            "[profile role-a]\nrole_arn = {ROLE_A}\nsource_profile = dev\n\n\
             [profile role-b]\nrole_arn = {ROLE_B}\nsource_profile = dev\nrole_session_name = tf-b\n"
        ),
    );
    let a = w.cp("role-a");
    let b = w.cp("role-b");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.calls("AssumeRole"), 2);
    assert_eq!(w.mfa_runs(), 1);
    let src = &issued(&w.stub, "GetSessionToken")[0];
    let roles = issued(&w.stub, "AssumeRole");
    assert_eq!(roles[0].role_arn.as_deref(), Some(ROLE_A));
    assert_eq!(roles[1].role_arn.as_deref(), Some(ROLE_B));
    assert_eq!(a, expected_json(&roles[0]));
    assert_eq!(b, expected_json(&roles[1]));
    assert_ne!(a, b);
    // Both AssumeRole calls were made with the one MFA session.
    for r in w
        .stub
        .requests()
        .iter()
        .filter(|r| r.action == "AssumeRole")
    {
        assert_eq!(r.access_key_id.as_deref(), Some(&*src.access_key_id));
        assert_eq!(r.session_token.as_deref(), Some(&*src.session_token));
    }
    let names: Vec<_> = w
        .stub
        .requests()
        .into_iter()
        .filter_map(|r| r.role_session_name)
        .collect();
    assert_eq!(names[1], "tf-b");

    // Cached: no call at all the second time round.
    assert_eq!(w.cp("role-a"), a);
    assert_eq!(w.cp("role-b"), b);
    assert_eq!(w.cp("dev"), expected_json(src));
    w.env.run_ok(["exec", "role-a", "--", "true"]);
    assert_eq!(w.stub.total_calls(), 3);
    assert_eq!(w.mfa_runs(), 1);
}

#[test]
fn concurrent_calls_for_two_roles_share_one_mfa() {
    let Some(w) = World::new() else { return };
    w.write_config(
        Some(&w.mfa),
        &format!(
            "[profile role-a]\nrole_arn = {ROLE_A}\nsource_profile = dev\n\n\
             [profile role-b]\nrole_arn = {ROLE_B}\nsource_profile = dev\n"
        ),
    );
    w.stub.delay(Duration::from_millis(200));
    let profiles: Vec<&str> = (0..24)
        .map(|i| ["role-a", "role-b", "dev"][i % 3])
        .collect();
    let outs = race(&w, &profiles);
    for o in &outs {
        assert_ok(o);
        assert_no_panic(o);
    }
    assert_eq!(w.mfa_runs(), 1);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.calls("AssumeRole"), 2);
    let src = expected_json(&issued(&w.stub, "GetSessionToken")[0]);
    let roles = issued(&w.stub, "AssumeRole");
    let role_json = |arn: &str| {
        expected_json(
            roles
                .iter()
                .find(|i| i.role_arn.as_deref() == Some(arn))
                .unwrap(),
        )
    };
    for (profile, out) in profiles.iter().zip(&outs) {
        let want = match *profile {
            "role-a" => role_json(ROLE_A),
            "role-b" => role_json(ROLE_B),
            _ => src.clone(),
        };
        assert_eq!(out.stdout_str(), want, "{profile}");
    }
}

// 7 ─────────────────────────────────────────────────────────────────────────

#[test]
fn corrupted_or_foreign_cache_entries_are_replaced() {
    let Some(w) = World::new() else { return };
    let first = w.cp("dev");
    let fp = w.fingerprint("dev");
    let desc = w.key_description(&format!("session:dev:{fp}"));
    assert!(
        keyutils_find(&w.env, &desc).is_some(),
        "no keyutils entry {desc}"
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not a cached session {".to_vec()),
        (
            "foreign",
            format!(
                "{{\"Version\":1,\"Fingerprint\":\"0123456789abcdef01234567\",\"AccessKeyId\":\"ASIAFOREIGN000000000\",\
                 \"SecretAccessKey\":\"foreignsecret\",\"SessionToken\":\"foreigntoken\",\"Expiration\":{}}}",
                unix_now() + 3000
            )
            .into_bytes(),
        ),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x80, 0x81]),
    ];
    let mut previous = first;
    for (n, (what, blob)) in cases.into_iter().enumerate() {
        keyutils_overwrite(&w.env, &desc, &blob);
        w.as_if_a_step_passed();
        let out = w.env.run(["credential-process", "dev"]);
        assert_ok(&out);
        assert_no_panic(&out);
        if what != "not UTF-8" {
            assert!(
                out.stderr_str().contains("warning") && out.stderr_str().contains("discarding"),
                "{what}: no warning\n{}",
                out.dump()
            );
        }
        assert_eq!(w.stub.calls("GetSessionToken"), n + 2, "{what}");
        let now = expected_json(&w.stub.last_issued().unwrap());
        assert_eq!(out.stdout_str(), now, "{what}");
        assert_ne!(now, previous, "{what}");
        assert!(!now.contains("FOREIGN"));
        // The replacement is cached again.
        assert_eq!(w.cp("dev"), now, "{what}");
        assert_eq!(w.stub.calls("GetSessionToken"), n + 2, "{what}");
        previous = now;
    }
}

#[test]
fn corrupted_session_metadata_is_harmless() {
    let Some(w) = World::new() else { return };
    let first = w.cp("dev");
    for junk in ["", "garbage\n", "12 \n", "-5 zz zz\n", "\u{0}\u{1}binary"] {
        fs::write(w.meta_path("dev"), junk).unwrap();
        // The session itself is found by its fingerprint, not through this file.
        assert_eq!(w.cp("dev"), first, "metadata {junk:?}");
        // The cache hit put the metadata back, so the prompt and `list` see it.
        assert_eq!(w.list_row("dev")["session"], "active", "metadata {junk:?}");
        let out = w.env.run_ok(["list"]);
        assert_no_panic(&out);
        let out = w.env.run_ok(["status"]);
        assert_no_panic(&out);
    }
    assert_eq!(w.stub.total_calls(), 1);
    // `clear` still drops the session, so the next call mints a new one.
    let out = w.env.run_ok(["clear", "dev"]);
    assert_no_panic(&out);
    w.as_if_a_step_passed();
    let second = w.cp("dev");
    assert_eq!(w.stub.calls("GetSessionToken"), 2, "clear left the session");
    assert_ne!(second, first);
    // And the metadata is whole again.
    let fp = w.fingerprint("dev");
    assert_eq!(w.list_row("dev")["session"], "active");
    assert!(!fp.is_empty());

    // `remove` deletes the cached session too, metadata or not: the same key
    // stored again does not bring the old session back.
    fs::write(w.meta_path("dev"), "garbage\n").unwrap();
    w.env.run_ok(["remove", "dev", "--yes"]);
    w.add_key("dev");
    w.as_if_a_step_passed();
    let third = w.cp("dev");
    assert_eq!(
        w.stub.calls("GetSessionToken"),
        3,
        "remove left the session"
    );
    assert_ne!(third, second);
}

// 8 ─────────────────────────────────────────────────────────────────────────

#[test]
fn throttling_is_retried_without_a_second_mfa() {
    let Some(w) = World::new() else { return };
    w.stub.reject_reused_codes(true).throttle_next(1);
    let out = w.cp("dev");
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    assert_eq!(
        w.stub.requests()[0].error.as_deref(),
        Some("Throttling"),
        "the first call was not the throttled one"
    );
    assert_eq!(w.mfa_runs(), 1);
    assert_eq!(out, expected_json(&w.stub.last_issued().unwrap()));
}

// 9 ─────────────────────────────────────────────────────────────────────────

/// The one-MFA promise with keys in a real Secret Service (gnome-keyring on a
/// private bus); sessions in `session_store` (None: the default, keyutils).
fn secret_service_keys(session_store: Option<&str>) {
    let mut ss = None;
    let Some(w) = World::build(true, |env| {
        let Some(s) = SecretService::start(env) else {
            return;
        };
        s.apply(env);
        if let Some(store) = session_store {
            env.set("AWSMFA_SESSION_KEYRING", store);
        }
        ss = Some(s);
    }) else {
        return;
    };
    let Some(ss) = ss else { return };
    // The key is in the Secret Service, not in keyutils.
    let out = ss.secret_tool(
        &w.env,
        &[
            "lookup",
            "service",
            w.env.keyring_service(),
            "username",
            "key:dev",
        ],
        None,
    );
    assert_ok(&out);
    assert!(out.stdout_str().contains(KEY), "{}", out.dump());
    assert!(keyutils_find(&w.env, &w.key_description("key:dev")).is_none());

    let outs: Vec<String> = (0..3).map(|_| w.cp("dev")).collect();
    let expected = expected_json(&w.stub.last_issued().unwrap());
    assert!(outs.iter().all(|o| *o == expected), "{outs:#?}");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa_runs(), 1);
    // The signature the stub verified proves the key came back intact.
    assert_eq!(w.stub.requests()[0].access_key_id.as_deref(), Some(KEY));

    let session = format!("session:dev:{}", w.fingerprint("dev"));
    let in_ss = ss
        .secret_tool(
            &w.env,
            &[
                "lookup",
                "service",
                w.env.keyring_service(),
                "username",
                &session,
            ],
            None,
        )
        .status
        .success();
    let in_keyutils = keyutils_find(&w.env, &w.key_description(&session)).is_some();
    match session_store {
        None => assert!(in_keyutils && !in_ss, "keyutils {in_keyutils}, ss {in_ss}"),
        Some(_) => assert!(in_ss && !in_keyutils, "keyutils {in_keyutils}, ss {in_ss}"),
    }
    w.env
        .assert_not_on_disk(&[SECRET, &w.stub.last_issued().unwrap().session_token]);
    // The daemons stop before the Env's directory goes.
    drop(ss);
}

#[test]
fn secret_service_keys_with_keyutils_sessions() {
    secret_service_keys(None);
}

#[test]
fn secret_service_keys_and_sessions() {
    secret_service_keys(Some("secret-service"));
}

// 10 ────────────────────────────────────────────────────────────────────────

#[test]
fn durations_reach_sts() {
    let Some(w) = World::new() else { return };
    w.add_deploy_role();
    w.env
        .run_ok(["exec", "dev", "--duration", "2h", "--", "true"]);
    assert_eq!(w.stub.last_request().unwrap().duration_seconds, Some(7200));
    // Without a duration: the default hour.
    w.as_if_a_step_passed();
    w.cp("dev");
    assert_eq!(w.stub.last_request().unwrap().duration_seconds, Some(3600));
    w.env
        .write_awsmfa_config("[profiles.dev]\nsession_ttl = \"90m\"\n");
    w.as_if_a_step_passed();
    w.cp("dev");
    assert_eq!(w.stub.last_request().unwrap().duration_seconds, Some(5400));
    assert_eq!(w.stub.calls("GetSessionToken"), 3);
    let exp = parse_rfc3339(&w.stub.last_issued().unwrap().expiration_text).unwrap();
    let left = exp
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((5300..=5400).contains(&left), "{left}");

    // The role's duration_seconds reaches AssumeRole; its source keeps its own TTL.
    w.cp("deploy");
    let req = w.stub.last_request().unwrap();
    assert_eq!(req.action, "AssumeRole");
    assert_eq!(req.duration_seconds, Some(900));
    assert_eq!(w.stub.calls("GetSessionToken"), 3, "source session reused");
    // --duration on a role overrides duration_seconds.
    w.env
        .run_ok(["exec", "deploy", "--duration", "20m", "--", "true"]);
    let req = w.stub.last_request().unwrap();
    assert_eq!(req.action, "AssumeRole");
    assert_eq!(req.duration_seconds, Some(1200));
    assert_eq!(w.mfa_runs(), 3);
}

// STS unreachable, with a cached session to fall back on ─────────────────────

#[test]
fn unreachable_sts_falls_back_to_a_cached_session_with_time_left() {
    let Some(w) = World::new() else { return };
    // A session with 10 minutes left is due for refresh (refresh_before 15m),
    // but still worth using when no new one can be had.
    w.stub.session_lifetime(Some(Duration::from_secs(600)));
    let first = w.cp("dev");
    let url = w.stub.url();
    let addr = w.stub.addr();
    // About the network, not about a second code within one step.
    w.as_if_a_step_passed();
    let World { env, stub, .. } = w;
    drop(stub);
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the stub's port is taken again"
    );
    let start = Instant::now();
    let out = env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    assert_ok(&out);
    assert_no_panic(&out);
    assert_eq!(out.stdout_str(), first);
    let err = out.stderr_str();
    assert!(
        err.contains("cannot reach STS")
            && err.contains(&url)
            && err.contains("using the cached session"),
        "{}",
        out.dump()
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    // Without the cached session there is nothing to fall back on. (The code
    // that never arrived still counts as sent: it might have.)
    env.run_ok(["clear", "dev"]);
    env.forget_totp_steps();
    let out = env.run(["credential-process", "dev"]);
    assert_code(&out, 1);
    assert_no_panic(&out);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr_str().contains("cannot reach STS"),
        "{}",
        out.dump()
    );
}

#[test]
fn shortest_session_ttl_still_costs_one_mfa() {
    let Some(w) = World::new() else { return };
    // 15m is the shortest session STS issues and the default refresh_before:
    // a fresh session must not count as due for refresh.
    w.env
        .write_awsmfa_config("[profiles.dev]\nsession_ttl = \"15m\"\n");
    let first = w.cp("dev");
    assert_eq!(w.cp("dev"), first);
    assert_eq!(w.cp("dev"), first);
    assert_eq!(w.mfa_runs(), 1, "an MFA per call with a 15m session");
    assert_eq!(w.stub.requests()[0].duration_seconds, Some(900));

    w.env.run_ok(["clear"]);
    w.as_if_a_step_passed();
    w.stub.delay(Duration::from_millis(200));
    let outs = race(&w, &["dev"; 16]);
    assert!(outs.iter().all(|o| o.status.success()));
    assert_eq!(w.mfa_runs(), 2, "16 concurrent calls, one MFA");
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
}

// exec --min-remaining ───────────────────────────────────────────────────────

/// `exec … -- printenv AWS_ACCESS_KEY_ID` (run in `dir` when given): the key
/// id of the session the command got.
#[track_caller]
fn exec_key_id(w: &World, dir: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = w.env.cmd(["exec"]);
    cmd.args(args).args(["--", "printenv", "AWS_ACCESS_KEY_ID"]);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    assert_no_panic(&out);
    out.stdout_str().trim().to_string()
}

#[test]
fn min_remaining_replaces_a_cached_session_with_less_left() {
    let Some(w) = World::new() else { return };
    // 30 minutes left: enough for refresh_before (15m), not for 45m.
    w.stub.session_lifetime(Some(Duration::from_secs(1800)));
    let first = exec_key_id(&w, None, &["dev"]);
    assert_eq!(exec_key_id(&w, None, &["dev"]), first, "reused without it");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);

    w.stub.session_lifetime(None);
    w.as_if_a_step_passed();
    let second = exec_key_id(&w, None, &["dev", "--min-remaining", "45m"]);
    assert_ne!(second, first, "started with 30 minutes left");
    assert_eq!(second, w.stub.last_issued().unwrap().access_key_id);
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.mfa_runs(), 2, "one MFA code for the new session");
    // The new session has an hour: 45 minutes are left, nothing is minted.
    assert_eq!(
        exec_key_id(&w, None, &["dev", "--min-remaining", "45m"]),
        second
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.mfa_runs(), 2);
    // credential-process hands out the cached session: SDKs refresh themselves.
    assert!(w.cp("dev").contains(&second));
}

#[test]
fn min_remaining_longer_than_any_session_stops_before_mfa() {
    let Some(w) = World::new() else { return };
    w.add_deploy_role();
    let config = w
        .env
        .write_awsmfa_config("[roots.proj]\nprofile = \"dev\"\nmin_remaining = \"2h\"\n");
    let proj = w.env.home.join("src/proj");
    fs::create_dir_all(&proj).unwrap();
    let cases: Vec<(Vec<&str>, Option<&Path>, String)> = vec![
        (
            vec!["dev", "--min-remaining", "2h"],
            None,
            "--min-remaining 2h is longer than a session of dev can be (session_ttl 1h); \
             lower it or raise session_ttl"
                .into(),
        ),
        (
            vec!["dev", "--duration", "30m", "--min-remaining", "45m"],
            None,
            "--min-remaining 45m is longer than a session of dev can be (--duration 30m); \
             lower it or raise --duration"
                .into(),
        ),
        (
            vec!["deploy", "--min-remaining", "20m"],
            None,
            "--min-remaining 20m is longer than a session of deploy can be (duration_seconds 15m); \
             lower it or raise duration_seconds (at most 1h"
                .into(),
        ),
        (
            vec![],
            Some(&proj),
            format!(
                "min_remaining = \"2h\" ({}:3) is longer than a session of dev can be (session_ttl 1h)",
                config.display()
            ),
        ),
    ];
    for (args, dir, message) in cases {
        let mut cmd = w.env.cmd(["exec"]);
        cmd.args(&args).args(["--", "true"]);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let out = w.env.run_cmd(cmd);
        assert_code(&out, 1);
        assert_no_panic(&out);
        assert!(
            out.stderr_str().contains(&message),
            "{args:?}\n{}",
            out.dump()
        );
    }
    assert_eq!(w.mfa_runs(), 0, "an MFA code was asked for");
    assert_eq!(w.stub.total_calls(), 0);
}

#[test]
fn min_remaining_from_config_per_root_and_profile() {
    let Some(w) = World::new() else { return };
    let proj = w.env.home.join("src/proj");
    fs::create_dir_all(&proj).unwrap();
    w.stub.session_lifetime(Some(Duration::from_secs(1800)));
    let mut key_id = exec_key_id(&w, None, &["dev"]);
    let mut mints = 1;
    // (config.toml, flag, whether a session with 30 minutes left is replaced)
    let cases = [
        ("[profiles.dev]\nmin_remaining = \"45m\"\n", None, true),
        (
            "[roots.proj]\nprofile = \"dev\"\nmin_remaining = \"45m\"\n",
            None,
            true,
        ),
        // The root's beats the profile's; the flag beats both.
        (
            "[roots.proj]\nprofile = \"dev\"\nmin_remaining = \"10m\"\n\
             [profiles.dev]\nmin_remaining = \"45m\"\n",
            None,
            false,
        ),
        (
            "[roots.proj]\nprofile = \"dev\"\nmin_remaining = \"45m\"\n",
            Some("10m"),
            false,
        ),
    ];
    for (toml, flag, replaced) in cases {
        w.env.write_awsmfa_config(toml);
        w.as_if_a_step_passed();
        let mut args = vec!["dev"];
        if let Some(d) = flag {
            args.extend(["--min-remaining", d]);
        }
        let got = exec_key_id(&w, Some(&proj), &args);
        if replaced {
            mints += 1;
            assert_ne!(got, key_id, "{toml}");
        } else {
            assert_eq!(got, key_id, "{toml} {flag:?}");
        }
        assert_eq!(w.stub.calls("GetSessionToken"), mints, "{toml}");
        key_id = got;
    }

    // A value that is not a duration names its file and line, or the flag.
    let config = w.env.awsmfa_config_path().display().to_string();
    for (toml, args, says) in [
        (
            "wrap = [\"tofu\"]\n[profiles.dev]\nmin_remaining = \"soon\"\n",
            &["dev"][..],
            format!("{config}:3: min_remaining: `soon` is not a duration"),
        ),
        (
            "[roots.proj]\nprofile = \"dev\"\n\nmin_remaining = \"soon\"\n",
            &[][..],
            format!("{config}:4: min_remaining: `soon` is not a duration"),
        ),
        (
            "",
            &["dev", "--min-remaining", "soon"][..],
            "--min-remaining: `soon` is not a duration".to_string(),
        ),
    ] {
        w.env.write_awsmfa_config(toml);
        let mut cmd = w.env.cmd(["exec"]);
        cmd.args(args).args(["--", "true"]).current_dir(&proj);
        let out = w.env.run_cmd(cmd);
        assert_code(&out, 1);
        assert!(out.stderr_str().contains(&says), "{toml}\n{}", out.dump());
    }
    assert_eq!(w.stub.calls("GetSessionToken"), mints);
}

// One code per 30 s step on one device ─────────────────────────────────────
// Each test here waits up to one step.

/// A wait of one step, plus the mint and a loaded machine.
const STEP_T: Duration = Duration::from_secs(60);

impl World {
    /// Besides `dev`, on its MFA device: `ops`, whose naive `mfa_process`
    /// prints the current code too (as ykman, 1Password or OpenBao would), and
    /// `typed`, whose code is typed at /dev/tty.
    fn on_one_device() -> Option<World> {
        let mut w = World::new()?;
        w.env.set_timeout(STEP_T);
        w.write_config(
            Some(&w.mfa),
            &format!(
                "[profile ops]\nregion = us-east-1\nmfa_serial = {SERIAL}\nmfa_process = {}\n\n\
                 [profile typed]\nregion = us-east-1\nmfa_serial = {SERIAL}\n",
                w.mfa.display()
            ),
        );
        w.add_key("ops");
        w.add_key("typed");
        Some(w)
    }

    /// The steps of the codes STS accepted, in order; asserts that it refused
    /// none and saw no code twice.
    #[track_caller]
    fn accepted_steps(&self) -> Vec<u64> {
        let reqs = self.stub.requests();
        assert!(
            reqs.iter().all(|r| r.error.is_none()),
            "STS refused a code: {reqs:#?}"
        );
        let mut codes: Vec<_> = reqs.iter().filter_map(|r| r.token_code.clone()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), reqs.len(), "a code reached STS twice");
        let steps: Vec<u64> = reqs
            .iter()
            .map(|r| r.totp_step.expect("a valid code"))
            .collect();
        let mut distinct = steps.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            steps.len(),
            "two codes of one step: {steps:?}"
        );
        steps
    }

    /// What awsmfa keeps about the device: a step number, never a code.
    #[track_caller]
    fn recorded_step(&self) -> u64 {
        let file = self
            .env
            .state_home
            .join("awsmfa/totp/arn%3Aaws%3Aiam%3A%3A123456789012%3Amfa%2Fdev");
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for r in self.stub.requests() {
            assert!(!text.contains(&r.token_code.unwrap()), "a code on disk");
        }
        text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"))
    }
}

const WAITED: &str = " s for a fresh code from mfa_process";

#[test]
fn back_to_back_mints_on_one_device_wait_for_the_next_step() {
    let Some(w) = World::on_one_device() else {
        return;
    };
    // Both mints within one step, so the second cannot simply be later.
    room_in_step(Duration::from_secs(8));
    let dev = w.env.run(["credential-process", "dev"]);
    let ops = w.env.run(["credential-process", "ops"]);
    assert_ok(&dev);
    assert_ok(&ops);
    assert!(!dev.stderr_str().contains("waiting"), "{}", dev.dump());
    assert!(
        ops.stderr_str().contains("awsmfa: waiting ") && ops.stderr_str().contains(WAITED),
        "{}",
        ops.dump()
    );
    let issued = w.stub.issued();
    assert_eq!(dev.stdout_str(), expected_json(&issued[0]));
    assert_eq!(ops.stdout_str(), expected_json(&issued[1]));
    let steps = w.accepted_steps();
    assert_eq!(steps[1], steps[0] + 1, "{steps:?}");
    // The code was asked for once its step had come, not fetched and dropped.
    assert_eq!(w.mfa_runs(), 2);
    assert_eq!(w.recorded_step(), steps[1]);
}

#[test]
fn two_processes_at_once_on_one_device_use_two_steps() {
    let Some(w) = World::on_one_device() else {
        return;
    };
    room_in_step(Duration::from_secs(8));
    let outs = race(&w, &["dev", "ops"]);
    for out in &outs {
        assert_ok(out);
        assert_no_panic(out);
    }
    // Whichever took the device first sent its code; the other waited.
    let waited = outs
        .iter()
        .filter(|o| o.stderr_str().contains(WAITED))
        .count();
    assert_eq!(waited, 1, "{outs:#?}");
    let steps = w.accepted_steps();
    assert_eq!(steps.len(), 2);
    assert_eq!(w.mfa_runs(), 2);
    assert_eq!(w.recorded_step(), steps[0].max(steps[1]));
}

#[test]
fn a_typed_code_from_a_used_step_is_refused_before_sts() {
    let Some(w) = World::on_one_device() else {
        return;
    };
    room_in_step(Duration::from_secs(10));
    w.cp("dev");
    let mut pty = Pty::spawn(
        w.env.cmd(["credential-process", "typed"]),
        PtyOpts::tty_only(),
    );
    let prompt = format!("MFA code for {SERIAL} (typed): ");
    pty.expect_ok(&prompt, STEP_T);
    // What the authenticator shows now: the code dev was just minted with.
    pty.send_line(&totp_now(SEED));
    let said = pty.expect_ok(" s and type the next code", STEP_T);
    assert!(
        said.contains(&format!(
            "a code from this 30 s step was already sent to STS for {SERIAL}; wait "
        )),
        "{said:?}"
    );
    pty.expect_ok(&prompt, STEP_T);
    assert_eq!(
        w.stub.calls("GetSessionToken"),
        1,
        "the typed code reached STS"
    );
    // It counted as a try: two more bad answers end the run.
    for _ in 0..2 {
        pty.send_line("12ab56");
        pty.expect_ok("6 digits", STEP_T);
    }
    assert_eq!(pty.wait_code(STEP_T), 1, "{}", pty.output());
    assert!(
        pty.stderr()
            .contains("no usable 6-digit code after 3 tries"),
        "{}",
        pty.stderr()
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    w.accepted_steps();
}
