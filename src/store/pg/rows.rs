//! Row-level helpers (PostgreSQL twins of `store::rows`): decoding contacts and result rows,
//! and intake's idempotent insert.

use tokio_postgres::Row;

use crate::contact::{NewContact, Overrides, ResultRow, Status};
use crate::store::{DueContact, IntakeCounts, StoreError};

pub(super) const DUE_COLUMNS: &str =
    "id, campaign_id, callee, overrides, attempts, reschedules, line";

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
        line: r.try_get::<_, i64>(6)?.max(0) as u64,
    })
}

/// A result row from the columns of `store::rows::RESULT_COLUMNS` (the same query text runs on
/// both stores).
pub(super) fn result_row(r: &Row) -> Result<ResultRow, StoreError> {
    let status: String = r.try_get(1)?;
    let status: Status = status.parse().map_err(StoreError::Other)?;
    let updated_ms: i64 = r.try_get(9)?;
    let updated_at = crate::times::rfc3339_millis(updated_ms);
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
        dials: r.try_get::<_, i64>(17)?.max(0) as u32,
        first_dialled_at: r
            .try_get::<_, Option<i64>>(18)?
            .map(crate::times::rfc3339_millis)
            .unwrap_or_default(),
    })
}

/// Intake of one batch (see `store::rows::insert_contacts`), inside the caller's transaction:
/// one multi-row insert for the batch (rows in line order, so of two rows with one callee the
/// first is the one dialled), then one for the repeats of a callee already in the campaign.
pub(super) async fn insert_contacts(
    c: &deadpool_postgres::Transaction<'_>,
    campaign_id: i64,
    rows: &[NewContact],
    now_ms: i64,
) -> Result<IntakeCounts, StoreError> {
    let mut counts = IntakeCounts::default();
    let mut lines = Vec::with_capacity(rows.len());
    let mut callees = Vec::with_capacity(rows.len());
    let mut ext_ids = Vec::with_capacity(rows.len());
    let mut overrides = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut codes: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut messages: Vec<Option<String>> = Vec::with_capacity(rows.len());
    for row in rows {
        lines.push(row.line as i64);
        callees.push(row.callee.as_str());
        ext_ids.push(row.ext_id.as_deref());
        overrides.push(if row.overrides.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&row.overrides)
                    .map_err(|e| StoreError::Other(e.to_string()))?,
            )
        });
        let (status, code, message) = match &row.skip_reason {
            Some(reason) if reason == crate::contact::DNC_REASON => {
                (Status::Skipped, Some("Dnc"), Some(reason.clone()))
            }
            Some(reason) => (Status::Skipped, Some("Invalid"), Some(reason.clone())),
            None => (Status::Pending, None, None),
        };
        statuses.push(status.as_str());
        codes.push(code);
        messages.push(message);
    }
    let insert = c
        .prepare_cached(
            "INSERT INTO contacts (campaign_id, line, callee, ext_id, overrides, status, error_code,
                                   error_message, updated_at)
             SELECT $1, r.line, r.callee, r.ext_id, r.overrides, r.status, r.code, r.message, $9
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[])
                  WITH ORDINALITY AS r(line, callee, ext_id, overrides, status, code, message, i)
             ORDER BY r.i
             ON CONFLICT DO NOTHING RETURNING line, status",
        )
        .await?;
    let inserted = c
        .query(
            &insert,
            &[
                &campaign_id,
                &lines,
                &callees,
                &ext_ids,
                &overrides,
                &statuses,
                &codes,
                &messages,
                &now_ms,
            ],
        )
        .await?;
    let mut stored = std::collections::HashSet::with_capacity(inserted.len());
    for r in &inserted {
        let line: i64 = r.try_get(0)?;
        let status: &str = r.try_get(1)?;
        stored.insert(line);
        if status == Status::Skipped.as_str() {
            counts.skipped += 1;
        } else {
            counts.accepted += 1;
        }
    }
    let left: Vec<usize> = (0..rows.len())
        .filter(|&i| !stored.contains(&lines[i]))
        .collect();
    if !left.is_empty() {
        // Lines already in the store (an interrupted intake being resumed)…
        let left_lines: Vec<i64> = left.iter().map(|&i| lines[i]).collect();
        let existing: std::collections::HashSet<i64> = c
            .query(
                "SELECT line FROM contacts WHERE campaign_id = $1 AND line = ANY($2)",
                &[&campaign_id, &left_lines],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        // …and callees already in this campaign: dial them once, record the repeat.
        let repeats: Vec<usize> = left
            .into_iter()
            .filter(|&i| !existing.contains(&lines[i]))
            .collect();
        counts.already_stored += (left_lines.len() - repeats.len()) as u64;
        if !repeats.is_empty() {
            let repeat_callees: Vec<&str> = repeats.iter().map(|&i| callees[i]).collect();
            let first_lines: std::collections::HashMap<String, i64> = c
                .query(
                    "SELECT callee, line FROM contacts
                     WHERE campaign_id = $1 AND callee = ANY($2) AND status != 'skipped'",
                    &[&campaign_id, &repeat_callees],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?;
            let mut d_lines = Vec::with_capacity(repeats.len());
            let mut d_messages = Vec::with_capacity(repeats.len());
            for &i in &repeats {
                let first = first_lines.get(callees[i]).ok_or_else(|| {
                    StoreError::Other(format!(
                        "line {}: refused by the store, but no other line holds its callee",
                        lines[i]
                    ))
                })?;
                d_lines.push(lines[i]);
                d_messages.push(format!("duplicate of line {first}"));
            }
            let pick = |v: &[Option<&str>]| -> Vec<Option<String>> {
                repeats.iter().map(|&i| v[i].map(str::to_string)).collect()
            };
            let d_callees: Vec<&str> = repeats.iter().map(|&i| callees[i]).collect();
            let d_ext = pick(&ext_ids);
            let d_overrides: Vec<Option<String>> =
                repeats.iter().map(|&i| overrides[i].clone()).collect();
            let n = c
                .execute(
                    "INSERT INTO contacts (campaign_id, line, callee, ext_id, overrides, status,
                                           error_code, error_message, updated_at)
                     SELECT $1, r.line, r.callee, r.ext_id, r.overrides, 'skipped', 'Duplicate',
                            r.message, $7
                     FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                          AS r(line, callee, ext_id, overrides, message)",
                    &[
                        &campaign_id,
                        &d_lines,
                        &d_callees,
                        &d_ext,
                        &d_overrides,
                        &d_messages,
                        &now_ms,
                    ],
                )
                .await?;
            counts.duplicates += n;
            counts.skipped += n;
        }
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
