//! Local calendar days in a zone: which day an instant falls on, when a day begins, and the
//! instants at which a wall-clock reading occurs.
//!
//! Invariant: every function is total. Where the wall clock skips a reading (a spring-forward
//! gap) the answer is the first instant after the gap; where it shows a reading twice (a
//! fall-back fold) both instants are reported, earlier first.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// The local date of `at` in `zone`.
pub fn local_date(at: Timestamp, zone: &TimeZone) -> Date {
    zone.to_datetime(at).date()
}

/// The instants at which `zone`'s wall clock reads `dt`: one normally, two in a fold (earlier
/// first), none in a gap.
pub fn occurrences(dt: DateTime, zone: &TimeZone) -> [Option<Timestamp>; 2] {
    match zone.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => [offset.to_timestamp(dt).ok(), None],
        AmbiguousOffset::Fold { before, after } => {
            [before.to_timestamp(dt).ok(), after.to_timestamp(dt).ok()]
        }
        AmbiguousOffset::Gap { .. } => [None, None],
    }
}

/// The first instant whose wall-clock reading in `zone` is `dt` or later: the (earlier)
/// occurrence of `dt`, or, when `dt` falls in a gap, the transition that skips it.
pub fn first_instant_from(dt: DateTime, zone: &TimeZone) -> Timestamp {
    match zone.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset.to_timestamp(dt).unwrap_or(Timestamp::MAX)
        }
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, `dt` lies before the transition; the next
            // transition from there is the one that skips `dt`.
            let probe = after.to_timestamp(dt).unwrap_or(Timestamp::MAX);
            zone.following(probe)
                .next()
                .map_or(probe, |t| t.timestamp())
        }
    }
}

/// The first instant of `date` in `zone` (local midnight, or the end of a gap that skips it).
pub fn start_of_day(date: Date, zone: &TimeZone) -> Timestamp {
    first_instant_from(date.to_datetime(Time::midnight()), zone)
}

/// The first instant of the local day after the one containing `at`.
pub fn start_of_next_day(at: Timestamp, zone: &TimeZone) -> Timestamp {
    match local_date(at, zone).tomorrow() {
        Ok(next) => start_of_day(next, zone),
        Err(_) => Timestamp::MAX,
    }
}

/// `at + d`, saturating at the end of representable time (durations come from configuration).
pub fn after(at: Timestamp, d: std::time::Duration) -> Timestamp {
    at.saturating_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn tz(name: &str) -> TimeZone {
        crate::calling::zones::zone(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_gap_reading_maps_to_the_end_of_the_gap() {
        let ny = tz("America/New_York");
        // 2026-03-08 02:30 does not exist in New York; 03:00 EDT (07:00Z) is the first instant
        // at or after it.
        let dt = date(2026, 3, 8).at(2, 30, 0, 0);
        assert_eq!(occurrences(dt, &ny), [None, None]);
        assert_eq!(first_instant_from(dt, &ny), ts("2026-03-08T07:00:00Z"));
    }

    #[test]
    fn a_fold_reading_has_two_instants() {
        let ny = tz("America/New_York");
        let dt = date(2026, 11, 1).at(1, 30, 0, 0);
        assert_eq!(
            occurrences(dt, &ny),
            [
                Some(ts("2026-11-01T05:30:00Z")),
                Some(ts("2026-11-01T06:30:00Z"))
            ]
        );
        assert_eq!(first_instant_from(dt, &ny), ts("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn days_start_at_local_midnight_or_after_a_midnight_gap() {
        let sh = tz("Asia/Shanghai");
        assert_eq!(
            start_of_next_day(ts("2026-03-08T15:59:59Z"), &sh),
            ts("2026-03-08T16:00:00Z")
        );
        assert_eq!(
            local_date(ts("2026-03-08T16:00:00Z"), &sh),
            date(2026, 3, 9)
        );
        // Santiago springs forward at local midnight: 2026-09-06 00:00 does not exist, the
        // day begins at 01:00 -03 (04:00Z).
        let scl = tz("America/Santiago");
        assert_eq!(
            start_of_day(date(2026, 9, 6), &scl),
            ts("2026-09-06T04:00:00Z")
        );
    }
}
