//! The `[notify]` webhook: a signed JSON POST when a campaign completes or halts, verified by
//! a receiver on loopback; a receiver that hangs or is down never holds dialling back.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::served::{self, Served};
use crate::support::*;

const SECRET: &str = "webhook-secret-0123456789";

#[derive(Clone, Debug)]
struct Delivery {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver on loopback: records every delivery; answers 200, or never (`hang`).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn receiver(hang: bool) -> Receiver {
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let got2 = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let got = got2.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                got.lock().unwrap().push(Delivery {
                    timestamp: h("x-ccc-dialer-timestamp"),
                    signature: h("x-ccc-dialer-signature"),
                    body: body.to_vec(),
                });
                if hang {
                    std::future::pending::<()>().await;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url,
        got,
        _task: task,
    }
}

/// What a receiver does: HMAC-SHA256(secret, timestamp "." body), hex, after `sha256=`.
fn verifies(d: &Delivery, secret: &str) -> bool {
    let Some(hex_sig) = d.signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(d.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    mac.verify_slice(&sig).is_ok()
}

/// `serve` with the webhook's secret in its environment.
fn with_secret(s: &Scratch) -> std::process::Command {
    let mut cmd = served::serve_command(s);
    cmd.env("CCC_DIALER_NOTIFY_SECRET", SECRET);
    cmd
}

fn notify_table(url: &str, extra: &str) -> String {
    format!("[notify]\nurl = \"{url}\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_run_posts_a_signed_notification_that_verifies() {
    let hook = receiver(false).await;
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", &notify_table(&hook.url, ""));
    s.write_contacts(&contacts_csv(3));
    let out = s
        .run_command()
        .env("CCC_DIALER_NOTIFY_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    // `run` waits (bounded) for the delivery before it exits.
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let d = &got[0];
    assert!(verifies(d, SECRET), "the signature verifies: {d:?}");
    assert!(!verifies(d, "another-secret-0123456789"));
    let mut tampered = d.clone();
    tampered.body = String::from_utf8(d.body.clone())
        .unwrap()
        .replace("\"placed\":3", "\"placed\":4")
        .into_bytes();
    assert_ne!(tampered.body, d.body);
    assert!(
        !verifies(&tampered, SECRET),
        "a changed body does not verify"
    );
    let age = jiff::Timestamp::now().as_second() - d.timestamp.parse::<i64>().unwrap();
    assert!(
        (0..300).contains(&age),
        "a fresh unix timestamp: {}",
        d.timestamp
    );
    let body: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(body["event"], "completed");
    assert_eq!(body["campaign"], "run");
    assert_eq!(body["campaign_id"], 1);
    assert_eq!(body["counts"]["placed"], 3);
    assert_eq!(body["counts"]["failed"], 0);
    assert!(body["reason"].is_null());
    assert_eq!(body["delivery"].as_str().unwrap().len(), 36);
    assert!(body["at"].as_str().unwrap().ends_with('Z'));
    // The secret is never logged.
    assert!(!stderr_of(&out).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_halted_run_says_why() {
    let hook = receiver(false).await;
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:AuthFailure.SignatureFailure\"]\n",
    )
    .await;
    let s = Scratch::new(&mock.endpoint(), "", &notify_table(&hook.url, ""));
    s.write_contacts(&contacts_csv(3));
    let out = s
        .run_command()
        .env("CCC_DIALER_NOTIFY_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verifies(&got[0], SECRET));
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"], "halted");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("AuthFailure.SignatureFailure"),
        "{body}"
    );
    assert_eq!(body["counts"]["pending"], 3, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_never_holds_dialling_back() {
    let hook = receiver(true).await;
    let mock = mock_with(20, 0, "").await;
    let s = served::scratch(&mock, &notify_table(&hook.url, "timeout = \"5m\"\n"));
    let srv = Served::start_with(&s, with_secret(&s)).await;
    let first = srv.create("first", &served::csv_of(44, 5)).await;
    srv.wait_campaign(first, "first completed", |c| {
        served::state(c) == "completed"
    })
    .await;
    // The receiver now holds the first notification and never answers; the service dials on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hook.got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = srv.create("second", &served::csv_of(45, 40)).await;
    let c = srv
        .wait_campaign(second, "second completed", |c| {
            served::state(c) == "completed"
        })
        .await;
    assert_eq!(served::count(&c, "placed"), 40, "{c}");
    let got = hook.got.lock().unwrap().clone();
    // One delivery, still hanging (5 minutes per try): the second campaign's notification
    // waits its turn in the queue, and dialling never waited for either.
    assert_eq!(got.len(), 1, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["campaign"], "first");
    assert!(verifies(&got[0], SECRET));
    assert_eq!(mock.stats().accepted, 45);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_receiver_costs_a_run_a_warning_and_nothing_else() {
    // A port nothing listens on.
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        &notify_table(&url, "timeout = \"2s\"\nattempts = 2\n"),
    );
    s.write_contacts(&contacts_csv(4));
    let out = s
        .run_command()
        .env("CCC_DIALER_NOTIFY_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(
        s.results().iter().filter(|r| r.status == "placed").count(),
        4
    );
    let err = stderr_of(&out);
    assert!(err.contains("webhook: cannot connect"), "{err}");
    // Logs name the receiver's host, never its path (it may hold a token) or the secret.
    assert!(!err.contains("/hook") && !err.contains(SECRET), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_without_its_secret_is_refused_before_anything_is_sent() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        &notify_table("http://127.0.0.1:9/hook", ""),
    );
    s.write_contacts(&contacts_csv(2));
    let out = s
        .run_command()
        .env_remove("CCC_DIALER_NOTIFY_SECRET")
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("CCC_DIALER_NOTIFY_SECRET"),
        "{}",
        stderr_of(&out)
    );
    let out = s
        .run_command()
        .env("CCC_DIALER_NOTIFY_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("at least 16 characters"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !stderr_of(&out).contains("short"),
        "the value is never shown"
    );
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_pause_is_notified_and_a_hanging_receiver_does_not_stop_the_resume() {
    let hook = receiver(true).await;
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = Scratch::new(
        &format!("http://{addr}"),
        "",
        &format!(
            "[run]\noutage_probe_initial = \"200ms\"\noutage_probe_max = \"500ms\"\n{}",
            notify_table(&hook.url, "timeout = \"5m\"\n")
        ),
    );
    let srv = Served::start_with(&s, with_secret(&s)).await;
    let id = srv.create("down", &served::csv_of(46, 6)).await;
    srv.wait_campaign(id, "paused by the outage", |c| served::state(c) == "paused")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hook.got.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The endpoint comes up while the receiver holds the "paused" notification for good: the
    // campaign resumes (under the same steering lock the pause took) and completes.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mock = ccc_dialer::mock::MockServer::spawn_on(listener, mock_options()).unwrap();
    let c = srv
        .wait_campaign(id, "completed after the outage", |c| {
            served::state(c) == "completed"
        })
        .await;
    assert_eq!(served::count(&c, "placed"), 6, "{c}");
    assert_eq!(mock.stats().accepted, 6);
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"], "paused", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("endpoint unreachable since"),
        "{body}"
    );
    assert!(verifies(&got[0], SECRET));
    // The report accounts the time the campaign waited for the endpoint.
    let (_, r) = srv.get(&format!("/v1/campaigns/{id}/report")).await;
    let outage = r["waiting"]["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["reason"] == "outage")
        .cloned()
        .unwrap_or_else(|| panic!("an outage wait: {r:#}"));
    assert!(outage["seconds"].as_f64().unwrap() > 0.0, "{r:#}");
}
