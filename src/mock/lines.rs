//! The stand-in's AI agents: each takes `agent_lines` calls at once, and a call holds its line for
//! its ring and talk time (drawn from [`CallLength`]). A call asked for while every line of its
//! agent is busy is refused with `FailedOperation.AcquireQuota`, as the service does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One part of a call's length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Fixed(Duration),
    /// Log-normal around `median` with spread `sigma` (0.5: p90 ≈ 1.9 × the median).
    LogNormal {
        median: Duration,
        sigma: f64,
    },
}

impl Length {
    /// `"5s"` (fixed), `"lognormal:5s"` (sigma 0.5) or `"lognormal:5s:0.8"`.
    pub fn parse(text: &str) -> Result<Length, String> {
        let expected = || {
            format!(
                "{text:?}: expected a duration (\"5s\"), \"lognormal:MEDIAN\" or \"lognormal:MEDIAN:SIGMA\" (e.g. \"lognormal:5s:0.5\")"
            )
        };
        let mut parts = text.trim().split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(d), None, None, None) => crate::duration::parse(d)
                .map(Length::Fixed)
                .map_err(|_| expected()),
            (Some("lognormal"), Some(m), sigma, None) => {
                let median = crate::duration::parse(m).map_err(|_| expected())?;
                let sigma = match sigma {
                    None => 0.5,
                    Some(s) => s
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && (0.0..=3.0).contains(s))
                        .ok_or_else(expected)?,
                };
                Ok(Length::LogNormal { median, sigma })
            }
            _ => Err(expected()),
        }
    }

    /// The mean length (for benchmarks' ideal figures).
    pub fn mean(&self) -> Duration {
        match *self {
            Length::Fixed(d) => d,
            Length::LogNormal { median, sigma } => median.mul_f64((sigma * sigma / 2.0).exp()),
        }
    }

    /// One length drawn from this one.
    pub fn draw(&self) -> Duration {
        match *self {
            Length::Fixed(d) => d,
            Length::LogNormal { median, sigma } => {
                let u1: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rand::random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median.mul_f64((sigma * z).exp().min(50.0))
            }
        }
    }
}

/// How long a call holds its agent's line: ring, then talk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLength {
    pub ring: Length,
    pub talk: Length,
}

impl Default for CallLength {
    fn default() -> Self {
        CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::LogNormal {
                median: Duration::from_secs(5),
                sigma: 0.5,
            },
        }
    }
}

impl CallLength {
    pub fn mean(&self) -> Duration {
        self.ring.mean() + self.talk.mean()
    }
}

/// The busy lines of every agent, and every call's span (for utilisation figures).
#[derive(Default)]
pub struct AgentLines {
    ends: HashMap<u64, Vec<Instant>>,
    /// (start, end) of every call placed while lines are simulated.
    pub spans: Vec<(Instant, Instant)>,
    pub refused: u64,
    pub max_active: u32,
}

impl AgentLines {
    /// Take a line of `agent` at `now` for a call of `length`; `false` when all `lines` are busy.
    #[cfg(test)]
    pub fn take(&mut self, agent: u64, lines: u32, now: Instant, length: &CallLength) -> bool {
        self.take_until(
            agent,
            lines,
            now,
            now + length.ring.draw() + length.talk.draw(),
        )
    }

    /// Take a line of `agent` at `now` for a call that ends at `end`; `false` when all `lines`
    /// are busy.
    pub fn take_until(&mut self, agent: u64, lines: u32, now: Instant, end: Instant) -> bool {
        let ends = self.ends.entry(agent).or_default();
        ends.retain(|e| *e > now);
        if ends.len() >= lines as usize {
            self.refused += 1;
            return false;
        }
        ends.push(end);
        self.max_active = self.max_active.max(ends.len() as u32);
        self.spans.push((now, end));
        true
    }

    /// Calls of `agent` holding a line at `now`.
    pub fn active(&self, agent: u64, now: Instant) -> u32 {
        self.ends
            .get(&agent)
            .map_or(0, |e| e.iter().filter(|e| **e > now).count() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_parse_and_bad_ones_say_what_was_expected() {
        assert_eq!(
            Length::parse("90s").unwrap(),
            Length::Fixed(Duration::from_secs(90))
        );
        assert_eq!(
            Length::parse("lognormal:5s").unwrap(),
            Length::LogNormal {
                median: Duration::from_secs(5),
                sigma: 0.5
            }
        );
        assert!(Length::parse("lognormal:5s:9").is_err());
        let e = Length::parse("normal:5s").unwrap_err();
        assert!(e.contains("expected a duration"), "{e}");
    }

    #[test]
    fn every_line_busy_refuses_and_each_agent_has_its_own() {
        let mut a = AgentLines::default();
        let long = CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::Fixed(Duration::from_secs(3600)),
        };
        let now = Instant::now();
        assert!(a.take(1, 2, now, &long));
        assert!(a.take(1, 2, now, &long));
        assert!(!a.take(1, 2, now, &long));
        assert!(a.take(2, 2, now, &long));
        assert_eq!((a.refused, a.active(1, now), a.active(2, now)), (1, 2, 1));
        // Past the calls' end the lines are free again.
        assert!(a.take(1, 2, now + Duration::from_secs(3601), &long));
    }
}
