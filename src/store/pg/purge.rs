//! Deleting a finished campaign's personal data (PostgreSQL twin of `store::purge`), in one
//! transaction with the campaign's row locked. PostgreSQL keeps deleted rows' bytes until
//! VACUUM reclaims them: [`checkpoint`] vacuums the tables a purge touches (the database's own
//! WAL archives and backups are the operator's to expire).

use super::Pg;
use crate::store::{PurgeCounts, PurgeOutcome, StoreError};

const CAMPAIGN_ATTEMPTS: &str =
    "SELECT a.id FROM attempts a JOIN contacts k ON k.id = a.contact_id WHERE k.campaign_id = $1";

pub async fn purge_campaign(
    pg: &Pg,
    campaign_id: i64,
    forget_dials: bool,
    now_ms: i64,
) -> Result<PurgeOutcome, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT state, purged_at, settings FROM campaigns WHERE id = $1 FOR UPDATE",
            &[&campaign_id],
        )
        .await?
    else {
        return Err(StoreError::Other(format!("no campaign {campaign_id}")));
    };
    let state: String = row.try_get(0)?;
    let purged_at: Option<i64> = row.try_get(1)?;
    let settings: Option<String> = row.try_get(2)?;
    if let Some(at) = purged_at {
        return Ok(PurgeOutcome::AlreadyPurged(at));
    }
    let open = tx
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE status = 'pending'),
                    COUNT(*) FILTER (WHERE status = 'in_flight')
             FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )
        .await?;
    let (pending, in_flight): (i64, i64) = (open.try_get(0)?, open.try_get(1)?);
    if in_flight > 0 || (pending > 0 && state != "cancelled") {
        return Ok(PurgeOutcome::Unfinished {
            pending: pending as u64,
            in_flight: in_flight as u64,
        });
    }
    let lookups: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM outcome_checks
             WHERE kind IN ('reconcile', 'retry_check')
               AND contact_id IN (SELECT id FROM contacts WHERE campaign_id = $1)",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    if lookups > 0 {
        return Ok(PurgeOutcome::LookupsPending {
            lookups: lookups as u64,
        });
    }
    let dials = tx
        .query_one(
            &format!(
                "SELECT COUNT(*), MAX(at) FROM dials WHERE attempt_id IN ({CAMPAIGN_ATTEMPTS})"
            ),
            &[&campaign_id],
        )
        .await?;
    let (dials, newest_at): (i64, Option<i64>) = (dials.try_get(0)?, dials.try_get(1)?);
    if dials > 0 && !forget_dials {
        return Ok(PurgeOutcome::DialsNeeded {
            dials: dials as u64,
            newest_at: newest_at.unwrap_or_default(),
        });
    }
    let dials = tx
        .execute(
            &format!("DELETE FROM dials WHERE attempt_id IN ({CAMPAIGN_ATTEMPTS})"),
            &[&campaign_id],
        )
        .await?;
    for table in ["outcome_checks", "outcomes"] {
        tx.execute(
            &format!(
                "DELETE FROM {table}
                 WHERE contact_id IN (SELECT id FROM contacts WHERE campaign_id = $1)"
            ),
            &[&campaign_id],
        )
        .await?;
    }
    let attempts = tx
        .execute(
            "DELETE FROM attempts
             WHERE contact_id IN (SELECT id FROM contacts WHERE campaign_id = $1)",
            &[&campaign_id],
        )
        .await?;
    let contacts = tx
        .execute(
            "DELETE FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )
        .await?;
    let inbox_files = tx
        .execute(
            "DELETE FROM inbox_files WHERE campaign_id = $1",
            &[&campaign_id],
        )
        .await?;
    // Variables may name people; the rest of the settings is kept for the report.
    let settings = settings.map(|s| match serde_json::from_str::<serde_json::Value>(&s) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("variables");
            serde_json::Value::Object(m).to_string()
        }
        _ => "{}".to_string(),
    });
    tx.execute(
        "UPDATE campaigns SET purged_at = $2, settings = $3, updated_at = $2 WHERE id = $1",
        &[&campaign_id, &now_ms, &settings],
    )
    .await?;
    tx.commit().await?;
    Ok(PurgeOutcome::Purged(PurgeCounts {
        contacts,
        attempts,
        dials,
        inbox_files,
    }))
}

pub async fn finished_before(pg: &Pg, before_ms: i64) -> Result<Vec<i64>, StoreError> {
    let c = pg.client().await?;
    let found = c
        .query(
            "SELECT g.id FROM campaigns g
             WHERE g.purged_at IS NULL AND g.intake_done AND g.updated_at < $1
               AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = g.id
                                 AND (k.status IN ('pending', 'in_flight')
                                      OR k.updated_at >= $1))
             ORDER BY g.id",
            &[&before_ms],
        )
        .await?;
    found.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn source_shared(pg: &Pg, campaign_id: i64, source: String) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    Ok(c.query_one(
        "SELECT COUNT(*) > 0 FROM campaigns
         WHERE source = $2 AND id != $1 AND purged_at IS NULL",
        &[&campaign_id, &source],
    )
    .await?
    .try_get(0)?)
}

/// VACUUM the tables a purge deletes from, so their dead rows' space is reclaimed.
pub async fn checkpoint(pg: &Pg) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.batch_execute("VACUUM dials, outcome_checks, outcomes, attempts, contacts, inbox_files")
        .await?;
    Ok(())
}
