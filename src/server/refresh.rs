//! Keeping the served session fresh, ahead of time and off the request path.
//!
//! The policy: a session received with more than `refresh_before` left is
//! replaced once `refresh_before` is left, so every answer has at least that
//! much (botocore's advisory window is 15 minutes, its mandatory one 10, Go's
//! 5). A session that never had that much (a role STS capped, a short test
//! session) is replaced at half of what it had. A refresh that fails, or hands
//! back the very session being replaced, is tried again after a back-off,
//! while the current session keeps being served until it ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Served, Shared};
use crate::creds::Creds;
use crate::{log, time};

/// Where renewed sessions come from: `cmd` implements it over `session::get`
/// (which re-assumes a role from the cached MFA session with no prompt, and
/// mints a new MFA session, code and all, when that one is due). Called on
/// the refresher thread only, never on a request's clock.
pub trait Renew: Send {
    /// The session now: a new one when the served one is due, or the same
    /// one when nothing better can be had yet.
    fn renew(&mut self) -> anyhow::Result<Creds>;

    /// When something the served session is made from (the MFA session a
    /// role is assumed with) is itself due, in Unix seconds: that is renewed
    /// ahead too, so that its code is asked while the role still has time.
    fn upstream_due(&self) -> Option<u64> {
        None
    }
}

/// Back-off after failures: 1 s, doubling, at most this.
const MAX_BACKOFF: u64 = 30;

pub(super) struct Policy {
    pub profile: String,
    /// Seconds.
    pub refresh_before: u64,
}

/// When a session that became current at `since` and ends at `expiration`
/// is due for replacement.
fn due_at(since: u64, expiration: u64, refresh_before: u64) -> u64 {
    let had = expiration.saturating_sub(since);
    let margin = if had > refresh_before {
        refresh_before
    } else {
        had / 2
    };
    expiration - margin
}

/// How long to wait after `failures` failed refreshes in a row, with `left`
/// seconds of the current session left: doubling from 1 s up to
/// [`MAX_BACKOFF`], and never past half of what is left, so a session that
/// could still be saved gets another try before it ends.
fn backoff(failures: u32, left: u64) -> u64 {
    let doubling = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    if left >= 2 {
        doubling.min(left / 2)
    } else {
        doubling
    }
}

/// The next time to renew after a refresh that left `current` served.
/// Past due already (a session handed back unchanged while it is due): a
/// while later, not in a loop.
fn next_after(current: &Served, upstream: Option<u64>, now: u64, refresh_before: u64) -> u64 {
    let planned =
        due_at(current.since, current.expiration, refresh_before).min(upstream.unwrap_or(u64::MAX));
    if planned > now {
        planned
    } else {
        now + (current.expiration.saturating_sub(now) / 4).clamp(1, 60)
    }
}

pub(super) fn run(shared: &Arc<Shared>, source: &mut dyn Renew, policy: &Policy) {
    let mut next = {
        let st = shared.lock();
        next_after(
            &st.current,
            source.upstream_due(),
            time::now(),
            policy.refresh_before,
        )
    };
    let mut failures = 0u32;
    let mut last_warning = String::new();
    loop {
        let (key, expiration) = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                // To the instant, not the second: a renewal due when a short
                // session ends must not start most of a second late.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let Some(left) = Duration::from_secs(next).checked_sub(now) else {
                    break;
                };
                st = shared
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            st.refreshing = true;
            (st.current.access_key_id.clone(), st.current.expiration)
        };
        let started = Instant::now();
        let result = source.renew().and_then(|creds| Served::render(&creds));
        let upstream = source.upstream_due();
        let mut st = shared.lock();
        st.refreshing = false;
        let now = time::now();
        let failed = result.is_err();
        match result {
            Ok(served) if served.access_key_id != key => {
                crate::debug!(
                    "renewed the session for {} in {:.1} ms; it ends in {}s",
                    policy.profile,
                    started.elapsed().as_secs_f64() * 1000.0,
                    served.expiration.saturating_sub(now)
                );
                st.current = served;
                failures = 0;
                last_warning.clear();
            }
            // The cache still found it fresh enough (its window can be
            // shorter than ours), only what it is made from was renewed, or
            // minting failed and it was handed back as a last resort.
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let left = expiration.saturating_sub(now);
                let warning = if left == 0 {
                    format!(
                        "cannot renew the session for {}: {e:#}\n  it has ended: the command's \
                         requests for credentials fail until awsmfa can renew it",
                        policy.profile
                    )
                } else {
                    format!(
                        "cannot renew the session for {}: {e:#}\n  the command keeps the current \
                         one, which ends in {}; trying again",
                        policy.profile,
                        time::short_left(left)
                    )
                };
                // Once per distinct trouble, and once more when the session
                // ends: a retry loop must not flood the command's terminal.
                let key = format!("{} {e:#}", left == 0);
                if key != last_warning {
                    log::warn(&warning);
                    last_warning = key;
                }
                next = now + backoff(failures, left);
            }
        }
        if !failed {
            next = next_after(&st.current, upstream, now, policy.refresh_before);
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sessions_are_renewed_refresh_before_their_end() {
        // An 8 h MFA session, 15 min window: renewed with 15 min left.
        assert_eq!(due_at(1000, 1000 + 8 * 3600, 900), 1000 + 8 * 3600 - 900);
        // A role's 1 h: the same.
        assert_eq!(due_at(0, 3600, 900), 2700);
        // Received from the cache with 20 min left: renewed 5 min later.
        assert_eq!(due_at(0, 1200, 900), 300);
    }

    #[test]
    fn sessions_shorter_than_the_window_are_renewed_halfway() {
        assert_eq!(due_at(0, 12, 900), 6);
        assert_eq!(due_at(0, 900, 900), 450);
        // Already over: at once.
        assert_eq!(due_at(100, 50, 900), 50);
    }

    fn served(since: u64, expiration: u64) -> Served {
        Served {
            response: zeroize::Zeroizing::new(Vec::new()),
            access_key_id: "ASIATEST".into(),
            expiration,
            since,
        }
    }

    #[test]
    fn an_upstream_session_due_first_is_renewed_first() {
        // A role with 50 min left, assumed from an MFA session due in 10.
        let role = served(0, 3000);
        assert_eq!(next_after(&role, Some(600), 0, 900), 600);
        assert_eq!(next_after(&role, Some(5000), 0, 900), 2100);
        assert_eq!(next_after(&role, None, 0, 900), 2100);
    }

    #[test]
    fn a_session_handed_back_while_due_is_asked_for_again_later() {
        // Due at 50, still served at 60 with 40 s left: a quarter of that later.
        assert_eq!(next_after(&served(0, 100), None, 60, 900), 70);
        // A minute at most, a second at least.
        assert_eq!(next_after(&served(0, 3000), None, 2101, 900), 2161);
        assert_eq!(next_after(&served(0, 10), None, 9, 900), 10);
        assert_eq!(next_after(&served(0, 10), None, 20, 900), 21);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_saves_what_is_left() {
        let plenty = 3600;
        let got: Vec<u64> = (1..=7).map(|n| backoff(n, plenty)).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(100, plenty), 30);
        // 20 s left: never later than 10 s from now.
        assert_eq!(backoff(6, 20), 10);
        // Ended: keep trying, at the same pace.
        assert_eq!(backoff(6, 0), 30);
        assert_eq!(backoff(1, 0), 1);
    }
}
