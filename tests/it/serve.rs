//! `ccc-dialer serve` as a child process on port 0, against the built-in stand-in over loopback.
//! The stand-in's figures judge: calls created per callee. (The rate-cap checks, judged by
//! arrival times, are in the `cap` test binary, which runs alone.)

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::served::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_from_http_and_from_the_inbox_both_complete() {
    let mock = mock_with(20, 5, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;

    let (status, body) = srv
        .post(
            "/v1/campaigns?name=http",
            format!("{}not-a-number,bad\n", csv_of(1, 30)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["intake"]["accepted"], 30);
    assert_eq!(body["intake"]["skipped_rows"][0]["line"], 32);
    let http_id = body["campaign"]["id"].as_i64().expect("id");

    // The inbox: settings first, then the CSV renamed in (complete when it appears).
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(
        inbox.join("reminders.toml"),
        "ai_agent_id = 77\n[variables]\nproduct = \"inbox\"\n",
    )
    .expect("sidecar");
    std::fs::write(inbox.join(".reminders.csv.part"), csv_of(2, 20)).expect("csv");
    std::fs::rename(
        inbox.join(".reminders.csv.part"),
        inbox.join("reminders.csv"),
    )
    .expect("rename in");
    // An unusable file goes to rejected/ with the reason beside it.
    std::fs::write(inbox.join("broken.csv"), "number\n123\n").expect("broken");

    let http = srv
        .wait_campaign(http_id, "the HTTP campaign to complete", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&http, "placed"), 30);
    assert_eq!(count(&http, "skipped"), 1);

    let deadline = Instant::now() + Duration::from_secs(60);
    let inbox_id = loop {
        let (_, list) = srv.get("/v1/campaigns").await;
        let found = list["campaigns"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "reminders"))
            .and_then(|c| c["id"].as_i64());
        if let Some(id) = found {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "inbox file never became a campaign"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let c = srv
        .wait_campaign(inbox_id, "the inbox campaign to complete", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 20);
    assert_eq!(c["settings"]["ai_agent_id"], 77);
    // The sidecar's settings reached the service.
    let stats = mock.stats();
    let body = &stats.last_body_by_callee[&normalised(2, 0)];
    assert_eq!(body["AIAgentId"], 77, "{body}");
    assert!(
        body["Variables"].as_array().is_some_and(|v| v
            .iter()
            .any(|x| x["Key"] == "product" && x["Value"] == "inbox")),
        "{body}"
    );
    assert!(stats.duplicate_callees.is_empty());
    assert_eq!(stats.accepted, 50);

    // Files moved: done/ holds the CSV and its sidecar; rejected/ the broken one and why.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inbox.join("rejected/broken.csv.error.txt").exists()
        || !inbox.join("done/reminders.csv").exists()
    {
        assert!(Instant::now() < deadline, "inbox files were not moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(inbox.join("done/reminders.toml").exists());
    assert!(!inbox.join("reminders.csv").exists());
    let why = std::fs::read_to_string(inbox.join("rejected/broken.csv.error.txt")).expect("report");
    assert!(why.contains("no `callee` column"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_file_is_never_imported_twice_even_across_restarts() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let srv = Served::start(&s).await;
    std::fs::write(inbox.join("once.csv"), csv_of(3, 5)).expect("csv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !inbox.join("done/once.csv").exists() {
        assert!(Instant::now() < deadline, "never imported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.wait_campaign(1, "completion", |c| state(c) == "completed")
        .await;
    srv.signal("-TERM");
    let (code, _) = srv.wait_exit().await;
    assert_eq!(code, 0);

    // The same file dropped again (same name, same content) after a restart is not dialled.
    std::fs::copy(inbox.join("done/once.csv"), inbox.join("once.csv")).expect("copy back");
    let srv = Served::start(&s).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while inbox.join("once.csv").exists() {
        assert!(Instant::now() < deadline, "the file was left in the inbox");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = srv.get("/v1/campaigns").await;
    assert_eq!(
        list["campaigns"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    assert_eq!(mock.stats().accepted, 5);
    assert!(mock.stats().duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_steer_a_running_campaign() {
    let mock = mock_with(20, 100, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("steer", &csv_of(6, 200)).await;
    wait_for_requests(&mock, "some calls placed", 10).await;

    let (status, body) = srv.post(&format!("/v1/campaigns/{id}/pause"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&body), "paused");
    // Drained: nothing in flight, every request the stand-in saw is recorded.
    let paused = srv
        .wait_campaign(id, "in-flight replies to be recorded", |c| {
            count(c, "in_flight") == 0
        })
        .await;
    assert!(count(&paused, "pending") > 0, "{paused}");
    assert_eq!(count(&paused, "placed"), mock.stats().accepted, "{paused}");
    assert_eq!(count(&paused, "unknown"), 0);

    let (status, body) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&body), "active");
    let before = count(&paused, "placed");
    srv.wait_campaign(id, "progress after resume", |c| {
        count(c, "placed") > before + 10
    })
    .await;

    let (status, body) = srv.post(&format!("/v1/campaigns/{id}/cancel"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&body), "cancelled");
    let c = srv
        .wait_campaign(id, "in-flight replies after cancel", |c| {
            count(c, "in_flight") == 0 && count(c, "pending") == 0
        })
        .await;
    assert!(count(&c, "cancelled") > 0, "{c}");
    assert_eq!(count(&c, "placed") + count(&c, "cancelled"), 200, "{c}");
    assert_eq!(count(&c, "placed"), mock.stats().accepted);
    assert!(mock.stats().duplicate_callees.is_empty());
    // A cancelled campaign cannot be resumed.
    let (status, _) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 409);

    // The results stream has every contact once.
    let r = srv
        .http
        .get(srv.url(&format!("/v1/campaigns/{id}/results")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("results");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<ccc_dialer::contact::ResultRow> =
        rdr.deserialize().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 200);
    let distinct: std::collections::HashSet<_> = rows.iter().map(|r| &r.callee).collect();
    assert_eq!(distinct.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_resumes_without_dialling_anyone_twice() {
    let mock = mock_with(20, 200, "").await;
    let s = scratch(&mock, "");
    let n = 150;
    let srv = Served::start(&s).await;
    let id = srv.create("crash", &csv_of(7, n)).await;
    wait_for_requests(&mock, "calls before the first kill", 20).await;
    srv.signal("-KILL");
    drop(srv);
    let srv = Served::start(&s).await;
    wait_for_requests(&mock, "calls after the first restart", 80).await;
    srv.signal("-KILL");
    drop(srv);
    let srv = Served::start(&s).await;
    let c = srv
        .wait_campaign(id, "completion after restarts", |c| state(c) == "completed")
        .await;
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "called twice: {:?}",
        stats.duplicate_callees
    );
    assert_eq!(c["total"], n as u64);
    assert_eq!(count(&c, "pending") + count(&c, "in_flight"), 0, "{c}");
    // Every contact the stand-in created a call for is placed or in doubt, never redialled;
    // the in-doubt ones are at most what was on the wire at the two kills.
    assert_eq!(count(&c, "placed") + count(&c, "unknown"), n as u64, "{c}");
    // In doubt only what was on the wire (or written down) at the two kills.
    assert!(count(&c, "unknown") <= 80, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_replies_in_flight_and_exits_0() {
    let mock = mock_with(20, 400, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("drain", &csv_of(8, 100)).await;
    wait_for_requests(&mock, "calls in flight", 15).await;
    srv.signal("-TERM");
    let (code, log) = srv.wait_exit().await;
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(SECRET_KEY) && !log.contains(TOKEN));

    // Every request that reached the stand-in was recorded: nothing unknown, nothing left in
    // flight, every call the stand-in created is a placed contact.
    {
        use ccc_dialer::contact::Status;
        let store = ccc_dialer::store::Store::open(&s.state).expect("store");
        let counts = store.counts(id).await.expect("counts");
        let get = |st| counts.get(&st).copied().unwrap_or(0);
        assert_eq!(get(Status::Unknown), 0, "{counts:?}");
        assert_eq!(get(Status::InFlight), 0, "{counts:?}");
        assert!(get(Status::Pending) > 0, "{counts:?}");
        assert_eq!(get(Status::Placed), mock.stats().accepted, "{counts:?}");
    }
    let srv = Served::start(&s).await;
    let c = srv
        .wait_campaign(id, "completion after the restart", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 100);
    assert!(mock.stats().duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_code_pauses_campaigns_with_the_reason_and_the_service_keeps_running() {
    let faults = r#"
[[rule]]
callee = "008613909000005"
outcomes = ["error:FailedOperation.AILicenseHasExpired"]
"#;
    let mock = mock_with(20, 20, faults).await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("halting", &csv_of(9, 30)).await;
    let c = srv
        .wait_campaign(id, "the halt to pause the campaign", |c| {
            state(c) == "paused" && count(c, "in_flight") == 0
        })
        .await;
    let reason = c["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("FailedOperation.AILicenseHasExpired"),
        "{reason}"
    );
    assert!(reason.contains("renew"), "{reason}");
    assert!(count(&c, "pending") > 0, "{c}");
    let r = srv
        .http
        .get(srv.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);

    // After the fix (the script plays once), resume finishes it; nobody is called twice.
    let (status, _) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 200);
    let c = srv
        .wait_campaign(id, "completion after resume", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 30, "{c}");
    assert!(mock.stats().duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_malformed_requests_are_refused_cleanly() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let plain = &srv.http;

    let r = plain
        .get(srv.url("/v1/campaigns"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let r = plain
        .get(srv.url("/v1/campaigns"))
        .bearer_auth("test-api-token-0123456780")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "unauthorized");
    // Probes need no token.
    for p in ["/healthz", "/readyz", "/metrics"] {
        let r = plain.get(srv.url(p)).send().await.expect("probe");
        assert_eq!(r.status().as_u16(), 200, "{p}");
    }

    let (status, body) = srv.post("/v1/calls", "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("body")));
    let (status, body) = srv.post("/v1/calls", r#"{"callee": "12"}"#).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = srv
        .post("/v1/calls", r#"{"callee": "+8613800000000", "x": 1}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = srv.post("/v1/campaigns", "number\n123\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("callee")));
    let (status, _) = srv.post("/v1/campaigns?nme=x", "callee\n").await;
    assert_eq!(status, 400);
    let (status, _) = srv.get("/v1/campaigns/999").await;
    assert_eq!(status, 404);
    let (status, _) = srv.get("/v1/campaigns/abc").await;
    assert_eq!(status, 404);
    let (status, _) = srv.get("/v1/nothing").await;
    assert_eq!(status, 404);
    // A body over the limit is refused before it is read whole.
    // Just over the 1 MiB limit the tests start `serve` with (see served.rs).
    let huge = "callee\n".to_string() + &"+8613800000000\n".repeat((1 << 20) / 15 + 10);
    let (status, _) = srv.post("/v1/campaigns", huge).await;
    assert_eq!(status, 413);
    // The same contacts posted twice under one name are one campaign, never two.
    let (status, first) = srv.post("/v1/campaigns?name=twice", csv_of(1, 3)).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = srv.post("/v1/campaigns?name=twice", csv_of(1, 3)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["campaign"]["id"], first["campaign"]["id"]);
    let (status, _) = srv.post("/v1/campaigns?name=twice", csv_of(1, 4)).await;
    assert_eq!(status, 409);
    // The service is still up and nothing was dialled for the refused requests.
    let r = plain
        .get(srv.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    assert!(mock.stats().requests <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_calls_are_idempotent_and_contacts_show_their_attempts() {
    let faults = r#"
[[rule]]
callee = "008613800000011"
outcomes = ["error:FailedOperation.CallOutFailed", "ok"]
"#;
    let mock = mock_with(20, 0, faults).await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let call = |key: &'static str| {
        srv.http
            .post(srv.url("/v1/calls"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"callee": "13800000011", "variables": {"name": "Li"}}))
            .send()
    };
    let r = call("k-1").await.expect("call");
    assert_eq!(r.status().as_u16(), 202);
    let first: Value = r.json().await.expect("json");
    let id = first["campaign_id"].as_i64().expect("id");
    let r = call("k-1").await.expect("retry");
    assert_eq!(r.status().as_u16(), 200, "a retried POST is the same call");
    let again: Value = r.json().await.expect("json");
    assert_eq!(again["campaign_id"], id);
    srv.wait_campaign(id, "the call to be placed", |c| state(c) == "completed")
        .await;
    let (status, d) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/+8613800000011"))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "placed");
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{d}");
    assert_eq!(attempts[0]["code"], "FailedOperation.CallOutFailed");
    assert_eq!(attempts[1]["outcome"], "placed");
    assert!(attempts[1]["session_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.get("008613800000011"), Some(&1));
    let body = &stats.last_body_by_callee["008613800000011"];
    assert_eq!(body["Variables"][0]["Key"], "name", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readyz_report_what_they_claim() {
    let faults = r#"
[[rule]]
callee = "008613901000001"
outcomes = ["error:FailedOperation.CalleeIsBlackUser"]
[[rule]]
callee = "008613901000002"
outcomes = ["error:FailedOperation.CallOutFailed", "ok"]
"#;
    let mock = mock_with(20, 0, faults).await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("metered", &csv_of(1, 10)).await;
    srv.wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    let text = srv
        .http
        .get(srv.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    };
    let stats = mock.stats();
    assert_eq!(
        value("ccc_dialer_requests_total{outcome=\"placed\""),
        stats.accepted as f64
    );
    assert_eq!(
        value("ccc_dialer_requests_total{outcome=\"error\",code=\"FailedOperation.CalleeIsBlackUser\"}"),
        1.0
    );
    assert_eq!(
        value(
            "ccc_dialer_requests_total{outcome=\"error\",code=\"FailedOperation.CallOutFailed\"}"
        ),
        1.0
    );
    assert_eq!(
        value("ccc_dialer_request_duration_seconds_count"),
        stats.requests as f64
    );
    assert_eq!(
        value("ccc_dialer_contacts{campaign=\"metered\",status=\"placed\"}"),
        9.0
    );
    assert_eq!(
        value("ccc_dialer_contacts{campaign=\"metered\",status=\"failed\"}"),
        1.0
    );
    assert_eq!(value("ccc_dialer_in_doubt_contacts"), 0.0);
    assert_eq!(value("ccc_dialer_in_flight"), 0.0);

    let r = srv
        .http
        .get(srv.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["checks"]["store"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["clock"]["ok"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_host_clock_is_far_from_the_services() {
    // The service's clock (the stand-in's) runs 10 minutes ahead of ours: it refuses every
    // signature as expired, and readiness must say why.
    let opts = ccc_dialer::mock::MockOptions {
        clock: std::sync::Arc::new(|| ccc_dialer::times::now_secs() + 600),
        ..mock_options()
    };
    let mock = ccc_dialer::mock::MockServer::spawn(opts)
        .await
        .expect("mock");
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("skewed", &csv_of(2, 3)).await;
    let c = srv
        .wait_campaign(id, "the expired signature to pause it", |c| {
            state(c) == "paused"
        })
        .await;
    assert!(
        c["reason"]
            .as_str()
            .is_some_and(|r| r.contains("AuthFailure.SignatureExpire")),
        "{c}"
    );
    let r = srv
        .http
        .get(srv.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["checks"]["clock"]["ok"], false, "{body}");
    assert!(
        body["checks"]["clock"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("600 s")),
        "{body}"
    );
    assert_eq!(mock.stats().accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keyless_calls_to_one_number_at_once_make_one_call() {
    let mock = mock_with(20, 300, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let call = || {
        srv.http
            .post(srv.url("/v1/calls"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"callee": "+8613800000077"}))
            .send()
    };
    let (a, b) = tokio::join!(call(), call());
    let mut codes = vec![
        a.expect("first").status().as_u16(),
        b.expect("second").status().as_u16(),
    ];
    codes.sort();
    assert_eq!(codes, vec![202, 409]);
    let (_, list) = srv.get("/v1/campaigns").await;
    assert_eq!(
        list["campaigns"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_dialling_even_while_a_client_holds_a_request_open() {
    use tokio::io::AsyncWriteExt;
    let mock = mock_with(20, 100, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("held", &csv_of(10, 200)).await;
    wait_for_requests(&mock, "dialling", 5).await;
    // A client that sent half a request and went quiet.
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /v1/campaigns HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    srv.signal("-TERM");
    let (code, log) = tokio::time::timeout(Duration::from_secs(60), srv.wait_exit())
        .await
        .expect("serve must exit while a client holds a request open");
    assert_eq!(code, 0, "{log}");
    drop(stalled);
    // Stopped sending while the request was still open: most contacts still to dial.
    let store = ccc_dialer::store::Store::open(&s.state).expect("store");
    let counts = store.counts(id).await.expect("counts");
    let pending = counts
        .get(&ccc_dialer::contact::Status::Pending)
        .copied()
        .unwrap_or(0);
    assert!(pending > 0, "{counts:?}");
    assert_eq!(
        counts
            .get(&ccc_dialer::contact::Status::Placed)
            .copied()
            .unwrap_or(0),
        mock.stats().accepted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_of_higher_priority_gets_the_larger_share_and_the_other_still_progresses() {
    let mock = mock_with(20, 20, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let (status, body) = srv
        .post("/v1/campaigns?name=urgent&priority=3", csv_of(24, 200))
        .await;
    assert_eq!(status, 201, "{body}");
    let urgent = body["campaign"]["id"].as_i64().expect("id");
    let routine = srv.create("routine", &csv_of(25, 200)).await;
    srv.wait_campaign(urgent, "the urgent campaign", |c| state(c) == "completed")
        .await;
    // Four requests in five went to the urgent campaign: about 50 routine calls meanwhile.
    let r = srv.campaign(routine).await;
    let placed = count(&r, "placed") + count(&r, "in_flight");
    assert!(placed >= 20, "the routine campaign was starved: {r}");
    assert!(placed <= 100, "priority gave no larger share: {r}");
    assert!(mock.stats().duplicate_callees.is_empty());
}
