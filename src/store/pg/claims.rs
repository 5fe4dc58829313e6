//! Inbox files claimed by one replica before it reads them, when several `serve` replicas watch
//! one shared inbox folder over a PostgreSQL store.
//!
//! A claim is a session-level advisory lock, keyed on the store's schema and the file's name,
//! taken with `pg_try_advisory_lock` on a connection of the claimer's own: the replica that gets
//! it reads, imports and moves the file; the others see it taken and leave the file for this
//! pass. The server releases the claims of a replica that dies (kill -9, a crash, its
//! connection cut) with its session, so another replica can take the file over at its next
//! pass: it finds the import recorded with its campaign (`inbox_files`) and finishes it rather
//! than importing the file again.
//!
//! Invariants:
//! - A file is read only under its claim; the claim is released once the file has been moved
//!   away (or left for a later pass).
//! - The connection is opened at the first claim and again after it ended: a session that
//!   ended released every claim, so nothing is held across a reconnection.
//! - A name this process holds is not granted to it again until released: a session advisory
//!   lock is re-entrant, so without [`PgClaims::held`] the 1 s intake pass would take the
//!   claim of an intake this same process is still reading and import it a second time.

use tokio::sync::Mutex;

use super::{describe, Pg};
use crate::store::StoreError;

/// The advisory lock's first key: "ccci" (the writer lock's is "cccd").
const CLAIM_CLASS: i32 = 0x6363_6369;

/// The claims of one process (see the module's doc).
#[derive(Default)]
pub struct PgClaims {
    conn: Mutex<Option<(tokio_postgres::Client, tokio::task::JoinHandle<()>)>>,
    /// The names this process claimed and has not released (the std mutex is never held across
    /// an `.await`).
    held: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl PgClaims {
    /// Claim the inbox file `name`: `true` when this process holds it now (and may read it).
    pub async fn claim(&self, pg: &Pg, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.lock().await;
        if self.is_held(name) {
            return Ok(false);
        }
        if conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            if let Some((_, task)) = conn.take() {
                task.abort();
            }
            let (client, connection) = pg
                .config
                .connect(pg.tls.clone())
                .await
                .map_err(|e| StoreError::Postgres(describe(&e)))?;
            let task = tokio::spawn(async move {
                let _ = connection.await;
            });
            *conn = Some((client, task));
        }
        let Some((client, _)) = conn.as_ref() else {
            return Err(StoreError::Other("inbox claims: no connection".into()));
        };
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))",
                &[&CLAIM_CLASS, &name],
            )
            .await?;
        let took: bool = row.try_get(0)?;
        if took {
            self.held_names().insert(name.to_string());
        }
        Ok(took)
    }

    fn held_names(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_held(&self, name: &str) -> bool {
        self.held_names().contains(name)
    }

    /// Give the claim on `name` up (its file was moved away or is left for later).
    pub async fn release(&self, name: &str) -> Result<(), StoreError> {
        let conn = self.conn.lock().await;
        self.held_names().remove(name);
        if let Some((client, _)) = conn.as_ref().filter(|(c, _)| !c.is_closed()) {
            client
                .execute(
                    "SELECT pg_advisory_unlock($1, hashtext(current_schema() || '/' || $2))",
                    &[&CLAIM_CLASS, &name],
                )
                .await?;
        }
        Ok(())
    }
}

impl Drop for PgClaims {
    fn drop(&mut self) {
        if let Some((_, task)) = self.conn.get_mut().take() {
            task.abort();
        }
    }
}
