//! `doctor`: checks each piece the way the minting path will use it, without
//! minting anything, and says what to fix.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{AwsConfig, Config, Settings};
use crate::session::{Kind, Plan};
use crate::store::Store;
use crate::sts::Endpoint;
use crate::tty::Tty;
use crate::{keys, mfa, paths, state};

#[derive(Default)]
struct Report {
    failures: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&mut self, what: &str, fix: &str) {
        println!("warn  {what}\n      → {fix}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
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

    let cfg = Config { aws, settings };
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for p in &cfg.aws.profiles {
        if p.mfa_serial.is_none() && p.role_arn.is_none() {
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
        if let Kind::Mfa { keys: k, mfa, .. } = &plan.kind {
            match k {
                keys::Source::Keyring if !keys::recorded(name) => r.fail(
                    &format!("profile {name}: no key stored"),
                    &format!("awsmfa add {name}"),
                ),
                _ => r.ok(&format!("profile {name}: key in the {}", k.describe())),
            }
            for source in mfa {
                check_mfa(&mut r, name, source);
            }
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
        if !endpoints.contains(&plan.endpoint) {
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

fn check_mfa(r: &mut Report, profile: &str, source: &mfa::Source) {
    match source {
        mfa::Source::Prompt if Tty::available() => r.ok(&format!(
            "profile {profile}: MFA codes typed at the terminal"
        )),
        mfa::Source::Prompt => r.warn(
            &format!("profile {profile}: MFA codes are typed, but there is no terminal here"),
            "runs without a terminal will fail until a session is cached; consider mfa_process",
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
    }
}

/// A TCP connect, not an STS call: doctor must not need credentials or MFA.
fn check_endpoint(r: &mut Report, endpoint: &Endpoint) {
    let url = endpoint.describe();
    let (default_port, rest) = match url.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some((_, rest)) => (443, rest),
        None => (443, url.as_str()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let reachable = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok());
    if reachable {
        r.ok(&format!("STS endpoint {url} reachable"));
    } else {
        r.fail(
            &format!("STS endpoint {url} is not reachable"),
            "check endpoint_url / AWS_ENDPOINT_URL_STS and the network",
        );
    }
}
