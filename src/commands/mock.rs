//! `ccc-dialer mock`: the built-in CCC stand-in as a server of its own.

use anyhow::anyhow;

use crate::cli::MockArgs;
use crate::credentials::{self, ProcessEnv};
use crate::exit::{Done, Failure};
use crate::mock::{Faults, MockOptions, MockServer};

pub async fn run(args: MockArgs) -> Result<Done, Failure> {
    // The stand-in accepts the environment's key when one is set, and the demo key always.
    let mut accepted = vec![credentials::demo()];
    if let Ok(c) = credentials::from_env(&ProcessEnv) {
        accepted.push(c);
    }
    let faults = match &args.faults {
        Some(p) => Faults::load(p).map_err(Failure::input)?,
        None => Faults::default(),
    };
    let opts = MockOptions {
        credentials: accepted
            .into_iter()
            .map(|c| (c.secret_id, c.secret_key))
            .collect(),
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        faults,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::input(anyhow!("--listen {}: cannot bind: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::other(anyhow!("cannot read the bound address: {e}")))?;
    crate::say!("listening on http://{addr}");
    crate::tell!("admin figures: http://{addr}/__admin/stats");
    MockServer::serve(listener, opts, super::stop_signal())
        .await
        .map_err(|e| Failure::other(anyhow!("stand-in stopped: {e}")))?;
    Ok(Done::Ok)
}
