//! `ccc-dialer export`: rewrite the results CSV from the store.

use anyhow::anyhow;

use crate::cli::ExportArgs;
use crate::exit::{Done, Failure};
use crate::results;
use crate::store::Store;

pub async fn run(args: ExportArgs) -> Result<Done, Failure> {
    if !args.state.exists() {
        return Err(Failure::input(anyhow!(
            "{}: no such state file",
            args.state.display()
        )));
    }
    let store = Store::open(&args.state).map_err(Failure::input)?;
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    let Some(campaign) = campaigns.first() else {
        return Err(Failure::input(anyhow!(
            "{}: the state file holds no campaign yet",
            args.state.display()
        )));
    };
    let n = results::rewrite(&store, campaign.id, &args.results, false)
        .await
        .map_err(Failure::other)?;
    crate::tell!("{} rows written to {}", n, args.results.display());
    Ok(Done::Ok)
}
