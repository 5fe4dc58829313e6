//! When the requests of the other API actions left (PostgreSQL twins of `store::sends`).

use super::Pg;
use crate::store::window::Slot;
use crate::store::StoreError;

/// How long a send is kept (as `store::sends`).
const KEEP_MS: i64 = 60_000;

/// The row written down, and the request's slot in `action`'s window when the store shares it
/// (reserved last, in the same transaction: see `store::window`).
pub async fn sending(
    pg: &Pg,
    action: String,
    started_at_ms: i64,
) -> Result<(i64, Option<Slot>), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "DELETE FROM sends WHERE action = $1 AND started_at < $2",
        &[&action, &(started_at_ms - KEEP_MS)],
    )
    .await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO sends (action, started_at) VALUES ($1, $2) RETURNING id",
            &[&action, &started_at_ms],
        )
        .await?
        .try_get(0)?;
    let slot = super::window::reserve(&tx, pg, &action).await?;
    tx.commit().await?;
    Ok((id, slot))
}

pub async fn sent(pg: &Pg, id: i64, sent_at_ms: Option<i64>) -> Result<(), StoreError> {
    let c = pg.client().await?;
    match sent_at_ms {
        Some(at) => {
            c.execute("UPDATE sends SET sent_at = $2 WHERE id = $1", &[&id, &at])
                .await?
        }
        None => c.execute("DELETE FROM sends WHERE id = $1", &[&id]).await?,
    };
    Ok(())
}

pub async fn recent_action_sends(
    pg: &Pg,
    action: String,
    n: usize,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let c = pg.client().await?;
    let found = c
        .query(
            "SELECT COALESCE(sent_at, GREATEST($3, started_at)) AS t FROM sends
             WHERE action = $1 AND started_at >= $3 - $4
             ORDER BY t DESC LIMIT $2",
            &[&action, &(n as i64), &now_ms, &KEEP_MS],
        )
        .await?;
    found.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
