//! Outcome records and the schedule of checks (PostgreSQL twins of `store::outcomes`): each
//! function one transaction, a record seen twice changes nothing, a check row removed only in
//! the transaction that writes its record.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::Pg;
use crate::store::{
    DueReconcile, DueSession, OutcomeCounts, OutcomeRecord, Reconciled, StoreError, Written,
};

fn due_session(r: &Row) -> Result<DueSession, StoreError> {
    Ok(DueSession {
        attempt_id: r.try_get(0)?,
        contact_id: r.try_get(1)?,
        session_id: r.try_get(2)?,
        sent_at: r.try_get(3)?,
        checks: r.try_get::<_, i64>(4)?.max(0) as u32,
    })
}

fn due_reconcile(r: &Row) -> Result<DueReconcile, StoreError> {
    let overrides: Option<String> = r.try_get(4)?;
    // The contact's own agent, else its campaign's (serve's settings).
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
        checks: r.try_get::<_, i64>(6)?.max(0) as u32,
        status: r.try_get(7)?,
    })
}

/// Insert one record (or replace a give-up) and remove its session's check; true if new.
async fn write_record<C: GenericClient>(c: &C, rec: &OutcomeRecord) -> Result<bool, StoreError> {
    let contact_id = if rec.contact_id > 0 {
        Some(rec.contact_id)
    } else {
        let stmt = c
            .prepare_cached("SELECT contact_id FROM attempts WHERE session_id = $1 LIMIT 1")
            .await?;
        c.query_opt(&stmt, &[&rec.session_id])
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
    };
    let Some(contact_id) = contact_id else {
        return Ok(false);
    };
    let insert = c
        .prepare_cached(
            "INSERT INTO outcomes (session_id, contact_id, class, end_status, end_status_string,
               duration_s, ring_at, answered_at, ended_at, hangup_side, sys_hangup_reason,
               ai_agent_id, source, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (session_id) DO UPDATE SET class = excluded.class,
               end_status = excluded.end_status, end_status_string = excluded.end_status_string,
               duration_s = excluded.duration_s, ring_at = excluded.ring_at,
               answered_at = excluded.answered_at, ended_at = excluded.ended_at,
               hangup_side = excluded.hangup_side,
               sys_hangup_reason = excluded.sys_hangup_reason,
               ai_agent_id = excluded.ai_agent_id, source = excluded.source,
               recorded_at = excluded.recorded_at
             WHERE outcomes.class = 'no_record' AND excluded.class != 'no_record'",
        )
        .await?;
    let n = c
        .execute(
            &insert,
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
    let delete = c
        .prepare_cached("DELETE FROM outcome_checks WHERE session_id = $1")
        .await?;
    c.execute(&delete, &[&rec.session_id]).await?;
    Ok(n == 1)
}

/// The rows of one due query: never asked and sent by `first_until`, then asked before and due
/// by `asked_until`. `sql` takes `asked`, the bound and `limit` as $1..$3.
async fn due_rows<T>(
    pg: &Pg,
    sql: &str,
    (first_until, asked_until): (i64, i64),
    limit: usize,
    row: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let c = pg.client().await?;
    let stmt = c.prepare_cached(sql).await?;
    let mut out = Vec::new();
    for (asked, until) in [(0i64, first_until), (1, asked_until)] {
        for r in c.query(&stmt, &[&asked, &until, &(limit as i64)]).await? {
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
        "SELECT attempt_id, contact_id, session_id, sent_at, checks
         FROM outcome_checks
         WHERE kind = 'outcome' AND asked = $1 AND next_check_at <= $2
         ORDER BY next_check_at LIMIT $3",
        (now_ms - first_ms, asked_until_ms),
        limit,
        due_session,
    )
    .await?;
    out.sort_by_key(|d| (d.sent_at, d.attempt_id));
    out.truncate(limit);
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
                o.sent_at, o.checks, k.status, c.settings
         FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
           JOIN campaigns c ON c.id = k.campaign_id
         WHERE o.kind = 'reconcile' AND o.asked = $1 AND o.next_check_at <= $2
         ORDER BY o.next_check_at LIMIT $3",
        (now_ms - first_ms, asked_until_ms),
        limit,
        due_reconcile,
    )
    .await?;
    out.sort_by_key(|d| (d.sent_at, d.attempt_id));
    out.truncate(limit);
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
    for kind in ["outcome", "reconcile"] {
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

pub async fn record_outcomes(pg: &Pg, records: Vec<OutcomeRecord>) -> Result<Written, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let mut w = Written::default();
    for rec in &records {
        if write_record(&tx, rec).await? {
            w.new.push(rec.session_id.clone());
        } else {
            w.ignored += 1;
        }
    }
    tx.commit().await?;
    Ok(w)
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

pub async fn finish_reconcile(
    pg: &Pg,
    attempt_id: i64,
    how: Reconciled,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let contact: Option<(i64, String)> = tx
        .query_opt(
            "SELECT k.id, k.status FROM attempts a JOIN contacts k ON k.id = a.contact_id
             WHERE a.id = $1 FOR UPDATE OF k",
            &[&attempt_id],
        )
        .await?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    tx.execute(
        "DELETE FROM outcome_checks WHERE attempt_id = $1",
        &[&attempt_id],
    )
    .await?;
    if let Some((contact_id, status)) = contact.filter(|(_, s)| s == "unknown") {
        let _ = status;
        match how {
            Reconciled::Found(rec) => {
                let mut rec = *rec;
                tx.execute(
                    "UPDATE attempts SET outcome = 'placed', session_id = $2,
                       message = 'reconciled: the call records show this request created the call'
                     WHERE id = $1",
                    &[&attempt_id, &rec.session_id],
                )
                .await?;
                tx.execute(
                    "UPDATE contacts SET status = 'placed', session_id = $2,
                       error_code = 'Reconciled',
                       error_message = 'reconciled: the reply was lost, the call records show the call was created',
                       updated_at = $3
                     WHERE id = $1",
                    &[&contact_id, &rec.session_id, &now_ms],
                )
                .await?;
                rec.contact_id = contact_id;
                // Written after the attempt became placed (its trigger enrolled a check): the
                // record removes that check again.
                write_record(&tx, &rec).await?;
            }
            Reconciled::NotPlaced => {
                // The dial row stays: "no record" is not proof no phone rang.
                tx.execute(
                    "UPDATE contacts SET status = 'not_placed', error_code = 'NoCallRecord',
                       error_message = 'no call record: the request did not create a call',
                       updated_at = $2
                     WHERE id = $1",
                    &[&contact_id, &now_ms],
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
    }
    tx.commit().await?;
    Ok(())
}

pub async fn outcome_counts(pg: &Pg, campaign_id: i64) -> Result<OutcomeCounts, StoreError> {
    let c = pg.client().await?;
    let mut out = OutcomeCounts::default();
    for r in c
        .query(
            "SELECT o.class, COUNT(*) FROM contacts k
               JOIN outcomes o ON o.session_id = k.session_id
             WHERE k.campaign_id = $1 AND k.status = 'placed' GROUP BY o.class",
            &[&campaign_id],
        )
        .await?
    {
        out.by_class
            .insert(r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64);
    }
    let awaiting: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM contacts k
             WHERE k.campaign_id = $1 AND k.status = 'placed' AND k.session_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.session_id = k.session_id)",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    let reconciling: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
             WHERE o.kind = 'reconcile' AND k.campaign_id = $1 AND k.status = 'unknown'",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    out.awaiting = awaiting.max(0) as u64;
    out.reconciling = reconciling.max(0) as u64;
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
