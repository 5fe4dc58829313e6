//! Outcome records and the schedule of checks (PostgreSQL twins of `store::outcomes`). Not yet
//! here (they refuse on PostgreSQL): the due and overdue checks, writing records and closing a
//! reconciliation, whose SQLite versions changed with the retry checks of schema 11.

use std::collections::HashSet;

use super::Pg;
use crate::store::{Arrival, OutcomeCounts, OutcomeRecord, StoreError};

/// SQLite's `claim_held_push`: the pushed record held for `session_id` becomes the outcome of
/// `contact_id`'s attempt, in the transaction that gave the attempt its session (after the
/// contact is updated), and is no longer held. Until SQLite's `write_record` is ported here it
/// is written as the v13 trigger wrote it (a session's first record; no redial decision: the
/// redial store methods are not on PostgreSQL yet); its arrival goes to the store's hook.
pub async fn claim_held_push(
    tx: &tokio_postgres::Transaction<'_>,
    session_id: &str,
    contact_id: i64,
) -> Result<Option<Arrival>, StoreError> {
    let held = tx
        .query_opt(
            "DELETE FROM pending_pushes WHERE session_id = $1
             RETURNING class, end_status, end_status_string, duration_s, ring_at, answered_at,
                       ended_at, hangup_side, sys_hangup_reason, ai_agent_id, recorded_at",
            &[&session_id],
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
    let inserted = tx
        .execute(
            "INSERT INTO outcomes (session_id, contact_id, class, end_status, end_status_string,
               duration_s, ring_at, answered_at, ended_at, hangup_side, sys_hangup_reason,
               ai_agent_id, source, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT DO NOTHING",
            &[
                &rec.session_id,
                &rec.contact_id,
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
    Ok((inserted > 0).then_some(Arrival {
        record: rec,
        was: None,
        redialled: false,
    }))
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
    let c = pg.client().await?;
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
