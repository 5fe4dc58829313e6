//! What the stand-in saw: the judge of every test and benchmark, independent of the dialer's
//! opinion of itself. One mutex; nothing awaits while holding it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// The stand-in's figures, served at `/__admin/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MockStats {
    /// Every request that reached the API path.
    pub requests: u64,
    /// Calls created.
    pub accepted: u64,
    /// Requests refused with `RequestLimitExceeded` by the stand-in's own window.
    pub rate_limited: u64,
    /// The most requests that arrived within any 1-second sliding window.
    pub max_in_any_window: u32,
    /// Requests that arrived when the window already held the limit.
    pub windows_over_limit: u64,
    pub signature_failures: u64,
    /// Every `AuthFailure.*` answer.
    pub auth_failures: u64,
    pub calls_per_callee: BTreeMap<String, u32>,
    /// Callees for which more than one call was created: the number that must stay empty.
    pub duplicate_callees: Vec<String>,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Requests by the Unix second of their arrival (for steady-rate figures).
    pub requests_per_second: BTreeMap<i64, u32>,
    pub first_request_unix_ms: Option<i64>,
    pub last_request_unix_ms: Option<i64>,
    /// Requests per callee that passed authentication, whatever their outcome.
    pub requests_by_callee: BTreeMap<String, u32>,
    /// The last body that created a call, per callee (to check what arrived).
    pub last_body_by_callee: BTreeMap<String, serde_json::Value>,
}

#[derive(Default)]
pub struct Recorder {
    pub stats: MockStats,
    arrivals: VecDeque<Instant>,
    admitted: VecDeque<Instant>,
    /// Every arrival since the start (for jitter and window analysis in benchmarks).
    pub log: Vec<Instant>,
    fault_counters: HashMap<String, usize>,
}

fn trim(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        window.pop_front();
    }
}

impl Recorder {
    /// Note an arrival; returns how many arrived within the last second, this one included.
    pub fn arrival(&mut self, now: Instant, wall_ms: i64, limit: u32) {
        trim(&mut self.arrivals, now);
        self.arrivals.push_back(now);
        self.log.push(now);
        let n = self.arrivals.len() as u32;
        self.stats.requests += 1;
        self.stats.max_in_any_window = self.stats.max_in_any_window.max(n);
        if limit > 0 && n > limit {
            self.stats.windows_over_limit += 1;
        }
        *self
            .stats
            .requests_per_second
            .entry(wall_ms.div_euclid(1000))
            .or_default() += 1;
        self.stats.first_request_unix_ms.get_or_insert(wall_ms);
        self.stats.last_request_unix_ms = Some(wall_ms);
    }

    /// The strict limit: admit unless `limit` requests were already admitted in the last second.
    pub fn admit(&mut self, now: Instant, limit: u32) -> bool {
        if limit == 0 {
            return true;
        }
        trim(&mut self.admitted, now);
        if self.admitted.len() >= limit as usize {
            self.stats.rate_limited += 1;
            return false;
        }
        self.admitted.push_back(now);
        true
    }

    pub fn error(&mut self, code: &str) {
        *self
            .stats
            .errors_by_code
            .entry(code.to_string())
            .or_default() += 1;
        if code.starts_with("AuthFailure") {
            self.stats.auth_failures += 1;
        }
        if code == "AuthFailure.SignatureFailure" {
            self.stats.signature_failures += 1;
        }
    }

    /// Count a request for `callee`; returns its 0-based number (for the fault script).
    pub fn callee_request(&mut self, callee: &str) -> usize {
        *self
            .stats
            .requests_by_callee
            .entry(callee.to_string())
            .or_default() += 1;
        let n = self.fault_counters.entry(callee.to_string()).or_default();
        let this = *n;
        *n += 1;
        this
    }

    pub fn created(&mut self, callee: &str, body: serde_json::Value, keep_body: bool) {
        self.stats.accepted += 1;
        let n = self
            .stats
            .calls_per_callee
            .entry(callee.to_string())
            .or_default();
        *n += 1;
        if *n == 2 {
            self.stats.duplicate_callees.push(callee.to_string());
        }
        if keep_body {
            self.stats
                .last_body_by_callee
                .insert(callee.to_string(), body);
        }
    }

    pub fn reset(&mut self) {
        *self = Recorder::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed arrivals at `t0 + offsets` through the recorder as the handler does (count, then
    /// admit); returns which were admitted.
    fn play(r: &mut Recorder, t0: Instant, offsets_ms: &[u64], limit: u32) -> Vec<bool> {
        offsets_ms
            .iter()
            .map(|ms| {
                let t = t0 + Duration::from_millis(*ms);
                r.arrival(t, 0, limit);
                r.admit(t, limit)
            })
            .collect()
    }

    #[test]
    fn the_window_is_strict_and_sliding_and_the_judge_counts_every_arrival() {
        let mut r = Recorder::default();
        let t0 = Instant::now();
        // Limit 5; one request every 100 ms for 1.2 s.
        let offsets: Vec<u64> = (0..12).map(|i| i * 100).collect();
        let admitted = play(&mut r, t0, &offsets, 5);
        // 0..400 ms fill the window; 500..900 ms are refused; at 1000 ms the request from 0 ms
        // has left the window (exactly one second later), at 1100 ms the one from 100 ms.
        assert_eq!(
            admitted,
            [true, true, true, true, true, false, false, false, false, false, true, true]
        );
        assert_eq!(r.stats.rate_limited, 5);
        assert_eq!(r.stats.requests, 12);
        // The figures count arrivals, refused ones included: 10 within [0, 900] ms.
        assert_eq!(r.stats.max_in_any_window, 10);
        assert_eq!(r.stats.windows_over_limit, 7);
    }

    #[test]
    fn a_limit_of_zero_admits_everything_and_reports_no_window_over_it() {
        let mut r = Recorder::default();
        let admitted = play(&mut r, Instant::now(), &[0, 0, 0, 0, 0, 0, 0, 0], 0);
        assert!(admitted.iter().all(|a| *a));
        assert_eq!(r.stats.rate_limited, 0);
        assert_eq!(r.stats.windows_over_limit, 0);
        assert_eq!(r.stats.max_in_any_window, 8);
    }
}
