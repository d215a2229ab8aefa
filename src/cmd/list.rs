//! `list` and `clear`.

use serde::Serialize;

use crate::config::Config;
use crate::session::{self, Kind, Plan};
use crate::{log, state, time};

#[derive(Serialize)]
struct Row {
    profile: String,
    /// `keyring`, or `role via SOURCE`.
    keys: String,
    /// Only for keys awsmfa stores itself: op and OpenBao are read per mint.
    key_stored: Option<bool>,
    mfa: Vec<String>,
    role_arn: Option<String>,
    source_profile: Option<String>,
    /// `active`, `expired`, `none`, or `unusable`.
    session: &'static str,
    expires: Option<String>,
    seconds_left: Option<u64>,
    problem: Option<String>,
    /// config.toml roots mapped to this profile (`.awsmfa.toml` files are not listed).
    roots: Vec<String>,
    /// When IAM created the profile's own key (RFC 3339), as last found out.
    key_created: Option<String>,
    key_age_days: Option<u64>,
}

fn row(cfg: &Config, name: &str) -> Row {
    let mut row = Row {
        profile: name.to_string(),
        keys: "-".into(),
        key_stored: None,
        mfa: Vec::new(),
        role_arn: None,
        source_profile: None,
        session: "unusable",
        expires: None,
        seconds_left: None,
        problem: None,
        roots: cfg
            .settings
            .roots
            .iter()
            .filter(|(_, r)| r.profile == name)
            .map(|(key, _)| key.clone())
            .collect(),
        key_created: None,
        key_age_days: None,
    };
    let plan = match Plan::resolve(cfg, name, None) {
        Ok(plan) => plan,
        Err(e) => {
            // Only the first line: the rest is the how-to, which `doctor` gives.
            row.problem = Some(format!("{e:#}").lines().next().unwrap_or("").to_string());
            return row;
        }
    };
    match &plan.kind {
        Kind::Mfa { keys: k, mfa, .. } => {
            row.keys = k.describe();
            row.key_stored = k.stored(name);
            row.mfa = mfa.iter().map(|m| m.describe()).collect();
        }
        Kind::Vended { path, .. } => {
            row.keys = format!("openbao-aws:{path}");
            row.mfa = vec!["none".into()];
        }
        Kind::Role {
            source, role_arn, ..
        } => {
            row.keys = format!("role via {}", source.profile);
            row.role_arn = Some(role_arn.clone());
            row.source_profile = Some(source.profile.clone());
        }
    }
    if let Some(created) = session::key_created(&plan) {
        row.key_created = Some(time::rfc3339(created));
        row.key_age_days = Some(time::now().saturating_sub(created) / 86_400);
    }
    let info = super::status::session_info(cfg, name);
    row.session = info.state;
    row.expires = info.expires;
    row.seconds_left = info.seconds_left;
    row
}

pub fn list(json: bool) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    // `[default]` and the credential_process consumer profiles the README
    // recommends are not awsmfa profiles gone wrong: `doctor` skips them too.
    let rows: Vec<Row> = cfg
        .aws
        .profiles
        .iter()
        .filter(|p| {
            p.mfa_serial.is_some()
                || p.role_arn.is_some()
                || cfg.settings.profile(&p.name).is_some()
                || cfg.settings.roots.values().any(|r| r.profile == p.name)
        })
        .map(|p| row(&cfg, &p.name))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        log::info(format_args!(
            "no profiles in {}",
            crate::paths::display(&cfg.aws.path)
        ));
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|r| r.profile.len())
        .max()
        .unwrap_or(7)
        .max(7);
    // ROOTS last: the one column of any width.
    println!(
        "{:width$}  {:18}  {:10}  {:28}  {:7}  ROOTS",
        "PROFILE", "KEYS", "MFA", "SESSION", "KEY AGE"
    );
    for r in &rows {
        let keys = match r.key_stored {
            Some(false) => format!("{} (none)", r.keys),
            _ => r.keys.clone(),
        };
        let mfa = if r.mfa.is_empty() {
            "-".into()
        } else {
            r.mfa.join(",")
        };
        let session = match (r.session, r.seconds_left, &r.problem) {
            (_, _, Some(problem)) => format!("- ({problem})"),
            ("active", Some(left), _) => format!("{} left", time::short_left(left)),
            (state, _, _) => state.to_string(),
        };
        let roots = if r.roots.is_empty() {
            "-".into()
        } else {
            r.roots.join(",")
        };
        // Past the age `rotate` is for, marked as the prompt marks a session due.
        let age = match r.key_age_days {
            Some(days) if days >= session::ROTATE_AFTER_DAYS => format!("{days}d!"),
            Some(days) => format!("{days}d"),
            None => "-".into(),
        };
        // ~/.aws/config allows nearly any profile name; the terminal gets none raw.
        let line = format!(
            "{:width$}  {keys:18}  {mfa:10}  {session:28}  {age:7}  {roots}",
            r.profile
        );
        println!("{}", log::printable(&line));
    }
    Ok(())
}

pub fn clear(profile: Option<&str>) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    let mut cleared = Vec::new();
    match profile {
        Some(p) => {
            if clear_one(&cfg, p)? {
                cleared.push(p.to_string());
            }
        }
        None => {
            let mut names: Vec<String> = cfg.aws.names().map(str::to_string).collect();
            names.extend(state::session_profiles());
            names.sort();
            names.dedup();
            for p in names {
                if clear_one(&cfg, &p)? {
                    cleared.push(p);
                }
            }
        }
    }
    match (cleared.len(), profile) {
        (0, Some(p)) => log::info(format_args!("no cached session for {p}")),
        (0, None) => log::info("no cached sessions"),
        _ => log::info(format_args!(
            "cleared the cached session of {}",
            cleared.join(", ")
        )),
    }
    Ok(())
}

/// By the current configuration's fingerprint too, so that damaged metadata
/// cannot hide a cached session from `clear`.
pub(super) fn clear_one(cfg: &Config, profile: &str) -> anyhow::Result<bool> {
    match Plan::resolve(cfg, profile, None) {
        Ok(plan) => session::clear_plan(&plan),
        Err(_) => session::clear(profile),
    }
}
