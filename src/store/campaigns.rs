//! Campaigns in the store: creation, lookup, their state (active, paused, cancelled, completed)
//! with the reason, and the inbox files already imported.
//!
//! A campaign's state is what `serve` resumes from after a restart: `active` campaigns are
//! dialled, `paused` ones wait for an operator (or the fix of a halt code), `cancelled` and
//! `completed` ones are done.

use rusqlite::{params, Connection, OptionalExtension};
use std::fmt;
use std::str::FromStr;

use super::{pg, Store, StoreError};

/// [`Store::sends_since`]'s query (`?1` campaign, `?2` since, in ms; public so a test can read
/// its plan). The attempts since the moment come first, through their time index, and each
/// finds its contact by id: a few hundred rows for a 10 s window. Left to itself the planner
/// walked every contact of the campaign instead (0.3 s at 1M contacts, on the store's one
/// thread, every 2 s a console is open); `CROSS JOIN` fixes the order, `INDEXED BY` the index.
pub const SENDS_SINCE_SQL: &str =
    "SELECT COUNT(*), MIN(a.started_at) FROM attempts AS a INDEXED BY attempts_started
       CROSS JOIN contacts AS k ON k.id = a.contact_id
     WHERE a.started_at >= ?2 AND k.campaign_id = ?1
       AND COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CampaignState {
    Active,
    Paused,
    Cancelled,
    Completed,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Active => "active",
            CampaignState::Paused => "paused",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Completed => "completed",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            CampaignState::Active,
            CampaignState::Paused,
            CampaignState::Cancelled,
            CampaignState::Completed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown campaign state {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub fingerprint: String,
    pub source: String,
    pub intake_done: bool,
    pub state: CampaignState,
    /// Why it is paused (an operator, or a halt code with its message).
    pub reason: Option<String>,
    /// The campaign's own settings over the config's defaults (JSON), if any.
    pub settings: Option<String>,
    pub priority: i64,
    pub created_at: i64,
    /// When its contacts and attempts were deleted (`purge`, `[store] retain`), if they were.
    pub purged_at: Option<i64>,
}

const COLUMNS: &str =
    "id, name, fingerprint, source, intake_done, state, reason, settings, priority, \
     created_at, purged_at";

fn campaign_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Campaign> {
    let state: String = r.get(5)?;
    Ok(Campaign {
        id: r.get(0)?,
        name: r.get(1)?,
        fingerprint: r.get(2)?,
        source: r.get(3)?,
        intake_done: r.get(4)?,
        state: state.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
        })?,
        reason: r.get(6)?,
        settings: r.get(7)?,
        priority: r.get(8)?,
        created_at: r.get(9)?,
        purged_at: r.get(10)?,
    })
}

/// A campaign to create.
#[derive(Debug, Clone, Default)]
pub struct NewCampaign {
    pub name: String,
    pub fingerprint: String,
    pub source: String,
    pub settings: Option<String>,
    pub priority: i64,
    /// The inbox file (name, fingerprint) it comes from: recorded in the same transaction, so a
    /// file is never imported into two campaigns, whenever the process dies.
    pub inbox: Option<(String, String)>,
    /// Created `paused` with this reason (`?paused=true`, a sidecar's `paused = true`).
    pub paused: Option<String>,
}

/// What a new campaign must not collide with ([`Store::create_campaign_unless`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateCheck {
    /// Only the name, unique among campaigns.
    Name,
    /// Nor a twin: another campaign (not an ad-hoc call) with the same contacts file that is
    /// active or paused, or was created since this time (Unix ms).
    NoTwinSince(i64),
    /// Nor an ad-hoc call (`call-…`) with the same one-row file, i.e. to the same callee, that
    /// is still to be dialled or in flight.
    NoOpenCall,
}

/// Why [`Store::create_campaign_unless`] created nothing.
#[derive(Debug, Clone)]
pub enum Refused {
    /// A campaign of this name exists (created meanwhile, perhaps by another replica).
    NameTaken,
    /// This campaign has the same contacts file.
    Twin(Campaign),
    /// This ad-hoc call campaign calls the same callee and is still open.
    OpenCall(i64),
}

/// The twin filter (`?1`/`$1` fingerprint, `?2`/`$2` the new name, `?3`/`$3` since), the same
/// text for both stores.
pub(crate) const TWIN: &str = "fingerprint = ?1 AND name <> ?2 AND substr(name, 1, 5) <> 'call-'
       AND (state IN ('active', 'paused') OR created_at >= ?3)";

/// The open ad-hoc call filter (`?1`/`$1` fingerprint).
pub(crate) const OPEN_CALL: &str = "substr(name, 1, 5) = 'call-' AND fingerprint = ?1
       AND state IN ('active', 'paused')
       AND (NOT intake_done OR EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = campaigns.id
                                       AND k.status IN ('pending', 'in_flight')))";

fn query_one(
    c: &Connection,
    filter: &str,
    arg: impl rusqlite::ToSql,
) -> Result<Option<Campaign>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM campaigns WHERE {filter}"),
        [arg],
        campaign_row,
    )
    .optional()?)
}

impl Store {
    pub async fn find_campaign(&self, name: &str) -> Result<Option<Campaign>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::find_campaign(pg, name.to_string()).await;
        }
        let name = name.to_string();
        self.call(move |c| query_one(c, "name = ?1", name)).await
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<Campaign>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::campaign(pg, id).await;
        }
        self.call(move |c| query_one(c, "id = ?1", id)).await
    }

    /// A new campaign with no settings of its own (`run`).
    pub async fn create_campaign(
        &self,
        name: &str,
        fingerprint: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<Campaign, StoreError> {
        self.create_campaign_with(
            NewCampaign {
                name: name.into(),
                fingerprint: fingerprint.into(),
                source: source.into(),
                ..Default::default()
            },
            now_ms,
        )
        .await
    }

    pub async fn create_campaign_with(
        &self,
        new: NewCampaign,
        now_ms: i64,
    ) -> Result<Campaign, StoreError> {
        let name = new.name.clone();
        match self
            .create_campaign_unless(new, CreateCheck::Name, now_ms)
            .await?
        {
            Ok(c) => Ok(c),
            Err(_) => Err(StoreError::Other(format!(
                "a campaign named {name:?} already exists"
            ))),
        }
    }

    /// Create a campaign unless `check` finds what it must not collide with, decided in the
    /// transaction that writes it (SQLite: the store thread's; PostgreSQL: under a
    /// transaction-scoped advisory lock on the contacts' fingerprint, the name by its unique
    /// constraint), so two processes (two replicas) asked at once create one campaign, not two.
    pub async fn create_campaign_unless(
        &self,
        new: NewCampaign,
        check: CreateCheck,
        now_ms: i64,
    ) -> Result<Result<Campaign, Refused>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::create_campaign_unless(pg, new, check, now_ms).await;
        }
        self.call(move |c| {
            match check {
                CreateCheck::Name => {}
                CreateCheck::NoTwinSince(since) => {
                    let twin = c
                        .query_row(
                            &format!(
                                "SELECT {COLUMNS} FROM campaigns WHERE {TWIN} ORDER BY id LIMIT 1"
                            ),
                            params![new.fingerprint, new.name, since],
                            campaign_row,
                        )
                        .optional()?;
                    if let Some(t) = twin {
                        return Ok(Err(Refused::Twin(t)));
                    }
                }
                CreateCheck::NoOpenCall => {
                    let open: Option<i64> = c
                        .query_row(
                            &format!("SELECT id FROM campaigns WHERE {OPEN_CALL} LIMIT 1"),
                            params![new.fingerprint],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(id) = open {
                        return Ok(Err(Refused::OpenCall(id)));
                    }
                }
            }
            let state = match new.paused {
                Some(_) => CampaignState::Paused,
                None => CampaignState::Active,
            };
            let taken = c.query_row(
                "SELECT 1 FROM campaigns WHERE name = ?1",
                [&new.name],
                |_| Ok(()),
            ).optional()?;
            if taken.is_some() {
                return Ok(Err(Refused::NameTaken));
            }
            c.execute(
                "INSERT INTO campaigns (name, fingerprint, source, created_at, settings, priority, updated_at,
                                        state, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4, ?7, ?8)",
                params![
                    new.name,
                    new.fingerprint,
                    new.source,
                    now_ms,
                    new.settings,
                    new.priority,
                    state.as_str(),
                    new.paused
                ],
            )?;
            let id = c.last_insert_rowid();
            if let Some((name, fingerprint)) = &new.inbox {
                c.execute(
                    "INSERT INTO inbox_files (name, fingerprint, campaign_id, outcome, at)
                     VALUES (?1, ?2, ?3, 'importing', ?4)",
                    params![name, fingerprint, id, now_ms],
                )?;
            }
            Ok(Ok(query_one(c, "id = ?1", id)?.ok_or_else(|| {
                StoreError::Other("campaign vanished after insert".into())
            })?))
        })
        .await
    }

    /// Every campaign in the store, oldest first.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::campaigns(pg).await;
        }
        self.call(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY id"))?;
            let rows = stmt.query_map([], campaign_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn mark_intake_done(&self, campaign_id: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::mark_intake_done(pg, campaign_id).await;
        }
        self.call(move |c| {
            c.execute(
                "UPDATE campaigns SET intake_done = 1 WHERE id = ?1",
                [campaign_id],
            )?;
            Ok(())
        })
        .await
    }

    /// Set a campaign's state and reason. A cancelled or completed campaign stays so.
    pub async fn set_campaign_state(
        &self,
        campaign_id: i64,
        state: CampaignState,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::set_campaign_state(pg, campaign_id, state, reason, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE campaigns SET state = ?2, reason = ?3, updated_at = ?4
                 WHERE id = ?1 AND state NOT IN ('cancelled', 'completed')",
                params![campaign_id, state.as_str(), reason, now_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// The reason shown beside an `active` campaign (what it waits for, e.g. its start time),
    /// or none. Leaves a campaign in any other state untouched: a pause that came meanwhile
    /// keeps its own reason.
    pub async fn set_active_reason(
        &self,
        campaign_id: i64,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::set_active_reason(pg, campaign_id, reason).await;
        }
        self.call(move |c| {
            c.execute(
                "UPDATE campaigns SET reason = ?2 WHERE id = ?1 AND state = 'active'
                   AND reason IS NOT ?2",
                params![campaign_id, reason],
            )?;
            Ok(())
        })
        .await
    }

    /// Mark an active campaign `completed`, unless a contact is still open (added since the
    /// dispatcher last looked): returns whether it was completed.
    pub async fn complete_if_done(
        &self,
        campaign_id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::complete_if_done(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE campaigns SET state = 'completed', reason = NULL, updated_at = ?2
                 WHERE id = ?1 AND state NOT IN ('cancelled', 'completed')
                   AND NOT EXISTS (SELECT 1 FROM contacts
                                   WHERE campaign_id = ?1 AND status IN ('pending', 'in_flight'))",
                params![campaign_id, now_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// A completed campaign becomes `active` again (contacts were added to it). Returns
    /// whether it was completed.
    pub async fn reopen(&self, campaign_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::reopen(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE campaigns SET state = 'active', reason = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'completed'",
                params![campaign_id, now_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// The highest line number stored for the campaign (0 when it has none): contacts added
    /// later are numbered after it.
    pub async fn last_line(&self, campaign_id: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::last_line(pg, campaign_id).await;
        }
        self.call(move |c| {
            let n: Option<i64> = c.query_row(
                "SELECT MAX(line) FROM contacts WHERE campaign_id = ?1",
                [campaign_id],
                |r| r.get(0),
            )?;
            Ok(n.unwrap_or(0).max(0) as u64)
        })
        .await
    }

    /// The rows an added file that turned out unusable part-way stored after line
    /// `after_line` and that were never attempted (`pending` or `skipped`, no attempt) are
    /// deleted: they were never dialled, and kept they would make the same numbers in a
    /// corrected upload duplicates. Rows a runner already dialled stay. Returns how many.
    pub async fn forget_unattempted_after(
        &self,
        campaign_id: i64,
        after_line: u64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::forget_unattempted_after(pg, campaign_id, after_line).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "DELETE FROM contacts
                 WHERE campaign_id = ?1 AND line > ?2 AND status IN ('pending', 'skipped')
                   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = contacts.id)
                   AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.contact_id = contacts.id)
                   AND NOT EXISTS (SELECT 1 FROM outcome_checks o WHERE o.contact_id = contacts.id)",
                params![campaign_id, after_line as i64],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// Whether the campaign has contacts still to dial or in flight.
    pub async fn has_open_contacts(&self, campaign_id: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::has_open_contacts(pg, campaign_id).await;
        }
        self.call(move |c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM contacts WHERE campaign_id = ?1 AND status IN ('pending', 'in_flight')
                 LIMIT 1",
            )?
            .exists([campaign_id])?)
        })
        .await
    }

    /// Every contact of the campaign still waiting for an attempt becomes `cancelled`. Contacts
    /// in flight keep their attempt: its reply is still recorded. Returns how many.
    pub async fn cancel_pending(&self, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::cancel_pending(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE contacts SET status = 'cancelled', error_code = 'Cancelled',
                   error_message = 'campaign cancelled before this contact was dialled',
                   updated_at = ?2
                 WHERE campaign_id = ?1 AND status = 'pending'",
                params![campaign_id, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// Requests of this campaign that reached the network since `since_ms` (for its rate), by
    /// [`SENDS_SINCE_SQL`].
    pub async fn sends_since(&self, campaign_id: i64, since_ms: i64) -> Result<u64, StoreError> {
        Ok(self.sends_window(campaign_id, since_ms).await?.0)
    }

    /// [`SENDS_SINCE_SQL`]: the campaign's requests sent since `since_ms`, and when the first
    /// of them was sent.
    pub async fn sends_window(
        &self,
        campaign_id: i64,
        since_ms: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::sends_window(pg, campaign_id, since_ms).await;
        }
        self.call(move |c| {
            let (n, first): (i64, Option<i64>) = c
                .prepare_cached(SENDS_SINCE_SQL)?
                .query_row(params![campaign_id, since_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok((n as u64, first))
        })
        .await
    }

    /// The campaign an inbox file (by name and content) was imported into, if it was.
    pub async fn inbox_file(
        &self,
        name: &str,
        fingerprint: &str,
    ) -> Result<Option<(Option<i64>, String)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::inbox_file(pg, name.to_string(), fingerprint.to_string()).await;
        }
        let (name, fingerprint) = (name.to_string(), fingerprint.to_string());
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT campaign_id, outcome FROM inbox_files WHERE name = ?1 AND fingerprint = ?2",
                params![name, fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    /// Remember what became of an inbox file (`imported` or `rejected`).
    pub async fn record_inbox_file(
        &self,
        name: &str,
        fingerprint: &str,
        campaign_id: Option<i64>,
        outcome: &str,
        detail: Option<String>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::record_inbox_file(
                pg,
                name.to_string(),
                fingerprint.to_string(),
                campaign_id,
                outcome.to_string(),
                detail,
                now_ms,
            )
            .await;
        }
        let (name, fingerprint, outcome) = (
            name.to_string(),
            fingerprint.to_string(),
            outcome.to_string(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO inbox_files (name, fingerprint, campaign_id, outcome, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name, fingerprint) DO UPDATE SET
                   campaign_id = excluded.campaign_id, outcome = excluded.outcome,
                   detail = excluded.detail, at = excluded.at",
                params![name, fingerprint, campaign_id, outcome, detail, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// A small durable write: proves the store is writable (readiness).
    pub async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::campaigns::check_writable(pg, now_ms).await;
        }
        self.call(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_check', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [now_ms.to_string()],
            )?;
            Ok(())
        })
        .await
    }
}
