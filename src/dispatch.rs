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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::ccc::{CallError, CallRequest, Client, Variable};
use crate::config::Config;
use crate::contact::{ResultRow, Status};
use crate::limiter::Limiter;
use crate::policy::{self, Class, ClassOverrides, Decision, RetrySettings};
use crate::store::{AttemptOutcome, DueContact, Store, StoreError};

/// Campaign-wide request defaults (the config's `[campaign]`, or a campaign's own settings).
#[derive(Debug, Clone)]
pub struct RequestDefaults {
    pub sdk_app_id: u64,
    pub ai_agent_id: u64,
    pub callers: Vec<String>,
    pub variables: std::collections::BTreeMap<String, String>,
    pub max_ring_timeout_second: Option<u32>,
    pub acquire_timeout_second: Option<u32>,
}

impl From<&crate::config::Campaign> for RequestDefaults {
    fn from(c: &crate::config::Campaign) -> Self {
        RequestDefaults {
            sdk_app_id: c.sdk_app_id,
            ai_agent_id: c.ai_agent_id,
            callers: c.callers.clone(),
            variables: c.variables.clone(),
            max_ring_timeout_second: c.max_ring_timeout_second,
            acquire_timeout_second: c.acquire_timeout_second,
        }
    }
}

/// The request for one contact: row overrides over campaign defaults. With several callers and
/// a retry after `CallerOverFrequency`, the list is rotated so another caller comes first.
pub fn build_request(d: &RequestDefaults, c: &DueContact, rotate_callers: usize) -> CallRequest {
    let mut callers = if c.overrides.callers.is_empty() {
        d.callers.clone()
    } else {
        c.overrides.callers.clone()
    };
    if !callers.is_empty() {
        let n = rotate_callers % callers.len();
        callers.rotate_left(n);
    }
    let mut vars = d.variables.clone();
    for (k, v) in &c.overrides.variables {
        vars.insert(k.clone(), v.clone());
    }
    CallRequest {
        sdk_app_id: d.sdk_app_id,
        ai_agent_id: c.overrides.ai_agent_id.unwrap_or(d.ai_agent_id),
        callee: c.callee.clone(),
        callers,
        variables: vars
            .into_iter()
            .map(|(key, value)| Variable { key, value })
            .collect(),
        max_ring_timeout_second: d.max_ring_timeout_second,
        acquire_timeout_second: d.acquire_timeout_second,
    }
}

/// Live figures for progress displays and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub placed: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    pub retrying: AtomicU64,
    pub throttled: AtomicU64,
    pub in_flight: AtomicU64,
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
    pub counters: Arc<Counters>,
}

impl Engine {
    pub fn from_config(
        cfg: &Config,
        store: Store,
        client: Client,
        limiter: Arc<Limiter>,
    ) -> Engine {
        Engine {
            store,
            client,
            limiter,
            retry: RetrySettings::from(&cfg.retry),
            classes: cfg.retry.classes.clone(),
            max_in_flight: cfg.rate.max_in_flight,
            grace_period: cfg.grace_period,
            counters: Arc::new(Counters::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// State shared between the dispatcher and its attempt tasks.
struct Shared {
    /// Contact ids the dispatcher holds (buffered or being attempted); not fetched again.
    held: Mutex<HashSet<i64>>,
    halt: Mutex<Option<(String, String)>>,
    fatal: Mutex<Option<StoreError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Dial campaign `campaign_id` until every contact is final, a halt code arrives, or `stop`
/// turns true. `on_final` receives each contact's result row as it becomes final.
pub async fn run_campaign(
    engine: Arc<Engine>,
    campaign_id: i64,
    defaults: Arc<RequestDefaults>,
    mut stop: watch::Receiver<bool>,
    on_final: Arc<dyn Fn(ResultRow) + Send + Sync>,
) -> Result<RunOutcome, EngineError> {
    let shared = Arc::new(Shared {
        held: Mutex::new(HashSet::new()),
        halt: Mutex::new(None),
        fatal: Mutex::new(None),
    });
    let permits = Arc::new(Semaphore::new(engine.max_in_flight));
    let batch = (engine.limiter.cap() * 4).clamp(64, 1024);
    let mut buffer: VecDeque<DueContact> = VecDeque::new();
    let mut tasks = JoinSet::new();

    let outcome = loop {
        while tasks.try_join_next().is_some() {}
        if *stop.borrow() {
            break RunOutcome::Interrupted;
        }
        if let Some((code, message)) = lock(&shared.halt).clone() {
            break RunOutcome::Halted { code, message };
        }
        if let Some(e) = lock(&shared.fatal).take() {
            return Err(e.into());
        }
        if buffer.is_empty() {
            let exclude = lock(&shared.held).clone();
            let due = engine
                .store
                .due_contacts(campaign_id, now_ms(), batch, exclude)
                .await?;
            {
                let mut held = lock(&shared.held);
                held.extend(due.iter().map(|d| d.id));
            }
            buffer.extend(due);
        }
        if buffer.is_empty() {
            // Nothing due now: finished, or wait for a reply or the next due time.
            let next = engine.store.next_due_at(campaign_id).await?;
            if next.is_none() && tasks.is_empty() {
                break RunOutcome::Completed;
            }
            let wait = match next {
                Some(at) => Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64),
                None => Duration::from_secs(60),
            };
            // Wake when an attempt ends (it may have rescheduled its contact), when the next
            // contact is due, or on a stop request.
            tokio::select! {
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break RunOutcome::Interrupted,
            },
            _ = stop.changed() => continue,
        };
        tokio::select! {
            _ = engine.limiter.pace() => {}
            _ = stop.changed() => continue,
        }
        let Some(contact) = buffer.pop_front() else {
            continue;
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
            if let Err(e) =
                attempt(&engine2, &shared2, &defaults2, contact, &stop2, &*on_final2).await
            {
                let mut fatal = lock(&shared2.fatal);
                fatal.get_or_insert(e);
            }
            lock(&shared2.held).remove(&id);
            drop(permit);
        });
    };

    // Stop sending; wait for replies already on the wire, within the grace period.
    let drained = tokio::time::timeout(engine.grace_period, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            "grace period over: replies still outstanding are left in doubt (reported unknown on the next start)"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    if let Some(e) = lock(&shared.fatal).take() {
        return Err(e.into());
    }
    // A halt that arrived while draining still wins over an interrupt.
    if let Some((code, message)) = lock(&shared.halt).clone() {
        return Ok(RunOutcome::Halted { code, message });
    }
    Ok(outcome)
}

/// One attempt for one contact: written down, sent, recorded, decided.
async fn attempt(
    engine: &Engine,
    shared: &Shared,
    defaults: &RequestDefaults,
    contact: DueContact,
    stop: &watch::Receiver<bool>,
    on_final: &(dyn Fn(ResultRow) + Send + Sync),
) -> Result<(), StoreError> {
    let request = build_request(defaults, &contact, contact.attempts as usize);
    let caller = request.callers.first().cloned();
    let attempt_no = engine
        .store
        .begin_attempt(contact.id, now_ms(), caller)
        .await?;
    engine.limiter.acquire_slot().await;

    if *stop.borrow() || lock(&shared.halt).is_some() {
        // Written down but not sent: release it untouched.
        let o = AttemptOutcome {
            status: Status::Pending,
            attempts: contact.attempts,
            reschedules: contact.reschedules,
            next_at: 0,
            session_id: None,
            request_id: None,
            error_code: None,
            error_message: None,
            outcome: "not_sent",
            finished_at: now_ms(),
        };
        return engine.store.finish_attempt(contact.id, attempt_no, o).await;
    }

    let c = &engine.counters;
    c.sent.fetch_add(1, Ordering::Relaxed);
    c.in_flight.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("attempt", contact = contact.id, callee = %mask(&contact.callee), n = attempt_no);
    let result = {
        let _e = span.enter();
        engine.client.create_ai_agent_call(&request)
    }
    .await;
    c.in_flight.fetch_sub(1, Ordering::Relaxed);

    let finished_at = now_ms();
    let outcome = match result {
        Ok(placed) => {
            c.placed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(parent: &span, session_id = %placed.session_id, "placed");
            AttemptOutcome {
                status: Status::Placed,
                attempts: contact.attempts + 1,
                reschedules: contact.reschedules,
                next_at: 0,
                session_id: Some(placed.session_id),
                request_id: Some(placed.request_id),
                error_code: None,
                error_message: None,
                outcome: "placed",
                finished_at,
            }
        }
        Err(err) => outcome_of_error(engine, shared, &contact, &err, finished_at, &span),
    };
    let final_status = outcome.status.is_final();
    engine
        .store
        .finish_attempt(contact.id, attempt_no, outcome)
        .await?;
    if final_status {
        on_final(engine.store.result_of(contact.id).await?);
    }
    Ok(())
}

fn outcome_of_error(
    engine: &Engine,
    shared: &Shared,
    contact: &DueContact,
    err: &CallError,
    finished_at: i64,
    span: &tracing::Span,
) -> AttemptOutcome {
    let c = &engine.counters;
    let class = policy::classify(err, &engine.classes);
    let uses_attempt = !matches!(class, Class::Throttled | Class::Halt);
    let attempts = contact.attempts + u32::from(uses_attempt);
    let throttle_backoff = Duration::from_millis(1000 + rand::random_range(0..1000));
    let decision = policy::decide(
        class,
        attempts,
        contact.reschedules,
        &engine.retry,
        throttle_backoff,
        rand::random::<f64>(),
    );
    let (code, message, request_id) = match err {
        CallError::Api {
            code,
            message,
            request_id,
        } => (code.clone(), message.clone(), Some(request_id.clone())),
        other => (other.code().to_string(), other.to_string(), None),
    };
    let outcome = match err {
        CallError::Api { .. } => "error",
        CallError::NotSent { .. } => "not_sent",
        CallError::InDoubt { .. } => "in_doubt",
    };
    let mut o = AttemptOutcome {
        status: Status::Pending,
        attempts,
        reschedules: contact.reschedules,
        next_at: 0,
        session_id: None,
        request_id,
        error_code: Some(code.clone()),
        error_message: Some(message.clone()),
        outcome,
        finished_at,
    };
    match decision {
        Decision::Retry { after, .. } => {
            if class == Class::Throttled {
                c.throttled.fetch_add(1, Ordering::Relaxed);
                engine.limiter.throttled();
            } else {
                c.retrying.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(parent: span, code = %code, class = class.as_str(), retry_in_ms = after.as_millis() as u64, "will retry");
            o.next_at = finished_at + after.as_millis() as i64;
        }
        Decision::Reschedule { after } => {
            tracing::warn!(parent: span, code = %code, retry_in_s = after.as_secs(), "rescheduled");
            o.reschedules += 1;
            o.next_at = finished_at + after.as_millis() as i64;
        }
        Decision::Fail => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            if class == Class::Unrecognised {
                tracing::warn!(parent: span, code = %code, "unrecognised error code: failed without retry");
            } else {
                tracing::error!(parent: span, code = %code, class = class.as_str(), "gave up");
            }
            o.status = Status::Failed;
        }
        Decision::Unknown => {
            c.unknown.fetch_add(1, Ordering::Relaxed);
            tracing::error!(parent: span, reason = %message, "reply lost: in doubt, will not redial");
            o.status = Status::Unknown;
        }
        Decision::Halt => {
            tracing::error!(parent: span, code = %code, "account-level error: halting the campaign");
            // The contact was not dialled: back to pending, untouched, due at once on a rerun.
            o.next_at = 0;
            lock(&shared.halt).get_or_insert((code, message));
        }
    }
    o
}

/// `008613800138000` → `0086138****8000`: enough to recognise, not enough to dial.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = (chars.len() - 4).min(7).min(chars.len() / 2);
    chars
        .iter()
        .enumerate()
        .map(|(i, ch)| {
            if i < keep_head || i >= chars.len() - 4 {
                *ch
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Overrides;

    fn defaults() -> RequestDefaults {
        RequestDefaults {
            sdk_app_id: 1,
            ai_agent_id: 15,
            callers: vec!["a".into(), "b".into(), "c".into()],
            variables: [
                ("product".to_string(), "demo".to_string()),
                ("name".to_string(), "x".to_string()),
            ]
            .into_iter()
            .collect(),
            max_ring_timeout_second: Some(40),
            acquire_timeout_second: None,
        }
    }

    fn contact(overrides: Overrides) -> DueContact {
        DueContact {
            id: 1,
            campaign_id: 1,
            callee: "008613800138000".into(),
            overrides,
            attempts: 0,
            reschedules: 0,
        }
    }

    #[test]
    fn row_variables_merge_over_config_defaults_and_row_agent_wins() {
        let mut o = Overrides::default();
        o.variables.insert("name".into(), "张三".into());
        o.ai_agent_id = Some(99);
        let req = build_request(&defaults(), &contact(o), 0);
        assert_eq!(req.ai_agent_id, 99);
        assert_eq!(
            req.variables,
            vec![
                Variable {
                    key: "name".into(),
                    value: "张三".into()
                },
                Variable {
                    key: "product".into(),
                    value: "demo".into()
                },
            ]
        );
        assert_eq!(req.max_ring_timeout_second, Some(40));
    }

    #[test]
    fn row_callers_replace_config_callers_and_retries_rotate_them() {
        let req = build_request(&defaults(), &contact(Overrides::default()), 1);
        assert_eq!(req.callers, vec!["b", "c", "a"]);
        let o = Overrides {
            callers: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            build_request(&defaults(), &contact(o), 5).callers,
            vec!["x"]
        );
    }

    #[test]
    fn masking_hides_the_middle_digits() {
        assert_eq!(mask("008613800138000"), "0086138****8000");
        assert_eq!(mask("+8613800138000"), "+861380***8000");
        assert_eq!(mask("12345"), "*****");
    }
}
