//! `ccc-dialer dnc export` and `dnc remove`: the account's own do-not-call list (opt-outs; see
//! [`crate::calling::opt_out`]).

use anyhow::anyhow;
use std::io::Write;

use crate::cli::{DncCommand, DncExportArgs, DncRemoveArgs};
use crate::config::Config;
use crate::dispatch::now_ms;
use crate::exit::{Done, Failure};

pub async fn run(cmd: DncCommand) -> Result<Done, Failure> {
    match cmd {
        DncCommand::Export(a) => export(a).await,
        DncCommand::Remove(a) => remove(a).await,
    }
}

async fn export(args: DncExportArgs) -> Result<Done, Failure> {
    if let Some(out) = &args.out {
        let store_files = crate::results::target::store_files(&args.state);
        let protected: Vec<crate::results::target::Protected> = store_files
            .iter()
            .map(|(what, path)| crate::results::target::Protected {
                what: what.clone(),
                path,
            })
            .collect();
        crate::results::target::check(out, &protected).map_err(Failure::input)?;
    }
    let store = super::open_existing_store(&args.state).await?;
    let entries = store.own_dnc_entries().await.map_err(Failure::other)?;
    let csv = crate::calling::opt_out::to_csv(&entries).map_err(Failure::other)?;
    match &args.out {
        Some(path) => {
            let tmp = crate::results::temporary(path);
            std::fs::write(&tmp, &csv)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| Failure::other(anyhow!("{}: cannot write: {e}", path.display())))?;
            crate::tell!(
                "{} numbers on the account's own do-not-call list written to {}",
                entries.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&csv)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::other(anyhow!("cannot write to standard output: {e}")))?;
        }
    }
    Ok(Done::Ok)
}

/// The forms of `number` that may be on the list: as given, then as a contacts file with the
/// config's country and format would store it.
pub fn candidates(number: &str, cfg: Option<&Config>) -> Vec<String> {
    let mut out = vec![number.trim().to_string()];
    if let Some(cfg) = cfg {
        if let Ok(n) = crate::phone::normalize(
            number,
            &cfg.campaign.default_country,
            cfg.campaign.callee_format,
        ) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

async fn remove(args: DncRemoveArgs) -> Result<Done, Failure> {
    if args.reason.trim().is_empty() {
        return Err(Failure::input(anyhow!(
            "--reason: expected why the number comes off the do-not-call list (it is logged)"
        )));
    }
    let cfg = match &args.config {
        Some(p) => Some(Config::load(p).map_err(Failure::input)?),
        None => None,
    };
    if !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    // A writer: never beside a live `run` or `serve` (serve has the same in its API).
    let (store, _writer) = super::open_writer(&args.state).await?;
    for n in candidates(&args.number, cfg.as_ref()) {
        if let Some(e) = store
            .remove_own_dnc(n, args.reason.trim().to_string(), now_ms())
            .await
            .map_err(Failure::other)?
        {
            crate::say!(
                "{} taken off the account's own do-not-call list (it was added: {}); it may be called again",
                e.number,
                e.reason
            );
            return Ok(Done::Ok);
        }
    }
    let n = store.own_dnc_entries().await.map_err(Failure::other)?.len();
    Err(Failure::input(anyhow!(
        "{:?}: not on the account's own do-not-call list ({n} numbers are; `ccc-dialer dnc export` lists them{})",
        args.number,
        if cfg.is_none() {
            "; with --config the number is read as a contacts file would"
        } else {
            ""
        }
    )))
}
