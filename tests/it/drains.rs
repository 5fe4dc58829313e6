//! Stopping a campaign in `serve` (pause, cancel, halt) while replies are still out: the drain
//! must not hold anything the other campaigns need (the shared limiter's turn), and a drain that
//! outlives a resume must still answer a second stop.

use std::time::{Duration, Instant};

use crate::served::*;
use crate::support::*;

/// Requests the stand-in has seen for callees of `csv_of(prefix, …)`.
fn seen_with_prefix(mock: &ccc_dialer::mock::MockServer, prefix: u32) -> u32 {
    let head = format!("0086139{prefix:02}");
    mock.stats()
        .requests_by_callee
        .iter()
        .filter(|(c, _)| c.starts_with(&head))
        .map(|(_, n)| *n)
        .sum()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_priority_campaign_draining_a_hung_request_does_not_stop_the_others() {
    // The urgent campaign's first callee hangs: its reply would come after the dialer's
    // request timeout (10 s), so its drain lasts that long.
    let hung = normalised(30, 0);
    let faults = format!("[[rule]]\ncallee = \"{hung}\"\noutcomes = [\"hang:120s\"]\n");
    let mock = mock_with(20, 0, &faults).await;
    let s = scratch(&mock, "[run]\ngrace_period = \"60s\"\n");
    let srv = Served::start(&s).await;
    let steady = srv.create("steady", &csv_of(31, 400)).await;
    wait_until("the steady campaign to send", || {
        seen_with_prefix(&mock, 31) >= 5
    })
    .await;
    let (status, body) = srv
        .post("/v1/campaigns?name=urgent&priority=9", csv_of(30, 100))
        .await;
    assert_eq!(status, 201, "{body}");
    let urgent = body["campaign"]["id"].as_i64().expect("id");
    // Pause it right after its hung request left: mid-turn (ten requests in a row).
    wait_until("the hung request to arrive", || {
        mock.stats().requests_by_callee.contains_key(&hung)
    })
    .await;
    let (status, body) = srv.post(&format!("/v1/campaigns/{urgent}/pause"), "").await;
    assert_eq!(status, 200, "{body}");
    let before = seen_with_prefix(&mock, 31);
    wait_until("the steady campaign to send while the other drains", || {
        seen_with_prefix(&mock, 31) >= before + 10
    })
    .await;
    let u = srv.campaign(urgent).await;
    assert_eq!(
        count(&u, "in_flight"),
        1,
        "the steady campaign only went on once the paused one had drained: {u}"
    );
    let st = srv.campaign(steady).await;
    assert_eq!(state(&st), "active", "{st}");
}
