//! Read-only views for operators (PostgreSQL twins of `store::detail`): one contact with every
//! attempt, results in pages, the open ad-hoc call to a number.

use tokio_postgres::Row;

use super::queue::dollars;
use super::{rows, Pg};
use crate::contact::ResultRow;
use crate::store::rows::{RESULT_COLUMNS, RESULT_FROM};
use crate::store::{AttemptRecord, ContactDetail, StoreError};

fn detail_row(r: &Row) -> Result<ContactDetail, StoreError> {
    Ok(ContactDetail {
        id: r.try_get(0)?,
        campaign_id: r.try_get(1)?,
        line: r.try_get(2)?,
        callee: r.try_get(3)?,
        ext_id: r.try_get(4)?,
        status: r.try_get(5)?,
        attempts_used: r.try_get(6)?,
        reschedules: r.try_get(7)?,
        next_at: r.try_get(8)?,
        session_id: r.try_get(9)?,
        error_code: r.try_get(10)?,
        error_message: r.try_get(11)?,
        gate: r.try_get(12)?,
        attempts: Vec::new(),
        dials: 0,
        first_dialled_at: None,
    })
}

pub async fn contact_detail(
    pg: &Pg,
    campaign_id: i64,
    callee: String,
) -> Result<Option<ContactDetail>, StoreError> {
    let c = pg.client().await?;
    let sql = "SELECT id, campaign_id, line, callee, ext_id, status, attempts, reschedules,
                      next_at, session_id, error_code, error_message, gate
               FROM contacts WHERE campaign_id = $1 AND callee = $2";
    // A dialable row wins over skipped duplicates of it.
    let mut found = c
        .query_opt(
            &format!("{sql} AND status != 'skipped'"),
            &[&campaign_id, &callee],
        )
        .await?;
    if found.is_none() {
        found = c
            .query_opt(
                &format!("{sql} ORDER BY line LIMIT 1"),
                &[&campaign_id, &callee],
            )
            .await?;
    }
    let Some(row) = found else {
        return Ok(None);
    };
    let mut d = detail_row(&row)?;
    let attempts = c
        .query(
            "SELECT n, started_at, sent_at, finished_at, outcome, code, message, session_id,
                    caller
             FROM attempts WHERE contact_id = $1 ORDER BY n",
            &[&d.id],
        )
        .await?;
    d.attempts = attempts
        .iter()
        .map(|r| {
            Ok(AttemptRecord {
                n: r.try_get(0)?,
                started_at: r.try_get(1)?,
                sent_at: r.try_get(2)?,
                finished_at: r.try_get(3)?,
                outcome: r.try_get(4)?,
                code: r.try_get(5)?,
                message: r.try_get(6)?,
                session_id: r.try_get(7)?,
                caller: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The calls created or maybe created (as `store::detail` counts them on SQLite).
    let dialled = d.attempts.iter().filter(|a| match a.outcome.as_deref() {
        Some("placed") => true,
        Some("in_doubt") => a.code.as_deref() != Some("NoCallRecord"),
        _ => false,
    });
    d.dials = dialled.clone().count() as i64;
    d.first_dialled_at = dialled.map(|a| a.sent_at.unwrap_or(a.started_at)).min();
    Ok(Some(d))
}

pub async fn results_page(
    pg: &Pg,
    campaign_id: i64,
    after_line: u64,
    limit: usize,
) -> Result<Vec<ResultRow>, StoreError> {
    let c = pg.client().await?;
    let sql = dollars(&format!(
        "SELECT {RESULT_COLUMNS} FROM {RESULT_FROM}
         WHERE k.campaign_id = ?1 AND k.line > ?2 ORDER BY k.line LIMIT ?3"
    ));
    let stmt = c.prepare_cached(&sql).await?;
    let found = c
        .query(
            &stmt,
            &[&campaign_id, &(after_line as i64), &(limit as i64)],
        )
        .await?;
    found.iter().map(rows::result_row).collect()
}

pub async fn open_call_to(pg: &Pg, callee: String) -> Result<Option<i64>, StoreError> {
    let c = pg.client().await?;
    c.query_opt(
        "SELECT k.campaign_id FROM campaigns c
         JOIN contacts k ON k.campaign_id = c.id AND k.callee = $1
           AND k.status != 'skipped'
         WHERE c.name LIKE 'call-%'
           AND k.status IN ('pending', 'in_flight') LIMIT 1",
        &[&callee],
    )
    .await?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

/// [`results_page`], each row with its extra cells (see `ResultExtras`), read in one snapshot.
pub async fn results_page_with(
    pg: &Pg,
    campaign_id: i64,
    after_line: u64,
    limit: usize,
    extras: crate::store::ResultExtras,
) -> Result<Vec<(ResultRow, Vec<String>)>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let sql = dollars(&format!(
        "SELECT {RESULT_COLUMNS}, k.id AS extras_contact_id FROM {RESULT_FROM}
         WHERE k.campaign_id = ?1 AND k.line > ?2 ORDER BY k.line LIMIT ?3"
    ));
    let stmt = tx.prepare_cached(&sql).await?;
    let found = tx
        .query(
            &stmt,
            &[&campaign_id, &(after_line as i64), &(limit as i64)],
        )
        .await?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        let cells = if extras.is_empty() {
            Vec::new()
        } else {
            let contact_id: i64 = r.try_get("extras_contact_id")?;
            super::tags::extra_cells(&tx, contact_id, &extras.tags, extras.analysis).await?
        };
        out.push((rows::result_row(r)?, cells));
    }
    tx.commit().await?;
    Ok(out)
}
