//! `ccc-dialer serve`: the long-running service. Everything the operator can get wrong (config,
//! credentials, token, listen address, store) is checked before anything is sent or served.

use std::sync::Arc;

use anyhow::anyhow;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::credentials::ProcessEnv;
use crate::exit::{Done, Failure};
use crate::server;

pub async fn run(args: ServeArgs) -> Result<Done, Failure> {
    let signals = super::Signals::new();
    let cfg = Arc::new(Config::load(&args.config).map_err(Failure::input)?);
    if cfg.retry.redial_not_placed {
        // Said, not silently ignored: `run` applies it when it starts a campaign again.
        tracing::warn!("retry.redial_not_placed = true is not applied by serve: not_placed contacts stay not_placed here (run --redial-not-placed dials them again on a state file it owns)");
    }
    let token = server::auth::token_for(&ProcessEnv, args.listen).map_err(Failure::input)?;
    if args.max_body_mib == 0 {
        return Err(Failure::input(anyhow!(
            "--max-body-mib 0: expected at least 1"
        )));
    }
    let rules = std::sync::Arc::new(super::load_rules(&cfg)?);
    let (client, _mock) = super::connect(&cfg).await?;
    // Deliveries still pending at shutdown are dropped with the process.
    let (notifier, _delivery) = super::notifier(&cfg)?;
    let (store, writer) = super::open_writer(&args.state).await?;
    super::lease_settings(&store, &cfg);
    super::outcomes::load_own_dnc(&rules.dnc, &store).await?;
    // Settle, then seed: the limiter's window must see the previous process's in-flight sends
    // as late as they can have left.
    server::settle_previous(&store)
        .await
        .map_err(Failure::other)?;
    let push_credentials = server::cdr_push::credentials(&ProcessEnv).map_err(Failure::input)?;
    let uploads = super::uploads_of(store.path());
    let engine = super::engine(&cfg, store, client, rules).await?;
    let (listener, addr) = super::bind(args.listen).await?;
    let svc = server::build(
        cfg.clone(),
        engine,
        token,
        uploads,
        args.max_body_mib.saturating_mul(1 << 20),
    );
    svc.campaigns.set_notifier(notifier);
    if let Some((user, password)) = push_credentials {
        svc.enable_cdr_push(user, password)
            .map_err(Failure::other)?;
        tracing::info!("CDR push receiver on: POST /v1/ccc/cdr (HTTP Basic)");
    }

    let stop_rx = signals.into_stop_or_lost(cfg.grace_period, writer.lost());
    crate::say!("listening on http://{addr}");
    // The path as text ("none" without one), not Rust's `Some("…")`.
    let inbox = args
        .inbox
        .as_deref()
        .map_or_else(|| "none".to_string(), |p| p.display().to_string());
    tracing::info!(%addr, %inbox, "serving");
    let served = svc.run_until_stopped(listener, args.inbox, stop_rx).await;
    if let Some(lost) = writer.lost_failure() {
        return Err(lost);
    }
    served.map_err(Failure::other)?;
    tracing::info!("stopped: every campaign drained");
    Ok(Done::Ok)
}
