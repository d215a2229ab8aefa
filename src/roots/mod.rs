//! Which OpenTofu root a directory belongs to, and what that root maps to. On the
//! `cd` and prompt paths: no keyring, no network, a handful of `stat`s.
//!
//! Two kinds of mapping, trusted differently: the user's own config.toml
//! (`[roots.NAME]`, `[roots."~/path"]`) is trusted as it is; a repository's
//! committed `.awsmfa.toml` counts only once the user ran `awsmfa allow` on
//! exactly that text (see `trust`), and only when it is a small regular file
//! of theirs (see `file`). Anything else found on the way up is a [`Note`].

pub mod file;
pub mod trust;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use file::ROOT_FILE;
use trust::Trust;

use crate::config::Settings;
use crate::config::settings::{self, Root};
use crate::paths;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A committed `.awsmfa.toml` in the directory, allowed by the user.
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
            Match::File => format!("{ROOT_FILE} in the directory, allowed"),
            Match::Path(key) => format!("[roots.\"{key}\"] in {}", paths::display(&self.root.file)),
            Match::Name(key) => format!("[roots.{key}] in {}", paths::display(&self.root.file)),
        }
    }
}

/// A root file passed over on the way up, which the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Not (or no longer) allowed: it maps nothing until `awsmfa allow`.
    NotAllowed {
        file: PathBuf,
        changed: bool,
        /// In the directory the lookup started from (`allow` needs no argument).
        here: bool,
    },
    /// Not a file awsmfa reads, or not one it can parse.
    Ignored { file: PathBuf, why: String },
}

impl Note {
    pub fn message(&self) -> String {
        match self {
            Note::NotAllowed {
                file,
                changed,
                here,
            } => {
                let what = if *changed {
                    "changed since you allowed it"
                } else {
                    "is not allowed"
                };
                let dir = match (here, file.parent()) {
                    (false, Some(dir)) => format!(" {}", paths::display(dir)),
                    _ => String::new(),
                };
                format!(
                    "{} {what}; review it, then run awsmfa allow{dir}",
                    paths::display(file)
                )
            }
            Note::Ignored { file, why } => {
                format!("ignoring {}: {why}", paths::display(file))
            }
        }
    }

    /// `not_allowed`, `changed` or `ignored`: for `status --json`, and for the
    /// hook, which says a note again only when this or the file changes.
    pub fn state(&self) -> &'static str {
        match self {
            Note::NotAllowed { changed: false, .. } => "not_allowed",
            Note::NotAllowed { changed: true, .. } => "changed",
            Note::Ignored { .. } => "ignored",
        }
    }

    pub fn file(&self) -> &Path {
        match self {
            Note::NotAllowed { file, .. } | Note::Ignored { file, .. } => file,
        }
    }
}

/// What applies at a directory: the nearest trusted root, and what was passed
/// over on the way to it.
#[derive(Debug, Default)]
pub struct Lookup {
    pub found: Option<Found>,
    pub notes: Vec<Note>,
}

impl Lookup {
    /// The first root file waiting for `awsmfa allow`, if that is why nothing applies.
    pub fn not_allowed(&self) -> Option<&Note> {
        self.notes
            .iter()
            .find(|n| matches!(n, Note::NotAllowed { .. }))
    }
}

/// The nearest root at or above `dir`. At one directory the user's own
/// config.toml beats a committed `.awsmfa.toml` (a path key before a name key):
/// a personal mapping is how someone overrides what a repository suggests. A
/// root file that is not allowed is passed over (with a note), so the user's
/// own mapping of an enclosing directory still applies.
///
/// Root files are looked for up to `$HOME` for directories under it, else up
/// to the edge of the directory's filesystem: a file in `/tmp` or `/` is no
/// repository's.
pub fn lookup(dir: &Path, settings: &Settings) -> Lookup {
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
    let bounds = Bounds::new(&dir);
    let mut files = true;
    let mut out = Lookup::default();
    for candidate in dir.ancestors() {
        if let Some((_, key)) = path_keys.iter().find(|(p, _)| p == candidate) {
            out.found = Some(found(
                candidate,
                Match::Path((*key).clone()),
                &settings.roots[*key],
            ));
            return out;
        }
        if let Some(name) = candidate.file_name().and_then(|n| n.to_str())
            && let Some(root) = settings.roots.get(name)
            && !is_path_key(name)
        {
            out.found = Some(found(candidate, Match::Name(name.to_string()), root));
            return out;
        }
        if files {
            if let Some(root) = from_file(candidate, candidate == dir, &mut out.notes) {
                out.found = Some(root);
                return out;
            }
            files = !bounds.ends_at(candidate);
        }
    }
    out
}

/// The root in `dir`'s `.awsmfa.toml`, if there is one the user allowed.
fn from_file(dir: &Path, here: bool, notes: &mut Vec<Note>) -> Option<Found> {
    let path = dir.join(ROOT_FILE);
    let file = match file::read(dir) {
        file::Seen::Absent => return None,
        file::Seen::Ignored(why) => {
            notes.push(Note::Ignored { file: path, why });
            return None;
        }
        file::Seen::File(file) => file,
    };
    match trust::trust(&file) {
        Trust::Allowed => {}
        trust => {
            notes.push(Note::NotAllowed {
                file: path,
                changed: trust == Trust::Changed,
                here,
            });
            return None;
        }
    }
    match settings::parse_root_file(&file.text, &path) {
        Ok(root) => Some(Found {
            dir: dir.to_path_buf(),
            how: Match::File,
            root,
        }),
        Err(e) => {
            notes.push(Note::Ignored {
                file: path,
                why: format!("{e:#}"),
            });
            None
        }
    }
}

/// The nearest root file at or above `dir` within the same bounds as
/// [`lookup`], allowed or not: what `awsmfa allow` and `deny` act on.
pub fn nearest_file(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let bounds = Bounds::new(&dir);
    for candidate in dir.ancestors() {
        let path = candidate.join(ROOT_FILE);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Some(path);
        }
        if bounds.ends_at(candidate) {
            break;
        }
    }
    None
}

/// Where the search for root files ends: at `$HOME` for a directory under it,
/// else at the edge of the directory's filesystem.
struct Bounds {
    home: Option<PathBuf>,
    device: Option<u64>,
}

impl Bounds {
    fn new(dir: &Path) -> Self {
        let home = paths::home()
            .canonicalize()
            .ok()
            .filter(|h| h.parent().is_some() && dir.starts_with(h));
        // Only needed outside HOME: one stat saved on the common path.
        let device = match home {
            Some(_) => None,
            None => std::fs::metadata(dir).ok().map(|m| m.dev()),
        };
        Self { home, device }
    }

    /// Whether root files above `candidate` are out of bounds.
    fn ends_at(&self, candidate: &Path) -> bool {
        match (&self.home, self.device) {
            (Some(home), _) => candidate == home,
            // `/`, a vanished parent, or another filesystem.
            (None, Some(dev)) => candidate
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .is_none_or(|m| m.dev() != dev),
            (None, None) => true,
        }
    }
}

/// The nearest trusted root at or above `dir`, notes dropped: for callers that
/// only ask "which profile applies here".
pub fn find(dir: &Path, settings: &Settings) -> Option<Found> {
    lookup(dir, settings).found
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
        "add to {}:\n    [roots.{}]\n    profile = \"PROFILE\"\n  or commit a {ROOT_FILE} with `profile = \"PROFILE\"` in {} and run `awsmfa allow` there",
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
        let found = find(&deep, &s).unwrap();
        assert_eq!(found.root.profile, "inner");
        assert_eq!(found.how, Match::Name("d4".into()));
        let outer = base.join("src/tofu-proxmox/d0");
        assert_eq!(find(&outer, &s).unwrap().root.profile, "tf");
        assert!(find(&base, &s).is_none());
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
                let found = find(&deep, &s);
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
