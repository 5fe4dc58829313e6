//! The tag tracker: asks `DescribeAICallExtractResult` (post-call tags, `[outcomes] tags`) and
//! `DescribeAIAnalysisResult` (summary, mood, intention, `[outcomes] analysis`) about every
//! answered session, until the result is there or `give_up_after` has passed since the call
//! ended, and acts on the tags: an opt-out puts the number on the account's own do-not-call
//! list, a `[[redial.on_tag]]` match asks for a redial.
//!
//! Invariants:
//! - Each action has its own [`Limiter`] (`outcomes.tags_requests_per_second`, default 10) and
//!   the tracker its own connection pool: a query never takes a CreateAIAgentCall or
//!   DescribeTelCdr token, and the three actions' windows at the service are separate too.
//!   Each limiter keeps CreateAIAgentCall's rules: its window is seeded from the sends of its
//!   action the store recorded before a restart ([`crate::seed`]; each query is written down
//!   before it leaves and its departure after), and a query counts from when its connection
//!   wrote it ([`crate::limiter::Departure`]).
//! - The store is the schedule (`tag_checks`, enrolled by trigger when an answered session's
//!   outcome is written): a check leaves it only in the transaction that writes its answer, so
//!   a crash loses nothing and a result seen twice changes nothing (see `store::tags`).
//! - An empty result list means "not yet": asked again after `check_every`, then at doubling
//!   intervals (at most 30 min apart), the last time at the deadline.
//! - Errors: `RequestLimitExceeded` slows that action's limiter; other errors back off; an
//!   account-level code stops this tracker only (dialling and DescribeTelCdr go on).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};

use super::ai_results::{self, AiQuery, Kind};
use super::poller::{judge, QueryFailure};
use super::settings::OutcomeSettings;
use crate::calling::dnc::DncLists;
use crate::ccc::Client;
use crate::limiter::Limiter;
use crate::store::{DueTagCheck, RedialDecision, Store, StoreError, TagActions, TagsWritten};

/// Checks taken from the store per kind and pass.
const PER_PASS: usize = 64;
/// Requests of one kind in flight at once.
const IN_FLIGHT: usize = 8;
/// The longest wait between two checks of one session.
const MAX_INTERVAL: Duration = Duration::from_secs(30 * 60);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// When a session whose result was not there at `now_ms` (after `checks` earlier checks) is
/// asked again; `None`: give up (the deadline, `give_up_ms` after the call's end, has passed).
pub fn next_check(
    checks: u32,
    ended_ms: i64,
    now_ms: i64,
    check_every_ms: i64,
    give_up_ms: i64,
) -> Option<i64> {
    let deadline = ended_ms.saturating_add(give_up_ms);
    if now_ms >= deadline {
        return None;
    }
    let max = (MAX_INTERVAL.as_millis() as i64).max(check_every_ms);
    let wait = check_every_ms
        .saturating_mul(1i64 << checks.min(20))
        .min(max);
    Some(now_ms.saturating_add(wait).min(deadline))
}

/// Live figures.
#[derive(Debug, Default)]
pub struct TagStats {
    /// Requests sent, per action.
    pub tag_requests: AtomicU64,
    pub analysis_requests: AtomicU64,
    pub throttled: AtomicU64,
    pub errors: AtomicU64,
    /// Sessions whose tags / analysis were written (a repeat is not counted).
    pub tagged: AtomicU64,
    pub analysed: AtomicU64,
    pub gave_up: AtomicU64,
    pub opted_out: AtomicU64,
    pub redials: AtomicU64,
}

/// A redial a tag asked for: the contact's session, the rule (`name=value`), from when (ms).
pub type OnRedial = Arc<dyn Fn(&str, &str, i64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum TagPassError {
    #[error("{action} failed: {failure:?}")]
    Query {
        action: &'static str,
        failure: QueryFailure,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct TagTracker {
    store: Store,
    client: Client,
    tags_limiter: tokio::sync::OnceCell<Limiter>,
    analysis_limiter: tokio::sync::OnceCell<Limiter>,
    settings: OutcomeSettings,
    actions: TagActions,
    sdk_app_id: u64,
    /// The account's lists: an opt-out joins them at once (every campaign's next gate check).
    dnc: Option<Arc<DncLists>>,
    stopped: Mutex<Option<String>>,
    pub stats: TagStats,
    changed: Notify,
    /// Told if tag tracking stops (dispatchers stop waiting for tags nobody will read).
    stops: Option<Arc<crate::outcomes::stops::TrackingStops>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl TagTracker {
    /// `client` should be [`Client::separate`] from the dialling one.
    pub fn new(store: Store, client: Client, settings: OutcomeSettings, sdk_app_id: u64) -> Self {
        TagTracker {
            store,
            client,
            tags_limiter: tokio::sync::OnceCell::new(),
            analysis_limiter: tokio::sync::OnceCell::new(),
            settings,
            actions: TagActions::default(),
            sdk_app_id,
            dnc: None,
            stopped: Mutex::new(None),
            stats: TagStats::default(),
            changed: Notify::new(),
            stops: None,
        }
    }

    /// What matching tags do (opt-out, redial by tag).
    pub fn with_actions(mut self, actions: TagActions) -> Self {
        self.actions = actions;
        self
    }

    /// The lists an opt-out joins at once (the store's own list is written either way).
    pub fn with_dnc(mut self, dnc: Arc<DncLists>) -> Self {
        self.dnc = Some(dnc);
        self
    }

    /// Tell these dispatchers if tag tracking stops (see [`crate::outcomes::stops`]).
    pub fn with_stops(mut self, stops: Arc<crate::outcomes::stops::TrackingStops>) -> Self {
        self.stops = Some(stops);
        self
    }

    /// The kinds the settings ask for.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut k = Vec::new();
        if self.settings.tags {
            k.push(Kind::Tags);
        }
        if self.settings.analysis {
            k.push(Kind::Analysis);
        }
        k
    }

    /// Tell the store which kinds to enrol answered sessions for (and enrol the answered
    /// sessions of the last `give_up_after` that have no result yet). Call once at start.
    pub async fn enrol(&self, now_ms: i64) -> Result<(), StoreError> {
        let since = now_ms.saturating_sub(ms(self.settings.give_up_after));
        self.store.set_tag_kinds(self.kinds(), since).await
    }

    /// `check_every` in milliseconds.
    pub fn check_every_ms(&self) -> i64 {
        ms(self.settings.check_every)
    }

    /// Why tag tracking stopped, if it did.
    pub fn stopped(&self) -> Option<String> {
        lock(&self.stopped).clone()
    }

    /// Resolves after the next write (or stop).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// `kind`'s action's limiter, seeded from the store the first time it is needed.
    async fn limiter(&self, kind: Kind) -> Result<&Limiter, StoreError> {
        let cell = match kind {
            Kind::Tags => &self.tags_limiter,
            Kind::Analysis => &self.analysis_limiter,
        };
        cell.get_or_try_init(|| {
            crate::seed::seeded_limiter(
                &self.store,
                kind.action(),
                self.settings.tags_requests_per_second,
            )
        })
        .await
    }

    /// The task: pass after pass until `stop` turns true or an account-level error stops it.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stop.borrow() || self.stopped().is_some() {
                return;
            }
            let pause = match self.pass(crate::dispatch::now_ms()).await {
                Ok(true) => {
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Ok(false) => {
                    backoff = Duration::from_secs(1);
                    super::poller::IDLE
                }
                Err(TagPassError::Query {
                    action,
                    failure: QueryFailure::Throttled(why),
                }) => {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(action, reason = %why, "throttled: this action's queries slow down (dialling is not affected)");
                    super::poller::IDLE
                }
                Err(TagPassError::Query {
                    action,
                    failure: QueryFailure::Halt { code, message },
                }) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    let reason = format!(
                        "tag tracking stopped: {action} answered {code} ({message}); dialling and call outcomes go on\n{}\nanswered calls keep their place: `ccc-dialer outcomes` fetches their tags after the fix",
                        crate::policy::halt_hint(&code)
                    );
                    tracing::error!(code = %code, "{reason}");
                    *lock(&self.stopped) = Some(reason);
                    if let Some(s) = &self.stops {
                        s.stop_tags(crate::outcomes::stops::Stopped::new(
                            action, &code, &message,
                        ));
                    }
                    self.changed.notify_waiters();
                    return;
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "tag tracking: asking again later");
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

    /// One pass over the checks due at `now_ms`, every kind. `Ok(true)`: a kind took as many
    /// as it could (more may be due).
    pub async fn pass(&self, now_ms: i64) -> Result<bool, TagPassError> {
        self.pass_until(now_ms, now_ms).await
    }

    /// [`TagTracker::pass`], taking the checks due by `due_ms` (`outcomes` asks about every
    /// session once, whatever the schedule says).
    pub async fn pass_until(&self, now_ms: i64, due_ms: i64) -> Result<bool, TagPassError> {
        let mut more = false;
        for kind in self.kinds() {
            match self.store.next_tag_check_due(kind).await? {
                Some(at) if at <= due_ms => {}
                _ => continue,
            }
            let due = self.store.due_tag_checks(kind, due_ms, PER_PASS).await?;
            more |= due.len() == PER_PASS;
            let results: Vec<Result<(), TagPassError>> = futures_util::stream::iter(due)
                .map(|d| self.check(d, now_ms))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            for r in results {
                if let Err(TagPassError::Query { action, failure }) = &r {
                    if matches!(failure, QueryFailure::Throttled(_)) {
                        self.limiter(kind).await?.throttled();
                    }
                    return Err(TagPassError::Query {
                        action,
                        failure: failure.clone(),
                    });
                }
                r?;
            }
        }
        Ok(more)
    }

    /// Ask about one session once and write what came back.
    async fn check(&self, d: DueTagCheck, now_ms: i64) -> Result<(), TagPassError> {
        let now_s = now_ms / 1000;
        let ended_s = d.ended_at.or(d.call_at).unwrap_or(now_s);
        let call_s = d.call_at.unwrap_or(ended_s);
        let (start, end) = AiQuery::window(call_s, now_s);
        let q = AiQuery {
            sdk_app_id: self.sdk_app_id,
            session_id: d.session_id.clone(),
            start,
            end,
        };
        let limiter = self.limiter(d.kind).await?;
        let action = d.kind.action();
        // Written down (with its slot in the account's window when the store shares it) before
        // it leaves, its departure after (see the module doc).
        let (row, departure, slot) =
            crate::shared_window::query(&self.store, limiter, action).await?;
        let counter = match d.kind {
            Kind::Tags => &self.stats.tag_requests,
            Kind::Analysis => &self.stats.analysis_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let on_leave = crate::shared_window::on_leave(&self.store, &departure, slot.as_ref());
        let reply = self
            .client
            .post_timed(action, q.body(), Some(on_leave))
            .await;
        crate::shared_window::query_sent(&self.store, row, &departure, slot.as_ref()).await?;
        let reply = reply.map_err(|e| TagPassError::Query {
            action,
            failure: judge(&e),
        })?;
        let query_err = |e| TagPassError::Query {
            action,
            failure: judge(&e),
        };
        let written = match d.kind {
            Kind::Tags => match ai_results::parse_tags(reply.0, &reply.1).map_err(query_err)? {
                Some(tags) => {
                    let w = self
                        .store
                        .record_tags(d.session_id.clone(), tags, self.actions.clone(), now_ms)
                        .await?;
                    self.acted(&d, &w);
                    true
                }
                None => false,
            },
            Kind::Analysis => {
                match ai_results::parse_analysis(reply.0, &reply.1).map_err(query_err)? {
                    Some(a) => {
                        if self
                            .store
                            .record_analysis(d.session_id.clone(), a, now_ms)
                            .await?
                        {
                            self.stats.analysed.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    }
                    None => false,
                }
            }
        };
        // Answered, or given up on: no longer awaited (a dispatcher waiting looks again).
        let mut settled = written;
        if !written {
            let next = next_check(
                d.checks,
                ended_s.saturating_mul(1000),
                now_ms,
                ms(self.settings.check_every),
                ms(self.settings.give_up_after),
            );
            if next.is_none() {
                self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %d.session_id, action, "no result by outcomes.give_up_after: not asked again");
                settled = true;
            }
            self.store
                .reschedule_tag_checks(d.kind, vec![(d.session_id.clone(), next)])
                .await?;
        }
        self.changed.notify_waiters();
        if let (true, Some(s)) = (settled, &self.stops) {
            s.wrote();
        }
        Ok(())
    }

    /// Count and log what a session's tags did; an opt-out joins the in-memory lists at once.
    fn acted(&self, d: &DueTagCheck, w: &TagsWritten) {
        if w.new {
            self.stats.tagged.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(number) = &w.opted_out {
            self.stats.opted_out.fetch_add(1, Ordering::Relaxed);
            if let Some(dnc) = &self.dnc {
                dnc.add_own(number);
            }
            tracing::info!(contact = d.contact_id, session = %d.session_id, "opted out (post-call tag): the number is on the account's own do-not-call list");
        }
        match &w.redial {
            Some((
                rule,
                RedialDecision::Scheduled {
                    due_ms,
                    dial,
                    max_dials,
                },
            )) => {
                self.stats.redials.fetch_add(1, Ordering::Relaxed);
                let at = crate::times::rfc3339_seconds(*due_ms);
                tracing::info!(contact = d.contact_id, session = %d.session_id, rule = %rule, not_before = %at, dial, max_dials, "post-call tag asks for a redial: scheduled");
            }
            Some((rule, RedialDecision::MaxDials(n))) => {
                tracing::info!(contact = d.contact_id, session = %d.session_id, rule = %rule, dials = n, "post-call tag asks for a redial: not scheduled, redial.max_dials calls made");
            }
            Some((rule, _)) => {
                tracing::info!(contact = d.contact_id, session = %d.session_id, rule = %rule, "post-call tag asks for a redial: not scheduled (not the contact's latest call, or its campaign was cancelled)");
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_result_is_asked_for_at_doubling_intervals_until_the_deadline() {
        let (every, give_up) = (30_000, 24 * 3_600_000);
        assert_eq!(next_check(0, 0, 1_000, every, give_up), Some(31_000));
        assert_eq!(next_check(1, 0, 1_000, every, give_up), Some(61_000));
        assert_eq!(next_check(3, 0, 1_000, every, give_up), Some(241_000));
        // At most 30 minutes apart.
        assert_eq!(next_check(12, 0, 1_000, every, give_up), Some(1_801_000));
        // The last check lands on the deadline.
        assert_eq!(
            next_check(12, 0, give_up - 5_000, every, give_up),
            Some(give_up)
        );
        assert_eq!(next_check(0, 0, give_up, every, give_up), None);
        assert_eq!(next_check(40, 0, 1_000, every, give_up), Some(1_801_000));
    }
}
