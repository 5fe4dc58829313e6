//! `ccc-dialer status`: counts by status and by error code, from the store alone.

use crate::cli::StatusArgs;
use crate::exit::{Done, Failure};

pub async fn run(args: StatusArgs) -> Result<Done, Failure> {
    let store = super::open_existing_store(&args.state)?;
    if let Some(callee) = &args.callee {
        return contact(&store, callee, args.config.as_deref()).await;
    }
    if let Some(o) = store.outage().await.map_err(Failure::other)? {
        crate::say!("{}", o.describe());
    }
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    if campaigns.is_empty() {
        crate::say!("{}: no campaign yet", args.state.display());
    }
    let agents = store.agent_lines().await.map_err(Failure::other)?;
    for a in &agents {
        // Configured counts live in the config; the store keeps what was learned.
        let lines = a.learned.map_or(
            "no line count learned (configured, or nothing refused yet)".to_string(),
            |l| format!("~{l:.0} lines learned from capacity refusals"),
        );
        crate::say!(
            "agent {}: {lines}; a call holds a line ~{:.1} s",
            a.agent,
            a.hold_seconds
        );
    }
    for c in campaigns {
        let counts = store.counts(c.id).await.map_err(Failure::other)?;
        let total: u64 = counts.values().sum();
        crate::say!("campaign {} ({} contacts)", c.name, total);
        for (status, n) in &counts {
            crate::say!("  {:<10} {n}", status.as_str());
        }
        let waiting = store.waiting_by_gate(c.id).await.map_err(Failure::other)?;
        if waiting.iter().any(|(g, _)| g.is_some()) {
            crate::say!("  pending, by what holds them:");
            for (gate, n) in &waiting {
                crate::say!("    {:<16} {n}", gate.as_deref().unwrap_or("due"));
            }
            if let Some((at, Some(gate))) = store.next_wait(c.id).await.map_err(Failure::other)? {
                let until = chrono::DateTime::from_timestamp_millis(at)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                crate::say!("  next: {gate} until {until}");
            }
        }
        let codes = store.counts_by_code(c.id).await.map_err(Failure::other)?;
        if !codes.is_empty() {
            crate::say!("  by error code:");
            for (status, code, n) in codes {
                crate::say!("    {status:<8} {code:<50} {n}");
            }
        }
    }
    Ok(Done::Ok)
}

/// `--callee`: the contact in every campaign of the store, and why it waits if it does.
async fn contact(
    store: &crate::store::Store,
    raw: &str,
    config: Option<&std::path::Path>,
) -> Result<Done, Failure> {
    use crate::config::CalleeFormat;
    let (country, formats) = match config {
        Some(path) => {
            let cfg = crate::config::Config::load(path).map_err(Failure::input)?;
            (
                cfg.campaign.default_country,
                vec![cfg.campaign.callee_format],
            )
        }
        None => (
            "CN".to_string(),
            vec![CalleeFormat::DoubleZero, CalleeFormat::E164],
        ),
    };
    let mut spellings = vec![raw.trim().to_string()];
    for f in formats {
        if let Ok(n) = crate::phone::normalize(raw, &country, f) {
            spellings.push(n);
        }
    }
    let mut found = false;
    for c in store.campaigns().await.map_err(Failure::other)? {
        for callee in &spellings {
            let Some(d) = store
                .contact_detail(c.id, callee)
                .await
                .map_err(Failure::other)?
            else {
                continue;
            };
            found = true;
            crate::say!(
                "campaign {} ({}): {} line {}: {}",
                c.name,
                c.state,
                d.callee,
                d.line,
                d.status
            );
            if d.status == "pending" {
                let until = (d.next_at > crate::dispatch::now_ms())
                    .then(|| time(d.next_at))
                    .flatten();
                let why = match (&d.gate, &until) {
                    (Some(g), Some(u)) => format!("{g} until {u}"),
                    (None, Some(u)) if d.reschedules > 0 => format!("rescheduled until {u}"),
                    (None, Some(u)) => format!("retry_backoff until {u}"),
                    _ if c.state != crate::store::CampaignState::Active => {
                        format!("campaign_{}", c.state)
                    }
                    _ => "due: waiting for its turn within the rate".to_string(),
                };
                crate::say!("  waiting: {why}");
            }
            if let (Some(code), Some(message)) = (&d.error_code, &d.error_message) {
                crate::say!("  last: {code}: {message}");
            }
            for a in &d.attempts {
                if a.outcome.as_deref() == Some("requeued") {
                    crate::say!(
                        "  {}: {}",
                        time(a.started_at).unwrap_or_default(),
                        a.message.as_deref().unwrap_or("requeued")
                    );
                    continue;
                }
                crate::say!(
                    "  attempt {}: started {} outcome {} {}{}",
                    a.n,
                    time(a.started_at).unwrap_or_default(),
                    a.outcome.as_deref().unwrap_or("(no reply yet)"),
                    a.code.as_deref().unwrap_or(""),
                    a.session_id
                        .as_deref()
                        .map(|s| format!(" session {s}"))
                        .unwrap_or_default()
                );
            }
            break;
        }
    }
    if !found {
        return Err(Failure::input(anyhow::anyhow!(
            "{raw}: no such contact in any campaign of this store (tried {})",
            spellings.join(", ")
        )));
    }
    Ok(Done::Ok)
}

fn time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}
