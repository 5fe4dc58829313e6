//! The outcome tracker: a task that asks DescribeTelCdr about placed sessions and in-doubt
//! requests on the schedule the store keeps, at its own rate, and writes the answers down.
//!
//! Invariants:
//! - Its own [`Limiter`] (`outcomes.requests_per_second`, default 5) and its own connection
//!   pool: a query never takes a CreateAIAgentCall token or connection, and never slows
//!   dialling. The two actions' budgets are separate at the service too (per Action). The
//!   limiter keeps CreateAIAgentCall's rules: its window is seeded from the query sends the
//!   store recorded before a restart ([`crate::seed`]; each query is written down before it
//!   leaves and its departure after), and a query counts from when its connection wrote it
//!   ([`crate::limiter::Departure`]).
//! - A check row leaves the store only in the transaction that writes its answer: a crash
//!   between a record's arrival and its write loses nothing, the next pass asks again.
//! - Query errors: `RequestLimitExceeded` slows this limiter only; `InternalError` and
//!   transport failures back off (1 s doubling to 1 min); an account-level code (the retry
//!   policy's `halt` class: `AuthFailure*`, …) stops outcome tracking with its reason, and
//!   nothing else: dialling that is otherwise healthy goes on.
//! - When a session's end becomes known, [`Lines::call_ended`] frees its agent's line.
//! - While a campaign waits for an agent's line ([`Lines::waiting`]), the calls in progress
//!   (up to one request's 100, the soonest due first) are asked about just after every whole
//!   second ([`schedule::busy_check_at`]), whatever their schedule: a freed line is otherwise
//!   found up to `check_every` late (30 s by default), and stands idle meanwhile. At most one
//!   request a second, through the same limiter, only while lines are full.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::cdr::{self, CallRecord, CdrQuery, Filter};
use super::classes::{classify, OutcomeClass};
use super::reconcile::{self, Match};
use super::schedule::{self, Next};
use super::settings::OutcomeSettings;
use crate::ccc::{CallError, Client};
use crate::limiter::Limiter;
use crate::lines::Lines;
use crate::policy::Class;
use crate::store::{Arrival, OutcomeRecord, Reconciled, Store, StoreError};

/// One query's records; `complete` when every page was read and each was a readable list;
/// `end` the window's end (Unix seconds); `sent_ms` when its first page was sent (Unix ms:
/// a record missing from a complete answer was not visible then).
struct Answer {
    records: Vec<CallRecord>,
    complete: bool,
    end: i64,
    sent_ms: i64,
}

/// Sessions taken from the store per pass (ten requests' worth).
const SESSIONS_PER_PASS: usize = 10 * cdr::PAGE_SIZE;
/// In-doubt requests reconciled per pass (one request each, at least).
const RECONCILES_PER_PASS: usize = 20;
/// Pages read for one callee's records at most (a number called very often).
const MAX_PHONE_PAGES: u32 = 20;
/// How often the tracker looks for due checks when idle.
pub const IDLE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why a pass stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryFailure {
    /// `RequestLimitExceeded`: this action's limiter slows down.
    Throttled(String),
    /// Worth asking again later (server error, transport, a reply we could not read).
    Backoff(String),
    /// Account-level: outcome tracking stops.
    Halt { code: String, message: String },
}

/// The class of a failed query (from the retry policy's table).
pub fn judge(e: &CallError) -> QueryFailure {
    match e {
        CallError::Api { code, message, .. } => {
            match crate::policy::classify_code(code, &Default::default()) {
                Class::Throttled => QueryFailure::Throttled(e.to_string()),
                Class::Halt => QueryFailure::Halt {
                    code: code.clone(),
                    message: message.clone(),
                },
                _ => QueryFailure::Backoff(e.to_string()),
            }
        }
        other => QueryFailure::Backoff(other.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("DescribeTelCdr failed: {0:?}")]
    Query(QueryFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Live figures.
#[derive(Debug, Default)]
pub struct TrackerStats {
    /// DescribeTelCdr requests sent (every page counts).
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub errors: AtomicU64,
    /// New outcome records written (a repeat is not counted).
    pub recorded: AtomicU64,
    pub gave_up: AtomicU64,
    pub reconciled: AtomicU64,
    pub not_placed: AtomicU64,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sessions_asked: usize,
    pub recorded: usize,
    pub reconciles_asked: usize,
    /// The pass took as many as it could: more may be due now.
    pub more: bool,
}

/// A record's arrival (new, or correcting the class the session had): for counters that live
/// elsewhere (`serve`'s /metrics).
pub type OnRecorded = Arc<dyn Fn(&Arrival) + Send + Sync>;

pub struct Tracker {
    store: Store,
    client: Client,
    /// Seeded from the store at the first query (see the module doc).
    limiter: tokio::sync::OnceCell<Limiter>,
    settings: OutcomeSettings,
    sdk_app_id: u64,
    /// The AI agent a contact without its own `ai_agent_id` was dialled with.
    agent: u64,
    lines: Option<Arc<Lines>>,
    stopped: Mutex<Option<String>>,
    warned: Mutex<HashSet<i64>>,
    pub stats: TrackerStats,
    /// Woken after every write (waiters re-read the store).
    changed: Notify,
    on_recorded: Option<OnRecorded>,
    /// The holds on retries after `InternalError*`, ended if tracking stops.
    retry_checks: Option<Arc<crate::outcomes::retry_check::RetryChecks>>,
    /// Told if tracking stops (dispatchers stop waiting for outcomes nobody will fetch).
    stops: Option<Arc<crate::outcomes::stops::TrackingStops>>,
    /// When the next check for a busy agent's calls may go (Unix ms; see [`Tracker::busy_pass`]).
    next_busy_check: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How far ahead of its due time a session may be asked about, to fill a request that goes out
/// anyway: a sixth of `check_every`, at most 5 s (at 20 calls a second, 5 s of sends fill a
/// request of 100 SessionIds). Asking early only ever moves a check forward, never back.
fn lookahead(every_ms: i64) -> i64 {
    (every_ms / 6).clamp(0, 5_000)
}

/// Of the sessions due by `now_ms` plus the lookahead (any order), those to ask about now: every
/// one due by `now_ms`, then the soonest due after it until the last request is full (a multiple
/// of [`cdr::PAGE_SIZE`]); sorted by send time. `more`: the store may hold more due by `now_ms`.
fn fill(
    mut due: Vec<crate::store::DueSession>,
    now_ms: i64,
) -> (Vec<crate::store::DueSession>, bool) {
    let taken = due.len();
    due.sort_by_key(|d| (d.due_at, d.attempt_id));
    let now = due.iter().take_while(|d| d.due_at <= now_ms).count();
    let keep = now.div_ceil(cdr::PAGE_SIZE) * cdr::PAGE_SIZE;
    due.truncate(keep);
    due.sort_by_key(|d| (d.sent_at, d.attempt_id));
    (due, now == taken && taken == SESSIONS_PER_PASS)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Tracker {
    /// `client` should be [`Client::separate`] from the dialling one.
    pub fn new(
        store: Store,
        client: Client,
        settings: OutcomeSettings,
        sdk_app_id: u64,
        agent: u64,
    ) -> Tracker {
        Tracker {
            store,
            client,
            limiter: tokio::sync::OnceCell::new(),
            settings,
            sdk_app_id,
            agent,
            lines: None,
            stopped: Mutex::new(None),
            warned: Mutex::new(HashSet::new()),
            stats: TrackerStats::default(),
            changed: Notify::new(),
            on_recorded: None,
            retry_checks: None,
            stops: None,
            next_busy_check: AtomicI64::new(i64::MIN),
        }
    }

    /// Free a line of the call's agent whenever a session's end becomes known; from now on the
    /// lines believe a call not reported yet still going (see [`Lines::expect_reports`]).
    pub fn with_lines(mut self, lines: Arc<Lines>) -> Tracker {
        lines.expect_reports();
        self.lines = Some(lines);
        self
    }

    /// End these holds on retries if tracking stops (see [`crate::outcomes::retry_check`]).
    pub fn with_retry_checks(
        mut self,
        checks: Arc<crate::outcomes::retry_check::RetryChecks>,
    ) -> Tracker {
        self.retry_checks = Some(checks);
        self
    }

    /// Tell these dispatchers if tracking stops (see [`crate::outcomes::stops`]).
    pub fn with_stops(mut self, stops: Arc<crate::outcomes::stops::TrackingStops>) -> Tracker {
        self.stops = Some(stops);
        self
    }

    pub fn on_recorded(mut self, f: OnRecorded) -> Tracker {
        self.on_recorded = Some(f);
        self
    }

    /// `check_every` in milliseconds.
    pub fn check_every_ms(&self) -> i64 {
        ms(self.settings.check_every)
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &OutcomeSettings {
        &self.settings
    }

    /// Why outcome tracking stopped, if it did (an account-level error on the query).
    pub fn stopped(&self) -> Option<String> {
        lock(&self.stopped).clone()
    }

    /// Resolves after the next write (or stop).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The task: pass after pass until `stop` turns true or an account-level error stops it.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stop.borrow() || self.stopped().is_some() {
                return;
            }
            let pause = match self.tick(crate::dispatch::now_ms()).await {
                Ok(r) => {
                    backoff = Duration::from_secs(1);
                    if r.more {
                        continue;
                    }
                    self.idle(crate::dispatch::now_ms())
                }
                Err(PassError::Query(QueryFailure::Throttled(why))) => {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    let rate = self.limiter.get().map(|l| {
                        l.throttled();
                        l.current_rate()
                    });
                    tracing::warn!(reason = %why, rate, "DescribeTelCdr throttled: outcome queries slow down (dialling is not affected)");
                    IDLE
                }
                Err(PassError::Query(QueryFailure::Backoff(why))) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, retry_in_s = backoff.as_secs(), "DescribeTelCdr failed: asking again later");
                    // However long the queries fail, a check ends by its deadline.
                    if let Err(e) = self.expire(crate::dispatch::now_ms(), &why).await {
                        tracing::error!(error = %e, "outcome tracking: the store failed");
                    }
                    let b = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    b
                }
                Err(PassError::Query(QueryFailure::Halt { code, message })) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    let reason = format!(
                        "outcome tracking stopped: DescribeTelCdr answered {code} ({message}); dialling goes on\n{}\nplaced calls keep their place in the queue: `ccc-dialer outcomes` fetches their outcomes after the fix",
                        crate::policy::halt_hint(&code)
                    );
                    tracing::error!(code = %code, "{reason}");
                    *lock(&self.stopped) = Some(reason);
                    if let Some(r) = &self.retry_checks {
                        // Nobody will look: retries after InternalError go as without tracking.
                        r.stop();
                    }
                    if let Some(s) = &self.stops {
                        s.stop_outcomes(crate::outcomes::stops::Stopped::new(
                            cdr::ACTION,
                            &code,
                            &message,
                        ));
                    }
                    self.changed.notify_waiters();
                    return;
                }
                Err(PassError::Store(e)) => {
                    tracing::error!(error = %e, "outcome tracking: the store failed; trying again");
                    let b = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    b
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// How long to rest when nothing more is due: [`IDLE`], but with lines to free, until just
    /// after the next whole second (as often, but at the moment records become visible: a
    /// check for a busy agent then finds what the last second's calls left).
    fn idle(&self, now_ms: i64) -> Duration {
        match self.lines {
            Some(_) => {
                let at = schedule::busy_check_at(now_ms);
                Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0)).min(IDLE)
            }
            None => IDLE,
        }
    }

    /// What the task does at each wake: [`Tracker::busy_pass`] while a campaign waits for a
    /// line, then [`Tracker::pass`].
    pub async fn tick(&self, now_ms: i64) -> Result<PassReport, PassError> {
        let busy = self.busy_pass(now_ms).await?;
        let mut report = self.pass(now_ms).await?;
        report.sessions_asked += busy.sessions_asked;
        report.recorded += busy.recorded;
        Ok(report)
    }

    /// While a campaign waits for a line ([`Lines::waiting`]) and none was asked about this
    /// second: ask about the calls in progress (those not reported, up to one request's
    /// worth, the soonest due first), whatever their schedule says, so that a call's record
    /// frees its line as soon as it is visible. Asking early only moves a check forward (a
    /// miss schedules the next as usual). Otherwise nothing.
    pub async fn busy_pass(&self, now_ms: i64) -> Result<PassReport, PassError> {
        let waiting = self.lines.as_ref().is_some_and(|l| l.waiting());
        if !waiting || now_ms < self.next_busy_check.load(Ordering::Relaxed) {
            return Ok(PassReport::default());
        }
        self.next_busy_check
            .store(schedule::busy_check_at(now_ms), Ordering::Relaxed);
        let due = self
            .store
            .due_sessions_until(now_ms, 0, i64::MAX, cdr::PAGE_SIZE)
            .await?;
        let mut report = PassReport::default();
        for batch in schedule::batches(due) {
            report.sessions_asked += batch.len();
            report.recorded += self.check_batch(batch, now_ms).await?;
        }
        if report.sessions_asked > 0 {
            tracing::trace!(
                asked = report.sessions_asked,
                found = report.recorded,
                "outcomes: a check of a busy agent's calls"
            );
        }
        Ok(report)
    }

    /// One pass. When a session is due at `now_ms`, every one due is asked about, and sessions
    /// due within the [`lookahead`] fill the last request up to 100 SessionIds (never a request
    /// more: the requests are those the due sessions need, ceil(due / 100)); so a request
    /// carries up to 100 SessionIds rather than the few whose calls ended in the last second,
    /// and the query count stays near sessions / 100 per round. No check is ever put off: a
    /// record visible at `t` is asked for by the first check due after `t` (at most
    /// `check_every` later). In-doubt requests are asked about when due (one request each:
    /// asking early saves nothing). When nothing is due, the pass asks nothing.
    pub async fn pass(&self, now_ms: i64) -> Result<PassReport, PassError> {
        let first = ms(self.settings.first_check_after);
        match self.store.next_check_due(first).await? {
            Some(at) if at <= now_ms => {}
            _ => return Ok(PassReport::default()),
        }
        let until = now_ms.saturating_add(lookahead(ms(self.settings.check_every)));
        let due = self
            .store
            .due_sessions_until(until, first, until, SESSIONS_PER_PASS)
            .await?;
        let (due, more) = fill(due, now_ms);
        self.pass_inner(now_ms, due, more, now_ms, now_ms).await
    }

    /// [`Tracker::pass`], also asking again about those asked before whose next check is due by
    /// `asked_until_ms` (`outcomes` asks about everything once, whatever the schedule says;
    /// since a check moves its next one to `now + check_every`, a round that passes
    /// `start + check_every - 1` ends).
    pub async fn pass_until(
        &self,
        now_ms: i64,
        asked_until_ms: i64,
    ) -> Result<PassReport, PassError> {
        let first = ms(self.settings.first_check_after);
        let due = self
            .store
            .due_sessions_until(now_ms, first, asked_until_ms, SESSIONS_PER_PASS)
            .await?;
        let more = due.len() == SESSIONS_PER_PASS;
        self.pass_inner(now_ms, due, more, now_ms, asked_until_ms)
            .await
    }

    /// Ask about `due` (and the in-doubt requests due by `due_ms`, never asked: sent by `due_ms
    /// - first_check_after`; asked: next check by `asked_until_ms`); schedule the next checks
    /// from `now_ms`.
    async fn pass_inner(
        &self,
        now_ms: i64,
        due: Vec<crate::store::DueSession>,
        more: bool,
        due_ms: i64,
        asked_until_ms: i64,
    ) -> Result<PassReport, PassError> {
        let mut report = PassReport {
            more,
            ..Default::default()
        };
        let first = ms(self.settings.first_check_after);
        for batch in schedule::batches(due) {
            report.sessions_asked += batch.len();
            report.recorded += self.check_batch(batch, now_ms).await?;
        }
        let due = self
            .store
            .due_reconciles_until(due_ms, first, asked_until_ms, RECONCILES_PER_PASS)
            .await?;
        report.more |= due.len() == RECONCILES_PER_PASS;
        for d in due {
            report.reconciles_asked += 1;
            self.reconcile(d, now_ms).await?;
        }
        Ok(report)
    }

    /// This action's limiter, seeded from the store the first time it is needed.
    async fn limiter(&self) -> Result<&Limiter, StoreError> {
        self.limiter
            .get_or_try_init(|| {
                crate::seed::seeded_limiter(
                    &self.store,
                    cdr::ACTION,
                    self.settings.requests_per_second,
                )
            })
            .await
    }

    /// Close the checks whose deadline passed while the queries failed (`why`): a session past
    /// `give_up_after` gets `no_record`, as after a last check that found nothing; an in-doubt
    /// request past `reconcile_after` stays `unknown`, its reason naming the failure (no call
    /// record was read, so nothing is proved either way). Without this, a query error that
    /// persists would keep `run` waiting for ever. Returns how many were closed.
    pub async fn expire(&self, now_ms: i64, why: &str) -> Result<usize, StoreError> {
        let (sessions, reconciles) = self
            .store
            .overdue_checks(
                now_ms,
                now_ms.saturating_sub(ms(self.settings.give_up_after)),
                now_ms.saturating_sub(ms(self.settings.reconcile_after)),
                SESSIONS_PER_PASS,
            )
            .await?;
        let n = sessions.len() + reconciles.len();
        let records = sessions
            .into_iter()
            .map(|d| OutcomeRecord {
                session_id: d.session_id,
                contact_id: d.contact_id,
                class: OutcomeClass::NoRecord.as_str().to_string(),
                source: "gave_up".into(),
                recorded_at: now_ms,
                ..Default::default()
            })
            .collect();
        self.write(records).await?;
        for attempt in reconciles {
            let reason = format!(
                "the call may have been created (a lost reply, or a try that failed with an internal error) and the call records could not be read by outcomes.reconcile_after (DescribeTelCdr: {why}): left unknown, check by hand"
            );
            self.store
                .finish_reconcile(attempt, Reconciled::Ambiguous(reason), now_ms)
                .await?;
        }
        if n > 0 {
            tracing::warn!(checks = n, reason = %why, "outcome checks past their deadline closed while DescribeTelCdr failed: sessions get no_record, lost replies stay unknown");
            self.changed.notify_waiters();
            self.wrote();
        }
        Ok(n)
    }

    /// Every page of one query, each request through this action's limiter, saying whether
    /// the answer is whole (every page read, each a readable list), where its window ended and
    /// when its first page was sent.
    async fn query_answer(
        &self,
        filter: Filter,
        oldest_sent_secs: i64,
        now_secs: i64,
        max_pages: u32,
    ) -> Result<Answer, PassError> {
        let (start, end) = CdrQuery::window(oldest_sent_secs, now_secs);
        let mut q = CdrQuery {
            sdk_app_id: self.sdk_app_id,
            start,
            end,
            filter,
            page: 0,
        };
        let mut out = Answer {
            records: Vec::new(),
            complete: true,
            end,
            sent_ms: i64::MAX,
        };
        let limiter = self.limiter().await?;
        loop {
            // Written down (with its slot in the account's window when the store shares it)
            // before it leaves, its departure after (see the module doc).
            let (row, departure, slot) =
                crate::shared_window::query(&self.store, limiter, cdr::ACTION).await?;
            out.sent_ms = out.sent_ms.min(crate::dispatch::now_ms());
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let on_leave = crate::shared_window::on_leave(&self.store, &departure, slot.as_ref());
            let reply = self
                .client
                .post_timed(cdr::ACTION, q.body(), Some(on_leave))
                .await;
            crate::shared_window::query_sent(&self.store, row, &departure, slot.as_ref()).await?;
            let page = match reply {
                Ok((status, body)) => cdr::parse_reply(status, &body),
                Err(e) => Err(e),
            }
            .map_err(|e| PassError::Query(judge(&e)))?;
            out.records.extend(page.records);
            out.complete &= page.complete;
            match q.next_page(page.total) {
                Some(next) if next.page < max_pages => q = next,
                Some(_) => {
                    // Cut at max_pages: records may be missing.
                    out.complete = false;
                    return Ok(out);
                }
                None => return Ok(out),
            }
        }
    }

    /// The record as the store keeps it, classed (an unknown end code warned about once).
    pub fn to_record(&self, r: &CallRecord, source: &str, now_ms: i64) -> OutcomeRecord {
        let c = classify(r, &self.settings.classes);
        if c.unknown_code {
            let code = r.end_status.unwrap_or(-1);
            if lock(&self.warned).insert(code) {
                tracing::warn!(
                    end_status = code,
                    end_status_string = r.end_status_string.as_deref().unwrap_or(""),
                    "a call record has an end code the outcome table does not know: kept raw, classed `{}`; to class it, add it to [outcomes.classes]",
                    c.class
                );
            }
        }
        let answered = r.accept_timestamp.filter(|t| *t > 0);
        let ended = r.ended_timestamp.filter(|t| *t > 0);
        let duration = r.duration.or(match (answered, ended) {
            (Some(a), Some(e)) if e >= a => Some(e - a),
            _ => None,
        });
        OutcomeRecord {
            session_id: r.session_id.clone().unwrap_or_default(),
            contact_id: 0,
            class: c.class.as_str().to_string(),
            end_status: r.end_status,
            end_status_string: r.end_status_string.clone(),
            duration_s: duration,
            ring_at: r.ring_timestamp.filter(|t| *t > 0),
            answered_at: answered,
            ended_at: ended,
            hangup_side: r.hung_up_side.clone().filter(|s| !s.is_empty()),
            sys_hangup_reason: r.sys_hangup_reason,
            ai_agent_id: r.ai_agent_id,
            source: source.to_string(),
            recorded_at: now_ms,
        }
    }

    /// Write records; free lines, count, wake waiters for the new ones. Returns how many were new.
    pub async fn write(&self, records: Vec<OutcomeRecord>) -> Result<usize, StoreError> {
        Ok(self.write_all(records).await?.new.len())
    }

    /// [`Tracker::write`], telling what became of each record (new, corrected, ignored, or a
    /// pushed record kept until an attempt gets its session).
    pub async fn write_all(
        &self,
        records: Vec<OutcomeRecord>,
    ) -> Result<crate::store::Written, StoreError> {
        if records.is_empty() {
            return Ok(crate::store::Written::default());
        }
        let written = self.store.record_outcomes(records).await?;
        self.arrived(&written.arrivals);
        Ok(written)
    }

    /// What the process does when records arrive, however they came (a poll, a push, a
    /// reconciliation, a held push claimed by its attempt: see [`Tracker::attend`]): a new
    /// record frees its call's line and counts; a new or corrected one moves `/metrics`' class
    /// counts; waiters are woken. The store's part (the record, the redial decision) is done.
    pub fn arrived(&self, arrivals: &[Arrival]) {
        for a in arrivals {
            let rec = &a.record;
            let first = a
                .was
                .as_ref()
                .is_none_or(|(was, _)| was == OutcomeClass::NoRecord.as_str());
            if rec.class == OutcomeClass::NoRecord.as_str() {
                self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
            } else {
                self.call_ended(rec);
            }
            if first {
                self.stats.recorded.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(f) = &self.on_recorded {
                f(a);
            }
        }
        self.changed.notify_waiters();
        self.wrote();
    }

    /// Tell the dispatchers (see [`crate::outcomes::stops`]).
    fn wrote(&self) {
        if let Some(s) = &self.stops {
            s.wrote();
        }
    }

    /// Be told of the records held pushes bring when attempts get their sessions (they arrive
    /// in the dialler's write, not this tracker's): [`Tracker::arrived`] for them as well. The
    /// store keeps a weak reference: dropping the tracker ends it.
    pub fn attend(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.store.on_arrival(Arc::new(move |arrivals: &[Arrival]| {
            if let Some(t) = me.upgrade() {
                t.arrived(arrivals);
            }
        }));
    }

    /// The line of a call whose end is known (`ended_at`, Unix seconds) is free at once (a
    /// session whose end was heard before is ignored).
    fn call_ended(&self, rec: &OutcomeRecord) {
        if let (Some(lines), Some(ended)) = (&self.lines, rec.ended_at.filter(|e| *e > 0)) {
            lines.call_ended(&rec.session_id, ended.saturating_mul(1000));
        }
    }

    async fn check_batch(
        &self,
        batch: Vec<crate::store::DueSession>,
        now_ms: i64,
    ) -> Result<usize, PassError> {
        let Some(oldest) = batch.first().map(|d| d.sent_at) else {
            return Ok(0);
        };
        let ids: Vec<String> = batch.iter().map(|d| d.session_id.clone()).collect();
        let pages = (batch.len() / cdr::PAGE_SIZE + 2) as u32;
        let answer = self
            .query_answer(Filter::Sessions(ids), oldest / 1000, now_ms / 1000, pages)
            .await?;
        let records = answer.records;
        let found: HashMap<&str, &CallRecord> = records
            .iter()
            .filter_map(|r| r.session_id.as_deref().map(|s| (s, r)))
            .collect();
        tracing::trace!(
            asked = batch.len(),
            found = found.len(),
            "outcomes: a check of sessions"
        );
        if let (Some(lines), true) = (&self.lines, answer.complete) {
            // The sessions a whole answer lacks had no visible record when it was sent: their
            // calls' lines are believed busy until a while before then (see Lines::call_missed).
            for d in batch
                .iter()
                .filter(|d| !found.contains_key(d.session_id.as_str()))
            {
                lines.call_missed(&d.session_id, answer.sent_ms);
            }
        }
        let every = ms(self.settings.check_every);
        let mut write = Vec::new();
        let mut again = Vec::new();
        for d in &batch {
            match found.get(d.session_id.as_str()) {
                Some(r) => {
                    let mut rec = self.to_record(r, "poll", now_ms);
                    rec.contact_id = d.contact_id;
                    write.push(rec);
                }
                None => match schedule::after_miss(
                    d.sent_at,
                    now_ms,
                    every,
                    ms(self.settings.give_up_after),
                ) {
                    Next::At(at) => again.push((d.attempt_id, at)),
                    Next::GiveUp => write.push(OutcomeRecord {
                        session_id: d.session_id.clone(),
                        contact_id: d.contact_id,
                        class: OutcomeClass::NoRecord.as_str().to_string(),
                        source: "gave_up".into(),
                        recorded_at: now_ms,
                        ..Default::default()
                    }),
                },
            }
        }
        let n = self.write(write).await?;
        self.store.reschedule_checks(again).await?;
        Ok(n)
    }

    async fn reconcile(&self, d: crate::store::DueReconcile, now_ms: i64) -> Result<(), PassError> {
        // A lost reply (`reconcile`) is looked up while its contact is `unknown`; a try that
        // failed with InternalError* (`retry_check`) while its contact waits for the retry
        // (`pending`) or was failed by it (the store checks it is the contact's latest try).
        let retry = d.kind == "retry_check";
        let open = match retry {
            true => ["pending", "failed"].contains(&d.status.as_str()),
            false => d.status == crate::contact::Status::Unknown.as_str(),
        };
        if !open {
            self.store
                .finish_reconcile(d.attempt_id, Reconciled::Moot, now_ms)
                .await?;
            return Ok(());
        }
        let what = if retry {
            "a try that failed with an internal error"
        } else {
            "a lost reply"
        };
        let sent = d.sent_at / 1000;
        let answer = self
            .query_answer(
                Filter::Phones(reconcile::spellings(&d.callee)),
                sent - reconcile::BEFORE_SECS + cdr::LEAD_SECS,
                now_ms / 1000,
                MAX_PHONE_PAGES,
            )
            .await?;
        let conclusive = reconcile::conclusive(answer.complete, answer.end, sent);
        let records = answer.records;
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| r.session_id.clone())
            .collect();
        let known = self.store.known_sessions(ids).await?;
        let agent = d.agent_override.unwrap_or(self.agent);
        let how = match reconcile::find(&records, &d.callee, agent, sent, |s| known.contains(s)) {
            // One match in an answer read in full; in a cut one (pages left unread, a page
            // without its list) a second match may hide in what was not read.
            Match::One(r) if answer.complete => {
                let rec = self.to_record(&r, "reconciled", now_ms);
                tracing::info!(contact = d.contact_id, line = d.line, callee = %crate::dispatch::mask(&d.callee), session = %rec.session_id, outcome = %rec.class, "reconciled: the call records show the call of {what}; the contact is placed (not called again)");
                self.stats.reconciled.fetch_add(1, Ordering::Relaxed);
                Reconciled::Found(Box::new(rec))
            }
            Match::Many(sessions) => {
                tracing::warn!(contact = d.contact_id, line = d.line, callee = %crate::dispatch::mask(&d.callee), sessions = %sessions.join(","), "two or more call records match {what}: left unknown");
                Reconciled::Ambiguous(format!(
                    "{what}: {} call records match it (sessions {}): left unknown, check them by hand",
                    sessions.len(),
                    sessions.join(", ")
                ))
            }
            Match::OtherAgent(sessions) => {
                tracing::warn!(contact = d.contact_id, line = d.line, callee = %crate::dispatch::mask(&d.callee), sessions = %sessions.join(","), agent, "a call record matching {what} names another AI agent: left unknown");
                Reconciled::Ambiguous(format!(
                    "{what}: call records of another AI agent match it (sessions {}; the campaign's agent is {agent}): left unknown, check them by hand",
                    sessions.join(", ")
                ))
            }
            Match::None
                if conclusive && now_ms - d.sent_at >= ms(self.settings.reconcile_after) =>
            {
                if retry {
                    tracing::info!(contact = d.contact_id, line = d.line, callee = %crate::dispatch::mask(&d.callee), "no call record by outcomes.reconcile_after: the try that failed with an internal error created no call; its retry may go");
                } else {
                    tracing::info!(contact = d.contact_id, line = d.line, callee = %crate::dispatch::mask(&d.callee), "no call record by outcomes.reconcile_after: the request did not create a call (not_placed)");
                }
                self.stats.not_placed.fetch_add(1, Ordering::Relaxed);
                Reconciled::NotPlaced
            }
            Match::None | Match::One(_)
                if !answer.complete
                    && answer.end >= sent + reconcile::AFTER_SECS
                    && now_ms - d.sent_at >= ms(self.settings.reconcile_after) =>
            {
                tracing::warn!(
                    contact = d.contact_id,
                    "the call records for {what} could not be read in full: left unknown"
                );
                Reconciled::Ambiguous(format!(
                    "{what}: the call records could not be read in full (pages left unread or a reply without a record list): left unknown, check by hand"
                ))
            }
            Match::None | Match::One(_) => {
                // Not yet time, or the answer proves nothing (pages unread, no record list,
                // a window ending before the call could have started): ask again.
                let mut at = now_ms + ms(self.settings.check_every);
                if conclusive {
                    at = at.min(d.sent_at + ms(self.settings.reconcile_after));
                } else {
                    tracing::info!(
                        contact = d.contact_id,
                        complete = answer.complete,
                        window_end = answer.end,
                        "the call records for {what} could not be read in full: asking again"
                    );
                }
                self.store
                    .reschedule_checks(vec![(d.attempt_id, at)])
                    .await?;
                return Ok(());
            }
        };
        let arrival = self
            .store
            .finish_reconcile(d.attempt_id, how, now_ms)
            .await?;
        self.arrived(arrival.as_slice());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_moved_forward_at_most_a_sixth_of_check_every_and_5_s() {
        assert_eq!(lookahead(30_000), 5_000);
        assert_eq!(lookahead(60_000), 5_000);
        assert_eq!(lookahead(6_000), 1_000);
        assert_eq!(lookahead(0), 0);
    }

    fn due(id: i64, due_at: i64) -> crate::store::DueSession {
        crate::store::DueSession {
            attempt_id: id,
            contact_id: id,
            session_id: format!("s-{id}"),
            sent_at: due_at - 30_000,
            checks: 0,
            due_at,
        }
    }

    #[test]
    fn the_lookahead_fills_the_last_request_and_never_adds_one() {
        // 120 sessions due within the lookahead, one every 50 ms from now: the one due now and
        // the 99 soonest after it make one full request; the other 20 wait for their own time.
        let now = 1_000_000;
        let sessions: Vec<_> = (0..120).rev().map(|i| due(i, now + i * 50)).collect();
        let (kept, more) = fill(sessions, now);
        assert_eq!(kept.len(), 100);
        assert!(!more);
        assert_eq!(kept[0].attempt_id, 0, "sorted by send time");
        assert_eq!(kept[99].attempt_id, 99);
        // 130 due now: all of them, and 70 more to fill the second request.
        let sessions: Vec<_> = (0..250).map(|i| due(i, now - 130 + i)).collect();
        let (kept, _) = fill(sessions, now);
        assert_eq!(kept.len(), 200);
        // None due now: nothing is asked early alone.
        let (kept, _) = fill(vec![due(1, now + 1)], now);
        assert!(kept.is_empty());
        // A pass's worth all due now: more may be waiting.
        let sessions: Vec<_> = (0..SESSIONS_PER_PASS as i64).map(|i| due(i, now)).collect();
        assert!(fill(sessions, now).1);
    }

    #[test]
    fn query_errors_are_judged_by_the_retry_policys_classes() {
        let api = |code: &str| CallError::Api {
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
        };
        assert!(matches!(
            judge(&api("RequestLimitExceeded")),
            QueryFailure::Throttled(_)
        ));
        assert!(matches!(
            judge(&api("AuthFailure.SignatureFailure")),
            QueryFailure::Halt { .. }
        ));
        assert!(matches!(
            judge(&api("InternalError.DBError")),
            QueryFailure::Backoff(_)
        ));
        assert!(matches!(
            judge(&CallError::InDoubt { reason: "x".into() }),
            QueryFailure::Backoff(_)
        ));
    }
}
