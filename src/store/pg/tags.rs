//! What the AI agent learned in answered calls and the own do-not-call list (PostgreSQL twins
//! of part of `store::tags`): the results file's extra cells and the own list's numbers. The
//! tag checks, recording tags and analyses, and editing the own list are not here yet (they
//! refuse on PostgreSQL).

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;

use super::Pg;
use crate::store::{ResultExtras, StoreError};

/// The cells the results file appends for one contact (see `store::tags::extra_cells`).
pub(super) async fn extra_cells<C: GenericClient>(
    c: &C,
    contact_id: i64,
    names: &[String],
    analysis: bool,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::with_capacity(names.len() + 3);
    if analysis {
        let a = c
            .query_opt(
                "SELECT summary, mood, intention FROM session_analysis
                 WHERE contact_id = $1 ORDER BY recorded_at DESC, ctid DESC LIMIT 1",
                &[&contact_id],
            )
            .await?;
        let (s, m, i): (String, String, String) = match a {
            Some(r) => (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
            None => Default::default(),
        };
        out.extend([s, m, i]);
    }
    if !names.is_empty() {
        let mut values: HashMap<String, String> = HashMap::new();
        for r in c
            .query(
                "SELECT name, value FROM session_tags WHERE session_id =
                   (SELECT session_id FROM session_tags WHERE contact_id = $1
                    ORDER BY id DESC LIMIT 1)",
                &[&contact_id],
            )
            .await?
        {
            values.insert(r.try_get(0)?, r.try_get(1)?);
        }
        out.extend(names.iter().map(|n| values.remove(n).unwrap_or_default()));
    }
    Ok(out)
}

pub async fn result_extras(pg: &Pg, campaign_id: i64) -> Result<ResultExtras, StoreError> {
    let c = pg.client().await?;
    let analysis = c
        .query_opt(
            "SELECT 1 FROM session_analysis a JOIN contacts k ON k.id = a.contact_id
             WHERE k.campaign_id = $1 LIMIT 1",
            &[&campaign_id],
        )
        .await?
        .is_some();
    Ok(ResultExtras {
        analysis,
        tags: campaign_tag_names(pg, campaign_id).await?,
    })
}

pub async fn campaign_tag_names(pg: &Pg, campaign_id: i64) -> Result<Vec<String>, StoreError> {
    let c = pg.client().await?;
    c.query(
        "SELECT name FROM campaign_tag_names WHERE campaign_id = $1 ORDER BY seq, name",
        &[&campaign_id],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

pub async fn own_dnc_numbers(pg: &Pg) -> Result<HashSet<String>, StoreError> {
    let c = pg.client().await?;
    c.query("SELECT number FROM dnc_entries", &[])
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}
