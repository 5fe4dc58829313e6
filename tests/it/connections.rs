//! The dialer's connections to the endpoint: opened before the first request, so no request
//! of the campaign pays for a connection's set-up (a TLS handshake to the real endpoint)
//! while the window guard counts it as sent.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_max_in_flight_needs_are_open_before_the_first_request() {
    let mock = ccc_dialer::mock::MockServer::spawn(ccc_dialer::mock::MockOptions {
        new_connection_delay: std::time::Duration::from_millis(40),
        ..mock_options()
    })
    .await
    .expect("stand-in starts");
    let s = Scratch::new(&mock.endpoint(), "", "[rate]\nmax_in_flight = 8\n");
    s.write_contacts(&contacts_csv(30));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(mock.stats().accepted, 30);
    // Replies come at once, so the campaign itself never had more than a couple of requests
    // out: the other connections were opened ahead, for the pace's worst case.
    assert!(
        mock.connections() >= 8,
        "only {} connections were opened",
        mock.connections()
    );
    assert!(
        stderr_of(&out).contains("connections opened before the first request"),
        "{}",
        stderr_of(&out)
    );
}

/// A client signing with the test key, as the dialer builds it.
fn client(endpoint: &str) -> ccc_dialer::ccc::Client {
    ccc_dialer::ccc::Client::new(
        &ccc_dialer::ccc::ClientSettings {
            endpoint: endpoint.to_string(),
            region: None,
            language: None,
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(10),
            idle_timeout: ccc_dialer::ccc::DEFAULT_IDLE_TIMEOUT,
        },
        ccc_dialer::sign::Credentials {
            secret_id: SECRET_ID.into(),
            secret_key: ccc_dialer::secret::Secret::new(SECRET_KEY),
            session_token: None,
        },
        ccc_dialer::ccc::system_clock(),
    )
    .expect("client builds")
}

/// A request leaves when its connection takes it, not when the limiter let it go, and the
/// window counts request `i + 20` from then: for a request that had to open its connection and
/// for one on a warm connection whose task the host ran late. The late host is a stalled
/// runtime thread: on this one-thread runtime the stall runs after the limiter released the
/// request and before anything else (connection set-up, the connection's task) ran.
#[test]
fn the_window_counts_a_request_from_when_its_connection_took_it() {
    use ccc_dialer::limiter::{Limiter, WINDOW};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mock = ccc_dialer::mock::MockServer::spawn(mock_options())
            .await
            .expect("stand-in starts");
        let client = client(&mock.endpoint());
        for (i, case) in ["a new connection", "a warm connection"].iter().enumerate() {
            let limiter = Arc::new(Limiter::new(20.0, &[]));
            let departure = limiter.acquire_slot().await;
            let stall = tokio::spawn(async {
                std::thread::sleep(Duration::from_millis(50));
                Instant::now()
            });
            let left = Arc::new(Mutex::new(None));
            let (l, left2) = (limiter.clone(), left.clone());
            let req = ccc_dialer::ccc::CallRequest {
                sdk_app_id: 1_400_000_000,
                ai_agent_id: 15,
                callee: phone(i),
                callers: vec![],
                variables: vec![],
                max_ring_timeout_second: None,
            };
            let placed = client
                .create_ai_agent_call_timed(
                    &req,
                    Box::new(move |at| {
                        l.left_at(departure, at);
                        *left2.lock().unwrap() = Some(at);
                    }),
                )
                .await;
            assert!(placed.is_ok(), "{case}: {placed:?}");
            let stalled_until = stall.await.expect("stall");
            let left = left.lock().unwrap().expect("told when it left");
            assert!(
                left >= stalled_until,
                "{case}: noted as leaving before the host ran it"
            );
            let now = Instant::now();
            for _ in 0..19 {
                limiter.reserve(now);
            }
            assert!(
                limiter.reserve(now) >= left + WINDOW,
                "{case}: request 21 must keep a full window from when request 1 really left"
            );
        }
        assert_eq!(
            mock.connections(),
            1,
            "the second request used the first's connection"
        );
    });
}

/// A connection that sat idle past what the way to the endpoint tolerates (a NAT, a firewall)
/// is dropped there without a word; a request sent on it would get no reply and its contact
/// would end in doubt (`unknown`). The dialer closes idle connections first
/// (`tencentcloud.idle_timeout`): every contact is placed, none in doubt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_silently_while_idle_leave_no_contact_in_doubt() {
    let mock = ccc_dialer::mock::MockServer::spawn(ccc_dialer::mock::MockOptions {
        drop_idle_after: Some(std::time::Duration::from_secs(1)),
        ..mock_options()
    })
    .await
    .expect("stand-in starts");
    // One request every two seconds: each finds the connections idle for longer than the
    // stand-in keeps them.
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[rate]\nrequests_per_second = 0.5\nmax_in_flight = 2\n",
    );
    let config = std::fs::read_to_string(&s.config).expect("config");
    let config = config.replace(
        "request_timeout = \"10s\"",
        "request_timeout = \"5s\"\nidle_timeout = \"300ms\"",
    );
    std::fs::write(&s.config, config).expect("config");
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    let in_doubt: Vec<_> = rows.iter().filter(|r| r.status != "placed").collect();
    assert!(in_doubt.is_empty(), "not placed: {in_doubt:?}");
    assert_eq!(mock.stats().accepted, 4);
}
