//! Why a contact is waiting, and the pure per-person checks that produce some of the reasons.
//!
//! A [`Gate`] names what holds a contact back and, where it is known, when it lifts. `as_str`
//! names are stable (status output, the serve API, the store); `Display` is for people.
//!
//! Invariant: a check returns the gate holding the contact at `now` with `until` = the earliest
//! instant at which *that check* passes, everything it looks at considered together (a per-day
//! cap that lifts at midnight, then a minimum gap that still holds, gives the later instant).

use std::fmt;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::day;
use super::window::{Window, SEARCH_DAYS};
use super::zones;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Outside the calling window in `zone` (the zone that opens last); `until` is the next
    /// opening in every candidate zone, `None` if none within the search horizon.
    WindowClosed {
        zone: TimeZone,
        until: Option<Timestamp>,
    },
    /// On a do-not-call list: final, never lifts.
    Dnc,
    /// The number was called too recently (across all campaigns).
    MinGap { until: Timestamp },
    /// The number has had its calls for its local day (across all campaigns).
    DailyCap { until: Timestamp },
    /// Every caller number for this contact is resting (cool-down or daily cap).
    CallerCooldown { until: Timestamp },
    /// Waiting out the backoff before a retry.
    RetryBackoff { until: Timestamp },
    /// The campaign is paused by the operator.
    CampaignPaused,
    /// Waiting for the shared request budget (rate limit).
    RateBudget { until: Option<Timestamp> },
    /// The campaign ended at `at` (`not_after`); the contact will not be called.
    NotAfter { at: Timestamp },
    /// Every line of the AI agent is believed busy; `until` is when one is likely free.
    AgentLinesBusy { until: Timestamp },
    /// The campaign starts at `until` (`not_before`): nothing is sent before.
    NotBefore { until: Timestamp },
}

impl Gate {
    /// [`Display`](fmt::Display), with every instant in `zone` as well as UTC (the campaign's
    /// zone: an operator in Shanghai reads "03:00 CST", not only "19:00 UTC").
    pub fn describe_in(&self, zone: &TimeZone) -> String {
        let at = |t: &Timestamp| local_and_utc(*t, zone);
        match self {
            Gate::WindowClosed {
                zone: z,
                until: Some(u),
            } => format!("waiting for window until {}", local_and_utc(*u, z)),
            Gate::MinGap { until } => format!(
                "waiting for the minimum gap between calls to this number until {}",
                at(until)
            ),
            Gate::DailyCap { until } => format!(
                "calls to this number for the day used up, waiting until {}",
                at(until)
            ),
            Gate::CallerCooldown { until } => {
                format!("every caller number resting until {}", at(until))
            }
            Gate::RetryBackoff { until } => format!("retry backoff until {}", at(until)),
            Gate::RateBudget { until: Some(u) } => {
                format!("waiting for the rate budget until {}", at(u))
            }
            Gate::NotAfter { at: end } => format!("campaign ended at {}", at(end)),
            Gate::AgentLinesBusy { until } => format!(
                "every line of the AI agent busy, one likely free at {}",
                at(until)
            ),
            Gate::NotBefore { until } => format!(
                "waiting for the campaign's start (not_before) at {}",
                at(until)
            ),
            other => other.to_string(),
        }
    }

    /// Every stable name, in declaration order.
    pub const NAMES: [&'static str; 11] = [
        "window_closed",
        "dnc",
        "min_gap",
        "daily_cap",
        "caller_cooldown",
        "retry_backoff",
        "campaign_paused",
        "rate_budget",
        "not_after",
        "agent_lines_busy",
        "not_before",
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Gate::WindowClosed { .. } => "window_closed",
            Gate::Dnc => "dnc",
            Gate::MinGap { .. } => "min_gap",
            Gate::DailyCap { .. } => "daily_cap",
            Gate::CallerCooldown { .. } => "caller_cooldown",
            Gate::RetryBackoff { .. } => "retry_backoff",
            Gate::CampaignPaused => "campaign_paused",
            Gate::RateBudget { .. } => "rate_budget",
            Gate::NotAfter { .. } => "not_after",
            Gate::AgentLinesBusy { .. } => "agent_lines_busy",
            Gate::NotBefore { .. } => "not_before",
        }
    }

    /// When the contact may be eligible again, if that is known (never for `Dnc` and
    /// `NotAfter`).
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            Gate::WindowClosed { until, .. } | Gate::RateBudget { until } => *until,
            Gate::MinGap { until }
            | Gate::DailyCap { until }
            | Gate::CallerCooldown { until }
            | Gate::RetryBackoff { until }
            | Gate::AgentLinesBusy { until }
            | Gate::NotBefore { until } => Some(*until),
            Gate::Dnc | Gate::CampaignPaused | Gate::NotAfter { .. } => None,
        }
    }

    /// Final: the contact will never pass this gate (`skipped`/`expired`, not `pending`).
    pub fn is_final(&self) -> bool {
        matches!(self, Gate::Dnc | Gate::NotAfter { .. })
    }
}

/// `2026-03-09 09:00 EDT`.
fn local(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// An instant for people, in UTC and in `zone`: `2026-11-30 19:00:00 UTC (2026-12-01 03:00:00
/// CST Asia/Shanghai)`; UTC alone when the zone is UTC.
pub fn local_and_utc(at: Timestamp, zone: &TimeZone) -> String {
    let utc = at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let name = zones::name(zone);
    if name == "UTC" || name == "Etc/UTC" {
        return utc;
    }
    let here = at
        .to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string();
    format!("{utc} ({here} {name})")
}

/// An instant as RFC 3339 with the offset of `zone` (`2026-12-01T03:00:00+08:00`), for JSON
/// beside the UTC field.
pub fn rfc3339_in(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let utc = |at: &Timestamp| local(*at, &TimeZone::UTC);
        match self {
            Gate::WindowClosed {
                zone,
                until: Some(u),
            } => write!(f, "waiting for window until {}", local(*u, zone)),
            Gate::WindowClosed { zone, until: None } => write!(
                f,
                "window closed in {}, with no opening in the next {SEARCH_DAYS} days",
                zones::name(zone)
            ),
            Gate::Dnc => f.write_str("on a do-not-call list"),
            Gate::MinGap { until } => write!(
                f,
                "waiting for the minimum gap between calls to this number until {}",
                utc(until)
            ),
            Gate::DailyCap { until } => write!(
                f,
                "calls to this number for the day used up, waiting until {}",
                utc(until)
            ),
            Gate::CallerCooldown { until } => {
                write!(f, "every caller number resting until {}", utc(until))
            }
            Gate::RetryBackoff { until } => write!(f, "retry backoff until {}", utc(until)),
            Gate::CampaignPaused => f.write_str("campaign paused"),
            Gate::RateBudget { until: Some(u) } => {
                write!(f, "waiting for the rate budget until {}", utc(u))
            }
            Gate::RateBudget { until: None } => f.write_str("waiting for the rate budget"),
            Gate::NotAfter { at } => write!(f, "campaign ended at {}", utc(at)),
            Gate::AgentLinesBusy { until } => write!(
                f,
                "every line of the AI agent busy, one likely free at {}",
                utc(until)
            ),
            Gate::NotBefore { until } => write!(
                f,
                "waiting for the campaign's start (not_before) at {}",
                utc(until)
            ),
        }
    }
}

/// The window check for a contact with candidate `zones`: `Ok` when open in all of them at
/// `at`, else [`Gate::WindowClosed`] naming the zone whose opening the contact waits for.
pub fn window(window: &Window, at: Timestamp, zones: &[TimeZone]) -> Result<(), Gate> {
    let Some(closed) = window.closed_in(at, zones) else {
        return Ok(());
    };
    let until = window.next_open(at, zones);
    // The zone still closed one second before the joint opening is the one that opens last.
    let binding = until
        .and_then(|u| u.checked_sub(jiff::SignedDuration::from_secs(1)).ok())
        .and_then(|before| window.closed_in(before, zones))
        .unwrap_or(closed);
    Err(Gate::WindowClosed {
        zone: binding.clone(),
        until,
    })
}

/// The campaign-start check: `Err(NotBefore)` until `not_before`.
pub fn campaign_start(not_before: Option<Timestamp>, at: Timestamp) -> Result<(), Gate> {
    match not_before {
        Some(start) if at < start => Err(Gate::NotBefore { until: start }),
        _ => Ok(()),
    }
}

/// The campaign-end check: `Err(NotAfter)` from `not_after` on.
pub fn campaign_end(not_after: Option<Timestamp>, at: Timestamp) -> Result<(), Gate> {
    match not_after {
        Some(end) if at >= end => Err(Gate::NotAfter { at: end }),
        _ => Ok(()),
    }
}

/// Per-person pacing across all campaigns: `recent` holds the instants of earlier calls to one
/// number (any order; only calls that may have rung count: accepted or in doubt), `min_gap`
/// the least time between two calls (zero = none), `max_per_day` the most calls per local day
/// in `day_zone` (0 = no cap).
///
/// The gate reported is the one holding at `now` (the daily cap first when both hold); its
/// `until` is when both checks pass together.
pub fn per_person(
    recent: &[Timestamp],
    now: Timestamp,
    min_gap: Duration,
    max_per_day: u32,
    day_zone: &TimeZone,
) -> Result<(), Gate> {
    // A call recorded after `now` was written by a clock that ran ahead (and was set back
    // since): it happened no later than now, so it counts as now, not as a hold the length
    // of the skew.
    let recent: Vec<Timestamp> = recent.iter().map(|t| (*t).min(now)).collect();
    let gap_until = match recent.iter().max() {
        Some(last) if !min_gap.is_zero() => Some(day::after(*last, min_gap)),
        _ => None,
    };
    let capped_at = |t: Timestamp| {
        if max_per_day == 0 {
            return false;
        }
        let today = day::local_date(t, day_zone);
        let calls = recent
            .iter()
            .filter(|r| day::local_date(**r, day_zone) == today)
            .count();
        calls >= max_per_day as usize
    };
    let first = if capped_at(now) {
        Gate::DailyCap { until: now }
    } else if gap_until.is_some_and(|g| now < g) {
        Gate::MinGap { until: now }
    } else {
        return Ok(());
    };
    // Each step moves forward past one check; calls on later days are rare (clock skew), so a
    // few rounds settle it.
    let mut t = now;
    for _ in 0..8 {
        let mut moved = false;
        if capped_at(t) {
            t = day::start_of_next_day(t, day_zone);
            moved = true;
        }
        if let Some(g) = gap_until.filter(|g| t < *g) {
            t = g;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    Err(match first {
        Gate::DailyCap { .. } => Gate::DailyCap { until: t },
        _ => Gate::MinGap { until: t },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let t = Timestamp::UNIX_EPOCH;
        let all = [
            Gate::WindowClosed {
                zone: TimeZone::UTC,
                until: None,
            },
            Gate::Dnc,
            Gate::MinGap { until: t },
            Gate::DailyCap { until: t },
            Gate::CallerCooldown { until: t },
            Gate::RetryBackoff { until: t },
            Gate::CampaignPaused,
            Gate::RateBudget { until: None },
            Gate::NotAfter { at: t },
            Gate::AgentLinesBusy { until: t },
            Gate::NotBefore { until: t },
        ];
        let names: Vec<&str> = all.iter().map(Gate::as_str).collect();
        assert_eq!(names, Gate::NAMES);
        assert!(Gate::Dnc.is_final() && Gate::NotAfter { at: t }.is_final());
        assert!(!Gate::MinGap { until: t }.is_final());
    }

    #[test]
    fn a_call_recorded_in_the_future_holds_from_now_not_from_the_skewed_time() {
        // The wall clock ran 20 s ahead when the call was written down, and NTP set it back.
        let now: Timestamp = "2026-11-29T23:59:50Z".parse().unwrap();
        let skewed = day::after(now, Duration::from_secs(20));
        let gap = Duration::from_secs(60);
        let held = per_person(&[skewed], now, gap, 0, &TimeZone::UTC).unwrap_err();
        assert_eq!(
            held,
            Gate::MinGap {
                until: day::after(now, gap)
            },
            "held for the gap from now, not for the skew on top"
        );
        // The skewed time falls on the next day: it still counts against today's cap.
        let held = per_person(&[skewed], now, Duration::ZERO, 1, &TimeZone::UTC).unwrap_err();
        assert_eq!(held.as_str(), "daily_cap");
        // With no gap and no cap, a future record holds nothing.
        assert_eq!(
            per_person(&[skewed], now, Duration::ZERO, 0, &TimeZone::UTC),
            Ok(())
        );
    }

    #[test]
    fn times_show_in_the_campaigns_zone_and_in_utc() {
        let at: Timestamp = "2026-11-30T19:00:00Z".parse().unwrap();
        let shanghai = zones::zone("Asia/Shanghai").unwrap();
        assert_eq!(
            local_and_utc(at, &shanghai),
            "2026-11-30 19:00:00 UTC (2026-12-01 03:00:00 CST Asia/Shanghai)"
        );
        assert_eq!(local_and_utc(at, &TimeZone::UTC), "2026-11-30 19:00:00 UTC");
        assert_eq!(rfc3339_in(at, &shanghai), "2026-12-01T03:00:00+08:00");
        let g = Gate::NotBefore { until: at };
        assert_eq!(
            g.describe_in(&shanghai),
            "waiting for the campaign's start (not_before) at 2026-11-30 19:00:00 UTC (2026-12-01 03:00:00 CST Asia/Shanghai)"
        );
    }

    #[test]
    fn campaign_start_holds_until_not_before() {
        let start: Timestamp = "2026-12-01T01:00:00Z".parse().unwrap();
        let before: Timestamp = "2026-12-01T00:59:59Z".parse().unwrap();
        let g = campaign_start(Some(start), before).unwrap_err();
        assert_eq!(g, Gate::NotBefore { until: start });
        assert_eq!(g.until(), Some(start));
        assert!(!g.is_final());
        assert_eq!(campaign_start(Some(start), start), Ok(()));
        assert_eq!(campaign_start(None, before), Ok(()));
    }

    #[test]
    fn campaign_end_holds_from_not_after_on() {
        let end: Timestamp = "2026-12-31T10:00:00Z".parse().unwrap();
        let before: Timestamp = "2026-12-31T09:59:59Z".parse().unwrap();
        assert_eq!(campaign_end(Some(end), before), Ok(()));
        assert_eq!(campaign_end(None, end), Ok(()));
        let g = campaign_end(Some(end), end).unwrap_err();
        assert_eq!(g, Gate::NotAfter { at: end });
        assert_eq!(g.to_string(), "campaign ended at 2026-12-31 10:00 UTC");
    }
}
