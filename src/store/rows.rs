//! Row-level helpers: decoding contacts and result rows, and intake's idempotent insert.

use rusqlite::{params, Connection};

use super::{DueContact, IntakeCounts, StoreError};
use crate::contact::{NewContact, Overrides, ResultRow, Status};

pub(super) fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueContact> {
    let overrides: Option<String> = r.get(3)?;
    let overrides = match overrides {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => Overrides::default(),
    };
    Ok(DueContact {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        callee: r.get(2)?,
        overrides,
        attempts: r.get(4)?,
        reschedules: r.get(5)?,
        line: r.get::<_, i64>(6)?.max(0) as u64,
    })
}

/// The columns [`result_row`] reads, from [`RESULT_FROM`] (`k` the contact, `o` the outcome
/// of its latest session).
///
/// `dials`/`first_dialled_at` count the contact's attempts that created a call or may have
/// (`placed`, `in_doubt` unless reconciled not placed): the calls `redial.max_dials` counts (one
/// index range each; keep in step with `redials::DIALLED`).
pub(super) const RESULT_COLUMNS: &str = "k.callee, k.status, k.session_id, k.request_id,
    k.error_code, k.error_message, k.attempts, k.line, k.ext_id, k.updated_at, o.class,
    o.end_status, o.end_status_string, o.duration_s, o.answered_at, o.ended_at, o.hangup_side,
    (SELECT COUNT(*) FROM attempts a WHERE a.contact_id = k.id AND (a.outcome = 'placed'
       OR (a.outcome = 'in_doubt' AND COALESCE(a.code, '') != 'NoCallRecord'))),
    (SELECT MIN(COALESCE(a.sent_at, a.started_at)) FROM attempts a WHERE a.contact_id = k.id
       AND (a.outcome = 'placed'
            OR (a.outcome = 'in_doubt' AND COALESCE(a.code, '') != 'NoCallRecord')))";
pub(super) const RESULT_FROM: &str =
    "contacts k LEFT JOIN outcomes o ON o.session_id = k.session_id";

pub(super) fn unix_text(secs: Option<i64>) -> String {
    secs.filter(|s| *s > 0)
        .and_then(|s| s.checked_mul(1000))
        .map(crate::times::rfc3339_seconds)
        .unwrap_or_default()
}

pub(super) fn result_row(r: &rusqlite::Row<'_>, status: Status) -> Result<ResultRow, StoreError> {
    let updated_at = crate::times::rfc3339_millis(r.get(9)?);
    Ok(ResultRow {
        callee: r.get(0)?,
        // The results file knows five states: an attempt still on the wire is not final yet.
        status: match status {
            Status::InFlight => Status::Pending.as_str().to_string(),
            other => other.as_str().to_string(),
        },
        session_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        request_id: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        error_code: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        error_message: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        attempts: r.get(6)?,
        line: r.get(7)?,
        id: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        updated_at,
        outcome: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
        end_status: r
            .get::<_, Option<i64>>(11)?
            .map(|v| v.to_string())
            .unwrap_or_default(),
        end_status_string: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
        duration_s: r
            .get::<_, Option<i64>>(13)?
            .map(|v| v.to_string())
            .unwrap_or_default(),
        answered_at: unix_text(r.get(14)?),
        ended_at: unix_text(r.get(15)?),
        hangup_side: r.get::<_, Option<String>>(16)?.unwrap_or_default(),
        dials: r.get::<_, i64>(17)?.max(0) as u32,
        first_dialled_at: r
            .get::<_, Option<i64>>(18)?
            .map(crate::times::rfc3339_millis)
            .unwrap_or_default(),
    })
}

pub(super) fn insert_contacts(
    c: &Connection,
    campaign_id: i64,
    rows: &[NewContact],
    now_ms: i64,
) -> Result<IntakeCounts, StoreError> {
    let mut counts = IntakeCounts::default();
    let mut insert = c.prepare_cached(
        "INSERT INTO contacts (campaign_id, line, callee, ext_id, overrides, status, error_code,
                               error_message, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
    )?;
    let mut line_exists =
        c.prepare_cached("SELECT 1 FROM contacts WHERE campaign_id = ?1 AND line = ?2")?;
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
        let inserted = insert.execute(params![
            campaign_id,
            row.line as i64,
            row.callee,
            row.ext_id,
            overrides,
            status.as_str(),
            code,
            message,
            now_ms
        ])?;
        if inserted == 1 {
            if status == Status::Skipped {
                counts.skipped += 1;
            } else {
                counts.accepted += 1;
            }
            continue;
        }
        if line_exists.exists(params![campaign_id, row.line as i64])? {
            counts.already_stored += 1;
            continue;
        }
        // The callee is already in this campaign: dial it once, record the repeat.
        let first_line: i64 = c.query_row(
            "SELECT line FROM contacts WHERE campaign_id = ?1 AND callee = ?2 AND status != 'skipped'",
            params![campaign_id, row.callee],
            |r| r.get(0),
        )?;
        insert.execute(params![
            campaign_id,
            row.line as i64,
            row.callee,
            row.ext_id,
            overrides,
            Status::Skipped.as_str(),
            "Duplicate",
            format!("duplicate of line {first_line}"),
            now_ms
        ])?;
        counts.duplicates += 1;
        counts.skipped += 1;
    }
    // The batch's rows in `contact_counts` (status changes keep it by trigger; see schema v9).
    let mut add = c.prepare_cached(
        "INSERT INTO contact_counts (campaign_id, status, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (campaign_id, status) DO UPDATE SET n = n + excluded.n",
    )?;
    for (status, n) in [
        (Status::Pending, counts.accepted),
        (Status::Skipped, counts.skipped),
    ] {
        if n > 0 {
            add.execute(params![campaign_id, status.as_str(), n as i64])?;
        }
    }
    Ok(counts)
}
