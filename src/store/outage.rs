//! The endpoint outage under way (or the one a run gave up on), kept in `meta` so `status`
//! and a restarted `serve` see it from the store alone.

use rusqlite::{params, OptionalExtension};

use super::{pg, Store, StoreError};
use crate::outage::Outage;

const KEY: &str = "endpoint_outage";

impl Store {
    /// Record the outage (`None`: the endpoint is reachable; the record is removed).
    pub async fn set_outage(&self, outage: Option<Outage>) -> Result<(), StoreError> {
        let json = match &outage {
            Some(o) => Some(
                serde_json::to_string(o)
                    .map_err(|e| StoreError::Other(format!("cannot encode the outage: {e}")))?,
            ),
            None => None,
        };
        if let Some(pg) = self.pg() {
            return match json {
                Some(j) => pg::report::set_meta(pg, KEY.into(), j).await,
                None => pg::report::delete_meta(pg, KEY.into()).await,
            };
        }
        self.call(move |c| {
            match json {
                Some(j) => c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![KEY, j],
                )?,
                None => c.execute("DELETE FROM meta WHERE key = ?1", [KEY])?,
            };
            Ok(())
        })
        .await
    }

    /// The outage recorded, if any (a record this build cannot read counts as none).
    pub async fn outage(&self) -> Result<Option<Outage>, StoreError> {
        if let Some(pg) = self.pg() {
            let text = pg::report::meta(pg, KEY.into()).await?;
            return Ok(text.and_then(|t| serde_json::from_str(&t).ok()));
        }
        self.call(|c| {
            let text: Option<String> = c
                .query_row("SELECT value FROM meta WHERE key = ?1", [KEY], |r| r.get(0))
                .optional()?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
        .await
    }
}
