//! The stand-in judges every other test, so it is tested first: it verifies signatures like the
//! service, accepts what the official SDK signs, enforces its window, and plays fault scripts.

use std::collections::BTreeMap;
use std::sync::Arc;

use ccc_dialer::mock::{Faults, MockOptions, MockServer};
use ccc_dialer::secret::Secret;
use ccc_dialer::sign::{sign, Credentials, SignRequest};
use serde_json::Value;

use crate::support::{data_path, mock_with, SECRET_ID, SECRET_KEY};

const BODY: &str = r#"{"SdkAppId":1400000000,"AIAgentId":15,"Callee":"008613800138000"}"#;

fn creds(key: &str) -> Credentials {
    Credentials {
        secret_id: SECRET_ID.into(),
        secret_key: Secret::new(key),
        session_token: None,
    }
}

fn now() -> i64 {
    ccc_dialer::times::now_secs()
}

/// A POST to the stand-in carrying headers signed with `c` over `signed_body` at `timestamp`
/// (the body actually sent is the caller's choice).
fn signed_post(
    mock: &MockServer,
    c: &Credentials,
    signed_body: &str,
    timestamp: i64,
) -> reqwest::RequestBuilder {
    signed_post_as(
        mock,
        c,
        signed_body,
        timestamp,
        "CreateAIAgentCall",
        "2020-02-10",
    )
}

/// As [`signed_post`], for another action or API version.
fn signed_post_as(
    mock: &MockServer,
    c: &Credentials,
    signed_body: &str,
    timestamp: i64,
    action: &str,
    version: &str,
) -> reqwest::RequestBuilder {
    let host = mock.addr.to_string();
    let signed = sign(
        c,
        &SignRequest {
            host: &host,
            service: "ccc",
            action,
            version,
            region: None,
            language: None,
            payload: signed_body.as_bytes(),
            timestamp,
        },
    )
    .unwrap();
    let mut req = reqwest::Client::new().post(mock.endpoint());
    for (k, v) in &signed.headers {
        req = req.header(*k, v);
    }
    req
}

/// POST `body` signed with `c` at `timestamp`; returns (status, parsed body or raw text).
async fn post(mock: &MockServer, c: &Credentials, body: &str, timestamp: i64) -> (u16, Value) {
    send(signed_post(mock, c, body, timestamp).body(body.to_string())).await
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(v: &Value) -> &str {
    v["Response"]["Error"]["Code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_good_signature_creates_the_call_and_returns_a_session_id() {
    let mock = mock_with(20, 0, "").await;
    let (status, v) = post(&mock, &creds(SECRET_KEY), BODY, now()).await;
    assert_eq!(status, 200);
    assert!(
        v["Response"]["SessionId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert!(
        v["Response"]["RequestId"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{v}"
    );
    let stats = mock.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.calls_per_callee["008613800138000"], 1);
}

#[tokio::test]
async fn wrong_key_tampered_body_and_skewed_clock_are_refused_with_the_service_codes() {
    let mock = mock_with(20, 0, "").await;
    let (_, v) = post(&mock, &creds("not-the-key"), BODY, now()).await;
    assert_eq!(code(&v), "AuthFailure.SignatureFailure");
    let (_, v) = post(&mock, &creds(SECRET_KEY), BODY, now() - 301).await;
    assert_eq!(code(&v), "AuthFailure.SignatureExpire");
    let (_, v) = post(&mock, &creds(SECRET_KEY), BODY, now() + 290).await;
    assert!(
        v["Response"]["SessionId"].is_string(),
        "within 300 s is fine: {v}"
    );
    let unknown = Credentials {
        secret_id: "AKIDunknown".into(),
        ..creds(SECRET_KEY)
    };
    let (_, v) = post(&mock, &unknown, BODY, now()).await;
    assert_eq!(code(&v), "AuthFailure.SecretIdNotFound");

    // Tampered: signed over one body, another sent.
    let req = signed_post(&mock, &creds(SECRET_KEY), BODY, now());
    let (_, v) = send(req.body(BODY.replace("0086138", "0086139"))).await;
    assert_eq!(code(&v), "AuthFailure.SignatureFailure");

    let stats = mock.stats();
    assert_eq!(stats.accepted, 1, "only the good request created a call");
    assert_eq!(stats.signature_failures, 2);
    assert_eq!(stats.auth_failures, 4);
}

#[tokio::test]
async fn missing_authorization_or_an_unsigned_host_is_refused() {
    let mock = mock_with(20, 0, "").await;
    let (_, v) = send(
        reqwest::Client::new()
            .post(mock.endpoint())
            .header("Content-Type", "application/json")
            .header("X-TC-Action", "CreateAIAgentCall")
            .header("X-TC-Version", "2020-02-10")
            .header("X-TC-Timestamp", now().to_string())
            .body(BODY),
    )
    .await;
    assert_eq!(code(&v), "AuthFailure.InvalidAuthorization");

    // A correct HMAC over a header set without host is still refused.
    let ts = now();
    let date = ccc_dialer::sign::utc_date(ts).unwrap();
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-tc-action".to_string(), "createaiagentcall".to_string()),
    ];
    let canonical = ccc_dialer::sign::canonical_request(&headers, BODY.as_bytes());
    let scope = format!("{date}/ccc/tc3_request");
    let key = ccc_dialer::sign::derive_signing_key(SECRET_KEY, &date, "ccc");
    let sig = ccc_dialer::sign::signature(
        &key,
        &ccc_dialer::sign::string_to_sign(ts, &scope, &canonical),
    );
    let (_, v) = send(
        reqwest::Client::new()
            .post(mock.endpoint())
            .header("Content-Type", "application/json")
            .header("X-TC-Action", "CreateAIAgentCall")
            .header("X-TC-Version", "2020-02-10")
            .header("X-TC-Timestamp", ts.to_string())
            .header(
                "Authorization",
                format!("TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}, SignedHeaders=content-type;x-tc-action, Signature={sig}"),
            )
            .body(BODY),
    )
    .await;
    assert_eq!(code(&v), "AuthFailure.SignatureFailure");
    assert_eq!(mock.stats().accepted, 0);
}

#[tokio::test]
async fn requests_signed_by_the_official_sdk_are_accepted() {
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secret_id: String,
        secret_key: String,
        timestamp: i64,
        body: String,
        headers: BTreeMap<String, String>,
    }
    let vectors: Vec<Vector> = serde_json::from_str(
        &std::fs::read_to_string(data_path("tc3-create-ai-agent-call.json")).unwrap(),
    )
    .unwrap();
    for v in vectors {
        let ts = v.timestamp;
        let mock = MockServer::spawn(MockOptions {
            credentials: vec![(v.secret_id.clone(), Secret::new(v.secret_key.clone()))],
            clock: Arc::new(move || ts + 42),
            ..Default::default()
        })
        .await
        .unwrap();
        // The SDK signed for its own Host; send exactly its headers (Host included) to the
        // stand-in's address.
        let mut req = reqwest::Client::new().post(mock.endpoint());
        for (k, val) in &v.headers {
            req = req.header(k.as_str(), val.as_str());
        }
        let (status, reply) = send(req.body(v.body.clone())).await;
        assert_eq!(status, 200);
        assert!(
            reply["Response"]["SessionId"].is_string(),
            "{}: {reply}",
            v.name
        );
    }
}

#[tokio::test]
async fn the_window_admits_at_most_the_limit_per_second_and_counts_every_arrival() {
    // The window's arithmetic is proved with synthetic instants in `mock::stats`; this checks the
    // wiring: the excess is answered with the service's `RequestLimitExceeded` envelope, and
    // every arrival is counted. It judges by the stand-in's own arrival log, not by how fast
    // this machine happens to send.
    let mock = mock_with(5, 0, "").await;
    let c = creds(SECRET_KEY);
    let mut replies = Vec::new();
    for i in 0..8 {
        let body = BODY.replace("008613800138000", &format!("00861380013800{i}"));
        replies.push(post(&mock, &c, &body, now()).await);
    }
    let limited: Vec<bool> = replies
        .iter()
        .map(|(status, v)| {
            let refused = code(v) == "RequestLimitExceeded";
            assert_eq!(
                *status, 200,
                "refusals are HTTP 200 with an error body: {v}"
            );
            assert!(
                refused || v["Response"]["SessionId"].is_string(),
                "either created or refused by the window: {v}"
            );
            if refused {
                assert!(v["Response"]["RequestId"].is_string(), "{v}");
            }
            refused
        })
        .collect();
    let stats = mock.stats();
    assert_eq!(stats.requests, 8);
    assert_eq!(stats.accepted + stats.rate_limited, 8);
    assert_eq!(
        limited.iter().filter(|l| **l).count() as u64,
        stats.rate_limited
    );
    // Sent one after another, the first five always fit in a window of five.
    assert!(limited[..5].iter().all(|l| !l), "{limited:?}");
    // Whether the last three were refused depends only on when they arrived: a request is
    // refused exactly when the five admitted before it all arrived less than a second earlier.
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 8);
    let mut admitted: Vec<std::time::Instant> = Vec::new();
    for (i, t) in arrivals.iter().enumerate() {
        let in_window = admitted
            .iter()
            .filter(|a| t.duration_since(**a) < std::time::Duration::from_secs(1))
            .count();
        let refuse = in_window >= 5;
        assert_eq!(limited[i], refuse, "request {i}: {limited:?}");
        if !refuse {
            admitted.push(*t);
        }
    }
}

#[tokio::test]
async fn fault_scripts_play_per_callee_in_order() {
    let mock = mock_with(
        0,
        0,
        "[[rule]]\ncallee = \"008613800138000\"\noutcomes = [\"error:FailedOperation.CallOutFailed\", \"drop\", \"http:502\", \"ok\"]\n",
    )
    .await;
    let c = creds(SECRET_KEY);
    let (_, v) = post(&mock, &c, BODY, now()).await;
    assert_eq!(code(&v), "FailedOperation.CallOutFailed");

    // drop: the call is created, the reply never completes.
    let req = signed_post(&mock, &c, BODY, now());
    let outcome = match req.body(BODY).send().await {
        Ok(resp) => resp.text().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "the client sees an incomplete reply");
    assert_eq!(mock.stats().calls_per_callee["008613800138000"], 1);

    let (status, v) = post(&mock, &c, BODY, now()).await;
    assert_eq!(status, 502);
    assert!(v.as_str().is_some_and(|t| t.contains("<html>")), "{v}");

    let (_, v) = post(&mock, &c, BODY, now()).await;
    assert!(v["Response"]["SessionId"].is_string());
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee["008613800138000"], 2);
    assert_eq!(stats.duplicate_callees, vec!["008613800138000".to_string()]);
    assert_eq!(stats.requests_by_callee["008613800138000"], 4);
}

#[tokio::test]
async fn malformed_bodies_and_wrong_actions_get_parameter_codes() {
    let mock = mock_with(20, 0, "").await;
    let c = creds(SECRET_KEY);
    let (_, v) = post(&mock, &c, "{not json", now()).await;
    assert_eq!(code(&v), "InvalidParameter");
    let (_, v) = post(&mock, &c, r#"{"SdkAppId":1,"AIAgentId":2}"#, now()).await;
    assert_eq!(code(&v), "MissingParameter");
    // A field CreateAIAgentCall does not define (AcquireTimeoutSecond is CreateAICall's) is
    // refused as the service refuses it, and no call is created.
    let body =
        r#"{"SdkAppId":1,"AIAgentId":2,"Callee":"008613800138000","AcquireTimeoutSecond":5}"#;
    let (_, v) = post(&mock, &c, body, now()).await;
    assert_eq!(code(&v), "UnknownParameter", "{v}");
    assert!(mock.stats().calls_per_callee.is_empty());

    // Correctly signed, but another action or API version.
    let req = signed_post_as(
        &mock,
        &c,
        BODY,
        now(),
        "DescribeCarrierPrivilegeNumbers",
        "2020-02-10",
    );
    let (status, v) = send(req.body(BODY)).await;
    assert_eq!((status, code(&v)), (200, "InvalidAction"), "{v}");
    let req = signed_post_as(&mock, &c, BODY, now(), "CreateAIAgentCall", "2017-03-12");
    let (status, v) = send(req.body(BODY)).await;
    assert_eq!((status, code(&v)), (200, "NoSuchVersion"), "{v}");

    let stats = mock.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.errors_by_code["InvalidAction"], 1);
    assert_eq!(stats.errors_by_code["NoSuchVersion"], 1);
}

#[test]
fn fault_script_errors_name_the_rule() {
    let e = Faults::from_toml_str("[[rule]]\ncallee = \"\"\noutcomes = []\n").unwrap_err();
    assert!(e.to_string().contains("rule[0].callee"), "{e}");
}
