//! Roots and the secrets-manager chain, end to end through the binary.
//!
//! Roots: which `[roots.*]` entry or committed `.awsmfa.toml` applies in a
//! directory (nested directories, nearest wins, path key before name key, the
//! user's config before a committed file, symlinked checkouts), what `status`
//! says about unmapped OpenTofu roots and directories without a root, and how
//! bad configuration is reported (always `file:line`).
//!
//! Chain: `awsmfa exec` in a root with `doppler = …` or `infisical = {…}` runs
//! `MANAGER run … -- awsmfa exec P --chained FD:NONCE -- CMD`, handing the
//! session over on the inherited descriptor FD. The stand-ins under
//! `tests/standins/` accept exactly the documented flags, record their argv
//! and the NAMES of their environment variables, inject their own secrets
//! (including conflicting AWS keys) and exec the command. The command must end
//! up with the manager's variables and awsmfa's session, minted with one MFA
//! code and one STS call, while the manager never sees the session.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::env::awsmfa_bin;
use support::process::wait_until;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/roots";
const KEY: &str = "AKIASTUBROOTSCHAIN01";
const SECRET: &str = "rootschainlonglived/0123456789abcdefGHIJ";

/// What the stand-ins inject (see the scripts' headers).
const DOPPLER_KEY_ID: &str = "AKIAFROMDOPPLER00000";
const DOPPLER_SECRET: &str = "doppler/SecretKeyValue0000000000000000000";
const INFISICAL_KEY_ID: &str = "AKIAFROMINFISICAL000";
const INFISICAL_SECRET: &str = "infisical/SecretKeyValue00000000000000000";

/// Profiles every world's `~/.aws/config` defines.
const PROFILES: [&str; 4] = ["tf-proxmox", "tf-apps", "tf-splunk", "tf-file"];

/// The variables awsmfa's session consists of in a child's environment.
const SESSION_VARS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWSMFA_PROFILE",
];

fn standins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

/// One stand-in run, as its log recorded it.
#[derive(Debug, Clone)]
struct StandinRun {
    tool: String,
    args: Vec<String>,
    env: Vec<String>,
}

impl StandinRun {
    fn has_env(&self, name: &str) -> bool {
        self.env.iter().any(|n| n == name)
    }
}

/// One test's world: an Env pointed at its own STS stub, the profiles in
/// `PROFILES` (region us-east-1 unless `regionless`) with a stored key and a
/// counting `mfa_process`, the stand-ins on PATH, and a stand-in log.
struct World {
    env: Env,
    stub: StsStub,
    mfa: CountingMfa,
    /// `STANDIN_LOG`.
    log: PathBuf,
}

struct Opts {
    /// Store keys (needs the kernel keyring); status-only tests need none.
    keys: bool,
    /// Put the stand-ins on PATH.
    standins: bool,
    /// Leave `region` out of the profiles.
    regionless: bool,
}

const FULL: Opts = Opts {
    keys: true,
    standins: true,
    regionless: false,
};
const FILES_ONLY: Opts = Opts {
    keys: false,
    standins: true,
    regionless: false,
};

impl World {
    fn new(config_toml: &str) -> Option<World> {
        Self::with(config_toml, FULL)
    }

    /// For tests that only read files (`status`, config errors): no keyring,
    /// so they run wherever the binary runs.
    fn files_only(config_toml: &str) -> World {
        Self::with(config_toml, FILES_ONLY).expect("a files-only world has no prerequisites")
    }

    fn with(config_toml: &str, opts: Opts) -> Option<World> {
        if opts.keys {
            if !keyutils_available() {
                return None;
            }
            require("oathtool (Debian package oathtool)", which("oathtool"))?;
        }
        let stub = StsStub::start();
        stub.add_user(KEY, SECRET);
        for p in PROFILES {
            stub.add_mfa(&mfa_device(p), SEED);
        }
        let mut env = Env::new();
        env.set_sts_endpoint(&stub.url());
        let mfa = env.counting_mfa(SEED);
        let log = env.root.join("standin.log");
        let region = if opts.regionless {
            ""
        } else {
            "region = us-east-1\n"
        };
        let aws: String = PROFILES
            .iter()
            .map(|p| {
                format!(
                    "[profile {p}]\n{region}mfa_serial = {}\nmfa_process = {}\n\n",
                    mfa_device(p),
                    mfa.script.display()
                )
            })
            .collect();
        env.write_aws_config(&aws);
        env.write_awsmfa_config(config_toml);
        env.set("STANDIN_LOG", &log)
            .set("DOPPLER_TOKEN", "dp.st.roots-chain-test")
            .set("INFISICAL_TOKEN", "st.roots-chain-test");
        if opts.standins {
            env.prepend_path(standins_dir());
        }
        let w = World {
            env,
            stub,
            mfa,
            log,
        };
        if opts.keys {
            for p in PROFILES {
                let mut cmd = w.env.cmd(["add", p, "--from-env"]);
                cmd.env("AWS_ACCESS_KEY_ID", KEY)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET);
                assert_ok(&w.env.run_cmd(cmd));
            }
        }
        Some(w)
    }

    /// Creates `rel` (under HOME) and returns its path.
    fn dir(&self, rel: &str) -> PathBuf {
        let d = self.env.home.join(rel);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        d
    }

    /// Writes `rel` (under HOME).
    fn file(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.env.home.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }

    /// awsmfa with `args`, run in `dir`.
    fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.env.cmd(args);
        cmd.current_dir(dir);
        self.env.run_cmd(cmd)
    }

    /// `awsmfa allow` in `dir`: a committed root file counts only after it.
    #[track_caller]
    fn allow(&self, dir: &Path) {
        self.ok_in(dir, &["allow"]);
    }

    #[track_caller]
    fn ok_in(&self, dir: &Path, args: &[&str]) -> Output {
        let out = self.run_in(dir, args);
        assert_ok(&out);
        assert_no_panic(&out);
        out
    }

    #[track_caller]
    fn status_json(&self, dir: &Path) -> Value {
        let out = self.ok_in(dir, &["status", "--json"]);
        serde_json::from_str(&out.stdout_str())
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e})\n{}", out.dump()))
    }

    #[track_caller]
    fn status_text(&self, dir: &Path) -> String {
        self.ok_in(dir, &["status"]).stdout_str()
    }

    /// The profile `status` reports for `dir` (`None`: no root).
    #[track_caller]
    fn profile_at(&self, dir: &Path) -> Option<String> {
        self.status_json(dir)["profile"].as_str().map(String::from)
    }

    /// `exec ARGS` in `dir`, which must succeed; the child's environment.
    #[track_caller]
    fn exec_env(&self, dir: &Path, args: &[&str]) -> (BTreeMap<String, String>, Output) {
        let out = self.ok_in(dir, args);
        (env_map(&out.stdout_str()), out)
    }

    fn mfa_runs(&self) -> usize {
        self.mfa.runs()
    }

    fn standin_runs(&self) -> Vec<StandinRun> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let mut runs = Vec::new();
        let mut cur: Option<StandinRun> = None;
        for line in text.lines() {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "tool" => {
                    cur = Some(StandinRun {
                        tool: rest.to_string(),
                        args: Vec::new(),
                        env: Vec::new(),
                    })
                }
                "pid" => {}
                "arg" => cur
                    .as_mut()
                    .expect("arg before tool")
                    .args
                    .push(rest.into()),
                "env" => cur.as_mut().expect("env before tool").env.push(rest.into()),
                "end" => runs.push(cur.take().expect("end before tool")),
                other => panic!("unexpected stand-in log line {other:?} in\n{text}"),
            }
        }
        assert!(cur.is_none(), "unterminated stand-in log\n{text}");
        runs
    }

    /// `~/REL` as awsmfa displays paths under HOME.
    fn tilde(&self, p: &Path) -> String {
        format!("~/{}", p.strip_prefix(&self.env.home).unwrap().display())
    }

    /// The long-lived secret and every session secret STS issued.
    fn secret_values(&self) -> Vec<String> {
        let mut v = vec![SECRET.to_string()];
        for i in self.stub.issued() {
            v.push(i.secret_access_key);
            v.push(i.session_token);
        }
        v
    }
}

/// `NAME=VALUE` lines (as `env` prints them) to a map.
fn env_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Exit 1, no panic, nothing on stdout, every word on stderr; returns stderr.
#[track_caller]
fn fails_with(out: &Output, words: &[&str]) -> String {
    assert_code(out, 1);
    assert_no_panic(out);
    assert!(out.stdout.is_empty(), "stdout on failure\n{}", out.dump());
    let err = out.stderr_str();
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}\n{}", out.dump());
    }
    err
}

#[track_caller]
fn assert_free_of(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} contains {s:?}:\n{text}");
    }
}

/// The child's environment carries exactly the session STS issued last.
#[track_caller]
fn assert_session(w: &World, env: &BTreeMap<String, String>, profile: &str) {
    let issued = w.stub.last_issued().expect("STS issued a session");
    assert_eq!(env.get("AWS_ACCESS_KEY_ID"), Some(&issued.access_key_id));
    assert_eq!(
        env.get("AWS_SECRET_ACCESS_KEY"),
        Some(&issued.secret_access_key)
    );
    assert_eq!(env.get("AWS_SESSION_TOKEN"), Some(&issued.session_token));
    assert_eq!(
        env.get("AWS_CREDENTIAL_EXPIRATION"),
        Some(&issued.expiration_text)
    );
    assert_eq!(env.get("AWSMFA_PROFILE").map(String::as_str), Some(profile));
}

fn bin_path() -> String {
    awsmfa_bin()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The inner awsmfa's argv as the manager got it, `exec PROFILE --chained
/// FD:NONCE -- CMD…`: nothing else, in particular no secret and nothing that
/// would shape a session. Returns `FD:NONCE`.
#[track_caller]
fn assert_inner_args(inner: &[String], profile: &str, cmd: &[&str]) -> String {
    assert!(inner.len() > 4, "{inner:?}");
    assert_eq!(
        inner[..3],
        strings(&["exec", profile, "--chained"]),
        "{inner:?}"
    );
    let handover = &inner[3];
    let (fd, nonce) = handover
        .split_once(':')
        .unwrap_or_else(|| panic!("--chained {handover:?} is not FD:NONCE"));
    assert!(
        fd.parse::<u32>().is_ok_and(|fd| fd > 2),
        "not a descriptor past stdio: {inner:?}"
    );
    assert!(
        nonce.len() == 32
            && nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not a 16-byte hex nonce: {inner:?}"
    );
    let mut rest = strings(&["--"]);
    rest.extend(strings(cmd));
    assert_eq!(inner[4..], rest, "{inner:?}");
    handover.clone()
}

const PROXMOX_DOPPLER: &str = r#"[roots.tofu-proxmox]
profile = "tf-proxmox"
doppler = "infra-project/prd"

[roots.tofu-apps]
profile = "tf-apps"
infisical = { project_id = "6f1c0ffee", env = "prd", path = "/tofu" }

[roots."~/src/tf-splunk-aws"]
profile = "tf-splunk"
"#;

// ── root detection ──────────────────────────────────────────────────────────

#[test]
fn nested_directory_uses_the_enclosing_root() {
    let Some(w) = World::new("[roots.tofu-proxmox]\nprofile = \"tf-proxmox\"\n") else {
        return;
    };
    let root = w.dir("src/tofu-proxmox");
    let vm = w.dir("src/tofu-proxmox/modules/vm");

    let s = w.status_json(&vm);
    assert_eq!(s["directory"], w.tilde(&vm));
    assert_eq!(s["root"]["dir"], w.tilde(&root));
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.tofu-proxmox] in ~/.config/awsmfa/config.toml"
    );
    assert_eq!(s["profile"], "tf-proxmox");

    let (child, _) = w.exec_env(&vm, &["exec", "--", "env"]);
    assert_session(&w, &child, "tf-proxmox");
    assert_eq!(
        child.get("AWS_REGION").map(String::as_str),
        Some("us-east-1")
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa_runs(), 1);
    // The child runs in the directory it was started in, not the root.
    let out = w.ok_in(&vm, &["exec", "--", "pwd"]);
    assert_eq!(out.stdout_str().trim(), vm.to_str().unwrap());
    assert_eq!(w.stub.calls("GetSessionToken"), 1, "the session is reused");
}

#[test]
fn nearest_root_wins() {
    let w = World::files_only(
        r#"[roots.platform]
profile = "tf-splunk"

[roots.tofu-apps]
profile = "tf-apps"

[roots."~/platform/live/svc/deep"]
profile = "tf-proxmox"
"#,
    );
    let platform = w.dir("platform");
    let live = w.dir("platform/live");
    let apps_mod = w.dir("platform/live/tofu-apps/modules/net");
    let svc = w.dir("platform/live/svc");
    let svc_sub = w.dir("platform/live/svc/sub");
    let deep = w.dir("platform/live/svc/deep/x");
    w.file("platform/live/svc/.awsmfa.toml", "profile = \"tf-file\"\n");
    w.allow(&svc);

    assert_eq!(w.profile_at(&platform).as_deref(), Some("tf-splunk"));
    assert_eq!(w.profile_at(&live).as_deref(), Some("tf-splunk"));
    // A root inside a root: the inner one, from anywhere inside it.
    let s = w.status_json(&apps_mod);
    assert_eq!(s["profile"], "tf-apps");
    assert_eq!(s["root"]["dir"], "~/platform/live/tofu-apps");
    // A committed file nearer than a config entry wins too…
    let s = w.status_json(&svc_sub);
    assert_eq!(s["profile"], "tf-file");
    assert_eq!(s["root"]["dir"], w.tilde(&svc));
    assert_eq!(
        s["root"]["matched_by"],
        ".awsmfa.toml in the directory, allowed"
    );
    // …and a path key nearer than that file wins over it.
    let s = w.status_json(&deep);
    assert_eq!(s["profile"], "tf-proxmox");
    assert_eq!(s["root"]["dir"], "~/platform/live/svc/deep");
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.\"~/platform/live/svc/deep\"] in ~/.config/awsmfa/config.toml"
    );
}

#[test]
fn path_key_beats_name_key_and_matches_only_its_path() {
    let abs = std::env::temp_dir()
        .canonicalize()
        .unwrap()
        .join(format!("awsmfa-roots-abs-{}", unique_suffix()));
    let w = World::files_only(&format!(
        r#"[roots.x]
profile = "tf-apps"

[roots."~/src/x"]
profile = "tf-splunk"

[roots."{}"]
profile = "tf-proxmox"
"#,
        abs.display()
    ));
    let src_x = w.dir("src/x/modules");
    let other_x = w.dir("other/x");
    let not_x = w.dir("src/x-y");
    let parent = w.dir("src");

    // The same directory matches both: the path key wins.
    let s = w.status_json(&src_x);
    assert_eq!(s["profile"], "tf-splunk");
    assert_eq!(s["root"]["dir"], "~/src/x");
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.\"~/src/x\"] in ~/.config/awsmfa/config.toml"
    );
    // The name key matches any directory of that name.
    let s = w.status_json(&other_x);
    assert_eq!(s["profile"], "tf-apps");
    assert_eq!(s["root"]["dir"], "~/other/x");
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.x] in ~/.config/awsmfa/config.toml"
    );
    // Neither matches a sibling with a longer name or the parent.
    assert_eq!(w.profile_at(&not_x), None);
    assert_eq!(w.profile_at(&parent), None);

    // An absolute path key, outside HOME.
    let _cleanup = RemoveOnDrop(abs.clone());
    fs::create_dir_all(abs.join("a/b")).unwrap();
    let s = w.status_json(&abs.join("a/b"));
    assert_eq!(s["profile"], "tf-proxmox");
    assert_eq!(s["root"]["dir"], abs.to_str().unwrap());
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn committed_file_applies_alone_and_user_config_overrides_it() {
    let Some(w) = World::new("") else { return };
    let repo = w.dir("src/repo");
    let sub = w.dir("src/repo/envs/prod");
    // The repository suggests tf-file with Doppler.
    w.file(
        "src/repo/.awsmfa.toml",
        "# committed by the team\nprofile = \"tf-file\"\ndoppler = \"team/prd\"\n",
    );
    w.allow(&repo);

    // Only the file: its profile and its secrets manager.
    let s = w.status_json(&sub);
    assert_eq!(s["profile"], "tf-file");
    assert_eq!(s["root"]["dir"], w.tilde(&repo));
    assert_eq!(
        s["root"]["matched_by"],
        ".awsmfa.toml in the directory, allowed"
    );
    assert_eq!(s["secrets"], "doppler team/prd");
    let (child, _) = w.exec_env(&sub, &["exec", "--", "env"]);
    assert_session(&w, &child, "tf-file");
    assert_eq!(
        child.get("DOPPLER_PROJECT").map(String::as_str),
        Some("team")
    );
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0].args[..5],
        strings(&["run", "-p", "team", "-c", "prd"])
    );

    // Both at the same directory, by name: the user's config wins, entirely
    // (its profile, and no secrets manager since it names none).
    w.env
        .write_awsmfa_config("[roots.repo]\nprofile = \"tf-apps\"\n");
    let s = w.status_json(&sub);
    assert_eq!(s["profile"], "tf-apps");
    assert_eq!(s["root"]["dir"], w.tilde(&repo));
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.repo] in ~/.config/awsmfa/config.toml"
    );
    assert_eq!(s["secrets"], Value::Null);
    let (child, _) = w.exec_env(&sub, &["exec", "--", "env"]);
    assert_session(&w, &child, "tf-apps");
    assert!(!child.contains_key("DOPPLER_PROJECT"), "{child:#?}");
    assert_eq!(w.standin_runs().len(), 1, "no new manager run");

    // Both, by path: the user's config wins too.
    w.env
        .write_awsmfa_config("[roots.\"~/src/repo\"]\nprofile = \"tf-splunk\"\n");
    let s = w.status_json(&sub);
    assert_eq!(s["profile"], "tf-splunk");
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.\"~/src/repo\"] in ~/.config/awsmfa/config.toml"
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
}

#[test]
fn symlinked_checkout_resolves_to_the_same_root() {
    let w = World::files_only(
        r#"[roots.tofu-proxmox]
profile = "tf-proxmox"

[roots."~/links/splunk"]
profile = "tf-splunk"
"#,
    );
    let real = w.dir("src/tofu-proxmox");
    let real_mod = w.dir("src/tofu-proxmox/modules/vm");
    let splunk = w.dir("src/tf-splunk-aws");
    let splunk_mod = w.dir("src/tf-splunk-aws/modules");
    let repo = w.dir("src/repo");
    w.file("src/repo/.awsmfa.toml", "profile = \"tf-file\"\n");
    w.allow(&repo);
    w.dir("links");
    let link = w.env.home.join("checkout");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    // The path key names the link; the user works in the real directory.
    std::os::unix::fs::symlink(&splunk, w.env.home.join("links/splunk")).unwrap();
    let repo_link = w.env.home.join("links/repo-link");
    std::os::unix::fs::symlink(&repo, &repo_link).unwrap();

    let via_link = |dir: &Path, logical: &Path| {
        // As a shell would start it: cwd through the link, PWD the logical path.
        let mut cmd = w.env.cmd(["status", "--json"]);
        cmd.current_dir(dir).env("PWD", logical);
        let out = w.env.run_cmd(cmd);
        assert_ok(&out);
        serde_json::from_str::<Value>(&out.stdout_str()).unwrap()
    };

    let direct = w.status_json(&real_mod);
    let linked = via_link(&link.join("modules/vm"), &link.join("modules/vm"));
    assert_eq!(direct["profile"], "tf-proxmox");
    assert_eq!(linked["profile"], "tf-proxmox");
    assert_eq!(linked["root"], direct["root"]);
    assert_eq!(linked["root"]["dir"], w.tilde(&real));

    // A path key written through a link matches the real directory.
    let s = w.status_json(&splunk_mod);
    assert_eq!(s["profile"], "tf-splunk");
    assert_eq!(s["root"]["dir"], w.tilde(&splunk));
    // …and through the link itself.
    let s = via_link(
        &w.env.home.join("links/splunk/modules"),
        &w.env.home.join("links/splunk/modules"),
    );
    assert_eq!(s["profile"], "tf-splunk");
    assert_eq!(s["root"]["dir"], w.tilde(&splunk));

    // A committed file is found through a link as well.
    let s = via_link(&repo_link, &repo_link);
    assert_eq!(s["profile"], "tf-file");
    assert_eq!(s["root"]["dir"], w.tilde(&repo));
}

#[test]
fn unmapped_opentofu_root_is_reported_with_the_lines_to_add() {
    let w = World::files_only("[roots.elsewhere]\nprofile = \"tf-apps\"\n");
    let cases = [
        ("infra-main", "main.tf"),
        ("infra-tg", "terragrunt.hcl"),
        ("infra-root", "root.hcl"),
        ("infra-lock", ".terraform.lock.hcl"),
        ("infra-tofu", "network.tofu"),
    ];
    for (name, marker) in cases {
        let root = w.dir(&format!("src/{name}"));
        w.file(&format!("src/{name}/{marker}"), "# marker\n");
        let sub = w.dir(&format!("src/{name}/modules/x"));
        for dir in [&root, &sub] {
            let text = w.status_text(dir);
            assert!(
                text.contains(&format!(
                    "root       none: ~/src/{name} looks like an OpenTofu root but is not mapped"
                )),
                "{marker}: {text}"
            );
            let lines = format!(
                "add to ~/.config/awsmfa/config.toml:\n    [roots.{name}]\n    profile = \"PROFILE\"\n"
            );
            assert!(text.contains(&lines), "{marker}: {text}");
            assert!(
                text.contains(&format!(
                    "or commit a .awsmfa.toml with `profile = \"PROFILE\"` in ~/src/{name}"
                )),
                "{marker}: {text}"
            );

            let s = w.status_json(dir);
            assert_eq!(s["unmapped_root"], format!("~/src/{name}"), "{marker}");
            let hint = s["hint"].as_str().expect("hint");
            assert!(hint.contains(&format!("[roots.{name}]\n    profile = \"PROFILE\"")));
            assert_eq!(s["root"], Value::Null);
            assert_eq!(s["profile"], Value::Null);
            assert_eq!(s["secrets"], Value::Null);
        }
    }

    // `exec` there fails the same way, naming the directory and the root.
    let sub = w.env.home.join("src/infra-tg/modules/x");
    let out = w.run_in(&sub, &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "~/src/infra-tg/modules/x is not inside a mapped OpenTofu root",
            "awsmfa exec PROFILE -- true",
            "[roots.infra-tg]\n    profile = \"PROFILE\"",
        ],
    );
    assert_eq!(w.stub.total_calls(), 0);

    // The hint's lines, pasted with a real profile, map the root — also for a
    // name that needs quoting.
    let dotted = w.dir("src/tofu.apps/live");
    w.file("src/tofu.apps/main.tf", "");
    let hint = w.status_json(&dotted)["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("[roots.\"tofu.apps\"]"), "{hint}");
    let mut config = String::new();
    for dir in [&sub, &dotted] {
        let hint = w.status_json(dir)["hint"].as_str().unwrap().to_string();
        let block: Vec<&str> = hint.lines().skip(1).take(2).map(str::trim).collect();
        config.push_str(&block.join("\n").replace("PROFILE", "tf-apps"));
        config.push('\n');
    }
    w.env.write_awsmfa_config(&config);
    for (dir, root) in [(&sub, "~/src/infra-tg"), (&dotted, "~/src/tofu.apps")] {
        let s = w.status_json(dir);
        assert_eq!(s["profile"], "tf-apps", "{config}");
        assert_eq!(s["root"]["dir"], root);
        assert_eq!(s["unmapped_root"], Value::Null);
    }
}

#[test]
fn directory_without_a_root() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let plain = w.dir("notes/2026");
    let text = w.status_text(&plain);
    assert!(
        text.contains("root       none (no OpenTofu root mapped here or above)"),
        "{text}"
    );
    assert!(text.contains("directory  ~/notes/2026"), "{text}");
    let s = w.status_json(&plain);
    assert_eq!(s["directory"], "~/notes/2026");
    for field in ["root", "profile", "secrets", "unmapped_root", "hint"] {
        assert_eq!(s[field], Value::Null, "{field} in {s:#}");
    }
    assert_eq!(s["session"]["state"], "none");

    let out = w.run_in(&plain, &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "no profile given, and ~/notes/2026 is not inside a mapped OpenTofu root",
            "awsmfa exec PROFILE -- true",
            "add to ~/.config/awsmfa/config.toml:\n    [roots.2026]\n    profile = \"PROFILE\"",
            ".awsmfa.toml",
        ],
    );
    assert_eq!(w.stub.total_calls(), 0);
    assert_eq!(w.mfa_runs(), 0);
    assert!(w.standin_runs().is_empty());
    // With a profile it runs.
    let (child, _) = w.exec_env(&plain, &["exec", "tf-apps", "--", "env"]);
    assert_session(&w, &child, "tf-apps");
}

// ── the secrets-manager chain ───────────────────────────────────────────────

#[test]
fn doppler_chain_gives_the_command_both_and_the_manager_no_session() {
    let Some(mut w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let root = w.dir("src/tofu-proxmox/live");
    // Leftovers in the user's shell: the manager must not see them either.
    w.env
        .set("AWS_ACCESS_KEY_ID", "AKIASTALESHELLKEY000")
        .set("AWS_PROFILE", "stale-shell-profile");

    let (child, out) = w.exec_env(&root, &["exec", "--", "env"]);

    // The command has the manager's variables…
    assert_eq!(
        child.get("DOPPLER_PROJECT").map(String::as_str),
        Some("infra-project")
    );
    assert_eq!(child.get("DOPPLER_CONFIG").map(String::as_str), Some("prd"));
    assert_eq!(
        child.get("DB_PASSWORD").map(String::as_str),
        Some("from-doppler")
    );
    // …and awsmfa's session, never the manager's conflicting keys.
    assert_session(&w, &child, "tf-proxmox");
    assert!(!child.contains_key("AWS_PROFILE"), "{child:#?}");
    let stdout = out.stdout_str();
    assert!(!stdout.contains(DOPPLER_KEY_ID), "{stdout}");
    assert!(!stdout.contains(DOPPLER_SECRET), "{stdout}");
    assert!(!stdout.contains("AKIASTALESHELLKEY000"), "{stdout}");

    // One warning naming exactly what the manager set; no values.
    let err = out.stderr_str();
    assert!(
        err.contains(
            "awsmfa: warning: the secrets manager set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; \
             awsmfa's session for tf-proxmox replaces them"
        ),
        "{err}"
    );
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    let mut never = w.secret_values();
    never.extend(strings(&[
        DOPPLER_KEY_ID,
        DOPPLER_SECRET,
        "from-doppler",
        &w.stub.last_issued().unwrap().access_key_id,
    ]));
    assert_free_of("stderr", &err, &never);

    // The manager ran once, with exactly the documented flags, and awsmfa
    // innermost; its own environment holds no credentials at all.
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.tool, "doppler");
    let mut want = strings(&["run", "-p", "infra-project", "-c", "prd", "--"]);
    want.push(bin_path());
    assert_eq!(run.args[..want.len()], want, "{run:#?}");
    let first = assert_inner_args(&run.args[want.len()..], "tf-proxmox", &["env"]);
    for var in SESSION_VARS.iter().chain(&["AWS_PROFILE"]) {
        assert!(!run.has_env(var), "the manager got {var}: {run:#?}");
    }
    assert!(
        run.has_env("DOPPLER_TOKEN") && run.has_env("HOME"),
        "{run:#?}"
    );
    assert_free_of("the manager's argv", &run.args.join("\n"), &never);

    // One MFA code and one STS call for the whole chain; the next run reuses it.
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa_runs(), 1);
    let (again, _) = w.exec_env(&root, &["exec", "--", "env"]);
    assert_session(&w, &again, "tf-proxmox");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa_runs(), 1);
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 2);
    for var in SESSION_VARS {
        assert!(!runs[1].has_env(var), "cached run: the manager got {var}");
    }
    // Each hand-over is bound to its own invocation.
    let second = assert_inner_args(&runs[1].args[want.len()..], "tf-proxmox", &["env"]);
    let nonce = |h: &str| h.split_once(':').map(|(_, n)| n.to_string());
    assert_ne!(nonce(&first), nonce(&second), "the nonce was reused");
}

#[test]
fn infisical_chain_gives_the_command_both_and_the_manager_no_session() {
    let Some(w) = World::new(&format!(
        "{PROXMOX_DOPPLER}\n[roots.tofu-edge]\nprofile = \"tf-splunk\"\ninfisical = {{ project_id = \"abc123\", env = \"dev\" }}\n"
    )) else {
        return;
    };
    let apps = w.dir("src/tofu-apps/modules");
    let (child, out) = w.exec_env(&apps, &["exec", "--", "env"]);
    assert_eq!(
        child.get("DB_PASSWORD").map(String::as_str),
        Some("from-infisical")
    );
    assert_session(&w, &child, "tf-apps");
    // Infisical's AWS_PROFILE is dropped like its keys: it would compete.
    assert!(!child.contains_key("AWS_PROFILE"), "{child:#?}");
    let stdout = out.stdout_str();
    assert!(!stdout.contains(INFISICAL_KEY_ID), "{stdout}");
    assert!(!stdout.contains(INFISICAL_SECRET), "{stdout}");
    let err = out.stderr_str();
    assert!(
        err.contains(
            "the secrets manager set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE; \
             awsmfa's session for tf-apps replaces them"
        ),
        "{err}"
    );
    let mut never = w.secret_values();
    never.extend(strings(&[
        INFISICAL_KEY_ID,
        INFISICAL_SECRET,
        "from-infisical",
    ]));
    assert_free_of("stderr", &err, &never);

    let runs = w.standin_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let mut want = strings(&[
        "run",
        "--env",
        "prd",
        "--projectId",
        "6f1c0ffee",
        "--path",
        "/tofu",
        "--",
    ]);
    want.push(bin_path());
    assert_eq!(runs[0].tool, "infisical");
    assert_eq!(runs[0].args[..want.len()], want, "{runs:#?}");
    assert_inner_args(&runs[0].args[want.len()..], "tf-apps", &["env"]);
    for var in SESSION_VARS {
        assert!(!runs[0].has_env(var), "the manager got {var}");
    }
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.mfa_runs(), 1);

    // Without `path`, no --path.
    let edge = w.dir("src/tofu-edge");
    let (child, _) = w.exec_env(&edge, &["exec", "--", "env"]);
    assert_session(&w, &child, "tf-splunk");
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].args[..6],
        strings(&["run", "--env", "dev", "--projectId", "abc123", "--"])
    );
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
}

#[test]
fn exit_codes_and_signals_pass_through_both_layers() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let doppler_root = w.dir("src/tofu-proxmox");
    let infisical_root = w.dir("src/tofu-apps");
    for dir in [&doppler_root, &infisical_root] {
        let out = w.run_in(dir, &["exec", "--", "sh", "-c", "exit 9"]);
        assert_code(&out, 9);
        let out = w.run_in(dir, &["exec", "--", "sh", "-c", "exit 0"]);
        assert_code(&out, 0);
        // Everything execs in turn: the signal ends the very process we started.
        let out = w.run_in(dir, &["exec", "--", "sh", "-c", "kill -TERM $$"]);
        assert_eq!(out.status.signal(), Some(15), "{}", out.dump());
        // A command that does not exist: 127, before the manager even starts.
        let out = w.run_in(dir, &["exec", "--", "no-such-command-here"]);
        assert_code(&out, 127);
        assert!(
            out.stderr_str().contains("no-such-command-here"),
            "{}",
            out.dump()
        );
    }
    let tools: Vec<String> = w.standin_runs().into_iter().map(|r| r.tool).collect();
    assert_eq!(tools.iter().filter(|t| *t == "doppler").count(), 3);
    assert_eq!(tools.iter().filter(|t| *t == "infisical").count(), 3);
    assert_eq!(w.stub.calls("GetSessionToken"), 2, "one per profile");
    assert_eq!(w.mfa_runs(), 2);
}

fn cmdline(pid: u32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline")).ok()
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may hold spaces, so split after the ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn no_process_in_the_chain_has_a_secret_in_its_argv() {
    let Some(mut w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let root = w.dir("src/tofu-proxmox");
    let env_out = w.env.root.join("child-env");
    w.env.set("ENV_OUT", &env_out);
    let mut cmd = w.env.cmd([
        "exec",
        "--",
        "sh",
        "-c",
        "env > \"$ENV_OUT.tmp\" && mv \"$ENV_OUT.tmp\" \"$ENV_OUT\" && exec sleep 30",
    ]);
    cmd.current_dir(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut reaper = Reaper(cmd.spawn().expect("spawn the chain"));
    let pid = reaper.0.id();

    // Wait for the end of the chain: `sleep`, in the very process we started.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if cmdline(pid).is_some_and(|c| c.starts_with(b"sleep\0")) {
            break;
        }
        if let Some(status) = wait_until(&mut reaper.0, Instant::now()) {
            let mut err = String::new();
            use std::io::Read;
            let _ = reaper.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the chain ended early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "the chain never reached sleep");
        thread::sleep(Duration::from_millis(10));
    }
    let child = env_map(&fs::read_to_string(&env_out).expect("the command's environment"));
    assert_session(&w, &child, "tf-proxmox");
    assert_eq!(
        child.get("DB_PASSWORD").map(String::as_str),
        Some("from-doppler")
    );

    let mut secrets = w.secret_values();
    secrets.extend(strings(&[DOPPLER_SECRET]));
    // sleep and each of its ancestors…
    let mut chain = vec![pid];
    let mut p = pid;
    while let Some(parent) = ppid(p).filter(|&q| q > 1) {
        chain.push(parent);
        p = parent;
    }
    assert_eq!(cmdline(pid).unwrap(), b"sleep\x0030\x00");
    for p in &chain {
        let c = String::from_utf8_lossy(&cmdline(*p).unwrap_or_default()).into_owned();
        assert_free_of(&format!("argv of pid {p}"), &c, &secrets);
    }
    // …and every other process on the machine.
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Some(c) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(cmdline)
        {
            let c = String::from_utf8_lossy(&c).into_owned();
            assert_free_of("a process's argv", &c, &secrets);
        }
    }
    // The environment of the process is where the session is.
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let issued = w.stub.last_issued().unwrap();
    assert!(find_bytes(&environ, issued.session_token.as_bytes()).is_some());
    // The argv each link of the chain was started with (doppler's, which names
    // the inner awsmfa and the command) held none either.
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].args.contains(&"--chained".to_string()));
    assert_free_of("doppler's argv", &runs[0].args.join("\n"), &secrets);
    drop(reaper);
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
}

#[test]
fn no_secrets_skips_the_manager() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    for (dir, profile) in [
        (w.dir("src/tofu-proxmox"), "tf-proxmox"),
        (w.dir("src/tofu-apps"), "tf-apps"),
    ] {
        let (child, out) = w.exec_env(&dir, &["exec", "--no-secrets", "--", "env"]);
        assert_session(&w, &child, profile);
        assert!(!child.contains_key("DB_PASSWORD"), "{child:#?}");
        assert!(!child.contains_key("DOPPLER_PROJECT"), "{child:#?}");
        assert!(!out.stderr_str().contains("warning"), "{}", out.dump());
    }
    assert!(w.standin_runs().is_empty());
}

#[test]
fn explicit_profile_uses_the_manager_only_when_it_is_the_roots() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let root = w.dir("src/tofu-proxmox/modules");
    let (child, _) = w.exec_env(&root, &["exec", "tf-proxmox", "--", "env"]);
    assert_session(&w, &child, "tf-proxmox");
    assert_eq!(
        child.get("DB_PASSWORD").map(String::as_str),
        Some("from-doppler")
    );
    assert_eq!(w.standin_runs().len(), 1);

    let (child, out) = w.exec_env(&root, &["exec", "tf-apps", "--", "env"]);
    assert_session(&w, &child, "tf-apps");
    assert!(!child.contains_key("DB_PASSWORD"), "{child:#?}");
    assert!(!out.stderr_str().contains("warning"), "{}", out.dump());
    assert_eq!(w.standin_runs().len(), 1, "no manager for another profile");
    assert_eq!(w.stub.calls("GetSessionToken"), 2);
    assert_eq!(w.mfa_runs(), 2);
}

#[test]
fn duration_reaches_sts_once_through_the_chain() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let root = w.dir("src/tofu-proxmox");
    let (child, _) = w.exec_env(&root, &["exec", "--duration", "2h", "--", "env"]);
    assert_session(&w, &child, "tf-proxmox");
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.last_request().unwrap().duration_seconds, Some(7200));
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 1);
    // The inner awsmfa gets the session minted for 2h, not the duration to mint one.
    assert_eq!(runs[0].args[6], bin_path());
    assert_inner_args(&runs[0].args[7..], "tf-proxmox", &["env"]);
    assert_eq!(w.mfa_runs(), 1);
}

#[test]
fn missing_manager_binary_fails_before_any_mfa() {
    let Some(mut w) = World::with(
        PROXMOX_DOPPLER,
        Opts {
            keys: true,
            standins: false,
            regionless: false,
        },
    ) else {
        return;
    };
    // PATH without any doppler or infisical, whatever this machine has.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("doppler").exists() && !d.join("infisical").exists())
        .collect();
    w.env.set("PATH", std::env::join_paths(dirs).unwrap());

    let doppler_root = w.dir("src/tofu-proxmox");
    let out = w.run_in(&doppler_root, &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "this root runs commands under doppler infra-project/prd",
            "`doppler` is not on PATH",
            "install the Doppler CLI",
            "--no-secrets",
        ],
    );
    let infisical_root = w.dir("src/tofu-apps");
    let out = w.run_in(&infisical_root, &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "infisical 6f1c0ffee env prd path /tofu",
            "`infisical` is not on PATH",
            "install the Infisical CLI",
            "--no-secrets",
        ],
    );
    assert_eq!(w.stub.total_calls(), 0);
    assert_eq!(w.mfa_runs(), 0);
    assert_eq!(w.mfa.runs(), 0, "mfa_process ran");
    assert_eq!(w.status_json(&doppler_root)["session"]["state"], "none");

    // --no-secrets is the way out the message offers.
    let (child, _) = w.exec_env(&doppler_root, &["exec", "--no-secrets", "--", "env"]);
    assert_session(&w, &child, "tf-proxmox");
}

/// What a hostile secrets-manager config points an awsmfa at, and how to tell
/// whether it followed: an AWS config and a config.toml whose profiles' MFA
/// process leaves a marker, a second STS that would answer, its own HOME, an
/// OpenBao that is not there, a region, and an empty `AWSMFA_CHAIN_ENV` (what
/// once told the inner awsmfa which of its variables to distrust).
struct Hostile {
    sts: StsStub,
    marker: PathBuf,
}

impl Hostile {
    fn install(w: &mut World) -> Hostile {
        let sts = StsStub::start();
        sts.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
        let marker = w.env.root.join("hostile-mfa-ran");
        let mfa = w.env.write_script(
            "hostile/bin/mfa",
            &format!(
                "#!/bin/sh\ntouch '{}'\nexec oathtool --totp -b {SEED}\n",
                marker.display()
            ),
        );
        let aws: String = PROFILES
            .iter()
            .map(|p| {
                format!(
                    "[profile {p}]\nregion = eu-north-1\nmfa_serial = {SERIAL}\nmfa_process = {}\n\n",
                    mfa.display()
                )
            })
            .collect();
        let aws_config = w.env.write_file("hostile/aws-config", &aws);
        let toml: String = PROFILES
            .iter()
            .map(|p| format!("[profiles.{p}]\nmfa = \"process:{}\"\n\n", mfa.display()))
            .collect();
        let awsmfa_config = w.env.write_file("hostile/config.toml", &toml);
        let home = w.env.root.join("hostile/home");
        fs::create_dir_all(&home).unwrap();
        let secrets = w.env.write_file(
            "hostile/secrets",
            &format!(
                "AWSMFA_CHAIN_ENV={{}}\nAWS_CONFIG_FILE={}\nAWS_ENDPOINT_URL_STS={}\n\
                 AWSMFA_CONFIG={}\nHOME={}\nBAO_ADDR=http://127.0.0.1:1\nAWS_REGION=eu-north-1\n",
                aws_config.display(),
                sts.url(),
                awsmfa_config.display(),
                home.display()
            ),
        );
        w.env.set("STANDIN_SECRETS", &secrets);
        Hostile { sts, marker }
    }
}

#[test]
fn hostile_manager_config_cannot_steer_the_session() {
    let Some(mut w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let hostile = Hostile::install(&mut w);
    for (dir, profile, tool) in [
        ("src/tofu-proxmox", "tf-proxmox", "doppler"),
        ("src/tofu-apps", "tf-apps", "infisical"),
    ] {
        let dir = w.dir(dir);
        let before = w.stub.calls("GetSessionToken");
        let mfa_before = w.mfa_runs();
        let (child, out) = w.exec_env(&dir, &["exec", "--", "env"]);
        // The session the outer awsmfa minted at the real STS, and nothing else.
        assert_session(&w, &child, profile);
        assert_eq!(
            w.stub.calls("GetSessionToken"),
            before + 1,
            "{tool}: one STS call for the chain\n{}",
            out.dump()
        );
        assert_eq!(w.mfa_runs(), mfa_before + 1, "{tool}: one MFA code");
        assert!(
            !hostile.marker.exists(),
            "{tool}: the manager's MFA process ran\n{}",
            out.dump()
        );
        assert_eq!(
            hostile.sts.total_calls(),
            0,
            "{tool}: the manager's STS was called\n{}",
            out.dump()
        );
        // The profile's region, as the outer awsmfa resolved it, wins over the
        // manager's; the manager's other values are still the command's.
        assert_eq!(
            child.get("AWS_REGION").map(String::as_str),
            Some("us-east-1")
        );
        assert_eq!(
            child.get("AWS_ENDPOINT_URL_STS"),
            Some(&hostile.sts.url()),
            "{child:#?}"
        );
        let runs = w.standin_runs();
        assert_eq!(runs.last().map(|r| r.tool.as_str()), Some(tool));
    }
    assert_eq!(w.standin_runs().len(), 2);
}

#[test]
fn without_a_session_store_the_chain_mints_once() {
    let Some(mut w) = World::with(
        PROXMOX_DOPPLER,
        Opts {
            keys: true,
            standins: true,
            regionless: true,
        },
    ) else {
        return;
    };
    // The Secret Service without a session bus: no cache, but commands run.
    w.env
        .set("AWSMFA_SESSION_KEYRING", "secret-service")
        .unset("DBUS_SESSION_BUS_ADDRESS");
    // A Doppler config for infrastructure often carries the region; an
    // Infisical one may carry an endpoint for a local stack.
    let secrets = w.env.write_file(
        "manager-secrets",
        "AWS_REGION=eu-west-1\nAWS_DEFAULT_REGION=eu-west-1\nAWS_ENDPOINT_URL_STS=http://127.0.0.1:9\n",
    );
    w.env.set("STANDIN_SECRETS", &secrets);
    for (dir, profile) in [
        ("src/tofu-proxmox", "tf-proxmox"),
        ("src/tofu-apps", "tf-apps"),
    ] {
        let dir = w.dir(dir);
        for run in 1..=2 {
            // Without a cache each run mints on the profile's device.
            as_if_a_step_passed(&w.env, &w.stub);
            let before = w.stub.calls("GetSessionToken");
            let mfa_before = w.mfa_runs();
            let (child, out) = w.exec_env(&dir, &["exec", "--", "env"]);
            assert_session(&w, &child, profile);
            assert_eq!(
                w.stub.calls("GetSessionToken"),
                before + 1,
                "{profile} run {run}: one STS call for the chain\n{}",
                out.dump()
            );
            assert_eq!(w.mfa_runs(), mfa_before + 1, "{profile} run {run}");
            let err = out.stderr_str();
            assert_eq!(
                err.matches("sessions will not be cached").count(),
                1,
                "only the outer awsmfa looks for a store\n{err}"
            );
            // The manager's values still reach the command: they are its settings.
            assert_eq!(
                child.get("AWS_REGION").map(String::as_str),
                Some("eu-west-1")
            );
            assert_eq!(
                child.get("AWS_DEFAULT_REGION").map(String::as_str),
                Some("eu-west-1")
            );
            assert_eq!(
                child.get("AWS_ENDPOINT_URL_STS").map(String::as_str),
                Some("http://127.0.0.1:9")
            );
            assert!(
                !child.keys().any(|k| k.starts_with("AWSMFA_")
                    && k != "AWSMFA_PROFILE"
                    && k != "AWSMFA_KEYRING"
                    && k != "AWSMFA_SESSION_KEYRING"
                    && k != "AWSMFA_KEYRING_SERVICE"),
                "{child:#?}"
            );
        }
    }
    assert_eq!(w.stub.calls("GetSessionToken"), 4);
    assert_eq!(w.mfa_runs(), 4, "one MFA code per chain, none cached");
}

/// What a direct test of the inner awsmfa hands it.
const HANDED_KEY_ID: &str = "ASIAHANDEDOVER000001";
const HANDED_SECRET: &str = "handed/SecretKeyValue000000000000000000000";
const HANDED_TOKEN: &str = "handedOverSessionToken0000000000000000000000";
/// The descriptor those tests put a hand-over on.
const HANDOVER_FD: i32 = 5;

fn handover_payload(nonce: &str, profile: &str, expiration: u64) -> Vec<u8> {
    serde_json::json!({
        "v": 2,
        "nonce": nonce,
        "profile": profile,
        "region": "eu-west-3",
        "session": {"creds": {
            "access_key_id": HANDED_KEY_ID,
            "secret_access_key": HANDED_SECRET,
            "session_token": HANDED_TOKEN,
            "expiration": expiration,
        }},
    })
    .to_string()
    .into_bytes()
}

enum Fd5 {
    /// Nothing at fd 5.
    Closed,
    /// A pipe holding these bytes, its write end closed.
    Pipe(Vec<u8>),
    /// The same, with the write end still open (in this test).
    OpenPipe(Vec<u8>),
}

/// awsmfa `args` as a secrets manager would start the inner one, with `fd5`
/// as the hand-over; stdin from `stdin` when given.
fn run_inner(w: &World, args: &[&str], fd5: Fd5, stdin: Option<&Path>) -> Output {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let mut cmd = w.env.cmd(args);
    if let Some(path) = stdin {
        cmd.stdin(fs::File::open(path).unwrap());
    }
    let (data, keep_writer) = match fd5 {
        Fd5::Closed => return w.env.run_cmd(cmd),
        Fd5::Pipe(d) => (d, false),
        Fd5::OpenPipe(d) => (d, true),
    };
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    writer.write_all(&data).expect("fill the pipe");
    let writer = keep_writer.then_some(writer);
    let raw = reader.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe and touch only descriptors.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if raw == HANDOVER_FD {
                let flags = libc::fcntl(raw, libc::F_GETFD);
                flags >= 0 && libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
            } else {
                libc::dup2(raw, HANDOVER_FD) == HANDOVER_FD
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = w.env.run_cmd(cmd);
    drop((reader, writer));
    out
}

#[test]
fn inner_awsmfa_refuses_a_missing_or_foreign_hand_over() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let nonce = "0123456789abcdef0123456789abcdef";
    let other_nonce = "fedcba9876543210fedcba9876543210";
    let at5 = format!("{HANDOVER_FD}:{nonce}");
    let later = unix_now() + 3600;
    let regular = w.env.write_file(
        "not-a-pipe",
        &String::from_utf8(handover_payload(nonce, "tf-proxmox", later)).unwrap(),
    );
    let never = strings(&[HANDED_KEY_ID, HANDED_SECRET, HANDED_TOKEN]);
    // One refusal: `exec tf-proxmox --chained HANDOVER -- env` fails with `words`.
    let refused = |what: &str, handover: &str, fd5: Fd5, stdin: Option<&Path>, words: &[&str]| {
        let args = ["exec", "tf-proxmox", "--chained", handover, "--", "env"];
        let out = run_inner(&w, &args, fd5, stdin);
        let err = fails_with(&out, words);
        assert_free_of(&format!("stderr ({what})"), &err, &never);
        assert_eq!(w.stub.total_calls(), 0, "{what}: STS was called");
        assert_eq!(w.mfa_runs(), 0, "{what}: an MFA code was asked for");
    };
    refused(
        "no such descriptor",
        &format!("9:{nonce}"),
        Fd5::Closed,
        None,
        &[
            "the session hand-over from the outer awsmfa is missing (fd 9 is not open)",
            "the secrets manager did not pass it on",
            "Run the command again",
            "--no-secrets",
        ],
    );
    refused(
        "a regular file on stdin",
        &format!("0:{nonce}"),
        Fd5::Closed,
        Some(&regular),
        &["fd 0 is not a pipe but a regular file", "--no-secrets"],
    );
    refused(
        "another invocation's nonce",
        &at5,
        Fd5::Pipe(handover_payload(other_nonce, "tf-proxmox", later)),
        None,
        &["written for another command line", "--no-secrets"],
    );
    refused(
        "another profile",
        &at5,
        Fd5::Pipe(handover_payload(nonce, "tf-apps", later)),
        None,
        &["is for profile \"tf-apps\", not tf-proxmox", "--no-secrets"],
    );
    refused(
        "an expired session",
        &at5,
        Fd5::Pipe(handover_payload(nonce, "tf-proxmox", unix_now() - 60)),
        None,
        &["expired at", "Run the command again"],
    );
    refused(
        "a write end still open",
        &at5,
        Fd5::OpenPipe(handover_payload(nonce, "tf-proxmox", later)),
        None,
        &["still open for writing", "--no-secrets"],
    );
    refused(
        "an empty pipe",
        &at5,
        Fd5::Pipe(Vec::new()),
        None,
        &["fd 5 is empty", "--no-secrets"],
    );
    refused(
        "not JSON",
        &at5,
        Fd5::Pipe(format!("{HANDED_SECRET}\n").into_bytes()),
        None,
        &["is not what the outer awsmfa writes", "--no-secrets"],
    );
    refused(
        "over the size cap",
        &at5,
        Fd5::Pipe(vec![b' '; 20 * 1024]),
        None,
        &["holds more than 16384 bytes", "--no-secrets"],
    );
    refused(
        "a malformed argument",
        "9:abcd",
        Fd5::Closed,
        None,
        &["--chained takes the FD:NONCE", "awsmfa exec PROFILE -- CMD"],
    );
}

#[test]
fn inner_awsmfa_takes_exactly_what_was_handed_over() {
    let Some(mut w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    // Nothing it could read would work: it must read nothing.
    let broken = w.env.write_file("broken.toml", "[roots\n");
    let no_home = w.env.root.join("no-such-home");
    w.env
        .set("AWSMFA_CONFIG", &broken)
        .set("AWS_CONFIG_FILE", &broken)
        .set("HOME", &no_home)
        .set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
        .set("AWS_REGION", "eu-north-1")
        .set("AWS_ACCESS_KEY_ID", "AKIAFROMTHEMANAGER00");
    let nonce = "00112233445566778899aabbccddeeff";
    let out = run_inner(
        &w,
        &[
            "exec",
            "tf-proxmox",
            "--chained",
            &format!("{HANDOVER_FD}:{nonce}"),
            "--",
            "sh",
            "-c",
            &format!("[ -e /proc/$$/fd/{HANDOVER_FD} ] && echo HANDOVER_FD_LEAKED=1; exec env"),
        ],
        Fd5::Pipe(handover_payload(nonce, "tf-proxmox", unix_now() + 3600)),
        None,
    );
    assert_ok(&out);
    assert_no_panic(&out);
    let child = env_map(&out.stdout_str());
    assert!(
        !child.contains_key("HANDOVER_FD_LEAKED"),
        "the command inherited the hand-over"
    );
    assert_eq!(
        child.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some(HANDED_KEY_ID)
    );
    assert_eq!(
        child.get("AWS_SECRET_ACCESS_KEY").map(String::as_str),
        Some(HANDED_SECRET)
    );
    assert_eq!(
        child.get("AWS_SESSION_TOKEN").map(String::as_str),
        Some(HANDED_TOKEN)
    );
    assert_eq!(
        child.get("AWSMFA_PROFILE").map(String::as_str),
        Some("tf-proxmox")
    );
    assert_eq!(
        child.get("AWS_REGION").map(String::as_str),
        Some("eu-west-3")
    );
    assert_eq!(
        child.get("AWS_DEFAULT_REGION").map(String::as_str),
        Some("eu-west-3")
    );
    let err = out.stderr_str();
    assert!(
        err.contains("the secrets manager set AWS_ACCESS_KEY_ID; awsmfa's session for tf-proxmox replaces them"),
        "{err}"
    );
    assert_free_of("stderr", &err, &strings(&[HANDED_SECRET, HANDED_TOKEN]));
    assert_eq!(w.stub.total_calls(), 0);
    assert_eq!(w.mfa_runs(), 0);
}

// ── bad configuration ───────────────────────────────────────────────────────

#[test]
fn malformed_config_toml_names_file_and_line() {
    let w =
        World::files_only("wrap = [\"tofu\"]\n\n[roots.tofu-proxmox\nprofile = \"tf-proxmox\"\n");
    let dir = w.dir("src/tofu-proxmox");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["exec", "--", "true"],
    ] {
        let out = w.run_in(&dir, args);
        fails_with(&out, &["awsmfa/config.toml:3"]);
    }
    assert_eq!(w.stub.total_calls(), 0);
}

#[test]
fn unknown_key_in_a_root_names_file_and_line() {
    let w = World::files_only(
        "[roots.a]\nprofile = \"tf-apps\"\n\n[roots.tofu-proxmox]\nprofile = \"tf-proxmox\"\ndopler = \"infra/prd\"\n",
    );
    let dir = w.dir("src/tofu-proxmox");
    for args in [&["status"][..], &["exec", "--", "true"], &["list"]] {
        let out = w.run_in(&dir, args);
        fails_with(
            &out,
            &["awsmfa/config.toml:6", "unknown field `dopler`", "doppler"],
        );
    }
    assert_eq!(w.stub.total_calls(), 0);
}

#[test]
fn relative_path_key_is_refused_with_file_and_line() {
    // `src/tofu-x` relative to what? It would silently never match.
    for key in ["src/tofu-x", "~bob/src/tofu-x"] {
        let w = World::files_only(&format!(
            "[roots.ok]\nprofile = \"tf-apps\"\n\n[roots.\"{key}\"]\nprofile = \"tf-proxmox\"\n"
        ));
        let dir = w.dir("src/tofu-x");
        for args in [&["status"][..], &["exec", "--", "true"]] {
            let out = w.run_in(&dir, args);
            fails_with(
                &out,
                &[
                    &format!("awsmfa/config.toml:4: [roots.\"{key}\"]"),
                    "must start with / or ~/",
                ],
            );
        }
    }
}

#[test]
fn root_mapped_to_a_missing_profile_names_the_line_and_profile() {
    let Some(w) = World::new(
        "[roots.tofu-apps]\nprofile = \"tf-apps\"\n\n[roots.tofu-proxmox]\nprofile = \"tf-proxmx\"\ndoppler = \"infra-project/prd\"\n",
    ) else {
        return;
    };
    let dir = w.dir("src/tofu-proxmox/modules");
    let out = w.run_in(&dir, &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "~/.config/awsmfa/config.toml:4:",
            "root ~/src/tofu-proxmox maps to profile tf-proxmx, which is not in ~/.aws/config",
        ],
    );
    // A committed file is named the same way.
    w.dir("src/repo");
    let file = w.file("src/repo/.awsmfa.toml", "\nprofile = \"nope\"\n");
    w.allow(file.parent().unwrap());
    let out = w.run_in(file.parent().unwrap(), &["exec", "--", "true"]);
    fails_with(
        &out,
        &[
            "~/src/repo/.awsmfa.toml:2:",
            "maps to profile nope, which is not in ~/.aws/config",
        ],
    );
    assert_eq!(w.stub.total_calls(), 0);
    assert_eq!(w.mfa_runs(), 0);
    assert!(w.standin_runs().is_empty(), "nothing ran");
    // status still works there and says what is wrong.
    let s = w.status_json(&dir);
    assert_eq!(s["profile"], "tf-proxmx");
    assert_eq!(s["session"]["state"], "unusable");
    let problem = s["session"]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("tf-proxmx"), "{s:#}");
}

#[test]
fn doppler_value_must_be_project_slash_config() {
    let w = World::files_only("");
    let dir = w.dir("src/tofu-proxmox");
    for value in ["infra-project", "infra/prd/x", "/prd", "infra/"] {
        w.env.write_awsmfa_config(&format!(
            "[roots.tofu-proxmox]\nprofile = \"tf-proxmox\"\ndoppler = \"{value}\"\n"
        ));
        for args in [&["status"][..], &["exec", "--", "true"]] {
            let out = w.run_in(&dir, args);
            fails_with(
                &out,
                &[
                    "awsmfa/config.toml:3",
                    &format!("doppler = \"{value}\""),
                    "PROJECT/CONFIG",
                ],
            );
        }
    }
    // The same check in a committed file, when it is allowed.
    w.env.write_awsmfa_config("");
    let file = w.file(
        "src/repo/.awsmfa.toml",
        "profile = \"tf-file\"\ndoppler = \"noslash\"\n",
    );
    let out = w.run_in(file.parent().unwrap(), &["allow"]);
    fails_with(&out, &[&format!("{}:2", file.display()), "PROJECT/CONFIG"]);
}

#[test]
fn malformed_committed_file_names_its_path_and_line() {
    let w = World::files_only("");
    let sub = w.dir("src/repo/modules/net");
    let file = w.file(
        "src/repo/.awsmfa.toml",
        "profile = \"tf-file\"\n\ndoppler = infra/prd\n",
    );
    // A file is parsed when it is allowed: that is where its errors are told.
    let out = w.run_in(&sub, &["allow"]);
    fails_with(&out, &[&format!("{}:3", file.display())]);
    // An unknown key, and a file that is not a root at all.
    fs::write(&file, "profile = \"tf-file\"\nwrap = [\"tofu\"]\n").unwrap();
    let out = w.run_in(&sub, &["allow"]);
    fails_with(
        &out,
        &[&format!("{}:2", file.display()), "unknown field `wrap`"],
    );
    fs::write(&file, "# nothing here\n").unwrap();
    let out = w.run_in(&sub, &["allow"]);
    fails_with(&out, &[&file.display().to_string(), "profile"]);
    // Unallowed, it only stands in the way of `exec` without a profile; status
    // names it.
    let out = w.run_in(&sub, &["exec", "--", "true"]);
    fails_with(&out, &["~/src/repo/.awsmfa.toml is not allowed"]);
    let s = w.status_json(&sub);
    assert_eq!(s["root_files"][0]["state"], "not_allowed", "{s:#}");
    assert_eq!(w.stub.total_calls(), 0);
}

// ── status and list ─────────────────────────────────────────────────────────

#[test]
fn status_inside_a_root_says_everything_that_applies() {
    let Some(w) = World::new(PROXMOX_DOPPLER) else {
        return;
    };
    let live = w.dir("src/tofu-proxmox/live");
    let text = w.status_text(&live);
    for line in [
        "directory  ~/src/tofu-proxmox/live",
        "root       ~/src/tofu-proxmox  ([roots.tofu-proxmox] in ~/.config/awsmfa/config.toml)",
        "profile    tf-proxmox",
        "secrets    doppler infra-project/prd",
        "wraps      terragrunt tofu terraform",
        "session    none",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    let s = w.status_json(&live);
    assert_eq!(s["directory"], "~/src/tofu-proxmox/live");
    assert_eq!(s["root"]["dir"], "~/src/tofu-proxmox");
    assert_eq!(
        s["root"]["matched_by"],
        "[roots.tofu-proxmox] in ~/.config/awsmfa/config.toml"
    );
    assert_eq!(s["profile"], "tf-proxmox");
    assert_eq!(s["secrets"], "doppler infra-project/prd");
    assert_eq!(
        s["wrap"],
        serde_json::json!(["terragrunt", "tofu", "terraform"])
    );
    assert_eq!(s["session"]["state"], "none");
    assert_eq!(s["session"]["seconds_left"], Value::Null);
    assert_eq!(s["unmapped_root"], Value::Null);

    w.ok_in(&live, &["exec", "--", "true"]);
    let issued = w.stub.last_issued().unwrap();
    let s = w.status_json(&live);
    assert_eq!(s["session"]["state"], "active");
    assert_eq!(s["session"]["expires"], issued.expiration_text.as_str());
    let left = s["session"]["seconds_left"].as_u64().expect("seconds_left");
    assert!((3500..=3600).contains(&left), "{left}");
    let text = w.status_text(&live);
    let session = text
        .lines()
        .find(|l| l.starts_with("session    "))
        .unwrap_or_default();
    assert!(
        session.ends_with(" left") && (session.contains("59m") || session.contains("1h")),
        "{text}"
    );

    // Infisical, the path-key root and `wrap` honoured.
    w.env
        .write_awsmfa_config(&format!("wrap = [\"tofu\", \"make\"]\n{PROXMOX_DOPPLER}"));
    let s = w.status_json(&w.dir("src/tofu-apps"));
    assert_eq!(s["secrets"], "infisical 6f1c0ffee env prd path /tofu");
    assert_eq!(s["wrap"], serde_json::json!(["tofu", "make"]));
    assert_eq!(s["session"]["state"], "none");
    let text = w.status_text(&w.dir("src/tf-splunk-aws/x"));
    assert!(text.contains("\nsecrets    none\n"), "{text}");
    assert!(text.contains("\nwraps      tofu make\n"), "{text}");
    assert!(
        text.contains("([roots.\"~/src/tf-splunk-aws\"] in ~/.config/awsmfa/config.toml)"),
        "{text}"
    );
    // The session of tf-proxmox is still there under the new config.
    assert_eq!(w.status_json(&live)["session"]["state"], "active");
}

#[test]
fn list_shows_each_profiles_roots() {
    let Some(w) = World::new(&format!(
        "{PROXMOX_DOPPLER}\n[roots.tofu-proxmox-dr]\nprofile = \"tf-proxmox\"\n"
    )) else {
        return;
    };
    let out = w.ok_in(&w.env.work, &["list", "--json"]);
    let rows: Value = serde_json::from_str(&out.stdout_str()).unwrap();
    let roots_of = |p: &str| -> Value {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["profile"] == p)
            .unwrap_or_else(|| panic!("no {p} in {rows:#}"))["roots"]
            .clone()
    };
    assert_eq!(
        roots_of("tf-proxmox"),
        serde_json::json!(["tofu-proxmox", "tofu-proxmox-dr"])
    );
    assert_eq!(roots_of("tf-apps"), serde_json::json!(["tofu-apps"]));
    assert_eq!(
        roots_of("tf-splunk"),
        serde_json::json!(["~/src/tf-splunk-aws"])
    );
    assert_eq!(roots_of("tf-file"), serde_json::json!([]));

    let text = w.ok_in(&w.env.work, &["list"]).stdout_str();
    let line = |p: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(p))
            .unwrap_or_else(|| panic!("no {p} in\n{text}"))
            .to_string()
    };
    assert!(text.lines().next().unwrap().ends_with("ROOTS"), "{text}");
    assert!(
        line("tf-proxmox").ends_with("  tofu-proxmox,tofu-proxmox-dr"),
        "{text}"
    );
    assert!(
        line("tf-splunk").ends_with("  ~/src/tf-splunk-aws"),
        "{text}"
    );
    assert!(line("tf-file").ends_with("  -"), "{text}");
}

#[test]
fn status_survives_a_reader_that_went_away() {
    // `awsmfa status | head -1`: the pipe closes before awsmfa writes.
    let w = World::files_only(PROXMOX_DOPPLER);
    let dir = w.dir("src/tofu-proxmox");
    for args in [&["status"][..], &["status", "--json"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut cmd = w.env.cmd(args);
        cmd.current_dir(&dir)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn status");
        let err = support::process::Collector::new(child.stderr.take());
        let status = wait_until(&mut child, Instant::now() + TIMEOUT).expect("status hung");
        let err = String::from_utf8_lossy(&err.finish(Duration::from_secs(2))).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // Ended quietly: done, or stopped by SIGPIPE as `cat` or `rg` would be.
        let quiet = status.code() == Some(0)
            || std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGPIPE);
        assert!(quiet, "{args:?}: {status:?} {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

// ── the stand-ins themselves ────────────────────────────────────────────────

#[test]
fn standins_accept_only_the_documented_flags() {
    let w = World::files_only("");
    let run = |tool: &str, args: &[&str]| {
        let mut cmd = w.env.command(standins_dir().join(tool));
        cmd.args(args);
        w.env.run_cmd(cmd)
    };
    let print = [
        "sh",
        "-c",
        "echo \"$DB_PASSWORD $AWS_ACCESS_KEY_ID\"; exit 5",
    ];
    let with = |flags: &[&'static str]| -> Vec<&'static str> {
        flags.iter().copied().chain(print).collect()
    };

    let out = run("doppler", &with(&["run", "-p", "p", "-c", "prd", "--"]));
    assert_code(&out, 5);
    assert_eq!(out.stdout_str(), format!("from-doppler {DOPPLER_KEY_ID}\n"));
    let out = run(
        "infisical",
        &with(&[
            "run",
            "--env",
            "prd",
            "--projectId",
            "x",
            "--path",
            "/a",
            "--",
        ]),
    );
    assert_code(&out, 5);
    assert_eq!(
        out.stdout_str(),
        format!("from-infisical {INFISICAL_KEY_ID}\n")
    );
    // Doppler keeps an inherited value only when --preserve-env= names it.
    let mut cmd = w.env.command(standins_dir().join("doppler"));
    cmd.args(with(&[
        "run",
        "-p",
        "p",
        "-c",
        "prd",
        "--preserve-env=DB_PASSWORD",
        "--",
    ]))
    .env("DB_PASSWORD", "mine");
    let out = w.env.run_cmd(cmd);
    assert_code(&out, 5);
    assert_eq!(out.stdout_str(), format!("mine {DOPPLER_KEY_ID}\n"));

    let refused: &[(&str, &[&str])] = &[
        ("doppler", &["run", "-c", "prd", "--", "true"]),
        ("doppler", &["run", "-p", "p", "--", "true"]),
        ("doppler", &["run", "-p", "p", "-c", "prd", "true"]),
        ("doppler", &["run", "-p", "p", "-c", "prd", "--"]),
        (
            "doppler",
            &["run", "--project", "p", "-c", "prd", "--", "true"],
        ),
        (
            "doppler",
            &[
                "run",
                "-p",
                "p",
                "-c",
                "prd",
                "--preserve-env",
                "--",
                "true",
            ],
        ),
        ("doppler", &["secrets", "download"]),
        ("doppler", &[]),
        ("infisical", &["run", "--projectId", "x", "--", "true"]),
        ("infisical", &["run", "--env", "prd", "--", "true"]),
        (
            "infisical",
            &["run", "--env", "prd", "--projectId", "x", "true"],
        ),
        (
            "infisical",
            &["run", "--env", "prd", "--project-id", "x", "--", "true"],
        ),
        (
            "infisical",
            &[
                "run",
                "--env",
                "prd",
                "--projectId",
                "x",
                "--path",
                "a",
                "--",
                "true",
            ],
        ),
        ("infisical", &["export"]),
    ];
    for (tool, args) in refused {
        let out = run(tool, args);
        assert_code(&out, 1);
        assert!(!out.stderr_str().is_empty(), "{tool} {args:?}: no message");
        assert!(out.stdout.is_empty(), "{tool} {args:?}\n{}", out.dump());
    }
    // No token, no secrets.
    let mut cmd = w.env.command(standins_dir().join("doppler"));
    cmd.args(["run", "-p", "p", "-c", "prd", "--", "true"])
        .env_remove("DOPPLER_TOKEN");
    let out = w.env.run_cmd(cmd);
    assert_code(&out, 1);
    assert!(out.stderr_str().contains("token"), "{}", out.dump());

    // Every run, refused or not, is in the log.
    let runs = w.standin_runs();
    assert_eq!(runs.len(), 3 + refused.len() + 1);
    assert_eq!(
        runs[0].args,
        strings(&with(&["run", "-p", "p", "-c", "prd", "--"]))
    );
    assert!(runs[2].has_env("DB_PASSWORD") && runs[2].has_env("STANDIN_LOG"));
}
