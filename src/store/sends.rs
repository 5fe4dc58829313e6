//! When the requests of the API actions other than CreateAIAgentCall left (DescribeTelCdr's
//! outcome queries): each action's limiter seeds its window from them after a restart, as the
//! dialler's seeds from the attempts ([`Store::recent_sends`]). Written down before the
//! request leaves, its real departure after: a process killed in between leaves a row without
//! one, which counts as late as the request can have left. Rows older than a minute are of no
//! use to a one-second window and are deleted as new ones are written.

use rusqlite::params;

use super::window::Slot;
use super::{pg, Store, StoreError};

/// How long a send is kept: far longer than any window, and than a request can take to leave
/// after it was written down.
const KEEP_MS: i64 = 60_000;

impl Store {
    /// A request of `action` is about to leave (written before its limiter's slot is taken):
    /// returns its row for [`Store::sent`].
    pub async fn sending(&self, action: &str, started_at_ms: i64) -> Result<i64, StoreError> {
        Ok(self.sending_reserved(action, started_at_ms).await?.0)
    }

    /// [`Store::sending`], with the request's slot in `action`'s window when the store shares it
    /// ([`Store::share_window`]): reserved in the transaction that writes the row, or refused
    /// with [`StoreError::WindowFull`] and nothing written.
    pub async fn sending_reserved(
        &self,
        action: &str,
        started_at_ms: i64,
    ) -> Result<(i64, Option<Slot>), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::sends::sending(pg, action.to_string(), started_at_ms).await;
        }
        let action = action.to_string();
        self.call(move |c| {
            c.prepare_cached("DELETE FROM sends WHERE action = ?1 AND started_at < ?2")?
                .execute(params![action, started_at_ms - KEEP_MS])?;
            c.prepare_cached("INSERT INTO sends (action, started_at) VALUES (?1, ?2)")?
                .execute(params![action, started_at_ms])?;
            Ok((c.last_insert_rowid(), None))
        })
        .await
    }

    /// The request of row `id` left at `sent_at_ms`, or never reached a connection (`None`:
    /// it is no send, the row goes).
    pub async fn sent(&self, id: i64, sent_at_ms: Option<i64>) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::sends::sent(pg, id, sent_at_ms).await;
        }
        self.call(move |c| {
            match sent_at_ms {
                Some(at) => c
                    .prepare_cached("UPDATE sends SET sent_at = ?2 WHERE id = ?1")?
                    .execute(params![id, at])?,
                None => c
                    .prepare_cached("DELETE FROM sends WHERE id = ?1")?
                    .execute([id])?,
            };
            Ok(())
        })
        .await
    }

    /// When the latest `n` requests of `action` left (unix ms, newest first). One written down
    /// and never told its departure (the process stopped first) may have left at any moment up
    /// to now: it counts as `now_ms`, never earlier than the real send.
    pub async fn recent_action_sends(
        &self,
        action: &str,
        n: usize,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::sends::recent_action_sends(pg, action.to_string(), n, now_ms).await;
        }
        let action = action.to_string();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT COALESCE(sent_at, MAX(?3, started_at)) AS t FROM sends
                 WHERE action = ?1 AND started_at >= ?3 - ?4
                 ORDER BY t DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![action, n as i64, now_ms, KEEP_MS], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
