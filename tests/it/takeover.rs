//! A replica that dies holding claims on a PostgreSQL store (`store::pg::takeover`): once its
//! leases run out, a survivor busy with a batch of its own dials the dead replica's unsent
//! contacts next, not after that batch; the dead replica's call in flight is in doubt, never
//! redialled, and whatever it might still write is fenced off.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccc_dialer::contact::{NewContact, Overrides};
use ccc_dialer::dispatch::{self, Engine, RequestDefaults, Stop};
use ccc_dialer::limiter::Limiter;
use ccc_dialer::store::{Store, StoreError};

use crate::pg::{PgSchema, ADMIN_URL};
use crate::support::*;

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

/// An engine dialling through `store` at `rate` requests a second.
fn engine(s: &Scratch, mock_endpoint: &str, store: Store, rate: f64) -> Arc<Engine> {
    let cfg = ccc_dialer::config::Config::load(&s.config).expect("config");
    let client = ccc_dialer::ccc::Client::new(
        &ccc_dialer::ccc::ClientSettings {
            endpoint: mock_endpoint.to_string(),
            region: None,
            language: None,
            connect_timeout: cfg.tencentcloud.connect_timeout,
            request_timeout: cfg.tencentcloud.request_timeout,
            idle_timeout: cfg.tencentcloud.idle_timeout,
        },
        ccc_dialer::sign::Credentials {
            secret_id: SECRET_ID.into(),
            secret_key: ccc_dialer::secret::Secret::new(SECRET_KEY),
            session_token: None,
        },
        ccc_dialer::ccc::system_clock(),
    )
    .expect("client");
    let (rules, _) = dispatch::rules::Rules::from_config(&cfg).expect("rules");
    let limiter = Arc::new(Limiter::new(rate, &[]));
    Arc::new(Engine::from_config(&cfg, store, client, limiter).with_rules(Arc::new(rules)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_contacts_are_dialled_once_its_leases_run_out_ahead_of_a_survivors_batch() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    let db = admin().await;

    // The replica that will die: long leases, so nothing runs out before the test says so.
    let dead = Store::connect_postgres(&schema.url).await.expect("store");
    dead.set_lease(Duration::from_secs(3600));
    let c = dead
        .create_campaign("t", "fp", "x.csv", 0)
        .await
        .expect("campaign");
    let rows = (0..100)
        .map(|i| NewContact {
            line: i as u64 + 2,
            callee: phone(i),
            ext_id: None,
            overrides: Overrides::default(),
            skip_reason: None,
        })
        .collect();
    dead.insert_contacts(c.id, rows, 0).await.expect("rows");
    dead.mark_intake_done(c.id).await.expect("intake");
    // It claimed the first four contacts and wrote an attempt down for the first (its request
    // may have left: in doubt from now on).
    let held = dead
        .due_contacts(c.id, dispatch::now_ms(), 4, HashSet::new())
        .await
        .expect("claimed");
    assert_eq!(held.len(), 4);
    let in_flight = &held[0];
    let unsent = &held[1..];
    dead.begin_attempt(in_flight.id, dispatch::now_ms(), None)
        .await
        .expect("written down");

    // The survivor dials at 2/s: the batch it claims (64 contacts, the least a dispatcher
    // takes) lasts half a minute.
    let survivor = Store::connect_postgres(&schema.url).await.expect("store");
    survivor.set_lease(Duration::from_secs(2));
    let store = survivor.clone();
    let engine = engine(&s, &mock.endpoint(), survivor, 2.0);
    let defaults = Arc::new(RequestDefaults::from(
        &ccc_dialer::config::Config::load(&s.config)
            .expect("config")
            .campaign,
    ));
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let run = tokio::spawn(dispatch::run_campaign(
        engine,
        c.id,
        defaults,
        stop_rx,
        Arc::new(|_| {}),
    ));
    wait_for_requests(&mock, "the survivor dials its own batch", 1).await;

    // The dead replica's leases run out (nobody renews them any more).
    let dead_owner = dead
        .lease_owner()
        .expect("a PostgreSQL store has an owner id");
    let ran_out = db
        .execute(
            &format!(
                "UPDATE {}.contacts SET lease_until =
                   (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - 1
                 WHERE lease_owner = $1",
                schema.name
            ),
            &[&dead_owner],
        )
        .await
        .expect("leases run out");
    assert_eq!(ran_out, 4);

    let theirs: HashSet<String> = unsent.iter().map(|d| d.callee.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let order: Vec<String> = loop {
        let order: Vec<String> = mock
            .arrivals_by_callee()
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        if theirs.iter().all(|c| order.contains(c)) {
            break order;
        }
        assert!(
            Instant::now() < deadline,
            "the dead replica's unsent contacts were never dialled: {order:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.send_replace(Stop::Now);
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the survivor stops")
        .expect("join")
        .expect("engine");

    // Dialled next, not after the survivor's 64: the survivor's own batch was still undialled
    // when the last of them went.
    let at: Vec<usize> = theirs
        .iter()
        .map(|c| order.iter().position(|o| o == c).expect("dialled"))
        .collect();
    let last = at.iter().copied().max().expect("three");
    assert!(
        last < 64,
        "the dead replica's contacts waited behind the survivor's batch: dialled at {at:?} of {order:?}"
    );
    let stats = mock.stats();
    assert!(
        stats.requests_by_callee.values().all(|n| *n == 1),
        "a callee was requested twice: {:?}",
        stats.requests_by_callee
    );
    // Its call in flight: in doubt, never dialled again.
    assert!(
        !stats.requests_by_callee.contains_key(&in_flight.callee),
        "the dead replica's call in flight was redialled"
    );
    let r = store.result_of(in_flight.id).await.expect("row");
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("unknown", "InDoubt")
    );
    // Claimed under new epochs: whatever the dead replica might still write is refused.
    assert!(matches!(
        dead.begin_attempt(unsent[0].id, dispatch::now_ms(), None).await,
        Err(StoreError::LeaseLost(id)) if id == unsent[0].id
    ));
    let attempts: i64 = db
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM {}.attempts WHERE contact_id = $1",
                schema.name
            ),
            &[&unsent[0].id],
        )
        .await
        .expect("attempts")
        .get(0);
    assert_eq!(attempts, 1, "only the survivor's attempt");
}
