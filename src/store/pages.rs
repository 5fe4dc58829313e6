//! A campaign's contacts a page at a time, for the console and `GET /v1/campaigns/{id}/contacts`.
//!
//! Keyset pagination on the file line: a page is an index range, never an `OFFSET`, so page
//! 20 000 of a million-row campaign costs what page 1 does. A status filter reads the
//! `(campaign_id, status, line)` index. A search by number cannot use an index (it matches
//! anywhere in the number), nor can a filter by call outcome (it lives with the session), so
//! such a page examines at most [`SEARCH_WINDOW`] lines and says where to go on: the store
//! thread never scans a million rows for one request.

use rusqlite::params;
use serde::Serialize;

use super::{pg, Store, StoreError};
use crate::contact::{Overrides, Status};

/// Lines examined by one page of a search by number.
pub const SEARCH_WINDOW: u64 = 20_000;

/// What a page is limited to.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub status: Option<Status>,
    /// Digits that must appear in the (normalised) number.
    pub digits: Option<String>,
    /// The outcome class of the contact's latest session (`answered`, `busy`, …).
    pub outcome: Option<String>,
}

/// One contact as a row of the contacts table (times are unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRow {
    pub line: u64,
    pub callee: String,
    pub ext_id: Option<String>,
    /// The row's `var:name`, when it has one.
    pub name: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_at: i64,
    pub gate: Option<String>,
    pub session_id: Option<String>,
    /// The outcome class of that session, once its call record is known.
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_at: i64,
}

/// A page and where the next one starts (`None`: nothing after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactsPage {
    pub contacts: Vec<ContactRow>,
    pub next_after: Option<u64>,
}

impl Store {
    /// Up to `limit` contacts after line `after`, in line order, that pass `filter`.
    pub async fn contacts_page(
        &self,
        campaign_id: i64,
        after: u64,
        filter: ContactFilter,
        limit: usize,
    ) -> Result<ContactsPage, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::pages::contacts_page(pg, campaign_id, after, filter, limit).await;
        }
        self.call(move |c| {
            let mut sql = String::from(
                "SELECT k.line, k.callee, k.ext_id, k.overrides, k.status, k.attempts, k.next_at,
                        k.gate, k.session_id, k.error_code, k.error_message, k.updated_at, o.class
                 FROM contacts k LEFT JOIN outcomes o ON o.session_id = k.session_id
                 WHERE k.campaign_id = ?1 AND k.line > ?2",
            );
            // ?3 status, ?4 digits, ?7 outcome (each NULL when not filtered), ?5 the window's
            // last line, ?6 limit.
            sql.push_str(if filter.status.is_some() {
                " AND k.status = ?3"
            } else {
                " AND ?3 IS NULL"
            });
            sql.push_str(if filter.digits.is_some() {
                " AND instr(k.callee, ?4) > 0"
            } else {
                " AND ?4 IS NULL"
            });
            sql.push_str(if filter.outcome.is_some() {
                " AND o.class = ?7"
            } else {
                " AND ?7 IS NULL"
            });
            let windowed = filter.digits.is_some() || filter.outcome.is_some();
            let window_end = if windowed {
                sql.push_str(" AND k.line <= ?5");
                after.saturating_add(SEARCH_WINDOW)
            } else {
                sql.push_str(" AND ?5 IS NOT NULL");
                u64::MAX
            };
            sql.push_str(" ORDER BY k.line LIMIT ?6");
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                campaign_id,
                after as i64,
                filter.status.map(Status::as_str),
                filter.digits,
                window_end.min(i64::MAX as u64) as i64,
                (limit + 1) as i64,
                filter.outcome,
            ])?;
            let mut contacts = Vec::with_capacity(limit + 1);
            while let Some(r) = rows.next()? {
                let overrides: Option<String> = r.get(3)?;
                let name = overrides
                    .and_then(|o| serde_json::from_str::<Overrides>(&o).ok())
                    .and_then(|o| o.variables.get("name").cloned());
                contacts.push(ContactRow {
                    line: r.get::<_, i64>(0)? as u64,
                    callee: r.get(1)?,
                    ext_id: r.get(2)?,
                    name,
                    status: r.get(4)?,
                    attempts: r.get(5)?,
                    next_at: r.get(6)?,
                    gate: r.get(7)?,
                    session_id: r.get(8)?,
                    outcome: r.get(12)?,
                    error_code: r.get(9)?,
                    error_message: r.get(10)?,
                    updated_at: r.get(11)?,
                });
            }
            let next_after = if contacts.len() > limit {
                contacts.truncate(limit);
                contacts.last().map(|r| r.line)
            } else if windowed {
                // The window ended: go on from its end while lines remain past it.
                let last: Option<i64> = c
                    .prepare_cached("SELECT MAX(line) FROM contacts WHERE campaign_id = ?1")?
                    .query_row([campaign_id], |r| r.get(0))?;
                last.filter(|&l| (l as u64) > window_end)
                    .map(|_| window_end)
            } else {
                None
            };
            Ok(ContactsPage {
                contacts,
                next_after,
            })
        })
        .await
    }
}
