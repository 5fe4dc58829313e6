//! Several `serve` replicas on one PostgreSQL store: what one replica (or any process on the
//! store) creates, adds or steers is followed by every other replica, through the store's
//! notifications (`LISTEN/NOTIFY`) with polling as the fallback. The stand-in and the store
//! are the judges: a replica proves it followed by the calls it sends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccc_dialer::intake::IntakeOptions;
use ccc_dialer::store::{CampaignState, NewCampaign, Notice, Store};

use crate::pg::PgSchema;
use crate::served::{count, csv_of, normalised, serve_command, state, Served};
use crate::support::*;

/// How long a notification or a change may take to show here before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn options() -> IntakeOptions {
    IntakeOptions {
        default_country: "CN".into(),
        callee_format: ccc_dialer::config::CalleeFormat::DoubleZero,
    }
}

/// A campaign created and imported by another process on the store (as a replica's `POST
/// /v1/campaigns` does), its contacts the file `csv` written under `dir`.
async fn create_elsewhere(store: &Store, dir: &Path, name: &str, csv: &str) -> i64 {
    let source = dir.join(format!("{name}.csv"));
    std::fs::write(&source, csv).unwrap();
    let c = store
        .create_campaign_with(
            NewCampaign {
                name: name.into(),
                fingerprint: format!("fp-{name}"),
                source: source.display().to_string(),
                settings: None,
                priority: 0,
                inbox: None,
                paused: None,
            },
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .unwrap();
    add_elsewhere(store, c.id, &source, 0).await;
    c.id
}

/// Contacts stored into campaign `id` by another process, its intake then marked done.
async fn add_elsewhere(store: &Store, id: i64, source: &Path, first_line: u64) {
    ccc_dialer::import::import_file_after(
        store,
        id,
        source,
        &options(),
        None,
        first_line,
        ccc_dialer::dispatch::now_ms(),
    )
    .await
    .unwrap();
    store.mark_intake_done(id).await.unwrap();
}

/// The next notice on `rx` that is not a resync (bounded).
async fn next_notice(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>) -> Notice {
    loop {
        let n = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("a notice within the patience")
            .expect("the listener is alive");
        if n != Notice::Resync {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_handle_hears_campaigns_and_contacts_another_handle_writes() {
    let schema = PgSchema::create().await;
    let ours = Store::connect_postgres(&schema.url).await.unwrap();
    let theirs = Store::connect_postgres(&schema.url).await.unwrap();
    let mut rx = ours.notices().expect("a PostgreSQL store has notices");
    // Listening once the first resync says so.
    let first = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap();
    assert_eq!(first, Some(Notice::Resync));
    let dir = tempfile::tempdir().unwrap();
    let id = create_elsewhere(&theirs, dir.path(), "elsewhere", &csv_of(51, 3)).await;
    // Created, then its contacts, then its intake done: in commit order.
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    assert_eq!(next_notice(&mut rx).await, Notice::Contacts(id));
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    theirs
        .set_campaign_state(id, CampaignState::Paused, Some("by hand".into()), 1)
        .await
        .unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    theirs.announce(Notice::Dnc).await.unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Dnc);
    // A SQLite store has one process: nothing to hear.
    let file = Store::open(&dir.path().join("s.db")).unwrap();
    assert!(file.notices().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_dials_a_campaign_another_process_created_and_the_contacts_it_added_later() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = crate::served::scratch(&mock, "");
    s.state = PathBuf::from(&schema.url);
    let mut cmd = serve_command(&s);
    cmd.current_dir(s.dir.path());
    let srv = Served::start_with(&s, cmd).await;
    // The other process: here the test's own store handle, writing as a replica's API does.
    let other = Store::connect_postgres(&schema.url).await.unwrap();
    let id = create_elsewhere(&other, s.dir.path(), "from-elsewhere", &csv_of(52, 15)).await;
    let c = srv
        .wait_campaign(id, "the campaign created elsewhere to be dialled", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 15, "{c}");
    let stats = mock.stats();
    for i in 0..15 {
        assert_eq!(
            stats.calls_per_callee.get(&normalised(52, i)),
            Some(&1),
            "contact {i} called once by the serve that did not create the campaign"
        );
    }

    // Contacts added to it elsewhere: the campaign reopened and the rows stored.
    let more = dir_file(s.dir.path(), "more.csv", &csv_of(53, 5));
    assert!(other
        .reopen(id, ccc_dialer::dispatch::now_ms())
        .await
        .unwrap());
    add_elsewhere(&other, id, &more, 15).await;
    // As an addition through the API ends (`Campaigns::added`): this replica may have found
    // nothing to dial between the reopen and the rows and completed the campaign meanwhile, so
    // the adding side reopens it once its rows are stored.
    other
        .reopen(id, ccc_dialer::dispatch::now_ms())
        .await
        .unwrap();
    let c = srv
        .wait_campaign(id, "the contacts added elsewhere to be dialled", |c| {
            count(c, "placed") == 20 && state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 20, "{c}");
    let stats = mock.stats();
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(stats.calls_per_callee.len(), 20);

    // Paused elsewhere while contacts wait: this replica stops dialling it; resumed
    // elsewhere: it dials the rest.
    let later = create_elsewhere(&other, s.dir.path(), "paused-elsewhere", &csv_of(54, 4)).await;
    other
        .set_campaign_state(
            later,
            CampaignState::Paused,
            Some("by another replica".into()),
            2,
        )
        .await
        .unwrap();
    other
        .set_campaign_state(later, CampaignState::Active, None, 3)
        .await
        .unwrap();
    srv.wait_campaign(later, "the campaign resumed elsewhere to be dialled", |c| {
        state(c) == "completed" && count(c, "placed") == 4
    })
    .await;
}

fn dir_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A TCP proxy to PostgreSQL that a test can cut (every connection closed, new ones refused)
/// and restore: the database "unreachable" without stopping it for the other tests.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    /// Frozen: every connection, open or new, is held open and nothing is forwarded (a
    /// database host that stopped answering without closing anything).
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn to(target: &str) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let frozen = tokio::sync::watch::channel(false).0;
        let (cut2, links2, target) = (cut.clone(), links.clone(), target.to_string());
        let frozen2 = frozen.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut freeze = frozen2.subscribe();
                let link = tokio::spawn(async move {
                    let frozen_now = *freeze.borrow();
                    if frozen_now {
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = async { let _ = freeze.wait_for(|f| *f).await; } => {
                                // Both sockets stay open, silent.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                });
                links2.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy {
            addr,
            cut,
            links,
            frozen,
        }
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }

    fn restore(&self) {
        self.frozen.send_replace(false);
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `GET /readyz` until its status is `want` (bounded); returns the body.
async fn ready_until(base: &str, want: u16) -> serde_json::Value {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let r = http
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("readyz answers");
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("json");
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz still {status}, expected {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_while_the_database_is_unreachable_and_comes_back_with_it() {
    let schema = PgSchema::create().await;
    let proxy = Proxy::to("127.0.0.1:5432").await;
    let url = schema
        .url
        .replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
    let served = crate::served::in_process_on(1 << 20, "", Some(&url), async |_| {}).await;
    let ready = ready_until(&served.base, 200).await;
    assert_eq!(ready["checks"]["store"]["ok"], true, "{ready}");

    proxy.cut();
    let unready = ready_until(&served.base, 503).await;
    assert_eq!(unready["ready"], false, "{unready}");
    assert_eq!(unready["checks"]["store"]["ok"], false, "{unready}");
    let detail = unready["checks"]["store"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&proxy.addr.to_string()) || detail.contains("PostgreSQL"),
        "the detail names the store: {detail}"
    );
    // The process itself is alive: liveness must not restart it for the database's outage.
    let live = reqwest::get(format!("{}/healthz", served.base))
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);

    proxy.restore();
    let ready = ready_until(&served.base, 200).await;
    assert_eq!(ready["checks"]["store"]["ok"], true, "{ready}");

    // A database that stops answering without closing anything: unready too (the probe
    // answers, saying so, rather than hanging).
    proxy.freeze();
    let unready = ready_until(&served.base, 503).await;
    let detail = unready["checks"]["store"]["detail"].as_str().unwrap();
    assert!(detail.contains("no answer"), "{unready}");
    // Connections held by the frozen proxy are given up; new ones get through.
    proxy.cut();
    proxy.restore();
    let ready = ready_until(&served.base, 200).await;
    assert_eq!(ready["checks"]["store"]["ok"], true, "{ready}");
    let _ = served.stop.send(ccc_dialer::dispatch::Stop::Now);
    let _ = tokio::time::timeout(PATIENCE, served.task).await;
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(name),
    )
    .expect("sample")
}

/// The documents of a multi-document YAML file, each with its `kind`.
fn documents(text: &str) -> Vec<(String, String)> {
    text.split("\n---\n")
        .filter_map(|doc| {
            let kind = doc.lines().find_map(|l| l.strip_prefix("kind: "))?;
            Some((kind.trim().to_string(), doc.to_string()))
        })
        .collect()
}

/// The lines of `doc` from the one `start` matches to the next at the same or a smaller
/// indent (the YAML block it opens).
fn block<'a>(doc: &'a str, start: &str) -> Vec<&'a str> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != start);
    let Some(first) = lines.next() else {
        return Vec::new();
    };
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent))
        .collect()
}

#[test]
fn the_kubernetes_postgres_sample_runs_three_replicas_rolling_with_a_budget_and_the_url_from_a_secret(
) {
    let text = sample("kubernetes-postgres.yaml");
    let docs = documents(&text);
    let kinds: Vec<&str> = docs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !kinds.contains(&"Secret"),
        "no Secret applied over the real one: {kinds:?}"
    );
    let of = |kind: &str| {
        docs.iter()
            .find(|(k, _)| k == kind)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    let deployment = of("Deployment");
    assert!(
        deployment.lines().any(|l| l.trim() == "replicas: 3"),
        "{deployment}"
    );
    let strategy = block(&deployment, "strategy:").join("\n");
    assert!(strategy.contains("type: RollingUpdate"), "{strategy}");
    assert!(!deployment.contains("Recreate"));
    let pdb = of("PodDisruptionBudget");
    assert!(
        pdb.contains("maxUnavailable: 1") || pdb.contains("minAvailable: 2"),
        "{pdb}"
    );
    assert!(
        pdb.contains("app.kubernetes.io/name: ccc-dialer"),
        "the budget selects the pods"
    );
    // The store URL from the Secret the header creates, nothing else in its place.
    let state = block(&deployment, "- name: CCC_DIALER_STATE").join("\n");
    assert!(state.contains("secretKeyRef:"), "{state}");
    assert!(state.contains("name: ccc-dialer-database"), "{state}");
    assert!(state.contains("key: url"), "{state}");
    assert!(!state.contains("value:"), "{state}");
    assert!(text.contains("create secret generic ccc-dialer-database"));
    assert!(
        !text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("postgres://")),
        "no database URL (nor its password) in the manifest itself"
    );
    let readiness = block(&deployment, "readinessProbe:").join("\n");
    assert!(readiness.contains("path: /readyz"), "{readiness}");
    // Its config is one this build loads.
    let dir = tempfile::tempdir().unwrap();
    let head = "  dialer.toml: |\n";
    let start = text.find(head).unwrap() + head.len();
    let toml: String = text[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    std::fs::write(dir.path().join("dialer.toml"), toml).unwrap();
    ccc_dialer::config::Config::load(&dir.path().join("dialer.toml")).expect("the config loads");
}

#[test]
fn the_compose_postgres_sample_starts_the_dialer_once_its_database_is_healthy() {
    let text = sample("docker-compose-postgres.yml");
    let postgres = block(&text, "postgres:").join("\n");
    assert!(postgres.contains("image: postgres:"), "{postgres}");
    assert!(postgres.contains("healthcheck:"), "{postgres}");
    assert!(postgres.contains("pg_isready"), "{postgres}");
    let dialer = block(&text, "ccc-dialer:").join("\n");
    let depends = block(&dialer, "depends_on:").join("\n");
    assert!(depends.contains("postgres:"), "{depends}");
    assert!(depends.contains("condition: service_healthy"), "{depends}");
    let state = dialer
        .lines()
        .find_map(|l| l.trim().strip_prefix("CCC_DIALER_STATE: "))
        .expect("CCC_DIALER_STATE");
    assert!(
        state.starts_with("postgres://dialer@postgres:5432/"),
        "{state}"
    );
    let user = state["postgres://".len()..].split('@').next().unwrap();
    assert!(!user.contains(':'), "no password in the URL: {state}");
    assert!(
        dialer.contains("PGPASSWORD") || dialer.contains("database.env"),
        "{dialer}"
    );
}

fn new_campaign(name: &str, fingerprint: &str) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        fingerprint: fingerprint.into(),
        source: format!("/nowhere/{name}.csv"),
        settings: None,
        priority: 0,
        inbox: None,
        paused: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_creating_one_name_or_one_file_at_once_make_one_campaign() {
    use ccc_dialer::store::{CreateCheck, Refused};
    let schema = PgSchema::create().await;
    let a = Store::connect_postgres(&schema.url).await.unwrap();
    let b = Store::connect_postgres(&schema.url).await.unwrap();
    let now = ccc_dialer::dispatch::now_ms();
    for round in 0..8 {
        // The same name at once (the same Idempotency-Key on two replicas): one is created,
        // the other is told the name is taken.
        let name = format!("call-key-{round}");
        let (x, y) = tokio::join!(
            a.create_campaign_unless(new_campaign(&name, "fp-call"), CreateCheck::Name, now),
            b.create_campaign_unless(new_campaign(&name, "fp-call"), CreateCheck::Name, now),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {x:?} {y:?}"
        );
        assert!(
            matches!(
                (&x, &y),
                (Err(Refused::NameTaken), _) | (_, Err(Refused::NameTaken))
            ),
            "{x:?} {y:?}"
        );

        // The same contacts file under two names at once: one campaign, the other a twin.
        let fp = format!("fp-list-{round}");
        let check = CreateCheck::NoTwinSince(now - 1000);
        let (x, y) = tokio::join!(
            a.create_campaign_unless(new_campaign(&format!("a-{round}"), &fp), check, now),
            b.create_campaign_unless(new_campaign(&format!("b-{round}"), &fp), check, now),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        let made: Vec<_> = [&x, &y]
            .into_iter()
            .filter_map(|r| r.as_ref().ok())
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {x:?} {y:?}");
        let twin = [&x, &y]
            .into_iter()
            .find_map(|r| match r {
                Err(Refused::Twin(t)) => Some(t.id),
                _ => None,
            })
            .expect("the other is refused as a twin");
        assert_eq!(twin, made[0].id);
    }
    let all = a.campaigns().await.unwrap();
    assert_eq!(all.len(), 16, "8 calls and 8 lists: {all:?}");

    // A keyless call to a callee whose call is still open is refused, from any replica.
    let open = a
        .create_campaign_unless(
            new_campaign("call-one", "fp-callee"),
            CreateCheck::NoOpenCall,
            now,
        )
        .await
        .unwrap()
        .expect("the first call");
    let second = b
        .create_campaign_unless(
            new_campaign("call-two", "fp-callee"),
            CreateCheck::NoOpenCall,
            now,
        )
        .await
        .unwrap();
    assert!(
        matches!(second, Err(Refused::OpenCall(id)) if id == open.id),
        "{second:?}"
    );
}

#[tokio::test]
async fn an_intake_this_process_is_reading_is_not_granted_to_it_again() {
    // A session advisory lock is re-entrant: without the process's own record of its claims,
    // the 1 s intake pass would take an intake this replica is still reading and import it twice.
    let schema = PgSchema::create().await;
    let store = Store::connect_postgres(&schema.url).await.unwrap();
    assert!(store.try_claim_additions(7).await.unwrap());
    assert!(
        !store.try_claim_additions(7).await.unwrap(),
        "a claim this process holds was granted to it again"
    );
    store.release_additions(7).await.unwrap();
    assert!(
        store.try_claim_additions(7).await.unwrap(),
        "released, the claim is free again"
    );
    let other = Store::connect_postgres(&schema.url).await.unwrap();
    assert!(
        !other.try_claim_additions(7).await.unwrap(),
        "another process does not get it while this one holds it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbox_file_is_claimed_by_one_replica_and_a_dead_replicas_claim_is_taken_over() {
    let schema = PgSchema::create().await;
    let a = Store::connect_postgres(&schema.url).await.unwrap();
    let b = Store::connect_postgres(&schema.url).await.unwrap();
    assert!(a.claim_inbox_file("spring.csv").await.unwrap());
    assert!(
        !b.claim_inbox_file("spring.csv").await.unwrap(),
        "held by a"
    );
    assert!(
        b.claim_inbox_file("summer.csv").await.unwrap(),
        "another file is free"
    );
    a.release_inbox_file("spring.csv").await.unwrap();
    assert!(
        b.claim_inbox_file("spring.csv").await.unwrap(),
        "let go by a"
    );
    assert!(
        !a.claim_inbox_file("spring.csv").await.unwrap(),
        "now held by b"
    );
    // b dies (its connections end): its claims go with it.
    drop(b);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !a.claim_inbox_file("spring.csv").await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "b's claim outlived it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another store (schema) has claims of its own.
    let other = PgSchema::create().await;
    let c = Store::connect_postgres(&other.url).await.unwrap();
    assert!(c.claim_inbox_file("spring.csv").await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_watching_one_inbox_import_a_file_once_and_not_while_another_holds_it() {
    use ccc_dialer::server::inbox::Inbox;
    let schema = PgSchema::create().await;
    let a = crate::served::in_process_on(1 << 20, "", Some(&schema.url), async |_| {}).await;
    let b = crate::served::in_process_on(1 << 20, "", Some(&schema.url), async |_| {}).await;
    let inbox = tempfile::tempdir().unwrap();
    for sub in ["done", "rejected"] {
        std::fs::create_dir_all(inbox.path().join(sub)).unwrap();
    }
    std::fs::write(inbox.path().join("autumn.csv"), csv_of(55, 6)).unwrap();
    let (mut ia, mut ib) = (
        Inbox::new(inbox.path().to_path_buf()),
        Inbox::new(inbox.path().to_path_buf()),
    );
    // Held by a third process: both replicas leave the file unread (two passes: settled).
    let holder = Store::connect_postgres(&schema.url).await.unwrap();
    assert!(holder.claim_inbox_file("autumn.csv").await.unwrap());
    for _ in 0..2 {
        tokio::join!(ia.pass(&a.svc, None), ib.pass(&b.svc, None));
    }
    assert!(
        inbox.path().join("autumn.csv").exists(),
        "left where it was"
    );
    assert!(
        holder.campaigns().await.unwrap().is_empty(),
        "nothing imported"
    );
    holder.release_inbox_file("autumn.csv").await.unwrap();
    // Let go: both look at once, one imports it.
    tokio::join!(ia.pass(&a.svc, None), ib.pass(&b.svc, None));
    tokio::join!(ia.pass(&a.svc, None), ib.pass(&b.svc, None));
    let all = holder.campaigns().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].name, "autumn");
    assert!(all[0].intake_done);
    let done: Vec<_> = std::fs::read_dir(inbox.path().join("done"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(done, vec![std::ffi::OsString::from("autumn.csv")]);
    assert_eq!(
        std::fs::read_dir(inbox.path().join("rejected"))
            .unwrap()
            .count(),
        0,
        "nothing rejected (no replica saw the file as a second import)"
    );
    let counts = holder.counts(all[0].id).await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 6, "{counts:?}");
    // Both stopped (their runners and connections gone) before the schema is dropped.
    for p in [a, b] {
        let _ = p.stop.send(ccc_dialer::dispatch::Stop::Now);
        let _ = tokio::time::timeout(PATIENCE, p.task).await;
    }
}

/// Attempts written for campaign `id` (every replica's), from the store.
async fn attempts_of(store: &Store, id: i64) -> u64 {
    let counts = store.counts(id).await.unwrap();
    let dialled: u64 = counts
        .iter()
        .filter(|(s, _)| s.as_str() != "pending" && s.as_str() != "skipped")
        .map(|(_, n)| *n)
        .sum();
    dialled
}

/// Wait until the serve log has a line holding every one of `words` (bounded).
async fn log_line(srv: &Served, words: &[&str]) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let log = std::fs::read_to_string(&srv.log).unwrap_or_default();
        if log.lines().any(|l| words.iter().all(|w| l.contains(w))) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with {words:?}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_written_elsewhere_stops_this_replica_and_a_resume_elsewhere_finishes_the_campaign()
{
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = crate::served::scratch(&mock, "");
    s.state = PathBuf::from(&schema.url);
    let mut cmd = serve_command(&s);
    cmd.current_dir(s.dir.path());
    let srv = Served::start_with(&s, cmd).await;
    let other = Store::connect_postgres(&schema.url).await.unwrap();
    let id = create_elsewhere(&other, s.dir.path(), "long", &csv_of(56, 300)).await;
    srv.wait_campaign(id, "some contacts placed", |c| count(c, "placed") >= 20)
        .await;
    // Paused by another replica (here: another process writing the store).
    other
        .set_campaign_state(
            id,
            CampaignState::Paused,
            Some("paused on replica A".into()),
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .unwrap();
    log_line(&srv, &["stopping its dialling here", "paused"]).await;
    // Two barriers: campaigns this replica dials to the end while the long one is paused. What
    // the long one has after the first is what it has after the second: nothing new is sent.
    let first = create_elsewhere(&other, s.dir.path(), "barrier-1", &csv_of(57, 5)).await;
    srv.wait_campaign(first, "the first barrier", |c| state(c) == "completed")
        .await;
    let held = attempts_of(&other, id).await;
    let sent = mock.stats().requests;
    let second = create_elsewhere(&other, s.dir.path(), "barrier-2", &csv_of(58, 5)).await;
    srv.wait_campaign(second, "the second barrier", |c| state(c) == "completed")
        .await;
    assert_eq!(
        attempts_of(&other, id).await,
        held,
        "no attempt after the pause"
    );
    assert_eq!(
        mock.stats().requests,
        sent + 5,
        "only the barrier's 5 calls were sent"
    );
    assert!(
        held < 300,
        "the pause stopped the campaign part-way ({held} dialled)"
    );
    let c = srv.campaign(id).await;
    assert_eq!(state(&c), "paused", "{c}");

    // Resumed elsewhere: this replica dials the rest, each contact once.
    other
        .set_campaign_state(
            id,
            CampaignState::Active,
            None,
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .unwrap();
    let c = srv
        .wait_campaign(id, "the resumed campaign to complete", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 300, "{c}");
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "{:?}",
        stats.duplicate_callees
    );
    assert_eq!(stats.calls_per_callee.len(), 310);
}

/// `method` `path` on an in-process replica, with the token; the status and the JSON body.
async fn call_api(
    base: &str,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(crate::served::TOKEN)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("the replica answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// What every replica must answer alike about a campaign (its rate and lines are this
/// process's own).
fn shared_view(c: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": c["id"], "name": c["name"], "state": c["state"], "reason": c["reason"],
        "priority": c["priority"], "created_at": c["created_at"], "total": c["total"],
        "counts": c["counts"], "settings": c["settings"], "purged_at": c["purged_at"],
    })
}

async fn listed(base: &str, states: &str) -> Vec<serde_json::Value> {
    let (status, body) = call_api(
        base,
        reqwest::Method::GET,
        &format!("/v1/campaigns?state={states}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(shared_view)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_list_the_same_campaigns_and_counts_and_one_key_makes_one_call() {
    use reqwest::Method;
    let schema = PgSchema::create().await;
    let a = crate::served::in_process_on(1 << 20, "", Some(&schema.url), async |_| {}).await;
    let b = crate::served::in_process_on(1 << 20, "", Some(&schema.url), async |_| {}).await;
    // Created through either replica, paused (their counts stay as they are).
    for (i, base) in [&a.base, &b.base, &a.base].into_iter().enumerate() {
        let (status, body) = call_api(
            base,
            Method::POST,
            &format!("/v1/campaigns?name=list-{i}&paused=true"),
            &[],
            &csv_of(60 + i as u32, 4 + i),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let on_a = listed(&a.base, "paused,cancelled").await;
    assert_eq!(on_a.len(), 3, "{on_a:?}");
    assert_eq!(on_a, listed(&b.base, "paused,cancelled").await);
    // Cancelled on b: a says so, with the same counts.
    let id = on_a[1]["id"].as_i64().unwrap();
    let (status, body) = call_api(
        &b.base,
        Method::POST,
        &format!("/v1/campaigns/{id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let on_a = listed(&a.base, "paused,cancelled").await;
    assert_eq!(on_a[1]["state"], "cancelled", "{on_a:?}");
    assert_eq!(on_a[1]["counts"]["cancelled"], 5, "{on_a:?}");
    assert_eq!(on_a, listed(&b.base, "paused,cancelled").await);

    // Contacts added to one campaign through both replicas at once: every row of both bodies
    // is stored (each numbered after the other's, never taken for the other's).
    let id = on_a[0]["id"].as_i64().unwrap();
    let path = format!("/v1/campaigns/{id}/contacts");
    let (more_a, more_b) = (csv_of(70, 40), csv_of(71, 40));
    let (x, y) = tokio::join!(
        call_api(&a.base, Method::POST, &path, &[], &more_a),
        call_api(&b.base, Method::POST, &path, &[], &more_b),
    );
    assert_eq!((x.0, y.0), (200, 200), "{x:?} {y:?}");
    assert_eq!(x.1["intake"]["accepted"], 40, "{x:?}");
    assert_eq!(y.1["intake"]["accepted"], 40, "{y:?}");
    let counts = a.svc.store.counts(id).await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 4 + 80, "{counts:?}");
    assert_eq!(
        listed(&a.base, "paused,cancelled").await,
        listed(&b.base, "paused,cancelled").await
    );

    // The same Idempotency-Key posted to both replicas at once: one call, both answers name it.
    let body = r#"{"callee": "+8613900000077"}"#;
    let headers = [
        ("idempotency-key", "order-77"),
        ("content-type", "application/json"),
    ];
    let (x, y) = tokio::join!(
        call_api(&a.base, Method::POST, "/v1/calls", &headers, body),
        call_api(&b.base, Method::POST, "/v1/calls", &headers, body),
    );
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert!(
        statuses == [200, 202] || statuses == [202, 202] || statuses == [200, 200],
        "{x:?} {y:?}"
    );
    assert!(
        statuses.contains(&202),
        "one of them created it: {x:?} {y:?}"
    );
    assert_eq!(x.1["campaign_id"], y.1["campaign_id"], "{x:?} {y:?}");
    let calls: Vec<_> = b
        .svc
        .store
        .campaigns()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name.starts_with("call-"))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].name, "call-order-77");
    for p in [a, b] {
        let _ = p.stop.send(ccc_dialer::dispatch::Stop::Now);
        let _ = tokio::time::timeout(PATIENCE, p.task).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intake_a_dead_replica_left_is_finished_by_another_and_a_live_ones_is_left_to_it() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = crate::served::scratch(&mock, "");
    s.state = PathBuf::from(&schema.url);
    let mut cmd = serve_command(&s);
    cmd.current_dir(s.dir.path());
    let srv = Served::start_with(&s, cmd).await;
    let other = Store::connect_postgres(&schema.url).await.unwrap();
    let a_minute_ago = ccc_dialer::dispatch::now_ms() - 60_000;
    let create = |name: &str, source: &Path| {
        let new = NewCampaign {
            name: name.into(),
            fingerprint: format!("fp-{name}"),
            source: source.display().to_string(),
            settings: None,
            priority: 0,
            inbox: None,
            paused: None,
        };
        let other = &other;
        async move {
            other
                .create_campaign_with(new, a_minute_ago)
                .await
                .unwrap()
                .id
        }
    };
    // Being read by a live replica (its claim held; taken here before the row exists, so this
    // serve's poll cannot take it first): left to it. The schema is new: its first campaign
    // is number 1.
    assert!(other.try_claim_additions(1).await.unwrap());
    let held_source = dir_file(s.dir.path(), "held.csv", &csv_of(90, 5));
    let held = create("held", &held_source).await;
    assert_eq!(held, 1);
    // Left by a replica that died part-way (nobody holds its claim): finished and dialled here.
    let left_source = dir_file(s.dir.path(), "left.csv", &csv_of(91, 7));
    let left = create("left", &left_source).await;
    ccc_dialer::import::import_file_after(
        &other,
        left,
        &dir_file(s.dir.path(), "left-part.csv", &csv_of(91, 3)),
        &options(),
        None,
        0,
        ccc_dialer::dispatch::now_ms(),
    )
    .await
    .unwrap();
    // Its source on a disk this replica does not have: paused, saying so.
    let gone = create("gone", &s.dir.path().join("elsewhere/gone.csv")).await;

    let c = srv
        .wait_campaign(left, "the left intake finished and dialled", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(
        count(&c, "placed"),
        7,
        "the 3 stored rows and the 4 after: {c}"
    );
    let c = srv
        .wait_campaign(gone, "the sourceless intake paused", |c| {
            state(c) == "paused"
        })
        .await;
    assert!(c["reason"].as_str().unwrap().contains("is gone"), "{c}");
    // The held one was not touched while its claim was held (its intake is still not done,
    // after two campaigns were finished by the same poll loop).
    let h = other.campaign(held).await.unwrap().unwrap();
    assert!(!h.intake_done, "{h:?}");
    assert_eq!(other.counts(held).await.unwrap().values().sum::<u64>(), 0);
    // Its replica "dies": the claim goes, and this one finishes it.
    drop(other);
    let c = srv
        .wait_campaign(held, "the held intake finished once let go", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 5, "{c}");
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "{:?}",
        stats.duplicate_callees
    );
}

/// Calls of the campaign whose callees start with `0086139{prefix}` at one stand-in.
fn calls_with_prefix(mock: &ccc_dialer::mock::MockServer, prefix: u32) -> u64 {
    let p = format!("0086139{prefix:02}");
    mock.stats()
        .calls_per_callee
        .iter()
        .filter(|(c, _)| c.starts_with(&p))
        .map(|(_, n)| *n as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_share_a_campaign_created_on_one_and_a_pause_posted_to_one_stops_both()
{
    let schema = PgSchema::create().await;
    // One stand-in per replica: each one's calls are its own replica's.
    let (mock_a, mock_b) = (mock_with(20, 0, "").await, mock_with(20, 0, "").await);
    let start = |mock: &ccc_dialer::mock::MockServer| {
        let mut s = crate::served::scratch(mock, "");
        s.state = PathBuf::from(&schema.url);
        s
    };
    let (sa, sb) = (start(&mock_a), start(&mock_b));
    let launch = |s: &Scratch| {
        let mut cmd = serve_command(s);
        cmd.current_dir(s.dir.path());
        cmd
    };
    let a = Served::start_with(&sa, launch(&sa)).await;
    let b = Served::start_with(&sb, launch(&sb)).await;
    // Created on a; b dials some of it.
    let id = a.create("shared", &csv_of(80, 400)).await;
    b.wait_campaign(id, "both replicas dialling", |_| {
        calls_with_prefix(&mock_a, 80) >= 10 && calls_with_prefix(&mock_b, 80) >= 10
    })
    .await;
    // Paused on a: b stops too.
    let (status, body) = a.post(&format!("/v1/campaigns/{id}/pause"), "").await;
    assert_eq!(status, 200, "{body}");
    log_line(&b, &["stopping its dialling here", "paused"]).await;
    let first = a.create("barrier-a", &csv_of(81, 6)).await;
    a.wait_campaign(first, "the first barrier", |c| state(c) == "completed")
        .await;
    let held = (
        calls_with_prefix(&mock_a, 80),
        calls_with_prefix(&mock_b, 80),
    );
    let second = b.create("barrier-b", &csv_of(82, 6)).await;
    b.wait_campaign(second, "the second barrier", |c| state(c) == "completed")
        .await;
    assert_eq!(
        (
            calls_with_prefix(&mock_a, 80),
            calls_with_prefix(&mock_b, 80)
        ),
        held,
        "nothing sent for the paused campaign by either replica"
    );
    assert!(held.0 + held.1 < 400, "paused part-way: {held:?}");
    // Resumed on b: both finish it, every contact called once across the two.
    let (status, body) = b.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 200, "{body}");
    let c = a
        .wait_campaign(id, "the campaign to complete", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 400, "{c}");
    let (sa_stats, sb_stats) = (mock_a.stats(), mock_b.stats());
    for i in 0..400 {
        let callee = normalised(80, i);
        let n = sa_stats.calls_per_callee.get(&callee).copied().unwrap_or(0)
            + sb_stats.calls_per_callee.get(&callee).copied().unwrap_or(0);
        assert_eq!(n, 1, "contact {i} called {n} times across the replicas");
    }
    // The same list and counts from both.
    let (_, la) = a.get("/v1/campaigns").await;
    let (_, lb) = b.get("/v1/campaigns").await;
    let views = |l: &serde_json::Value| -> Vec<serde_json::Value> {
        l["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(shared_view)
            .collect()
    };
    assert_eq!(views(&la), views(&lb));
}
