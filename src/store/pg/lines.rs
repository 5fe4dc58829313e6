//! Agent lines (PostgreSQL twins of `store::lines`): each agent's learned line count, and the
//! contacts held back while every line is busy.

use super::Pg;
use crate::lines::Saved;
use crate::store::{StoreError, AGENT_LINES_BUSY};

pub async fn save_agent_lines(pg: &Pg, s: Saved, now_ms: i64) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO agent_lines (agent_id, learned, hold_ms, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (agent_id) DO UPDATE SET learned = $2, hold_ms = $3, updated_at = $4",
        &[
            &(s.agent as i64),
            &s.learned,
            &((s.hold_seconds * 1000.0).round() as i64),
            &now_ms,
        ],
    )
    .await?;
    Ok(())
}

pub async fn agent_lines(pg: &Pg) -> Result<Vec<Saved>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT agent_id, learned, hold_ms FROM agent_lines ORDER BY agent_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Saved {
                agent: r.try_get::<_, i64>(0)?.max(0) as u64,
                learned: r.try_get(1)?,
                hold_seconds: r.try_get::<_, i64>(2)? as f64 / 1000.0,
            })
        })
        .collect()
}

pub async fn release_line_holds(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET next_at = $2, updated_at = $2
         WHERE campaign_id = $1 AND status = 'pending' AND gate = $3 AND next_at > $2",
        &[&campaign_id, &now_ms.max(1), &AGENT_LINES_BUSY],
    )
    .await?)
}

pub async fn hold_for_lines(
    pg: &Pg,
    ids: Vec<i64>,
    until_ms: i64,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET next_at = $2, gate = $3, updated_at = $4
         WHERE id = ANY($1) AND status = 'pending'",
        &[&ids, &until_ms.max(1), &AGENT_LINES_BUSY, &now_ms],
    )
    .await?)
}
