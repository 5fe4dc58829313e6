//! What the AI agent learned in answered calls and the own do-not-call list (PostgreSQL twins
//! of `store::tags`): the tag and analysis checks, writing a session's tags (with the opt-out
//! they make) and its analysis once, the results file's extra cells, and the own list. Writers
//! of one session's results take its transaction-scoped advisory lock first.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::Pg;
use crate::calling::opt_out::OwnEntry;
use crate::outcomes::ai_results::{Analysis, Kind, Tag};
use crate::store::{
    DueTagCheck, ResultExtras, SessionResults, StoreError, TagActions, TagsWritten,
};

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

fn due_check(r: &Row) -> Result<DueTagCheck, StoreError> {
    let kind: String = r.try_get(1)?;
    Ok(DueTagCheck {
        session_id: r.try_get(0)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Tags),
        contact_id: r.try_get(2)?,
        call_at: r.try_get(3)?,
        ended_at: r.try_get(4)?,
        checks: r.try_get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

fn tag_row(r: &Row, from: usize) -> Result<Tag, StoreError> {
    Ok(Tag {
        name: r.try_get(from)?,
        info_type: r.try_get(from + 1)?,
        info_content: r.try_get(from + 2)?,
        value: r.try_get(from + 3)?,
        result: r.try_get(from + 4)?,
    })
}

fn own_entry(r: &Row) -> Result<OwnEntry, StoreError> {
    Ok(OwnEntry {
        number: r.try_get(0)?,
        added_at: r.try_get(1)?,
        source: r.try_get(2)?,
        campaign_id: r.try_get(3)?,
        campaign: r.try_get(4)?,
        session_id: r.try_get(5)?,
        reason: r.try_get(6)?,
    })
}

/// SQLite's `add_own_dnc`: `number` on the own list (kept as first added) and logged.
pub(crate) async fn add_own_dnc(
    tx: &Transaction<'_>,
    number: &str,
    source: &str,
    campaign_id: Option<i64>,
    session_id: Option<&str>,
    reason: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO dnc_entries (number, added_at, source, campaign_id, session_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &number,
                &now_ms,
                &source,
                &campaign_id,
                &session_id,
                &reason,
            ],
        )
        .await?;
    if n == 1 {
        tx.execute(
            "INSERT INTO dnc_log (number, action, at, source, campaign_id, session_id, reason)
             VALUES ($1, 'add', $2, $3, $4, $5, $6)",
            &[
                &number,
                &now_ms,
                &source,
                &campaign_id,
                &session_id,
                &reason,
            ],
        )
        .await?;
    }
    Ok(n == 1)
}

/// The contact a session belongs to: its check's, else its attempt's.
async fn session_contact(
    tx: &Transaction<'_>,
    session_id: &str,
) -> Result<Option<i64>, StoreError> {
    let from_check = tx
        .query_opt(
            "SELECT contact_id FROM tag_checks WHERE session_id = $1 LIMIT 1",
            &[&session_id],
        )
        .await?;
    if let Some(r) = from_check {
        return Ok(Some(r.try_get(0)?));
    }
    tx.query_opt(
        "SELECT contact_id FROM attempts WHERE session_id = $1 LIMIT 1",
        &[&session_id],
    )
    .await?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

/// Take the session's transaction-scoped lock (its tags or analysis written once even when
/// two answers race).
async fn lock_session(tx: &Transaction<'_>, session_id: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ccc-dialer session ' || $1))",
        &[&session_id],
    )
    .await?;
    Ok(())
}

pub async fn set_tag_kinds(pg: &Pg, kinds: Vec<Kind>, since_ms: i64) -> Result<(), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    tx.execute("DELETE FROM tag_kinds", &[]).await?;
    for k in &kinds {
        tx.execute("INSERT INTO tag_kinds (kind) VALUES ($1)", &[&k.as_str()])
            .await?;
        let done = match k {
            Kind::Tags => "session_tags",
            Kind::Analysis => "session_analysis",
        };
        tx.execute(
            &format!(
                "INSERT INTO tag_checks
                   (session_id, kind, contact_id, call_at, ended_at, next_check_at)
                 SELECT o.session_id, $1, o.contact_id,
                        COALESCE(NULLIF(o.ring_at, 0), o.answered_at), o.ended_at, o.recorded_at
                 FROM outcomes o
                 WHERE o.answered_at > 0 AND o.recorded_at >= $2
                   AND NOT EXISTS (SELECT 1 FROM {done} d WHERE d.session_id = o.session_id)
                 ON CONFLICT DO NOTHING"
            ),
            &[&k.as_str(), &since_ms],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn next_tag_check_due(pg: &Pg, kind: Kind) -> Result<Option<i64>, StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached("SELECT MIN(next_check_at) FROM tag_checks WHERE kind = $1")
        .await?;
    Ok(c.query_one(&stmt, &[&kind.as_str()]).await?.try_get(0)?)
}

pub async fn due_tag_checks(
    pg: &Pg,
    kind: Kind,
    until_ms: i64,
    limit: usize,
) -> Result<Vec<DueTagCheck>, StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT session_id, kind, contact_id, call_at, ended_at, checks FROM tag_checks
             WHERE kind = $1 AND next_check_at <= $2 ORDER BY next_check_at LIMIT $3",
        )
        .await?;
    c.query(&stmt, &[&kind.as_str(), &until_ms, &(limit as i64)])
        .await?
        .iter()
        .map(due_check)
        .collect()
}

pub async fn pending_tag_checks(pg: &Pg, campaign_ids: Vec<i64>) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM tag_checks t JOIN contacts k ON k.id = t.contact_id
             WHERE k.campaign_id = ANY($1) AND t.kind IN (SELECT kind FROM tag_kinds)",
            &[&campaign_ids],
        )
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

pub async fn reschedule_tag_checks(
    pg: &Pg,
    kind: Kind,
    next: Vec<(String, Option<i64>)>,
) -> Result<(), StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let again = tx
        .prepare_cached(
            "UPDATE tag_checks SET checks = checks + 1, next_check_at = $3
             WHERE session_id = $1 AND kind = $2",
        )
        .await?;
    let drop = tx
        .prepare_cached("DELETE FROM tag_checks WHERE session_id = $1 AND kind = $2")
        .await?;
    for (session, at) in &next {
        match at {
            Some(at) => tx.execute(&again, &[session, &kind.as_str(), at]).await?,
            None => tx.execute(&drop, &[session, &kind.as_str()]).await?,
        };
    }
    tx.commit().await?;
    Ok(())
}

pub async fn record_tags(
    pg: &Pg,
    session_id: String,
    tags: Vec<Tag>,
    actions: TagActions,
    now_ms: i64,
) -> Result<TagsWritten, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    lock_session(&tx, &session_id).await?;
    let mut out = TagsWritten::default();
    let seen = tx
        .query_opt(
            "SELECT 1 FROM session_tags WHERE session_id = $1 LIMIT 1",
            &[&session_id],
        )
        .await?
        .is_some();
    let contact = session_contact(&tx, &session_id).await?;
    tx.execute(
        "DELETE FROM tag_checks WHERE session_id = $1 AND kind = 'tags'",
        &[&session_id],
    )
    .await?;
    let of = match contact {
        Some(id) => tx
            .query_opt(
                "SELECT callee, campaign_id FROM contacts WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| -> Result<_, StoreError> {
                Ok((id, r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?))
            })
            .transpose()?,
        None => None,
    };
    let Some((contact_id, callee, campaign_id)) = of else {
        tx.commit().await?;
        return Ok(out);
    };
    if seen {
        tx.commit().await?;
        return Ok(out);
    }
    out.new = true;
    let insert = tx
        .prepare_cached(
            "INSERT INTO session_tags (session_id, contact_id, campaign_id, name, info_type,
               info_content, value, result, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .await?;
    let name = tx
        .prepare_cached(
            "INSERT INTO campaign_tag_names (campaign_id, name, seq) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    // A name's order is the id of the tag that brought it first (SQLite's last insert id).
    let mut seq: i64 = 0;
    for t in &tags {
        if let Some(r) = tx
            .query_opt(
                &insert,
                &[
                    &session_id,
                    &contact_id,
                    &campaign_id,
                    &t.name,
                    &t.info_type,
                    &t.info_content,
                    &t.value,
                    &t.result,
                    &now_ms,
                ],
            )
            .await?
        {
            seq = r.try_get(0)?;
        }
        tx.execute(&name, &[&campaign_id, &t.name, &seq]).await?;
    }
    if let Some(rule) = &actions.opt_out {
        if rule.matches(&tags).is_some() {
            let reason = format!(
                "opted out: post-call tag {} in campaign {campaign_id}, session {session_id}",
                rule.describe()
            );
            add_own_dnc(
                &tx,
                &callee,
                "opt_out_tag",
                Some(campaign_id),
                Some(&session_id),
                &reason,
                now_ms,
            )
            .await?;
            out.opted_out = Some(callee.clone());
        }
    }
    // The campaign's `[[redial.on_tag]]` (its stored policy), in this transaction (SQLite's
    // record_tags); an opted-out number is never called again.
    if out.opted_out.is_none() {
        if let Some(policy) = super::redials::policy_of(&tx, campaign_id).await? {
            let ended_ms: Option<i64> = tx
                .query_opt(
                    "SELECT ended_at FROM outcomes WHERE session_id = $1",
                    &[&session_id],
                )
                .await?
                .map(|r| r.try_get::<_, Option<i64>>(0))
                .transpose()?
                .flatten()
                .filter(|s| *s > 0)
                .map(|s| s.saturating_mul(1000));
            if let Some((rule, at)) =
                crate::outcomes::tag_rules::redial_match(&policy.on_tag, &tags, ended_ms, now_ms)
            {
                let cause = format!(
                    "post-call tag {} in session {session_id}; redial after {}",
                    rule.describe(),
                    crate::redial::human(rule.after.unwrap_or_default())
                );
                let decision = super::redials::schedule_redial_tx(
                    &tx,
                    contact_id,
                    &session_id,
                    at,
                    &cause,
                    policy.max_dials,
                    now_ms,
                )
                .await?;
                out.redial = Some((rule.describe(), decision));
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

pub async fn record_analysis(
    pg: &Pg,
    session_id: String,
    analysis: Analysis,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    lock_session(&tx, &session_id).await?;
    let contact = session_contact(&tx, &session_id).await?;
    tx.execute(
        "DELETE FROM tag_checks WHERE session_id = $1 AND kind = 'analysis'",
        &[&session_id],
    )
    .await?;
    let Some(contact_id) = contact else {
        tx.commit().await?;
        return Ok(false);
    };
    let n = tx
        .execute(
            "INSERT INTO session_analysis
               (session_id, contact_id, summary, mood, intention, result, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &session_id,
                &contact_id,
                &analysis.summary,
                &analysis.mood,
                &analysis.intention,
                &analysis.result,
                &now_ms,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

pub async fn session_tags(pg: &Pg, session_id: String) -> Result<Vec<Tag>, StoreError> {
    let c = pg.client().await?;
    c.query(
        "SELECT name, info_type, info_content, value, result FROM session_tags
         WHERE session_id = $1 ORDER BY id",
        &[&session_id],
    )
    .await?
    .iter()
    .map(|r| tag_row(r, 0))
    .collect()
}

pub async fn contact_results(pg: &Pg, contact_id: i64) -> Result<Vec<SessionResults>, StoreError> {
    let c = pg.client().await?;
    let mut out: Vec<SessionResults> = Vec::new();
    for r in c
        .query(
            "SELECT session_id, name, info_type, info_content, value, result FROM session_tags
             WHERE contact_id = $1 ORDER BY id",
            &[&contact_id],
        )
        .await?
    {
        let session: String = r.try_get(0)?;
        let tag = tag_row(&r, 1)?;
        match out.iter_mut().find(|s| s.session_id == session) {
            Some(s) => s.tags.push(tag),
            None => out.push(SessionResults {
                session_id: session,
                tags: vec![tag],
                analysis: None,
            }),
        }
    }
    for r in c
        .query(
            "SELECT session_id, summary, mood, intention, result FROM session_analysis
             WHERE contact_id = $1 ORDER BY recorded_at, ctid",
            &[&contact_id],
        )
        .await?
    {
        let session: String = r.try_get(0)?;
        let a = Analysis {
            summary: r.try_get(1)?,
            mood: r.try_get(2)?,
            intention: r.try_get(3)?,
            result: r.try_get(4)?,
        };
        match out.iter_mut().find(|s| s.session_id == session) {
            Some(s) => s.analysis = Some(a),
            None => out.push(SessionResults {
                session_id: session,
                tags: Vec::new(),
                analysis: Some(a),
            }),
        }
    }
    Ok(out)
}

const OWN_ENTRY: &str = "SELECT d.number, d.added_at, d.source, d.campaign_id, k.name, \
     d.session_id, d.reason FROM dnc_entries d LEFT JOIN campaigns k ON k.id = d.campaign_id";

pub async fn own_dnc_entries(pg: &Pg) -> Result<Vec<OwnEntry>, StoreError> {
    let c = pg.client().await?;
    c.query(&format!("{OWN_ENTRY} ORDER BY d.added_at, d.number"), &[])
        .await?
        .iter()
        .map(own_entry)
        .collect()
}

pub async fn remove_own_dnc(
    pg: &Pg,
    number: String,
    reason: String,
    now_ms: i64,
) -> Result<Option<OwnEntry>, StoreError> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    let entry = tx
        .query_opt(
            &format!("{OWN_ENTRY} WHERE d.number = $1 FOR UPDATE OF d"),
            &[&number],
        )
        .await?
        .map(|r| own_entry(&r))
        .transpose()?;
    if entry.is_some() {
        tx.execute("DELETE FROM dnc_entries WHERE number = $1", &[&number])
            .await?;
        tx.execute(
            "INSERT INTO dnc_log (number, action, at, source, reason)
             VALUES ($1, 'remove', $2, 'operator', $3)",
            &[&number, &now_ms, &reason],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(entry)
}
