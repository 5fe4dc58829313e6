//! One attempt: written down, sent once the limiter allows, recorded, and decided by the policy.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use super::{lock, mask, now_ms, Engine, RequestDefaults, Shared, Stop};
use crate::ccc::CallError;
use crate::contact::{ResultRow, Status};
use crate::policy::{self, Class, Decision};
use crate::store::{AttemptOutcome, DueContact, StoreError};

const CALLER_OVER_FREQUENCY: &str = "FailedOperation.CallerOverFrequency";
const NOT_WORK_TIME: &str = "FailedOperation.CalloutRuleNotWorkTime";
/// The gate of a contact whose retry waits for the call records (see `begin_attempt_checked`).
pub const AWAITING_RECORDS: &str = "call_record_check";

/// A contact whose turn came: the caller number the pool picked for it (if the pool picks) and
/// how long it waited for the pacer (for the limiter-wait metric).
pub(super) struct Turn {
    pub contact: DueContact,
    pub pool_caller: Option<String>,
    pub paced_for: Duration,
    /// Leave from the endpoint's breaker (a probe while the endpoint is down).
    pub pass: crate::outage::Pass,
    /// The claim on a line of the contact's agent (see [`crate::lines`]).
    pub line: Option<crate::lines::LineTicket>,
}

/// `at` (unix ms) plus `d`, saturating: never wraps into the past.
fn later(at: i64, d: Duration) -> i64 {
    at.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One attempt for one contact: written down, sent, recorded, decided.
pub(super) async fn attempt(
    engine: &Engine,
    shared: &Shared,
    defaults: &RequestDefaults,
    turn: Turn,
    stop: &watch::Receiver<Stop>,
    on_final: &(dyn Fn(ResultRow) + Send + Sync),
) -> Result<(), StoreError> {
    let Turn {
        contact,
        pool_caller,
        paced_for,
        pass,
        line,
    } = turn;
    let mut request = super::build_request(defaults, &contact, contact.attempts as usize);
    // The caller pool picked one number: offer only it, so the rotation and rests hold.
    if let Some(c) = &pool_caller {
        request.callers = vec![c.clone()];
    }
    let caller = request.callers.first().cloned();
    let now = jiff::Timestamp::now();
    // Listed while it waited for its turn (a reload of the do-not-call lists): never called.
    if engine.rules.is_active() && engine.rules.dnc.contains(&contact.callee) {
        return super::end_dnc(&engine.store, contact.id, on_final).await;
    }
    if let Some((gate, until)) = engine.rules.window_closed(&contact, now) {
        // The window closed while the contact waited for its turn: no call, no attempt.
        return engine
            .store
            .defer(contact.id, until, gate.as_str(), now_ms())
            .await;
    }
    let guard = engine.rules.person_guard(&contact, now);
    // From here until the request leaves, a stop that cuts this task short leaves nothing sent.
    lock(&shared.unsent).insert(contact.id);
    let await_records = engine.record_checks.is_on();
    // How long the request waited for its slots (the limiter-wait metric): the campaign's, then
    // the account's.
    let mut slot_wait = Duration::ZERO;
    let (begun, own_slot) = loop {
        // The campaign's own cap (`max_rate`) first: its window may hold the request a little
        // (the dispatcher took its token when the window had room, but sends bunch). The
        // account's slot is reserved after that wait, when the request can really leave: a
        // slot reserved before it could pass its deadline while the request waited here.
        let own_slot = match &engine.own_rate {
            Some(own) => {
                let asked = std::time::Instant::now();
                let slot = own.reserve(asked);
                tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
                slot_wait += asked.elapsed();
                Some(slot)
            }
            None => None,
        };
        let begun = engine
            .store
            .begin_attempt_checked(
                contact.id,
                now_ms(),
                caller.clone(),
                guard.clone(),
                await_records,
            )
            .await;
        // The account's window (shared through the database) has no room yet: nothing was
        // written down, and the campaign's slot goes back; ask again (for both) when it has
        // room, unless a stop came meanwhile.
        match begun {
            Err(StoreError::WindowFull(until)) => {
                give_back_own(engine, own_slot);
                crate::shared_window::wait_for_room(&engine.limiter, until).await;
                if *stop.borrow() != Stop::Run || lock(&shared.halt).is_some() {
                    lock(&shared.unsent).remove(&contact.id);
                    return Ok(());
                }
            }
            other => break (other, own_slot),
        }
    };
    if begun.is_err() {
        lock(&shared.unsent).remove(&contact.id);
        give_back_own(engine, own_slot);
    }
    let (attempt_no, slot) = match begun {
        Ok(b) => (b.n, b.slot),
        // Cancelled (or otherwise settled) while it waited in the dispatcher's buffer.
        Err(StoreError::NotPending(_)) => return Ok(()),
        // PostgreSQL: this replica's lease on it expired or another replica took it over
        // (see `store::pg::lease`): it is that replica's to call, never this one's.
        Err(StoreError::LeaseLost(_)) => {
            tracing::warn!(contact = contact.id, line = contact.line, callee = %mask(&contact.callee), "lease lost before the attempt was written down: not sent, another replica has it");
            return Ok(());
        }
        // Another campaign called this number meanwhile: wait, no attempt used.
        // Its last try failed with InternalError*: the call records have not yet ruled out a
        // call (the outcome tracker looks; it places the contact if it finds one).
        Err(StoreError::AwaitingRecords(sent)) => {
            let until = engine.record_checks.held_until(sent, now_ms());
            return engine
                .store
                .defer(contact.id, until, AWAITING_RECORDS, now_ms())
                .await;
        }
        Err(StoreError::Held(gate)) => {
            let until = gate
                .until()
                .map_or(now_ms() + 60_000, |t| t.as_millisecond());
            return engine
                .store
                .defer(contact.id, until, gate.as_str(), now_ms())
                .await;
        }
        Err(e) => return Err(e),
    };
    // The account's slot: the database's when it shares the window, else this process's. A
    // database too slow to send through stops the campaign (the attempt is released first).
    let asked = std::time::Instant::now();
    let departure = crate::shared_window::depart(&engine.limiter, slot.as_ref()).await;
    slot_wait += asked.elapsed();
    let (departure, too_slow) = match departure {
        Ok(d) => (d, None),
        Err(e) => (None, Some(e)),
    };
    // The campaign's window counts it from the account's slot, and both from when it really
    // leaves.
    let departure = match (departure, &engine.own_rate, own_slot) {
        (Some(d), Some(own), Some(at)) => Some(d.also(own.window(), at)),
        (d, _, _) => d,
    };
    let m = &engine.metrics;
    m.limiter_wait.observe(paced_for + slot_wait);

    // PostgreSQL: the lease must still be live as the request leaves (a process frozen past it,
    // by a pause or SIGSTOP, wakes to find it stale: another replica may hold the contact now).
    let lease_live = engine.store.lease_live(contact.id);
    if !lease_live {
        tracing::warn!(contact = contact.id, line = contact.line, callee = %mask(&contact.callee), "lease no longer live as the request was to leave: not sent");
    }
    let departure = match departure {
        Some(d)
            if *stop.borrow() == Stop::Run
                && lock(&shared.halt).is_none()
                && pass.may_send()
                && lease_live =>
        {
            d
        }
        d => {
            // Written down but not sent (a stop, a halt, too late for its slot, or the lease
            // gone): release it untouched, and its slots with it (the campaign's, where its
            // departure put it).
            let o = AttemptOutcome::not_sent(&contact, 0, now_ms());
            let released = engine.store.finish_attempt(contact.id, attempt_no, o).await;
            lock(&shared.unsent).remove(&contact.id);
            crate::shared_window::never_left(&engine.store, d.as_ref(), slot.as_ref()).await;
            give_back_own(engine, d.as_ref().map(|d| d.slot()).or(own_slot));
            if let Some(e) = too_slow {
                released?;
                return Err(e);
            }
            return lease_lost_is_fine(released);
        }
    };
    // The request leaves now: from here a stop that cuts this task short leaves it in doubt.
    lock(&shared.unsent).remove(&contact.id);

    let c = &engine.counters;
    c.sent.fetch_add(1, Ordering::Relaxed);
    c.in_flight.fetch_add(1, Ordering::Relaxed);
    m.in_flight.inc();
    // At error level: a span is recorded only when the filter lets its level through, and a
    // progress bar lowers the filter to warn; at info, the warnings and errors about this
    // attempt printed under the bar would not name the contact.
    let span = tracing::error_span!(
        "attempt",
        campaign = contact.campaign_id,
        contact = contact.id,
        line = contact.line,
        callee = %mask(&contact.callee),
        n = attempt_no
    );
    let sent = std::time::Instant::now();
    // The request leaves when its connection writes it: after opening a connection, or late on
    // a busy host. The windows hear of it (see crate::connections), and so does the store.
    let on_leave = crate::shared_window::on_leave(&engine.store, &departure, slot.as_ref());
    let result = engine
        .client
        .create_ai_agent_call_timed(&request, on_leave)
        .instrument(span.clone())
        .await;
    let sent_at = departure.left_ms(now_ms());
    crate::shared_window::never_left(&engine.store, Some(&departure), slot.as_ref()).await;
    if !departure.reached_a_connection() {
        give_back_own(engine, own_slot.map(|_| departure.slot()));
    }
    c.in_flight.fetch_sub(1, Ordering::Relaxed);
    m.in_flight.dec();
    m.latency.observe(sent.elapsed());
    let wait_for_line = super::lines::settle(engine, line, &result).await;
    match &result {
        Err(CallError::NotSent { reason }) => pass.not_sent(reason),
        _ => pass.reached(),
    }
    match &result {
        Ok(_) => m.request("placed", ""),
        Err(CallError::Api { code, .. }) => m.request("error", code),
        Err(CallError::NotSent { .. }) => m.request("not_sent", "NotSent"),
        Err(CallError::InDoubt { .. }) => m.request("in_doubt", "InDoubt"),
    }

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
                sent_at: Some(sent_at),
                finished_at,
            }
        }
        Err(CallError::Api {
            code,
            message,
            request_id,
        }) if code == CALLER_OVER_FREQUENCY
            && pool_caller.is_some()
            && engine.rules.rests_callers() =>
        {
            let caller = pool_caller.as_deref().unwrap_or_default();
            engine
                .rules
                .caller_over_frequency(caller, jiff::Timestamp::now());
            tracing::warn!(parent: &span, code = %code, caller = %caller, "caller over frequency: it rests; retrying on another caller without using an attempt");
            AttemptOutcome {
                status: Status::Pending,
                attempts: contact.attempts,
                reschedules: contact.reschedules,
                next_at: finished_at,
                session_id: None,
                request_id: Some(request_id),
                error_code: Some(code),
                error_message: Some(message),
                outcome: "error",
                sent_at: Some(sent_at),
                finished_at,
            }
        }
        // It never left: the endpoint is down for everyone, not this contact's failure.
        Err(CallError::NotSent { reason }) => {
            tracing::warn!(parent: &span, reason = %reason, "not sent: back to pending, no attempt used");
            c.sent.fetch_sub(1, Ordering::Relaxed);
            crate::outage::unsent_outcome(&contact, reason, finished_at)
        }
        Err(err) => {
            let mut o = outcome_of_error(engine, shared, &contact, &err, finished_at, &span);
            o.sent_at = Some(sent_at);
            o
        }
    };
    // The same code failing contact after contact is our request's fault (see `systematic`).
    let (outcome, give_back) = super::systematic::apply(engine, shared, &contact, outcome);
    let code = outcome.error_code.clone();
    // A final outcome's result row comes back with the write (one store job, not two).
    let result = match engine
        .store
        .finish_attempt_with_result(contact.id, attempt_no, outcome)
        .await
    {
        Ok(r) => r,
        // Recorded on the attempt; the contact is another replica's now (or in doubt there).
        Err(StoreError::LeaseLost(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let (false, Some(code)) = (give_back.is_empty(), code) {
        engine
            .store
            .give_back_failed(give_back, code, now_ms())
            .await?;
    }
    if let Some(due) = wait_for_line {
        // Every line busy: at the front of the queue, due when one is likely free.
        let gate = crate::store::AGENT_LINES_BUSY;
        engine.store.defer(contact.id, due, gate, now_ms()).await?;
    }
    if let Some(row) = result {
        on_final(row);
    }
    Ok(())
}

/// The campaign's own window (`max_rate`) gives back the place of a request that was never
/// sent, recorded at `slot`.
fn give_back_own(engine: &Engine, slot: Option<std::time::Instant>) {
    if let (Some(own), Some(slot)) = (&engine.own_rate, slot) {
        own.give_back(slot);
    }
}

/// A write fenced by a lease that was lost (see `store::pg::lease`) changed nothing: for this
/// replica the contact is done, which is not an error of the campaign.
fn lease_lost_is_fine(r: Result<(), StoreError>) -> Result<(), StoreError> {
    match r {
        Err(StoreError::LeaseLost(_)) => Ok(()),
        other => other,
    }
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
    // Throttling, halts and reschedules ("not now") leave the attempt budget alone.
    let uses_attempt = !matches!(
        class,
        Class::Throttled | Class::Capacity | Class::Halt | Class::Later | Class::NextDay
    );
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
        sent_at: None,
        finished_at,
    };
    match decision {
        Decision::Retry { after, .. } => {
            if class == Class::Throttled {
                c.throttled.fetch_add(1, Ordering::Relaxed);
                engine.metrics.throttle_events.inc();
                engine.limiter.throttled();
            } else {
                c.retries.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(parent: span, code = %code, class = class.as_str(), retry_in_ms = after.as_millis() as u64, "will retry");
            o.next_at = later(finished_at, after);
        }
        Decision::WaitForLine => {
            tracing::warn!(parent: span, code = %code, class = class.as_str(), "every line of the AI agent busy: waiting for one, no attempt used");
            o.next_at = finished_at;
        }
        Decision::Reschedule { after } => {
            o.reschedules += 1;
            o.next_at = later(finished_at, after);
            // "Not work time" from the service: with our own window, the next opening of the
            // contact's window after this moment, rather than a fixed delay.
            if code == NOT_WORK_TIME {
                if let Some(at) = engine
                    .rules
                    .next_opening_after(contact, jiff::Timestamp::now())
                {
                    o.next_at = at.as_millisecond();
                }
            }
            tracing::warn!(parent: span, code = %code, retry_in_s = (o.next_at - finished_at) / 1000, "rescheduled");
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
