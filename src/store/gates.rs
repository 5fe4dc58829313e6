//! What the calling rules need from the store: holding a contact back with the gate that holds
//! it, ending it for a final gate (do-not-call, campaign end), and the history the per-person
//! and per-caller checks read (calls to one number across every campaign, caller uses today).

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};

use super::{pg, Store, StoreError};
use crate::calling::gate;
use crate::contact::Status;

/// The per-person rules, checked inside the transaction that writes an attempt down.
#[derive(Debug, Clone)]
pub struct PersonGuard {
    pub min_gap: Duration,
    pub max_per_day: u32,
    /// The zone whose local day the daily cap counts.
    pub day_zone: TimeZone,
    /// Calls older than this (unix ms) cannot hold the number back.
    pub since_ms: i64,
}

impl PersonGuard {
    /// `Err(Held)` when the contact's number may not be called at `now_ms`.
    pub(super) fn check(
        &self,
        c: &Connection,
        contact_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut stmt = c.prepare_cached(
            "SELECT d.at FROM dials d JOIN contacts k ON k.callee = d.callee
             WHERE k.id = ?1 AND d.at >= ?2",
        )?;
        let recent = stmt
            .query_map(params![contact_id, self.since_ms], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        self.judge(contact_id, &recent, now_ms)
    }

    /// `Err(Held)` when calls to the number at `recent` (unix ms, read by the store's own
    /// query) hold it back at `now_ms`.
    pub(super) fn judge(
        &self,
        contact_id: i64,
        recent: &[i64],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let recent = recent
            .iter()
            .filter_map(|t| Timestamp::from_millisecond(*t).ok())
            .collect::<Vec<_>>();
        let now = Timestamp::from_millisecond(now_ms)
            .map_err(|e| StoreError::Other(format!("clock: {e}")))?;
        if let Some(ahead) = recent.iter().filter(|t| **t > now).max() {
            tracing::warn!(
                contact = contact_id,
                ahead_ms = ahead.duration_since(now).as_millis() as i64,
                "a call to this number is recorded in the future: the wall clock ran ahead when it was written; counting it as now"
            );
        }
        gate::per_person(&recent, now, self.min_gap, self.max_per_day, &self.day_zone)
            .map_err(StoreError::Held)
    }
}

impl Store {
    /// Hold a pending contact back until `next_at` (unix ms) because of `gate`. Uses no attempt.
    pub async fn defer(
        &self,
        contact_id: i64,
        next_at: i64,
        gate: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::defer(pg, contact_id, next_at, gate.to_string(), now_ms).await;
        }
        let gate = gate.to_string();
        self.call(move |c| {
            c.prepare_cached(
                "UPDATE contacts SET next_at = ?2, gate = ?3, updated_at = ?4
                 WHERE id = ?1 AND status = 'pending'",
            )?
            .execute(params![contact_id, next_at.max(1), gate, now_ms])?;
            Ok(())
        })
        .await
    }

    /// End a pending contact for a final gate: `skipped` (do-not-call) or `expired`.
    pub async fn end_by_gate(
        &self,
        contact_id: i64,
        status: Status,
        code: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::end_by_gate(
                pg,
                contact_id,
                status,
                code.to_string(),
                message.to_string(),
                now_ms,
            )
            .await;
        }
        let (code, message) = (code.to_string(), message.to_string());
        self.call(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE contacts SET status = ?2, error_code = ?3, error_message = ?4,
                       gate = NULL, updated_at = ?5
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![contact_id, status.as_str(), code, message, now_ms])?;
            Ok(n == 1)
        })
        .await
    }

    /// Every pending contact of the campaign becomes `expired` (its end time passed).
    pub async fn expire_pending(
        &self,
        campaign_id: i64,
        message: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::expire_pending(pg, campaign_id, message.to_string(), now_ms).await;
        }
        let message = message.to_string();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE contacts SET status = 'expired', error_code = 'NotAfter', error_message = ?2,
                   gate = NULL, updated_at = ?3
                 WHERE campaign_id = ?1 AND status = 'pending'",
                params![campaign_id, message, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// The gate holding `contact_id`'s number under `guard` at `now_ms`, if any (read only; the
    /// authoritative check is [`Store::begin_attempt_guarded`]'s).
    pub async fn person_held(
        &self,
        contact_id: i64,
        guard: PersonGuard,
        now_ms: i64,
    ) -> Result<Option<gate::Gate>, StoreError> {
        if let Some(pg) = self.pg() {
            let held = pg::gates::persons_held(pg, vec![(contact_id, guard)], now_ms).await?;
            return Ok(held.into_iter().next().flatten());
        }
        self.call(move |c| match guard.check(c, contact_id, now_ms) {
            Ok(()) => Ok(None),
            Err(StoreError::Held(g)) => Ok(Some(g)),
            Err(e) => Err(e),
        })
        .await
    }

    /// [`Store::person_held`] for several contacts, in one call to the store (each `(contact,
    /// guard)` answered in order). The dispatcher reads its buffer's answers ahead this way: one
    /// round trip to the store per contact, each waiting for a group commit, held the whole
    /// dispatch loop to a few hundred contacts a second with the cap lifted.
    pub async fn persons_held(
        &self,
        checks: Vec<(i64, PersonGuard)>,
        now_ms: i64,
    ) -> Result<Vec<Option<gate::Gate>>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::persons_held(pg, checks, now_ms).await;
        }
        self.call(move |c| {
            checks
                .iter()
                .map(
                    |(contact_id, guard)| match guard.check(c, *contact_id, now_ms) {
                        Ok(()) => Ok(None),
                        Err(StoreError::Held(g)) => Ok(Some(g)),
                        Err(e) => Err(e),
                    },
                )
                .collect()
        })
        .await
    }

    /// When calls to `callee` that may have rung (placed, in doubt, or still on the wire) were
    /// sent since `since_ms`, across every campaign (the `dials` index).
    pub async fn calls_to(&self, callee: &str, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::calls_to(pg, callee.to_string(), since_ms).await;
        }
        let callee = callee.to_string();
        self.call(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT at FROM dials WHERE callee = ?1 AND at >= ?2")?;
            let rows = stmt.query_map(params![callee, since_ms], |r| r.get::<_, i64>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Forget dials older than `before_ms` (they can no longer hold a number back). Returns how
    /// many.
    pub async fn prune_dials(&self, before_ms: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::prune_dials(pg, before_ms).await;
        }
        self.call(move |c| Ok(c.execute("DELETE FROM dials WHERE at < ?1", [before_ms])? as u64))
            .await
    }

    /// Caller numbers used since `since_ms`, with when (to seed the caller pool's daily counts
    /// after a restart).
    pub async fn caller_uses_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::caller_uses_since(pg, since_ms).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT caller, started_at FROM attempts
                 WHERE started_at >= ?1 AND caller IS NOT NULL AND outcome IS NOT 'not_sent'
                 ORDER BY started_at",
            )?;
            let rows = stmt.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The earliest pending contact's due time and the gate holding it, if any is pending.
    pub async fn next_wait(
        &self,
        campaign_id: i64,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::next_wait(pg, campaign_id).await;
        }
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT next_at, gate FROM contacts WHERE campaign_id = ?1 AND status = 'pending'
                 ORDER BY next_at LIMIT 1",
                [campaign_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    /// Pending contacts by the gate holding them (`None`: due, waiting for the rate).
    pub async fn waiting_by_gate(
        &self,
        campaign_id: i64,
    ) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::gates::waiting_by_gate(pg, campaign_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT gate, COUNT(*) FROM contacts WHERE campaign_id = ?1 AND status = 'pending'
                 GROUP BY gate ORDER BY 2 DESC",
            )?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
