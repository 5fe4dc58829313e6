//! `ccc-dialer purge`: delete one finished campaign's personal data now (see [`crate::purge`]).

use anyhow::anyhow;

use crate::cli::PurgeArgs;
use crate::dispatch::now_ms;
use crate::exit::{Done, Failure};
use crate::store::{PurgeOutcome, Store};

pub async fn run(args: PurgeArgs) -> Result<Done, Failure> {
    if !Store::is_postgres_url(&args.state) && !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    // A writer: never beside a live `run` or `serve` (serve has the same in its API).
    let (store, _writer) = super::open_writer(&args.state).await?;
    let c = super::pick_campaign(&store, Some(&args.campaign)).await?;
    let uploads = super::uploads_of(store.path());
    let (outcome, purged) =
        crate::purge::purge(&store, &c, &uploads, args.forget_dial_history, now_ms())
            .await
            .map_err(Failure::other)?;
    if let Some(why) = crate::purge::refusal(&c, &outcome) {
        return Err(Failure::input(anyhow!(why)));
    }
    match (outcome, purged) {
        (PurgeOutcome::AlreadyPurged(at), _) => crate::say!(
            "campaign {}: purged before, at {}",
            c.name,
            crate::report::time(at, &jiff::tz::TimeZone::UTC).utc
        ),
        (_, Some(p)) => {
            crate::say!(
                "campaign {}: purged {} contacts, {} attempts, {} dial history entries, {} inbox records",
                c.name,
                p.counts.contacts,
                p.counts.attempts,
                p.counts.dials,
                p.counts.inbox_files
            );
            if let Some(f) = p.upload_deleted {
                crate::say!("  deleted the uploaded contacts file {}", f.display());
            }
        }
        _ => {}
    }
    Ok(Done::Ok)
}
