//! Outcome records and the schedule of checks (PostgreSQL twins of `store::outcomes`): the due
//! and overdue checks, writing records (with the redial decision, in the same transaction),
//! closing a reconciliation or a retry check, and the kept figures. Writers of one session take
//! its transaction-scoped advisory lock first (a push and a poll of one session take turns).

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::Pg;
use crate::store::{
    Arrival, DueReconcile, DueSession, OutcomeCounts, OutcomeRecord, Reconciled, RedialDecision,
    StoreError, Written, PENDING_PUSH_KEEP_MS,
};

/// SQLite's `claim_held_push`: the pushed record held for `session_id` (it came before any
/// attempt had that session), if there is one, written now for `contact_id`'s attempt through
/// [`write_record`] (its outcome, the redial decision) and no longer held. Called by the
/// transaction that gives an attempt its session, after the contact is updated.
pub async fn claim_held_push(
    tx: &Transaction<'_>,
    session_id: &str,
    contact_id: i64,
) -> Result<Option<Arrival>, StoreError> {
    // Both prepared first, then sent together: the lock goes out before the delete (pipelined
    // requests leave in the order they are polled) and one round trip serves both.
    let lock = tx.prepare_cached(SESSION_LOCK).await?;
    let take = tx
        .prepare_cached(
            "DELETE FROM pending_pushes WHERE session_id = $1
             RETURNING class, end_status, end_status_string, duration_s, ring_at, answered_at,
                       ended_at, hangup_side, sys_hangup_reason, ai_agent_id, recorded_at",
        )
        .await?;
    let (_, held) = futures_util::future::try_join(
        tx.execute(&lock, &[&session_id]),
        tx.query_opt(&take, &[&session_id]),
    )
    .await?;
    let Some(r) = held else {
        return Ok(None);
    };
    let rec = OutcomeRecord {
        session_id: session_id.to_string(),
        contact_id,
        class: r.try_get(0)?,
        end_status: r.try_get(1)?,
        end_status_string: r.try_get(2)?,
        duration_s: r.try_get(3)?,
        ring_at: r.try_get(4)?,
        answered_at: r.try_get(5)?,
        ended_at: r.try_get(6)?,
        hangup_side: r.try_get(7)?,
        sys_hangup_reason: r.try_get(8)?,
        ai_agent_id: r.try_get(9)?,
        source: "push".into(),
        recorded_at: r.try_get(10)?,
    };
    Ok(write_record(tx, &rec).await?.1)
}

pub async fn reschedule_checks(pg: &Pg, next: Vec<(i64, i64)>) -> Result<(), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE outcome_checks SET asked = 1, checks = checks + 1, next_check_at = $2
             WHERE attempt_id = $1",
        )
        .await?;
    for (attempt, at) in &next {
        tx.execute(&stmt, &[attempt, at]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Outcome figures from the kept counts (`outcome_counts`, `contact_counts`, schema 11) and
/// the campaign's open reconciliations.
pub async fn outcome_counts(pg: &Pg, campaign_id: i64) -> Result<OutcomeCounts, StoreError> {
    let mut c = pg.client().await?;
    // One snapshot for every figure, as SQLite's one transaction gives.
    let c = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut out = OutcomeCounts::default();
    for r in c
        .query(
            "SELECT class, n FROM outcome_counts WHERE campaign_id = $1 AND n > 0",
            &[&campaign_id],
        )
        .await?
    {
        out.by_class
            .insert(r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64);
    }
    let placed: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(n), 0)::bigint FROM contact_counts
             WHERE campaign_id = $1 AND status = 'placed'",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    out.awaiting = (placed.max(0) as u64).saturating_sub(out.by_class.values().sum());
    let reconciling: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
             WHERE o.kind = 'reconcile' AND k.campaign_id = $1 AND k.status = 'unknown'",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    out.reconciling = reconciling.max(0) as u64;
    if super::redials::has_policy(&c, campaign_id).await? {
        let count =
            |r: Row| -> Result<u64, StoreError> { Ok(r.try_get::<_, i64>(0)?.max(0) as u64) };
        out.reached = count(
            c.query_one(
                "SELECT COUNT(DISTINCT o.contact_id) FROM outcomes o
                   JOIN contacts k ON k.id = o.contact_id
                 WHERE o.class = 'answered' AND k.campaign_id = $1",
                &[&campaign_id],
            )
            .await?,
        )?;
        out.not_reached = count(
            c.query_one(
                "SELECT COUNT(*) FROM contacts k
                 WHERE k.campaign_id = $1
                   AND k.status NOT IN ('pending', 'in_flight', 'unknown')
                   AND EXISTS (SELECT 1 FROM outcomes o WHERE o.contact_id = k.id)
                   AND NOT EXISTS (SELECT 1 FROM outcomes o
                                   WHERE o.contact_id = k.id AND o.class = 'answered')
                   AND NOT EXISTS (SELECT 1 FROM outcome_checks oc WHERE oc.contact_id = k.id)",
                &[&campaign_id],
            )
            .await?,
        )?;
        out.redials_pending = count(
            c.query_one(
                "SELECT COUNT(*) FROM contacts
                 WHERE campaign_id = $1 AND status = 'pending' AND error_code = $2",
                &[&campaign_id, &crate::redial::CODE],
            )
            .await?,
        )?;
    }
    c.commit().await?;
    Ok(out)
}

pub async fn contact_sessions(
    pg: &Pg,
    contact_id: i64,
) -> Result<Vec<(String, Option<OutcomeRecord>)>, StoreError> {
    let c = pg.client().await?;
    let found = c
        .query(
            "SELECT a.session_id, o.class, o.end_status, o.end_status_string, o.duration_s,
                    o.ring_at, o.answered_at, o.ended_at, o.hangup_side,
                    o.sys_hangup_reason, o.ai_agent_id, o.source, o.recorded_at
             FROM attempts a LEFT JOIN outcomes o ON o.session_id = a.session_id
             WHERE a.contact_id = $1 AND a.session_id IS NOT NULL ORDER BY a.n",
            &[&contact_id],
        )
        .await?;
    found
        .iter()
        .map(|r| {
            let session: String = r.try_get(0)?;
            let class: Option<String> = r.try_get(1)?;
            let rec = match class {
                None => None,
                Some(class) => Some(OutcomeRecord {
                    session_id: session.clone(),
                    contact_id,
                    class,
                    end_status: r.try_get(2)?,
                    end_status_string: r.try_get(3)?,
                    duration_s: r.try_get(4)?,
                    ring_at: r.try_get(5)?,
                    answered_at: r.try_get(6)?,
                    ended_at: r.try_get(7)?,
                    hangup_side: r.try_get(8)?,
                    sys_hangup_reason: r.try_get(9)?,
                    ai_agent_id: r.try_get(10)?,
                    source: r.try_get(11)?,
                    recorded_at: r.try_get(12)?,
                }),
            };
            Ok((session, rec))
        })
        .collect()
}

pub async fn known_sessions(pg: &Pg, sessions: Vec<String>) -> Result<HashSet<String>, StoreError> {
    let c = pg.client().await?;
    let found = c
        .query(
            "SELECT DISTINCT session_id FROM attempts WHERE session_id = ANY($1)",
            &[&sessions],
        )
        .await?;
    found.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn requeue_not_placed(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = $2
         WHERE campaign_id = $1 AND status = 'not_placed'",
        &[&campaign_id, &now_ms],
    )
    .await?)
}

fn checks_of(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}

fn due_session(r: &Row) -> Result<DueSession, StoreError> {
    Ok(DueSession {
        attempt_id: r.try_get(0)?,
        contact_id: r.try_get(1)?,
        session_id: r.try_get(2)?,
        sent_at: r.try_get(3)?,
        checks: checks_of(r.try_get(4)?),
        due_at: r.try_get(5)?,
    })
}

/// A reconcile row of [`due_reconciles_until`]'s query (the contact's own agent, else its
/// campaign's).
fn due_reconcile(r: &Row) -> Result<DueReconcile, StoreError> {
    let overrides: Option<String> = r.try_get(4)?;
    let settings: Option<String> = r.try_get(8)?;
    let agent_override = overrides
        .and_then(|j| serde_json::from_str::<crate::contact::Overrides>(&j).ok())
        .and_then(|o| o.ai_agent_id)
        .or_else(|| {
            settings
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| v.get("ai_agent_id").and_then(|a| a.as_u64()))
        });
    Ok(DueReconcile {
        attempt_id: r.try_get(0)?,
        contact_id: r.try_get(1)?,
        campaign_id: r.try_get(2)?,
        callee: r.try_get(3)?,
        agent_override,
        sent_at: r.try_get(5)?,
        checks: checks_of(r.try_get(6)?),
        status: r.try_get(7)?,
        due_at: r.try_get(9)?,
        kind: r.try_get(10)?,
        line: r.try_get::<_, i64>(11)?.max(0) as u64,
    })
}

/// SQLite's `due_rows`: never asked and sent by `first_until`, then asked before and due by
/// `asked_until`; `sql` takes `asked`, the bound, `limit` and `first_ms` as $1..$4.
async fn due_rows<T>(
    pg: &Pg,
    sql: &str,
    (first_until, asked_until): (i64, i64),
    limit: usize,
    row: impl Fn(&Row) -> Result<T, StoreError>,
    first_ms: i64,
) -> Result<Vec<T>, StoreError> {
    let c = pg.client().await?;
    let stmt = c.prepare_cached(sql).await?;
    let mut out = Vec::new();
    for (asked, until) in [(0i64, first_until), (1, asked_until)] {
        for r in c
            .query(&stmt, &[&asked, &until, &(limit as i64), &first_ms])
            .await?
        {
            out.push(row(&r)?);
        }
    }
    Ok(out)
}

pub async fn due_sessions_until(
    pg: &Pg,
    now_ms: i64,
    first_ms: i64,
    asked_until_ms: i64,
    limit: usize,
) -> Result<Vec<DueSession>, StoreError> {
    let mut out = due_rows(
        pg,
        "SELECT attempt_id, contact_id, session_id, sent_at, checks,
                CASE WHEN asked = 0 THEN next_check_at + $4 ELSE next_check_at END
         FROM outcome_checks
         WHERE kind = 'outcome' AND asked = $1 AND next_check_at <= $2
         ORDER BY next_check_at LIMIT $3",
        (now_ms - first_ms, asked_until_ms),
        limit,
        due_session,
        first_ms,
    )
    .await?;
    out.sort_by_key(|d| (d.due_at, d.attempt_id));
    out.truncate(limit);
    out.sort_by_key(|d| (d.sent_at, d.attempt_id));
    Ok(out)
}

pub async fn due_reconciles_until(
    pg: &Pg,
    now_ms: i64,
    first_ms: i64,
    asked_until_ms: i64,
    limit: usize,
) -> Result<Vec<DueReconcile>, StoreError> {
    let mut out = due_rows(
        pg,
        "SELECT o.attempt_id, o.contact_id, k.campaign_id, k.callee, k.overrides,
                o.sent_at, o.checks, k.status, c.settings,
                CASE WHEN o.asked = 0 THEN o.next_check_at + $4 ELSE o.next_check_at END,
                o.kind, k.line
         FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
           JOIN campaigns c ON c.id = k.campaign_id
         WHERE o.kind IN ('reconcile', 'retry_check') AND o.asked = $1
           AND o.next_check_at <= $2
         ORDER BY o.next_check_at LIMIT $3",
        (now_ms - first_ms, asked_until_ms),
        limit,
        due_reconcile,
        first_ms,
    )
    .await?;
    out.sort_by_key(|d| (d.due_at, d.attempt_id));
    out.truncate(limit);
    out.sort_by_key(|d| (d.sent_at, d.attempt_id));
    Ok(out)
}

pub async fn next_check_due(pg: &Pg, first_ms: i64) -> Result<Option<i64>, StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT MIN(next_check_at) FROM outcome_checks WHERE kind = $1 AND asked = $2",
        )
        .await?;
    let mut next: Option<i64> = None;
    for kind in ["outcome", "reconcile", "retry_check"] {
        for asked in [0i64, 1] {
            let at: Option<i64> = c.query_one(&stmt, &[&kind, &asked]).await?.try_get(0)?;
            let at = at.map(|t| if asked == 0 { t + first_ms } else { t });
            next = match (next, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(next)
}

pub async fn overdue_checks(
    pg: &Pg,
    now_ms: i64,
    sessions_sent_by: i64,
    reconciles_sent_by: i64,
    limit: usize,
) -> Result<(Vec<DueSession>, Vec<i64>), StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT attempt_id, contact_id, COALESCE(session_id, ''), sent_at, checks,
                    next_check_at
             FROM outcome_checks
             WHERE kind = $1 AND asked = $2 AND next_check_at <= $3 AND sent_at <= $4
             ORDER BY next_check_at LIMIT $5",
        )
        .await?;
    let mut sessions = Vec::new();
    let mut reconciles = Vec::new();
    for (kind, by) in [
        ("outcome", sessions_sent_by),
        ("reconcile", reconciles_sent_by),
        ("retry_check", reconciles_sent_by),
    ] {
        for (asked, until) in [(0i64, by), (1, now_ms)] {
            for r in c
                .query(&stmt, &[&kind, &asked, &until, &by, &(limit as i64)])
                .await?
            {
                let r = due_session(&r)?;
                if kind == "outcome" {
                    sessions.push(r);
                } else {
                    reconciles.push(r.attempt_id);
                }
            }
        }
    }
    sessions.truncate(limit);
    reconciles.truncate(limit);
    Ok((sessions, reconciles))
}

/// What writing one record did (SQLite's `Wrote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrote {
    New,
    Corrected,
    Ignored,
    Pending,
}

/// SQLite's `write_record`, inside the caller's transaction: the record inserted (or a give-up
/// replaced by a real record, a pushed record by a polled one), the session's check removed
/// (not by a push), and the redial decision taken; a push of a session no attempt has yet is
/// kept in `pending_pushes`. The caller holds the session's lock ([`lock_sessions`]).
async fn write_record(
    tx: &Transaction<'_>,
    rec: &OutcomeRecord,
) -> Result<(Wrote, Option<Arrival>), StoreError> {
    let contact_id = if rec.contact_id > 0 {
        Some(rec.contact_id)
    } else {
        let stmt = tx
            .prepare_cached("SELECT contact_id FROM attempts WHERE session_id = $1 LIMIT 1")
            .await?;
        tx.query_opt(&stmt, &[&rec.session_id])
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
    };
    let Some(contact_id) = contact_id else {
        if rec.source != "push" {
            return Ok((Wrote::Ignored, None));
        }
        tx.execute(
            "DELETE FROM pending_pushes WHERE recorded_at < $1",
            &[&rec.recorded_at.saturating_sub(PENDING_PUSH_KEEP_MS)],
        )
        .await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO pending_pushes (session_id, class, end_status, end_status_string,
                   duration_s, ring_at, answered_at, ended_at, hangup_side, sys_hangup_reason,
                   ai_agent_id, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let kept = tx
            .execute(
                &stmt,
                &[
                    &rec.session_id,
                    &rec.class,
                    &rec.end_status,
                    &rec.end_status_string,
                    &rec.duration_s,
                    &rec.ring_at,
                    &rec.answered_at,
                    &rec.ended_at,
                    &rec.hangup_side,
                    &rec.sys_hangup_reason,
                    &rec.ai_agent_id,
                    &rec.recorded_at,
                ],
            )
            .await?;
        let wrote = if kept > 0 {
            Wrote::Pending
        } else {
            Wrote::Ignored
        };
        return Ok((wrote, None));
    };
    let stmt = tx
        .prepare_cached("SELECT class, source, recorded_at FROM outcomes WHERE session_id = $1")
        .await?;
    let before: Option<(String, String, i64)> =
        match tx.query_opt(&stmt, &[&rec.session_id]).await? {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
            None => None,
        };
    let polled = matches!(rec.source.as_str(), "poll" | "reconciled");
    let wrote = match &before {
        None => Wrote::New,
        Some((class, _, _)) if class == "no_record" && rec.class != "no_record" => Wrote::New,
        Some((_, source, _)) if source == "push" && polled => Wrote::Corrected,
        Some(_) => Wrote::Ignored,
    };
    if wrote != Wrote::Ignored {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO outcomes (session_id, contact_id, class, end_status,
                   end_status_string, duration_s, ring_at, answered_at, ended_at, hangup_side,
                   sys_hangup_reason, ai_agent_id, source, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (session_id) DO UPDATE SET class = excluded.class,
                   end_status = excluded.end_status,
                   end_status_string = excluded.end_status_string,
                   duration_s = excluded.duration_s, ring_at = excluded.ring_at,
                   answered_at = excluded.answered_at, ended_at = excluded.ended_at,
                   hangup_side = excluded.hangup_side,
                   sys_hangup_reason = excluded.sys_hangup_reason,
                   ai_agent_id = excluded.ai_agent_id, source = excluded.source,
                   recorded_at = CASE WHEN outcomes.class = 'no_record'
                                      THEN excluded.recorded_at
                                      ELSE outcomes.recorded_at END",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &rec.session_id,
                &contact_id,
                &rec.class,
                &rec.end_status,
                &rec.end_status_string,
                &rec.duration_s,
                &rec.ring_at,
                &rec.answered_at,
                &rec.ended_at,
                &rec.hangup_side,
                &rec.sys_hangup_reason,
                &rec.ai_agent_id,
                &rec.source,
                &rec.recorded_at,
            ],
        )
        .await?;
    }
    if rec.source != "push" {
        let stmt = tx
            .prepare_cached("DELETE FROM outcome_checks WHERE session_id = $1")
            .await?;
        tx.execute(&stmt, &[&rec.session_id]).await?;
    }
    let redialled = match wrote {
        Wrote::Ignored | Wrote::Pending => return Ok((wrote, None)),
        Wrote::New => matches!(
            super::redials::on_outcome(tx, contact_id, rec).await?,
            RedialDecision::Scheduled { .. }
        ),
        Wrote::Corrected => super::redials::on_correction(tx, contact_id, rec).await?,
    };
    let arrival = Arrival {
        record: OutcomeRecord {
            contact_id,
            ..rec.clone()
        },
        was: before.map(|(class, _, at)| (class, at)),
        redialled,
    };
    Ok((wrote, Some(arrival)))
}

/// Take the transaction-scoped locks of these sessions, in one order (two writers of one
/// session, a push and a poll, take turns rather than both deciding on the same `before`).
/// A session's lock: a push and the reply of its attempt take turns (see `lock_sessions`).
const SESSION_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('ccc-dialer session ' || $1))";

async fn lock_sessions(tx: &Transaction<'_>, sessions: &[&str]) -> Result<(), StoreError> {
    let mut sorted: Vec<&str> = sessions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let stmt = tx.prepare_cached(SESSION_LOCK).await?;
    for s in sorted {
        tx.execute(&stmt, &[&s]).await?;
    }
    Ok(())
}

pub async fn record_outcomes(pg: &Pg, records: Vec<OutcomeRecord>) -> Result<Written, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let sessions: Vec<&str> = records.iter().map(|r| r.session_id.as_str()).collect();
    lock_sessions(&tx, &sessions).await?;
    let mut w = Written::default();
    for rec in &records {
        let (wrote, arrival) = write_record(&tx, rec).await?;
        match wrote {
            Wrote::New => w.new.push(rec.session_id.clone()),
            Wrote::Corrected => w.corrected.push(rec.session_id.clone()),
            Wrote::Ignored => w.ignored += 1,
            Wrote::Pending => w.pending.push(rec.session_id.clone()),
        }
        if let Some(a) = arrival {
            w.redials += u64::from(a.redialled);
            w.arrivals.push(a);
        }
    }
    tx.commit().await?;
    Ok(w)
}

/// SQLite's `finish_reconcile`; returns the found record's arrival.
pub async fn finish_reconcile(
    pg: &Pg,
    attempt_id: i64,
    how: Reconciled,
    now_ms: i64,
) -> Result<Option<Arrival>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    if let Reconciled::Found(rec) = &how {
        lock_sessions(&tx, &[rec.session_id.as_str()]).await?;
    }
    // The contact's row first: a reply, a requeue or another reconciliation of it waits.
    let contact = tx
        .query_opt(
            "SELECT k.id, k.status,
                    a.n = (SELECT MAX(n) FROM attempts WHERE contact_id = k.id)
             FROM attempts a JOIN contacts k ON k.id = a.contact_id
             WHERE a.id = $1 FOR UPDATE OF k",
            &[&attempt_id],
        )
        .await?;
    let kind: Option<String> = tx
        .query_opt(
            "SELECT kind FROM outcome_checks WHERE attempt_id = $1",
            &[&attempt_id],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    tx.execute(
        "DELETE FROM outcome_checks WHERE attempt_id = $1",
        &[&attempt_id],
    )
    .await?;
    let Some(contact) = contact else {
        tx.commit().await?;
        return Ok(None);
    };
    let (contact_id, status, latest): (i64, String, bool) = (
        contact.try_get(0)?,
        contact.try_get(1)?,
        contact.try_get(2)?,
    );
    let retry = kind.as_deref() == Some("retry_check");
    let open = if retry {
        latest && (status == "pending" || status == "failed")
    } else {
        status == "unknown"
    };
    if !open {
        tx.commit().await?;
        return Ok(None);
    }
    let mut arrival = None;
    match how {
        Reconciled::Found(rec) => {
            let mut rec = *rec;
            let (attempt_message, contact_message) = if retry {
                (
                    "reconciled: the request failed with an internal error, but the call records show it created the call",
                    "reconciled: the request failed with an internal error, but the call records show the call was created (not called again)",
                )
            } else {
                (
                    "reconciled: the call records show this request created the call",
                    "reconciled: the reply was lost, the call records show the call was created",
                )
            };
            tx.execute(
                "UPDATE attempts SET outcome = 'placed', session_id = $2, message = $3
                 WHERE id = $1",
                &[&attempt_id, &rec.session_id, &attempt_message],
            )
            .await?;
            tx.execute(
                "UPDATE contacts SET status = 'placed', session_id = $2,
                   error_code = 'Reconciled', error_message = $4, next_at = 0, gate = NULL,
                   updated_at = $3
                 WHERE id = $1",
                &[&contact_id, &rec.session_id, &now_ms, &contact_message],
            )
            .await?;
            rec.contact_id = contact_id;
            // A push of this session held before: the call record read now is the authority.
            tx.execute(
                "DELETE FROM pending_pushes WHERE session_id = $1",
                &[&rec.session_id],
            )
            .await?;
            arrival = write_record(&tx, &rec).await?.1;
        }
        Reconciled::NotPlaced if retry => {
            tx.execute(
                "UPDATE contacts SET next_at = LEAST(next_at, $2), gate = NULL, updated_at = $2
                 WHERE id = $1 AND status = 'pending' AND gate = 'call_record_check'",
                &[&contact_id, &now_ms],
            )
            .await?;
        }
        Reconciled::NotPlaced => {
            tx.execute(
                "UPDATE contacts SET status = 'not_placed', error_code = 'NoCallRecord',
                   error_message = 'no call record: the request did not create a call',
                   updated_at = $2
                 WHERE id = $1",
                &[&contact_id, &now_ms],
            )
            .await?;
            tx.execute(
                "UPDATE attempts SET code = 'NoCallRecord' WHERE id = $1",
                &[&attempt_id],
            )
            .await?;
        }
        Reconciled::Ambiguous(why) if retry => {
            tx.execute(
                "UPDATE contacts SET status = 'unknown', error_message = $2, next_at = 0,
                   gate = NULL, updated_at = $3
                 WHERE id = $1",
                &[&contact_id, &why, &now_ms],
            )
            .await?;
        }
        Reconciled::Ambiguous(why) => {
            tx.execute(
                "UPDATE contacts SET error_message = $2, updated_at = $3 WHERE id = $1",
                &[&contact_id, &why, &now_ms],
            )
            .await?;
        }
        Reconciled::Moot => {}
    }
    tx.commit().await?;
    Ok(arrival)
}

pub async fn hasten_lookups(
    pg: &Pg,
    callees: Vec<String>,
    started_secs: i64,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let from = (started_secs - crate::outcomes::reconcile::AFTER_SECS) * 1000;
    let to = (started_secs + crate::outcomes::reconcile::BEFORE_SECS) * 1000 + 999;
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE outcome_checks SET asked = 1, next_check_at = $3
             WHERE kind IN ('reconcile', 'retry_check') AND sent_at BETWEEN $1 AND $2
               AND (asked = 0 OR next_check_at > $3)
               AND (SELECT k.callee FROM contacts k WHERE k.id = outcome_checks.contact_id) = $4",
        )
        .await?;
    let mut n = 0;
    for callee in &callees {
        n += tx.execute(&stmt, &[&from, &to, &now_ms, callee]).await? as usize;
    }
    tx.commit().await?;
    Ok(n)
}

/// SQLite's `Store::outcome_minutes`: calls by minute and class from `outcome_minutes`.
pub async fn outcome_minutes(
    pg: &Pg,
    campaign_id: i64,
    from_minute: i64,
    to_minute: i64,
) -> Result<Vec<crate::store::OutcomeMinute>, StoreError> {
    let c = pg.client().await?;
    let mut out = Vec::new();
    for r in c
        .query(
            "SELECT minute, class, n FROM outcome_minutes
             WHERE campaign_id = $1 AND minute >= $2 AND minute < $3 AND n > 0
             ORDER BY minute, class",
            &[&campaign_id, &from_minute, &to_minute],
        )
        .await?
    {
        out.push(crate::store::OutcomeMinute {
            minute: r.try_get(0)?,
            class: r.try_get(1)?,
            calls: r.try_get::<_, i64>(2)?.max(0) as u64,
        });
    }
    Ok(out)
}
