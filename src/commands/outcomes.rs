//! `ccc-dialer outcomes`: fetch call outcomes for a finished run (or any store) from the
//! service's call records, and resolve `unknown` contacts; also the waiting `run` does after
//! dialling when `[outcomes]` is enabled.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::watch;

use crate::ccc::Client;
use crate::cli::OutcomesArgs;
use crate::config::Config;
use crate::dispatch::now_ms;
use crate::exit::{Done, Failure};
use crate::outcomes::poller::{PassError, QueryFailure, Tracker};
use crate::outcomes::tags::{TagPassError, TagTracker};
use crate::store::{OutcomeCounts, Store, TagActions};

/// The tracker for this config (its own connection pool and limiter).
pub fn tracker(cfg: &Config, store: Store, client: &Client) -> Result<Tracker, Failure> {
    let client = client.separate().map_err(Failure::other)?;
    Ok(Tracker::new(
        store,
        client,
        cfg.outcomes.clone(),
        cfg.campaign.sdk_app_id,
        cfg.campaign.ai_agent_id,
    ))
}

/// The tag tracker for this config (its own connection pool and limiters), when `[outcomes]`
/// asks for tags or analysis; opt-outs join `dnc` at once. Its kinds are enrolled in the store.
pub async fn tag_tracker(
    cfg: &Config,
    store: Store,
    client: &Client,
    dnc: Arc<crate::calling::dnc::DncLists>,
    stops: Option<Arc<crate::outcomes::stops::TrackingStops>>,
) -> Result<Option<Arc<TagTracker>>, Failure> {
    if !cfg.outcomes.ai_results() {
        return Ok(None);
    }
    let client = client.separate().map_err(Failure::other)?;
    let mut t = TagTracker::new(store, client, cfg.outcomes.clone(), cfg.campaign.sdk_app_id)
        .with_actions(tag_actions(cfg))
        .with_dnc(dnc);
    if let Some(stops) = stops {
        t = t.with_stops(stops);
    }
    t.enrol(now_ms()).await.map_err(Failure::other)?;
    Ok(Some(Arc::new(t)))
}

/// What matching post-call tags do, from the config.
pub fn tag_actions(cfg: &Config) -> TagActions {
    TagActions {
        opt_out: cfg.dnc.opt_out_tag.clone(),
    }
}

/// The account's own do-not-call list from the store into the lists every gate checks.
pub async fn load_own_dnc(
    dnc: &crate::calling::dnc::DncLists,
    store: &Store,
) -> Result<(), Failure> {
    let own = store.own_dnc_numbers().await.map_err(Failure::other)?;
    if !own.is_empty() {
        tracing::info!(
            numbers = own.len(),
            "the account's own do-not-call list (opt-outs) loaded"
        );
    }
    dnc.set_own(own);
    Ok(())
}

/// How waiting for outcomes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// Every placed call has an outcome, no lost reply is left to resolve.
    AllKnown,
    /// Tracking stopped on an account-level error: the reason.
    Stopped(String),
    Interrupted,
}

/// The outcome figures of these campaigns, added up.
pub async fn counts(store: &Store, campaigns: &[i64]) -> Result<OutcomeCounts, Failure> {
    let mut total = OutcomeCounts::default();
    for id in campaigns {
        let c = store.outcome_counts(*id).await.map_err(Failure::other)?;
        for (class, n) in c.by_class {
            *total.by_class.entry(class).or_insert(0) += n;
        }
        total.awaiting += c.awaiting;
        total.reconciling += c.reconciling;
        total.reached += c.reached;
        total.not_reached += c.not_reached;
        total.redials_pending += c.redials_pending;
    }
    Ok(total)
}

/// "contacts' latest calls ended: 12 / 20 placed (answered 9, busy 2, …), 3 lost replies being
/// looked up": each contact once, by its latest call (with redials, calls outnumber contacts).
pub fn describe(c: &OutcomeCounts) -> String {
    let classes: Vec<String> = c
        .by_class
        .iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    let mut s = format!(
        "contacts' latest calls ended: {} / {} placed",
        c.ended(),
        c.placed()
    );
    if !classes.is_empty() {
        s.push_str(&format!(" ({})", classes.join(", ")));
    }
    if let Some(rate) = c.answer_rate() {
        s.push_str(&format!("; answer rate {:.1}%", rate * 100.0));
    }
    if c.reconciling > 0 {
        s.push_str(&format!(
            "; {} lost replies being looked up in the call records",
            c.reconciling
        ));
    }
    if c.reached + c.not_reached + c.redials_pending > 0 {
        s.push_str(&format!(
            "\ncontacts: reached {}, not reached after all dials {}",
            c.reached, c.not_reached
        ));
        if c.redials_pending > 0 {
            s.push_str(&format!(", waiting for a redial {}", c.redials_pending));
        }
    }
    s
}

/// Wait until every placed call of `campaigns` has an outcome and no lost reply is left to
/// resolve (the tracker gives up on its own by `give_up_after` / `reconcile_after`), the
/// tracker stops, or `stop` asks to. Reports progress every `report_every`.
pub async fn wait(
    tracker: &Tracker,
    tags: Option<&TagTracker>,
    store: &Store,
    campaigns: &[i64],
    stop: &mut watch::Receiver<bool>,
    report_every: Duration,
) -> Result<WaitEnd, Failure> {
    let mut last_report = tokio::time::Instant::now();
    let mut last_text = String::new();
    loop {
        let c = counts(store, campaigns).await?;
        // Tags are asked for once a call's outcome says it was answered: counted after.
        let tag_checks = match tags {
            Some(t) if t.stopped().is_none() && c.awaiting == 0 && c.reconciling == 0 => store
                .pending_tag_checks(campaigns.to_vec())
                .await
                .map_err(Failure::other)?,
            _ => 0,
        };
        if c.awaiting == 0 && c.reconciling == 0 && tag_checks == 0 {
            return Ok(WaitEnd::AllKnown);
        }
        if let Some(reason) = tracker.stopped() {
            return Ok(WaitEnd::Stopped(reason));
        }
        let mut text = describe(&c);
        if tag_checks > 0 {
            text.push_str(&format!(
                "; {tag_checks} post-call tag or analysis results still awaited"
            ));
        }
        if text != last_text && last_report.elapsed() >= report_every {
            tracing::info!(
                ended = c.ended(),
                placed = c.placed(),
                awaiting = c.awaiting,
                "{text}"
            );
            last_report = tokio::time::Instant::now();
            last_text = text;
        }
        if *stop.borrow() {
            return Ok(WaitEnd::Interrupted);
        }
        let tags_changed = async {
            match tags {
                Some(t) => t.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tracker.changed() => {}
            _ = tags_changed => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

pub async fn run(args: OutcomesArgs) -> Result<Done, Failure> {
    let cfg = Config::load(&args.config).map_err(Failure::input)?;
    if !Store::is_postgres_url(&args.state) && !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    if let Some(results) = &args.results {
        let store_files = match Store::is_postgres_url(&args.state) {
            true => Vec::new(),
            false => crate::results::target::store_files(&args.state),
        };
        let protected: Vec<crate::results::target::Protected> = store_files
            .iter()
            .map(|(what, path)| crate::results::target::Protected {
                what: what.clone(),
                path,
            })
            .collect();
        crate::results::target::check(results, &protected).map_err(Failure::input)?;
    }
    let signals = super::Signals::new();
    let (client, _mock) = super::connect(&cfg).await?;
    let (store, _writer) = super::open_writer(&args.state).await?;
    let campaigns: Vec<i64> = store
        .campaigns()
        .await
        .map_err(Failure::other)?
        .iter()
        .map(|c| c.id)
        .collect();
    if !cfg.outcomes.enabled {
        crate::tell!("note: [outcomes] enabled is false in the config: fetching anyway (this command asks for it)");
    }
    let tracker = Arc::new(tracker(&cfg, store.clone(), &client)?);
    // Opt-outs are written to the store's own list (no campaign runs in this process).
    let lists = Arc::new(crate::calling::dnc::DncLists::empty(
        crate::calling::dnc::Normalise {
            default_country: cfg.campaign.default_country.clone(),
            callee_format: cfg.campaign.callee_format,
        },
    ));
    let tags = tag_tracker(&cfg, store.clone(), &client, lists, None).await?;
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        let mut signals = signals;
        signals.recv().await;
        let _ = stop_tx.send(true);
    });
    let end = if args.wait {
        let task = tokio::spawn(tracker.clone().run(stop.clone()));
        let tag_task = tags.clone().map(|t| tokio::spawn(t.run(stop.clone())));
        let end = wait(
            &tracker,
            tags.as_deref(),
            &store,
            &campaigns,
            &mut stop,
            Duration::from_secs(10),
        )
        .await;
        task.abort();
        if let Some(t) = tag_task {
            t.abort();
        }
        end?
    } else {
        match one_round(&tracker, &mut stop).await? {
            WaitEnd::AllKnown => match &tags {
                Some(t) => tag_round(t, &mut stop).await?,
                None => WaitEnd::AllKnown,
            },
            other => other,
        }
    };
    if let Some(results) = &args.results {
        if let Some(c) = store.find_campaign("run").await.map_err(Failure::other)? {
            crate::results::rewrite(&store, c.id, results, false)
                .await
                .map_err(Failure::other)?;
        }
    }
    let c = counts(&store, &campaigns).await?;
    crate::tell!("{}", describe(&c));
    Ok(match end {
        WaitEnd::Stopped(reason) => {
            crate::tell!("{reason}");
            Done::Halted
        }
        WaitEnd::Interrupted => Done::Interrupted,
        WaitEnd::AllKnown if c.awaiting == 0 && c.reconciling == 0 => Done::Ok,
        WaitEnd::AllKnown => {
            crate::tell!(
                "{} calls have no outcome yet and {} lost replies are still being looked up: run again later (or with --wait)",
                c.awaiting,
                c.reconciling
            );
            Done::Pending
        }
    })
}

/// Every tag and analysis check due within `check_every`, once; errors other than an
/// account-level one end the round early (what was fetched is kept).
async fn tag_round(
    tags: &TagTracker,
    stop: &mut watch::Receiver<bool>,
) -> Result<WaitEnd, Failure> {
    let until = now_ms() + tags.check_every_ms() - 1;
    loop {
        if *stop.borrow() {
            return Ok(WaitEnd::Interrupted);
        }
        match tags.pass_until(now_ms(), until).await {
            Ok(true) => continue,
            Ok(false) => return Ok(WaitEnd::AllKnown),
            Err(TagPassError::Query {
                action,
                failure: QueryFailure::Halt { code, message },
            }) => {
                return Ok(WaitEnd::Stopped(format!(
                    "tag tracking stopped: {action} answered {code} ({message})\n{}",
                    crate::policy::halt_hint(&code)
                )))
            }
            Err(TagPassError::Query { action, failure }) => {
                crate::tell!("warning: {action} failed, stopping this round: {failure:?}");
                return Ok(WaitEnd::AllKnown);
            }
            Err(TagPassError::Store(e)) => return Err(Failure::other(e)),
        }
    }
}

/// Every check due now, once (pass after pass while a pass was full); errors other than an
/// account-level one end the round early (what was fetched is kept).
async fn one_round(
    tracker: &Tracker,
    stop: &mut watch::Receiver<bool>,
) -> Result<WaitEnd, Failure> {
    let until = now_ms() + tracker.check_every_ms() - 1;
    loop {
        if *stop.borrow() {
            return Ok(WaitEnd::Interrupted);
        }
        match tracker.pass_until(now_ms(), until).await {
            Ok(r) if r.more => continue,
            Ok(_) => return Ok(WaitEnd::AllKnown),
            Err(PassError::Query(QueryFailure::Halt { code, message })) => {
                return Ok(WaitEnd::Stopped(format!(
                    "outcome tracking stopped: DescribeTelCdr answered {code} ({message})\n{}",
                    crate::policy::halt_hint(&code)
                )))
            }
            Err(PassError::Query(f)) => {
                crate::tell!("warning: DescribeTelCdr failed, stopping this round: {f:?}");
                return Ok(WaitEnd::AllKnown);
            }
            Err(PassError::Store(e)) => return Err(Failure::other(e)),
        }
    }
}
