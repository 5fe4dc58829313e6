//! The queue (PostgreSQL twins of the methods in `store/mod.rs`): intake, due contacts, an
//! attempt written down before its request leaves and finished with its contact's release,
//! settling in-doubt attempts, counts and result rows.

use std::collections::{BTreeMap, HashSet};

use super::lease::{Claim, DB_NOW};
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

/// The twin of SQLite's: contacts whose attempt has no recorded outcome become `unknown`. With
/// several replicas sharing the store, only the contacts nobody is waiting for: a lease that
/// expired (its replica died or froze), none at all (released, or written before leases), or
/// this process's own (its dispatcher has stopped). A live replica's calls in flight are its
/// own business.
pub async fn settle_in_flight(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    recover_expired(pg, campaign_id, now_ms, true).await
}

const IN_DOUBT_MESSAGE: &str =
    "the dialer stopped before the reply arrived; the call may have been placed";

/// Contacts of `campaign_id` in flight whose lease expired (or that have none; with `own`, also
/// this process's) become `unknown` and their open attempts `in_doubt`, in one statement; the
/// epoch is raised so a late write of the replica that sent them changes nothing but its
/// attempt's result. Returns how many.
pub(super) async fn recover_expired(
    pg: &Pg,
    campaign_id: i64,
    now_ms: i64,
    own: bool,
) -> Result<u64, StoreError> {
    let leases = pg.leases();
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(&format!(
            "WITH expired AS (
               SELECT id FROM contacts
               WHERE campaign_id = $1 AND status = 'in_flight'
                 AND (lease_until IS NULL OR lease_until <= {DB_NOW}
                      OR ($5 AND lease_owner = $4))
               -- A row a frozen replica holds locked mid-transaction is left for later
               -- rather than waited for.
               FOR UPDATE SKIP LOCKED),
             open AS (
               SELECT a.id FROM attempts a
               WHERE a.outcome IS NULL AND a.contact_id IN (SELECT id FROM expired)
               -- Nor is an attempt whose reply is being written (its finishing transaction
               -- locks the attempt, then the contact): waiting for it while holding the
               -- contact would deadlock the two. That contact is left to its reply.
               FOR UPDATE SKIP LOCKED),
             gone AS (
               UPDATE contacts k SET status = 'unknown', error_code = 'InDoubt',
                 error_message = $3, updated_at = $2, epoch = epoch + 1,
                 lease_owner = NULL, lease_until = NULL
               WHERE k.id IN (SELECT id FROM expired)
                 AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = k.id
                                 AND a.outcome IS NULL
                                 AND a.id NOT IN (SELECT id FROM open))
               RETURNING k.id),
             doubt AS (
               UPDATE attempts SET outcome = 'in_doubt', finished_at = $2
               WHERE id IN (SELECT id FROM open) AND contact_id IN (SELECT id FROM gone))
             SELECT id FROM gone"
        ))
        .await?;
    let rows = c
        .query(
            &stmt,
            &[
                &campaign_id,
                &now_ms,
                &IN_DOUBT_MESSAGE,
                &leases.owner(),
                &own,
            ],
        )
        .await?;
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        if leases.drop_claim(id).is_some() {
            tracing::warn!(contact = id, owner = %leases.owner(), "this replica's lease on a call in flight expired: the call is in doubt (unknown)");
        }
    }
    if !rows.is_empty() && !own {
        tracing::warn!(
            campaign = campaign_id,
            contacts = rows.len(),
            "calls in flight at a replica whose lease expired (it stopped or froze): reported unknown, not redialled"
        );
    }
    Ok(rows.len() as u64)
}

/// Give up this process's claims on `campaign_id` (its dispatcher stopped): the leases are
/// cleared where they are still this process's, so other replicas take the pending contacts at
/// once. Returns how many.
pub async fn release_claims(pg: &Pg, campaign_id: i64) -> Result<u64, StoreError> {
    let leases = pg.leases();
    let claims = leases.take_campaign(campaign_id);
    if claims.is_empty() {
        return Ok(0);
    }
    let (ids, epochs): (Vec<i64>, Vec<i64>) = claims.iter().map(|(id, c)| (*id, c.epoch)).unzip();
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE contacts k SET lease_owner = NULL, lease_until = NULL
             FROM unnest($2::BIGINT[], $3::BIGINT[]) AS h(id, epoch)
             WHERE k.id = h.id AND k.epoch = h.epoch AND k.lease_owner = $1",
            &[&leases.owner(), &ids, &epochs],
        )
        .await?;
    Ok(n)
}

/// The twin of SQLite's, fenced: the contact goes back to `pending` only while its open
/// attempt's claim is still this process's (otherwise another replica's recovery already
/// settled it; nothing is written). The lease is let go with it.
pub async fn release_unsent(pg: &Pg, contact_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let leases = pg.leases();
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT k.status, k.epoch, k.lease_owner,
                    (SELECT a.epoch FROM attempts a WHERE a.contact_id = k.id
                     AND a.outcome IS NULL ORDER BY a.n DESC LIMIT 1)
             FROM contacts k WHERE k.id = $1 FOR UPDATE",
            &[&contact_id],
        )
        .await?;
    leases.drop_claim(contact_id);
    let Some(row) = row else {
        return Ok(false);
    };
    let status: String = row.try_get(0)?;
    let epoch: i64 = row.try_get(1)?;
    let owner: Option<String> = row.try_get(2)?;
    let written_under: Option<i64> = row.try_get(3)?;
    if status != Status::InFlight.as_str() {
        return Ok(false);
    }
    if let Some(e) = written_under {
        if e != epoch || owner.as_deref() != Some(leases.owner()) {
            return Ok(false);
        }
    }
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
            "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = $2,
               lease_owner = NULL, lease_until = NULL
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

/// Due contacts *claimed* for this process (see `lease`): retries that have come due first
/// (oldest first), then first attempts in file order, each leased to this process under a new
/// epoch. Rows another replica holds (a live lease) or is locking are passed over
/// (`FOR UPDATE SKIP LOCKED`); `exclude` (held by the dispatcher already) too. Calls in flight
/// at a replica whose lease expired are recovered first (`unknown`).
pub async fn due_contacts(
    pg: &Pg,
    campaign_id: i64,
    now_ms: i64,
    limit: usize,
    exclude: HashSet<i64>,
) -> Result<Vec<DueContact>, StoreError> {
    // This look takes whatever other replicas' leases left (see `takeover`): a mark set before
    // it is spent, one set after it stays for the next.
    pg.watch_leases();
    pg.leases().take_ran_out(campaign_id);
    recover_expired(pg, campaign_id, now_ms, false).await?;
    let claim = |due: &str, order: &str| {
        format!(
            "UPDATE contacts SET lease_owner = $4, lease_until = {DB_NOW} + $5, epoch = epoch + 1
             WHERE id IN (
               SELECT id FROM contacts
               WHERE campaign_id = $1 AND status = 'pending' AND {due}
                 AND (lease_until IS NULL OR lease_until <= {DB_NOW} OR lease_owner = $4)
                 AND NOT (id = ANY($6::BIGINT[]))
               ORDER BY {order} LIMIT $3
               FOR UPDATE SKIP LOCKED)
             RETURNING {}, next_at, epoch",
            rows::DUE_COLUMNS
        )
    };
    claim_in_order(
        pg,
        campaign_id,
        now_ms,
        limit,
        exclude,
        &[
            claim("next_at > 0 AND next_at <= $2", "next_at, id"),
            claim("next_at = 0 AND $2::BIGINT IS NOT NULL", "id"),
        ],
    )
    .await
}

/// The contacts of `campaign_id` that another replica held when its leases ran out (it died
/// or froze; see `takeover`), claimed for this process: the ones due (in queue order), after
/// its calls in flight are recovered (`unknown`, never redialled). The dispatcher puts them
/// ahead of the batch it holds.
pub async fn take_over(
    pg: &Pg,
    campaign_id: i64,
    now_ms: i64,
    limit: usize,
    exclude: HashSet<i64>,
) -> Result<Vec<DueContact>, StoreError> {
    recover_expired(pg, campaign_id, now_ms, false).await?;
    // Only rows leased to another owner, found through the partial index `contacts_leased`.
    let claim = format!(
        "UPDATE contacts SET lease_owner = $4, lease_until = {DB_NOW} + $5, epoch = epoch + 1
         WHERE id IN (
           SELECT id FROM contacts
           WHERE campaign_id = $1 AND lease_owner IS NOT NULL AND lease_owner <> $4
             AND lease_until <= {DB_NOW} AND status = 'pending' AND next_at <= $2
             AND NOT (id = ANY($6::BIGINT[]))
           ORDER BY next_at, id LIMIT $3
           FOR UPDATE SKIP LOCKED)
         RETURNING {}, next_at, epoch",
        rows::DUE_COLUMNS
    );
    claim_in_order(pg, campaign_id, now_ms, limit, exclude, &[claim]).await
}

/// Run the claiming statements `claims` in turn (each `$1` campaign, `$2` now, `$3` how many
/// more, `$4` owner, `$5` lease length, `$6` ids to pass over) until `limit` rows are claimed;
/// each claim is held in this process's leases. The rows in queue order (due time, then id).
async fn claim_in_order(
    pg: &Pg,
    campaign_id: i64,
    now_ms: i64,
    limit: usize,
    exclude: HashSet<i64>,
    claims: &[String],
) -> Result<Vec<DueContact>, StoreError> {
    let leases = pg.leases();
    let exclude: Vec<i64> = exclude.into_iter().collect();
    let c = pg.client().await?;
    let mut out: Vec<(i64, DueContact)> = Vec::with_capacity(limit);
    for sql in claims {
        let want = (limit - out.len()) as i64;
        if want <= 0 {
            break;
        }
        let stmt = c.prepare_cached(sql).await?;
        let asked = std::time::Instant::now();
        let rows = c
            .query(
                &stmt,
                &[
                    &campaign_id,
                    &now_ms,
                    &want,
                    &leases.owner(),
                    &leases.ttl_ms(),
                    &exclude,
                ],
            )
            .await?;
        let mut got = Vec::with_capacity(rows.len());
        for r in &rows {
            let due = rows::due_row(r)?;
            let next_at: i64 = r.try_get(7)?;
            let epoch: i64 = r.try_get(8)?;
            leases.hold(
                due.id,
                Claim {
                    campaign_id,
                    epoch,
                    confirmed: asked,
                },
            );
            got.push((next_at, due));
        }
        got.sort_by_key(|(next_at, d)| (*next_at, d.id));
        out.extend(got);
    }
    if !out.is_empty() {
        pg.renew_leases();
    }
    Ok(out.into_iter().map(|(_, d)| d).collect())
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
///
/// Round trips: the reads (writer fence, row lock, records, callee lock, the callee's recent
/// calls) go out together, then the write (one statement), then the commit. Every statement is
/// prepared before any is sent: pipelined requests leave in the order they are first polled,
/// and one that still had to be prepared would leave after those behind it.
pub async fn begin_attempt_checked(
    pg: &Pg,
    contact_id: i64,
    started_at_ms: i64,
    caller: Option<String>,
    guard: Option<PersonGuard>,
    await_records: bool,
) -> Result<Begun, StoreError> {
    use futures_util::future::try_join5;
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let leases = pg.leases();
    let held = pg.writer();
    let fence = match held {
        Some(_) => Some(super::writer::fence_statement(&tx).await?),
        None => None,
    };
    let lock = tx
        .prepare_cached(&format!(
            "SELECT callee, status, campaign_id, epoch, lease_owner, lease_until, {DB_NOW}
             FROM contacts WHERE id = $1 FOR UPDATE"
        ))
        .await?;
    let records = match await_records {
        true => Some(
            tx.prepare_cached(
                "SELECT MAX(sent_at) FROM outcome_checks
                 WHERE contact_id = $1 AND kind = 'retry_check'",
            )
            .await?,
        ),
        false => None,
    };
    let person = match &guard {
        Some(_) => Some((
            tx.prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtext('ccc-dialer callee ' || callee))
                 FROM contacts WHERE id = $1",
            )
            .await?,
            // Read after the callee's lock (the statements run in order): the calls of a
            // transaction that held it are committed by then.
            tx.prepare_cached(
                "SELECT d.at FROM dials d JOIN contacts k ON k.callee = d.callee
                 WHERE k.id = $1 AND d.at >= $2",
            )
            .await?,
        )),
        None => None,
    };
    let since = guard.as_ref().map_or(0, |g| g.since_ms);
    let asked = std::time::Instant::now();
    // Written down only while this process is the store's one writer.
    let (_, row, records, _, recent) = try_join5(
        async {
            match (held, &fence) {
                (Some(held), Some(stmt)) => super::writer::fence(&tx, stmt, held).await,
                _ => Ok(()),
            }
        },
        async { Ok::<_, StoreError>(tx.query_opt(&lock, &[&contact_id]).await?) },
        async {
            match &records {
                Some(stmt) => Ok::<_, StoreError>(Some(tx.query_one(stmt, &[&contact_id]).await?)),
                None => Ok(None),
            }
        },
        async {
            match &person {
                Some((lock, _)) => Ok::<_, StoreError>(tx.execute(lock, &[&contact_id]).await?),
                None => Ok(0),
            }
        },
        async {
            match &person {
                Some((_, recent)) => Ok::<_, StoreError>(
                    tx.query(recent, &[&contact_id, &since])
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<Result<Vec<i64>, _>>()?,
                ),
                None => Ok(Vec::new()),
            }
        },
    )
    .await?;
    let Some(row) = row else {
        leases.drop_claim(contact_id);
        return Err(StoreError::NotPending(contact_id));
    };
    let callee: String = row.try_get(0)?;
    let status: String = row.try_get(1)?;
    let campaign_id: i64 = row.try_get(2)?;
    let epoch: i64 = row.try_get(3)?;
    let owner: Option<String> = row.try_get(4)?;
    let until: Option<i64> = row.try_get(5)?;
    let db_now: i64 = row.try_get(6)?;
    let mine = owner.as_deref() == Some(leases.owner());
    let live = until.is_some_and(|u| u > db_now);
    // The fence: an attempt is written down only under this process's live claim, taken by the
    // dispatcher (`due_contacts`) or, for a contact nobody holds (a single call), here.
    let epoch = match leases.get(contact_id) {
        Some(claim) if claim.epoch == epoch && mine && live => epoch,
        Some(_) => {
            leases.drop_claim(contact_id);
            return Err(StoreError::LeaseLost(contact_id));
        }
        None if mine || !live || owner.is_none() => epoch + 1,
        None => return Err(StoreError::LeaseLost(contact_id)),
    };
    if status != Status::Pending.as_str() {
        leases.drop_claim(contact_id);
        return Err(StoreError::NotPending(contact_id));
    }
    if let Some(r) = records {
        let next: Option<i64> = r.try_get(0)?;
        if let Some(next) = next {
            return Err(StoreError::AwaitingRecords(next));
        }
    }
    if let Some(g) = guard {
        g.judge(contact_id, &recent, started_at_ms)?;
    }
    // The attempt (numbered after the contact's others), its dial, and the contact in flight
    // under a fresh lease (renewed until the reply is recorded), in one statement: the row lock
    // above makes the move certain; without it, nothing at all is written.
    let write = tx
        .prepare_cached(&format!(
            "WITH moved AS (
               UPDATE contacts SET status = 'in_flight', gate = NULL, updated_at = $2,
                 epoch = $3, lease_owner = $4, lease_until = {DB_NOW} + $5
               WHERE id = $1 AND status = 'pending'
               RETURNING id),
             attempt AS (
               INSERT INTO attempts (contact_id, n, started_at, caller, epoch)
               SELECT m.id, (SELECT COUNT(*) + 1 FROM attempts WHERE contact_id = $1), $2, $6, $3
               FROM moved m
               RETURNING id, n),
             dial AS (
               INSERT INTO dials (attempt_id, callee, at) SELECT a.id, $7, $2 FROM attempt a)
             SELECT n FROM attempt"
        ))
        .await?;
    let written = tx
        .query_opt(
            &write,
            &[
                &contact_id,
                &started_at_ms,
                &epoch,
                &leases.owner(),
                &leases.ttl_ms(),
                &caller,
                &callee,
            ],
        )
        .await?;
    let Some(written) = written else {
        return Err(StoreError::NotPending(contact_id));
    };
    let n: i64 = written.try_get(0)?;
    // Last before the commit: the account's window is locked from here to the commit.
    let slot = super::window::reserve(&tx, pg, crate::ccc::ACTION).await?;
    tx.commit().await?;
    leases.hold(
        contact_id,
        Claim {
            campaign_id,
            epoch,
            confirmed: asked,
        },
    );
    pg.renew_leases();
    Ok(Begun { n, slot })
}

/// The twin of SQLite's, fenced (see `lease`): the attempt's result is always recorded (keyed
/// by the attempt: the request left, what it did must not be lost); the contact is released
/// with it only while the claim it was written under is still this process's. If another
/// replica recovered the contact meanwhile (`unknown`, in doubt), a final result (`placed`,
/// `failed`) resolves that doubt; nothing else is written (never back to `pending`: that
/// would be a new send). With `with_result`, the contact's result row is read in the same
/// transaction (after every write of it). Returns the held push claimed, whether the claim
/// was lost, and the result row.
///
/// Round trips: the attempt, its dial and the contact go out together (the contact's fence
/// reads the attempt's epoch in the statement itself), with the result row read behind them;
/// then the held push of the session, if the contact was released; then the commit.
pub async fn finish_attempt(
    pg: &Pg,
    contact_id: i64,
    attempt_no: i64,
    o: AttemptOutcome,
    with_result: bool,
) -> Result<(Option<crate::store::Arrival>, bool, Option<ResultRow>), StoreError> {
    use futures_util::future::try_join4;
    let leases = pg.leases();
    leases.drop_claim(contact_id);
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let attempt = tx
        .prepare_cached(
            "UPDATE attempts SET finished_at = $3, outcome = $4, code = $5, message = $6,
               session_id = $7, request_id = $8, sent_at = $9
             WHERE contact_id = $1 AND n = $2 RETURNING epoch",
        )
        .await?;
    let refused = o.outcome == "error"
        && !o
            .error_code
            .as_deref()
            .is_some_and(crate::policy::may_have_placed);
    // The service refused it or it never left: nobody's phone rang. (An internal error may
    // have come after the call was created: its dial stays.)
    let dial = match (refused || o.outcome == "not_sent", o.sent_at) {
        (true, _) => Some((
            tx.prepare_cached(
                "DELETE FROM dials WHERE attempt_id =
                   (SELECT id FROM attempts WHERE contact_id = $1 AND n = $2)",
            )
            .await?,
            None,
        )),
        (false, Some(sent)) => Some((
            tx.prepare_cached(
                "UPDATE dials SET at = $3 WHERE attempt_id =
                   (SELECT id FROM attempts WHERE contact_id = $1 AND n = $2)",
            )
            .await?,
            Some(sent),
        )),
        (false, None) => None,
    };
    // Released only under the claim its attempt was written under (an attempt without an
    // epoch, or none, was written before leases: not fenced).
    let contact = tx
        .prepare_cached(
            "UPDATE contacts k SET status = $2, attempts = $3, reschedules = $4, next_at = $5,
               session_id = COALESCE($6, session_id), request_id = COALESCE($7, request_id),
               error_code = $8, error_message = $9, updated_at = $10,
               lease_owner = NULL, lease_until = NULL
             WHERE k.id = $1 AND NOT EXISTS (
               SELECT 1 FROM attempts a WHERE a.contact_id = $1 AND a.n = $11
                 AND a.epoch IS NOT NULL
                 AND (a.epoch <> k.epoch OR k.lease_owner IS DISTINCT FROM $12))",
        )
        .await?;
    let result = match with_result {
        true => Some(tx.prepare_cached(result_sql()).await?),
        false => None,
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
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
        &attempt_no,
        &leases.owner(),
    ];
    let (row, _, changed, read) = try_join4(
        async {
            Ok::<_, StoreError>(
                tx.query_opt(
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
                .await?,
            )
        },
        async {
            match &dial {
                Some((stmt, None)) => {
                    Ok::<_, StoreError>(tx.execute(stmt, &[&contact_id, &attempt_no]).await?)
                }
                Some((stmt, Some(sent))) => {
                    Ok(tx.execute(stmt, &[&contact_id, &attempt_no, sent]).await?)
                }
                None => Ok(0),
            }
        },
        async { Ok::<_, StoreError>(tx.execute(&contact, &params).await? == 1) },
        async {
            match &result {
                Some(stmt) => Ok::<_, StoreError>(tx.query_opt(stmt, &[&contact_id]).await?),
                None => Ok(None),
            }
        },
    )
    .await?;
    let written_under: Option<i64> = row.as_ref().map(|r| r.try_get(0)).transpose()?.flatten();
    let mut changed = changed;
    let mut read = read;
    let fenced_out = !changed;
    if fenced_out && matches!(o.status, Status::Placed | Status::Failed) {
        // Recovered by another replica while this reply was on its way: the reply settles the
        // doubt, as the call records would have.
        let resolve = tx
            .prepare_cached(
                "UPDATE contacts SET status = $2, attempts = $3, reschedules = $4, next_at = $5,
                   session_id = COALESCE($6, session_id), request_id = COALESCE($7, request_id),
                   error_code = $8, error_message = $9, updated_at = $10
                 WHERE id = $1 AND status = 'unknown' AND error_code = 'InDoubt'
                   AND $11::BIGINT IS NOT NULL AND $12::TEXT IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = $1
                                   AND a.n > $13)",
            )
            .await?;
        let mut with_n: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
        with_n[10] = &written_under;
        with_n.push(&attempt_no);
        changed = tx.execute(&resolve, &with_n).await? == 1;
        read = None;
    }
    // A push of this session that came before the reply: its record arrives now.
    let claimed = match (&o.session_id, changed) {
        (Some(session), true) => super::outcomes::claim_held_push(&tx, session, contact_id).await?,
        _ => None,
    };
    // Read again after a write the first read came before.
    if let (Some(stmt), true) = (&result, read.is_none() || claimed.is_some()) {
        read = tx.query_opt(stmt, &[&contact_id]).await?;
    }
    let result_row = match (with_result, read) {
        (false, _) => None,
        (true, Some(r)) => Some(rows::result_row(&r)?),
        (true, None) => return Err(StoreError::Other(format!("no contact {contact_id}"))),
    };
    tx.commit().await?;
    if fenced_out {
        tracing::warn!(
            contact = contact_id,
            attempt = attempt_no,
            outcome = o.outcome,
            resolved = changed,
            "a reply arrived after this replica's lease on its contact was lost: recorded on its attempt only"
        );
    }
    Ok((claimed, fenced_out, result_row))
}

/// The query of one contact's result row (as SQLite's `store::result_of`).
fn result_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        dollars(&format!(
            "SELECT {RESULT_COLUMNS} FROM {RESULT_FROM} WHERE k.id = ?1"
        ))
    })
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
    let stmt = c.prepare_cached(result_sql()).await?;
    match c.query_opt(&stmt, &[&contact_id]).await? {
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
