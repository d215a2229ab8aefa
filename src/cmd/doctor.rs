//! `doctor`: checks each piece the way the minting path will use it, without
//! minting anything, and says what to fix.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{AwsConfig, Config, Settings};
use crate::health::Health;
use crate::session::{self, Kind, Plan};
use crate::store::Store;
use crate::sts::{Endpoint, Origin};
use crate::{mfa, openbao, paths, roots, state};

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
    /// What a source found about itself, for `profile`.
    fn health(&mut self, profile: &str, health: Health) {
        self.finding(&format!("profile {profile}: "), health);
    }
    fn finding(&mut self, prefix: &str, health: Health) {
        match health {
            Health::Ok(what) => self.ok(&format!("{prefix}{what}")),
            Health::Warn { what, fix } => self.warn(&format!("{prefix}{what}"), &fix),
            Health::Fail { what, fix } => self.fail(&format!("{prefix}{what}"), &fix),
        }
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
        // An unsafe directory's message carries its own fix.
        Err(e) if e.is::<state::UnsafeDir>() => {
            r.fail(&format!("{e:#}"), "run the command it names")
        }
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
    // A cluster's nodes once, before the profiles that use them.
    for finding in openbao::Lazy::new(cfg.settings.openbao.clone()).nodes_health() {
        r.finding("", finding);
    }
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
                keys,
                serial,
                mfa,
                ykman_device,
                ..
            } => {
                r.health(name, keys.health(name, &bao));
                if let Some(created) = session::key_created(&plan) {
                    let days = crate::time::now().saturating_sub(created) / 86_400;
                    let what = format!(
                        "profile {name}: the key is {days} day(s) old (created {})",
                        crate::time::rfc3339(created)
                    );
                    if days >= session::ROTATE_AFTER_DAYS {
                        r.warn(
                            &what,
                            &format!(
                                "replace it with `awsmfa rotate {name}` (keys older than {} days are due)",
                                session::ROTATE_AFTER_DAYS
                            ),
                        );
                    } else {
                        r.ok(&what);
                    }
                }
                let request = mfa::Request {
                    profile: name,
                    serial,
                    ykman_device: ykman_device.as_deref(),
                    openbao: &bao,
                    last_step: None,
                };
                for (i, source) in mfa.iter().enumerate() {
                    r.fallback = i + 1 < mfa.len();
                    r.health(name, source.health(&request));
                }
                r.fallback = false;
            }
            Kind::Vended { path, .. } => {
                r.health(name, bao.health(&format!("sessions from {path}")))
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
