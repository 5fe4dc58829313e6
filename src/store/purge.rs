//! Deleting a finished campaign's personal data: its contacts, their attempts, dial history and
//! call outcomes, and its inbox records (`purge`, `[store] retain`). The campaign's row stays (name, state,
//! `purged_at`, its waiting sums) without the variables of its settings, so `status`, `report`
//! and the API still show what ran and when it was purged.
//!
//! The store runs with `secure_delete`, so deleted rows are overwritten in the file, and
//! [`checkpoint`] moves the WAL's copies of the old pages into the file and empties it: after
//! both, the numbers are gone from the store's bytes, not only from its tables.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

use super::{pg, Store, StoreError};

/// What a purge found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOutcome {
    Purged(PurgeCounts),
    /// Contacts still waiting for a call or a reply (a campaign must be finished or cancelled,
    /// and its replies in flight recorded).
    Unfinished {
        pending: u64,
        in_flight: u64,
    },
    /// Its calls are still in the per-person history (`min_gap`, `max_per_day` across
    /// campaigns): forgetting them could let another campaign call these people sooner.
    DialsNeeded {
        dials: u64,
        newest_at: i64,
    },
    /// Requests whose reply was lost (or tries that failed with `InternalError*`) are still
    /// being looked up in the call records: purging would delete the attempts and dial history
    /// the lookup resolves (a call it finds counts for the per-person gap).
    LookupsPending {
        lookups: u64,
    },
    /// Purged before, at this time (unix ms).
    AlreadyPurged(i64),
}

/// The campaign's open lookups in the call records (lost replies, failed tries' retry checks).
const CAMPAIGN_LOOKUPS: &str = "SELECT COUNT(*) FROM outcome_checks
     WHERE kind IN ('reconcile', 'retry_check')
       AND contact_id IN (SELECT id FROM contacts WHERE campaign_id = ?1)";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub contacts: u64,
    pub attempts: u64,
    pub dials: u64,
    pub inbox_files: u64,
}

const CAMPAIGN_ATTEMPTS: &str =
    "SELECT a.id FROM attempts a JOIN contacts k ON k.id = a.contact_id WHERE k.campaign_id = ?1";

fn purge(
    c: &Connection,
    campaign_id: i64,
    forget_dials: bool,
    now_ms: i64,
) -> Result<PurgeOutcome, StoreError> {
    let (state, purged_at, settings): (String, Option<i64>, Option<String>) = c
        .query_row(
            "SELECT state, purged_at, settings FROM campaigns WHERE id = ?1",
            [campaign_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::Other(format!("no campaign {campaign_id}")))?;
    if let Some(at) = purged_at {
        return Ok(PurgeOutcome::AlreadyPurged(at));
    }
    let (pending, in_flight): (i64, i64) = c.query_row(
        "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'in_flight'), 0)
         FROM contacts WHERE campaign_id = ?1",
        [campaign_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if in_flight > 0 || (pending > 0 && state != "cancelled") {
        return Ok(PurgeOutcome::Unfinished {
            pending: pending as u64,
            in_flight: in_flight as u64,
        });
    }
    let lookups: i64 = c.query_row(CAMPAIGN_LOOKUPS, [campaign_id], |r| r.get(0))?;
    if lookups > 0 {
        return Ok(PurgeOutcome::LookupsPending {
            lookups: lookups as u64,
        });
    }
    let (dials, newest_at): (i64, Option<i64>) = c.query_row(
        &format!("SELECT COUNT(*), MAX(at) FROM dials WHERE attempt_id IN ({CAMPAIGN_ATTEMPTS})"),
        [campaign_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if dials > 0 && !forget_dials {
        return Ok(PurgeOutcome::DialsNeeded {
            dials: dials as u64,
            newest_at: newest_at.unwrap_or_default(),
        });
    }
    let dials = c.execute(
        &format!("DELETE FROM dials WHERE attempt_id IN ({CAMPAIGN_ATTEMPTS})"),
        [campaign_id],
    )? as u64;
    // What the call records said about its sessions, and the checks still waiting for them.
    // What the AI agent learned about them, and the checks still waiting for it (the account's
    // own do-not-call list is the account's, not the campaign's: it stays).
    for table in [
        "outcome_checks",
        "outcomes",
        "tag_checks",
        "session_tags",
        "session_analysis",
    ] {
        c.execute(
            &format!(
                "DELETE FROM {table}
                 WHERE contact_id IN (SELECT id FROM contacts WHERE campaign_id = ?1)"
            ),
            [campaign_id],
        )?;
    }
    c.execute(
        "DELETE FROM campaign_tag_names WHERE campaign_id = ?1",
        [campaign_id],
    )?;
    let attempts = c.execute(
        "DELETE FROM attempts WHERE contact_id IN (SELECT id FROM contacts WHERE campaign_id = ?1)",
        [campaign_id],
    )? as u64;
    let contacts = c.execute("DELETE FROM contacts WHERE campaign_id = ?1", [campaign_id])? as u64;
    let inbox_files = c.execute(
        "DELETE FROM inbox_files WHERE campaign_id = ?1",
        [campaign_id],
    )? as u64;
    // Variables may name people (an ad-hoc call's `name`); the rest of the settings (zone,
    // window, rate) is kept for the report.
    let settings = settings.map(|s| match serde_json::from_str::<serde_json::Value>(&s) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("variables");
            serde_json::Value::Object(m).to_string()
        }
        _ => "{}".to_string(),
    });
    c.execute(
        "UPDATE campaigns SET purged_at = ?2, settings = ?3, updated_at = ?2 WHERE id = ?1",
        params![campaign_id, now_ms, settings],
    )?;
    Ok(PurgeOutcome::Purged(PurgeCounts {
        contacts,
        attempts,
        dials,
        inbox_files,
    }))
}

impl Store {
    /// Delete campaign `campaign_id`'s contacts, attempts, dial history and inbox records, in
    /// one transaction, when it is finished (or cancelled) and, unless `forget_dials`, none of
    /// its calls is still in the per-person history. Call [`Store::checkpoint`] after it.
    pub async fn purge_campaign(
        &self,
        campaign_id: i64,
        forget_dials: bool,
        now_ms: i64,
    ) -> Result<PurgeOutcome, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::purge::purge_campaign(pg, campaign_id, forget_dials, now_ms).await;
        }
        self.call(move |c| purge(c, campaign_id, forget_dials, now_ms))
            .await
    }

    /// Campaigns whose contacts can go under `[store] retain`: not purged, every contact final,
    /// and last touched (the campaign or any of its contacts) before `before_ms`.
    pub async fn finished_before(&self, before_ms: i64) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::purge::finished_before(pg, before_ms).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT g.id FROM campaigns g
                 WHERE g.purged_at IS NULL AND g.intake_done = 1 AND g.updated_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = g.id
                                     AND (k.status IN ('pending', 'in_flight')
                                          OR k.updated_at >= ?1))
                 ORDER BY g.id",
            )?;
            let rows = stmt.query_map([before_ms], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .await
    }

    /// Whether another campaign not yet purged reads its contacts from `source` (uploads are
    /// content-addressed: two campaigns of the same file share one).
    pub async fn source_shared(&self, campaign_id: i64, source: &str) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::purge::source_shared(pg, campaign_id, source.to_string()).await;
        }
        let source = source.to_string();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) > 0 FROM campaigns
                 WHERE source = ?2 AND id != ?1 AND purged_at IS NULL",
                params![campaign_id, source],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Copy the WAL into the store's file and empty it, so deleted rows leave no copy behind.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::purge::checkpoint(pg).await;
        }
        let path = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || checkpoint(&path))
            .await
            .map_err(|e| StoreError::Other(format!("checkpoint: {e}")))?
    }
}

/// [`Store::checkpoint`] on a connection of its own: the store thread's connection is inside a
/// transaction whenever it works, and a checkpoint cannot run in one.
fn checkpoint(path: &Path) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        return Err(StoreError::Other(
            "checkpoint: a reader held the WAL; deleted rows may stay in it until the next checkpoint"
                .into(),
        ));
    }
    Ok(())
}
