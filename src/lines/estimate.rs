//! The estimate of one AI agent's lines: how many it has, how many are busy now, and when the
//! next one is likely to free up. Pure: time is an argument (seconds on any steady clock).
//!
//! Without call-end events the dialer cannot see a call end, so it keeps a model:
//! - every call it placed holds a line for a length drawn from a log-normal distribution with
//!   median `hold` and spread [`SIGMA`]; the calls believed active at `t` are the sum, over the
//!   calls placed, of the chance each is still going, plus the requests waiting for a reply;
//! - a call may start while the calls believed active are at most `lines - headroom`
//!   ([`headroom`]: about 0.3 × √lines, so that the chance of a refusal stays small although call
//!   lengths vary);
//! - `hold` is learned: a capacity refusal means the model let go of calls too early (`hold` grows
//!   by [`STEP_UP`]); a call accepted while the model said the lines were nearly full means it
//!   held on too long (`hold` shrinks by a step sized so that refusals settle near
//!   [`TARGET_REFUSALS`] of the requests near the limit); the first estimate is conservative
//!   ([`DEFAULT_HOLD`]) and halves with each probe accepted until the first refusal;
//! - when every line is believed busy, one probe is sent after `hold / lines` (twice that after a
//!   refusal): the expected time for one of `lines` calls to end;
//! - the line count is the operator's (`agent_lines`) when known; otherwise unknown (no limit)
//!   until the first refusal, which sets it to the calls believed active then ("treat the calls
//!   believed active as the line count"), then one more line is tried after every
//!   [`PROBE_UP_EVERY`] × lines calls accepted (additive increase) and taken back when that try
//!   is refused (decrease).
//!
//! A call-end event (outcome tracking, not built yet) would make the count exact:
//! [`Estimate::ended`] frees the line at once.

use std::collections::VecDeque;

/// Spread of call lengths around the median (log-normal sigma).
pub const SIGMA: f64 = 0.5;
/// The first estimate of how long a call holds a line, in seconds.
pub const DEFAULT_HOLD: f64 = 60.0;
/// `hold` grows by `exp(STEP_UP)` at each capacity refusal.
pub const STEP_UP: f64 = 0.25;
/// Refusals aimed at, as a share of the requests sent near the limit.
pub const TARGET_REFUSALS: f64 = 0.07;
/// Accepted calls per line before one more line is tried (learned line counts only).
pub const PROBE_UP_EVERY: u32 = 3;
const MIN_HOLD: f64 = 0.5;
const MAX_HOLD: f64 = 7200.0;
/// A call whose chance of still holding its line is below this is forgotten.
const FORGET: f64 = 0.002;

/// How many lines below the count the model keeps free.
pub fn headroom(lines: u32) -> f64 {
    (0.3 * f64::from(lines).sqrt()).max(0.5)
}

/// Why a call was let through: the limiter learns differently from each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Lines are believed free (or their count is not known yet).
    Free,
    /// Within one line of the limit: an accepted call says `hold` may be shorter.
    Near,
    /// Every line was believed busy: a probe. Accepted, `hold` was too long.
    Probe,
}

/// Every line believed busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Full {
    /// Calls believed active now (rounded up).
    pub busy: u32,
    pub lines: u32,
    /// Whether `lines` was learned (shown as `~10`) rather than configured.
    pub learned: bool,
    /// When a line is likely to be free (seconds on the caller's clock).
    pub retry_at: f64,
}

#[derive(Debug, Clone)]
pub struct Estimate {
    configured: Option<u32>,
    learned: Option<f64>,
    /// Median seconds a call holds a line.
    hold: f64,
    /// Start times of calls placed and not yet forgotten.
    starts: VecDeque<f64>,
    in_flight: u32,
    last_event: f64,
    last_refused: bool,
    /// Before the first refusal an accepted probe halves `hold`.
    slow_start: bool,
    accepted_since_probe: u32,
    trying_one_more: bool,
    /// Counted refusals so far: a refusal of a request sent before the latest counted one
    /// says nothing new (it was on its way when the estimate changed) and teaches nothing.
    episode: u64,
    pub refusals: u64,
    pub accepted: u64,
}

impl Default for Estimate {
    fn default() -> Self {
        Estimate::new(None, None, DEFAULT_HOLD)
    }
}

/// The standard normal's upper tail, P(Z > z) (Abramowitz and Stegun 7.1.26, error < 2e-7).
fn normal_upper(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Chance that a call `age` seconds old still holds its line, for median `hold`.
fn still_going(age: f64, hold: f64) -> f64 {
    if age <= 0.0 {
        return 1.0;
    }
    normal_upper((age / hold).ln() / SIGMA)
}

impl Estimate {
    /// `learned` and `hold` as saved before a restart (or `None` and [`DEFAULT_HOLD`]).
    pub fn new(configured: Option<u32>, learned: Option<f64>, hold: f64) -> Estimate {
        let restored = hold.is_finite() && (hold - DEFAULT_HOLD).abs() > f64::EPSILON;
        Estimate {
            configured: configured.filter(|n| *n > 0),
            learned: learned.filter(|l| l.is_finite() && *l >= 1.0),
            hold: if hold.is_finite() {
                hold.clamp(MIN_HOLD, MAX_HOLD)
            } else {
                DEFAULT_HOLD
            },
            starts: VecDeque::new(),
            in_flight: 0,
            last_event: f64::NEG_INFINITY,
            last_refused: false,
            slow_start: !restored,
            accepted_since_probe: 0,
            trying_one_more: false,
            episode: 0,
            refusals: 0,
            accepted: 0,
        }
    }

    pub fn configure(&mut self, lines: Option<u32>) {
        self.configured = lines.filter(|n| *n > 0);
    }

    /// The line count in force: configured, else learned, else `None` (not known yet).
    pub fn lines(&self) -> Option<u32> {
        self.configured
            .or_else(|| self.learned.map(|l| l.floor().max(1.0) as u32))
    }

    pub fn is_learned(&self) -> bool {
        self.configured.is_none()
    }

    pub fn hold(&self) -> f64 {
        self.hold
    }

    /// What survives a restart: the learned line count and the hold.
    pub fn saved(&self) -> (Option<f64>, f64) {
        (self.learned, self.hold)
    }

    /// The episode a request admitted now belongs to (see [`Estimate::refused`]).
    pub fn episode(&self) -> u64 {
        self.episode
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Calls believed active at `t`: requests waiting for a reply plus the calls placed that
    /// are likely still going.
    pub fn active(&self, t: f64) -> f64 {
        self.active_with(t, self.hold)
    }

    fn active_with(&self, t: f64, hold: f64) -> f64 {
        f64::from(self.in_flight)
            + self
                .starts
                .iter()
                .map(|s| still_going(t - s, hold))
                .sum::<f64>()
    }

    fn forget(&mut self, t: f64) {
        while self
            .starts
            .front()
            .is_some_and(|s| still_going(t - s, self.hold) < FORGET)
        {
            self.starts.pop_front();
        }
    }

    /// When the next probe may leave (every line believed busy).
    fn probe_at(&self, lines: u32) -> f64 {
        let k = if self.last_refused { 2.0 } else { 1.0 };
        self.last_event + k * self.hold / f64::from(lines.max(1))
    }

    /// May a call start at `t`? On `Ok` the request counts as in flight until
    /// [`placed`](Self::placed), [`refused`](Self::refused) or [`released`](Self::released).
    pub fn admit(&mut self, t: f64) -> Result<Admitted, Full> {
        self.forget(t);
        let Some(lines) = self.lines() else {
            self.in_flight += 1;
            return Ok(Admitted::Free);
        };
        let limit = f64::from(lines) - headroom(lines);
        let active = self.active(t);
        if active <= limit {
            self.in_flight += 1;
            return Ok(if active >= limit - 1.0 {
                Admitted::Near
            } else {
                Admitted::Free
            });
        }
        if self.in_flight == 0 && t >= self.probe_at(lines) {
            self.in_flight += 1;
            return Ok(Admitted::Probe);
        }
        Err(Full {
            busy: active.ceil() as u32,
            lines,
            learned: self.is_learned(),
            retry_at: self.next_free(t, lines, limit),
        })
    }

    /// The first moment after `t` at which a call may start: the model's calls end below the
    /// limit, or the next probe, whichever comes first (never sooner than 50 ms).
    fn next_free(&self, t: f64, lines: u32, limit: f64) -> f64 {
        let probe = if self.in_flight == 0 {
            self.probe_at(lines)
        } else {
            // A reply is awaited: it changes the picture; look again shortly after.
            t + (self.hold / f64::from(lines.max(1))).min(0.1)
        };
        let step = (self.hold / f64::from(lines.max(1)) / 20.0).clamp(0.05, 5.0);
        let mut at = t + 0.05;
        while at < probe {
            if self.active(at) <= limit {
                return at;
            }
            at += step;
        }
        probe.max(t + 0.05)
    }

    /// The call admitted at `how` was placed at `t`: it holds a line from now.
    pub fn placed(&mut self, t: f64, how: Admitted) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.starts.push_back(t);
        self.accepted += 1;
        self.last_event = t;
        self.last_refused = false;
        let shrink = STEP_UP * TARGET_REFUSALS / (1.0 - TARGET_REFUSALS);
        match how {
            Admitted::Probe if self.slow_start => self.hold *= 0.5,
            Admitted::Probe => self.hold *= (-3.0 * shrink).exp(),
            Admitted::Near => self.hold *= (-shrink).exp(),
            Admitted::Free => {}
        }
        self.hold = self.hold.clamp(MIN_HOLD, MAX_HOLD);
        if self.configured.is_none() {
            if let Some(l) = self.learned {
                self.accepted_since_probe += 1;
                if self.accepted_since_probe >= PROBE_UP_EVERY * (l as u32).max(1) {
                    self.learned = Some(l.floor() + 1.0);
                    self.accepted_since_probe = 0;
                    self.trying_one_more = true;
                }
            }
        }
    }

    /// The service answered at `t` that every line is busy, to a request admitted in
    /// `episode`. Returns when a line is likely free. Only the first refusal of an episode
    /// teaches: the others were already on their way.
    pub fn refused(&mut self, t: f64, episode: u64) -> Full {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.refusals += 1;
        self.last_event = t;
        // The calls placed and believed going; requests still awaiting a reply are not
        // confirmed and may be refused too.
        let believed = self.active(t) - f64::from(self.in_flight);
        let learns = episode == self.episode;
        if learns {
            self.episode += 1;
            // The next probe waits longer only after a refusal that told something new.
            self.last_refused = true;
        }
        match (self.configured, self.learned) {
            _ if !learns => {}
            (Some(_), _) => self.longer(),
            // The count, learned: the hold's slow start goes on.
            (None, None) => self.learned = Some(believed.round().max(1.0)),
            // The line tried on top was in use: there is no such line.
            (None, Some(l)) if self.trying_one_more && believed > l - 1.0 - headroom(l as u32) => {
                self.learned = Some((l.floor() - 1.0).max(1.0));
                self.trying_one_more = false;
                self.accepted_since_probe = 0;
            }
            (None, Some(_)) => self.longer(),
        }
        let lines = self.lines().unwrap_or(1);
        let limit = f64::from(lines) - headroom(lines);
        Full {
            busy: lines,
            lines,
            learned: self.is_learned(),
            retry_at: self.next_free(t, lines, limit),
        }
    }

    /// A refusal the model did not expect: calls hold their lines longer than it believed.
    fn longer(&mut self) {
        self.slow_start = false;
        self.hold = (self.hold * STEP_UP.exp()).min(MAX_HOLD);
    }

    /// The request admitted ended without a call (another error, or never sent).
    pub fn released(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A call-end event (outcome tracking): the oldest call believed active frees its line now.
    pub fn ended(&mut self) {
        self.starts.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_lines_admit_that_many_long_calls_and_then_wait() {
        let mut e = Estimate::new(Some(3), None, DEFAULT_HOLD);
        for i in 0..3 {
            let how = e.admit(f64::from(i)).expect("a line is free");
            e.placed(f64::from(i), how);
        }
        let full = e.admit(3.0).expect_err("three calls hold the three lines");
        assert_eq!((full.busy, full.lines, full.learned), (3, 3, false));
        assert!(full.retry_at > 3.0 + 10.0, "{full:?}");
    }

    #[test]
    fn an_unknown_line_count_is_learned_from_the_first_refusal() {
        let mut e = Estimate::default();
        for i in 0..10 {
            let t = f64::from(i) * 0.05;
            let how = e.admit(t).expect("no limit known yet");
            e.placed(t, how);
        }
        assert_eq!(e.lines(), None);
        e.admit(0.5).expect("still no limit known");
        let full = e.refused(0.51, 0);
        assert_eq!(e.lines(), Some(10));
        assert_eq!((full.lines, full.learned), (10, true));
        assert!(e.admit(0.6).is_err(), "ten calls believed active");
    }

    #[test]
    fn refusals_lengthen_the_hold_and_accepted_probes_shorten_it() {
        let mut e = Estimate::new(Some(2), None, 20.0);
        e.refused(0.0, 0);
        assert!(e.hold() > 20.0);
        let mut e = Estimate::new(Some(2), None, DEFAULT_HOLD);
        for _ in 0..2 {
            let how = e.admit(0.0).unwrap();
            e.placed(0.0, how);
        }
        assert!(e.admit(1.0).is_err());
        // Two lines believed busy for about a minute: a probe goes after `hold / 2`.
        let at = DEFAULT_HOLD / 2.0 + 0.1;
        let how = e.admit(at).unwrap();
        assert_eq!(how, Admitted::Probe);
        e.placed(at, how);
        assert!(e.hold() < DEFAULT_HOLD * 0.6, "slow start halves the hold");
    }

    #[test]
    fn refusals_of_requests_already_on_their_way_teach_nothing_more() {
        let mut e = Estimate::new(Some(10), None, 20.0);
        let episode = e.episode();
        for _ in 0..5 {
            e.admit(0.0).unwrap();
        }
        e.refused(0.1, episode);
        let once = e.hold();
        for _ in 0..4 {
            e.refused(0.1, episode);
        }
        assert_eq!(e.hold(), once, "one lesson per episode");
        assert_eq!(e.refusals, 5);
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn a_call_end_event_frees_a_line_at_once() {
        let mut e = Estimate::new(Some(1), None, DEFAULT_HOLD);
        let how = e.admit(0.0).unwrap();
        e.placed(0.0, how);
        assert!(e.admit(1.0).is_err());
        e.ended();
        assert!(e.admit(1.0).is_ok());
    }

    #[test]
    fn the_normal_tail_is_accurate_enough() {
        assert!((normal_upper(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_upper(1.0) - 0.158_655).abs() < 1e-5);
        assert!((normal_upper(-1.0) - 0.841_345).abs() < 1e-5);
        assert!((still_going(5.0, 5.0) - 0.5).abs() < 1e-6);
    }
}
