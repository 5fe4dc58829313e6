//! Pacing by an AI agent's lines: the second limiter beside the request-rate one.
//!
//! An agent takes a fixed number of calls at once; each call holds a line for its ring and talk
//! time. [`Lines`] keeps one [`estimate::Estimate`] per AI agent id, shared by every campaign and
//! ad-hoc call of the process (one registry per engine, as the rate limiter), and lets a call
//! start only when a line is likely free. A [`LineTicket`] is the request's claim on a line: the
//! attempt settles it with the reply (placed: the call holds the line; refused for capacity: the
//! estimate learns; anything else: the line was never taken). A ticket dropped unsettled (a
//! request never sent) gives its claim back.
//!
//! The std `Mutex` here is never held across an `.await`.

pub mod estimate;
pub mod reports;
pub mod sim;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use estimate::{Admitted, Claim, Estimate, Full};

/// Every line of an agent believed busy, for people and the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Busy {
    pub agent: u64,
    pub busy: u32,
    pub lines: u32,
    pub learned: bool,
    /// When a line is likely to be free.
    pub retry_at: Instant,
    /// How far away that was when this was taken.
    pub wait: Duration,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let approx = if self.learned { "~" } else { "" };
        let secs = self.wait.as_secs_f64();
        let next = if secs < 10.0 {
            format!("{secs:.1} s")
        } else {
            format!("{secs:.0} s")
        };
        write!(
            f,
            "{} of {approx}{} lines busy, next try in {next}",
            self.busy, self.lines
        )
    }
}

/// An agent's figures for `status`, the API and `/metrics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentLines {
    pub agent: u64,
    /// The line count in force (`None`: not known yet, nothing refused so far).
    pub lines: Option<u32>,
    /// `true` when the count was learned from refusals, not configured.
    pub learned: bool,
    /// Calls believed active now (requests awaiting a reply included).
    pub active: f64,
    /// Median seconds a call is believed to hold a line.
    pub hold_seconds: f64,
    pub capacity_refusals: u64,
    pub calls_placed: u64,
}

/// What to keep in the store so the estimate survives a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saved {
    pub agent: u64,
    pub learned: Option<f64>,
    pub hold_seconds: f64,
}

struct Agent {
    estimate: Estimate,
    /// Contacts were held back for a line since the last answer: the next answer wakes them
    /// (it may say a line is free sooner than they were told).
    held: bool,
    /// The latest look for a line found every line busy (no call let through since): the
    /// outcome tracker checks the calls in progress more often meanwhile ([`Lines::waiting`]).
    waiting: bool,
    /// The hold last written to the store (a new value is saved when it moved by 5%).
    saved_hold: f64,
    saved_lines: Option<f64>,
}

pub struct Lines {
    epoch: Instant,
    agents: Mutex<HashMap<u64, Agent>>,
    /// Line counts the operator gave, by agent (the config's and campaigns' `agent_lines`).
    configured: Mutex<HashMap<u64, u32>>,
    /// Estimates read from the store, by agent, for agents not seen yet in this process.
    restored: Mutex<HashMap<u64, (Option<f64>, f64)>>,
    /// Outcome tracking reports every call's end ([`Lines::expect_reports`]).
    reports: std::sync::atomic::AtomicBool,
    /// Moved on by a call-end event, or an answer while contacts are held for a line: campaigns
    /// holding contacts for a line look again. A watch, not a notify: a receiver taken before
    /// a campaign finds every line busy sees a line freed at any moment after, even one freed
    /// before it starts waiting.
    freed: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            epoch: Instant::now(),
            agents: Mutex::new(HashMap::new()),
            configured: Mutex::new(HashMap::new()),
            restored: Mutex::new(HashMap::new()),
            reports: std::sync::atomic::AtomicBool::new(false),
            freed: tokio::sync::watch::Sender::new(0),
        }
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64()
    }

    fn instant(&self, secs: f64) -> Instant {
        self.epoch + Duration::from_secs_f64(secs.max(0.0))
    }

    /// The operator's line count for `agent` (`None`: learn it). The latest call wins.
    pub fn configure(&self, agent: u64, lines: Option<u32>) {
        let mut configured = lock(&self.configured);
        match lines {
            Some(n) => configured.insert(agent, n),
            None => configured.remove(&agent),
        };
        if let Some(a) = lock(&self.agents).get_mut(&agent) {
            a.estimate.configure(lines);
        }
    }

    /// Outcome tracking is on: every call placed from now on will be reported ended
    /// ([`Lines::call_ended`]), so a call not reported yet is believed going (or ended within
    /// the reports' lag, learned from the reports).
    pub fn expect_reports(&self) {
        self.reports
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for a in lock(&self.agents).values_mut() {
            a.estimate.expect_reports(true);
        }
    }

    /// Estimates saved by an earlier process (see [`crate::store::Store::agent_lines`]).
    pub fn restore(&self, saved: impl IntoIterator<Item = Saved>) {
        let mut restored = lock(&self.restored);
        for s in saved {
            restored.insert(s.agent, (s.learned, s.hold_seconds));
        }
    }

    fn with_agent<T>(&self, agent: u64, f: impl FnOnce(&mut Agent) -> T) -> T {
        let mut agents = lock(&self.agents);
        let a = agents.entry(agent).or_insert_with(|| {
            let configured = lock(&self.configured).get(&agent).copied();
            let (learned, hold) = lock(&self.restored)
                .get(&agent)
                .copied()
                .unwrap_or((None, estimate::DEFAULT_HOLD));
            let mut estimate = Estimate::new(configured, learned, hold);
            estimate.expect_reports(self.reports.load(std::sync::atomic::Ordering::Relaxed));
            Agent {
                estimate,
                held: false,
                waiting: false,
                saved_hold: hold,
                saved_lines: learned,
            }
        });
        f(a)
    }

    /// A line for a call on `agent` now, or when one is likely free.
    pub fn try_start(self: &Arc<Self>, agent: u64) -> Result<LineTicket, Busy> {
        let now = Instant::now();
        let t = self.secs(now);
        match self.with_agent(agent, |a| {
            let admitted = a.estimate.admit(t);
            a.held |= admitted.is_err();
            a.waiting = admitted.is_err();
            admitted
        }) {
            Ok((claim, how)) => {
                tracing::trace!(
                    agent,
                    t,
                    how = ?how,
                    active = self.with_agent(agent, |a| a.estimate.active(t)),
                    "line: sent"
                );
                Ok(LineTicket {
                    lines: Some(self.clone()),
                    agent,
                    how,
                    claim,
                })
            }
            Err(full) => {
                tracing::trace!(
                    agent,
                    t,
                    busy = full.busy,
                    lines = full.lines,
                    retry_in = full.retry_at - t,
                    "line: held"
                );
                Err(self.busy(agent, full, now))
            }
        }
    }

    fn busy(&self, agent: u64, full: Full, now: Instant) -> Busy {
        let retry_at = self.instant(full.retry_at);
        Busy {
            agent,
            busy: full.busy,
            lines: full.lines,
            learned: full.learned,
            retry_at,
            wait: retry_at.saturating_duration_since(now),
        }
    }

    /// What to save when the estimate moved enough to be worth a write.
    fn to_save(&self, agent: u64, a: &mut Agent) -> Option<Saved> {
        let (learned, hold) = a.estimate.saved();
        let moved = (hold - a.saved_hold).abs() > 0.05 * a.saved_hold;
        if learned != a.saved_lines || moved {
            a.saved_hold = hold;
            a.saved_lines = learned;
            return Some(Saved {
                agent,
                learned,
                hold_seconds: hold,
            });
        }
        None
    }

    /// The hook for a call-end event (outcome tracking: a call record or a push): the call
    /// `session` (the SessionId `CreateAIAgentCall` returned) ended in the whole second from
    /// `ended_unix_ms` (the record's `EndedTimestamp`, rounded down, in ms). Its line is free
    /// at once, its length teaches the hold, its lateness the reports' lag, and every campaign
    /// waiting for a line looks again now. A session this process did not place (or already
    /// heard end) is ignored. Cheap and never blocks on I/O.
    pub fn call_ended(&self, session: &str, ended_unix_ms: i64) {
        let now = Instant::now();
        let ago_ms = crate::times::now_ms().saturating_sub(ended_unix_ms);
        let t = self.secs(now);
        let end = t - (ago_ms as f64) / 1000.0;
        let mut freed = false;
        for a in lock(&self.agents).values_mut() {
            freed |= a.estimate.ended(t, end, session);
            if freed {
                tracing::trace!(
                    session,
                    t,
                    end,
                    lag = a.estimate.report_lag(),
                    active = a.estimate.active(t),
                    hold = a.estimate.hold(),
                    "line: call ended"
                );
                break;
            }
        }
        if freed {
            self.wake();
        }
    }

    /// The hook for a check that did not find a call's record (outcome tracking polling
    /// `DescribeTelCdr`): the check asking about `session` was sent at `asked_unix_ms` and its
    /// answer, read in full, did not have it. So the call had not ended long enough before
    /// then for its record to be visible: it is believed going until then less how long
    /// records stay hidden (learned: see [`reports`]), not merely until `now` less the
    /// reports' whole lag. Cheap and never blocks on I/O; a session this process did not
    /// place, or heard end, is ignored.
    pub fn call_missed(&self, session: &str, asked_unix_ms: i64) {
        let now_ms = crate::times::now_ms();
        let t = self.secs(Instant::now());
        let asked = t - (now_ms.saturating_sub(asked_unix_ms) as f64) / 1000.0;
        // Where Unix whole seconds fall on this clock (the records' ends are whole seconds).
        let phase = (now_ms.rem_euclid(1000) as f64) / 1000.0 - t;
        for a in lock(&self.agents).values_mut() {
            a.estimate.whole_seconds_at(phase);
            if a.estimate.missed(asked, session) {
                break;
            }
        }
    }

    /// Whether a campaign waits for a line of some agent: its latest look found every line
    /// believed busy, and no call of that agent was let through since. Outcome tracking then
    /// asks about the calls in progress at every whole second (a call's record frees its line
    /// as soon as it is visible) instead of on their schedule.
    pub fn waiting(&self) -> bool {
        lock(&self.agents).values().any(|a| a.waiting)
    }

    fn wake(&self) {
        self.freed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes at every call-end event (or answer that may free a line sooner) from now on.
    /// Take it before looking for a line ([`Lines::try_start`]): then `changed()` resolves for
    /// a line freed after the look, however soon.
    pub fn freed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.freed.subscribe()
    }

    /// Every agent's figures, by agent id.
    pub fn snapshot(&self) -> Vec<AgentLines> {
        let t = self.secs(Instant::now());
        let agents = lock(&self.agents);
        let mut out: BTreeMap<u64, AgentLines> = BTreeMap::new();
        for (id, a) in agents.iter() {
            let e = &a.estimate;
            out.insert(
                *id,
                AgentLines {
                    agent: *id,
                    lines: e.lines(),
                    learned: e.is_learned(),
                    active: (e.active(t) * 10.0).round() / 10.0,
                    hold_seconds: (e.hold() * 10.0).round() / 10.0,
                    capacity_refusals: e.refusals,
                    calls_placed: e.accepted,
                },
            );
        }
        out.into_values().collect()
    }

    /// One agent's figures, if this process has dialled it.
    pub fn of(&self, agent: u64) -> Option<AgentLines> {
        self.snapshot().into_iter().find(|a| a.agent == agent)
    }

    /// "10 of ~10 lines busy, next try in 4 s" when every line of `agent` is believed busy.
    pub fn describe(&self, agent: u64) -> Option<String> {
        let now = Instant::now();
        let t = self.secs(now);
        let mut agents = lock(&self.agents);
        let a = agents.get_mut(&agent)?;
        // A look, not a claim: admit and give the claim straight back.
        match a.estimate.admit(t) {
            Ok((claim, _)) => {
                a.estimate.released(claim);
                None
            }
            Err(full) => Some(self.busy(agent, full, now).to_string()),
        }
    }
}

/// A request's claim on one of its agent's lines. Settle it with the reply; dropped unsettled,
/// the claim is given back.
pub struct LineTicket {
    lines: Option<Arc<Lines>>,
    agent: u64,
    how: Admitted,
    claim: Claim,
}

impl fmt::Debug for LineTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineTicket")
            .field("agent", &self.agent)
            .field("how", &self.how)
            .finish()
    }
}

impl LineTicket {
    pub fn agent(&self) -> u64 {
        self.agent
    }

    /// The call was placed (or may have been: a reply lost in doubt holds a line too);
    /// `session` names it for a call-end event ([`Lines::call_ended`]).
    pub fn placed(mut self, session: Option<&str>) -> Option<Saved> {
        let lines = self.lines.take()?;
        let t = lines.secs(Instant::now());
        let (agent, claim) = (self.agent, self.claim);
        let (saved, wake) = lines.with_agent(agent, |a| {
            a.estimate.placed(t, claim, session);
            tracing::trace!(
                agent,
                t,
                session,
                lines = a.estimate.lines(),
                active = a.estimate.active(t),
                "line: placed"
            );
            (lines.to_save(agent, a), std::mem::take(&mut a.held))
        });
        if wake {
            lines.wake();
        }
        saved
    }

    /// Refused for capacity: when a line is likely free, and what to save.
    pub fn refused(mut self) -> Option<(Busy, Option<Saved>)> {
        let lines = self.lines.take()?;
        let now = Instant::now();
        let t = lines.secs(now);
        let (agent, claim) = (self.agent, self.claim);
        let (full, saved, wake) = lines.with_agent(agent, |a| {
            let full = a.estimate.refused(t, claim);
            tracing::trace!(
                agent,
                t,
                lines = a.estimate.lines(),
                active = a.estimate.active(t),
                hold = a.estimate.hold(),
                "line: refused"
            );
            (full, lines.to_save(agent, a), std::mem::take(&mut a.held))
        });
        if wake {
            lines.wake();
        }
        Some((lines.busy(agent, full, now), saved))
    }

    /// Why this call was let through (a probe goes at even odds).
    pub fn how(&self) -> Admitted {
        self.how
    }
}

impl Drop for LineTicket {
    fn drop(&mut self) {
        if let Some(lines) = self.lines.take() {
            let claim = self.claim;
            lines.with_agent(self.agent, |a| a.estimate.released(claim));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_end_event_frees_the_line_and_wakes_the_waiting_campaigns() {
        let lines = Arc::new(Lines::new());
        lines.configure(7, Some(1));
        let _ = lines
            .try_start(7)
            .expect("the one line")
            .placed(Some("s-7"));
        // A campaign looks (its receiver taken first) and finds the line busy.
        let mut freed = lines.freed();
        assert!(lines.try_start(7).is_err());
        let now = crate::times::now_ms();
        assert!(lines.waiting(), "a campaign waits for the agent's line");
        // Another agent's session, or one this process never placed: nothing freed, no wake.
        lines.call_ended("s-unknown", now);
        assert!(!freed.has_changed().expect("the lines live"));
        assert!(lines.try_start(7).is_err());
        // The line frees before the campaign starts waiting: the wait still ends at once.
        lines.call_ended("s-7", now);
        assert!(freed.has_changed().expect("the lines live"));
        assert!(
            futures_util::FutureExt::now_or_never(freed.changed()).is_some(),
            "a line freed between the look and the wait wakes the waiter"
        );
        assert!(lines.try_start(7).is_ok(), "the line is free at once");
        assert!(!lines.waiting(), "a call let through: nobody waits");
        // Seen once: no second wake for the same line.
        assert!(!freed.has_changed().expect("the lines live"));
    }

    #[test]
    fn agents_have_their_own_lines_and_campaigns_on_one_agent_share_them() {
        let lines = Arc::new(Lines::new());
        lines.configure(1, Some(2));
        lines.configure(2, Some(1));
        let a = lines.try_start(1).expect("line 1 of agent 1");
        let b = lines.try_start(1).expect("line 2 of agent 1");
        assert!(lines.try_start(1).is_err(), "agent 1 is full");
        let c = lines.try_start(2).expect("agent 2 has its own line");
        assert!(lines.try_start(2).is_err());
        let busy = lines.try_start(1).unwrap_err();
        assert!(
            busy.to_string()
                .starts_with("2 of 2 lines busy, next try in"),
            "{busy}"
        );
        // A request that never left gives its line back.
        drop(a);
        let d = lines.try_start(1).expect("a line given back");
        let _ = (b.placed(None), c.placed(None), d.placed(None));
    }
}
