//! Contacts put back in the queue (PostgreSQL twins of `store::requeue`).

use super::Pg;
use crate::requeue::Requeue;
use crate::store::StoreError;

pub async fn give_back_failed(
    pg: &Pg,
    contact_ids: Vec<i64>,
    code: String,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'pending', attempts = GREATEST(attempts - 1, 0),
           next_at = 0, updated_at = $3
         WHERE id = ANY($1) AND status = 'failed' AND error_code = $2",
        &[&contact_ids, &code, &now_ms],
    )
    .await?)
}

pub async fn requeue(
    pg: &Pg,
    campaign_id: i64,
    r: Requeue,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    // The rows are locked as they are read: a contact cannot change under the requeue.
    let found = tx
        .query(
            "SELECT id, error_code FROM contacts WHERE campaign_id = $1 AND status = $2
             ORDER BY id FOR UPDATE",
            &[&campaign_id, &r.status.as_str()],
        )
        .await?;
    let mut ids = Vec::new();
    for row in &found {
        let id: i64 = row.try_get(0)?;
        let code: Option<String> = row.try_get(1)?;
        let wanted = r.codes.is_empty() || code.as_ref().is_some_and(|code| r.codes.contains(code));
        // The service may have created that call before it failed: only on an operator's
        // explicit say-so.
        let maybe_called = code.as_deref().is_some_and(crate::policy::may_have_placed);
        if wanted && (r.allow_double_call || !maybe_called) {
            ids.push((id, code));
        }
    }
    let history = tx
        .prepare_cached(
            "INSERT INTO attempts (contact_id, n, started_at, finished_at, outcome, code, message)
             VALUES ($1, (SELECT COUNT(*) + 1 FROM attempts WHERE contact_id = $1), $2, $2,
                     'requeued', $3, $4)",
        )
        .await?;
    let release = tx
        .prepare_cached(
            "UPDATE contacts SET status = 'pending', attempts = 0, reschedules = 0, next_at = 0,
               gate = NULL, error_code = NULL, error_message = NULL, updated_at = $2
             WHERE id = $1",
        )
        .await?;
    for (id, code) in &ids {
        let message = format!(
            "requeued by {} (was {}{})",
            r.by,
            r.status.as_str(),
            code.as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        );
        tx.execute(&history, &[id, &now_ms, code, &message]).await?;
        tx.execute(&release, &[id, &now_ms]).await?;
    }
    if !ids.is_empty() {
        tx.execute(
            "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = $2
             WHERE id = $1 AND state = 'completed'",
            &[&campaign_id, &now_ms],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}
