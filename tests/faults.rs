//! Faults, against the loopback STS stub and the real kernel keyring: STS
//! throttling, failing, resetting, stalling and cutting its answer short (and
//! which of those may repeat a one-time code); session entries that expire
//! with their session, and a full key quota; a state directory that is unsafe,
//! read-only, full, or holds a symbolic link; the region left out of what
//! shapes a session; an expiry no clock can show; core dumps off while
//! minting; and `kill -9` at each step of a mint. (A TLS failure not retried
//! is in tls.rs, beside its TLS front.)

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
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

/// A small tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `dir`'s contents moved onto a tmpfs of 64 KiB and 32 inodes mounted in
    /// its place; None (after a SKIP, or a failure under AWSMFA_REQUIRE_ALL)
    /// where this test may not mount.
    fn over(env: &Env, dir: &Path) -> Option<Tmpfs> {
        let aside = dir.with_extension("aside");
        fs::rename(dir, &aside).expect("move the directory aside");
        fs::create_dir(dir).expect("mount point");
        let mut mount = env.command("mount");
        mount
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=64k,nr_inodes=32,mode=0700",
                "tmpfs",
            ])
            .arg(dir);
        let mounted = env
            .run_cmd(mount)
            .status
            .success()
            .then(|| Tmpfs(dir.into()));
        let mounted = require("mounting a tmpfs (root, CAP_SYS_ADMIN)", mounted)?;
        let mut copy = env.command("cp");
        copy.arg("-a").arg(aside.join(".")).arg(dir);
        assert_ok(&env.run_cmd(copy));
        Some(mounted)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem `dir` is on: data until ENOSPC, then empty files
/// until no inode is left. Removing `dir/fill*` makes room again.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut data = fs::File::create(dir.join("fill")).expect("filler");
    let block = [0u8; 4096];
    loop {
        match data.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", dir.display()),
        }
    }
    for i in 0.. {
        match fs::File::create(dir.join(format!("fill{i}"))) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", dir.display()),
        }
    }
}

/// A full state directory (no block, no inode left): the command still gets
/// its session, with warnings naming the full disk for the lock, the TOTP
/// step and the metadata, and leaves no temporary file; once there is room,
/// the next command finds the cached session and writes the metadata.
#[test]
fn a_full_state_directory_warns_and_recovers() {
    let Some(w) = World::new() else { return };
    let dir = w.state_dir();
    let Some(_tmpfs) = Tmpfs::over(&w.env, &dir) else {
        return;
    };
    fill(&dir);
    let (out, _) = w.cp();
    assert_ok(&out);
    assert_says(
        &out,
        &[
            "minting without the lock",
            "could not record the TOTP step",
            "the session is cached, but `awsmfa prompt` and `list` will not show it",
            "No space left on device",
        ],
    );
    assert!(!w.meta_path().exists());
    assert_eq!(w.leftover_temp_files(), Vec::<PathBuf>::new());

    for entry in fs::read_dir(&dir).expect("state dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("fill") {
            fs::remove_file(entry.path()).expect("make room");
        }
    }
    let (again, _) = w.cp();
    assert_ok(&again);
    assert_eq!(again.stdout, out.stdout, "not the cached session");
    assert!(again.stderr.is_empty(), "{}", again.dump());
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa.runs(), 1);
    assert!(w.meta_path().exists(), "the metadata was not written");
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

// --- dying mid-mint -------------------------------------------------------------------

/// An `mfa_process` that writes its pid to `asked` and answers only once
/// `answer` exists: a mint held while its code is fetched.
struct HeldMfa {
    asked: PathBuf,
    answer: PathBuf,
}

impl World {
    /// `dev`'s MFA script, replaced by one that holds the mint (still counted).
    fn hold_mfa(&self) -> HeldMfa {
        let held = HeldMfa {
            asked: self.env.root.join("asked"),
            answer: self.env.root.join("answer"),
        };
        self.replace_mfa(&format!(
            "#!/bin/sh\necho run >> '{c}'\necho $$ > '{a}.tmp' && mv '{a}.tmp' '{a}'\n\
             while [ ! -e '{g}' ]; do sleep 0.05; done\nexec oathtool --totp -b {SEED}\n",
            c = self.mfa.counter.display(),
            a = held.asked.display(),
            g = held.answer.display(),
        ));
        held
    }

    /// `dev`'s MFA script, replaced by the plain counting one.
    fn unhold_mfa(&self) {
        self.replace_mfa(&format!(
            "#!/bin/sh\necho run >> '{c}'\nexec oathtool --totp -b {SEED}\n",
            c = self.mfa.counter.display()
        ));
    }

    /// A new file renamed into place: a script still running keeps reading
    /// the old one.
    fn replace_mfa(&self, script: &str) {
        let new = self.env.write_script("bin/mfa.new", script);
        fs::rename(new, &self.mfa.script).expect("replace the MFA script");
    }

    /// Everything under the state directory whose name starts with a dot: a
    /// temporary file some write left behind.
    fn leftover_temp_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    found.push(path);
                } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, found);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.state_dir(), &mut found);
        found
    }

    /// Right after awsmfa died mid-mint: no session shows, and nothing
    /// half-written is left.
    #[track_caller]
    fn assert_nothing_half_made(&self) {
        assert_eq!(self.prompt().stdout_str(), "dev ·\n");
        let list = self.env.run(["list", "--json"]);
        assert_ok(&list);
        let list: Value = serde_json::from_slice(&list.stdout).expect("list --json");
        assert_eq!(list[0]["session"], "none", "{list}");
        assert_eq!(self.leftover_temp_files(), Vec::<PathBuf>::new());
    }

    /// After a kill: the next `credential-process` gets a session within
    /// `limit` (a wait for the next TOTP step at most: no stale lock), prints
    /// the one STS issued last, and leaves no temporary file behind.
    fn recovers_within(&self, limit: Duration) -> Output {
        let (out, took) = self.cp();
        assert_ok(&out);
        assert!(took < limit, "took {took:?}\n{}", out.dump());
        let printed: Value = serde_json::from_str(out.stdout_str().trim())
            .unwrap_or_else(|e| panic!("not credential_process JSON ({e})\n{}", out.dump()));
        let issued = self.stub.last_issued().expect("a session was issued");
        assert_eq!(printed["AccessKeyId"], issued.access_key_id.as_str());
        assert_eq!(self.leftover_temp_files(), Vec::<PathBuf>::new());
        out
    }
}

impl HeldMfa {
    /// Waits until the script was asked for a code; its pid.
    fn wait_asked(&self, awsmfa: &mut Bg) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(pid) = fs::read_to_string(&self.asked)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return pid;
            }
            assert!(awsmfa.running(), "awsmfa ended early\n{}", awsmfa.dump());
            assert!(Instant::now() < deadline, "never asked\n{}", awsmfa.dump());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answer(&self) {
        fs::write(&self.answer, "").expect("let the MFA script answer");
    }
}

/// SIGKILL to `awsmfa`, which then ends: nothing it said can be a panic.
fn kill9(awsmfa: &mut Bg) {
    awsmfa.signal(libc::SIGKILL);
    let out = awsmfa.wait(TIMEOUT);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", out.dump());
    assert_no_panic(&out);
    assert!(out.stdout.is_empty(), "{}", out.dump());
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the pid.
    unsafe { libc::kill(i32::try_from(pid).expect("pid"), 0) == 0 }
}

/// `credential-process dev` under strace, which sends it SIGKILL as it enters
/// the first system call in `syscalls` (touching `path`, if given): a kill -9
/// at an exact point of the mint, before that call does anything.
fn killed_at_syscall(w: &World, syscalls: &str, path: Option<&Path>) -> Option<Output> {
    require("strace (Debian package strace)", which("strace"))?;
    let mut cmd = w.env.command("strace");
    cmd.args(["-qq", "-f", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscalls}"))
        .arg("-e")
        .arg(format!("inject={syscalls}:signal=SIGKILL:when=1"));
    if let Some(path) = path {
        cmd.arg("-P").arg(path);
    }
    cmd.arg("--")
        .arg(support::env::awsmfa_bin())
        .args(["credential-process", "dev"]);
    let out = w.env.run_cmd(cmd);
    // strace ends the way its tracee did.
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", out.dump());
    assert_no_panic(&out);
    assert!(out.stdout.is_empty(), "{}", out.dump());
    Some(out)
}

/// Killed while its MFA script fetches a code: the script lives on (holding
/// nothing: the locks were not inherited), nothing is cached, and the next
/// command mints at once with one new code.
#[test]
fn killed_while_the_code_is_fetched() {
    let Some(w) = World::new() else { return };
    let held = w.hold_mfa();
    let mut awsmfa = Bg::spawn(w.env.cmd(["credential-process", "dev"]));
    let helper = held.wait_asked(&mut awsmfa);
    kill9(&mut awsmfa);
    assert!(alive(helper), "the MFA script died with awsmfa");
    w.assert_nothing_half_made();
    assert_eq!(w.stub.total_calls(), 0);

    w.unhold_mfa();
    w.recovers_within(Duration::from_secs(5));
    assert!(alive(helper), "the MFA script should still be waiting");
    assert_eq!(w.mfa.runs(), 2);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    held.answer();
}

/// Killed while STS holds the request: STS may have used the code, so the
/// next command waits for a fresh one (one step at most) instead of sending
/// it again; nothing was cached meanwhile.
#[test]
fn killed_while_sts_answers() {
    let Some(mut w) = World::new() else { return };
    w.env.set_timeout(Duration::from_secs(60));
    w.stub.delay(Duration::from_secs(3));
    let mut awsmfa = Bg::spawn(w.env.cmd(["credential-process", "dev"]));
    assert!(
        w.stub.wait_for_calls("GetSessionToken", 1, TIMEOUT),
        "{}",
        awsmfa.dump()
    );
    kill9(&mut awsmfa);
    w.stub.delay(Duration::ZERO);
    // STS acts on the request all the same, and uses its code.
    let deadline = Instant::now() + TIMEOUT;
    while w.stub.successes("GetSessionToken") == 0 {
        assert!(Instant::now() < deadline, "STS never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    w.assert_nothing_half_made();

    w.recovers_within(Duration::from_secs(45));
    let codes = w.codes();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert_ne!(
        codes[0], codes[1],
        "the code of the killed mint was sent again"
    );
    assert_eq!(w.mfa.runs(), 2);
}

/// Killed after STS answered, as the session was about to go into the
/// keyring (the kernel keyring's one `add_key` call): the session is lost,
/// never cached, and the next command mints another with one new code.
#[test]
fn killed_between_the_answer_and_the_cache() {
    let Some(mut w) = World::new() else { return };
    w.env.set_timeout(Duration::from_secs(60));
    if killed_at_syscall(&w, "add_key", None).is_none() {
        return;
    }
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    w.assert_nothing_half_made();

    w.recovers_within(Duration::from_secs(45));
    assert_eq!(w.stub.successes("GetSessionToken"), 2);
    assert_eq!(w.mfa.runs(), 2);
}

/// Killed while writing the session's metadata, as its temporary file was
/// about to replace the old one: the session is in the keyring, so the next
/// command uses it (no code, no STS call), writes the metadata, and removes
/// the temporary file the dead process left.
#[test]
fn killed_while_writing_the_session_file() {
    let Some(w) = World::new() else { return };
    let meta = w.meta_path();
    if killed_at_syscall(&w, "rename,renameat,renameat2", Some(&meta)).is_none() {
        return;
    }
    let left = w.leftover_temp_files();
    let sessions = w.state_dir().join("sessions");
    assert!(
        left.len() == 1 && left[0].parent() == Some(&sessions),
        "{left:?}"
    );
    assert!(!meta.exists());

    let out = w.recovers_within(Duration::from_secs(5));
    assert!(out.stderr.is_empty(), "{}", out.dump());
    assert_eq!(w.mfa.runs(), 1);
    assert_eq!(w.stub.total_calls(), 1);
    assert_ne!(w.prompt().stdout_str(), "dev ·\n", "no metadata");
}

// --- core dumps -----------------------------------------------------------------------

/// The soft RLIMIT_CORE a test starts awsmfa with: not a default anywhere.
const CORE: u64 = 7 * 1024 * 1024;

/// `cmd` started with a soft core limit of [`CORE`] (the hard one as it is);
/// that hard limit.
fn with_core_limit(cmd: &mut Command) -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
    assert!(limit.rlim_max >= CORE, "a hard core limit below {CORE}");
    limit.rlim_cur = CORE;
    // SAFETY: setrlimit(2) is async-signal-safe; the closure owns its copy.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_CORE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    if limit.rlim_max == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        limit.rlim_max.to_string()
    }
}

/// `(soft, hard)` "Max core file size" of `pid`, as /proc/PID/limits shows them.
fn core_limit(pid: u32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let mut fields = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .expect("a core line")
        .split_whitespace();
    let mut next = || fields.next().expect("a limit").to_string();
    (next(), next())
}

/// The words that run a command without CAP_SYS_PTRACE (as root: dropped
/// from the bounding set with setpriv, for awsmfa and for whoever looks at it
/// alike, since a process with fewer capabilities may not look at all): a
/// process of the same user may then read another's /proc/PID/fd links only
/// while that one is dumpable.
fn without_ptrace() -> Option<Vec<String>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(Vec::new());
    }
    let setpriv = require("setpriv (Debian package util-linux)", which("setpriv"))?;
    Some(vec![
        setpriv.display().to_string(),
        "--bounding-set=-sys_ptrace".into(),
        "--".into(),
    ])
}

/// `program` in `env`, behind the `without_ptrace` words.
fn unprivileged(env: &Env, peer: &[String], program: impl AsRef<std::ffi::OsStr>) -> Command {
    let Some((first, rest)) = peer.split_first() else {
        return env.command(program);
    };
    let mut cmd = env.command(first);
    cmd.args(rest).arg(program);
    cmd
}

/// Whether `pid` is dumpable, as a process of the user without
/// CAP_SYS_PTRACE finds out.
fn dumpable(env: &Env, peer: &[String], pid: u32) -> bool {
    let mut cmd = unprivileged(env, peer, "readlink");
    cmd.args(["-v", &format!("/proc/{pid}/fd/0")]);
    let out = env.run_cmd(cmd);
    let denied = out.stderr_str().contains("Permission denied");
    assert!(out.status.success() || denied, "{}", out.dump());
    !denied
}

/// While it mints, awsmfa runs with a soft core limit of 0 (the hard one
/// untouched) and is not dumpable, so that no process of the user without
/// CAP_SYS_PTRACE can look into it; the MFA script it runs (dumpable again
/// after its execve) keeps the limit of 0.
#[test]
fn minting_runs_with_core_dumps_off() {
    let Some(w) = World::new() else { return };
    let Some(peer) = without_ptrace() else { return };
    let held = w.hold_mfa();
    let mut cmd = unprivileged(&w.env, &peer, support::env::awsmfa_bin());
    cmd.args(["credential-process", "dev"]);
    let hard = with_core_limit(&mut cmd);
    let mut awsmfa = Bg::spawn(cmd);
    let helper = held.wait_asked(&mut awsmfa);
    let pid = u32::try_from(awsmfa.pid()).expect("pid");
    assert_eq!(core_limit(pid), ("0".into(), hard.clone()));
    assert!(
        !dumpable(&w.env, &peer, pid),
        "awsmfa is dumpable while it mints"
    );
    assert!(dumpable(&w.env, &peer, helper), "the check itself is wrong");
    assert_eq!(core_limit(helper), ("0".into(), hard));
    held.answer();
    let out = awsmfa.wait(TIMEOUT);
    assert_ok(&out);
}

/// The command gets the core limit awsmfa was started with, and is dumpable
/// (execve): run by `exec`, by `exec --server`, and through a secrets manager,
/// whose inner awsmfa turns core dumps off again and gives the command the
/// limit the manager had.
#[test]
fn the_command_gets_its_core_limit_back() {
    let Some(mut w) = World::new() else { return };
    let Some(peer) = without_ptrace() else { return };
    w.env
        .write_awsmfa_config("[roots.infra]\nprofile = \"dev\"\ndoppler = \"infra/prd\"\n");
    let standins = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins");
    let log = w.env.root.join("standin.log");
    w.env
        .prepend_path(&standins)
        .set("STANDIN_LOG", &log)
        .set("DOPPLER_TOKEN", "dp.st.faults-test");
    let root = w.env.home.join("src/infra");
    fs::create_dir_all(&root).expect("root");
    // The command reads its own core limit, and its fd links from a child: a
    // process without CAP_SYS_PTRACE (as all of them are here) may only while
    // the command is dumpable.
    let report = "awk '/^Max core file size/ { print $5, $6 }' /proc/self/limits\n\
                  readlink /proc/$$/fd/0 > /dev/null && echo dumpable";
    for args in [
        &["exec", "dev", "--"][..],
        &["exec", "dev", "--server", "--"],
        &["exec", "--"],
    ] {
        let mut cmd = unprivileged(&w.env, &peer, support::env::awsmfa_bin());
        cmd.args(args).args(["sh", "-c", report]).current_dir(&root);
        let hard = with_core_limit(&mut cmd);
        let out = w.env.run_cmd(cmd);
        assert_ok(&out);
        assert_eq!(
            out.stdout_str(),
            format!("{CORE} {hard}\ndumpable\n"),
            "{args:?}\n{}",
            out.dump()
        );
    }
    assert_eq!(w.mfa.runs(), 1);
}
