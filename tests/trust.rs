//! The trust boundary around a repository's `.awsmfa.toml`, from the command
//! line: `allow` / `deny` and what each command does before and after; files
//! that are not files (a FIFO, a link to /dev/zero, too large); files of other
//! users and in directories anyone can write; where the search for root files
//! stops; names that are not names; and `COMPLETE` in the environment. The same
//! boundary through real shells is in shells.rs, through direnv in
//! hostile_names.rs.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const KEY: &str = "AKIATRUSTTESTKEY0001";
const SECRET: &str = "trustlonglivedsecret/0123456789abcdefGHIJ";
/// A uid that is not ours (nor root's): `nobody`.
const OTHER_UID: u32 = 65534;

struct World {
    env: Env,
    stub: StsStub,
    mfa: CountingMfa,
}

impl World {
    fn new() -> Option<World> {
        let (stub, env) = stub_and_env(KEY, SECRET, &mfa_device("dev"), SEED)?;
        stub.add_mfa(&mfa_device("prod"), SEED);
        let mfa = env.counting_mfa(SEED);
        let profile = |name: &str| {
            format!(
                "[profile {name}]\nregion = us-east-1\nmfa_serial = {}\nmfa_process = {}\n\n",
                mfa_device(name),
                mfa.script.display()
            )
        };
        env.write_aws_config(&(profile("dev") + &profile("prod")));
        for name in ["dev", "prod"] {
            let mut cmd = env.cmd(["add", name, "--from-env"]);
            cmd.env("AWS_ACCESS_KEY_ID", KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET);
            assert_ok(&env.run_cmd(cmd));
        }
        Some(World { env, stub, mfa })
    }

    fn mfa_runs(&self) -> usize {
        self.mfa.runs()
    }

    /// A directory (created) with a root file of `text`.
    fn repo(&self, dir: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(dir).expect("create repo");
        let file = dir.join(".awsmfa.toml");
        fs::write(&file, text).expect("write root file");
        file
    }

    fn run_in(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let mut cmd = self.env.cmd(args);
        cmd.current_dir(dir);
        self.env.run_cmd(cmd)
    }

    fn status(&self, dir: &Path) -> Value {
        let out = self.run_in(dir, &["status", "--json"]);
        assert_ok(&out);
        serde_json::from_str(&out.stdout_str()).expect("status --json is JSON")
    }

    /// The profile `exec` without a profile picks in `dir` (from the child's
    /// AWSMFA_PROFILE), or its error.
    fn exec_profile(&self, dir: &Path) -> Result<String, String> {
        let out = self.run_in(
            dir,
            &["exec", "--no-secrets", "--", "printenv", "AWSMFA_PROFILE"],
        );
        if out.status.success() {
            Ok(out.stdout_str().trim().to_string())
        } else {
            Err(out.stderr_str())
        }
    }

    fn hook(&self, dir: &Path, state: &str) -> std::process::Output {
        let mut cmd = self.env.cmd(["hook-env", "bash"]);
        cmd.current_dir(dir).env("__AWSMFA_STATE", state);
        self.env.run_cmd(cmd)
    }
}

/// `__awsmfa_state='…'` from hook-env's output.
fn state_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("__awsmfa_state='"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no state in {out:?}"))
        .to_string()
}

// --- allow, deny, change ------------------------------------------------------------

/// Issue 8, case 2: until `allow`, a repository's root file maps nothing —
/// `exec` refuses before any MFA, status says why — and `allow` shows what it
/// approves. A change needs a new allow; `deny` takes it back.
#[test]
fn a_root_file_counts_only_once_allowed_and_unchanged() {
    let Some(w) = World::new() else { return };
    let repo = w.env.home.join("src/infra");
    let file = w.repo(&repo, "profile = \"prod\"\ndoppler = \"infra/prd\"\n");

    let err = w.exec_profile(&repo).expect_err("exec must refuse");
    assert!(
        err.contains("~/src/infra/.awsmfa.toml is not allowed; review it, then run awsmfa allow"),
        "{err}"
    );
    assert_eq!(w.mfa_runs(), 0, "refused after an MFA code");
    assert_eq!(w.stub.calls("GetSessionToken"), 0);
    let status = w.status(&repo);
    assert!(status["profile"].is_null(), "{status}");
    assert_eq!(status["root_files"][0]["state"], "not_allowed", "{status}");
    let text = w.run_in(&repo, &["status"]).stdout_str();
    assert!(
        text.contains("root file  ~/src/infra/.awsmfa.toml is not allowed"),
        "{text}"
    );
    let doctor = w.run_in(&repo, &["doctor"]).stdout_str();
    assert!(
        doctor.contains("warn  ~/src/infra/.awsmfa.toml is not allowed"),
        "{doctor}"
    );

    // Allow from a subdirectory: the nearest root file above is the one meant.
    let sub = repo.join("modules/vpc");
    fs::create_dir_all(&sub).expect("mkdir");
    let out = w.run_in(&sub, &["allow"]);
    assert_ok(&out);
    let shown = out.stdout_str();
    for line in [
        "allowed ~/src/infra/.awsmfa.toml",
        "profile  prod",
        "secrets  doppler infra/prd",
    ] {
        assert!(
            shown.contains(line),
            "`allow` does not show {line:?}: {shown}"
        );
    }
    assert_eq!(w.status(&sub)["profile"], "prod");
    assert_eq!(w.exec_profile(&sub).as_deref(), Ok("prod"));

    // One byte changed: not the text that was approved.
    fs::write(&file, "profile = \"dev\"\ndoppler = \"infra/prd\"\n").expect("rewrite");
    let err = w
        .exec_profile(&sub)
        .expect_err("changed file must not count");
    assert!(err.contains("changed since you allowed it"), "{err}");
    assert_eq!(w.status(&sub)["root_files"][0]["state"], "changed");
    assert_ok(&w.run_in(&repo, &["allow", "."]));
    assert_eq!(w.status(&sub)["profile"], "dev");

    // deny, by the file's own path.
    let out = w.run_in(&w.env.home, &["deny", file.to_str().expect("utf-8")]);
    assert_ok(&out);
    assert!(out.stdout_str().contains("denied ~/src/infra/.awsmfa.toml"));
    assert!(w.exec_profile(&sub).is_err());
    let again = w.run_in(&repo, &["deny"]);
    assert!(again.stdout_str().contains("was not allowed"), "{again:?}");
    // Moving an allowed file elsewhere does not carry the approval with it.
    assert_ok(&w.run_in(&repo, &["allow"]));
    let moved = w.env.home.join("src/infra-copy");
    fs::rename(&repo, &moved).expect("move");
    assert_eq!(w.status(&moved)["root_files"][0]["state"], "not_allowed");
}

/// `allow` refuses what it could not use, saying why with file and line.
#[test]
fn allow_refuses_a_bad_file() {
    let Some(w) = World::new() else { return };
    let repo = w.env.home.join("src/bad");
    w.repo(&repo, "profile = \"dev\"\n\nprofile_typo = 1\n");
    let out = w.run_in(&repo, &["allow"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str().contains("~/src/bad/.awsmfa.toml:3")
            || out.stderr_str().contains("/src/bad/.awsmfa.toml:3"),
        "{}",
        out.stderr_str()
    );
    let nothing = w.env.home.join("empty");
    fs::create_dir_all(&nothing).expect("mkdir");
    let out = w.run_in(&nothing, &["allow"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str()
            .contains("no .awsmfa.toml in ~/empty or above"),
        "{}",
        out.stderr_str()
    );
}

/// The user's own mapping of an enclosing directory still applies where a
/// nearer repository file is not allowed, and the file is named.
#[test]
fn the_users_mapping_wins_over_an_unallowed_nearer_file() {
    let Some(w) = World::new() else { return };
    w.env
        .write_awsmfa_config("[roots.\"~/src/mono\"]\nprofile = \"dev\"\n");
    let inner = w.env.home.join("src/mono/team");
    w.repo(&inner, "profile = \"prod\"\n");
    let out = w.run_in(&inner, &["exec", "--", "printenv", "AWSMFA_PROFILE"]);
    assert_ok(&out);
    assert_eq!(out.stdout_str().trim(), "dev");
    assert!(
        out.stderr_str()
            .contains("team/.awsmfa.toml is not allowed"),
        "{}",
        out.stderr_str()
    );
    assert_ok(&w.run_in(&inner, &["allow"]));
    assert_eq!(
        w.exec_profile(&inner).as_deref(),
        Ok("prod"),
        "allowed: nearest wins"
    );
}

// --- files that are not files -----------------------------------------------------------

/// Issue 8, case 4: a FIFO named `.awsmfa.toml` hung every `cd` below it, a
/// link to /dev/zero was read until memory ran out. Each is ignored with a
/// warning, at once; and a malformed root file above the working directory
/// does not matter to `exec PROFILE`.
#[test]
fn files_that_are_not_files_are_ignored_at_once() {
    let Some(w) = World::new() else { return };
    let base = w.env.home.join("src");
    let fifo_dir = base.join("fifo");
    fs::create_dir_all(&fifo_dir).expect("mkdir");
    let fifo = fifo_dir.join(".awsmfa.toml");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("cstring");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let zero_dir = base.join("zero");
    fs::create_dir_all(&zero_dir).expect("mkdir");
    std::os::unix::fs::symlink("/dev/zero", zero_dir.join(".awsmfa.toml")).expect("symlink");
    let big_dir = base.join("big");
    w.repo(
        &big_dir,
        &format!("profile = \"dev\"\n#{}\n", "x".repeat(70 * 1024)),
    );
    let bytes_dir = base.join("bytes");
    fs::create_dir_all(&bytes_dir).expect("mkdir");
    fs::write(bytes_dir.join(".awsmfa.toml"), b"profile = \"\xff\"\n").expect("write");

    for (dir, why) in [
        (&fifo_dir, "not a regular file"),
        (&zero_dir, "not a regular file"),
        (&big_dir, "larger than 64 KiB"),
        (&bytes_dir, "not UTF-8"),
    ] {
        let sub = dir.join("deeper");
        fs::create_dir_all(&sub).expect("mkdir");
        let started = Instant::now();
        let out = w.hook(&sub, "");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "hook-env took {:?}",
            started.elapsed()
        );
        assert_ok(&out);
        assert!(
            out.stderr_str().contains(why),
            "{}: {}",
            dir.display(),
            out.stderr_str()
        );
        assert!(
            !out.stdout_str().contains("function"),
            "{}",
            out.stdout_str()
        );
        // allow refuses it too, with the same reason.
        let refused = w.run_in(&sub, &["allow"]);
        assert_code(&refused, 1);
        assert!(
            refused.stderr_str().contains(why),
            "{}",
            refused.stderr_str()
        );
    }

    // A malformed, even allowed-then-broken, root file above: exec PROFILE runs.
    let broken = base.join("broken");
    let file = w.repo(&broken, "profile = \"dev\"\n");
    assert_ok(&w.run_in(&broken, &["allow"]));
    fs::write(&file, "profile = [\n").expect("break it");
    let out = w.run_in(
        &broken,
        &["exec", "dev", "--", "printenv", "AWSMFA_PROFILE"],
    );
    assert_ok(&out);
    assert_eq!(out.stdout_str().trim(), "dev");
    // hook-env warns and the shell keeps working (exit 0).
    assert_ok(&w.hook(&broken, ""));
}

// --- ownership and the directories around ---------------------------------------------

/// Another user's root file — in a parent directory like a planted
/// `/tmp/.awsmfa.toml` — is ignored with a warning, allowed or not; so is one
/// in a directory anyone can write without the sticky bit. A sticky one is fine.
#[test]
fn foreign_files_and_open_directories_are_ignored() {
    let Some(w) = World::new() else { return };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // chown to another user needs root; CI runs as root.
        let _ = require::<()>("root, to chown a file to another user", None);
        return;
    }
    let repo = w.env.work.join("shared/repo");
    let file = w.repo(&w.env.work.join("shared"), "profile = \"prod\"\n");
    fs::create_dir_all(&repo).expect("mkdir");
    assert_ok(&w.run_in(&repo, &["allow"]));
    assert_eq!(w.exec_profile(&repo).as_deref(), Ok("prod"));
    std::os::unix::fs::chown(&file, Some(OTHER_UID), None).expect("chown");
    let out = w.hook(&repo, "");
    assert!(
        out.stderr_str()
            .contains("owned by another user (uid 65534)"),
        "{}",
        out.stderr_str()
    );
    assert!(w.exec_profile(&repo).is_err());
    assert_code(&w.run_in(&repo, &["allow"]), 1);

    let open = w.env.work.join("open");
    w.repo(&open, "profile = \"dev\"\n");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_code(&w.run_in(&open, &["allow"]), 1);
    let status = w.status(&open);
    assert_eq!(status["root_files"][0]["state"], "ignored", "{status}");
    assert!(
        status["root_files"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("writable by every user")),
        "{status}"
    );
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod +t");
    assert_ok(&w.run_in(&open, &["allow"]));
    assert_eq!(w.exec_profile(&open).as_deref(), Ok("dev"));
}

/// For a directory under $HOME, root files are looked for up to $HOME and no
/// further: a file above it is no repository's.
#[test]
fn the_search_stops_at_home() {
    let Some(w) = World::new() else { return };
    let above = w
        .env
        .home
        .parent()
        .expect("home has a parent")
        .to_path_buf();
    w.repo(&above, "profile = \"prod\"\n");
    let inside = w.env.home.join("src/x");
    fs::create_dir_all(&inside).expect("mkdir");
    let status = w.status(&inside);
    assert!(
        status["root_files"].as_array().is_some_and(Vec::is_empty),
        "{status}"
    );
    assert!(status["profile"].is_null());
    let out = w.run_in(&inside, &["allow"]);
    assert_code(&out, 1);
    // Outside $HOME (the Env's work dir is beside it) the same file is found.
    assert_eq!(
        w.status(&w.env.work)["root_files"][0]["state"],
        "not_allowed"
    );
}

// --- the hook ---------------------------------------------------------------------------

/// The notice comes once per change of what applies (hook-env prints nothing
/// when given back its own state), on stderr; stdout stays code.
#[test]
fn hook_env_says_a_notice_once_and_only_on_stderr() {
    let Some(w) = World::new() else { return };
    let repo = w.env.home.join("src/r");
    w.repo(&repo, "profile = \"dev\"\n");
    let first = w.hook(&repo, "");
    assert_ok(&first);
    assert!(
        first.stderr_str().contains("is not allowed"),
        "{}",
        first.stderr_str()
    );
    assert!(!first.stdout_str().contains("not allowed"));
    let state = state_of(&first.stdout_str());
    assert!(state.bytes().all(|b| b.is_ascii_hexdigit()), "{state}");
    let sub = repo.join("a/b");
    fs::create_dir_all(&sub).expect("mkdir");
    let again = w.hook(&sub, &state);
    assert_ok(&again);
    assert_eq!(again.stdout_str(), "");
    assert_eq!(again.stderr_str(), "");
}

// --- names ------------------------------------------------------------------------------

/// Names that are not names are refused where they are written, with file and line.
#[test]
fn names_outside_their_character_sets_are_refused_with_file_and_line() {
    let Some(w) = World::new() else { return };
    for (toml, line, what) in [
        (
            "[roots.x]\nprofile = \"dev\"\n\n[profiles.\"a b\"]\nmfa = \"prompt\"\n",
            4,
            "profile name",
        ),
        ("[roots.x]\nprofile = \"a;b\"\n", 2, "profile name"),
        ("wrap = [\"tofu\", \"cd\"]\n", 1, "wrap entry \"cd\""),
        ("wrap = [\"$(id)\"]\n", 1, "wrap entry"),
        (
            "[roots.x]\nprofile = \"dev\"\ndoppler = \"-p/x\"\n",
            3,
            "doppler",
        ),
        (
            "[roots.x]\nprofile = \"dev\"\ninfisical = { project_id = \"--help\", env = \"prd\" }\n",
            3,
            "infisical",
        ),
    ] {
        let path = w.env.write_awsmfa_config(toml);
        let out = w.env.run(["status"]);
        assert_code(&out, 1);
        let err = out.stderr_str();
        assert!(
            err.contains(&format!("{}:{line}: ", path.display())) && err.contains(what),
            "{toml:?}: {err}"
        );
    }
}

/// Control characters from a directory name never reach the terminal raw.
#[test]
fn control_characters_in_paths_are_escaped() {
    let Some(w) = World::new() else { return };
    let dir = w.env.home.join("evil\u{1b}[2J\rname");
    w.repo(&dir, "profile = \"dev\"\n");
    let out = w.run_in(&dir, &["status"]);
    assert_ok(&out);
    let all = out.stdout_str() + &out.stderr_str();
    assert!(!all.contains('\u{1b}') && !all.contains('\r'), "{all:?}");
    assert!(all.contains("evil\\u{1b}[2J\\rname"), "{all}");
    let out = w.run_in(&dir, &["exec", "--", "true"]);
    assert_code(&out, 1);
    assert!(
        !out.stderr_str().contains('\u{1b}'),
        "{:?}",
        out.stderr_str()
    );
}

// --- COMPLETE ---------------------------------------------------------------------------

/// Issue 8, case 7: `COMPLETE` (a common variable name) turned every command
/// into a completion-script printer. Only awsmfa's private variable does that.
#[test]
fn complete_in_the_environment_means_nothing() {
    let Some(w) = World::new() else { return };
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = w.env.cmd(["credential-process", "dev"]);
        cmd.env("COMPLETE", shell);
        let out = w.env.run_cmd(cmd);
        assert_ok(&out);
        let json: Value = serde_json::from_str(&out.stdout_str())
            .unwrap_or_else(|e| panic!("COMPLETE={shell}: not JSON ({e}): {}", out.stdout_str()));
        assert_eq!(json["Version"], 1);
    }
    // Nor does the private name without the completion protocol's leading `--`
    // (a secrets manager could set it for the inner awsmfa of a chain).
    let mut cmd = w.env.cmd(["exec", "dev", "--", "echo", "ran"]);
    cmd.env("_AWSMFA_COMPLETE", "bash");
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    assert_eq!(out.stdout_str().trim(), "ran");
    // The private name still completes.
    let mut cmd = w.env.cmd(["--", "awsmfa", "credential-process", ""]);
    cmd.env("_AWSMFA_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_IFS", "\n");
    let out = w.env.run_cmd(cmd);
    assert_ok(&out);
    assert!(
        out.stdout_str().lines().any(|l| l == "prod"),
        "{}",
        out.stdout_str()
    );
}

// --- what helper tools see ------------------------------------------------------------

/// An `mfa_process` (or ykman, op) is somebody's script on PATH: it gets no
/// AWS credential and no OpenBao token or wrapped SecretID from awsmfa's own
/// environment.
#[test]
fn helper_tools_inherit_no_secret() {
    let Some(w) = World::new() else { return };
    let seen = w.env.root.join("helper-env");
    let helper = w.env.write_script(
        "bin/mfa-env",
        &format!(
            "#!/bin/sh\nenv > '{}'\nexec oathtool --totp -b {SEED}\n",
            seen.display()
        ),
    );
    w.env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = {}\nmfa_process = {}\n",
        mfa_device("dev"),
        helper.display()
    ));
    let withheld = [
        ("BAO_TOKEN", "s.baotokenvalue0001"),
        ("VAULT_TOKEN", "s.vaulttokenvalue01"),
        ("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", "s.wrappedsecretid01"),
        ("AWS_ACCESS_KEY_ID", "AKIAINHERITEDKEY0001"),
        ("AWS_SECRET_ACCESS_KEY", "inheritedsecretvalue01"),
        ("AWS_SESSION_TOKEN", "inheritedsessiontoken01"),
    ];
    let mut cmd = w.env.cmd(["credential-process", "dev"]);
    for (name, value) in withheld {
        cmd.env(name, value);
    }
    cmd.env("HELPER_MAY_SEE", "yes");
    assert_ok(&w.env.run_cmd(cmd));
    let env = fs::read_to_string(&seen).expect("the helper ran");
    for (name, value) in withheld {
        assert!(
            !env.contains(name) && !env.contains(value),
            "{name} reached the helper:\n{env}"
        );
    }
    assert!(
        env.contains("HELPER_MAY_SEE=yes"),
        "the rest of the environment is kept"
    );
}
