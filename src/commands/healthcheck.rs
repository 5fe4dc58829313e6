//! `ccc-dialer healthcheck`: ask a URL and exit 0 on HTTP 200 (the container's HEALTHCHECK;
//! the runtime image carries no curl).

use std::time::Duration;

use anyhow::anyhow;

use crate::cli::HealthcheckArgs;
use crate::exit::{Done, Failure};

pub async fn run(args: HealthcheckArgs) -> Result<Done, Failure> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(Failure::other)?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .map_err(|e| Failure::other(anyhow!("{}: {e}", args.url)))?;
    if response.status().as_u16() == 200 {
        Ok(Done::Ok)
    } else {
        Err(Failure::other(anyhow!(
            "{}: HTTP {}",
            args.url,
            response.status()
        )))
    }
}
