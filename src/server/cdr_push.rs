//! `POST /v1/ccc/cdr`: the receiver of Tencent's CDR data push (shared/CCC-OUTCOMES.md §4).
//!
//! - Off unless `CCC_DIALER_PUSH_USER` and `CCC_DIALER_PUSH_PASSWORD` (or their `_FILE` forms)
//!   are set: an unauthenticated receiver would let anyone write outcomes. Off, it answers 404.
//! - Both checked from the headers, before the body is read ([`gate`]); the body is read up to
//!   [`MAX_BODY_BYTES`] (64 KiB, 413 `too_large` beyond), not `--max-body-mib`.
//! - HTTP Basic, compared in constant time; the bearer token of the rest of the API is not
//!   asked for (the service cannot send it).
//! - `?action=cdr` (or no action) is recorded; another action (recording, voicemail pushes) is
//!   acknowledged and ignored, so the service does not retry what this receiver does not keep.
//! - The body is read as a call record (`TelCdrInfo` field names). The documented push fields
//!   carry no numeric `EndStatus`: it is read back from `EndStatusString` through
//!   [`crate::end_status`]; a string outside the table stays raw (class `other`).
//! - `{"ErrCode":0,"ErrMsg":""}` only after the record is durable in the store (the outcome
//!   tracker's write, the same one polling uses: a record seen twice, by push or poll, changes
//!   nothing). A store failure answers 500, and the service pushes again.
//! - Deduplicated on `X-TCCC-PUSH-UUID`: a push acknowledged before is acknowledged again at
//!   once (the last [`RECENT`] UUIDs, in memory; after a restart the store's idempotency per
//!   SessionId does the same job).
//! - A session this store does not know yet (the push came before the dialler wrote the reply
//!   naming it, another dialer's call, or a request whose reply was lost) is acknowledged and
//!   kept in the store (`pending_pushes`), never dropped: the attempt that gets the session
//!   (its reply written, or reconciled) claims it in the same transaction. Unclaimed ones are
//!   pruned after two days. An in-doubt request to its number sent near its start is also
//!   looked up at once by the outcome poller's reconciliation (DescribeTelCdr by phone and
//!   time, the authority), not resolved from the push itself.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::api::ApiError;
use super::Service;
use crate::credentials::{read_secret, CredentialsError, Env};
use crate::outcomes::cdr::CallRecord;
use crate::outcomes::poller::Tracker;
use crate::secret::Secret;

pub const USER_VAR: &str = "CCC_DIALER_PUSH_USER";
pub const PASSWORD_VAR: &str = "CCC_DIALER_PUSH_PASSWORD";
/// The header naming one push; a retried push carries the same value.
pub const UUID_HEADER: &str = "x-tccc-push-uuid";
/// Acknowledged push UUIDs remembered.
pub const RECENT: usize = 100_000;
/// The largest push body read (a CDR push is a few hundred bytes of JSON): larger is 413
/// `too_large`, whatever `--max-body-mib` allows the rest of the API.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushSetupError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{set} is set but {unset} is not: the CDR push receiver needs both (or neither, to stay off)")]
    HalfSet {
        set: &'static str,
        unset: &'static str,
    },
}

/// The receiver's credentials from the environment: `None` when neither is set (receiver off).
pub fn credentials(env: &dyn Env) -> Result<Option<(String, Secret)>, PushSetupError> {
    let user = read_secret(env, USER_VAR)?;
    let password = read_secret(env, PASSWORD_VAR)?;
    match (user, password) {
        (Some(u), Some(p)) => Ok(Some((u.expose().to_string(), p))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(PushSetupError::HalfSet {
            set: USER_VAR,
            unset: PASSWORD_VAR,
        }),
        (None, Some(_)) => Err(PushSetupError::HalfSet {
            set: PASSWORD_VAR,
            unset: USER_VAR,
        }),
    }
}

/// What the receiver saw (for tests and logs).
#[derive(Debug, Default)]
pub struct PushFigures {
    /// Pushes with valid credentials.
    pub received: AtomicU64,
    /// Records new to the store.
    pub recorded: AtomicU64,
    /// Records of a session no attempt had yet, kept (durably) until an attempt gets it: the
    /// push came before the reply was written, or the reply was lost.
    pub held: AtomicU64,
    /// Pushes acknowledged again from the UUID memory.
    pub duplicates: AtomicU64,
    /// Acknowledged and not kept: another action, another application or direction, a record
    /// it has already.
    pub ignored: AtomicU64,
    /// Refused for their credentials.
    pub unauthorized: AtomicU64,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    fn contains(&self, uuid: &str) -> bool {
        self.set.contains(uuid)
    }

    fn insert(&mut self, uuid: String) {
        if self.set.insert(uuid.clone()) {
            self.order.push_back(uuid);
            while self.order.len() > RECENT {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

pub struct PushReceiver {
    user: String,
    password: Secret,
    sdk_app_id: i64,
    tracker: Arc<Tracker>,
    recent: Mutex<Recent>,
    pub figures: PushFigures,
}

/// Whether an `Authorization` header carries `user:password` as HTTP Basic.
pub fn basic_matches(authorization: Option<&[u8]>, user: &str, password: &str) -> bool {
    let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{user}:{password}");
    // Constant time over the longer of the two; lengths differing fail after the same work.
    let same_len = decoded.len() == expected.len();
    let eq: bool = if same_len {
        decoded.as_slice().ct_eq(expected.as_bytes()).into()
    } else {
        let _ = expected.as_bytes().ct_eq(expected.as_bytes());
        false
    };
    same_len && eq
}

/// The record a push body describes, its numeric end code read back from the string when the
/// body has none.
pub fn parse_push(body: &[u8]) -> Result<(Option<i64>, CallRecord), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("the body is not a JSON object".into());
    }
    let mut record: CallRecord = serde_json::from_value(value.clone())
        .map_err(|e| format!("the body is not a CDR push: {e}"))?;
    if record
        .session_id
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err("the body has no SessionId".into());
    }
    if record.end_status.is_none() {
        record.end_status = record
            .end_status_string
            .as_deref()
            .and_then(crate::end_status::code_of);
    }
    let sdk_app_id = value.get("SdkAppId").and_then(|v| v.as_i64());
    Ok((sdk_app_id, record))
}

fn ack(message: &str) -> Response {
    (
        StatusCode::OK,
        Json(json!({"ErrCode": 0, "ErrMsg": message})),
    )
        .into_response()
}

impl PushReceiver {
    pub fn new(user: String, password: Secret, sdk_app_id: i64, tracker: Arc<Tracker>) -> Self {
        PushReceiver {
            user,
            password,
            sdk_app_id,
            tracker,
            recent: Mutex::new(Recent::default()),
            figures: PushFigures::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ignored(&self, why: &str) -> Response {
        self.figures.ignored.fetch_add(1, Ordering::Relaxed);
        ack(why)
    }

    /// The 401 to answer, unless the request carries exactly one `Authorization` header with
    /// the receiver's Basic credentials (then `None`).
    pub fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let mut auth = headers.get_all(header::AUTHORIZATION).iter();
        let given = auth.next().map(|v| v.as_bytes());
        if auth.next().is_none() && basic_matches(given, &self.user, self.password.expose()) {
            return None;
        }
        self.figures.unauthorized.fetch_add(1, Ordering::Relaxed);
        Some(no_credentials())
    }

    /// Handle one push (after [`gate`] found the receiver on and the credentials right).
    pub async fn receive(&self, query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Response {
        self.figures.received.fetch_add(1, Ordering::Relaxed);
        // No action at all is read as a CDR (the body says what it is); another one is not kept.
        let action = url_param(query.unwrap_or(""), "action");
        if let Some(other) = action.as_deref().filter(|a| *a != "cdr") {
            tracing::info!(action = %other, "a data push of a kind this receiver does not keep: acknowledged, ignored");
            return self.ignored("ignored: only action=cdr is kept");
        }
        let uuid = headers
            .get(UUID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if uuid.as_deref().is_some_and(|u| self.recent().contains(u)) {
            self.figures.duplicates.fetch_add(1, Ordering::Relaxed);
            return ack("");
        }
        let (sdk_app_id, record) = match parse_push(body) {
            Ok(p) => p,
            Err(why) => return ApiError::bad_request(why).into_response(),
        };
        if sdk_app_id.is_some_and(|a| a != self.sdk_app_id) {
            return self.ignored("ignored: another application's call");
        }
        if record.direction.is_some_and(|d| d != 1) {
            return self.ignored("ignored: not an outbound call");
        }
        let now = crate::dispatch::now_ms();
        let rec = self.tracker.to_record(&record, "push", now);
        match self.tracker.write_all(vec![rec]).await {
            Ok(written) => {
                if let Some(u) = uuid {
                    self.recent().insert(u);
                }
                if !written.new.is_empty() {
                    self.figures.recorded.fetch_add(1, Ordering::Relaxed);
                    ack("")
                } else if !written.pending.is_empty() {
                    // No attempt has this session yet: perhaps the push came before the
                    // dialler wrote the reply. Kept; the attempt that gets the session claims
                    // it. A lost reply's in-doubt request is looked up at once as well.
                    self.figures.held.fetch_add(1, Ordering::Relaxed);
                    self.hasten_lookups(&record, now).await;
                    ack("")
                } else {
                    // Known already (or held already): a session still unknown may be the call
                    // a lost reply (or a try that failed with InternalError) created.
                    self.hasten_lookups(&record, now).await;
                    self.ignored("")
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a CDR push could not be stored: answered 500, the service pushes it again");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store",
                    format!("the record could not be stored: {e}"),
                )
                .into_response()
            }
        }
    }
}

impl PushReceiver {
    /// A pushed record of a session this store has no attempt for, to a number with an
    /// in-doubt attempt sent near the call's start: that attempt's lookup falls due now, and
    /// the poller resolves it from DescribeTelCdr (the authority; the push alone proves
    /// nothing about which request created the call). Failures are logged: the push is
    /// acknowledged either way (it is not kept).
    async fn hasten_lookups(&self, record: &CallRecord, now_ms: i64) {
        let (Some(session), Some(callee), Some(started)) = (
            record.session_id.clone().filter(|s| !s.is_empty()),
            record.callee.clone().filter(|c| !c.is_empty()),
            record.started(),
        ) else {
            return;
        };
        let store = self.tracker.store();
        let known = match store.known_sessions(vec![session]).await {
            Ok(k) => !k.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, "a pushed record of an unknown session: the store failed");
                return;
            }
        };
        if known {
            return;
        }
        let spellings = crate::outcomes::reconcile::spellings(&callee);
        match store.hasten_lookups(spellings, started, now_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                lookups = n,
                "a pushed call record of a session no attempt has matches in-doubt requests to its number: looking them up in the call records now"
            ),
            Err(e) => tracing::warn!(error = %e, "a pushed record of an unknown session: the store failed"),
        }
    }
}

/// A query parameter's value (percent-decoding is not needed for `action`).
fn url_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

/// The 401 of a push without any `Authorization` header.
fn no_credentials() -> Response {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the CDR push needs HTTP Basic credentials (CCC_DIALER_PUSH_USER / CCC_DIALER_PUSH_PASSWORD)",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"ccc-dialer CDR push\""),
    );
    r
}

fn receiver_off() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "push_receiver_off",
        "the CDR push receiver is off: set CCC_DIALER_PUSH_USER and CCC_DIALER_PUSH_PASSWORD (or their _FILE forms)",
    )
    .into_response()
}

/// The route's middleware, run before the body is read: a push to a receiver that is off (404)
/// or without the credentials (401) is answered from its headers, so no one without them can
/// make the service read a body. The route's own body limit is [`MAX_BODY_BYTES`].
pub async fn gate(State(svc): State<Arc<Service>>, req: Request, next: Next) -> Response {
    match svc.cdr_push.get() {
        // Without credentials a push is unauthorized whether or not the receiver is on.
        None if !req.headers().contains_key(header::AUTHORIZATION) => no_credentials(),
        None => receiver_off(),
        Some(r) => match r.refusal(req.headers()) {
            None => next.run(req).await,
            Some(refused) => refused,
        },
    }
}

/// The route's handler (behind [`gate`]).
pub async fn receive(
    State(svc): State<Arc<Service>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match svc.cdr_push.get() {
        Some(r) => r.receive(query.as_deref(), &headers, &body).await,
        None => receiver_off(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn basic_credentials_match_exactly() {
        assert!(basic_matches(Some(&basic("u:p w")), "u", "p w"));
        assert!(basic_matches(
            Some(
                format!(
                    "basic {}",
                    base64::engine::general_purpose::STANDARD.encode("u:p")
                )
                .as_bytes()
            ),
            "u",
            "p"
        ));
        assert!(!basic_matches(Some(&basic("u:q")), "u", "p"));
        assert!(!basic_matches(Some(&basic("u:pp")), "u", "p"));
        assert!(!basic_matches(Some(&basic("v:p")), "u", "p"));
        assert!(!basic_matches(Some(b"Bearer abc"), "u", "p"));
        assert!(!basic_matches(Some(b"Basic !!!"), "u", "p"));
        assert!(!basic_matches(None, "u", "p"));
    }

    #[test]
    fn a_push_without_end_status_gets_it_from_the_string() {
        let (sdk, r) = parse_push(
            br#"{"SdkAppId":1400000000,"SessionId":"s1","EndStatusString":"busy","AcceptTimestamp":0,"Direction":1}"#,
        )
        .unwrap();
        assert_eq!((sdk, r.end_status), (Some(1400000000), Some(206)));
        let (_, r) = parse_push(br#"{"SessionId":"s1","EndStatusString":"somethingNew"}"#).unwrap();
        assert_eq!(r.end_status, None);
        assert_eq!(r.end_status_string.as_deref(), Some("somethingNew"));
        // A numeric EndStatus, when a push carries one, wins.
        let (_, r) =
            parse_push(br#"{"SessionId":"s1","EndStatus":299,"EndStatusString":"unknown"}"#)
                .unwrap();
        assert_eq!(r.end_status, Some(299));
        assert!(parse_push(b"[]").is_err());
        assert!(parse_push(br#"{"EndStatusString":"ok"}"#).is_err());
        assert!(parse_push(b"{").is_err());
    }

    #[test]
    fn credentials_are_both_or_neither() {
        struct E(Vec<(&'static str, &'static str)>);
        impl Env for E {
            fn var(&self, name: &str) -> Option<String> {
                self.0
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        assert_eq!(credentials(&E(vec![])).unwrap(), None);
        let (u, p) = credentials(&E(vec![(USER_VAR, "u"), (PASSWORD_VAR, "p")]))
            .unwrap()
            .unwrap();
        assert_eq!((u.as_str(), p.expose()), ("u", "p"));
        let e = credentials(&E(vec![(USER_VAR, "u")])).unwrap_err();
        assert!(e.to_string().contains(PASSWORD_VAR), "{e}");
    }

    #[test]
    fn the_uuid_memory_is_bounded() {
        let mut r = Recent::default();
        for i in 0..RECENT + 10 {
            r.insert(i.to_string());
        }
        assert!(!r.contains("0") && r.contains(&(RECENT + 9).to_string()));
        assert_eq!(r.order.len(), RECENT);
    }
}
