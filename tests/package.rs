//! The Debian package as a user meets it. `scripts/package --dev` packages the
//! binary under test, `dpkg -i` installs it on this machine (CI's is a
//! throwaway root VM), and then: `awsmfa --version`, `man`, and <TAB> in fresh
//! zsh, bash and fish that never ran `awsmfa init`. `dpkg -r` must then leave
//! nothing behind.
//!
//! One test, in order, since the package is system-wide; a guard purges it even
//! when a check fails. The tests that need awsmfa absent from the system's PATH
//! never run alongside it (.config/nextest.toml).

mod support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::shell::Kind;
use support::*;

/// Debian's default PATH: the installed awsmfa, not the binary under test.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `awsmfa --version` names the commit the binary was built from, and says
/// when the files it is built from differ from that commit.
#[test]
fn version_names_the_commit() {
    let env = Env::new();
    let out = env.run_ok(["--version"]).stdout_str();
    let want = format!("awsmfa {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.starts_with(&want), "{out}");
    let git = |args: &[&str]| {
        let mut cmd = command("git", args);
        cmd.current_dir(repo());
        let out = run(cmd);
        assert!(out.status.success(), "git {args:?}: {}", out.dump());
        out.stdout_str()
    };
    let head = git(&["rev-parse", "HEAD"]);
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "shell",
        "direnv",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
    ]);
    let dirty = if changed.is_empty() { "" } else { "-dirty" };
    assert_eq!(out.trim_end(), format!("{want}{}{dirty})", &head[..9]));
}

/// Installs the package; `Drop` purges it, so a failed check leaves nothing.
struct Installed;

impl Installed {
    fn new(deb: &Path) -> Installed {
        // Made first, so a failed check below still purges what dpkg did.
        let installed = Installed;
        let mut cmd = command("dpkg", &["-i"]);
        cmd.arg(deb);
        let out = run(cmd);
        assert!(out.status.success(), "dpkg -i: {}", out.dump());
        // A warning here is a defect of the package (a missing field, say).
        assert!(
            !out.stderr_str().contains("warning"),
            "dpkg -i: {}",
            out.dump()
        );
        installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run(command("dpkg", &["--purge", "awsmfa"]));
    }
}

/// `program args…` with the test's own environment (cargo, rustup, root's
/// PATH), in a process group of its own, which a time-out kills whole.
fn command(program: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    cmd
}

/// Runs `cmd` to its end, killed after two and a half minutes: scripts/package
/// may build the man page generator first (`--test package` does not build
/// examples), on a busy 2-core machine.
fn run(cmd: Command) -> Output {
    run_with_timeout(cmd, None, Duration::from_secs(150))
}

fn installed_status() -> String {
    run(command("dpkg-query", &["-W", "-f=${Status}", "awsmfa"])).stdout_str()
}

/// What `man` shows for `page`, plain text; groff's warnings fail the test.
fn man(page: &str) -> String {
    let mut cmd = command("man", &["--warnings", "-P", "cat", page]);
    cmd.env("MANWIDTH", "100").env("LANG", "C.UTF-8");
    let out = run(cmd);
    assert!(out.status.success(), "man {page}: {}", out.dump());
    assert_eq!(out.stderr_str(), "", "man {page}: {}", out.dump());
    out.stdout_str()
}

/// A fresh interactive shell (an rc file with no `awsmfa init`), the system's
/// PATH: <TAB> after `awsmfa exec ` lists the profiles in ~/.aws/config, from
/// the completion file the package put in the shell's own directory.
fn tab_completes_profiles(env: &Env, kind: Kind) {
    let Some(bin) = kind.binary() else { return };
    let prompt = "<<PROMPT>> ";
    match kind {
        Kind::Zsh => env.write_file(
            env.home.join(".zshrc"),
            &format!("autoload -Uz compinit && compinit -u\nPROMPT='{prompt}'\n"),
        ),
        // As Debian's /etc/bash.bashrc does with its completion block enabled.
        Kind::Bash => env.write_file(
            env.home.join(".bashrc"),
            &format!("PS1='{prompt}'\nsource /usr/share/bash-completion/bash_completion\n"),
        ),
        Kind::Fish => env.write_file(
            env.config_home.join("fish/config.fish"),
            &format!("set -g fish_greeting ''\nfunction fish_prompt\n    printf '{prompt}'\nend\n"),
        ),
    };
    let mut cmd = env.command(bin);
    cmd.arg("-i");
    let pty = Pty::spawn(
        cmd,
        PtyOpts {
            cols: 200,
            rows: 50,
            ..PtyOpts::default()
        },
    );
    pty.expect_ok(prompt, TIMEOUT);
    // bash lists on the second <TAB>; zsh and fish on the first.
    let tabs = if kind == Kind::Bash { "\t\t" } else { "\t" };
    pty.send(&format!("awsmfa exec {tabs}"));
    let listing = pty.expect_ok("tf-alpha", TIMEOUT) + &pty.expect_ok("tf-beta", TIMEOUT);
    assert!(!listing.contains("rror"), "{}: {listing}", kind.name());
}

/// What the test needs, after the skip/fail rule.
fn ready() -> Option<()> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    require("root, for dpkg -i", root.then_some(()))?;
    require("dpkg", which("dpkg"))?;
    require("man (Debian package man-db)", which("man"))?;
    let completion = Path::new("/usr/share/bash-completion/bash_completion");
    require(
        "bash-completion (Debian package bash-completion)",
        completion.exists().then_some(()),
    )?;
    let cargo_deb = repo().join(".tools/bin/cargo-deb");
    require(
        "cargo-deb in .tools/ (scripts/test installs it)",
        is_executable(&cargo_deb).then_some(()),
    )?;
    // Never replace, then remove, a package somebody installed here.
    require(
        "a machine without the awsmfa package (dpkg -r awsmfa first)",
        installed_status().is_empty().then_some(()),
    )
}

/// Every file of the package where Debian puts it; every check as a user would
/// make it; and nothing left after `dpkg -r`.
#[test]
fn deb_installs_completes_and_removes_cleanly() {
    let Some(()) = ready() else { return };

    // The package, from the binary under test, and its printed checksum.
    let mut cmd = command("bash", &[]);
    cmd.arg(repo().join("scripts/package"))
        .arg("--dev")
        .env("NO_COLOR", "1");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "scripts/package --dev: {}",
        out.dump()
    );
    let target = support::env::awsmfa_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let dir = target.join("debian/dev");
    let debs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("target/debian/dev")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];
    let sum = support::hex(&Sha256::digest(fs::read(deb).expect("read .deb")));
    let printed = out.stdout_str();
    assert!(printed.contains(&format!("sha256 {sum}")), "{printed}");
    assert!(printed.contains(&deb.display().to_string()), "{printed}");
    let name = deb.file_name().expect("file name").to_string_lossy();
    let mut cmd = command("sha256sum", &["-c", &format!("{name}.sha256")]);
    cmd.current_dir(&dir);
    let check = run(cmd);
    assert!(check.status.success(), "sha256sum -c: {}", check.dump());

    // Its control fields.
    let field = |name: &str| {
        let mut cmd = command("dpkg-deb", &["--field"]);
        cmd.arg(deb).arg(name);
        let out = run(cmd);
        assert!(
            out.status.success(),
            "dpkg-deb --field {name}: {}",
            out.dump()
        );
        out.stdout_str().trim().to_string()
    };
    assert_eq!(field("Package"), "awsmfa");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "utils");
    assert_eq!(field("Priority"), "optional");
    assert!(
        field("Depends").starts_with("libc6 "),
        "{}",
        field("Depends")
    );
    assert!(
        field("Description").lines().count() > 3,
        "{}",
        field("Description")
    );

    let installed = Installed::new(deb);
    assert_eq!(installed_status(), "install ok installed");
    let listed = run(command("dpkg", &["-L", "awsmfa"])).stdout_str();
    let files: Vec<PathBuf> = listed
        .lines()
        .map(PathBuf::from)
        .filter(|p| !p.is_dir())
        .collect();
    for want in [
        "/usr/bin/awsmfa",
        "/usr/share/man/man1/awsmfa.1.gz",
        "/usr/share/man/man1/awsmfa-exec.1.gz",
        "/usr/share/awsmfa/direnv.sh",
        "/usr/share/zsh/vendor-completions/_awsmfa",
        "/usr/share/bash-completion/completions/awsmfa",
        "/usr/share/fish/vendor_completions.d/awsmfa.fish",
    ] {
        assert!(
            files.contains(&PathBuf::from(want)),
            "{want} missing:\n{listed}"
        );
    }

    // The binary: this build, and its version names the commit.
    let version = |bin: &Path| run(command(bin, &["--version"])).stdout_str();
    let shipped = version(Path::new("/usr/bin/awsmfa"));
    assert!(shipped.contains("(commit "), "{shipped}");
    assert_eq!(shipped, version(&support::env::awsmfa_bin()));

    // A man page for awsmfa and for each command `awsmfa --help` lists, with the
    // sections written by hand.
    let help = run(command("/usr/bin/awsmfa", &["--help"])).stdout_str();
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"exec"), "{help}");
    let pages =
        std::iter::once("awsmfa".to_string()).chain(commands.iter().map(|c| format!("awsmfa-{c}")));
    for page in pages {
        let out = run(command("man", &["-w", &page]));
        assert_eq!(
            out.stdout_str().trim(),
            format!("/usr/share/man/man1/{page}.1.gz"),
            "man -w {page}: {}",
            out.dump()
        );
    }
    let main = man("awsmfa");
    for text in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "~/.aws/config",
        "~/.config/awsmfa/config.toml",
        ".awsmfa.toml",
        "~/.local/state/awsmfa/",
        "AWSMFA_CONFIG",
        "awsmfa-exec(1)",
        "(commit ",
    ] {
        assert!(main.contains(text), "no {text:?} in man awsmfa:\n{main}");
    }
    let exec = man("awsmfa-exec");
    assert!(exec.contains("--min-remaining"), "{exec}");
    assert!(exec.contains("awsmfa(1)"), "{exec}");

    // The direnv library, as in the repository (awsmfa found on PATH).
    assert_eq!(
        fs::read_to_string("/usr/share/awsmfa/direnv.sh").expect("direnv library"),
        fs::read_to_string(repo().join("direnv/awsmfa.sh")).expect("direnv/awsmfa.sh")
    );

    // <TAB> in shells that never ran `awsmfa init`.
    let mut env = Env::new();
    env.set("PATH", SYSTEM_PATH).set("TERM", "xterm");
    env.write_aws_config(
        "[profile tf-alpha]\nregion = eu-west-1\n\n[profile tf-beta]\nregion = eu-west-1\n",
    );
    for kind in [Kind::Zsh, Kind::Bash, Kind::Fish] {
        tab_completes_profiles(&env, kind);
    }

    // Removed: not one of its files is left, nor a directory of its own.
    let out = run(command("dpkg", &["-r", "awsmfa"]));
    assert!(out.status.success(), "dpkg -r: {}", out.dump());
    for file in &files {
        assert!(!file.exists(), "{} is left after dpkg -r", file.display());
    }
    for dir in ["/usr/share/awsmfa", "/usr/share/doc/awsmfa"] {
        assert!(!Path::new(dir).exists(), "{dir} is left after dpkg -r");
    }
    assert_eq!(installed_status(), "");
    drop(installed);
}
