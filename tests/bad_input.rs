//! Every bad input ends the same way: a message that says what is wrong and
//! what to do (asserted on its key words), exit 1 (2 for usage errors), no
//! panic, and no hang (every run is bounded by the support's timeouts).

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const KEY: &str = "AKIASTUBBADINPUT0001";
const SECRET: &str = "badinputlonglivedsecret/0123456789abcdef";

/// Asserts the failure contract and returns stderr: exit `code`, nothing on
/// stdout, no panic, and every one of `words` in the message.
#[track_caller]
fn fails_with(out: &Output, code: i32, words: &[&str]) -> String {
    assert_code(out, code);
    let err = out.stderr_str();
    assert!(!err.contains("panicked"), "awsmfa panicked\n{}", out.dump());
    assert!(
        out.stdout.is_empty(),
        "a failure printed on stdout\n{}",
        out.dump()
    );
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}\n{}", out.dump());
    }
    err
}

fn dev_profile(extra: &str) -> String {
    format!("[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n{extra}")
}

/// Stores the test key for `profile` (keyutils, the Env's default).
#[track_caller]
fn add_key(env: &Env, profile: &str) {
    let mut cmd = env.cmd(["add", profile, "--from-env"]);
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    assert_ok(&env.run_cmd(cmd));
}

/// An Env with `dev` configured (plus `extra` lines in its section), its key
/// stored, and STS pointed at `stub`. None when keyutils is missing (skip).
fn world(stub: &StsStub, extra: &str) -> Option<Env> {
    if !keyutils_available() {
        return None;
    }
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url());
    env.write_aws_config(&dev_profile(extra));
    add_key(&env, "dev");
    Some(env)
}

fn stub() -> StsStub {
    let s = StsStub::start();
    s.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
    s
}

// ~/.aws/config ──────────────────────────────────────────────────────────────

#[test]
fn malformed_aws_config_names_file_and_line() {
    let env = Env::new();
    env.write_aws_config("[profile dev]\nregion = us-east-1\nthis line is not ini\n");
    for args in [
        &["credential-process", "dev"][..],
        &["exec", "dev", "--", "true"],
        &["list"],
        &["clear"],
    ] {
        let out = env.run(args);
        fails_with(&out, 1, &[".aws/config:3:", "key = value"]);
    }
    env.write_aws_config("[profile dev\nregion = us-east-1\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &[".aws/config:1:", "`]`"]);
    env.write_aws_config("[profile dev]\nmfa_serial = x\nduration_seconds = soon\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &[".aws/config:3:", "duration_seconds"]);
}

#[test]
fn unknown_profile_suggests_the_close_match() {
    let env = Env::new();
    env.write_aws_config(&format!(
        "{}\n[profile prod-admin]\nmfa_serial = {SERIAL}\n",
        dev_profile("")
    ));
    let out = env.run(["credential-process", "devv"]);
    fails_with(
        &out,
        1,
        &["no profile `devv`", "did you mean `dev`", ".aws/config"],
    );
    let out = env.run(["exec", "devv", "--", "true"]);
    fails_with(&out, 1, &["did you mean `dev`"]);
    // Nothing close: the known profiles are listed.
    let out = env.run(["credential-process", "zzzzzz"]);
    fails_with(&out, 1, &["no profile `zzzzzz`", "dev", "prod-admin"]);
}

#[test]
fn profile_without_mfa_serial_says_to_add_it() {
    let env = Env::new();
    env.write_aws_config(
        "[profile other]\nregion = eu-west-1\n\n[profile dev]\nregion = us-east-1\n",
    );
    let out = env.run(["credential-process", "dev"]);
    let err = fails_with(&out, 1, &["mfa_serial", "add", ".aws/config:4"]);
    assert!(err.contains("[profile dev]"), "{err}");
}

// STS ────────────────────────────────────────────────────────────────────────

#[test]
fn unreachable_sts_fails_fast_and_keeps_the_cached_session() {
    let stub = stub();
    let Some(mut env) = world(
        &stub,
        "mfa_process = oathtool --totp -b JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n",
    ) else {
        return;
    };
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let cached = env.run_ok(["credential-process", "dev"]).stdout_str();
    let meta = env.state_home.join("awsmfa/sessions/dev");
    let meta_before = std::fs::read_to_string(&meta).unwrap();

    env.set_sts_endpoint("http://127.0.0.1:1");
    // About the network, not about a second code within one step.
    env.forget_totp_steps();
    let start = Instant::now();
    let out = env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    fails_with(&out, 1, &["cannot reach STS", "http://127.0.0.1:1"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // The failure cleared nothing: back on the working endpoint, the session
    // minted before is served from the cache.
    assert_eq!(std::fs::read_to_string(&meta).unwrap(), meta_before);
    env.set_sts_endpoint(&stub.url());
    assert_eq!(
        env.run_ok(["credential-process", "dev"]).stdout_str(),
        cached
    );
    assert_eq!(stub.total_calls(), 1);
}

#[test]
fn invalid_long_lived_key_says_to_add_a_new_one() {
    let stub = StsStub::start();
    stub.add_mfa(SERIAL, SEED); // and no user: the key is unknown to STS
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let Some(env) = world(&stub, &format!("mfa_process = oathtool --totp -b {SEED}\n")) else {
        return;
    };
    let out = env.run(["credential-process", "dev"]);
    fails_with(
        &out,
        1,
        &["InvalidClientTokenId", "not valid", "awsmfa add dev"],
    );
    assert_eq!(stub.calls("GetSessionToken"), 1, "not retried");
    let out = env.run(["exec", "dev", "--", "true"]);
    fails_with(&out, 1, &["awsmfa add dev"]);
    // Following the advice works.
    let good = "AKIASTUBBADINPUT0002";
    stub.add_user(good, SECRET);
    let mut add = env.cmd(["add", "dev", "--from-env"]);
    add.env("AWS_ACCESS_KEY_ID", good)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    assert_ok(&env.run_cmd(add));
    env.run_ok(["credential-process", "dev"]);
    assert_eq!(stub.successes("GetSessionToken"), 1);
    assert_eq!(
        stub.last_request().unwrap().access_key_id.as_deref(),
        Some(good)
    );
}

#[test]
fn throttling_beyond_the_retries_is_reported() {
    let stub = stub();
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let Some(env) = world(&stub, &format!("mfa_process = oathtool --totp -b {SEED}\n")) else {
        return;
    };
    stub.throttle_next(10);
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["STS", "Throttling"]);
    assert_eq!(stub.successes("GetSessionToken"), 0);
    assert!(stub.calls("GetSessionToken") <= 5, "retried without bound");
}

#[test]
fn missing_long_lived_key_says_to_add_one() {
    let stub = stub();
    let Some(env) = world(&stub, "mfa_process = echo 123456\n") else {
        return;
    };
    env.run_ok(["remove", "dev", "--yes"]);
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["no long-lived key", "awsmfa add dev"]);
    assert_eq!(stub.total_calls(), 0);
}

// MFA ────────────────────────────────────────────────────────────────────────

#[test]
fn non_numeric_code_from_mfa_process_is_refused_before_sts() {
    let stub = stub();
    let Some(env) = world(&stub, "mfa_process = echo abc\n") else {
        return;
    };
    let out = env.run(["credential-process", "dev"]);
    let err = fails_with(&out, 1, &["mfa_process", "6-digit code", "dev"]);
    // What it printed is not echoed: it may be something secret.
    assert!(!err.contains("abc"), "{err}");
    assert_eq!(stub.total_calls(), 0);

    for (cmd, words) in [
        ("exit 3", &["mfa_process", "failed"][..]),
        ("echo 1234567", &["6-digit code"]),
        ("true", &["6-digit code"]),
        ("/nonexistent/ykman oath", &["mfa_process", "failed"]),
    ] {
        env.write_aws_config(&dev_profile(&format!("mfa_process = {cmd}\n")));
        let out = env.run(["credential-process", "dev"]);
        fails_with(&out, 1, words);
    }
    assert_eq!(stub.total_calls(), 0);
}

#[test]
fn no_terminal_and_no_mfa_source_fails_at_once() {
    let stub = stub();
    let Some(env) = world(&stub, "") else { return };
    let start = Instant::now();
    let out = env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    fails_with(&out, 1, &["no terminal", "mfa_process", "dev"]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(stub.total_calls(), 0);
    let out = env.run(["exec", "dev", "--", "true"]);
    fails_with(&out, 1, &["mfa_process"]);
}

// add / remove ─────────────────────────────────────────────────────────────

#[test]
fn add_and_remove_refuse_what_they_cannot_do() {
    if !keyutils_available() {
        return;
    }
    let env = Env::new();
    env.write_aws_config(&dev_profile(""));

    let out = env.run(["add", "dev"]);
    fails_with(&out, 1, &["no terminal", "--from-env"]);

    let out = env.run(["add", "dev", "--from-env"]);
    fails_with(
        &out,
        1,
        &["--from-env", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    );
    let mut only_id = env.cmd(["add", "dev", "--from-env"]);
    only_id.env("AWS_ACCESS_KEY_ID", KEY);
    fails_with(&env.run_cmd(only_id), 1, &["AWS_SECRET_ACCESS_KEY"]);

    let mut temp = env.cmd(["add", "dev", "--from-env"]);
    temp.env("AWS_ACCESS_KEY_ID", "ASIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", "sometoken");
    fails_with(&env.run_cmd(temp), 1, &["temporary", "ASIA", "long-lived"]);

    let mut pasted = env.cmd(["add", "dev", "--from-env"]);
    pasted
        .env("AWS_ACCESS_KEY_ID", SECRET)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let err = fails_with(&env.run_cmd(pasted), 1, &["access key id"]);
    assert!(!err.contains(SECRET), "the secret was echoed: {err}");
    // Nothing was stored by any of these.
    assert!(!env.state_home.join("awsmfa/keys/dev").exists());

    add_key(&env, "dev");
    let out = env.run(["remove", "dev"]);
    fails_with(&out, 1, &["no terminal", "--yes"]);
    assert!(
        env.state_home.join("awsmfa/keys/dev").exists(),
        "removed anyway"
    );
    env.run_ok(["remove", "dev", "--yes"]);
    let out = env.run(["remove", "dev", "--yes"]);
    fails_with(&out, 1, &["no stored key"]);
    // Never the shared credentials file.
    assert!(!env.credentials_path().exists());
}

#[test]
fn add_to_a_role_profile_points_at_its_source() {
    let env = Env::new();
    env.write_aws_config(&format!(
        "{}\n[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = dev\n",
        dev_profile("")
    ));
    let mut cmd = env.cmd(["add", "deploy", "--from-env"]);
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    fails_with(&env.run_cmd(cmd), 1, &["source_profile", "awsmfa add dev"]);
}

// config.toml and profile structure ──────────────────────────────────────────

#[test]
fn bad_awsmfa_config_names_file_and_line() {
    let env = Env::new();
    env.write_aws_config(&dev_profile(""));

    env.write_awsmfa_config("refresh_before = \"5m\"\n\n[profiles.dev\nmfa = \"prompt\"\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["awsmfa/config.toml:3"]);

    env.write_awsmfa_config("[profiles.dev]\nmfa = \"prompt\"\nsesion_ttl = \"1h\"\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(
        &out,
        1,
        &[
            "awsmfa/config.toml:3",
            "unknown field `sesion_ttl`",
            "session_ttl",
        ],
    );

    env.write_awsmfa_config("refresh_before = \"soon\"\n");
    let out = env.run(["list"]);
    fails_with(&out, 1, &["awsmfa/config.toml:1", "refresh_before", "soon"]);

    env.write_awsmfa_config("[profiles.dev]\nmfa = \"sms\"\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["config.toml", "mfa", "sms", "prompt"]);

    env.write_awsmfa_config("[profiles.dev]\nkeys = \"vault\"\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["config.toml", "keys", "vault"]);
}

#[test]
fn session_ttl_outside_sts_limits_is_refused() {
    let env = Env::new();
    env.write_aws_config(&dev_profile(""));
    for ttl in ["5m", "37h"] {
        env.write_awsmfa_config(&format!("[profiles.dev]\nsession_ttl = \"{ttl}\"\n"));
        let out = env.run(["credential-process", "dev"]);
        fails_with(&out, 1, &["15m to 36h", "session_ttl"]);
    }
    env.write_awsmfa_config("[profiles.dev]\nsession_ttl = \"whenever\"\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["session_ttl", "whenever", "1h"]);
    // In ~/.aws/config too, and for --duration.
    env.write_awsmfa_config("");
    env.write_aws_config(&dev_profile("session_ttl = 5m\n"));
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["15m to 36h"]);
    env.write_aws_config(&dev_profile(""));
    let out = env.run(["exec", "dev", "--duration", "40h", "--", "true"]);
    fails_with(&out, 1, &["15m to 36h", "--duration"]);
    let out = env.run(["exec", "dev", "--duration", "later", "--", "true"]);
    fails_with(&out, 1, &["--duration", "later"]);
}

#[test]
fn source_profile_loop_is_named() {
    let env = Env::new();
    env.write_aws_config(
        "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n\n\
         [profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = a\n",
    );
    let out = env.run(["credential-process", "a"]);
    fails_with(&out, 1, &["source_profile loop", "a → b → a"]);
    let out = env.run(["exec", "b", "--", "true"]);
    fails_with(&out, 1, &["source_profile loop", "b → a → b"]);
    // A role whose source does not exist.
    env.write_aws_config(
        "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = nowhere\n",
    );
    let out = env.run(["credential-process", "a"]);
    fails_with(&out, 1, &["no profile `nowhere`"]);
}

#[test]
fn role_profile_without_source_profile_says_what_to_add() {
    let env = Env::new();
    env.write_aws_config(
        "[profile deploy]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/x\n",
    );
    let out = env.run(["credential-process", "deploy"]);
    fails_with(
        &out,
        1,
        &[
            "role_arn",
            "no source_profile",
            "source_profile = ",
            ".aws/config:1",
        ],
    );
}

// Usage ──────────────────────────────────────────────────────────────────────

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.write_aws_config(&dev_profile(""));
    for args in [
        &["exec", "dev"][..],
        &["exec", "dev", "--"],
        &["frobnicate"],
        &["credential-process"],
        &["add"],
        &["list", "--bogus-flag"],
        &[],
    ] {
        let out = env.run(args);
        assert_code(&out, 2);
        let err = out.stderr_str();
        assert!(!err.contains("panicked"), "{}", out.dump());
        assert!(
            err.contains("error:") || err.contains("Usage:"),
            "{args:?}\n{}",
            out.dump()
        );
        assert!(err.contains("Usage"), "{args:?}\n{}", out.dump());
    }
    let out = env.run(["frobnicate"]);
    assert!(out.stderr_str().contains("frobnicate"), "{}", out.dump());
}

// The keyring ────────────────────────────────────────────────────────────────

#[test]
fn unavailable_or_unknown_keyring_store_is_explained() {
    let mut env = Env::new();
    env.write_aws_config(&dev_profile("mfa_process = echo 123456\n"));
    env.set("AWSMFA_KEYRING", "secret-service");
    env.unset("DBUS_SESSION_BUS_ADDRESS");
    let mut add = env.cmd(["add", "dev", "--from-env"]);
    add.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let start = Instant::now();
    fails_with(
        &env.run_cmd(add),
        1,
        &[
            "secret-service",
            "no session bus",
            "AWSMFA_KEYRING=keyutils",
        ],
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["secret-service", "no session bus"]);

    env.set("AWSMFA_KEYRING", "bogus");
    let out = env.run(["credential-process", "dev"]);
    fails_with(
        &out,
        1,
        &["AWSMFA_KEYRING=bogus", "keyutils", "secret-service"],
    );
    env.set("AWSMFA_KEYRING", "keyutils");
    env.set("AWSMFA_SESSION_KEYRING", "bogus");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["AWSMFA_SESSION_KEYRING=bogus", "keyutils"]);
}

// More that users get wrong ─────────────────────────────────────────────────

#[test]
fn empty_mfa_source_list_is_a_configuration_error() {
    let stub = stub();
    let Some(env) = world(&stub, "") else { return };
    env.write_awsmfa_config("[profiles.dev]\nmfa = []\n");
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["config.toml", "[profiles.dev] mfa", "prompt"]);
    assert_eq!(stub.total_calls(), 0);
}

#[test]
fn aws_config_that_is_not_text_names_the_file() {
    let env = Env::new();
    std::fs::write(env.aws_config_path(), b"\xff\xfe[profile dev]\n").unwrap();
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &[".aws/config", "UTF-8"]);
}

#[test]
fn mfa_process_leaving_a_background_process_does_not_hang() {
    let stub = stub();
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let Some(env) = world(&stub, "") else { return };
    // Prints its code, then leaves a child that still holds its stdout (as an
    // agent started on first use does).
    let pid_file = env.root.join("bg.pid");
    let script = env.write_script(
        "bin/mfa-agent",
        &format!(
            "#!/bin/sh\noathtool --totp -b {SEED}\nsleep 20 2>/dev/null </dev/null &\necho $! > '{}'\n",
            pid_file.display()
        ),
    );
    env.write_aws_config(&dev_profile(&format!(
        "mfa_process = {}\n",
        script.display()
    )));
    let start = Instant::now();
    let out = env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    if let Ok(pid) = std::fs::read_to_string(&pid_file)
        && let Ok(pid) = pid.trim().parse::<i32>()
    {
        // SAFETY: kill(2) on the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_ok(&out);
    assert!(
        took < Duration::from_secs(5),
        "awsmfa waited {took:?} for mfa_process's background child"
    );
    assert_eq!(stub.successes("GetSessionToken"), 1);
}

#[test]
fn wrong_mfa_serial_points_at_mfa_serial() {
    let stub = stub();
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let Some(env) = world(&stub, "") else { return };
    // A device STS does not know for this user.
    env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = arn:aws:iam::123456789012:mfa/other\nmfa_process = oathtool --totp -b {SEED}\n"
    ));
    let out = env.run(["credential-process", "dev"]);
    fails_with(
        &out,
        1,
        &[
            "arn:aws:iam::123456789012:mfa/other",
            "mfa_serial",
            "[profile dev]",
        ],
    );
    assert_eq!(stub.successes("GetSessionToken"), 0);
    // A device STS does not know is not a mistyped code: no second and third try.
    assert_eq!(stub.calls("GetSessionToken"), 1, "{}", out.dump());
    assert!(
        out.stderr_str().contains("does not know the MFA device"),
        "{}",
        out.dump()
    );
}

#[test]
fn role_refusals_from_sts_are_explained() {
    let stub = stub();
    stub.add_role("arn:aws:iam::123456789012:role/allowed", Some("ext-ok"));
    if require("oathtool (Debian package oathtool)", which("oathtool")).is_none() {
        return;
    }
    let Some(env) = world(&stub, &format!("mfa_process = oathtool --totp -b {SEED}\n")) else {
        return;
    };
    let base = dev_profile(&format!("mfa_process = oathtool --totp -b {SEED}\n"));
    // Not allowed to assume it.
    env.write_aws_config(&format!(
        "{base}\n[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/forbidden\nsource_profile = dev\n"
    ));
    let out = env.run(["credential-process", "deploy"]);
    fails_with(
        &out,
        1,
        &["AccessDenied", "role/forbidden", "IAM policy", "deploy"],
    );
    // Wrong external_id.
    env.write_aws_config(&format!(
        "{base}\n[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/allowed\nsource_profile = dev\nexternal_id = ext-wrong\n"
    ));
    let out = env.run(["credential-process", "deploy"]);
    fails_with(&out, 1, &["AccessDenied", "IAM policy"]);
    // Longer than role chaining allows.
    env.write_aws_config(&format!(
        "{base}\n[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/allowed\nsource_profile = dev\nexternal_id = ext-ok\nduration_seconds = 7200\n"
    ));
    let out = env.run(["credential-process", "deploy"]);
    fails_with(&out, 1, &["DurationSeconds", "1 hour"]);
    // The source session was minted once and reused through all of it.
    assert_eq!(stub.calls("GetSessionToken"), 1);
    // And the right settings work.
    env.write_aws_config(&format!(
        "{base}\n[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/allowed\nsource_profile = dev\nexternal_id = ext-ok\n"
    ));
    env.run_ok(["credential-process", "deploy"]);
}

#[test]
fn foreign_key_entry_in_the_keyring_says_to_add_again() {
    let stub = stub();
    let Some(env) = world(&stub, "mfa_process = echo 123456\n") else {
        return;
    };
    let desc = format!("keyring:key:dev@{}", env.keyring_service());
    let mut cmd = env.command("keyctl");
    cmd.args([
        "session",
        "-",
        "sh",
        "-c",
        r#"P=$(keyctl get_persistent @s) && K=$(keyctl search "$P" user "$1") && printf 'not-json' | keyctl pupdate "$K""#,
        "sh",
        &desc,
    ]);
    assert_ok(&env.run_cmd(cmd));
    let out = env.run(["credential-process", "dev"]);
    fails_with(&out, 1, &["not awsmfa's", "awsmfa add dev"]);
    assert_eq!(stub.total_calls(), 0);
}

// A command that is not there ─────────────────────────────────────────────────

#[test]
fn missing_command_fails_before_any_mfa() {
    let stub = stub();
    let counter = "mfa-runs";
    let Some(env) = world(
        &stub,
        &format!("mfa_process = echo x >> {counter}; oathtool --totp -b {SEED}\n"),
    ) else {
        return;
    };
    let out = env.run(["exec", "dev", "--", "no-such-command-awsmfa"]);
    fails_with(
        &out,
        127,
        &["cannot run `no-such-command-awsmfa`: not found on PATH"],
    );
    assert_eq!(
        stub.total_calls(),
        0,
        "no STS call for a command that cannot run"
    );
    assert!(
        !env.work.join(counter).exists(),
        "no MFA code asked for a command that cannot run"
    );
}
