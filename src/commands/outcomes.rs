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
use crate::store::{OutcomeCounts, Store};

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
    }
    Ok(total)
}

/// "calls ended: 12 / 20 placed (answered 9, busy 2, …), 3 lost replies being looked up"
pub fn describe(c: &OutcomeCounts) -> String {
    let classes: Vec<String> = c
        .by_class
        .iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    let mut s = format!("calls ended: {} / {} placed", c.ended(), c.placed());
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
    s
}

/// Wait until every placed call of `campaigns` has an outcome and no lost reply is left to
/// resolve (the tracker gives up on its own by `give_up_after` / `reconcile_after`), the
/// tracker stops, or `stop` asks to. Reports progress every `report_every`.
pub async fn wait(
    tracker: &Tracker,
    store: &Store,
    campaigns: &[i64],
    stop: &mut watch::Receiver<bool>,
    report_every: Duration,
) -> Result<WaitEnd, Failure> {
    let mut last_report = tokio::time::Instant::now();
    let mut last_text = String::new();
    loop {
        let c = counts(store, campaigns).await?;
        if c.awaiting == 0 && c.reconciling == 0 {
            return Ok(WaitEnd::AllKnown);
        }
        if let Some(reason) = tracker.stopped() {
            return Ok(WaitEnd::Stopped(reason));
        }
        let text = describe(&c);
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
        tokio::select! {
            _ = tracker.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

pub async fn run(args: OutcomesArgs) -> Result<Done, Failure> {
    let cfg = Config::load(&args.config).map_err(Failure::input)?;
    if !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    if let Some(results) = &args.results {
        let store_files = crate::results::target::store_files(&args.state);
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
    let _lock = super::lock_store(&args.state)?;
    let store = Store::open(&args.state).map_err(Failure::input)?;
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
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        let mut signals = signals;
        signals.recv().await;
        let _ = stop_tx.send(true);
    });
    let end = if args.wait {
        let task = tokio::spawn(tracker.clone().run(stop.clone()));
        let end = wait(
            &tracker,
            &store,
            &campaigns,
            &mut stop,
            Duration::from_secs(10),
        )
        .await;
        task.abort();
        end?
    } else {
        one_round(&tracker, &mut stop).await?
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
