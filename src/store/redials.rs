//! Redials in the store (schema v10; see `crate::redial`): each campaign's policy, the decision
//! taken in the transaction that writes a call's outcome, and what the dispatcher asks (may a
//! redial still come?).
//!
//! Invariants:
//! - A contact is put back to `pending` for a redial only while it is `placed` with the session
//!   the decision is about as its latest: a second record of that session, an older session's
//!   record, or a repeat of the same tag finds it `pending` (or dialled again) and does nothing.
//! - Calls are counted from the attempts that may have rung ([`DIALLED`]: `placed`, `in_doubt`
//!   unless reconciled as not placed), never from a counter that a crash could leave behind.

use rusqlite::{params, Connection, OptionalExtension};

use super::{OutcomeRecord, Store, StoreError};
use crate::outcomes::classes::OutcomeClass;
use crate::redial::{self, Decision, RedialPolicy};

/// What a request for a redial did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedialDecision {
    /// The contact is `pending` again, due at `due_ms`, for its call number `dial`.
    Scheduled {
        due_ms: i64,
        dial: u32,
        max_dials: u32,
    },
    /// The session is not its contact's latest, or the contact is not `placed` (already
    /// pending again, dialled again, ended otherwise), or its campaign was cancelled: nothing
    /// done.
    NotLatest,
    /// `max_dials` calls were made already.
    MaxDials(u32),
    /// The campaign has no redial policy, or the outcome is not one it redials.
    NotAsked,
}

/// Which attempts count as calls of their contact: placed, or in doubt unless the call records
/// showed the request created none (reconciled `not_placed`). `a` is the attempt.
pub(crate) const DIALLED: &str =
    "(a.outcome = 'placed' OR (a.outcome = 'in_doubt' AND COALESCE(a.code, '') != 'NoCallRecord'))";

/// The attempts of a contact that may have created a call (its dials so far).
fn dials_sql() -> String {
    format!("SELECT COUNT(*) FROM attempts a WHERE a.contact_id = ?1 AND {DIALLED}")
}

/// Campaign `campaign_id`'s redial policy, if it has one. A stored policy this build cannot read
/// (written by a newer one) counts as none, with a warning.
pub(crate) fn policy_of(
    c: &Connection,
    campaign_id: i64,
) -> Result<Option<RedialPolicy>, StoreError> {
    let json: Option<String> = c
        .prepare_cached("SELECT redial FROM campaigns WHERE id = ?1")?
        .query_row([campaign_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(json.and_then(|j| match serde_json::from_str(&j) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(campaign = campaign_id, error = %e, "stored redial policy unreadable: no redials");
            None
        }
    }))
}

/// How many calls contact `contact_id` has had (attempts `placed` or `in_doubt`).
pub(crate) fn dials_of(c: &Connection, contact_id: i64) -> Result<u32, StoreError> {
    Ok(c.prepare_cached(&dials_sql())?
        .query_row([contact_id], |r| r.get::<_, i64>(0))?
        .max(0) as u32)
}

/// Put contact `contact_id` back to `pending` for a redial due at `not_before_ms`, if
/// `session_id` is still its latest session, it is `placed`, its campaign is not cancelled and
/// it had fewer than `max_dials` calls (a completed campaign becomes active again). Runs inside the caller's transaction (an outcome's or a
/// tag's), so the decision is durable with what caused it. `cause` says why, for people;
/// `now_ms` is when the decision is taken.
pub(crate) fn schedule_redial_tx(
    c: &Connection,
    contact_id: i64,
    session_id: &str,
    not_before_ms: i64,
    cause: &str,
    max_dials: u32,
    now_ms: i64,
) -> Result<RedialDecision, StoreError> {
    let current: Option<(String, Option<String>, String)> = c
        .prepare_cached(
            "SELECT k.status, k.session_id, m.state FROM contacts k
               JOIN campaigns m ON m.id = k.campaign_id WHERE k.id = ?1",
        )?
        .query_row([contact_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((status, latest, state)) = current else {
        return Ok(RedialDecision::NotLatest);
    };
    if status != "placed" || latest.as_deref() != Some(session_id) || state == "cancelled" {
        return Ok(RedialDecision::NotLatest);
    }
    let dials = dials_of(c, contact_id)?;
    if dials >= max_dials {
        return Ok(RedialDecision::MaxDials(dials));
    }
    let dial = dials + 1;
    let due_ms = not_before_ms.max(1);
    let message = format!("redial {dial} of {max_dials}: {cause}");
    // A fresh `retry.max_attempts` budget for the new call: redials never use it up.
    let n = c
        .prepare_cached(
            "UPDATE contacts SET status = 'pending', next_at = ?2, gate = ?3, attempts = 0,
               reschedules = 0, error_code = ?4, error_message = ?5, updated_at = ?6
             WHERE id = ?1 AND status = 'placed' AND session_id = ?7",
        )?
        .execute(params![
            contact_id,
            due_ms,
            redial::GATE,
            redial::CODE,
            message,
            now_ms,
            session_id
        ])?;
    if n != 1 {
        return Ok(RedialDecision::NotLatest);
    }
    // A campaign completed meanwhile (a record that came late, a tag) is active again: its
    // contact is open (`serve` starts its runner on the wake-up; `run` records its end anew).
    if state == "completed" {
        c.prepare_cached(
            "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = ?2
             WHERE id = (SELECT campaign_id FROM contacts WHERE id = ?1) AND state = 'completed'",
        )?
        .execute(params![contact_id, now_ms])?;
    }
    Ok(RedialDecision::Scheduled {
        due_ms,
        dial,
        max_dials,
    })
}

/// The redial decision for a newly written record `rec` of contact `contact_id` (inside the
/// transaction that wrote it).
pub(crate) fn on_outcome(
    c: &Connection,
    contact_id: i64,
    rec: &OutcomeRecord,
) -> Result<RedialDecision, StoreError> {
    let campaign: Option<i64> = c
        .prepare_cached("SELECT campaign_id FROM contacts WHERE id = ?1")?
        .query_row([contact_id], |r| r.get(0))
        .optional()?;
    let Some(policy) = campaign.map(|id| policy_of(c, id)).transpose()?.flatten() else {
        return Ok(RedialDecision::NotAsked);
    };
    let Ok(class) = rec.class.parse::<OutcomeClass>() else {
        return Ok(RedialDecision::NotAsked);
    };
    if !policy.asks(class, rec.end_status) {
        return Ok(RedialDecision::NotAsked);
    }
    // The wait counts from the call's end (the record's time when it has none).
    let ended_ms = rec
        .ended_at
        .filter(|t| *t > 0)
        .map_or(rec.recorded_at, |t| t.saturating_mul(1000));
    let dials = dials_of(c, contact_id)?;
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
        }
        Decision::MaxDials => Ok(RedialDecision::MaxDials(dials)),
        Decision::NotAsked => Ok(RedialDecision::NotAsked),
    }
}

/// A pushed record of `rec`'s session was corrected by the polled one (`rec`): if the push's
/// class had scheduled a redial the poll's does not ask for, the contact is `placed` again (its
/// redial taken back, before it was dialled); if the poll's asks for one, it is scheduled.
/// Returns whether a redial is scheduled now.
pub(crate) fn on_correction(
    c: &Connection,
    contact_id: i64,
    rec: &OutcomeRecord,
) -> Result<bool, StoreError> {
    let asks = match (
        contact_campaign(c, contact_id)?
            .map(|id| policy_of(c, id))
            .transpose()?
            .flatten(),
        rec.class.parse::<OutcomeClass>(),
    ) {
        (Some(p), Ok(class)) => p.asks(class, rec.end_status),
        _ => false,
    };
    if asks {
        return Ok(matches!(
            on_outcome(c, contact_id, rec)?,
            RedialDecision::Scheduled { .. }
        ));
    }
    // The requests of the call whose redial is taken back (after the contact's previous call).
    c.prepare_cached(
        "UPDATE contacts SET status = 'placed', next_at = 0, gate = NULL, error_code = NULL,
           error_message = NULL, updated_at = ?3,
           attempts = (SELECT COUNT(*) FROM attempts a
                       WHERE a.contact_id = ?1 AND COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')
                         AND a.n > COALESCE((SELECT MAX(b.n) FROM attempts b
                                             WHERE b.contact_id = ?1 AND b.outcome = 'placed'
                                               AND b.session_id != ?2), 0))
         WHERE id = ?1 AND status = 'pending' AND error_code = ?4 AND session_id = ?2",
    )?
    .execute(params![contact_id, rec.session_id, rec.recorded_at, redial::CODE])?;
    Ok(false)
}

fn contact_campaign(c: &Connection, contact_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT campaign_id FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |r| r.get(0))
            .optional()?,
    )
}

/// Whether campaign `campaign_id` has a redial policy; false in a store of a build before the
/// column (read beside the process that owns it).
pub(crate) fn has_policy(c: &Connection, campaign_id: i64) -> Result<bool, StoreError> {
    let column = c
        .prepare_cached("SELECT 1 FROM pragma_table_info('campaigns') WHERE name = 'redial'")?
        .exists([])?;
    if !column {
        return Ok(false);
    }
    Ok(
        c.prepare_cached("SELECT 1 FROM campaigns WHERE id = ?1 AND redial IS NOT NULL")?
            .exists([campaign_id])?,
    )
}

/// Campaign `?1` has a contact whose latest call may still be redialled once its outcome is
/// known: placed and awaiting its record, or in doubt and awaiting reconciliation, with fewer
/// than `?2` calls. Used only when the campaign has a policy.
pub(crate) fn redial_possible_sql() -> String {
    format!(
        "SELECT 1 FROM outcome_checks o
           JOIN contacts k ON k.id = o.contact_id
         WHERE k.campaign_id = ?1
           AND ((o.kind = 'outcome' AND k.status = 'placed' AND k.session_id = o.session_id)
                OR (o.kind = 'reconcile' AND k.status = 'unknown'))
           AND (SELECT COUNT(*) FROM attempts a WHERE a.contact_id = k.id AND {DIALLED}) < ?2
         LIMIT 1"
    )
}

/// Campaign `?1` has an answered call whose post-call tags are still to be read (this process
/// asks for tags: `tag_kinds`), that is its contact's latest, with fewer than `?2` calls. Used
/// only when the campaign's policy has `[[redial.on_tag]]` rules. The tracker drops a check at
/// `outcomes.give_up_after`, which bounds the wait.
pub(crate) fn tag_redial_possible_sql() -> String {
    format!(
        "SELECT 1 FROM tag_checks t
           JOIN contacts k ON k.id = t.contact_id
         WHERE k.campaign_id = ?1 AND t.kind = 'tags'
           AND EXISTS (SELECT 1 FROM tag_kinds WHERE kind = 'tags')
           AND k.status = 'placed' AND k.session_id = t.session_id
           AND (SELECT COUNT(*) FROM attempts a WHERE a.contact_id = k.id AND {DIALLED}) < ?2
         LIMIT 1"
    )
}

/// What may still ask a campaign for a redial (see [`Store::redial_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedialWait {
    /// A call's outcome is not known yet (its record awaited, or a lost reply looked up).
    Outcome,
    /// An answered call's post-call tags are not read yet, and a `[[redial.on_tag]]` rule may
    /// match them.
    Tags,
}

impl RedialWait {
    /// The dispatcher's wait reason (`crate::dispatch::waits`).
    pub fn reason(self) -> &'static str {
        match self {
            RedialWait::Outcome => crate::dispatch::waits::OUTCOMES,
            RedialWait::Tags => crate::dispatch::waits::TAGS,
        }
    }

    /// For people: what the campaign waits for.
    pub fn describe(self) -> &'static str {
        match self {
            RedialWait::Outcome => "awaiting calls' outcomes that may ask for a redial",
            RedialWait::Tags => {
                "awaiting post-call tags that may ask for a redial (redial.on_tag, at most outcomes.give_up_after)"
            }
        }
    }
}

impl Store {
    /// Set (or clear) campaign `campaign_id`'s redial policy: its outcomes written from now on
    /// are decided by it.
    pub async fn set_redial_policy(
        &self,
        campaign_id: i64,
        policy: Option<RedialPolicy>,
    ) -> Result<(), StoreError> {
        let json = policy
            .map(|p| serde_json::to_string(&p))
            .transpose()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        if let Some(pg) = self.pg() {
            let c = pg.client().await?;
            c.execute(
                "UPDATE campaigns SET redial = $2 WHERE id = $1",
                &[&campaign_id, &json],
            )
            .await?;
            return Ok(());
        }
        self.call(move |c| {
            c.execute(
                "UPDATE campaigns SET redial = ?2 WHERE id = ?1",
                params![campaign_id, json],
            )?;
            Ok(())
        })
        .await
    }

    /// Campaign `campaign_id`'s redial policy, as stored.
    pub async fn redial_policy(
        &self,
        campaign_id: i64,
    ) -> Result<Option<RedialPolicy>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::redials::redial_policy(pg, campaign_id).await;
        }
        self.call(move |c| policy_of(c, campaign_id)).await
    }

    /// [`schedule_redial_tx`] in a transaction of its own, for the campaign's own
    /// `max_dials` (`NotAsked` if it has no policy); wakes the dispatchers when scheduled.
    pub async fn schedule_redial(
        &self,
        contact_id: i64,
        session_id: &str,
        not_before_ms: i64,
        cause: &str,
        now_ms: i64,
    ) -> Result<RedialDecision, StoreError> {
        let (session_id, cause) = (session_id.to_string(), cause.to_string());
        if let Some(pg) = self.pg() {
            let d = super::pg::redials::schedule_redial(
                pg,
                contact_id,
                session_id,
                not_before_ms,
                cause,
                now_ms,
            )
            .await?;
            if matches!(d, RedialDecision::Scheduled { .. }) {
                self.redials_scheduled();
            }
            return Ok(d);
        }
        let d = self
            .call(move |c| {
                let campaign: Option<i64> = c
                    .query_row(
                        "SELECT campaign_id FROM contacts WHERE id = ?1",
                        [contact_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(policy) = campaign.map(|id| policy_of(c, id)).transpose()?.flatten()
                else {
                    return Ok(RedialDecision::NotAsked);
                };
                schedule_redial_tx(
                    c,
                    contact_id,
                    &session_id,
                    not_before_ms,
                    &cause,
                    policy.max_dials,
                    now_ms,
                )
            })
            .await?;
        if matches!(d, RedialDecision::Scheduled { .. }) {
            self.redials_scheduled();
        }
        Ok(d)
    }

    /// Whether campaign `campaign_id` may still get a redial from an outcome or a post-call tag
    /// not yet known (see [`Store::redial_wait`]); false without a policy.
    pub async fn redial_possible(&self, campaign_id: i64) -> Result<bool, StoreError> {
        Ok(self.redial_wait(campaign_id).await?.is_some())
    }

    /// What campaign `campaign_id` still waits for that may ask for a redial: an outcome not
    /// yet known ([`redial_possible_sql`]), else, with `[[redial.on_tag]]` rules, post-call
    /// tags not yet read ([`tag_redial_possible_sql`]); `None` without a policy.
    pub async fn redial_wait(&self, campaign_id: i64) -> Result<Option<RedialWait>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::redials::redial_wait(pg, campaign_id).await;
        }
        self.call(move |c| {
            let Some(policy) = policy_of(c, campaign_id)? else {
                return Ok(None);
            };
            if c.prepare_cached(&redial_possible_sql())?
                .exists(params![campaign_id, policy.max_dials])?
            {
                return Ok(Some(RedialWait::Outcome));
            }
            if !policy.on_tag.is_empty()
                && c.prepare_cached(&tag_redial_possible_sql())?
                    .exists(params![campaign_id, policy.max_dials])?
            {
                return Ok(Some(RedialWait::Tags));
            }
            Ok(None)
        })
        .await
    }

    /// Tell the dispatchers that redials were scheduled (after the commit that did it).
    pub fn redials_scheduled(&self) {
        self.redials.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever redials were scheduled: a dispatcher waiting for the next due contact
    /// looks again.
    pub fn redial_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.redials.subscribe()
    }
}
