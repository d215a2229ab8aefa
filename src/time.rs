//! Durations as people write them (`1h`, `90m`) and instants as AWS writes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `1h`, `90m`, `1h30m`, `3600s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("`{text}` is not a duration; write it like `1h`, `90m` or `3600`")
    })
}

/// 9999-12-31T23:59:59Z, the last instant RFC 3339 can write: an expiry past
/// it comes from a corrupted file or a nonsensical lease, not from STS.
pub const LATEST: u64 = 253_402_300_799;

/// Whether `expiry` is an instant an expiry can be (see [`LATEST`]).
pub fn plausible(expiry: u64) -> bool {
    expiry <= LATEST
}

/// Now plus `secs`, when that is a [`plausible`] expiry.
pub fn after(secs: u64) -> Option<u64> {
    now().checked_add(secs).filter(|&t| plausible(t))
}

/// RFC 3339 in UTC with a `Z`, the form credential_process and
/// `AWS_CREDENTIAL_EXPIRATION` consumers parse. An instant past [`LATEST`]
/// is written as `LATEST`: humantime cannot write a five-digit year, and
/// panics when asked to.
pub fn rfc3339(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch.min(LATEST)))
        .to_string()
}

/// Minutes left as the prompt shows them: `42m`, `2h05m`.
pub fn short_left(secs: u64) -> String {
    let mins = secs / 60;
    if mins >= 60 {
        format!("{}h{:02}m", mins / 60, mins % 60)
    } else {
        format!("{mins}m")
    }
}

/// A limit as a message states it: `2 min`, `2 min 30 s`, `45 s`.
pub fn spoken(d: Duration) -> String {
    let (mins, secs) = (d.as_secs() / 60, d.as_secs() % 60);
    match (mins, secs) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("900").unwrap(), Duration::from_secs(900));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn absurd_instants_are_refused_not_overflowed() {
        assert!(after(3600).is_some_and(|t| t > now()));
        assert_eq!(after(u64::MAX), None);
        assert_eq!(after(LATEST), None);
        assert!(plausible(LATEST) && !plausible(LATEST + 1));
    }

    #[test]
    fn limits_are_spoken() {
        assert_eq!(spoken(Duration::from_secs(120)), "2 min");
        assert_eq!(spoken(Duration::from_secs(150)), "2 min 30 s");
        assert_eq!(spoken(Duration::from_secs(3)), "3 s");
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_779_000_000), "2026-05-17T06:40:00Z");
        assert_eq!(rfc3339(LATEST), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(99_999_999_999_999), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        assert!(short_left(u64::MAX).ends_with('m'));
        assert_eq!(short_left(42 * 60 + 59), "42m");
        assert_eq!(short_left(125 * 60), "2h05m");
    }
}
