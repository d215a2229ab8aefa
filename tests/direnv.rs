//! `use awsmfa` in direnv: the library from `awsmfa direnv` installed in the
//! Env's `$XDG_CONFIG_HOME/direnv/lib`, an `.envrc` per directory, and real
//! direnv + bash. The shims `awsmfa shims` writes make `tofu`/`terragrunt` run
//! under `awsmfa exec` from any process that loaded the directory's
//! environment, while that environment itself holds only the profile name.
//!
//! direnv's allow-list lives under the Env's XDG_DATA_HOME, its config (and so
//! the library) under XDG_CONFIG_HOME: nothing of the developer's is read.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const KEY_PROXMOX: &str = "AKIADIRENVTESTPROX01";
const SECRET_PROXMOX: &str = "direnvsecretproxmox/0123456789abcdefGHIJKLM";
const KEY_RUNS_ON: &str = "AKIADIRENVTESTRUNS01";
const SECRET_RUNS_ON: &str = "direnvsecretrunson/0123456789abcdefGHIJKLMN";
/// A nested terragrunt → tofu must finish well within this (a shim loop would
/// not finish at all).
const NESTED_BUDGET: Duration = Duration::from_secs(20);

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

struct World {
    env: Env,
    stub: StsStub,
    direnv: PathBuf,
    bash: PathBuf,
    /// A mapped root (`tofu-proxmox`) with `.envrc`: `use awsmfa`.
    proxmox: PathBuf,
}

impl World {
    fn new() -> Option<World> {
        if !keyutils_available() {
            return None;
        }
        require("oathtool (Debian package oathtool)", which("oathtool"))?;
        let direnv = require("direnv (Debian package direnv)", which("direnv"))?;
        let bash = require("bash (Debian package bash)", which("bash"))?;
        let stub = StsStub::start();
        stub.add_user(KEY_PROXMOX, SECRET_PROXMOX)
            .add_user(KEY_RUNS_ON, SECRET_RUNS_ON)
            .add_mfa(&mfa_device("tf-proxmox"), SEED)
            .add_mfa(&mfa_device("tf-runs-on"), SEED);
        let mut env = Env::new();
        // The default ~/.aws/config: the loaded environment has no AWS_* at all.
        env.unset("AWS_CONFIG_FILE")
            .unset("AWS_SHARED_CREDENTIALS_FILE")
            .prepend_path(
                support::env::awsmfa_bin()
                    .parent()
                    .expect("binary directory"),
            )
            .prepend_path(standins());
        let profile = |name: &str| {
            format!(
                "[profile {name}]\nregion = eu-central-1\nmfa_serial = {}\n\
                 mfa_process = oathtool --totp -b {SEED}\nsession_ttl = 45m\n\
                 endpoint_url = {}\n\n",
                mfa_device(name),
                stub.url()
            )
        };
        env.write_aws_config(&(profile("tf-proxmox") + &profile("tf-runs-on")));
        env.write_awsmfa_config(
            "[roots.tofu-proxmox]\nprofile = \"tf-proxmox\"\n\n\
             [roots.tofu-runs-on]\nprofile = \"tf-runs-on\"\n",
        );
        for (profile, key, secret) in [
            ("tf-proxmox", KEY_PROXMOX, SECRET_PROXMOX),
            ("tf-runs-on", KEY_RUNS_ON, SECRET_RUNS_ON),
        ] {
            let mut cmd = env.cmd(["add", profile, "--from-env"]);
            cmd.env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            assert_ok(&env.run_cmd(cmd));
        }
        // The library, installed the way the README says.
        let lib = env.run_ok(["direnv"]).stdout_str();
        env.write_file(env.config_home.join("direnv/lib/awsmfa.sh"), &lib);
        let w = World {
            proxmox: env.work.join("tofu-proxmox"),
            env,
            stub,
            direnv,
            bash,
        };
        w.envrc(&w.proxmox, "use awsmfa\n");
        // direnv's allow-list is the Env's own.
        let allowed = fs::read_dir(w.env.data_home.join("direnv/allow"))
            .expect("direnv allow-list under XDG_DATA_HOME")
            .count();
        assert_eq!(allowed, 1);
        Some(w)
    }

    /// Writes `dir/.envrc` and allows it.
    fn envrc(&self, dir: &Path, text: &str) {
        self.env.write_file(dir.join(".envrc"), text);
        let mut c = self.env.command(&self.direnv);
        c.arg("allow").arg(dir);
        assert_ok(&self.env.run_cmd(c));
    }

    /// `bash -c SCRIPT` in `dir` with this world's environment.
    fn bash(&self, dir: &Path, script: &str) -> Output {
        let mut c = self.env.command(&self.bash);
        c.args(["-c", script]).current_dir(dir);
        self.env.run_cmd(c)
    }

    /// `bash -c 'eval "$(direnv export bash)"; SCRIPT'` in `dir`: what any
    /// non-interactive process that loads the directory's environment sees.
    fn loaded(&self, dir: &Path, script: &str) -> Output {
        self.bash(dir, &format!("eval \"$(direnv export bash)\"\n{script}"))
    }

    fn shims_dir(&self) -> PathBuf {
        self.env.state_home.join("awsmfa/shims")
    }

    fn get_session_tokens(&self) -> usize {
        self.stub.calls("GetSessionToken")
    }

    fn assert_no_secret_on_disk(&self) {
        let mut needles = self.stub.issued_secrets();
        needles.push(SECRET_PROXMOX.into());
        needles.push(SECRET_RUNS_ON.into());
        assert!(needles.len() > 2, "nothing was minted to look for");
        self.env
            .assert_not_on_disk(&needles.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// `who: AWS_ACCESS_KEY_ID=… AWSMFA_PROFILE=…` from a stand-in's output.
#[track_caller]
fn seen(out: &str, who: &str) -> (String, String) {
    let prefix = format!("{who}: AWS_ACCESS_KEY_ID=");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {who} line in {out:?}"));
    let (key, profile) = line[prefix.len()..]
        .split_once(" AWSMFA_PROFILE=")
        .unwrap_or_else(|| panic!("malformed {line:?}"));
    (key.to_string(), profile.to_string())
}

/// The session key `who` saw, checked to be a session the stub issued for
/// `profile`'s long-lived key.
#[track_caller]
fn session_of(w: &World, out: &Output, who: &str, profile: &str, long_lived: &str) -> String {
    assert_ok(out);
    let text = out.stdout_str();
    let (key, seen_profile) = seen(&text, who);
    assert_eq!(seen_profile, profile, "{}", out.dump());
    let issued = w
        .stub
        .issued()
        .into_iter()
        .find(|i| i.access_key_id == key)
        .unwrap_or_else(|| {
            panic!(
                "{who} saw {key}, which the stub did not issue\n{}",
                out.dump()
            )
        });
    assert_eq!(issued.caller_key_id, long_lived);
    key
}

#[test]
fn direnv_exec_runs_tofu_under_awsmfa() {
    let Some(w) = World::new() else { return };
    let mut c = w.env.command(&w.direnv);
    c.arg("exec")
        .arg(&w.proxmox)
        .args(["bash", "-c", "command -v tofu; tofu plan"])
        .current_dir(&w.proxmox);
    let out = w.env.run_cmd(c);
    let key = session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX);
    let shim = w.shims_dir().join("tofu");
    assert_eq!(
        out.stdout_str().lines().next(),
        Some(shim.to_str().unwrap()),
        "tofu is not the shim\n{}",
        out.dump()
    );
    assert_eq!(w.get_session_tokens(), 1);

    // A plain non-interactive bash that loads the directory's environment.
    let out = w.loaded(&w.proxmox, "tofu plan");
    assert_eq!(session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX), key);
    assert_eq!(
        w.get_session_tokens(),
        1,
        "the cached session was not reused"
    );

    // The shims: one per wrapped command, executable, no secret in them.
    for name in ["terragrunt", "tofu", "terraform"] {
        let path = w.shims_dir().join(name);
        assert!(is_executable(&path), "{} missing", path.display());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(text.contains(&format!(" shim {name} \"$@\"")), "{text}");
    }
    w.assert_no_secret_on_disk();
}

#[test]
fn loaded_environment_holds_the_profile_name_only() {
    let Some(w) = World::new() else { return };
    // Mint a session first, so there is something that could leak.
    let out = w.loaded(&w.proxmox, "terragrunt plan");
    session_of(&w, &out, "terragrunt", "tf-proxmox", KEY_PROXMOX);

    let out = w.loaded(&w.proxmox, "env; echo ---; declare -p");
    assert_ok(&out);
    let text = out.stdout_str();
    let (env_part, declared) = text.split_once("---\n").unwrap();
    let vars: Vec<&str> = env_part.lines().collect();
    assert!(vars.contains(&"AWSMFA_DIRENV_PROFILE=tf-proxmox"), "{text}");
    let path = vars
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .expect("PATH");
    assert_eq!(
        path.split(':').next(),
        w.shims_dir().to_str(),
        "the shims are not first on PATH"
    );
    let aws: Vec<&&str> = vars.iter().filter(|v| v.starts_with("AWS_")).collect();
    assert!(aws.is_empty(), "AWS_* in the loaded environment: {aws:?}");
    assert!(
        !vars.iter().any(|v| v.starts_with("AWSMFA_PROFILE=")),
        "AWSMFA_PROFILE marks an awsmfa child, not a direnv shell: {text}"
    );
    for secret in w.stub.issued_secrets() {
        assert!(
            !text.contains(&secret),
            "a secret is in the loaded environment"
        );
    }
    for issued in w.stub.issued() {
        assert!(!declared.contains(&issued.access_key_id), "{declared}");
    }
    // `awsmfa prompt` reads the session metadata, for the same root.
    let out = w.loaded(&w.proxmox, "awsmfa prompt --format '{profile}'");
    assert_ok(&out);
    assert_eq!(out.stdout_str(), "tf-proxmox\n");
    w.assert_no_secret_on_disk();
}

#[test]
fn nested_terragrunt_tofu_through_shims_uses_one_session() {
    let Some(w) = World::new() else { return };
    let started = Instant::now();
    let out = w.loaded(
        &w.proxmox,
        "command -v terragrunt; command -v tofu; terragrunt plan -out=tfplan",
    );
    let elapsed = started.elapsed();
    let tg = session_of(&w, &out, "terragrunt", "tf-proxmox", KEY_PROXMOX);
    let tofu = session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX);
    assert_eq!(tofu, tg, "tofu got a second session\n{}", out.dump());
    assert_eq!(w.get_session_tokens(), 1);
    assert!(
        elapsed < NESTED_BUDGET,
        "terragrunt → tofu took {elapsed:?}"
    );
    let text = out.stdout_str();
    let mut lines = text.lines();
    // Both names resolve to the shims, so the tofu terragrunt runs is the shim too
    // (awsmfa exec keeps PATH).
    assert_eq!(lines.next(), w.shims_dir().join("terragrunt").to_str());
    assert_eq!(lines.next(), w.shims_dir().join("tofu").to_str());
    assert!(text.contains("tofu: argv: plan -out=tfplan\n"), "{text}");
    assert!(text.contains("terragrunt: tofu exited 0\n"), "{text}");

    // Inside an awsmfa child, a shim runs the real command as it is.
    let out = w.loaded(
        &w.proxmox,
        "awsmfa exec -- sh -c 'echo \"outer=$AWS_ACCESS_KEY_ID\"; tofu plan'",
    );
    let inner = session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX);
    assert!(
        out.stdout_str().contains(&format!("outer={inner}\n")),
        "{}",
        out.dump()
    );
    assert_eq!(w.get_session_tokens(), 1);

    // A stray AWSMFA_PROFILE without credentials is not a session: the shim
    // runs the command under awsmfa exec.
    let out = w.loaded(&w.proxmox, "AWSMFA_PROFILE=tf-proxmox tofu plan");
    assert_eq!(session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX), tg);
    w.assert_no_secret_on_disk();
}

#[test]
fn use_awsmfa_with_a_profile_name() {
    let Some(w) = World::new() else { return };
    // An unmapped directory naming its profile.
    let other = w.env.work.join("scratch");
    w.envrc(&other, "use awsmfa tf-runs-on\n");
    let out = w.loaded(
        &other,
        "echo \"profile=$AWSMFA_DIRENV_PROFILE\"; terragrunt plan",
    );
    assert!(
        out.stdout_str().starts_with("profile=tf-runs-on\n"),
        "{}",
        out.dump()
    );
    let tg = session_of(&w, &out, "terragrunt", "tf-runs-on", KEY_RUNS_ON);
    assert_eq!(session_of(&w, &out, "tofu", "tf-runs-on", KEY_RUNS_ON), tg);
    assert_eq!(w.get_session_tokens(), 1);
    // The prompt names it too, though no root is mapped here.
    let out = w.loaded(&other, "awsmfa prompt --format '{profile}'");
    assert_ok(&out);
    assert_eq!(out.stdout_str(), "tf-runs-on\n");

    // A name overrides the mapped root's profile.
    let sub = w.proxmox.join("live");
    w.envrc(&sub, "use awsmfa tf-runs-on\n");
    let out = w.loaded(&sub, "tofu plan");
    assert_eq!(session_of(&w, &out, "tofu", "tf-runs-on", KEY_RUNS_ON), tg);
    // And the mapped root itself still gets its own.
    let out = w.loaded(&w.proxmox, "tofu plan");
    session_of(&w, &out, "tofu", "tf-proxmox", KEY_PROXMOX);
    assert_eq!(w.get_session_tokens(), 2);
    w.assert_no_secret_on_disk();
}

#[test]
fn use_awsmfa_in_an_unmapped_directory_says_why() {
    let Some(w) = World::new() else { return };
    let dir = w.env.work.join("not-a-root");
    w.envrc(&dir, "use awsmfa\n");
    let out = w.loaded(
        &dir,
        "echo \"profile=${AWSMFA_DIRENV_PROFILE-unset}\"; echo \"PATH=$PATH\"; tofu plan",
    );
    let err = out.stderr_str();
    assert!(
        err.contains("`use awsmfa` without a profile needs a mapped root"),
        "{}",
        out.dump()
    );
    assert!(
        err.contains(dir.to_str().unwrap()),
        "the message does not name the directory\n{err}"
    );
    assert!(err.contains("use awsmfa PROFILE"), "{err}");
    let text = out.stdout_str();
    assert!(text.starts_with("profile=unset\n"), "{}", out.dump());
    assert!(!text.contains(w.shims_dir().to_str().unwrap()), "{text}");
    // Nothing is wrapped: the stand-in runs without credentials.
    assert_eq!(seen(&text, "tofu").0, "none", "{text}");
    assert_eq!(w.get_session_tokens(), 0);
}

/// The everyday flow: an interactive bash with direnv's hook: `cd` into the
/// root puts the shims on PATH, `cd ..` removes them. With awsmfa's own hook as
/// well, the wrapper function runs the shim inside `awsmfa exec`, which goes
/// straight to the real command: still one session.
fn interactive_bash(with_awsmfa_hook: bool) {
    let Some(w) = World::new() else { return };
    let awsmfa_hook = if with_awsmfa_hook {
        "eval \"$(awsmfa init bash)\"\n"
    } else {
        ""
    };
    w.env.write_file(
        w.env.home.join(".bashrc"),
        &format!(
            "PS1='<<P:${{AWSMFA_DIRENV_PROFILE-}}|${{awsmfa_prompt-}}:P>> '\n{awsmfa_hook}\
             eval \"$(direnv hook bash)\"\n"
        ),
    );
    let mut env_cmd = w.env.command(&w.bash);
    env_cmd.arg("-i").env("TERM", "xterm");
    let pty = Pty::spawn(
        env_cmd,
        PtyOpts {
            cols: 200,
            rows: 50,
            ..PtyOpts::default()
        },
    );
    pty.expect_ok(":P>>", TIMEOUT);
    let out = w.env.root.join("out");
    let mut n = 0;
    // Runs `line` (output to a file); returns the output and the next prompt.
    let mut run = |line: &str| -> (String, String) {
        n += 1;
        let file = out.with_extension(n.to_string());
        pty.send_line(&format!(
            "{{ {line}; }} >'{}' 2>&1; printf '%s-%s\\n' SYNC {n}",
            file.display()
        ));
        pty.expect_ok(&format!("SYNC-{n}\r\n"), TIMEOUT);
        let prompt = pty.expect_ok(":P>>", TIMEOUT);
        let start = prompt.rfind("<<P:").expect("prompt");
        (
            fs::read_to_string(&file).unwrap(),
            prompt[start + 4..prompt.len() - 4].to_string(),
        )
    };
    let (_, prompt) = run(&format!("cd '{}'", w.proxmox.display()));
    let expected = if with_awsmfa_hook {
        "tf-proxmox|tf-proxmox ·"
    } else {
        "tf-proxmox|"
    };
    assert_eq!(prompt, expected);
    let (t, _) = run("type -P tofu; type -t tofu");
    let kind = if with_awsmfa_hook { "function" } else { "file" };
    assert_eq!(
        t,
        format!("{}\n{kind}\n", w.shims_dir().join("tofu").display())
    );
    let (t, _) = run("terragrunt plan");
    let key = seen(&t, "terragrunt").0;
    assert!(key.starts_with("ASIA"), "{t}");
    assert_eq!(seen(&t, "tofu"), (key.clone(), "tf-proxmox".into()), "{t}");
    let (t, _) = run("tofu plan");
    assert_eq!(seen(&t, "tofu"), (key, "tf-proxmox".into()), "{t}");
    assert_eq!(w.get_session_tokens(), 1);
    let (n_aws, _) = run("env | grep -c '^AWS_'");
    assert_eq!(n_aws.trim(), "0");
    let (_, prompt) = run("cd ..");
    assert_eq!(prompt, "|");
    let (t, _) = run("type -P tofu; type -t tofu");
    assert_eq!(t, format!("{}\nfile\n", standins().join("tofu").display()));
    let (t, _) = run("tofu plan");
    assert_eq!(seen(&t, "tofu").0, "none", "{t}");
    w.assert_no_secret_on_disk();
}

#[test]
fn interactive_bash_with_the_direnv_hook() {
    interactive_bash(false);
}

#[test]
fn interactive_bash_with_direnv_and_awsmfa_hooks() {
    interactive_bash(true);
}
