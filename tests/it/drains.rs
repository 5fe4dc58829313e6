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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_short_the_oldest_drain_after_two_pauses_and_resumes() {
    // The first callee's reply never comes within the test: the first runner drains it for as
    // long as the request timeout and grace period allow (2 minutes).
    let hung = normalised(40, 0);
    let faults = format!("[[rule]]\ncallee = \"{hung}\"\noutcomes = [\"hang:300s\"]\n");
    let mock = mock_with(20, 0, &faults).await;
    let s = scratch(&mock, "[run]\ngrace_period = \"120s\"\n");
    let text = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(
        &s.config,
        text.replace("request_timeout = \"10s\"", "request_timeout = \"120s\""),
    )
    .expect("config");
    let srv = Served::start(&s).await;
    let id = srv.create("drainer", &csv_of(40, 50)).await;
    wait_until("the hung request to arrive", || {
        mock.stats().requests_by_callee.contains_key(&hung)
    })
    .await;
    // Pause and resume twice while the first runner drains: three runners, each waiting for
    // the one before it.
    for _ in 0..2 {
        let (status, body) = srv.post(&format!("/v1/campaigns/{id}/pause"), "").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
        assert_eq!(status, 200, "{body}");
    }
    srv.signal("-TERM");
    let log = srv.log.clone();
    wait_until("the first stop to be taken", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("stop requested")
    })
    .await;
    srv.signal("-TERM");
    // The second stop reaches the oldest runner too: the service exits without waiting for
    // the hung reply (before, it waited out the 2-minute drain).
    let exited = tokio::time::timeout(Duration::from_secs(60), srv.wait_exit()).await;
    let (code, log) = exited.expect("the second SIGTERM did not cut the oldest drain short");
    assert_eq!(code, 0, "{log}");
}

#[tokio::test]
async fn a_pause_committed_before_the_start_keeps_a_new_campaign_from_dialling() {
    // `create_campaign` read the campaign as active, then a pause was committed before it
    // started the runner: the start goes by the state in the store now.
    let ip = in_process(1 << 20, async |_| {}).await;
    let store = &ip.svc.store;
    let c = store
        .create_campaign("late-pause", "fp", "x.csv", 0)
        .await
        .expect("campaign");
    store.mark_intake_done(c.id).await.expect("intake");
    store
        .set_campaign_state(
            c.id,
            ccc_dialer::store::CampaignState::Paused,
            Some("paused by an operator".into()),
            0,
        )
        .await
        .expect("pause");
    let runs = ip.svc.campaigns.start_current(c.id).await.expect("start");
    assert!(!runs, "a paused campaign was started");
    assert!(!ip.svc.campaigns.is_running(c.id));
    // Resumed, the same call starts it.
    assert!(ip.svc.campaigns.resume(c.id).await.expect("resume"));
    assert!(ip.svc.campaigns.is_running(c.id));
    let _ = ip.stop.send(ccc_dialer::dispatch::Stop::Drain);
}
