//! PostgreSQL for tests: each test gets a schema of its own in the database `test` at
//! 127.0.0.1:5432, named for it by the URL's `search_path`, dropped when the test ends (passed
//! or failed). Unreachable, the test fails, saying how to start the server.

use std::path::PathBuf;

use ccc_dialer::store::{Store, StoreError};

/// The server every PostgreSQL test uses (trust auth).
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const UNREACHABLE: &str = "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, trust \
     auth, database `test`); these tests need it: start it (e.g. `pg_ctlcluster 15 main start` \
     or `service postgresql start`) and create the database (`createdb -U postgres test`)";

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{UNREACHABLE}: {e}"));
    tokio::spawn(conn);
    client
}

/// A schema of its own for one test; dropped with everything in it when this is dropped.
pub struct PgSchema {
    pub name: String,
    /// The store URL: [`ADMIN_URL`] with `search_path` set to the schema (and the application
    /// name set to it, so a test can find its connections in `pg_stat_activity`).
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let name = format!("ccc_t_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {name}: {e}"));
        let url = format!("{ADMIN_URL}?options=-csearch_path%3D{name}&application_name={name}");
        PgSchema { name, url }
    }

    /// The URL with extra query parameters (`sslmode=…`).
    pub fn url_with(&self, extra: &str) -> String {
        format!("{}&{extra}", self.url)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs in async tests too, so the schema is dropped from a thread of its own.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !std::thread::panicking() {
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("cannot drop schema {}: {e}", self.name),
                Err(_) => panic!("dropping schema {} panicked", self.name),
            }
        }
    }
}

/// A store of one kind, for the contract tests: opened (again) by [`Fixture::open`].
pub enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> Fixture {
        Fixture::Postgres(PgSchema::create().await)
    }

    fn sqlite_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("s.db")
    }

    pub async fn try_open(&self) -> Result<Store, StoreError> {
        match self {
            Fixture::Sqlite(dir) => Store::open(&Fixture::sqlite_path(dir)),
            Fixture::Postgres(schema) => Store::connect_postgres(&schema.url).await,
        }
    }

    pub async fn open(&self) -> Store {
        self.try_open().await.expect("the store opens")
    }

    /// Mark the store as written by a build with schema `version`.
    pub async fn set_schema_version(&self, version: i64) {
        match self {
            Fixture::Sqlite(dir) => {
                let c = rusqlite::Connection::open(Fixture::sqlite_path(dir)).unwrap();
                c.execute_batch(&format!("PRAGMA user_version = {version}"))
                    .unwrap();
            }
            Fixture::Postgres(schema) => {
                admin()
                    .await
                    .batch_execute(&format!(
                        "UPDATE {}.schema_version SET version = {version}",
                        schema.name
                    ))
                    .await
                    .unwrap();
            }
        }
    }

    /// An outcome row written straight into the store's tables (as the outcome tracker would).
    pub async fn insert_outcome(&self, session: &str, contact_id: i64, class: &str) {
        let sql = "INSERT INTO outcomes (session_id, contact_id, class, source, recorded_at)
                   VALUES ($1, $2, $3, 'poll', 1)";
        match self {
            Fixture::Sqlite(dir) => {
                let c = rusqlite::Connection::open(Fixture::sqlite_path(dir)).unwrap();
                c.execute(
                    &sql.replace('$', "?"),
                    rusqlite::params![session, contact_id, class],
                )
                .unwrap();
            }
            Fixture::Postgres(schema) => {
                admin()
                    .await
                    .execute(
                        &sql.replace("INTO outcomes", &format!("INTO {}.outcomes", schema.name)),
                        &[&session, &contact_id, &class],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// A pushed record of `session` held (no attempt had the session when it came), written
    /// into the table as the push receiver would.
    pub async fn hold_push(&self, session: &str, class: &str, ended_at: i64) {
        let sql = "INSERT INTO pending_pushes (session_id, class, ended_at, recorded_at)
                   VALUES ($1, $2, $3, 1)";
        match self {
            Fixture::Sqlite(dir) => {
                let c = rusqlite::Connection::open(Fixture::sqlite_path(dir)).unwrap();
                c.execute(
                    &sql.replace('$', "?"),
                    rusqlite::params![session, class, ended_at],
                )
                .unwrap();
            }
            Fixture::Postgres(schema) => {
                admin()
                    .await
                    .execute(
                        &sql.replace(
                            "INTO pending_pushes",
                            &format!("INTO {}.pending_pushes", schema.name),
                        ),
                        &[&session, &class, &ended_at],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// The kinds of the outcome checks enrolled, sorted.
    pub async fn outcome_check_kinds(&self) -> Vec<String> {
        let sql = "SELECT kind FROM outcome_checks ORDER BY kind";
        match self {
            Fixture::Sqlite(dir) => {
                let c = rusqlite::Connection::open(Fixture::sqlite_path(dir)).unwrap();
                let mut stmt = c.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| r.get(0)).unwrap();
                rows.collect::<Result<Vec<String>, _>>().unwrap()
            }
            Fixture::Postgres(schema) => admin()
                .await
                .query(
                    &sql.replace(
                        "FROM outcome_checks",
                        &format!("FROM {}.outcome_checks", schema.name),
                    ),
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect(),
        }
    }
}
