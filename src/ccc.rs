//! The CreateAIAgentCall client: build the body, sign it, POST it, and say exactly what happened.
//!
//! The error type is the contract with the retry policy and it is what keeps a person from being
//! called twice: [`CallError::NotSent`] only when the request provably never reached a server
//! (DNS, connect, TLS), [`CallError::InDoubt`] whenever it may have (timeouts after connecting,
//! resets, truncated or undecodable replies, HTTP errors without an API error body), and
//! [`CallError::Api`] when the service answered with an error code.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sign::{self, Credentials, SignRequest};

pub const SERVICE: &str = "ccc";
pub const ACTION: &str = "CreateAIAgentCall";
pub const VERSION: &str = "2020-02-10";
/// Replies larger than this are not a CreateAIAgentCall reply.
const MAX_REPLY_BYTES: usize = 1 << 20;
/// The largest request body sent (documented in the README). A body over it is refused
/// before it leaves with the service's own code for it, `RequestSizeLimitExceeded`.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The code a request over [`MAX_REQUEST_BYTES`] fails with (Tencent Cloud API 3.0's common
/// error for an oversized request; class permanent).
pub const TOO_LARGE: &str = "RequestSizeLimitExceeded";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Variable {
    pub key: String,
    pub value: String,
}

/// The request body. Unset optional fields are omitted, as the SDKs do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallRequest {
    pub sdk_app_id: u64,
    #[serde(rename = "AIAgentId")]
    pub ai_agent_id: u64,
    pub callee: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ring_timeout_second: Option<u32>,
}

/// A call the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub session_id: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request never reached a server: safe to send again.
    #[error("request not sent: {reason}")]
    NotSent { reason: String },
    /// The request may have reached the service but no complete reply came: never resend
    /// without an operator's say-so.
    #[error("reply lost, the call may have been placed: {reason}")]
    InDoubt { reason: String },
    /// The service answered with an error code.
    #[error("{code}: {message} (RequestId {request_id})")]
    Api {
        code: String,
        message: String,
        request_id: String,
    },
}

impl CallError {
    pub fn code(&self) -> &str {
        match self {
            CallError::NotSent { .. } => "NotSent",
            CallError::InDoubt { .. } => "InDoubt",
            CallError::Api { code, .. } => code,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: ReplyBody,
}

#[derive(Deserialize)]
struct ReplyBody {
    #[serde(rename = "Error")]
    error: Option<ApiError>,
    #[serde(rename = "SessionId")]
    session_id: Option<String>,
    #[serde(rename = "RequestId", default)]
    request_id: String,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// Interpret a complete reply from its body, whatever its Content-Type.
pub fn parse_reply(status: u16, body: &[u8]) -> Result<Placed, CallError> {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            response:
                ReplyBody {
                    error: Some(e),
                    request_id,
                    ..
                },
        }) => Err(CallError::Api {
            code: e.code,
            message: e.message,
            request_id,
        }),
        Ok(Envelope {
            response:
                ReplyBody {
                    session_id: Some(session_id),
                    request_id,
                    ..
                },
        }) if (200..300).contains(&status) && !session_id.is_empty() => Ok(Placed {
            session_id,
            request_id,
        }),
        _ => Err(CallError::InDoubt {
            reason: format!(
                "HTTP {status} with no CreateAIAgentCall reply in its body ({} bytes{})",
                body.len(),
                snippet(body)
            ),
        }),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text:?}")
    }
}

/// Where and how to call.
#[derive(Clone)]
pub struct ClientSettings {
    /// `http(s)://host[:port]`, no path.
    pub endpoint: String,
    pub region: Option<String>,
    pub language: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// An idle pooled connection is closed after this (see [`crate::connections`]).
    pub idle_timeout: Duration,
}

/// `tencentcloud.idle_timeout`'s default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Unix seconds; injectable so tests can sign at a fixed time.
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> UnixClock {
    Arc::new(crate::times::now_secs)
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    host: String,
    creds: Credentials,
    region: Option<String>,
    language: Option<String>,
    clock: UnixClock,
    /// Server clock minus ours, in seconds, from the last reply's `Date` header
    /// ([`NO_SKEW_SEEN`] until a reply carried one). Readiness reports a clock far off: every
    /// signature would be refused as expired.
    skew: Arc<AtomicI64>,
    /// Keeps the pool's connections warm while any clone of this client lives.
    warm: Option<Arc<crate::connections::KeepWarm>>,
    /// What it was built from ([`Client::separate`]).
    settings: ClientSettings,
}

/// [`Client::clock_skew`] before any reply was seen.
pub const NO_SKEW_SEEN: i64 = i64::MIN;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

impl Client {
    pub fn new(
        settings: &ClientSettings,
        creds: Credentials,
        clock: UnixClock,
    ) -> Result<Client, ClientBuildError> {
        let url = settings.endpoint.trim_end_matches('/').to_string();
        let host = url
            .split_once("://")
            .map(|(_, h)| h.to_string())
            .ok_or_else(|| ClientBuildError(format!("endpoint {url:?} has no scheme")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            // An idle connection is closed before anything on the way may have dropped it
            // silently (a NAT, a firewall, the endpoint's own keep-alive limit), and TCP
            // keep-alive probes keep those on the way from forgetting the ones kept, and find a
            // peer that vanished: a request never leaves on a connection already dead, where
            // it would end in doubt (crate::connections).
            .pool_idle_timeout(settings.idle_timeout)
            .tcp_keepalive(crate::connections::KEEPALIVE_IDLE)
            .tcp_keepalive_interval(crate::connections::KEEPALIVE_INTERVAL)
            .tcp_keepalive_retries(crate::connections::KEEPALIVE_RETRIES)
            .tcp_nodelay(true)
            // HTTP/1.1 only, though the endpoint offers HTTP/2: the limiter's window counts a
            // request from the moment its bytes were written to the socket
            // (crate::connections::Departing: hyper's HTTP/1 connection drops them after the
            // write). Over HTTP/2 the body is queued on a stream and the shared connection's
            // own task writes it later, by as much as a busy host delays that task, a path no
            // test checks. The pool of
            // `max_in_flight` connections, opened and kept warm ahead, is the price.
            .http1_only()
            // Counts the connections a warm-up opened (crate::connections).
            .connector_layer(crate::connections::TimingLayer)
            .user_agent(concat!("ccc-dialer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Client {
            http,
            url: format!("{url}/"),
            host,
            creds,
            region: settings.region.clone(),
            language: settings.language.clone(),
            clock,
            skew: Arc::new(AtomicI64::new(NO_SKEW_SEEN)),
            warm: None,
            settings: settings.clone(),
        })
    }

    /// A client for the same endpoint and credentials with its own connection pool: queries
    /// (DescribeTelCdr) never take a connection the dialling opened ahead for its pace.
    pub fn separate(&self) -> Result<Client, ClientBuildError> {
        Client::new(&self.settings, self.creds.clone(), self.clock.clone())
    }

    /// The server's clock minus ours in seconds, as of the last reply with a `Date` header;
    /// `None` before any.
    pub fn clock_skew(&self) -> Option<i64> {
        let s = self.skew.load(Ordering::Relaxed);
        (s != NO_SKEW_SEEN).then_some(s)
    }

    /// Open the connections `n` requests in flight need before the first of them is sent; see
    /// [`crate::connections`].
    pub async fn warm_up(&self, n: usize) -> crate::connections::Warmed {
        crate::connections::warm_up(&self.http, &self.url, n).await
    }

    /// Keep the connections warm in the background, re-opening the ones the endpoint closed,
    /// for as long as this client or a clone of it lives (see [`crate::connections::KeepWarm`]).
    pub fn keep_warm(&mut self, permits: Arc<tokio::sync::Semaphore>) {
        let task =
            crate::connections::KeepWarm::start(self.http.clone(), self.url.clone(), permits);
        self.warm = Some(Arc::new(task));
    }

    /// [`Client::create_ai_agent_call`], with `on_leave` told the moment the request was handed
    /// to its connection (after any connection set-up, TLS included): when it really left. Not
    /// told when it never reached a connection.
    pub async fn create_ai_agent_call_timed(
        &self,
        req: &CallRequest,
        on_leave: crate::connections::OnLeave,
    ) -> Result<Placed, CallError> {
        self.send(req, Some(on_leave)).await
    }

    /// Place one call. Never retries: what to do next is the policy's decision.
    pub async fn create_ai_agent_call(&self, req: &CallRequest) -> Result<Placed, CallError> {
        self.send(req, None).await
    }

    async fn send(
        &self,
        req: &CallRequest,
        on_leave: Option<crate::connections::OnLeave>,
    ) -> Result<Placed, CallError> {
        let payload = serde_json::to_vec(req).map_err(|e| CallError::NotSent {
            reason: format!("cannot encode the request: {e}"),
        })?;
        if payload.len() > MAX_REQUEST_BYTES {
            // Not NotSent: that would read as the endpoint being down. The request is wrong for
            // this contact, as the service itself would say.
            return Err(CallError::Api {
                code: TOO_LARGE.to_string(),
                message: format!(
                    "the request body would be {} bytes, more than {MAX_REQUEST_BYTES}: refused before sending (nothing was sent)",
                    payload.len()
                ),
                request_id: String::new(),
            });
        }
        let (status, body) = self.post_timed(ACTION, payload, on_leave).await?;
        parse_reply(status, &body)
    }

    /// Sign `payload` for `action` (same service and version), POST it, and return the reply's
    /// HTTP status and body, read whole (at most 1 MiB). Transport failures are split as for
    /// CreateAIAgentCall: [`CallError::NotSent`] only when no request byte can have reached a
    /// server. Every action shares this client's connections; each has its own limiter.
    pub async fn post(&self, action: &str, payload: Vec<u8>) -> Result<(u16, Vec<u8>), CallError> {
        self.post_timed(action, payload, None).await
    }

    /// [`Client::post`], with `on_leave` told the moment the request was handed to its
    /// connection (see [`Client::create_ai_agent_call_timed`]).
    pub async fn post_timed(
        &self,
        action: &str,
        payload: Vec<u8>,
        on_leave: Option<crate::connections::OnLeave>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let signed = sign::sign(
            &self.creds,
            &SignRequest {
                host: &self.host,
                service: SERVICE,
                action,
                version: VERSION,
                region: self.region.as_deref(),
                language: self.language.as_deref(),
                payload: &payload,
                timestamp: (self.clock)(),
            },
        )
        .map_err(|e| CallError::NotSent {
            reason: e.to_string(),
        })?;
        let mut builder = self.http.post(&self.url);
        for (name, value) in &signed.headers {
            builder = builder.header(*name, value);
        }
        let length = payload.len();
        let body = crate::connections::Departing::new(payload, on_leave);
        let response = builder
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap(body))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if let Some(server) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::times::parse_http_date)
        {
            self.skew.store(server - (self.clock)(), Ordering::Relaxed);
        }
        let body = read_capped(response).await?;
        Ok((status, body))
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(CallError::InDoubt {
                        reason: format!("reply larger than {MAX_REPLY_BYTES} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(CallError::InDoubt {
                    reason: format!("reply cut off: {}", describe(&e)),
                })
            }
        }
    }
}

/// Split a reqwest failure into "never reached a server" and "may have".
fn transport_error(e: reqwest::Error) -> CallError {
    // `is_connect` covers DNS resolution, TCP connect (including its timeout) and the TLS
    // handshake: no request byte was written. Everything else happened after the connection was
    // up, so the request may have been read by the service.
    if e.is_connect() || e.is_builder() || body_incomplete(&e) {
        CallError::NotSent {
            reason: describe(&e),
        }
    } else {
        CallError::InDoubt {
            reason: describe(&e),
        }
    }
}

/// hyper's error for a request whose bytes could not all be handed to the connection: over
/// HTTP/1 a failed write or flush of the request (bytes were left unwritten), over HTTP/2 a
/// failure before the frame ending the stream was queued. Either way the service never had the
/// whole request, and a JSON body cut short cannot create a call. Recognised by hyper's own
/// message (it has no public predicate for this kind); should the message change, the error
/// falls back to in doubt, the safe side. A reset *read* while the body was being written
/// (`connection error: Connection reset by peer`) proves nothing and stays in doubt.
const BODY_WRITE: &str = "error writing a body to connection";

fn body_incomplete(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string() == BODY_WRITE {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error and its causes on one line, without the URL (it is not secret, but it is noise).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![];
    if e.is_timeout() {
        parts.push("timed out".to_string());
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper's body-write error anywhere in the chain means the request never left whole; a
    /// reset read while writing (what a server closing mid-body usually produces) does not
    /// prove it and stays in doubt.
    #[test]
    fn only_hypers_body_write_error_counts_as_an_incomplete_request() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let cut = Layer(
            "client error (SendRequest)",
            Some(Box::new(Layer(
                BODY_WRITE,
                Some(Box::new(Layer("Broken pipe (os error 32)", None))),
            ))),
        );
        assert!(body_incomplete(&cut));
        let reset = Layer(
            "client error (SendRequest)",
            Some(Box::new(Layer(
                "connection error",
                Some(Box::new(Layer(
                    "Connection reset by peer (os error 104)",
                    None,
                ))),
            ))),
        );
        assert!(!body_incomplete(&reset));
    }

    #[test]
    fn body_omits_unset_fields_and_uses_the_api_names() {
        let req = CallRequest {
            sdk_app_id: 1_400_000_000,
            ai_agent_id: 15,
            callee: "008612300000000".into(),
            callers: vec![],
            variables: vec![],
            max_ring_timeout_second: None,
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"SdkAppId":1400000000,"AIAgentId":15,"Callee":"008612300000000"}"#
        );
        let full = CallRequest {
            callers: vec!["008601012345678".into()],
            variables: vec![Variable {
                key: "name".into(),
                value: "张三".into(),
            }],
            max_ring_timeout_second: Some(30),
            ..req
        };
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            r#"{"SdkAppId":1400000000,"AIAgentId":15,"Callee":"008612300000000","Callers":["008601012345678"],"Variables":[{"Key":"name","Value":"张三"}],"MaxRingTimeoutSecond":30}"#
        );
    }

    #[test]
    fn replies_are_read_from_the_body_whatever_the_status_or_type() {
        let ok = br#"{"Response":{"SessionId":"s-1","RequestId":"r-1"}}"#;
        assert_eq!(
            parse_reply(200, ok),
            Ok(Placed {
                session_id: "s-1".into(),
                request_id: "r-1".into()
            })
        );
        let err = br#"{"Response":{"Error":{"Code":"InternalError","Message":"boom"},"RequestId":"r-2"}}"#;
        assert_eq!(
            parse_reply(500, err),
            Err(CallError::Api {
                code: "InternalError".into(),
                message: "boom".into(),
                request_id: "r-2".into()
            })
        );
        assert!(matches!(
            parse_reply(502, b"<html>Bad Gateway</html>"),
            Err(CallError::InDoubt { .. })
        ));
        assert!(matches!(
            parse_reply(200, br#"{"Response":{"RequestId":"r"}}"#),
            Err(CallError::InDoubt { .. })
        ));
        assert!(matches!(
            parse_reply(200, br#"{"Response":{"SessionId":"s"#),
            Err(CallError::InDoubt { .. })
        ));
    }
}
