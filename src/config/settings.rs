//! awsmfa's own `config.toml` (and the per-root `.awsmfa.toml`): roots, secrets
//! managers, and where each profile's keys and MFA codes come from. Never
//! written by awsmfa. Every complaint names the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;

use super::names;
use crate::{log, paths};

pub const DEFAULT_WRAP: [&str; 3] = ["terragrunt", "tofu", "terraform"];
/// botocore refreshes when less than 15 minutes remain and re-runs
/// credential_process on every request after that: hand out nothing shorter.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct Settings {
    pub path: PathBuf,
    pub wrap: Vec<String>,
    pub refresh_before: Duration,
    /// Keyed as written: a directory name, or a path (`~/src/x`, `/abs`).
    pub roots: BTreeMap<String, Root>,
    pub profiles: BTreeMap<String, ProfileSettings>,
    pub openbao: Option<OpenBaoSettings>,
}

/// What a root maps to, from `[roots.X]` or a `.awsmfa.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub profile: String,
    pub secrets: Option<SecretsManager>,
    /// `server = true`: wrapped commands run under `exec --server`.
    pub server: Option<bool>,
    /// Never start a wrapped command with less session than this left.
    pub min_remaining: Option<MinRemaining>,
    /// Where it was written, for messages.
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsManager {
    Doppler {
        project: String,
        config: String,
    },
    Infisical {
        project_id: String,
        env: String,
        path: Option<String>,
    },
}

impl SecretsManager {
    pub fn describe(&self) -> String {
        match self {
            SecretsManager::Doppler { project, config } => format!("doppler {project}/{config}"),
            SecretsManager::Infisical {
                project_id,
                env,
                path,
            } => format!(
                "infisical {project_id} env {env}{}",
                path.as_deref()
                    .map(|p| format!(" path {p}"))
                    .unwrap_or_default()
            ),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    pub mfa: Option<OneOrMany>,
    pub keys: Option<String>,
    pub session_ttl: Option<String>,
    /// Labels of the key id and secret in a 1Password item or OpenBao secret.
    pub key_fields: Option<Vec<String>>,
    /// `ykman --device SERIAL`, for several YubiKeys.
    pub ykman_device: Option<String>,
    /// `openbao-aws:MOUNT/ROLE`: STS credentials straight from OpenBao, no MFA.
    pub source: Option<String>,
    /// `exec` serves this profile's session from a loopback endpoint (`--server`).
    pub server: Option<bool>,
    /// As written (`min_remaining = "45m"`), for its line in messages.
    #[serde(rename = "min_remaining")]
    min_remaining_text: Option<Spanned<String>>,
    /// `exec --min-remaining` for this profile; checked when the file is read.
    #[serde(skip)]
    pub min_remaining: Option<MinRemaining>,
}

/// `exec --min-remaining D`, or `min_remaining` of a root or profile: the
/// command never starts with less session than this left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinRemaining {
    pub at_least: Duration,
    /// How it was set, for messages: `--min-remaining 2h`, or the line of a file.
    pub from: String,
}

fn min_remaining(text: &Spanned<String>, at: String) -> anyhow::Result<MinRemaining> {
    let at_least = crate::time::parse_duration(text.get_ref())
        .with_context(|| format!("{at}: min_remaining"))?;
    Ok(MinRemaining {
        at_least,
        from: format!("min_remaining = {:?} ({at})", text.get_ref()),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoSettings {
    /// One URL, or the nodes of one cluster: `["https://a:8200", "https://b:8200"]`.
    #[serde(default, deserialize_with = "addresses")]
    pub address: Option<OneOrMany>,
    pub role_id: Option<String>,
    pub secret_id_file: Option<String>,
    /// How long a request waits for a cluster to elect an active node.
    #[serde(default, deserialize_with = "duration")]
    pub failover_wait: Option<Duration>,
}

/// An empty list would read as "no address", and then BAO_ADDR would quietly
/// decide where the token goes.
fn addresses<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OneOrMany>, D::Error> {
    let address = OneOrMany::deserialize(d)?;
    if address.items().is_empty() {
        return Err(serde::de::Error::custom(
            "`address` is an empty list: give one address, or the addresses of the nodes of one cluster",
        ));
    }
    Ok(Some(address))
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    crate::time::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    wrap: Option<Spanned<Vec<String>>>,
    refresh_before: Option<Spanned<String>>,
    #[serde(default)]
    roots: BTreeMap<String, Spanned<RawRoot>>,
    #[serde(default)]
    profiles: BTreeMap<Spanned<String>, ProfileSettings>,
    openbao: Option<OpenBaoSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    profile: Spanned<String>,
    doppler: Option<Spanned<String>>,
    infisical: Option<Spanned<RawInfisical>>,
    server: Option<Spanned<bool>>,
    min_remaining: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfisical {
    project_id: String,
    env: String,
    path: Option<String>,
}

/// Parses TOML into `T`, turning serde's byte offsets into `file:line`.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|e| {
        let at = match e.span() {
            Some(span) => format!("{}:{}", path.display(), line_of(text, span.start)),
            None => path.display().to_string(),
        };
        anyhow::anyhow!("{at}: {}", e.message())
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Settings {
    /// A missing file means defaults: the core works from `~/.aws/config` alone.
    pub fn load() -> anyhow::Result<Self> {
        let path = paths::awsmfa_config();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::defaults(path)),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn defaults(path: PathBuf) -> Self {
        Self {
            path,
            wrap: DEFAULT_WRAP.map(String::from).to_vec(),
            refresh_before: DEFAULT_REFRESH_BEFORE,
            ..Self::default()
        }
    }

    pub fn parse(text: &str, path: PathBuf) -> anyhow::Result<Self> {
        let raw: RawSettings = from_toml(text, &path)?;
        let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
        let mut settings = Self::defaults(path.clone());
        if let Some(wrap) = raw.wrap {
            for name in wrap.get_ref() {
                if !names::is_command_name(name) {
                    bail!(
                        "{}: wrap entry {:?} is not a command awsmfa can wrap ({})",
                        at(wrap.span().start),
                        name,
                        names::COMMAND_RULE
                    );
                }
            }
            settings.wrap = wrap.into_inner();
        }
        if let Some(rb) = raw.refresh_before {
            settings.refresh_before = crate::time::parse_duration(rb.get_ref())
                .with_context(|| format!("{}: refresh_before", at(rb.span().start)))?;
        }
        for (key, root) in raw.roots {
            let line = line_of(text, root.span().start);
            // A path is looked up as written: a relative one (or `~user/…`)
            // would silently never match.
            if (key.contains('/') || key.starts_with('~'))
                && !(key.starts_with('/') || key.starts_with("~/") || key == "~")
            {
                bail!(
                    "{}:{line}: [roots.\"{key}\"]: a path must start with / or ~/ \
                     (a name without / matches any directory of that name)",
                    path.display()
                );
            }
            let root = root.into_inner();
            settings
                .roots
                .insert(key, resolve_root(root, text, &path, line)?);
        }
        for (name, mut profile) in raw.profiles {
            check_profile_name(name.get_ref(), &at(name.span().start))?;
            if let Some(text) = &profile.min_remaining_text {
                profile.min_remaining = Some(min_remaining(text, at(text.span().start))?);
            }
            settings.profiles.insert(name.into_inner(), profile);
        }
        settings.openbao = raw.openbao;
        Ok(settings)
    }

    pub fn profile(&self, name: &str) -> Option<&ProfileSettings> {
        self.profiles.get(name)
    }
}

/// A committed `.awsmfa.toml`: the keys of one `[roots.X]` entry.
pub fn parse_root_file(text: &str, path: &Path) -> anyhow::Result<Root> {
    let raw: RawRoot = from_toml(text, path)?;
    // A repository chooses a profile and a secrets manager, nothing about how
    // sessions are served or how often the user is asked for a code.
    for (key, offset) in [
        ("server", raw.server.as_ref().map(|v| v.span().start)),
        (
            "min_remaining",
            raw.min_remaining.as_ref().map(|v| v.span().start),
        ),
    ] {
        if let Some(offset) = offset {
            bail!(
                "{}:{}: `{key}` can be set only in your own config.toml, not in a repository's {}",
                path.display(),
                line_of(text, offset),
                path.file_name()
                    .map_or("root file".into(), |n| n.to_string_lossy())
            );
        }
    }
    let line = line_of(text, raw.profile.span().start);
    resolve_root(raw, text, path, line)
}

fn resolve_root(raw: RawRoot, text: &str, path: &Path, line: usize) -> anyhow::Result<Root> {
    let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
    check_profile_name(raw.profile.get_ref(), &at(raw.profile.span().start))?;
    let secrets = match (raw.doppler, raw.infisical) {
        (Some(_), Some(i)) => bail!(
            "{}: a root takes one secrets manager, doppler or infisical, not both",
            at(i.span().start)
        ),
        (Some(d), None) => {
            let value = d.get_ref();
            match value.split_once('/') {
                Some((project, config)) if is_slug(project) && is_slug(config) => {
                    Some(SecretsManager::Doppler {
                        project: project.to_string(),
                        config: config.to_string(),
                    })
                }
                _ => bail!(
                    "{}: doppler = {value:?} should be \"PROJECT/CONFIG\", e.g. \"infra-project/prd\" \
                     (letters, digits, _ . -)",
                    at(d.span().start)
                ),
            }
        }
        (None, Some(i)) => {
            let line = at(i.span().start);
            let i = i.into_inner();
            if !is_slug(&i.project_id) || !is_slug(&i.env) {
                bail!(
                    "{line}: infisical project_id and env are letters, digits, _ . - (got {:?} and {:?})",
                    i.project_id,
                    i.env
                );
            }
            if let Some(p) = &i.path
                && (!p.starts_with('/') || p.chars().any(char::is_control))
            {
                bail!("{line}: infisical path {p:?} should start with / (e.g. \"/tofu\")");
            }
            Some(SecretsManager::Infisical {
                project_id: i.project_id,
                env: i.env,
                path: i.path,
            })
        }
        (None, None) => None,
    };
    let min_remaining = raw
        .min_remaining
        .map(|text| min_remaining(&text, at(text.span().start)))
        .transpose()?;
    Ok(Root {
        profile: raw.profile.into_inner(),
        secrets,
        server: raw.server.map(Spanned::into_inner),
        min_remaining,
        file: path.to_path_buf(),
        line,
    })
}

fn check_profile_name(name: &str, at: &str) -> anyhow::Result<()> {
    if !names::is_profile_name(name) {
        bail!(
            "{at}: profile name {:?} is not allowed; a profile name is {}",
            log::printable(name),
            names::PROFILE_RULE
        );
    }
    Ok(())
}

/// A Doppler project or config, an Infisical project id or environment: passed
/// as separate arguments, so never an option (`-…`) and never whitespace.
fn is_slug(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Settings> {
        Settings::parse(text, PathBuf::from("/c/config.toml"))
    }

    #[test]
    fn full_example_parses() {
        let s = parse(
            r#"
wrap = ["terragrunt", "tofu"]
refresh_before = "10m"
[roots.tofu-proxmox]
profile = "tf-proxmox"
doppler = "infra-project/prd"
[roots.tofu-apps]
profile = "tf-apps"
infisical = { project_id = "6f1", env = "prd", path = "/tofu" }
[profiles.tf-proxmox]
mfa = ["ykman", "prompt"]
keys = "keyring"
"#,
        )
        .unwrap();
        assert_eq!(s.refresh_before, Duration::from_secs(600));
        assert_eq!(s.wrap, ["terragrunt", "tofu"]);
        let root = &s.roots["tofu-proxmox"];
        assert_eq!(root.line, 4);
        assert_eq!(
            root.secrets,
            Some(SecretsManager::Doppler {
                project: "infra-project".into(),
                config: "prd".into()
            })
        );
        let mfa = s.profiles["tf-proxmox"].mfa.as_ref().unwrap();
        assert_eq!(mfa.items(), ["ykman", "prompt"]);
    }

    #[test]
    fn defaults_without_a_file() {
        let s = parse("").unwrap();
        assert_eq!(s.wrap, DEFAULT_WRAP);
        assert_eq!(s.refresh_before, DEFAULT_REFRESH_BEFORE);
    }

    #[test]
    fn errors_carry_file_and_line() {
        let e = parse("wrap = [\"tofu\"]\n\n[roots.x]\nprofil = \"a\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/config.toml:4: unknown field `profil`"),
            "{e}"
        );
        let e = parse("refresh_before = \n").unwrap_err();
        assert!(e.to_string().starts_with("/c/config.toml:1:"), "{e}");
        let e = parse("[roots.x]\nprofile = \"a\"\ndoppler = \"nodash\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/config.toml:3: doppler = \"nodash\""),
            "{e}"
        );
        let e = parse("wrap = [\"ok\", \"rm -rf\"]\n").unwrap_err();
        assert!(
            e.to_string().starts_with("/c/config.toml:1: wrap entry"),
            "{e}"
        );
        let e =
            parse("[roots.a]\nprofile = \"a\"\n[roots.\"src/x\"]\nprofile = \"a\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/config.toml:3: [roots.\"src/x\"]: a path must start"),
            "{e}"
        );
        let e = parse("[roots.x]\nprofile = 3\n").unwrap_err();
        assert!(e.to_string().starts_with("/c/config.toml:2:"), "{e}");
        let e = parse("[profiles.a]\nkeys = \"keyring\"\nmin_remaining = \"soon\"\n").unwrap_err();
        assert_eq!(e.to_string(), "/c/config.toml:3: min_remaining");
    }

    #[test]
    fn min_remaining_says_where_it_was_set() {
        let s = parse("[roots.x]\nprofile = \"a\"\nmin_remaining = \"1h\"\n[profiles.a]\nmin_remaining = \"45m\"\n")
            .unwrap();
        let root = s.roots["x"].min_remaining.clone().unwrap();
        assert_eq!(root.at_least, Duration::from_secs(3600));
        assert_eq!(root.from, "min_remaining = \"1h\" (/c/config.toml:3)");
        let profile = s.profiles["a"].min_remaining.clone().unwrap();
        assert_eq!(profile.at_least, Duration::from_secs(45 * 60));
        assert_eq!(profile.from, "min_remaining = \"45m\" (/c/config.toml:5)");
    }

    #[test]
    fn openbao_address_is_one_or_a_list() {
        let s = parse("[openbao]\naddress = \"https://a:8200\"\n").unwrap();
        let bao = s.openbao.unwrap();
        assert_eq!(bao.address.unwrap().items(), ["https://a:8200"]);
        assert_eq!(bao.failover_wait, None);
        let s = parse(
            "[openbao]\naddress = [\"https://a:8200\", \"https://b:8200\"]\nfailover_wait = \"5s\"\n",
        )
        .unwrap();
        let bao = s.openbao.unwrap();
        assert_eq!(
            bao.address.unwrap().items(),
            ["https://a:8200", "https://b:8200"]
        );
        assert_eq!(bao.failover_wait, Some(Duration::from_secs(5)));
        let e = parse("[openbao]\n\naddress = []\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/config.toml:3: `address` is an empty list"),
            "{e}"
        );
        let e = parse("[openbao]\nfailover_wait = \"soon\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/config.toml:2: `soon` is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn root_file() {
        let r = parse_root_file("profile = \"tf-x\"\n", Path::new("/r/.awsmfa.toml")).unwrap();
        assert_eq!(r.profile, "tf-x");
        assert!(parse_root_file("profile = \"a\"\nextra = 1\n", Path::new("f")).is_err());
    }
}
