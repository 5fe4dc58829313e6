//! `ccc-dialer run`: one campaign from a CSV file, resumable through its state store.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::contact::{ResultRow, Status};
use crate::dispatch::{self, now_ms, Engine, RequestDefaults, RunOutcome};
use crate::exit::{Done, Failure};
use crate::import::{import_file_with, ImportReport};
use crate::intake::{self, IntakeOptions};
use crate::notify;
use crate::results::{self, Appender};
use crate::store::{Campaign, CampaignState, Store};

/// Skipped rows listed individually in the intake report (the rest are in the results).
const SKIPPED_SHOWN: usize = 20;

pub async fn run(args: RunArgs) -> Result<Done, Failure> {
    let mut cfg = Config::load(&args.config).map_err(Failure::input)?;
    if args.redial_unknown {
        cfg.retry.redial_unknown = true;
    }
    if args.redial_not_placed {
        cfg.retry.redial_not_placed = true;
    }
    let opts = IntakeOptions {
        default_country: cfg.campaign.default_country.clone(),
        callee_format: cfg.campaign.callee_format,
    };
    if args.dry_run {
        return super::dry_run::run(&args, &cfg, &opts).await;
    }
    // From here a stop is a request to stop safely, honoured as soon as dialling starts.
    let signals = super::Signals::new();
    let (Some(state), Some(results_path)) = (args.state.clone(), args.results.clone()) else {
        return Err(Failure::input(anyhow!(
            "run needs --state FILE and --results FILE (or --dry-run)"
        )));
    };

    // Everything the operator can get wrong is checked before anything is sent.
    check_results_target(&results_path, &state, &args.contacts)?;
    let rules = Arc::new(super::load_rules(&cfg)?);
    let (client, _mock) = super::connect(&cfg).await?;
    let (notifier, delivery) = super::notifier(&cfg)?;
    let fingerprint = intake::fingerprint(&args.contacts).map_err(Failure::input)?;
    let (store, writer) = super::open_writer(&state).await?;
    super::lease_settings(&store, &cfg);
    // Named by the store from here on: a PostgreSQL URL without its password.
    let state = store.path().to_path_buf();
    super::outcomes::load_own_dnc(&rules.dnc, &store).await?;
    let campaign =
        open_campaign(&store, &args.contacts, &state, &results_path, &fingerprint).await?;
    if !campaign.intake_done {
        let report = import_contacts(&store, campaign.id, &args.contacts, &opts, &rules).await?;
        store
            .mark_intake_done(campaign.id)
            .await
            .map_err(Failure::other)?;
        print_intake(&args.contacts, &report, &store, campaign.id).await?;
    } else {
        tracing::info!(campaign = %campaign.name, "resuming: contacts already in the state store");
    }

    // Its outcomes are decided by this run's `[redial]` (none: no redials).
    store
        .set_redial_policy(campaign.id, cfg.redial.clone())
        .await
        .map_err(Failure::other)?;
    // Dialled again (a rerun after an interruption or a halt): active until it ends.
    store
        .set_campaign_state(campaign.id, CampaignState::Active, None, now_ms())
        .await
        .map_err(Failure::other)?;
    let settled = store
        .settle_in_flight(campaign.id, now_ms())
        .await
        .map_err(Failure::other)?;
    if settled > 0 {
        tracing::warn!(
            contacts = settled,
            "replies lost in the last run: reported unknown, not redialled"
        );
    }
    if cfg.retry.redial_unknown {
        let n = store
            .requeue_unknown(campaign.id, now_ms())
            .await
            .map_err(Failure::other)?;
        tracing::warn!(contacts = n, "redialling contacts whose reply was lost (retry.redial_unknown): some may be called twice");
    }
    if cfg.retry.redial_not_placed {
        let n = store
            .requeue_not_placed(campaign.id, now_ms())
            .await
            .map_err(Failure::other)?;
        if n > 0 {
            tracing::info!(contacts = n, "dialling again the contacts the call records showed were not placed (retry.redial_not_placed)");
        }
    }
    results::rewrite(&store, campaign.id, &results_path, true)
        .await
        .map_err(Failure::other)?;
    let appender = Arc::new(Appender::open(&results_path).map_err(Failure::other)?);

    let mut engine = super::engine(&cfg, store.clone(), client, rules).await?;
    // Nothing waits for outcomes or tags a stopped tracker would fetch: the run ends, halted.
    engine.halt_untracked = true;
    let engine = Arc::new(engine);
    let defaults = Arc::new(RequestDefaults::from(&cfg.campaign));

    let stop_rx = signals.into_stop_or_lost(cfg.grace_period, writer.lost());
    // Outcome tracking runs beside the dialling from the start (its own limiter and pool), and
    // `run` waits for it after the last call was placed.
    let tracking = match cfg.outcomes.enabled {
        true => {
            let t = Arc::new(
                super::outcomes::tracker(&cfg, store.clone(), &engine.client)?
                    .with_lines(engine.lines.clone())
                    .with_retry_checks(engine.record_checks.clone())
                    .with_stops(engine.tracking.clone()),
            );
            t.attend();
            let (tx, rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(t.clone().run(rx));
            Some((t, tx, task))
        }
        false => None,
    };
    // Post-call tags and analysis beside them (their own limiters and pool).
    let tagging = match super::outcomes::tag_tracker(
        &cfg,
        store.clone(),
        &engine.client,
        engine.rules.dnc.clone(),
        Some(engine.tracking.clone()),
    )
    .await?
    {
        Some(t) => {
            let (tx, rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(t.clone().run(rx));
            Some((t, tx, task))
        }
        None => None,
    };
    let waiting_stop = stop_bool(stop_rx.clone());

    let counts = store.counts(campaign.id).await.map_err(Failure::other)?;
    let total: u64 = counts.values().sum();
    let progress = Progress::start(
        &engine,
        (campaign.id, cfg.campaign.ai_agent_id),
        &counts,
        total,
        !args.no_progress,
    );
    let app = appender.clone();
    let on_final: Arc<dyn Fn(ResultRow) + Send + Sync> = Arc::new(move |row: ResultRow| {
        if let Err(e) = app.append(&row) {
            tracing::error!(error = %e, "cannot append to the results file (the store keeps the result; `export` rewrites it)");
        }
    });
    let started = Instant::now();
    // The endpoint's outage, if one comes, is kept in the store for `status`.
    let recorder = tokio::spawn(crate::outage::record(engine.outage.clone(), store.clone()));
    let outcome =
        dispatch::run_campaign(engine.clone(), campaign.id, defaults, stop_rx, on_final).await;
    recorder.abort();
    // Another process may own the store now: nothing more is written (not even the settling of
    // in-flight attempts, which may be its own); the next start settles and rewrites.
    if let Some(lost) = writer.lost_failure() {
        if let Some((_, tx, task)) = &tracking {
            let _ = tx.send(true);
            task.abort();
        }
        if let Some((_, tx, task)) = &tagging {
            let _ = tx.send(true);
            task.abort();
        }
        return Err(lost);
    }
    let gave_up =
        matches!(&outcome, Ok(RunOutcome::Halted { code, .. }) if code == crate::outage::CODE);
    let outage = engine.outage.current().map(|mut o| {
        if gave_up {
            o.gave_up_at = Some(now_ms());
        }
        o
    });
    let outage_text = outage.as_ref().map(crate::outage::Outage::describe);
    store.set_outage(outage).await.map_err(Failure::other)?;
    // Replies we stopped waiting for are in doubt now, not only at the next start.
    store
        .settle_in_flight(campaign.id, now_ms())
        .await
        .map_err(Failure::other)?;
    progress.finish();
    let waited = match (&tracking, &outcome) {
        (Some((tracker, _, _)), Ok(RunOutcome::Completed)) => {
            let mut stop = waiting_stop;
            let every = if args.no_progress || !std::io::stderr().is_terminal() {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(2)
            };
            let tags = tagging.as_ref().map(|(t, _, _)| t.as_ref());
            Some(
                super::outcomes::wait(tracker, tags, &store, &[campaign.id], &mut stop, every)
                    .await?,
            )
        }
        _ => None,
    };
    if let Some((_, tx, task)) = tracking {
        let _ = tx.send(true);
        task.abort();
    }
    if let Some((_, tx, task)) = tagging {
        let _ = tx.send(true);
        task.abort();
    }
    drop(appender);

    // Whatever happened, the results file ends with every contact exactly once; unless
    // `[store] retain` purged this campaign at this run's start (it had finished long ago):
    // the store has nothing left to write, and the file is the operator's only copy.
    let purged = store
        .campaign(campaign.id)
        .await
        .map_err(Failure::other)?
        .and_then(|c| c.purged_at);
    match purged {
        None => {
            results::rewrite(&store, campaign.id, &results_path, false)
                .await
                .map_err(Failure::other)?;
        }
        Some(at) => crate::tell!(
            "campaign {} was purged at {} ([store] retain): its contacts and results are gone from the store; {} was left as it was",
            campaign.name,
            utc(at),
            results_path.display()
        ),
    }
    let outcome = outcome.map_err(Failure::other)?;
    record_state(&store, campaign.id, &outcome).await?;
    let counts = store.counts(campaign.id).await.map_err(Failure::other)?;
    print_summary(&counts, started.elapsed(), &engine, &results_path);
    if cfg.outcomes.enabled {
        let c = store
            .outcome_counts(campaign.id)
            .await
            .map_err(Failure::other)?;
        crate::tell!("{}", super::outcomes::describe(&c));
    }
    let event = match &outcome {
        RunOutcome::Completed => Some((notify::Kind::Completed, None)),
        RunOutcome::Halted { code, message } => {
            Some((notify::Kind::Halted, Some(format!("{code}: {message}"))))
        }
        RunOutcome::Untracked(u) => Some((notify::Kind::Halted, Some(u.describe()))),
        RunOutcome::Interrupted => None,
    };
    if let Some((kind, reason)) = event {
        notifier.notify(notify::Event::new(
            kind,
            campaign.id,
            &campaign.name,
            reason,
            &counts,
        ));
    }
    drop(notifier);
    if let (Some(d), Some(n)) = (delivery, &cfg.notify) {
        // Dialling is over: wait a little for the notification, never long.
        d.finish(n.timeout).await;
    }

    Ok(match outcome {
        RunOutcome::Completed => match waited {
            Some(super::outcomes::WaitEnd::Stopped(reason)) => {
                crate::tell!("{reason}");
                Done::Halted
            }
            Some(super::outcomes::WaitEnd::Interrupted) => {
                crate::tell!("interrupted while waiting for call outcomes: rerun the same command to continue waiting (or `ccc-dialer outcomes` later)");
                Done::Interrupted
            }
            _ => Done::Ok,
        },
        RunOutcome::Interrupted => {
            crate::tell!("interrupted: rerun the same command to continue where it stopped");
            Done::Interrupted
        }
        RunOutcome::Halted { code, message } if code == crate::outage::CODE => {
            crate::tell!(
                "halted: {}\n{}\nno contact used an attempt; undialled contacts stay pending: rerun the same command once the endpoint is reachable",
                outage_text.unwrap_or(message),
                crate::policy::halt_hint(&code)
            );
            Done::Halted
        }
        RunOutcome::Halted { message, .. }
            if message.starts_with(dispatch::systematic::MESSAGE_PREFIX) =>
        {
            crate::tell!(
                "halted: {message}\n{}\nundialled contacts stay pending: rerun the same command after the fix to continue",
                dispatch::systematic::HINT
            );
            Done::Halted
        }
        RunOutcome::Halted { code, message } => {
            crate::tell!(
                "halted: the service answered {code} ({message})\n{}\nundialled contacts stay pending: rerun the same command after the fix to continue",
                crate::policy::halt_hint(&code)
            );
            Done::Halted
        }
        RunOutcome::Untracked(u) => {
            crate::tell!(
                "halted: {}; every contact that could be dialled without them was dialled\n{}\nthe calls and their contacts keep their place: rerun the same command after the fix to fetch them and place the redials they ask for",
                u.describe(),
                u.stopped.hint()
            );
            Done::Halted
        }
    })
}

/// What `status` shows for the campaign once this run ended: `completed`; `paused` with the
/// halt and its fix; or, interrupted, still `active` (a `serve` started on the store carries
/// on with it) with the reason saying how to continue.
async fn record_state(store: &Store, id: i64, outcome: &RunOutcome) -> Result<(), Failure> {
    match outcome {
        RunOutcome::Completed => store.complete_if_done(id, now_ms()).await.map(|_| ()),
        RunOutcome::Interrupted => {
            store
                .set_active_reason(
                    id,
                    Some("interrupted: rerun the same command to continue".into()),
                )
                .await
        }
        RunOutcome::Halted { code, message } => store
            .set_campaign_state(
                id,
                CampaignState::Paused,
                Some(format!(
                    "halted by {code} ({message}); {}; then rerun the same command",
                    crate::policy::halt_hint(code)
                )),
                now_ms(),
            )
            .await
            .map(|_| ()),
        RunOutcome::Untracked(u) => store
            .set_campaign_state(
                id,
                CampaignState::Paused,
                Some(format!(
                    "halted: {}; {}; then rerun the same command",
                    u.describe(),
                    u.stopped.hint()
                )),
                now_ms(),
            )
            .await
            .map(|_| ()),
    }
    .map_err(Failure::other)
}

/// True once a stop is requested (the first signal), for the wait after dialling.
fn stop_bool(
    mut stop: tokio::sync::watch::Receiver<crate::dispatch::Stop>,
) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(*stop.borrow() != crate::dispatch::Stop::Run);
    tokio::spawn(async move {
        while stop.changed().await.is_ok() {
            if *stop.borrow() != crate::dispatch::Stop::Run {
                let _ = tx.send(true);
                return;
            }
        }
    });
    rx
}

/// The campaign this state file holds for these contacts, created on the first run.
async fn open_campaign(
    store: &Store,
    contacts: &Path,
    state: &Path,
    results: &Path,
    fingerprint: &str,
) -> Result<Campaign, Failure> {
    let name = "run";
    match store.find_campaign(name).await.map_err(Failure::other)? {
        // Its contacts and results are gone: resuming would dial nothing and rewrite the results
        // file from an empty store (the operator's only copy of the outcomes).
        Some(c) if c.fingerprint == fingerprint && c.purged_at.is_some() => {
            Err(Failure::input(anyhow!(
                "{}: campaign {} was purged at {}: its contacts and results are gone from the store; \
                 nothing was dialled and {} was left as it is\n\
                 hint: to dial these contacts again, pass a new --state file",
                state.display(),
                c.name,
                c.purged_at.map(utc).unwrap_or_default(),
                results.display()
            )))
        }
        Some(c) if c.fingerprint == fingerprint => Ok(c),
        Some(_) => Err(Failure::input(anyhow!(
            "{}: this state file belongs to a campaign with a different contacts file; {} differs from it\n\
             hint: to resume, pass the same contacts file; for a new campaign, pass a new --state file",
            state.display(),
            contacts.display()
        ))),
        None => store
            .create_campaign(name, fingerprint, &contacts.display().to_string(), now_ms())
            .await
            .map_err(Failure::other),
    }
}

fn utc(ms: i64) -> String {
    crate::times::utc_text(ms)
}

/// `--results` must not name the store's files or the contacts file (exit 2, nothing written).
pub(super) fn check_results_target(
    results_path: &Path,
    state: &Path,
    contacts: &Path,
) -> Result<(), Failure> {
    // A PostgreSQL store has no files beside the results.
    let store_files = match Store::is_postgres_url(state) {
        true => Vec::new(),
        false => results::target::store_files(state),
    };
    let mut protected: Vec<results::target::Protected> = store_files
        .iter()
        .map(|(what, path)| results::target::Protected {
            what: what.clone(),
            path,
        })
        .collect();
    protected.push(results::target::Protected {
        what: "--contacts".into(),
        path: contacts,
    });
    results::target::check(results_path, &protected).map_err(Failure::input)
}

pub(super) async fn print_intake(
    contacts: &Path,
    report: &ImportReport,
    store: &Store,
    campaign_id: i64,
) -> Result<(), Failure> {
    let c = &report.counts;
    crate::tell!(
        "{}: {} rows: {} to dial, {} skipped ({} duplicate{})",
        contacts.display(),
        report.summary.rows,
        c.accepted,
        c.skipped,
        c.duplicates,
        if c.duplicates == 1 { "" } else { "s" }
    );
    if !report.summary.ignored_columns.is_empty() {
        crate::tell!(
            "{}: line 1: ignored columns (not callee, callers, ai_agent_id, id or var:NAME): {}",
            contacts.display(),
            report.summary.ignored_columns.join(", ")
        );
    }
    if c.skipped > 0 {
        let (_, shown) = store
            .for_each_result(
                campaign_id,
                true,
                Vec::new(),
                |shown: &mut Vec<ResultRow>, row| {
                    if row.status == Status::Skipped.as_str() && shown.len() < SKIPPED_SHOWN {
                        shown.push(row);
                    }
                    Ok(())
                },
            )
            .await
            .map_err(Failure::other)?;
        for row in &shown {
            crate::tell!(
                "{}: line {}: skipped: {}",
                contacts.display(),
                row.line,
                row.error_message
            );
        }
        if c.skipped as usize > shown.len() {
            crate::tell!(
                "… {} more skipped rows in the results file",
                c.skipped as usize - shown.len()
            );
        }
    }
    Ok(())
}

fn print_summary(
    counts: &std::collections::BTreeMap<Status, u64>,
    took: Duration,
    engine: &Engine,
    results: &Path,
) {
    let get = |s| counts.get(&s).copied().unwrap_or(0);
    let c = &engine.counters;
    crate::tell!(
        "done in {:.1}s: {} placed, {} failed, {} skipped, {} expired, {} cancelled, {} unknown, {} not placed, {} pending; {} requests sent ({} throttled, {} refused for capacity); results in {}",
        took.as_secs_f64(),
        get(Status::Placed),
        get(Status::Failed),
        get(Status::Skipped),
        get(Status::Expired),
        get(Status::Cancelled),
        get(Status::Unknown),
        get(Status::NotPlaced),
        get(Status::Pending) + get(Status::InFlight),
        c.sent.load(Ordering::Relaxed),
        c.throttled.load(Ordering::Relaxed),
        c.capacity_refusals.load(Ordering::Relaxed),
        results.display()
    );
}

/// A progress bar on a terminal; periodic log lines otherwise.
struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn start(
        engine: &Arc<Engine>,
        (campaign_id, agent): (i64, u64),
        counts: &std::collections::BTreeMap<Status, u64>,
        total: u64,
        allow_bar: bool,
    ) -> Progress {
        let already_final: u64 = counts
            .iter()
            .filter(|(s, _)| s.is_final())
            .map(|(_, n)| n)
            .sum();
        let bar = (allow_bar && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) =
                // `wide_msg` takes what the terminal's width leaves and cuts the rest: the line
                // never wraps (a wrapped line leaves stale copies at every redraw).
                indicatif::ProgressStyle::with_template(
                    "{bar:20} {pos}/{len} final, eta {eta}: {wide_msg}",
                )
            {
                bar.set_style(style);
            }
            bar.set_position(already_final);
            crate::telemetry::show_bar(Some(bar.clone()));
            bar
        });
        let engine = engine.clone();
        let bar2 = bar.clone();
        let task = tokio::spawn(async move {
            let c = &engine.counters;
            let mut tick = tokio::time::interval(if bar2.is_some() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(10)
            });
            let start = Instant::now();
            let mut ticks: u64 = 0;
            let mut waiting = String::new();
            let mut done = already_final;
            loop {
                tick.tick().await;
                ticks += 1;
                // What the campaign waits for when nothing is due (a calling window, a backoff).
                if let Some(o) = engine.outage.current() {
                    waiting = o.describe();
                } else if bar2.is_none() || ticks.is_multiple_of(8) {
                    waiting = match engine.store.next_wait(campaign_id).await {
                        Ok(Some((at, gate)))
                            if at - dispatch::now_ms() > 2_000
                                && c.in_flight.load(Ordering::Relaxed) == 0 =>
                        {
                            let until = crate::times::utc_text(at);
                            format!(
                                "waiting for {} until {until}",
                                gate.as_deref().unwrap_or("retry_backoff")
                            )
                        }
                        // Nothing pending: an outcome or a post-call tag may still ask for a
                        // redial (the campaign is not finished until it is known).
                        Ok(None) if c.in_flight.load(Ordering::Relaxed) == 0 => {
                            match engine.store.redial_wait(campaign_id).await {
                                Ok(Some(w)) => w.describe().to_string(),
                                _ => String::new(),
                            }
                        }
                        _ => String::new(),
                    };
                }
                // Every line of the agent believed busy: "10 of ~10 lines busy, next try in 4 s".
                let lines = engine.lines.describe(agent).unwrap_or_default();
                let placed = c.placed.load(Ordering::Relaxed);
                let failed = c.failed.load(Ordering::Relaxed);
                let unknown = c.unknown.load(Ordering::Relaxed);
                let sent = c.sent.load(Ordering::Relaxed);
                let rate = sent as f64 / start.elapsed().as_secs_f64().max(0.001);
                // Contacts final, from the store's kept counts (a few rows): counting calls
                // instead (placed + failed + unknown) passed the total once redials were placed.
                if let Ok(counts) = engine.store.counts(campaign_id).await {
                    done = counts
                        .iter()
                        .filter(|(s, _)| s.is_final())
                        .map(|(_, n)| n)
                        .sum();
                }
                match &bar2 {
                    Some(bar) => {
                        bar.set_position(done);
                        bar.set_message(bar_message(
                            [placed, failed, c.retries.load(Ordering::Relaxed), unknown],
                            rate,
                            &[lines.as_str(), waiting.as_str()],
                        ));
                    }
                    None => tracing::info!(
                        done,
                        total,
                        placed,
                        failed,
                        unknown,
                        in_flight = c.in_flight.load(Ordering::Relaxed),
                        rate = format!("{rate:.1}"),
                        waiting = %waiting,
                        lines = %lines,
                        "progress"
                    ),
                }
            }
        });
        Progress { task, bar }
    }

    fn finish(self) {
        self.task.abort();
        crate::telemetry::show_bar(None);
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The progress bar's words: `placed 46 · failed 6 · retries 1 · unknown 0 · 18.2 req/s`,
/// then what the campaign waits for, if anything.
fn bar_message([placed, failed, retries, unknown]: [u64; 4], rate: f64, notes: &[&str]) -> String {
    let mut m = format!(
        "placed {placed} · failed {failed} · retries {retries} · unknown {unknown} · {rate:.1} req/s"
    );
    for note in notes.iter().filter(|n| !n.is_empty()) {
        m.push_str(" · ");
        m.push_str(note);
    }
    m
}

/// Stream the contacts file into the store (do-not-call numbers skipped), the way `run` and
/// `run --dry-run` both do: a bad file is the user's input (exit 2), anything else is ours.
pub(super) async fn import_contacts(
    store: &Store,
    campaign_id: i64,
    contacts: &Path,
    opts: &IntakeOptions,
    rules: &crate::dispatch::rules::Rules,
) -> Result<ImportReport, Failure> {
    import_file_with(
        store,
        campaign_id,
        contacts,
        opts,
        Some(rules.dnc.as_ref()),
        now_ms(),
    )
    .await
    .map_err(|e| match e {
        crate::import::ImportError::Intake(e) => Failure::input(e),
        other => Failure::other(other),
    })
}

#[cfg(test)]
mod bar_tests {
    #[test]
    fn the_bar_names_each_figure_and_leaves_empty_notes_out() {
        assert_eq!(
            super::bar_message([46, 6, 1, 0], 18.24, &["", "waiting for window_closed until 2026-11-30 01:00:00 UTC"]),
            "placed 46 · failed 6 · retries 1 · unknown 0 · 18.2 req/s · waiting for window_closed until 2026-11-30 01:00:00 UTC"
        );
        assert_eq!(
            super::bar_message([0, 0, 0, 0], 0.0, &["", ""]),
            "placed 0 · failed 0 · retries 0 · unknown 0 · 0.0 req/s"
        );
    }
}
