//! `ccc-dialer export`: rewrite the results CSV from the store.

use anyhow::anyhow;

use crate::cli::ExportArgs;
use crate::exit::{Done, Failure};
use crate::results;

pub async fn run(args: ExportArgs) -> Result<Done, Failure> {
    let store = super::open_existing_store(&args.state)?;
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
