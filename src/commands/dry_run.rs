//! `ccc-dialer run --dry-run`: every check the real run makes before it sends (config,
//! do-not-call lists, credentials, fault script, the `--results`/`--state` pair and the store
//! it would resume), the intake report a real run would print (do-not-call skips included),
//! and the list of what would be dialled. Sends nothing, writes nothing, and exits with the
//! code the real run would have exited with before its first request.

use std::path::Path;

use anyhow::anyhow;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::contact::{ResultRow, Status};
use crate::dispatch::now_ms;
use crate::exit::{Done, Failure};
use crate::intake::{self, IntakeOptions};
use crate::results;
use crate::store::Store;

pub async fn run(args: &RunArgs, cfg: &Config, opts: &IntakeOptions) -> Result<Done, Failure> {
    if let (Some(state), Some(results_path)) = (&args.state, &args.results) {
        super::run::check_results_target(results_path, state, &args.contacts)?;
    }
    let rules = super::load_rules(cfg)?;
    super::check_connect(cfg)?;
    let fingerprint = intake::fingerprint(&args.contacts).map_err(Failure::input)?;
    if let Some(state) = &args.state {
        let redial = cfg.retry.redial_unknown;
        if let Some(done) = resume(state, &args.contacts, &fingerprint, redial).await? {
            return Ok(done);
        }
    }

    let store = Store::open(Path::new(":memory:")).map_err(Failure::other)?;
    let campaign = store
        .create_campaign(
            "dry-run",
            &fingerprint,
            &args.contacts.display().to_string(),
            now_ms(),
        )
        .await
        .map_err(Failure::other)?;
    let report =
        super::run::import_contacts(&store, campaign.id, &args.contacts, opts, &rules).await?;
    super::run::print_intake(&args.contacts, &report, &store, campaign.id).await?;
    let listed = list_pending(&store, campaign.id, false).await?;
    crate::say!(
        "dry run: {listed} contacts would be dialled, {} skipped; nothing was sent",
        report.counts.skipped
    );
    Ok(Done::Ok)
}

/// A `--state` that already exists: the real run would refuse it if it is in use or belongs
/// to other contacts, and would resume it (dialling only what is still pending) if not.
async fn resume(
    state: &Path,
    contacts: &Path,
    fingerprint: &str,
    redial_unknown: bool,
) -> Result<Option<Done>, Failure> {
    let store = match state.to_str().filter(|_| Store::is_postgres_url(state)) {
        // A database: no lock to look at; a database without the schema is a new store.
        Some(url) => match Store::connect_existing_postgres(url)
            .await
            .map_err(Failure::input)?
        {
            Some(store) => store,
            None => return Ok(None),
        },
        None => {
            if let Some(holder) = crate::store::lock::live_writer(state) {
                return Err(Failure::input(crate::store::lock::LockError::Held {
                    state: state.to_path_buf(),
                    holder,
                }));
            }
            if !state.exists() {
                return Ok(None);
            }
            Store::open_read_only(state, false).map_err(Failure::input)?
        }
    };
    let state = store.path();
    let Some(campaign) = store.find_campaign("run").await.map_err(Failure::other)? else {
        return Ok(None);
    };
    if campaign.fingerprint != fingerprint {
        return Err(Failure::input(anyhow!(
            "{}: this state file belongs to a campaign with a different contacts file; {} differs from it\n\
             hint: to resume, pass the same contacts file; for a new campaign, pass a new --state file",
            state.display(),
            contacts.display()
        )));
    }
    if !campaign.intake_done {
        // An intake cut off: the real run reads the file again; so does the dry run.
        return Ok(None);
    }
    crate::tell!(
        "{}: resuming: the contacts are in the state store; a real run continues with those still pending",
        state.display()
    );
    let listed = list_pending(&store, campaign.id, redial_unknown).await?;
    crate::say!("dry run: {listed} contacts would be dialled; nothing was sent");
    Ok(Some(Done::Ok))
}

/// Print every contact still to dial, in file order, as it would be sent; returns how many.
/// Contacts left in flight become `unknown` at the real run's start: with `redial_unknown`
/// (`--redial-unknown`) they are dialled again like the `unknown` ones, otherwise not.
async fn list_pending(
    store: &Store,
    campaign_id: i64,
    redial_unknown: bool,
) -> Result<u64, Failure> {
    let (_, listed) = store
        .for_each_result(
            campaign_id,
            false,
            0u64,
            move |n: &mut u64, row: ResultRow| {
                let again = [Status::Unknown.as_str(), Status::InFlight.as_str()];
                if row.status == Status::Pending.as_str()
                    || (redial_unknown && again.contains(&row.status.as_str()))
                {
                    *n += 1;
                    let row = results::cells::row(&row);
                    if row.id.is_empty() {
                        crate::say!("would dial {} (line {})", row.callee, row.line);
                    } else {
                        crate::say!(
                            "would dial {} (line {}, id {})",
                            row.callee,
                            row.line,
                            row.id
                        );
                    }
                }
                Ok(())
            },
        )
        .await
        .map_err(Failure::other)?;
    Ok(listed)
}
