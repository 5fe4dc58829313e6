//! What the line limiter ([`crate::lines`]) keeps in the store: each agent's learned line count
//! and hold, and holding a campaign's due contacts while its agent's lines are busy.

use rusqlite::params;

use super::{pg, Store, StoreError};
use crate::lines::Saved;

/// The gate name of contacts held because every line of their agent is busy.
pub const AGENT_LINES_BUSY: &str = "agent_lines_busy";

impl Store {
    /// Save an agent's estimate (the latest wins).
    pub async fn save_agent_lines(&self, s: Saved, now_ms: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::lines::save_agent_lines(pg, s, now_ms).await;
        }
        self.call(move |c| {
            c.prepare_cached(
                "INSERT INTO agent_lines (agent_id, learned, hold_ms, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent_id) DO UPDATE SET learned = ?2, hold_ms = ?3, updated_at = ?4",
            )?
            .execute(params![
                s.agent as i64,
                s.learned,
                (s.hold_seconds * 1000.0).round() as i64,
                now_ms
            ])?;
            Ok(())
        })
        .await
    }

    /// Every agent's saved estimate.
    pub async fn agent_lines(&self) -> Result<Vec<Saved>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::lines::agent_lines(pg).await;
        }
        self.call(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT agent_id, learned, hold_ms FROM agent_lines ORDER BY agent_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Saved {
                    agent: r.get::<_, i64>(0)? as u64,
                    learned: r.get(1)?,
                    hold_seconds: r.get::<_, i64>(2)? as f64 / 1000.0,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The campaign's contacts held for a line are due now (a call-end event freed one).
    pub async fn release_line_holds(
        &self,
        campaign_id: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::lines::release_line_holds(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE contacts SET next_at = ?2, updated_at = ?2
                     WHERE campaign_id = ?1 AND status = 'pending' AND gate = ?3 AND next_at > ?2",
                )?
                .execute(params![campaign_id, now_ms.max(1), AGENT_LINES_BUSY])?;
            Ok(n as u64)
        })
        .await
    }

    /// The pending contacts `ids` wait until `until_ms` with gate [`AGENT_LINES_BUSY`]; no
    /// attempt used. Their order is kept (due contacts are taken by due time, then id).
    /// Returns how many.
    pub async fn hold_for_lines(
        &self,
        ids: Vec<i64>,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::lines::hold_for_lines(pg, ids, until_ms, now_ms).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE contacts SET next_at = ?2, gate = ?3, updated_at = ?4
                 WHERE id = ?1 AND status = 'pending'",
            )?;
            let mut n = 0;
            for id in ids {
                n += stmt.execute(params![id, until_ms.max(1), AGENT_LINES_BUSY, now_ms])?;
            }
            Ok(n as u64)
        })
        .await
    }
}
