//! A simulation of dialling an agent through the lines estimate ([`super::Estimate`]), for
//! tests and `benches/lines_sim.rs`: a simulated agent with a fixed number of lines and calls
//! of random length, a dispatcher that sends when the estimate admits (at most `rate` requests
//! a second) and retries when it says, replies after a fixed latency, and, with outcome
//! tracking, each call's report seen by a poller. Pure: time is simulated seconds passed to the
//! estimate, and every draw comes from a seeded generator, so a seed gives the same run.

use super::estimate::{Claim, Estimate, Rng, DEFAULT_HOLD};

/// How long the simulated calls hold a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Fixed(f64),
    LogNormal { median: f64, sigma: f64 },
}

impl Length {
    pub fn mean(&self) -> f64 {
        match *self {
            Length::Fixed(d) => d,
            Length::LogNormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
        }
    }

    fn draw(&self, rng: &mut Rng) -> f64 {
        match *self {
            Length::Fixed(d) => d,
            Length::LogNormal { median, sigma } => median * (sigma * rng.normal()).exp(),
        }
    }
}

/// Outcome tracking in the simulation: a call's record is visible `delay` seconds after the
/// whole second its call ended in is over (the stand-in's rule), and gives its end rounded
/// down to a whole second. The poller works as the dialer's: a check asks about every call
/// placed and not reported yet, its answer comes after the reply latency, and the next check
/// is sent `every` after that answer (plus `pass`, the check's own work), so checks drift
/// against the whole seconds rather than falling just after each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reporting {
    pub delay: f64,
    pub every: f64,
    /// A check's own work beyond the reply (the store's writes).
    pub pass: f64,
    /// While the dispatcher is held for a line, checks go just after each whole second (when
    /// records become visible), as the tracker's do ([`crate::outcomes::schedule::busy_check_at`]).
    pub busy_checks: bool,
}

impl Reporting {
    /// Records `delay` late, a check every second (the benchmark's `[outcomes]`).
    pub fn every_second(delay: f64) -> Reporting {
        Reporting {
            delay,
            every: 1.0,
            pass: 0.02,
            busy_checks: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Setup {
    /// The simulated agent's lines.
    pub lines: u32,
    /// The line count the dialer is told (`agent_lines`), if any.
    pub configured: Option<u32>,
    pub length: Length,
    /// Seconds from a request to its reply (the agent decides when it arrives, at once).
    pub latency: f64,
    pub contacts: u32,
    /// Requests a second at most.
    pub rate: f64,
    pub reporting: Option<Reporting>,
    pub seed: u64,
    /// The hold the estimate starts from (as restored from the store; [`DEFAULT_HOLD`]: none).
    pub hold: f64,
}

impl Setup {
    /// The benchmark's setting: 10 lines, log-normal calls (median 5 s, sigma 0.5), 300
    /// contacts, 50 ms replies, 20 requests a second.
    pub fn benchmark(seed: u64) -> Setup {
        Setup {
            lines: 10,
            configured: None,
            length: Length::LogNormal {
                median: 5.0,
                sigma: 0.5,
            },
            latency: 0.05,
            contacts: 300,
            rate: 20.0,
            reporting: None,
            seed,
            hold: DEFAULT_HOLD,
        }
    }

    /// Contacts x mean call length / lines: every line always busy.
    pub fn ideal(&self) -> f64 {
        f64::from(self.contacts) * self.length.mean() / f64::from(self.lines)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub requests: u32,
    pub refused: u32,
    pub first_start: f64,
    pub last_start: f64,
    /// Line-seconds held between the first and the last call's start.
    pub busy: f64,
    /// The most calls the estimate believed active when it let a call start (with a count in
    /// force).
    pub max_believed_at_start: f64,
    pub reports: u32,
}

impl Figures {
    pub fn refused_share(&self) -> f64 {
        f64::from(self.refused) / f64::from(self.requests.max(1))
    }

    /// Mean calls holding a line / lines, from the first call's start to the last's.
    pub fn utilisation(&self, lines: u32) -> f64 {
        let span = self.last_start - self.first_start;
        if span > 0.0 {
            self.busy / span / f64::from(lines)
        } else {
            0.0
        }
    }
}

/// A run: the estimate as it ended, and the figures.
pub struct Sim {
    pub setup: Setup,
    pub estimate: Estimate,
}

/// A reply on its way: when it arrives, the request's claim, the session if placed.
struct Reply {
    at: f64,
    claim: Claim,
    session: Option<u64>,
}

/// A placed call awaiting its report: its session and when its line is free.
struct Unreported {
    session: u64,
    end: f64,
}

impl Sim {
    pub fn new(setup: Setup) -> Sim {
        let mut estimate = Estimate::new(setup.configured, None, setup.hold);
        estimate.expect_reports(setup.reporting.is_some());
        Sim { setup, estimate }
    }

    /// Dial every contact once (a refused one goes back to the queue), to the last call's
    /// start.
    pub fn run(&mut self) -> Figures {
        let s = self.setup.clone();
        let mut rng = Rng(s.seed.wrapping_mul(0x9E37_79B9).wrapping_add(7));
        let mut ends: Vec<f64> = Vec::new();
        let mut spans: Vec<(f64, f64)> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut ends_of: std::collections::HashMap<u64, f64> = Default::default();
        let mut unreported: Vec<Unreported> = Vec::new();
        // The first check is sent at a random moment of the first second.
        let mut check_at = match s.reporting {
            Some(_) => rng.uniform(),
            None => f64::INFINITY,
        };
        let (mut left, mut placed, mut sessions) = (s.contacts, 0u32, 0u64);
        let mut f = Figures::default();
        let mut next_try = 0.0f64;
        // The dispatcher's last look found every line busy.
        let mut held = false;
        let busy_check = |t: f64| {
            crate::outcomes::schedule::busy_check_at((t * 1000.0).ceil() as i64) as f64 / 1000.0
        };
        let gap = 1.0 / s.rate;
        let earliest = |v: &[f64]| {
            v.iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
        };
        while placed < s.contacts {
            let reply = earliest(&replies.iter().map(|r| r.at).collect::<Vec<_>>());
            let attempt = if left > 0 { next_try } else { f64::INFINITY };
            let reply_at = reply.map_or(f64::INFINITY, |r| r.1);
            // A check's answer is read when its reply arrives.
            let report_at = check_at + s.latency;
            if reply_at <= attempt && reply_at <= report_at {
                let Some((i, t)) = reply else { break };
                let r = replies.swap_remove(i);
                match r.session {
                    Some(id) => {
                        self.estimate.placed(t, r.claim, Some(&id.to_string()));
                        if let Some(end) = ends_of.remove(&id) {
                            unreported.push(Unreported { session: id, end });
                        }
                        placed += 1;
                        // An answer wakes the held contacts: they look again.
                        next_try = next_try.min(t);
                    }
                    None => {
                        left += 1;
                        next_try = self.estimate.refused(t, r.claim).retry_at;
                    }
                }
                continue;
            }
            if report_at <= attempt {
                let Some(rep) = s.reporting else { break };
                let (asked, t) = (check_at, report_at);
                let mut freed = false;
                unreported.retain(|u| {
                    let session = u.session.to_string();
                    if u.end.ceil() + rep.delay <= asked {
                        f.reports += 1;
                        freed |= self.estimate.ended(t, u.end.floor(), &session);
                        false
                    } else {
                        self.estimate.missed(asked, &session);
                        true
                    }
                });
                if freed {
                    next_try = next_try.min(t);
                }
                check_at = t + rep.pass + rep.every;
                if held && rep.busy_checks {
                    check_at = check_at.min(busy_check(t + rep.pass));
                }
                continue;
            }
            if !attempt.is_finite() {
                break;
            }
            let t = attempt;
            let believed = self.estimate.active(t);
            match self.estimate.admit(t) {
                Ok((claim, _)) => {
                    held = false;
                    if self.estimate.lines().is_some() {
                        f.max_believed_at_start = f.max_believed_at_start.max(believed);
                    }
                    left -= 1;
                    f.requests += 1;
                    ends.retain(|e| *e > t);
                    let session = if ends.len() < s.lines as usize {
                        let end = t + s.length.draw(&mut rng);
                        ends.push(end);
                        spans.push((t, end));
                        if spans.len() == 1 {
                            f.first_start = t;
                        }
                        f.last_start = t;
                        sessions += 1;
                        if s.reporting.is_some() {
                            ends_of.insert(sessions, end);
                        }
                        Some(sessions)
                    } else {
                        f.refused += 1;
                        None
                    };
                    replies.push(Reply {
                        at: t + s.latency,
                        claim,
                        session,
                    });
                    next_try = t + gap;
                }
                Err(full) => {
                    held = true;
                    // The tracker's next wake (a check not sent yet) moves to the next
                    // whole second.
                    if s.reporting.is_some_and(|r| r.busy_checks) && check_at > t {
                        check_at = check_at.min(busy_check(t));
                    }
                    debug_assert!(full.retry_at > t, "{full:?} at {t}");
                    next_try = full.retry_at.max(t + 1e-3);
                }
            }
        }
        f.busy = spans
            .iter()
            .map(|(a, b)| (b.min(f.last_start) - a).max(0.0))
            .sum();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_run() {
        let setup = Setup {
            contacts: 40,
            ..Setup::benchmark(3)
        };
        let a = Sim::new(setup.clone()).run();
        let b = Sim::new(setup).run();
        assert_eq!((a.requests, a.refused), (b.requests, b.refused));
        assert_eq!(a.last_start.to_bits(), b.last_start.to_bits());
        assert!(a.requests >= 40);
    }
}
