//! `doctor`: checks each piece the way the minting path will use it, without
//! minting anything, and says what to fix.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{AwsConfig, Config, Settings};
use crate::session::{Kind, Plan};
use crate::store::Store;
use crate::sts::{Endpoint, Origin};
use crate::tty::Tty;
use crate::{keys, mfa, openbao, paths, roots, state, tool};

#[derive(Default)]
struct Report {
    failures: usize,
    /// Checking a source that a later one in an MFA list stands in for:
    /// its problems are warnings, since minting moves on to the next.
    fallback: bool,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&mut self, what: &str, fix: &str) {
        println!("warn  {what}\n      → {fix}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
        if self.fallback {
            return self.warn(
                what,
                &format!("{fix}; until then the next MFA source in the list is used"),
            );
        }
        self.failures += 1;
        println!("FAIL  {what}\n      → {fix}");
    }
}

pub fn doctor() -> anyhow::Result<()> {
    let mut r = Report::default();
    let aws = match AwsConfig::load() {
        Ok(aws) => {
            r.ok(&format!(
                "{}: {} profile(s)",
                paths::display(&aws.path),
                aws.profiles.len()
            ));
            aws
        }
        Err(e) => {
            r.fail(&format!("{e:#}"), "fix the line named above");
            AwsConfig::default()
        }
    };
    let settings = match Settings::load() {
        Ok(s) => {
            let state = if s.path.exists() {
                "read"
            } else {
                "absent, defaults apply"
            };
            r.ok(&format!("{}: {state}", paths::display(&s.path)));
            s
        }
        Err(e) => {
            r.fail(&format!("{e:#}"), "fix the line named above");
            Settings::default()
        }
    };
    probe_store(&mut r, "keys", Store::for_keys());
    probe_store(&mut r, "sessions", Store::for_sessions());
    match state::create_private_dir(&paths::state_dir()) {
        Ok(()) => r.ok(&format!(
            "state directory {}",
            paths::display(&paths::state_dir())
        )),
        Err(e) => r.fail(&format!("{e:#}"), "make XDG_STATE_HOME writable"),
    }

    if let Ok(cwd) = std::env::current_dir() {
        let lookup = roots::lookup(&cwd, &settings);
        for note in &lookup.notes {
            let fix = match note {
                roots::Note::NotAllowed { .. } => {
                    "until then it maps nothing; `awsmfa allow` shows what it maps as it records it"
                }
                roots::Note::Ignored { .. } => {
                    "awsmfa reads only small regular files of yours, in directories only you can write"
                }
            };
            r.warn(&note.message(), fix);
        }
        if let Some(found) = &lookup.found {
            r.ok(&format!(
                "root {} ({}): profile {}",
                paths::display(&found.dir),
                found.describe(),
                found.root.profile
            ));
        }
    }

    let cfg = Config { aws, settings };
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for p in &cfg.aws.profiles {
        let vended = cfg
            .settings
            .profile(&p.name)
            .is_some_and(|s| s.source.is_some());
        if p.mfa_serial.is_none() && p.role_arn.is_none() && !vended {
            continue; // not an awsmfa profile
        }
        let name = &p.name;
        let plan = match Plan::resolve(&cfg, name, None) {
            Ok(plan) => plan,
            Err(e) => {
                r.fail(
                    &format!("profile {name}: {e:#}"),
                    "fix the configuration named above",
                );
                continue;
            }
        };
        let bao = openbao::Lazy::new(cfg.settings.openbao.clone());
        match &plan.kind {
            Kind::Mfa {
                keys: k,
                mfa,
                ykman_device,
                ..
            } => {
                match k {
                    keys::Source::Keyring if !keys::recorded(name) => r.fail(
                        &format!("profile {name}: no key stored"),
                        &format!("awsmfa add {name}"),
                    ),
                    keys::Source::Keyring => r.ok(&format!("profile {name}: key in the keyring")),
                    keys::Source::Op { .. } => {
                        check_op(&mut r, name, &format!("keys from {}", k.describe()))
                    }
                    keys::Source::OpenBao { path, .. } => {
                        check_openbao(&mut r, name, &format!("keys from {path}"), &bao)
                    }
                }
                for (i, source) in mfa.iter().enumerate() {
                    r.fallback = i + 1 < mfa.len();
                    check_mfa(&mut r, name, source, ykman_device.as_deref(), &bao);
                }
                r.fallback = false;
            }
            Kind::Vended { path, .. } => {
                check_openbao(&mut r, name, &format!("sessions from {path}"), &bao)
            }
            Kind::Role { .. } => {}
        }
        let uses_awsmfa = p
            .credential_process
            .as_deref()
            .is_some_and(|c| c.contains("awsmfa") && c.contains("credential-process"));
        if uses_awsmfa && p.role_arn.is_some() {
            r.warn(
                &format!("profile {name}: has both role_arn and credential_process"),
                &format!(
                    "the AWS CLI and SDKs assume role_arn themselves before they look at credential_process; \
                     move `credential_process = awsmfa credential-process {name}` to a profile of its own without role_arn"
                ),
            );
        } else if !uses_awsmfa {
            r.warn(
                &format!("profile {name}: SDKs and the AWS CLI do not use awsmfa for it"),
                &format!("add `credential_process = awsmfa credential-process {name}` under [profile {name}]"),
            );
        }
        // Reported once per URL, whichever profile's endpoint_url names it.
        if !endpoints
            .iter()
            .any(|e| e.describe() == plan.endpoint.describe())
        {
            endpoints.push(plan.endpoint.clone());
        }
    }
    for endpoint in &endpoints {
        check_endpoint(&mut r, endpoint);
    }
    if r.failures > 0 {
        anyhow::bail!("{} problem(s) found", r.failures);
    }
    Ok(())
}

fn probe_store(r: &mut Report, what: &str, store: anyhow::Result<Store>) {
    let store = match store {
        Ok(store) => store,
        Err(e) => return r.fail(&format!("{what} keyring: {e:#}"), "see the hint above"),
    };
    let name = format!("doctor-probe-{}", std::process::id());
    let result = store
        .set(&name, &SecretString::from("probe".to_string()))
        .and_then(|()| store.delete(&name).map(drop));
    match result {
        Ok(()) => r.ok(&format!(
            "{what} keyring: {} stores and deletes",
            store.backend().name()
        )),
        Err(e) => r.fail(&format!("{what} keyring: {e:#}"), "see the hint above"),
    }
}

fn check_mfa(
    r: &mut Report,
    profile: &str,
    source: &mfa::Source,
    ykman_device: Option<&str>,
    bao: &openbao::Lazy,
) {
    match source {
        mfa::Source::Prompt if Tty::available() => {
            r.ok(&format!("profile {profile}: MFA codes typed at the terminal"))
        }
        mfa::Source::Prompt => r.warn(
            &format!("profile {profile}: MFA codes are typed, but there is no terminal here"),
            "runs without a terminal will fail until a session is cached; consider mfa_process or mfa = \"ykman\"",
        ),
        mfa::Source::Process(cmd) => {
            let program = cmd.split_whitespace().next().unwrap_or("");
            if paths::which(program).is_some() {
                r.ok(&format!("profile {profile}: mfa_process `{program}` found"));
            } else {
                r.fail(
                    &format!("profile {profile}: mfa_process `{program}` is not on PATH"),
                    "install it or fix mfa_process",
                );
            }
        }
        mfa::Source::Ykman(_) => check_ykman(r, profile, ykman_device),
        mfa::Source::Op { vault, item } => check_op(r, profile, &format!("one-time codes from {vault}/{item}")),
        mfa::Source::OpenBao(path) => check_openbao(r, profile, &format!("MFA codes from {path}"), bao),
    }
}

/// `ykman list --serials` answers without a touch: it proves the tool runs and
/// a key is plugged in.
fn check_ykman(r: &mut Report, profile: &str, device: Option<&str>) {
    let Some(ykman) = paths::which("ykman") else {
        return r.fail(
            &format!("profile {profile}: ykman is not installed"),
            "install YubiKey Manager (`pipx install yubikey-manager`)",
        );
    };
    let mut cmd = std::process::Command::new(ykman);
    cmd.args(["list", "--serials"]);
    let serials = match tool::run(cmd, "ykman") {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return r.fail(
                &format!("profile {profile}: `ykman list` failed ({})", out.status),
                "see ykman's message above",
            );
        }
        Err(e) => return r.fail(&format!("profile {profile}: {e:#}"), "see above"),
    };
    let found: Vec<&str> = serials.split_whitespace().collect();
    match device {
        _ if found.is_empty() => r.fail(
            &format!("profile {profile}: no YubiKey plugged in"),
            "plug in the YubiKey that holds the OATH account",
        ),
        Some(serial) if !found.contains(&serial) => r.fail(
            &format!(
                "profile {profile}: YubiKey {serial} is not plugged in (found {})",
                found.join(", ")
            ),
            "plug it in, or fix ykman_device in config.toml",
        ),
        _ => r.ok(&format!(
            "profile {profile}: YubiKey present ({})",
            found.join(", ")
        )),
    }
}

/// Only the binary: asking op anything may pop up an unlock dialog.
fn check_op(r: &mut Report, profile: &str, what: &str) {
    if paths::which("op").is_some() {
        r.ok(&format!(
            "profile {profile}: 1Password CLI found for {what}"
        ));
    } else {
        r.fail(
            &format!(
                "profile {profile}: {what} need the 1Password CLI `op`, which is not installed"
            ),
            "install the 1Password CLI",
        );
    }
}

fn check_openbao(r: &mut Report, profile: &str, what: &str, bao: &openbao::Lazy) {
    match bao
        .get()
        .and_then(|c| Ok((c.address().to_string(), c.check()?)))
    {
        Ok((address, detail)) => r.ok(&format!(
            "profile {profile}: OpenBao at {address} for {what}: {detail}"
        )),
        Err(e) => r.fail(
            &format!("profile {profile}: {what}: {e:#}"),
            "check [openbao] in config.toml, BAO_ADDR and the token or wrapped SecretID",
        ),
    }
}

/// A TCP connect, not an STS call: doctor must not need credentials or MFA.
/// An endpoint the minting path would refuse is not probed at all.
fn check_endpoint(r: &mut Report, endpoint: &Endpoint) {
    let url = endpoint.describe();
    let (host, port) = match endpoint.check() {
        Ok(Some(target)) => (target.host, target.port),
        Ok(None) => (format!("sts.{}.amazonaws.com", endpoint.region), 443),
        Err(e) => {
            return r.fail(
                &format!("STS endpoint: {e:#}"),
                &format!("fix or remove the override ({})", endpoint.origin),
            );
        }
    };
    let reachable = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok());
    if reachable {
        r.ok(&format!("STS endpoint {url} reachable"));
    } else {
        r.fail(
            &format!("STS endpoint {url} is not reachable"),
            &match endpoint.origin {
                Origin::Default => "check the region and the network".to_string(),
                ref origin => format!("check {origin} and the network"),
            },
        );
    }
}
