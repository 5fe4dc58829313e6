//! A campaign's outcomes over time: calls by the minute they ended and outcome class, read from
//! `outcome_minutes` (schema 16, kept by triggers on `outcomes`), one row per minute and class
//! with calls: as cheap for a campaign of 1 000 000 contacts as for one of 10.

use rusqlite::{params, OptionalExtension};

use super::{pg, Store, StoreError};

/// Calls of one outcome class that ended in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeMinute {
    /// Unix minute (unix seconds / 60).
    pub minute: i64,
    pub class: String,
    pub calls: u64,
}

impl Store {
    /// The calls of `campaign_id` that ended in the minutes `from_minute..to_minute` (unix
    /// minutes, `to` excluded), by minute and class, oldest first. Empty on a store of an older
    /// build that keeps no such counts.
    pub async fn outcome_minutes(
        &self,
        campaign_id: i64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<OutcomeMinute>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::outcome_minutes(pg, campaign_id, from_minute, to_minute).await;
        }
        self.call(move |c| {
            let kept = c
                .prepare_cached(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcome_minutes'",
                )?
                .query_row([], |_| Ok(()))
                .optional()?
                .is_some();
            if !kept {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare_cached(
                "SELECT minute, class, n FROM outcome_minutes
                 WHERE campaign_id = ?1 AND minute >= ?2 AND minute < ?3 AND n > 0
                 ORDER BY minute, class",
            )?;
            let rows = stmt.query_map(params![campaign_id, from_minute, to_minute], |r| {
                Ok(OutcomeMinute {
                    minute: r.get(0)?,
                    class: r.get(1)?,
                    calls: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r?);
            }
            Ok(out)
        })
        .await
    }
}
