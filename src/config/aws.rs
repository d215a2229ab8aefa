//! Profiles from `~/.aws/config`, read-only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::ini;
use crate::paths;

/// One `[profile NAME]` as awsmfa understands it. Keys awsmfa does not use are
/// ignored so the same file keeps serving the AWS CLI and SDKs.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    pub line: usize,
    pub region: Option<String>,
    pub mfa_serial: Option<String>,
    pub role_arn: Option<String>,
    pub source_profile: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: Option<String>,
    pub duration_seconds: Option<u32>,
    pub mfa_process: Option<String>,
    pub session_ttl: Option<Duration>,
    pub endpoint_url: Option<String>,
    pub credential_process: Option<String>,
}

#[derive(Debug, Default)]
pub struct AwsConfig {
    pub path: PathBuf,
    pub profiles: Vec<Profile>,
}

impl AwsConfig {
    /// A missing file is an empty configuration: `add` may come before the
    /// user has written one, and the error for an unknown profile says what to write.
    pub fn load() -> anyhow::Result<Self> {
        let path = paths::aws_config();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: PathBuf) -> anyhow::Result<Self> {
        let mut profiles: Vec<Profile> = Vec::new();
        // Only profiles are read strictly; sso-session, services, plugins… are
        // the AWS CLI's business.
        for section in ini::parse(text, &path, |h| profile_name(h).is_some())? {
            let Some(name) = profile_name(&section.header) else {
                continue;
            };
            let mut profile = Profile {
                name: name.to_string(),
                line: section.line,
                ..Profile::default()
            };
            for entry in &section.entries {
                apply(&mut profile, entry, &path)?;
            }
            // Later sections of the same name extend earlier ones, as in botocore.
            match profiles.iter_mut().find(|p| p.name == profile.name) {
                Some(existing) => merge(existing, profile),
                None => profiles.push(profile),
            }
        }
        Ok(Self { path, profiles })
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile, or an error that lists the closest names and says where to add it.
    pub fn require(&self, name: &str) -> anyhow::Result<&Profile> {
        if let Some(p) = self.get(name) {
            return Ok(p);
        }
        let mut close: Vec<(f64, &str)> = self
            .profiles
            .iter()
            .map(|p| (strsim::jaro_winkler(name, &p.name), p.name.as_str()))
            .filter(|(score, _)| *score > 0.8)
            .collect();
        close.sort_by(|a, b| b.0.total_cmp(&a.0));
        let file = paths::display(&self.path);
        let hint = match close.first() {
            Some((_, best)) => format!("did you mean `{best}`?"),
            None if self.profiles.is_empty() => format!("{file} has no profiles"),
            None => format!(
                "known profiles: {}",
                self.profiles
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        bail!(
            "no profile `{name}` in {file}; {hint}\n  to add it, append to {file}:\n    [profile {name}]\n    region = us-east-1\n    mfa_serial = arn:aws:iam::ACCOUNT_ID:mfa/DEVICE_NAME"
        )
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.iter().map(|p| p.name.as_str())
    }
}

/// Keys that give a profile credentials of its own, in the config file or the
/// credentials file.
const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "credential_process",
    "role_arn",
    "credential_source",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "login_session",
];

/// `FILE:LINE key` where the `[default]` profile has credentials of its own.
/// A child under `exec --server` gets no `AWS_PROFILE`, and every SDK's chain
/// asks the default profile before the container endpoint: such credentials
/// would silently decide who the command runs as. Read leniently (a damaged
/// file is the SDK's to report) and only on that path.
pub fn default_profile_credentials() -> Option<String> {
    [
        (paths::aws_credentials(), "default"),
        (paths::aws_config(), "default"),
        (paths::aws_config(), "profile default"),
    ]
    .iter()
    .find_map(|(path, header)| {
        let bytes = std::fs::read(path).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let sections = ini::parse(&text, path, |_| false).ok()?;
        sections
            .iter()
            .filter(|s| s.header == *header)
            .flat_map(|s| &s.entries)
            .find(|e| CREDENTIAL_KEYS.contains(&e.key.as_str()) && !e.value.is_empty())
            .map(|e| format!("{}:{} {}", paths::display(path), e.line, e.key))
    })
}

/// `profile NAME` → NAME, `default` → `default`; other sections are no profile.
fn profile_name(header: &str) -> Option<&str> {
    match header.strip_prefix("profile ") {
        Some(name) => Some(name.trim()),
        None => (header == "default").then_some("default"),
    }
}

fn apply(profile: &mut Profile, entry: &ini::Entry, path: &Path) -> anyhow::Result<()> {
    let value = Some(entry.value.clone()).filter(|v| !v.is_empty());
    let at = || format!("{}:{}", path.display(), entry.line);
    match entry.key.as_str() {
        "region" => profile.region = value,
        "mfa_serial" => profile.mfa_serial = value,
        "role_arn" => profile.role_arn = value,
        "source_profile" => profile.source_profile = value,
        "external_id" => profile.external_id = value,
        "role_session_name" => profile.role_session_name = value,
        "mfa_process" => profile.mfa_process = value,
        "endpoint_url" => profile.endpoint_url = value,
        "credential_process" => profile.credential_process = value,
        "duration_seconds" => {
            let secs: u32 = entry.value.parse().with_context(|| {
                format!(
                    "{}: duration_seconds = `{}` is not a number of seconds (e.g. 3600)",
                    at(),
                    entry.value
                )
            })?;
            profile.duration_seconds = Some(secs);
        }
        "session_ttl" => {
            let ttl = crate::time::parse_duration(&entry.value)
                .with_context(|| format!("{}: session_ttl", at()))?;
            profile.session_ttl = Some(ttl);
        }
        _ => {}
    }
    Ok(())
}

fn merge(into: &mut Profile, from: Profile) {
    macro_rules! take {
        ($($field:ident),*) => { $( if from.$field.is_some() { into.$field = from.$field; } )* };
    }
    take!(
        region,
        mfa_serial,
        role_arn,
        source_profile,
        external_id,
        role_session_name,
        duration_seconds,
        mfa_process,
        session_ttl,
        endpoint_url,
        credential_process
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> anyhow::Result<AwsConfig> {
        AwsConfig::parse(text, PathBuf::from("/h/.aws/config"))
    }

    #[test]
    fn reads_profiles_and_skips_other_sections() {
        let c = cfg("[default]\nregion=eu-west-1\n[sso-session x]\nsso_region=y\n[profile tf-proxmox]\nmfa_serial = arn:aws:iam::1:mfa/j\nsession_ttl = 90m\nduration_seconds = 900\n")
            .unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["default", "tf-proxmox"]);
        let p = c.get("tf-proxmox").unwrap();
        assert_eq!(p.mfa_serial.as_deref(), Some("arn:aws:iam::1:mfa/j"));
        assert_eq!(p.session_ttl, Some(Duration::from_secs(5400)));
        assert_eq!(p.duration_seconds, Some(900));
        assert_eq!(p.line, 5);
    }

    #[test]
    fn reads_what_botocore_reads() {
        let c = cfg("[sso-session corp]\nsso_start_url = https://x\nregistration scopes\n\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n[profile dev]\nMFA_Serial: arn:aws:iam::1:mfa/j\ns3 =\n  max_concurrent_requests = 20\n  addressing_style\nregion = eu-west-1\n")
            .unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["dev"]);
        let p = c.get("dev").unwrap();
        assert_eq!(p.mfa_serial.as_deref(), Some("arn:aws:iam::1:mfa/j"));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(p.line, 8);
        // The same mistake in a profile is an error at its line.
        let e =
            cfg("[sso-session corp]\nregistration scopes\n[profile dev]\nregistration scopes\n")
                .unwrap_err();
        assert!(
            e.to_string().starts_with("/h/.aws/config:4: expected"),
            "{e}"
        );
    }

    #[test]
    fn unknown_profile_suggests_close_match() {
        let c = cfg("[profile tf-proxmox]\n[profile tf-apps]\n").unwrap();
        let e = c.require("tf-proxmx").unwrap_err().to_string();
        assert!(e.contains("did you mean `tf-proxmox`?"), "{e}");
        assert!(e.contains("[profile tf-proxmx]"), "{e}");
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let e = cfg("[profile a]\n\nduration_seconds = soon\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/h/.aws/config:3: duration_seconds"),
            "{e}"
        );
        let e = cfg("[profile a]\nsession_ttl = forever\n").unwrap_err();
        assert!(
            format!("{e:#}").starts_with("/h/.aws/config:2: session_ttl"),
            "{e:#}"
        );
    }
}
