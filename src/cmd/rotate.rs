//! `rotate`: a new long-lived key for a profile, made in IAM and stored where
//! the old one was, with at most one MFA code; `--all --older-than D` does it
//! unattended for every profile whose key is due (a timer's job).
//!
//! The order keeps a working key stored whatever happens, `kill -9` included:
//! the new key is made, kept aside in the keyring ([`keys::stage`]), checked to
//! work, stored in the old one's place, and only then is the old one deleted —
//! with the MFA session, never with the new key, which IAM may not know
//! everywhere yet. A `rotate` stopped half-way is finished by the next one.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::creds::LongLivedKey;
use crate::iam::{self, AccessKey};
use crate::keys::{self, Pending};
use crate::session::{self, Creds, Kind, MinRemaining, Plan};
use crate::tty::Tty;
use crate::{log, openbao, sts, time};

/// What the MFA session must have left: a rotation takes seconds, a minute at
/// most while IAM makes the new key known.
const SESSION_NEEDED: Duration = Duration::from_secs(5 * 60);

/// How long a new key may take to work everywhere (IAM is eventually
/// consistent: aws-vault's users saw InvalidClientTokenId for seconds).
const PROPAGATION: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(8);

pub struct RotateArgs<'a> {
    pub profile: Option<&'a str>,
    pub yes: bool,
    pub all: bool,
    pub older_than: Option<&'a str>,
}

/// Who says yes to a rotation.
enum Mode {
    /// `rotate PROFILE`: the person at this terminal.
    Ask(Tty),
    /// `rotate PROFILE --yes`.
    Confirmed,
    /// `rotate --all`: nobody; nothing may prompt.
    Unattended,
}

enum Outcome {
    Rotated,
    NotDue { days: u64 },
    Skipped(String),
}

pub fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let older_than = args
        .older_than
        .map(|text| time::parse_duration(text).context("--older-than"))
        .transpose()?;
    let cfg = Config::load()?;
    match (args.profile, args.all, older_than) {
        (None, true, Some(min)) => rotate_all(&cfg, min, args.older_than.unwrap_or_default()),
        (Some(name), false, _) => {
            let mut mode = if args.yes {
                Mode::Confirmed
            } else {
                Mode::Ask(Tty::open().map_err(|_| {
                    anyhow!(
                        "no terminal to confirm at; pass --yes to rotate the key of {name} (or, for a timer, use --all --older-than D)"
                    )
                })?)
            };
            match rotate_one(&cfg, name, &mut mode, older_than)? {
                Outcome::Rotated => {}
                Outcome::NotDue { days } => log::info(format_args!(
                    "the key of {name} is {days} day(s) old: not rotated"
                )),
                Outcome::Skipped(why) => bail!("{why}"),
            }
            Ok(())
        }
        _ => bail!("name a profile, or use --all with --older-than D"),
    }
}

/// Every profile with a long-lived key of its own, unattended. Exit status 1
/// when any rotation failed; a profile that needs a typed code (and has no
/// cached session) is skipped with a warning, not failed: it can only be
/// rotated at a terminal.
fn rotate_all(cfg: &Config, older_than: Duration, as_given: &str) -> anyhow::Result<()> {
    let names: Vec<&str> = cfg
        .aws
        .profiles
        .iter()
        .filter(|p| p.mfa_serial.is_some() && p.role_arn.is_none())
        .filter(|p| {
            cfg.settings
                .profile(&p.name)
                .is_none_or(|s| s.source.is_none())
        })
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        log::info("no profile has a long-lived key of its own: nothing to rotate");
        return Ok(());
    }
    let mut failed = Vec::new();
    for name in &names {
        match rotate_one(cfg, name, &mut Mode::Unattended, Some(older_than)) {
            Ok(Outcome::Rotated) => {}
            Ok(Outcome::NotDue { days }) => log::info(format_args!(
                "{name}: the key is {days} day(s) old, not older than {as_given}: not rotated"
            )),
            Ok(Outcome::Skipped(why)) => log::warn(format_args!("skipped {name}: {why}")),
            Err(e) => {
                log::error(format_args!("{name}: {e:#}"));
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} profile(s) not rotated: {}",
            failed.len(),
            names.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Whole days since `created`.
fn days_since(created: u64) -> u64 {
    time::now().saturating_sub(created) / 86_400
}

fn is_due(created: u64, older_than: Duration) -> bool {
    time::now().saturating_sub(created) >= older_than.as_secs()
}

fn rotate_one(
    cfg: &Config,
    name: &str,
    mode: &mut Mode,
    older_than: Option<Duration>,
) -> anyhow::Result<Outcome> {
    let mut plan = Plan::resolve(cfg, name, None)?;
    let (source, typed_only, bao) = match &mut plan.kind {
        Kind::Mfa {
            keys, mfa, openbao, ..
        } => {
            let typed_only = mfa.iter().all(|s| s.typed());
            if matches!(mode, Mode::Unattended) {
                // Nobody to type a code or answer a prompt.
                mfa.retain(|s| !s.typed());
            }
            if keys.stored(name) == Some(false) {
                let fix = format!("store one with `awsmfa add {name}`");
                if matches!(mode, Mode::Unattended) {
                    return Ok(Outcome::Skipped(format!("no key is stored; {fix}")));
                }
                bail!("profile {name} has no stored key to rotate; {fix}");
            }
            (
                keys.clone(),
                typed_only,
                openbao::Lazy::new(openbao.clone()),
            )
        }
        Kind::Role { source, .. } => bail!(
            "profile {name} assumes a role with the key of its source profile {0}; rotate that one: `awsmfa rotate {0}`",
            source.profile
        ),
        Kind::Vended { path, .. } => bail!(
            "profile {name} takes its sessions from OpenBao ({path}) and has no long-lived key to rotate"
        ),
    };
    // Every refusal that needs no network comes before anything that costs a
    // code or a call.
    plan.endpoint.check()?;
    plan.iam.check()?;
    if let (Some(min), Some(created)) = (older_than, session::key_created(&plan))
        && !is_due(created, min)
    {
        return Ok(Outcome::NotDue {
            days: days_since(created),
        });
    }
    let cached = session::cached(&plan, SESSION_NEEDED)?;
    if cached.is_none() && typed_only && matches!(mode, Mode::Unattended) {
        return Ok(Outcome::Skipped(format!(
            "its MFA code is typed, and no session with {} left is cached; run `awsmfa rotate {name}` at a terminal",
            humantime::format_duration(SESSION_NEEDED)
        )));
    }

    let current = source.load(name, &bao)?;
    let me = match sts::get_caller_identity(&plan.endpoint, &current)? {
        Ok(me) => me,
        Err(e) if e.is_bad_credential() => bail!(
            "{e}\n  the stored key {} of {name} does not work, so nothing was rotated; store a working one with `awsmfa add {name}`",
            current.access_key_id
        ),
        Err(e) => bail!(
            "{e}\n  nothing was rotated (GetCallerIdentity at {})",
            plan.endpoint.describe()
        ),
    };
    let user = me
        .user_name()
        .with_context(|| {
            format!(
                "the key of {name} belongs to {}, not to an IAM user: only an IAM user's keys can be rotated",
                me.arn
            )
        })?
        .to_string();
    if let Mode::Ask(tty) = mode {
        confirm(tty, name, &user, &current.access_key_id)?;
    }
    let session = match cached {
        Some(session) => session,
        None => {
            let min = MinRemaining {
                at_least: SESSION_NEEDED,
                from: "rotate".into(),
            };
            session::get_for(&plan, cfg.settings.refresh_before, Some(&min))?
        }
    };
    let r = Rotation {
        cfg,
        plan: &plan,
        name,
        user: &user,
        arn: &me.arn,
        session: &session,
        source: &source,
        bao: &bao,
    };
    let listed = r.list()?;
    if let Some(outcome) = r.resume(&current, &listed)? {
        return Ok(outcome);
    }
    let Some(old) = listed.iter().find(|k| k.id == current.access_key_id) else {
        bail!(
            "the stored key {} of {name} is not among IAM user {user}'s keys ({}); nothing was rotated",
            current.access_key_id,
            ids(&listed)
        );
    };
    session::remember_key_age(name, &old.id, old.created);
    if let (Some(min), Some(created)) = (older_than, old.created)
        && !is_due(created, min)
    {
        return Ok(Outcome::NotDue {
            days: days_since(created),
        });
    }
    if let Some(other) = listed.iter().find(|k| k.id != old.id) {
        bail!(
            "IAM user {user} already has two access keys, the most IAM allows: {} (stored for {name}) and {}; nothing was rotated.\n  \
             awsmfa deletes only the key it replaces. If {1} is not in use anywhere, delete it with \
             `aws iam delete-access-key --user-name {user} --access-key-id {1}`, then run `awsmfa rotate {name}` again",
            old.id,
            other.id
        );
    }
    let (new, created) = match iam::create_key(&plan.iam, &session, &user)? {
        Ok(made) => made,
        Err(e @ iam::Error::NoAnswer(_)) => bail!(
            "{e}\n  IAM may have made a new key for {user} without saying so; the stored key {0} still works. \
             See `aws iam list-access-keys --user-name {user}` and delete any key other than {0} with \
             `aws iam delete-access-key --user-name {user} --access-key-id KEY`",
            old.id
        ),
        Err(e) => bail!(
            "{e}\n  nothing was rotated: the stored key {} still works{}",
            old.id,
            denied_hint(&e, &user)
        ),
    };
    crate::debug!("made the key {} for {user}", new.access_key_id);
    let pending = Pending {
        new,
        old_id: old.id.clone(),
        user: user.clone(),
    };
    let staged = match keys::stage(name, &pending) {
        Ok(()) => true,
        Err(e) => {
            log::warn(format_args!(
                "cannot keep the new key aside while rotating ({e:#}): if this rotation is stopped now, the new key is lost and must be deleted in IAM"
            ));
            false
        }
    };
    r.finish(&pending.old_id, &pending.new, created, staged)
}

fn ids(keys: &[AccessKey]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(|k| k.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn denied_hint(e: &iam::Error, user: &str) -> String {
    match e {
        iam::Error::Rejected { code, .. } if code == "AccessDenied" => format!(
            "\n  the IAM policy must allow iam:ListAccessKeys, iam:CreateAccessKey and iam:DeleteAccessKey on user {user} (with MFA)"
        ),
        _ => String::new(),
    }
}

fn confirm(tty: &mut Tty, name: &str, user: &str, old: &str) -> anyhow::Result<()> {
    let answer = tty
        .ask(
            &format!(
                "Replace the key {old} of IAM user {user} (profile {name}) with a new one, and delete {old}? [y/N] "
            ),
            true,
        )
        .context("cannot read from the terminal")?;
    if !matches!(answer.expose_secret().trim(), "y" | "Y" | "yes") {
        bail!("nothing rotated");
    }
    Ok(())
}

/// One rotation's fixed parts, from the listing of the user's keys on.
struct Rotation<'a> {
    cfg: &'a Config,
    plan: &'a Plan,
    name: &'a str,
    user: &'a str,
    /// The user's ARN, which the new key must answer as.
    arn: &'a str,
    session: &'a Creds,
    source: &'a keys::Source,
    bao: &'a openbao::Lazy,
}

impl Rotation<'_> {
    fn list(&self) -> anyhow::Result<Vec<AccessKey>> {
        iam::list_keys(&self.plan.iam, self.session, self.user)?
            .map_err(|e| anyhow!("{e}\n  nothing was rotated{}", denied_hint(&e, self.user)))
    }

    /// Finishes a rotation a previous `rotate` was stopped in, if its journal
    /// says there is one: the new key stored already (delete the old one), or
    /// made and kept aside but not stored (check it, store it, then delete).
    fn resume(
        &self,
        current: &LongLivedKey,
        listed: &[AccessKey],
    ) -> anyhow::Result<Option<Outcome>> {
        let pending = match keys::staged(self.name) {
            Ok(Some(pending)) => pending,
            Ok(None) => return Ok(None),
            Err(e) => {
                crate::debug!("no journal of an earlier rotation: {e:#}");
                return Ok(None);
            }
        };
        let new = listed.iter().find(|k| k.id == pending.new.access_key_id);
        if pending.user == self.user && new.is_some() {
            if current.access_key_id == pending.new.access_key_id {
                log::info(format_args!(
                    "finishing the rotation of {} that stopped after storing {}",
                    self.name, pending.new.access_key_id
                ));
                // Stored again: the store may have been stopped half-way (the
                // keyring's stamp after its entry).
                self.source.replace(self.name, &pending.new, self.bao)?;
                let old_listed = listed.iter().any(|k| k.id == pending.old_id);
                return self
                    .complete(&pending.old_id, &pending.new.access_key_id, old_listed)
                    .map(Some);
            }
            if current.access_key_id == pending.old_id {
                log::info(format_args!(
                    "finishing the rotation of {} that stopped before storing {}",
                    self.name, pending.new.access_key_id
                ));
                let created = new.and_then(|k| k.created);
                return self
                    .finish(&pending.old_id, &pending.new, created, true)
                    .map(Some);
            }
        }
        // From a rotation whose key is gone, or another user's: nothing to finish.
        crate::debug!(
            "dropping the journal of an earlier rotation of {} ({} is not in IAM, or not this key's)",
            self.name,
            pending.new.access_key_id
        );
        keys::unstage(self.name)?;
        Ok(None)
    }

    /// From a new key made to the end: check, store, delete the old one.
    fn finish(
        &self,
        old_id: &str,
        new: &LongLivedKey,
        created: Option<u64>,
        staged: bool,
    ) -> anyhow::Result<Outcome> {
        let (name, user, new_id) = (self.name, self.user, &new.access_key_id);
        let unstored = |e: anyhow::Error| {
            let again = if staged {
                format!("run `awsmfa rotate {name}` again to finish, or ")
            } else {
                String::new()
            };
            anyhow!(
                "{e:#}\n  the stored key {old_id} still works; the new key {new_id} was made in IAM but not stored: \
                 {again}delete it with `aws iam delete-access-key --user-name {user} --access-key-id {new_id}`"
            )
        };
        self.wait_until_works(new).map_err(unstored)?;
        self.source
            .replace(name, new, self.bao)
            .with_context(|| format!("cannot store the new key in {}", self.source.describe()))
            .map_err(unstored)?;
        session::remember_key_age(name, new_id, created);
        self.complete(old_id, new_id, true)
    }

    /// The new key is stored and works: the old one goes, signed with the MFA
    /// session, and with it every session minted from it.
    fn complete(&self, old_id: &str, new_id: &str, delete: bool) -> anyhow::Result<Outcome> {
        let (name, user) = (self.name, self.user);
        if delete {
            match iam::delete_key(&self.plan.iam, self.session, user, old_id)? {
                Ok(()) => {}
                // Deleted already, by a run that was stopped before it could say so.
                Err(iam::Error::Rejected { code, .. }) if code == "NoSuchEntity" => {}
                Err(e) => bail!(
                    "{e}\n  the new key {new_id} is stored for {name} and works, but the old key {old_id} is still in IAM: \
                     delete it with `aws iam delete-access-key --user-name {user} --access-key-id {old_id}`{}",
                    denied_hint(&e, user)
                ),
            }
        }
        if let Err(e) = keys::unstage(name) {
            crate::debug!("cannot drop the rotation journal of {name}: {e:#}");
        }
        for p in super::dependents(self.cfg, name) {
            super::list::clear_one(self.cfg, &p)?;
        }
        log::info(format_args!(
            "rotated the key of {name}: {new_id} is stored in {}, {old_id} is deleted",
            self.source.describe()
        ));
        Ok(Outcome::Rotated)
    }

    /// GetCallerIdentity with the new key until STS takes it, backing off, for
    /// [`PROPAGATION`] at most.
    fn wait_until_works(&self, new: &LongLivedKey) -> anyhow::Result<()> {
        let deadline = Instant::now() + PROPAGATION;
        let mut pause = FIRST_PAUSE;
        loop {
            match sts::get_caller_identity(&self.plan.endpoint, new)? {
                Ok(id) if id.arn == self.arn => return Ok(()),
                Ok(id) => bail!(
                    "the new key {} answers as {}, not as {}",
                    new.access_key_id,
                    id.arn,
                    self.arn
                ),
                Err(e) if e.is_bad_credential() && Instant::now() + pause < deadline => {
                    crate::debug!(
                        "the new key {} does not work yet ({e}); trying again in {}s",
                        new.access_key_id,
                        pause.as_secs()
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Err(e) if e.is_bad_credential() => bail!(
                    "the new key {} still does not work {}s after IAM made it ({e})",
                    new.access_key_id,
                    PROPAGATION.as_secs()
                ),
                Err(e) => bail!("cannot check the new key {}: {e}", new.access_key_id),
            }
        }
    }
}
