//! Sessions: resolve what shapes one, find it in the cache, or mint it under a
//! cross-process lock. `get` is the one entry point; everything else in awsmfa
//! that needs credentials goes through it.

mod cache;
mod mint;
mod plan;

use std::time::Duration;

use crate::time;
use cache::Cache;

pub use crate::creds::Creds;
pub use cache::{clear, clear_plan, known_expiry};
pub use plan::{Kind, Plan};

/// When minting fails, a cached session with at least this much left still
/// beats no credentials at all.
const LAST_RESORT: u64 = 120;

/// The session for `plan`: cached when more than `refresh_before` remains,
/// otherwise minted — at most once across all concurrent awsmfa processes.
pub fn get(plan: &Plan, refresh_before: Duration) -> anyhow::Result<Creds> {
    let cache = Cache::open()?;
    let fp = plan.fingerprint();
    // Reused while more than `refresh_before` remains, but never asking for more
    // than half the session's life (as requested, or as OpenBao leased it): a
    // 15-minute session would otherwise be due the moment it is minted, and cost
    // an MFA code on every call.
    let refresh = refresh_before.as_secs();
    let requested = match &plan.kind {
        Kind::Mfa { ttl, .. } => Some(ttl.as_secs()),
        Kind::Role { duration, .. } => Some(duration.as_secs()),
        Kind::Vended { .. } => None,
    };
    let fresh = |lifetime: u64| refresh.min(requested.unwrap_or(lifetime) / 2);
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
    let creds = match mint::mint(plan, refresh_before) {
        Ok(creds) => creds,
        Err(e) => {
            if let Some(old) = cache.lookup(plan, &fp, &|_| LAST_RESORT) {
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
    Ok(creds)
}
