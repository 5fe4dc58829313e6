//! Many campaigns in one process: one runner per active campaign, each the same engine loop as
//! `ccc-dialer run` ([`dispatch::run_campaign`]), all sharing one limiter (taken in turn, so a
//! big campaign cannot starve a small one), one pool of in-flight permits and one store.
//!
//! Invariants:
//! - At most one runner per campaign: a resume while the previous runner is still draining
//!   waits for it to end before the new one starts.
//! - A campaign's state in the store is the truth after a restart: `active` campaigns are
//!   started again, after the contacts left in flight by the previous process are settled as
//!   `unknown` (never redialled).
//! - Pause, cancel and shutdown stop sending at once (the dispatcher watches its stop channel);
//!   replies in flight are still recorded, within the grace period.
//! - A halt code pauses every active campaign (they share the account's credentials and
//!   SdkAppId) with the code and the fix as the reason, instead of ending the process; a code
//!   about one campaign's own agent or callers (`NoCallOutNumber`) pauses only that campaign.
//!
//! The std `Mutex` around the runners is never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::settings::CampaignSettings;
use crate::config::Config;
use crate::contact::ResultRow;
use crate::dispatch::{self, now_ms, Engine, RunOutcome, Stop};
use crate::store::{Campaign, CampaignState, StoreError};

struct Runner {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
    engine: Arc<Engine>,
    /// The stops of the runners this one replaced (each still draining, or waiting for the one
    /// before it, when the next was started; this one waits for them all): a second stop signal
    /// must reach every one of them, the oldest above all, since it is the one still draining.
    draining: Vec<watch::Sender<Stop>>,
    /// Set (under the steering lock) once the runner recorded its campaign `completed`: from
    /// then on it dials nothing more, even before its task has returned.
    ended: Arc<AtomicBool>,
    /// When it started (Unix ms): the campaign's rate is measured from then at most.
    started_ms: i64,
}

impl Runner {
    fn is_live(&self) -> bool {
        !self.task.is_finished()
            && !self.ended.load(Ordering::SeqCst)
            && *self.stop.borrow() == Stop::Run
    }
}

pub struct Campaigns {
    cfg: Arc<Config>,
    /// Shared parts (store, client, limiter, permits, metrics) and the config's retry settings.
    base: Arc<Engine>,
    runners: Mutex<HashMap<i64, Runner>>,
    /// Each campaign's own rate cap (`max_rate`), kept across its runners: a pause and a
    /// resume within a second must not start the campaign's window afresh (that let twice
    /// its cap leave in that second).
    own_rates: Mutex<HashMap<i64, Arc<dispatch::campaign_rate::CampaignRate>>>,
    /// Set once shutdown starts: nothing new is started after it.
    closing: watch::Sender<bool>,
    /// Held while a campaign's state and its runner change together (pause, resume, cancel, a
    /// halt's pause), so a pause and a resume at once cannot leave the store saying `active`
    /// with no runner, or `paused` with one.
    steering: tokio::sync::Mutex<()>,
    /// The `[notify]` webhook, set once by `serve` (tests build services without one).
    notifier: std::sync::OnceLock<crate::notify::Notifier>,
}

/// How long a runner with nothing left to send waits before it looks again while contacts of
/// its campaign are still in flight (another replica's, on a shared store).
const OTHERS_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Campaigns {
    pub fn new(cfg: Arc<Config>, base: Arc<Engine>) -> Arc<Campaigns> {
        Arc::new(Campaigns {
            cfg,
            base,
            runners: Mutex::new(HashMap::new()),
            own_rates: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
            steering: tokio::sync::Mutex::new(()),
            notifier: std::sync::OnceLock::new(),
        })
    }

    /// Notify the webhook of what the engine did to campaigns from now on.
    pub fn set_notifier(&self, n: crate::notify::Notifier) {
        let _ = self.notifier.set(n);
    }

    /// Queue a webhook notification for campaign `id` (never waits for its delivery).
    async fn tell(&self, id: i64, kind: crate::notify::Kind, reason: Option<String>) {
        let Some(n) = self.notifier.get().filter(|n| n.is_enabled()) else {
            return;
        };
        let store = &self.base.store;
        let (Ok(Some(c)), Ok(counts)) = (store.campaign(id).await, store.counts(id).await) else {
            tracing::warn!(
                campaign = id,
                "webhook: cannot read the campaign; not notified"
            );
            return;
        };
        n.notify(crate::notify::Event::new(
            kind, id, &c.name, reason, &counts,
        ));
    }

    pub fn base(&self) -> &Arc<Engine> {
        &self.base
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Start every campaign the store says is active and whose contacts are all in.
    pub async fn resume_all(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut n = 0;
        for c in self.base.store.campaigns().await? {
            if c.state == CampaignState::Active && c.intake_done {
                self.start(&c);
                n += 1;
            }
        }
        Ok(n)
    }

    /// This campaign's live engine figures, if it has a runner in this process.
    pub fn engine_of(&self, campaign_id: i64) -> Option<Arc<Engine>> {
        lock(&self.runners)
            .get(&campaign_id)
            .map(|r| r.engine.clone())
    }

    /// Since when (Unix ms) this process has been dialling `campaign_id` without a pause, if it
    /// is.
    pub fn dialling_since(&self, campaign_id: i64) -> Option<i64> {
        lock(&self.runners)
            .get(&campaign_id)
            .filter(|r| r.is_live())
            .map(|r| r.started_ms)
    }

    /// `campaign_id`'s own rate cap at `rate` requests/s: the one its earlier runners used
    /// when the rate is the same (its window of recent sends goes on), else a new one.
    fn own_rate(&self, campaign_id: i64, rate: f64) -> Arc<dispatch::campaign_rate::CampaignRate> {
        let mut rates = lock(&self.own_rates);
        match rates.get(&campaign_id) {
            Some(r) if r.rate() == rate => r.clone(),
            _ => {
                let r = Arc::new(dispatch::campaign_rate::CampaignRate::new(rate));
                rates.insert(campaign_id, r.clone());
                r
            }
        }
    }

    pub fn is_running(&self, campaign_id: i64) -> bool {
        lock(&self.runners)
            .get(&campaign_id)
            .is_some_and(Runner::is_live)
    }

    /// Start a runner for `c` unless one is live. A runner still draining from a pause is
    /// waited for first, so two never dial the same campaign.
    pub fn start(self: &Arc<Self>, c: &Campaign) {
        // Only an active campaign whose contacts are all in (paused while its file was read,
        // it stays paused).
        if *self.closing.borrow() || c.state != CampaignState::Active || !c.intake_done {
            return;
        }
        let settings: CampaignSettings = c
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_slice(s.as_bytes()).ok())
            .unwrap_or_default();
        let mut engine = self.base.for_campaign(settings.retry(&self.cfg));
        // Priority p: p + 1 tokens in a row at each turn (at most 10), plain turns at 0.
        engine.weight = 1 + c.priority.clamp(0, 9) as u32;
        engine.own_rate = settings.max_rate(&self.cfg).map(|r| self.own_rate(c.id, r));
        if settings.calling.is_some() {
            match settings.calling_rules(&self.cfg) {
                Ok(calling) => engine.rules = Arc::new(self.base.rules.for_campaign(calling)),
                // Validated at creation; a stored window the build no longer reads is the
                // config's rather than none.
                Err(e) => {
                    tracing::error!(campaign = %c.name, error = %e, "campaign window unreadable: using the config's")
                }
            }
        }
        let defaults = Arc::new(settings.request_defaults(&self.cfg));
        let redial = settings.redial(&self.cfg);
        if settings.agent_lines.is_some() {
            engine
                .lines
                .configure(defaults.ai_agent_id, settings.agent_lines);
        }
        let engine = Arc::new(engine);
        let mut runners = lock(&self.runners);
        // Checked again under the lock: shutdown sets `closing` and then drains the map, so a
        // start that passed the first check cannot slip a runner in behind it.
        if *self.closing.borrow() || runners.get(&c.id).is_some_and(Runner::is_live) {
            return;
        }
        let (previous, draining) = match runners.remove(&c.id) {
            Some(r) => {
                let mut draining = r.draining;
                draining.push(r.stop);
                (Some(r.task), draining)
            }
            None => (None, Vec::new()),
        };
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let this = self.clone();
        let (id, name) = (c.id, c.name.clone());
        let engine2 = engine.clone();
        let ended = Arc::new(AtomicBool::new(false));
        let ended2 = ended.clone();
        let task = tokio::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            // The policy its outcomes are decided by from now on (the config's may have changed
            // since the last start).
            if let Err(e) = engine2.store.set_redial_policy(id, redial).await {
                tracing::error!(campaign = %name, error = %e, "cannot record the campaign's redial policy");
                return;
            }
            this.run_one(id, &name, engine2, defaults, stop_rx, &ended2)
                .await;
        });
        runners.insert(
            c.id,
            Runner {
                stop: stop_tx,
                task,
                engine,
                draining,
                ended,
                started_ms: now_ms(),
            },
        );
    }

    /// Start `campaign_id`'s runner from its state in the store now, under the steering lock:
    /// a pause (or cancel) committed after the caller last read the campaign is honoured, not
    /// overtaken by a runner started from the older state. Returns whether it runs.
    pub async fn start_current(self: &Arc<Self>, campaign_id: i64) -> Result<bool, StoreError> {
        let _steering = self.steering.lock().await;
        if let Some(c) = self.base.store.campaign(campaign_id).await? {
            self.start(&c);
        }
        Ok(self.is_running(campaign_id))
    }

    /// The store says `campaign_id` changed (another replica steered it, created it, added
    /// contacts to it; or this process did, and hears its own notice): this process's runner
    /// is made to agree with the campaign's state now, under the steering lock. Active with
    /// its contacts in: started, or, running, woken to look for new contacts at once. Paused
    /// (except by an endpoint outage: those runners wait on the breaker, which lets the probe
    /// through that resumes them), cancelled or gone: its runner stops sending (replies in
    /// flight are recorded). Completed: left to end by itself.
    pub async fn follow(self: &Arc<Self>, campaign_id: i64) -> Result<(), StoreError> {
        let _steering = self.steering.lock().await;
        let c = self.base.store.campaign(campaign_id).await?;
        self.follow_steered(campaign_id, c.as_ref(), true);
        Ok(())
    }

    /// Every campaign as [`Campaigns::follow`] would, from one read of the list (the polling
    /// that catches what a lost notification did not say). Running campaigns are woken only
    /// when `wake` (notifications may have been missed: contacts added meanwhile).
    pub async fn follow_all(self: &Arc<Self>, wake: bool) -> Result<(), StoreError> {
        let _steering = self.steering.lock().await;
        let all = self.base.store.campaigns().await?;
        let mut known = std::collections::HashSet::new();
        for c in &all {
            known.insert(c.id);
            self.follow_steered(c.id, Some(c), wake);
        }
        let gone: Vec<i64> = lock(&self.runners)
            .keys()
            .filter(|id| !known.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.stop_runner(id, Stop::Drain);
        }
        Ok(())
    }

    fn follow_steered(self: &Arc<Self>, campaign_id: i64, c: Option<&Campaign>, wake: bool) {
        match c {
            Some(c) if c.state == CampaignState::Active && c.intake_done => {
                if self.is_running(campaign_id) {
                    if wake {
                        if let Some(r) = lock(&self.runners).get(&campaign_id) {
                            r.engine.wake.notify_one();
                        }
                    }
                } else {
                    if lock(&self.runners).contains_key(&campaign_id) {
                        tracing::debug!(campaign = %c.name, "campaign active in the store: dialling here too");
                    } else {
                        tracing::info!(campaign = %c.name, "campaign active in the store: dialling it");
                    }
                    self.start(c);
                }
            }
            Some(c) if c.state == CampaignState::Active || c.state == CampaignState::Completed => {}
            Some(c)
                if c.state == CampaignState::Paused
                    && super::outage::is_outage_reason(c.reason.as_deref()) => {}
            _ => {
                if self.is_running(campaign_id) {
                    let state = c.map_or("gone", |c| c.state.as_str());
                    tracing::info!(
                        campaign = campaign_id,
                        state,
                        "campaign no longer active in the store: stopping its dialling here"
                    );
                }
                self.stop_runner(campaign_id, Stop::Drain);
            }
        }
    }

    /// Contacts are about to be added to `campaign_id`: a completed campaign becomes active
    /// again before the first row is stored (under the steering lock), so a stop part-way
    /// (kill -9, a crash) leaves an active campaign that the next start dials, never pending
    /// contacts in a completed one. Returns the campaign's state now and whether it reopened.
    pub async fn open_for_add(
        &self,
        campaign_id: i64,
    ) -> Result<Option<(CampaignState, bool)>, StoreError> {
        let _steering = self.steering.lock().await;
        let reopened = self.base.store.reopen(campaign_id, now_ms()).await?;
        Ok(self
            .base
            .store
            .campaign(campaign_id)
            .await?
            .map(|c| (c.state, reopened)))
    }

    /// An addition to `campaign_id` ended (all stored, or failed part-way): under the steering
    /// lock, like a runner's completion and a cancel:
    /// - cancelled meanwhile: whatever the addition stored after the cancel is cancelled too;
    /// - contacts open: a completed campaign (a runner may have completed it before the first
    ///   rows were in) becomes active again and is started; a live runner looks at once (it
    ///   may be waiting for a later due time); a paused one stays paused;
    /// - nothing open and reopened for this addition (`reopened`) with no runner: completed
    ///   again, as it was.
    pub async fn added(
        self: &Arc<Self>,
        campaign_id: i64,
        reopened: bool,
    ) -> Result<(), StoreError> {
        let _steering = self.steering.lock().await;
        let store = &self.base.store;
        let Some(c) = store.campaign(campaign_id).await? else {
            return Ok(());
        };
        if c.state == CampaignState::Cancelled {
            store.cancel_pending(campaign_id, now_ms()).await?;
            return Ok(());
        }
        if store.has_open_contacts(campaign_id).await? {
            store.reopen(campaign_id, now_ms()).await?;
            if let Some(c) = store.campaign(campaign_id).await? {
                self.start(&c);
            }
            if let Some(r) = lock(&self.runners).get(&campaign_id) {
                r.engine.wake.notify_one();
            }
        } else if reopened && c.state == CampaignState::Active && !self.is_running(campaign_id) {
            store.complete_if_done(campaign_id, now_ms()).await?;
        }
        Ok(())
    }

    async fn run_one(
        self: &Arc<Self>,
        id: i64,
        name: &str,
        engine: Arc<Engine>,
        defaults: Arc<dispatch::RequestDefaults>,
        stop: watch::Receiver<Stop>,
        ended: &AtomicBool,
    ) {
        let store = &engine.store;
        // Whatever an earlier runner or process left in flight is in doubt now.
        match store.settle_in_flight(id, now_ms()).await {
            Ok(n) if n > 0 => tracing::warn!(
                campaign = name,
                contacts = n,
                "replies lost before this start: reported unknown, not redialled"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(campaign = name, error = %e, "cannot settle contacts in flight");
                return;
            }
        }
        if *stop.borrow() != Stop::Run {
            return;
        }
        tracing::info!(campaign = name, "campaign started");
        let on_final: Arc<dyn Fn(ResultRow) + Send + Sync> = Arc::new(|_| {});
        let outcome = loop {
            let outcome = dispatch::run_campaign(
                engine.clone(),
                id,
                defaults.clone(),
                stop.clone(),
                on_final.clone(),
            )
            .await;
            if matches!(outcome, Ok(RunOutcome::Completed)) {
                let steering = self.steering.lock().await;
                match store.complete_if_done(id, now_ms()).await {
                    Ok(true) => {
                        ended.store(true, Ordering::SeqCst);
                        tracing::info!(campaign = name, "campaign completed");
                        self.tell(id, crate::notify::Kind::Completed, None).await;
                    }
                    // Contacts added since the dispatcher last looked, or (several replicas
                    // on one store) contacts another process still has in flight: dial on,
                    // unless it was paused or cancelled meanwhile. Nothing pending here:
                    // waits for a wake (contacts added, a notice), a stop, or a second.
                    Ok(false) => {
                        let state = store.campaign(id).await.ok().flatten().map(|c| c.state);
                        if state == Some(CampaignState::Active) && *stop.borrow() == Stop::Run {
                            if let Ok(None) = store.next_wait(id).await {
                                drop(steering);
                                let mut stop = stop.clone();
                                tokio::select! {
                                    _ = engine.wake.notified() => {}
                                    _ = tokio::time::sleep(OTHERS_IN_FLIGHT) => {}
                                    _ = stop.changed() => {}
                                }
                            }
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::error!(campaign = name, error = %e, "cannot record the campaign's state")
                    }
                }
            }
            break outcome;
        };
        if let Err(e) = store.settle_in_flight(id, now_ms()).await {
            tracing::error!(campaign = name, error = %e, "cannot settle contacts in flight");
        }
        let state = store.campaign(id).await.ok().flatten().map(|c| c.state);
        if state == Some(CampaignState::Cancelled) {
            // Attempts released unsent while stopping went back to pending: cancel them too.
            let _ = store.cancel_pending(id, now_ms()).await;
            tracing::info!(campaign = name, "campaign cancelled");
            return;
        }
        let result = match outcome {
            // Recorded above, under the steering lock.
            Ok(RunOutcome::Completed) => Ok(()),
            Ok(RunOutcome::Halted { code, message })
                if message.starts_with(dispatch::systematic::MESSAGE_PREFIX) =>
            {
                // This campaign's own request is refused (its agent, callers, variables).
                let reason = format!(
                    "halted by {code}: {message}; {}",
                    dispatch::systematic::HINT
                );
                tracing::error!(campaign = name, code = %code, "every contact is failing the same way: pausing the campaign");
                self.pause_halted(id, &reason).await
            }
            Ok(RunOutcome::Halted { code, message }) => {
                let reason = format!(
                    "halted by {code} ({message}); {}; then resume",
                    crate::policy::halt_hint(&code)
                );
                if crate::policy::halt_is_account_wide(&code) {
                    tracing::error!(campaign = name, code = %code, "account-level error: pausing every active campaign");
                    self.pause_all(&reason).await
                } else {
                    tracing::error!(campaign = name, code = %code, "this campaign's settings are refused: pausing it");
                    self.pause_halted(id, &reason).await
                }
            }
            Ok(RunOutcome::Interrupted) => Ok(()),
            // Only with `halt_untracked`, which a service leaves off (it waits, saying why).
            Ok(RunOutcome::Untracked(u)) => {
                let reason = format!(
                    "halted: {}; {}; then resume",
                    u.describe(),
                    u.stopped.hint()
                );
                self.pause_halted(id, &reason).await
            }
            Err(e) => {
                tracing::error!(campaign = name, error = %e, "campaign stopped by an engine error");
                let reason = format!("stopped by an engine error: {e}; resume to retry");
                let paused = store
                    .set_campaign_state(id, CampaignState::Paused, Some(reason.clone()), now_ms())
                    .await;
                if let Ok(true) = paused {
                    self.tell(id, crate::notify::Kind::Paused, Some(reason))
                        .await;
                }
                paused.map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::error!(campaign = name, error = %e, "cannot record the campaign's state");
        }
    }

    fn stop_runner(&self, campaign_id: i64, how: Stop) {
        if let Some(r) = lock(&self.runners).get(&campaign_id) {
            r.stop.send_if_modified(|s| {
                let changed = *s < how;
                if changed {
                    *s = how;
                }
                changed
            });
        }
    }

    /// Pause: nothing new is sent from now; replies in flight are recorded.
    pub async fn pause(&self, campaign_id: i64, reason: &str) -> Result<bool, StoreError> {
        let _steering = self.steering.lock().await;
        self.pause_steered(campaign_id, reason).await
    }

    /// [`Campaigns::pause`] with the steering lock already held.
    async fn pause_steered(&self, campaign_id: i64, reason: &str) -> Result<bool, StoreError> {
        let changed = self
            .base
            .store
            .set_campaign_state(
                campaign_id,
                CampaignState::Paused,
                Some(reason.to_string()),
                now_ms(),
            )
            .await?;
        self.stop_runner(campaign_id, Stop::Drain);
        Ok(changed)
    }

    /// One campaign paused by a halt code: the webhook is told.
    async fn pause_halted(&self, campaign_id: i64, reason: &str) -> Result<(), StoreError> {
        if self.pause(campaign_id, reason).await? {
            let why = Some(reason.to_string());
            self.tell(campaign_id, crate::notify::Kind::Halted, why)
                .await;
        }
        Ok(())
    }

    /// Every active campaign paused with `reason` (a halt code concerns the whole account);
    /// the webhook is told of each.
    pub async fn pause_all(&self, reason: &str) -> Result<(), StoreError> {
        let _steering = self.steering.lock().await;
        for c in self.base.store.campaigns().await? {
            if c.state == CampaignState::Active && self.pause_steered(c.id, reason).await? {
                self.tell(c.id, crate::notify::Kind::Halted, Some(reason.to_string()))
                    .await;
            }
        }
        Ok(())
    }

    /// An endpoint outage: every active campaign (and every one already paused by it) shows
    /// `paused` with `reason`. Their runners keep waiting on the shared breaker, which lets one
    /// probe through at a time; nothing else is sent.
    pub async fn pause_for_outage(&self, reason: &str) -> Result<(), StoreError> {
        let _steering = self.steering.lock().await;
        for c in self.base.store.campaigns().await? {
            let outage_paused = c.state == CampaignState::Paused
                && super::outage::is_outage_reason(c.reason.as_deref());
            if c.state == CampaignState::Active || outage_paused {
                self.base
                    .store
                    .set_campaign_state(
                        c.id,
                        CampaignState::Paused,
                        Some(reason.to_string()),
                        now_ms(),
                    )
                    .await?;
                // Told once, when the outage pauses it (not at every new probe time).
                if c.state == CampaignState::Active {
                    self.tell(c.id, crate::notify::Kind::Paused, Some(reason.to_string()))
                        .await;
                }
            }
        }
        Ok(())
    }

    /// The endpoint answers again: every campaign paused by the outage is resumed.
    pub async fn resume_after_outage(self: &Arc<Self>) -> Result<(), StoreError> {
        for c in self.base.store.campaigns().await? {
            if c.state == CampaignState::Paused
                && super::outage::is_outage_reason(c.reason.as_deref())
            {
                tracing::info!(campaign = %c.name, "endpoint reachable again: campaign resumed");
                self.resume(c.id).await?;
            }
        }
        Ok(())
    }

    pub async fn resume(self: &Arc<Self>, campaign_id: i64) -> Result<bool, StoreError> {
        let _steering = self.steering.lock().await;
        let changed = self
            .base
            .store
            .set_campaign_state(campaign_id, CampaignState::Active, None, now_ms())
            .await?;
        if let Some(c) = self.base.store.campaign(campaign_id).await? {
            if c.state == CampaignState::Active && c.intake_done {
                self.start(&c);
            }
        }
        Ok(changed)
    }

    /// Cancel: undialled contacts become `cancelled` at once; replies in flight are recorded.
    pub async fn cancel(&self, campaign_id: i64) -> Result<bool, StoreError> {
        let _steering = self.steering.lock().await;
        let store = &self.base.store;
        let changed = store
            .set_campaign_state(
                campaign_id,
                CampaignState::Cancelled,
                Some("cancelled by an operator".into()),
                now_ms(),
            )
            .await?;
        self.stop_runner(campaign_id, Stop::Drain);
        store.cancel_pending(campaign_id, now_ms()).await?;
        Ok(changed)
    }

    /// Shutdown: start nothing new, stop every runner (`Drain`, then `Now` when `how` says so
    /// on a second signal) and wait for them; each records its replies and settles what it
    /// abandons as `unknown`.
    pub async fn shutdown(&self, mut how: watch::Receiver<Stop>) {
        let (stops, tasks): (Vec<_>, Vec<_>) = {
            let mut runners = lock(&self.runners);
            // Under the lock, so `start` sees it before it could insert a runner.
            self.closing.send_replace(true);
            runners
                .drain()
                .map(|(_, r)| ((r.stop, r.draining), r.task))
                .unzip()
        };
        let stops: Vec<watch::Sender<Stop>> = stops
            .into_iter()
            .flat_map(
                |(stop, draining): (watch::Sender<Stop>, Vec<watch::Sender<Stop>>)| {
                    std::iter::once(stop).chain(draining)
                },
            )
            .collect();
        let tasks: Vec<JoinHandle<()>> = tasks;
        let escalate = |s: Stop| {
            for stop in &stops {
                stop.send_if_modified(|cur| {
                    let changed = *cur < s;
                    if changed {
                        *cur = s;
                    }
                    changed
                });
            }
        };
        escalate((*how.borrow()).max(Stop::Drain));
        let all = futures_util::future::join_all(tasks);
        tokio::pin!(all);
        loop {
            tokio::select! {
                _ = &mut all => break,
                Ok(()) = how.changed() => escalate(*how.borrow()),
            }
        }
    }
}
