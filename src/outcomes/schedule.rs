//! When a session is asked about, and when the dialer stops asking. Pure: times are inputs.
//!
//! A record exists only once the call ended, so a session is first asked about
//! `first_check_after` after its request was sent, then every `check_every`, until
//! `give_up_after` after the send (outcome `no_record`). Sessions are asked about in batches of
//! up to 100 SessionIds, oldest send first, so that each request's window (five minutes before
//! its oldest send, to now) stays short.

use super::cdr::{MAX_SPAN_SECS, PAGE_SIZE};
use crate::store::DueSession;

/// What to do with a session a check did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Ask again at this unix ms.
    At(i64),
    /// Stop asking: outcome `no_record`.
    GiveUp,
}

/// The next step for a session sent at `sent_ms` that the check at `now_ms` did not find.
pub fn after_miss(sent_ms: i64, now_ms: i64, check_every_ms: i64, give_up_ms: i64) -> Next {
    let deadline = sent_ms.saturating_add(give_up_ms);
    if now_ms >= deadline {
        return Next::GiveUp;
    }
    // The last check falls on the deadline itself, so `give_up_after` is honoured exactly.
    Next::At(now_ms.saturating_add(check_every_ms).min(deadline))
}

/// How long after a whole second a check for a busy agent's calls is sent: a margin for the
/// clocks' difference (records become visible at whole seconds, see [`busy_check_at`]).
pub const BUSY_CHECK_OFFSET_MS: i64 = 20;

/// While contacts wait for an agent's line, when the tracker next asks about the calls in
/// progress: just after the next whole (Unix) second after `now_ms`. A record gives its call's
/// end as a whole second and becomes visible at a whole second (the stand-in's records at the
/// second after the call, the service's some seconds later): a check sent just after one
/// finds every record visible by then, where checks every second at any phase find each half
/// a second later on average, and checks more often cost more requests for the same records.
/// One request a second at most (for up to 100 calls), only while lines are full.
pub fn busy_check_at(now_ms: i64) -> i64 {
    (now_ms - BUSY_CHECK_OFFSET_MS).div_euclid(1000) * 1000 + 1000 + BUSY_CHECK_OFFSET_MS
}

/// Split due sessions (any order) into request batches: at most [`PAGE_SIZE`] each, oldest
/// send first, and never two sessions sent further apart than one window can span.
pub fn batches(mut due: Vec<DueSession>) -> Vec<Vec<DueSession>> {
    due.sort_by_key(|d| (d.sent_at, d.attempt_id));
    let mut out: Vec<Vec<DueSession>> = Vec::new();
    // Keep a day of the span for the calls' own length.
    let span_ms = (MAX_SPAN_SECS - 24 * 3600) * 1000;
    for d in due {
        match out.last_mut() {
            Some(b) if b.len() < PAGE_SIZE && d.sent_at - b[0].sent_at <= span_ms => b.push(d),
            _ => out.push(vec![d]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: i64, sent_at: i64) -> DueSession {
        DueSession {
            attempt_id: id,
            contact_id: id,
            session_id: format!("s-{id}"),
            sent_at,
            checks: 0,
            due_at: sent_at,
        }
    }

    #[test]
    fn a_missed_session_is_asked_again_until_give_up_after() {
        let (every, give_up) = (30_000, 24 * 3_600_000);
        assert_eq!(after_miss(0, 30_000, every, give_up), Next::At(60_000));
        // The last check lands on the deadline, not after it.
        assert_eq!(
            after_miss(0, give_up - 10_000, every, give_up),
            Next::At(give_up)
        );
        assert_eq!(after_miss(0, give_up, every, give_up), Next::GiveUp);
        assert_eq!(after_miss(0, give_up + 5, every, give_up), Next::GiveUp);
    }

    #[test]
    fn a_busy_agents_calls_are_asked_about_just_after_each_whole_second() {
        let off = BUSY_CHECK_OFFSET_MS;
        assert_eq!(busy_check_at(5_000), 5_000 + off);
        assert_eq!(busy_check_at(5_000 + off - 1), 5_000 + off);
        // Never now itself: the next one.
        assert_eq!(busy_check_at(5_000 + off), 6_000 + off);
        assert_eq!(busy_check_at(5_999), 6_000 + off);
        assert_eq!(busy_check_at(-1), off);
    }

    #[test]
    fn batches_hold_at_most_100_oldest_first() {
        let due_list: Vec<DueSession> = (0..250).rev().map(|i| due(i, i * 1000)).collect();
        let b = batches(due_list);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        assert_eq!(b[0][0].attempt_id, 0);
        assert_eq!(b[2][49].attempt_id, 249);
        assert!(batches(vec![]).is_empty());
    }

    #[test]
    fn sessions_too_far_apart_for_one_window_go_in_separate_batches() {
        let day = 24 * 3_600_000;
        let b = batches(vec![due(1, 0), due(2, 10 * day), due(3, 95 * day)]);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].len(), 2);
        assert_eq!(b[1][0].attempt_id, 3);
    }
}
