//! `ccc-dialer export`: rewrite the results CSV of one campaign from the store.

use anyhow::anyhow;

use crate::cli::ExportArgs;
use crate::exit::{Done, Failure};
use crate::results;
use crate::store::{Campaign, Store};

pub async fn run(args: ExportArgs) -> Result<Done, Failure> {
    let store_files = match Store::is_postgres_url(&args.state) {
        true => Vec::new(),
        false => results::target::store_files(&args.state),
    };
    let protected: Vec<results::target::Protected> = store_files
        .iter()
        .map(|(what, path)| results::target::Protected {
            what: what.clone(),
            path,
        })
        .collect();
    results::target::check(&args.results, &protected).map_err(Failure::input)?;
    let store = super::open_existing_store(&args.state).await?;
    let campaign = pick(&store, &args).await?;
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
    crate::tell!(
        "{} rows of campaign {} (id {}) written to {}",
        n,
        campaign.name,
        campaign.id,
        args.results.display()
    );
    Ok(Done::Ok)
}

/// The campaign `--campaign` names (a name first, then an id), or the store's only one. A
/// store of several and no `--campaign` is refused with their list: writing the first one
/// silently would hand over the wrong results.
async fn pick(store: &Store, args: &ExportArgs) -> Result<Campaign, Failure> {
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    let list = |all: &[Campaign]| {
        all.iter()
            .map(|c| format!("  {:>5}  {}  ({})", c.id, c.name, c.state))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match &args.campaign {
        Some(wanted) => {
            let found = campaigns
                .iter()
                .find(|c| &c.name == wanted)
                .or_else(|| {
                    let id: i64 = wanted.parse().ok()?;
                    campaigns.iter().find(|c| c.id == id)
                })
                .cloned();
            found.ok_or_else(|| {
                Failure::input(anyhow!(
                    "--campaign {wanted:?}: no campaign of that name or id in {}; it holds:\n   id  name  (state)\n{}",
                    store.path().display(),
                    list(&campaigns)
                ))
            })
        }
        None => match campaigns.as_slice() {
            [] => Err(Failure::input(anyhow!(
                "{}: the state file holds no campaign yet",
                store.path().display()
            ))),
            [one] => Ok(one.clone()),
            several => Err(Failure::input(anyhow!(
                "{} holds {} campaigns: name one with --campaign NAME|ID:\n   id  name  (state)\n{}",
                store.path().display(),
                several.len(),
                list(several)
            ))),
        },
    }
}
