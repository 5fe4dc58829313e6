//! The PostgreSQL store: the same behaviour as the SQLite one (see `store`), over a pool of
//! connections to a database several processes may share.
//!
//! Invariants:
//! - One method, one transaction: what a SQLite job does inside the store thread's batch, a
//!   method here does inside its own transaction, so an answer still means "committed".
//! - Rules that SQLite got from its one writer thread are taken from the database instead: the
//!   per-person check and the attempt it allows are written under a transaction-scoped advisory
//!   lock on the callee, and a contact moves out of `pending` only by a conditional update.
//! - The database URL may carry a password: it is never displayed. [`redact`] is what every
//!   message, error and `Store::path` shows.
//!
//! Each file here mirrors the SQLite file of the same name; a `Store` method that has a
//! PostgreSQL arm starts with `if let Some(pg) = self.pg() { return pg::area::method(…) }`.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;

use super::StoreError;

pub mod campaigns;
pub mod claims;
pub mod detail;
pub mod gates;
pub mod lease;
pub mod lines;
pub mod notices;
pub mod outcomes;
pub mod pages;
pub mod purge;
pub mod queue;
pub mod redials;
pub mod report;
pub mod requeue;
mod rows;
pub mod schema;
pub mod sends;
pub mod tags;
mod takeover;
mod tls;
pub mod window;
pub mod writer;

/// Connections in the pool (each method holds one for its transaction).
const POOL_SIZE: usize = 16;
/// How long a transaction of this process may sit idle before the server ends it (see
/// `Pg::open`); none of ours waits between its statements.
const IDLE_IN_TRANSACTION: &str = "-c idle_in_transaction_session_timeout=30000";
/// How long opening one connection may take before the store reports the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection pool to one PostgreSQL database (and schema, through `options`).
pub struct Pg {
    pool: Pool,
    /// The URL without its password, for messages.
    target: String,
    /// How to open a connection of its own (the writer lock's).
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The writer lock this process holds on the store, once taken (see `writer`).
    writer: std::sync::OnceLock<std::sync::Arc<writer::Held>>,
    /// The inbox files this process has claimed (see `claims`).
    claims: claims::PgClaims,
    /// The API actions whose window this process shares through the database, with their caps,
    /// and how this process reserves its slots and reports its departures (see `window`).
    windows: window::Windows,
    /// The contacts this process has claimed, its owner id and lease length (see `lease`).
    leases: std::sync::Arc<lease::Leases>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("target", &self.target).finish()
    }
}

/// Whether `--state` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(state: &str) -> bool {
    state.starts_with("postgres://") || state.starts_with("postgresql://")
}

/// The URL with any password replaced by `***` (in the user info and in a `password=` query
/// parameter), fit for a message.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return url.to_string(),
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    // The user info ends at the last '@' before the query (a password typed unencoded may
    // hold '/' or '@').
    let (authority, path) = match main.rsplit_once('@') {
        Some((userinfo, after)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            (format!("{user}@"), after)
        }
        None => (String::new(), main),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A driver error as a message: the driver's own text says only "db error", the server's
/// message and detail are in its source. Never holds the password (the driver does not put
/// it in an error).
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(describe(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            other => StoreError::Postgres(format!("connection pool: {other}")),
        }
    }
}

impl Pg {
    /// Connect to the database `url` names (checking that it answers) and bring its schema up
    /// to this build's version.
    pub async fn connect(url: &str) -> Result<Pg, StoreError> {
        Pg::open(url, false)
            .await?
            .ok_or_else(|| StoreError::Other("the store vanished while it was opened".into()))
    }

    /// [`Pg::connect`] to a store that already exists: `None` (and nothing written) when the
    /// database holds no ccc-dialer schema yet (`run --dry-run`).
    pub async fn connect_existing(url: &str) -> Result<Option<Pg>, StoreError> {
        Pg::open(url, true).await
    }

    async fn open(url: &str, only_existing: bool) -> Result<Option<Pg>, StoreError> {
        let target = redact(url);
        let open = |message: String| StoreError::PgOpen {
            target: target.clone(),
            message,
        };
        let split = tls::split(url);
        let mut config: tokio_postgres::Config = split
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| open(describe(&e)))?;
        // libpq's PGPASSWORD, so the password need not be in the URL.
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ccc-dialer");
        }
        // A replica frozen in the middle of a transaction (a pause, SIGSTOP) would hold its
        // row locks, and with them every other replica's writes to the same rows and counts,
        // for as long as it stays frozen: the server ends such a transaction instead. The
        // URL's own `options` come after, so a value given there wins.
        let options = match config.get_options() {
            Some(given) => format!("{IDLE_IN_TRANSACTION} {given}"),
            None => IDLE_IN_TRANSACTION.to_string(),
        };
        config.options(options);
        if split.root_cert.is_some() && config.get_ssl_mode() == SslMode::Disable {
            return Err(open("sslrootcert is set but sslmode=disable".into()));
        }
        let tls = tls::config(split.verify, split.root_cert.as_deref()).map_err(open)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| open(format!("connection pool: {e}")))?;
        let windows = window::Windows::new(pool.clone());
        let pg = Pg {
            pool,
            target: target.clone(),
            config,
            tls,
            writer: std::sync::OnceLock::new(),
            claims: claims::PgClaims::default(),
            windows,
            leases: std::sync::Arc::new(lease::Leases::new()),
        };
        {
            let mut c = pg.pool.get().await.map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => open(describe(&e)),
                other => open(other.to_string()),
            })?;
            if only_existing {
                let exists: bool = c
                    .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
                    .await
                    .map_err(|e| open(describe(&e)))?
                    .get(0);
                if !exists {
                    return Ok(None);
                }
            }
            schema::migrate(&mut c, &pg.target).await?;
        }
        Ok(Some(pg))
    }

    /// Claim the inbox file `name` (see `claims`).
    pub async fn claim_inbox_file(&self, name: &str) -> Result<bool, StoreError> {
        self.claims.claim(self, name).await
    }

    /// Let the claim on the inbox file `name` go.
    pub async fn release_inbox_file(&self, name: &str) -> Result<(), StoreError> {
        self.claims.release(name).await
    }

    /// The URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The writer lock this process holds, if it took one.
    pub(crate) fn writer(&self) -> Option<&writer::Held> {
        self.writer.get().map(|w| &**w)
    }

    fn set_writer(&self, held: std::sync::Arc<writer::Held>) {
        let _ = self.writer.set(held);
    }

    /// Share `action`'s window of `cap` sends a second through the database.
    pub(crate) fn share_window(&self, action: &str, cap: usize) {
        self.windows.share(action, cap);
    }

    /// The cap of `action`'s shared window, if it is shared.
    pub(crate) fn window_cap(&self, action: &str) -> Option<usize> {
        self.windows.cap(action)
    }

    /// This process's side of the shared windows.
    pub(crate) fn windows(&self) -> &window::Windows {
        &self.windows
    }

    /// The claims this process holds (see `lease`).
    pub fn leases(&self) -> &lease::Leases {
        &self.leases
    }

    /// Renew this process's leases from now on (started with the first claim).
    pub(super) fn renew_leases(&self) {
        self.leases.start_renewal(self.pool.clone());
    }

    /// Watch the other replicas' leases from now on (started with the first look for due
    /// contacts; see `takeover`).
    pub(super) fn watch_leases(&self) {
        self.leases.start_watch(self.pool.clone());
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_the_target() {
        assert_eq!(
            redact("postgres://dialer:s3cr%40t@db.example:5432/calls?sslmode=require"),
            "postgres://dialer:***@db.example:5432/calls?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/calls?user=u&password=hunter2&sslmode=disable"),
            "postgresql://db/calls?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://u@h/db"),
            "postgres://u@h/db",
            "no password, nothing hidden"
        );
        assert_eq!(redact("postgres://u:p:q@h"), "postgres://u:***@h");
        assert_eq!(
            redact("postgres://u:pa/ss@w@h/db"),
            "postgres://u:***@h/db",
            "an unencoded '/' or '@' in the password"
        );
    }

    #[test]
    fn urls_select_postgres_and_paths_sqlite() {
        assert!(is_url("postgres://h/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("state.db"));
        assert!(!is_url("./postgres:/x"));
    }
}
