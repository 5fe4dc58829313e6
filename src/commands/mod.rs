//! One file per subcommand. Each returns `Result<Done, Failure>`; `main` maps that to an exit
//! code through [`crate::exit::finish`].

pub mod call;
pub mod dnc;
pub mod dry_run;
pub mod export;
pub mod healthcheck;
pub mod mock;
pub mod outcomes;
pub mod purge;
pub mod report;
pub mod requeue;
pub mod run;
pub mod serve;
pub mod status;

use crate::ccc::{system_clock, Client, ClientSettings};
use crate::config::{Config, Endpoint};
use crate::credentials::{self, ProcessEnv};
use crate::exit::Failure;
use crate::mock::{MockOptions, MockServer};

/// A client for the configured endpoint. With `endpoint = "builtin"` the stand-in is started
/// in-process first (and returned, so it lives as long as the caller keeps it).
pub async fn connect(cfg: &Config) -> Result<(Client, Option<MockServer>), Failure> {
    let env_creds = credentials::from_env(&ProcessEnv);
    let (endpoint, creds, mock) = match &cfg.tencentcloud.endpoint {
        Endpoint::Url(url) => (url.clone(), env_creds.map_err(Failure::input)?, None),
        Endpoint::Builtin => {
            // The stand-in accepts the demo key, and the environment's key if one is set.
            let creds = env_creds.unwrap_or_else(|_| credentials::demo());
            let faults = match &cfg.mock.faults {
                Some(p) => crate::mock::Faults::load(p).map_err(Failure::input)?,
                None => Default::default(),
            };
            let opts = MockOptions {
                credentials: vec![(creds.secret_id.clone(), creds.secret_key.clone())],
                rate_limit: cfg.mock.rate_limit,
                latency_ms: cfg.mock.latency_ms,
                faults,
                new_connection_delay: std::time::Duration::from_millis(
                    cfg.mock.new_connection_delay_ms,
                ),
                agent_lines: cfg.mock.agent_lines,
                call_length: cfg.mock.call_length,
                cdr_delay: cfg.mock.cdr_delay,
                answer_ratio: cfg.mock.answer_ratio,
                ..Default::default()
            };
            let server = MockServer::spawn(opts).await.map_err(|e| {
                Failure::other(anyhow::anyhow!("cannot start the built-in stand-in: {e}"))
            })?;
            tracing::info!(endpoint = %server.endpoint(), "built-in CCC stand-in started");
            (server.endpoint(), creds, Some(server))
        }
    };
    let settings = ClientSettings {
        endpoint,
        region: cfg.tencentcloud.region.clone(),
        language: cfg.tencentcloud.language.clone(),
        connect_timeout: cfg.tencentcloud.connect_timeout,
        request_timeout: cfg.tencentcloud.request_timeout,
        idle_timeout: cfg.tencentcloud.idle_timeout,
    };
    let client = Client::new(&settings, creds, system_clock()).map_err(Failure::other)?;
    Ok((client, mock))
}

/// What [`connect`] checks before it starts anything: the credentials for a real endpoint,
/// the fault script for the built-in stand-in (`run --dry-run`, which connects to nothing).
pub fn check_connect(cfg: &Config) -> Result<(), Failure> {
    match &cfg.tencentcloud.endpoint {
        Endpoint::Url(_) => {
            credentials::from_env(&ProcessEnv).map_err(Failure::input)?;
        }
        Endpoint::Builtin => {
            if let Some(p) = &cfg.mock.faults {
                crate::mock::Faults::load(p).map_err(Failure::input)?;
            }
        }
    }
    Ok(())
}

/// The config's calling rules, with the do-not-call lists read (an unreadable list is bad
/// input: exit 2 before anything is sent). Bad lines are reported and counted, not fatal.
pub fn load_rules(cfg: &Config) -> Result<crate::dispatch::rules::Rules, Failure> {
    let (rules, report) =
        crate::dispatch::rules::Rules::from_config(cfg).map_err(Failure::input)?;
    if report.files > 0 {
        tracing::info!(
            files = report.files,
            numbers = report.numbers,
            bad_lines = report.bad_count,
            "do-not-call lists loaded"
        );
        for bad in &report.bad {
            crate::tell!("warning: {bad}");
        }
    }
    Ok(rules)
}

/// The engine for `run` and `serve`: the limiter's window seeded from the store's latest sends
/// (a restart hands out no burst) and, on PostgreSQL, the account's window shared through the
/// database, the caller pool from today's uses, the rules applied, and
/// the connections the pace needs open. The caller settles the previous process's in-flight
/// attempts first, so their sends are seeded as late as they can have been.
pub async fn engine(
    cfg: &Config,
    store: crate::store::Store,
    client: Client,
    rules: std::sync::Arc<crate::dispatch::rules::Rules>,
) -> Result<crate::dispatch::Engine, Failure> {
    let rate = cfg.rate.requests_per_second;
    let seed = crate::seed::seed_window(
        &store,
        crate::ccc::ACTION,
        rate,
        crate::dispatch::now_ms(),
        std::time::Instant::now(),
    )
    .await
    .map_err(Failure::other)?;
    warm(cfg, &client).await;
    let limiter = std::sync::Arc::new(crate::limiter::Limiter::new(rate, &seed));
    // On PostgreSQL, every process on the store takes its slots from one window in the
    // database (see crate::store::window).
    if store.share_window(crate::ccc::ACTION, rate) {
        tracing::info!(
            rate,
            "the account's window is kept in the database: shared by every process on this store"
        );
    }
    let now = jiff::Timestamp::now();
    rules.prune(&store, now).await.map_err(Failure::other)?;
    // After the prune: a campaign whose calls left the dial history can go now.
    if let Some(retain) = cfg.retain {
        crate::purge::apply_retention(
            &store,
            retain,
            &uploads_of(store.path()),
            now.as_millisecond(),
        )
        .await
        .map_err(Failure::other)?;
    }
    rules
        .seed_callers(&store, now)
        .await
        .map_err(Failure::other)?;
    let saved = store.agent_lines().await.map_err(Failure::other)?;
    // What `report` measures a campaign against, after the fact and without the config.
    store
        .set_meta(crate::report::META_RATE, &rate.to_string())
        .await
        .map_err(Failure::other)?;
    let own_rate = cfg.campaign.max_rate.map(|r| r.to_string());
    store
        .set_meta(
            crate::report::META_CAMPAIGN_RATE,
            own_rate.as_deref().unwrap_or(""),
        )
        .await
        .map_err(Failure::other)?;
    store
        .set_meta(
            crate::report::META_ZONE,
            &crate::calling::zones::name(cfg.calling.zone()),
        )
        .await
        .map_err(Failure::other)?;
    let mut engine = crate::dispatch::Engine::from_config(cfg, store, client, limiter);
    // The line estimates learned before a restart (see crate::lines).
    engine.lines.restore(saved);
    let permits = engine.permits.clone();
    engine.client.keep_warm(permits);
    Ok(engine.with_rules(rules))
}

/// The webhook of `[notify]`, started (its secret read: missing or short, exit 2 before
/// anything is sent), or a notifier that ignores every event when none is configured.
pub fn notifier(
    cfg: &Config,
) -> Result<(crate::notify::Notifier, Option<crate::notify::Delivery>), Failure> {
    match &cfg.notify {
        None => Ok((crate::notify::Notifier::disabled(), None)),
        Some(settings) => {
            let secret = crate::notify::secret(&ProcessEnv).map_err(Failure::input)?;
            tracing::info!(
                to = %crate::notify::origin(&settings.url),
                "webhook: campaigns that complete, halt or are paused by the engine are notified"
            );
            let (n, d) = crate::notify::Notifier::start(settings.clone(), secret);
            Ok((n, Some(d)))
        }
    }
}

/// Where `serve` keeps the uploaded contact files of the store at `state`: `uploads/` beside it.
pub fn uploads_of(state: &std::path::Path) -> std::path::PathBuf {
    // A PostgreSQL store has no folder: uploads go to `uploads` in the working directory.
    if crate::store::Store::is_postgres_url(state) {
        return "uploads".into();
    }
    state
        .parent()
        .map(|p| p.join("uploads"))
        .unwrap_or_else(|| "uploads".into())
}

/// Open the connections `max_in_flight` requests need before the first is sent
/// ([`crate::connections`]). A warm-up that fails or takes too long only means the first
/// requests open their own connections (timed, so the cap still holds).
async fn warm(cfg: &Config, client: &Client) {
    let n = cfg.rate.max_in_flight;
    let bound = cfg.tencentcloud.connect_timeout + std::time::Duration::from_secs(2);
    match tokio::time::timeout(bound, client.warm_up(n)).await {
        Ok(w) => {
            tracing::info!(
                connections = w.answered,
                "connections opened before the first request"
            );
        }
        Err(_) => {
            tracing::warn!(
                waited_ms = bound.as_millis() as u64,
                "opening connections ahead took too long: requests open their own"
            );
        }
    }
}

/// Bind `addr` (port 0 picks one) and say which address it got. A failure to bind (the port in
/// use, no permission) is exit 1, as `serve --help` says: the address was well formed.
pub async fn bind(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::other(anyhow::anyhow!("--listen {addr}: cannot bind: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::other(anyhow::anyhow!("cannot read the bound address: {e}")))?;
    Ok((listener, bound))
}

/// Open a state store that must already exist (`status`, `export`): a typo in the path must not
/// create an empty store and report "no campaign". Read-only and without the store's lock, so
/// it works beside a live `run` or `serve`; when one is live, says so (figures may move).
pub async fn open_existing_store(path: &std::path::Path) -> Result<crate::store::Store, Failure> {
    if crate::store::Store::is_postgres_url(path) {
        // Several processes share a database: nothing to lock, and migrating is safe beside
        // them (one transaction under an advisory lock).
        let store = crate::store::Store::open_state(path)
            .await
            .map_err(Failure::input)?;
        if let Ok(Some(holder)) = store.pg_live_writer().await {
            crate::tell!(
                "note: {} is in use by {holder}; figures may change meanwhile",
                store.path().display()
            );
        }
        return Ok(store);
    }
    if !path.exists() {
        return Err(Failure::input(anyhow::anyhow!(
            "{}: no such state file",
            path.display()
        )));
    }
    let writer = crate::store::lock::live_writer(path);
    if let Some(holder) = &writer {
        crate::tell!(
            "note: {} is in use by {holder}; reading it read-only, figures may change meanwhile",
            path.display()
        );
    }
    crate::store::Store::open_read_only(path, writer.is_some()).map_err(Failure::input)
}

/// The campaign `--campaign NAME|ID` names (a name first, then an id), or the store's only
/// campaign when none is named. Several and none named: exit 2, listing them.
pub async fn pick_campaign(
    store: &crate::store::Store,
    wanted: Option<&str>,
) -> Result<crate::store::Campaign, Failure> {
    let all = store.campaigns().await.map_err(Failure::other)?;
    let list = |all: &[crate::store::Campaign]| {
        all.iter()
            .map(|c| format!("  {} (id {}, {})", c.name, c.id, c.state))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match wanted {
        Some(w) => all
            .iter()
            .find(|c| c.name == w)
            .or_else(|| all.iter().find(|c| w.parse() == Ok(c.id)))
            .cloned()
            .ok_or_else(|| {
                Failure::input(anyhow::anyhow!(
                    "--campaign {w}: no such campaign in {}; it holds:\n{}",
                    store.path().display(),
                    list(&all)
                ))
            }),
        None => match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Failure::input(anyhow::anyhow!(
                "{}: no campaign yet",
                store.path().display()
            ))),
            several => Err(Failure::input(anyhow::anyhow!(
                "{} holds {} campaigns: choose one with --campaign NAME|ID:\n{}",
                store.path().display(),
                several.len(),
                list(several)
            ))),
        },
    }
}

/// Take the store's exclusive lock for this process (`run`, `serve`), or exit 2 naming the
/// process that holds it. Keep the returned lock alive until the process ends.
/// A PostgreSQL store takes no lock here: several processes sharing one database is what it is
/// for.
pub fn lock_store(
    path: &std::path::Path,
) -> Result<Option<crate::store::lock::StoreLock>, Failure> {
    if crate::store::Store::is_postgres_url(path) {
        return Ok(None);
    }
    // `args_os`: a path that is not UTF-8 is a valid argument (`args` would panic on it).
    let command: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    crate::store::lock::StoreLock::acquire(path, &command.join(" "))
        .map(Some)
        .map_err(Failure::input)
}

/// The locks a writing command holds: a SQLite store's file lock, or a PostgreSQL store's
/// writer lock. Keep it alive until the process ends.
#[derive(Debug)]
pub struct Writer {
    _file: Option<crate::store::lock::StoreLock>,
    pg: Option<crate::store::pg::writer::PgWriter>,
}

impl Writer {
    /// Changes to `true` if a PostgreSQL writer lock is lost (never for SQLite).
    pub fn lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.pg.as_ref().map(|w| w.lost())
    }

    /// The failure to end with when the PostgreSQL writer lock was lost, if it was.
    pub fn lost_failure(&self) -> Option<Failure> {
        self.pg
            .as_ref()
            .filter(|w| w.is_lost())
            .map(|_| Failure::other(crate::store::StoreError::WriterLost))
    }
}

/// Open the store `state` names as its one writer (`run`, `serve`, and the commands that
/// change it): a SQLite file is locked before it is opened, a PostgreSQL store right after
/// (its schema must exist to be locked). Either held: exit 2 naming the holder.
pub async fn open_writer(
    state: &std::path::Path,
) -> Result<(crate::store::Store, Writer), Failure> {
    let file = lock_store(state)?;
    let store = crate::store::Store::open_state(state)
        .await
        .map_err(Failure::input)?;
    let pg = store
        .lock_writer(&subcommand())
        .await
        .map_err(Failure::input)?;
    Ok((store, Writer { _file: file, pg }))
}

/// A PostgreSQL store: this process's lease length (`[store] lease`), its owner id in the log
/// (its claims on contacts carry it; see `store::pg::lease`), and its request timeout, which
/// bounds how long its unreported sends count in the shared window (see `store::window`).
pub fn lease_settings(store: &crate::store::Store, cfg: &crate::config::Config) {
    store.set_lease(cfg.lease);
    // How long an unreported send of this process may still leave (see store::window).
    store.set_request_timeout(cfg.tencentcloud.request_timeout);
    if let Some(owner) = store.lease_owner() {
        tracing::info!(owner = %owner, lease_ms = cfg.lease.as_millis() as u64, "PostgreSQL store: claiming contacts as this replica");
    }
}

/// This process's subcommand (`run`, `serve`, …), without its arguments (a PostgreSQL URL may
/// hold a password).
fn subcommand() -> String {
    const KNOWN: [&str; 6] = ["run", "serve", "outcomes", "purge", "requeue", "dnc"];
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .find(|a| KNOWN.contains(&a.as_str()))
        .unwrap_or_else(|| "(unknown command)".into())
}

/// SIGINT and SIGTERM, registered the moment this is built (before a slow start-up, so a stop
/// sent then is not lost: as PID 1 in a container an unhandled SIGTERM would be ignored).
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {}
                _ = next(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }

    /// A stop channel driven by the signals: the first asks to drain (send nothing new, wait
    /// for replies in flight within `grace`), the second to stop waiting.
    pub fn into_stop(
        self,
        grace: std::time::Duration,
    ) -> tokio::sync::watch::Receiver<crate::dispatch::Stop> {
        self.into_stop_or_lost(grace, None)
    }

    /// [`Signals::into_stop`], also draining (as a first signal does) when `lost` turns true:
    /// the PostgreSQL writer lock was lost, nothing more may be sent.
    pub fn into_stop_or_lost(
        mut self,
        grace: std::time::Duration,
        lost: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> tokio::sync::watch::Receiver<crate::dispatch::Stop> {
        use crate::dispatch::Stop;
        let (tx, rx) = tokio::sync::watch::channel(Stop::Run);
        tokio::spawn(async move {
            let lock_lost = async {
                match lost {
                    Some(mut lost) => {
                        // Ends only on a loss (a dropped sender: the lock was let go).
                        if lost.wait_for(|l| *l).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = self.recv() => {}
                () = lock_lost => {
                    tracing::error!(
                        grace_s = grace.as_secs(),
                        "the PostgreSQL store's writer lock was lost: sending nothing new, waiting for replies in flight"
                    );
                    let _ = tx.send(Stop::Drain);
                    self.recv().await;
                    let _ = tx.send(Stop::Now);
                    return;
                }
            }
            tracing::warn!(
                grace_s = grace.as_secs(),
                "stop requested: sending nothing new, waiting for replies in flight (signal again to stop waiting)"
            );
            let _ = tx.send(Stop::Drain);
            self.recv().await;
            tracing::warn!("second stop request: not waiting; replies still in flight will be reported unknown");
            let _ = tx.send(Stop::Now);
        });
        rx
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new()
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn stop_signal() {
    Signals::new().recv().await
}
