//! The engine: take due contacts from the store, pace them through the limiter, write each
//! attempt down, send it, record the outcome, and decide what follows from the policy.
//!
//! Invariants:
//! - A request leaves only after its attempt is committed (`Store::begin_attempt`).
//! - After a halt or a stop request nothing new is sent; an attempt already written down but not
//!   yet sent is released back to `pending` (recorded as `not_sent`), never sent late.
//! - The dispatcher holds at most a small batch of contacts in memory; the store stays the queue.
//! - Every spawned attempt is tracked in a `JoinSet`; after the grace period the ones still
//!   waiting for a reply are abandoned and stay `in_flight`, which the next start reports as
//!   `unknown`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

mod attempt;
pub mod campaign_rate;
mod lines;
mod request;
pub mod rules;
pub mod systematic;
pub mod waits;

pub use attempt::AWAITING_RECORDS;
pub use request::{build_request, mask, RequestDefaults};

use crate::ccc::Client;
use crate::config::Config;
use crate::contact::{ResultRow, Status};
use crate::limiter::Limiter;
use crate::lines::Lines;
use crate::metrics::Metrics;
use crate::outage::{Admit, Breaker};
use crate::policy::{ClassOverrides, RetrySettings};
use crate::store::{DueContact, Store, StoreError};
use rules::{Rules, Verdict};

/// Live figures for progress displays and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub placed: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    /// Retries scheduled so far (a count, not the contacts waiting for one now).
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub in_flight: AtomicU64,
    /// Requests refused because every line of the agent was busy (no attempt used).
    pub capacity_refusals: AtomicU64,
}

/// What the operator asked for: keep going, stop sending and drain, or stop at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    Run,
    /// Send nothing new; wait for replies in flight within the grace period.
    Drain,
    /// Send nothing new and stop waiting: replies still in flight will be reported unknown.
    Now,
}

/// Why a campaign stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every contact is final.
    Completed,
    /// An account-level error stopped the campaign; undialled contacts stay `pending`.
    Halted { code: String, message: String },
    /// A stop was requested (signal); in-flight replies were waited for.
    Interrupted,
    /// Nothing left to dial, but a call's outcome or post-call tags may still ask for a redial
    /// and the tracker that would fetch them stopped (only with [`Engine::halt_untracked`]);
    /// the contacts keep their place for a rerun.
    Untracked(crate::outcomes::stops::Untracked),
}

/// Everything the engine needs, shared by all attempts.
pub struct Engine {
    pub store: Store,
    pub client: Client,
    pub limiter: Arc<Limiter>,
    pub retry: RetrySettings,
    pub classes: ClassOverrides,
    pub max_in_flight: usize,
    pub grace_period: Duration,
    /// This campaign's live figures.
    pub counters: Arc<Counters>,
    /// Requests waiting for a reply, across every campaign sharing this engine's limiter.
    pub permits: Arc<Semaphore>,
    /// Process-wide figures for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Tokens this campaign takes in a row when its turn at the shared limiter comes (1 = plain
    /// round-robin; `serve` gives a campaign of priority p the weight 1 + p, at most 10).
    pub weight: u32,
    /// Calling windows, do-not-call lists, per-person pacing, caller rotation.
    pub rules: Arc<Rules>,
    /// The endpoint's circuit breaker, shared like the limiter: an unreachable endpoint stops
    /// every campaign, and one probe at a time finds out when it is back.
    pub outage: Arc<Breaker>,
    /// This campaign's streak of one permanent code failing contact after contact.
    pub systematic: Arc<systematic::Systematic>,
    /// Each AI agent's lines, shared like the limiter (see [`crate::lines`]).
    pub lines: Arc<Lines>,
    /// This campaign's own rate cap (`max_rate`), below the account's; `None`: only the
    /// account's.
    pub own_rate: Option<Arc<campaign_rate::CampaignRate>>,
    /// Contacts were added to the campaign: the dispatcher looks again at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Outcome tracking is on (and has not stopped): a retry after `InternalError*` waits until
    /// the call records ruled out the call the failed try may have created. Shared with the
    /// outcome tracker, which turns it off if it stops.
    pub record_checks: Arc<crate::outcomes::retry_check::RetryChecks>,
    /// Whether outcome or tag tracking stopped (told by the trackers): what only a stopped
    /// tracker would fetch is never waited for blindly (see [`crate::outcomes::stops`]).
    pub tracking: Arc<crate::outcomes::stops::TrackingStops>,
    /// `run`: with nothing left to dial but what a stopped tracker would fetch, end with
    /// [`RunOutcome::Untracked`]. Off (`serve`): keep waiting, the reason on the campaign.
    pub halt_untracked: bool,
}

impl Engine {
    pub fn from_config(
        cfg: &Config,
        store: Store,
        client: Client,
        limiter: Arc<Limiter>,
    ) -> Engine {
        let lines = Lines::new();
        lines.configure(cfg.campaign.ai_agent_id, cfg.campaign.agent_lines);
        Engine {
            store,
            client,
            limiter,
            retry: RetrySettings::from(&cfg.retry),
            classes: cfg.retry.classes.clone(),
            max_in_flight: cfg.rate.max_in_flight,
            grace_period: cfg.grace_period,
            counters: Arc::new(Counters::default()),
            permits: Arc::new(Semaphore::new(cfg.rate.max_in_flight)),
            metrics: Arc::new(Metrics::default()),
            weight: 1,
            rules: Arc::new(Rules::none(cfg)),
            outage: Arc::new(Breaker::new(cfg.outage.clone())),
            systematic: Arc::new(systematic::Systematic::new(cfg.retry.systematic_after)),
            lines: Arc::new(lines),
            own_rate: cfg
                .campaign
                .max_rate
                .map(|r| Arc::new(campaign_rate::CampaignRate::new(r))),
            wake: Arc::new(tokio::sync::Notify::new()),
            record_checks: Arc::new(crate::outcomes::retry_check::RetryChecks::new(
                cfg.outcomes.enabled,
                cfg.outcomes.reconcile_after,
                cfg.outcomes.check_every,
            )),
            tracking: Arc::default(),
            halt_untracked: false,
        }
    }

    /// The same engine with `rules` applied.
    pub fn with_rules(mut self, rules: Arc<Rules>) -> Engine {
        self.rules = rules;
        self
    }

    /// An engine for another campaign: the same store, client, limiter, in-flight permits and
    /// metrics (one account, one cap), with that campaign's retry settings and its own counters.
    pub fn for_campaign(&self, retry: RetrySettings) -> Engine {
        Engine {
            store: self.store.clone(),
            client: self.client.clone(),
            limiter: self.limiter.clone(),
            retry,
            classes: self.classes.clone(),
            max_in_flight: self.max_in_flight,
            grace_period: self.grace_period,
            counters: Arc::new(Counters::default()),
            permits: self.permits.clone(),
            metrics: self.metrics.clone(),
            weight: 1,
            rules: self.rules.clone(),
            outage: self.outage.clone(),
            systematic: Arc::new(systematic::Systematic::new(self.systematic.after())),
            lines: self.lines.clone(),
            // A cap of its own, not a share of another campaign's.
            own_rate: self
                .own_rate
                .as_ref()
                .map(|r| Arc::new(campaign_rate::CampaignRate::new(r.rate()))),
            wake: Arc::new(tokio::sync::Notify::new()),
            record_checks: self.record_checks.clone(),
            tracking: self.tracking.clone(),
            halt_untracked: self.halt_untracked,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An attempt task died without recording its outcome: its contact stays in flight (and is
    /// reported unknown on the next start), and the campaign stops rather than carry on blind.
    #[error("an attempt failed unexpectedly and the campaign was stopped: {0}")]
    AttemptPanicked(String),
}

/// Turn a finished task's result into a fatal error when it panicked.
fn reap(result: Result<(), tokio::task::JoinError>, shared: &Shared) {
    if let Err(e) = result {
        if e.is_panic() {
            let mut fatal = lock(&shared.fatal);
            fatal.get_or_insert(EngineError::AttemptPanicked(e.to_string()));
        }
    }
}

/// State shared between the dispatcher and its attempt tasks.
pub(crate) struct Shared {
    /// Contact ids the dispatcher holds (buffered or being attempted); not fetched again.
    held: Mutex<HashSet<i64>>,
    halt: Mutex<Option<(String, String)>>,
    fatal: Mutex<Option<EngineError>>,
    /// Contacts whose attempt is being written down or waits for its window slot: nothing has
    /// left for them yet. A task stopped there (a second stop signal) leaves its contact in
    /// flight; the dispatcher puts it back to `pending`, since nothing was sent.
    unsent: Mutex<HashSet<i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_ms() -> i64 {
    crate::times::now_ms()
}

/// Dial campaign `campaign_id` until every contact is final (and, with a redial policy, no
/// outcome still awaited may ask for a redial), a halt code arrives, or `stop` leaves
/// [`Stop::Run`]. `on_final` receives each contact's result row as it becomes final.
pub async fn run_campaign(
    engine: Arc<Engine>,
    campaign_id: i64,
    defaults: Arc<RequestDefaults>,
    mut stop: watch::Receiver<Stop>,
    on_final: Arc<dyn Fn(ResultRow) + Send + Sync>,
) -> Result<RunOutcome, EngineError> {
    let shared = Arc::new(Shared {
        held: Mutex::new(HashSet::new()),
        halt: Mutex::new(None),
        fatal: Mutex::new(None),
        unsent: Mutex::new(HashSet::new()),
    });
    let permits = engine.permits.clone();
    let batch = (engine.limiter.cap() * 4).clamp(64, 1024);
    let mut buffer: VecDeque<DueContact> = VecDeque::new();
    // The per-person answers read ahead for the buffer (see `ReadAhead`).
    let mut ahead = ReadAhead::default();
    let mut tasks = JoinSet::new();
    let mut announced: Option<i64> = None;
    // How long this loop waited and why, for `report` (see `waits`).
    let mut waited_for = waits::Waits::default();
    // This campaign's turn at the shared limiter and the tokens taken in it (see `weight`).
    // Held only from one token to the next; given up whenever the loop does anything else.
    let mut turn: Option<(tokio::sync::OwnedMutexGuard<()>, u32)> = None;

    // A store error inside the loop stops sending like a halt does, and the replies in flight
    // are still waited for (within the grace period) and recorded before it is returned.
    macro_rules! or_stop {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    lock(&shared.fatal).get_or_insert(EngineError::from(e));
                    break RunOutcome::Interrupted;
                }
            }
        };
    }

    let mut waited_for_start = false;
    // Outcomes written by the tracker may put contacts back to `pending` (see `crate::redial`).
    let mut redials = engine.store.redial_watch();
    // Lines freed (call-end events): taken once, so a line freed while the loop does anything
    // else still wakes its next wait.
    let mut freed = engine.lines.freed();
    // A tracker stopped: a wait for what it would fetch is looked at again at once.
    let mut tracking = engine.tracking.watch();
    // The stopped tracker this campaign's reason names (`serve`), cleared once dialling resumes.
    let mut untracked_said: Option<crate::store::RedialWait> = None;
    let outcome = 'dial: loop {
        while let Some(done) = tasks.try_join_next() {
            reap(done, &shared);
        }
        if waited_for.due() {
            or_stop!(waited_for.flush(&engine.store, campaign_id).await);
        }
        if *stop.borrow() != Stop::Run {
            break RunOutcome::Interrupted;
        }
        if let Some((code, message)) = lock(&shared.halt).clone() {
            break RunOutcome::Halted { code, message };
        }
        if lock(&shared.fatal).is_some() {
            break RunOutcome::Interrupted;
        }
        // Before its start time (`not_before`) the campaign takes nothing from the store.
        if let Err(gate) = crate::calling::gate::campaign_start(
            engine.rules.calling.not_before,
            jiff::Timestamp::now(),
        ) {
            turn = None;
            let reason = gate.describe_in(engine.rules.calling.zone());
            if !waited_for_start {
                tracing::info!(campaign = campaign_id, gate = gate.as_str(), "{reason}");
            }
            waited_for_start = true;
            or_stop!(
                engine
                    .store
                    .set_active_reason(campaign_id, Some(reason))
                    .await
            );
            let left = gate
                .until()
                .map(|u| u.as_millisecond() - now_ms())
                .unwrap_or(60_000);
            let wait = Duration::from_millis(left.clamp(1, 60_000) as u64);
            let idle = std::time::Instant::now();
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => reap(done, &shared),
                _ = tokio::time::sleep(wait) => {}
                Ok(()) = stop.changed() => {}
            }
            waited_for.add(gate.as_str(), idle.elapsed());
            continue;
        }
        if waited_for_start {
            waited_for_start = false;
            or_stop!(engine.store.set_active_reason(campaign_id, None).await);
            tracing::info!(campaign = campaign_id, "start time reached: dialling");
        }
        // PostgreSQL: another replica died (or froze) holding contacts of this campaign and its
        // leases ran out. They go ahead of this batch, which may last many seconds, rather than
        // after it (see `store::pg::takeover`). An empty buffer's next look takes them anyway.
        if !buffer.is_empty() && engine.store.leases_ran_out(campaign_id) {
            let exclude = lock(&shared.held).clone();
            let taken = or_stop!(
                engine
                    .store
                    .take_over(campaign_id, now_ms(), batch, exclude)
                    .await
            );
            if !taken.is_empty() {
                tracing::info!(
                    campaign = campaign_id,
                    contacts = taken.len(),
                    "taken over from a replica whose leases ran out: dialled next"
                );
                lock(&shared.held).extend(taken.iter().map(|d| d.id));
                for d in taken.into_iter().rev() {
                    buffer.push_front(d);
                }
            }
        }
        if buffer.is_empty() {
            turn = None;
            // Redials scheduled from here on wake the wait below (this look sees the earlier).
            redials.borrow_and_update();
            let exclude = lock(&shared.held).clone();
            let due = or_stop!(
                engine
                    .store
                    .due_contacts(campaign_id, now_ms(), batch, exclude)
                    .await
            );
            {
                let mut held = lock(&shared.held);
                held.extend(due.iter().map(|d| d.id));
            }
            buffer.extend(due);
            if !buffer.is_empty() && untracked_said.take().is_some() {
                // Dialling again (contacts added): the campaign is not only waiting any more.
                or_stop!(engine.store.set_active_reason(campaign_id, None).await);
            }
        }
        if buffer.is_empty() {
            // Nothing due now: finished, or wait for a reply or the next due time.
            let mut next_wait = or_stop!(engine.store.next_wait(campaign_id).await);
            // A call whose outcome is not known yet may still ask for a redial: not finished.
            let mut redial_may_come = None;
            if next_wait.is_none() && tasks.is_empty() {
                redial_may_come = or_stop!(engine.store.redial_wait(campaign_id).await);
                if redial_may_come.is_none() {
                    // An outcome written between the two looks may have scheduled one.
                    next_wait = or_stop!(engine.store.next_wait(campaign_id).await);
                    if next_wait.is_none() {
                        break RunOutcome::Completed;
                    }
                }
            }
            let next = next_wait.as_ref().map(|(at, _)| *at);
            // The campaign's end passed while contacts wait (a redial due later, a backoff):
            // they expire now, not when each would have come due.
            let not_after = engine.rules.calling.not_after.map(|t| t.as_millisecond());
            if let (Some(end), Some(_)) = (not_after, next) {
                if now_ms() >= end {
                    let gate = crate::calling::gate::Gate::NotAfter {
                        at: jiff::Timestamp::from_millisecond(end).unwrap_or_default(),
                    };
                    let n = or_stop!(
                        engine
                            .store
                            .expire_pending(campaign_id, &gate.to_string(), now_ms())
                            .await
                    );
                    tracing::warn!(
                        campaign = campaign_id,
                        contacts = n,
                        "{gate}: the contacts still waiting expired"
                    );
                    continue;
                }
            }
            // What may still ask for a redial will never be fetched: `run` ends (a rerun after
            // the fix continues); `serve` waits on, saying why.
            let untracked = redial_may_come.and_then(|w| {
                tracking.borrow_and_update();
                engine.tracking.untracked(w)
            });
            if let Some(u) = untracked {
                if engine.halt_untracked {
                    break RunOutcome::Untracked(u);
                }
                if untracked_said != Some(u.wait) {
                    tracing::error!(campaign = campaign_id, "{}", u.describe());
                    or_stop!(
                        engine
                            .store
                            .set_active_reason(campaign_id, Some(u.waiting_reason()))
                            .await
                    );
                    untracked_said = Some(u.wait);
                }
            } else if untracked_said.take().is_some() {
                or_stop!(engine.store.set_active_reason(campaign_id, None).await);
            }
            let gate = next_wait.and_then(|(_, g)| g);
            let wake_at = match (next, not_after) {
                (Some(at), Some(end)) => Some(at.min(end)),
                (at, _) => at,
            };
            let wait = match wake_at {
                Some(at) => Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64),
                None => Duration::from_secs(60),
            };
            if let (Some(at), true) = (next, wait >= Duration::from_secs(5)) {
                if announced != Some(at) {
                    announced = Some(at);
                    let until = crate::times::rfc3339_seconds(at);
                    tracing::info!(campaign = campaign_id, until = %until, gate = gate.as_deref().unwrap_or("retry_backoff"), "nothing due: waiting");
                }
            }
            let reason = match (next, &gate) {
                (Some(at), Some(g)) if at > now_ms() => g.clone(),
                (Some(at), None) if at > now_ms() => waits::BACKOFF.to_string(),
                (None, _) if redial_may_come.is_some() => redial_may_come
                    .map_or(waits::OUTCOMES, crate::store::RedialWait::reason)
                    .to_string(),
                _ => waits::REPLIES.to_string(),
            };
            let idle = std::time::Instant::now();
            // Wake when an attempt ends (it may have rescheduled its contact), when the next
            // contact is due, when a call-end event frees a line, or on a stop request.
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => reap(done, &shared),
                _ = tokio::time::sleep(wait) => {}
                Ok(()) = freed.changed() => or_stop!(lines::release(&engine, campaign_id).await),
                _ = engine.wake.notified() => {}
                Ok(()) = redials.changed() => {}
                Ok(()) = tracking.changed() => {}
                Ok(()) = stop.changed() => {}
            }
            waited_for.add(&reason, idle.elapsed());
            continue;
        }
        // The calling rules, before the contact takes a permit or a rate token.
        if engine.rules.is_active() {
            let Some(contact) = buffer.pop_front() else {
                continue;
            };
            if !ahead.holds(contact.id) {
                let now = jiff::Timestamp::now();
                let read = engine
                    .rules
                    .read_ahead(
                        &engine.store,
                        std::iter::once(&contact).chain(buffer.iter()),
                        now,
                    )
                    .await;
                ahead = ReadAhead::new(or_stop!(read));
            }
            let read = ahead.take(contact.id);
            match or_stop!(gates(&engine, &contact, read, &*on_final).await) {
                Gated::Go => buffer.push_front(contact),
                Gated::Held => {
                    turn = None;
                    lock(&shared.held).remove(&contact.id);
                    continue;
                }
                Gated::CampaignEnded => {
                    turn = None;
                    lock(&shared.held).clear();
                    buffer.clear();
                    continue;
                }
            }
        }
        // The agent's lines, before a permit or a rate token.
        let at_lines = std::time::Instant::now();
        let line = or_stop!(
            lines::take(
                &engine,
                &defaults,
                &mut buffer,
                &shared,
                &mut stop,
                &mut freed,
                &mut turn
            )
            .await
        );
        waited_for.add(waits::LINES, at_lines.elapsed());
        let Some(line) = line else {
            turn = None;
            continue;
        };
        // The endpoint is unreachable: wait for this campaign's turn to probe (see `outage`).
        // Never while holding the limiter's turn: the campaign that wins the probe needs it.
        if engine.outage.current().is_some() {
            turn = None;
        }
        let at_outage = std::time::Instant::now();
        let pass = tokio::select! {
            a = engine.outage.admit() => match a {
                Admit::Go(pass) => pass,
                Admit::GiveUp(o) => break RunOutcome::Halted {
                    code: crate::outage::CODE.into(),
                    message: o.describe(),
                },
            },
            Ok(()) = stop.changed() => continue,
        };
        waited_for.add(waits::OUTAGE, at_outage.elapsed());
        // The campaign's own cap, before its turn at the shared limiter: waiting for it gives
        // the turn up, so the others take the account's rate meanwhile (weighted turns hold a
        // turn only while they can send).
        if let Some(own) = &engine.own_rate {
            let at_cap = std::time::Instant::now();
            while let Err(at) = own.try_take(std::time::Instant::now()) {
                turn = None;
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    Ok(()) = stop.changed() => continue 'dial,
                }
            }
            waited_for.add(waits::RATE, at_cap.elapsed());
        }
        let at_permit = std::time::Instant::now();
        if permits.available_permits() == 0 {
            // Waiting for a reply to free a permit: the other campaigns keep their turns.
            turn = None;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break RunOutcome::Interrupted,
            },
            Ok(()) = stop.changed() => continue,
        };
        let waited = std::time::Instant::now();
        waited_for.add(waits::IN_FLIGHT, waited.duration_since(at_permit));
        if turn.is_none() {
            let guard = tokio::select! {
                g = engine.limiter.take_turn() => g,
                Ok(()) = stop.changed() => continue,
            };
            turn = Some((guard, 0));
        }
        tokio::select! {
            _ = engine.limiter.pace_in_turn() => {}
            Ok(()) = stop.changed() => continue,
        }
        if let Some((_, taken)) = turn.as_mut() {
            *taken += 1;
            if *taken >= engine.weight.max(1) {
                turn = None;
            }
        }
        let paced_for = waited.elapsed();
        let pacing = if engine.limiter.slowed() {
            waits::THROTTLED
        } else {
            waits::RATE
        };
        waited_for.add(pacing, paced_for);
        // A halt may have arrived while this loop waited for a permit or a token.
        if lock(&shared.halt).is_some() || lock(&shared.fatal).is_some() || !pass.may_send() {
            continue;
        }
        let Some(contact) = buffer.pop_front() else {
            continue;
        };
        let caller = if engine.rules.picks_callers() {
            let offered = build_request(&defaults, &contact, 0).callers;
            match engine.rules.pick_caller(&offered, jiff::Timestamp::now()) {
                Ok(c) => c,
                Err(Verdict::Wait { gate, until }) => {
                    // Every caller rests: the token is spent, the contact waits, no attempt used.
                    or_stop!(
                        engine
                            .store
                            .defer(contact.id, until, gate.as_str(), now_ms())
                            .await
                    );
                    lock(&shared.held).remove(&contact.id);
                    continue;
                }
                Err(_) => None,
            }
        } else {
            None
        };
        let (engine2, shared2, defaults2, stop2, on_final2) = (
            engine.clone(),
            shared.clone(),
            defaults.clone(),
            stop.clone(),
            on_final.clone(),
        );
        tasks.spawn(async move {
            let id = contact.id;
            if let Err(e) = attempt::attempt(
                &engine2,
                &shared2,
                &defaults2,
                attempt::Turn {
                    contact,
                    pool_caller: caller,
                    paced_for,
                    pass,
                    line: Some(line),
                },
                &stop2,
                &*on_final2,
            )
            .await
            {
                let mut fatal = lock(&shared2.fatal);
                fatal.get_or_insert(e.into());
            }
            lock(&shared2.held).remove(&id);
            drop(permit);
        });
    };

    // Nothing more is sent: the turn at the shared limiter goes to the other campaigns now, not
    // after the drain (which may last the whole grace period).
    drop(turn);
    if let Err(e) = waited_for.flush(&engine.store, campaign_id).await {
        tracing::warn!(campaign = campaign_id, error = %e, "cannot record the campaign's waiting time");
    }
    // Stop sending; wait for replies already on the wire, within the grace period.
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            reap(done, &shared);
        }
    };
    let drained = tokio::select! {
        finished = tokio::time::timeout(engine.grace_period, drain) => finished.is_ok(),
        Ok(_) = stop.wait_for(|s| *s == Stop::Now) => false,
    };
    if !drained {
        tracing::warn!(
            abandoned = tasks.len(),
            "stopped waiting: replies still outstanding are in doubt and reported unknown"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        release_unsent(&engine.store, &shared).await;
    }
    // PostgreSQL: the contacts still claimed (buffered, never attempted) go back to the other
    // replicas at once rather than when their leases run out.
    match engine.store.release_claims(campaign_id).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(campaign = campaign_id, contacts = n, "claims released"),
        Err(e) => {
            tracing::warn!(campaign = campaign_id, error = %e, "cannot release this replica's claims: other replicas take the contacts when the leases expire")
        }
    }
    if let Some(e) = lock(&shared.fatal).take() {
        return Err(e);
    }
    // A halt that arrived while draining still wins over an interrupt.
    if let Some((code, message)) = lock(&shared.halt).clone() {
        return Ok(RunOutcome::Halted { code, message });
    }
    Ok(outcome)
}

/// After the attempt tasks were stopped: contacts whose attempt was written down (or was being
/// written) but never sent go back to `pending` rather than being reported in doubt.
async fn release_unsent(store: &Store, shared: &Shared) {
    let unsent: Vec<i64> = lock(&shared.unsent).drain().collect();
    let mut released = 0;
    for id in unsent {
        match store.release_unsent(id, now_ms()).await {
            Ok(true) => released += 1,
            Ok(false) => {}
            Err(e) => {
                lock(&shared.fatal).get_or_insert(e.into());
                return;
            }
        }
    }
    if released > 0 {
        tracing::info!(
            contacts = released,
            "written down but not sent when the waiting stopped: back to pending"
        );
    }
}

enum Gated {
    Go,
    /// Held back (waiting) or ended (do-not-call): not for this pass.
    Held,
    /// The campaign's end time passed: every pending contact expired.
    CampaignEnded,
}

/// The per-person rules' answers for the buffered contacts, read in one call to the store
/// ([`crate::dispatch::rules::Rules::read_ahead`]) when the contact at the front has none, and
/// used for at most [`READ_AHEAD_FOR`]. Asked one contact at a time, each answer waited for a
/// turn of the store's thread (a group commit): with the cap lifted the dispatch loop made a
/// few hundred attempts a second (BENCHMARKS.md, engine headroom). An answer spares a rate
/// token only; the store checks again as it writes the attempt down.
#[derive(Default)]
struct ReadAhead {
    read_at: Option<std::time::Instant>,
    held: std::collections::HashMap<i64, Option<crate::calling::gate::Gate>>,
}

/// How long answers read ahead are used.
const READ_AHEAD_FOR: Duration = Duration::from_secs(1);

impl ReadAhead {
    fn new(held: std::collections::HashMap<i64, Option<crate::calling::gate::Gate>>) -> ReadAhead {
        ReadAhead {
            read_at: Some(std::time::Instant::now()),
            held,
        }
    }

    /// Whether a fresh answer for `contact` is at hand.
    fn holds(&self, contact: i64) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() < READ_AHEAD_FOR)
            && self.held.contains_key(&contact)
    }

    /// The answer for `contact` (taken), if a fresh one is at hand: `Some(None)` when it was not
    /// held.
    fn take(&mut self, contact: i64) -> Option<Option<crate::calling::gate::Gate>> {
        if !self.holds(contact) {
            return None;
        }
        self.held.remove(&contact)
    }
}

/// Apply the calling rules to `contact` and record what they decided; `ahead` is its
/// per-person answer when one was read ahead.
async fn gates(
    engine: &Engine,
    contact: &DueContact,
    ahead: Option<Option<crate::calling::gate::Gate>>,
    on_final: &(dyn Fn(ResultRow) + Send + Sync),
) -> Result<Gated, EngineError> {
    let now = jiff::Timestamp::now();
    let store = &engine.store;
    match engine.rules.check_ahead(store, contact, now, ahead).await? {
        Verdict::Go => Ok(Gated::Go),
        Verdict::Wait { gate, until } => {
            tracing::info!(contact = contact.id, line = contact.line, callee = %mask(&contact.callee), gate = gate.as_str(), "{gate}");
            store
                .defer(contact.id, until, gate.as_str(), now_ms())
                .await?;
            Ok(Gated::Held)
        }
        Verdict::End(gate @ crate::calling::gate::Gate::NotAfter { .. }) => {
            let n = store
                .expire_pending(contact.campaign_id, &gate.to_string(), now_ms())
                .await?;
            tracing::warn!(
                campaign = contact.campaign_id,
                contacts = n,
                "{gate}: the contacts not yet called expired"
            );
            Ok(Gated::CampaignEnded)
        }
        Verdict::Expire(gate) => {
            let why =
                format!("its calling window does not open before the campaign's end ({gate})");
            end_contact(
                store,
                contact.id,
                Status::Expired,
                "NotAfter",
                &why,
                on_final,
            )
            .await?;
            Ok(Gated::Held)
        }
        Verdict::End(gate) => {
            tracing::info!(contact = contact.id, line = contact.line, callee = %mask(&contact.callee), gate = gate.as_str(), "not called: on a do-not-call list");
            end_dnc(store, contact.id, on_final).await?;
            Ok(Gated::Held)
        }
    }
}

/// End a pending contact that will never be called (`skipped`, `expired`) and hand its result
/// row on, unless something else settled it first.
async fn end_contact(
    store: &Store,
    contact_id: i64,
    status: Status,
    code: &str,
    message: &str,
    on_final: &(dyn Fn(ResultRow) + Send + Sync),
) -> Result<(), StoreError> {
    if store
        .end_by_gate(contact_id, status, code, message, now_ms())
        .await?
    {
        on_final(store.result_of(contact_id).await?);
    }
    Ok(())
}

/// A contact on a do-not-call list: `skipped` with code `Dnc`.
pub(crate) async fn end_dnc(
    store: &Store,
    contact_id: i64,
    on_final: &(dyn Fn(ResultRow) + Send + Sync),
) -> Result<(), StoreError> {
    end_contact(
        store,
        contact_id,
        Status::Skipped,
        "Dnc",
        crate::contact::DNC_REASON,
        on_final,
    )
    .await
}
