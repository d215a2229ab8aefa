//! Faults, against the loopback STS stub and the real kernel keyring: STS
//! throttling, failing, resetting, stalling and cutting its answer short (and
//! which of those may repeat a one-time code); session entries that expire
//! with their session, and a full key quota; a state directory that is unsafe,
//! read-only, or holds a symbolic link; the region left out of what shapes a
//! session; an expiry no clock can show. (A TLS failure not retried is in
//! tls.rs, beside its TLS front.)

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const KEY: &str = "AKIASTUBFAULTSTEST01";
const SECRET: &str = "faultslonglivedsecret/0123456789abcdefGHI";

/// An Env with its own STS stub (which refuses a code twice, as STS does), a
/// `dev` profile (plus `extra` lines) whose codes come from a script that
/// counts its runs.
struct World {
    env: Env,
    stub: StsStub,
    mfa: CountingMfa,
}

impl World {
    /// `dev` in us-east-1, its key stored.
    fn new() -> Option<World> {
        let w = Self::bare("region = us-east-1\n")?;
        w.add_key();
        Some(w)
    }

    /// `dev` with `extra` in its section; no key stored yet.
    fn bare(extra: &str) -> Option<World> {
        let (stub, env) = stub_and_env(KEY, SECRET, SERIAL, SEED)?;
        stub.reject_reused_codes(true);
        let mfa = env.counting_mfa(SEED);
        env.write_aws_config(&format!(
            "[profile dev]\n{extra}mfa_serial = {SERIAL}\nmfa_process = {}\n",
            mfa.script.display()
        ));
        Some(World { env, stub, mfa })
    }

    fn add_key(&self) {
        let mut cmd = self.env.cmd(["add", "dev", "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET);
        assert_ok(&self.env.run_cmd(cmd));
    }

    /// Each run of the MFA script gives the code one step later than the run
    /// before (the current one, then the next): a second code that STS takes
    /// even within the same 30 s step.
    fn fresh_code_per_run(&self) {
        let counter = &self.mfa.counter;
        self.env.write_script(
            "bin/mfa",
            &format!(
                "#!/bin/sh\necho run >> '{c}'\nn=$(wc -l < '{c}')\n\
                 exec oathtool --totp -b {SEED} -w $((n - 1)) | tail -n 1\n",
                c = counter.display()
            ),
        );
    }

    fn state_dir(&self) -> PathBuf {
        self.env.state_home.join("awsmfa")
    }

    fn meta_path(&self) -> PathBuf {
        self.state_dir().join("sessions/dev")
    }

    /// Mints `dev`'s session; the fingerprint its metadata records.
    fn mint(&self) -> String {
        assert_ok(&self.cp().0);
        let text = fs::read_to_string(self.meta_path()).expect("session metadata");
        text.split_whitespace()
            .nth(1)
            .expect("a fingerprint")
            .into()
    }

    /// `awsmfa prompt` for `dev`, named as direnv's `use awsmfa dev` names it.
    fn prompt(&self) -> Output {
        let mut prompt = self.env.cmd(["prompt"]);
        prompt.env("AWSMFA_DIRENV_PROFILE", "dev");
        let out = self.env.run_cmd(prompt);
        assert_no_panic(&out);
        assert_ok(&out);
        out
    }

    /// `credential-process dev`, timed.
    fn cp(&self) -> (Output, Duration) {
        let start = Instant::now();
        let out = self.env.run(["credential-process", "dev"]);
        let took = start.elapsed();
        assert_no_panic(&out);
        (out, took)
    }

    /// The codes GetSessionToken was called with, in order.
    fn codes(&self) -> Vec<String> {
        self.stub
            .requests()
            .into_iter()
            .filter(|r| r.action == "GetSessionToken")
            .map(|r| r.token_code.unwrap_or_default())
            .collect()
    }

    /// `keyctl OP 0xID` (stdin: `input`), in a session keyring that possesses
    /// the persistent keyring awsmfa's entries are linked into; its stdout.
    fn keyctl(&self, op: &str, id: &str, input: Option<&[u8]>) -> Vec<u8> {
        let mut cmd = self.env.command("keyctl");
        cmd.args(["session", "-", "sh", "-c"])
            .arg("keyctl get_persistent @s >/dev/null && keyctl \"$1\" 0x\"$2\"")
            .args(["sh", op, id]);
        let out = run_with_timeout(cmd, input, TIMEOUT);
        assert_ok(&out);
        out.stdout
    }

    /// `exec dev` hands its child an expiry of this century, and panics not.
    fn exec_sees_a_real_expiry(&self) -> Output {
        let out = self
            .env
            .run(["exec", "dev", "--", "printenv", "AWS_CREDENTIAL_EXPIRATION"]);
        assert_no_panic(&out);
        assert_ok(&out);
        assert!(out.stdout_str().starts_with("20"), "{}", out.dump());
        out
    }

    /// `(timeout column, line)` of the /proc/keys entry whose description
    /// starts with `keyring:PREFIX` and ends with this Env's service.
    fn proc_key(&self, prefix: &str) -> Option<(String, String)> {
        let service = format!("@{}:", self.env.keyring_service());
        let keys = fs::read_to_string("/proc/keys").expect("read /proc/keys");
        keys.lines()
            .find(|l| l.contains(&format!(" keyring:{prefix}")) && l.contains(&service))
            .map(|l| {
                let timeout = l.split_whitespace().nth(3).unwrap_or("").to_string();
                (timeout, l.to_string())
            })
    }
}

#[track_caller]
fn assert_says(out: &Output, words: &[&str]) {
    let err = out.stderr_str();
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}\n{}", out.dump());
    }
}

/// Running as root, `cmd` again under `setpriv` without the capabilities that
/// ignore file modes, so a read-only directory is read-only to it too.
fn without_dac_override(env: &Env, cmd: &[&str]) -> Output {
    // SAFETY: geteuid has no preconditions.
    let mut c = if unsafe { libc::geteuid() } == 0 {
        let mut c = env.command("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search", "--"])
            .arg(support::env::awsmfa_bin());
        c
    } else {
        env.command(support::env::awsmfa_bin())
    };
    c.args(cmd);
    env.run_cmd(c)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

// --- STS ------------------------------------------------------------------------------

/// Throttling is refused before the code is looked at, so the same code goes
/// again — and only after a Throttling answer — until STS takes it: one code
/// and one session for three throttled requests, in a few seconds.
#[test]
fn throttled_requests_are_retried_with_the_same_code() {
    let Some(w) = World::new() else { return };
    w.stub.throttle_next(3);
    let (out, took) = w.cp();
    assert_ok(&out);
    assert_eq!(w.mfa.runs(), 1, "{}", out.dump());
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    let requests = w.stub.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    let codes = w.codes();
    assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
    for r in &requests[..3] {
        assert_eq!(r.error.as_deref(), Some("Throttling"), "{r:?}");
    }
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// 5xx: retried with the same code (a failing STS took nothing), then, if it
/// persists, a message that says it is STS and what to do — within seconds.
#[test]
fn server_errors_are_retried_then_reported() {
    let Some(w) = World::new() else { return };
    w.stub.fail_next(&[Fault::ServerError(500); 3]);
    let (out, _) = w.cp();
    assert_ok(&out);
    assert_eq!(w.stub.calls("GetSessionToken"), 4);
    assert_eq!(w.mfa.runs(), 1);

    assert_ok(&w.env.run(["clear", "dev"]));
    // The next command would otherwise wait out the step the first one used.
    as_if_a_step_passed(&w.env, &w.stub);
    w.stub.clear_log();
    w.stub.fail_next(&[Fault::ServerError(503); 20]);
    let (out, took) = w.cp();
    assert_code(&out, 1);
    assert_says(
        &out,
        &["STS said ServiceUnavailable (", "try again in a minute"],
    );
    assert!(out.stdout.is_empty(), "{}", out.dump());
    let calls = w.stub.calls("GetSessionToken");
    assert!((2..=5).contains(&calls), "{calls} calls");
    assert_eq!(w.mfa.runs(), 2, "one code per command");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// A reset after the request left: STS may have taken the code, so it is not
/// sent again.
#[test]
fn a_reset_after_the_request_does_not_resend_the_code() {
    does_not_resend_the_code(Fault::ResetAfterRequest);
}

/// An answer cut off mid-body: the same, and nothing panics on half a document.
#[test]
fn a_truncated_answer_does_not_resend_the_code() {
    does_not_resend_the_code(Fault::Truncated);
}

/// After `fault` the mint asks for a new code itself, as after a wrong one —
/// never sending the same code twice. The new code is the next step's, so the
/// retry waits out the one that was used (at most one step, ~31 s).
fn does_not_resend_the_code(fault: Fault) {
    let Some(mut w) = World::new() else { return };
    // The retry waits out the step the first code used: up to ~31 s.
    w.env.set_timeout(Duration::from_secs(60));
    w.fresh_code_per_run();
    w.stub.fail_next(&[fault]);
    let (out, took) = w.cp();
    assert!(took < Duration::from_secs(45), "took {took:?}");
    let codes = w.codes();
    assert_eq!(
        codes.iter().filter(|c| **c == codes[0]).count(),
        1,
        "the code was sent again: {codes:?}\n{}",
        out.dump()
    );
    assert_ok(&out);
    assert_eq!(w.mfa.runs(), 2, "{}", out.dump());
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert_eq!(w.stub.successes("GetSessionToken"), 2);
    assert_says(&out, &["waiting"]);
}

/// An STS that takes the request and never answers: an error naming the
/// endpoint after the read timeout (5 s), not three of them.
#[test]
fn a_stalled_sts_fails_after_one_read_timeout() {
    let Some(w) = World::new() else { return };
    w.stub.fail_next(&[Fault::Stall]);
    let (out, took) = w.cp();
    assert_code(&out, 1);
    assert_says(
        &out,
        &["cannot reach STS: no answer within 5s", &w.stub.url()],
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(10),
        "took {took:?}"
    );
}

// --- the kernel keyring -----------------------------------------------------------

/// A session's keyutils entry expires with the session (plus a minute); the
/// long-lived key's never does.
#[test]
fn session_entries_expire_with_their_session() {
    let Some(w) = World::bare("region = us-east-1\nsession_ttl = 15m\n") else {
        return;
    };
    w.add_key();
    assert_ok(&w.cp().0);
    let (timeout, line) = w.proc_key("session:dev:").expect("a session entry");
    let minutes: u64 = timeout
        .strip_suffix('m')
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("timeout {timeout:?} is not minutes: {line}"));
    assert!((14..=16).contains(&minutes), "{line}");
    let (timeout, line) = w.proc_key("key:dev@").expect("the key's entry");
    assert_eq!(timeout, "perm", "{line}");
}

/// A full key quota (EDQUOT) says what is full and how to make room; the
/// command still gets its session. Root's quota is far too large to fill, so
/// this runs as a throwaway uid (as root, with setpriv).
#[test]
fn a_full_key_quota_says_how_to_make_room() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if require(
        "root (to fill a throwaway uid's key quota)",
        root.then_some(()),
    )
    .is_none()
    {
        return;
    }
    if require("setpriv (Debian package util-linux)", which("setpriv")).is_none() {
        return;
    }
    let Some(w) = World::bare("region = us-east-1\n") else {
        return;
    };
    let uid = (200_000 + u32::from_str_radix(&random_hex(2), 16).expect("hex") * 7).to_string();
    let chown = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(&w.env.root)
        .status()
        .expect("chown");
    assert!(chown.success());
    // One session keyring for the key, the filling and the mint; everything in
    // it is gone when it ends. The user's persistent keyring is emptied after.
    let script = r#"set -e
"$1" add dev --from-env
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
i=0
while [ $i -lt 1000 ] && keyctl add user "fill$i" x @s >/dev/null 2>&1; do i=$((i+1)); done
[ $i -lt 1000 ] || { echo "the quota never filled" >&2; exit 3; }
"$1" credential-process dev
"#;
    let as_uid = |args: &[&str]| {
        let mut cmd = w.env.command("setpriv");
        cmd.args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
            .args(args);
        cmd
    };
    let mut cmd = as_uid(&["keyctl", "session", "-", "sh", "-c", script, "sh"]);
    cmd.arg(support::env::awsmfa_bin())
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let out = w.env.run_cmd(cmd);
    let _ = w.env.run_cmd(as_uid(&[
        "keyctl",
        "session",
        "-",
        "sh",
        "-c",
        "keyctl clear \"$(keyctl get_persistent @s)\"",
    ]));
    assert_no_panic(&out);
    assert_ok(&out);
    let printed: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("not credential_process JSON ({e})\n{}", out.dump()));
    assert_eq!(
        printed["AccessKeyId"],
        w.stub.last_issued().expect("issued").access_key_id.as_str()
    );
    assert_says(
        &out,
        &[
            "could not cache the session",
            "key quota for your user is full",
            "keyctl show @u",
            "awsmfa clear",
            "/proc/sys/kernel/keys/maxkeys",
        ],
    );
}

// --- the state directory ----------------------------------------------------------

/// A state directory others can write into (or that is not the user's) is
/// refused where awsmfa would write, before any MFA code, with the fix.
#[test]
fn an_unsafe_state_directory_is_refused_with_the_fix() {
    let Some(w) = World::new() else { return };
    let dir = w.state_dir();
    chmod(&dir, 0o770);
    let (out, _) = w.cp();
    assert_code(&out, 1);
    assert_says(
        &out,
        &[
            "~/.local/state/awsmfa is writable by its group (mode 0770)",
            "chmod 700 ~/.local/state/awsmfa",
        ],
    );
    chmod(&dir, 0o703);
    assert_says(&w.cp().0, &["writable by others (mode 0703)"]);
    assert_eq!(w.mfa.runs(), 0);
    assert_eq!(w.stub.total_calls(), 0);

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        chmod(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
        assert_says(&w.cp().0, &["belongs to uid 65534, not to you (uid 0)"]);
        std::os::unix::fs::chown(&dir, Some(0), None).expect("chown back");
    }
    chmod(&dir, 0o700);
    assert_ok(&w.cp().0);
    assert_eq!(w.mfa.runs(), 1);
}

/// Session metadata behind a symbolic link is not read (the prompt shows no
/// session) and a mint replaces the link, never writing through it; an allow
/// record behind a link allows nothing.
#[test]
fn symbolic_links_in_the_state_directory_are_not_followed() {
    let Some(w) = World::new() else { return };
    let fp = w.mint();
    let decoy = w.env.root.join("decoy");
    fs::write(&decoy, format!("{} {fp}\n", unix_now() + 42 * 60 + 30)).expect("decoy");
    let meta = w.meta_path();
    fs::remove_file(&meta).expect("rm metadata");
    std::os::unix::fs::symlink(&decoy, &meta).expect("symlink");
    assert_eq!(w.prompt().stdout_str(), "dev ·\n", "the link was followed");

    // A mint (the cached session cleared from the keyring only) writes a file
    // in the link's place.
    let before = fs::read_to_string(&decoy).expect("decoy");
    assert_ok(&w.env.run(["clear", "dev"]));
    std::os::unix::fs::symlink(&decoy, &meta).expect("symlink again");
    // Not about MFA: a second mint without waiting out the step.
    as_if_a_step_passed(&w.env, &w.stub);
    assert_ok(&w.cp().0);
    assert_eq!(w.stub.successes("GetSessionToken"), 2);
    assert_eq!(fs::read_to_string(&decoy).expect("decoy"), before);
    assert!(!fs::symlink_metadata(&meta).expect("meta").is_symlink());

    // An allowed root file whose record is a link to a copy of itself.
    let repo = w.env.home.join("src/infra");
    fs::create_dir_all(&repo).expect("repo");
    fs::write(repo.join(".awsmfa.toml"), "profile = \"dev\"\n").expect("root file");
    let mut allow = w.env.cmd(["allow"]);
    allow.current_dir(&repo);
    assert_ok(&w.env.run_cmd(allow));
    let records = w.state_dir().join("allowed");
    let record = fs::read_dir(&records)
        .expect("allowed/")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .expect("a record");
    let copy = w.env.root.join("record-copy");
    fs::copy(&record, &copy).expect("copy record");
    fs::remove_file(&record).expect("rm record");
    std::os::unix::fs::symlink(&copy, &record).expect("symlink record");
    let mut status = w.env.cmd(["status", "--json"]);
    status.current_dir(&repo);
    let out = w.env.run_cmd(status);
    assert_ok(&out);
    let status: Value = serde_json::from_str(&out.stdout_str()).expect("JSON");
    assert_eq!(status["root_files"][0]["state"], "not_allowed", "{status}");
}

/// A read-only state directory: the command still gets its session, with a
/// warning for the lock and one for the metadata; once it is writable again,
/// the next command finds the cached session and writes the metadata.
#[test]
fn a_read_only_state_directory_warns_and_recovers() {
    let Some(w) = World::new() else { return };
    let dir = w.state_dir();
    chmod(&dir.join("keys"), 0o500);
    chmod(&dir, 0o500);
    let out = without_dac_override(&w.env, &["credential-process", "dev"]);
    assert_no_panic(&out);
    assert_ok(&out);
    assert_says(
        &out,
        &[
            "minting without the lock",
            "the session is cached, but `awsmfa prompt` and `list` will not show it",
            "Permission denied",
        ],
    );
    assert!(!w.meta_path().exists());

    chmod(&dir, 0o700);
    chmod(&dir.join("keys"), 0o700);
    let again = without_dac_override(&w.env, &["credential-process", "dev"]);
    assert_ok(&again);
    assert_eq!(again.stdout, out.stdout, "not the cached session");
    assert!(again.stderr.is_empty(), "{}", again.dump());
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa.runs(), 1);
    assert!(w.meta_path().exists(), "the metadata was not written back");
}

// --- what shapes a session ----------------------------------------------------------

/// STS sessions work in every region: two shells with different AWS_REGIONs,
/// for a profile without `region`, share one session.
#[test]
fn the_region_does_not_shape_the_session() {
    let Some(mut w) = World::bare("") else { return };
    w.add_key();
    w.env.set("AWS_REGION", "eu-west-1");
    let first = w.cp().0;
    assert_ok(&first);
    w.env.set("AWS_REGION", "ap-southeast-2");
    let second = w.cp().0;
    assert_ok(&second);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa.runs(), 1);
}

// --- instants no clock shows ----------------------------------------------------------

/// Metadata with an expiry 3 million years away is damage: prompt, list,
/// status and exec neither panic nor show it, and exec puts it right.
#[test]
fn an_absurd_expiry_in_the_metadata_is_no_session() {
    let Some(w) = World::new() else { return };
    let fp = w.mint();
    fs::write(w.meta_path(), format!("99999999999999 {fp}\n")).expect("corrupt metadata");
    assert_eq!(w.prompt().stdout_str(), "dev ·\n");
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status"],
        &["status", "--json"],
    ] {
        let out = w.env.run(args);
        assert_no_panic(&out);
        assert_ok(&out);
        assert!(!out.stdout_str().contains("9999-"), "{}", out.dump());
    }
    w.exec_sees_a_real_expiry();
    assert_ne!(
        fs::read_to_string(w.meta_path()).expect("metadata"),
        format!("99999999999999 {fp}\n"),
        "exec did not repair the metadata"
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
}

/// The same expiry inside the cached session itself (the keyring entry):
/// discarded and minted again, not handed to a child that would be told
/// about year 3 000 000.
#[test]
fn an_absurd_expiry_in_the_keyring_entry_is_discarded() {
    let Some(w) = World::new() else { return };
    w.mint();
    let (_, line) = w.proc_key("session:dev:").expect("a session entry");
    let id = line.split_whitespace().next().expect("id").to_string();
    let mut blob: Value =
        serde_json::from_slice(&w.keyctl("pipe", &id, None)).expect("a JSON entry");
    blob["Expiration"] = Value::from(99_999_999_999_999_u64);
    w.keyctl("pupdate", &id, Some(blob.to_string().as_bytes()));

    as_if_a_step_passed(&w.env, &w.stub);
    let out = w.exec_sees_a_real_expiry();
    assert_says(&out, &["discarding an unreadable cached session for dev"]);
    assert_eq!(w.stub.successes("GetSessionToken"), 2);
}
