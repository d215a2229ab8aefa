//! The terminal after a hidden prompt is interrupted: a Ctrl-C (or a SIGTERM)
//! while `add` waits for the secret must not leave the user's shell typing
//! blind. The check is what the user would see next: `stty -a` run by the same
//! shell right after awsmfa died.

mod support;

use std::time::Duration;

use support::env::awsmfa_bin;
use support::{Env, Pty, PtyOpts, TIMEOUT as T};

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
