//! `ccc-dialer serve`: many campaigns in one long-running process, on the same engine, store,
//! limiter and policy as `run`.
//!
//! - [`campaigns`]: one runner per active campaign, pause/resume/cancel, halts, shutdown;
//! - [`api`]: the HTTP API under `/v1`, `/healthz`, `/readyz`, `/metrics`;
//! - [`auth`]: the bearer token (constant-time comparison);
//! - [`inbox`]: CSV files dropped in a folder become campaigns, each imported once;
//! - [`settings`]: a campaign's own settings over the config's defaults;
//! - [`outage`]: campaigns paused while the endpoint is unreachable, resumed after;
//! - [`console`]: the web console at `/console/`, its files compiled in;
//! - [`contacts`]: `GET /v1/campaigns/{id}/contacts`, the contacts a page at a time;
//! - [`requeue`]: `POST /v1/campaigns/{id}/requeue`, finished contacts back in the queue;
//! - [`cdr_push`]: `POST /v1/ccc/cdr`, the receiver of the service's CDR data push;
//! - [`replicas`]: on a PostgreSQL store, what other replicas change is followed here.
//!
//! [`Service::run_until_stopped`] takes the listener and the stop signal from the caller, so
//! tests run it on port 0 and stop it when they like.

pub mod api;
pub mod auth;
pub mod campaigns;
pub mod cdr_push;
pub mod console;
pub mod contacts;
pub mod dnc;
pub mod history;
pub mod inbox;
pub mod inbox_checks;
pub mod limits;
pub mod listener;
pub mod origin;
pub mod outage;
pub mod pace;
pub mod probes;
pub mod replicas;
pub mod requeue;
pub mod settings;
pub mod toml_error;
pub mod upload;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::contact::Status;
use crate::dispatch::{now_ms, Engine, Stop};
use crate::import::{import_file_with, ImportError};
use crate::intake::{self, IntakeOptions};
use crate::secret::Secret;
use crate::store::{Campaign, CampaignState, CreateCheck, NewCampaign, Refused, Store, StoreError};
pub use campaigns::Campaigns;
pub use settings::CampaignSettings;

/// A campaign created this recently (or still running) counts as a twin of a new one with the
/// same contacts file.
pub const DUPLICATE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Skipped rows listed in an intake report (the rest are in the results).
pub const SKIPPED_SHOWN: usize = 100;

/// On a shared (PostgreSQL) store, an unfinished intake younger than this is left to the
/// replica creating it (which claims it right after the campaign's row is written).
pub const INTAKE_CLAIM_GRACE_MS: i64 = 30_000;

/// The reason of a campaign created paused.
pub const CREATED_PAUSED: &str = "created paused: resume it to start dialling";

/// Everything the handlers and the inbox share.
pub struct Service {
    pub campaigns: Arc<Campaigns>,
    pub store: Store,
    pub token: Option<Secret>,
    /// Where uploaded contact files are kept (the campaign's source, for a resumed intake).
    pub uploads: PathBuf,
    pub max_body_bytes: usize,
    /// Held while contacts are added to a campaign in this process (their lines are numbered
    /// after the campaign's last).
    pub creating: tokio::sync::Mutex<()>,
    /// Contact counts of completed campaigns, which no longer change: `/metrics` and the
    /// campaign list do not count a million finished rows again at every scrape.
    finished_counts: std::sync::Mutex<HashMap<i64, BTreeMap<Status, u64>>>,
    /// What `/metrics` serves, with the contact gauges as last counted (see
    /// [`probes::metrics`]). A tokio mutex: one scrape counts while the others wait for its
    /// figures.
    pub(crate) scrape: tokio::sync::Mutex<probes::Scrape>,
    /// Outcome tracking (`[outcomes] enabled`): the tracker polling DescribeTelCdr for every
    /// campaign's placed calls and lost replies, for the life of the service.
    pub outcomes: Option<Arc<crate::outcomes::poller::Tracker>>,
    /// Post-call tags and analysis (`[outcomes] tags`, `analysis`), for the life of the service.
    pub tags: Option<Arc<crate::outcomes::tags::TagTracker>>,
    /// The CDR push receiver, once set up (off until then: `POST /v1/ccc/cdr` answers 404).
    pub cdr_push: std::sync::OnceLock<Arc<cdr_push::PushReceiver>>,
}

/// A row of the intake report that will not be dialled.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedRow {
    pub line: u64,
    pub callee: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntakeReport {
    pub rows: u64,
    pub accepted: u64,
    pub skipped: u64,
    pub duplicates: u64,
    /// The first [`SKIPPED_SHOWN`] skipped rows.
    pub skipped_rows: Vec<SkippedRow>,
    pub ignored_columns: Vec<String>,
}

/// Why a campaign could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The file or the settings are unusable: the client's fault (4xx). Refused before anything
    /// is created, except when the file turns out unusable part-way through its intake: then
    /// the campaign already created is left `cancelled` with the reason (its contacts, if any,
    /// `cancelled` too).
    #[error("{0}")]
    Input(String),
    /// A campaign of this name exists with other contacts.
    #[error("{0}")]
    Conflict(String),
    /// Another campaign, active or recent, has the same contacts file under another name.
    #[error("{0}")]
    Duplicate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// A campaign created (or found again: the same name and contacts were submitted before).
#[derive(Debug, Clone)]
pub struct Created {
    pub campaign: Campaign,
    pub intake: Option<IntakeReport>,
    pub existing: bool,
}

impl Service {
    /// A campaign's contacts by status (from memory once it is completed).
    pub async fn counts(&self, c: &Campaign) -> Result<BTreeMap<Status, u64>, StoreError> {
        let lock = || {
            self.finished_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if let Some(counts) = lock().get(&c.id) {
            return Ok(counts.clone());
        }
        let counts = self.store.counts(c.id).await?;
        if c.state == CampaignState::Completed {
            lock().insert(c.id, counts.clone());
        }
        Ok(counts)
    }

    pub fn config(&self) -> &Arc<Config> {
        self.campaigns.config()
    }

    /// Drop a campaign's cached counts (it was completed, and a requeue reopened it).
    pub fn forget_counts(&self, campaign_id: i64) {
        self.finished_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&campaign_id);
    }

    pub fn intake_options(&self) -> IntakeOptions {
        let cfg = self.config();
        IntakeOptions {
            default_country: cfg.campaign.default_country.clone(),
            callee_format: cfg.campaign.callee_format,
        }
    }

    /// Create a campaign from a contacts file already on disk, import it and start it.
    /// `default_name` is used when the settings carry no name; `inbox` marks a file from the
    /// inbox (recorded with the campaign, in one transaction). An inbox file may not take the
    /// ad-hoc calls' names ([`settings::CALL_PREFIX`]): a sidecar naming one is refused, and a
    /// file named `call-….csv` becomes the campaign `inbox-call-…`.
    pub async fn create_campaign(
        &self,
        source: &Path,
        settings: CampaignSettings,
        default_name: String,
        inbox: Option<(String, String)>,
    ) -> Result<Created, CreateError> {
        self.create_campaign_checked(source, settings, default_name, inbox, true)
            .await
    }

    /// [`create_campaign`](Self::create_campaign); unless `allow_duplicate`, a file with the
    /// same content as a campaign under another name that is still running (or was created in
    /// the last [`DUPLICATE_WINDOW_MS`]) is refused with [`CreateError::Duplicate`]: the same
    /// list posted twice under two names would call everyone twice.
    pub async fn create_campaign_checked(
        &self,
        source: &Path,
        settings: CampaignSettings,
        default_name: String,
        inbox: Option<(String, String)>,
        allow_duplicate: bool,
    ) -> Result<Created, CreateError> {
        self.create_as(
            source,
            settings,
            default_name,
            inbox,
            allow_duplicate,
            false,
        )
        .await
    }

    /// An ad-hoc call's campaign of one (`name` from its Idempotency-Key, or a fresh one): a
    /// keyless call (`keyless`) is refused with [`CreateError::Conflict`] while another call
    /// to the same callee is still to be dialled or in flight, decided in the store.
    pub async fn create_call_campaign(
        &self,
        source: &Path,
        settings: CampaignSettings,
        name: String,
        keyless: bool,
    ) -> Result<Created, CreateError> {
        self.create_as(source, settings, name, None, true, keyless)
            .await
    }

    async fn create_as(
        &self,
        source: &Path,
        settings: CampaignSettings,
        default_name: String,
        inbox: Option<(String, String)>,
        allow_duplicate: bool,
        open_call: bool,
    ) -> Result<Created, CreateError> {
        settings
            .validate_with(self.config())
            .map_err(CreateError::Input)?;
        let default_name = if inbox.is_some() {
            settings
                .refuse_reserved_name()
                .map_err(CreateError::Input)?;
            inbox_name(default_name)
        } else {
            default_name
        };
        // Reading the whole file (up to the body limit, or any size from the inbox) is
        // blocking work: off the async threads.
        let path = source.to_path_buf();
        let fingerprint = tokio::task::spawn_blocking(move || {
            intake::check_header(&path)?;
            intake::fingerprint(&path)
        })
        .await
        .map_err(|e| CreateError::Other(e.to_string()))?
        .map_err(|e| CreateError::Input(e.to_string()))?;
        let explicit = settings.name.is_some();
        let wanted = settings.name.clone().unwrap_or(default_name);
        let settings_json = serde_json::to_string(&settings)
            .map_err(|e| CreateError::Other(format!("cannot encode settings: {e}")))?;
        let check = match (allow_duplicate, open_call) {
            (_, true) => CreateCheck::NoOpenCall,
            (true, false) => CreateCheck::Name,
            (false, false) => CreateCheck::NoTwinSince(now_ms() - DUPLICATE_WINDOW_MS),
        };
        // The store decides, in the transaction that writes the campaign: a name taken
        // meanwhile (another replica created it) is looked at again, as if it had been there.
        let mut tries = 0;
        let campaign = loop {
            tries += 1;
            let mut name = wanted.clone();
            if let Some(existing) = self.store.find_campaign(&name).await? {
                if existing.fingerprint == fingerprint && inbox.is_none() {
                    // The same request again is the same campaign; the same contacts with other
                    // settings would be answered with a campaign that ignores them.
                    let stored = existing
                        .settings
                        .as_deref()
                        .and_then(|s| serde_json::from_str::<CampaignSettings>(s).ok())
                        .unwrap_or_default();
                    if stored != settings {
                        return Err(CreateError::Conflict(format!(
                            "campaign {name:?} (id {}) already exists with these contacts and other settings; choose another name for other settings",
                            existing.id
                        )));
                    }
                    return Ok(Created {
                        campaign: existing,
                        intake: None,
                        existing: true,
                    });
                }
                if explicit || inbox.is_none() {
                    return Err(CreateError::Conflict(format!(
                        "a campaign named {name:?} already exists (id {}) with other contacts; choose another name",
                        existing.id
                    )));
                }
                name = format!("{name}-{}", &fingerprint[..8]);
                if self.store.find_campaign(&name).await?.is_some() {
                    name = format!("{name}-{}", now_ms());
                }
            }
            let created = self
                .store
                .create_campaign_unless(
                    NewCampaign {
                        name: name.clone(),
                        fingerprint: fingerprint.clone(),
                        source: source.display().to_string(),
                        settings: Some(settings_json.clone()),
                        priority: settings.priority.unwrap_or(0),
                        inbox: inbox.clone(),
                        paused: (settings.paused == Some(true)).then(|| CREATED_PAUSED.to_string()),
                    },
                    check,
                    now_ms(),
                )
                .await?;
            match created {
                Ok(c) => break c,
                Err(Refused::NameTaken) if tries < 3 => continue,
                Err(Refused::NameTaken) => {
                    return Err(CreateError::Conflict(format!(
                        "a campaign named {name:?} was created at the same time; try again"
                    )))
                }
                Err(Refused::Twin(twin)) => {
                    let hint = if inbox.is_some() {
                        "post it with POST /v1/campaigns?allow_duplicate=true if that is meant"
                    } else {
                        "send ?allow_duplicate=true if that is meant"
                    };
                    return Err(CreateError::Duplicate(format!(
                        "campaign {:?} (id {}, {}) has the same contacts file: its contacts would be called twice; {hint}",
                        twin.name, twin.id, twin.state
                    )));
                }
                Err(Refused::OpenCall(open)) => {
                    return Err(CreateError::Conflict(format!(
                        "a call to this callee is already queued or in flight (campaign {open}); send an Idempotency-Key to make retries safe"
                    )))
                }
            }
        };
        // Its intake is this process's: another replica finishes it only if this one dies.
        self.store.claim_additions(campaign.id).await?;
        let report = self.import(&campaign, source).await;
        if let Err(e) = self.store.release_additions(campaign.id).await {
            tracing::warn!(campaign = campaign.id, error = %e, "cannot let the claim on the intake go");
        }
        let report = report?;
        let campaign = self
            .store
            .campaign(campaign.id)
            .await?
            .ok_or_else(|| CreateError::Other("campaign vanished".into()))?;
        // From the state in the store now: a pause that came while the file was read holds.
        self.campaigns.start_current(campaign.id).await?;
        Ok(Created {
            campaign,
            intake: Some(report),
            existing: false,
        })
    }

    /// Import (or finish importing) a campaign's contacts and mark its intake done. A file that
    /// turns out unusable cancels the campaign with the reason.
    pub async fn import(
        &self,
        campaign: &Campaign,
        source: &Path,
    ) -> Result<IntakeReport, CreateError> {
        let opts = self.intake_options();
        let dnc = Some(self.campaigns.base().rules.dnc.as_ref());
        let report =
            match import_file_with(&self.store, campaign.id, source, &opts, dnc, now_ms()).await {
                Ok(r) => r,
                Err(ImportError::Intake(e)) => {
                    let reason = format!("intake failed: {e}");
                    self.store
                        .set_campaign_state(
                            campaign.id,
                            CampaignState::Cancelled,
                            Some(reason.clone()),
                            now_ms(),
                        )
                        .await?;
                    self.store.cancel_pending(campaign.id, now_ms()).await?;
                    return Err(CreateError::Input(e.to_string()));
                }
                Err(ImportError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(CreateError::Other(e.to_string())),
            };
        self.store.mark_intake_done(campaign.id).await?;
        // Cancelled while its file was read: the rows stored after the cancel are cancelled too.
        if let Some(c) = self.store.campaign(campaign.id).await? {
            if c.state == CampaignState::Cancelled {
                self.store.cancel_pending(campaign.id, now_ms()).await?;
            }
        }
        self.report(campaign.id, report, 0).await
    }

    /// The intake report of the file stored after line `first_line` (0: the campaign's own);
    /// skipped rows are listed by their line in that file.
    async fn report(
        &self,
        campaign_id: i64,
        report: crate::import::ImportReport,
        first_line: u64,
    ) -> Result<IntakeReport, CreateError> {
        let mut skipped_rows = Vec::new();
        if report.counts.skipped > 0 {
            let mut after = first_line;
            'pages: loop {
                let page = self.store.results_page(campaign_id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.line;
                for row in page {
                    if row.status == "skipped" {
                        skipped_rows.push(SkippedRow {
                            line: row.line - first_line,
                            callee: row.callee,
                            reason: renumbered(row.error_message, first_line),
                        });
                        if skipped_rows.len() >= SKIPPED_SHOWN {
                            break 'pages;
                        }
                    }
                }
            }
        }
        Ok(IntakeReport {
            rows: report.summary.rows,
            accepted: report.counts.accepted,
            skipped: report.counts.skipped,
            duplicates: report.counts.duplicates,
            skipped_rows,
            ignored_columns: report.summary.ignored_columns,
        })
    }

    /// Add the contacts of `source` to an existing campaign, through the same intake (the same
    /// checks, do-not-call lists and report); a number already in the campaign is a `skipped`
    /// duplicate, so repeating an interrupted request adds each contact once. A completed
    /// campaign becomes active again before the first row is stored (a stop part-way leaves
    /// it active, and the next start dials what was stored); a paused one stays paused. A
    /// cancel while the file is read cancels what it stored. A file that turns out unusable
    /// part-way has the rows it stored deleted (none was dialled unless a runner already took
    /// it), and the campaign as it was.
    pub async fn add_contacts(
        &self,
        campaign: &Campaign,
        source: &Path,
    ) -> Result<IntakeReport, CreateError> {
        if campaign.state == CampaignState::Cancelled {
            return Err(cancelled(campaign.id));
        }
        if campaign.purged_at.is_some() {
            return Err(CreateError::Conflict(format!(
                "campaign {} was purged (its contacts and history are deleted): create a new campaign for more contacts",
                campaign.id
            )));
        }
        if !campaign.intake_done {
            return Err(CreateError::Conflict(format!(
                "campaign {} is still importing its contacts: add more once its intake has finished",
                campaign.id
            )));
        }
        let path = source.to_path_buf();
        tokio::task::spawn_blocking(move || intake::check_header(&path))
            .await
            .map_err(|e| CreateError::Other(e.to_string()))?
            .map_err(|e| CreateError::Input(e.to_string()))?;
        // One addition at a time: two would number their rows from the same line (in this
        // process by the mutex, across replicas by a claim in the store).
        let one_at_a_time = self.creating.lock().await;
        self.store.claim_additions(campaign.id).await?;
        let added = self.add_claimed(campaign, source).await;
        if let Err(e) = self.store.release_additions(campaign.id).await {
            tracing::warn!(campaign = campaign.id, error = %e, "cannot let the claim on additions go");
        }
        drop(one_at_a_time);
        added
    }

    /// [`Service::add_contacts`] once this process alone adds to the campaign.
    async fn add_claimed(
        &self,
        campaign: &Campaign,
        source: &Path,
    ) -> Result<IntakeReport, CreateError> {
        let reopened = match self.campaigns.open_for_add(campaign.id).await? {
            None => return Err(CreateError::Other("campaign vanished".into())),
            Some((CampaignState::Cancelled, _)) => return Err(cancelled(campaign.id)),
            Some((_, reopened)) => reopened,
        };
        self.forget_counts(campaign.id);
        let first_line = self.store.last_line(campaign.id).await?;
        let opts = self.intake_options();
        let dnc = Some(self.campaigns.base().rules.dnc.as_ref());
        let imported = crate::import::import_file_after(
            &self.store,
            campaign.id,
            source,
            &opts,
            dnc,
            first_line,
            now_ms(),
        )
        .await;
        match &imported {
            Err(ImportError::Intake(_)) => {
                self.store
                    .forget_unattempted_after(campaign.id, first_line)
                    .await?;
            }
            // The request that asked for the addition may be gone (the import is detached from
            // it): the operator learns of a failed store write from the log at least.
            Err(e) => {
                tracing::error!(campaign = %campaign.name, error = %e, "adding contacts failed part-way: the rows stored so far are kept")
            }
            Ok(_) => {}
        }
        // Whatever happened to the import: a cancel meanwhile cancels what it stored, open
        // contacts are dialled, a campaign reopened for nothing is completed again.
        self.forget_counts(campaign.id);
        self.campaigns.added(campaign.id, reopened).await?;
        self.forget_counts(campaign.id);
        let report = match imported {
            Ok(r) => r,
            Err(ImportError::Intake(e)) => return Err(CreateError::Input(e.to_string())),
            Err(ImportError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(CreateError::Other(e.to_string())),
        };
        self.report(campaign.id, report, first_line).await
    }

    /// After a restart: finish intakes that were cut off, then start every active campaign.
    pub async fn resume(&self) -> Result<usize, CreateError> {
        // Done before the engine was built (`serve` seeds the limiter after it); again here for
        // a service built otherwise. Settling twice finds nothing the second time.
        settle_previous(&self.store).await?;
        for c in self.store.campaigns().await? {
            if c.state == CampaignState::Completed && self.store.has_open_contacts(c.id).await? {
                // Contacts stored into a completed campaign by an addition a stop cut short
                // (or by an older build): it is active, and is started below.
                tracing::warn!(campaign = %c.name, "completed campaign with contacts still to dial: resumed");
                self.store.reopen(c.id, now_ms()).await?;
            }
            if c.state == CampaignState::Cancelled {
                // Rows stored after a cancel that a crash cut short are cancelled too.
                self.store.cancel_pending(c.id, now_ms()).await?;
                continue;
            }
        }
        self.finish_intakes().await?;
        Ok(self.campaigns.resume_all().await?)
    }

    /// Finish every intake cut off by a stop: this process's last one, or (several replicas on
    /// a PostgreSQL store) a replica that died while it read a file. An intake another replica
    /// is still reading is left to it: its claim on the campaign's additions is held, and a
    /// campaign younger than [`INTAKE_CLAIM_GRACE_MS`] may not have taken it yet. The
    /// campaign's state is left as the operator (or a halt) set it; with its source gone (an
    /// upload kept on another replica's disk) it is paused, saying so.
    pub async fn finish_intakes(&self) -> Result<(), CreateError> {
        let shared = self.store.is_postgres();
        let youngest = now_ms() - INTAKE_CLAIM_GRACE_MS;
        for c in self.store.campaigns().await? {
            if c.intake_done || c.state == CampaignState::Cancelled {
                continue;
            }
            if shared && c.created_at > youngest {
                continue;
            }
            if !self.store.try_claim_additions(c.id).await? {
                continue;
            }
            let finished = self.finish_intake(&c).await;
            if let Err(e) = self.store.release_additions(c.id).await {
                tracing::warn!(campaign = c.id, error = %e, "cannot let the claim on the intake go");
            }
            finished?;
        }
        Ok(())
    }

    async fn finish_intake(&self, c: &Campaign) -> Result<(), CreateError> {
        // Looked at again under the claim: finished meanwhile by the replica that had it.
        let Some(c) = self.store.campaign(c.id).await? else {
            return Ok(());
        };
        if c.intake_done || c.state == CampaignState::Cancelled {
            return Ok(());
        }
        let source = PathBuf::from(&c.source);
        if source.is_file() {
            tracing::info!(campaign = %c.name, "finishing an intake cut off by a stop");
            if let Err(e) = self.import(&c, &source).await {
                tracing::error!(campaign = %c.name, error = %e, "cannot finish the intake");
            }
            if let Err(e) = self.campaigns.start_current(c.id).await {
                tracing::error!(campaign = %c.name, error = %e, "cannot start the campaign");
            }
        } else {
            self.store
                .set_campaign_state(
                    c.id,
                    CampaignState::Paused,
                    Some(format!(
                        "intake was cut off and its source {} is gone; cancel it and create the campaign again",
                        c.source
                    )),
                    now_ms(),
                )
                .await?;
        }
        Ok(())
    }

    /// Serve on `listener` until `stop` leaves [`Stop::Run`]; then stop taking requests,
    /// drain every campaign (a later [`Stop::Now`] stops waiting) and return.
    pub async fn run_until_stopped(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        inbox_dir: Option<PathBuf>,
        stop: watch::Receiver<Stop>,
    ) -> anyhow::Result<()> {
        self.resume()
            .await
            .map_err(|e| anyhow!("cannot resume campaigns: {e}"))?;
        let mut inbox_task = None;
        if let Some(dir) = inbox_dir {
            let svc = self.clone();
            let stop2 = stop.clone();
            inbox_task = Some(tokio::spawn(async move {
                inbox::watch(svc, dir, stop2).await;
            }));
        }
        // An endpoint outage pauses the campaigns with the reason and resumes them after it.
        let outage_task = tokio::spawn(outage::supervise(self.clone(), stop.clone()));
        // Other replicas on the same PostgreSQL store: their campaigns and steering followed.
        let replicas_task = tokio::spawn(replicas::follow(self.clone(), stop.clone()));
        // Outcomes are tracked until the service stops (its own limiter: dialling never waits).
        let (outcomes_stop, outcomes_rx) = watch::channel(false);
        let outcomes_task = self
            .outcomes
            .clone()
            .map(|t| tokio::spawn(t.run(outcomes_rx.clone())));
        let mut tags_task = None;
        if let Some(t) = self.tags.clone() {
            match t.enrol(crate::dispatch::now_ms()).await {
                Ok(()) => tags_task = Some(tokio::spawn(t.run(outcomes_rx))),
                Err(e) => tracing::error!(error = %e, "post-call tags are off: the store failed"),
            }
        }
        // A redial scheduled in a campaign with no runner (completed before a late record or a
        // tag asked for it: the store made it active again) gets one.
        let redial_task = {
            let svc = self.clone();
            let mut redials = svc.store.redial_watch();
            tokio::spawn(async move {
                while redials.changed().await.is_ok() {
                    if let Err(e) = svc.campaigns.resume_all().await {
                        tracing::warn!(error = %e, "cannot start the campaigns a redial reopened");
                    }
                }
            })
        };
        // Dials too old to hold any number back are dropped hourly (at start too, by the engine's
        // builder): a service that runs for months keeps the table to a few days of calls.
        let housekeeping = {
            let svc = self.clone();
            tokio::spawn(async move {
                let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
                hourly.tick().await;
                loop {
                    hourly.tick().await;
                    let rules = &svc.campaigns.base().rules;
                    if let Err(e) = rules.prune(&svc.store, jiff::Timestamp::now()).await {
                        tracing::warn!(error = %e, "cannot prune old dials");
                    }
                    if let Some(retain) = svc.config().retain {
                        let purged = crate::purge::apply_retention(
                            &svc.store,
                            retain,
                            &svc.uploads,
                            crate::dispatch::now_ms(),
                        )
                        .await;
                        match purged {
                            Ok(ids) => ids.into_iter().for_each(|id| svc.forget_counts(id)),
                            Err(e) => {
                                tracing::warn!(error = %e, "store.retain: cannot purge finished campaigns")
                            }
                        }
                    }
                }
            })
        };
        let listen = listener
            .local_addr()
            .map_err(|e| anyhow!("cannot read the listen address: {e}"))?;
        let app = api::router(self.clone(), listen);
        let stop_http = stop.clone();
        let limits = self.config().server.clone();
        let mut server = tokio::spawn(listener::serve(listener, app, limits, stop_http));
        // Serve until the first stop request (or until the server fails on its own).
        let mut first = stop.clone();
        let failed = tokio::select! {
            served = &mut server => Some(served),
            _ = first.wait_for(|s| *s != Stop::Run) => None,
        };
        // Stop dialling at once, whatever requests or imports are still open; replies in flight
        // are waited for within the grace period (a second signal stops waiting).
        housekeeping.abort();
        redial_task.abort();
        outage_task.abort();
        replicas_task.abort();
        let _ = outcomes_stop.send(true);
        if let Some(t) = outcomes_task {
            t.abort();
        }
        if let Some(t) = tags_task {
            t.abort();
        }
        self.campaigns.shutdown(stop).await;
        // Open connections and an import under way get a short moment to finish.
        let linger = std::time::Duration::from_secs(2);
        let served = match failed {
            Some(served) => served,
            None => match tokio::time::timeout(linger, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    server.abort();
                    Ok(Ok(()))
                }
            },
        };
        if let Some(mut t) = inbox_task {
            if tokio::time::timeout(linger, &mut t).await.is_err() {
                t.abort();
            }
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("HTTP server failed: {e}")),
            Err(e) => Err(anyhow!("HTTP server task failed: {e}")),
        }
    }
}

/// Whatever the previous process left on the wire is in doubt, in every campaign (not only the
/// ones that start now): reported `unknown`, never redialled. Done before the limiter's window
/// is seeded from the store, so those sends count from when they were settled (no earlier than
/// they can have left), not from when they were written down.
pub async fn settle_previous(store: &Store) -> Result<(), StoreError> {
    for c in store.campaigns().await? {
        let settled = store.settle_in_flight(c.id, now_ms()).await?;
        if settled > 0 {
            tracing::warn!(campaign = %c.name, contacts = settled, "replies lost in the last run: reported unknown, not redialled");
        }
    }
    Ok(())
}

/// A skipped row's reason in an added body's terms: the store numbers the body's lines after
/// the campaign's (`first_line`), so "duplicate of line 7" of a body added after line 4 is
/// "duplicate of line 3 of this body", and one of line 2 is "of line 2 of the campaign".
fn renumbered(reason: String, first_line: u64) -> String {
    const DUP: &str = "duplicate of line ";
    if first_line == 0 {
        return reason;
    }
    match reason.strip_prefix(DUP).and_then(|n| n.parse::<u64>().ok()) {
        Some(n) if n > first_line => format!("{DUP}{} of this body", n - first_line),
        Some(n) => format!("{DUP}{n} of the campaign (already in it)"),
        None => reason,
    }
}

/// The campaign name of an inbox file's stem: the stem itself, unless it would look like an
/// ad-hoc call's.
fn inbox_name(stem: String) -> String {
    if stem.starts_with(settings::CALL_PREFIX) {
        format!("inbox-{stem}")
    } else {
        stem
    }
}

/// Build the service from a validated config, a store and the engine's shared parts.
pub fn build(
    cfg: Arc<Config>,
    engine: Engine,
    token: Option<Secret>,
    uploads: PathBuf,
    max_body_bytes: usize,
) -> Arc<Service> {
    let store = engine.store.clone();
    // A service never gives up on the endpoint: its campaigns wait, paused, for a probe to
    // get through (`run.outage_limit` is `run`'s).
    let mut engine = engine;
    engine.outage = Arc::new(crate::outage::Breaker::new(crate::outage::OutageSettings {
        limit: None,
        ..cfg.outage.clone()
    }));
    let outcomes = cfg
        .outcomes
        .enabled
        .then(|| outcome_tracker(&cfg, &engine))
        .flatten();
    let tags = tag_tracker(&cfg, &engine);
    let scrape = probes::Scrape::new(&engine.metrics);
    let campaigns = Campaigns::new(cfg, Arc::new(engine));
    Arc::new(Service {
        campaigns,
        store,
        token,
        uploads,
        max_body_bytes,
        creating: tokio::sync::Mutex::new(()),
        finished_counts: std::sync::Mutex::new(HashMap::new()),
        scrape: tokio::sync::Mutex::new(scrape),
        outcomes,
        tags,
        cdr_push: std::sync::OnceLock::new(),
    })
}

impl Service {
    /// Turn the CDR push receiver on with these Basic credentials. Pushed records are written
    /// by the service's outcome tracker, or, with `[outcomes]` off, by a tracker of their own
    /// (built the same way; its polling task is not started): the same classes, store write,
    /// lines and `/metrics` as polling.
    pub fn enable_cdr_push(&self, user: String, password: Secret) -> anyhow::Result<()> {
        let tracker = match &self.outcomes {
            Some(t) => t.clone(),
            None => outcome_tracker(self.config(), self.campaigns.base())
                .ok_or_else(|| anyhow!("the CDR push receiver cannot start: no HTTP client"))?,
        };
        let sdk_app_id = self.config().campaign.sdk_app_id as i64;
        let receiver = cdr_push::PushReceiver::new(user, password, sdk_app_id, tracker);
        self.cdr_push
            .set(Arc::new(receiver))
            .map_err(|_| anyhow!("the CDR push receiver is on already"))
    }
}

/// The service's outcome tracker: its own client pool and limiter, the engine's lines (a call
/// known to have ended frees its line), outcomes counted in `/metrics`.
fn outcome_tracker(cfg: &Config, engine: &Engine) -> Option<Arc<crate::outcomes::poller::Tracker>> {
    let client = match engine.client.separate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "outcome tracking is off: cannot build its HTTP client");
            return None;
        }
    };
    let metrics = engine.metrics.clone();
    let tracker = crate::outcomes::poller::Tracker::new(
        engine.store.clone(),
        client,
        cfg.outcomes.clone(),
        cfg.campaign.sdk_app_id,
        cfg.campaign.ai_agent_id,
    )
    .with_lines(engine.lines.clone())
    .with_retry_checks(engine.record_checks.clone())
    .with_stops(engine.tracking.clone())
    .on_recorded(Arc::new(move |a: &crate::store::Arrival| {
        metrics.arrival(a)
    }));
    let tracker = Arc::new(tracker);
    // A push held until its attempt got the session arrives in the dialler's write.
    tracker.attend();
    Some(tracker)
}

/// The service's tag tracker (its own client pool and limiters); opt-outs join the account's
/// lists every campaign checks. Its kinds are enrolled when the service starts running.
fn tag_tracker(cfg: &Config, engine: &Engine) -> Option<Arc<crate::outcomes::tags::TagTracker>> {
    if !cfg.outcomes.ai_results() {
        return None;
    }
    let client = match engine.client.separate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "post-call tags are off: cannot build their HTTP client");
            return None;
        }
    };
    let tracker = crate::outcomes::tags::TagTracker::new(
        engine.store.clone(),
        client,
        cfg.outcomes.clone(),
        cfg.campaign.sdk_app_id,
    )
    .with_actions(crate::commands::outcomes::tag_actions(cfg))
    .with_dnc(engine.rules.dnc.clone())
    .with_stops(engine.tracking.clone());
    Some(Arc::new(tracker))
}

fn cancelled(campaign_id: i64) -> CreateError {
    CreateError::Conflict(format!(
        "campaign {campaign_id} is cancelled: contacts cannot be added to it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_in_an_added_body_name_lines_of_the_body_or_the_campaign() {
        let r = |s: &str, first| renumbered(s.to_string(), first);
        assert_eq!(
            r("duplicate of line 7", 4),
            "duplicate of line 3 of this body"
        );
        assert_eq!(
            r("duplicate of line 2", 4),
            "duplicate of line 2 of the campaign (already in it)"
        );
        assert_eq!(r("duplicate of line 7", 0), "duplicate of line 7");
        assert_eq!(r("invalid number", 4), "invalid number");
    }

    #[test]
    fn an_inbox_file_named_like_an_ad_hoc_call_gets_another_name() {
        assert_eq!(inbox_name("call-k1".into()), "inbox-call-k1");
        assert_eq!(inbox_name("reminders".into()), "reminders");
        assert_eq!(inbox_name("recall-list".into()), "recall-list");
    }
}
