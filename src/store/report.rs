//! What `report` reads from the store: waiting time by reason, requests per contact, and the
//! send times the achieved rate is measured from.

use rusqlite::params;

use super::{pg, Store, StoreError};

/// A campaign's requests that reached the network (never `not_sent`, never a requeue's note).
const SENT: &str = "COALESCE(a.outcome, '') NOT IN ('not_sent', 'requeued')";

impl Store {
    /// Add to campaign `campaign_id`'s waiting time, per reason (milliseconds).
    pub async fn add_waits(
        &self,
        campaign_id: i64,
        add: Vec<(String, i64)>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::add_waits(pg, campaign_id, add).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO waits (campaign_id, reason, ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (campaign_id, reason) DO UPDATE SET ms = ms + excluded.ms",
            )?;
            for (reason, ms) in add {
                stmt.execute(params![campaign_id, reason, ms])?;
            }
            Ok(())
        })
        .await
    }

    /// Campaign `campaign_id`'s waiting time by reason (milliseconds), longest first.
    pub async fn waits(&self, campaign_id: i64) -> Result<Vec<(String, u64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::waits(pg, campaign_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT reason, ms FROM waits WHERE campaign_id = ?1 ORDER BY ms DESC, reason",
            )?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// How many contacts had 0, 1, 2, … requests sent (requeues keep their history, so this
    /// counts every request ever sent for the contact).
    pub async fn requests_per_contact(
        &self,
        campaign_id: i64,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::requests_per_contact(pg, campaign_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT n, COUNT(*) FROM (
                   SELECT k.id, (SELECT COUNT(*) FROM attempts a
                                 WHERE a.contact_id = k.id AND {SENT}) AS n
                   FROM contacts k WHERE k.campaign_id = ?1)
                 GROUP BY n ORDER BY n"
            ))?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every send time of the campaign (unix ms, oldest first), passed to `each` on the store
    /// thread (a million sends are never held in a list). Returns `state`.
    pub async fn for_each_send<S, F>(
        &self,
        campaign_id: i64,
        mut state: S,
        mut each: F,
    ) -> Result<S, StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, i64) + Send + 'static,
    {
        if let Some(pg) = self.pg() {
            return pg::report::for_each_send(pg, campaign_id, state, each).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT COALESCE(a.sent_at, a.started_at) AS t FROM attempts a
                 JOIN contacts k ON k.id = a.contact_id
                 WHERE k.campaign_id = ?1 AND {SENT} ORDER BY t"
            ))?;
            let mut rows = stmt.query([campaign_id])?;
            while let Some(r) = rows.next()? {
                each(&mut state, r.get(0)?);
            }
            Ok(state)
        })
        .await
    }

    /// Campaign `campaign_id`'s placed calls by dial (1 = a contact's first placed call, 2 its
    /// second, …): `(dial, calls, calls with a record, answered)`, and for each contact answered
    /// at least once, the dial of its first answer.
    pub async fn outcomes_by_dial(
        &self,
        campaign_id: i64,
    ) -> Result<(Vec<(u64, u64, u64, u64)>, Vec<u64>), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::outcomes_by_dial(pg, campaign_id).await;
        }
        self.call(move |c| {
            const DIALS: &str = "SELECT a.contact_id, a.session_id,
                   ROW_NUMBER() OVER (PARTITION BY a.contact_id ORDER BY a.n) AS d
                 FROM attempts a JOIN contacts k ON k.id = a.contact_id
                 WHERE k.campaign_id = ?1 AND a.outcome = 'placed' AND a.session_id IS NOT NULL";
            let mut stmt = c.prepare_cached(&format!(
                "SELECT s.d, COUNT(*),
                        COALESCE(SUM(o.class IS NOT NULL AND o.class != 'no_record'), 0),
                        COALESCE(SUM(o.class = 'answered'), 0)
                 FROM ({DIALS}) s LEFT JOIN outcomes o ON o.session_id = s.session_id
                 GROUP BY s.d ORDER BY s.d"
            ))?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })?;
            let by_dial = rows.collect::<Result<Vec<_>, _>>()?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT MIN(s.d) FROM ({DIALS}) s JOIN outcomes o ON o.session_id = s.session_id
                 WHERE o.class = 'answered' GROUP BY s.contact_id"
            ))?;
            let rows = stmt.query_map([campaign_id], |r| Ok(r.get::<_, i64>(0)? as u64))?;
            let first_answers = rows.collect::<Result<Vec<_>, _>>()?;
            Ok((by_dial, first_answers))
        })
        .await
    }

    /// A value from the store's `meta` table.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::meta(pg, key.to_string()).await;
        }
        let key = key.to_string();
        self.call(move |c| {
            use rusqlite::OptionalExtension;
            Ok(
                c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    /// Set a value in the store's `meta` table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg::report::set_meta(pg, key.to_string(), value.to_string()).await;
        }
        let (key, value) = (key.to_string(), value.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
        .await
    }
}
