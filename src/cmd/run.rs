//! `exec` and `credential-process`: the two ways a session reaches a program.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::config::Config;
use crate::config::settings::SecretsManager;
use crate::session::{self, Plan};
use crate::{Exit, exec, log, paths, roots, time};

pub struct ExecArgs<'a> {
    pub profile: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub no_secrets: bool,
    /// `--server` (Some(true)) / `--no-server` (Some(false)); None: as configured.
    pub server: Option<bool>,
    /// `--min-remaining D`.
    pub min_remaining: Option<&'a str>,
    /// Set on the inner awsmfa that a secrets manager runs: `FD:NONCE` of the
    /// outer awsmfa's session hand-over.
    pub chained: Option<&'a str>,
    pub argv: &'a [OsString],
}

/// What a direnv shim runs: the real command, under `awsmfa exec` — or as it
/// is when already inside one (terragrunt running tofu), so a shim never loops
/// and never starts a second session.
pub fn shim(name: &str, args: &[OsString]) -> anyhow::Result<()> {
    let argv = crate::shell::shim(name, args)?;
    if exec::enclosing_profile().is_some() {
        return Err(exec::replace_with(exec::command(&argv)));
    }
    let profile = std::env::var("AWSMFA_DIRENV_PROFILE")
        .ok()
        .filter(|p| !p.is_empty());
    exec(ExecArgs {
        profile: profile.as_deref(),
        duration: None,
        no_secrets: false,
        server: None,
        min_remaining: None,
        chained: None,
        argv: &argv,
    })
}

pub fn exec(args: ExecArgs) -> anyhow::Result<()> {
    // First, before anything reads the environment: along the chain, the
    // secrets manager chose it.
    if let Some(handover) = args.chained {
        return exec_innermost(&args, handover);
    }
    if let Some(outer) = exec::enclosing_profile() {
        // A wrapped terragrunt runs tofu, which a wrapper may route back here:
        // it already has what it needs.
        return match args.profile {
            Some(p) if p != outer => bail!(
                "already inside `awsmfa exec {outer}`; refusing to nest a session for {p} in it. \
                 Run it from a new shell, or give each provider `profile = \"{p}\"` with \
                 credential_process, which works inside exec"
            ),
            _ => Err(exec::replace_with(exec::command(args.argv))),
        };
    }
    let cfg = Config::load()?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let lookup = roots::lookup(&cwd, &cfg.settings);
    let (profile, root) = match (args.profile, &lookup.found) {
        // A named profile needs no root: root files on the way up are not its concern.
        (Some(p), Some(f)) => (p.to_string(), (f.root.profile == p).then_some(f)),
        (Some(p), None) => (p.to_string(), None),
        (None, Some(f)) => {
            for note in &lookup.notes {
                log::warn(note.message());
            }
            (f.root.profile.clone(), Some(f))
        }
        (None, None) => {
            if let Some(note) = lookup.not_allowed() {
                bail!("{}", note.message());
            }
            for note in &lookup.notes {
                log::warn(note.message());
            }
            let dir = roots::looks_like_root(&cwd).unwrap_or(cwd.clone());
            bail!(
                "no profile given, and {} is not inside a mapped OpenTofu root; name one \
                 (`awsmfa exec PROFILE -- {}`), or map the root: {}",
                paths::display(&cwd),
                args.argv[0].to_string_lossy(),
                roots::mapping_hint(&dir, &cfg.settings)
            );
        }
    };
    if let Some(f) = root
        && cfg.aws.get(&profile).is_none()
    {
        bail!(
            "{}:{}: root {} maps to profile {profile}, which is not in {}",
            paths::display(&f.root.file),
            f.root.line,
            paths::display(&f.dir),
            paths::display(&cfg.aws.path)
        );
    }
    let secrets = root
        .and_then(|f| f.root.secrets.as_ref())
        .filter(|_| !args.no_secrets);
    // Before any MFA prompt: a missing tool should not cost a YubiKey touch
    // (`terraform` is wrapped by default and many tofu users have none).
    let manager = secrets.map(locate_manager).transpose()?;
    let program = args.argv[0].to_string_lossy();
    if !program.contains('/') && paths::which(&program).is_none() {
        return Err(Exit {
            code: 127,
            message: format!("cannot run `{program}`: not found on PATH"),
        }
        .into());
    }

    let duration = args
        .duration
        .map(|d| time::parse_duration(d).context("--duration"))
        .transpose()?;
    // The flag, then the root's, then the profile's.
    let min_remaining = match args.min_remaining {
        Some(text) => Some(session::MinRemaining {
            at_least: time::parse_duration(text).context("--min-remaining")?,
            from: format!("--min-remaining {text}"),
        }),
        None => root
            .and_then(|f| f.root.min_remaining.clone())
            .or_else(|| cfg.settings.profile(&profile)?.min_remaining.clone()),
    };
    let plan = Plan::resolve(&cfg, &profile, duration)?;
    let creds = session::get_for(&plan, cfg.settings.refresh_before, min_remaining.as_ref())?;
    // The command line, then the root, then the profile: the nearer the
    // setting, the more it knows about the command.
    let serve = args
        .server
        .or(root.and_then(|f| f.root.server))
        .or_else(|| cfg.settings.profile(&profile).and_then(|s| s.server))
        .unwrap_or(false);
    let chain = secrets.zip(manager);
    if serve {
        return super::serve::exec(plan, cfg.settings.refresh_before, creds, chain, args.argv);
    }

    let Some((secrets, manager)) = chain else {
        let mut cmd = exec::command(args.argv);
        exec::child_env(&mut cmd, &profile, plan.region.as_deref(), &creds);
        drop(creds);
        return Err(exec::replace_with(cmd));
    };
    // The secrets manager runs outside and awsmfa innermost: the session is
    // never in the manager's environment, and whatever AWS_* values it injects
    // cannot shadow it (Infisical has no way to preserve variables; Doppler
    // needs a list). The session reaches the inner awsmfa through an inherited
    // pipe: resolving one again there would follow whatever the manager's
    // config sets.
    let handover = exec::send_handover(&profile, plan.region.as_deref(), &creds)?;
    drop(creds);
    let cmd = manager_command(&manager, secrets, &profile, &handover.arg, args.argv)?;
    crate::debug!("running under {} for {profile}", secrets.describe());
    let err = exec::replace_with(cmd);
    // Open until here: the manager inherits it through the exec.
    drop(handover);
    Err(err)
}

/// `MANAGER run … -- awsmfa exec PROFILE --chained HANDOVER -- CMD`, with no
/// credential variable in the manager's environment.
pub(super) fn manager_command(
    manager: &Path,
    secrets: &SecretsManager,
    profile: &str,
    handover: &str,
    argv: &[OsString],
) -> anyhow::Result<Command> {
    let mut cmd = Command::new(manager);
    cmd.args(manager_args(secrets));
    cmd.arg("--")
        .arg(std::env::current_exe().context("cannot find the awsmfa binary")?)
        .args(["exec", profile, "--chained", handover, "--"])
        .args(argv);
    for var in exec::CREDENTIAL_VARS
        .iter()
        .chain(crate::creds::CONTAINER_VARS)
    {
        cmd.env_remove(var);
    }
    Ok(cmd)
}

/// The awsmfa that Doppler or Infisical runs: it takes the session the outer
/// awsmfa handed over and reads no configuration, variable, keyring or
/// endpoint to get one; the manager's variables are only the command's.
fn exec_innermost(args: &ExecArgs, handover: &str) -> anyhow::Result<()> {
    let profile = args.profile.context("--chained needs a profile")?;
    let exec::Received { region, session } = exec::receive_handover(handover, profile)?;
    let shadowed: Vec<&str> = exec::CREDENTIAL_VARS
        .iter()
        .chain(crate::creds::CONTAINER_VARS)
        .copied()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    if !shadowed.is_empty() {
        log::warn(format_args!(
            "the secrets manager set {}; awsmfa's session for {profile} replaces them",
            shadowed.join(", ")
        ));
    }
    let mut cmd = exec::command(args.argv);
    match session {
        exec::Handed::Creds(creds) => {
            exec::child_env(&mut cmd, profile, region.as_deref(), &creds);
        }
        // The outer awsmfa serves it for as long as the command runs: this one
        // passes the endpoint on and starts no server of its own.
        exec::Handed::Endpoint(endpoint) => {
            exec::endpoint_env(&mut cmd, profile, region.as_deref(), &endpoint);
        }
    }
    Err(exec::replace_with(cmd))
}

fn manager_args(secrets: &SecretsManager) -> Vec<String> {
    match secrets {
        SecretsManager::Doppler { project, config } => {
            vec![
                "run".into(),
                "-p".into(),
                project.clone(),
                "-c".into(),
                config.clone(),
            ]
        }
        SecretsManager::Infisical {
            project_id,
            env,
            path,
        } => {
            let mut args = vec![
                "run".into(),
                "--env".into(),
                env.clone(),
                "--projectId".into(),
                project_id.clone(),
            ];
            if let Some(path) = path {
                args.extend(["--path".into(), path.clone()]);
            }
            args
        }
    }
}

fn locate_manager(secrets: &SecretsManager) -> anyhow::Result<PathBuf> {
    let (program, hint) = match secrets {
        SecretsManager::Doppler { .. } => (
            "doppler",
            "install the Doppler CLI (e.g. `brew install dopplerhq/cli/doppler`, or Doppler's apt repository)",
        ),
        SecretsManager::Infisical { .. } => (
            "infisical",
            "install the Infisical CLI (e.g. `brew install infisical/get-cli/infisical`, or `npm install -g @infisical/cli`)",
        ),
    };
    paths::which(program).with_context(|| {
        format!(
            "this root runs commands under {}, but `{program}` is not on PATH; {hint}, or run with --no-secrets",
            secrets.describe()
        )
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput<'a> {
    version: u32,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

pub fn credential_process(profile: &str) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    let plan = Plan::resolve(&cfg, profile, None)?;
    let creds = session::get(&plan, cfg.settings.refresh_before)?;
    let json = zeroize::Zeroizing::new(serde_json::to_string(&ProcessOutput {
        version: 1,
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose_secret(),
        session_token: creds.session_token.expose_secret(),
        expiration: time::rfc3339(creds.expiration),
    })?);
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
