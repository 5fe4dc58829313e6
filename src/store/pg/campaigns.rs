//! Campaigns (PostgreSQL twins of `store::campaigns`): creation, lookup, state, inbox files.

use tokio_postgres::Row;

use super::queue::dollars;
use super::Pg;
use crate::store::campaigns::{CreateCheck, Refused, OPEN_CALL, TWIN};
use crate::store::{Campaign, CampaignState, NewCampaign, StoreError};

const COLUMNS: &str =
    "id, name, fingerprint, source, intake_done, state, reason, settings, priority, \
     created_at, purged_at";

fn campaign_row(r: &Row) -> Result<Campaign, StoreError> {
    let state: String = r.try_get(5)?;
    Ok(Campaign {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        fingerprint: r.try_get(2)?,
        source: r.try_get(3)?,
        intake_done: r.try_get(4)?,
        state: state.parse().map_err(StoreError::Other)?,
        reason: r.try_get(6)?,
        settings: r.try_get(7)?,
        priority: r.try_get(8)?,
        created_at: r.try_get(9)?,
        purged_at: r.try_get(10)?,
    })
}

async fn query_one<C: deadpool_postgres::GenericClient>(
    c: &C,
    filter: &str,
    arg: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<Campaign>, StoreError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM campaigns WHERE {filter}"),
        &[arg],
    )
    .await?
    .map(|r| campaign_row(&r))
    .transpose()
}

pub async fn find_campaign(pg: &Pg, name: String) -> Result<Option<Campaign>, StoreError> {
    let c = pg.client().await?;
    query_one(&c, "name = $1", &name).await
}

pub async fn campaign(pg: &Pg, id: i64) -> Result<Option<Campaign>, StoreError> {
    let c = pg.client().await?;
    query_one(&c, "id = $1", &id).await
}

/// The advisory lock's first key for creations checked against their contacts file: "cccf".
const CREATE_CLASS: i32 = 0x6363_6366;

pub async fn create_campaign_unless(
    pg: &Pg,
    new: NewCampaign,
    check: CreateCheck,
    now_ms: i64,
) -> Result<Result<Campaign, Refused>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    if check != CreateCheck::Name {
        // Creations of one contacts file, from any replica, one at a time: the second sees
        // the first's campaign (committed when the lock is let go).
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))",
            &[&CREATE_CLASS, &new.fingerprint],
        )
        .await?;
    }
    match check {
        CreateCheck::Name => {}
        CreateCheck::NoTwinSince(since) => {
            let sql = dollars(&format!(
                "SELECT {COLUMNS} FROM campaigns WHERE {TWIN} ORDER BY id LIMIT 1"
            ));
            if let Some(r) = tx
                .query_opt(&sql, &[&new.fingerprint, &new.name, &since])
                .await?
            {
                return Ok(Err(Refused::Twin(campaign_row(&r)?)));
            }
        }
        CreateCheck::NoOpenCall => {
            let sql = dollars(&format!(
                "SELECT id FROM campaigns WHERE {OPEN_CALL} LIMIT 1"
            ));
            if let Some(r) = tx.query_opt(&sql, &[&new.fingerprint]).await? {
                return Ok(Err(Refused::OpenCall(r.try_get(0)?)));
            }
        }
    }
    let state = match new.paused {
        Some(_) => CampaignState::Paused,
        None => CampaignState::Active,
    };
    // The name's unique constraint decides a race: the second insert waits for the first
    // transaction and then inserts nothing.
    let id: Option<i64> = tx
        .query_opt(
            "INSERT INTO campaigns (name, fingerprint, source, created_at, settings, priority,
                                    updated_at, state, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $4, $7, $8)
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[
                &new.name,
                &new.fingerprint,
                &new.source,
                &now_ms,
                &new.settings,
                &new.priority,
                &state.as_str(),
                &new.paused,
            ],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let Some(id) = id else {
        return Ok(Err(Refused::NameTaken));
    };
    if let Some((name, fingerprint)) = &new.inbox {
        tx.execute(
            "INSERT INTO inbox_files (name, fingerprint, campaign_id, outcome, at)
             VALUES ($1, $2, $3, 'importing', $4)",
            &[name, fingerprint, &id, &now_ms],
        )
        .await?;
    }
    let campaign = query_one(&tx, "id = $1", &id)
        .await?
        .ok_or_else(|| StoreError::Other("campaign vanished after insert".into()))?;
    tx.commit().await?;
    Ok(Ok(campaign))
}

pub async fn campaigns(pg: &Pg) -> Result<Vec<Campaign>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY id"), &[])
        .await?;
    rows.iter().map(campaign_row).collect()
}

pub async fn mark_intake_done(pg: &Pg, campaign_id: i64) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "UPDATE campaigns SET intake_done = true WHERE id = $1",
        &[&campaign_id],
    )
    .await?;
    Ok(())
}

pub async fn set_campaign_state(
    pg: &Pg,
    campaign_id: i64,
    state: CampaignState,
    reason: Option<String>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE campaigns SET state = $2, reason = $3, updated_at = $4
             WHERE id = $1 AND state NOT IN ('cancelled', 'completed')",
            &[&campaign_id, &state.as_str(), &reason, &now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn set_active_reason(
    pg: &Pg,
    campaign_id: i64,
    reason: Option<String>,
) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "UPDATE campaigns SET reason = $2 WHERE id = $1 AND state = 'active'
           AND reason IS DISTINCT FROM $2",
        &[&campaign_id, &reason],
    )
    .await?;
    Ok(())
}

pub async fn complete_if_done(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE campaigns SET state = 'completed', reason = NULL, updated_at = $2
             WHERE id = $1 AND state NOT IN ('cancelled', 'completed')
               AND NOT EXISTS (SELECT 1 FROM contacts
                               WHERE campaign_id = $1 AND status IN ('pending', 'in_flight'))",
            &[&campaign_id, &now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn reopen(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    let n = c
        .execute(
            "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = $2
             WHERE id = $1 AND state = 'completed'",
            &[&campaign_id, &now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn last_line(pg: &Pg, campaign_id: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    let n: Option<i64> = c
        .query_one(
            "SELECT MAX(line) FROM contacts WHERE campaign_id = $1",
            &[&campaign_id],
        )
        .await?
        .try_get(0)?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

pub async fn forget_unattempted_after(
    pg: &Pg,
    campaign_id: i64,
    after_line: u64,
) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "DELETE FROM contacts
         WHERE campaign_id = $1 AND line > $2 AND status IN ('pending', 'skipped')
           AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = contacts.id)
           AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.contact_id = contacts.id)
           AND NOT EXISTS (SELECT 1 FROM outcome_checks o WHERE o.contact_id = contacts.id)",
        &[&campaign_id, &(after_line as i64)],
    )
    .await?)
}

pub async fn has_open_contacts(pg: &Pg, campaign_id: i64) -> Result<bool, StoreError> {
    let c = pg.client().await?;
    Ok(c.query_opt(
        "SELECT 1 FROM contacts WHERE campaign_id = $1 AND status IN ('pending', 'in_flight')
         LIMIT 1",
        &[&campaign_id],
    )
    .await?
    .is_some())
}

pub async fn cancel_pending(pg: &Pg, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE contacts SET status = 'cancelled', error_code = 'Cancelled',
           error_message = 'campaign cancelled before this contact was dialled',
           updated_at = $2
         WHERE campaign_id = $1 AND status = 'pending'",
        &[&campaign_id, &now_ms],
    )
    .await?)
}

/// The requests of a campaign that reached the network since `since_ms` (attempts by their
/// time index, each finding its contact by id), and when the first of them started.
pub async fn sends_window(
    pg: &Pg,
    campaign_id: i64,
    since_ms: i64,
) -> Result<(u64, Option<i64>), StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT COUNT(*), MIN(a.started_at) FROM attempts a
               JOIN contacts k ON k.id = a.contact_id
             WHERE a.started_at >= $2 AND k.campaign_id = $1
               AND COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')",
        )
        .await?;
    let r = c.query_one(&stmt, &[&campaign_id, &since_ms]).await?;
    let n: i64 = r.try_get(0)?;
    Ok((n.max(0) as u64, r.try_get(1)?))
}

pub async fn inbox_file(
    pg: &Pg,
    name: String,
    fingerprint: String,
) -> Result<Option<(Option<i64>, String)>, StoreError> {
    let c = pg.client().await?;
    c.query_opt(
        "SELECT campaign_id, outcome FROM inbox_files WHERE name = $1 AND fingerprint = $2",
        &[&name, &fingerprint],
    )
    .await?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

pub async fn record_inbox_file(
    pg: &Pg,
    name: String,
    fingerprint: String,
    campaign_id: Option<i64>,
    outcome: String,
    detail: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO inbox_files (name, fingerprint, campaign_id, outcome, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name, fingerprint) DO UPDATE SET
           campaign_id = excluded.campaign_id, outcome = excluded.outcome,
           detail = excluded.detail, at = excluded.at",
        &[
            &name,
            &fingerprint,
            &campaign_id,
            &outcome,
            &detail,
            &now_ms,
        ],
    )
    .await?;
    Ok(())
}

pub async fn check_writable(pg: &Pg, now_ms: i64) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('ready_check', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&now_ms.to_string()],
    )
    .await?;
    Ok(())
}
