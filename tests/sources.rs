//! Where MFA codes and long-lived keys come from, besides the prompt and the
//! keyring: a YubiKey through `ykman`, 1Password through `op`, a command, and a
//! list of sources tried in order. `ykman` and `op` are the stand-ins in
//! tests/standins (they behave as their documentation says and log their argv
//! and the NAMES of their environment variables); codes are checked by the STS
//! stub, which knows the seed.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, UNIX_EPOCH};

use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";

struct World {
    env: Env,
    stub: StsStub,
    /// Known to the stub; stored with `add` only by tests that call `add_key`.
    key: Key,
    /// Where the stand-ins log their runs.
    log: PathBuf,
    /// PATH without the stand-ins' directory (and without any real ykman/op).
    base_path: String,
    bin: PathBuf,
}

/// A directory of the repo's stand-ins.
fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

/// The test process's PATH without directories that hold a real `ykman` or
/// `op`: a test decides which of them exist.
fn path_without_real_tools() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !is_executable(&d.join("ykman")) && !is_executable(&d.join("op")))
        .collect();
    std::env::join_paths(dirs)
        .expect("PATH entries")
        .to_string_lossy()
        .into_owned()
}

/// An Env on the STS stub (a user key and the dev MFA device, seed SEED) with
/// [profile dev] in ~/.aws/config, and `tools` (stand-ins) on PATH.
fn world(tools: &[&str]) -> Option<World> {
    if !keyutils_available() {
        return None;
    }
    require("oathtool (Debian package oathtool)", which("oathtool"))?;
    let stub = StsStub::start();
    let key = Key::new();
    stub.add_user(&key.id, &key.secret).add_mfa(SERIAL, SEED);
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url());
    let bin = env.root.join("bin");
    fs::create_dir_all(&bin).expect("create bin dir");
    for tool in tools {
        symlink(standins().join(tool), bin.join(tool)).expect("link stand-in");
    }
    let base_path = path_without_real_tools();
    env.set("PATH", format!("{}:{base_path}", bin.display()));
    let log = env.root.join("standins.log");
    env.set("STANDIN_LOG", &log);
    env.set("STANDIN_TOTP_SEED", SEED);
    env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n"
    ));
    Some(World {
        env,
        stub,
        key,
        log,
        base_path,
        bin,
    })
}

impl World {
    /// `awsmfa add dev --from-env` with the stub's key.
    fn add_key(&self) {
        let mut cmd = self.env.cmd(["add", "dev", "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", &self.key.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.secret);
        assert_ok(&self.env.run_cmd(cmd));
    }

    /// config.toml with `[profiles.dev]` holding `body`.
    fn profile(&self, body: &str) {
        self.env
            .write_awsmfa_config(&format!("[profiles.dev]\n{body}\n"));
    }

    /// Every run of the stand-in `tool` so far.
    fn runs(&self, tool: &str) -> Vec<Run> {
        runs(&self.log)
            .into_iter()
            .filter(|r| r.tool == tool)
            .collect()
    }

    fn exec(&self) -> Output {
        self.env
            .run(["exec", "dev", "--", "printenv", "AWS_ACCESS_KEY_ID"])
    }

    /// exec succeeded with the session the stub issued last.
    #[track_caller]
    fn assert_minted(&self, out: &Output) {
        self.stub.assert_printed_last_issued(out);
    }
}

/// One run of a stand-in, from its log.
#[derive(Debug, Default)]
struct Run {
    tool: String,
    pid: u32,
    args: Vec<String>,
    env: Vec<String>,
    stdin_tty: bool,
    stdout: Option<String>,
    ended: bool,
}

fn runs(log: &Path) -> Vec<Run> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut out: Vec<Run> = Vec::new();
    for line in text.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        if tag == "tool" {
            out.push(Run {
                tool: rest.to_string(),
                ..Run::default()
            });
            continue;
        }
        let Some(run) = out.last_mut() else { continue };
        match tag {
            "pid" => run.pid = rest.parse().unwrap_or(0),
            "arg" => run.args.push(rest.to_string()),
            "env" => run.env.push(rest.to_string()),
            "stdin" => run.stdin_tty = rest == "tty",
            "stdout" => run.stdout = Some(rest.to_string()),
            "end" => run.ended = true,
            _ => {}
        }
    }
    out
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(str::to_string)
        }
    })
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

/// `session:dev:FINGERPRINT`, from awsmfa's non-secret session metadata.
fn session_entry(env: &Env) -> String {
    let meta = fs::read_to_string(env.state_home.join("awsmfa/sessions/dev"))
        .expect("session metadata for dev");
    let fp = meta.split_whitespace().nth(1).expect("EXPIRY FINGERPRINT");
    format!("session:dev:{fp}")
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// --- ykman ----------------------------------------------------------------------

#[test]
fn ykman_account_defaults_to_the_mfa_serial() {
    let Some(w) = world(&["ykman"]) else { return };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);

    let out = w.exec();
    w.assert_minted(&out);

    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0].args,
        ["oath", "accounts", "code", "--single", SERIAL]
    );
    assert!(!runs[0].stdin_tty, "no terminal here: stdin is not one");
    let reqs = w.stub.requests();
    assert_eq!(reqs.len(), 1, "one GetSessionToken: {reqs:#?}");
    assert_eq!(reqs[0].action, "GetSessionToken");
    assert_eq!(reqs[0].access_key_id.as_deref(), Some(w.key.id.as_str()));
    assert_eq!(reqs[0].serial_number.as_deref(), Some(SERIAL));
    assert_eq!(reqs[0].token_code, runs[0].stdout, "the code ykman printed");
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    // Without a terminal, what ykman says reaches the person on stderr.
    assert!(
        out.stderr_str().contains("Touch your YubiKey..."),
        "{}",
        out.dump()
    );
}

#[test]
fn ykman_named_account_on_a_chosen_device() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile("mfa = \"ykman:AWS:jacob\"\nykman_device = \"123\"");
    // Two keys plugged in, and an account whose name contains the other's.
    w.env
        .set("STANDIN_YKMAN_SERIALS", "123 456")
        .set("STANDIN_YKMAN_ACCOUNTS", "AWS:jacob,AWS:jacob-admin");

    let out = w.exec();
    w.assert_minted(&out);
    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0].args,
        [
            "--device",
            "123",
            "oath",
            "accounts",
            "code",
            "--single",
            "AWS:jacob"
        ]
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    assert_eq!(w.stub.requests()[0].token_code, runs[0].stdout);
}

#[test]
fn ykman_touch_message_reaches_the_terminal() {
    let Some(w) = world(&["ykman"]) else { return };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);

    // As under credential_process: stdout and stderr are pipes an SDK owns,
    // only /dev/tty reaches the person.
    let mut pty = Pty::spawn(
        w.env.cmd(["exec", "dev", "--", "true"]),
        PtyOpts::tty_only(),
    );
    pty.expect_ok("Touch your YubiKey...", TIMEOUT);
    assert_eq!(pty.wait_code(TIMEOUT), 0, "{}", pty.stderr());
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(
        runs[0].stdin_tty,
        "ykman's stdin is the terminal (for a PIN)"
    );
}

#[test]
fn ykman_with_several_matching_accounts_asks_for_the_exact_one() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile(r#"mfa = "ykman:AWS""#);
    w.env
        .set("STANDIN_YKMAN_ACCOUNTS", "AWS:jacob,AWS:jacob-admin");

    let out = w.exec();
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(err.contains("Multiple matches"), "ykman's own words: {err}");
    assert!(
        err.contains("name the exact one") && err.contains("ykman:ISSUER:NAME"),
        "{err}"
    );
    assert_eq!(w.stub.total_calls(), 0, "no code, no STS call");
}

#[test]
fn ykman_without_a_key_says_plug_it_in() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);
    w.env.set("STANDIN_YKMAN_MODE", "nokey");

    let out = w.exec();
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(err.contains("No YubiKey detected!"), "{err}");
    assert!(err.contains("plug it in"), "{err}");
    assert_eq!(w.stub.total_calls(), 0);
}

#[test]
fn ykman_with_several_keys_and_no_device_points_at_ykman_device() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);
    w.env.set("STANDIN_YKMAN_SERIALS", "111 222");

    let out = w.exec();
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(err.contains("Multiple YubiKeys detected"), "{err}");
    assert!(
        err.contains("ykman_device"),
        "the fix is ykman_device in config.toml: {err}"
    );
    assert!(
        !err.contains("OATH accounts match"),
        "several keys are not several accounts: {err}"
    );
    assert_eq!(w.stub.total_calls(), 0);
}

#[test]
fn ykman_hang_is_cut_by_the_tool_timeout() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);
    w.env
        .set("STANDIN_YKMAN_MODE", "hang")
        .set("AWSMFA_TOOL_TIMEOUT", "2");

    let start = Instant::now();
    let out = w.exec();
    let took = start.elapsed();
    assert_code(&out, 1);
    assert!(
        took < Duration::from_secs(8),
        "a 2 s limit took {took:?}\n{}",
        out.dump()
    );
    let err = out.stderr_str();
    assert!(
        err.contains("ykman did not finish within 2s and was stopped"),
        "{err}"
    );
    assert_eq!(w.stub.total_calls(), 0);
    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(!runs[0].ended);
    assert!(
        wait_gone(runs[0].pid),
        "the hung ykman (pid {}) was left running",
        runs[0].pid
    );
}

/// Pids of processes whose argv is exactly `argv`.
fn pids_with_argv(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            (fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}

#[test]
fn a_hung_mfa_process_is_stopped_with_its_children() {
    let Some(mut w) = world(&[]) else { return };
    w.add_key();
    // `sh -c` runs the sleep as its own child; the argument makes it ours.
    let nap = format!(
        "600.{}",
        100_000 + u32::from_str_radix(&random_hex(2), 16).unwrap()
    );
    w.profile(&format!("mfa = \"process:sleep {nap}; echo 123456\""));
    w.env.set("AWSMFA_TOOL_TIMEOUT", "2");

    let start = Instant::now();
    let out = w.exec();
    let took = start.elapsed();
    assert_code(&out, 1);
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}\n{}",
        out.dump()
    );
    assert!(
        out.stderr_str()
            .contains("mfa_process for profile dev did not finish within 2s and was stopped"),
        "{}",
        out.dump()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = pids_with_argv(&["sleep", &nap]);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = pids_with_argv(&["sleep", &nap]);
    }
    for pid in &left {
        // SAFETY: our own leftover `sleep`, found by its unique argv.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert!(
        left.is_empty(),
        "the mfa_process's child outlived awsmfa: {left:?}"
    );
    assert_eq!(w.stub.total_calls(), 0);
}

// --- 1Password: MFA codes -----------------------------------------------------------

#[test]
fn op_gives_the_one_time_password_with_a_service_account() {
    let Some(mut w) = world(&["op"]) else { return };
    w.add_key();
    w.profile(r#"mfa = "op:Private/AWS""#);
    let token = format!("ops_{}", random_hex(16));
    w.env.set("OP_SERVICE_ACCOUNT_TOKEN", &token).set(
        "STANDIN_OP_ITEMS",
        format!("Private/AWS|one-time password|OTP|{SEED}"),
    );

    let out = w.exec();
    w.assert_minted(&out);
    let runs = w.runs("op");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0].args,
        ["item", "get", "AWS", "--vault", "Private", "--otp"]
    );
    assert!(
        runs[0].env.iter().any(|n| n == "OP_SERVICE_ACCOUNT_TOKEN"),
        "op must see OP_SERVICE_ACCOUNT_TOKEN: {:?}",
        runs[0].env
    );
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
    assert!(!out.stderr_str().contains(&token));

    // Without the token (and no desktop sign-in) op refuses, and awsmfa says
    // what would make it work.
    w.env.unset("OP_SERVICE_ACCOUNT_TOKEN");
    w.env.run_ok(["clear", "dev"]);
    as_if_a_step_passed(&w.env, &w.stub);
    let out = w.exec();
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(err.contains("not currently signed in"), "op's words: {err}");
    assert!(err.contains("OP_SERVICE_ACCOUNT_TOKEN"), "{err}");
    assert_eq!(w.stub.calls("GetSessionToken"), 1, "no second call");
}

#[test]
fn op_hang_is_cut_by_the_tool_timeout() {
    let Some(mut w) = world(&["op"]) else { return };
    w.add_key();
    w.profile(r#"mfa = "op:Private/AWS""#);
    w.env
        .set("STANDIN_OP_SIGNED_IN", "1")
        .set(
            "STANDIN_OP_ITEMS",
            format!("Private/AWS|one-time password|OTP|{SEED}"),
        )
        .set("STANDIN_OP_MODE", "hang")
        .set("AWSMFA_TOOL_TIMEOUT", "2");

    let start = Instant::now();
    let out = w.exec();
    let took = start.elapsed();
    assert_code(&out, 1);
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}\n{}",
        out.dump()
    );
    assert!(
        out.stderr_str()
            .contains("op (1Password) did not finish within 2s and was stopped"),
        "{}",
        out.dump()
    );
    assert_eq!(w.stub.total_calls(), 0);
    let runs = w.runs("op");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(wait_gone(runs[0].pid), "the hung op was left running");
}

// --- 1Password: long-lived keys ------------------------------------------------------

/// `Private/ITEM` as an API Credential item holding `key`.
fn op_item(item: &str, key: &Key) -> String {
    format!(
        "Private/{item}|username|STRING|{}\nPrivate/{item}|credential|CONCEALED|{}",
        key.id, key.secret
    )
}

#[test]
fn op_keys_mint_without_add_and_are_stored_nowhere() {
    let Some(mut w) = world(&["op"]) else { return };
    let op_key = Key::new();
    w.stub.add_user(&op_key.id, &op_key.secret);
    w.profile(&format!(
        "keys = \"op:Private/AWS jacob\"\nmfa = \"process:oathtool --totp -b {SEED}\""
    ));
    let token = format!("ops_{}", random_hex(16));
    w.env
        .set("OP_SERVICE_ACCOUNT_TOKEN", &token)
        .set("STANDIN_OP_ITEMS", op_item("AWS jacob", &op_key));

    let out = w
        .env
        .run(["-v", "exec", "dev", "--", "printenv", "AWS_ACCESS_KEY_ID"]);
    w.assert_minted(&out);
    let reqs = w.stub.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(
        reqs[0].access_key_id.as_deref(),
        Some(op_key.id.as_str()),
        "signed with the key from 1Password"
    );
    assert_eq!(w.stub.successes("GetSessionToken"), 1);

    let runs = w.runs("op");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let args = &runs[0].args;
    assert_eq!(
        args[..5],
        ["item", "get", "AWS jacob", "--vault", "Private"]
    );
    assert!(args.iter().any(|a| a == "--reveal"), "{args:?}");
    assert_eq!(
        flag_value(args, "--format").as_deref(),
        Some("json"),
        "{args:?}"
    );
    assert_eq!(
        flag_value(args, "--fields").as_deref(),
        Some("label=username,label=credential"),
        "{args:?}"
    );

    // Nowhere: not in the keyring (the session is there, so the look-up
    // works), not on disk, not in messages, not in any argv.
    assert!(
        keyutils_lookup(&w.env, &session_entry(&w.env)).is_some(),
        "the session should be cached in keyutils"
    );
    assert_eq!(keyutils_lookup(&w.env, "key:dev"), None, "no stored key");
    w.env
        .assert_not_on_disk(&[&op_key.id, &op_key.secret, &token]);
    let said = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(
        !said.contains(&op_key.secret) && !said.contains(&token),
        "{said}"
    );
    let log = fs::read_to_string(&w.log).unwrap_or_default();
    assert!(
        !log.contains(&op_key.secret),
        "a secret in a tool's argv: {log}"
    );
}

#[test]
fn op_keys_use_custom_key_fields() {
    let Some(mut w) = world(&["op"]) else { return };
    let op_key = Key::new();
    w.stub.add_user(&op_key.id, &op_key.secret);
    w.profile(&format!(
        "keys = \"op:Private/AWS\"\nkey_fields = [\"access key id\", \"secret access key\"]\n\
         mfa = \"process:oathtool --totp -b {SEED}\""
    ));
    // The default labels hold a key STS does not know: only the named ones work.
    let decoy = Key::new();
    w.env.set("STANDIN_OP_SIGNED_IN", "1").set(
        "STANDIN_OP_ITEMS",
        format!(
            "{}\nPrivate/AWS|access key id|STRING|{}\nPrivate/AWS|secret access key|CONCEALED|{}",
            op_item("AWS", &decoy),
            op_key.id,
            op_key.secret
        ),
    );

    let out = w.exec();
    w.assert_minted(&out);
    assert_eq!(
        w.stub.requests()[0].access_key_id.as_deref(),
        Some(op_key.id.as_str())
    );
    let runs = w.runs("op");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        flag_value(&runs[0].args, "--fields").as_deref(),
        Some("label=access key id,label=secret access key")
    );
}

#[test]
fn op_keys_another_item_retires_the_cached_session() {
    let Some(mut w) = world(&["op"]) else { return };
    let (first, second) = (Key::new(), Key::new());
    w.stub
        .add_user(&first.id, &first.secret)
        .add_user(&second.id, &second.secret);
    let profile = |item: &str| {
        format!("keys = \"op:Private/{item}\"\nmfa = \"process:oathtool --totp -b {SEED}\"")
    };
    w.env.set("STANDIN_OP_SIGNED_IN", "1").set(
        "STANDIN_OP_ITEMS",
        format!(
            "{}\n{}",
            op_item("AWS jacob", &first),
            op_item("AWS jacob 2", &second)
        ),
    );

    w.profile(&profile("AWS jacob"));
    w.assert_minted(&w.exec());
    w.assert_minted(&w.exec());
    assert_eq!(
        w.stub.calls("GetSessionToken"),
        1,
        "the second run is cached"
    );
    assert_eq!(w.runs("op").len(), 1, "a cached session needs no key");

    w.profile(&profile("AWS jacob 2"));
    as_if_a_step_passed(&w.env, &w.stub);
    w.assert_minted(&w.exec());
    let reqs = w.stub.requests();
    assert_eq!(reqs.len(), 2, "another item, another session: {reqs:#?}");
    assert_eq!(reqs[0].access_key_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(reqs[1].access_key_id.as_deref(), Some(second.id.as_str()));
    let runs = w.runs("op");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].args[2], "AWS jacob 2");
}

// --- lists of sources ------------------------------------------------------------

/// `process:` that counts its runs in `counter`, then prints the code.
fn counting_process(counter: &Path) -> String {
    format!(
        "process:echo run >> '{}'; oathtool --totp -b {SEED}",
        counter.display()
    )
}

fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn without_ykman_the_list_falls_back_to_the_prompt() {
    let Some(w) = world(&[]) else { return };
    assert!(which_in(&w.env, "ykman").is_none(), "no ykman on this PATH");
    w.add_key();
    w.profile(r#"mfa = ["ykman", "prompt"]"#);

    let mut pty = Pty::spawn(
        w.env.cmd(["exec", "dev", "--", "true"]),
        PtyOpts::tty_only(),
    );
    pty.expect_ok(&format!("MFA code for {SERIAL} (dev): "), TIMEOUT);
    pty.send_line(&totp_now(SEED));
    assert_eq!(pty.wait_code(TIMEOUT), 0, "{}", pty.stderr());
    let err = pty.stderr();
    assert!(
        err.contains("ykman is not installed"),
        "why it moved on: {err}"
    );
    assert!(err.contains("MFA code for dev from prompt"), "{err}");
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
}

/// `name` on the Env's PATH.
fn which_in(env: &Env, name: &str) -> Option<PathBuf> {
    let path = env.var("PATH")?;
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[test]
fn without_a_yubikey_the_list_falls_back_to_the_process() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    let counter = w.env.root.join("process-runs");
    w.profile(&format!(
        "mfa = [\"ykman\", \"{}\"]",
        counting_process(&counter)
    ));
    w.env.set("STANDIN_YKMAN_MODE", "nokey");

    let out = w.exec();
    w.assert_minted(&out);
    let err = out.stderr_str();
    assert!(err.contains("MFA code for dev from process"), "{err}");
    assert!(err.contains("plug it in"), "why it moved on: {err}");
    assert_eq!(count_lines(&counter), 1);
    assert_eq!(w.runs("ykman").len(), 1);
    assert_eq!(w.stub.successes("GetSessionToken"), 1);
}

#[test]
fn a_working_ykman_keeps_the_next_source_from_running() {
    let Some(w) = world(&["ykman"]) else { return };
    w.add_key();
    let counter = w.env.root.join("process-runs");
    w.profile(&format!(
        "mfa = [\"ykman\", \"{}\"]",
        counting_process(&counter)
    ));

    let out = w.exec();
    w.assert_minted(&out);
    assert!(
        out.stderr_str().contains("MFA code for dev from ykman"),
        "{}",
        out.dump()
    );
    assert_eq!(count_lines(&counter), 0, "the process never ran");
    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 1);
    assert_eq!(w.stub.requests()[0].token_code, runs[0].stdout);
}

#[test]
fn a_rejected_ykman_code_is_not_passed_to_the_next_source() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    let counter = w.env.root.join("process-runs");
    w.profile(&format!(
        "mfa = [\"ykman\", \"{}\"]",
        counting_process(&counter)
    ));
    // A YubiKey whose account holds another seed: codes STS rejects.
    w.env.set("STANDIN_YKMAN_MODE", "wrong");
    // Each try after the first waits for the next 30 s step: ykman would give
    // the rejected code again within one.
    w.env.set_timeout(Duration::from_secs(100));

    let out = w.exec();
    assert_code(&out, 1);
    assert!(
        out.stderr_str().contains("rejected the MFA code"),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.stderr_str()
            .matches("s for a fresh code from ykman")
            .count(),
        2,
        "{}",
        out.dump()
    );
    let runs = w.runs("ykman");
    let reqs = w.stub.requests();
    assert_eq!(reqs.len(), 3, "three tries: {reqs:#?}");
    assert_eq!(runs.len(), 3, "each try asks ykman again: {runs:#?}");
    for (req, run) in reqs.iter().zip(&runs) {
        assert!(run.stdout.is_some());
        assert_eq!(req.token_code, run.stdout, "STS saw ykman's code");
        assert!(req.error.is_some(), "{req:#?}");
    }
    let steps: Vec<u64> = reqs
        .iter()
        .map(|r| r.at.duration_since(UNIX_EPOCH).unwrap().as_secs() / 30)
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    assert_eq!(count_lines(&counter), 0, "the process never ran");
}

// --- doctor ----------------------------------------------------------------------

#[test]
fn doctor_checks_ykman_without_asking_for_a_code() {
    let Some(mut w) = world(&["ykman"]) else {
        return;
    };
    w.add_key();
    w.profile(r#"mfa = "ykman""#);

    let out = w.env.run(["doctor"]);
    assert_ok(&out);
    assert!(
        out.stdout_str()
            .contains("ok    profile dev: YubiKey present (12345678)"),
        "{}",
        out.dump()
    );

    w.env.set("STANDIN_YKMAN_MODE", "nokey");
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    assert!(
        out.stdout_str()
            .contains("FAIL  profile dev: no YubiKey plugged in"),
        "{}",
        out.dump()
    );

    w.env.unset("STANDIN_YKMAN_MODE");
    w.env.set("STANDIN_YKMAN_SERIALS", "123");
    w.profile("mfa = \"ykman\"\nykman_device = \"999\"");
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    assert!(
        out.stdout_str()
            .contains("FAIL  profile dev: YubiKey 999 is not plugged in (found 123)"),
        "{}",
        out.dump()
    );

    // Every ykman run was `list --serials`: doctor never asks for a code
    // (which could wait for a touch) and never mints.
    let runs = w.runs("ykman");
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(
        runs.iter().all(|r| r.args == ["list", "--serials"]),
        "{runs:#?}"
    );
    assert_eq!(w.stub.total_calls(), 0);

    w.env.set("PATH", &w.base_path);
    assert!(which_in(&w.env, "ykman").is_none());
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    assert!(
        out.stdout_str()
            .contains("FAIL  profile dev: ykman is not installed"),
        "{}",
        out.dump()
    );
    assert!(w.bin.join("ykman").exists());
}

#[test]
fn doctor_warns_about_a_source_the_next_in_the_list_stands_in_for() {
    let Some(w) = world(&[]) else { return };
    w.add_key();
    w.profile(&format!(
        "mfa = [\"ykman\", \"process:oathtool --totp -b {SEED}\"]"
    ));

    // Minting works without ykman: doctor must not call the setup broken.
    w.assert_minted(&w.exec());
    let out = w.env.run(["doctor"]);
    assert_ok(&out);
    let said = out.stdout_str();
    assert!(
        said.contains("warn  profile dev: ykman is not installed"),
        "{said}"
    );
    assert!(
        said.contains("the next MFA source in the list is used"),
        "{said}"
    );
    assert!(
        said.contains("ok    profile dev: mfa_process `oathtool` found"),
        "{said}"
    );

    // The last source has nothing behind it: its problem is a failure.
    w.profile("mfa = [\"ykman\", \"process:no-such-code-tool --totp\"]");
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    let said = out.stdout_str();
    assert!(
        said.contains("warn  profile dev: ykman is not installed"),
        "{said}"
    );
    assert!(
        said.contains("FAIL  profile dev: mfa_process `no-such-code-tool` is not on PATH"),
        "{said}"
    );
}

#[test]
fn doctor_checks_op_is_installed_without_running_it() {
    let Some(mut w) = world(&["op"]) else { return };
    w.profile("keys = \"op:Private/AWS jacob\"\nmfa = \"op:Private/AWS\"");
    w.env.set("STANDIN_OP_SIGNED_IN", "1");

    let out = w.env.run(["doctor"]);
    assert_ok(&out);
    let said = out.stdout_str();
    assert!(
        said.contains("ok    profile dev: 1Password CLI found for keys from op:Private/AWS jacob"),
        "{said}"
    );
    assert!(
        said.contains("ok    profile dev: 1Password CLI found for one-time codes from Private/AWS"),
        "{said}"
    );
    // Asking op anything may pop up an unlock dialog: doctor only looks for it.
    assert!(w.runs("op").is_empty(), "{:#?}", w.runs("op"));

    w.env.set("PATH", &w.base_path);
    let out = w.env.run(["doctor"]);
    assert_code(&out, 1);
    let said = out.stdout_str();
    assert!(
        said.contains("FAIL  profile dev: keys from op:Private/AWS jacob need the 1Password CLI `op`, which is not installed"),
        "{said}"
    );
    assert!(
        said.contains("FAIL  profile dev: one-time codes from Private/AWS need the 1Password CLI `op`, which is not installed"),
        "{said}"
    );
    assert_eq!(w.stub.total_calls(), 0);
}
