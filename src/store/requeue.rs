//! Contacts put back in the queue: the ones a systematic error failed (the engine gives them
//! back), and the ones an operator requeues.

use rusqlite::params;

use super::{pg, Store, StoreError};
use crate::requeue::Requeue;

impl Store {
    /// Contacts failed by `code` go back to `pending`, due at once, with the attempt that code
    /// used given back (a systematic error: the request was wrong, not the contact). Returns
    /// how many.
    pub async fn give_back_failed(
        &self,
        contact_ids: Vec<i64>,
        code: String,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::requeue::give_back_failed(pg, contact_ids, code, now_ms).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE contacts SET status = 'pending', attempts = MAX(attempts - 1, 0),
                   next_at = 0, updated_at = ?3
                 WHERE id = ?1 AND status = 'failed' AND error_code = ?2",
            )?;
            let mut n = 0;
            for id in contact_ids {
                n += stmt.execute(params![id, code, now_ms])? as u64;
            }
            Ok(n)
        })
        .await
    }

    /// An operator's requeue of `campaign_id`'s contacts matching `r`: each becomes `pending`,
    /// due at once, attempts and reschedules reset, its last error cleared, and a `requeued`
    /// row in its history says what it was. A completed campaign becomes active again. Returns
    /// how many contacts.
    pub async fn requeue(
        &self,
        campaign_id: i64,
        r: Requeue,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::requeue::requeue(pg, campaign_id, r, now_ms).await;
        }
        self.call(move |c| {
            let mut ids = Vec::new();
            {
                let mut stmt = c.prepare(
                    "SELECT id, error_code FROM contacts WHERE campaign_id = ?1 AND status = ?2",
                )?;
                let rows = stmt.query_map(params![campaign_id, r.status.as_str()], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?))
                })?;
                for row in rows {
                    let (id, code) = row?;
                    let wanted = r.codes.is_empty()
                        || code.as_ref().is_some_and(|code| r.codes.contains(code));
                    // The service may have created that call before it failed: only on an
                    // operator's explicit say-so.
                    let maybe_called = code
                        .as_deref()
                        .is_some_and(crate::policy::may_have_placed);
                    let wanted = wanted && (r.allow_double_call || !maybe_called);
                    if wanted {
                        ids.push((id, code));
                    }
                }
            }
            let mut history = c.prepare_cached(
                "INSERT INTO attempts (contact_id, n, started_at, finished_at, outcome, code, message)
                 VALUES (?1, (SELECT COUNT(*) + 1 FROM attempts WHERE contact_id = ?1), ?2, ?2,
                         'requeued', ?3, ?4)",
            )?;
            let mut release = c.prepare_cached(
                "UPDATE contacts SET status = 'pending', attempts = 0, reschedules = 0, next_at = 0,
                   gate = NULL, error_code = NULL, error_message = NULL, updated_at = ?2
                 WHERE id = ?1",
            )?;
            for (id, code) in &ids {
                let message = format!(
                    "requeued by {} (was {}{})",
                    r.by,
                    r.status.as_str(),
                    code.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
                );
                history.execute(params![id, now_ms, code, message])?;
                release.execute(params![id, now_ms])?;
            }
            if !ids.is_empty() {
                c.execute(
                    "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = ?2
                     WHERE id = ?1 AND state = 'completed'",
                    params![campaign_id, now_ms],
                )?;
            }
            Ok(ids.len() as u64)
        })
        .await
    }
}
