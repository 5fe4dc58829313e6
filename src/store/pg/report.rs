//! What `report` reads and the run writes for it (PostgreSQL twins of `store::report`): waits
//! by reason, requests per contact, send times, outcomes by dial, and the `meta` keys.

use super::Pg;
use crate::store::StoreError;

const SENT: &str = "COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')";

pub async fn add_waits(
    pg: &Pg,
    campaign_id: i64,
    add: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO waits (campaign_id, reason, ms) VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id, reason) DO UPDATE SET ms = waits.ms + excluded.ms",
        )
        .await?;
    for (reason, ms) in add {
        tx.execute(&stmt, &[&campaign_id, &reason, &ms]).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn waits(pg: &Pg, campaign_id: i64) -> Result<Vec<(String, u64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT reason, ms FROM waits WHERE campaign_id = $1 ORDER BY ms DESC, reason",
            &[&campaign_id],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect()
}

pub async fn requests_per_contact(
    pg: &Pg,
    campaign_id: i64,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            &format!(
                "SELECT n, COUNT(*) FROM (
                   SELECT k.id, (SELECT COUNT(*) FROM attempts a
                                 WHERE a.contact_id = k.id AND {SENT}) AS n
                   FROM contacts k WHERE k.campaign_id = $1) per_contact
                 GROUP BY n ORDER BY n"
            ),
            &[&campaign_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<_, i64>(0)?.max(0) as u64,
                r.try_get::<_, i64>(1)?.max(0) as u64,
            ))
        })
        .collect()
}

/// Every send time of the campaign in order, streamed.
pub async fn for_each_send<S, F>(
    pg: &Pg,
    campaign_id: i64,
    mut state: S,
    mut each: F,
) -> Result<S, StoreError>
where
    F: FnMut(&mut S, i64),
{
    use futures_util::TryStreamExt;
    let c = pg.client().await?;
    let sql = format!(
        "SELECT COALESCE(a.sent_at, a.started_at) AS t FROM attempts a
         JOIN contacts k ON k.id = a.contact_id
         WHERE k.campaign_id = $1 AND {SENT} ORDER BY t"
    );
    let rows = c.query_raw(&sql, [&campaign_id]).await?;
    futures_util::pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        each(&mut state, r.try_get(0)?);
    }
    Ok(state)
}

pub async fn outcomes_by_dial(
    pg: &Pg,
    campaign_id: i64,
) -> Result<(Vec<(u64, u64, u64, u64)>, Vec<u64>), StoreError> {
    const DIALS: &str = "SELECT a.contact_id, a.session_id,
           ROW_NUMBER() OVER (PARTITION BY a.contact_id ORDER BY a.n) AS d
         FROM attempts a JOIN contacts k ON k.id = a.contact_id
         WHERE k.campaign_id = $1 AND a.outcome = 'placed' AND a.session_id IS NOT NULL";
    let c = pg.client().await?;
    let u = |v: i64| v.max(0) as u64;
    let rows = c
        .query(
            &format!(
                "SELECT s.d, COUNT(*),
                        COUNT(*) FILTER (WHERE o.class IS NOT NULL AND o.class != 'no_record'),
                        COUNT(*) FILTER (WHERE o.class = 'answered')
                 FROM ({DIALS}) s LEFT JOIN outcomes o ON o.session_id = s.session_id
                 GROUP BY s.d ORDER BY s.d"
            ),
            &[&campaign_id],
        )
        .await?;
    let by_dial = rows
        .iter()
        .map(|r| {
            Ok((
                u(r.try_get(0)?),
                u(r.try_get(1)?),
                u(r.try_get(2)?),
                u(r.try_get(3)?),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let rows = c
        .query(
            &format!(
                "SELECT MIN(s.d) FROM ({DIALS}) s JOIN outcomes o ON o.session_id = s.session_id
                 WHERE o.class = 'answered' GROUP BY s.contact_id"
            ),
            &[&campaign_id],
        )
        .await?;
    let first_answers = rows
        .iter()
        .map(|r| Ok(u(r.try_get(0)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((by_dial, first_answers))
}

pub async fn meta(pg: &Pg, key: String) -> Result<Option<String>, StoreError> {
    let c = pg.client().await?;
    c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .await?
        .map(|r| Ok(r.try_get(0)?))
        .transpose()
}

pub async fn set_meta(pg: &Pg, key: String, value: String) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

/// The meta key `key` removed (the outage breaker's state when the endpoint is healthy).
pub async fn delete_meta(pg: &Pg, key: String) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute("DELETE FROM meta WHERE key = $1", &[&key])
        .await?;
    Ok(())
}
