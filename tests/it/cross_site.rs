//! A `serve` on loopback without a token, driven by a web page in the operator's browser:
//! cross-site requests (a form or `fetch` from another site) and DNS rebinding (another site's
//! name pointed at 127.0.0.1) are refused; the console's own requests, programs (curl, the data
//! push) and the documented uploads pass.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::served::*;
use crate::support::*;

async fn open_serve() -> (ccc_dialer::mock::MockServer, Scratch, Served) {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let mut cmd = serve_command(&s);
    cmd.env_remove("CCC_DIALER_API_TOKEN");
    let srv = Served::start_with(&s, cmd).await;
    (mock, s, srv)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, HeaderMap, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn refused(answer: &(u16, HeaderMap, Value), status: u16, code: &str, names: &str) {
    let (got, headers, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(names),
        "the refusal names {names}: {message}"
    );
    assert_eq!(
        headers.get("x-content-type-options"),
        Some(&HeaderValue::from_static("nosniff")),
        "a refusal carries the security headers too"
    );
}

async fn campaign_names(srv: &Served) -> Vec<String> {
    let (status, body) = srv.get("/v1/campaigns").await;
    assert_eq!(status, 200, "{body}");
    body["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_page_cannot_drive_a_loopback_serve_without_a_token() {
    let (_mock, _s, srv) = open_serve().await;
    let host = srv.base.trim_start_matches("http://").to_string();
    let own_origin = srv.base.clone();
    let http = reqwest::Client::new();
    let (status, body) = srv
        .post("/v1/campaigns?name=mine&paused=true", csv_of(71, 3))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["campaign"]["id"].as_i64().expect("id");

    // A form on evil.example posting text/plain contacts (a "simple" request: no preflight).
    let a = send(
        http.post(srv.url(&format!("/v1/campaigns/{id}/contacts")))
            .header("origin", "http://evil.example")
            .header("content-type", "text/plain")
            .body(format!("callee\n{}\n", callee(71, 9))),
    )
    .await;
    refused(&a, 403, "foreign_origin", "Origin: http://evil.example");
    // The same from a page that sent no Origin (an old browser): its type is refused.
    let a = send(
        http.post(srv.url(&format!("/v1/campaigns/{id}/contacts")))
            .header("content-type", "text/plain")
            .body(format!("callee\n{}\n", callee(71, 9))),
    )
    .await;
    refused(&a, 415, "unsupported_media_type", "text/csv");
    let a = send(
        http.post(srv.url("/v1/campaigns?name=form"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(csv_of(72, 2)),
    )
    .await;
    refused(&a, 415, "unsupported_media_type", "Content-Type");
    // A multipart form from another site creating a campaign.
    let b = "XyZ";
    let a = send(
        http.post(srv.url("/v1/campaigns"))
            .header("origin", "https://evil.example")
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"contacts\"; filename=\"c.csv\"\r\n\
                 Content-Type: text/csv\r\n\r\n{}\r\n--{b}--\r\n",
                csv_of(73, 2)
            )),
    )
    .await;
    refused(&a, 403, "foreign_origin", "evil.example");
    // Pause and cancel from another site; a sandboxed frame's `null` origin.
    for (what, origin) in [("pause", "http://evil.example"), ("cancel", "null")] {
        let a = send(
            http.post(srv.url(&format!("/v1/campaigns/{id}/{what}")))
                .header("origin", origin),
        )
        .await;
        refused(&a, 403, "foreign_origin", origin);
    }
    // DNS rebinding: evil.example now resolves to 127.0.0.1, so its page reads our answers as
    // its own origin's; the Host it sends gives it away.
    let port = host.rsplit(':').next().expect("port");
    let a = send(
        http.get(srv.url("/v1/campaigns"))
            .header("host", format!("evil.example:{port}")),
    )
    .await;
    refused(&a, 403, "foreign_host", "evil.example");
    let a = send(
        http.post(srv.url(&format!("/v1/campaigns/{id}/cancel")))
            .header("host", format!("evil.example:{port}"))
            .header("origin", format!("http://evil.example:{port}")),
    )
    .await;
    refused(&a, 403, "foreign_host", "evil.example");

    // Nothing of that happened.
    assert_eq!(campaign_names(&srv).await, vec!["mine".to_string()]);
    let c = srv.campaign(id).await;
    assert_eq!(state(&c), "paused", "{c}");
    assert_eq!(c["total"], 3, "no contact added: {c}");

    // The console (its own origin, any of the loopback names) and programs pass.
    let a = send(
        http.post(srv.url(&format!("/v1/campaigns/{id}/contacts")))
            .header("origin", own_origin.as_str())
            .header("content-type", "text/csv; charset=utf-8")
            .body(format!("callee\n{}\n", callee(71, 9))),
    )
    .await;
    assert_eq!(a.0, 200, "{}", a.2);
    let a = send(
        http.post(srv.url("/v1/campaigns?name=console&paused=true"))
            .header("origin", own_origin.as_str())
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"contacts\"; filename=\"c.csv\"\r\n\
                 Content-Type: text/csv\r\n\r\n{}\r\n--{b}--\r\n",
                csv_of(74, 2)
            )),
    )
    .await;
    assert_eq!(a.0, 201, "{}", a.2);
    let a = send(
        http.post(format!("http://localhost:{port}/v1/campaigns/{id}/cancel"))
            .header("origin", format!("http://localhost:{port}")),
    )
    .await;
    assert_eq!(a.0, 200, "{}", a.2);
    let a = send(
        http.get(srv.url("/v1/campaigns"))
            .header("host", format!("localhost:{port}")),
    )
    .await;
    assert_eq!(a.0, 200, "{}", a.2);
    // A program's upload: curl with -H 'Content-Type: text/csv', or no type at all.
    let a = send(
        http.post(srv.url("/v1/campaigns?name=curl&paused=true"))
            .header("content-type", "text/csv")
            .body(csv_of(75, 2)),
    )
    .await;
    assert_eq!(a.0, 201, "{}", a.2);
    // A push from the service (no Origin, JSON) is not judged by this guard: whatever the
    // route answers, it is not a cross-site refusal.
    let a = send(
        http.post(srv.url("/v1/ccc/cdr"))
            .header("content-type", "application/json")
            .body("[]"),
    )
    .await;
    assert_ne!(a.0, 403, "{}", a.2);
    assert_ne!(a.0, 415, "{}", a.2);
    let c = srv.campaign(id).await;
    assert_eq!(state(&c), "cancelled", "{c}");
    assert_eq!(c["total"], 4, "{c}");
    let mut names = campaign_names(&srv).await;
    names.sort();
    assert_eq!(names, ["console", "curl", "mine"]);
}
