//! Calling windows with a fixed clock: across both New York DST changes of 2026, in a zone
//! without DST, in a country with many zones, with blackout dates, and a retry that falls
//! outside the window.

use ccc_dialer::calling::gate::{self, Gate};
use ccc_dialer::calling::window::{TimeRange, Window};
use ccc_dialer::calling::zones;
use jiff::civil::{date, Date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    zones::zone(name).unwrap()
}

fn ranges(texts: &[&str]) -> Vec<TimeRange> {
    texts.iter().map(|t| TimeRange::parse(t).unwrap()).collect()
}

/// The same ranges every day.
fn daily(zone: &str, texts: &[&str]) -> Window {
    Window::new(tz(zone), Some(std::array::from_fn(|_| ranges(texts))), [])
}

/// Ranges on Sundays only.
fn sundays(zone: &str, texts: &[&str]) -> Window {
    let mut days: [Vec<TimeRange>; 7] = Default::default();
    days[6] = ranges(texts);
    Window::new(tz(zone), Some(days), [])
}

/// Shanghai office hours: Monday to Friday, 09:00-12:00 and 14:00-20:00.
fn shanghai_office(blackout: &[Date]) -> Window {
    let mut days: [Vec<TimeRange>; 7] = Default::default();
    for d in &mut days[..5] {
        *d = ranges(&["09:00-12:00", "14:00-20:00"]);
    }
    Window::new(tz("Asia/Shanghai"), Some(days), blackout.iter().copied())
}

#[test]
fn new_york_opens_at_nine_edt_on_the_day_clocks_spring_forward() {
    let w = daily("America/New_York", &["09:00-17:00"]);
    let z = [tz("America/New_York")];
    // Saturday 2026-03-07, still EST (-5): 09:00-17:00 is 14:00Z-22:00Z.
    assert_eq!(
        w.next_open(ts("2026-03-07T05:00:00Z"), &z),
        Some(ts("2026-03-07T14:00:00Z"))
    );
    assert_eq!(
        w.closes_at(ts("2026-03-07T14:00:00Z"), &z),
        Some(ts("2026-03-07T22:00:00Z"))
    );
    // Sunday 2026-03-08 is EDT (-4) from 07:00Z: 09:00 is 13:00Z, an hour earlier in UTC.
    assert_eq!(
        w.next_open(ts("2026-03-07T22:00:00Z"), &z),
        Some(ts("2026-03-08T13:00:00Z"))
    );
    assert!(!w.is_open(ts("2026-03-08T12:59:59Z"), &z));
    assert!(w.is_open(ts("2026-03-08T13:00:00Z"), &z));
    assert_eq!(
        w.closes_at(ts("2026-03-08T13:00:00Z"), &z),
        Some(ts("2026-03-08T21:00:00Z"))
    );
}

#[test]
fn skipped_spring_forward_times_are_never_open() {
    let z = [tz("America/New_York")];
    let midnight = ts("2026-03-08T05:00:00Z"); // 00:00 EST
                                               // Starts inside the gap (02:00-03:00 does not exist): opens when the gap ends, 03:00 EDT.
    let w = sundays("America/New_York", &["02:30-04:00"]);
    assert_eq!(w.next_open(midnight, &z), Some(ts("2026-03-08T07:00:00Z")));
    assert_eq!(
        w.closes_at(ts("2026-03-08T07:00:00Z"), &z),
        Some(ts("2026-03-08T08:00:00Z"))
    );
    // Ends inside the gap: open from 01:30 EST until the clock jumps.
    let w = sundays("America/New_York", &["01:30-02:30"]);
    assert_eq!(w.next_open(midnight, &z), Some(ts("2026-03-08T06:30:00Z")));
    assert_eq!(
        w.closes_at(ts("2026-03-08T06:30:00Z"), &z),
        Some(ts("2026-03-08T07:00:00Z"))
    );
    // Wholly inside the gap: does not open that day; next Sunday 02:00 EDT.
    let w = sundays("America/New_York", &["02:00-02:45"]);
    assert_eq!(w.next_open(midnight, &z), Some(ts("2026-03-15T06:00:00Z")));
}

#[test]
fn the_repeated_fall_back_hour_is_open_both_times() {
    let z = [tz("America/New_York")];
    let w = sundays("America/New_York", &["01:00-01:30"]);
    // 2026-11-01: 01:00-01:30 EDT (05:00Z-05:30Z), then again 01:00-01:30 EST (06:00Z-06:30Z).
    let midnight = ts("2026-11-01T04:00:00Z");
    assert_eq!(w.next_open(midnight, &z), Some(ts("2026-11-01T05:00:00Z")));
    assert_eq!(
        w.closes_at(ts("2026-11-01T05:00:00Z"), &z),
        Some(ts("2026-11-01T05:30:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-11-01T05:30:00Z"), &z),
        Some(ts("2026-11-01T06:00:00Z"))
    );
    assert_eq!(
        w.closes_at(ts("2026-11-01T06:00:00Z"), &z),
        Some(ts("2026-11-01T06:30:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-11-01T06:30:00Z"), &z),
        Some(ts("2026-11-08T06:00:00Z"))
    );

    let w = daily("America/New_York", &["09:00-17:00"]);
    assert_eq!(
        w.next_open(ts("2026-10-31T05:00:00Z"), &z),
        Some(ts("2026-10-31T13:00:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-10-31T21:00:00Z"), &z),
        Some(ts("2026-11-01T14:00:00Z"))
    );
    assert_eq!(
        w.closes_at(ts("2026-11-01T14:00:00Z"), &z),
        Some(ts("2026-11-01T22:00:00Z"))
    );
}

#[test]
fn is_open_agrees_with_the_open_spans_every_five_minutes_across_both_changes() {
    let w = daily(
        "America/New_York",
        &["00:30-01:30", "02:15-03:15", "09:00-17:00"],
    );
    let z = [tz("America/New_York")];
    for (from, to) in [
        ("2026-03-06T00:00:00Z", "2026-03-10T00:00:00Z"),
        ("2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z"),
    ] {
        let (from, to) = (ts(from), ts(to));
        let spans = w.open_times(from, &z);
        let mut t = from;
        while t < to {
            assert_eq!(spans.is_open(t), w.is_open(t, &z), "at {t}");
            let next = w.next_open(t, &z).unwrap();
            assert!(next >= t && w.is_open(next, &z), "next_open({t}) = {next}");
            t = t.checked_add(SignedDuration::from_mins(5)).unwrap();
        }
    }
}

#[test]
fn shanghai_has_no_dst_and_a_lunch_break() {
    let w = shanghai_office(&[]);
    let z = [tz("Asia/Shanghai")];
    // Friday 2026-03-06 12:30 CST (+8) = 04:30Z: lunch; reopens 14:00 CST.
    assert_eq!(
        w.next_open(ts("2026-03-06T04:30:00Z"), &z),
        Some(ts("2026-03-06T06:00:00Z"))
    );
    assert_eq!(
        w.closes_at(ts("2026-03-06T06:00:00Z"), &z),
        Some(ts("2026-03-06T12:00:00Z"))
    );
    // Friday 20:00: closed for the weekend until Monday 09:00 CST.
    assert_eq!(
        w.next_open(ts("2026-03-06T12:00:00Z"), &z),
        Some(ts("2026-03-09T01:00:00Z"))
    );
    // The same in July: no DST, same UTC hours.
    assert_eq!(
        w.next_open(ts("2026-07-03T12:00:00Z"), &z),
        Some(ts("2026-07-06T01:00:00Z"))
    );
    let g = gate::window(&w, ts("2026-03-06T12:00:00Z"), &z).unwrap_err();
    assert_eq!(g.as_str(), "window_closed");
    assert_eq!(
        g.to_string(),
        "waiting for window until 2026-03-09 09:00 CST"
    );
    assert_eq!(gate::window(&w, ts("2026-03-09T01:00:00Z"), &z), Ok(()));
}

#[test]
fn blackout_dates_close_whole_local_days() {
    let w = shanghai_office(&[date(2026, 3, 9)]);
    let z = [tz("Asia/Shanghai")];
    assert_eq!(
        w.next_open(ts("2026-03-06T12:00:00Z"), &z),
        Some(ts("2026-03-10T01:00:00Z"))
    );
    // Monday's 10:00 CST is 02:00Z: a blackout by the local date, not the UTC one.
    assert!(!w.is_open(ts("2026-03-09T02:00:00Z"), &z));
    // A window without hours and with blackout dates is open except on those dates.
    let w = Window::new(tz("Asia/Shanghai"), None, [date(2026, 10, 1)]);
    assert!(w.is_open(ts("2026-09-30T15:59:59Z"), &z));
    assert!(!w.is_open(ts("2026-09-30T16:00:00Z"), &z));
    // Searches reach past their first few days when they must.
    assert_eq!(
        w.closes_at(ts("2026-09-23T00:00:00Z"), &z),
        Some(ts("2026-09-30T16:00:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-09-30T16:00:00Z"), &z),
        Some(ts("2026-10-01T16:00:00Z"))
    );
}

#[test]
fn a_retry_due_outside_the_window_moves_to_the_next_opening() {
    let w = shanghai_office(&[]);
    let z = [tz("Asia/Shanghai")];
    // Failed at Friday 19:50 CST; a 30 minute backoff puts the retry at 20:20, after closing.
    let retry_at = ts("2026-03-06T11:50:00Z")
        .checked_add(SignedDuration::from_mins(30))
        .unwrap();
    assert_eq!(
        gate::window(&w, retry_at, &z),
        Err(Gate::WindowClosed {
            zone: tz("Asia/Shanghai"),
            until: Some(ts("2026-03-09T01:00:00Z"))
        })
    );
    // A retry inside the window stays where it is.
    assert_eq!(
        w.next_open(ts("2026-03-06T11:00:00Z"), &z),
        Some(ts("2026-03-06T11:00:00Z"))
    );
}

#[test]
fn callout_rule_not_work_time_moves_to_the_next_opening_even_while_open() {
    let w = shanghai_office(&[]);
    let z = [tz("Asia/Shanghai")];
    // Refused by the service at Friday 10:00 CST although our window is open: the next
    // opening that starts later is 14:00 CST.
    assert_eq!(
        w.next_opening_after(ts("2026-03-06T02:00:00Z"), &z),
        Some(ts("2026-03-06T06:00:00Z"))
    );
}

#[test]
fn us_numbers_wait_until_the_window_is_open_in_every_us_zone() {
    let w = daily("America/New_York", &["09:00-20:00"]);
    let campaign = tz("America/New_York");
    let us = zones::candidates(None, "+16502530000", &campaign);
    let z = us.as_slice();
    assert_eq!(z.len(), 8);
    // March 10 (after the change): Honolulu (-10, no DST) reaches 09:00 last, at 19:00Z;
    // New York (EDT, -4) reaches 20:00 first, at 00:00Z. Open 15:00-20:00 in New York.
    assert!(!w.is_open(ts("2026-03-10T18:59:59Z"), z));
    assert!(w.is_open(ts("2026-03-10T19:00:00Z"), z));
    assert!(w.is_open(ts("2026-03-10T23:59:59Z"), z));
    assert!(!w.is_open(ts("2026-03-11T00:00:00Z"), z));
    assert_eq!(
        w.closes_at(ts("2026-03-10T19:00:00Z"), z),
        Some(ts("2026-03-11T00:00:00Z"))
    );
    assert_eq!(
        w.next_open(ts("2026-03-11T00:00:00Z"), z),
        Some(ts("2026-03-11T19:00:00Z"))
    );
    let g = gate::window(&w, ts("2026-03-11T00:00:00Z"), z).unwrap_err();
    assert_eq!(
        g,
        Gate::WindowClosed {
            zone: tz("Pacific/Honolulu"),
            until: Some(ts("2026-03-11T19:00:00Z"))
        }
    );
    assert_eq!(
        g.to_string(),
        "waiting for window until 2026-03-11 09:00 HST"
    );
    // January (standard time): New York's 20:00 EST is 01:00Z, an hour later.
    assert!(w.is_open(ts("2026-01-16T00:59:59Z"), z));
    assert!(!w.is_open(ts("2026-01-16T01:00:00Z"), z));
    assert_eq!(
        w.next_open(ts("2026-01-16T01:00:00Z"), z),
        Some(ts("2026-01-16T19:00:00Z"))
    );
}

#[test]
fn windows_whose_zones_never_overlap_have_no_opening() {
    let w = daily("America/New_York", &["09:00-10:00"]);
    let z = [tz("America/New_York"), tz("Pacific/Honolulu")];
    let at = ts("2026-06-01T13:30:00Z"); // 09:30 in New York, 03:30 in Honolulu
    assert_eq!(w.next_open(at, &z), None);
    let g = gate::window(&w, at, &z).unwrap_err();
    assert_eq!(g.until(), None);
    assert_eq!(
        g.to_string(),
        "window closed in Pacific/Honolulu, with no opening in the next 31 days"
    );
}

#[test]
fn an_unrestricted_window_is_always_open_and_uses_the_campaign_zone_by_default() {
    let w = Window::always(tz("Asia/Shanghai"));
    let at = ts("2026-03-08T03:00:00Z");
    assert!(w.is_open(at, &[]));
    assert_eq!(w.next_open(at, &[]), Some(at));
    assert_eq!(w.closes_at(at, &[]), None);
    assert_eq!(gate::window(&w, at, &[]), Ok(()));
    // No candidate zones: the window's own zone decides.
    let w = shanghai_office(&[]);
    assert!(!w.is_open(ts("2026-03-06T04:30:00Z"), &[]));
}

#[test]
fn ranges_parse_and_print_as_written() {
    assert_eq!(
        TimeRange::parse("09:00-12:00").unwrap().to_string(),
        "09:00-12:00"
    );
    assert_eq!(
        TimeRange::parse(" 9:30 - 24:00 ").unwrap().to_string(),
        "09:30-24:00"
    );
    for bad in [
        "22:00-02:00",
        "12:00-12:00",
        "9-12",
        "09:00",
        "24:00-24:00",
        "09:60-10:00",
        "25:00-26:00",
    ] {
        assert!(TimeRange::parse(bad).is_err(), "{bad}");
    }
}
