//! Clients that send slowly, or not at all, cannot hold `serve`: a connection still sending
//! its headers after `server.header_timeout`, or its body after `server.body_timeout`, is
//! closed by the service, and with more such connections open than `server.max_connections`
//! a legitimate request is still served (the oldest connection serving no request makes room).
//!
//! Every assertion is on what the client sees (an answer, a closed socket); the waits are
//! guards against a hang, never timing claims.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ccc_dialer::dispatch::Stop;

use crate::served::{in_process_with, TOKEN};

const LIMITS: &str =
    "[server]\nmax_connections = 4\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\n";
/// Far beyond the configured timeouts: only a service that never closes reaches it.
const GUARD: Duration = Duration::from_secs(30);

/// Read until the server closes the connection (EOF or reset); returns what it sent.
async fn closed_by_server(mut s: TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the service kept a slow connection open; it sent {:?}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_trickle_are_closed_and_a_real_request_is_still_served() {
    let p = in_process_with(64 * 1024, LIMITS, async |_| {}).await;
    let addr = p.base.trim_start_matches("http://").to_string();

    // Twice the cap of connections that never finish their headers.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /v1/campaigns HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(s);
    }
    // A legitimate client is served all the same.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/campaigns", p.base))
        .bearer_auth(TOKEN)
        .timeout(GUARD)
        .send()
        .await
        .expect("a legitimate request is answered beside stalled connections");
    assert_eq!(r.status().as_u16(), 200);

    // And every stalled connection is closed by the service, none answered.
    for s in stalled {
        let sent = closed_by_server(s).await;
        assert!(!sent.contains("200 OK"), "{sent}");
    }
    p.stop.send_replace(Stop::Now);
    let _ = p.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_refused_and_its_connection_closed() {
    let p = in_process_with(64 * 1024, LIMITS, async |_| {}).await;
    let addr = p.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/campaigns?name=slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: text/csv\r\nContent-Length: 1000\r\n\r\ncallee\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // A byte now and then, never the whole body: the read keeps going until the service
    // closes (a write to a closed socket may fail; that is the point).
    let trickle = tokio::spawn({
        let (mut r, mut w) = s.into_split();
        async move {
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
            let mut interval = tokio::time::interval(Duration::from_millis(200));
            while !reader.is_finished() {
                interval.tick().await;
                if w.write_all(b"+").await.is_err() {
                    break;
                }
            }
            reader.await.unwrap()
        }
    });
    let sent = tokio::time::timeout(GUARD, trickle)
        .await
        .expect("the service closed the trickling connection")
        .unwrap();
    assert!(!sent.starts_with("HTTP/1.1 201"), "{sent}");
    // Nothing was created from a body that never arrived whole.
    let svc = &p.svc;
    assert!(svc.store.find_campaign("slow").await.unwrap().is_none());
    p.stop.send_replace(Stop::Now);
    let _ = p.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_and_an_idle_kept_alive_one_are_closed() {
    let p = in_process_with(64 * 1024, LIMITS, async |_| {}).await;
    let addr = p.base.trim_start_matches("http://").to_string();
    // Connected, never a byte sent.
    let silent = TcpStream::connect(&addr).await.unwrap();
    // One request answered on a kept-alive connection, then nothing more.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(
        format!(
            "GET /v1/campaigns HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(closed_by_server(silent).await, "", "nothing answered");
    let sent = closed_by_server(idle).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    p.stop.send_replace(Stop::Now);
    let _ = p.task.await;
}
