//! Sessions: resolve what shapes one, find it in the cache, or mint it under a
//! cross-process lock. `get` is the one entry point; everything else in awsmfa
//! that needs credentials goes through it.

mod age;
mod cache;
mod mint;
mod plan;

use std::time::Duration;

use anyhow::bail;

use crate::time;
use cache::Cache;

pub use crate::config::settings::MinRemaining;
pub use crate::creds::Creds;
pub use age::{ROTATE_AFTER_DAYS, key_created, remember as remember_key_age};
pub use cache::{clear, clear_plan, known_expiry};
pub use plan::{Kind, Plan};

/// When minting fails, a cached session with at least this much left still
/// beats no credentials at all.
const LAST_RESORT: u64 = 120;

/// The session for `plan`: cached when more than `refresh_before` remains,
/// otherwise minted — at most once across all concurrent awsmfa processes.
pub fn get(plan: &Plan, refresh_before: Duration) -> anyhow::Result<Creds> {
    get_for(plan, refresh_before, None)
}

/// [`get`], with at least `min_remaining` left on the session handed out: a
/// cached one with less is replaced. A minimum no session of the plan can meet
/// is refused before anything costs an MFA code.
pub fn get_for(
    plan: &Plan,
    refresh_before: Duration,
    min_remaining: Option<&MinRemaining>,
) -> anyhow::Result<Creds> {
    if let Some(min) = min_remaining {
        check_reachable(plan, min)?;
    }
    let floor = min_remaining.map_or(0, |m| m.at_least.as_secs());
    let cache = Cache::open()?;
    let fp = plan.fingerprint();
    // Reused while more than `refresh_before` remains, but never asking for more
    // than half the session's life (as requested, or as OpenBao leased it): a
    // 15-minute session would otherwise be due the moment it is minted, and cost
    // an MFA code on every call. `min_remaining` is the user's own floor on top.
    let refresh = refresh_before.as_secs();
    let requested = plan.lifetime().map(|d| d.as_secs());
    let fresh = |lifetime: u64| refresh.min(requested.unwrap_or(lifetime) / 2).max(floor);
    if let Some(creds) = cache.lookup(plan, &fp, &fresh) {
        crate::debug!(
            "session for {}: cache hit, {} left",
            plan.profile,
            time::short_left(creds.expiration.saturating_sub(time::now()))
        );
        cache::repair_meta(plan, &fp, creds.expiration);
        return Ok(creds);
    }
    let _lock = cache::lock(plan)?;
    // Whoever held the lock before us may have just minted it.
    if let Some(creds) = cache.lookup(plan, &fp, &fresh) {
        crate::debug!("session for {}: minted by another awsmfa", plan.profile);
        return Ok(creds);
    }
    let started = time::now();
    let creds = match mint::mint(plan, refresh_before) {
        Ok(creds) => creds,
        Err(e) => {
            if let Some(old) = cache.lookup(plan, &fp, &|_| LAST_RESORT.max(floor)) {
                crate::log::warn(format_args!(
                    "{e:#}\n  using the cached session for {}, which expires in {}",
                    plan.profile,
                    time::short_left(old.expiration.saturating_sub(time::now()))
                ));
                return Ok(old);
            }
            return Err(e);
        }
    };
    if let Err(e) = cache.save(plan, &fp, &creds) {
        // The command can still run; only the next one will ask for MFA again.
        crate::log::warn(format_args!("could not cache the session: {e:#}"));
    }
    // OpenBao's lease is known only now. The session stays cached for whatever
    // can use it; this command does not start on it.
    if let Some(min) = min_remaining
        && plan.lifetime().is_none()
    {
        let leased = creds.expiration.saturating_sub(started);
        if leased < min.at_least.as_secs() {
            // To the minute: the fetch's own second is noise.
            let lease = Duration::from_secs(if leased < 60 {
                leased
            } else {
                (leased + 30) / 60 * 60
            });
            bail!(
                "{} is longer than the session OpenBao leased for {} ({}); lower it, or raise the TTL of the OpenBao role",
                min.from,
                plan.profile,
                humantime::format_duration(lease)
            );
        }
    }
    Ok(creds)
}

/// The cached session for `plan` with more than `at_least` left, without minting.
pub fn cached(plan: &Plan, at_least: Duration) -> anyhow::Result<Option<Creds>> {
    let cache = Cache::open()?;
    let floor = at_least.as_secs();
    Ok(cache.lookup(plan, &plan.fingerprint(), &|_| floor))
}

/// Before any MFA: a minimum longer than the session can last would mint and
/// then refuse to run, every time.
fn check_reachable(plan: &Plan, min: &MinRemaining) -> anyhow::Result<()> {
    let Some(lifetime) = plan.lifetime() else {
        return Ok(());
    };
    if min.at_least <= lifetime {
        return Ok(());
    }
    let setting = plan.lifetime_from;
    let cap = if matches!(plan.kind, Kind::Role { .. }) {
        " (at most 1h: STS caps a role assumed with an MFA session)"
    } else {
        ""
    };
    bail!(
        "{} is longer than a session of {} can be ({setting} {}); lower it or raise {setting}{cap}",
        min.from,
        plan.profile,
        humantime::format_duration(lifetime)
    )
}
