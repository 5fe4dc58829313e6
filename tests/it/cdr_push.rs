//! `serve`'s CDR push receiver, end to end: the stand-in dials through a real `serve` (in
//! process), then pushes its call records to `POST /v1/ccc/cdr` with Basic auth, as the service
//! does; the outcomes land in the store and the results. A repeated push counts once; a push
//! without credentials, another action, an unknown session and a malformed body get the
//! documented answers. The stand-in's clock is driven by hand (within the signature's 300 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccc_dialer::mock::{ManualClock, MockOptions, MockServer, PushOptions};
use ccc_dialer::secret::Secret;
use serde_json::{json, Value};

use crate::served::{PUSH_PASSWORD, PUSH_USER, TOKEN};
use crate::support::{outcome_options, Scratch, SECRET_ID, SECRET_KEY};

struct Served {
    base: String,
    svc: Arc<ccc_dialer::server::Service>,
    mock: MockServer,
    clock: ManualClock,
    stop: tokio::sync::watch::Sender<ccc_dialer::dispatch::Stop>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _scratch: Scratch,
}

/// `serve` in process, dialling through a stand-in that pushes to it.
async fn served(faults: &str) -> Served {
    served_with(faults, "").await
}

/// [`served`] with more config (`extra`: e.g. `[outcomes]`).
async fn served_with(faults: &str, extra: &str) -> Served {
    use ccc_dialer::ccc::{system_clock, Client, ClientSettings};
    use ccc_dialer::config::Config;
    use ccc_dialer::dispatch::{Engine, Stop};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = ManualClock::at(ccc_dialer::times::now_secs());
    let push = PushOptions {
        basic_auth: Some((PUSH_USER.into(), Secret::new(PUSH_PASSWORD))),
        retry_interval: Duration::from_millis(50),
        ..PushOptions::to(reqwest::Url::parse(&format!("{base}/v1/ccc/cdr")).unwrap())
    };
    let mock = MockServer::spawn(MockOptions {
        clock: clock.clock(),
        push: Some(push),
        ..outcome_options(faults)
    })
    .await
    .unwrap();
    let s = Scratch::new(&mock.endpoint(), "", extra);
    let cfg = Arc::new(Config::load(&s.config).unwrap());
    let client = Client::new(
        &ClientSettings {
            endpoint: mock.endpoint(),
            region: cfg.tencentcloud.region.clone(),
            language: cfg.tencentcloud.language.clone(),
            connect_timeout: cfg.tencentcloud.connect_timeout,
            request_timeout: cfg.tencentcloud.request_timeout,
            idle_timeout: cfg.tencentcloud.idle_timeout,
        },
        ccc_dialer::sign::Credentials {
            secret_id: SECRET_ID.into(),
            secret_key: Secret::new(SECRET_KEY),
            session_token: None,
        },
        system_clock(),
    )
    .unwrap();
    let store = ccc_dialer::store::Store::open(&s.state).unwrap();
    let limiter = Arc::new(ccc_dialer::limiter::Limiter::new(
        cfg.rate.requests_per_second,
        &[],
    ));
    let engine = Engine::from_config(&cfg, store, client, limiter);
    let svc = ccc_dialer::server::build(
        cfg,
        engine,
        Some(Secret::new(TOKEN)),
        s.dir.path().join("uploads"),
        1 << 20,
    );
    svc.enable_cdr_push(PUSH_USER.into(), Secret::new(PUSH_PASSWORD))
        .expect("push receiver on");
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let task = tokio::spawn(svc.clone().run_until_stopped(listener, None, stop_rx));
    Served {
        base,
        svc,
        mock,
        clock,
        stop,
        task,
        _scratch: s,
    }
}

/// Wait (bounded) until `done` holds: dialling and pushing run in their own tasks, and what
/// they did is only observable in the stand-in's figures.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The results CSV, as a map callee → column → value.
async fn results(
    base: &str,
    id: i64,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let text = reqwest::Client::new()
        .get(format!("{base}/v1/campaigns/{id}/results"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|row| {
            let row = row.unwrap();
            let cols: std::collections::BTreeMap<String, String> = headers
                .iter()
                .zip(row.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (cols["callee"].clone(), cols)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_records_become_outcomes_once_each() {
    let faults = r#"
[[rule]]
callee = "008613800000001"
calls = ["answered:20s"]
[[rule]]
callee = "008613800000002"
calls = ["busy"]
[[rule]]
callee = "008613800000003"
calls = ["answered:5s"]
push = ["twice"]
[[rule]]
callee = "008613800000004"
push = ["never"]
"#;
    let s = served(faults).await;
    let csv = "callee\n+8613800000001\n+8613800000002\n+8613800000003\n+8613800000004\n";
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/campaigns?name=pushed", s.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["campaign"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"));
    until("four calls placed", || s.mock.stats().accepted == 4).await;
    // Not waiting for the replies to be written: a push may come before its session is known
    // to the store (the busy call's record is pushed as soon as it is created). It is kept and
    // claimed by the attempt when the reply is written, never lost.
    // Every call has ended 30 s later on the stand-in's clock: its pushes are due.
    s.clock.advance(30);
    // 1, 2 once each, 3 twice (same UUID), 4 never.
    until("four deliveries acknowledged", || {
        s.mock.stats().pushes.delivered == 4
    })
    .await;
    let receiver = s.svc.cdr_push.get().unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    let kept = || receiver.figures.recorded.load(Relaxed) + receiver.figures.held.load(Relaxed);
    until("three pushes kept", || kept() == 3).await;
    // The repeat is acknowledged from the UUID memory, or (when both copies arrive at once, as
    // the clock's jump makes them here) found already in the store: either way not kept twice.
    assert_eq!(
        receiver.figures.duplicates.load(Relaxed) + receiver.figures.ignored.load(Relaxed),
        1
    );
    assert_eq!(s.mock.stats().pushes.failed_attempts, 0);
    // Every kept push becomes its contact's outcome once the replies are written (a push that
    // came first is claimed then).
    let deadline = Instant::now() + Duration::from_secs(30);
    while results(&s.base, id)
        .await
        .values()
        .filter(|r| r["status"] == "placed" && !r["outcome"].is_empty())
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for three outcomes: {:?}",
            results(&s.base, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let r = results(&s.base, id).await;
    let col = |callee: &str, c: &str| r[callee][c].clone();
    assert_eq!(col("008613800000001", "outcome"), "answered");
    assert_eq!(
        col("008613800000001", "end_status"),
        "1",
        "read back from \"ok\""
    );
    assert_eq!(col("008613800000001", "duration_s"), "20");
    assert_eq!(col("008613800000001", "hangup_side"), "user");
    assert_eq!(col("008613800000002", "outcome"), "busy");
    assert_eq!(col("008613800000002", "end_status"), "206");
    assert_eq!(col("008613800000002", "end_status_string"), "busy");
    assert_eq!(col("008613800000003", "outcome"), "answered");
    assert_eq!(col("008613800000003", "duration_s"), "5");
    // Never pushed, and no poller in this service: no outcome yet.
    assert_eq!(col("008613800000004", "outcome"), "");

    // The same record pushed again under a new UUID (as a poll would find it) changes nothing.
    let call = s
        .mock
        .calls()
        .into_iter()
        .find(|c| c.callee == "008613800000002")
        .unwrap();
    let body = json!({"SdkAppId": 1400000000, "SessionId": call.session_id, "Direction": 1, "EndStatusString": "notAnswer", "AcceptTimestamp": 0});
    let a = push(
        &s.base,
        Some((PUSH_USER, PUSH_PASSWORD)),
        "action=cdr&version=1",
        &body,
    )
    .await;
    assert_eq!(a, (200, json!({"ErrCode": 0, "ErrMsg": ""})));
    assert_eq!(
        results(&s.base, id).await["008613800000002"]["outcome"],
        "busy"
    );
    assert_eq!(kept(), 3);

    s.stop.send_replace(ccc_dialer::dispatch::Stop::Drain);
    // A guard against a hang, not a timing assertion.
    let served = tokio::time::timeout(Duration::from_secs(60), s.task)
        .await
        .unwrap()
        .unwrap();
    served.unwrap();
}

/// GET a JSON view of `serve`.
async fn get(base: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `serve`'s /metrics text.
async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A push that comes while its request's reply is still on the way is held, and when the reply
/// is written it arrives as any record does, without waiting for a poll: the contact's outcome,
/// the call's line freed (the campaign's agent shows no call going on) and `/metrics` counting
/// its class. Then the poll reads the call record (the authority) with another class: the
/// outcome is corrected and `/metrics` moves the call from the push's class to the poll's.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_before_the_reply_arrives_with_the_reply_and_a_poll_correcting_it_moves_the_metrics()
{
    // The reply comes 3 s after the call is created; the call talks 60 s on the stand-in's
    // clock, which stands still until the test moves it: no poll can see its record before.
    let faults = r#"
[[rule]]
callee = "008613800000001"
outcomes = ["hang:3s"]
calls = ["answered:60s"]
push = ["never"]
"#;
    let outcomes = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"10m\"\nreconcile_after = \"10m\"\n";
    let s = served_with(faults, outcomes).await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/campaigns?name=early", s.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body("callee\n+8613800000001\n")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["campaign"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"));
    until("the call created", || s.mock.stats().accepted == 1).await;
    let call = s.mock.calls().into_iter().next().unwrap();
    // Pushed while the reply is on its way, saying the call was not answered and has ended.
    let now = ccc_dialer::times::now_secs();
    let body = json!({"SdkAppId": 1400000000, "SessionId": call.session_id, "Direction": 1,
        "Callee": "008613800000001", "EndStatusString": "notAnswer", "AcceptTimestamp": 0,
        "StartTimestamp": now, "RingTimestamp": now, "EndedTimestamp": now});
    let a = push(
        &s.base,
        Some((PUSH_USER, PUSH_PASSWORD)),
        "action=cdr&version=1",
        &body,
    )
    .await;
    assert_eq!(a, (200, json!({"ErrCode": 0, "ErrMsg": ""})));
    let receiver = s.svc.cdr_push.get().unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (
            receiver.figures.held.load(Relaxed),
            receiver.figures.recorded.load(Relaxed)
        ),
        (1, 0),
        "no attempt has the session before its reply"
    );

    // The reply is written: the held push is the contact's outcome at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = results(&s.base, id).await;
        if r["008613800000001"]["outcome"] == "not_answered" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held push never arrived: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = get(&s.base, &format!("/v1/campaigns/{id}")).await;
    assert_eq!(
        view["agent_lines"]["active"].as_f64(),
        Some(0.0),
        "the pushed end freed the call's line: {view}"
    );
    let text = metrics(&s.base).await;
    assert!(
        text.contains("ccc_dialer_call_outcomes{outcome=\"not_answered\"} 1"),
        "{text}"
    );
    assert!(!text.contains("outcome=\"answered\""), "{text}");

    // The call's record becomes visible to DescribeTelCdr: the poll corrects the push.
    s.clock.advance(61);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = results(&s.base, id).await;
        if r["008613800000001"]["outcome"] == "answered" {
            assert_eq!(r["008613800000001"]["duration_s"], "60");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poll never corrected the push: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = metrics(&s.base).await;
    assert!(
        text.contains("ccc_dialer_call_outcomes{outcome=\"answered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ccc_dialer_call_outcomes{outcome=\"not_answered\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("ccc_dialer_talk_time_seconds_count 1"),
        "{text}"
    );

    s.stop.send_replace(ccc_dialer::dispatch::Stop::Drain);
    // A guard against a hang, not a timing assertion.
    let served = tokio::time::timeout(Duration::from_secs(60), s.task)
        .await
        .unwrap()
        .unwrap();
    served.unwrap();
}

/// POST a push; returns (status, JSON body).
async fn push(base: &str, auth: Option<(&str, &str)>, query: &str, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/ccc/cdr?{query}"))
        .header("content-type", "application/json;charset=utf8")
        .header("X-TCCC-PUSH-UUID", uuid::Uuid::new_v4().to_string())
        .body(body.to_string());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_refuses_bad_credentials_and_bodies_and_acknowledges_what_it_does_not_keep() {
    let s = served("").await;
    let body = json!({"SdkAppId": 1400000000, "SessionId": "never-placed", "Direction": 1, "EndStatusString": "ok"});
    let q = "action=cdr&version=1";
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    // No credentials, a wrong password, the API's bearer token: 401 with a Basic challenge.
    for auth in [None, Some((PUSH_USER, "wrong-password"))] {
        let (status, v) = push(&s.base, auth, q, &body).await;
        assert_eq!((status, code(&v)), (401, "unauthorized".into()), "{v}");
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/ccc/cdr?{q}", s.base))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    let ok = Some((PUSH_USER, PUSH_PASSWORD));
    // Not a CDR push body.
    let (status, v) = push(&s.base, ok, q, &json!({"EndStatusString": "ok"})).await;
    assert_eq!((status, code(&v)), (400, "bad_request".into()), "{v}");
    // A session this store does not know (yet), another action, another application:
    // acknowledged (the service would otherwise push them again and again); the first is held
    // for an attempt that may still get that session, the others are not kept.
    for (query, b) in [
        (q, body.clone()),
        ("action=record&version=1", body.clone()),
        (
            q,
            json!({"SdkAppId": 1400000999, "SessionId": "x", "Direction": 1}),
        ),
    ] {
        let (status, v) = push(&s.base, ok, query, &b).await;
        assert_eq!(
            (status, &v["ErrCode"]),
            (200, &json!(0)),
            "{query} {b}: {v}"
        );
    }
    let f = &s.svc.cdr_push.get().unwrap().figures;
    use std::sync::atomic::Ordering::Relaxed;
    // The unknown session's record is held (it may be a call whose reply is not written yet).
    assert_eq!(
        (
            f.unauthorized.load(Relaxed),
            f.recorded.load(Relaxed),
            f.held.load(Relaxed),
            f.ignored.load(Relaxed)
        ),
        (3, 0, 1, 2)
    );
    // Nothing reached the stand-in: the receiver never dials.
    assert_eq!(s.mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_turns_the_receiver_on_with_both_push_credentials_only() {
    use crate::served::{serve_command, Served as Child};
    use crate::support::{code_of, mock_with, stderr_of};
    let mock = mock_with(20, 0, "").await;
    let scratch = Scratch::new(&mock.endpoint(), "", "");
    let body = json!({"SdkAppId": 1400000000, "SessionId": "never-placed", "Direction": 1});
    let q = "action=cdr&version=1";

    // Half the credentials: refused before anything listens, naming the missing one.
    let mut cmd = serve_command(&scratch);
    cmd.env("CCC_DIALER_PUSH_USER", PUSH_USER)
        .env_remove("CCC_DIALER_PUSH_PASSWORD")
        .env_remove("CCC_DIALER_PUSH_PASSWORD_FILE");
    let out = crate::support::output_within(cmd, "serve to refuse its settings").await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("CCC_DIALER_PUSH_PASSWORD"),
        "{}",
        stderr_of(&out)
    );

    // Neither: the receiver is off.
    let mut cmd = serve_command(&scratch);
    cmd.env_remove("CCC_DIALER_PUSH_USER")
        .env_remove("CCC_DIALER_PUSH_PASSWORD");
    let mut off = Child::start_with(&scratch, cmd).await;
    let (status, v) = push(&off.base, Some((PUSH_USER, PUSH_PASSWORD)), q, &body).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (404, &json!("push_receiver_off")),
        "{v}"
    );
    // Without any credentials: unauthorized first, as the document says (schemathesis ST203).
    let (status, v) = push(&off.base, None, q, &body).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (401, &json!("unauthorized")),
        "{v}"
    );
    let _ = off.child.kill();
    let _ = off.child.wait();

    // Both (the password from a file): on.
    let password = scratch.dir.path().join("push-password");
    std::fs::write(&password, format!("{PUSH_PASSWORD}\n")).unwrap();
    let mut cmd = serve_command(&scratch);
    cmd.env("CCC_DIALER_PUSH_USER", PUSH_USER)
        .env_remove("CCC_DIALER_PUSH_PASSWORD")
        .env("CCC_DIALER_PUSH_PASSWORD_FILE", &password);
    let mut on = Child::start_with(&scratch, cmd).await;
    let (status, v) = push(&on.base, Some((PUSH_USER, PUSH_PASSWORD)), q, &body).await;
    assert_eq!((status, &v["ErrCode"]), (200, &json!(0)), "{v}");
    let (status, _) = push(&on.base, Some((PUSH_USER, "wrong")), q, &body).await;
    assert_eq!(status, 401);
    let _ = on.child.kill();
    let _ = on.child.wait();
}

/// Send a request's head announcing `announced` body bytes, then `sent` bytes of it (not all of
/// it), and read the answer's status and JSON body. A server that read the whole body before
/// answering would wait for the rest forever (the guard turns that into a failure).
async fn raw_post(
    base: &str,
    auth: Option<(&str, &str)>,
    announced: usize,
    sent: usize,
) -> (u16, Value) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST /v1/ccc/cdr?action=cdr&version=1 HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {announced}\r\nConnection: close\r\n"
    );
    if let Some((u, p)) = auth {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        head.push_str(&format!("Authorization: Basic {b}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    // A JSON string of `sent` bytes' worth: the body starts as a push would.
    if sent > 0 {
        let mut body = b"{\"SessionId\":\"".to_vec();
        body.resize(sent, b'x');
        conn.write_all(&body).await.unwrap();
    }
    // A guard against a hang, not a timing assertion.
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got).await;
        got
    })
    .await
    .expect("answered without the rest of the body");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_push_body_is_never_read_without_credentials_and_is_refused_over_64_kib() {
    let s = served("").await;
    let mib = 1 << 20;
    // 1 MiB announced, none of it sent: without credentials (or with wrong ones) the answer
    // comes from the headers alone.
    for auth in [None, Some((PUSH_USER, "wrong-password"))] {
        let (status, v) = raw_post(&s.base, auth, mib, 0).await;
        assert_eq!(
            (status, &v["error"]["code"]),
            (401, &json!("unauthorized")),
            "{v}"
        );
    }
    // With them, a 1 MiB body is refused once 64 KiB of it have been read (the tests' serve
    // takes 1 MiB elsewhere: this route's own limit applies), without waiting for the rest.
    let (status, v) = raw_post(
        &s.base,
        Some((PUSH_USER, PUSH_PASSWORD)),
        mib,
        64 * 1024 + 1,
    )
    .await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (413, &json!("too_large")),
        "{v}"
    );
    let f = &s.svc.cdr_push.get().unwrap().figures;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (f.unauthorized.load(Relaxed), f.received.load(Relaxed)),
        (2, 0)
    );
    // A push of ordinary size is still received and acknowledged.
    let body = json!({"SdkAppId": 1400000000, "SessionId": "never-placed", "Direction": 1, "EndStatusString": "ok"});
    let (status, v) = push(
        &s.base,
        Some((PUSH_USER, PUSH_PASSWORD)),
        "action=cdr&version=1",
        &body,
    )
    .await;
    assert_eq!((status, &v["ErrCode"]), (200, &json!(0)), "{v}");
    assert_eq!(f.received.load(Relaxed), 1);
    s.stop.send_replace(ccc_dialer::dispatch::Stop::Now);
    let _ = s.task.await;
}
