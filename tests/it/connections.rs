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
