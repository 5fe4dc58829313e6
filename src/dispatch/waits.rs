//! Where a campaign's dispatcher spends its time when it is not sending: summed per reason in
//! memory and added to the store's `waits` table every [`FLUSH_EVERY`] of waiting and when the
//! campaign's loop ends, so `report` can say how long a campaign waited and why, after the fact
//! (a kill -9 loses at most the last few seconds of it).
//!
//! The dispatcher's waits are sequential (one loop), so the sums never count a moment twice.
//! Reasons are the gate names of [`crate::calling::gate::Gate`] where a gate holds the whole
//! campaign (`window_closed`, `min_gap`, …), and the engine's own: [`OUTAGE`], [`THROTTLED`],
//! [`RATE`], [`IN_FLIGHT`], [`REPLIES`], [`OUTCOMES`], [`TAGS`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// The endpoint is unreachable: waiting for this campaign's probe (see `crate::outage`).
pub const OUTAGE: &str = "outage";
/// Pacing below the cap after the service answered RequestLimitExceeded.
pub const THROTTLED: &str = "throttled";
/// Pacing at the rate cap (including the other campaigns' turns at the shared limiter).
pub const RATE: &str = "rate_budget";
/// Every in-flight permit taken (`rate.max_in_flight` requests waiting for replies).
pub const IN_FLIGHT: &str = "in_flight";
/// Nothing pending is due: only replies in flight are awaited.
pub const REPLIES: &str = "replies";
/// Nothing pending: calls' outcomes are awaited, and one may ask for a redial.
pub const OUTCOMES: &str = "outcomes";
/// Nothing pending: answered calls' post-call tags are awaited, and one may ask for a redial
/// (`[[redial.on_tag]]`).
pub const TAGS: &str = "post_call_tags";
/// Pending contacts wait out a retry's backoff (no gate named on them).
pub const BACKOFF: &str = "retry_backoff";
/// Every line of the agent believed busy.
pub const LINES: &str = crate::store::AGENT_LINES_BUSY;

/// PostgreSQL: nothing free for this replica: the campaign's other contacts are held by other
/// replicas (their leases).
pub const OTHER_REPLICAS: &str = crate::store::pg::gates::OTHER_REPLICAS;

/// Added to the store once this much waiting has gathered.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// What a reason means, for people (`report`). Unknown names (a gate a later build added) are
/// shown as they are.
pub fn describe(reason: &str) -> &str {
    match reason {
        "window_closed" => "calling window closed",
        "min_gap" => "per-person minimum gap",
        "daily_cap" => "per-person daily cap",
        "caller_cooldown" => "every caller number resting",
        BACKOFF => "retry backoff",
        LINES => "every line of the AI agent busy",
        RATE => "pacing at the rate cap (turns shared with other campaigns)",
        THROTTLED => "pacing slowed after throttling (RequestLimitExceeded)",
        OUTAGE => "endpoint unreachable (outage)",
        IN_FLIGHT => "rate.max_in_flight requests awaiting replies",
        REPLIES => "nothing due: awaiting replies in flight",
        OUTCOMES => "nothing due: awaiting calls' outcomes that may ask for a redial",
        TAGS => "nothing due: awaiting post-call tags that may ask for a redial",
        crate::redial::GATE => "waiting out redial.after since the last call's end",
        "not_before" => "before the campaign's start time",
        OTHER_REPLICAS => "nothing free here: the rest held by other replicas (their leases)",
        other => other,
    }
}

/// One campaign's waits not yet in the store.
#[derive(Debug, Default)]
pub struct Waits {
    unflushed: BTreeMap<String, Duration>,
    total: Duration,
}

impl Waits {
    pub fn add(&mut self, reason: &str, d: Duration) {
        if d.is_zero() {
            return;
        }
        *self.unflushed.entry(reason.to_string()).or_default() += d;
        self.total += d;
    }

    /// Whether enough waiting has gathered to be written down.
    pub fn due(&self) -> bool {
        self.total >= FLUSH_EVERY
    }

    /// Add what gathered to the store's sums and start again (kept on failure, to try later).
    pub async fn flush(&mut self, store: &Store, campaign_id: i64) -> Result<(), StoreError> {
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let add: Vec<(String, i64)> = self
            .unflushed
            .iter()
            .map(|(r, d)| (r.clone(), d.as_millis().min(i64::MAX as u128) as i64))
            .filter(|(_, ms)| *ms > 0)
            .collect();
        store.add_waits(campaign_id, add).await?;
        self.unflushed.clear();
        self.total = Duration::ZERO;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_gather_per_reason_until_enough_for_a_write() {
        let mut w = Waits::default();
        w.add(OUTAGE, Duration::from_secs(3));
        assert!(!w.due());
        w.add("window_closed", Duration::from_secs(2));
        w.add(OUTAGE, Duration::ZERO);
        assert!(w.due());
        assert_eq!(w.unflushed[OUTAGE], Duration::from_secs(3));
        assert_eq!(w.unflushed["window_closed"], Duration::from_secs(2));
    }

    #[test]
    fn every_engine_reason_reads_as_words() {
        for r in [
            OUTAGE, THROTTLED, RATE, IN_FLIGHT, REPLIES, OUTCOMES, TAGS, BACKOFF, LINES,
        ] {
            assert_ne!(describe(r), r, "{r}");
        }
        assert_eq!(describe("some_new_gate"), "some_new_gate");
    }
}
