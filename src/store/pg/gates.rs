//! What the calling rules need (PostgreSQL twins of `store::gates`): holding a contact back,
//! ending it for a final gate, and the dial history the per-person checks read.

use super::lease::DB_NOW;
use super::Pg;
use crate::calling::gate;
use crate::contact::Status;
use crate::store::{PersonGuard, StoreError};

/// When calls to `callee` that may have rung were sent since `since_ms` (the `dials` index).
pub(super) async fn recent_dials<C: deadpool_postgres::GenericClient>(
    c: &C,
    callee: &str,
    since_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT at FROM dials WHERE callee = $1 AND at >= $2")
        .await?;
    let rows = c.query(&stmt, &[&callee, &since_ms]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The epoch and owner a write for `contact_id` is fenced by: this process's claim on it, if it
/// holds one (taken out of the registry: the write releases the contact), else none (a write
/// from outside the dispatcher, as before leases).
fn fence(pg: &Pg, contact_id: i64) -> (Option<i64>, String) {
    let leases = pg.leases();
    let epoch = leases.drop_claim(contact_id).map(|c| c.epoch);
    (epoch, leases.owner().to_string())
}

/// Hold a pending contact back until `next_at`; fenced by this process's claim (see `lease`),
/// which it lets go: a contact another replica took over meanwhile is left as it is.
pub async fn defer(
    pg: &Pg,
    contact_id: i64,
    next_at: i64,
    gate: String,
    now_ms: i64,
) -> Result<(), StoreError> {
    let (epoch, owner) = fence(pg, contact_id);
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "UPDATE contacts SET next_at = $2, gate = $3, updated_at = $4,
               lease_owner = CASE WHEN $5::BIGINT IS NULL THEN lease_owner END,
               lease_until = CASE WHEN $5::BIGINT IS NULL THEN lease_until END
             WHERE id = $1 AND status = 'pending'
               AND ($5::BIGINT IS NULL OR (epoch = $5 AND lease_owner = $6))",
        )
        .await?;
    c.execute(
        &stmt,
        &[&contact_id, &next_at.max(1), &gate, &now_ms, &epoch, &owner],
    )
    .await?;
    Ok(())
}

/// End a pending contact for a final gate; fenced as [`defer`] is. Returns whether it ended.
pub async fn end_by_gate(
    pg: &Pg,
    contact_id: i64,
    status: Status,
    code: String,
    message: String,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let (epoch, owner) = fence(pg, contact_id);
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE contacts SET status = $2, error_code = $3, error_message = $4,
               gate = NULL, updated_at = $5, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND status = 'pending'
               AND ($6::BIGINT IS NULL OR (epoch = $6 AND lease_owner = $7))",
            &[
                &contact_id,
                &status.as_str(),
                &code,
                &message,
                &now_ms,
                &epoch,
                &owner,
            ],
        )
        .await?;
    Ok(n == 1)
}

pub async fn expire_pending(
    pg: &Pg,
    campaign_id: i64,
    message: String,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'expired', error_code = 'NotAfter', error_message = $2,
           gate = NULL, updated_at = $3
         WHERE campaign_id = $1 AND status = 'pending'",
        &[&campaign_id, &message, &now_ms],
    )
    .await?)
}

/// The gate holding each contact's number under its guard at `now_ms` (`None`: free), in the
/// order asked: one statement for them all. The dispatcher reads its buffer's answers ahead
/// this way (`Store::persons_held`); asked one contact at a time (a connection from the pool
/// and two round trips each, in the dispatch loop), they held it to a few hundred contacts a
/// second with the cap lifted (BENCHMARKS.md, PostgreSQL engine headroom).
pub async fn persons_held(
    pg: &Pg,
    checks: Vec<(i64, PersonGuard)>,
    now_ms: i64,
) -> Result<Vec<Option<gate::Gate>>, StoreError> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = checks.iter().map(|(id, _)| *id).collect();
    let since: Vec<i64> = checks.iter().map(|(_, g)| g.since_ms).collect();
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT h.i, d.at
             FROM unnest($1::BIGINT[], $2::BIGINT[]) WITH ORDINALITY AS h(id, since, i)
             JOIN contacts k ON k.id = h.id
             JOIN dials d ON d.callee = k.callee AND d.at >= h.since",
        )
        .await?;
    let mut recent: Vec<Vec<i64>> = vec![Vec::new(); checks.len()];
    for r in c.query(&stmt, &[&ids, &since]).await? {
        let i: i64 = r.try_get(0)?;
        let at: i64 = r.try_get(1)?;
        if let Some(calls) = usize::try_from(i - 1).ok().and_then(|i| recent.get_mut(i)) {
            calls.push(at);
        }
    }
    checks
        .iter()
        .zip(&recent)
        .map(
            |((contact_id, guard), recent)| match guard.judge(*contact_id, recent, now_ms) {
                Ok(()) => Ok(None),
                Err(StoreError::Held(g)) => Ok(Some(g)),
                Err(e) => Err(e),
            },
        )
        .collect()
}

pub async fn calls_to(pg: &Pg, callee: String, since_ms: i64) -> Result<Vec<i64>, StoreError> {
    let c = pg.client().await?;
    recent_dials(&c, &callee, since_ms).await
}

pub async fn prune_dials(pg: &Pg, before_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute("DELETE FROM dials WHERE at < $1", &[&before_ms])
        .await?)
}

pub async fn caller_uses_since(pg: &Pg, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT caller, started_at FROM attempts
             WHERE started_at >= $1 AND caller IS NOT NULL
               AND outcome IS DISTINCT FROM 'not_sent'
             ORDER BY started_at",
            &[&since_ms],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The earliest moment something may be due for this process, and the gate holding it: the
/// first pending contact nobody else holds (as on SQLite, this process's own count); or,
/// sooner, when another replica's lease on one
/// of the campaign's contacts (pending or in flight) runs out (then it is claimable, or in
/// doubt and recovered), with the gate [`OTHER_REPLICAS`].
pub async fn next_wait(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Option<(i64, Option<String>)>, StoreError> {
    let leases = pg.leases();
    let c = pg.client().await?;
    let free_here = c
        .prepare_cached(&format!(
            "SELECT next_at, gate FROM contacts WHERE campaign_id = $1 AND status = 'pending'
               AND (lease_until IS NULL OR lease_until <= {DB_NOW} OR lease_owner = $2)
             ORDER BY next_at LIMIT 1"
        ))
        .await?;
    let free: Option<(i64, Option<String>)> = c
        .query_opt(&free_here, &[&campaign_id, &leases.owner()])
        .await?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    // How long until another replica's earliest lease on the campaign runs out (the partial
    // index `contacts_leased` holds only leased rows).
    let others = c
        .prepare_cached(&format!(
            "SELECT MIN(lease_until) - {DB_NOW} FROM contacts
             WHERE campaign_id = $1 AND lease_owner IS NOT NULL AND lease_owner <> $2
               AND status IN ('pending', 'in_flight')"
        ))
        .await?;
    let left: Option<i64> = c
        .query_one(&others, &[&campaign_id, &leases.owner()])
        .await?
        .try_get(0)?;
    let Some(left) = left else {
        return Ok(free);
    };
    // Measured by the database's clock, waited by this one's: a moment after it runs out.
    let at = crate::times::now_ms() + left.max(0) + 50;
    Ok(match free {
        Some((next, gate)) if next <= at => Some((next, gate)),
        _ => Some((at, Some(OTHER_REPLICAS.to_string()))),
    })
}

/// The gate of a wait for other replicas' leases (see [`next_wait`]).
pub const OTHER_REPLICAS: &str = "other_replicas";

pub async fn waiting_by_gate(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Vec<(Option<String>, u64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT gate, COUNT(*) FROM contacts WHERE campaign_id = $1 AND status = 'pending'
             GROUP BY gate ORDER BY 2 DESC",
            &[&campaign_id],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect()
}
