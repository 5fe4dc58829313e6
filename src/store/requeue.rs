//! Contacts put back in the queue: the ones a systematic error failed (the engine gives them
//! back), and the ones an operator requeues.

use rusqlite::params;

use super::{Store, StoreError};

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
}
