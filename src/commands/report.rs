//! `ccc-dialer report`: one campaign's report from the store alone (see [`crate::report`]).

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit::{Done, Failure};

pub async fn run(args: ReportArgs) -> Result<Done, Failure> {
    let store = super::open_existing_store(&args.state).await?;
    let campaign = super::pick_campaign(&store, args.campaign.as_deref()).await?;
    let report = crate::report::build(&store, &campaign, crate::dispatch::now_ms())
        .await
        .map_err(Failure::other)?;
    match args.format {
        ReportFormat::Text => crate::say!("{}", crate::report::render_text(&report).trim_end()),
        ReportFormat::Json => crate::say!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(Failure::other)?
        ),
    }
    Ok(Done::Ok)
}
