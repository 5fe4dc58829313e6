//! The writer lock of a PostgreSQL store: the twin of `store::lock` (the SQLite file lock),
//! loosened for replicas. `run` and `serve` hold it *shared* (several of them dial one store
//! together, each under its own lease owner id: see `lease`); the other writing commands
//! (`purge`, `requeue`, `outcomes`, `dnc`) hold it *exclusive*, as every writer did before
//! leases, so they still run alone. A build from before leases takes it exclusive too: it
//! never dials beside a build that claims contacts (nor the reverse).
//!
//! Invariants:
//! - The lock belongs to the session: the server releases it when the connection ends, on any
//!   exit of the holder (`kill -9` and a crash included) and when the database restarts.
//! - A process whose lock connection ended (the database restarted, the connection was cut or
//!   stopped answering) no longer holds the lock and may no longer dial: it is told through
//!   [`PgWriter::lost`] and stops; until then every attempt it writes down is fenced: the
//!   transaction that writes it checks, in `pg_locks`, that its lock session still holds the
//!   lock ([`fence`]) (and its lease, see `lease`).
//! - The holder names itself in its lock connection's `application_name` (its pid and
//!   subcommand, never its arguments: the URL may hold a password); a refused process reads
//!   the holders with their connections' addresses and starts from `pg_stat_activity`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio::sync::watch;

use super::{describe, Pg};
use crate::store::lock::LockError;
use crate::store::StoreError;

/// The advisory lock's first key (`classid` in `pg_locks`): "cccd". The second is the store
/// schema's oid, so every schema of one database is a store of its own.
const LOCK_CLASS: i32 = 0x6363_6364;
/// How often the lock connection is asked whether it is alive, and how long an answer may take
/// before the lock counts as lost.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_PATIENCE: Duration = Duration::from_secs(5);
/// How long a writer waits for the lock before it concludes the store is taken: a holder that
/// just died (`kill -9`) is let go by the server within moments.
const PATIENCE: &str = "SET lock_timeout = '1s'";
/// How many times a refused writer looks again when the holder went away meanwhile.
const TRIES: usize = 3;

/// The lock as the store sees it (the fence in `begin_attempt`).
#[derive(Debug)]
pub(crate) struct Held {
    /// The lock session's backend pid.
    backend_pid: i32,
    schema_oid: u32,
    lost: AtomicBool,
    lost_tx: watch::Sender<bool>,
}

impl Held {
    fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            tracing::error!(
                reason = why,
                "lost the PostgreSQL store's writer lock: stopping dialling"
            );
            let _ = self.lost_tx.send(true);
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The message of an attempt refused because the lock was lost.
pub(crate) fn lost_error() -> StoreError {
    StoreError::WriterLost
}

/// The writer fence's query, prepared (a caller that pipelines it with other statements
/// prepares every one of them before sending any: see `queue::begin_attempt_checked`).
pub(crate) async fn fence_statement<C: GenericClient>(
    c: &C,
) -> Result<tokio_postgres::Statement, StoreError> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM pg_locks
         WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2
           AND pid = $3 AND granted",
    )
    .await?)
}

/// Refuse (and mark the lock lost) unless the lock session still holds the lock, checked
/// inside the caller's transaction: an attempt is written down only while this process is the
/// store's one writer. The query is sent when this is first polled.
pub(crate) async fn fence<C: GenericClient>(
    c: &C,
    stmt: &tokio_postgres::Statement,
    held: &Held,
) -> Result<(), StoreError> {
    if held.is_lost() {
        return Err(lost_error());
    }
    let still = c
        .query_opt(
            stmt,
            &[&(LOCK_CLASS as u32), &held.schema_oid, &held.backend_pid],
        )
        .await?;
    if still.is_none() {
        held.lose("its session no longer holds the lock");
        return Err(lost_error());
    }
    Ok(())
}

/// The writer lock of a PostgreSQL store, held until dropped (or the process ends).
pub struct PgWriter {
    held: Arc<Held>,
    lost: watch::Receiver<bool>,
    watcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PgWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWriter")
            .field("backend_pid", &self.held.backend_pid)
            .finish()
    }
}

impl PgWriter {
    /// Changes to `true` when the lock is lost (see the module's doc).
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    pub fn is_lost(&self) -> bool {
        self.held.is_lost()
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        // Ends the lock connection (the watcher owns it): the server releases the lock.
        self.watcher.abort();
    }
}

/// Take the writer lock of `pg`'s store for `command` (e.g. `run`), or say who holds it.
pub async fn acquire(pg: &Pg, command: &str) -> Result<PgWriter, LockError> {
    let io = |reason: String| LockError::Io {
        path: pg.target().into(),
        reason,
    };
    let mut config = pg.config.clone();
    let note = format!("pid {}, `ccc-dialer {command}`", std::process::id());
    // `application_name` holds 63 bytes of printable ASCII.
    let note: String = note
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(63)
        .collect();
    config.application_name(&note);
    let (client, connection) = config
        .connect(pg.tls.clone())
        .await
        .map_err(|e| io(describe(&e)))?;
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<String>();
    let conn_task = tokio::spawn(async move {
        let why = match connection.await {
            Ok(()) => "the database closed the connection".to_string(),
            Err(e) => describe(&e),
        };
        let _ = ended_tx.send(why);
    });
    let keys = client
        .query_one(
            "SELECT pg_backend_pid(), n.oid FROM pg_namespace n WHERE n.nspname = current_schema()",
            &[],
        )
        .await
        .map_err(|e| io(format!("cannot find the store's schema: {}", describe(&e))))?;
    let backend_pid: i32 = keys.get(0);
    let schema_oid: u32 = keys.get(1);
    client
        .batch_execute(PATIENCE)
        .await
        .map_err(|e| io(describe(&e)))?;
    // Dialling commands share the store (leases keep them apart); the others need it alone.
    let take = match command {
        "run" | "serve" => "SELECT pg_advisory_lock_shared($1, $2)",
        _ => "SELECT pg_advisory_lock($1, $2)",
    };
    let mut tries = 0;
    loop {
        let took = client
            .execute(take, &[&LOCK_CLASS, &(schema_oid as i32)])
            .await;
        match took {
            Ok(_) => break,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {}
            Err(e) => return Err(io(describe(&e))),
        }
        tries += 1;
        match holder(&client, schema_oid)
            .await
            .map_err(|e| io(describe(&e)))?
        {
            // Released between the two questions: ask again.
            None if tries < TRIES => continue,
            holder => {
                conn_task.abort();
                return Err(LockError::PgHeld {
                    target: pg.target().to_string(),
                    holder: holder.unwrap_or_else(|| "a process that has not said which".into()),
                });
            }
        }
    }
    client
        .batch_execute("RESET lock_timeout")
        .await
        .map_err(|e| io(describe(&e)))?;
    let (lost_tx, lost) = watch::channel(false);
    let held = Arc::new(Held {
        backend_pid,
        schema_oid,
        lost: AtomicBool::new(false),
        lost_tx,
    });
    pg.set_writer(held.clone());
    let watched = held.clone();
    let watcher = tokio::spawn(async move {
        let mut ended = ended_rx;
        let mut tick = tokio::time::interval(PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                why = &mut ended => {
                    watched.lose(&why.unwrap_or_else(|_| "the connection ended".into()));
                    return;
                }
                _ = tick.tick() => {
                    match tokio::time::timeout(PING_PATIENCE, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            watched.lose(&describe(&e));
                            return;
                        }
                        Err(_) => {
                            watched.lose("the lock connection stopped answering");
                            return;
                        }
                    }
                }
            }
        }
        // `client` and the connection task end here: the session and its lock with them.
    });
    Ok(PgWriter {
        held,
        lost,
        watcher,
    })
}

/// The processes that hold the writer lock of the schema `schema_oid`, described (pid and
/// subcommand, from where, since when; several replicas joined by "; "), if any does.
async fn holder<C: tokio_postgres::GenericClient>(
    c: &C,
    schema_oid: u32,
) -> Result<Option<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT a.application_name, host(a.client_addr),
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2
               AND l.objsubid = 2 AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY a.backend_start",
            &[&(LOCK_CLASS as u32), &schema_oid],
        )
        .await?;
    let described: Vec<String> = rows.iter().map(describe_holder).collect();
    Ok((!described.is_empty()).then(|| described.join("; ")))
}

fn describe_holder(r: &tokio_postgres::Row) -> String {
    let name: Option<String> = r.get(0);
    let from: Option<String> = r.get(1);
    let since: Option<String> = r.get(2);
    let mut s = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => "a process that has not said which".into(),
    };
    match from {
        Some(addr) => s.push_str(&format!(", from {addr}")),
        None => s.push_str(", over a local socket"),
    }
    if let Some(t) = since {
        s.push_str(&format!(", since {t} UTC"));
    }
    s
}

/// The live writer of `pg`'s store, described, if there is one (`status`, `export`).
pub async fn live_writer(pg: &Pg) -> Result<Option<String>, StoreError> {
    let c = pg.client().await?;
    let oid: Option<u32> = c
        .query_opt(
            "SELECT oid FROM pg_namespace WHERE nspname = current_schema()",
            &[],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let Some(oid) = oid else {
        return Ok(None);
    };
    Ok(holder(&**c, oid).await?)
}
