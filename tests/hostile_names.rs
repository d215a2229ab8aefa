//! Hostile names: directory names and `.awsmfa.toml` profile names chosen by
//! whoever wrote the repository. Newlines, tabs, quotes, `$(…)`, backticks,
//! `;`, `%`, brace expansions, ANSI escapes, globs and bytes that are not UTF-8
//! must never become code in zsh, bash, fish or direnv, must never break the
//! shell, and must never put anything from the repository on PATH.
//!
//! Every injected payload would create a file named [`MARKER`] in whatever
//! directory it ran in; after each case the whole Env is searched for one.
//! Paths with arbitrary bytes reach the shells only through NUL-terminated
//! files read with `read -r -d ''` / `read -z`, never through the test's own
//! quoting.
//!
//! The property tests keep one long-lived non-interactive shell per shell
//! (the real binary sourcing the real `awsmfa init` code) and drive every
//! generated case through it over a pipe; each case's hook-env output is also
//! re-parsed in a fresh shell. A fixed hostile name is walked through a real
//! interactive shell on a terminal as well.

mod support;

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use support::process::{Collector, kill_tree};
use support::*;

/// What every payload creates, relative to wherever it runs.
const MARKER: &str = "awsmfa-pwned";
/// awsmfa's default `wrap`.
const WRAPPED: [&str; 3] = ["terragrunt", "tofu", "terraform"];
/// Cases per property; each shell's run stays far below 20 s on 2 loaded cores.
const CASES: u32 = 12;

// --- what is generated ------------------------------------------------------------

/// Each is `touch awsmfa-pwned` in some shell's syntax, should the text ever be
/// parsed as code (bash, zsh, fish, direnv's bash, a prompt).
const PAYLOADS: &[&str] = &[
    "$(touch awsmfa-pwned)",
    "`touch awsmfa-pwned`",
    ";touch awsmfa-pwned;",
    "{touch,awsmfa-pwned}",
    "|touch awsmfa-pwned",
    "&&touch awsmfa-pwned&&",
    "\ntouch awsmfa-pwned\n",
    "'$(touch awsmfa-pwned)'",
    "\"$(touch awsmfa-pwned)\"",
    "';touch awsmfa-pwned;'",
    "\";touch awsmfa-pwned;\"",
    "(touch awsmfa-pwned)",
    "; and touch awsmfa-pwned;",
    "'\ntouch awsmfa-pwned\n'",
    "\\\ntouch awsmfa-pwned\n",
    "%(touch awsmfa-pwned)",
    "${(e):-$(touch awsmfa-pwned)}",
    "$'\\n'touch awsmfa-pwned",
];

/// Single troublemakers: quoting, expansion, prompt escapes, terminal escapes.
const ATOMS: &[&str] = &[
    "\n",
    "\t",
    "\r",
    "'",
    "\"",
    " ",
    "%",
    "%F{red}",
    "*",
    "?",
    "[a]",
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\\",
    "\\n",
    "~",
    "!",
    "!!",
    "#",
    "-",
    "--",
    "$",
    "$HOME",
    "${x}",
    "`",
    ";",
    "&",
    "|",
    "<",
    ">",
    "(",
    ")",
    "{a,b}",
    "..",
    "é",
    "\u{202e}",
    "\x7f",
    "=",
    ",",
    "@",
    "+",
    ".",
    "_",
];

/// Bytes that are not UTF-8 (directory names only: a TOML file is UTF-8).
const NOT_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xfe\xfe"];

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(PAYLOADS).prop_map(|s| s.as_bytes().to_vec()),
        3 => prop::sample::select(ATOMS).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(NOT_UTF8).prop_map(|b| b.to_vec()),
        2 => "[A-Za-z0-9]{1,6}".prop_map(String::into_bytes),
    ]
}

/// A directory name: any bytes but `/` and NUL, never `.` or `..`.
fn dir_name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 1..6).prop_map(|parts| usable_name(parts.concat()))
}

fn usable_name(mut name: Vec<u8>) -> Vec<u8> {
    if name.is_empty() || name == b"." || name == b".." {
        name.insert(0, b'x');
    }
    name
}

/// A profile name: half of them valid (so wrappers get defined under hostile
/// directories), half hostile (the same alphabet, UTF-8 only).
fn profile_name() -> impl Strategy<Value = String> {
    let hostile = prop::collection::vec(
        prop_oneof![
            prop::sample::select(PAYLOADS).prop_map(String::from),
            prop::sample::select(ATOMS).prop_map(String::from),
            "[A-Za-z0-9]{1,6}",
        ],
        1..4,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof!["[A-Za-z0-9_.@+=,-]{1,24}", hostile]
}

/// The rule from DESIGN.md, written out here independently of awsmfa's code:
/// `[A-Za-z0-9_.@+=,-]+` (awsmfa also caps names at 128 bytes; generated ones
/// stay shorter).
fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@+=,-".contains(&b))
}

/// A TOML basic string holding exactly `s`: control characters as `\u` escapes.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `profile = "…"`, checked to parse back to exactly `profile`.
fn root_file_text(profile: &str) -> String {
    let text = format!("profile = {}\n", toml_string(profile));
    let parsed: toml::Table = text.parse().expect("generated TOML parses");
    assert_eq!(
        parsed.get("profile").and_then(|v| v.as_str()),
        Some(profile),
        "TOML escaping is wrong for {profile:?}"
    );
    text
}

/// Bytes for a failure message.
fn show(bytes: &[u8]) -> String {
    format!("b\"{}\"", bytes.escape_ascii())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // A failing case costs a few shell and awsmfa runs; shrinking stays bounded.
        max_shrink_iters: 24,
        max_shrink_time: 10_000,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs the property; on failure panics with the smallest failing input.
fn check_property<S: Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    describe: impl Fn(&S::Value) -> String,
    test: impl Fn(S::Value) -> Result<(), String>,
) where
    S::Value: Clone,
{
    let mut runner = TestRunner::new(config(cases));
    let started = Instant::now();
    let result = runner.run(&strategy, |value| test(value).map_err(TestCaseError::fail));
    match result {
        Ok(()) => eprintln!("{what}: {cases} cases in {:?}", started.elapsed()),
        Err(TestError::Fail(why, value)) => {
            panic!("{what}: fails for {}\n{why}", describe(&value))
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

// --- the world -------------------------------------------------------------------

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

fn awsmfa_dir() -> PathBuf {
    support::env::awsmfa_bin()
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// Every file or directory named [`MARKER`] under `dir` (links not followed).
fn markers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == MARKER {
                found.push(path.clone());
            }
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                todo.push(path);
            }
        }
    }
    found
}

fn no_markers(env: &Env) -> Result<(), String> {
    let found = markers(&env.root);
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("an injected command ran: {found:?}"))
    }
}

/// A hostile directory `home/src/<tag><n>/<name>` holding `.awsmfa.toml` with
/// `profile`; `awsmfa allow` is run in it and must succeed exactly when the
/// profile is a valid name. Under HOME, so root lookups stop there.
fn make_root(env: &Env, tag: &str, n: u64, name: &[u8], profile: &str) -> Result<PathBuf, String> {
    let dir = env
        .home
        .join("src")
        .join(format!("{tag}{n}"))
        .join(OsStr::from_bytes(name));
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", show(name)))?;
    fs::write(dir.join(".awsmfa.toml"), root_file_text(profile)).map_err(|e| e.to_string())?;
    let mut allow = env.cmd(["allow"]);
    allow.current_dir(&dir);
    let out = env.run_cmd(allow);
    let valid = is_profile_name(profile);
    if out.status.success() != valid {
        return Err(format!(
            "`awsmfa allow` for profile {profile:?} (valid: {valid}) under {}:\n{}",
            show(name),
            out.dump()
        ));
    }
    for stream in [&out.stdout, &out.stderr] {
        if stream.contains(&0x1b) {
            return Err(format!(
                "`awsmfa allow` printed a raw escape sequence:\n{}",
                out.dump()
            ));
        }
    }
    Ok(dir)
}

// --- shells ----------------------------------------------------------------------

use support::shell::Kind;

impl Kind {
    /// Flags for running a script file without any rc file.
    fn script_flags(self) -> &'static [&'static str] {
        match self {
            Kind::Zsh => &["-f"],
            Kind::Bash => &["--norc", "--noprofile"],
            Kind::Fish => &["--no-config"],
        }
    }

    /// `__t_report`: prints, NUL-terminated, whether each wrapped command is a
    /// function, `set`/`unset` and the value of `__awsmfa_profile` and
    /// `__awsmfa_session_file`, `__awsmfa_state`, then the count and entries of
    /// `__awsmfa_wrapped`.
    fn report_fn(self) -> &'static str {
        match self {
            Kind::Bash => {
                r#"__t_report() {
  local n
  for n in terragrunt tofu terraform; do
    if declare -F -- "$n" >/dev/null; then printf 'fn\0'; else printf 'no\0'; fi
  done
  if [[ -n ${__awsmfa_profile+x} ]]; then printf 'set\0%s\0' "$__awsmfa_profile"; else printf 'unset\0\0'; fi
  if [[ -n ${__awsmfa_session_file+x} ]]; then printf 'set\0%s\0' "$__awsmfa_session_file"; else printf 'unset\0\0'; fi
  printf '%s\0' "${__awsmfa_state-}" "${#__awsmfa_wrapped[@]}" "${__awsmfa_wrapped[@]}"
}
"#
            }
            Kind::Zsh => {
                r#"__t_report() {
  local n
  for n in terragrunt tofu terraform; do
    if (( ${+functions[$n]} )); then printf 'fn\0'; else printf 'no\0'; fi
  done
  if (( ${+__awsmfa_profile} )); then printf 'set\0%s\0' "$__awsmfa_profile"; else printf 'unset\0\0'; fi
  if (( ${+__awsmfa_session_file} )); then printf 'set\0%s\0' "$__awsmfa_session_file"; else printf 'unset\0\0'; fi
  printf '%s\0' "${__awsmfa_state-}" "${#__awsmfa_wrapped[@]}" "${__awsmfa_wrapped[@]}"
}
"#
            }
            Kind::Fish => {
                r#"function __t_report
    for n in terragrunt tofu terraform
        if functions -q -- $n
            printf 'fn\0'
        else
            printf 'no\0'
        end
    end
    if set -q __awsmfa_profile
        printf 'set\0%s\0' "$__awsmfa_profile"
    else
        printf 'unset\0\0'
    end
    if set -q __awsmfa_session_file
        printf 'set\0%s\0' "$__awsmfa_session_file"
    else
        printf 'unset\0\0'
    end
    printf '%s\0' "$__awsmfa_state" (count $__awsmfa_wrapped) $__awsmfa_wrapped
end
"#
            }
        }
    }

    /// The long-lived driver: reads a case number per line on stdin; for case
    /// N reads the directory from `$CASES/N/dir` (NUL-terminated), then enters
    /// it, leaves to `$OUTSIDE`, enters, leaves, writing `__t_report` after
    /// each step to `$CASES/N/{in1,out1,in2,out2}` and a `SYNC N STEP` line
    /// to stdout; `DONE N` at the end. The hooks fire as they do for a user:
    /// zsh's from `chpwd`, fish's from `--on-variable PWD`; bash's runs from
    /// PROMPT_COMMAND, which a script has not, so it is called after `cd`.
    fn driver(self) -> String {
        let body = match self {
            Kind::Bash | Kind::Zsh => {
                let init = if self == Kind::Bash {
                    "eval \"$(\"$AWSMFA\" init bash)\" || exit 97"
                } else {
                    "eval \"$(\"$AWSMFA\" init zsh)\" || exit 97"
                };
                let hook = if self == Kind::Bash {
                    "    __awsmfa_hook\n"
                } else {
                    ""
                };
                format!(
                    r#"{init}
while IFS= read -r n; do
  # bash's read returns 1 when the value ends in an incomplete UTF-8 sequence
  # (a lone \xc3), though it reads it whole: judge by the value.
  dir=''
  IFS= read -r -d '' dir <"$CASES/$n/dir"
  [[ -n $dir ]] || printf 'NODIR %s\n' "$n"
  for where in in1 out1 in2 out2; do
    case $where in
      in*) cd -- "$dir" || printf 'CDFAIL %s\n' "$where" ;;
      *) cd -- "$OUTSIDE" || printf 'CDFAIL %s\n' "$where" ;;
    esac
{hook}    __t_report >"$CASES/$n/$where"
    printf 'SYNC %s %s\n' "$n" "$where"
  done
  printf 'DONE %s\n' "$n"
done
"#
                )
            }
            Kind::Fish => r#"$AWSMFA init fish | source; or exit 97
while read -l n
    read -z dir <$CASES/$n/dir; or printf 'NODIR %s\n' $n
    for where in in1 out1 in2 out2
        if string match -q 'in*' -- $where
            cd $dir; or printf 'CDFAIL %s\n' $where
        else
            cd $OUTSIDE; or printf 'CDFAIL %s\n' $where
        end
        __t_report >$CASES/$n/$where
        printf 'SYNC %s %s\n' $n $where
    end
    printf 'DONE %s\n' $n
end
"#
            .to_string(),
        };
        format!("{}{body}", self.report_fn())
    }

    /// A fresh shell: sources `awsmfa init`, evaluates the hook-env output in
    /// file $1 as the hook does, and writes `__t_report` to file $2.
    fn reparse(self) -> String {
        let body = match self {
            Kind::Bash => {
                "eval \"$(\"$AWSMFA\" init bash)\" || exit 97\nout=$(cat -- \"$1\") || exit 98\neval \"$out\"\n__t_report >\"$2\"\n"
            }
            Kind::Zsh => {
                "eval \"$(\"$AWSMFA\" init zsh)\" || exit 97\nout=$(cat -- \"$1\") || exit 98\neval \"$out\"\n__t_report >\"$2\"\n"
            }
            Kind::Fish => {
                "$AWSMFA init fish | source; or exit 97\ncat $argv[1] | source\n__t_report >$argv[2]\n"
            }
        };
        format!("{}{body}", self.report_fn())
    }
}

/// One `__t_report`.
#[derive(Clone, PartialEq, Eq)]
struct Report {
    functions: Vec<bool>,
    profile: Option<Vec<u8>>,
    session_file: Option<Vec<u8>>,
    state: Vec<u8>,
    wrapped: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: &Option<Vec<u8>>| v.as_deref().map_or("unset".into(), show);
        let wrapped: Vec<String> = self.wrapped.iter().map(|w| show(w)).collect();
        write!(
            f,
            "{{functions {:?}, profile {}, session_file {}, state {}, wrapped {wrapped:?}}}",
            self.functions,
            opt(&self.profile),
            opt(&self.session_file),
            show(&self.state)
        )
    }
}

impl Report {
    fn parse(bytes: &[u8]) -> Result<Report, String> {
        let bad = || format!("malformed report {}", show(bytes));
        let fields: Vec<&[u8]> = bytes
            .strip_suffix(b"\0")
            .ok_or_else(bad)?
            .split(|b| *b == 0)
            .collect();
        if fields.len() < 9 {
            return Err(bad());
        }
        let opt = |flag: &[u8], value: &[u8]| -> Result<Option<Vec<u8>>, String> {
            match flag {
                b"set" => Ok(Some(value.to_vec())),
                b"unset" => Ok(None),
                _ => Err(bad()),
            }
        };
        let count: usize = std::str::from_utf8(fields[8])
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        if fields.len() != 9 + count {
            return Err(bad());
        }
        Ok(Report {
            functions: fields[..3].iter().map(|f| *f == b"fn").collect(),
            profile: opt(fields[3], fields[4])?,
            session_file: opt(fields[5], fields[6])?,
            state: fields[7].to_vec(),
            wrapped: fields[9..].iter().map(|f| f.to_vec()).collect(),
        })
    }

    fn read(path: &Path) -> Result<Report, String> {
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Report::parse(&bytes)
    }
}

/// What the shell must hold inside a root whose `.awsmfa.toml` names
/// `profile` (`valid`: allowed, so it applies), or outside any root.
fn check_inside(env: &Env, r: &Report, profile: &str, valid: bool) -> Result<(), String> {
    let state_ok = r.state.len() == 32 && r.state.iter().all(u8::is_ascii_hexdigit);
    if !state_ok {
        return Err(format!(
            "__awsmfa_state is not a 32-digit hex digest: {r:?}"
        ));
    }
    if !valid {
        // Not allowed (allow refused it): nothing applies, the note is in the state.
        let expect = Report {
            functions: vec![false; 3],
            profile: None,
            session_file: None,
            state: r.state.clone(),
            wrapped: vec![],
        };
        return if *r == expect {
            Ok(())
        } else {
            Err(format!("a refused root file applied: {r:?}"))
        };
    }
    if r.functions != [true; 3] {
        return Err(format!("wrappers missing inside the root: {r:?}"));
    }
    if r.profile.as_deref() != Some(profile.as_bytes()) {
        return Err(format!(
            "__awsmfa_profile is not {profile:?} byte for byte: {r:?}"
        ));
    }
    let wrapped: Vec<&[u8]> = r.wrapped.iter().map(Vec::as_slice).collect();
    if wrapped != WRAPPED.map(str::as_bytes) {
        return Err(format!("__awsmfa_wrapped is wrong: {r:?}"));
    }
    let sessions = env.state_home.join("awsmfa/sessions");
    let file = r
        .session_file
        .as_deref()
        .map(|f| Path::new(OsStr::from_bytes(f)));
    if !file.is_some_and(|f| f.parent() == Some(&sessions) && f.file_name().is_some()) {
        return Err(format!(
            "__awsmfa_session_file is not a file in {}: {r:?}",
            sessions.display()
        ));
    }
    Ok(())
}

fn check_outside(r: &Report) -> Result<(), String> {
    let expect = Report {
        functions: vec![false; 3],
        profile: None,
        session_file: None,
        state: vec![],
        wrapped: vec![],
    };
    if *r == expect {
        Ok(())
    } else {
        Err(format!("left over after leaving the root: {r:?}"))
    }
}

/// Every line the hooks printed is one of awsmfa's messages, on one line, with
/// no terminal escape: a hostile path cannot draw on the screen, fake a line,
/// or make the shell complain.
fn check_messages(stderr: &[u8]) -> Result<(), String> {
    for line in stderr.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if !line.starts_with(b"awsmfa: ") || line.contains(&0x1b) || line.contains(&b'\r') {
            return Err(format!(
                "unexpected output on the shell's stderr: {}\n--- all of it ---\n{}",
                show(line),
                String::from_utf8_lossy(stderr)
            ));
        }
    }
    Ok(())
}

/// A long-lived shell running [`Kind::driver`], fed case numbers on stdin.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Collector,
    /// How much of stderr earlier cases already accounted for.
    seen_err: usize,
}

impl Driver {
    fn start(env: &Env, kind: Kind, bin: &Path, script: &Path) -> Driver {
        let mut cmd = env.command(bin);
        cmd.args(kind.script_flags())
            .arg(script)
            .current_dir(env.home.join("outside"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = Collector::new(child.stderr.take());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Driver {
            child,
            stdin,
            lines,
            stderr,
            seen_err: 0,
        }
    }

    /// Runs case `n`; checks that each step's sync line came back in order.
    fn run_case(&mut self, n: u64) -> Result<(), String> {
        let mut got = Vec::new();
        let fail = |got: &[String], why: &str, d: &Driver| {
            format!(
                "{why}; the shell printed {got:?}\n--- its stderr ---\n{}",
                d.stderr.text()
            )
        };
        if let Err(e) = writeln!(self.stdin, "{n}").and_then(|()| self.stdin.flush()) {
            return Err(fail(&got, &format!("the shell is gone ({e})"), self));
        }
        let deadline = Instant::now() + TIMEOUT;
        let done = format!("DONE {n}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == done => break,
                Ok(line) => got.push(line),
                Err(_) => return Err(fail(&got, "no DONE line (hung or died)", self)),
            }
        }
        let expect: Vec<String> = ["in1", "out1", "in2", "out2"]
            .iter()
            .map(|w| format!("SYNC {n} {w}"))
            .collect();
        if got != expect {
            return Err(fail(&got, "steps did not all come back in order", self));
        }
        Ok(())
    }

    /// stderr written since the last call.
    fn new_stderr(&mut self) -> Vec<u8> {
        // Messages are written before the report that follows them, and the
        // DONE line comes after that; a short grace covers the pipe.
        std::thread::sleep(Duration::from_millis(5));
        let all = self.stderr.bytes();
        let new = all[self.seen_err.min(all.len())..].to_vec();
        self.seen_err = all.len();
        new
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
        let _ = self.child.wait();
    }
}

/// One shell's property: every generated (directory, profile) pair is entered,
/// left, entered and left in one long-lived shell, and its hook-env output
/// re-parsed in a fresh one.
///
/// Fails before the trust-boundary commit (db8e3f0~1): there was no `allow`,
/// and the hook state was the directory itself, decoded line by line, so
/// newlines in a directory name broke leaving (wrappers left behind, or a line
/// of the name spliced into `unset -f …` code).
fn hostile_names_in(kind: Kind) {
    let Some(bin) = kind.binary() else { return };
    let mut env = Env::new();
    let cases_dir = env.root.join("cases");
    let outside = env.home.join("outside");
    fs::create_dir_all(&cases_dir).unwrap();
    fs::create_dir_all(&outside).unwrap();
    env.set("AWSMFA", support::env::awsmfa_bin())
        .set("CASES", &cases_dir)
        .set("OUTSIDE", &outside);
    let driver_script = env.write_file("driver", &kind.driver());
    let reparse_script = env.write_file("reparse", &kind.reparse());
    let driver: RefCell<Option<Driver>> = RefCell::new(None);
    let counter = Cell::new(0u64);

    let one_case = |(name, profile): (Vec<u8>, String)| -> Result<(), String> {
        let n = counter.get() + 1;
        counter.set(n);
        let valid = is_profile_name(&profile);
        let dir = make_root(&env, "c", n, &name, &profile)?;
        let case = cases_dir.join(n.to_string());
        fs::create_dir_all(&case).unwrap();
        let mut nul_path = dir.as_os_str().as_bytes().to_vec();
        nul_path.push(0);
        fs::write(case.join("dir"), nul_path).unwrap();

        // The long-lived shell (a new one after a failed case, so shrinking
        // judges each input on its own).
        let mut slot = driver.borrow_mut();
        let d = slot.get_or_insert_with(|| Driver::start(&env, kind, &bin, &driver_script));
        let result = (|| {
            d.run_case(n)?;
            check_messages(&d.new_stderr())?;
            let in1 = Report::read(&case.join("in1"))?;
            check_inside(&env, &in1, &profile, valid).map_err(|e| format!("entering: {e}"))?;
            check_outside(&Report::read(&case.join("out1"))?)
                .map_err(|e| format!("leaving: {e}"))?;
            let in2 = Report::read(&case.join("in2"))?;
            if in2 != in1 {
                return Err(format!("entering again differs: {in1:?} then {in2:?}"));
            }
            check_outside(&Report::read(&case.join("out2"))?)
                .map_err(|e| format!("leaving again: {e}"))?;
            Ok(in1)
        })();
        let in1 = match result {
            Ok(r) => r,
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        };
        drop(slot);

        // hook-env's output, parsed by a fresh shell, means what it should.
        let mut hook = env.cmd(["hook-env", kind.name()]);
        hook.current_dir(&dir).env_remove("__AWSMFA_STATE");
        let out = env.run_cmd(hook);
        if !out.status.success() {
            return Err(format!("hook-env failed:\n{}", out.dump()));
        }
        check_messages(&out.stderr)?;
        fs::write(case.join("hook.out"), &out.stdout).unwrap();
        let mut fresh = env.command(&bin);
        fresh
            .args(kind.script_flags())
            .arg(&reparse_script)
            .arg(case.join("hook.out"))
            .arg(case.join("reparsed"))
            .current_dir(&outside);
        let parsed = env.run_cmd(fresh);
        if !parsed.status.success() || !parsed.stderr.is_empty() {
            return Err(format!(
                "a fresh {} did not take hook-env's output {} cleanly:\n{}",
                kind.name(),
                show(&out.stdout),
                parsed.dump()
            ));
        }
        let reparsed = Report::read(&case.join("reparsed"))?;
        if reparsed != in1 {
            return Err(format!(
                "re-parsed hook-env output {} gives {reparsed:?}, the hook gave {in1:?}",
                show(&out.stdout)
            ));
        }
        // The state went through the shell's quoting byte for byte: handed
        // back, it means "nothing changed".
        let mut again = env.cmd(["hook-env", kind.name()]);
        again
            .current_dir(&dir)
            .env("__AWSMFA_STATE", OsStr::from_bytes(&reparsed.state));
        let again = env.run_cmd(again);
        if !again.status.success() || !again.stdout.is_empty() {
            return Err(format!(
                "hook-env with the re-parsed state changed something:\n{}",
                again.dump()
            ));
        }
        no_markers(&env)
    };

    check_property(
        &format!("hostile names in {}", kind.name()),
        CASES,
        (dir_name(), profile_name()),
        |(name, profile)| format!("directory {} with profile {profile:?}", show(name)),
        one_case,
    );
    assert!(markers(&env.root).is_empty());
}

#[test]
fn hostile_names_zsh() {
    hostile_names_in(Kind::Zsh);
}

#[test]
fn hostile_names_bash() {
    hostile_names_in(Kind::Bash);
}

#[test]
fn hostile_names_fish() {
    hostile_names_in(Kind::Fish);
}

/// A directory whose path is not UTF-8 is an ordinary directory on Linux: once
/// its `.awsmfa.toml` is allowed, the root applies like any other.
/// (db8e3f0~1 had no `allow` at all; this is a bug in the new trust records.)
#[test]
fn allowed_root_file_in_a_non_utf8_directory_applies() {
    let env = Env::new();
    let dir =
        make_root(&env, "u", 0, b"repo-\xff\xfe", "tf-bytes").unwrap_or_else(|e| panic!("{e}"));
    let mut hook = env.cmd(["hook-env", "bash"]);
    hook.current_dir(&dir);
    let out = env.run_cmd(hook);
    assert_ok(&out);
    assert!(
        out.stdout_str().contains("__awsmfa_profile='tf-bytes'\n"),
        "`awsmfa allow` said it allowed the file, but the hook does not apply it\n{}",
        out.dump()
    );
    let mut status = env.cmd(["status"]);
    status.current_dir(&dir);
    let out = env.run_cmd(status);
    assert!(
        !out.stdout_str().contains("is not allowed")
            && !out.stderr_str().contains("is not allowed"),
        "{}",
        out.dump()
    );
}

// --- one fixed hostile name in real interactive shells -----------------------------

/// Every payload at once, UTF-8 (so only quoting is tested here).
const FIXED_NAME: &str = "$(touch awsmfa-pwned)`touch awsmfa-pwned`;touch awsmfa-pwned;{touch,awsmfa-pwned}\n\
                          touch awsmfa-pwned\n\t%F{red}%~\x1b[31m*'\"\\ (touch awsmfa-pwned) end";
const FIXED_PROFILE: &str = "tf-hostile";

/// Fails before the trust-boundary commit (db8e3f0~1): no `allow`, and the
/// old state (the directory, decoded by lines) could not be decoded for this
/// name, so `cd` out left the wrappers defined.
fn interactive(kind: Kind) {
    let Some(bin) = kind.binary() else { return };
    let mut env = Env::new();
    env.set("TERM", "xterm")
        .prepend_path(awsmfa_dir())
        .prepend_path(standins());
    let outside = env.home.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let dir = make_root(&env, "i", 0, FIXED_NAME.as_bytes(), FIXED_PROFILE)
        .unwrap_or_else(|e| panic!("{e}"));
    let name_file = env.root.join("name");
    let mut nul_path = dir.as_os_str().as_bytes().to_vec();
    nul_path.push(0);
    fs::write(&name_file, nul_path).unwrap();
    let out = env.root.join("out");
    fs::create_dir_all(&out).unwrap();
    // Test paths are plain: single quotes work in all three shells.
    let q = |p: &Path| format!("'{}'", p.display());
    match kind {
        Kind::Bash => env.write_file(
            env.home.join(".bashrc"),
            &format!(
                "PS1='<<P:${{awsmfa_prompt}}:P>> '\nPS2='> '\neval \"$(awsmfa init bash)\"\n{}",
                kind.report_fn()
            ),
        ),
        Kind::Zsh => env.write_file(
            env.home.join(".zshrc"),
            &format!(
                "autoload -Uz compinit && compinit -u\nsetopt prompt_subst\n\
                 PROMPT='<<P:${{awsmfa_prompt}}:P>> '\nRPROMPT=''\neval \"$(awsmfa init zsh)\"\n{}",
                kind.report_fn()
            ),
        ),
        Kind::Fish => env.write_file(
            env.config_home.join("fish/config.fish"),
            &format!(
                "set -g fish_greeting ''\nawsmfa init fish | source\n\
                 function fish_prompt\n    printf '<<P:%s:P>> ' (awsmfa_prompt_info)\nend\n{}",
                kind.report_fn()
            ),
        ),
    };
    let mut cmd = env.command(bin);
    cmd.arg("-i").current_dir(&outside);
    let pty = Pty::spawn(
        cmd,
        PtyOpts {
            cols: 200,
            rows: 50,
            ..PtyOpts::default()
        },
    );
    pty.expect_ok(":P>>", TIMEOUT);
    let n = Cell::new(0);
    // Types `line` and a sync printf; returns the awsmfa segment of the next prompt.
    let run = |line: &str| -> String {
        n.set(n.get() + 1);
        pty.send_line(&format!("{line}; printf '%s-%s\\n' SYNC {}", n.get()));
        pty.expect_ok(&format!("SYNC-{}\r\n", n.get()), TIMEOUT);
        let prompt = pty.expect_ok(":P>>", TIMEOUT);
        let start = prompt.rfind("<<P:").expect("prompt start");
        prompt[start + 4..prompt.len() - 4].to_string()
    };
    let report = |tag: &str| -> Report {
        let file = out.join(tag);
        run(&format!("__t_report >{}", q(&file)));
        Report::read(&file).unwrap_or_else(|e| panic!("{e}\n{}", pty.output()))
    };
    match kind {
        Kind::Bash | Kind::Zsh => run(&format!("IFS= read -r -d '' d <{}", q(&name_file))),
        Kind::Fish => run(&format!("read -z d <{}", q(&name_file))),
    };
    let enter = match kind {
        Kind::Bash | Kind::Zsh => "cd -- \"$d\"",
        Kind::Fish => "cd $d",
    };
    let leave = format!("cd {}", q(&outside));
    for round in 1..=2 {
        let segment = run(enter);
        assert!(
            segment.starts_with(&format!("{FIXED_PROFILE} ")),
            "round {round}: prompt segment {segment:?} inside the root"
        );
        let inside = report(&format!("in{round}"));
        check_inside(&env, &inside, FIXED_PROFILE, true)
            .unwrap_or_else(|e| panic!("round {round} in {}: {e}", kind.name()));
        let segment = run(&leave);
        assert_eq!(segment, "", "round {round}: prompt segment outside");
        check_outside(&report(&format!("out{round}")))
            .unwrap_or_else(|e| panic!("round {round} in {}: {e}", kind.name()));
    }
    // Still a working shell.
    assert_eq!(run("true"), "");
    assert!(
        markers(&env.root).is_empty(),
        "an injected command ran: {:?}",
        markers(&env.root)
    );
}

#[test]
fn interactive_zsh_in_a_hostile_directory() {
    interactive(Kind::Zsh);
}

#[test]
fn interactive_bash_in_a_hostile_directory() {
    interactive(Kind::Bash);
}

#[test]
fn interactive_fish_in_a_hostile_directory() {
    interactive(Kind::Fish);
}

// --- direnv ----------------------------------------------------------------------

/// An Env with the direnv library installed and the stand-ins and awsmfa on PATH.
struct Direnv {
    env: Env,
    direnv: PathBuf,
    bash: PathBuf,
}

impl Direnv {
    fn new() -> Option<Direnv> {
        let direnv = require("direnv (Debian package direnv)", which("direnv"))?;
        let bash = require("bash (Debian package bash)", which("bash"))?;
        let mut env = Env::new();
        env.prepend_path(awsmfa_dir()).prepend_path(standins());
        let lib = env.run_ok(["direnv"]).stdout_str();
        env.write_file(env.config_home.join("direnv/lib/awsmfa.sh"), &lib);
        fs::create_dir_all(env.home.join("outside")).unwrap();
        Some(Direnv { env, direnv, bash })
    }

    fn shims(&self) -> PathBuf {
        self.env.state_home.join("awsmfa/shims")
    }

    fn allow(&self, dir: &Path) -> Output {
        let mut c = self.env.command(&self.direnv);
        c.arg("allow").arg(dir);
        self.env.run_cmd(c)
    }

    /// `direnv exec DIR ARGS…`, run from `cwd`.
    fn exec(&self, dir: &Path, cwd: &Path, args: &[&str]) -> Output {
        let mut c = self.env.command(&self.direnv);
        c.arg("exec").arg(dir).args(args).current_dir(cwd);
        self.env.run_cmd(c)
    }

    /// `eval "$(direnv export bash)"` in a bash in `dir`, then `script`.
    fn loaded(&self, dir: &Path, script: &str) -> Output {
        let mut c = self.env.command(&self.bash);
        c.args([
            "--norc",
            "--noprofile",
            "-c",
            &format!("eval \"$(direnv export bash)\"\n{script}"),
        ])
        .current_dir(dir);
        self.env.run_cmd(c)
    }
}

/// The value of `name` in `env -0` output, if set.
fn env0_get<'a>(env0: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let prefix = format!("{name}=");
    env0.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
}

/// direnv itself (2.32, Debian 12) cannot take every directory name, with a
/// plain `export FOO=1` .envrc and no awsmfa at all:
/// - it splices the `.envrc` path into its `bash -c` command inside double
///   quotes (seen with `strace`), so `$(…)` or a backtick in a directory name
///   runs code in direnv itself, and `"` breaks its command line;
/// - its stdlib's `realpath.absolute` uses each path component, unquoted, as
///   a pattern to strip itself, and loops forever (100% CPU) when a component
///   does not match itself: `[a]`, `\x`, and extglobs such as `+(a)`, `@(b)`;
/// - its `source_env` runs `pushd "$(pwd)"`, which loses a trailing newline of
///   the current directory, so `direnv export` fails inside such a directory.
///
/// Those bytes (`$` `` ` `` `"` `\` `[` `(`, and a newline at the very end)
/// are direnv's to fix and are left out of the names here; everything else
/// stays.
fn direnv_dir_name() -> impl Strategy<Value = Vec<u8>> {
    dir_name().prop_map(|mut name| {
        name.retain(|b| !b"$`\"\\[(".contains(b));
        if name.last() == Some(&b'\n') {
            name.push(b'x');
        }
        usable_name(name)
    })
}

/// (a) `use awsmfa` under hostile directory names: direnv loads without
/// running anything injected, and PATH gains awsmfa's shims directory and
/// nothing else (nothing at all when the profile is refused).
/// Fails before the trust-boundary commit (db8e3f0~1): no `allow`, and any
/// profile reached `PROFILE<TAB>DIR` unchecked, so a tab in it moved PATH.
#[test]
fn direnv_hostile_names() {
    let Some(w) = Direnv::new() else { return };
    let base_path = w.env.var("PATH").expect("PATH").as_bytes().to_vec();
    let shims = w.shims();
    let outside = w.env.home.join("outside");
    let counter = Cell::new(0u64);
    let one_case = |(name, profile): (Vec<u8>, String)| -> Result<(), String> {
        let n = counter.get() + 1;
        counter.set(n);
        let valid = is_profile_name(&profile);
        let dir = make_root(&w.env, "d", n, &name, &profile)?;
        fs::write(dir.join(".envrc"), "use awsmfa\n").unwrap();
        let out = w.allow(&dir);
        if !out.status.success() {
            return Err(format!("direnv allow:\n{}", out.dump()));
        }
        let mut expect_path = base_path.clone();
        if valid {
            let mut p = shims.as_os_str().as_bytes().to_vec();
            p.push(b':');
            p.extend_from_slice(&base_path);
            expect_path = p;
        }
        let expect_profile = valid.then_some(profile.as_bytes());

        let out = w.exec(&dir, &outside, &["env", "-0"]);
        if !out.status.success() {
            return Err(format!("direnv exec:\n{}", out.dump()));
        }
        let path = env0_get(&out.stdout, "PATH");
        let got_profile = env0_get(&out.stdout, "AWSMFA_DIRENV_PROFILE");
        if path != Some(&expect_path[..]) || got_profile != expect_profile {
            return Err(format!(
                "direnv exec: PATH {} (expected {}), AWSMFA_DIRENV_PROFILE {:?}\n--- stderr ---\n{}",
                show(path.unwrap_or_default()),
                show(&expect_path),
                got_profile.map(show),
                out.stderr_str()
            ));
        }
        if !valid && !out.stderr_str().contains("is not allowed") {
            return Err(format!("no word on why nothing loaded:\n{}", out.dump()));
        }

        let out = w.loaded(
            &dir,
            "printf '%s\\0' \"$PATH\" \"${AWSMFA_DIRENV_PROFILE-<unset>}\"",
        );
        let fields: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let unset: &[u8] = b"<unset>";
        let expect_fields = [
            &expect_path[..],
            expect_profile.unwrap_or(unset),
            b"".as_slice(),
        ];
        if !out.status.success() || fields != expect_fields {
            return Err(format!(
                "direnv export bash: got {:?}\n{}",
                fields.iter().map(|f| show(f)).collect::<Vec<_>>(),
                out.dump()
            ));
        }
        no_markers(&w.env)
    };
    check_property(
        "hostile names in direnv",
        CASES,
        (direnv_dir_name(), profile_name()),
        |(name, profile)| format!("directory {} with profile {profile:?}", show(name)),
        one_case,
    );
}

/// (b) A profile holding a tab and a path. Before the trust-boundary commit
/// (db8e3f0~1) the root file needed no allow and `awsmfa shims` printed `PROFILE<TAB>SHIMS`,
/// which the library split on tabs: PATH_add got "DIR/evilbin<TAB>SHIMS" and
/// the `tofu` planted there ran.
#[test]
fn direnv_profile_with_a_tab_puts_nothing_from_the_repository_on_path() {
    let Some(w) = Direnv::new() else { return };
    let repo = w.env.home.join("src/tabbed");
    let ran = w.env.root.join("evil-ran");
    let evil = format!("#!/bin/sh\necho EVIL\ntouch '{}'\n", ran.display());
    // Where the old library's split sent PATH, and where the profile points.
    let shims = w.shims();
    let spliced = repo.join(format!("evilbin\t{}", shims.display()));
    for d in [repo.join("evilbin"), spliced] {
        w.env.write_script(d.join("tofu"), &evil);
    }
    let repo_str = repo.to_str().expect("plain test path");
    w.env.write_file(
        repo.join(".awsmfa.toml"),
        &format!("profile = \"x\\t{repo_str}/evilbin\"\n"),
    );
    w.env.write_file(repo.join(".envrc"), "use awsmfa\n");

    let mut allow = w.env.cmd(["allow"]);
    allow.current_dir(&repo);
    let out = w.env.run_cmd(allow);
    assert_fail(&out);
    assert!(out.stderr_str().contains("profile name"), "{}", out.dump());
    assert_ok(&w.allow(&repo));

    let out = w.exec(
        &repo,
        &repo,
        &[
            "bash",
            "--norc",
            "-c",
            "printf '%s\\n' \"$PATH\"; tofu plan",
        ],
    );
    let text = out.stdout_str();
    let path = text.lines().next().unwrap_or_default();
    for entry in path.split(':') {
        assert!(
            !entry.starts_with(repo_str),
            "{entry:?} from the repository is on PATH\n{}",
            out.dump()
        );
    }
    assert!(
        !path.split(':').any(|e| Path::new(e) == shims),
        "a refused root file still loaded the shims\n{}",
        out.dump()
    );
    assert!(!text.contains("EVIL") && !ran.exists(), "{}", out.dump());
    assert!(
        text.contains("tofu: AWS_ACCESS_KEY_ID=none"),
        "the stand-in tofu did not run\n{}",
        out.dump()
    );
    let err = out.stderr_str();
    assert!(
        err.contains(".awsmfa.toml is not allowed") && err.contains("`use awsmfa`"),
        "no clear message from use awsmfa\n{}",
        out.dump()
    );
    assert!(markers(&w.env.root).is_empty());
}

/// (c) Flags for the wrapped command go to it through the shims, untouched.
/// Before the trust-boundary commit (db8e3f0~1) `awsmfa shim` went through
/// clap, which took `--version`, `-h`, `--help` (and `--`) for awsmfa's own.
#[test]
fn direnv_shims_pass_flags_to_the_wrapped_command() {
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const SERIAL: &str = "arn:aws:iam::123456789012:mfa/jacob";
    const KEY: &str = "AKIAHOSTILEFLAGS0001";
    const SECRET: &str = "hostileflagssecret/0123456789abcdefGHIJKLMN";
    if !keyutils_available() {
        return;
    }
    let Some(_) = require("oathtool (Debian package oathtool)", which("oathtool")) else {
        return;
    };
    let Some(w) = Direnv::new() else { return };
    let stub = StsStub::start();
    stub.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
    w.env.write_aws_config(&format!(
        "[profile tf-flags]\nregion = eu-central-1\nmfa_serial = {SERIAL}\n\
         mfa_process = oathtool --totp -b {SEED}\nsession_ttl = 45m\nendpoint_url = {}\n",
        stub.url()
    ));
    w.env
        .write_awsmfa_config("[roots.tofu-flags]\nprofile = \"tf-flags\"\n");
    let mut add = w.env.cmd(["add", "tf-flags", "--from-env"]);
    add.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    assert_ok(&w.env.run_cmd(add));
    let dir = w.env.work.join("tofu-flags");
    w.env.write_file(dir.join(".envrc"), "use awsmfa\n");
    assert_ok(&w.allow(&dir));

    let version = "OpenTofu v1.8.0-standin\n";
    let usage = "Usage: tofu [global options] <subcommand> [args]\n";
    let cases: [(&[&str], &str); 5] = [
        (&["--version"], version),
        (&["-version"], version),
        (&["-v"], version),
        (&["-h"], usage),
        (&["--help"], usage),
    ];
    for (args, expect) in cases {
        let mut argv = vec!["tofu"];
        argv.extend_from_slice(args);
        let out = w.exec(&dir, &dir, &argv);
        assert_ok(&out);
        assert_eq!(out.stdout_str(), expect, "tofu {args:?}\n{}", out.dump());
        // It ran under awsmfa exec: one session, minted for the first.
        assert_eq!(stub.calls("GetSessionToken"), 1, "tofu {args:?}");
    }
    let out = w.exec(&dir, &dir, &["tofu", "plan", "--", "-x"]);
    assert_ok(&out);
    let text = out.stdout_str();
    assert!(text.contains("tofu: argv: plan -- -x\n"), "{}", out.dump());
    assert!(
        text.contains("tofu: AWS_ACCESS_KEY_ID=ASIA"),
        "plan did not run with a session\n{}",
        out.dump()
    );
    assert_eq!(stub.calls("GetSessionToken"), 1);
}
