//! `ccc-dialer status`: counts by status and by error code, from the store alone.

use crate::cli::StatusArgs;
use crate::exit::{Done, Failure};

pub async fn run(args: StatusArgs) -> Result<Done, Failure> {
    let store = super::open_existing_store(&args.state)?;
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    if campaigns.is_empty() {
        crate::say!("{}: no campaign yet", args.state.display());
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
