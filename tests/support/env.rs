//! `Env`: one isolated world per test. Its own HOME, XDG dirs, TMPDIR, AWS
//! config and keyring namespace, so tests run in parallel without seeing each
//! other, the developer's real `~/.aws`, or their desktop keyring.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::process::{assert_fail, assert_ok, run_with_timeout};

pub struct Env {
    pub root: PathBuf,
    pub home: PathBuf,
    /// The directory every command starts in.
    pub work: PathBuf,
    /// `TMPDIR`.
    pub tmp: PathBuf,
    pub config_home: PathBuf,
    pub state_home: PathBuf,
    pub cache_home: PathBuf,
    pub data_home: PathBuf,
    pub runtime_dir: PathBuf,
    service: String,
    vars: BTreeMap<OsString, OsString>,
    timeout: Duration,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        // Short name: the D-Bus socket lives in here and sun_path is 108 bytes.
        let name = format!("awsmfa-{}-{}", super::unique_suffix(), super::random_hex(3));
        let root = std::env::temp_dir().join(name);
        fs::create_dir_all(&root).expect("create test root");
        // Canonical, so paths the binary reports (cwd, config) compare equal to ours.
        let root = root.canonicalize().expect("canonicalize test root");
        let home = root.join("home");
        let env = Env {
            work: root.join("work"),
            tmp: root.join("tmp"),
            config_home: home.join(".config"),
            state_home: home.join(".local/state"),
            cache_home: home.join(".cache"),
            data_home: home.join(".local/share"),
            runtime_dir: root.join("run"),
            home,
            root,
            service: format!("awsmfa-test-{}", super::unique_suffix()),
            vars: BTreeMap::new(),
            timeout: super::TIMEOUT,
        };
        for d in [
            &env.work,
            &env.tmp,
            &env.home.join(".aws"),
            &env.config_home,
            &env.state_home,
            &env.cache_home,
            &env.data_home,
            &env.runtime_dir,
        ] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        // XDG requires 0700, and gnome-keyring refuses a runtime dir without it.
        fs::set_permissions(&env.runtime_dir, fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        fs::write(env.aws_config_path(), "").expect("write empty aws config");
        let mut env = env;
        env.reset_vars();
        env
    }

    fn reset_vars(&mut self) {
        let mut v: Vec<(&str, OsString)> = vec![
            ("HOME", self.home.clone().into()),
            ("XDG_CONFIG_HOME", self.config_home.clone().into()),
            ("XDG_STATE_HOME", self.state_home.clone().into()),
            ("XDG_CACHE_HOME", self.cache_home.clone().into()),
            ("XDG_DATA_HOME", self.data_home.clone().into()),
            ("XDG_RUNTIME_DIR", self.runtime_dir.clone().into()),
            ("TMPDIR", self.tmp.clone().into()),
            ("AWS_CONFIG_FILE", self.aws_config_path().into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                self.credentials_path().into(),
            ),
            ("AWSMFA_KEYRING_SERVICE", self.service.clone().into()),
            ("AWSMFA_KEYRING", "keyutils".into()),
            ("LANG", "C.UTF-8".into()),
        ];
        if let Some(path) = std::env::var_os("PATH") {
            v.push(("PATH", path));
        }
        self.vars = v.into_iter().map(|(k, v)| (k.into(), v)).collect();
    }

    /// Sets a variable for every later `cmd`/`command`.
    pub fn set(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Self {
        self.vars
            .insert(key.as_ref().to_owned(), val.as_ref().to_owned());
        self
    }

    /// Removes a variable (including a default one) for every later command.
    pub fn unset(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.vars.remove(key.as_ref());
        self
    }

    pub fn var(&self, key: impl AsRef<OsStr>) -> Option<&OsStr> {
        self.vars.get(key.as_ref()).map(OsString::as_os_str)
    }

    /// The exact environment commands get: useful to start shells or tools by
    /// other means.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// Points awsmfa at an STS endpoint (the stub or moto).
    pub fn set_sts_endpoint(&mut self, url: &str) -> &mut Self {
        self.set("AWS_ENDPOINT_URL_STS", url)
    }

    /// Per-command timeout for `run*` (default [`super::TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `AWSMFA_KEYRING_SERVICE` namespace of this test's keyring entries.
    pub fn keyring_service(&self) -> &str {
        &self.service
    }

    pub fn aws_config_path(&self) -> PathBuf {
        self.home.join(".aws/config")
    }

    /// `AWS_SHARED_CREDENTIALS_FILE`: set so that a write to it is caught;
    /// awsmfa must never create it.
    pub fn credentials_path(&self) -> PathBuf {
        self.home.join(".aws/credentials")
    }

    pub fn awsmfa_config_path(&self) -> PathBuf {
        self.config_home.join("awsmfa/config.toml")
    }

    pub fn write_aws_config(&self, contents: &str) -> PathBuf {
        self.write_file(self.aws_config_path(), contents)
    }

    pub fn write_awsmfa_config(&self, contents: &str) -> PathBuf {
        self.write_file(self.awsmfa_config_path(), contents)
    }

    /// Writes a file (a relative path is taken from the test root), creating
    /// parent directories.
    pub fn write_file(&self, path: impl AsRef<Path>, contents: &str) -> PathBuf {
        let path = self.root.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Like `write_file`, mode 0755: for stand-in tools on a test PATH.
    pub fn write_script(&self, path: impl AsRef<Path>, contents: &str) -> PathBuf {
        let path = self.write_file(path, contents);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
        path
    }

    /// An `mfa_process` script that prints the current TOTP code of `seed`
    /// (oathtool) and counts its runs: how tests tell how many MFA codes a
    /// command cost.
    pub fn counting_mfa(&self, seed: &str) -> CountingMfa {
        let counter = self.root.join("mfa-runs");
        let script = self.write_script(
            "bin/mfa",
            &format!(
                "#!/bin/sh\necho run >> '{}'\nexec oathtool --totp -b {seed}\n",
                counter.display()
            ),
        );
        CountingMfa { script, counter }
    }

    /// Puts `dir` in front of PATH for later commands.
    pub fn prepend_path(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        let mut dirs = vec![dir.as_ref().to_path_buf()];
        if let Some(p) = self.vars.get(OsStr::new("PATH")) {
            dirs.extend(std::env::split_paths(p));
        }
        let joined = std::env::join_paths(dirs).expect("PATH entries without ':'");
        self.set("PATH", joined)
    }

    /// Any program, in this world: cleared environment plus exactly this Env's
    /// variables, cwd `work/`, stdin null, and its own session. A new session
    /// means no controlling terminal, so a stray `/dev/tty` prompt fails at once
    /// (as in CI) instead of reading the developer's keyboard; it also makes the
    /// child a process-group leader that a timeout can kill with its children.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .envs(&self.vars)
            .current_dir(&self.work)
            .stdin(Stdio::null());
        // SAFETY: setsid(2) is async-signal-safe; it only fails if the child
        // already leads a group, which a fresh fork never does.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        c
    }

    /// The awsmfa binary under test with `args`, set up like `command`.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command(awsmfa_bin());
        c.args(args);
        c
    }

    /// Runs awsmfa to completion (killed and reported after the timeout).
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(self.cmd(args), None, self.timeout)
    }

    /// Runs awsmfa with `input` on stdin.
    pub fn run_stdin<I, S>(&self, args: I, input: &str) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(self.cmd(args), Some(input.as_bytes()), self.timeout)
    }

    /// Runs any prepared command under this Env's timeout.
    pub fn run_cmd(&self, cmd: Command) -> Output {
        run_with_timeout(cmd, None, self.timeout)
    }

    #[track_caller]
    pub fn run_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert_ok(&out);
        out
    }

    #[track_caller]
    pub fn run_fail<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert_fail(&out);
        out
    }

    /// As if the 30 s TOTP step had passed, for a test about something else
    /// that mints twice on one MFA device: forgets the steps awsmfa recorded as
    /// used (`$XDG_STATE_HOME/awsmfa/totp`), so it does not wait for the next
    /// one. It may then send the code it sent before: an STS stub must accept
    /// that (`reject_reused_codes(false)`); moto checks no code at all.
    pub fn forget_totp_steps(&self) {
        let dir = self.state_home.join("awsmfa/totp");
        if let Err(e) = fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("remove {}: {e}", dir.display());
        }
    }

    /// Where the "no secret on disk" scan looks: everything this test's
    /// commands could have written (HOME, XDG dirs, TMPDIR, work dir).
    pub fn paths_to_scan(&self) -> Vec<PathBuf> {
        vec![self.root.clone()]
    }

    /// Every regular file under the test root containing any of `needles`
    /// (byte comparison, so binary files count too).
    pub fn scan_for(&self, needles: &[&str]) -> Vec<PathBuf> {
        assert!(
            needles.iter().all(|n| n.len() >= 4),
            "scan needles must be distinctive (>= 4 bytes): {needles:?}"
        );
        let mut hits = Vec::new();
        for root in self.paths_to_scan() {
            scan_dir(&root, needles, &mut hits);
        }
        hits.sort();
        hits
    }

    /// Panics listing the files if any contains any needle.
    #[track_caller]
    pub fn assert_not_on_disk(&self, needles: &[&str]) {
        let hits = self.scan_for(needles);
        assert!(hits.is_empty(), "secret found on disk in: {hits:#?}");
    }
}

/// See [`Env::counting_mfa`].
pub struct CountingMfa {
    pub script: PathBuf,
    pub counter: PathBuf,
}

impl CountingMfa {
    /// How many codes were asked for so far.
    pub fn runs(&self) -> usize {
        fs::read_to_string(&self.counter).map_or(0, |s| s.lines().count())
    }
}

fn scan_dir(dir: &Path, needles: &[&str], hits: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // symlink_metadata: a link out of the test root must not widen the scan.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            scan_dir(&path, needles, hits);
        } else if meta.is_file()
            && let Ok(bytes) = fs::read(&path)
            && needles
                .iter()
                .any(|n| super::find_bytes(&bytes, n.as_bytes()).is_some())
        {
            hits.push(path);
        }
    }
}

pub fn awsmfa_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_awsmfa"))
}

/// awsmfa's keyutils entries are linked into the user's persistent keyring, which
/// outlives the test by days (and, for a non-root user, has a quota of 200 keys):
/// every entry under this Env's unique service name is invalidated.
fn purge_keyutils_entries(service: &str) {
    let script = r#"p=$(keyctl get_persistent @s 2>/dev/null) || exit 0
for id in $(keyctl rlist "$p" 2>/dev/null); do
  case "$(keyctl rdescribe "$id" 2>/dev/null)" in
    *"@$1") keyctl invalidate "$id" >/dev/null 2>&1 ;;
  esac
done"#;
    // Only a process that possesses the persistent keyring (through a session
    // keyring it is linked into) may invalidate what is in it.
    let _ = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", script, "purge", service])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Env {
    fn drop(&mut self) {
        purge_keyutils_entries(&self.service);
        if std::env::var_os("AWSMFA_KEEP_TMP").is_some_and(|v| !v.is_empty()) {
            eprintln!("AWSMFA_KEEP_TMP: kept {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}
