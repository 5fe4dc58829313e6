//! Taking over a dead replica's contacts the moment its leases run out.
//!
//! A replica killed (kill -9, its node lost) leaves its claims in the store: contacts it held
//! unsent (pending, leased to it) and calls it had in flight. Nobody renews those leases any
//! more, so they run out a lease's length after its last renewal; from then the contacts are
//! claimable and the calls in doubt (`queue::recover_expired`). A survivor's dispatcher with
//! nothing buffered already wakes at that moment (`gates::next_wait`). One busy with its own
//! batch (claimed ahead: 4 s of the account's rate, far longer when several campaigns share
//! it) asked the store again only once that batch ran out: the dead replica's contacts waited
//! behind it (+7.4 s after the leases ran out, BENCHMARKS.md, failover).
//!
//! So each process watches when the other replicas' leases run out, once for all its
//! campaigns: one statement (over the partial index `contacts_leased`, which holds only leased
//! rows) names the campaigns where one has run out on a contact due or in flight, and tells
//! how long until the earliest live one runs out; the watch sleeps until then, and never
//! longer than a lease (a lease taken just after a look runs out after the next one). Live
//! replicas renew every third of a lease, so theirs never run out: with every replica alive
//! the watch costs one statement per process every third to two thirds of a lease, whatever
//! the number of campaigns, and no statement per campaign. The campaigns named are marked (see
//! `Leases::take_ran_out`); their dispatchers here take those contacts ahead of their own batch
//! (`queue::take_over`), and each survivor gets some of them (`SKIP LOCKED`).
//!
//! Nothing here weakens the fence: a contact taken over is claimed under a new epoch, so
//! whatever the dead (or frozen) replica might still write for it changes nothing; its calls in
//! flight become `unknown`, never redialled.

use std::sync::Weak;
use std::time::Duration;

use super::lease::{Leases, DB_NOW};
use crate::store::StoreError;

/// The shortest wait between two looks: leases running out a moment apart (each of the dead
/// replica's calls in flight has its own) are taken in one go.
const AT_LEAST: Duration = Duration::from_millis(200);
/// Looked a moment after the database's clock says the earliest lease runs out.
const AFTER: Duration = Duration::from_millis(20);

/// Look, sleep until the next lease may run out, look again, until the store is dropped.
pub(super) async fn watch_forever(leases: Weak<Leases>, pool: deadpool_postgres::Pool) {
    loop {
        let Some(l) = leases.upgrade() else {
            return;
        };
        let ttl = l.ttl();
        let wait = match look(&l, &pool).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(owner = %l.owner(), error = %e, "cannot look for other replicas' leases that ran out: a dead replica's contacts wait for this replica's next look for due contacts");
                ttl / 3
            }
        };
        drop(l);
        tokio::time::sleep(wait.clamp(AT_LEAST, ttl.max(AT_LEAST))).await;
    }
}

/// One look: the campaigns where another replica's lease ran out on a contact due or in flight
/// are marked in `l`. Returns how long until the earliest of the other replicas' live leases
/// runs out (a lease's length when there is none).
pub(super) async fn look(
    l: &Leases,
    pool: &deadpool_postgres::Pool,
) -> Result<Duration, StoreError> {
    let c = pool.get().await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT
               (SELECT MIN(lease_until) - {DB_NOW} FROM contacts
                WHERE lease_owner IS NOT NULL AND lease_owner <> $1
                  AND lease_until > {DB_NOW} AND status IN ('pending', 'in_flight')),
               ARRAY(SELECT DISTINCT campaign_id FROM contacts
                WHERE lease_owner IS NOT NULL AND lease_owner <> $1
                  AND lease_until <= {DB_NOW}
                  AND (status = 'in_flight' OR (status = 'pending' AND next_at <= $2)))"
        ))
        .await?;
    let row = c
        .query_one(&stmt, &[&l.owner(), &crate::times::now_ms()])
        .await?;
    let left: Option<i64> = row.try_get(0)?;
    let ran_out: Vec<i64> = row.try_get(1)?;
    if !ran_out.is_empty() {
        tracing::debug!(campaigns = ?ran_out, "another replica's leases ran out: its contacts are taken over");
        l.mark_ran_out(ran_out);
    }
    Ok(match left {
        Some(ms) => Duration::from_millis(ms.max(0) as u64) + AFTER,
        None => l.ttl(),
    })
}
