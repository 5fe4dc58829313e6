//! What the stand-in saw: the judge of every test and benchmark, independent of the dialer's
//! opinion of itself. One mutex; nothing awaits while holding it.
//!
//! Each API action has its own figures and its own strict window (`actions`), as the service
//! limits per action. The top-level figures are CreateAIAgentCall's (a request naming an action
//! the stand-in does not serve counts there too), so an outcome query never shows up as a
//! CreateAIAgentCall window over the limit.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// The action whose figures are the top-level ones.
pub const CREATE: &str = "CreateAIAgentCall";

/// One API action's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionStats {
    /// Every request naming this action (refused ones included).
    pub requests: u64,
    /// Requests refused with `RequestLimitExceeded` by this action's window.
    pub rate_limited: u64,
    /// The most requests of this action that arrived within any 1-second sliding window.
    pub max_in_any_window: u32,
    /// Requests that arrived when this action's window already held the limit.
    pub windows_over_limit: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Requests by the Unix second of their arrival.
    pub requests_per_second: BTreeMap<i64, u32>,
}

/// The stand-in's figures, served at `/__admin/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MockStats {
    /// Every CreateAIAgentCall request (and every request naming no action the stand-in serves).
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
    /// Per action (`CreateAIAgentCall`, `DescribeTelCdr`, …): its own figures.
    #[serde(default)]
    pub actions: BTreeMap<String, ActionStats>,
    /// The data push's figures (all zero without a push URL).
    #[serde(default)]
    pub pushes: super::push::PushStats,
}

#[derive(Default)]
struct Window {
    arrivals: VecDeque<Instant>,
    admitted: VecDeque<Instant>,
}

#[derive(Default)]
pub struct Recorder {
    pub stats: MockStats,
    windows: HashMap<&'static str, Window>,
    /// Every CreateAIAgentCall arrival since the start (for jitter and window analysis in
    /// benchmarks).
    pub log: Vec<Instant>,
    /// Every arrival of each other action (few: outcome queries).
    pub action_log: HashMap<&'static str, Vec<Instant>>,
    /// The arrival of every request that named a callee, with it (per-campaign windows: the
    /// campaigns of a test call numbers of their own prefix).
    pub callee_log: Vec<(Instant, String)>,
    fault_counters: HashMap<String, usize>,
    /// Admitted requests per action other than CreateAIAgentCall (for `[[action]]` scripts).
    action_counters: HashMap<&'static str, usize>,
}

/// Arrivals are stamped when their bytes reached the host (see `super::arrival`) but recorded
/// when their handler runs, so two requests a few milliseconds apart may be recorded out of
/// order. Kept sorted, and kept for two windows behind the latest: enough for any window that
/// can still gain an arrival.
fn insert(window: &mut VecDeque<Instant>, at: Instant) {
    let pos = window.partition_point(|t| *t <= at);
    window.insert(pos, at);
    if let Some(latest) = window.back().copied() {
        while window
            .front()
            .is_some_and(|t| latest.duration_since(*t) >= 2 * WINDOW)
        {
            window.pop_front();
        }
    }
}

/// The most of `window` (sorted) within any 1-second window `[s, s + 1 s)` that contains
/// `at`, `at` itself counted once more (it is not in `window`).
///
/// A fullest window can be slid left until its latest instant sits at its end: the windows
/// `(e - 1 s, e]` for `e` = `at` or an instant of `window` at or after `at` and less than a
/// second after it (few: only arrivals recorded before an earlier-stamped one). Each is
/// counted by two binary searches, so an arrival costs O((1 + later) · log n), where judging
/// every window that starts at an instant before it (33779a4) cost O(n²) with n the arrivals
/// of the last two seconds: at a lifted cap (thousands a second) the stand-in's lock then
/// held every handler and the judge, not the dialer, set the rate.
fn fullest_with(window: &VecDeque<Instant>, at: Instant) -> usize {
    let in_window_ending = |e: Instant| {
        let hi = window.partition_point(|t| *t <= e);
        let lo = window.partition_point(|t| e.saturating_duration_since(*t) >= WINDOW);
        hi - lo
    };
    let later = window.partition_point(|t| *t < at);
    let ends = window
        .range(later..)
        .copied()
        .take_while(|e| e.duration_since(at) < WINDOW);
    std::iter::once(at)
        .chain(ends)
        .map(in_window_ending)
        .max()
        .unwrap_or(0)
        + 1
}

impl Recorder {
    /// Note an arrival for `action` (its figures and its window).
    pub fn arrival(&mut self, action: &'static str, now: Instant, wall_ms: i64, limit: u32) {
        let window = self.windows.entry(action).or_default();
        let n = fullest_with(&window.arrivals, now) as u32;
        insert(&mut window.arrivals, now);
        let a = self.stats.actions.entry(action.to_string()).or_default();
        a.requests += 1;
        a.max_in_any_window = a.max_in_any_window.max(n);
        if limit > 0 && n > limit {
            a.windows_over_limit += 1;
        }
        *a.requests_per_second
            .entry(wall_ms.div_euclid(1000))
            .or_default() += 1;
        if action != CREATE {
            self.action_log.entry(action).or_default().push(now);
            return;
        }
        self.log.push(now);
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

    /// The strict limit of `action`: admit unless admitting would put more than `limit` admitted
    /// requests of it in some 1-second window.
    pub fn admit(&mut self, action: &'static str, now: Instant, limit: u32) -> bool {
        if limit == 0 {
            return true;
        }
        let window = self.windows.entry(action).or_default();
        if fullest_with(&window.admitted, now) > limit as usize {
            self.stats
                .actions
                .entry(action.to_string())
                .or_default()
                .rate_limited += 1;
            if action == CREATE {
                self.stats.rate_limited += 1;
            }
            return false;
        }
        insert(&mut window.admitted, now);
        true
    }

    /// An error answer to a request of `action`; `AuthFailure*` also count at the top level
    /// whatever the action.
    pub fn error(&mut self, action: &'static str, code: &str) {
        *self
            .stats
            .actions
            .entry(action.to_string())
            .or_default()
            .errors_by_code
            .entry(code.to_string())
            .or_default() += 1;
        if action == CREATE {
            *self
                .stats
                .errors_by_code
                .entry(code.to_string())
                .or_default() += 1;
        }
        if code.starts_with("AuthFailure") {
            self.stats.auth_failures += 1;
        }
        if code == "AuthFailure.SignatureFailure" {
            self.stats.signature_failures += 1;
        }
    }

    /// Count a request for `callee` that arrived at `arrived`; returns its 0-based number (for
    /// the fault script).
    pub fn callee_request(&mut self, callee: &str, arrived: Instant) -> usize {
        self.callee_log.push((arrived, callee.to_string()));
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

    /// Count an admitted request of `action`; returns its 0-based number.
    pub fn action_request(&mut self, action: &'static str) -> usize {
        let n = self.action_counters.entry(action).or_default();
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
                r.arrival(CREATE, t, 0, limit);
                r.admit(CREATE, t, limit)
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
    fn each_action_has_its_own_window_and_figures() {
        let mut r = Recorder::default();
        let t0 = Instant::now();
        let create = play(&mut r, t0, &[0, 10, 20], 2);
        let describe: Vec<bool> = [30u64, 40, 50]
            .iter()
            .map(|ms| {
                let t = t0 + Duration::from_millis(*ms);
                r.arrival("DescribeTelCdr", t, 0, 2);
                r.admit("DescribeTelCdr", t, 2)
            })
            .collect();
        assert_eq!(create, [true, true, false]);
        assert_eq!(describe, [true, true, false]);
        // The top level is CreateAIAgentCall's alone.
        assert_eq!((r.stats.requests, r.stats.max_in_any_window), (3, 3));
        assert_eq!(r.stats.rate_limited, 1);
        let d = &r.stats.actions["DescribeTelCdr"];
        assert_eq!((d.requests, d.max_in_any_window, d.rate_limited), (3, 3, 1));
        assert_eq!(r.stats.actions[CREATE].requests, 3);
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

    #[test]
    fn arrivals_recorded_out_of_order_are_judged_by_their_stamps() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        // 20 arrivals 50 ms apart from 20 ms on, then one stamped at 0 ms whose handler ran
        // last: 21 within [0, 1000) ms.
        let mut r = Recorder::default();
        for i in 0..20 {
            r.arrival(CREATE, ms(20 + i * 50), 0, 20);
            assert!(r.admit(CREATE, ms(20 + i * 50), 20));
        }
        r.arrival(CREATE, ms(0), 0, 20);
        assert_eq!(r.stats.max_in_any_window, 21);
        assert!(
            !r.admit(CREATE, ms(0), 20),
            "the window [0, 1000) ms is full"
        );
        // The same arrivals with the late one stamped more than a second before the last: 20.
        let mut r = Recorder::default();
        for i in 0..20 {
            r.arrival(CREATE, ms(1000 + i * 50), 0, 20);
            assert!(r.admit(CREATE, ms(1000 + i * 50), 20));
        }
        r.arrival(CREATE, ms(901), 0, 20);
        assert_eq!(r.stats.max_in_any_window, 20);
    }

    /// The judge's count, as 33779a4 computed it: every window starting at `at` or at an
    /// instant less than a second before it, each counted over the whole window.
    fn fullest_with_every_start(window: &VecDeque<Instant>, at: Instant) -> usize {
        let in_window_from = |s: Instant| {
            window
                .iter()
                .filter(|t| **t >= s && t.duration_since(s) < WINDOW)
                .count()
        };
        let starts = window
            .iter()
            .copied()
            .filter(|s| *s < at && at.duration_since(*s) < WINDOW);
        starts
            .chain(std::iter::once(at))
            .map(in_window_from)
            .max()
            .unwrap_or(0)
            + 1
    }

    #[test]
    fn the_fullest_window_is_found_by_its_ends_as_by_every_start() {
        let t0 = Instant::now();
        // A fixed pseudo-random sequence (LCG): arrivals 0-120 ms apart on a 1 ms grid (so
        // some sit exactly a second apart, the windows' edges), recorded up to 3 places out
        // of order, as handlers record them.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        let mut stamps = Vec::new();
        let mut ms = 0;
        for _ in 0..600 {
            ms += next(121);
            stamps.push(t0 + Duration::from_millis(ms));
        }
        for i in 0..stamps.len() {
            let j = (i + next(4) as usize).min(stamps.len() - 1);
            stamps.swap(i, j);
        }
        let mut window = VecDeque::new();
        let mut most = 0;
        for at in stamps {
            let fast = fullest_with(&window, at);
            assert_eq!(
                fast,
                fullest_with_every_start(&window, at),
                "at {:?}",
                at - t0
            );
            most = most.max(fast);
            insert(&mut window, at);
        }
        assert!(most > 15, "the sequence fills some windows: {most}");
    }

    /// At a lifted cap two seconds hold thousands of arrivals (the engine headroom and memory
    /// benchmarks): an arrival after all of them is judged by the second before it.
    #[test]
    fn a_second_of_ten_thousand_arrivals_is_counted_in_full() {
        let t0 = Instant::now();
        let mut window = VecDeque::new();
        for i in 0..20_000u64 {
            insert(&mut window, t0 + Duration::from_micros(i * 100));
        }
        // 20,000 arrivals 0.1 ms apart: 10,000 in the last second, plus the new one.
        let at = t0 + Duration::from_micros(20_000 * 100);
        assert_eq!(fullest_with(&window, at), 10_000);
    }
}
