//! `ccc-dialer requeue`: put finished contacts back in the queue (see [`crate::requeue`]).

use anyhow::anyhow;

use crate::cli::RequeueArgs;
use crate::dispatch::now_ms;
use crate::exit::{Done, Failure};
use crate::store::Store;

pub async fn run(args: RequeueArgs) -> Result<Done, Failure> {
    let request = crate::requeue::parse(
        &args.status,
        args.codes.clone(),
        args.allow_double_call,
        "an operator (ccc-dialer requeue)",
    )
    .map_err(|e| Failure::input(anyhow!("--status {}: {e}", args.status)))?;
    if !Store::is_postgres_url(&args.state) && !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    // A writer: never beside a live `run` or `serve` (serve has the same in its API).
    let (store, _writer) = super::open_writer(&args.state).await?;
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    let chosen: Vec<_> = match &args.campaign {
        Some(name) => {
            let c = campaigns
                .into_iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    Failure::input(anyhow!(
                        "{}: no campaign named {name:?} in this store",
                        store.path().display()
                    ))
                })?;
            vec![c]
        }
        None => campaigns,
    };
    let mut total = 0;
    for c in chosen {
        if c.state == crate::store::CampaignState::Cancelled {
            if args.campaign.is_some() {
                return Err(Failure::input(anyhow!(
                    "campaign {:?} is cancelled: its contacts cannot be requeued",
                    c.name
                )));
            }
            continue;
        }
        let n = store
            .requeue(c.id, request.clone(), now_ms())
            .await
            .map_err(Failure::other)?;
        if n > 0 {
            crate::say!(
                "campaign {}: {n} {} contacts requeued (pending, attempts reset)",
                c.name,
                request.status.as_str()
            );
        }
        total += n;
    }
    if total == 0 {
        crate::say!("no contact matched: nothing requeued");
    } else {
        crate::tell!("rerun the same `run` command (or start `serve` on this store) to dial them; every calling rule still applies");
    }
    Ok(Done::Ok)
}
