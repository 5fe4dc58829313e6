//! The `[calling]` table of the configuration: its TOML shape and its validation into
//! [`Calling`]. [`crate::config`] owns the file and the error type; this module owns the keys.
//!
//! Invariants: the table absent means always open, no lists, no caller cool-down or cap, but
//! still a gap of [`DEFAULT_MIN_GAP_WITHOUT_TABLE`] between two calls to one number across
//! campaigns (the same list posted under two names, or dropped twice in the inbox, must not
//! ring one person twice in a minute); `[calling] min_gap = "0s"` turns it off. The table
//! present turns on the documented defaults (`min_gap = "4h"`, `caller_cooldown = "10m"`). Every bad value is reported as key,
//! value and what was expected, like every other key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

use super::callers::Strategy;
use super::window::{TimeRange, Window, WEEKDAYS};
use super::zones;

/// Defaults when `[calling]` is present.
pub const DEFAULT_MIN_GAP: &str = "4h";
/// The gap between two calls to one number when there is no `[calling]` table.
pub const DEFAULT_MIN_GAP_WITHOUT_TABLE: Duration = Duration::from_secs(3600);
pub const DEFAULT_CALLER_COOLDOWN: &str = "10m";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalling {
    timezone: Option<String>,
    hours: Option<RawHours>,
    #[serde(default)]
    blackout_dates: Vec<toml::Value>,
    not_before: Option<toml::Value>,
    not_after: Option<toml::Value>,
    #[serde(default)]
    dnc_files: Vec<PathBuf>,
    min_gap: Option<String>,
    max_per_day: Option<i64>,
    caller_strategy: Option<String>,
    caller_cooldown: Option<String>,
    caller_daily_cap: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    mon: Option<Vec<String>>,
    tue: Option<Vec<String>>,
    wed: Option<Vec<String>>,
    thu: Option<Vec<String>>,
    fri: Option<Vec<String>>,
    sat: Option<Vec<String>>,
    sun: Option<Vec<String>>,
}

/// Validated calling rules.
#[derive(Debug, Clone)]
pub struct Calling {
    /// Hours, blackout dates and the campaign's zone ([`Window::zone`]).
    pub window: Window,
    /// The campaign starts here: nothing is sent before.
    pub not_before: Option<Timestamp>,
    /// The campaign ends here: nothing is sent from then on.
    pub not_after: Option<Timestamp>,
    /// Do-not-call lists, resolved against the config file's directory.
    pub dnc_files: Vec<PathBuf>,
    /// Least time between two calls to one number, across campaigns; zero = none.
    pub min_gap: Duration,
    /// Most calls to one number per local day, across campaigns; 0 = no cap.
    pub max_per_day: u32,
    pub caller_strategy: Strategy,
    /// Rest for a caller after `CallerOverFrequency`; zero = none.
    pub caller_cooldown: Duration,
    /// Uses per caller number per local day in the campaign's zone; 0 = no cap.
    pub caller_daily_cap: u32,
}

impl Calling {
    /// No restrictions at all, not even a gap; `zone` is still the campaign's zone.
    pub fn unrestricted(zone: TimeZone) -> Calling {
        Calling {
            window: Window::always(zone),
            not_before: None,
            not_after: None,
            dnc_files: Vec::new(),
            min_gap: Duration::ZERO,
            max_per_day: 0,
            caller_strategy: Strategy::RoundRobin,
            caller_cooldown: Duration::ZERO,
            caller_daily_cap: 0,
        }
    }

    /// The campaign's zone.
    pub fn zone(&self) -> &TimeZone {
        self.window.zone()
    }
}

/// One refused value (the config module adds the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub key: String,
    pub value: String,
    pub expected: String,
}

fn invalid(
    key: impl Into<String>,
    value: impl std::fmt::Display,
    expected: impl Into<String>,
) -> Invalid {
    Invalid {
        key: key.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// The zone of `default_country` when it has exactly one.
fn country_zone(default_country: &str) -> Option<TimeZone> {
    match zones::country_zones(default_country) {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Validate the table (`None` when absent). `default_country` is `campaign.default_country`;
/// `base` the directory relative `dnc_files` are resolved against.
pub(crate) fn validate(
    raw: Option<RawCalling>,
    default_country: &str,
    base: &Path,
) -> Result<Calling, Invalid> {
    let Some(raw) = raw else {
        return Ok(Calling {
            min_gap: DEFAULT_MIN_GAP_WITHOUT_TABLE,
            ..Calling::unrestricted(country_zone(default_country).unwrap_or(TimeZone::UTC))
        });
    };
    let zone = match &raw.timezone {
        Some(name) => zones::zone(name).map_err(|_| {
            invalid(
                "calling.timezone",
                format!("{name:?}"),
                "an IANA time zone name (e.g. \"Asia/Shanghai\", \"America/New_York\", \"UTC\")",
            )
        })?,
        None => country_zone(default_country).ok_or_else(|| {
            invalid(
                "calling.timezone",
                "(missing)",
                format!(
                    "the campaign's IANA time zone: campaign.default_country {default_country:?} has several"
                ),
            )
        })?,
    };
    let hours = raw.hours.map(hours).transpose()?;
    let mut blackout: Vec<Date> = Vec::with_capacity(raw.blackout_dates.len());
    for (i, v) in raw.blackout_dates.iter().enumerate() {
        let text = toml_text(v);
        let d = text.parse::<Date>().map_err(|_| {
            invalid(
                format!("calling.blackout_dates[{i}]"),
                v,
                "a local date \"YYYY-MM-DD\" (e.g. \"2026-10-01\")",
            )
        })?;
        blackout.push(d);
    }
    let instant = |key: &str, v: &Option<toml::Value>| match v {
        None => Ok(None),
        Some(v) => toml_text(v).parse::<Timestamp>().map(Some).map_err(|_| {
            invalid(
                format!("calling.{key}"),
                v,
                "an RFC 3339 date and time with its offset (e.g. \"2026-12-31T18:00:00+08:00\")",
            )
        }),
    };
    let not_before = instant("not_before", &raw.not_before)?;
    let not_after = instant("not_after", &raw.not_after)?;
    if let (Some(start), Some(end), Some(v)) = (not_before, not_after, &raw.not_after) {
        if end <= start {
            return Err(invalid(
                "calling.not_after",
                v,
                format!("a time after calling.not_before ({start})"),
            ));
        }
    }
    let duration = |key: &str, value: &Option<String>, default: &str| {
        let text = value.as_deref().unwrap_or(default);
        crate::duration::parse(text)
            .map_err(|e| invalid(format!("calling.{key}"), format!("{text:?}"), e))
    };
    let min_gap = duration("min_gap", &raw.min_gap, DEFAULT_MIN_GAP)?;
    let caller_cooldown = duration(
        "caller_cooldown",
        &raw.caller_cooldown,
        DEFAULT_CALLER_COOLDOWN,
    )?;
    let count = |key: &str, value: Option<i64>, max: u32| match value {
        None => Ok(0),
        Some(n) => u32::try_from(n).ok().filter(|n| *n <= max).ok_or_else(|| {
            invalid(
                format!("calling.{key}"),
                n,
                format!("an integer from 0 to {max} (0 = no cap)"),
            )
        }),
    };
    let max_per_day = count("max_per_day", raw.max_per_day, 1000)?;
    let caller_daily_cap = count("caller_daily_cap", raw.caller_daily_cap, 1_000_000)?;
    let caller_strategy = match &raw.caller_strategy {
        None => Strategy::default(),
        Some(s) => s
            .parse()
            .map_err(|e: String| invalid("calling.caller_strategy", format!("{s:?}"), e))?,
    };
    let dnc_files = raw
        .dnc_files
        .into_iter()
        .map(|p| if p.is_relative() { base.join(p) } else { p })
        .collect();
    Ok(Calling {
        window: Window::new(zone, hours, blackout),
        not_before,
        not_after,
        dnc_files,
        min_gap,
        max_per_day,
        caller_strategy,
        caller_cooldown,
        caller_daily_cap,
    })
}

/// A string as written, or a TOML date/time (`2026-10-01` unquoted) as RFC 3339 text.
fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

fn hours(raw: RawHours) -> Result<[Vec<TimeRange>; 7], Invalid> {
    let days = [
        raw.mon, raw.tue, raw.wed, raw.thu, raw.fri, raw.sat, raw.sun,
    ];
    if days.iter().all(|d| d.as_ref().is_none_or(Vec::is_empty)) {
        return Err(invalid(
            "calling.hours",
            "(no ranges)",
            "at least one day with a range (e.g. hours.mon = [\"09:00-12:00\"]); remove calling.hours to call at any time",
        ));
    }
    let mut out: [Vec<TimeRange>; 7] = Default::default();
    for (i, ranges) in days.into_iter().enumerate() {
        for (j, text) in ranges.unwrap_or_default().iter().enumerate() {
            let r = TimeRange::parse(text).map_err(|e| {
                invalid(
                    format!("calling.hours.{}[{j}]", WEEKDAYS[i]),
                    format!("{text:?}"),
                    e,
                )
            })?;
            out[i].push(r);
        }
    }
    Ok(out)
}

/// A campaign's own calling window (`serve`): any of the zone, hours, blackout dates, start and end,
/// over the config's `[calling]`. Per-person pacing, lists and callers stay account-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Weekday (`mon` … `sun`) → `"HH:MM-HH:MM"` ranges; replaces the config's hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackout_dates: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

impl CampaignWindow {
    /// `base` with this campaign's window: `key = value: expected …` for a bad value.
    pub fn apply(&self, base: &Calling) -> Result<Calling, String> {
        let hours = match &self.hours {
            None => None,
            Some(map) => {
                let mut raw = RawHours {
                    mon: None,
                    tue: None,
                    wed: None,
                    thu: None,
                    fri: None,
                    sat: None,
                    sun: None,
                };
                for (day, ranges) in map {
                    let slot = match day.as_str() {
                        "mon" => &mut raw.mon,
                        "tue" => &mut raw.tue,
                        "wed" => &mut raw.wed,
                        "thu" => &mut raw.thu,
                        "fri" => &mut raw.fri,
                        "sat" => &mut raw.sat,
                        "sun" => &mut raw.sun,
                        other => {
                            return Err(format!(
                                "calling.hours.{other}: expected a weekday: mon, tue, wed, thu, fri, sat or sun"
                            ))
                        }
                    };
                    *slot = Some(ranges.clone());
                }
                Some(raw)
            }
        };
        let strings = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|d| d.iter().cloned().map(toml::Value::String).collect())
        };
        let raw = RawCalling {
            timezone: Some(
                self.timezone
                    .clone()
                    .unwrap_or_else(|| zones::name(base.zone())),
            ),
            hours,
            blackout_dates: strings(&self.blackout_dates).unwrap_or_default(),
            not_before: self.not_before.clone().map(toml::Value::String),
            not_after: self.not_after.clone().map(toml::Value::String),
            dnc_files: Vec::new(),
            min_gap: None,
            max_per_day: None,
            caller_strategy: None,
            caller_cooldown: None,
            caller_daily_cap: None,
        };
        let own = validate(Some(raw), "", Path::new("."))
            .map_err(|e| format!("{} = {}: expected {}", e.key, e.value, e.expected))?;
        let mut out = base.clone();
        // What the campaign leaves out stays the config's.
        let hours = if self.hours.is_some() {
            own.window.hours_by_day()
        } else {
            base.window.hours_by_day()
        };
        let blackout = if self.blackout_dates.is_some() {
            own.window.blackout_dates()
        } else {
            base.window.blackout_dates()
        };
        out.window = Window::new(own.window.zone().clone(), hours, blackout);
        if self.not_before.is_some() {
            out.not_before = own.not_before;
        }
        if self.not_after.is_some() {
            out.not_after = own.not_after;
        }
        if let (Some(start), Some(end)) = (out.not_before, out.not_after) {
            if end <= start {
                return Err(format!(
                    "calling.not_after = {end}: expected a time after calling.not_before ({start})"
                ));
            }
        }
        Ok(out)
    }
}
