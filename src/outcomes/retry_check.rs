//! The retry after `InternalError*` with outcome tracking on: the service may have created the
//! call before failing, so the retry waits until the call records rule that call out.
//!
//! The store enrols every attempt that failed with `InternalError*` (a `retry_check`, like an
//! in-doubt request's reconciliation); while one is open, `begin_attempt_checked` refuses the
//! contact's next attempt and the dispatcher holds it (gate `call_record_check`) until the
//! check can conclude: `reconcile_after` after the failed send. The outcome tracker looks the
//! callee up by phone and time as for a lost reply: one matching record and the contact is
//! `placed` with that session (never called again); none by `reconcile_after` (an answer read
//! in full) and the hold ends, the retry goes out; two or more, or records that cannot be read
//! in full, and the contact is `unknown` with the reason. If outcome tracking stops (an
//! account-level error on the query), the holds end with it: retries go as without tracking
//! (the failed try's dial still holds `min_gap`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Shared by a campaign's engine and the outcome tracker.
#[derive(Debug)]
pub struct RetryChecks {
    on: AtomicBool,
    /// How long after the failed send the check can conclude: `reconcile_after`, and never
    /// before the latest start a matching record may have ([`super::reconcile::AFTER_SECS`]).
    pub hold: Duration,
    /// A contact still held past that is looked at again this much later (`check_every`).
    pub recheck: Duration,
}

impl RetryChecks {
    pub fn new(on: bool, reconcile_after: Duration, check_every: Duration) -> RetryChecks {
        let earliest = Duration::from_secs(super::reconcile::AFTER_SECS as u64 + 1);
        RetryChecks {
            on: AtomicBool::new(on),
            hold: reconcile_after.max(earliest),
            recheck: check_every.max(Duration::from_secs(1)),
        }
    }

    /// Off: retries after `InternalError*` are not held (outcome tracking is off or stopped).
    pub fn off() -> RetryChecks {
        RetryChecks::new(false, Duration::ZERO, Duration::ZERO)
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Outcome tracking stopped: hold no retry any longer.
    pub fn stop(&self) {
        self.on.store(false, Ordering::Relaxed);
    }

    /// Until when (unix ms) a contact whose failed try was sent at `sent_ms` is held: when the
    /// check can conclude, or (past that, the tracker behind) `recheck` from now.
    pub fn held_until(&self, sent_ms: i64, now_ms: i64) -> i64 {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let until = sent_ms.saturating_add(ms(self.hold));
        if until > now_ms {
            until
        } else {
            now_ms.saturating_add(ms(self.recheck))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_retry_waits_until_the_check_can_conclude() {
        let r = RetryChecks::new(true, Duration::from_secs(7200), Duration::from_secs(30));
        assert!(r.is_on());
        assert_eq!(r.held_until(1_000, 2_000), 1_000 + 7_200_000);
        // Past it already (the tracker is behind): looked at again check_every later.
        assert_eq!(r.held_until(1_000, 9_000_000), 9_030_000);
        // Never before a record of a call started 120 s after the send could be seen.
        let r = RetryChecks::new(true, Duration::from_secs(10), Duration::ZERO);
        assert_eq!(r.held_until(0, 1), 121_000);
        assert_eq!(r.held_until(0, 121_000), 122_000);
        r.stop();
        assert!(!r.is_on());
        assert!(!RetryChecks::off().is_on());
    }
}
