//! awsmfa in real interactive zsh, bash and fish, each on its own terminal
//! (`support::Pty`) with an isolated HOME whose rc file evals `awsmfa init`.
//!
//! Every test starts its shells with exactly the variables of its `Env` (no
//! AWS_* at all: the profiles carry `endpoint_url`, and ~/.aws/config is the
//! default path), the stand-ins `terragrunt` and `tofu` first on PATH, then the
//! awsmfa binary's directory. Commands typed into a shell are followed by a
//! `printf` whose output (`SYNC-n`) differs from its echo, so the tests know
//! when a command finished; the prompt is `<<P:…:P>>` around the awsmfa
//! segment, so every prompt's segment can be read off the terminal. Results
//! the assertions look at go to files in the Env (`Shell::capture`).

mod support;

use std::cell::{Cell, RefCell};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const KEY_PROXMOX: &str = "AKIASHELLTESTPROX001";
const SECRET_PROXMOX: &str = "shellsecretproxmox/0123456789abcdefGHIJKLMN";
const KEY_RUNS_ON: &str = "AKIASHELLTESTRUNS001";
const SECRET_RUNS_ON: &str = "shellsecretrunson/0123456789abcdefGHIJKLMNO";
/// The session length both profiles ask for (`session_ttl = 45m`).
const SESSION_SECS: u64 = 45 * 60;
/// How long one command in a shell may take before the test fails.
const T: Duration = TIMEOUT;

use support::shell::Kind;

/// Single quotes that mean the same in all three shells (test paths hold no
/// quote or backslash).
fn q(s: impl AsRef<Path>) -> String {
    let s = s.as_ref().to_str().expect("UTF-8 path").to_string();
    assert!(!s.contains(['\'', '\\']), "unquotable test path {s:?}");
    format!("'{s}'")
}

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

fn awsmfa_dir() -> PathBuf {
    support::env::awsmfa_bin()
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// The text awsmfa shows for `left` seconds of session (see `shell::prompt`).
fn ttl_text(left: i64, refresh: i64) -> String {
    if left <= 0 {
        return "expired".into();
    }
    let mins = left / 60;
    let text = if mins >= 60 {
        format!("{}h{:02}m", mins / 60, mins % 60)
    } else {
        format!("{mins}m")
    };
    if left < refresh { text + "!" } else { text }
}

/// One test's world: an STS stub, two profiles with stored keys, two mapped
/// roots and a directory outside any root.
struct World {
    env: Env,
    stub: StsStub,
    proxmox: PathBuf,
    runs_on: PathBuf,
    outside: PathBuf,
    /// Where `Shell::capture` writes.
    out: PathBuf,
}

impl World {
    fn new() -> Option<World> {
        if !keyutils_available() {
            return None;
        }
        require("oathtool (Debian package oathtool)", which("oathtool"))?;
        let stub = StsStub::start();
        stub.add_user(KEY_PROXMOX, SECRET_PROXMOX)
            .add_user(KEY_RUNS_ON, SECRET_RUNS_ON)
            .add_mfa(&mfa_device("tf-proxmox"), SEED)
            .add_mfa(&mfa_device("tf-runs-on"), SEED);
        let mut env = Env::new();
        // ~/.aws/config is the default path anyway: the shells get no AWS_* at all.
        env.unset("AWS_CONFIG_FILE")
            .unset("AWS_SHARED_CREDENTIALS_FILE")
            .set("TERM", "xterm")
            .prepend_path(awsmfa_dir())
            .prepend_path(standins());
        let w = World {
            proxmox: env.work.join("tofu-proxmox"),
            runs_on: env.work.join("tofu-runs-on"),
            outside: env.work.join("elsewhere"),
            out: env.root.join("out"),
            env,
            stub,
        };
        w.write_profiles("45m", "45m");
        w.write_settings("");
        for d in [&w.proxmox, &w.runs_on, &w.outside, &w.out] {
            fs::create_dir_all(d).expect("create test dir");
        }
        for (profile, key, secret) in [
            ("tf-proxmox", KEY_PROXMOX, SECRET_PROXMOX),
            ("tf-runs-on", KEY_RUNS_ON, SECRET_RUNS_ON),
        ] {
            let mut cmd = w.env.cmd(["add", profile, "--from-env"]);
            cmd.env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            assert_ok(&w.env.run_cmd(cmd));
        }
        Some(w)
    }

    /// ~/.aws/config: both profiles, with these `session_ttl`s.
    fn write_profiles(&self, proxmox_ttl: &str, runs_on_ttl: &str) {
        let profile = |name: &str, ttl: &str| {
            format!(
                "[profile {name}]\nregion = eu-central-1\nmfa_serial = {}\n\
                 mfa_process = oathtool --totp -b {SEED}\nsession_ttl = {ttl}\n\
                 endpoint_url = {}\n\n",
                mfa_device(name),
                self.stub.url()
            )
        };
        self.env.write_aws_config(
            &(profile("tf-proxmox", proxmox_ttl) + &profile("tf-runs-on", runs_on_ttl)),
        );
    }

    /// config.toml: `top` (top-level keys), then the two roots.
    fn write_settings(&self, top: &str) {
        self.env.write_awsmfa_config(&format!(
            "{top}\n[roots.tofu-proxmox]\nprofile = \"tf-proxmox\"\n\n\
             [roots.tofu-runs-on]\nprofile = \"tf-runs-on\"\n"
        ));
    }

    fn get_session_tokens(&self) -> usize {
        self.stub.calls("GetSessionToken")
    }

    /// Every secret that must never reach the shell or the disk.
    fn secrets(&self) -> Vec<String> {
        let mut s = self.stub.issued_secrets();
        s.push(SECRET_PROXMOX.into());
        s.push(SECRET_RUNS_ON.into());
        s
    }
}

/// Lines added to the rc file around `awsmfa init`.
#[derive(Default)]
struct Rc {
    before: String,
    after: String,
    /// Where the shell starts (default: `work/`, outside any root).
    cwd: Option<PathBuf>,
    /// What loads awsmfa instead of the `awsmfa init` line (a plugin).
    load: Option<String>,
}

impl Rc {
    fn before(text: &str) -> Rc {
        Rc {
            before: text.into(),
            ..Rc::default()
        }
    }
}

struct Shell<'w> {
    kind: Kind,
    w: &'w World,
    pty: Pty,
    n: Cell<u32>,
    /// The awsmfa segment of the last prompt seen.
    segment: RefCell<String>,
}

impl<'w> Shell<'w> {
    /// Writes the rc file and starts the interactive shell; `None` when the
    /// shell is missing (after the skip/fail rule).
    fn start(w: &'w World, kind: Kind, rc: Rc) -> Option<Shell<'w>> {
        let bin = kind.binary()?;
        let Rc {
            before,
            after,
            cwd,
            load,
        } = rc;
        match kind {
            Kind::Bash => {
                let load = load.as_deref().unwrap_or("eval \"$(awsmfa init bash)\"");
                w.env.write_file(
                    w.env.home.join(".bashrc"),
                    &format!(
                        "PS1='<<P:${{awsmfa_prompt}}:P>> '\nPS2='> '\n{before}\n{load}\n{after}\n"
                    ),
                );
            }
            Kind::Zsh => {
                let load = load.as_deref().unwrap_or("eval \"$(awsmfa init zsh)\"");
                w.env.write_file(
                    w.env.home.join(".zshrc"),
                    &format!(
                        "autoload -Uz compinit && compinit -u\nsetopt prompt_subst\n\
                         PROMPT='<<P:${{awsmfa_prompt}}:P>> '\nRPROMPT=''\n{before}\n\
                         {load}\n{after}\n"
                    ),
                );
            }
            Kind::Fish => {
                let load = load.as_deref().unwrap_or("awsmfa init fish | source");
                w.env.write_file(
                    w.env.config_home.join("fish/config.fish"),
                    &format!(
                        "set -g fish_greeting ''\n{before}\n{load}\n\
                         function fish_prompt\n    printf '<<P:%s:P>> ' (awsmfa_prompt_info)\nend\n\
                         {after}\n"
                    ),
                );
            }
        }
        let mut cmd = w.env.command(bin);
        cmd.arg("-i");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let pty = Pty::spawn(
            cmd,
            PtyOpts {
                cols: 200,
                rows: 50,
                ..PtyOpts::default()
            },
        );
        let sh = Shell {
            kind,
            w,
            pty,
            n: Cell::new(0),
            segment: RefCell::new(String::new()),
        };
        sh.pty.expect_ok(":P>>", T);
        sh.run("true");
        Some(sh)
    }

    /// Waits for the next prompt and remembers its segment; returns the
    /// terminal text up to it.
    fn next_prompt(&self) -> String {
        let text = self.pty.expect_ok(":P>>", T);
        let start = text
            .rfind("<<P:")
            .unwrap_or_else(|| panic!("no prompt start in {text:?}"));
        *self.segment.borrow_mut() = text[start + 4..text.len() - 4].to_string();
        text
    }

    /// Types `line` and waits until it ran and the next prompt is shown.
    /// Returns what the terminal showed meanwhile (echo included).
    fn run(&self, line: &str) -> String {
        let n = self.n.get() + 1;
        self.n.set(n);
        self.pty
            .send_line(&format!("{line}; printf '%s-%s\\n' SYNC {n}"));
        let mut seen = self.pty.expect_ok(&format!("SYNC-{n}\r\n"), T);
        seen.push_str(&self.next_prompt());
        seen
    }

    /// Types `line` alone (so `$?` is its status when the prompt hooks run)
    /// and waits for the next prompt.
    fn run_bare(&self, line: &str) -> String {
        self.pty.send_line(line);
        self.next_prompt()
    }

    /// Runs `cmd` with stdout and stderr into a file; returns what it holds.
    fn capture(&self, cmd: &str) -> String {
        let file = self
            .w
            .out
            .join(format!("{}-{}", self.kind.name(), self.n.get() + 1));
        let line = match self.kind {
            Kind::Bash | Kind::Zsh => format!("{{ {cmd}; }} >{} 2>&1", q(&file)),
            Kind::Fish => format!("begin; {cmd}; end >{} 2>&1", q(&file)),
        };
        self.run(&line);
        fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }

    /// Drops whatever is on the command line (Ctrl-U clears it in all three
    /// shells; Ctrl-C does not redraw the prompt in fish) and resynchronises.
    fn abandon_line(&self) {
        self.pty.send("\x15");
        self.run("true");
    }

    fn cd(&self, dir: &Path) -> String {
        self.run(&format!("cd {}", q(dir)))
    }

    fn segment(&self) -> String {
        self.segment.borrow().clone()
    }

    /// `type NAME` says it is a function (in fish, `functions -q` agrees).
    fn is_function(&self, name: &str) -> bool {
        let out = self.capture(&format!("type {name}"));
        let yes = match self.kind {
            Kind::Bash => out.starts_with(&format!("{name} is a function")),
            Kind::Zsh => out.starts_with(&format!("{name} is a shell function")),
            Kind::Fish => out.starts_with(&format!("{name} is a function")),
        };
        if self.kind == Kind::Fish {
            let q = self.capture(&format!(
                "functions -q {name}; and echo defined; or echo undefined"
            ));
            assert_eq!(
                q.trim() == "defined",
                yes,
                "type and functions -q disagree: {out}"
            );
        }
        yes
    }
}

/// `type terragrunt` found the stand-in on PATH (bash says `hashed (PATH)`
/// once it ran).
#[track_caller]
fn assert_is_file(type_output: &str, path: &str) {
    let t = type_output.trim();
    assert!(
        t == format!("terragrunt is {path}") || t == format!("terragrunt is hashed ({path})"),
        "{t:?} is not the file {path}"
    );
}

/// `who: AWS_ACCESS_KEY_ID=… AWSMFA_PROFILE=…` from a stand-in's output.
fn seen(out: &str, who: &str) -> (String, String) {
    let prefix = format!("{who}: AWS_ACCESS_KEY_ID=");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {who} line in {out:?}"));
    let rest = &line[prefix.len()..];
    let (key, profile) = rest
        .split_once(" AWSMFA_PROFILE=")
        .unwrap_or_else(|| panic!("malformed {line:?}"));
    (key.to_string(), profile.to_string())
}

/// Runs `cmd` (terragrunt, wrapped or not) and checks both stand-ins ran under `profile` with
/// one and the same session key; returns that key id.
#[track_caller]
fn plan_under(sh: &Shell, cmd: &str, profile: &str) -> String {
    let out = sh.capture(cmd);
    let (tg_key, tg_profile) = seen(&out, "terragrunt");
    let (tofu_key, tofu_profile) = seen(&out, "tofu");
    assert_eq!(tg_profile, profile, "{out}");
    assert_eq!(tofu_profile, profile, "{out}");
    assert!(tg_key.starts_with("ASIA"), "not a session key: {out}");
    assert_eq!(
        tofu_key, tg_key,
        "tofu got another session than terragrunt: {out}"
    );
    assert!(
        sh.w.stub.issued().iter().any(|i| i.access_key_id == tg_key),
        "{tg_key} was not issued by the stub"
    );
    tg_key
}

#[track_caller]
fn plan_without_credentials(sh: &Shell, cmd: &str) {
    let out = sh.capture(cmd);
    assert_eq!(
        seen(&out, "terragrunt"),
        ("none".into(), "none".into()),
        "{out}"
    );
    assert_eq!(seen(&out, "tofu"), ("none".into(), "none".into()), "{out}");
}

// --- wrappers follow the directory ------------------------------------------------

fn wrappers_follow_the_directory(kind: Kind) {
    let Some(w) = World::new() else { return };
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    let standin = standins().join("terragrunt");
    let standin = standin.to_str().unwrap();

    // Outside a root: the stand-in on PATH, no credentials.
    assert!(!sh.is_function("terragrunt"));
    assert_is_file(&sh.capture("type terragrunt"), standin);
    plan_without_credentials(&sh, "terragrunt plan");

    // In the root: functions that run awsmfa exec.
    let shown = sh.cd(&w.proxmox);
    assert!(!shown.contains("rror"), "cd printed an error: {shown}");
    assert!(sh.is_function("terragrunt"));
    assert!(sh.is_function("tofu"));
    assert!(sh.is_function("terraform"));
    let body = sh.capture(match kind {
        Kind::Zsh => "functions terragrunt",
        _ => "type terragrunt",
    });
    // bash and zsh get the name quoted; fish's wrapper carries it as a variable.
    let runs_awsmfa = match kind {
        Kind::Fish => body.contains("set -l name terragrunt") && body.contains("exec -- $name"),
        _ => body.contains("exec -- 'terragrunt'"),
    };
    assert!(runs_awsmfa, "{body}");
    assert_eq!(w.get_session_tokens(), 0, "cd alone must not mint");
    // hook-env prints nothing when nothing changed, and `cd .` keeps the wrappers.
    let again = sh.capture(&format!(
        "{}__AWSMFA_STATE=\"$__awsmfa_state\" awsmfa hook-env {}",
        if kind == Kind::Fish { "env " } else { "" },
        kind.name()
    ));
    assert_eq!(again, "", "hook-env repeated itself");
    sh.run("cd .");
    assert!(sh.is_function("terragrunt"));

    // terragrunt and the tofu it runs share one session.
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    assert_eq!(w.get_session_tokens(), 1);
    let first = w.stub.requests();
    assert_eq!(first[0].access_key_id.as_deref(), Some(KEY_PROXMOX));
    // Later commands reuse it: tofu typed directly too.
    assert_eq!(plan_under(&sh, "terragrunt plan", "tf-proxmox"), key);
    let out = sh.capture("tofu plan");
    assert_eq!(
        seen(&out, "tofu"),
        (key.clone(), "tf-proxmox".into()),
        "{out}"
    );
    assert_eq!(w.get_session_tokens(), 1);

    // `command` bypasses the function.
    plan_without_credentials(&sh, "command terragrunt plan");
    // Scripts do not see the functions.
    assert_is_file(&sh.capture("sh -c 'type terragrunt'"), standin);
    let script = w.env.write_script(
        "script.sh",
        "#!/bin/bash\necho \"kind: $(type -t terragrunt)\"\nterragrunt plan\n",
    );
    let out = sh.capture(&q(&script));
    assert!(out.starts_with("kind: file\n"), "{out}");
    assert_eq!(seen(&out, "terragrunt").0, "none", "{out}");
    assert_eq!(seen(&out, "tofu").0, "none", "{out}");

    // The other root: its profile, its own session.
    sh.cd(&w.runs_on);
    assert!(sh.is_function("terragrunt"));
    let key2 = plan_under(&sh, "terragrunt plan", "tf-runs-on");
    assert_ne!(key2, key);
    assert_eq!(w.get_session_tokens(), 2);
    // (After it, the key's age is asked of IAM with the new session.)
    let minted = w.stub.requests();
    let last = minted.iter().rfind(|r| r.action == "GetSessionToken");
    assert_eq!(last.unwrap().access_key_id.as_deref(), Some(KEY_RUNS_ON));
    // And back: the first session, still cached.
    sh.cd(&w.proxmox);
    assert_eq!(plan_under(&sh, "terragrunt plan", "tf-proxmox"), key);
    // A subdirectory belongs to the root.
    let sub = w.proxmox.join("modules/vm");
    fs::create_dir_all(&sub).unwrap();
    sh.cd(&sub);
    assert_eq!(plan_under(&sh, "terragrunt plan", "tf-proxmox"), key);
    assert_eq!(w.get_session_tokens(), 2);

    // Out: the functions are gone.
    sh.cd(&w.outside);
    assert!(!sh.is_function("terragrunt"));
    assert!(!sh.is_function("tofu"));
    assert_is_file(&sh.capture("type terragrunt"), standin);
    plan_without_credentials(&sh, "terragrunt plan");
    assert_eq!(w.get_session_tokens(), 2);

    assert_shell_holds_no_secret(&sh);
}

/// Dumps every variable the shell has (exported or not) into files and checks
/// that no secret is in them or anywhere else on disk, that no session key id
/// is in a variable, and that the shell exports no AWS_* at all.
fn assert_shell_holds_no_secret(sh: &Shell) {
    let w = sh.w;
    let dumps: &[&str] = match sh.kind {
        Kind::Bash => &["set", "env", "export -p", "declare -p"],
        Kind::Zsh => &["set", "env", "export -p", "typeset -p"],
        Kind::Fish => &["set -S", "set", "set -x", "env"],
    };
    let mut all = String::new();
    for cmd in dumps {
        let text = sh.capture(cmd);
        assert!(
            text.contains("HOME"),
            "`{cmd}` dumped nothing useful: {text}"
        );
        all.push_str(&text);
    }
    // The dumps really list the shell's own variables.
    assert!(
        all.contains("__awsmfa_bin"),
        "no shell variables in the dumps"
    );
    w.env
        .assert_not_on_disk(&w.secrets().iter().map(String::as_str).collect::<Vec<_>>());
    for issued in w.stub.issued() {
        assert!(
            !all.contains(&issued.access_key_id),
            "a shell variable holds the session key id {}",
            issued.access_key_id
        );
    }
    assert!(
        !w.stub.issued().is_empty(),
        "nothing was minted to look for"
    );
    let n = sh.capture("env | grep -c '^AWS_'");
    assert_eq!(n.trim(), "0", "the shell exports AWS_* variables");
}

#[test]
fn zsh_wrappers_follow_the_directory() {
    wrappers_follow_the_directory(Kind::Zsh);
}

#[test]
fn bash_wrappers_follow_the_directory() {
    wrappers_follow_the_directory(Kind::Bash);
}

#[test]
fn fish_wrappers_follow_the_directory() {
    wrappers_follow_the_directory(Kind::Fish);
}

// --- what a cloned repository can and cannot do -----------------------------------

/// Every file named `name` under `dir`, at any depth.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(files_named(&path, name));
        }
    }
    found
}

/// Issue 8, case 1, as reported: a committed `.awsmfa.toml` whose profile holds
/// `x\nx;{touch,PWNED}\n900`, and a mapped root whose directory name does the
/// same, ran `touch` on `cd` in and out (bash and fish: the hook state was split
/// on newlines and `unset -f` / `functions -e` built from it). Now the file is
/// refused (its profile is no profile name) and the directory works as a root
/// under its hostile name; nothing runs, and the shell stays usable.
fn hostile_repository_runs_nothing(kind: Kind) {
    let Some(w) = World::new() else { return };
    let marker = w.env.root.join("pwned-by-file");
    let cloned = w.env.work.join("cloned");
    fs::create_dir_all(&cloned).expect("create cloned repo");
    fs::write(
        cloned.join(".awsmfa.toml"),
        format!("profile = \"x\\nx;{{touch,{}}}\\n900\"\n", marker.display()),
    )
    .expect("write hostile root file");
    let mut allow = w.env.cmd(["allow"]);
    allow.current_dir(&cloned);
    let refused = w.env.run_cmd(allow);
    assert_code(&refused, 1);
    let why = refused.stderr_str();
    assert!(
        why.contains(".awsmfa.toml:1: profile name") && !why.contains('\u{1b}'),
        "{why}"
    );
    // A root under a name that split into "dir / profile / wrap list / refresh".
    let named = w.env.work.join("r\nx\nx;{touch,pwned-by-name}\n900");
    fs::create_dir_all(&named).expect("create hostile directory");
    fs::write(named.join(".awsmfa.toml"), "profile = \"tf-proxmox\"\n").expect("write");
    let mut allow = w.env.cmd(["allow"]);
    allow.current_dir(&named);
    assert_ok(&w.env.run_cmd(allow));
    // Typed through a link with a plain name: the hook sees the canonical, hostile one.
    let link = w.env.work.join("named-link");
    std::os::unix::fs::symlink(&named, &link).expect("symlink");

    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    for _ in 0..2 {
        // Never allowed, so never even parsed.
        let shown = sh.cd(&cloned);
        assert!(
            shown.contains("is not allowed"),
            "no notice for the file: {shown}"
        );
        assert!(!sh.is_function("terragrunt"));
        sh.cd(&w.outside);
        sh.cd(&link);
        assert!(
            sh.is_function("terragrunt"),
            "the hostile-named root is a root"
        );
        assert_eq!(
            sh.capture("echo \"$__awsmfa_profile\"").trim(),
            "tf-proxmox"
        );
        sh.cd(&w.outside);
        assert!(!sh.is_function("terragrunt"), "wrappers left behind");
    }
    assert!(!marker.exists(), "the repository file ran a command");
    assert!(
        files_named(&w.env.root, "pwned-by-name").is_empty(),
        "the directory name ran a command"
    );
    assert_eq!(sh.capture("echo still-here").trim(), "still-here");
}

#[test]
fn zsh_hostile_repository_runs_nothing() {
    hostile_repository_runs_nothing(Kind::Zsh);
}

#[test]
fn bash_hostile_repository_runs_nothing() {
    hostile_repository_runs_nothing(Kind::Bash);
}

#[test]
fn fish_hostile_repository_runs_nothing() {
    hostile_repository_runs_nothing(Kind::Fish);
}

/// Issue 8, case 2: a fresh clone's root file maps nothing until `awsmfa
/// allow`; the hook says so once per directory, not at every prompt or `cd`
/// within; allow, a change to the file, and deny each take effect at the next `cd`.
fn unallowed_repository_wraps_nothing_until_allowed(kind: Kind) {
    let Some(w) = World::new() else { return };
    let repo = w.env.work.join("fresh-clone");
    let sub = repo.join("modules/vpc");
    fs::create_dir_all(&sub).expect("create repo");
    let file = repo.join(".awsmfa.toml");
    fs::write(&file, "profile = \"tf-proxmox\"\n").expect("write");
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    let notice = "/fresh-clone/.awsmfa.toml is not allowed; review it, then run awsmfa allow";
    let shown = sh.cd(&repo);
    assert_eq!(shown.matches(notice).count(), 1, "{shown}");
    assert!(!sh.is_function("terragrunt"));
    assert_eq!(sh.segment(), "", "no profile in the prompt");
    let shown = sh.cd(&sub);
    assert!(!shown.contains("not allowed"), "said twice: {shown}");
    sh.run("true");
    assert!(!sh.segment().contains("tf-proxmox"));
    // Typing the wrapped command runs the real one, with no credentials.
    let out = sh.capture("terragrunt plan");
    assert!(out.contains("AWS_ACCESS_KEY_ID=none"), "{out}");
    assert_eq!(w.get_session_tokens(), 0);

    sh.cd(&w.outside);
    let shown = sh.run("awsmfa allow ../fresh-clone");
    assert!(shown.contains("profile  tf-proxmox"), "{shown}");
    sh.cd(&sub);
    assert!(sh.is_function("terragrunt"), "allowed: wrapped");
    // A change to the file needs a new allow.
    sh.cd(&w.outside);
    fs::write(&file, "profile = \"tf-runs-on\"\n").expect("rewrite");
    let shown = sh.cd(&repo);
    assert!(shown.contains("changed since you allowed it"), "{shown}");
    assert!(!sh.is_function("terragrunt"));
    sh.run("awsmfa allow");
    sh.cd(&sub);
    assert!(sh.is_function("terragrunt"));
    assert_eq!(
        sh.capture("echo \"$__awsmfa_profile\"").trim(),
        "tf-runs-on"
    );
    sh.run("awsmfa deny");
    sh.cd(&repo);
    assert!(
        !sh.is_function("terragrunt"),
        "denied: unwrapped at the next cd"
    );
}

#[test]
fn zsh_unallowed_repository_wraps_nothing_until_allowed() {
    unallowed_repository_wraps_nothing_until_allowed(Kind::Zsh);
}

#[test]
fn bash_unallowed_repository_wraps_nothing_until_allowed() {
    unallowed_repository_wraps_nothing_until_allowed(Kind::Bash);
}

#[test]
fn fish_unallowed_repository_wraps_nothing_until_allowed() {
    unallowed_repository_wraps_nothing_until_allowed(Kind::Fish);
}

// --- the user's own function of a wrapped name ----------------------------------------

/// A function the user already has for a wrapped name (bash/zsh: defined in
/// the rc file; fish: autoloaded from ~/.config/fish/functions) is shadowed
/// inside a root and comes back on leaving. Re-running `awsmfa init` inside a
/// root (re-sourcing the rc file) must not mistake awsmfa's own wrapper for
/// the user's.
fn user_function_survives_a_root(kind: Kind) {
    let Some(w) = World::new() else { return };
    let rc = match kind {
        Kind::Bash => Rc::before("tofu() { echo \"my own tofu: $*\"; }"),
        Kind::Zsh => Rc::before("tofu() { print -r -- \"my own tofu: $*\" }"),
        Kind::Fish => {
            w.env.write_file(
                w.env.config_home.join("fish/functions/tofu.fish"),
                "function tofu\n    echo \"my own tofu: $argv\"\nend\n",
            );
            Rc::default()
        }
    };
    let Some(sh) = Shell::start(&w, kind, rc) else {
        return;
    };
    let reinit = match kind {
        Kind::Fish => "awsmfa init fish | source",
        Kind::Bash => "eval \"$(awsmfa init bash)\"",
        Kind::Zsh => "eval \"$(awsmfa init zsh)\"",
    };
    assert_eq!(sh.capture("tofu plan"), "my own tofu: plan\n");
    for round in 0..2 {
        sh.cd(&w.proxmox);
        let out = sh.capture("tofu plan");
        assert_eq!(seen(&out, "tofu").1, "tf-proxmox", "round {round}: {out}");
        sh.cd(&w.runs_on);
        let out = sh.capture("tofu plan");
        assert_eq!(seen(&out, "tofu").1, "tf-runs-on", "round {round}: {out}");
        sh.cd(&w.outside);
        assert_eq!(
            sh.capture("tofu plan"),
            "my own tofu: plan\n",
            "round {round}"
        );
        assert!(!sh.is_function("terragrunt"));
        assert!(!sh.is_function("__awsmfa_saved_tofu"));
    }
    // The rc file sourced again inside a root.
    sh.cd(&w.proxmox);
    let shown = sh.run(reinit);
    assert!(!shown.contains("rror"), "{shown}");
    assert!(sh.is_function("terragrunt"));
    let out = sh.capture("tofu plan");
    assert_eq!(seen(&out, "tofu").1, "tf-proxmox", "{out}");
    sh.cd(&w.outside);
    assert_eq!(sh.capture("tofu plan"), "my own tofu: plan\n");
    assert!(
        !sh.is_function("terragrunt"),
        "awsmfa's wrapper was restored as the user's"
    );
    assert!(!sh.is_function("__awsmfa_saved_terragrunt"));
    plan_without_credentials(&sh, "terragrunt plan");
}

#[test]
fn zsh_user_function_survives_a_root() {
    user_function_survives_a_root(Kind::Zsh);
}

#[test]
fn bash_user_function_survives_a_root() {
    user_function_survives_a_root(Kind::Bash);
}

#[test]
fn fish_user_function_survives_a_root() {
    user_function_survives_a_root(Kind::Fish);
}

// --- the prompt segment ---------------------------------------------------------------

/// A minted session as the prompt sees it: its expiry, and the
/// `refresh_before` in force.
struct Session<'a> {
    profile: &'a str,
    expiry: i64,
    refresh: i64,
}

impl<'a> Session<'a> {
    /// The session the stub issued as `key`, checked to last `secs` from a
    /// request made at or after `minted_from` (so session_ttl reached STS).
    fn of(
        w: &World,
        profile: &'a str,
        key: &str,
        secs: u64,
        minted_from: u64,
        refresh: i64,
    ) -> Self {
        let issued = w
            .stub
            .issued()
            .into_iter()
            .find(|i| i.access_key_id == key)
            .expect("issued session");
        let exp = issued
            .expiration
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (minted_from + secs..=unix_now() + secs).contains(&exp),
            "expiry {exp} is not {secs}s after {minted_from}"
        );
        Session {
            profile,
            expiry: exp as i64,
            refresh,
        }
    }

    /// The segments possible for a prompt drawn between `from` and now (a
    /// minute may turn meanwhile).
    fn texts_since(&self, from: u64) -> Vec<String> {
        // A bare Enter has no marker to wait for: the prompt read back may be the
        // one drawn just before `from`, so a second of slack on that side.
        let from = from.saturating_sub(1);
        let mut texts = vec![
            format!(
                "{} {}",
                self.profile,
                ttl_text(self.expiry - from as i64, self.refresh)
            ),
            format!(
                "{} {}",
                self.profile,
                ttl_text(self.expiry - unix_now() as i64, self.refresh)
            ),
        ];
        texts.dedup();
        texts
    }

    /// `got` is the segment of a prompt drawn between `from` and now.
    #[track_caller]
    fn assert_shown(&self, what: &str, got: &str, from: u64) {
        let allowed = self.texts_since(from);
        assert!(
            allowed.iter().any(|a| a == got),
            "{what}: {got:?}, expected one of {allowed:?}"
        );
    }

    /// The shell's prompt after `line`, and `awsmfa prompt` (the process,
    /// trailing newline and all) typed next, both show this session.
    #[track_caller]
    fn assert_prompt_and_process(&self, sh: &Shell, line: &str) {
        let from = unix_now();
        sh.run(line);
        self.assert_shown(&format!("prompt after {line:?}"), &sh.segment(), from);
        let from = unix_now();
        let process = sh.capture("awsmfa prompt");
        let text = process
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("no newline: {process:?}"));
        self.assert_shown("awsmfa prompt", text, from);
    }
}

fn prompt_segment(kind: Kind) {
    let Some(w) = World::new() else { return };
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    // Outside a root: nothing, from the shell and from the process.
    assert_eq!(sh.segment(), "");
    assert_eq!(sh.capture("awsmfa prompt"), "");

    // In the root, before any session.
    sh.cd(&w.proxmox);
    assert_eq!(sh.segment(), "tf-proxmox ·");
    assert_eq!(sh.capture("awsmfa prompt"), "tf-proxmox ·\n");
    assert_eq!(
        sh.capture("awsmfa prompt --format '{profile}:{ttl}'"),
        "tf-proxmox:·\n"
    );

    // After a wrapped command: the session's time left (45m within the second
    // it was minted, 44m after).
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    let session = Session::of(&w, "tf-proxmox", &key, SESSION_SECS, from, 15 * 60);
    session.assert_shown("prompt after terragrunt", &sh.segment(), from);
    assert!(
        ["tf-proxmox 45m", "tf-proxmox 44m"].contains(&sh.segment().as_str()),
        "{}",
        sh.segment()
    );
    // A bare Enter redraws it; the process says the same.
    let from = unix_now();
    sh.run_bare("");
    session.assert_shown("prompt after Enter", &sh.segment(), from);
    session.assert_prompt_and_process(&sh, "true");
    let from = unix_now();
    let formatted = sh.capture("awsmfa prompt --format '{profile}:{ttl}'");
    session.assert_shown(
        "--format",
        &formatted.trim_end().replacen(':', " ", 1),
        from,
    );

    // `awsmfa clear`: no session again.
    sh.run("awsmfa clear");
    // The mint below is the second on this device within seconds.
    as_if_a_step_passed(&w.env, &w.stub);
    assert_eq!(sh.segment(), "tf-proxmox ·");
    assert_eq!(sh.capture("awsmfa prompt"), "tf-proxmox ·\n");

    // Out of the root: empty again.
    sh.cd(&w.outside);
    assert_eq!(sh.segment(), "");
    assert_eq!(sh.capture("awsmfa prompt"), "");

    // refresh_before longer than what is left: the `!` mark. The hook reads it
    // when entering the root.
    w.write_settings("refresh_before = \"50m\"");
    sh.cd(&w.proxmox);
    assert_eq!(sh.segment(), "tf-proxmox ·");
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    let session = Session::of(&w, "tf-proxmox", &key, SESSION_SECS, from, 50 * 60);
    session.assert_shown("prompt with refresh due", &sh.segment(), from);
    assert!(sh.segment().ends_with("m!"), "{}", sh.segment());
    session.assert_prompt_and_process(&sh, "true");

    // The other root shows its own profile.
    sh.cd(&w.runs_on);
    assert_eq!(sh.segment(), "tf-runs-on ·");
}

#[test]
fn zsh_prompt_segment() {
    prompt_segment(Kind::Zsh);
}

#[test]
fn bash_prompt_segment() {
    prompt_segment(Kind::Bash);
}

#[test]
fn fish_prompt_segment() {
    prompt_segment(Kind::Fish);
}

/// The segment trusts only a plain file holding a sane expiry: a FIFO (which
/// `read` would wait on forever), a symbolic link, a leading zero (octal to
/// bash) or an overflowing number each show "no session", promptly and
/// without an error on the terminal.
fn prompt_ignores_what_is_not_a_session(kind: Kind) {
    let Some(w) = World::new() else { return };
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    let sessions = w.env.state_home.join("awsmfa/sessions");
    fs::create_dir_all(&sessions).expect("sessions dir");
    let file = sessions.join("tf-proxmox");
    let decoy = w.env.root.join("decoy");
    fs::write(&decoy, "9999999999 fingerprint\n").expect("decoy");
    sh.cd(&w.proxmox);
    let plants = [
        ("a FIFO", None),
        ("a symbolic link", None),
        ("a leading zero", Some("09999999999 fingerprint\n")),
        (
            "an overflowing expiry",
            Some("99999999999999999999999 fingerprint\n"),
        ),
    ];
    for (what, text) in plants {
        let _ = fs::remove_file(&file);
        match text {
            Some(text) => fs::write(&file, text).expect("write"),
            None if what == "a FIFO" => {
                let made = std::process::Command::new("mkfifo").arg(&file).status();
                assert!(made.expect("mkfifo").success());
            }
            None => std::os::unix::fs::symlink(&decoy, &file).expect("symlink"),
        }
        // `run` fails the test if no prompt comes back within its limit.
        let shown = sh.run("true");
        let after = shown.rsplit("SYNC-").next().unwrap_or_default();
        for noise in ["error", "too great", "truncated", "awsmfa"] {
            assert!(!after.contains(noise), "{what}: {noise:?} in {after:?}");
        }
        assert_eq!(sh.segment(), "tf-proxmox ·", "{what}");
        assert_eq!(sh.capture("awsmfa prompt"), "tf-proxmox ·\n", "{what}");
    }
}

#[test]
fn zsh_prompt_ignores_what_is_not_a_session() {
    prompt_ignores_what_is_not_a_session(Kind::Zsh);
}

#[test]
fn bash_prompt_ignores_what_is_not_a_session() {
    prompt_ignores_what_is_not_a_session(Kind::Bash);
}

#[test]
fn fish_prompt_ignores_what_is_not_a_session() {
    prompt_ignores_what_is_not_a_session(Kind::Fish);
}

/// Hours with zero-padded minutes, `0m!` in the last minute and `expired`,
/// computed by the shell's builtins (zsh, bash) or `awsmfa prompt` (fish), and
/// the same from the process.
fn prompt_time_formats(kind: Kind) {
    let Some(w) = World::new() else { return };
    w.write_profiles("45m", "65m");
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    sh.cd(&w.runs_on);
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-runs-on");
    let session = Session::of(&w, "tf-runs-on", &key, 65 * 60, from, 15 * 60);
    session.assert_shown("prompt", &sh.segment(), from);
    assert!(
        ["tf-runs-on 1h05m", "tf-runs-on 1h04m"].contains(&sh.segment().as_str()),
        "{}",
        sh.segment()
    );
    session.assert_prompt_and_process(&sh, "true");

    // STS hands out a session that ends in a few seconds.
    let lifetime = 3;
    w.stub.session_lifetime(Some(Duration::from_secs(lifetime)));
    sh.cd(&w.proxmox);
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    let session = Session::of(&w, "tf-proxmox", &key, lifetime, from, 15 * 60);
    session.assert_shown("prompt in the last minute", &sh.segment(), from);
    // Enter until it runs out (polled, bounded).
    let deadline = Instant::now() + Duration::from_secs(lifetime + 10);
    while sh.segment() != "tf-proxmox expired" {
        assert_eq!(sh.segment(), "tf-proxmox 0m!");
        assert!(Instant::now() < deadline, "never shown as expired");
        std::thread::sleep(Duration::from_millis(250));
        sh.run_bare("");
    }
    assert_eq!(sh.capture("awsmfa prompt"), "tf-proxmox expired\n");
}

#[test]
fn zsh_prompt_time_formats() {
    prompt_time_formats(Kind::Zsh);
}

#[test]
fn bash_prompt_time_formats() {
    prompt_time_formats(Kind::Bash);
}

#[test]
fn fish_prompt_time_formats() {
    prompt_time_formats(Kind::Fish);
}

/// A shell started inside a root has the wrappers and the segment at its
/// first prompt; so does a nested one (nothing is inherited).
fn starts_inside_a_root(kind: Kind) {
    let Some(w) = World::new() else { return };
    let rc = Rc {
        cwd: Some(w.proxmox.clone()),
        ..Rc::default()
    };
    let Some(sh) = Shell::start(&w, kind, rc) else {
        return;
    };
    assert_eq!(sh.segment(), "tf-proxmox ·");
    assert!(sh.is_function("terragrunt"));
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    assert_eq!(w.get_session_tokens(), 1);
    let session = Session::of(&w, "tf-proxmox", &key, SESSION_SECS, from, 15 * 60);
    // A nested interactive shell of the same kind applies the root itself
    // (the parent's state and functions are not exported).
    let from = unix_now();
    sh.pty.send_line(&format!("{} -i", kind.name()));
    sh.next_prompt();
    session.assert_shown("nested shell", &sh.segment(), from);
    assert!(sh.is_function("tofu"));
    plan_under(&sh, "terragrunt plan", "tf-proxmox");
    sh.cd(&w.outside);
    assert!(!sh.is_function("tofu"));
    sh.run_bare("exit");
    // Back in the outer shell, still in the root.
    let from = unix_now();
    sh.run("true");
    session.assert_shown("outer shell", &sh.segment(), from);
    assert!(sh.is_function("tofu"));
    assert_eq!(w.get_session_tokens(), 1);
}

#[test]
fn zsh_starts_inside_a_root() {
    starts_inside_a_root(Kind::Zsh);
}

#[test]
fn bash_starts_inside_a_root() {
    starts_inside_a_root(Kind::Bash);
}

#[test]
fn fish_starts_inside_a_root() {
    starts_inside_a_root(Kind::Fish);
}

// --- the prompt path starts no process (zsh, bash) -------------------------------------

/// `cminflt` of `pid` (/proc/PID/stat field 11): the minor page faults of its
/// waited-for children. Every child process a shell starts and reaps (an
/// external command, a `$(…)` subshell, a pipeline) adds to it, since a new
/// process cannot run without faulting pages in; nothing else does.
fn children_faults(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    // `after` starts at field 3 (state); cminflt is field 11.
    after.split(' ').nth(8).unwrap().parse().unwrap()
}

/// How the test knows: (1) the shell's children's page-fault counter does not
/// move over several prompts (any forked process would move it; a control
/// command shows it does); (2) a counting wrapper installed as the hook's
/// `__awsmfa_bin` logs no call per prompt and exactly one per directory change
/// — and the init script names the real binary only in that one assignment
/// (plus the completion registration, which only <TAB> runs), so no hook can
/// call awsmfa by another path.
fn prompt_starts_no_process(kind: Kind) {
    let Some(w) = World::new() else { return };
    let bin = support::env::awsmfa_bin();
    let init = w.env.run_ok(["init", kind.name()]).stdout_str();
    let mut cmd = w.env.cmd(["--"]);
    cmd.env("_AWSMFA_COMPLETE", kind.name());
    let registration = w.env.run_cmd(cmd).stdout_str();
    assert!(init.contains(&registration), "{init}");
    let hooks = init.replace(&registration, "");
    assert_eq!(
        hooks.matches(bin.to_str().unwrap()).count(),
        1,
        "the binary's path outside `__awsmfa_bin=`:\n{init}"
    );
    let log = w.env.root.join("awsmfa-calls");
    let counter = w.env.write_script(
        "bin/counting-awsmfa",
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            q(&log),
            q(&bin)
        ),
    );
    let rc = Rc {
        after: format!("__awsmfa_bin={}", q(&counter)),
        ..Rc::default()
    };
    let Some(sh) = Shell::start(&w, kind, rc) else {
        return;
    };
    let calls = || fs::read_to_string(&log).map_or(0, |s| s.lines().count());

    sh.cd(&w.proxmox);
    let from = unix_now();
    let key = plan_under(&sh, "terragrunt plan", "tf-proxmox");
    let session = Session::of(&w, "tf-proxmox", &key, SESSION_SECS, from, 15 * 60);
    session.assert_shown("prompt after terragrunt", &sh.segment(), from);
    let calls_before = calls();
    assert!(calls_before >= 2, "the counting wrapper was not used");
    let faults = children_faults(sh.pty.pid());
    for _ in 0..5 {
        // Still computed at each prompt (by builtins).
        let from = unix_now();
        sh.run_bare("");
        session.assert_shown("prompt after Enter", &sh.segment(), from);
    }
    sh.run_bare(":");
    assert_eq!(
        children_faults(sh.pty.pid()),
        faults,
        "the shell started a process while only showing prompts"
    );
    assert_eq!(calls(), calls_before, "awsmfa ran at a prompt");

    // Controls: an external command moves the counter, and a directory change
    // runs awsmfa exactly once (hook-env).
    sh.run_bare("/bin/true");
    let after_true = children_faults(sh.pty.pid());
    assert!(
        after_true > faults,
        "the fault counter does not see children"
    );
    sh.run_bare(&format!("cd {}", q(&w.outside)));
    assert_eq!(calls(), calls_before + 1);
    assert_eq!(
        fs::read_to_string(&log).unwrap().lines().last(),
        Some(format!("hook-env {}", kind.name()).as_str())
    );
    assert_eq!(sh.segment(), "");
    let faults = children_faults(sh.pty.pid());
    for _ in 0..3 {
        sh.run_bare("");
    }
    assert_eq!(children_faults(sh.pty.pid()), faults);
    assert_eq!(calls(), calls_before + 1);
}

#[test]
fn zsh_prompt_starts_no_process() {
    prompt_starts_no_process(Kind::Zsh);
}

#[test]
fn bash_prompt_starts_no_process() {
    prompt_starts_no_process(Kind::Bash);
}

// --- completion ------------------------------------------------------------------------

fn completion(kind: Kind) {
    let Some(w) = World::new() else { return };
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    assert_completes_profiles(&sh);
}

/// <TAB> after `awsmfa exec ` lists both profiles, and a prefix completes one.
fn assert_completes_profiles(sh: &Shell) {
    let kind = sh.kind;
    match kind {
        // Two <TAB>s: readline completes the common prefix, then lists.
        Kind::Bash => sh.pty.send("awsmfa exec \t\t"),
        // One <TAB>: AUTO_LIST shows the ambiguous candidates.
        Kind::Zsh => sh.pty.send("awsmfa exec \t"),
        // The pager lists the candidates under the command line.
        Kind::Fish => sh.pty.send("awsmfa exec \t"),
    }
    let listing = sh.pty.expect_ok("tf-proxmox", T) + &sh.pty.expect_ok("tf-runs-on", T);
    assert!(!listing.contains("rror"), "{listing}");
    sh.abandon_line();
    if kind == Kind::Fish {
        let out = sh.capture("complete -C 'awsmfa exec '");
        let names: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
        assert!(names.contains(&"tf-proxmox"), "{out}");
        assert!(names.contains(&"tf-runs-on"), "{out}");
        // One registration: a completion file fish loads after `init` ran
        // (fisher's, the package's) adds no second awsmfa process per <TAB>.
        let registered = sh.capture("complete --command awsmfa");
        assert_eq!(registered.lines().count(), 1, "{registered}");
    }
    // And a prefix narrows it to one, completed on the line.
    sh.pty.send("awsmfa exec tf-r\t");
    sh.pty.expect_ok("tf-runs-on", T);
    sh.abandon_line();
}

#[test]
fn zsh_completion_offers_profiles() {
    completion(Kind::Zsh);
}

#[test]
fn bash_completion_offers_profiles() {
    completion(Kind::Bash);
}

#[test]
fn fish_completion_offers_profiles() {
    completion(Kind::Fish);
}

// --- plugin managers ------------------------------------------------------------------

/// How each plugin manager loads this repository. oh-my-zsh puts the plugin's
/// directory on $fpath, runs compinit, then sources `awsmfa.plugin.zsh`;
/// antidote and zinit usually source it before the user's compinit; fisher
/// copies `conf.d/` and `completions/` into fish's config directory.
#[derive(Clone, Copy)]
enum Manager {
    OhMyZsh,
    Antidote,
    Fisher,
}

impl Manager {
    fn shell(self) -> Kind {
        match self {
            Manager::OhMyZsh | Manager::Antidote => Kind::Zsh,
            Manager::Fisher => Kind::Fish,
        }
    }

    /// Does what the manager does in `w`'s HOME; returns the rc lines that
    /// stand for `awsmfa init`.
    fn install(self, w: &World) -> Rc {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = repo.join("shell/zsh");
        let plugin = format!("source {}", q(dir.join("awsmfa.plugin.zsh")));
        // ~/.zshenv is read before ~/.zshrc, whose first line runs compinit.
        let fpath = format!("fpath=({} $fpath)\n", q(&dir));
        let load = match self {
            Manager::OhMyZsh => {
                w.env.write_file(w.env.home.join(".zshenv"), &fpath);
                plugin
            }
            Manager::Antidote => {
                w.env
                    .write_file(w.env.home.join(".zshenv"), &format!("{fpath}{plugin}\n"));
                String::new()
            }
            Manager::Fisher => {
                for file in ["conf.d/awsmfa.fish", "completions/awsmfa.fish"] {
                    let text = fs::read_to_string(repo.join(file)).expect("fish plugin file");
                    w.env
                        .write_file(w.env.config_home.join("fish").join(file), &text);
                }
                String::new()
            }
        };
        Rc {
            load: Some(load),
            ..Rc::default()
        }
    }
}

/// Loaded by a plugin manager, awsmfa does what `init` does: the hook wraps
/// the root's commands, the prompt segment follows, and <TAB> completes
/// profile names (from `_awsmfa` when compinit runs after the plugin, which
/// then could not register the completion itself).
fn plugin_hooks_and_completes(manager: Manager) {
    let Some(w) = World::new() else { return };
    let rc = manager.install(&w);
    let Some(sh) = Shell::start(&w, manager.shell(), rc) else {
        return;
    };
    assert!(!sh.is_function("terragrunt"));
    let shown = sh.cd(&w.proxmox);
    assert!(!shown.contains("rror"), "cd printed an error: {shown}");
    assert!(sh.is_function("terragrunt"));
    assert_eq!(sh.segment(), "tf-proxmox ·");
    sh.cd(&w.outside);
    assert!(!sh.is_function("terragrunt"));
    assert_completes_profiles(&sh);
}

#[test]
fn oh_my_zsh_plugin_hooks_and_completes() {
    plugin_hooks_and_completes(Manager::OhMyZsh);
}

#[test]
fn antidote_plugin_hooks_and_completes() {
    plugin_hooks_and_completes(Manager::Antidote);
}

#[test]
fn fisher_plugin_hooks_and_completes() {
    plugin_hooks_and_completes(Manager::Fisher);
}

/// Without awsmfa on PATH the plugin says so once, when the shell starts, and
/// nothing after: no error at each prompt or `cd`.
fn plugin_without_the_binary(manager: Manager) {
    let Some(mut w) = World::new() else { return };
    // The system's PATH without the binary under test. tests/package.rs, which
    // installs /usr/bin/awsmfa for a while, never runs alongside this test
    // (.config/nextest.toml); a package installed by hand would hide the case.
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| *d != awsmfa_dir())
        .collect();
    let missing = dirs.iter().all(|d| !is_executable(&d.join("awsmfa")));
    let what = "a PATH without awsmfa on it (remove an installed awsmfa package)";
    if require(what, missing.then_some(())).is_none() {
        return;
    }
    w.env.set(
        "PATH",
        std::env::join_paths(dirs).expect("PATH entries without ':'"),
    );
    let mut rc = manager.install(&w);
    if let Manager::Fisher = manager {
        // The test prompt calls awsmfa_prompt_info, which the plugin defines.
        rc.after = "function fish_prompt\n    printf '<<P::P>> '\nend".into();
    }
    let Some(sh) = Shell::start(&w, manager.shell(), rc) else {
        return;
    };
    sh.cd(&w.proxmox);
    sh.run("true");
    sh.cd(&w.outside);
    let screen = sh.pty.output();
    let message = "awsmfa plugin: awsmfa is not on PATH";
    assert_eq!(screen.matches(message).count(), 1, "{screen}");
    for noise in ["not found", "Unknown command", "rror"] {
        assert!(
            !screen.contains(noise),
            "{noise:?} on the terminal:\n{screen}"
        );
    }
}

#[test]
fn zsh_plugin_without_the_binary_says_so_once() {
    plugin_without_the_binary(Manager::OhMyZsh);
}

#[test]
fn fish_plugin_without_the_binary_says_so_once() {
    plugin_without_the_binary(Manager::Fisher);
}

// --- the init scripts themselves ---------------------------------------------------------

#[test]
fn init_scripts_parse_and_pass_shellcheck() {
    let env = Env::new();
    let shellcheck = require(
        "shellcheck (Debian package shellcheck)",
        which("shellcheck"),
    );
    for kind in [Kind::Zsh, Kind::Bash, Kind::Fish] {
        let Some(bin) = kind.binary() else { continue };
        let script = env.run_ok(["init", kind.name()]).stdout_str();
        assert!(script.contains("__awsmfa_hook"), "{script}");
        assert!(
            !script.contains("@AWSMFA@"),
            "unsubstituted template:\n{script}"
        );
        let file = env.write_file(format!("init.{}", kind.name()), &script);
        let mut c = env.command(&bin);
        c.arg("-n").arg(&file);
        let out = env.run_cmd(c);
        assert_ok(&out);
        assert_eq!(out.stderr_str(), "", "{} -n: {}", kind.name(), out.dump());
    }
    let Some(shellcheck) = shellcheck else { return };
    let direnv = env.run_ok(["direnv"]).stdout_str();
    assert!(direnv.contains("use_awsmfa()"), "{direnv}");
    let direnv_file = env.write_file("awsmfa-direnv.sh", &direnv);
    for file in [env.root.join("init.bash"), direnv_file] {
        let mut c = env.command(&shellcheck);
        c.args(["-s", "bash"]).arg(&file);
        let out = env.run_cmd(c);
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            file.display(),
            out.dump()
        );
    }
}

/// The completion files that work without `init` (the package's, the plugin
/// managers') register exactly what `init` does: the code awsmfa prints for
/// `_AWSMFA_COMPLETE=SHELL awsmfa --`. They and the plugins parse in their shell.
#[test]
fn completion_files_register_what_init_does() {
    let env = Env::new();
    for kind in [Kind::Zsh, Kind::Bash, Kind::Fish] {
        let mut cmd = env.cmd(["--"]);
        cmd.env("_AWSMFA_COMPLETE", kind.name());
        let registration = env.run_cmd(cmd);
        assert_ok(&registration);
        let registration = registration.stdout_str();
        assert!(registration.contains("_AWSMFA_COMPLETE"), "{registration}");
        let init = env.run_ok(["init", kind.name()]).stdout_str();
        assert!(
            init.contains(&registration),
            "{} init does not register what `_AWSMFA_COMPLETE={} awsmfa --` prints:\n{registration}",
            kind.name(),
            kind.name()
        );
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        (Kind::Zsh, "shell/zsh/_awsmfa"),
        (Kind::Zsh, "shell/zsh/awsmfa.plugin.zsh"),
        (Kind::Bash, "shell/bash/completions/awsmfa"),
        (Kind::Fish, "completions/awsmfa.fish"),
        (Kind::Fish, "conf.d/awsmfa.fish"),
    ];
    for (kind, file) in files {
        let Some(bin) = kind.binary() else { continue };
        let mut c = env.command(&bin);
        c.arg("-n").arg(repo.join(file));
        let out = env.run_cmd(c);
        assert_ok(&out);
        assert_eq!(
            out.stderr_str(),
            "",
            "{} -n {file}: {}",
            kind.name(),
            out.dump()
        );
    }
    let Some(shellcheck) = require(
        "shellcheck (Debian package shellcheck)",
        which("shellcheck"),
    ) else {
        return;
    };
    let mut c = env.command(&shellcheck);
    c.arg(repo.join("shell/bash/completions/awsmfa"));
    let out = env.run_cmd(c);
    assert!(out.status.success(), "shellcheck: {}", out.dump());
}

// --- coexistence with the user's own hooks -------------------------------------------------

/// The user's hook records `$?` in `log`: it must see the status of the
/// command typed, including right after a `cd` into a root (hook-env ran).
fn assert_status_reaches(sh: &Shell, log: &Path, tag: &str) {
    let last = || {
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| l.starts_with(tag))
            .map(String::from)
    };
    sh.run_bare("false");
    assert_eq!(last().as_deref(), Some(format!("{tag} 1").as_str()));
    sh.run_bare("(exit 7)");
    assert_eq!(last().as_deref(), Some(format!("{tag} 7").as_str()));
    sh.run_bare(&format!("cd {}; (exit 5)", q(&sh.w.proxmox)));
    assert_eq!(last().as_deref(), Some(format!("{tag} 5").as_str()));
    // awsmfa's hook ran too.
    assert_eq!(sh.segment(), "tf-proxmox ·");
    assert!(sh.is_function("terragrunt"));
    plan_under(sh, "terragrunt plan", "tf-proxmox");
    sh.run_bare("true");
    assert_eq!(last().as_deref(), Some(format!("{tag} 0").as_str()));
    sh.run_bare(&format!("cd {}; (exit 3)", q(&sh.w.outside)));
    assert_eq!(last().as_deref(), Some(format!("{tag} 3").as_str()));
    assert_eq!(sh.segment(), "");
    assert!(!sh.is_function("terragrunt"));
}

#[test]
fn bash_keeps_a_prompt_command_string() {
    let Some(w) = World::new() else { return };
    let log = w.env.root.join("pc-log");
    let rc = Rc::before(&format!(
        "PROMPT_COMMAND='echo \"pc-ran $?\" >> {}'",
        q(&log)
    ));
    let Some(sh) = Shell::start(&w, Kind::Bash, rc) else {
        return;
    };
    let pc = sh.capture("declare -p PROMPT_COMMAND");
    assert!(
        pc.starts_with("declare -- PROMPT_COMMAND=\"__awsmfa_hook;echo"),
        "{pc}"
    );
    assert_status_reaches(&sh, &log, "pc-ran");
}

#[test]
fn bash_keeps_a_prompt_command_array() {
    let Some(w) = World::new() else { return };
    let log = w.env.root.join("pc-log");
    let rc = Rc::before(&format!(
        "PROMPT_COMMAND=('echo \"pc-a $?\" >> {log}' 'echo \"pc-b $?\" >> {log}')",
        log = q(&log)
    ));
    let Some(sh) = Shell::start(&w, Kind::Bash, rc) else {
        return;
    };
    let pc = sh.capture("declare -p PROMPT_COMMAND");
    assert!(
        pc.starts_with("declare -a PROMPT_COMMAND=([0]=\"__awsmfa_hook\" [1]="),
        "{pc}"
    );
    assert_status_reaches(&sh, &log, "pc-a");
    // The second element of the array ran on every prompt too.
    let log_text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        log_text.matches("pc-a ").count(),
        log_text.matches("pc-b ").count(),
        "{log_text}"
    );
}

#[test]
fn zsh_keeps_precmd_and_chpwd_functions() {
    let Some(w) = World::new() else { return };
    let log = w.env.root.join("hook-log");
    let rc = Rc {
        before: format!(
            "user_precmd() {{ print -r -- \"precmd $?\" >> {log} }}\n\
             user_chpwd() {{ print -r -- \"chpwd $PWD\" >> {log} }}\n\
             precmd_functions=(user_precmd)\nchpwd_functions=(user_chpwd)\n",
            log = q(&log)
        ),
        // A hook added after awsmfa's sees the status too.
        after: format!(
            "late_precmd() {{ print -r -- \"late $?\" >> {} }}\nprecmd_functions+=(late_precmd)\n",
            q(&log)
        ),
        ..Rc::default()
    };
    let Some(sh) = Shell::start(&w, Kind::Zsh, rc) else {
        return;
    };
    let hooks = sh.capture("print -r -- $precmd_functions / $chpwd_functions");
    assert_eq!(
        hooks.trim(),
        "user_precmd __awsmfa_segment late_precmd / user_chpwd __awsmfa_hook"
    );
    assert_status_reaches(&sh, &log, "precmd");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("chpwd {}\n", w.proxmox.display())),
        "{text}"
    );
    let late: Vec<&str> = text.lines().filter(|l| l.starts_with("late ")).collect();
    let early: Vec<&str> = text.lines().filter(|l| l.starts_with("precmd ")).collect();
    assert_eq!(
        late.iter().map(|l| &l[5..]).collect::<Vec<_>>(),
        early.iter().map(|l| &l[7..]).collect::<Vec<_>>(),
        "{text}"
    );
}

// --- an alias of a wrapped command -----------------------------------------------------------

fn alias_before_cd(kind: Kind) {
    let Some(w) = World::new() else { return };
    let Some(sh) = Shell::start(&w, kind, Rc::default()) else {
        return;
    };
    sh.run("alias terragrunt='terragrunt --alias-flag'");
    let shown = sh.cd(&w.proxmox);
    assert!(!shown.contains("rror"), "cd printed an error: {shown}");
    assert!(!shown.contains("parse"), "cd printed an error: {shown}");
    let all = sh.capture(match kind {
        Kind::Zsh => "whence -wa terragrunt",
        _ => "type -ta terragrunt",
    });
    let kinds: Vec<&str> = all
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or(l))
        .collect();
    let file = if kind == Kind::Zsh { "command" } else { "file" };
    assert_eq!(kinds, ["alias", "function", file], "{all}");
    let out = sh.capture("terragrunt plan");
    assert!(
        out.contains("terragrunt: argv: --alias-flag plan\n"),
        "{out}"
    );
    let (key, profile) = seen(&out, "terragrunt");
    assert_eq!(profile, "tf-proxmox", "{out}");
    assert!(key.starts_with("ASIA"), "{out}");
    assert_eq!(seen(&out, "tofu"), (key, profile), "{out}");
    assert_eq!(w.get_session_tokens(), 1);
    // Leaving removes the function and leaves the alias alone.
    sh.cd(&w.outside);
    let all = sh.capture(match kind {
        Kind::Zsh => "whence -wa terragrunt",
        _ => "type -ta terragrunt",
    });
    let kinds: Vec<&str> = all
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or(l))
        .collect();
    assert_eq!(kinds, ["alias", file], "{all}");
}

#[test]
fn zsh_alias_does_not_break_the_wrapper() {
    alias_before_cd(Kind::Zsh);
}

#[test]
fn bash_alias_does_not_break_the_wrapper() {
    alias_before_cd(Kind::Bash);
}

// --- fish: the wrapper keeps the command's completions ------------------------------------

#[test]
fn fish_wrapper_keeps_completions() {
    let Some(w) = World::new() else { return };
    let rc = Rc::before(
        "complete -c terragrunt -f -a 'plan apply'\ncomplete -c tofu -f -a 'init validate'",
    );
    let Some(sh) = Shell::start(&w, Kind::Fish, rc) else {
        return;
    };
    let candidates = |cmd: &str| {
        let mut c: Vec<String> = sh
            .capture(&format!("complete -C '{cmd} '"))
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        c.sort();
        c
    };
    assert_eq!(candidates("terragrunt"), ["apply", "plan"]);
    sh.cd(&w.proxmox);
    assert!(sh.is_function("terragrunt"));
    assert_eq!(candidates("terragrunt"), ["apply", "plan"]);
    assert_eq!(candidates("tofu"), ["init", "validate"]);
    // Interactively too: <TAB> after the wrapped command.
    sh.pty.send("terragrunt ap\t");
    sh.pty.expect_ok("apply", T);
    sh.abandon_line();
    plan_under(&sh, "terragrunt plan", "tf-proxmox");
    sh.cd(&w.outside);
    assert!(!sh.is_function("terragrunt"));
    assert_eq!(candidates("terragrunt"), ["apply", "plan"]);
}
