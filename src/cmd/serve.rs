//! `exec --server`: awsmfa stays the command's parent and serves its session
//! from a loopback endpoint that renews it (`server`), for applies that
//! outlive one session. Along the secrets-manager chain this awsmfa, the
//! outer one, runs the server and hands the endpoint to the inner one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::settings::SecretsManager;
use crate::server::{Renew, Server};
use crate::session::{self, Creds, Kind, Plan};
use crate::tty::Tty;
use crate::{Exit, exec, time};

/// Runs `argv` (under the secrets manager of `chain`, when there is one) with
/// the endpoint serving `plan`'s session, starting from `creds`, and ends
/// with the command's exit status.
pub(super) fn exec(
    plan: Plan,
    refresh_before: Duration,
    creds: Creds,
    chain: Option<(&SecretsManager, PathBuf)>,
    argv: &[OsString],
) -> anyhow::Result<()> {
    let profile = plan.profile.clone();
    let region = plan.region.as_deref();
    // Before the server exists: a SIGTERM from now on waits for the command,
    // so the token file is always removed. (Not earlier: a Ctrl-C at an MFA
    // prompt must still end awsmfa.)
    if let Some(found) = crate::config::aws::default_profile_credentials() {
        crate::log::warn(format_args!(
            "the [default] profile has credentials ({found}); AWS SDKs use them before \
             the --server endpoint, so the command would not run as {profile}\n  \
             move them into a named profile, or run without --server"
        ));
    }
    let supervisor = exec::supervise()?;
    let server = Server::start(&profile, creds, refresh_before)?;
    let (cmd, handover) = match &chain {
        None => {
            let mut cmd = exec::command(argv);
            exec::endpoint_env(&mut cmd, &profile, region, server.endpoint());
            (cmd, None)
        }
        Some((secrets, manager)) => {
            let handover = exec::send_endpoint_handover(&profile, region, server.endpoint())?;
            let cmd = super::run::manager_command(manager, secrets, &profile, &handover.arg, argv)?;
            crate::debug!("running under {} for {profile}", secrets.describe());
            (cmd, Some(handover))
        }
    };
    let running = supervisor.spawn(cmd)?;
    // The manager has its copy; nothing started later may inherit one.
    drop(handover);
    let command = argv[0].to_string_lossy().into_owned();
    server.keep_fresh(Box::new(Renewal {
        plan,
        refresh_before,
        command,
    }))?;
    let code = running.wait()?;
    // The token file goes with the server, before awsmfa exits.
    drop(server);
    match code {
        0 => Ok(()),
        code => Err(Exit {
            code,
            message: String::new(),
        }
        .into()),
    }
}

/// Renewals through `session::get`, which re-assumes a role from the cached
/// MFA session with no prompt, and mints the MFA session when it is due.
struct Renewal {
    plan: Plan,
    refresh_before: Duration,
    /// For the terminal message before a typed code.
    command: String,
}

impl Renew for Renewal {
    fn renew(&mut self) -> anyhow::Result<Creds> {
        if let Some((mfa, left)) = self.mfa_due() {
            if let Kind::Mfa { mfa: sources, .. } = &mfa.kind
                && sources.iter().any(|s| s.describe() == "prompt")
            {
                self.announce(mfa, left);
            }
            // A role's MFA session first, on its own: a role session that is
            // still fresh would not renew it, and this is the time to ask.
            if !std::ptr::eq(mfa, &self.plan) {
                session::get(mfa, self.refresh_before)?;
            }
        }
        session::get(&self.plan, self.refresh_before)
    }

    fn upstream_due(&self) -> Option<u64> {
        let mfa = mfa_plan(&self.plan)?;
        if std::ptr::eq(mfa, &self.plan) {
            return None;
        }
        let expiry = session::known_expiry(mfa)?;
        Some(expiry.saturating_sub(window(mfa, self.refresh_before)))
    }
}

impl Renewal {
    /// The MFA session behind the served one, and the seconds it has left,
    /// when `session::get` would mint it now.
    fn mfa_due(&self) -> Option<(&Plan, u64)> {
        let mfa = mfa_plan(&self.plan)?;
        let left = session::known_expiry(mfa).map_or(0, |e| e.saturating_sub(time::now()));
        (left <= window(mfa, self.refresh_before)).then_some((mfa, left))
    }

    /// A typed code is about to be asked for while the command runs: the
    /// bell, and a line saying why, on the terminal the prompt will use.
    fn announce(&self, mfa: &Plan, left: u64) {
        let Ok(mut tty) = Tty::open() else { return };
        let when = if left == 0 {
            "has ended".to_string()
        } else {
            format!("ends in {}", time::short_left(left))
        };
        let _ = tty.say(&format!(
            "\x07\nawsmfa: the MFA session for {} {when}; `{}` keeps running on its current \
             credentials while you type a code\n",
            mfa.profile,
            crate::log::printable(&self.command)
        ));
    }
}

/// The plan of the MFA session `plan`'s session is made from (itself for an
/// MFA profile); None for sessions vended without MFA.
fn mfa_plan(plan: &Plan) -> Option<&Plan> {
    match &plan.kind {
        Kind::Mfa { .. } => Some(plan),
        Kind::Role { source, .. } => mfa_plan(source),
        Kind::Vended { .. } => None,
    }
}

/// How much of an MFA session must be left for `session::get` to reuse it
/// (its own rule: `refresh_before`, but never more than half the session).
fn window(mfa: &Plan, refresh_before: Duration) -> u64 {
    match &mfa.kind {
        Kind::Mfa { ttl, .. } => refresh_before.as_secs().min(ttl.as_secs() / 2),
        _ => refresh_before.as_secs(),
    }
}
