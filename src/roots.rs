//! Which OpenTofu root a directory belongs to, and what that root maps to. On the
//! `cd` and prompt paths: no keyring, no network, a handful of `stat`s.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::config::settings::{self, Root};
use crate::paths;

pub const ROOT_FILE: &str = ".awsmfa.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A committed `.awsmfa.toml` in the directory.
    File,
    /// `[roots."~/src/x"]`: the directory's path.
    Path(String),
    /// `[roots.x]`: the directory's name.
    Name(String),
}

#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub how: Match,
    pub root: Root,
}

impl Found {
    pub fn describe(&self) -> String {
        match &self.how {
            Match::File => format!("{ROOT_FILE} in the directory"),
            Match::Path(key) => format!("[roots.\"{key}\"] in {}", paths::display(&self.root.file)),
            Match::Name(key) => format!("[roots.{key}] in {}", paths::display(&self.root.file)),
        }
    }
}

/// The nearest root at or above `dir`. At one directory the user's own
/// config.toml beats a committed `.awsmfa.toml` (a path key before a name key):
/// a personal mapping is how someone overrides what a repository suggests.
pub fn find(dir: &Path, settings: &Settings) -> anyhow::Result<Option<Found>> {
    // Symlinked checkouts resolve to the same root as their target.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let path_keys: Vec<(PathBuf, &String)> = settings
        .roots
        .keys()
        .filter(|k| is_path_key(k))
        .map(|k| {
            let p = paths::expand_tilde(k);
            (p.canonicalize().unwrap_or(p), k)
        })
        .collect();
    for candidate in dir.ancestors() {
        if let Some((_, key)) = path_keys.iter().find(|(p, _)| p == candidate) {
            return Ok(Some(found(
                candidate,
                Match::Path((*key).clone()),
                &settings.roots[*key],
            )));
        }
        if let Some(name) = candidate.file_name().and_then(|n| n.to_str())
            && let Some(root) = settings.roots.get(name)
            && !is_path_key(name)
        {
            return Ok(Some(found(candidate, Match::Name(name.to_string()), root)));
        }
        let file = candidate.join(ROOT_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let root = settings::parse_root_file(&text, &file)?;
                return Ok(Some(Found {
                    dir: candidate.to_path_buf(),
                    how: Match::File,
                    root,
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(e) => {
                return Err(anyhow::anyhow!("cannot read {}: {e}", file.display()));
            }
        }
    }
    Ok(None)
}

fn found(dir: &Path, how: Match, root: &Root) -> Found {
    Found {
        dir: dir.to_path_buf(),
        how,
        root: root.clone(),
    }
}

fn is_path_key(key: &str) -> bool {
    key.contains('/') || key.starts_with('~')
}

/// Files that make a directory look like an OpenTofu or Terragrunt root.
const MARKERS: [&str; 3] = ["terragrunt.hcl", "root.hcl", ".terraform.lock.hcl"];

/// The nearest directory at or above `dir` that looks like an OpenTofu root,
/// for "this root is not mapped" hints. Reads directories: not for the hot path.
pub fn looks_like_root(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| {
            MARKERS.iter().any(|m| d.join(m).is_file())
                || std::fs::read_dir(d).is_ok_and(|entries| {
                    entries.filter_map(|e| e.ok()).any(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.ends_with(".tf") || name.ends_with(".tofu")
                    })
                })
        })
        .map(Path::to_path_buf)
}

/// The config.toml lines that would map `dir`.
pub fn mapping_hint(dir: &Path, settings: &Settings) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "add to {}:\n    [roots.{}]\n    profile = \"PROFILE\"\n  or commit a {ROOT_FILE} with `profile = \"PROFILE\"` in {}",
        paths::display(&settings.path),
        toml_key(&name),
        paths::display(dir)
    )
}

fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A tree 10 levels below a mapped root, under a fresh temp dir.
    fn deep_tree(name: &str) -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("awsmfa-roots-{name}-{}", std::process::id()));
        let root = base.join("src/tofu-proxmox");
        let deep = (0..10).fold(root.clone(), |p, i| p.join(format!("d{i}")));
        std::fs::create_dir_all(&deep).unwrap();
        (base, deep)
    }

    fn settings(text: &str) -> Settings {
        Settings::parse(text, PathBuf::from("/c/config.toml")).unwrap()
    }

    #[test]
    fn nearest_mapping_wins_and_names_how_it_matched() {
        let (base, deep) = deep_tree("match");
        let s =
            settings("[roots.tofu-proxmox]\nprofile = \"tf\"\n[roots.d4]\nprofile = \"inner\"\n");
        let found = find(&deep, &s).unwrap().unwrap();
        assert_eq!(found.root.profile, "inner");
        assert_eq!(found.how, Match::Name("d4".into()));
        let outer = base.join("src/tofu-proxmox/d0");
        assert_eq!(find(&outer, &s).unwrap().unwrap().root.profile, "tf");
        assert!(find(&base, &s).unwrap().is_none());
        std::fs::remove_dir_all(base).unwrap();
    }

    /// The budget is 0.3 ms in-process for a directory 10 levels deep; this
    /// prints the median (scripts/bench reports it) and fails only far above it,
    /// so a loaded CI machine does not make it flaky while a regression (a
    /// directory read, a keyring call) still shows.
    #[test]
    fn lookup_ten_levels_deep_is_fast() {
        let (base, deep) = deep_tree("speed");
        std::fs::write(base.join(".awsmfa.toml"), "profile = \"far\"\n").unwrap();
        let s = settings(
            "[roots.\"~/elsewhere\"]\nprofile = \"p\"\n[roots.tofu-proxmox]\nprofile = \"tf\"\n",
        );
        let mut times: Vec<Duration> = (0..301)
            .map(|_| {
                let start = Instant::now();
                let found = find(&deep, &s).unwrap();
                let took = start.elapsed();
                assert_eq!(found.unwrap().root.profile, "tf");
                took
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "roots::find 10 levels deep: median {} µs",
            median.as_micros()
        );
        assert!(median < Duration::from_millis(3), "median {median:?}");
        std::fs::remove_dir_all(base).unwrap();
    }
}
