//! Redials in the store (PostgreSQL twins of `store::redials`): each campaign's policy, the
//! decision taken in the transaction that writes a call's outcome, and what the dispatcher asks.
//! The invariants are SQLite's: a contact is put back to `pending` only by a conditional update
//! (still `placed`, with the session the decision is about), and calls are counted from the
//! attempts that may have rung.

use deadpool_postgres::Transaction;

use super::Pg;
use crate::outcomes::classes::OutcomeClass;
use crate::redial::{self, Decision, RedialPolicy};
use crate::store::redials::DIALLED;
use crate::store::{OutcomeRecord, RedialDecision, RedialWait, StoreError};

/// Campaign `campaign_id`'s redial policy, if it has one (one this build cannot read counts as
/// none, with a warning).
pub(crate) async fn policy_of(
    c: &Transaction<'_>,
    campaign_id: i64,
) -> Result<Option<RedialPolicy>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT redial FROM campaigns WHERE id = $1")
        .await?;
    let json: Option<String> = match c.query_opt(&stmt, &[&campaign_id]).await? {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    Ok(json.and_then(|j| match serde_json::from_str(&j) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(campaign = campaign_id, error = %e, "stored redial policy unreadable: no redials");
            None
        }
    }))
}

/// How many calls contact `contact_id` has had.
pub(crate) async fn dials_of(c: &Transaction<'_>, contact_id: i64) -> Result<u32, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM attempts a WHERE a.contact_id = $1 AND {DIALLED}"
        ))
        .await?;
    let n: i64 = c.query_one(&stmt, &[&contact_id]).await?.try_get(0)?;
    Ok(n.max(0) as u32)
}

async fn contact_campaign(c: &Transaction<'_>, contact_id: i64) -> Result<Option<i64>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT campaign_id FROM contacts WHERE id = $1")
        .await?;
    c.query_opt(&stmt, &[&contact_id])
        .await?
        .map(|r| Ok(r.try_get(0)?))
        .transpose()
}

/// SQLite's `schedule_redial_tx`, inside the caller's transaction.
pub(crate) async fn schedule_redial_tx(
    c: &Transaction<'_>,
    contact_id: i64,
    session_id: &str,
    not_before_ms: i64,
    cause: &str,
    max_dials: u32,
    now_ms: i64,
) -> Result<RedialDecision, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT k.status, k.session_id, m.state FROM contacts k
               JOIN campaigns m ON m.id = k.campaign_id WHERE k.id = $1",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&contact_id]).await? else {
        return Ok(RedialDecision::NotLatest);
    };
    let (status, latest, state): (String, Option<String>, String) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    if status != "placed" || latest.as_deref() != Some(session_id) || state == "cancelled" {
        return Ok(RedialDecision::NotLatest);
    }
    let dials = dials_of(c, contact_id).await?;
    if dials >= max_dials {
        return Ok(RedialDecision::MaxDials(dials));
    }
    let dial = dials + 1;
    let due_ms = not_before_ms.max(1);
    let message = format!("redial {dial} of {max_dials}: {cause}");
    let stmt = c
        .prepare_cached(
            "UPDATE contacts SET status = 'pending', next_at = $2, gate = $3, attempts = 0,
               reschedules = 0, error_code = $4, error_message = $5, updated_at = $6
             WHERE id = $1 AND status = 'placed' AND session_id = $7",
        )
        .await?;
    let n = c
        .execute(
            &stmt,
            &[
                &contact_id,
                &due_ms,
                &redial::GATE,
                &redial::CODE,
                &message,
                &now_ms,
                &session_id,
            ],
        )
        .await?;
    if n != 1 {
        return Ok(RedialDecision::NotLatest);
    }
    if state == "completed" {
        c.execute(
            "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = $2
             WHERE id = (SELECT campaign_id FROM contacts WHERE id = $1) AND state = 'completed'",
            &[&contact_id, &now_ms],
        )
        .await?;
    }
    Ok(RedialDecision::Scheduled {
        due_ms,
        dial,
        max_dials,
    })
}

/// SQLite's `on_outcome`: the redial decision for a newly written record.
pub(crate) async fn on_outcome(
    c: &Transaction<'_>,
    contact_id: i64,
    rec: &OutcomeRecord,
) -> Result<RedialDecision, StoreError> {
    let Some(campaign) = contact_campaign(c, contact_id).await? else {
        return Ok(RedialDecision::NotAsked);
    };
    let Some(policy) = policy_of(c, campaign).await? else {
        return Ok(RedialDecision::NotAsked);
    };
    let Ok(class) = rec.class.parse::<OutcomeClass>() else {
        return Ok(RedialDecision::NotAsked);
    };
    if !policy.asks(class, rec.end_status) {
        return Ok(RedialDecision::NotAsked);
    }
    let ended_ms = rec
        .ended_at
        .filter(|t| *t > 0)
        .map_or(rec.recorded_at, |t| t.saturating_mul(1000));
    let dials = dials_of(c, contact_id).await?;
    match policy.decide(class, rec.end_status, dials, ended_ms) {
        Decision::Redial { due_ms, .. } => {
            let what = match (rec.end_status, rec.end_status_string.as_deref()) {
                (Some(code), Some(s)) if !s.is_empty() => format!(" (EndStatus {code} {s})"),
                (Some(code), _) => format!(" (EndStatus {code})"),
                _ => String::new(),
            };
            let cause = format!(
                "the last call ended {}{what}; redial after {}",
                rec.class,
                redial::human(policy.after)
            );
            schedule_redial_tx(
                c,
                contact_id,
                &rec.session_id,
                due_ms,
                &cause,
                policy.max_dials,
                rec.recorded_at,
            )
            .await
        }
        Decision::MaxDials => Ok(RedialDecision::MaxDials(dials)),
        Decision::NotAsked => Ok(RedialDecision::NotAsked),
    }
}

/// SQLite's `on_correction`: a pushed record corrected by the polled one.
pub(crate) async fn on_correction(
    c: &Transaction<'_>,
    contact_id: i64,
    rec: &OutcomeRecord,
) -> Result<bool, StoreError> {
    let policy = match contact_campaign(c, contact_id).await? {
        Some(id) => policy_of(c, id).await?,
        None => None,
    };
    let asks = match (policy, rec.class.parse::<OutcomeClass>()) {
        (Some(p), Ok(class)) => p.asks(class, rec.end_status),
        _ => false,
    };
    if asks {
        return Ok(matches!(
            on_outcome(c, contact_id, rec).await?,
            RedialDecision::Scheduled { .. }
        ));
    }
    c.execute(
        "UPDATE contacts SET status = 'placed', next_at = 0, gate = NULL, error_code = NULL,
           error_message = NULL, updated_at = $3,
           attempts = (SELECT COUNT(*) FROM attempts a
                       WHERE a.contact_id = $1 AND COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')
                         AND a.n > COALESCE((SELECT MAX(b.n) FROM attempts b
                                             WHERE b.contact_id = $1 AND b.outcome = 'placed'
                                               AND b.session_id != $2), 0))
         WHERE id = $1 AND status = 'pending' AND error_code = $4 AND session_id = $2",
        &[&contact_id, &rec.session_id, &rec.recorded_at, &redial::CODE],
    )
    .await?;
    Ok(false)
}

pub async fn redial_policy(pg: &Pg, campaign_id: i64) -> Result<Option<RedialPolicy>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let p = policy_of(&tx, campaign_id).await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn schedule_redial(
    pg: &Pg,
    contact_id: i64,
    session_id: String,
    not_before_ms: i64,
    cause: String,
    now_ms: i64,
) -> Result<RedialDecision, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let policy = match contact_campaign(&tx, contact_id).await? {
        Some(id) => policy_of(&tx, id).await?,
        None => None,
    };
    let Some(policy) = policy else {
        return Ok(RedialDecision::NotAsked);
    };
    let d = schedule_redial_tx(
        &tx,
        contact_id,
        &session_id,
        not_before_ms,
        &cause,
        policy.max_dials,
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(d)
}

/// Whether campaign `campaign_id` has a redial policy.
pub(crate) async fn has_policy(c: &Transaction<'_>, campaign_id: i64) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached("SELECT 1 FROM campaigns WHERE id = $1 AND redial IS NOT NULL")
        .await?;
    Ok(c.query_opt(&stmt, &[&campaign_id]).await?.is_some())
}

/// SQLite's `redial_wait`: an outcome not yet known that may still ask for a redial, else,
/// with `[[redial.on_tag]]` rules, post-call tags not yet read; `None` without a policy.
pub async fn redial_wait(pg: &Pg, campaign_id: i64) -> Result<Option<RedialWait>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let Some(policy) = policy_of(&tx, campaign_id).await? else {
        return Ok(None);
    };
    let max = i64::from(policy.max_dials);
    let sql = super::queue::dollars(&crate::store::redials::redial_possible_sql());
    let mut wait = tx
        .query_opt(&sql, &[&campaign_id, &max])
        .await?
        .map(|_| RedialWait::Outcome);
    if wait.is_none() && !policy.on_tag.is_empty() {
        let sql = super::queue::dollars(&crate::store::redials::tag_redial_possible_sql());
        wait = tx
            .query_opt(&sql, &[&campaign_id, &max])
            .await?
            .map(|_| RedialWait::Tags);
    }
    tx.commit().await?;
    Ok(wait)
}
