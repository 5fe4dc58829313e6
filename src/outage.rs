//! The endpoint's circuit breaker, shared by every campaign on an engine (like the limiter).
//!
//! A request that never left (DNS, connect refused, TLS, no route: [`CallError::NotSent`]) says
//! nothing about its contact: the endpoint is down for everyone. The first such failure opens
//! the breaker: nothing new is sent; one contact's request at a time goes through as a probe,
//! at growing intervals (`run.outage_probe_initial`, doubling up to `run.outage_probe_max`);
//! the first request that reaches the service (any reply, even an error code) closes it and
//! dialling resumes at full pace. `run` gives up after `run.outage_limit`.
//!
//! Invariants:
//! - At most one probe is out at a time, across every campaign sharing the breaker.
//! - A not-sent failure uses none of the contact's attempts: it goes back to `pending`, due at
//!   once ([`unsent_outcome`]), never `failed`.
//! - A [`Pass`] that ends without a verdict (the contact was held back, the run stopped) gives
//!   its probe back when dropped, so a probe is never lost.
//!
//! The std `Mutex` is never held across an `.await`.
//!
//! [`CallError::NotSent`]: crate::ccc::CallError::NotSent

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::{AttemptOutcome, DueContact};

/// The code a run halted by an outage reports (not a service code: the service was not reached).
pub const CODE: &str = "EndpointUnreachable";

/// Defaults of `[run]`'s outage keys.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(600);
pub const DEFAULT_PROBE_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_PROBE_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageSettings {
    /// Wait before the first probe; doubled after each failed probe.
    pub probe_initial: Duration,
    /// The longest wait between two probes.
    pub probe_max: Duration,
    /// Give up after the endpoint has been unreachable this long (`run`); `None`: never
    /// (`serve` keeps its campaigns paused and probing).
    pub limit: Option<Duration>,
}

impl Default for OutageSettings {
    fn default() -> Self {
        OutageSettings {
            probe_initial: DEFAULT_PROBE_INITIAL,
            probe_max: DEFAULT_PROBE_MAX,
            limit: Some(DEFAULT_LIMIT),
        }
    }
}

/// An outage as the operator sees it (times in unix ms). Persisted in the store, so `status`
/// can show it from another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub since: i64,
    pub next_probe_at: i64,
    /// Probes that failed so far.
    pub probes_failed: u32,
    /// Why the last request did not leave (e.g. the DNS or connect error).
    pub last_error: String,
    /// Set when `run` gave up waiting (`run.outage_limit`).
    #[serde(default)]
    pub gave_up_at: Option<i64>,
}

fn utc(ms: i64) -> String {
    crate::times::utc_text(ms)
}

impl Outage {
    /// "endpoint unreachable since …, next probe at …" (or when the run gave up).
    pub fn describe(&self) -> String {
        match self.gave_up_at {
            Some(at) => format!(
                "endpoint unreachable since {}, gave up at {} after {} failed probes (last error: {})",
                utc(self.since),
                utc(at),
                self.probes_failed,
                self.last_error
            ),
            None => format!(
                "endpoint unreachable since {}, next probe at {} ({} failed probes; last error: {})",
                utc(self.since),
                utc(self.next_probe_at),
                self.probes_failed,
                self.last_error
            ),
        }
    }
}

/// Timing runs on tokio's clock (paused in tests); the [`Outage`] shown carries wall-clock times.
#[derive(Debug, Default)]
struct State {
    outage: Option<Outage>,
    opened: Option<Instant>,
    next_probe: Option<Instant>,
    interval: Duration,
    probe_out: bool,
}

/// The breaker. Build one per engine and share it (`Arc`) with every campaign.
#[derive(Debug)]
pub struct Breaker {
    settings: OutageSettings,
    state: Mutex<State>,
    /// The current outage, for waiters and the recorders (`None`: the endpoint is reachable).
    changed: watch::Sender<Option<Outage>>,
}

/// What the dispatcher may do with its next contact.
#[derive(Debug)]
pub enum Admit {
    Go(Pass),
    /// `run.outage_limit` passed with the endpoint still unreachable.
    GiveUp(Outage),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Breaker {
    pub fn new(settings: OutageSettings) -> Breaker {
        Breaker {
            settings,
            state: Mutex::new(State::default()),
            changed: watch::channel(None).0,
        }
    }

    pub fn settings(&self) -> &OutageSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outage under way, if any.
    pub fn current(&self) -> Option<Outage> {
        self.lock().outage.clone()
    }

    /// Changes of [`Breaker::current`] (opened, a probe failed, closed).
    pub fn subscribe(&self) -> watch::Receiver<Option<Outage>> {
        self.changed.subscribe()
    }

    /// Wait until a request may leave: at once while the endpoint is reachable; during an
    /// outage, until it is this caller's turn to probe (or a probe of another got through).
    pub async fn admit(self: &Arc<Self>) -> Admit {
        loop {
            let mut rx = self.changed.subscribe();
            let now = Instant::now();
            let wake_at = {
                let mut s = self.lock();
                let (Some(o), Some(opened), Some(next_probe)) = (&s.outage, s.opened, s.next_probe)
                else {
                    return Admit::Go(Pass::new(self.clone(), false));
                };
                let give_up_at = self.settings.limit.map(|l| opened + l);
                if give_up_at.is_some_and(|at| now >= at) {
                    return Admit::GiveUp(o.clone());
                }
                if !s.probe_out && now >= next_probe {
                    s.probe_out = true;
                    return Admit::Go(Pass::new(self.clone(), true));
                }
                let far = now + Duration::from_secs(60);
                let next = if s.probe_out { far } else { next_probe };
                next.min(give_up_at.unwrap_or(far))
            };
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// A request did not leave.
    fn not_sent(&self, probe: bool, reason: &str, now: i64) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let initial = self.settings.probe_initial;
        match &mut s.outage {
            None => {
                tracing::error!(reason = %reason, probe_in_ms = ms(initial), "endpoint unreachable: sending nothing new; probing with one contact at a time");
                s.interval = initial;
                s.opened = Some(Instant::now());
                s.next_probe = Some(Instant::now() + initial);
                s.outage = Some(Outage {
                    since: now,
                    next_probe_at: now.saturating_add(ms(initial)),
                    probes_failed: 0,
                    last_error: reason.to_string(),
                    gave_up_at: None,
                });
            }
            Some(o) if probe => {
                let interval = s
                    .interval
                    .saturating_mul(2)
                    .clamp(initial, self.settings.probe_max.max(initial));
                o.probes_failed += 1;
                o.next_probe_at = now.saturating_add(ms(interval));
                o.last_error = reason.to_string();
                tracing::warn!(reason = %reason, probes_failed = o.probes_failed, next_probe_in_ms = ms(interval), "endpoint still unreachable");
                s.interval = interval;
                s.next_probe = Some(Instant::now() + interval);
                s.probe_out = false;
            }
            // A request that left before the breaker opened: the outage is already known.
            Some(_) => return,
        }
        let current = s.outage.clone();
        drop(guard);
        self.changed.send_replace(current);
    }

    /// A request reached the service (whatever it answered).
    fn reached(&self, probe: bool, now: i64) {
        let mut s = self.lock();
        if probe {
            s.probe_out = false;
        }
        if let Some(o) = s.outage.take() {
            s.opened = None;
            s.next_probe = None;
            tracing::info!(
                down_for_s = (now - o.since) / 1000,
                "endpoint reachable again: dialling resumes"
            );
            s.probe_out = false;
            drop(s);
            self.changed.send_replace(None);
        }
    }

    /// A probe ended without a verdict: another may go.
    fn give_back(&self) {
        let mut s = self.lock();
        if s.probe_out {
            s.probe_out = false;
            let current = s.outage.clone();
            drop(s);
            self.changed.send_replace(current);
        }
    }
}

/// Leave to send one request. A probe's pass that is dropped without a verdict gives the
/// probe back.
#[derive(Debug)]
pub struct Pass {
    breaker: Arc<Breaker>,
    probe: bool,
    settled: bool,
}

impl Pass {
    fn new(breaker: Arc<Breaker>, probe: bool) -> Pass {
        Pass {
            breaker,
            probe,
            settled: false,
        }
    }

    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Whether the request may still leave now: a probe may; any other only while the endpoint
    /// is not known to be down (the breaker may have opened while this one waited its turn).
    pub fn may_send(&self) -> bool {
        self.probe || self.breaker.lock().outage.is_none()
    }

    /// The request did not leave (`reason`: why).
    pub fn not_sent(mut self, reason: &str) {
        self.settled = true;
        self.breaker
            .not_sent(self.probe, reason, crate::dispatch::now_ms());
    }

    /// The request reached the service.
    pub fn reached(mut self) {
        self.settled = true;
        self.breaker.reached(self.probe, crate::dispatch::now_ms());
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.give_back();
        }
    }
}

/// Keep the store's record of the outage in step with `breaker` until the task is aborted
/// (`status` reads it from another process).
pub async fn record(breaker: Arc<Breaker>, store: crate::store::Store) {
    let mut rx = breaker.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Err(e) = store.set_outage(current).await {
            tracing::warn!(error = %e, "cannot record the endpoint's outage in the store");
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Where a not-sent request leaves its contact: `pending`, due at once, no attempt used.
pub fn unsent_outcome(contact: &DueContact, reason: String, finished_at: i64) -> AttemptOutcome {
    AttemptOutcome {
        error_code: Some("NotSent".into()),
        error_message: Some(reason),
        ..AttemptOutcome::not_sent(contact, finished_at, finished_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(limit: Option<Duration>) -> Arc<Breaker> {
        Arc::new(Breaker::new(OutageSettings {
            probe_initial: Duration::from_millis(100),
            probe_max: Duration::from_millis(400),
            limit,
        }))
    }

    async fn pass(b: &Arc<Breaker>) -> Pass {
        match b.admit().await {
            Admit::Go(p) => p,
            Admit::GiveUp(o) => panic!("gave up: {o:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_not_sent_request_opens_the_breaker_and_probes_back_off_up_to_the_cap() {
        let b = breaker(None);
        let first = pass(&b).await;
        assert!(!first.is_probe());
        let late = pass(&b).await;
        first.not_sent("connection refused");
        let o = b.current().expect("open");
        assert_eq!(o.next_probe_at - o.since, 100);
        // A request admitted before the breaker opened may not leave any more.
        assert!(!late.may_send());
        late.not_sent("connection refused");
        assert_eq!(b.current().expect("open").probes_failed, 0);

        // Each probe comes after the wait: 100 ms, then 200, 400, capped at 400.
        let mut gaps = Vec::new();
        for _ in 0..4 {
            let asked = Instant::now();
            let p = pass(&b).await;
            gaps.push(asked.elapsed().as_millis());
            assert!(p.is_probe() && p.may_send());
            p.not_sent("connection refused");
        }
        assert_eq!(gaps, [100, 200, 400, 400]);
        assert_eq!(b.current().expect("open").probes_failed, 4);
        let o = b.current().expect("open");
        assert!(o.describe().starts_with("endpoint unreachable since "));
        assert!(o.describe().contains("next probe at "));

        let p = pass(&b).await;
        p.reached();
        assert!(b.current().is_none());
        assert!(!pass(&b).await.is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_and_a_dropped_probe_is_given_back() {
        let b = breaker(None);
        pass(&b).await.not_sent("dns error");
        let probe = pass(&b).await;
        assert!(probe.is_probe());
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { pass(&b2).await.is_probe() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(probe);
        assert!(waiter.await.expect("join"), "the next waiter probes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_gives_up_after_the_limit() {
        let b = breaker(Some(Duration::from_secs(1)));
        pass(&b).await.not_sent("no route to host");
        loop {
            match b.admit().await {
                Admit::Go(p) => p.not_sent("no route to host"),
                Admit::GiveUp(o) => {
                    assert!(o.probes_failed >= 2, "{o:?}");
                    break;
                }
            }
        }
    }
}
