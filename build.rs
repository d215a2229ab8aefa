use std::path::Path;
use std::process::Command;

fn main() {
    // The prompt and `cd` hooks run awsmfa many times a minute. As a position-
    // independent executable it spends most of its startup applying ~27k relative
    // relocations and faulting in the pages they touch; linked at a fixed address
    // it has none, which halves the cost of `awsmfa prompt`.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }

    // `awsmfa --version`: the version and the commit it was built from, so a
    // bug report (or a .deb) says exactly which code it is.
    let version = env!("CARGO_PKG_VERSION");
    let commit = commit().unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=AWSMFA_VERSION={version} ({commit})");
}

/// `commit 0123abcde`, with `-dirty` when the files the binary is built from
/// differ from that commit. A crates.io package records its commit in
/// `.cargo_vcs_info.json`; a git checkout (also `cargo install --git`) asks
/// git; a tarball has neither.
fn commit() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if let Ok(json) = std::fs::read_to_string(Path::new(&manifest_dir).join(".cargo_vcs_info.json"))
    {
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
        let sha1 = json.split("\"sha1\"").nth(1)?.split('"').nth(1)?;
        let dirty = if json.contains("\"dirty\": true") {
            "-dirty"
        } else {
            ""
        };
        return Some(format!("commit {}{dirty}", short(sha1)?));
    }
    // Only this crate's own repository: a tarball unpacked inside some other
    // checkout must not report that checkout's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&manifest_dir).canonicalize().ok()? {
        return None;
    }
    let sha1 = git(&["rev-parse", "HEAD"])?;
    // Re-run when HEAD moves, and only then (plus when the sources change, for
    // `-dirty`, when the crate is rebuilt anyway). HEAD's reflog is appended at
    // every commit, checkout and reset, even when the branch ref is packed;
    // `--git-path` finds these files in a worktree too, where .git is a file.
    // A path that does not exist would make cargo re-run this on every build.
    let refname = git(&["symbolic-ref", "-q", "HEAD"]);
    let mut watched = vec!["HEAD".to_string(), "logs/HEAD".to_string()];
    watched.extend(refname);
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && Path::new(&top).join(&path).exists()
        {
            println!(
                "cargo:rerun-if-changed={}",
                Path::new(&top).join(path).display()
            );
        }
    }
    const SOURCES: &[&str] = &[
        "src",
        "shell",
        "direnv",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
    ];
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let status = git(&[&["status", "--porcelain", "--"], SOURCES].concat())?;
    let dirty = if status.is_empty() { "" } else { "-dirty" };
    Some(format!("commit {}{dirty}", short(&sha1)?))
}

/// The first 9 hex digits, as rustc shows its own commit; None for anything
/// that is not a commit id (it ends up in a `cargo:` line and in --version).
fn short(sha1: &str) -> Option<&str> {
    let short = sha1.get(..9)?;
    short
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(short)
}

/// `git ARGS` in the crate's directory: its trimmed output, or None when git
/// is missing or fails (not a repository).
fn git(args: &[&str]) -> Option<String> {
    // No optional locks: `git status` must not rewrite the index of a
    // checkout someone is working in.
    let out = Command::new("git")
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
