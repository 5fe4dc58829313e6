//! Every failure class of the client, produced for real against local servers: the class is what
//! keeps a person from being called twice.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use ccc_dialer::ccc::{system_clock, CallError, CallRequest, Client, ClientSettings};
use ccc_dialer::secret::Secret;
use ccc_dialer::sign::Credentials;

fn client(endpoint: &str, request_timeout: Duration) -> Client {
    Client::new(
        &ClientSettings {
            endpoint: endpoint.to_string(),
            region: None,
            language: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout,
            idle_timeout: ccc_dialer::ccc::DEFAULT_IDLE_TIMEOUT,
        },
        Credentials {
            secret_id: "AKIDx".into(),
            secret_key: Secret::new("k"),
            session_token: None,
        },
        system_clock(),
    )
    .unwrap()
}

fn request() -> CallRequest {
    CallRequest {
        sdk_app_id: 1_400_000_000,
        ai_agent_id: 15,
        callee: "008613800138000".into(),
        callers: vec![],
        variables: vec![],
        max_ring_timeout_second: None,
    }
}

/// Read one whole HTTP request (headers and Content-Length body) from the socket.
async fn read_request(sock: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

/// A server that reads one request and then does `reply` (raw bytes; `None` = hang).
async fn server(reply: Option<&'static [u8]>) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let req = read_request(&mut sock).await;
        match reply {
            Some(bytes) => {
                sock.write_all(bytes).await.unwrap();
                sock.flush().await.unwrap();
                drop(sock);
            }
            None => {
                // Hold the connection open without answering until the client gives up.
                let mut rest = Vec::new();
                let _ = sock.read_to_end(&mut rest).await;
            }
        }
        req
    });
    (format!("http://{addr}"), handle)
}

#[tokio::test]
async fn refused_connection_is_not_sent_and_safe_to_resend() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(&format!("http://{addr}"), Duration::from_secs(2))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::NotSent { .. }), "{err:?}");
}

#[tokio::test]
async fn connection_dropped_after_the_request_is_in_doubt() {
    let (url, server) = server(Some(b"")).await;
    let err = client(&url, Duration::from_secs(5))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    let seen = server.await.unwrap();
    assert!(
        String::from_utf8_lossy(&seen).contains("008613800138000"),
        "the request did arrive"
    );
    assert!(matches!(err, CallError::InDoubt { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_reply_past_the_timeout_is_in_doubt() {
    let (url, _server) = server(None).await;
    let err = client(&url, Duration::from_millis(300))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    match err {
        CallError::InDoubt { reason } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("expected in doubt, got {other:?}"),
    }
}

#[tokio::test]
async fn gateway_5xx_without_an_api_body_is_in_doubt() {
    let (url, _server) = server(Some(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 24\r\nConnection: close\r\n\r\n<html>Bad Gateway</html>",
    ))
    .await;
    let err = client(&url, Duration::from_secs(5))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    match err {
        CallError::InDoubt { reason } => assert!(reason.contains("HTTP 502"), "{reason}"),
        other => panic!("expected in doubt, got {other:?}"),
    }
}

#[tokio::test]
async fn truncated_reply_is_in_doubt() {
    let (url, _server) = server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"Response\":{\"SessionId\":",
    ))
    .await;
    let err = client(&url, Duration::from_secs(5))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::InDoubt { .. }), "{err:?}");
}

#[tokio::test]
async fn error_json_is_an_api_error_with_code_message_and_request_id_whatever_the_content_type() {
    let (url, _server) = server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 107\r\nConnection: close\r\n\r\n{\"Response\":{\"Error\":{\"Code\":\"FailedOperation.CallOutFailed\",\"Message\":\"busy\"},\"RequestId\":\"req-12345678\"}}",
    ))
    .await;
    let err = client(&url, Duration::from_secs(5))
        .create_ai_agent_call(&request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Api {
            code: "FailedOperation.CallOutFailed".into(),
            message: "busy".into(),
            request_id: "req-12345678".into()
        }
    );
}

#[tokio::test]
async fn success_reply_gives_session_and_request_ids() {
    let (url, _server) = server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 66\r\nConnection: close\r\n\r\n{\"Response\":{\"SessionId\":\"sess-0001\",\"RequestId\":\"req-000000001\"}}",
    ))
    .await;
    let placed = client(&url, Duration::from_secs(5))
        .create_ai_agent_call(&request())
        .await
        .unwrap();
    assert_eq!(placed.session_id, "sess-0001");
    assert_eq!(placed.request_id, "req-000000001");
}
