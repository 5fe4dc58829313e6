//! The engine in-process (store, limiter, stand-in), stopped at the awkward moments: while an
//! attempt is written down but waits for its window slot, and after an internal error from the
//! service that may have come after the call was created.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::dispatch::{self, Engine, RequestDefaults, RunOutcome, Stop};
use ccc_dialer::limiter::Limiter;
use ccc_dialer::store::Store;

use crate::support::*;

/// An engine for one campaign of `callees` against `mock`, with `extra` config tables.
async fn engine(
    mock: &ccc_dialer::mock::MockServer,
    extra: &str,
    limiter: Arc<Limiter>,
    callees: &[String],
) -> (Scratch, Arc<Engine>, Arc<RequestDefaults>, i64) {
    let (s, engine, defaults, id) = engine_on(mock, extra, limiter, callees, None).await;
    (s, Arc::new(engine), defaults, id)
}

/// [`engine`] on the store `store` names (a PostgreSQL URL), or on the scratch's SQLite file.
async fn engine_on(
    mock: &ccc_dialer::mock::MockServer,
    extra: &str,
    limiter: Arc<Limiter>,
    callees: &[String],
    store: Option<&str>,
) -> (Scratch, Engine, Arc<RequestDefaults>, i64) {
    let s = Scratch::new(&mock.endpoint(), "", extra);
    let cfg = ccc_dialer::config::Config::load(&s.config).expect("config");
    let client = ccc_dialer::ccc::Client::new(
        &ccc_dialer::ccc::ClientSettings {
            endpoint: mock.endpoint(),
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
    let store = match store {
        Some(url) => Store::connect_postgres(url).await.expect("store"),
        None => Store::open(&s.state).expect("store"),
    };
    let c = store
        .create_campaign("t", "fp", "x.csv", 0)
        .await
        .expect("campaign");
    let rows = callees
        .iter()
        .enumerate()
        .map(|(i, callee)| NewContact {
            line: i as u64 + 2,
            callee: callee.clone(),
            ext_id: None,
            overrides: Overrides::default(),
            skip_reason: None,
        })
        .collect();
    store.insert_contacts(c.id, rows, 0).await.expect("rows");
    store.mark_intake_done(c.id).await.expect("intake");
    let (rules, _) = ccc_dialer::dispatch::rules::Rules::from_config(&cfg).expect("rules");
    let engine = Engine::from_config(&cfg, store, client, limiter).with_rules(Arc::new(rules));
    let defaults = Arc::new(RequestDefaults::from(&cfg.campaign));
    (s, engine, defaults, c.id)
}

async fn count(store: &Store, id: i64, status: Status) -> u64 {
    store
        .counts(id)
        .await
        .expect("counts")
        .get(&status)
        .copied()
        .unwrap_or(0)
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_while_an_attempt_waits_for_its_slot_leaves_the_contact_pending() {
    let mock = mock_with(20, 0, "").await;
    let limiter = Arc::new(Limiter::new(20.0, &[]));
    // A slot already handed out 30 s ahead (as to another campaign): the next request is
    // paced at once, written down, and then waits for the slot after it.
    limiter.reserve(Instant::now() + Duration::from_secs(30));
    let (_s, engine, defaults, id) = engine(&mock, "", limiter, &[phone(1)]).await;
    let store = engine.store.clone();
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let run = tokio::spawn(dispatch::run_campaign(
        engine,
        id,
        defaults,
        stop_rx,
        Arc::new(|_| {}),
    ));
    wait_for("the attempt to be written down", async || {
        count(&store, id, Status::InFlight).await == 1
    })
    .await;
    // First stop: drain; second: stop waiting. Nothing had left.
    stop.send_replace(Stop::Drain);
    stop.send_replace(Stop::Now);
    let outcome = run.await.expect("join").expect("engine");
    assert_eq!(outcome, RunOutcome::Interrupted);
    assert_eq!(mock.requests(), 0, "nothing was sent");
    assert_eq!(count(&store, id, Status::InFlight).await, 0);
    assert_eq!(
        count(&store, id, Status::Pending).await,
        1,
        "written down but never sent: pending, not in doubt"
    );
    // Settling what the engine left in flight finds nothing to report unknown.
    assert_eq!(store.settle_in_flight(id, 1).await.expect("settle"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_keeps_its_call_in_the_per_person_history_so_the_gap_holds_the_retry() {
    // The service may have created the call before failing with InternalError: the retry
    // waits for min_gap like a call that rang, instead of ringing the person again at once.
    let risky = phone(1);
    let faults = fails_once(&risky, "InternalError");
    let mock = mock_with(20, 0, &faults).await;
    let limiter = Arc::new(Limiter::new(20.0, &[]));
    let extra = "[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n\n[calling]\nmin_gap = \"1h\"\n";
    let (_s, engine, defaults, id) =
        engine(&mock, extra, limiter, &[risky.clone(), phone(2)]).await;
    let store = engine.store.clone();
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let run = tokio::spawn(dispatch::run_campaign(
        engine,
        id,
        defaults,
        stop_rx,
        Arc::new(|_| {}),
    ));
    wait_for("the retry to be held by the gap", async || {
        store
            .contact_detail(id, &risky)
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.gate.as_deref() == Some("min_gap"))
    })
    .await;
    stop.send_replace(Stop::Drain);
    run.await.expect("join").expect("engine");
    assert_eq!(
        mock.stats().requests_by_callee.get(&risky).copied(),
        Some(1),
        "called again right after an internal error"
    );
    assert_eq!(count(&store, id, Status::Placed).await, 1);
    assert_eq!(count(&store, id, Status::Pending).await, 1);
    // The internal error's call stays in the number's history.
    assert_eq!(store.calls_to(&risky, 0).await.expect("dials").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_in_the_dispatch_loop_still_records_the_replies_in_flight() {
    // The first callee's reply takes 3 s; the second fails once, so the loop goes back to the
    // store for it while the first is still out.
    let slow = phone(1);
    let faults = format!(
        "[[rule]]\ncallee = \"{slow}\"\noutcomes = [\"hang:3s\"]\n{}",
        fails_once(&phone(2), "ResourceUnavailable")
    );
    let mock = mock_with(20, 0, &faults).await;
    let limiter = Arc::new(Limiter::new(20.0, &[]));
    let extra = "[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n";
    let (_s, engine, defaults, id) = engine(&mock, extra, limiter, &[slow.clone(), phone(2)]).await;
    let store = engine.store.clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let run = tokio::spawn(dispatch::run_campaign(
        engine,
        id,
        defaults,
        stop_rx,
        Arc::new(|_| {}),
    ));
    wait_for("both requests to leave", async || mock.requests() >= 2).await;
    // The queue can no longer be read (the attempts can still be written): the loop's next
    // look at the store fails while the slow reply is still out.
    store
        .call(|c| {
            c.execute_batch("ALTER TABLE contacts RENAME COLUMN overrides TO overrides_gone")?;
            Ok(())
        })
        .await
        .expect("break the queue");
    let outcome = run.await.expect("join");
    assert!(outcome.is_err(), "the store error is reported: {outcome:?}");
    let slow_now = store.call(move |c| {
        Ok(c.query_row(
            "SELECT status FROM contacts WHERE callee = ?1",
            [slow],
            |r| r.get::<_, String>(0),
        )?)
    });
    assert_eq!(
        slow_now.await.expect("status"),
        "placed",
        "the reply in flight was dropped instead of waited for"
    );
}

/// A campaign's own cap (`max_rate`) may hold a request a while (its window had a slot handed
/// out ahead, as to another of its requests). On a PostgreSQL store the account's slot is
/// reserved after that wait, when the request can leave: reserved before it, the slot's time
/// to leave passed during the wait, and the request was written down and released again and
/// again (its campaign slot kept each time, pushing the next further out) without ever leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_by_its_campaigns_own_cap_takes_its_account_slot_after_the_wait() {
    let mock = mock_with(20, 0, "").await;
    let schema = crate::pg::PgSchema::create().await;
    let limiter = Arc::new(Limiter::new(20.0, &[]));
    let (_s, mut engine, defaults, id) =
        engine_on(&mock, "", limiter, &[phone(1)], Some(&schema.url)).await;
    assert!(engine.store.share_window(ccc_dialer::ccc::ACTION, 20.0));
    let own = Arc::new(ccc_dialer::dispatch::campaign_rate::CampaignRate::new(2.0));
    // A slot of the campaign's window handed out 2 s ahead: the next one is no earlier.
    let ahead = own.reserve(Instant::now() + Duration::from_secs(2));
    engine.own_rate = Some(own.clone());
    let store = engine.store.clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let run = tokio::spawn(dispatch::run_campaign(
        Arc::new(engine),
        id,
        defaults,
        stop_rx,
        Arc::new(|_| {}),
    ));
    let outcome = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the campaign finished")
        .expect("join")
        .expect("engine");
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(count(&store, id, Status::Placed).await, 1);
    assert_eq!(mock.requests(), 1, "sent once");
    // Written down once: never released for being too late for its account slot.
    let (c, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let released: i64 = c
        .query_one(
            "SELECT count(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id
             WHERE c.campaign_id = $1 AND a.outcome = 'not_sent'",
            &[&id],
        )
        .await
        .expect("attempts")
        .get(0);
    assert_eq!(released, 0, "an attempt was released unsent");
    // It kept its campaign slot (it left): the next is a second after the two.
    assert!(own.reserve(Instant::now()) >= ahead + Duration::from_secs(1));
}
