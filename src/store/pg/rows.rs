//! Row-level helpers (PostgreSQL twins of `store::rows`): decoding contacts and result rows,
//! and intake's idempotent insert.

use tokio_postgres::Row;

use crate::contact::{NewContact, Overrides, ResultRow, Status};
use crate::store::{DueContact, IntakeCounts, StoreError};

pub(super) const DUE_COLUMNS: &str = "id, campaign_id, callee, overrides, attempts, reschedules";

pub(super) fn due_row(r: &Row) -> Result<DueContact, StoreError> {
    let overrides: Option<String> = r.try_get(3)?;
    let overrides = match overrides {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Other(format!("contact overrides: {e}")))?,
        None => Overrides::default(),
    };
    Ok(DueContact {
        id: r.try_get(0)?,
        campaign_id: r.try_get(1)?,
        callee: r.try_get(2)?,
        overrides,
        attempts: r.try_get::<_, i64>(4)?.max(0) as u32,
        reschedules: r.try_get::<_, i64>(5)?.max(0) as u32,
    })
}

/// A result row from the columns of `store::rows::RESULT_COLUMNS` (the same query text runs on
/// both stores).
pub(super) fn result_row(r: &Row) -> Result<ResultRow, StoreError> {
    let status: String = r.try_get(1)?;
    let status: Status = status.parse().map_err(StoreError::Other)?;
    let updated_ms: i64 = r.try_get(9)?;
    let updated_at = chrono::DateTime::from_timestamp_millis(updated_ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let text = |i: usize| -> Result<String, StoreError> {
        Ok(r.try_get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let number = |i: usize| -> Result<String, StoreError> {
        Ok(r.try_get::<_, Option<i64>>(i)?
            .map(|v| v.to_string())
            .unwrap_or_default())
    };
    Ok(ResultRow {
        callee: r.try_get(0)?,
        // The results file knows five states: an attempt still on the wire is not final yet.
        status: match status {
            Status::InFlight => Status::Pending.as_str().to_string(),
            other => other.as_str().to_string(),
        },
        session_id: text(2)?,
        request_id: text(3)?,
        error_code: text(4)?,
        error_message: text(5)?,
        attempts: r.try_get::<_, i64>(6)?.max(0) as u32,
        line: r.try_get::<_, i64>(7)?.max(0) as u64,
        id: text(8)?,
        updated_at,
        outcome: text(10)?,
        end_status: number(11)?,
        end_status_string: text(12)?,
        duration_s: number(13)?,
        answered_at: crate::store::rows::unix_text(r.try_get(14)?),
        ended_at: crate::store::rows::unix_text(r.try_get(15)?),
        hangup_side: text(16)?,
    })
}

/// Intake of one batch (see `store::rows::insert_contacts`), inside the caller's transaction.
pub(super) async fn insert_contacts(
    c: &deadpool_postgres::Transaction<'_>,
    campaign_id: i64,
    rows: &[NewContact],
    now_ms: i64,
) -> Result<IntakeCounts, StoreError> {
    let mut counts = IntakeCounts::default();
    let insert = c
        .prepare_cached(
            "INSERT INTO contacts (campaign_id, line, callee, ext_id, overrides, status, error_code,
                                   error_message, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .await?;
    let line_exists = c
        .prepare_cached("SELECT 1 FROM contacts WHERE campaign_id = $1 AND line = $2")
        .await?;
    for row in rows {
        let overrides = if row.overrides.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&row.overrides)
                    .map_err(|e| StoreError::Other(e.to_string()))?,
            )
        };
        let (status, code, message) = match &row.skip_reason {
            Some(reason) if reason == crate::contact::DNC_REASON => {
                (Status::Skipped, Some("Dnc"), Some(reason.as_str()))
            }
            Some(reason) => (Status::Skipped, Some("Invalid"), Some(reason.as_str())),
            None => (Status::Pending, None, None),
        };
        let line = row.line as i64;
        let inserted = c
            .execute(
                &insert,
                &[
                    &campaign_id,
                    &line,
                    &row.callee,
                    &row.ext_id,
                    &overrides,
                    &status.as_str(),
                    &code,
                    &message,
                    &now_ms,
                ],
            )
            .await?;
        if inserted == 1 {
            if status == Status::Skipped {
                counts.skipped += 1;
            } else {
                counts.accepted += 1;
            }
            continue;
        }
        if c.query_opt(&line_exists, &[&campaign_id, &line])
            .await?
            .is_some()
        {
            counts.already_stored += 1;
            continue;
        }
        // The callee is already in this campaign: dial it once, record the repeat.
        let first_line: i64 = c
            .query_one(
                "SELECT line FROM contacts
                 WHERE campaign_id = $1 AND callee = $2 AND status != 'skipped'",
                &[&campaign_id, &row.callee],
            )
            .await?
            .try_get(0)?;
        let message = format!("duplicate of line {first_line}");
        c.execute(
            &insert,
            &[
                &campaign_id,
                &line,
                &row.callee,
                &row.ext_id,
                &overrides,
                &Status::Skipped.as_str(),
                &"Duplicate",
                &message,
                &now_ms,
            ],
        )
        .await?;
        counts.duplicates += 1;
        counts.skipped += 1;
    }
    // The batch's rows in `contact_counts` (status changes keep it by trigger; see the schema).
    for (status, n) in [
        (Status::Pending, counts.accepted),
        (Status::Skipped, counts.skipped),
    ] {
        if n > 0 {
            c.execute(
                "INSERT INTO contact_counts (campaign_id, status, n) VALUES ($1, $2, $3)
                 ON CONFLICT (campaign_id, status) DO UPDATE SET n = contact_counts.n + excluded.n",
                &[&campaign_id, &status.as_str(), &(n as i64)],
            )
            .await?;
        }
    }
    Ok(counts)
}
