//! The TOTP step rule. STS accepts a one-time code once: a second mint on the
//! same MFA device inside one 30 s step (two roots, a role chain, two awsmfa
//! processes at once) would send the same code and be refused (aws-vault 1110).
//! awsmfa remembers, per device, the last step whose code it sent — the step
//! number only — and does not spend a try on that step again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lock::Lock;
use crate::{log, state};

/// RFC 6238's time step, the one AWS's virtual and hardware devices use.
const PERIOD: u64 = 30;

/// Past the boundary by this much before asking again: a source on another
/// host (OpenBao) may run a clock a little behind ours.
const MARGIN: Duration = Duration::from_secs(1);

/// One MFA device's step record, held under a cross-process lock from before a
/// code is fetched until the step it was sent in is recorded, so that two
/// awsmfa processes minting on one device cannot both use one step.
pub struct Device {
    serial: String,
    last: Option<u64>,
    _lock: Option<Lock>,
}

impl Device {
    pub fn lock(serial: &str) -> anyhow::Result<Device> {
        let lock = Lock::acquire_if_writable(
            &state::totp_lock_file(serial),
            &format!("a session with the MFA device {serial}"),
            "minting without it: another awsmfa minting on this device right now may use the same code",
        )?;
        // A record more than a step ahead means the clock was set back since:
        // honouring it would block the device for as long. STS judges codes
        // by its own clock anyway.
        let last = state::read_totp_step(serial).filter(|&last| last <= now() + 1);
        Ok(Device {
            serial: serial.to_string(),
            last,
            _lock: lock,
        })
    }

    /// The last step whose code went to STS.
    pub fn last_step(&self) -> Option<u64> {
        self.last
    }

    /// Called just before the code goes to STS: accepted or refused, lost in a
    /// timeout or followed by a crash, it may have been consumed.
    pub fn record(&mut self, step: u64) {
        self.write(Some(self.last.map_or(step, |last| last.max(step))));
    }

    /// Puts back what [`Device::last_step`] said before a code STS never
    /// looked at was recorded.
    pub fn restore(&mut self, last: Option<u64>) {
        self.write(last);
    }

    fn write(&mut self, last: Option<u64>) {
        self.last = last;
        let written = match last {
            Some(step) => state::write_totp_step(&self.serial, step),
            None => state::remove_totp_step(&self.serial),
        };
        if let Err(e) = written {
            // The mint goes on; only another process's next code is unguarded.
            log::warn(format_args!(
                "could not record the TOTP step used for {}: {e:#}",
                self.serial
            ));
        }
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The step a code got now belongs to.
pub fn now() -> u64 {
    since_epoch().as_secs() / PERIOD
}

/// When a code got now would be from `last`'s step (or an earlier one): how
/// long until the next step begins.
pub fn left_in_used_step(last: Option<u64>) -> Option<Duration> {
    let next = Duration::from_secs((last? + 1) * PERIOD);
    next.checked_sub(since_epoch()).filter(|d| !d.is_zero())
}

/// Whole seconds, rounded up, for messages.
pub fn secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Sleeps, saying so, until a code from a step after `last` can be had.
pub fn wait_out(last: Option<u64>, source: &str) {
    let Some(left) = left_in_used_step(last) else {
        return;
    };
    // Past the boundary by a margin, and never more than one step: `last` is
    // at most one step ahead (see `Device::lock`).
    let wait = (left + MARGIN).min(Duration::from_secs(PERIOD) + MARGIN);
    log::info(format_args!(
        "waiting {} s for a fresh code from {source} (this step's code was already sent to STS)",
        secs(wait)
    ));
    std::thread::sleep(wait);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_step_not_yet_past_is_used() {
        let step = now();
        assert_eq!(left_in_used_step(None), None);
        assert_eq!(left_in_used_step(Some(step - 1)), None);
        let left = left_in_used_step(Some(step)).unwrap();
        assert!(left <= Duration::from_secs(PERIOD), "{left:?}");
        let left = left_in_used_step(Some(step + 1)).unwrap();
        assert!(left > Duration::from_secs(PERIOD), "{left:?}");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(secs(Duration::from_millis(16_200)), 17);
        assert_eq!(secs(Duration::from_secs(17)), 17);
    }
}
