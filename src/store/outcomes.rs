//! Outcome records and the schedule of checks (schema v6; see `crate::outcomes`).
//!
//! Written like attempts: each function is one transaction on the store thread. A record seen
//! twice changes nothing (one row per SessionId; only a `no_record` give-up is replaced by a
//! real record that arrives later, and a pushed record by the call record a poll reads, which
//! is the authority). A record that arrived but was not yet written when the
//! process died is simply asked for again: its check row is removed only in the transaction
//! that writes the record.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

use super::{pg, Store, StoreError};

/// A placed session due for a DescribeTelCdr check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSession {
    pub attempt_id: i64,
    pub contact_id: i64,
    pub session_id: String,
    /// Unix ms the request was sent.
    pub sent_at: i64,
    /// Checks already made.
    pub checks: u32,
    /// Unix ms the check falls due: `first_check_after` after the send for a session never
    /// asked about, else the time its last check set.
    pub due_at: i64,
}

/// An in-doubt attempt due for reconciliation by callee and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReconcile {
    pub attempt_id: i64,
    pub contact_id: i64,
    pub campaign_id: i64,
    /// As sent.
    pub callee: String,
    /// The contact's line in its file (log lines name the contact by it).
    pub line: u64,
    /// The contact's own `ai_agent_id` override, else its campaign's (`serve` settings), if
    /// either has one.
    pub agent_override: Option<u64>,
    pub sent_at: i64,
    pub checks: u32,
    /// The contact's status now (only `unknown` contacts are reconciled).
    pub status: String,
    /// Unix ms the check falls due (as [`DueSession::due_at`]).
    pub due_at: i64,
    /// `reconcile` (a lost reply: the contact is `unknown`) or `retry_check` (a try that failed
    /// with `InternalError*`: the contact's retry waits, see `crate::outcomes::retry_check`).
    pub kind: String,
}

/// One session's outcome, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutcomeRecord {
    pub session_id: String,
    /// Filled by the store from the attempt when 0.
    pub contact_id: i64,
    pub class: String,
    pub end_status: Option<i64>,
    pub end_status_string: Option<String>,
    pub duration_s: Option<i64>,
    /// Unix seconds.
    pub ring_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub hangup_side: Option<String>,
    pub sys_hangup_reason: Option<i64>,
    pub ai_agent_id: Option<i64>,
    /// `poll`, `push`, `reconciled`, or `gave_up`.
    pub source: String,
    pub recorded_at: i64,
}

/// What writing a batch of records did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Sessions whose record was new (counted, and their line freed).
    pub new: Vec<String>,
    /// Pushed records replaced by the call record a poll read (not counted again).
    pub corrected: Vec<String>,
    /// Records already stored (a repeat, or a polled record of a session no attempt has).
    pub ignored: usize,
    /// Contacts put back to `pending` for a redial by these records (see `crate::redial`).
    pub redials: u64,
    /// Pushed records of a session no attempt has yet, kept in `pending_pushes` until an
    /// attempt gets that session (its reply written after the push came, or reconciled).
    pub pending: Vec<String>,
    /// The new and corrected records as written (see [`Arrival`]), for what the process does
    /// on a record's arrival (lines, `/metrics`, waiters).
    pub arrivals: Vec<Arrival>,
}

/// A record that became a session's outcome (new) or replaced the one it had (corrected), as
/// written: what the process does beside the store (free the call's line, count its class in
/// `/metrics`, wake waiters) takes it from here. Every path that writes a record gives one: a
/// poll, a push, a reconciliation, and a held push claimed when its attempt gets the session
/// ([`Store::on_arrival`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// With its `contact_id`.
    pub record: OutcomeRecord,
    /// The class the session had before (a push a poll corrected, a give-up a late record
    /// replaced) and when that was recorded (Unix ms); `None` for its first record.
    pub was: Option<(String, i64)>,
    /// The record scheduled a redial of its contact.
    pub redialled: bool,
}

/// Told of the records a held push brought when an attempt got its session (see
/// [`Store::on_arrival`]).
pub type OnArrival = std::sync::Arc<dyn Fn(&[Arrival]) + Send + Sync>;

/// How long a pushed record no attempt claims is kept (another dialer's call on the same
/// application, or a lost reply never reconciled): two days, far beyond any reply or
/// reconciliation.
pub const PENDING_PUSH_KEEP_MS: i64 = 2 * 24 * 3600 * 1000;

/// How a reconciliation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Exactly one record matched: the call was created with this session.
    Found(Box<OutcomeRecord>),
    /// No record by `reconcile_after`: the request did not create a call.
    NotPlaced,
    /// More than one record matched: stay `unknown`, with why.
    Ambiguous(String),
    /// The contact is no longer `unknown` (requeued by an operator): nothing to do.
    Moot,
}

/// Outcome figures of one campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Contacts by their latest session's outcome class.
    pub by_class: BTreeMap<String, u64>,
    /// Placed contacts whose latest session has no outcome yet.
    pub awaiting: u64,
    /// In-doubt attempts of this campaign still waiting to be reconciled.
    pub reconciling: u64,
    /// Contacts answered at least once (on any dial).
    pub reached: u64,
    /// Contacts done dialling (no redial to come) whose every call's outcome is known and none
    /// was answered.
    pub not_reached: u64,
    /// Contacts waiting for a redial (`pending`, code `Redial`).
    pub redials_pending: u64,
}

impl OutcomeCounts {
    /// Contacts whose latest call ended with a known outcome (every class but `no_record`).
    pub fn ended(&self) -> u64 {
        self.by_class
            .iter()
            .filter(|(c, _)| c.as_str() != "no_record")
            .map(|(_, n)| n)
            .sum()
    }

    /// Placed contacts (with an outcome or awaiting one).
    pub fn placed(&self) -> u64 {
        self.by_class.values().sum::<u64>() + self.awaiting
    }

    /// Answered among the contacts whose latest call ended, as a fraction (None before any
    /// ended); every call, redials included, is counted by dial in `report`.
    pub fn answer_rate(&self) -> Option<f64> {
        let ended = self.ended();
        (ended > 0)
            .then(|| self.by_class.get("answered").copied().unwrap_or(0) as f64 / ended as f64)
    }
}

fn due_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueSession> {
    Ok(DueSession {
        attempt_id: r.get(0)?,
        contact_id: r.get(1)?,
        session_id: r.get(2)?,
        sent_at: r.get(3)?,
        checks: r.get(4)?,
        due_at: r.get(5)?,
    })
}

/// What writing one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wrote {
    /// The session's first record (or a real one replacing a give-up): counted.
    New,
    /// A pushed record replaced by the call record DescribeTelCdr returned (the authority:
    /// the push's documented fields lack the numeric EndStatus, the agent and the hang-up
    /// reason): not counted again.
    Corrected,
    /// Nothing changed (a repeat, or a polled record of a session no attempt has).
    Ignored,
    /// A pushed record of a session no attempt has yet: kept until one does.
    Pending,
}

/// Insert one record, replace a give-up by a real record or a pushed record by a polled one,
/// and remove the session's check (a pushed record leaves it: the poll still reads the
/// session's call record once and corrects the push if they differ). A new or corrected record
/// is decided on by its campaign's redial policy in the same transaction; the second value
/// says whether that scheduled a redial.
fn write_record(
    c: &Connection,
    rec: &OutcomeRecord,
) -> Result<(Wrote, Option<Arrival>), StoreError> {
    let contact_id = if rec.contact_id > 0 {
        Some(rec.contact_id)
    } else {
        c.prepare_cached("SELECT contact_id FROM attempts WHERE session_id = ?1 LIMIT 1")?
            .query_row([&rec.session_id], |r| r.get::<_, i64>(0))
            .optional()?
    };
    let Some(contact_id) = contact_id else {
        if rec.source != "push" {
            return Ok((Wrote::Ignored, None));
        }
        // The push can come before the dialler has written the reply that names the session
        // (or for a request whose reply was lost): kept, and claimed by the attempt that gets
        // the session (the `pending_push_claimed` triggers). Old unclaimed ones are pruned.
        c.prepare_cached("DELETE FROM pending_pushes WHERE recorded_at < ?1")?
            .execute([rec.recorded_at.saturating_sub(PENDING_PUSH_KEEP_MS)])?;
        let kept = c
            .prepare_cached(
                "INSERT OR IGNORE INTO pending_pushes (session_id, class, end_status,
               end_status_string, duration_s, ring_at, answered_at, ended_at, hangup_side,
               sys_hangup_reason, ai_agent_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                rec.session_id,
                rec.class,
                rec.end_status,
                rec.end_status_string,
                rec.duration_s,
                rec.ring_at,
                rec.answered_at,
                rec.ended_at,
                rec.hangup_side,
                rec.sys_hangup_reason,
                rec.ai_agent_id,
                rec.recorded_at
            ])?;
        // The same push again while still waiting: nothing new.
        return Ok((
            if kept > 0 {
                Wrote::Pending
            } else {
                Wrote::Ignored
            },
            None,
        ));
    };
    let before: Option<(String, String, i64)> = c
        .prepare_cached("SELECT class, source, recorded_at FROM outcomes WHERE session_id = ?1")?
        .query_row([&rec.session_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let polled = matches!(rec.source.as_str(), "poll" | "reconciled");
    let wrote = match &before {
        None => Wrote::New,
        Some((class, _, _)) if class == "no_record" && rec.class != "no_record" => Wrote::New,
        Some((_, source, _)) if source == "push" && polled => Wrote::Corrected,
        Some(_) => Wrote::Ignored,
    };
    if wrote != Wrote::Ignored {
        c.prepare_cached(
            "INSERT INTO outcomes (session_id, contact_id, class, end_status, end_status_string,
               duration_s, ring_at, answered_at, ended_at, hangup_side, sys_hangup_reason,
               ai_agent_id, source, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (session_id) DO UPDATE SET class = excluded.class,
               end_status = excluded.end_status, end_status_string = excluded.end_status_string,
               duration_s = excluded.duration_s, ring_at = excluded.ring_at,
               answered_at = excluded.answered_at, ended_at = excluded.ended_at,
               hangup_side = excluded.hangup_side,
               sys_hangup_reason = excluded.sys_hangup_reason,
               ai_agent_id = excluded.ai_agent_id, source = excluded.source,
               recorded_at = CASE WHEN outcomes.class = 'no_record' THEN excluded.recorded_at
                                  ELSE outcomes.recorded_at END",
        )?
        .execute(params![
            rec.session_id,
            contact_id,
            rec.class,
            rec.end_status,
            rec.end_status_string,
            rec.duration_s,
            rec.ring_at,
            rec.answered_at,
            rec.ended_at,
            rec.hangup_side,
            rec.sys_hangup_reason,
            rec.ai_agent_id,
            rec.source,
            rec.recorded_at
        ])?;
    }
    if rec.source != "push" {
        c.prepare_cached("DELETE FROM outcome_checks WHERE session_id = ?1")?
            .execute([&rec.session_id])?;
    }
    let redialled = match wrote {
        Wrote::Ignored | Wrote::Pending => return Ok((wrote, None)),
        Wrote::New => matches!(
            super::redials::on_outcome(c, contact_id, rec)?,
            super::RedialDecision::Scheduled { .. }
        ),
        // The poll's record is the authority: a redial the push's asked for and the poll's
        // does not is taken back; one the poll's asks for is scheduled.
        Wrote::Corrected => super::redials::on_correction(c, contact_id, rec)?,
    };
    let arrival = Arrival {
        record: OutcomeRecord {
            contact_id,
            ..rec.clone()
        },
        was: before.map(|(class, _, at)| (class, at)),
        redialled,
    };
    Ok((wrote, Some(arrival)))
}

/// The pushed record held for `session_id` (it came before any attempt had that session), if
/// there is one: written now for `contact_id`'s attempt through [`write_record`] (the same
/// path as any record's arrival: its outcome, the redial decision), and no longer held. Called
/// by the transactions that give an attempt its session (the reply written, a reconciliation)
/// after the contact is updated, so the redial decision sees the contact `placed`.
pub(super) fn claim_held_push(
    c: &Connection,
    session_id: &str,
    contact_id: i64,
) -> Result<Option<Arrival>, StoreError> {
    let held: Option<OutcomeRecord> = c
        .prepare_cached(
            "SELECT class, end_status, end_status_string, duration_s, ring_at, answered_at,
                    ended_at, hangup_side, sys_hangup_reason, ai_agent_id, recorded_at
             FROM pending_pushes WHERE session_id = ?1",
        )?
        .query_row([session_id], |r| {
            Ok(OutcomeRecord {
                session_id: session_id.to_string(),
                contact_id,
                class: r.get(0)?,
                end_status: r.get(1)?,
                end_status_string: r.get(2)?,
                duration_s: r.get(3)?,
                ring_at: r.get(4)?,
                answered_at: r.get(5)?,
                ended_at: r.get(6)?,
                hangup_side: r.get(7)?,
                sys_hangup_reason: r.get(8)?,
                ai_agent_id: r.get(9)?,
                source: "push".into(),
                recorded_at: r.get(10)?,
            })
        })
        .optional()?;
    let Some(rec) = held else {
        return Ok(None);
    };
    c.prepare_cached("DELETE FROM pending_pushes WHERE session_id = ?1")?
        .execute([session_id])?;
    Ok(write_record(c, &rec)?.1)
}

/// The rows of one due query, in two lookups on `outcome_checks_due`: never asked and sent by
/// `first_until` (`?2` there), then asked before and due by `asked_until`. `sql` takes `asked`,
/// the bound, `limit` and `first_ms` as ?1..?4.
fn due_rows<T>(
    c: &Connection,
    sql: &str,
    (first_until, asked_until): (i64, i64),
    limit: usize,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    first_ms: i64,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = c.prepare_cached(sql)?;
    for (asked, until) in [(0, first_until), (1, asked_until)] {
        for r in stmt.query_map(params![asked, until, limit as i64, first_ms], &row)? {
            out.push(r?);
        }
    }
    Ok(out)
}

/// A reconcile row of [`Store::due_reconciles_until`]'s query.
fn due_reconcile(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueReconcile> {
    let overrides: Option<String> = r.get(4)?;
    // The contact's own agent, else its campaign's (serve's settings).
    let settings: Option<String> = r.get(8)?;
    let agent_override = overrides
        .and_then(|j| serde_json::from_str::<crate::contact::Overrides>(&j).ok())
        .and_then(|o| o.ai_agent_id)
        .or_else(|| {
            settings
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| v.get("ai_agent_id").and_then(|a| a.as_u64()))
        });
    Ok(DueReconcile {
        attempt_id: r.get(0)?,
        contact_id: r.get(1)?,
        campaign_id: r.get(2)?,
        callee: r.get(3)?,
        agent_override,
        sent_at: r.get(5)?,
        checks: r.get(6)?,
        status: r.get(7)?,
        due_at: r.get(9)?,
        kind: r.get(10)?,
        line: r.get::<_, i64>(11)?.max(0) as u64,
    })
}

impl Store {
    /// Placed sessions due for a check at `now_ms`: never asked and sent at least `first_ms`
    /// ago, or asked before and due again; oldest send first, at most `limit`.
    pub async fn due_sessions(
        &self,
        now_ms: i64,
        first_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueSession>, StoreError> {
        self.due_sessions_until(now_ms, first_ms, now_ms, limit)
            .await
    }

    /// [`Store::due_sessions`], taking the ones asked before that are due by `asked_until_ms`.
    pub async fn due_sessions_until(
        &self,
        now_ms: i64,
        first_ms: i64,
        asked_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueSession>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::due_sessions_until(pg, now_ms, first_ms, asked_until_ms, limit)
                .await;
        }
        self.call(move |c| {
            let mut out = due_rows(
                c,
                "SELECT attempt_id, contact_id, session_id, sent_at, checks,
                        CASE WHEN asked = 0 THEN next_check_at + ?4 ELSE next_check_at END
                 FROM outcome_checks
                 WHERE kind = 'outcome' AND asked = ?1 AND next_check_at <= ?2
                 ORDER BY next_check_at LIMIT ?3",
                (now_ms - first_ms, asked_until_ms),
                limit,
                due_session,
                first_ms,
            )?;
            // The soonest due first: a cut never leaves out a check due before one kept.
            out.sort_by_key(|d| (d.due_at, d.attempt_id));
            out.truncate(limit);
            out.sort_by_key(|d| (d.sent_at, d.attempt_id));
            Ok(out)
        })
        .await
    }

    /// In-doubt attempts due for reconciliation (same schedule rule as [`Store::due_sessions`]).
    pub async fn due_reconciles(
        &self,
        now_ms: i64,
        first_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueReconcile>, StoreError> {
        self.due_reconciles_until(now_ms, first_ms, now_ms, limit)
            .await
    }

    /// [`Store::due_reconciles`], taking the ones asked before that are due by `asked_until_ms`.
    pub async fn due_reconciles_until(
        &self,
        now_ms: i64,
        first_ms: i64,
        asked_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueReconcile>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::due_reconciles_until(pg, now_ms, first_ms, asked_until_ms, limit)
                .await;
        }
        self.call(move |c| {
            let mut out = due_rows(
                c,
                "SELECT o.attempt_id, o.contact_id, k.campaign_id, k.callee, k.overrides,
                        o.sent_at, o.checks, k.status, c.settings,
                        CASE WHEN o.asked = 0 THEN o.next_check_at + ?4 ELSE o.next_check_at END,
                        o.kind, k.line
                 FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
                   JOIN campaigns c ON c.id = k.campaign_id
                 WHERE o.kind IN ('reconcile', 'retry_check') AND o.asked = ?1
                   AND o.next_check_at <= ?2
                 ORDER BY o.next_check_at LIMIT ?3",
                (now_ms - first_ms, asked_until_ms),
                limit,
                due_reconcile,
                first_ms,
            )?;
            out.sort_by_key(|d| (d.due_at, d.attempt_id));
            out.truncate(limit);
            out.sort_by_key(|d| (d.sent_at, d.attempt_id));
            Ok(out)
        })
        .await
    }

    /// The earliest moment any check (outcome or reconcile) falls due: a never-asked row is due
    /// `first_ms` after its send, an asked one at its `next_check_at`. Two index lookups
    /// (`outcome_checks_due`), so the poller can learn cheaply that nothing is due.
    pub async fn next_check_due(&self, first_ms: i64) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::next_check_due(pg, first_ms).await;
        }
        self.call(move |c| {
            let mut next: Option<i64> = None;
            for kind in ["outcome", "reconcile", "retry_check"] {
                for asked in [0, 1] {
                    let at: Option<i64> = c
                        .prepare_cached(
                            "SELECT MIN(next_check_at) FROM outcome_checks
                             WHERE kind = ?1 AND asked = ?2",
                        )?
                        .query_row(params![kind, asked], |r| r.get(0))?;
                    let at = at.map(|t| if asked == 0 { t + first_ms } else { t });
                    next = match (next, at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            Ok(next)
        })
        .await
    }

    /// Checks whose time is up although they were never answered (the queries kept failing):
    /// placed sessions sent by `sessions_sent_by` (their `give_up_after` passed) and in-doubt
    /// attempts sent by `reconciles_sent_by` (`reconcile_after` passed), at most `limit` of
    /// each. Lookups on the due index: a check's next time never lies after its deadline.
    pub async fn overdue_checks(
        &self,
        now_ms: i64,
        sessions_sent_by: i64,
        reconciles_sent_by: i64,
        limit: usize,
    ) -> Result<(Vec<DueSession>, Vec<i64>), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::overdue_checks(
                pg,
                now_ms,
                sessions_sent_by,
                reconciles_sent_by,
                limit,
            )
            .await;
        }
        self.call(move |c| {
            let mut sessions = Vec::new();
            let mut reconciles = Vec::new();
            for (kind, by) in [
                ("outcome", sessions_sent_by),
                ("reconcile", reconciles_sent_by),
                ("retry_check", reconciles_sent_by),
            ] {
                for (asked, until) in [(0, by), (1, now_ms)] {
                    let mut stmt = c.prepare_cached(
                        "SELECT attempt_id, contact_id, COALESCE(session_id, ''), sent_at, checks,
                                next_check_at
                         FROM outcome_checks
                         WHERE kind = ?1 AND asked = ?2 AND next_check_at <= ?3 AND sent_at <= ?4
                         ORDER BY next_check_at LIMIT ?5",
                    )?;
                    let rows =
                        stmt.query_map(params![kind, asked, until, by, limit as i64], due_session)?;
                    for r in rows {
                        let r = r?;
                        if kind == "outcome" {
                            sessions.push(r);
                        } else {
                            reconciles.push(r.attempt_id);
                        }
                    }
                }
            }
            sessions.truncate(limit);
            reconciles.truncate(limit);
            Ok((sessions, reconciles))
        })
        .await
    }

    /// Write the records (one transaction). Idempotent: see the module's doc.
    pub async fn record_outcomes(
        &self,
        records: Vec<OutcomeRecord>,
    ) -> Result<Written, StoreError> {
        if let Some(pg) = self.pg() {
            let w = pg::outcomes::record_outcomes(pg, records).await?;
            if w.redials > 0 {
                self.redials_scheduled();
            }
            return Ok(w);
        }
        let w = self
            .call(move |c| {
                let mut w = Written::default();
                for rec in &records {
                    let (wrote, arrival) = write_record(c, rec)?;
                    match wrote {
                        Wrote::New => w.new.push(rec.session_id.clone()),
                        Wrote::Corrected => w.corrected.push(rec.session_id.clone()),
                        Wrote::Ignored => w.ignored += 1,
                        Wrote::Pending => w.pending.push(rec.session_id.clone()),
                    }
                    if let Some(a) = arrival {
                        w.redials += u64::from(a.redialled);
                        w.arrivals.push(a);
                    }
                }
                Ok(w)
            })
            .await?;
        if w.redials > 0 {
            self.redials_scheduled();
        }
        Ok(w)
    }

    /// The checks made without an answer: each is asked again at its `next_check_at` (ms).
    pub async fn reschedule_checks(&self, next: Vec<(i64, i64)>) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::reschedule_checks(pg, next).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outcome_checks SET asked = 1, checks = checks + 1, next_check_at = ?2
                 WHERE attempt_id = ?1",
            )?;
            for (attempt, at) in &next {
                stmt.execute(params![attempt, at])?;
            }
            Ok(())
        })
        .await
    }

    /// Close a reconciliation: the contact becomes `placed` (with the record's session and
    /// outcome), `not_placed`, or stays `unknown` with the reason; the check is removed. For a
    /// `retry_check` (a try that failed with `InternalError*`; the contact `pending` for its
    /// retry, or `failed` when that was its last try, and that try its latest): found, the
    /// contact is `placed` the same way; not placed, a held retry goes at once; ambiguous, the
    /// contact becomes `unknown` with the reason (never dialled again by itself).
    pub async fn finish_reconcile(
        &self,
        attempt_id: i64,
        how: Reconciled,
        now_ms: i64,
    ) -> Result<Option<Arrival>, StoreError> {
        if let Some(pg) = self.pg() {
            let arrival = pg::outcomes::finish_reconcile(pg, attempt_id, how, now_ms).await?;
            if arrival.as_ref().is_some_and(|a| a.redialled) {
                self.redials_scheduled();
            }
            return Ok(arrival);
        }
        let arrival = self.call(move |c| {
            let kind: Option<String> = c
                .query_row(
                    "SELECT kind FROM outcome_checks WHERE attempt_id = ?1",
                    [attempt_id],
                    |r| r.get(0),
                )
                .optional()?;
            let contact: Option<(i64, String, bool)> = c
                .query_row(
                    "SELECT k.id, k.status,
                            a.n = (SELECT MAX(n) FROM attempts WHERE contact_id = k.id)
                     FROM attempts a JOIN contacts k ON k.id = a.contact_id
                     WHERE a.id = ?1",
                    [attempt_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            c.execute(
                "DELETE FROM outcome_checks WHERE attempt_id = ?1",
                [attempt_id],
            )?;
            let Some((contact_id, status, latest)) = contact else {
                return Ok(None);
            };
            let retry = kind.as_deref() == Some("retry_check");
            let open = if retry {
                latest && (status == "pending" || status == "failed")
            } else {
                status == "unknown"
            };
            if !open {
                return Ok(None);
            }
            let mut arrival = None;
            match how {
                Reconciled::Found(rec) => {
                    let mut rec = *rec;
                    let (attempt_message, contact_message) = if retry {
                        (
                            "reconciled: the request failed with an internal error, but the call records show it created the call",
                            "reconciled: the request failed with an internal error, but the call records show the call was created (not called again)",
                        )
                    } else {
                        (
                            "reconciled: the call records show this request created the call",
                            "reconciled: the reply was lost, the call records show the call was created",
                        )
                    };
                    c.execute(
                        "UPDATE attempts SET outcome = 'placed', session_id = ?2, message = ?3
                         WHERE id = ?1",
                        params![attempt_id, rec.session_id, attempt_message],
                    )?;
                    c.execute(
                        "UPDATE contacts SET status = 'placed', session_id = ?2,
                           error_code = 'Reconciled', error_message = ?4, next_at = 0, gate = NULL,
                           updated_at = ?3
                         WHERE id = ?1",
                        params![contact_id, rec.session_id, now_ms, contact_message],
                    )?;
                    rec.contact_id = contact_id;
                    // A push of this session held before (no attempt had it): the call record
                    // read now is the authority, and takes its place.
                    c.prepare_cached("DELETE FROM pending_pushes WHERE session_id = ?1")?
                        .execute([&rec.session_id])?;
                    // Written after the attempt became placed (its trigger enrolled a check):
                    // the record removes that check again.
                    arrival = write_record(c, &rec)?.1;
                }
                Reconciled::NotPlaced if retry => {
                    // No call: the held retry goes now (the calling rules still apply).
                    c.execute(
                        "UPDATE contacts SET next_at = MIN(next_at, ?2), gate = NULL, updated_at = ?2
                         WHERE id = ?1 AND status = 'pending' AND gate = 'call_record_check'",
                        params![contact_id, now_ms],
                    )?;
                }
                Reconciled::NotPlaced => {
                    c.execute(
                        "UPDATE contacts SET status = 'not_placed', error_code = 'NoCallRecord',
                           error_message = 'no call record: the request did not create a call',
                           updated_at = ?2
                         WHERE id = ?1",
                        params![contact_id, now_ms],
                    )?;
                    // The dial row stays: "no record" is not proof no phone rang (a record
                    // only exists after the call ended), so a `--redial-not-placed` redial
                    // still waits for min_gap and max_per_day. The attempt no longer counts
                    // as one of the contact's calls for `redial.max_dials`.
                    c.execute(
                        "UPDATE attempts SET code = 'NoCallRecord' WHERE id = ?1",
                        [attempt_id],
                    )?;
                }
                Reconciled::Ambiguous(why) if retry => {
                    c.execute(
                        "UPDATE contacts SET status = 'unknown', error_message = ?2, next_at = 0,
                           gate = NULL, updated_at = ?3
                         WHERE id = ?1",
                        params![contact_id, why, now_ms],
                    )?;
                }
                Reconciled::Ambiguous(why) => {
                    c.execute(
                        "UPDATE contacts SET error_message = ?2, updated_at = ?3 WHERE id = ?1",
                        params![contact_id, why, now_ms],
                    )?;
                }
                Reconciled::Moot => {}
            }
            Ok(arrival)
        })
        .await?;
        if arrival.as_ref().is_some_and(|a| a.redialled) {
            self.redials_scheduled();
        }
        Ok(arrival)
    }

    /// `f` is told of every record a held push brings when an attempt gets its session (in
    /// [`Store::finish_attempt`]), after the commit: the outcome tracker's hook, so that such a
    /// record does in the process what any other record does (frees the call's line, counts in
    /// `/metrics`, wakes waiters) without waiting for a poll. One hook per store (and its
    /// clones); a later one replaces it.
    pub fn on_arrival(&self, f: OnArrival) {
        *self.arrival.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Hand `arrivals` to the hook, if one is set.
    pub(super) fn arrived(&self, arrivals: &[Arrival]) {
        if arrivals.iter().any(|a| a.redialled) {
            self.redials_scheduled();
        }
        let hook = self
            .arrival
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = hook {
            f(arrivals);
        }
    }

    /// Outcome figures of `campaign_id`: contacts by their latest session's class, placed ones
    /// still awaiting a record, in-doubt ones still being reconciled. A few rows of the kept
    /// counts (`outcome_counts`, `contact_counts`) and the campaign's open reconciliations; in a
    /// store of an older build read beside the process that owns it, counted from the contacts.
    pub async fn outcome_counts(&self, campaign_id: i64) -> Result<OutcomeCounts, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::outcome_counts(pg, campaign_id).await;
        }
        self.call(move |c| {
            let mut out = OutcomeCounts::default();
            let kept = c
                .prepare_cached(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcome_counts'",
                )?
                .exists([])?;
            if kept {
                let mut stmt = c.prepare_cached(
                    "SELECT class, n FROM outcome_counts WHERE campaign_id = ?1 AND n > 0",
                )?;
                let rows = stmt.query_map([campaign_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?;
                for r in rows {
                    let (class, n) = r?;
                    out.by_class.insert(class, n);
                }
                let placed: i64 = c
                    .prepare_cached(
                        "SELECT COALESCE(SUM(n), 0) FROM contact_counts
                         WHERE campaign_id = ?1 AND status = 'placed'",
                    )?
                    .query_row([campaign_id], |r| r.get(0))?;
                out.awaiting = (placed.max(0) as u64).saturating_sub(out.by_class.values().sum());
            } else {
                let mut stmt = c.prepare_cached(
                    "SELECT o.class, COUNT(*) FROM contacts k
                       JOIN outcomes o ON o.session_id = k.session_id
                     WHERE k.campaign_id = ?1 AND k.status = 'placed' GROUP BY o.class",
                )?;
                let rows = stmt.query_map([campaign_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?;
                for r in rows {
                    let (class, n) = r?;
                    out.by_class.insert(class, n);
                }
                out.awaiting = c.query_row(
                    "SELECT COUNT(*) FROM contacts k
                     WHERE k.campaign_id = ?1 AND k.status = 'placed' AND k.session_id IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.session_id = k.session_id)",
                    [campaign_id],
                    |r| r.get::<_, i64>(0),
                )? as u64;
            }
            out.reconciling =
                c.prepare_cached(
                    "SELECT COUNT(*) FROM outcome_checks o JOIN contacts k ON k.id = o.contact_id
                     WHERE o.kind = 'reconcile' AND k.campaign_id = ?1 AND k.status = 'unknown'",
                )?
                .query_row([campaign_id], |r| r.get::<_, i64>(0))? as u64;
            if super::redials::has_policy(c, campaign_id)? {
                out.reached = c.query_row(
                    "SELECT COUNT(DISTINCT o.contact_id) FROM outcomes o
                       JOIN contacts k ON k.id = o.contact_id
                     WHERE o.class = 'answered' AND k.campaign_id = ?1",
                    [campaign_id],
                    |r| r.get::<_, i64>(0),
                )? as u64;
                out.not_reached = c.query_row(
                    "SELECT COUNT(*) FROM contacts k
                     WHERE k.campaign_id = ?1
                       AND k.status NOT IN ('pending', 'in_flight', 'unknown')
                       AND EXISTS (SELECT 1 FROM outcomes o WHERE o.contact_id = k.id)
                       AND NOT EXISTS (SELECT 1 FROM outcomes o
                                       WHERE o.contact_id = k.id AND o.class = 'answered')
                       AND NOT EXISTS (SELECT 1 FROM outcome_checks oc WHERE oc.contact_id = k.id)",
                    [campaign_id],
                    |r| r.get::<_, i64>(0),
                )? as u64;
                out.redials_pending = c.query_row(
                    "SELECT COUNT(*) FROM contacts
                     WHERE campaign_id = ?1 AND status = 'pending' AND error_code = ?2",
                    params![campaign_id, crate::redial::CODE],
                    |r| r.get::<_, i64>(0),
                )? as u64;
            }
            Ok(out)
        })
        .await
    }

    /// Every session of one contact with its outcome (if known), oldest attempt first.
    pub async fn contact_sessions(
        &self,
        contact_id: i64,
    ) -> Result<Vec<(String, Option<OutcomeRecord>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::contact_sessions(pg, contact_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT a.session_id, o.class, o.end_status, o.end_status_string, o.duration_s,
                        o.ring_at, o.answered_at, o.ended_at, o.hangup_side,
                        o.sys_hangup_reason, o.ai_agent_id, o.source, o.recorded_at
                 FROM attempts a LEFT JOIN outcomes o ON o.session_id = a.session_id
                 WHERE a.contact_id = ?1 AND a.session_id IS NOT NULL ORDER BY a.n",
            )?;
            let rows = stmt.query_map([contact_id], |r| {
                let session: String = r.get(0)?;
                let class: Option<String> = r.get(1)?;
                let rec = match class {
                    None => None,
                    Some(class) => Some(OutcomeRecord {
                        session_id: session.clone(),
                        contact_id,
                        class,
                        end_status: r.get(2)?,
                        end_status_string: r.get(3)?,
                        duration_s: r.get(4)?,
                        ring_at: r.get(5)?,
                        answered_at: r.get(6)?,
                        ended_at: r.get(7)?,
                        hangup_side: r.get(8)?,
                        sys_hangup_reason: r.get(9)?,
                        ai_agent_id: r.get(10)?,
                        source: r.get(11)?,
                        recorded_at: r.get(12)?,
                    }),
                };
                Ok((session, rec))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// A call record this store has no attempt for (a push of the session a lost reply or a
    /// failed try created) names `callees` (its spellings) and started at `started_secs`: the
    /// lookups of the in-doubt attempts to that number sent within [start − 120 s, start + 60 s]
    /// (the reconciliation's window, seen from the call) fall due at `now_ms`, so the poller
    /// resolves them from DescribeTelCdr now rather than at their next check. Returns how many.
    pub async fn hasten_lookups(
        &self,
        callees: Vec<String>,
        started_secs: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::hasten_lookups(pg, callees, started_secs, now_ms).await;
        }
        self.call(move |c| {
            let from = (started_secs - crate::outcomes::reconcile::AFTER_SECS) * 1000;
            let to = (started_secs + crate::outcomes::reconcile::BEFORE_SECS) * 1000 + 999;
            let mut stmt = c.prepare_cached(
                "UPDATE outcome_checks SET asked = 1, next_check_at = ?3
                 WHERE kind IN ('reconcile', 'retry_check') AND sent_at BETWEEN ?1 AND ?2
                   AND (asked = 0 OR next_check_at > ?3)
                   AND (SELECT k.callee FROM contacts k WHERE k.id = outcome_checks.contact_id) = ?4",
            )?;
            let mut n = 0;
            for callee in &callees {
                n += stmt.execute(params![from, to, now_ms, callee])?;
            }
            Ok(n)
        })
        .await
    }

    /// Which of `sessions` an attempt in this store already has.
    pub async fn known_sessions(
        &self,
        sessions: Vec<String>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::known_sessions(pg, sessions).await;
        }
        self.call(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT 1 FROM attempts WHERE session_id = ?1 LIMIT 1")?;
            let mut out = std::collections::HashSet::new();
            for s in sessions {
                if stmt.exists([&s])? {
                    out.insert(s);
                }
            }
            Ok(out)
        })
        .await
    }

    /// `not_placed` contacts back to `pending` (`retry.redial_not_placed`): the call records
    /// showed their request created no call. Returns how many.
    pub async fn requeue_not_placed(
        &self,
        campaign_id: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::outcomes::requeue_not_placed(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = ?2
                 WHERE campaign_id = ?1 AND status = 'not_placed'",
                params![campaign_id, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
