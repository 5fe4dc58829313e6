//! A campaign's calling window: allowed local-time ranges per weekday, its zone, and blackout
//! dates. Pure: the instant is always an argument.
//!
//! What "open" means: at instant `t`, in zone `z`, read the wall clock (`t` in `z`); the window
//! is open when that local date is not a blackout date and the local time lies in one of the
//! ranges of that weekday (`[start, end)`, minute precision, `24:00` allowed as an end). A
//! contact whose zone is ambiguous may be called only when the window is open in every one of
//! its candidate zones at once.
//!
//! Daylight-saving time, deliberately (this falls out of reading the wall clock, and is
//! tested):
//! - spring forward: wall times that do not exist are never open. A range that starts inside
//!   the gap opens at the first instant after it (`02:30-04:00` on 2026-03-08 in New York opens
//!   at 03:00 EDT); a range wholly inside the gap does not open that day;
//! - fall back: wall times that occur twice are open both times (`01:00-01:30` on 2026-11-01 in
//!   New York is open 01:00-01:30 EDT and again 01:00-01:30 EST): calling hours are about what
//!   the callee's clock shows.
//!
//! Searches ([`Window::next_open`], [`Window::closes_at`]) look [`SEARCH_DAYS`] ahead: `None`
//! from `next_open` means "no opening within that horizon" (windows whose candidate zones never
//! overlap, or long blackouts); ask again later.
//!
//! Invariants: ranges within a day are sorted and merged, each `start < end <= 24:00`;
//! `is_open` agrees with the spans of [`OpenTimes`] at every instant (tested across both
//! New York changes of 2026).

use std::collections::BTreeSet;
use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::day;

/// How far ahead searches look.
pub const SEARCH_DAYS: i64 = 31;
/// Searches look this far first.
const SHORT_SEARCH_DAYS: i64 = 3;

/// Weekday keys, Monday first, as written in the configuration.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const DAY_SECONDS: u32 = 86_400;

/// One allowed range of local time within a day: `[start, end)` in seconds from midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeRange {
    start: u32,
    end: u32,
}

impl TimeRange {
    /// `"09:00-12:00"`. `24:00` may end a range; a range may not pass midnight (write it as
    /// two ranges on two days). The error is what was expected, for the configuration message.
    pub fn parse(text: &str) -> Result<TimeRange, String> {
        const SHAPE: &str = "a range \"HH:MM-HH:MM\" of local time (e.g. \"09:00-12:00\")";
        let (a, b) = text.split_once('-').ok_or_else(|| SHAPE.to_string())?;
        let (Some(start), Some(end)) = (clock(a), clock(b)) else {
            return Err(SHAPE.into());
        };
        if start >= DAY_SECONDS {
            return Err(SHAPE.into());
        }
        if end <= start {
            return Err(
                "a range whose start is before its end; a range past midnight is two ranges, \
                 e.g. \"22:00-24:00\" on one day and \"00:00-02:00\" on the next"
                    .into(),
            );
        }
        Ok(TimeRange { start, end })
    }

    fn contains(self, second_of_day: u32) -> bool {
        self.start <= second_of_day && second_of_day < self.end
    }
}

/// `"9:05"`, `"09:05"`, `"24:00"` → seconds from midnight.
fn clock(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let ok =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(h, 2) || m.len() != 2 || !ok(m, 2) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(DAY_SECONDS),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| (s / 3600, s % 3600 / 60);
        let ((a, b), (c, d)) = (hm(self.start), hm(self.end));
        write!(f, "{a:02}:{b:02}-{c:02}:{d:02}")
    }
}

/// A campaign's calling window. [`Window::always`] is open at every instant.
#[derive(Debug, Clone)]
pub struct Window {
    zone: TimeZone,
    /// Per weekday, Monday first; `None` = any time of day, every day.
    hours: Option<Box<[Vec<TimeRange>; 7]>>,
    blackout: BTreeSet<Date>,
}

impl Window {
    /// Open at every instant; `zone` is the campaign's zone (the fallback candidate).
    pub fn always(zone: TimeZone) -> Window {
        Window {
            zone,
            hours: None,
            blackout: BTreeSet::new(),
        }
    }

    /// `hours`: per weekday, Monday first (an empty day is closed all day), or `None` for any
    /// time; `blackout`: local dates closed all day.
    pub fn new(
        zone: TimeZone,
        hours: Option<[Vec<TimeRange>; 7]>,
        blackout: impl IntoIterator<Item = Date>,
    ) -> Window {
        let hours = hours.map(|mut days| {
            for ranges in &mut days {
                ranges.sort();
                let mut merged: Vec<TimeRange> = Vec::with_capacity(ranges.len());
                for r in ranges.drain(..) {
                    match merged.last_mut() {
                        Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                        _ => merged.push(r),
                    }
                }
                *ranges = merged;
            }
            Box::new(days)
        });
        Window {
            zone,
            hours,
            blackout: blackout.into_iter().collect(),
        }
    }

    /// The campaign's zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The hours per weekday (Monday first), `None` for any time.
    pub fn hours_by_day(&self) -> Option<[Vec<TimeRange>; 7]> {
        self.hours.as_deref().cloned()
    }

    /// The blackout dates, in order.
    pub fn blackout_dates(&self) -> Vec<Date> {
        self.blackout.iter().copied().collect()
    }

    /// No hours and no blackout dates: always open.
    pub fn is_unrestricted(&self) -> bool {
        self.hours.is_none() && self.blackout.is_empty()
    }

    /// Whether some weekday has a range (a window with hours but none is never open).
    pub fn has_hours(&self) -> bool {
        self.hours
            .as_ref()
            .is_none_or(|days| days.iter().any(|d| !d.is_empty()))
    }

    fn candidates<'a>(&'a self, zones: &'a [TimeZone]) -> &'a [TimeZone] {
        if zones.is_empty() {
            std::slice::from_ref(&self.zone)
        } else {
            zones
        }
    }

    /// Open at `at` in every zone of `zones` (the campaign's zone when `zones` is empty).
    pub fn is_open(&self, at: Timestamp, zones: &[TimeZone]) -> bool {
        self.closed_in(at, zones).is_none()
    }

    /// The first of `zones` in which the window is closed at `at`, if any.
    pub fn closed_in<'a>(&'a self, at: Timestamp, zones: &'a [TimeZone]) -> Option<&'a TimeZone> {
        if self.is_unrestricted() {
            return None;
        }
        self.candidates(zones)
            .iter()
            .find(|z| !self.is_open_in(at, z))
    }

    fn is_open_in(&self, at: Timestamp, zone: &TimeZone) -> bool {
        let local = zone.to_datetime(at);
        if self.blackout.contains(&local.date()) {
            return false;
        }
        let Some(days) = &self.hours else {
            return true;
        };
        let t = local.time();
        let second = t.hour() as u32 * 3600 + t.minute() as u32 * 60 + t.second() as u32;
        days[weekday(local.date())]
            .iter()
            .any(|r| r.contains(second))
    }

    /// The earliest instant at or after `at` when the window is open in every zone at once, or
    /// `None` if there is none within [`SEARCH_DAYS`].
    pub fn next_open(&self, at: Timestamp, zones: &[TimeZone]) -> Option<Timestamp> {
        if self.is_open(at, zones) {
            return Some(at);
        }
        self.search(at, zones, |o| o.next_open(at))
    }

    /// When the window, open at `at`, next closes in some zone; `None` if it is closed at `at`
    /// or stays open throughout [`SEARCH_DAYS`].
    pub fn closes_at(&self, at: Timestamp, zones: &[TimeZone]) -> Option<Timestamp> {
        if self.is_unrestricted() || !self.is_open(at, zones) {
            return None;
        }
        self.search(at, zones, |o| o.closes_at(at))
    }

    /// The start of the first opening that begins after `at`: where to move a contact the
    /// service refused as outside its calling hours (`CalloutRuleNotWorkTime`) although our
    /// window is open. `None` if there is none within [`SEARCH_DAYS`].
    pub fn next_opening_after(&self, at: Timestamp, zones: &[TimeZone]) -> Option<Timestamp> {
        self.search(at, zones, |o| o.next_opening_after(at))
    }

    /// Ask `question` of the open spans over a short horizon first (most answers lie within
    /// days, and the cost grows with the horizon), then over [`SEARCH_DAYS`]. An answer found
    /// within the short horizon is the answer: spans are exact up to their horizon.
    fn search<T>(
        &self,
        at: Timestamp,
        zones: &[TimeZone],
        question: impl Fn(&OpenTimes) -> Option<T>,
    ) -> Option<T> {
        question(&self.open_times_for(at, zones, SHORT_SEARCH_DAYS))
            .or_else(|| question(&self.open_times_for(at, zones, SEARCH_DAYS)))
    }

    /// The open spans, in every zone at once, from `from` for [`SEARCH_DAYS`]: compute once per
    /// set of zones and ask it many questions (the engine can cache it per country).
    pub fn open_times(&self, from: Timestamp, zones: &[TimeZone]) -> OpenTimes {
        self.open_times_for(from, zones, SEARCH_DAYS)
    }

    fn open_times_for(&self, from: Timestamp, zones: &[TimeZone], days: i64) -> OpenTimes {
        let until = from
            .checked_add(SignedDuration::from_hours(24 * days))
            .unwrap_or(Timestamp::MAX);
        let mut spans = vec![(from, until)];
        if !self.is_unrestricted() {
            for zone in self.candidates(zones) {
                spans = intersect(&spans, &self.spans_in(zone, from, until));
                if spans.is_empty() {
                    break;
                }
            }
        }
        OpenTimes { from, until, spans }
    }

    /// Open spans in one zone within `[from, until)`.
    ///
    /// Openness can change only where the wall clock reaches a range boundary or midnight, or
    /// at a change of offset; between two such cuts the wall clock runs without reaching one,
    /// so openness is constant and is read at the start of each piece.
    fn spans_in(
        &self,
        zone: &TimeZone,
        from: Timestamp,
        until: Timestamp,
    ) -> Vec<(Timestamp, Timestamp)> {
        let mut cuts = vec![from];
        let first = day::local_date(from, zone).yesterday().unwrap_or(Date::MIN);
        let last = day::local_date(until, zone).tomorrow().unwrap_or(Date::MAX);
        let mut d = first;
        while d <= last {
            let ranges = self.hours.as_ref().map_or(&[][..], |h| &h[weekday(d)][..]);
            let boundaries = std::iter::once(0).chain(ranges.iter().flat_map(|r| [r.start, r.end]));
            for second in boundaries.filter(|s| *s < DAY_SECONDS) {
                let Ok(t) = Time::new((second / 3600) as i8, (second % 3600 / 60) as i8, 0, 0)
                else {
                    continue;
                };
                for at in day::occurrences(d.to_datetime(t), zone)
                    .into_iter()
                    .flatten()
                {
                    if from < at && at < until {
                        cuts.push(at);
                    }
                }
            }
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        cuts.extend(
            zone.following(from)
                .map(|t| t.timestamp())
                .take_while(|t| *t < until),
        );
        cuts.sort();
        cuts.dedup();
        let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
        for (i, &start) in cuts.iter().enumerate() {
            let end = cuts.get(i + 1).copied().unwrap_or(until);
            if self.is_open_in(start, zone) {
                match spans.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => spans.push((start, end)),
                }
            }
        }
        spans
    }
}

fn weekday(d: Date) -> usize {
    d.weekday().to_monday_zero_offset() as usize
}

/// The intersection of two sorted lists of disjoint `[start, end)` spans, adjacent pieces
/// merged.
fn intersect(
    a: &[(Timestamp, Timestamp)],
    b: &[(Timestamp, Timestamp)],
) -> Vec<(Timestamp, Timestamp)> {
    let (mut i, mut j) = (0, 0);
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => out.push((start, end)),
            }
        }
        if a[i].1 <= b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The open spans of a window in a set of zones over `[from, until)` (see
/// [`Window::open_times`]). Answers are about instants in that range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTimes {
    from: Timestamp,
    until: Timestamp,
    spans: Vec<(Timestamp, Timestamp)>,
}

impl OpenTimes {
    /// `[from, until)`: the instants these answers are about.
    pub fn range(&self) -> (Timestamp, Timestamp) {
        (self.from, self.until)
    }

    /// The open spans, sorted, disjoint, not adjacent.
    pub fn spans(&self) -> &[(Timestamp, Timestamp)] {
        &self.spans
    }

    pub fn is_open(&self, at: Timestamp) -> bool {
        self.spans.iter().any(|(s, e)| *s <= at && at < *e)
    }

    /// The earliest open instant at or after `at`.
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        self.spans
            .iter()
            .find(|(_, e)| *e > at)
            .map(|(s, _)| (*s).max(at))
    }

    /// The end of the span containing `at`, unless that span runs to the end of the range.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        self.spans
            .iter()
            .find(|(s, e)| *s <= at && at < *e)
            .and_then(|(_, e)| (*e < self.until).then_some(*e))
    }

    /// The start of the first span that begins after `at`.
    pub fn next_opening_after(&self, at: Timestamp) -> Option<Timestamp> {
        self.spans.iter().find(|(s, _)| *s > at).map(|(s, _)| *s)
    }
}
