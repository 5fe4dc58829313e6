//! The state store: one SQLite file that is the campaign's queue and its memory.
//!
//! Invariants:
//! - Nothing about a contact lives only in memory: intake writes every row (dialable or
//!   skipped), an attempt is committed *before* its request leaves (`begin_attempt`), and the
//!   outcome and the release of the contact commit together (`finish_attempt`).
//! - One connection, owned by one thread. Callers send jobs; the thread runs every job that is
//!   waiting in one transaction and commits once (group commit: one fsync for many writers),
//!   and only then answers them, so an answer always means "durable".
//! - WAL with `synchronous = FULL`: a committed transaction survives a crash and a power cut.

use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

mod campaigns;
mod detail;
mod gates;
mod history;
mod lines;
pub mod lock;
mod outage;
mod outcomes;
mod pages;
pub mod pg;
mod purge;
pub(crate) mod redials;
mod report;
mod requeue;
mod rows;
mod schema;
mod sends;
mod tags;
pub mod window;

pub use campaigns::{Campaign, CampaignState, CreateCheck, NewCampaign, Refused, SENDS_SINCE_SQL};
pub use detail::{AttemptRecord, ContactDetail};
pub use gates::PersonGuard;
pub use history::OutcomeMinute;
pub use lines::AGENT_LINES_BUSY;
pub use outcomes::{
    Arrival, DueReconcile, DueSession, OnArrival, OutcomeCounts, OutcomeRecord, Reconciled,
    Written, PENDING_PUSH_KEEP_MS,
};
pub use pages::{ContactFilter, ContactRow, ContactsPage, SEARCH_WINDOW};
pub use pg::notices::Notice;
pub use purge::{PurgeCounts, PurgeOutcome};
pub use redials::{RedialDecision, RedialWait};
pub use tags::{DueTagCheck, SessionResults, TagActions, TagsWritten};

use crate::contact::{NewContact, Overrides, ResultRow, Status};
use rows::{due_row, insert_contacts, result_row, RESULT_COLUMNS, RESULT_FROM};

/// The columns the results file appends after [`crate::results::COLUMNS`]: the analysis'
/// `summary`, `mood`, `intention` (once the campaign has one), then `tag:NAME` per tag name
/// seen in the campaign, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultExtras {
    pub analysis: bool,
    pub tags: Vec<String>,
}

impl ResultExtras {
    /// Their header cells.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = Vec::new();
        if self.analysis {
            h.extend(["summary", "mood", "intention"].map(String::from));
        }
        h.extend(self.tags.iter().map(|t| format!("tag:{t}")));
        h
    }

    pub fn is_empty(&self) -> bool {
        !self.analysis && self.tags.is_empty()
    }

    /// One contact's cells (none without extras).
    pub(super) fn cells(&self, c: &Connection, contact_id: i64) -> Result<Vec<String>, StoreError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        tags::extra_cells(c, contact_id, &self.tags, self.analysis)
    }
}

/// The claim key of additions to a campaign: never an inbox file's name (those hold no '/').
fn additions_key(campaign_id: i64) -> String {
    format!("additions/{campaign_id}")
}

/// Jobs taken into one transaction at most (bounds latency of the first job in a batch).
const MAX_BATCH: usize = 512;

/// Prepared statements the store's connection keeps (rusqlite's default is 16, fewer than the
/// statements one attempt runs with the savepoints around its jobs).
const STATEMENT_CACHE: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open the state store: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: written by a newer ccc-dialer (schema {found}, this build knows {known})")]
    Schema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state store: the store thread has stopped")]
    Closed,
    /// `begin_attempt_guarded` refused: a per-person rule holds the number (the gate says which
    /// and until when).
    #[error("held: {0}")]
    Held(crate::calling::gate::Gate),
    /// `begin_attempt_checked` refused: an earlier attempt failed with `InternalError*` and the
    /// call records have not yet ruled out that it created the call (that try's send, unix ms).
    #[error("waiting for the call records before a retry (the failed try was sent at {0})")]
    AwaitingRecords(i64),
    /// `begin_attempt` for a contact that is no longer pending (cancelled meanwhile).
    #[error("contact {0} is not pending; refusing to start an attempt")]
    NotPending(i64),
    /// PostgreSQL with several replicas: this process's lease on the contact expired or another
    /// replica took the contact over (see `store::pg::lease`). Nothing was written; the contact
    /// is another replica's now and this one must not send for it.
    #[error("contact {0}: this replica's lease on it expired or was taken over; not sent")]
    LeaseLost(i64),
    #[error("state store: {0}")]
    Other(String),
    /// A PostgreSQL store could not be reached or set up (`target` is the URL without its
    /// password).
    #[error("{target}: cannot open the state store: {message}")]
    PgOpen { target: String, message: String },
    #[error("state store (PostgreSQL): {0}")]
    Postgres(String),
    /// This process no longer holds the PostgreSQL store's writer lock (its lock connection
    /// ended: the database restarted, or the connection was cut): it may write no attempt.
    #[error(
        "state store (PostgreSQL): this process lost the store's writer lock (its connection \
         to the database ended); it stops dialling so that no other process's contacts are \
         called twice: start it again to continue"
    )]
    WriterLost,
    /// The account's window shared through the database has no slot within
    /// [`window::HORIZON`]: nothing was written down; ask again at the instant given (this
    /// process's clock), when it has room.
    #[error("the account's send window is full for now")]
    WindowFull(std::time::Instant),
    /// Requests of `action` were too late for their slots in the shared window
    /// [`window::TOO_LATE_IN_A_ROW`] times in a row: the database takes longer from a slot's
    /// reservation to its commit than a slot may wait ([`window::MAX_HOLD`]), so nothing can be
    /// sent through it until it is faster.
    #[error(
        "state store (PostgreSQL): {in_a_row} {action} requests in a row could not leave in \
         their slot of the account's shared send window: the database took {took_ms} ms from \
         reserving a slot to committing it, more than the {max_ms} ms a slot is held; nothing is \
         sent until it answers faster (check the database's load and the network to it)"
    )]
    WindowTooSlow {
        action: String,
        in_a_row: u32,
        took_ms: u64,
        max_ms: u64,
    },
    /// A store method with no PostgreSQL implementation yet, called on a PostgreSQL store.
    #[error("state store: {0} is not available on a PostgreSQL store yet")]
    NotPorted(String),
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs inside the batch's transaction and says whether it succeeded (a failed job's
/// writes are rolled back to its savepoint, the others' are kept).
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// Handle to the store: the SQLite store thread, or a PostgreSQL connection pool. Cheap to
/// clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The SQLite file, or the PostgreSQL URL without its password.
    path: PathBuf,
    /// Bumped after a commit that scheduled redials (see [`Store::redial_watch`]).
    redials: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Told of the records held pushes brought as attempts got their sessions (see
    /// [`Store::on_arrival`]).
    arrival: std::sync::Arc<std::sync::RwLock<Option<OnArrival>>>,
}

/// Shows the store's kind and path (a PostgreSQL URL without its password), nothing more.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("Store")
            .field("kind", &kind)
            .field("path", &self.path)
            .finish()
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite(mpsc::Sender<Job>),
    Postgres(std::sync::Arc<pg::Pg>),
}

/// A contact due for an attempt, as the dispatcher needs it.
#[derive(Debug, Clone)]
pub struct DueContact {
    pub id: i64,
    pub campaign_id: i64,
    pub callee: String,
    pub overrides: Overrides,
    pub attempts: u32,
    pub reschedules: u32,
    /// The contact's line in its file (the header is line 1; 0 for a `call` outside a file):
    /// log lines name a contact by it and its masked number.
    pub line: u64,
}

/// How an attempt ended and where it leaves its contact.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// `placed`, `failed`, `unknown`, or `pending` (will be tried again).
    pub status: Status,
    /// Attempts used so far (throttling and halts do not use one).
    pub attempts: u32,
    pub reschedules: u32,
    /// Unix ms when a pending contact is next due.
    pub next_at: i64,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What happened to this one request: `placed`, `error`, `not_sent`, `in_doubt`.
    pub outcome: &'static str,
    /// Unix ms when the request was handed to the network (`None` if it never was).
    pub sent_at: Option<i64>,
    pub finished_at: i64,
}

impl AttemptOutcome {
    /// A request that never left: its contact goes back to `pending`, due at `next_at`, with
    /// its counters untouched (no attempt used).
    pub fn not_sent(contact: &DueContact, next_at: i64, finished_at: i64) -> AttemptOutcome {
        AttemptOutcome {
            status: Status::Pending,
            attempts: contact.attempts,
            reschedules: contact.reschedules,
            next_at,
            session_id: None,
            request_id: None,
            error_code: None,
            error_message: None,
            outcome: "not_sent",
            sent_at: None,
            finished_at,
        }
    }
}

/// What intake did with a batch of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeCounts {
    pub accepted: u64,
    pub skipped: u64,
    pub duplicates: u64,
    /// Lines already in the store (an interrupted intake being resumed).
    pub already_stored: u64,
}

impl Store {
    /// Open (creating if missing) the store at `path` and start its thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(open_err)?;
        schema::migrate(&conn, path)?;
        Store::start(conn, path, "BEGIN IMMEDIATE")
    }

    /// Open an existing store for reading only (`status`, `export`): no lock, no migration, no
    /// write of any kind, so it is safe beside a live `run` or `serve`. A store from an older
    /// build is opened as [`Store::open`] would (migrated) unless `writer_live`.
    pub fn open_read_only(path: &Path, writer_live: bool) -> Result<Store, StoreError> {
        use rusqlite::OpenFlags;
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > schema::SCHEMA_VERSION {
            return Err(StoreError::Schema {
                path: path.to_path_buf(),
                found: version,
                known: schema::SCHEMA_VERSION,
            });
        }
        if version < schema::SCHEMA_VERSION && !writer_live {
            drop(conn);
            return Store::open(path);
        }
        // A deferred transaction: a read-only connection cannot begin an immediate one.
        Store::start(conn, path, "BEGIN")
    }

    fn start(conn: Connection, path: &Path, begin: &'static str) -> Result<Store, StoreError> {
        // Every statement an attempt runs (and the savepoint around each job) stays prepared:
        // at rusqlite's default of 16 the store's statements evicted each other and were
        // parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ccc-store".into())
            .spawn(move || run_jobs(conn, rx, begin))
            .map_err(|e| StoreError::Other(format!("cannot start the store thread: {e}")))?;
        Ok(Store {
            backend: Backend::Sqlite(tx),
            path: path.to_path_buf(),
            redials: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            arrival: Default::default(),
        })
    }

    /// Open the store `--state` names: a `postgres://` (or `postgresql://`) URL connects to
    /// that PostgreSQL database, anything else is a SQLite file ([`Store::open`]).
    pub async fn open_state(state: &Path) -> Result<Store, StoreError> {
        match state.to_str().filter(|s| pg::is_url(s)) {
            Some(url) => Store::connect_postgres(url).await,
            None => Store::open(state),
        }
    }

    /// Connect to a PostgreSQL store and migrate its schema (see `store::pg`).
    pub async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let pg = pg::Pg::connect(url).await?;
        Ok(Store {
            path: PathBuf::from(pg.target()),
            backend: Backend::Postgres(std::sync::Arc::new(pg)),
            redials: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            arrival: Default::default(),
        })
    }

    /// A PostgreSQL store that already exists, or `None` (nothing written) when the database
    /// holds no ccc-dialer schema yet.
    pub async fn connect_existing_postgres(url: &str) -> Result<Option<Store>, StoreError> {
        Ok(pg::Pg::connect_existing(url).await?.map(|pg| Store {
            path: PathBuf::from(pg.target()),
            backend: Backend::Postgres(std::sync::Arc::new(pg)),
            redials: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            arrival: Default::default(),
        }))
    }

    /// Whether `state` (a `--state` value) names a PostgreSQL database.
    pub fn is_postgres_url(state: &Path) -> bool {
        state.to_str().is_some_and(pg::is_url)
    }

    /// The SQLite file, or the PostgreSQL URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a PostgreSQL store.
    pub fn is_postgres(&self) -> bool {
        self.pg().is_some()
    }

    /// Take the writer lock of a PostgreSQL store for `command` (see `store::pg::writer`), or
    /// say who holds it; `None` for a SQLite store (its file lock, `store::lock`, is taken
    /// before it is opened).
    pub async fn lock_writer(
        &self,
        command: &str,
    ) -> Result<Option<pg::writer::PgWriter>, lock::LockError> {
        match self.pg() {
            Some(pg) => Ok(Some(pg::writer::acquire(pg, command).await?)),
            None => Ok(None),
        }
    }

    /// The process holding a PostgreSQL store's writer lock, described, if one does (`None`
    /// for a SQLite store: see `store::lock::live_writer`).
    pub async fn pg_live_writer(&self) -> Result<Option<String>, StoreError> {
        match self.pg() {
            Some(pg) => pg::writer::live_writer(pg).await,
            None => Ok(None),
        }
    }

    /// What other processes sharing a PostgreSQL store change, as they commit it (see
    /// `store::pg::notices`), for as long as the receiver is kept; `None` for a SQLite store,
    /// which one process owns.
    pub fn notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg::notices::listen(pg.clone())),
            Backend::Sqlite(_) => None,
        }
    }

    /// Tell every process sharing a PostgreSQL store of `notice` (nothing to do on SQLite).
    pub async fn announce(&self, notice: Notice) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg::notices::announce(pg, notice).await,
            None => Ok(()),
        }
    }

    /// Claim the inbox file `name` before reading it: `true` when this process may take it.
    /// On PostgreSQL, replicas watching one shared inbox claim a file in the database, and a
    /// replica that dies lets its claims go (see `store::pg::claims`); a SQLite store has one
    /// process, which always may.
    pub async fn claim_inbox_file(&self, name: &str) -> Result<bool, StoreError> {
        match self.pg() {
            Some(pg) => pg.claim_inbox_file(name).await,
            None => Ok(true),
        }
    }

    /// Let the claim on the inbox file `name` go (it was moved away, or is left for later).
    pub async fn release_inbox_file(&self, name: &str) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg.release_inbox_file(name).await,
            None => Ok(()),
        }
    }

    /// PostgreSQL: how long a claim on a contact lasts unless renewed (`[store] lease`). No
    /// effect on a SQLite store (one process, its file lock).
    pub fn set_lease(&self, ttl: std::time::Duration) {
        if let Some(pg) = self.pg() {
            pg.leases().set_ttl(ttl);
        }
    }

    /// PostgreSQL: this process's owner id on its leases (`None` for a SQLite store).
    pub fn lease_owner(&self) -> Option<String> {
        self.pg().map(|pg| pg.leases().owner().to_string())
    }

    /// Whether a request for `contact_id` may leave now as far as leases go: always on a SQLite
    /// store; on PostgreSQL, only while this process's claim on it is known to be live (see
    /// `store::pg::lease`).
    pub fn lease_live(&self, contact_id: i64) -> bool {
        match self.pg() {
            Some(pg) => pg.leases().live(contact_id),
            None => true,
        }
    }

    /// PostgreSQL: whether another replica's leases on `campaign_id`'s contacts ran out (it
    /// died or froze) since this process last took its contacts (see `store::pg::takeover`);
    /// asking clears it. In memory, no statement: a dispatcher asks between two requests. Never
    /// on a SQLite store (one process).
    pub fn leases_ran_out(&self, campaign_id: i64) -> bool {
        self.pg()
            .is_some_and(|pg| pg.leases().take_ran_out(campaign_id))
    }

    /// PostgreSQL: the due contacts of `campaign_id` another replica held when its leases ran
    /// out, claimed for this process (its calls in flight recovered first: `unknown`), at most
    /// `limit`, none of `exclude`. The dispatcher puts them ahead of its batch. Nothing on a
    /// SQLite store.
    pub async fn take_over(
        &self,
        campaign_id: i64,
        now_ms: i64,
        limit: usize,
        exclude: HashSet<i64>,
    ) -> Result<Vec<DueContact>, StoreError> {
        match self.pg() {
            Some(pg) => pg::queue::take_over(pg, campaign_id, now_ms, limit, exclude).await,
            None => Ok(Vec::new()),
        }
    }

    /// PostgreSQL: give up the claims this process still holds on `campaign_id`'s contacts
    /// (the dispatcher stopped): pending ones are claimable by other replicas at once, ones
    /// left in flight are in doubt for whoever recovers them. Nothing on a SQLite store.
    pub async fn release_claims(&self, campaign_id: i64) -> Result<u64, StoreError> {
        match self.pg() {
            Some(pg) => pg::queue::release_claims(pg, campaign_id).await,
            None => Ok(0),
        }
    }

    /// Wait until this process alone adds contacts to `campaign_id` (their lines are numbered
    /// after the campaign's last, so two additions at once would number theirs alike and the
    /// second's rows would be taken for the first's). On PostgreSQL the claim is held in the
    /// database, for every replica (see `store::pg::claims`); a SQLite store has one process,
    /// which serialises its own additions. Let it go with [`Store::release_additions`].
    pub async fn claim_additions(&self, campaign_id: i64) -> Result<(), StoreError> {
        let Some(pg) = self.pg() else {
            return Ok(());
        };
        let key = additions_key(campaign_id);
        let mut waited = false;
        while !pg.claim_inbox_file(&key).await? {
            if !waited {
                tracing::info!(
                    campaign = campaign_id,
                    "another replica is adding contacts to this campaign: waiting for it"
                );
                waited = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// [`Store::claim_additions`] without waiting: `false` when another replica holds it.
    pub async fn try_claim_additions(&self, campaign_id: i64) -> Result<bool, StoreError> {
        match self.pg() {
            Some(pg) => pg.claim_inbox_file(&additions_key(campaign_id)).await,
            None => Ok(true),
        }
    }

    /// Let the claim [`Store::claim_additions`] took go.
    pub async fn release_additions(&self, campaign_id: i64) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg.release_inbox_file(&additions_key(campaign_id)).await,
            None => Ok(()),
        }
    }

    /// The PostgreSQL pool, when this is a PostgreSQL store (a method's PostgreSQL arm).
    fn pg(&self) -> Option<&pg::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// Run `f` inside the store's next transaction; resolves after that transaction commits.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let jobs = match &self.backend {
            Backend::Sqlite(jobs) => jobs,
            // A method without its PostgreSQL arm: refused, naming it, rather than run on a
            // connection it was not written for.
            Backend::Postgres(_) => return Err(StoreError::NotPorted(method_of::<F>())),
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed: Result<(), String>| {
                let answer = match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Other(format!("commit failed: {e}"))),
                };
                let _ = tx.send(answer);
            });
            (ok, reply)
        });
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Store a batch of rows. Idempotent per line, so an interrupted intake can be run again;
    /// a callee already in the campaign makes the row a `skipped` duplicate.
    pub async fn insert_contacts(
        &self,
        campaign_id: i64,
        rows: Vec<NewContact>,
        now_ms: i64,
    ) -> Result<IntakeCounts, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::insert_contacts(pg, campaign_id, rows, now_ms).await;
        }
        self.call(move |c| insert_contacts(c, campaign_id, &rows, now_ms))
            .await
    }

    /// Contacts whose attempt has no recorded outcome (the process died, or stopped waiting for
    /// the reply) are in doubt: they become `unknown`, never silently `pending`. Returns how many.
    pub async fn settle_in_flight(&self, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::settle_in_flight(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            c.execute(
                "UPDATE attempts SET outcome = 'in_doubt', finished_at = ?2
                 WHERE outcome IS NULL AND contact_id IN
                   (SELECT id FROM contacts WHERE campaign_id = ?1 AND status = 'in_flight')",
                params![campaign_id, now_ms],
            )?;
            let n = c.execute(
                "UPDATE contacts SET status = 'unknown', error_code = 'InDoubt',
                   error_message = 'the dialer stopped before the reply arrived; the call may have been placed',
                   updated_at = ?2
                 WHERE campaign_id = ?1 AND status = 'in_flight'",
                params![campaign_id, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// An attempt written down whose request never left (its task was stopped while it waited
    /// for its commit or its window slot): the contact goes back to `pending`, due at once, and
    /// the attempt is recorded `not_sent`. Returns whether the contact was in flight.
    pub async fn release_unsent(&self, contact_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::release_unsent(pg, contact_id, now_ms).await;
        }
        self.call(move |c| {
            c.execute(
                "DELETE FROM dials WHERE attempt_id IN
                   (SELECT id FROM attempts WHERE contact_id = ?1 AND outcome IS NULL)",
                [contact_id],
            )?;
            c.execute(
                "UPDATE attempts SET outcome = 'not_sent', finished_at = ?2
                 WHERE contact_id = ?1 AND outcome IS NULL",
                params![contact_id, now_ms],
            )?;
            let n = c.execute(
                "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = ?2
                 WHERE id = ?1 AND status = 'in_flight'",
                params![contact_id, now_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// RISKY, only on the operator's request (`--redial-unknown`): every `unknown` contact goes
    /// back to `pending`, due at once. Someone may be called twice. Returns how many.
    pub async fn requeue_unknown(&self, campaign_id: i64, now_ms: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::requeue_unknown(pg, campaign_id, now_ms).await;
        }
        self.call(move |c| {
            let n = c.execute(
                "UPDATE contacts SET status = 'pending', next_at = 0, updated_at = ?2
                 WHERE campaign_id = ?1 AND status = 'unknown'",
                params![campaign_id, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }

    /// Up to `limit` contacts due at `now_ms`: retries that have come due first (oldest first),
    /// then first attempts in file order. Ids in `exclude` (already held by the dispatcher) are
    /// left out.
    pub async fn due_contacts(
        &self,
        campaign_id: i64,
        now_ms: i64,
        limit: usize,
        exclude: HashSet<i64>,
    ) -> Result<Vec<DueContact>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::due_contacts(pg, campaign_id, now_ms, limit, exclude).await;
        }
        self.call(move |c| {
            let want = limit + exclude.len();
            let mut out = Vec::with_capacity(want);
            let mut retries = c.prepare_cached(
                "SELECT id, campaign_id, callee, overrides, attempts, reschedules, line FROM contacts
                 WHERE campaign_id = ?1 AND status = 'pending' AND next_at > 0 AND next_at <= ?2
                 ORDER BY next_at, id LIMIT ?3",
            )?;
            let rows = retries.query_map(params![campaign_id, now_ms, want as i64], due_row)?;
            for r in rows {
                out.push(r?);
            }
            if out.len() < want {
                let mut first = c.prepare_cached(
                    "SELECT id, campaign_id, callee, overrides, attempts, reschedules, line FROM contacts
                     WHERE campaign_id = ?1 AND status = 'pending' AND next_at = 0
                     ORDER BY id LIMIT ?2",
                )?;
                let rows =
                    first.query_map(params![campaign_id, (want - out.len()) as i64], due_row)?;
                for r in rows {
                    out.push(r?);
                }
            }
            out.retain(|d| !exclude.contains(&d.id));
            out.truncate(limit);
            Ok(out)
        })
        .await
    }

    /// When the earliest pending contact is due (unix ms; 0 = now), or `None` if none is pending.
    pub async fn next_due_at(&self, campaign_id: i64) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::next_due_at(pg, campaign_id).await;
        }
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT MIN(next_at) FROM contacts WHERE campaign_id = ?1 AND status = 'pending'",
                [campaign_id],
                |r| r.get::<_, Option<i64>>(0),
            )?)
        })
        .await
    }

    /// Write the attempt down before its request leaves. Returns the attempt's number.
    pub async fn begin_attempt(
        &self,
        contact_id: i64,
        started_at_ms: i64,
        caller: Option<String>,
    ) -> Result<i64, StoreError> {
        self.begin_attempt_guarded(contact_id, started_at_ms, caller, None)
            .await
    }

    /// [`Store::begin_attempt`], refused with [`StoreError::Held`] when `guard` says the number
    /// was called too recently or too often today. Checked and written in one transaction on
    /// the store's one thread, so two campaigns cannot both pass for the same number.
    pub async fn begin_attempt_guarded(
        &self,
        contact_id: i64,
        started_at_ms: i64,
        caller: Option<String>,
        guard: Option<PersonGuard>,
    ) -> Result<i64, StoreError> {
        self.begin_attempt_checked(contact_id, started_at_ms, caller, guard, false)
            .await
            .map(|b| b.n)
    }

    /// [`Store::begin_attempt_guarded`]; with `await_records` (outcome tracking on), also
    /// refused with [`StoreError::AwaitingRecords`] while an earlier attempt of the contact that
    /// failed with `InternalError*` has not been looked up in the call records yet (its
    /// `retry_check`): the call it may have created must be ruled out before a retry.
    ///
    /// When the store shares CreateAIAgentCall's window ([`Store::share_window`]), the same
    /// transaction reserves the request's slot in it (see [`window`]), or is refused with
    /// [`StoreError::WindowFull`] and writes nothing.
    pub async fn begin_attempt_checked(
        &self,
        contact_id: i64,
        started_at_ms: i64,
        caller: Option<String>,
        guard: Option<PersonGuard>,
        await_records: bool,
    ) -> Result<window::Begun, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::begin_attempt_checked(
                pg,
                contact_id,
                started_at_ms,
                caller,
                guard,
                await_records,
            )
            .await;
        }
        self.call(move |c| {
            if await_records {
                let next: Option<i64> = c
                    .prepare_cached(
                        "SELECT MAX(sent_at) FROM outcome_checks
                         WHERE contact_id = ?1 AND kind = 'retry_check'",
                    )?
                    .query_row([contact_id], |r| r.get(0))?;
                if let Some(next) = next {
                    return Err(StoreError::AwaitingRecords(next));
                }
            }
            if let Some(g) = guard {
                g.check(c, contact_id, started_at_ms)?;
            }
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) + 1 FROM attempts WHERE contact_id = ?1")?
                .query_row([contact_id], |r| r.get(0))?;
            c.prepare_cached(
                "INSERT INTO attempts (contact_id, n, started_at, caller) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![contact_id, n, started_at_ms, caller])?;
            c.prepare_cached(
                "INSERT INTO dials (attempt_id, callee, at)
                 SELECT last_insert_rowid(), callee, ?2 FROM contacts WHERE id = ?1",
            )?
            .execute(params![contact_id, started_at_ms])?;
            let changed = c
                .prepare_cached(
                    "UPDATE contacts SET status = 'in_flight', gate = NULL, updated_at = ?2
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![contact_id, started_at_ms])?;
            if changed != 1 {
                return Err(StoreError::NotPending(contact_id));
            }
            Ok(window::Begun { n, slot: None })
        })
        .await
    }

    /// Record how an attempt ended and release its contact, in one transaction. A pushed record
    /// held for its session (the push came before the reply) is written in the same
    /// transaction, the way any record is ([`outcomes`]' `write_record`: its outcome, the redial
    /// decision), and handed to [`Store::on_arrival`]'s hook after the commit.
    pub async fn finish_attempt(
        &self,
        contact_id: i64,
        attempt_no: i64,
        o: AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.finish_attempt_with_result(contact_id, attempt_no, o)
            .await
            .map(|_| ())
    }

    /// [`Store::finish_attempt`], returning the contact's result row (as
    /// [`Store::result_of`] reads it) when the outcome leaves the contact final: read in the
    /// same job on SQLite, so a final attempt waits for one commit of the store's thread, not
    /// two; in the same transaction on PostgreSQL, so it takes no connection and round trips of
    /// its own.
    pub async fn finish_attempt_with_result(
        &self,
        contact_id: i64,
        attempt_no: i64,
        o: AttemptOutcome,
    ) -> Result<Option<ResultRow>, StoreError> {
        let final_status = o.status.is_final();
        if let Some(pg) = self.pg() {
            // The result row is read in the finishing transaction, as on SQLite.
            let (claimed, lost, row) =
                pg::queue::finish_attempt(pg, contact_id, attempt_no, o, final_status).await?;
            if let Some(a) = claimed {
                self.arrived(&[a]);
            }
            // Recorded on the attempt, but the contact was another replica's by then.
            if lost {
                return Err(StoreError::LeaseLost(contact_id));
            }
            return Ok(row);
        }
        let (claimed, row) = self
            .call(move |c| {
                c.prepare_cached(
                    "UPDATE attempts SET finished_at = ?3, outcome = ?4, code = ?5, message = ?6,
                   session_id = ?7, request_id = ?8, sent_at = ?9
                 WHERE contact_id = ?1 AND n = ?2",
                )?
                .execute(params![
                    contact_id,
                    attempt_no,
                    o.finished_at,
                    o.outcome,
                    o.error_code,
                    o.error_message,
                    o.session_id,
                    o.request_id,
                    o.sent_at
                ])?;
                let refused = o.outcome == "error"
                    && !o
                        .error_code
                        .as_deref()
                        .is_some_and(crate::policy::may_have_placed);
                if refused || o.outcome == "not_sent" {
                    // The service refused it or it never left: nobody's phone rang. (An internal
                    // error may have come after the call was created: its dial stays.)
                    c.prepare_cached(
                        "DELETE FROM dials WHERE attempt_id =
                       (SELECT id FROM attempts WHERE contact_id = ?1 AND n = ?2)",
                    )?
                    .execute(params![contact_id, attempt_no])?;
                } else if let Some(sent) = o.sent_at {
                    c.prepare_cached(
                        "UPDATE dials SET at = ?3 WHERE attempt_id =
                       (SELECT id FROM attempts WHERE contact_id = ?1 AND n = ?2)",
                    )?
                    .execute(params![contact_id, attempt_no, sent])?;
                }
                c.prepare_cached(
                "UPDATE contacts SET status = ?2, attempts = ?3, reschedules = ?4, next_at = ?5,
                   session_id = COALESCE(?6, session_id), request_id = COALESCE(?7, request_id),
                   error_code = ?8, error_message = ?9, updated_at = ?10
                 WHERE id = ?1",
            )?
            .execute(params![
                contact_id,
                o.status.as_str(),
                o.attempts,
                o.reschedules,
                o.next_at,
                o.session_id,
                o.request_id,
                o.error_code,
                o.error_message,
                o.finished_at
            ])?;
                // A push of this session that came before the reply: its record arrives now.
                let claimed = match &o.session_id {
                    Some(session) => outcomes::claim_held_push(c, session, contact_id)?,
                    None => None,
                };
                let row = match final_status {
                    true => Some(result_of(c, contact_id)?),
                    false => None,
                };
                Ok((claimed, row))
            })
            .await?;
        if let Some(a) = claimed {
            self.arrived(&[a]);
        }
        Ok(row)
    }

    /// Counts of contacts by status: a few rows of `contact_counts` (schema 9), or, in a store
    /// of an older build read beside the process that owns it, counted from the contacts.
    pub async fn counts(&self, campaign_id: i64) -> Result<BTreeMap<Status, u64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::counts(pg, campaign_id).await;
        }
        self.call(move |c| {
            let kept = c
                .prepare_cached(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contact_counts'",
                )?
                .exists([])?;
            let mut stmt = c.prepare_cached(if kept {
                "SELECT status, n FROM contact_counts WHERE campaign_id = ?1 AND n != 0"
            } else {
                "SELECT status, COUNT(*) FROM contacts WHERE campaign_id = ?1 GROUP BY status"
            })?;
            let mut out = BTreeMap::new();
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (s, n) = row?;
                let status: Status = s.parse().map_err(StoreError::Other)?;
                out.insert(status, n as u64);
            }
            Ok(out)
        })
        .await
    }

    /// Counts of final contacts by error code (`failed`, `unknown`, `skipped` reasons).
    pub async fn counts_by_code(
        &self,
        campaign_id: i64,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::counts_by_code(pg, campaign_id).await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, error_code, COUNT(*) FROM contacts
                 WHERE campaign_id = ?1 AND error_code IS NOT NULL AND status != 'placed'
                 GROUP BY status, error_code ORDER BY 3 DESC, 1, 2",
            )?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every contact's result row, in line order, passed with `state` to `each` on the store
    /// thread (no row list is built in memory). `only_final` leaves out contacts still pending
    /// or in flight. Returns the number of rows and `state`.
    pub async fn for_each_result<S, F>(
        &self,
        campaign_id: i64,
        only_final: bool,
        state: S,
        mut each: F,
    ) -> Result<(u64, S), StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, ResultRow) -> Result<(), StoreError> + Send + 'static,
    {
        self.for_each_result_with(
            campaign_id,
            only_final,
            ResultExtras::default(),
            state,
            move |s, row, _| each(s, row),
        )
        .await
    }

    /// [`Store::for_each_result`], with each row's extra cells (see [`ResultExtras`]).
    pub async fn for_each_result_with<S, F>(
        &self,
        campaign_id: i64,
        only_final: bool,
        extras: ResultExtras,
        mut state: S,
        mut each: F,
    ) -> Result<(u64, S), StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, ResultRow, Vec<String>) -> Result<(), StoreError> + Send + 'static,
    {
        if let Some(pg) = self.pg() {
            return pg::queue::for_each_result_with(
                pg,
                campaign_id,
                only_final,
                extras,
                state,
                each,
            )
            .await;
        }
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RESULT_COLUMNS}, k.id AS extras_contact_id FROM {RESULT_FROM}
                 WHERE k.campaign_id = ?1 ORDER BY k.line"
            ))?;
            let mut rows = stmt.query([campaign_id])?;
            let mut n = 0;
            while let Some(r) = rows.next()? {
                let status: String = r.get(1)?;
                let st: Status = status.parse().map_err(StoreError::Other)?;
                if only_final && !st.is_final() {
                    continue;
                }
                let cells = extras.cells(c, r.get("extras_contact_id")?)?;
                each(&mut state, result_row(r, st)?, cells)?;
                n += 1;
            }
            Ok((n, state))
        })
        .await
    }

    /// The extra columns of a campaign's results: `summary`, `mood`, `intention` once one of
    /// its sessions has an analysis, then its tag names in the order first seen.
    pub async fn result_extras(&self, campaign_id: i64) -> Result<ResultExtras, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::tags::result_extras(pg, campaign_id).await;
        }
        self.call(move |c| tags::result_extras(c, campaign_id))
            .await
    }

    /// Result row of one contact by id.
    pub async fn result_of(&self, contact_id: i64) -> Result<ResultRow, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::result_of(pg, contact_id).await;
        }
        self.call(move |c| result_of(c, contact_id)).await
    }

    /// When the latest `n` requests reached the network (unix ms, newest first): the limiter's
    /// memory across restarts. A request whose reply never came has no recorded send time: once
    /// settled as in doubt, the moment it was settled (at or after the process that sent it
    /// stopped) stands for it; not yet settled, `now_ms`. Either is never earlier than the real
    /// send. Requests never sent do not count.
    pub async fn recent_sends(&self, n: usize, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg::queue::recent_sends(pg, n, now_ms).await;
        }
        self.call(move |c| {
            // Sends happen within seconds of their start, so the last minute of starts (an
            // indexed range) holds every send that can matter to a 1-second window.
            let mut stmt = c.prepare_cached(
                "SELECT CASE WHEN outcome IS NULL THEN MAX(?2, started_at)
                             ELSE COALESCE(sent_at, finished_at, started_at) END AS t
                 FROM attempts
                 WHERE started_at >= (SELECT COALESCE(MAX(started_at), 0) FROM attempts) - 60000
                   AND COALESCE(outcome, '') NOT IN ('not_sent', 'requeued')
                 ORDER BY t DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![n as i64, now_ms], |r| r.get::<_, i64>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// One contact's result row ([`Store::result_of`]).
fn result_of(c: &Connection, contact_id: i64) -> Result<ResultRow, StoreError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql =
        SQL.get_or_init(|| format!("SELECT {RESULT_COLUMNS} FROM {RESULT_FROM} WHERE k.id = ?1"));
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query([contact_id])?;
    match rows.next()? {
        Some(r) => {
            let status: String = r.get(1)?;
            result_row(r, status.parse().map_err(StoreError::Other)?)
        }
        None => Err(StoreError::Other(format!("no contact {contact_id}"))),
    }
}

/// The store method a closure passed to [`Store::call`] comes from (`Store::name`), from its
/// type name (`ccc_dialer::store::…::<impl …Store>::name::{{closure}}`).
fn method_of<F>() -> String {
    let full = std::any::type_name::<F>();
    let name = full
        .split("::")
        .filter(|part| !part.is_empty() && !part.starts_with('{') && !part.starts_with('<'))
        .last()
        .unwrap_or(full);
    format!("Store::{name}")
}

/// Run `sql` (a savepoint statement) from the statement cache: parsed once, not per job.
fn savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Run one job inside a savepoint so that a failing job leaves nothing half-written.
fn run_one(conn: &Connection, job: Job) -> Reply {
    if savepoint(conn, "SAVEPOINT job").is_err() {
        let (_, reply) = job(conn);
        return reply;
    }
    let (ok, reply) = job(conn);
    if !ok {
        let _ = savepoint(conn, "ROLLBACK TO job");
    }
    let _ = savepoint(conn, "RELEASE job");
    reply
}

/// The store thread: take every waiting job, run them in one transaction, commit, answer.
fn run_jobs(conn: Connection, rx: mpsc::Receiver<Job>, begin: &str) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch(begin).map_err(|e| e.to_string());
        let mut replies = Vec::with_capacity(batch.len());
        if began.is_ok() {
            for job in batch {
                replies.push(run_one(&conn, job));
            }
        }
        let committed =
            began.and_then(|()| conn.execute_batch("COMMIT").map_err(|e| e.to_string()));
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

#[cfg(test)]
mod method_name_tests {
    #[test]
    fn an_unported_method_is_named_from_its_closure() {
        fn name_of<F>(_: &F) -> String {
            super::method_of::<F>()
        }
        struct Store;
        impl Store {
            fn purge_campaign(&self) -> String {
                name_of(&|| ())
            }
        }
        assert_eq!(Store.purge_campaign(), "Store::purge_campaign");
    }
}

#[cfg(test)]
mod build_tests {
    /// .cargo/config.toml builds the bundled SQLite with a job's savepoint journal in memory up
    /// to 131,071 bytes (at SQLite's 64 KiB an attempt's jobs wrote their pages to a temporary
    /// file; above 131,071 a journal that spills fails with SQLITE_FULL) and without its memory
    /// statistics (a global mutex around every allocation).
    #[test]
    fn the_bundled_sqlite_keeps_a_jobs_savepoint_journal_in_memory() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let options = c
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        for wanted in ["STMTJRNL_SPILL=131071", "DEFAULT_MEMSTATUS=0"] {
            assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
        }
    }
}
