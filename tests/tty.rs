//! The terminal. After a hidden prompt is interrupted: a Ctrl-C (or a SIGTERM)
//! while `add` waits for the secret must not leave the user's shell typing
//! blind; the check is what the user would see next, `stty -a` run by the same
//! shell right after awsmfa died. A typed MFA prompt ends at its time limit,
//! and whoever waits on its lock is told so and gives up at a limit of its
//! own. A background job that would need the terminal fails at once instead
//! of being stopped by the shell's job control.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::env::awsmfa_bin;
use support::process::{Collector, Reaper, wait_until};
use support::shell::Kind;
use support::{
    Env, Key, OutputExt, Pty, PtyOpts, StsStub, TIMEOUT as T, assert_ok, stub_and_env, totp_now,
};

const SECRET_PROMPT: &str = "Secret access key (not shown): ";

/// Types the key id, waits for the secret prompt and for echo to be off.
fn to_the_secret_prompt(pty: &Pty) {
    pty.expect_ok("Access key ID for x: ", T);
    pty.send_line("AKIAIOSFODNN7EXAMPLE");
    pty.expect_ok(SECRET_PROMPT, T);
    pty.wait_echo(false, T);
}

/// `stty -a`'s flags as words: `echo` when on, `-echo` when off.
fn flags(stty: &str) -> Vec<&str> {
    stty.split([' ', '\n', ';'])
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn ctrl_c_at_the_hidden_secret_prompt_gives_the_echo_back() {
    let env = Env::new();
    let report = env.work.join("after.txt");
    // `trap :` keeps sh alive through the Ctrl-C (a trap with a command, unlike
    // `trap ''`, leaves awsmfa with SIGINT's default action), so it can report
    // how awsmfa ended and how the terminal was left.
    let mut cmd = env.command("sh");
    cmd.arg("-c")
        .arg(r#"trap : INT; "$1" add x; echo "status=$?" > "$2"; stty -a >> "$2""#)
        .arg("sh")
        .arg(awsmfa_bin())
        .arg(&report);
    let mut pty = Pty::spawn(cmd, PtyOpts::default());
    to_the_secret_prompt(&pty);
    // Half a secret typed, not shown, then Ctrl-C.
    pty.send("wJalrXUtnFEMI");
    pty.send("\x03");
    assert_eq!(pty.wait_code(T), 0, "{}", pty.output());
    let after = std::fs::read_to_string(&report).unwrap();
    let words = flags(&after);
    // 130: killed by SIGINT, as a shell reports it, so the shell stops a script too.
    assert_eq!(words.first(), Some(&"status=130"), "{after}");
    assert!(
        words.contains(&"echo") && !words.contains(&"-echo"),
        "echo is still off after Ctrl-C:\n{after}"
    );
    assert!(!pty.output().contains("wJalr"), "{}", pty.output());
}

#[test]
fn sigterm_at_the_hidden_secret_prompt_gives_the_echo_back() {
    let env = Env::new();
    let mut pty = Pty::spawn(env.cmd(["add", "x"]), PtyOpts::default());
    to_the_secret_prompt(&pty);
    // SAFETY: a signal to our own child, which has not been reaped yet.
    unsafe { libc::kill(pty.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(pty.wait_code(T), 128 + libc::SIGTERM, "{}", pty.output());
    assert!(pty.echo(), "echo is still off after SIGTERM");
}

#[test]
fn an_answered_hidden_prompt_gives_the_echo_back() {
    // The ordinary path: echo off while the secret is typed, on again after,
    // and nothing of the secret on the screen. (The keyring store may be
    // missing here; what happens after the answer does not matter.)
    let env = Env::new();
    let mut pty = Pty::spawn(env.cmd(["add", "x"]), PtyOpts::default());
    to_the_secret_prompt(&pty);
    pty.send_line("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    pty.wait_echo(true, T);
    pty.wait(Duration::from_secs(30));
    assert!(!pty.output().contains("wJalr"), "{}", pty.output());
}

// Typed MFA prompts, their limit, and the lock ─────────────────────────────

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const PROMPT: &str = "MFA code for arn:aws:iam::123456789012:mfa/dev (dev): ";

/// A stub STS and profile `dev` whose code is typed (no `mfa_process`), its
/// key stored; nothing cached.
struct Typed {
    stub: StsStub,
    env: Env,
}

impl Typed {
    fn new() -> Option<Typed> {
        let key = Key::new();
        let (stub, env) = stub_and_env(&key.id, &key.secret, SERIAL, SEED)?;
        env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n"
        ));
        let mut add = env.cmd(["add", "dev", "--from-env"]);
        add.env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret);
        assert_ok(&env.run_cmd(add));
        Some(Typed { stub, env })
    }

    /// `credential-process dev` with its prompt limit (`AWSMFA_PROMPT_TIMEOUT`).
    fn credential_process(&self, limit_secs: u32) -> std::process::Command {
        let mut cmd = self.env.cmd(["credential-process", "dev"]);
        cmd.env("AWSMFA_PROMPT_TIMEOUT", limit_secs.to_string());
        cmd
    }

    /// `dev`'s session lock, which holds its holder's line.
    fn lock_path(&self) -> PathBuf {
        self.env.state_home.join("awsmfa/locks/dev.lock")
    }

    /// Nobody holds the lock: taking it succeeds at once.
    #[track_caller]
    fn assert_lock_free(&self) {
        let file = File::open(self.lock_path()).expect("open the lock file");
        file.try_lock().expect("the lock is still held");
    }

    /// Nothing cached for `dev`: no metadata, and `list` says so.
    #[track_caller]
    fn assert_nothing_cached(&self) {
        assert!(
            !self.env.state_home.join("awsmfa/sessions/dev").exists(),
            "a failed mint left metadata"
        );
        let out = self.env.run_ok(["list", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&out.stdout_str()).unwrap();
        let dev = rows
            .as_array()
            .and_then(|r| r.iter().find(|r| r["profile"] == "dev"))
            .unwrap_or_else(|| panic!("no dev in {rows}"));
        assert_eq!(dev["session"], "none", "{dev}");
    }
}

/// Waits until `collector` has shown `needle`; how long that took from `since`.
#[track_caller]
fn wait_for_text(collector: &Collector, needle: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + T;
    while !collector.text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within {T:?}; got:\n{}",
            collector.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    since.elapsed()
}

#[test]
fn a_waiter_names_the_typing_holder_on_its_terminal_and_gets_its_session() {
    let Some(w) = Typed::new() else { return };
    let mut holder = Pty::spawn(w.credential_process(60), PtyOpts::tty_only());
    holder.expect_ok(PROMPT, T);
    let pid = holder.pid();
    // The lock file says who holds it, and that a person is being asked.
    assert_eq!(
        std::fs::read_to_string(w.lock_path()).unwrap(),
        format!("{pid} typed\n")
    );

    // An SDK in another terminal, on the same profile: told there, at once.
    let started = Instant::now();
    let mut waiter = Pty::spawn(w.credential_process(60), PtyOpts::tty_only());
    let said = format!("waiting for an MFA code being entered in another terminal (pid {pid})");
    waiter.expect_ok(&said, T);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "told after {took:?}");
    assert_eq!(w.stub.total_calls(), 0);

    holder.send_line(&totp_now(SEED));
    assert_eq!(holder.wait_code(T), 0, "{}", holder.stderr());
    assert_eq!(waiter.wait_code(T), 0, "{}", waiter.stderr());
    // One code, one STS call: the waiter took the session the holder minted.
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let json = waiter.stdout();
    assert_eq!(json, holder.stdout());
    let issued = w.stub.last_issued().unwrap();
    assert!(json.contains(&issued.session_token), "{json}");
    assert!(!waiter.stderr().contains("waiting"), "{}", waiter.stderr());
    assert!(
        !waiter.output().contains("MFA code for"),
        "the waiter asked too"
    );
}

#[test]
fn a_waiter_without_a_terminal_names_the_minting_holder_on_stderr() {
    let Some(w) = Typed::new() else { return };
    let mfa = w.env.counting_mfa(SEED);
    // A code source that takes a while, as a YubiKey waiting for a touch does.
    let slow = w.env.write_script(
        "bin/mfa-slow",
        &format!("#!/bin/sh\nsleep 3\nexec '{}'\n", mfa.script.display()),
    );
    w.env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\nmfa_process = {}\n",
        slow.display()
    ));
    let mut holder = w.env.cmd(["credential-process", "dev"]);
    holder.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut holder = Reaper(holder.spawn().expect("spawn awsmfa"));
    let holder_out = Collector::new(holder.child().stdout.take());
    let pid = holder.child().id();
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(w.lock_path()).ok() != Some(format!("{pid}\n")) {
        assert!(Instant::now() < deadline, "the holder never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    let mut waiter = w.env.cmd(["credential-process", "dev"]);
    waiter.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut waiter = Reaper(waiter.spawn().expect("spawn awsmfa"));
    let out = Collector::new(waiter.child().stdout.take());
    let err = Collector::new(waiter.child().stderr.take());
    let said = format!("awsmfa: waiting for another awsmfa (pid {pid}) minting a session for dev");
    let took = wait_for_text(&err, &said, started);
    // Not at once (most mints take less), but within a second or so.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "told after {took:?}"
    );
    let status = wait_until(waiter.child(), Instant::now() + T).expect("the waiter hung");
    assert!(status.success(), "{}", err.text());
    assert!(wait_until(holder.child(), Instant::now() + T).is_some_and(|s| s.success()));
    assert_eq!(mfa.runs(), 1, "the waiter asked for a code of its own");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(out.finish(T), holder_out.finish(T));
}

#[test]
fn an_unanswered_prompt_ends_at_its_limit_and_leaves_the_terminal_clean() {
    let Some(w) = Typed::new() else { return };
    let report = w.env.work.join("after.txt");
    // The shell the user would be back at: how awsmfa ended, the terminal's
    // settings, and what the shell reads next.
    let mut cmd = w.env.command("sh");
    cmd.env("AWSMFA_PROMPT_TIMEOUT", "2")
        .arg("-c")
        .arg(
            r#""$1" credential-process dev > /dev/null; echo "status=$?" > "$2"; stty -a >> "$2"; echo READY; read -r line; echo "read=$line" >> "$2""#,
        )
        .arg("sh")
        .arg(awsmfa_bin())
        .arg(&report);
    let mut pty = Pty::spawn(cmd, PtyOpts::default());
    pty.expect_ok(PROMPT, T);
    let asked = Instant::now();
    // Half a code, and no Enter.
    pty.send("123");
    pty.expect_ok("READY", T);
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "the prompt ended after {took:?}"
    );
    // The half-typed code is gone: the shell reads only what comes next.
    pty.send_line("ls");
    assert_eq!(pty.wait_code(T), 0, "{}", pty.output());
    let after = std::fs::read_to_string(&report).unwrap();
    let words = flags(&after);
    assert_eq!(words.first(), Some(&"status=1"), "{after}");
    assert!(
        words.contains(&"echo") && words.contains(&"icanon"),
        "{after}"
    );
    assert_eq!(words.last(), Some(&"read=ls"), "{after}");
    let screen = pty.output();
    assert!(
        screen.contains("no MFA code typed within 2 s; run the command again"),
        "{screen}"
    );
    assert!(!screen.contains("panicked"), "{screen}");
    assert_eq!(w.stub.total_calls(), 0);
    w.assert_lock_free();
    w.assert_nothing_cached();
}

#[test]
fn a_prompt_limit_that_is_not_seconds_is_named_and_the_default_used() {
    let Some(w) = Typed::new() else { return };
    let mut cmd = w.env.cmd(["credential-process", "dev"]);
    cmd.env("AWSMFA_PROMPT_TIMEOUT", "2m");
    let mut pty = Pty::spawn(cmd, PtyOpts::tty_only());
    pty.expect_ok(PROMPT, T);
    pty.send_line(&totp_now(SEED));
    assert_eq!(pty.wait_code(T), 0, "{}", pty.stderr());
    assert!(
        pty.stderr().contains(
            "awsmfa: warning: AWSMFA_PROMPT_TIMEOUT=2m is not a number of seconds from 1 to 86400; using 2 min"
        ),
        "{}",
        pty.stderr()
    );
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
}

#[test]
fn a_waiter_gives_up_at_its_limit_naming_the_holder() {
    let Some(w) = Typed::new() else { return };
    let mut holder = Pty::spawn(w.credential_process(60), PtyOpts::tty_only());
    holder.expect_ok(PROMPT, T);
    let pid = holder.pid();

    // Its own limit: the prompt's (2 s here) and a quarter more, rounded up.
    let started = Instant::now();
    let out = w.env.run_cmd(w.credential_process(2));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", out.dump());
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "waiting for an MFA code being entered in another terminal (pid {pid})…"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: gave up after 3 s waiting for an MFA code being entered in another terminal \
             (pid {pid}); type the code at that prompt or press Ctrl-C there, or end it with `kill {pid}`"
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!err.contains("panicked"), "{err}");

    // The holder did not notice, and finishes as usual.
    holder.send_line(&totp_now(SEED));
    assert_eq!(holder.wait_code(T), 0, "{}", holder.stderr());
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
}

#[test]
fn a_waiter_on_the_same_terminal_stays_quiet_under_the_prompt() {
    // Parallel credential_process calls of one OpenTofu run share its terminal:
    // the prompt is on screen, and a waiter's line would land inside it.
    let Some(w) = Typed::new() else { return };
    let out = |n: u32| w.env.work.join(format!("out{n}"));
    let mut cmd = w.env.command("sh");
    cmd.arg("-c")
        .arg(r#""$1" credential-process dev > "$2" & sleep 0.5; "$1" credential-process dev > "$3"; s=$?; wait $!; echo "status=$s,$?""#)
        .arg("sh")
        .arg(awsmfa_bin())
        .arg(out(1))
        .arg(out(2));
    let mut pty = Pty::spawn(cmd, PtyOpts::default());
    pty.expect_ok(PROMPT, T);
    // Long past the moment a waiter speaks.
    std::thread::sleep(Duration::from_millis(2000));
    pty.send_line(&totp_now(SEED));
    pty.expect_ok("status=0,0", T);
    assert_eq!(pty.wait_code(T), 0);
    let screen = pty.output();
    assert!(!screen.contains("waiting"), "{screen}");
    assert_eq!(screen.matches("MFA code for").count(), 1, "{screen}");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    let json = std::fs::read_to_string(out(1)).unwrap();
    assert!(json.starts_with("{\"Version\":1"), "{json}");
    assert_eq!(std::fs::read_to_string(out(2)).unwrap(), json);
}

// Background jobs ─────────────────────────────────────────────────────────────

#[test]
fn a_background_job_that_needs_a_typed_answer_fails_at_once_and_is_not_stopped() {
    let Some(w) = Typed::new() else { return };
    let Some(bash) = Kind::Bash.binary() else {
        return;
    };
    let file = |name: &str| w.env.work.join(name);
    let mut cmd = w.env.command(bash);
    cmd.args(["--norc", "--noprofile", "-i"])
        .env("PS1", "$ ")
        .env("AWSMFA", awsmfa_bin());
    let mut sh = Pty::spawn(
        cmd,
        PtyOpts {
            cols: 250,
            ..PtyOpts::default()
        },
    );
    // With tostop even the prompt's first write would stop the job (SIGTTOU),
    // so the check must come before anything is written.
    sh.send_line("stty tostop; printf '%s-%s\\n' SET tostop");
    sh.expect_ok("SET-tostop", T);
    for (name, line) in [
        ("exec", r#""$AWSMFA" exec dev -- true"#),
        ("add", r#""$AWSMFA" add dev"#),
    ] {
        let (err, jobs) = (file(&format!("{name}.err")), file(&format!("{name}.jobs")));
        let started = Instant::now();
        sh.send_line(&format!("{line} 2> {} &", q(&err)));
        // What `jobs` says once the job is no longer running (or after 5 s),
        // then how it ended (a stopped job is killed first: `wait` would hang).
        sh.send_line(&format!(
            "for i in $(seq 100); do jobs -l > {j}; grep -q Running {j} || break; sleep 0.05; done; \
             grep -q Stopped {j} && kill -9 $!; wait $!; printf '%s-status=%s\\n' {name} $?",
            j = q(&jobs)
        ));
        sh.expect_ok(&format!("{name}-status=1\r\n"), T);
        let took = started.elapsed();
        let listed = std::fs::read_to_string(&jobs).unwrap();
        assert!(!listed.contains("Stopped"), "{listed}");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        let said = std::fs::read_to_string(&err).unwrap();
        assert!(
            said.contains("awsmfa runs in a background job of its terminal (started with `&`)"),
            "{said}"
        );
        assert!(!said.contains("panicked"), "{said}");
        let fix = match name {
            "exec" => {
                "run the command in the foreground, or give dev an MFA source that needs no typing: `mfa = \"ykman\"`"
            }
            _ => {
                "run `awsmfa add dev` in the foreground, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and use --from-env"
            }
        };
        assert!(said.contains(fix), "{said}");
    }
    // Nothing was asked on the terminal, and nothing reached STS.
    assert!(!sh.output().contains("MFA code for"), "{}", sh.output());
    assert!(!sh.output().contains("Access key ID"), "{}", sh.output());
    assert_eq!(w.stub.total_calls(), 0);
    sh.send_line("exit");
    sh.wait(T);
}

/// `path` single-quoted for sh.
fn q(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
