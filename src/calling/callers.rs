//! Caller-number rotation: which of a contact's caller numbers to put first on the next
//! attempt.
//!
//! A caller is usable at `now` unless it rests (after `FailedOperation.CallerOverFrequency`, for
//! the configured cool-down) or has reached its daily cap (uses per local day in the campaign's
//! zone). [`CallerPool::pick`] chooses among the usable candidates by the strategy and counts the
//! use; when none is usable it says until when, so the campaign waits instead of burning
//! attempts.
//!
//! Invariants: the clock is always an argument; a rest never shortens (`rest` keeps the later
//! end); counts are per caller and per local day, and reset when the day changes. Callers are
//! compared as written (configuration and CSV `callers` values are digits with an optional `+`).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::day;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Each pick takes the next usable candidate after the one picked last.
    #[default]
    RoundRobin,
    /// Each pick takes the usable candidate unused for longest (never used first).
    LeastRecentlyUsed,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastRecentlyUsed => "least_recently_used",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "round_robin" => Ok(Strategy::RoundRobin),
            "least_recently_used" | "lru" => Ok(Strategy::LeastRecentlyUsed),
            _ => Err("\"round_robin\" or \"least_recently_used\"".into()),
        }
    }
}

/// What [`CallerPool::pick`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Put this caller first.
    Use(String),
    /// No caller numbers for this contact: the service chooses (CreateAIAgentCall's `Callers`
    /// is optional).
    ServiceChooses,
    /// Every candidate rests or is capped; the earliest any is usable again.
    AllResting { until: Timestamp },
}

#[derive(Debug, Clone, Default)]
struct CallerState {
    last_used: Option<Timestamp>,
    resting_until: Option<Timestamp>,
    day: Option<Date>,
    used_today: u32,
}

#[derive(Debug, Clone)]
pub struct CallerPool {
    strategy: Strategy,
    cooldown: Duration,
    /// Uses per caller per local day; 0 = no cap.
    daily_cap: u32,
    zone: TimeZone,
    callers: HashMap<String, CallerState>,
    last_picked: Option<String>,
}

impl CallerPool {
    /// `zone` is the campaign's: a caller's day is a local day there.
    pub fn new(strategy: Strategy, cooldown: Duration, daily_cap: u32, zone: TimeZone) -> Self {
        CallerPool {
            strategy,
            cooldown,
            daily_cap,
            zone,
            callers: HashMap::new(),
            last_picked: None,
        }
    }

    /// Choose the caller to put first for one attempt at `now` and count its use.
    pub fn pick(&mut self, candidates: &[String], now: Timestamp) -> Pick {
        if candidates.is_empty() {
            return Pick::ServiceChooses;
        }
        let usable = |pool: &Self, c: &String| pool.usable_from(c, now) <= now;
        let chosen = match self.strategy {
            Strategy::RoundRobin => {
                let start = self
                    .last_picked
                    .as_ref()
                    .and_then(|last| candidates.iter().position(|c| c == last))
                    .map_or(0, |p| p + 1);
                (0..candidates.len())
                    .map(|k| &candidates[(start + k) % candidates.len()])
                    .find(|c| usable(self, c))
            }
            Strategy::LeastRecentlyUsed => candidates
                .iter()
                .filter(|c| usable(self, c))
                // min_by_key keeps the first of equals: list order breaks ties.
                .min_by_key(|c| self.callers.get(*c).and_then(|s| s.last_used)),
        };
        match chosen {
            Some(c) => {
                let c = c.clone();
                self.record_use(&c, now);
                self.last_picked = Some(c.clone());
                Pick::Use(c)
            }
            None => Pick::AllResting {
                until: candidates
                    .iter()
                    .map(|c| self.usable_from(c, now))
                    .min()
                    .unwrap_or(now),
            },
        }
    }

    /// Count a use of `caller` at `at` (also to seed the pool from the store after a restart).
    pub fn record_use(&mut self, caller: &str, at: Timestamp) {
        let today = day::local_date(at, &self.zone);
        let s = self.callers.entry(caller.to_string()).or_default();
        if s.day != Some(today) {
            s.day = Some(today);
            s.used_today = 0;
        }
        s.used_today = s.used_today.saturating_add(1);
        s.last_used = Some(s.last_used.map_or(at, |l| l.max(at)));
    }

    /// Rest `caller` until `until` (a longer rest already running is kept).
    pub fn rest(&mut self, caller: &str, until: Timestamp) {
        let s = self.callers.entry(caller.to_string()).or_default();
        s.resting_until = Some(s.resting_until.map_or(until, |r| r.max(until)));
    }

    /// Rest `caller` for the configured cool-down after `CallerOverFrequency` at `now`; returns
    /// the end of the rest.
    pub fn cool_down(&mut self, caller: &str, now: Timestamp) -> Timestamp {
        let until = day::after(now, self.cooldown);
        self.rest(caller, until);
        until
    }

    /// The first instant at or after `now` at which `caller` is usable.
    pub fn usable_from(&self, caller: &str, now: Timestamp) -> Timestamp {
        let Some(s) = self.callers.get(caller) else {
            return now;
        };
        let mut t = now;
        if let Some(r) = s.resting_until {
            t = t.max(r);
        }
        if self.daily_cap > 0
            && s.used_today >= self.daily_cap
            && s.day == Some(day::local_date(t, &self.zone))
        {
            t = day::start_of_next_day(t, &self.zone);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_by_their_config_names() {
        assert_eq!("round_robin".parse(), Ok(Strategy::RoundRobin));
        assert_eq!(
            "least_recently_used".parse(),
            Ok(Strategy::LeastRecentlyUsed)
        );
        assert!("random".parse::<Strategy>().is_err());
        assert_eq!(Strategy::LeastRecentlyUsed.as_str(), "least_recently_used");
    }

    #[test]
    fn no_candidates_leaves_the_choice_to_the_service() {
        let mut pool = CallerPool::new(Strategy::RoundRobin, Duration::ZERO, 0, TimeZone::UTC);
        assert_eq!(pool.pick(&[], Timestamp::UNIX_EPOCH), Pick::ServiceChooses);
    }
}
