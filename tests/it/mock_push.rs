//! The stand-in's data push: each ended call's record is POSTed to the receiver with Basic
//! auth and an `X-TCCC-PUSH-UUID`; repeated pushes keep their UUID; a push not acknowledged
//! with `ErrCode` 0 is retried three times; late and never-sent pushes follow the fault
//! script. The receiver here is a small axum server; the stand-in's clock is driven by hand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use ccc_dialer::mock::{ManualClock, MockOptions, MockServer, PushOptions};
use ccc_dialer::secret::Secret;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::support::{api_call, outcome_options};

const T0: i64 = 1_790_000_000;

#[derive(Debug, Clone)]
struct Received {
    uuid: String,
    authorization: String,
    content_type: String,
    query: String,
    body: Value,
}

#[derive(Clone)]
struct Receiver {
    got: mpsc::UnboundedSender<Received>,
    /// Answers to give, in order (status, body); then `{"ErrCode":0,"ErrMsg":""}`.
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

async fn receive(
    State(r): State<Receiver>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, String) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let _ = r.got.send(Received {
        uuid: h("x-tccc-push-uuid"),
        authorization: h("authorization"),
        content_type: h("content-type"),
        query: query.unwrap_or_default(),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    let answer = r.answers.lock().unwrap().pop_front();
    let (status, text) = answer.unwrap_or((200, r#"{"ErrCode":0,"ErrMsg":""}"#.into()));
    (axum::http::StatusCode::from_u16(status).unwrap(), text)
}

/// A receiver on a free port: its URL, what it gets, and the answers it will give first.
async fn receiver(
    answers: &[(u16, &str)],
) -> (
    reqwest::Url,
    mpsc::UnboundedReceiver<Received>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        got: tx,
        answers: Arc::new(Mutex::new(
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        )),
    };
    let app = Router::new()
        .route("/v1/ccc/cdr", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/ccc/cdr", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (reqwest::Url::parse(&url).unwrap(), rx, task)
}

/// The next push the receiver got; waits on the channel (bounded: a missing push fails).
async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a push arrives")
        .expect("receiver open")
}

async fn spawn(faults: &str, clock: &ManualClock, push: PushOptions) -> MockServer {
    MockServer::spawn(MockOptions {
        clock: clock.clock(),
        push: Some(push),
        ..outcome_options(faults)
    })
    .await
    .unwrap()
}

fn push_to(url: reqwest::Url) -> PushOptions {
    PushOptions {
        basic_auth: Some((
            "pushuser".into(),
            Secret::new("push-password-never-printed"),
        )),
        retry_interval: Duration::from_millis(10),
        ..PushOptions::to(url)
    }
}

async fn create(mock: &MockServer, clock: &ManualClock, callee: &str) -> String {
    let body = json!({"SdkAppId": 1400000000, "AIAgentId": 15, "Callee": callee});
    let r = api_call(mock, "CreateAIAgentCall", &body.to_string(), clock.now()).await;
    r["SessionId"].as_str().unwrap().to_string()
}

/// Wait until the stand-in's push figures satisfy `done` (the retries' outcome is only visible
/// there: the receiver cannot see a retry that never comes). Bounded.
async fn wait_pushes(mock: &MockServer, done: impl Fn(&ccc_dialer::mock::PushStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&mock.stats().pushes) {
        assert!(
            Instant::now() < deadline,
            "push figures: {:?}",
            mock.stats().pushes
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_push_carries_basic_auth_its_uuid_and_the_documented_fields() {
    let (url, mut rx, _r) = receiver(&[]).await;
    let clock = ManualClock::at(T0);
    let faults = "[[rule]]\ncallee = \"008613800138000\"\ncalls = [\"answered:10s\"]\n";
    let mock = spawn(faults, &clock, push_to(url)).await;
    let session = create(&mock, &clock, "008613800138000").await;
    assert_eq!(mock.stats().pushes.scheduled, 1);
    // Due when the call ends, at T0 + 10 on the stand-in's clock.
    clock.set(T0 + 10);
    let p = next(&mut rx).await;
    assert_eq!(p.query, "action=cdr&version=1");
    assert_eq!(p.content_type, "application/json;charset=utf8");
    let expected = reqwest::Client::new()
        .get("http://x")
        .basic_auth("pushuser", Some("push-password-never-printed"))
        .build()
        .unwrap();
    assert_eq!(p.authorization, expected.headers()["authorization"]);
    assert_eq!(p.uuid.len(), 36, "{p:?}");
    let b = &p.body;
    assert_eq!(b["SessionId"], session.as_str());
    assert_eq!(b["SdkAppId"], 1400000000);
    assert_eq!(b["Callee"], "008613800138000");
    assert_eq!(b["Direction"], 1);
    assert_eq!(b["EndStatusString"], "ok");
    assert_eq!(
        (&b["AcceptTimestamp"], &b["EndedTimestamp"], &b["Duration"]),
        (&json!(T0), &json!(T0 + 10), &json!(10))
    );
    // Only the documented fields: EndStatus is not among them.
    assert!(b.get("EndStatus").is_none(), "{b}");
    wait_pushes(&mock, |s| s.delivered == 1).await;
    assert_eq!(mock.stats().pushes.attempts, 1);
}

#[tokio::test]
async fn a_push_not_acknowledged_is_retried_three_times_with_the_same_uuid() {
    // First call: never acknowledged (an ErrCode, a 500, not JSON, an ErrCode). Second call:
    // acknowledged on its second attempt.
    let (url, mut rx, _r) = receiver(&[
        (200, r#"{"ErrCode":1,"ErrMsg":"busy"}"#),
        (500, r#"{"ErrCode":0}"#),
        (200, "ok"),
        (200, r#"{"ErrCode":2,"ErrMsg":"again"}"#),
        (502, "bad gateway"),
    ])
    .await;
    let clock = ManualClock::at(T0);
    let mock = spawn("", &clock, push_to(url)).await;
    let first = create(&mock, &clock, "008613800000001").await;
    let attempts: Vec<Received> = vec![
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ];
    assert!(attempts
        .iter()
        .all(|a| a.body["SessionId"] == first.as_str()));
    assert!(attempts.iter().all(|a| a.uuid == attempts[0].uuid));
    wait_pushes(&mock, |s| s.gave_up == 1).await;
    let second = create(&mock, &clock, "008613800000002").await;
    let a = next(&mut rx).await;
    let b = next(&mut rx).await;
    assert_eq!(
        (&a.body["SessionId"], &b.body["SessionId"]),
        (&json!(second), &json!(second))
    );
    assert_eq!(a.uuid, b.uuid);
    assert_ne!(a.uuid, attempts[0].uuid, "another push, another UUID");
    wait_pushes(&mock, |s| s.delivered == 1).await;
    let s = mock.stats().pushes;
    assert_eq!((s.attempts, s.failed_attempts, s.gave_up), (6, 5, 1));
}

#[tokio::test]
async fn repeated_late_and_unsent_pushes_follow_the_script() {
    let (url, mut rx, _r) = receiver(&[]).await;
    let clock = ManualClock::at(T0);
    let faults = r#"
[[rule]]
callee = "008613800000001"
push = ["twice"]
[[rule]]
callee = "008613800000002"
push = ["late:20s"]
[[rule]]
callee = "008613800000003"
push = ["never"]
"#;
    let mock = spawn(faults, &clock, push_to(url)).await;
    let twice = create(&mock, &clock, "008613800000001").await;
    let late = create(&mock, &clock, "008613800000002").await;
    create(&mock, &clock, "008613800000003").await;
    let plain = create(&mock, &clock, "008613800000004").await;
    // Two deliveries of the first, one of the late one and one of the plain one; none of the
    // third.
    assert_eq!(mock.stats().pushes.scheduled, 4);
    clock.set(T0 + 1);
    let mut got = vec![
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ];
    got.sort_by_key(|p| p.body["SessionId"].as_str().unwrap().to_string());
    let of = |s: &str| got.iter().filter(|p| p.body["SessionId"] == s).count();
    assert_eq!((of(&twice), of(&plain), of(&late)), (2, 1, 0), "{got:?}");
    let dups: Vec<&Received> = got
        .iter()
        .filter(|p| p.body["SessionId"] == twice.as_str())
        .collect();
    assert_eq!(dups[0].uuid, dups[1].uuid, "a repeated push keeps its UUID");
    // The late one comes after the plain one, created after it: out of order.
    clock.set(T0 + 20);
    let p = next(&mut rx).await;
    assert_eq!(p.body["SessionId"], late.as_str());
    wait_pushes(&mock, |s| s.delivered == 4).await;
}

/// A child killed when the test ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_command_pushes_with_basic_auth_from_the_environment() {
    use crate::support::{bin, code_of, stderr_of, Scratch, SECRET_ID, SECRET_KEY};
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let (url, mut rx, _r) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("push-password");
    std::fs::write(&password_file, "push-password-never-printed\n").unwrap();
    let mock = |user: Option<&str>| {
        let mut c = Command::new(bin());
        c.args([
            "mock",
            "--listen",
            "127.0.0.1:0",
            "--cdr-delay",
            "0s",
            "--talk",
            "0s",
        ])
        .arg("--push-url")
        .arg(url.as_str())
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env_remove("CCC_DIALER_PUSH_USER")
        .env_remove("CCC_DIALER_PUSH_PASSWORD")
        .env("CCC_DIALER_PUSH_PASSWORD_FILE", &password_file);
        if let Some(u) = user {
            c.env("CCC_DIALER_PUSH_USER", u);
        }
        c
    };
    // A password without a user is refused before anything listens.
    let out = mock(None).output().unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("CCC_DIALER_PUSH_USER"),
        "{}",
        stderr_of(&out)
    );
    assert!(!stderr_of(&out).contains("push-password-never-printed"));

    let mut child = Kill(
        mock(Some("pushuser"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_string();
    let s = Scratch::new(&endpoint, "", "");
    let out = Command::new(bin())
        .args(["call", "--config"])
        .arg(&s.config)
        .args(["--callee", "+86 138 0013 8000"])
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let session = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let p = next(&mut rx).await;
    assert_eq!(p.body["SessionId"], session.as_str());
    let expected = reqwest::Client::new()
        .get("http://x")
        .basic_auth("pushuser", Some("push-password-never-printed"))
        .build()
        .unwrap();
    assert_eq!(p.authorization, expected.headers()["authorization"]);
}
