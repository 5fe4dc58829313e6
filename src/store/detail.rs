//! Read-only views for operators: one contact with every attempt, and the results in pages
//! (so a million-row campaign streams without a million rows in memory).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::rows::{result_row, RESULT_COLUMNS, RESULT_FROM};
use super::{pg, Store, StoreError};
use crate::contact::{ResultRow, Status};

/// One attempt as the operator sees it (times are unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    pub n: i64,
    pub started_at: i64,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// `placed`, `error`, `not_sent`, `in_doubt`, `requeued` (not a request: an operator put
    /// the contact back in the queue; `message` says what it was), or `None` while the reply is
    /// awaited.
    pub outcome: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub session_id: Option<String>,
    pub caller: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactDetail {
    pub id: i64,
    pub campaign_id: i64,
    pub line: i64,
    pub callee: String,
    pub ext_id: Option<String>,
    pub status: String,
    pub attempts_used: i64,
    pub reschedules: i64,
    /// Unix ms when a pending contact is next due (0 = as soon as the rate allows).
    pub next_at: i64,
    /// Why a pending contact waits (`window_closed`, `min_gap`, `daily_cap`,
    /// `caller_cooldown`), when a calling rule holds it.
    pub gate: Option<String>,
    pub session_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Calls created for the contact (attempts placed or in doubt), redials included.
    pub dials: i64,
    /// Unix ms the first of them was sent.
    pub first_dialled_at: Option<i64>,
    pub attempts: Vec<AttemptRecord>,
}

impl Store {
    /// The contact of `campaign_id` with this (normalised) callee, and every attempt. A dialable
    /// row wins over skipped duplicates of it.
    pub async fn contact_detail(
        &self,
        campaign_id: i64,
        callee: &str,
    ) -> Result<Option<ContactDetail>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::detail::contact_detail(pg, campaign_id, callee.to_string()).await;
        }
        let callee = callee.to_string();
        self.call(move |c| {
            let sql = "SELECT id, campaign_id, line, callee, ext_id, status, attempts, reschedules,
                              next_at, session_id, error_code, error_message, gate
                       FROM contacts WHERE campaign_id = ?1 AND callee = ?2";
            let row = |r: &rusqlite::Row<'_>| {
                Ok(ContactDetail {
                    id: r.get(0)?,
                    campaign_id: r.get(1)?,
                    line: r.get(2)?,
                    callee: r.get(3)?,
                    ext_id: r.get(4)?,
                    status: r.get(5)?,
                    attempts_used: r.get(6)?,
                    reschedules: r.get(7)?,
                    next_at: r.get(8)?,
                    session_id: r.get(9)?,
                    error_code: r.get(10)?,
                    error_message: r.get(11)?,
                    gate: r.get(12)?,
                    dials: 0,
                    first_dialled_at: None,
                    attempts: Vec::new(),
                })
            };
            // The first query uses the one-dial-per-callee index; skipped rows need a scan.
            let mut found = c
                .query_row(
                    &format!("{sql} AND status != 'skipped'"),
                    params![campaign_id, callee],
                    row,
                )
                .optional()?;
            if found.is_none() {
                found = c
                    .query_row(
                        &format!("{sql} ORDER BY line LIMIT 1"),
                        params![campaign_id, callee],
                        row,
                    )
                    .optional()?;
            }
            let Some(mut d) = found else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT n, started_at, sent_at, finished_at, outcome, code, message, session_id,
                        caller
                 FROM attempts WHERE contact_id = ?1 ORDER BY n",
            )?;
            let attempts = stmt.query_map([d.id], |r| {
                Ok(AttemptRecord {
                    n: r.get(0)?,
                    started_at: r.get(1)?,
                    sent_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    outcome: r.get(4)?,
                    code: r.get(5)?,
                    message: r.get(6)?,
                    session_id: r.get(7)?,
                    caller: r.get(8)?,
                })
            })?;
            d.attempts = attempts.collect::<Result<Vec<_>, _>>()?;
            let dialled = d.attempts.iter().filter(|a| match a.outcome.as_deref() {
                Some("placed") => true,
                Some("in_doubt") => a.code.as_deref() != Some("NoCallRecord"),
                _ => false,
            });
            d.dials = dialled.clone().count() as i64;
            d.first_dialled_at = dialled.map(|a| a.sent_at.unwrap_or(a.started_at)).min();
            Ok(Some(d))
        })
        .await
    }

    /// Up to `limit` result rows after line `after_line`, in line order.
    pub async fn results_page(
        &self,
        campaign_id: i64,
        after_line: u64,
        limit: usize,
    ) -> Result<Vec<ResultRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::detail::results_page(pg, campaign_id, after_line, limit).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESULT_COLUMNS} FROM {RESULT_FROM}
                 WHERE k.campaign_id = ?1 AND k.line > ?2 ORDER BY k.line LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![campaign_id, after_line as i64, limit as i64])?;
            let mut out = Vec::with_capacity(limit);
            while let Some(r) = rows.next()? {
                let status: String = r.get(1)?;
                let st: Status = status.parse().map_err(StoreError::Other)?;
                out.push(result_row(r, st)?);
            }
            Ok(out)
        })
        .await
    }

    /// [`Store::results_page`], each row with its extra cells (see [`super::ResultExtras`]).
    pub async fn results_page_with(
        &self,
        campaign_id: i64,
        after_line: u64,
        limit: usize,
        extras: super::ResultExtras,
    ) -> Result<Vec<(ResultRow, Vec<String>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::detail::results_page_with(pg, campaign_id, after_line, limit, extras).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESULT_COLUMNS}, k.id AS extras_contact_id FROM {RESULT_FROM}
                 WHERE k.campaign_id = ?1 AND k.line > ?2 ORDER BY k.line LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![campaign_id, after_line as i64, limit as i64])?;
            let mut out = Vec::with_capacity(limit);
            while let Some(r) = rows.next()? {
                let status: String = r.get(1)?;
                let st: Status = status.parse().map_err(StoreError::Other)?;
                let cells = extras.cells(c, r.get("extras_contact_id")?)?;
                out.push((result_row(r, st)?, cells));
            }
            Ok(out)
        })
        .await
    }

    /// The ad-hoc call campaign (`call-…`) in which this callee is still pending or in flight.
    pub async fn open_call_to(&self, callee: &str) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::detail::open_call_to(pg, callee.to_string()).await;
        }
        let callee = callee.to_string();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT k.campaign_id FROM campaigns c
                 JOIN contacts k ON k.campaign_id = c.id AND k.callee = ?1
                   AND k.status != 'skipped'
                 WHERE c.name LIKE 'call-%'
                   AND k.status IN ('pending', 'in_flight') LIMIT 1",
                [callee],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}
