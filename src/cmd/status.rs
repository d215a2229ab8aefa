//! `status`: what applies in the current directory. Reads files only — no
//! keyring, no network — so it is as quick as the prompt.

use serde::Serialize;

use crate::config::Config;
use crate::session::{self, Plan};
use crate::{paths, roots, time};

#[derive(Serialize)]
struct Status {
    directory: String,
    root: Option<RootInfo>,
    profile: Option<String>,
    secrets: Option<String>,
    wrap: Vec<String>,
    session: SessionInfo,
    /// A directory that looks like an OpenTofu root but is not mapped.
    unmapped_root: Option<String>,
    hint: Option<String>,
    /// Repository root files passed over: not allowed, changed, or ignored.
    root_files: Vec<RootFileNote>,
}

#[derive(Serialize)]
struct RootFileNote {
    file: String,
    /// `not_allowed`, `changed` or `ignored`.
    state: &'static str,
    message: String,
}

impl From<&roots::Note> for RootFileNote {
    fn from(note: &roots::Note) -> Self {
        Self {
            file: paths::display(note.file()),
            state: note.state(),
            message: note.message(),
        }
    }
}

#[derive(Serialize)]
struct RootInfo {
    dir: String,
    matched_by: String,
}

#[derive(Serialize, Default)]
pub struct SessionInfo {
    /// `active`, `expired`, `none`, or `unusable`.
    pub state: &'static str,
    pub expires: Option<String>,
    pub seconds_left: Option<u64>,
    pub problem: Option<String>,
}

/// The session state for a profile as the metadata file tells it.
pub fn session_info(cfg: &Config, profile: &str) -> SessionInfo {
    let plan = match Plan::resolve(cfg, profile, None) {
        Ok(plan) => plan,
        Err(e) => {
            return SessionInfo {
                state: "unusable",
                // The first line; the how-to that follows is `doctor`'s job.
                problem: format!("{e:#}").lines().next().map(str::to_string),
                ..SessionInfo::default()
            };
        }
    };
    let now = time::now();
    match session::known_expiry(&plan) {
        Some(expiry) if expiry > now => SessionInfo {
            state: "active",
            expires: Some(time::rfc3339(expiry)),
            seconds_left: Some(expiry - now),
            problem: None,
        },
        Some(expiry) => SessionInfo {
            state: "expired",
            expires: Some(time::rfc3339(expiry)),
            ..SessionInfo::default()
        },
        None => SessionInfo {
            state: "none",
            ..SessionInfo::default()
        },
    }
}

impl SessionInfo {
    pub fn describe(&self) -> String {
        match (self.state, self.seconds_left, &self.problem) {
            (_, _, Some(problem)) => format!("- ({problem})"),
            ("active", Some(left), _) => format!("{} left", time::short_left(left)),
            (state, _, _) => state.to_string(),
        }
    }
}

pub fn status(json: bool) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    let cwd = std::env::current_dir()?;
    let lookup = roots::lookup(&cwd, &cfg.settings);
    let mut status = Status {
        directory: paths::display(&cwd),
        root: None,
        profile: None,
        secrets: None,
        wrap: Vec::new(),
        session: SessionInfo {
            state: "none",
            ..SessionInfo::default()
        },
        unmapped_root: None,
        hint: None,
        root_files: lookup.notes.iter().map(RootFileNote::from).collect(),
    };
    match &lookup.found {
        Some(f) => {
            status.root = Some(RootInfo {
                dir: paths::display(&f.dir),
                matched_by: f.describe(),
            });
            status.profile = Some(f.root.profile.clone());
            status.secrets = f.root.secrets.as_ref().map(|s| s.describe());
            status.wrap = cfg.settings.wrap.clone();
            status.session = session_info(&cfg, &f.root.profile);
        }
        None if lookup.not_allowed().is_some() => {}
        None => {
            if let Some(dir) = roots::looks_like_root(&cwd) {
                status.hint = Some(roots::mapping_hint(&dir, &cfg.settings));
                status.unmapped_root = Some(paths::display(&dir));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let mut text = String::new();
    macro_rules! out {
        ($($arg:tt)*) => {{
            text.push_str(&format!($($arg)*));
            text.push('\n');
        }};
    }
    out!("directory  {}", status.directory);
    match (&status.root, &status.profile) {
        (Some(root), Some(profile)) => {
            out!("root       {}  ({})", root.dir, root.matched_by);
            out!("profile    {profile}");
            out!("secrets    {}", status.secrets.as_deref().unwrap_or("none"));
            out!("wraps      {}", status.wrap.join(" "));
            out!("session    {}", status.session.describe());
        }
        _ => match (&status.unmapped_root, &status.hint) {
            (Some(dir), Some(hint)) => {
                out!("root       none: {dir} looks like an OpenTofu root but is not mapped");
                out!("           {hint}");
            }
            _ if !status.root_files.is_empty() => out!("root       none"),
            _ => out!("root       none (no OpenTofu root mapped here or above)"),
        },
    }
    for note in &status.root_files {
        out!("root file  {}", note.message);
    }
    print!("{text}");
    Ok(())
}
