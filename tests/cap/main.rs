//! The rate cap, judged by the stand-in's arrival times: never more than the cap in any
//! 1-second window, no request refused for the rate.
//!
//! A separate test binary because the judge is a clock: cargo runs test binaries one after the
//! other, and within this one [`alone`] runs the tests one at a time, so no other test loads
//! the two cores while arrivals are timed. (On an overloaded host the stand-in itself notices
//! arrivals late and would misjudge; the dialer's own margin is for network jitter.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../it/pg.rs"]
#[allow(dead_code)]
mod pg;
mod serve_replicas;
#[path = "../it/served.rs"]
mod served;
#[path = "../it/support.rs"]
mod support;

use served::*;
use support::*;

static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What opening a connection to the real endpoint costs (TCP and TLS): every new connection's
/// first request reaches the stand-in this much later than it was sent.
const NEW_CONNECTION_DELAY: std::time::Duration = std::time::Duration::from_millis(40);

/// The stand-in the cap is judged by: a strict window, and slow new connections.
async fn cap_mock(rate_limit: u32, latency_ms: u64, faults: &str) -> ccc_dialer::mock::MockServer {
    ccc_dialer::mock::MockServer::spawn(ccc_dialer::mock::MockOptions {
        rate_limit,
        latency_ms,
        faults: ccc_dialer::mock::Faults::from_toml_str(faults).expect("fault script parses"),
        new_connection_delay: NEW_CONNECTION_DELAY,
        ..mock_options()
    })
    .await
    .expect("stand-in starts")
}

/// Hold the host alone for a timed test.
async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    ALONE.lock().await
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_cap_holds_with_slow_replies_and_retries() {
    let _alone = alone().await;
    // Every 10th callee fails transiently once (a refusal: an internal error would keep the
    // retry for the per-person gap); replies take ~300 ms with a long tail.
    let mut faults = String::new();
    for i in (0..120).step_by(10) {
        faults.push_str(&format!(
            "[[rule]]\ncallee = \"{}\"\noutcomes = [\"error:ResourceUnavailable\", \"ok\"]\n",
            phone(i)
        ));
    }
    let mock = cap_mock(20, 300, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    s.write_contacts(&contacts_csv(120));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let stats = mock.stats();
    assert_eq!(stats.requests, 132, "120 first tries and 12 retries");
    assert!(
        stats.max_in_any_window <= 20,
        "window held {}; {} connections{}",
        stats.max_in_any_window,
        mock.connections(),
        fullest_second(&mock, &s.state, 20)
    );
    assert_eq!(
        stats.rate_limited, 0,
        "the stand-in never had to refuse a request"
    );
    assert!(!stats.errors_by_code.contains_key("RequestLimitExceeded"));
    assert!(s.results().iter().all(|r| r.status == "placed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_runs_resume_without_calling_anyone_twice() {
    // The reduced crash soak (the full one is `cargo bench --bench suite -- soak`).
    let _alone = alone().await;
    let n = 300;
    let mock = cap_mock(20, 200, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(n));
    for kill_after in [40u64, 130, 220] {
        let mut child = s.spawn();
        wait_for_requests(&mock, "requests to arrive", kill_after).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));

    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "created twice: {:?}",
        stats.duplicate_callees
    );
    assert!(
        stats.max_in_any_window <= 20,
        "restarts handed out a burst: {}; {} connections{}",
        stats.max_in_any_window,
        mock.connections(),
        fullest_second(&mock, &s.state, 20)
    );
    let rows = s.results();
    assert_eq!(rows.len(), n, "every contact once in the results");
    let unique: std::collections::BTreeSet<_> = rows.iter().map(|r| r.callee.clone()).collect();
    assert_eq!(unique.len(), n);
    for r in &rows {
        let created = stats.calls_per_callee.get(&r.callee).copied().unwrap_or(0);
        match r.status.as_str() {
            "placed" => assert_eq!(created, 1, "{}", r.callee),
            // In doubt: written down and possibly sent when the process died. The stand-in may
            // or may not have seen it, but it never created it twice.
            "unknown" => assert!(created <= 1, "{}", r.callee),
            other => panic!("unexpected status {other} for {}", r.callee),
        }
    }
    // Only replies in flight at a kill are lost: with ~200 ms replies at 20/s that is a handful
    // per kill, never more than the in-flight bound.
    let unknown = rows.iter().filter(|r| r.status == "unknown").count();
    assert!(
        unknown <= 3 * 64,
        "only in-flight replies are lost: {unknown}"
    );
    // Everyone else was placed exactly once.
    assert_eq!(
        rows.iter().filter(|r| r.status == "placed").count() + unknown,
        n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_campaigns_share_the_cap_and_the_small_one_is_not_starved() {
    let _alone = alone().await;
    let mock = cap_mock(20, 50, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let big = srv.create("big", &csv_of(4, 400)).await;
    let small = srv.create("small", &csv_of(5, 40)).await;
    let done = srv
        .wait_campaign(small, "the small campaign to complete", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&done, "placed"), 40);
    // Taking turns, the small campaign finished while the big one was still far from done.
    let b = srv.campaign(big).await;
    assert!(
        count(&b, "placed") < 300,
        "the big campaign went first: {b}"
    );
    assert!(
        count(&b, "placed") > 0,
        "the big campaign made no progress: {b}"
    );
    srv.wait_campaign(big, "the big campaign to complete", |c| {
        state(c) == "completed"
    })
    .await;
    let stats = mock.stats();
    assert!(
        stats.max_in_any_window <= 20,
        "{} in one second; {} connections{}",
        stats.max_in_any_window,
        mock.connections(),
        fullest_second(&mock, &s.state, 20)
    );
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.accepted, 440);
    assert!(stats.duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_store_in_use_sends_nothing_and_the_cap_holds() {
    // Two processes on one store once made the stand-in see 22 (and `serve` + `run`, 40) in
    // one second: the second now exits 2 before it sends anything.
    let _alone = alone().await;
    let mock = cap_mock(20, 100, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(80));
    let first = s.spawn();
    wait_for_requests(&mock, "the first run dials", 5).await;
    let second = run_async(&s).await;
    assert_eq!(code_of(&second), 2, "{}", stderr_of(&second));
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stats = mock.stats();
    assert!(
        stats.max_in_any_window <= 20,
        "the stand-in saw {} in one second",
        stats.max_in_any_window
    );
    assert_eq!(
        stats.accepted, 80,
        "every contact once, by the first run only"
    );
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
}

/// When the stand-in saw more than `cap` in a second: every arrival it counted in that second
/// (refused ones too: those never reach its per-callee log), in ms after the second's first,
/// beside every departure the dialer recorded from 100 ms before it to 100 ms after
/// (`attempts.sent_at` in the store at `state`: when the request's connection took it), with
/// the callee and the error the attempt ended with. Departures a full second apart for
/// arrivals that are not: a request written or delivered late (or stamped early by the judge);
/// `cap + 1` departures within a second: the limiter let them go.
fn fullest_second(
    mock: &ccc_dialer::mock::MockServer,
    state: &std::path::Path,
    cap: usize,
) -> String {
    let (now_i, now_w) = (std::time::Instant::now(), std::time::SystemTime::now());
    let wall_us = |at: std::time::Instant| {
        let w = now_w - now_i.duration_since(at);
        w.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    };
    let arrivals = mock.arrivals();
    let second = std::time::Duration::from_secs(1);
    let in_second = |i: usize| {
        arrivals[i..]
            .iter()
            .take_while(|t| **t < arrivals[i] + second)
            .count()
    };
    let Some(i) = (0..arrivals.len()).max_by_key(|i| in_second(*i)) else {
        return String::new();
    };
    let n = in_second(i);
    if n <= cap {
        return String::new();
    }
    let first = wall_us(arrivals[i]);
    let last = wall_us(arrivals[i + n - 1]);
    let departures: Vec<(i64, String, String)> = rusqlite::Connection::open(state)
        .and_then(|c| {
            let mut st = c.prepare(
                "SELECT a.sent_at, k.callee, COALESCE(a.code, a.outcome, '') FROM attempts a
                 JOIN contacts k ON k.id = a.contact_id
                 WHERE a.sent_at BETWEEN ?1 AND ?2 ORDER BY a.sent_at",
            )?;
            let rows = st.query_map([first / 1000 - 100, last / 1000 + 100], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect()
        })
        .unwrap_or_else(|e| {
            vec![(
                0,
                format!("(the store could not be read: {e})"),
                String::new(),
            )]
        });
    let span: String = rusqlite::Connection::open(state)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(sent_at), MAX(sent_at) FROM attempts",
                [],
                |r| {
                    Ok(format!(
                        "{} attempts, sent from {:?} to {:?} (the second's first arrival: {})",
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        first / 1000
                    ))
                },
            )
        })
        .unwrap_or_else(|e| format!("the store could not be read: {e}"));
    let mut out = format!(
        "\n{span}\nthe fullest second: {n} arrivals at (ms after its first) {}\ndepartures recorded from 100 ms before to 100 ms after (ms after the same first):\n",
        arrivals[i..i + n]
            .iter()
            .map(|t| format!("{:.1}", (wall_us(*t) - first) as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (sent, callee, how) in departures {
        out.push_str(&format!(
            "  {:+6} ms  {callee}  {how}\n",
            sent - first / 1000
        ));
    }
    out
}

/// The most of `arrivals` (any order) within any 1-second sliding window.
fn max_in_window(arrivals: &[std::time::Instant]) -> usize {
    let mut t = arrivals.to_vec();
    t.sort();
    let second = std::time::Duration::from_secs(1);
    (0..t.len())
        .map(|i| t[i..].iter().take_while(|x| **x < t[i] + second).count())
        .max()
        .unwrap_or(0)
}

/// The stand-in's arrivals of the callees `0086139<prefix>…` (one campaign's numbers).
fn arrivals_of(mock: &ccc_dialer::mock::MockServer, prefix: u32) -> Vec<std::time::Instant> {
    let mine = format!("0086139{prefix:02}");
    mock.arrivals_by_callee()
        .into_iter()
        .filter(|(_, c)| c.starts_with(&mine))
        .map(|(t, _)| t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_held_to_two_a_second_beside_a_full_rate_one_neither_exceeds_its_cap() {
    let _alone = alone().await;
    let mock = cap_mock(20, 20, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    // The small campaign has priority 5 (six requests in a row at its turn) but a cap of 2/s:
    // waiting for its own cap it must give its turn up, or the big one would stall meanwhile.
    let b = "cap-boundary-51a2";
    let settings = r#"{"name": "small", "priority": 5, "max_rate": 2}"#;
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"contacts\"\r\nContent-Type: text/csv\r\n\r\n{}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"settings\"\r\nContent-Type: application/json\r\n\r\n{settings}\r\n\
         --{b}--\r\n",
        csv_of(61, 12)
    );
    let r = srv
        .http
        .post(srv.url("/v1/campaigns"))
        .bearer_auth(TOKEN)
        .header("content-type", format!("multipart/form-data; boundary={b}"))
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let created: serde_json::Value = r.json().await.expect("JSON answer");
    assert_eq!(status, 201, "{created}");
    let small = created["campaign"]["id"].as_i64().expect("small campaign");
    let big = srv.create("big", &csv_of(62, 200)).await;
    for id in [small, big] {
        srv.wait_campaign(id, "both campaigns to complete", |c| {
            state(c) == "completed"
        })
        .await;
    }
    let (small_t, big_t) = (arrivals_of(&mock, 61), arrivals_of(&mock, 62));
    assert_eq!((small_t.len(), big_t.len()), (12, 200));
    assert!(
        max_in_window(&small_t) <= 2,
        "the 2/s campaign sent {} in one second",
        max_in_window(&small_t)
    );
    let stats = mock.stats();
    // The big campaign took the rest of the account's rate while the small one dialled: at 2/s
    // beside ~18/s it sends about nine requests for each of the small one's.
    let (first, last) = (small_t[0], small_t[small_t.len() - 1]);
    let big_meanwhile = big_t.iter().filter(|t| **t >= first && **t <= last).count();
    let span = last.duration_since(first).as_secs_f64();
    eprintln!(
        "capped campaign: {} requests over {span:.2} s ({:.2}/s), at most {} in a second; the other meanwhile: {big_meanwhile} ({:.2}/s); account: at most {} in a second",
        small_t.len(),
        (small_t.len() - 1) as f64 / span,
        max_in_window(&small_t),
        big_meanwhile as f64 / span,
        stats.max_in_any_window
    );
    // How much of the rest the other campaign takes is a throughput figure, judged by
    // `cargo bench --bench suite -- campaign-cap`. What must hold on any host: waiting for its
    // own cap, the capped campaign gave its turn up, so the other sent more than it meanwhile
    // (held for the capped one's turns of six, it would send about one for every six).
    assert!(
        big_meanwhile > small_t.len(),
        "the full-rate campaign got only {big_meanwhile} requests while the capped one sent {}",
        small_t.len()
    );
    assert!(
        stats.max_in_any_window <= 20,
        "{} in one second for the account; {} connections{}",
        stats.max_in_any_window,
        mock.connections(),
        fullest_second(&mock, &s.state, 20)
    );
    assert_eq!(stats.rate_limited, 0);
    assert!(stats.duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_campaign_cap_sends_no_more_than_it_in_any_second() {
    let _alone = alone().await;
    let mock = cap_mock(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "max_rate = 2", "");
    s.write_contacts(&contacts_csv(7));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 7);
    assert!(
        max_in_window(&arrivals) <= 2,
        "{} in one second",
        max_in_window(&arrivals)
    );
}

/// A pause and a resume within a second start the campaign's runner anew but not its window:
/// the resumed runner may not send what the second before the pause already used (with a
/// fresh window it sent up to twice the cap in that second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_and_resume_within_a_second_keep_the_campaigns_cap() {
    let _alone = alone().await;
    let mock = cap_mock(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "max_rate = 2", "");
    let srv = Served::start(&s).await;
    let id = srv.create("steered", &csv_of(63, 12)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for sent in [2, 5, 8] {
        // Right after a send, while the window still holds it: pause, resume at once.
        while arrivals_of(&mock, 63).len() < sent {
            assert!(std::time::Instant::now() < deadline, "no progress");
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            srv.post(&format!("/v1/campaigns/{id}/pause"), "").await.0,
            200
        );
        assert_eq!(
            srv.post(&format!("/v1/campaigns/{id}/resume"), "").await.0,
            200
        );
    }
    srv.wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    let t = arrivals_of(&mock, 63);
    assert_eq!(t.len(), 12);
    assert!(
        max_in_window(&t) <= 2,
        "the 2/s campaign sent {} in one second across its pauses",
        max_in_window(&t)
    );
}

/// Engines in-process for replicas: each with a store handle (its own connections) on one
/// PostgreSQL schema, built the way `run` and `serve` build theirs
/// ([`ccc_dialer::commands::engine`]: on PostgreSQL the account's window is the database's),
/// dialling its campaign of `n` callees `0086139<prefix>…` against `mock`.
mod replicas {
    use std::sync::Arc;

    use ccc_dialer::contact::{NewContact, Overrides};
    use ccc_dialer::dispatch::{self, RequestDefaults, RunOutcome, Stop};
    use ccc_dialer::store::Store;

    use super::support::*;

    pub struct Replica {
        pub engine: Arc<dispatch::Engine>,
        pub defaults: Arc<RequestDefaults>,
        pub campaign: i64,
        _scratch: Scratch,
    }

    pub async fn replica(
        mock: &ccc_dialer::mock::MockServer,
        url: &str,
        extra: &str,
        prefix: u32,
        n: usize,
    ) -> Replica {
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
        let store = Store::connect_postgres(url).await.expect("store");
        let c = store
            .create_campaign(&format!("replica-{prefix}"), "fp", "x.csv", 0)
            .await
            .expect("campaign");
        let rows = (0..n)
            .map(|i| NewContact {
                line: i as u64 + 2,
                callee: format!("0086139{prefix:02}{i:06}"),
                ext_id: None,
                overrides: Overrides::default(),
                skip_reason: None,
            })
            .collect();
        store.insert_contacts(c.id, rows, 0).await.expect("rows");
        store.mark_intake_done(c.id).await.expect("intake");
        let (rules, _) = dispatch::rules::Rules::from_config(&cfg).expect("rules");
        let engine = ccc_dialer::commands::engine(&cfg, store, client, Arc::new(rules))
            .await
            .map_err(|e| format!("{e:?}"))
            .expect("engine");
        assert!(
            engine.store.shares_window(ccc_dialer::ccc::ACTION),
            "a PostgreSQL store shares the account's window"
        );
        Replica {
            engine: Arc::new(engine),
            defaults: Arc::new(RequestDefaults::from(&cfg.campaign)),
            campaign: c.id,
            _scratch: s,
        }
    }

    /// Run every replica's campaign to its end, all at once.
    pub async fn run_all(replicas: &[Replica]) {
        let (_stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
        let runs: Vec<_> = replicas
            .iter()
            .map(|r| {
                tokio::spawn(dispatch::run_campaign(
                    r.engine.clone(),
                    r.campaign,
                    r.defaults.clone(),
                    stop_rx.clone(),
                    Arc::new(|_| {}),
                ))
            })
            .collect();
        for run in runs {
            let outcome = run.await.expect("join").expect("engine");
            assert_eq!(outcome, RunOutcome::Completed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_store_keep_the_accounts_cap() {
    let _alone = alone().await;
    let mock = cap_mock(20, 100, "").await;
    let schema = pg::PgSchema::create().await;
    // The rate-fidelity benchmark runs this test with more contacts (BENCHMARKS.md).
    let n: usize = std::env::var("CCC_CAP_REPLICA_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut all = Vec::new();
    for prefix in [71, 72, 73] {
        all.push(replicas::replica(&mock, &schema.url, "", prefix, n).await);
    }
    replicas::run_all(&all).await;
    let stats = mock.stats();
    let t = mock.arrivals();
    if let (Some(first), Some(last)) = (t.first(), t.last()) {
        let span = last.duration_since(*first).as_secs_f64();
        // Steady: from the 21st arrival on (the first 20 leave at once into an empty window).
        let steady = (t.len() - 21) as f64 / last.duration_since(t[20]).as_secs_f64();
        eprintln!(
            "three replicas: {} requests over {span:.2} s ({:.2}/s first to last, {steady:.2}/s steady), at most {} in a second",
            t.len(),
            (t.len() - 1) as f64 / span,
            stats.max_in_any_window
        );
    }
    assert_eq!(
        stats.accepted,
        3 * n as u64,
        "every contact once: {stats:?}"
    );
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    for prefix in [71, 72, 73] {
        assert_eq!(arrivals_of(&mock, prefix).len(), n, "replica {prefix}");
    }
    assert!(
        stats.max_in_any_window <= 20,
        "three replicas sent {} in one second ({} connections)",
        stats.max_in_any_window,
        mock.connections()
    );
    assert_eq!(
        stats.rate_limited, 0,
        "the stand-in never had to refuse one"
    );
}

/// The record poll's budget is shared the same way: three processes' DescribeTelCdr queries, each
/// paced at the action's full 20 a second by its own limiter and sent through the path the
/// outcome tracker takes (written down with its slot, sent when the slot comes, its departure
/// told), never put more than 20 in one second at the stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_record_polls_budget_on_one_postgres_store() {
    use ccc_dialer::shared_window;
    let _alone = alone().await;
    let mock = cap_mock(20, 50, "").await;
    let schema = pg::PgSchema::create().await;
    let action = "DescribeTelCdr";
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = ccc_dialer::store::Store::connect_postgres(&schema.url)
            .await
            .expect("store");
        // The tracker's own limiter, made the way it makes it (which shares the window).
        let limiter = ccc_dialer::seed::seeded_limiter(&store, action, 20.0)
            .await
            .expect("limiter");
        assert!(store.shares_window(action));
        let s = Scratch::new(&mock.endpoint(), "", "");
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
        // Its connection opened before the first query, as `run` and `serve` open theirs (a
        // new connection's first request reaches the stand-in 40 ms after it was written).
        client.warm_up(2).await;
        tasks.push(tokio::spawn(async move {
            let _s = s;
            let now = ccc_dialer::times::now_ms() / 1000;
            let body = format!(
                "{{\"SdkAppId\":1400000000,\"StartTimeStamp\":{},\"EndTimeStamp\":{now},\"Limit\":\"100\",\"Offset\":\"0\"}}",
                now - 3600
            );
            for _ in 0..60 {
                let (row, departure, slot) = shared_window::query(&store, &limiter, action)
                    .await
                    .expect("written down");
                let on_leave = shared_window::on_leave(&store, &departure, slot.as_ref());
                let reply = client
                    .post_timed(action, body.clone().into_bytes(), Some(on_leave))
                    .await;
                shared_window::query_sent(&store, row, &departure, slot.as_ref())
                    .await
                    .expect("departure written");
                let (status, _) = reply.expect("an answer");
                assert_eq!(status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let t = mock.action_arrivals(action);
    assert_eq!(t.len(), 180, "every query arrived");
    let span = t[t.len() - 1].duration_since(t[0]).as_secs_f64();
    let steady = (t.len() - 21) as f64 / t[t.len() - 1].duration_since(t[20]).as_secs_f64();
    eprintln!(
        "three processes' {action}: {} over {span:.2} s ({:.2}/s first to last, {steady:.2}/s steady), at most {} in a second",
        t.len(),
        (t.len() - 1) as f64 / span,
        max_in_window(&t)
    );
    assert!(
        max_in_window(&t) <= 20,
        "three processes sent {} {action} in one second",
        max_in_window(&t)
    );
}
