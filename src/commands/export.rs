//! `ccc-dialer export`: rewrite the results CSV from the store.

use anyhow::anyhow;

use crate::cli::ExportArgs;
use crate::exit::{Done, Failure};
use crate::results;

pub async fn run(args: ExportArgs) -> Result<Done, Failure> {
    let store_files = results::target::store_files(&args.state);
    let protected: Vec<results::target::Protected> = store_files
        .iter()
        .map(|(what, path)| results::target::Protected {
            what: what.clone(),
            path,
        })
        .collect();
    results::target::check(&args.results, &protected).map_err(Failure::input)?;
    let store = super::open_existing_store(&args.state)?;
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    let Some(campaign) = campaigns.first() else {
        return Err(Failure::input(anyhow!(
            "{}: the state file holds no campaign yet",
            args.state.display()
        )));
    };
    // The campaign's contacts file, as the run that made it named it (when it is still there:
    // a relative name from another folder may name nothing here).
    let source = std::path::PathBuf::from(&campaign.source);
    if source.exists() {
        results::target::check(
            &args.results,
            &[results::target::Protected {
                what: "the campaign's contacts file".into(),
                path: &source,
            }],
        )
        .map_err(Failure::input)?;
    }
    let n = results::rewrite(&store, campaign.id, &args.results, false)
        .await
        .map_err(Failure::other)?;
    crate::tell!("{} rows written to {}", n, args.results.display());
    Ok(Done::Ok)
}
