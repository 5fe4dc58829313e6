//! A campaign's contacts a page at a time, for the console and `GET /v1/campaigns/{id}/contacts`.
//!
//! Keyset pagination on the file line: a page is an index range, never an `OFFSET`, so page
//! 20 000 of a million-row campaign costs what page 1 does. A status filter reads the
//! `(campaign_id, status, line)` index. A search by number cannot use an index (it matches
//! anywhere in the number), so each page examines at most [`SEARCH_WINDOW`] lines and says where
//! to go on: the store thread never scans a million rows for one request.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};
use crate::contact::{Overrides, Status};

/// Lines examined by one page of a search by number.
pub const SEARCH_WINDOW: u64 = 20_000;

/// What a page is limited to.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub status: Option<Status>,
    /// Digits that must appear in the (normalised) number.
    pub digits: Option<String>,
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
        self.call(move |c| {
            let mut sql = String::from(
                "SELECT line, callee, ext_id, overrides, status, attempts, next_at, gate,
                        session_id, error_code, error_message, updated_at
                 FROM contacts WHERE campaign_id = ?1 AND line > ?2",
            );
            // ?3 status (or NULL), ?4 digits (or NULL), ?5 last line of the window, ?6 limit.
            if filter.status.is_some() {
                sql.push_str(" AND status = ?3");
            } else {
                sql.push_str(" AND ?3 IS NULL");
            }
            let window_end = match &filter.digits {
                Some(_) => {
                    sql.push_str(" AND line <= ?5 AND instr(callee, ?4) > 0");
                    after.saturating_add(SEARCH_WINDOW)
                }
                None => {
                    sql.push_str(" AND ?4 IS NULL AND ?5 IS NOT NULL");
                    u64::MAX
                }
            };
            sql.push_str(" ORDER BY line LIMIT ?6");
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                campaign_id,
                after as i64,
                filter.status.map(Status::as_str),
                filter.digits,
                window_end.min(i64::MAX as u64) as i64,
                (limit + 1) as i64,
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
                    error_code: r.get(9)?,
                    error_message: r.get(10)?,
                    updated_at: r.get(11)?,
                });
            }
            let next_after = if contacts.len() > limit {
                contacts.truncate(limit);
                contacts.last().map(|r| r.line)
            } else if filter.digits.is_some() {
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
