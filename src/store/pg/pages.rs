//! A campaign's contacts a page at a time (PostgreSQL twin of `store::pages`): keyset
//! pagination on the file line, a search window for filters no index serves.

use super::Pg;
use crate::contact::{Overrides, Status};
use crate::store::{ContactFilter, ContactRow, ContactsPage, StoreError, SEARCH_WINDOW};

pub async fn contacts_page(
    pg: &Pg,
    campaign_id: i64,
    after: u64,
    filter: ContactFilter,
    limit: usize,
) -> Result<ContactsPage, StoreError> {
    let c = pg.client().await?;
    let mut sql = String::from(
        "SELECT k.line, k.callee, k.ext_id, k.overrides, k.status, k.attempts, k.next_at,
                k.gate, k.session_id, k.error_code, k.error_message, k.updated_at, o.class
         FROM contacts k LEFT JOIN outcomes o ON o.session_id = k.session_id
         WHERE k.campaign_id = $1 AND k.line > $2",
    );
    // $3 status, $4 digits, $7 outcome (each NULL when not filtered), $5 the window's last
    // line, $6 limit.
    sql.push_str(if filter.status.is_some() {
        " AND k.status = $3"
    } else {
        " AND $3::text IS NULL"
    });
    sql.push_str(if filter.digits.is_some() {
        " AND strpos(k.callee, $4) > 0"
    } else {
        " AND $4::text IS NULL"
    });
    sql.push_str(if filter.outcome.is_some() {
        " AND o.class = $7"
    } else {
        " AND $7::text IS NULL"
    });
    let windowed = filter.digits.is_some() || filter.outcome.is_some();
    let window_end = if windowed {
        sql.push_str(" AND k.line <= $5");
        after.saturating_add(SEARCH_WINDOW)
    } else {
        sql.push_str(" AND $5::bigint IS NOT NULL");
        u64::MAX
    };
    sql.push_str(" ORDER BY k.line LIMIT $6");
    let stmt = c.prepare_cached(&sql).await?;
    let found = c
        .query(
            &stmt,
            &[
                &campaign_id,
                &(after.min(i64::MAX as u64) as i64),
                &filter.status.map(Status::as_str),
                &filter.digits,
                &(window_end.min(i64::MAX as u64) as i64),
                &((limit + 1) as i64),
                &filter.outcome,
            ],
        )
        .await?;
    let mut contacts = Vec::with_capacity(limit + 1);
    for r in &found {
        let overrides: Option<String> = r.try_get(3)?;
        let name = overrides
            .and_then(|o| serde_json::from_str::<Overrides>(&o).ok())
            .and_then(|o| o.variables.get("name").cloned());
        contacts.push(ContactRow {
            line: r.try_get::<_, i64>(0)?.max(0) as u64,
            callee: r.try_get(1)?,
            ext_id: r.try_get(2)?,
            name,
            status: r.try_get(4)?,
            attempts: r.try_get(5)?,
            next_at: r.try_get(6)?,
            gate: r.try_get(7)?,
            session_id: r.try_get(8)?,
            outcome: r.try_get(12)?,
            error_code: r.try_get(9)?,
            error_message: r.try_get(10)?,
            updated_at: r.try_get(11)?,
        });
    }
    let next_after = if contacts.len() > limit {
        contacts.truncate(limit);
        contacts.last().map(|r| r.line)
    } else if windowed {
        // The window ended: go on from its end while lines remain past it.
        let last: Option<i64> = c
            .query_one(
                "SELECT MAX(line) FROM contacts WHERE campaign_id = $1",
                &[&campaign_id],
            )
            .await?
            .try_get(0)?;
        last.filter(|&l| (l as u64) > window_end)
            .map(|_| window_end)
    } else {
        None
    };
    Ok(ContactsPage {
        contacts,
        next_after,
    })
}
