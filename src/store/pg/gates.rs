//! What the calling rules need (PostgreSQL twins of `store::gates`): holding a contact back,
//! ending it for a final gate, and the dial history the per-person checks read.

use super::Pg;
use crate::calling::gate;
use crate::contact::Status;
use crate::store::{PersonGuard, StoreError};

/// When calls to `callee` that may have rung were sent since `since_ms` (the `dials` index).
pub(super) async fn recent_dials<C: deadpool_postgres::GenericClient>(
    c: &C,
    callee: &str,
    since_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT at FROM dials WHERE callee = $1 AND at >= $2")
        .await?;
    let rows = c.query(&stmt, &[&callee, &since_ms]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn defer(
    pg: &Pg,
    contact_id: i64,
    next_at: i64,
    gate: String,
    now_ms: i64,
) -> Result<(), StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "UPDATE contacts SET next_at = $2, gate = $3, updated_at = $4
             WHERE id = $1 AND status = 'pending'",
        )
        .await?;
    c.execute(&stmt, &[&contact_id, &next_at.max(1), &gate, &now_ms])
        .await?;
    Ok(())
}

pub async fn end_by_gate(
    pg: &Pg,
    contact_id: i64,
    status: Status,
    code: String,
    message: String,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE contacts SET status = $2, error_code = $3, error_message = $4,
               gate = NULL, updated_at = $5
             WHERE id = $1 AND status = 'pending'",
            &[&contact_id, &status.as_str(), &code, &message, &now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn expire_pending(
    pg: &Pg,
    campaign_id: i64,
    message: String,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'expired', error_code = 'NotAfter', error_message = $2,
           gate = NULL, updated_at = $3
         WHERE campaign_id = $1 AND status = 'pending'",
        &[&campaign_id, &message, &now_ms],
    )
    .await?)
}

pub async fn person_held(
    pg: &Pg,
    contact_id: i64,
    guard: PersonGuard,
    now_ms: i64,
) -> Result<Option<gate::Gate>, StoreError> {
    let c = pg.client().await?;
    let callee: Option<String> = c
        .query_opt("SELECT callee FROM contacts WHERE id = $1", &[&contact_id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let recent = match callee {
        Some(callee) => recent_dials(&c, &callee, guard.since_ms).await?,
        None => Vec::new(),
    };
    match guard.judge(contact_id, &recent, now_ms) {
        Ok(()) => Ok(None),
        Err(StoreError::Held(g)) => Ok(Some(g)),
        Err(e) => Err(e),
    }
}

pub async fn calls_to(pg: &Pg, callee: String, since_ms: i64) -> Result<Vec<i64>, StoreError> {
    let c = pg.client().await?;
    recent_dials(&c, &callee, since_ms).await
}

pub async fn prune_dials(pg: &Pg, before_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute("DELETE FROM dials WHERE at < $1", &[&before_ms])
        .await?)
}

pub async fn caller_uses_since(pg: &Pg, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT caller, started_at FROM attempts
             WHERE started_at >= $1 AND caller IS NOT NULL
               AND outcome IS DISTINCT FROM 'not_sent'
             ORDER BY started_at",
            &[&since_ms],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub async fn next_wait(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Option<(i64, Option<String>)>, StoreError> {
    let c = pg.client().await?;
    c.query_opt(
        "SELECT next_at, gate FROM contacts WHERE campaign_id = $1 AND status = 'pending'
         ORDER BY next_at LIMIT 1",
        &[&campaign_id],
    )
    .await?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

pub async fn waiting_by_gate(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Vec<(Option<String>, u64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT gate, COUNT(*) FROM contacts WHERE campaign_id = $1 AND status = 'pending'
             GROUP BY gate ORDER BY 2 DESC",
            &[&campaign_id],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect()
}
