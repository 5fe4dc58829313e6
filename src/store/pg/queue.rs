//! The queue (PostgreSQL twins of the methods in `store/mod.rs`): intake, due contacts, an
//! attempt written down before its request leaves and finished with its contact's release,
//! settling in-doubt attempts, counts and result rows.

use std::collections::{BTreeMap, HashSet};

use super::{rows, Pg};
use crate::contact::{NewContact, ResultRow, Status};
use crate::store::rows::{RESULT_COLUMNS, RESULT_FROM};
use crate::store::window::Begun;
use crate::store::{AttemptOutcome, DueContact, IntakeCounts, PersonGuard, StoreError};

/// `?N` placeholders (SQLite) as `$N` (PostgreSQL), for query text shared by both stores.
pub(super) fn dollars(sql: &str) -> String {
    sql.replace('?', "$")
}

pub async fn insert_contacts(
    pg: &Pg,
    campaign_id: i64,
    rows: Vec<NewContact>,
    now_ms: i64,
) -> Result<IntakeCounts, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let counts = rows::insert_contacts(&tx, campaign_id, &rows, now_ms).await?;
    tx.commit().await?;
    Ok(counts)
}

pub async fn settle_in_flight(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "UPDATE attempts SET outcome = 'in_doubt', finished_at = $2
         WHERE outcome IS NULL AND contact_id IN
           (SELECT id FROM contacts WHERE campaign_id = $1 AND status = 'in_flight')",
        &[&campaign_id, &now_ms],
    )
    .await?;
    let n = tx
        .execute(
            "UPDATE contacts SET status = 'unknown', error_code = 'InDoubt',
               error_message = 'the dialer stopped before the reply arrived; the call may have been placed',
               updated_at = $2
             WHERE campaign_id = $1 AND status = 'in_flight'",
            &[&campaign_id, &now_ms],
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

pub async fn release_unsent(pg: &Pg, contact_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "DELETE FROM dials WHERE attempt_id IN
           (SELECT id FROM attempts WHERE contact_id = $1 AND outcome IS NULL)",
        &[&contact_id],
    )
    .await?;
    tx.execute(
        "UPDATE attempts SET outcome = 'not_sent', finished_at = $2
         WHERE contact_id = $1 AND outcome IS NULL",
        &[&contact_id, &now_ms],
    )
    .await?;
    let n = tx
        .execute(
            "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = $2
             WHERE id = $1 AND status = 'in_flight'",
            &[&contact_id, &now_ms],
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

pub async fn requeue_unknown(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = $2
         WHERE campaign_id = $1 AND status = 'unknown'",
        &[&campaign_id, &now_ms],
    )
    .await?)
}

pub async fn due_contacts(
    pg: &Pg,
    campaign_id: i64,
    now_ms: i64,
    limit: usize,
    exclude: HashSet<i64>,
) -> Result<Vec<DueContact>, StoreError> {
    let c = pg.client().await?;
    let want = (limit + exclude.len()) as i64;
    let mut out = Vec::with_capacity(want as usize);
    let retries = c
        .prepare_cached(&format!(
            "SELECT {} FROM contacts
             WHERE campaign_id = $1 AND status = 'pending' AND next_at > 0 AND next_at <= $2
             ORDER BY next_at, id LIMIT $3",
            rows::DUE_COLUMNS
        ))
        .await?;
    for r in c.query(&retries, &[&campaign_id, &now_ms, &want]).await? {
        out.push(rows::due_row(&r)?);
    }
    if (out.len() as i64) < want {
        let first = c
            .prepare_cached(&format!(
                "SELECT {} FROM contacts
                 WHERE campaign_id = $1 AND status = 'pending' AND next_at = 0
                 ORDER BY id LIMIT $2",
                rows::DUE_COLUMNS
            ))
            .await?;
        let more = want - out.len() as i64;
        for r in c.query(&first, &[&campaign_id, &more]).await? {
            out.push(rows::due_row(&r)?);
        }
    }
    out.retain(|d| !exclude.contains(&d.id));
    out.truncate(limit);
    Ok(out)
}

pub async fn next_due_at(pg: &Pg, campaign_id: i64) -> Result<Option<i64>, StoreError> {
    let c = pg.client().await?;
    Ok(c.query_one(
        "SELECT MIN(next_at) FROM contacts WHERE campaign_id = $1 AND status = 'pending'",
        &[&campaign_id],
    )
    .await?
    .try_get(0)?)
}

/// The attempt written down, its contact moved to `in_flight`, after the per-person check,
/// in one transaction. The contact's row is locked first (a second attempt for it waits, then
/// finds it no longer pending), then the callee's advisory lock: two campaigns (or replicas)
/// dialling one number take turns, so both cannot pass the check on the same history.
///
/// With `await_records`, refused with [`StoreError::AwaitingRecords`] while an earlier attempt
/// that failed with `InternalError*` waits for its look-up in the call records.
pub async fn begin_attempt_checked(
    pg: &Pg,
    contact_id: i64,
    started_at_ms: i64,
    caller: Option<String>,
    guard: Option<PersonGuard>,
    await_records: bool,
) -> Result<Begun, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    // Written down only while this process is the store's one writer.
    if let Some(held) = pg.writer() {
        super::writer::fence(&tx, held).await?;
    }
    let lock = tx
        .prepare_cached("SELECT callee, status FROM contacts WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&lock, &[&contact_id]).await? else {
        return Err(StoreError::NotPending(contact_id));
    };
    let callee: String = row.try_get(0)?;
    let status: String = row.try_get(1)?;
    if status != Status::Pending.as_str() {
        return Err(StoreError::NotPending(contact_id));
    }
    if await_records {
        let next: Option<i64> = tx
            .query_one(
                "SELECT MAX(sent_at) FROM outcome_checks
                 WHERE contact_id = $1 AND kind = 'retry_check'",
                &[&contact_id],
            )
            .await?
            .try_get(0)?;
        if let Some(next) = next {
            return Err(StoreError::AwaitingRecords(next));
        }
    }
    if let Some(g) = guard {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ccc-dialer callee ' || $1))",
            &[&callee],
        )
        .await?;
        let recent = super::gates::recent_dials(&tx, &callee, g.since_ms).await?;
        g.judge(contact_id, &recent, started_at_ms)?;
    }
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) + 1 FROM attempts WHERE contact_id = $1",
            &[&contact_id],
        )
        .await?
        .try_get(0)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO attempts (contact_id, n, started_at, caller) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .await?;
    let attempt_id: i64 = tx
        .query_one(&insert, &[&contact_id, &n, &started_at_ms, &caller])
        .await?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO dials (attempt_id, callee, at) VALUES ($1, $2, $3)",
        &[&attempt_id, &callee, &started_at_ms],
    )
    .await?;
    let changed = tx
        .execute(
            "UPDATE contacts SET status = 'in_flight', gate = NULL, updated_at = $2
             WHERE id = $1 AND status = 'pending'",
            &[&contact_id, &started_at_ms],
        )
        .await?;
    if changed != 1 {
        return Err(StoreError::NotPending(contact_id));
    }
    // Last before the commit: the account's window is locked from here to the commit.
    let slot = super::window::reserve(&tx, pg, crate::ccc::ACTION).await?;
    tx.commit().await?;
    Ok(Begun { n, slot })
}

pub async fn finish_attempt(
    pg: &Pg,
    contact_id: i64,
    attempt_no: i64,
    o: AttemptOutcome,
) -> Result<Option<crate::store::Arrival>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let attempt = tx
        .prepare_cached(
            "UPDATE attempts SET finished_at = $3, outcome = $4, code = $5, message = $6,
               session_id = $7, request_id = $8, sent_at = $9
             WHERE contact_id = $1 AND n = $2 RETURNING id",
        )
        .await?;
    let attempt_id: Option<i64> = tx
        .query_opt(
            &attempt,
            &[
                &contact_id,
                &attempt_no,
                &o.finished_at,
                &o.outcome,
                &o.error_code,
                &o.error_message,
                &o.session_id,
                &o.request_id,
                &o.sent_at,
            ],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let refused = o.outcome == "error"
        && !o
            .error_code
            .as_deref()
            .is_some_and(crate::policy::may_have_placed);
    if let Some(attempt_id) = attempt_id {
        if refused || o.outcome == "not_sent" {
            // The service refused it or it never left: nobody's phone rang. (An internal
            // error may have come after the call was created: its dial stays.)
            tx.execute("DELETE FROM dials WHERE attempt_id = $1", &[&attempt_id])
                .await?;
        } else if let Some(sent) = o.sent_at {
            tx.execute(
                "UPDATE dials SET at = $2 WHERE attempt_id = $1",
                &[&attempt_id, &sent],
            )
            .await?;
        }
    }
    let contact = tx
        .prepare_cached(
            "UPDATE contacts SET status = $2, attempts = $3, reschedules = $4, next_at = $5,
               session_id = COALESCE($6, session_id), request_id = COALESCE($7, request_id),
               error_code = $8, error_message = $9, updated_at = $10
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &contact,
        &[
            &contact_id,
            &o.status.as_str(),
            &(o.attempts as i64),
            &(o.reschedules as i64),
            &o.next_at,
            &o.session_id,
            &o.request_id,
            &o.error_code,
            &o.error_message,
            &o.finished_at,
        ],
    )
    .await?;
    // A push of this session that came before the reply: its record arrives now.
    let claimed = match &o.session_id {
        Some(session) => super::outcomes::claim_held_push(&tx, session, contact_id).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(claimed)
}

pub async fn counts(pg: &Pg, campaign_id: i64) -> Result<BTreeMap<Status, u64>, StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached("SELECT status, n FROM contact_counts WHERE campaign_id = $1 AND n != 0")
        .await?;
    let mut out = BTreeMap::new();
    for r in c.query(&stmt, &[&campaign_id]).await? {
        let status: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        out.insert(status.parse().map_err(StoreError::Other)?, n.max(0) as u64);
    }
    Ok(out)
}

pub async fn counts_by_code(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT status, error_code, COUNT(*) FROM contacts
             WHERE campaign_id = $1 AND error_code IS NOT NULL AND status != 'placed'
             GROUP BY status, error_code ORDER BY 3 DESC, 1, 2",
            &[&campaign_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get::<_, i64>(2)?.max(0) as u64,
            ))
        })
        .collect()
}

/// Every result row in line order with its extra cells (see `ResultExtras`), streamed (no row
/// list in memory).
pub async fn for_each_result_with<S, F>(
    pg: &Pg,
    campaign_id: i64,
    only_final: bool,
    extras: crate::store::ResultExtras,
    mut state: S,
    mut each: F,
) -> Result<(u64, S), StoreError>
where
    F: FnMut(&mut S, ResultRow, Vec<String>) -> Result<(), StoreError>,
{
    use futures_util::TryStreamExt;
    let mut c = pg.client().await?;
    // A snapshot for the whole walk, as SQLite's one transaction gives.
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let sql = dollars(&format!(
        "SELECT {RESULT_COLUMNS}, k.id AS extras_contact_id FROM {RESULT_FROM}
         WHERE k.campaign_id = ?1 ORDER BY k.line"
    ));
    let rows = tx.query_raw(&sql, [&campaign_id]).await?;
    futures_util::pin_mut!(rows);
    let mut n = 0;
    let wants_cells = extras.analysis || !extras.tags.is_empty();
    while let Some(r) = rows.try_next().await? {
        if only_final && !status_is_final(&r)? {
            continue;
        }
        let row = rows::result_row(&r)?;
        let cells = match wants_cells {
            true => {
                let contact_id: i64 = r.try_get("extras_contact_id")?;
                super::tags::extra_cells(&tx, contact_id, &extras.tags, extras.analysis).await?
            }
            false => Vec::new(),
        };
        each(&mut state, row, cells)?;
        n += 1;
    }
    tx.commit().await?;
    Ok((n, state))
}

fn status_is_final(r: &tokio_postgres::Row) -> Result<bool, StoreError> {
    let status: String = r.try_get(1)?;
    let status: Status = status.parse().map_err(StoreError::Other)?;
    Ok(status.is_final())
}

pub async fn result_of(pg: &Pg, contact_id: i64) -> Result<ResultRow, StoreError> {
    let c = pg.client().await?;
    let sql = dollars(&format!(
        "SELECT {RESULT_COLUMNS} FROM {RESULT_FROM} WHERE k.id = ?1"
    ));
    match c.query_opt(&sql, &[&contact_id]).await? {
        Some(r) => rows::result_row(&r),
        None => Err(StoreError::Other(format!("no contact {contact_id}"))),
    }
}

pub async fn recent_sends(pg: &Pg, n: usize, now_ms: i64) -> Result<Vec<i64>, StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT CASE WHEN outcome IS NULL THEN GREATEST($2, started_at)
                         ELSE COALESCE(sent_at, finished_at, started_at) END AS t
             FROM attempts
             WHERE started_at >= (SELECT COALESCE(MAX(started_at), 0) FROM attempts) - 60000
               AND COALESCE(outcome, '') NOT IN ('not_sent', 'requeued')
             ORDER BY t DESC LIMIT $1",
        )
        .await?;
    let rows = c.query(&stmt, &[&(n as i64), &now_ms]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
