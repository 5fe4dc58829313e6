//! What the AI agent learned in answered calls (schema v10; see `crate::outcomes::tags`), and
//! the account's own do-not-call list that opt-outs feed.
//!
//! Invariants:
//! - A session's tags are written once, all in one transaction with the removal of its check,
//!   the opt-out entry a matching tag makes, and the redial a matching `[[redial.on_tag]]` asks
//!   for: a crash before the commit loses nothing (the check is still there, the session is
//!   asked again); a session's tags seen twice change nothing (the second answer is ignored).
//! - The same for the analysis.
//! - The own list holds normalised numbers (as contacts are stored); an entry is added once
//!   (a later opt-out of the same number keeps the first reason) and removed only by an
//!   operator, with a reason; both are logged in `dnc_log`.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};

use super::{pg, Store, StoreError};
use crate::calling::opt_out::OwnEntry;
use crate::outcomes::ai_results::{Analysis, Kind, Tag};
use crate::outcomes::tag_rules::TagRule;

/// An answered session due for a tag or analysis check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTagCheck {
    pub session_id: String,
    pub kind: Kind,
    pub contact_id: i64,
    /// When the call rang (else was answered), Unix seconds.
    pub call_at: Option<i64>,
    /// When it ended, Unix seconds.
    pub ended_at: Option<i64>,
    /// Checks already made.
    pub checks: u32,
}

/// What the rules of the config do with a session's tags (checked in the writing transaction).
/// A redial by tag follows the `[[redial.on_tag]]` rules of the contact's campaign (its stored
/// redial policy: the config's, or its own in `serve`).
#[derive(Debug, Clone, Default)]
pub struct TagActions {
    /// `[dnc] opt_out_tag`.
    pub opt_out: Option<TagRule>,
}

/// What writing one session's tags did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagsWritten {
    /// False when the session's tags were stored already (nothing changed).
    pub new: bool,
    /// The number the session's opt-out tag put on the own do-not-call list (newly or again).
    pub opted_out: Option<String>,
    /// The campaign's `[[redial.on_tag]]` rule that matched (`name=value`) and what asking for
    /// the redial did (scheduled, or not: `max_dials` reached, not the contact's latest call).
    pub redial: Option<(String, super::RedialDecision)>,
}

/// One session's tags and analysis, for the contact view.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionResults {
    pub session_id: String,
    pub tags: Vec<Tag>,
    pub analysis: Option<Analysis>,
}

fn due_check(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueTagCheck> {
    let kind: String = r.get(1)?;
    Ok(DueTagCheck {
        session_id: r.get(0)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Tags),
        contact_id: r.get(2)?,
        call_at: r.get(3)?,
        ended_at: r.get(4)?,
        checks: r.get(5)?,
    })
}

fn tag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tag> {
    Ok(Tag {
        name: r.get(0)?,
        info_type: r.get(1)?,
        info_content: r.get(2)?,
        value: r.get(3)?,
        result: r.get(4)?,
    })
}

/// Put `number` on the own list (kept as first added if it is there already) and log it.
pub(super) fn add_own_dnc(
    c: &Connection,
    number: &str,
    source: &str,
    campaign_id: Option<i64>,
    session_id: Option<&str>,
    reason: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "INSERT OR IGNORE INTO dnc_entries
               (number, added_at, source, campaign_id, session_id, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            number,
            now_ms,
            source,
            campaign_id,
            session_id,
            reason
        ])?;
    if n == 1 {
        c.prepare_cached(
            "INSERT INTO dnc_log (number, action, at, source, campaign_id, session_id, reason)
             VALUES (?1, 'add', ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            number,
            now_ms,
            source,
            campaign_id,
            session_id,
            reason
        ])?;
    }
    Ok(n == 1)
}

/// The contact's callee and campaign.
fn contact_of(c: &Connection, contact_id: i64) -> Result<Option<(String, i64)>, StoreError> {
    Ok(
        c.prepare_cached("SELECT callee, campaign_id FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

/// The contact a session belongs to: its check's, else its attempt's.
fn session_contact(c: &Connection, session_id: &str) -> Result<Option<i64>, StoreError> {
    let from_check: Option<i64> = c
        .prepare_cached("SELECT contact_id FROM tag_checks WHERE session_id = ?1 LIMIT 1")?
        .query_row([session_id], |r| r.get(0))
        .optional()?;
    if from_check.is_some() {
        return Ok(from_check);
    }
    Ok(
        c.prepare_cached("SELECT contact_id FROM attempts WHERE session_id = ?1 LIMIT 1")?
            .query_row([session_id], |r| r.get(0))
            .optional()?,
    )
}

/// The cells the results file appends for one contact: `summary`, `mood`, `intention` (with
/// `analysis`), then one per name of `names`: the values of the contact's latest session that
/// has tags (and analysis).
pub(super) fn extra_cells(
    c: &Connection,
    contact_id: i64,
    names: &[String],
    analysis: bool,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::with_capacity(names.len() + 3);
    if analysis {
        let a: Option<(String, String, String)> = c
            .prepare_cached(
                "SELECT summary, mood, intention FROM session_analysis
                 WHERE contact_id = ?1 ORDER BY recorded_at DESC, rowid DESC LIMIT 1",
            )?
            .query_row([contact_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (s, m, i) = a.unwrap_or_default();
        out.extend([s, m, i]);
    }
    if !names.is_empty() {
        let latest: Option<String> = c
            .prepare_cached(
                "SELECT session_id FROM session_tags WHERE contact_id = ?1
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([contact_id], |r| r.get(0))
            .optional()?;
        let mut values: HashMap<String, String> = HashMap::new();
        if let Some(session) = latest {
            let mut stmt =
                c.prepare_cached("SELECT name, value FROM session_tags WHERE session_id = ?1")?;
            for r in stmt.query_map([session], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (name, value): (String, String) = r?;
                values.insert(name, value);
            }
        }
        out.extend(names.iter().map(|n| values.remove(n).unwrap_or_default()));
    }
    Ok(out)
}

/// A campaign's extra result columns (see [`super::ResultExtras`]).
pub(super) fn result_extras(
    c: &Connection,
    campaign_id: i64,
) -> Result<super::ResultExtras, StoreError> {
    let analysis = c
        .prepare_cached(
            "SELECT 1 FROM session_analysis a JOIN contacts k ON k.id = a.contact_id
             WHERE k.campaign_id = ?1 LIMIT 1",
        )?
        .exists([campaign_id])?;
    Ok(super::ResultExtras {
        analysis,
        tags: tag_names(c, campaign_id)?,
    })
}

/// The tag names of a campaign in the order first seen.
pub(super) fn tag_names(c: &Connection, campaign_id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT name FROM campaign_tag_names WHERE campaign_id = ?1 ORDER BY seq, name",
    )?;
    let rows = stmt.query_map([campaign_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl Store {
    /// The kinds this process asks for (`tags`, `analysis`): from now on, every answered
    /// session is enrolled for them as its outcome is written. Answered sessions whose outcome
    /// was recorded since `since_ms` and that have no such result yet are enrolled too (kinds
    /// turned on after the fact, a store written by a build without them).
    pub async fn set_tag_kinds(&self, kinds: Vec<Kind>, since_ms: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::set_tag_kinds(pg, kinds, since_ms).await;
        }
        self.call(move |c| {
            c.execute("DELETE FROM tag_kinds", [])?;
            for k in &kinds {
                c.execute("INSERT INTO tag_kinds (kind) VALUES (?1)", [k.as_str()])?;
                let done = match k {
                    Kind::Tags => "session_tags",
                    Kind::Analysis => "session_analysis",
                };
                c.execute(
                    &format!(
                        "INSERT OR IGNORE INTO tag_checks
                           (session_id, kind, contact_id, call_at, ended_at, next_check_at)
                         SELECT o.session_id, ?1, o.contact_id,
                                COALESCE(NULLIF(o.ring_at, 0), o.answered_at), o.ended_at,
                                o.recorded_at
                         FROM outcomes o
                         WHERE o.answered_at > 0 AND o.recorded_at >= ?2
                           AND NOT EXISTS (SELECT 1 FROM {done} d WHERE d.session_id = o.session_id)"
                    ),
                    params![k.as_str(), since_ms],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The earliest `next_check_at` (unix ms) of a check of `kind`.
    pub async fn next_tag_check_due(&self, kind: Kind) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::next_tag_check_due(pg, kind).await;
        }
        self.call(move |c| {
            Ok(
                c.prepare_cached("SELECT MIN(next_check_at) FROM tag_checks WHERE kind = ?1")?
                    .query_row([kind.as_str()], |r| r.get(0))?,
            )
        })
        .await
    }

    /// Checks of `kind` due by `until_ms`, earliest first, at most `limit`.
    pub async fn due_tag_checks(
        &self,
        kind: Kind,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueTagCheck>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::due_tag_checks(pg, kind, until_ms, limit).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT session_id, kind, contact_id, call_at, ended_at, checks FROM tag_checks
                 WHERE kind = ?1 AND next_check_at <= ?2 ORDER BY next_check_at LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![kind.as_str(), until_ms, limit as i64], due_check)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Checks of `kind` still waiting for these contacts' sessions (`run` waits for them).
    pub async fn pending_tag_checks(&self, campaign_ids: Vec<i64>) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::pending_tag_checks(pg, campaign_ids).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT COUNT(*) FROM tag_checks t JOIN contacts k ON k.id = t.contact_id
                 WHERE k.campaign_id = ?1 AND t.kind IN (SELECT kind FROM tag_kinds)",
            )?;
            let mut n = 0u64;
            for id in campaign_ids {
                n += stmt.query_row([id], |r| r.get::<_, i64>(0))? as u64;
            }
            Ok(n)
        })
        .await
    }

    /// The checks made without an answer: asked again at the given unix ms (`None`: given up,
    /// the check is removed).
    pub async fn reschedule_tag_checks(
        &self,
        kind: Kind,
        next: Vec<(String, Option<i64>)>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::reschedule_tag_checks(pg, kind, next).await;
        }
        self.call(move |c| {
            let mut again = c.prepare_cached(
                "UPDATE tag_checks SET checks = checks + 1, next_check_at = ?3
                 WHERE session_id = ?1 AND kind = ?2",
            )?;
            let mut drop =
                c.prepare_cached("DELETE FROM tag_checks WHERE session_id = ?1 AND kind = ?2")?;
            for (session, at) in &next {
                match at {
                    Some(at) => again.execute(params![session, kind.as_str(), at])?,
                    None => drop.execute(params![session, kind.as_str()])?,
                };
            }
            Ok(())
        })
        .await
    }

    /// Write one session's tags and act on them (see the module's invariants). Tags of a
    /// session this store has no attempt for are ignored.
    pub async fn record_tags(
        &self,
        session_id: String,
        tags: Vec<Tag>,
        actions: TagActions,
        now_ms: i64,
    ) -> Result<TagsWritten, StoreError> {
        let written = match self.pg() {
            Some(pg) => pg::tags::record_tags(pg, session_id, tags, actions, now_ms).await?,
            None => {
                self.record_tags_sqlite(session_id, tags, actions, now_ms)
                    .await?
            }
        };
        if matches!(
            written.redial,
            Some((_, super::RedialDecision::Scheduled { .. }))
        ) {
            self.redials_scheduled();
        }
        Ok(written)
    }

    async fn record_tags_sqlite(
        &self,
        session_id: String,
        tags: Vec<Tag>,
        actions: TagActions,
        now_ms: i64,
    ) -> Result<TagsWritten, StoreError> {
        self.call(move |c| {
            let mut out = TagsWritten::default();
            let seen: bool = c
                .prepare_cached("SELECT 1 FROM session_tags WHERE session_id = ?1 LIMIT 1")?
                .exists([&session_id])?;
            let contact = session_contact(c, &session_id)?;
            c.prepare_cached("DELETE FROM tag_checks WHERE session_id = ?1 AND kind = 'tags'")?
                .execute([&session_id])?;
            let Some(contact_id) = contact else {
                return Ok(out);
            };
            let Some((callee, campaign_id)) = contact_of(c, contact_id)? else {
                return Ok(out);
            };
            if seen {
                return Ok(out);
            }
            out.new = true;
            let mut insert = c.prepare_cached(
                "INSERT OR IGNORE INTO session_tags (session_id, contact_id, campaign_id, name,
                   info_type, info_content, value, result, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut name = c.prepare_cached(
                "INSERT OR IGNORE INTO campaign_tag_names (campaign_id, name, seq)
                 VALUES (?1, ?2, ?3)",
            )?;
            for t in &tags {
                insert.execute(params![
                    session_id,
                    contact_id,
                    campaign_id,
                    t.name,
                    t.info_type,
                    t.info_content,
                    t.value,
                    t.result,
                    now_ms
                ])?;
                name.execute(params![campaign_id, t.name, c.last_insert_rowid()])?;
            }
            if let Some(rule) = &actions.opt_out {
                if rule.matches(&tags).is_some() {
                    let reason = format!(
                        "opted out: post-call tag {} in campaign {campaign_id}, session {session_id}",
                        rule.describe()
                    );
                    add_own_dnc(
                        c,
                        &callee,
                        "opt_out_tag",
                        Some(campaign_id),
                        Some(&session_id),
                        &reason,
                        now_ms,
                    )?;
                    out.opted_out = Some(callee.clone());
                }
            }
            // `[[redial.on_tag]]` of the contact's campaign (its stored policy), in this
            // transaction: the redial is durable with the tags that asked for it, or neither is.
            // An opted-out number is never called again.
            if out.opted_out.is_none() {
                if let Some(policy) = super::redials::policy_of(c, campaign_id)? {
                    let ended_ms: Option<i64> = c
                        .prepare_cached("SELECT ended_at FROM outcomes WHERE session_id = ?1")?
                        .query_row([&session_id], |r| r.get::<_, Option<i64>>(0))
                        .optional()?
                        .flatten()
                        .filter(|s| *s > 0)
                        .map(|s| s.saturating_mul(1000));
                    if let Some((rule, at)) = crate::outcomes::tag_rules::redial_match(
                        &policy.on_tag,
                        &tags,
                        ended_ms,
                        now_ms,
                    ) {
                        let cause = format!(
                            "post-call tag {} in session {session_id}; redial after {}",
                            rule.describe(),
                            crate::redial::human(rule.after.unwrap_or_default())
                        );
                        let decision = super::redials::schedule_redial_tx(
                            c,
                            contact_id,
                            &session_id,
                            at,
                            &cause,
                            policy.max_dials,
                            now_ms,
                        )?;
                        out.redial = Some((rule.describe(), decision));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Write one session's analysis; false when it was stored already (nothing changed).
    pub async fn record_analysis(
        &self,
        session_id: String,
        analysis: Analysis,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::record_analysis(pg, session_id, analysis, now_ms).await;
        }
        self.call(move |c| {
            let contact = session_contact(c, &session_id)?;
            c.prepare_cached("DELETE FROM tag_checks WHERE session_id = ?1 AND kind = 'analysis'")?
                .execute([&session_id])?;
            let Some(contact_id) = contact else {
                return Ok(false);
            };
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO session_analysis
                       (session_id, contact_id, summary, mood, intention, result, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    session_id,
                    contact_id,
                    analysis.summary,
                    analysis.mood,
                    analysis.intention,
                    analysis.result,
                    now_ms
                ])?;
            Ok(n == 1)
        })
        .await
    }

    /// The tags of one session, as stored (in the order they came).
    pub async fn session_tags(&self, session_id: String) -> Result<Vec<Tag>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::session_tags(pg, session_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, info_type, info_content, value, result FROM session_tags
                 WHERE session_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([session_id], tag_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Tags and analysis of every session of one contact that has either, oldest first.
    pub async fn contact_results(
        &self,
        contact_id: i64,
    ) -> Result<Vec<SessionResults>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::contact_results(pg, contact_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT session_id, name, info_type, info_content, value, result FROM session_tags
                 WHERE contact_id = ?1 ORDER BY id",
            )?;
            let mut out: Vec<SessionResults> = Vec::new();
            let rows = stmt.query_map([contact_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Tag {
                        name: r.get(1)?,
                        info_type: r.get(2)?,
                        info_content: r.get(3)?,
                        value: r.get(4)?,
                        result: r.get(5)?,
                    },
                ))
            })?;
            for r in rows {
                let (session, tag) = r?;
                match out.iter_mut().find(|s| s.session_id == session) {
                    Some(s) => s.tags.push(tag),
                    None => out.push(SessionResults {
                        session_id: session,
                        tags: vec![tag],
                        analysis: None,
                    }),
                }
            }
            let mut stmt = c.prepare_cached(
                "SELECT session_id, summary, mood, intention, result FROM session_analysis
                 WHERE contact_id = ?1 ORDER BY recorded_at, rowid",
            )?;
            let rows = stmt.query_map([contact_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Analysis {
                        summary: r.get(1)?,
                        mood: r.get(2)?,
                        intention: r.get(3)?,
                        result: r.get(4)?,
                    },
                ))
            })?;
            for r in rows {
                let (session, a) = r?;
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
        })
        .await
    }

    /// A campaign's tag names in the order first seen (the results file's `tag:NAME` columns).
    pub async fn campaign_tag_names(&self, campaign_id: i64) -> Result<Vec<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::campaign_tag_names(pg, campaign_id).await;
        }
        self.call(move |c| tag_names(c, campaign_id)).await
    }

    /// The numbers on the account's own do-not-call list.
    pub async fn own_dnc_numbers(&self) -> Result<HashSet<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::own_dnc_numbers(pg).await;
        }
        self.call(|c| {
            let mut stmt = c.prepare_cached("SELECT number FROM dnc_entries")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<HashSet<_>, _>>()?)
        })
        .await
    }

    /// The account's own do-not-call list, oldest entry first.
    pub async fn own_dnc_entries(&self) -> Result<Vec<OwnEntry>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::own_dnc_entries(pg).await;
        }
        self.call(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.number, d.added_at, d.source, d.campaign_id, k.name, d.session_id,
                        d.reason
                 FROM dnc_entries d LEFT JOIN campaigns k ON k.id = d.campaign_id
                 ORDER BY d.added_at, d.number",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(OwnEntry {
                    number: r.get(0)?,
                    added_at: r.get(1)?,
                    source: r.get(2)?,
                    campaign_id: r.get(3)?,
                    campaign: r.get(4)?,
                    session_id: r.get(5)?,
                    reason: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Take `number` (normalised) off the own list, logging `reason`; the entry removed, or
    /// `None` when it was not on the list.
    pub async fn remove_own_dnc(
        &self,
        number: String,
        reason: String,
        now_ms: i64,
    ) -> Result<Option<OwnEntry>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::remove_own_dnc(pg, number, reason, now_ms).await;
        }
        self.call(move |c| {
            let entry = c
                .prepare_cached(
                    "SELECT d.number, d.added_at, d.source, d.campaign_id, k.name, d.session_id,
                            d.reason
                     FROM dnc_entries d LEFT JOIN campaigns k ON k.id = d.campaign_id
                     WHERE d.number = ?1",
                )?
                .query_row([&number], |r| {
                    Ok(OwnEntry {
                        number: r.get(0)?,
                        added_at: r.get(1)?,
                        source: r.get(2)?,
                        campaign_id: r.get(3)?,
                        campaign: r.get(4)?,
                        session_id: r.get(5)?,
                        reason: r.get(6)?,
                    })
                })
                .optional()?;
            if entry.is_some() {
                c.execute("DELETE FROM dnc_entries WHERE number = ?1", [&number])?;
                c.execute(
                    "INSERT INTO dnc_log (number, action, at, source, reason)
                     VALUES (?1, 'remove', ?2, 'operator', ?3)",
                    params![number, now_ms, reason],
                )?;
            }
            Ok(entry)
        })
        .await
    }
}
