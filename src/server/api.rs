//! The HTTP API: campaigns under `/v1` (behind the bearer token), the OpenAPI document, and the
//! orchestrator's probes (see [`super::probes`]).
//!
//! Every refusal is JSON `{"error": {"code", "message"}}` with a 4xx status; a 5xx only when
//! the store fails. Refusals axum makes itself (a body over the limit, a method a route does
//! not serve, a path that does not decode) are rewritten into the same envelope by
//! [`json_refusals`], so a client never has to parse two shapes. Bodies are capped
//! (`--max-body`); CSV uploads are written to the uploads folder as they arrive (never held
//! whole in memory, see [`super::upload`]), so an interrupted intake can be finished from them
//! after a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::settings::CALL_PREFIX;
use super::{probes, CampaignSettings, CreateError, Created, Service};
use crate::contact::Status;
use crate::dispatch::now_ms;
use crate::store::{Campaign, CampaignState, StoreError};

pub const OPENAPI: &str = include_str!("openapi.json");

/// A refusal or failure, as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// An extractor's rejection (body too large, a malformed form, …) in the API's terms.
    pub fn rejected(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code_for(status), message)
    }
    fn invalid_settings(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_settings",
            message,
        )
    }
    fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "state store failed while serving a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> ApiError {
        match e {
            CreateError::Input(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_contacts", m)
            }
            CreateError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CreateError::Duplicate(m) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_contacts", m)
            }
            CreateError::Store(e) => e.into(),
            CreateError::Other(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
        }
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// The error code of a refusal that carries none of its own.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The media type without parameters, lowercased (`Multipart/Form-Data; boundary=x` →
/// `multipart/form-data`): media types are case-insensitive (RFC 9110 §8.3.1).
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Turn every 4xx/5xx answer that is not JSON already into the envelope, keeping the status and
/// headers (`Allow`, `WWW-Authenticate`). The one exception is the Prometheus exposition
/// (`text/plain; version=0.0.4`): `/metrics` answers 500 with the figures it could still read,
/// and a scraper wants those, not an envelope.
async fn json_refusals(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    let ct = content_type(res.headers()).to_ascii_lowercase();
    let json = essence(&ct) == "application/json";
    let prometheus = essence(&ct) == "text/plain" && ct.contains("version=");
    if !(status.is_client_error() || status.is_server_error()) || json || prometheus {
        return res;
    }
    let (parts, body) = res.into_parts();
    // axum's own refusals are a line of text; more than this is not a message.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let mut parts = parts;
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let mut allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_string();
        // Some of axum's 405s carry no `Allow`: the route table says what the path serves.
        if allowed.is_empty() {
            allowed = allowed_on(&path).join(", ");
            if let Ok(v) = header::HeaderValue::from_str(&allowed) {
                parts.headers.insert(header::ALLOW, v);
            }
        }
        format!("{method} is not served on {path}; allowed: {allowed}")
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    let mut out = ApiError::rejected(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// Every route [`router`] serves, as (method, path) in OpenAPI's spelling. Keep it in step with
/// `router`: tests/it/openapi.rs checks that `openapi.json` lists exactly these and that the
/// running service answers each one.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/campaigns"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{id}"),
    ("POST", "/v1/campaigns/{id}/pause"),
    ("POST", "/v1/campaigns/{id}/resume"),
    ("POST", "/v1/campaigns/{id}/cancel"),
    ("POST", "/v1/campaigns/{id}/requeue"),
    ("GET", "/v1/campaigns/{id}/results"),
    ("GET", "/v1/campaigns/{id}/contacts"),
    ("GET", "/v1/campaigns/{id}/report"),
    ("GET", "/v1/campaigns/{id}/outcomes/history"),
    ("POST", "/v1/campaigns/{id}/contacts"),
    ("POST", "/v1/campaigns/{id}/purge"),
    ("GET", "/v1/campaigns/{id}/contacts/{callee}"),
    ("POST", "/v1/calls"),
    ("POST", "/v1/dnc/reload"),
    ("GET", "/v1/dnc"),
    ("POST", "/v1/dnc/remove"),
    ("POST", "/v1/ccc/cdr"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The methods [`ROUTES`] serve on `path` (a concrete path: `{id}` matches any segment).
fn allowed_on(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|(_, route)| {
            let r: Vec<&str> = route.split('/').collect();
            r.len() == segments.len()
                && r.iter()
                    .zip(&segments)
                    .all(|(r, s)| r.starts_with('{') || r == s)
        })
        .map(|(m, _)| *m)
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The service's routes; `listen` is where it listens (what [`super::origin`] accepts).
pub fn router(svc: Arc<Service>, listen: std::net::SocketAddr) -> Router {
    let v1 = Router::new()
        .route("/campaigns", get(list_campaigns).post(create_campaign))
        .route("/campaigns/{id}", get(show_campaign))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
        .route("/campaigns/{id}/requeue", post(super::requeue::requeue))
        .route("/campaigns/{id}/results", get(results))
        .route(
            "/campaigns/{id}/contacts",
            get(super::contacts::list).post(add_contacts),
        )
        .route("/campaigns/{id}/report", get(report))
        .route(
            "/campaigns/{id}/outcomes/history",
            get(super::history::history),
        )
        .route("/campaigns/{id}/purge", post(purge))
        .route("/campaigns/{id}/contacts/{callee}", get(contact))
        .route("/calls", post(create_call))
        .route("/dnc/reload", post(reload_dnc))
        .route("/dnc", get(super::dnc::export))
        .route("/dnc/remove", post(super::dnc::remove))
        .route_layer(middleware::from_fn_with_state(svc.clone(), require_token))
        // The service's data push authenticates with HTTP Basic, not the bearer token.
        // Off or unauthenticated is answered before the body is read; then 64 KiB at most.
        .route(
            "/ccc/cdr",
            post(super::cdr_push::receive)
                .layer(DefaultBodyLimit::max(super::cdr_push::MAX_BODY_BYTES))
                .route_layer(middleware::from_fn_with_state(
                    svc.clone(),
                    super::cdr_push::gate,
                )),
        )
        .route("/openapi.json", get(openapi));
    let app = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .merge(super::console::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(svc.max_body_bytes))
        .layer(middleware::from_fn(json_refusals));
    super::origin::guarded(app, listen)
        .layer(middleware::from_fn(super::console::security_headers))
        .with_state(svc)
}

async fn require_token(State(svc): State<Arc<Service>>, req: Request, next: Next) -> Response {
    // Several `Authorization` headers are ambiguous (which one did a proxy check?): refused,
    // not judged by the first.
    let mut all = req.headers().get_all(header::AUTHORIZATION).iter();
    let given = all.next().map(|v| v.as_bytes());
    let several = all.next().is_some();
    if !several && super::auth::allows(svc.token.as_ref(), given) {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if several {
                "send one `Authorization` header, not several"
            } else {
                "a valid `Authorization: Bearer <token>` header is required"
            },
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        r
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// A campaign as the API shows it.
#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub priority: i64,
    pub created_at: String,
    /// The campaign's zone (IANA name); the `_local` fields are in it.
    pub timezone: String,
    pub created_at_local: String,
    pub total: u64,
    pub counts: BTreeMap<String, u64>,
    /// Requests sent per second over the last 10 seconds.
    pub rate_per_second: f64,
    /// The most this campaign may send per second: its `max_rate` (or the config's
    /// `campaign.max_rate`) when set, else the account's cap (`rate.requests_per_second`, shared
    /// by every campaign).
    pub rate_cap_per_second: f64,
    /// Seconds until every contact is final at the current rate (`null` when not dialling).
    pub eta_seconds: Option<f64>,
    /// The campaign's AI agent's lines as this process sees them (`null` before it dialled).
    pub agent_lines: Option<crate::lines::AgentLines>,
    pub settings: serde_json::Value,
    /// The endpoint's outage while one holds this (unfinished) campaign back.
    pub outage: Option<OutageView>,
    /// Placed contacts by their latest call's outcome (`null` unless `[outcomes]` is enabled).
    pub outcomes: Option<OutcomesView>,
    /// When its contacts and attempts were deleted (`purge`, `[store] retain`), if they were.
    pub purged_at: Option<String>,
}

/// A campaign's placed contacts by their latest call's outcome.
#[derive(Debug, Serialize)]
pub struct OutcomesView {
    /// Every class, 0 when none: contacts by their latest call's outcome.
    pub by_outcome: BTreeMap<String, u64>,
    /// Placed calls whose outcome is not known yet.
    pub awaiting: u64,
    /// Lost replies still being looked up in the call records.
    pub reconciling: u64,
    /// Answered among the contacts whose latest call ended (`null` before any ended).
    pub answer_rate: Option<f64>,
    /// Why outcome tracking stopped (an account-level refusal of DescribeTelCdr), with the
    /// fix; `null` while it runs. Dialling goes on without it.
    pub stopped: Option<String>,
    /// Contacts answered at least once (redials included).
    pub reached: u64,
    /// Contacts done dialling whose every call ended unanswered.
    pub not_reached: u64,
    /// Contacts waiting for a redial.
    pub redials_pending: u64,
}

impl From<crate::store::OutcomeCounts> for OutcomesView {
    fn from(c: crate::store::OutcomeCounts) -> Self {
        let mut by_outcome: BTreeMap<String, u64> = crate::outcomes::classes::OutcomeClass::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), 0))
            .collect();
        for (k, n) in &c.by_class {
            by_outcome.insert(k.clone(), *n);
        }
        OutcomesView {
            answer_rate: c.answer_rate().map(|r| (r * 10_000.0).round() / 10_000.0),
            by_outcome,
            awaiting: c.awaiting,
            reconciling: c.reconciling,
            stopped: None,
            reached: c.reached,
            not_reached: c.not_reached,
            redials_pending: c.redials_pending,
        }
    }
}

/// "endpoint unreachable since …, next probe at …", as the API shows it.
#[derive(Debug, Serialize)]
pub struct OutageView {
    pub since: String,
    pub next_probe_at: String,
    pub probes_failed: u32,
    pub last_error: String,
    pub message: String,
}

impl From<crate::outage::Outage> for OutageView {
    fn from(o: crate::outage::Outage) -> Self {
        OutageView {
            since: rfc3339(o.since),
            next_probe_at: rfc3339(o.next_probe_at),
            probes_failed: o.probes_failed,
            message: o.describe(),
            last_error: o.last_error,
        }
    }
}

/// `ms` in `zone`, RFC 3339 with its offset.
fn local_rfc3339(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| crate::calling::gate::rfc3339_in(t, zone))
        .unwrap_or_default()
}

/// A campaign's calling rules: its own window over the config's `[calling]`.
fn calling_of(svc: &Service, c: &Campaign) -> crate::calling::settings::Calling {
    settings_of(c)
        .calling_rules(svc.config())
        .unwrap_or_else(|_| svc.config().calling.clone())
}

/// A campaign's zone (its window's, else the config's).
fn zone_of(svc: &Service, c: &Campaign) -> jiff::tz::TimeZone {
    calling_of(svc, c).zone().clone()
}

fn settings_of(c: &Campaign) -> CampaignSettings {
    c.settings
        .as_deref()
        .and_then(|s| serde_json::from_str::<CampaignSettings>(s).ok())
        .unwrap_or_default()
}

pub(super) fn rfc3339(ms: i64) -> String {
    crate::times::rfc3339_millis(ms)
}

pub(super) async fn view(svc: &Service, c: Campaign) -> ApiResult<CampaignView> {
    let counts = svc.counts(&c).await?;
    let total = counts.values().sum();
    let now = now_ms();
    let dialling_since = svc.campaigns.dialling_since(c.id);
    let start = super::pace::window_start(now, dialling_since);
    let (sent, first) = svc.store.sends_window(c.id, start).await?;
    let cap = rate_cap(svc, &c);
    let rate = super::pace::rate(sent, first, start, now, cap);
    let open = counts.get(&Status::Pending).copied().unwrap_or(0)
        + counts.get(&Status::InFlight).copied().unwrap_or(0);
    let eta = super::pace::eta(open, rate, c.state == CampaignState::Active);
    let agent_lines = svc.campaigns.base().lines.of(agent_of(svc, &c));
    let mut all: BTreeMap<String, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for (s, n) in counts {
        all.insert(s.as_str().to_string(), n);
    }
    let outage = matches!(c.state, CampaignState::Active | CampaignState::Paused)
        .then(|| svc.campaigns.base().outage.current())
        .flatten()
        .map(OutageView::from);
    let zone = zone_of(svc, &c);
    let outcomes = match svc.outcomes {
        Some(ref t) => Some(OutcomesView {
            stopped: t.stopped(),
            ..OutcomesView::from(svc.store.outcome_counts(c.id).await?)
        }),
        None => None,
    };
    Ok(CampaignView {
        id: c.id,
        name: c.name,
        state: c.state.as_str().to_string(),
        reason: c.reason,
        priority: c.priority,
        created_at: rfc3339(c.created_at),
        timezone: crate::calling::zones::name(&zone),
        created_at_local: local_rfc3339(c.created_at, &zone),
        total,
        counts: all,
        rate_per_second: rate,
        rate_cap_per_second: cap,
        eta_seconds: eta,
        agent_lines,
        settings: c
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Null),
        outage,
        outcomes,
        purged_at: c.purged_at.map(rfc3339),
    })
}

pub(super) async fn find(svc: &Service, id: &str) -> ApiResult<Campaign> {
    let missing = || ApiError::not_found(format!("no campaign with id {id:?}"));
    let id: i64 = id.parse().map_err(|_| missing())?;
    svc.store.campaign(id).await?.ok_or_else(missing)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only campaigns in these states (comma-separated).
    state: Option<String>,
}

async fn list_campaigns(
    State(svc): State<Arc<Service>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("{}; expected state", e.body_text())))?;
    let states = match q.state.as_deref() {
        None => None,
        Some(text) => Some(
            text.split(',')
                .map(|s| s.trim().parse::<CampaignState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "state {text:?}: expected one or more of active, paused, cancelled, completed (comma-separated)"
                    ))
                })?,
        ),
    };
    let mut out = Vec::new();
    for c in svc.store.campaigns().await? {
        if states.as_ref().is_none_or(|s| s.contains(&c.state)) {
            out.push(view(&svc, c).await?);
        }
    }
    Ok(Json(json!({ "campaigns": out })))
}

async fn show_campaign(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let c = find(&svc, &id).await?;
    Ok(Json(view(&svc, c).await?))
}

/// The campaign's report ([`crate::report`]), the same as `ccc-dialer report --format json`.
async fn report(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::report::Report>> {
    let c = find(&svc, &id).await?;
    Ok(Json(crate::report::build(&svc.store, &c, now_ms()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeQuery {
    #[serde(default)]
    forget_dial_history: bool,
}

/// Delete a finished campaign's contacts, attempts, dial history and upload ([`crate::purge`]).
async fn purge(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    query: Result<Query<PurgeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let c = find(&svc, &id).await?;
    if svc.campaigns.is_running(c.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "campaign {} is {} and dialling: only a finished or cancelled campaign is purged (cancel it first)",
                c.id, c.state
            ),
        ));
    }
    let (outcome, purged) = crate::purge::purge(
        &svc.store,
        &c,
        &svc.uploads,
        q.forget_dial_history,
        now_ms(),
    )
    .await?;
    if let Some(why) = crate::purge::refusal(&c, &outcome) {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", why));
    }
    svc.forget_counts(c.id);
    let counts = purged.map(|p| p.counts).unwrap_or_default();
    let c = find(&svc, &id).await?;
    Ok(Json(json!({
        "purged": {
            "contacts": counts.contacts,
            "attempts": counts.attempts,
            "dials": counts.dials,
            "inbox_files": counts.inbox_files,
        },
        "purged_at": c.purged_at.map(rfc3339),
        "campaign": view(&svc, c).await?,
    })))
}

/// Query parameters of an upload, plain CSV or multipart alike; with multipart they override the
/// same keys of the `settings` part.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
    priority: Option<i64>,
    /// Create the campaign even when another one has the same contacts file.
    #[serde(default)]
    allow_duplicate: bool,
    /// Create it paused: nothing is dialled until it is resumed.
    paused: Option<bool>,
}

async fn create_campaign(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let is_multipart = essence(content_type(&headers)) == "multipart/form-data";
    // The contacts go to the uploads folder as they arrive (never whole in memory); kept there
    // only once the request is found good.
    let (csv, mut settings) = if is_multipart {
        let mut form = Multipart::from_request(req, &svc)
            .await
            .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
        let mut csv = None;
        let mut settings = CampaignSettings::default();
        let mut seen_settings = false;
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let duplicate = || {
                ApiError::invalid_settings(format!(
                    "form part {name:?} given more than once: expected one `contacts` part and at most one `settings` part"
                ))
            };
            match name.as_str() {
                "contacts" if csv.is_some() => return Err(duplicate()),
                "contacts" => csv = Some(super::upload::spool_field(&svc.uploads, &mut field).await?),
                "settings" if seen_settings => return Err(duplicate()),
                "settings" => {
                    seen_settings = true;
                    let data = field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
                    settings =
                        CampaignSettings::from_json(&data).map_err(ApiError::invalid_settings)?
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown form part {other:?}: expected `contacts` (the CSV) and optionally `settings` (JSON)"
                    )))
                }
            }
        }
        let csv = csv.ok_or_else(|| {
            ApiError::bad_request("no `contacts` part: expected the contacts CSV in it")
        })?;
        (csv, settings)
    } else {
        let body =
            super::upload::spool_body(&svc.uploads, req.into_body(), svc.max_body_bytes).await?;
        (body, CampaignSettings::default())
    };
    if q.name.is_some() {
        settings.name = q.name;
    }
    if q.priority.is_some() {
        settings.priority = q.priority;
    }
    if q.paused.is_some() {
        settings.paused = q.paused;
    }
    settings
        .validate_with(svc.config())
        .and_then(|()| settings.refuse_reserved_name())
        .map_err(ApiError::invalid_settings)?;
    let kept = csv.keep().await.map_err(super::upload::cannot_keep)?;
    let source = kept.path;
    let default_name = format!("upload-{}", &kept.sha256[..12]);
    let created = svc
        .create_campaign_checked(&source, settings, default_name, None, q.allow_duplicate)
        .await
        .map_err(|e| without_upload_path(e, &source))?;
    created_response(&svc, created).await
}

/// An intake error names the file it read; for an upload that is the server's own folder,
/// which is none of the client's business: the client sent "the contacts".
fn without_upload_path(e: CreateError, source: &std::path::Path) -> CreateError {
    match e {
        CreateError::Input(m) => {
            CreateError::Input(m.replace(&source.display().to_string(), "contacts"))
        }
        other => other,
    }
}

/// `POST /v1/campaigns/{id}/contacts`: more contacts for an existing campaign (a CSV body),
/// through the same intake and report as a new campaign's.
async fn add_contacts(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<serde_json::Value>> {
    let c = find(&svc, &id).await?;
    let csv = super::upload::spool_body(&svc.uploads, req.into_body(), svc.max_body_bytes).await?;
    if csv.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_contacts",
            "the body is empty: expected the contacts CSV (a header row with a `callee` column, then one row per contact)",
        ));
    }
    let source = csv.keep().await.map_err(super::upload::cannot_keep)?.path;
    // Detached from this request: a client that goes away part-way does not cut the import
    // short (the campaign's state and runner are settled after it, whoever waits).
    let (svc2, source2) = (svc.clone(), source.clone());
    let intake = tokio::spawn(async move { svc2.add_contacts(&c, &source2).await })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| without_upload_path(e, &source))?;
    let c = find(&svc, &id).await?;
    Ok(Json(json!({
        "campaign": view(&svc, c).await?,
        "intake": intake,
    })))
}

async fn created_response(svc: &Service, created: Created) -> ApiResult<Response> {
    let status = if created.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = json!({
        "campaign": view(svc, created.campaign).await?,
        "intake": created.intake,
        "existing": created.existing,
    });
    Ok((status, Json(body)).into_response())
}

/// Keep a body made here as `uploads/<sha256>.csv` (see [`super::upload`]).
async fn save_upload(svc: &Service, bytes: &[u8]) -> ApiResult<PathBuf> {
    let mut spool = super::upload::Spool::create(&svc.uploads)
        .await
        .map_err(super::upload::cannot_keep)?;
    spool
        .write(bytes)
        .await
        .map_err(super::upload::cannot_keep)?;
    Ok(spool.keep().await.map_err(super::upload::cannot_keep)?.path)
}

async fn pause(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let c = find(&svc, &id).await?;
    refuse_if_done(&c, "pause")?;
    svc.campaigns.pause(c.id, "paused by an operator").await?;
    show_campaign(State(svc), Path(id)).await
}

async fn resume(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let c = find(&svc, &id).await?;
    refuse_if_done(&c, "resume")?;
    if !c.intake_done {
        // Its contacts are not all in (an intake cut off whose file is gone, or one still
        // running): started now, it would dial part of the file, or sit active and idle.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "campaign {} cannot be resumed: its intake has not finished ({})",
                c.id,
                c.reason
                    .as_deref()
                    .unwrap_or("its contacts are still being imported")
            ),
        ));
    }
    svc.campaigns.resume(c.id).await?;
    show_campaign(State(svc), Path(id)).await
}

async fn cancel(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let c = find(&svc, &id).await?;
    refuse_if_done(&c, "cancel")?;
    svc.campaigns.cancel(c.id).await?;
    show_campaign(State(svc), Path(id)).await
}

fn refuse_if_done(c: &Campaign, action: &str) -> ApiResult<()> {
    if matches!(c.state, CampaignState::Cancelled | CampaignState::Completed) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("campaign {} is {}: cannot {action} it", c.id, c.state),
        ));
    }
    Ok(())
}

/// The results CSV, streamed page by page from the store.
async fn results(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = find(&svc, &id).await?;
    let store = svc.store.clone();
    let extras = store.result_extras(c.id).await?;
    let mut head = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    head.write_record(crate::results::header(&extras))
        .map_err(|e| internal(e.to_string()))?;
    let header_row = head.into_inner().map_err(|e| internal(e.to_string()))?;
    let pages = futures_util::stream::unfold(Some(0u64), move |after| {
        let store = store.clone();
        let extras = extras.clone();
        async move {
            let after = after?;
            match store.results_page_with(c.id, after, 2000, extras).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|(r, _)| r.line);
                    let mut w = csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new());
                    for (row, cells) in &page {
                        if let Err(e) = crate::results::write_row(&mut w, row, cells) {
                            return Some((Err(std::io::Error::other(e)), None));
                        }
                    }
                    match w.into_inner() {
                        Ok(buf) => Some((Ok(Bytes::from(buf)), next)),
                        Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                    }
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    use futures_util::StreamExt;
    let stream =
        futures_util::stream::once(async move { Ok(Bytes::from(header_row)) }).chain(pages);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-results.csv\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One contact: status, every attempt, and why it waits.
async fn contact(
    State(svc): State<Arc<Service>>,
    Path((id, callee)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let c = find(&svc, &id).await?;
    let cfg = svc.config();
    let normalised = crate::phone::normalize(
        &callee,
        &cfg.campaign.default_country,
        cfg.campaign.callee_format,
    )
    .unwrap_or_else(|_| callee.clone());
    let detail = svc
        .store
        .contact_detail(c.id, &normalised)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("campaign {} has no contact {callee:?}", c.id))
        })?;
    let now = now_ms();
    let calling = calling_of(&svc, &c);
    let zone = calling.zone().clone();
    let starts = calling
        .not_before
        .map(|t| t.as_millisecond())
        .filter(|start| *start > now);
    let mut waiting = match detail.status.as_str() {
        "pending" if c.state == CampaignState::Paused => Some(json!({
            "gate": "campaign_paused",
            "reason": c.reason,
            "until": null,
        })),
        "pending" if starts.is_some() => Some(json!({
            "gate": "not_before",
            "reason": "the campaign's start time (calling.not_before) has not come",
            "until": starts.map(rfc3339),
        })),
        "pending" if detail.next_at > now => Some(json!({
            "gate": match &detail.gate {
                Some(g) => g.as_str(),
                None if detail.reschedules > 0 && detail.error_code.is_some() => "rescheduled",
                None => "retry_backoff",
            },
            "reason": match detail.gate.as_deref() {
                // The live estimate: "2 of 2 lines busy, next try in 4 s".
                Some(crate::store::AGENT_LINES_BUSY) => Some(
                    svc.campaigns
                        .base()
                        .lines
                        .describe(agent_of(&svc, &c))
                        .unwrap_or_else(|| "every line of the AI agent was busy; one is likely free now".into()),
                ),
                // The outcome that asked for the redial, and which dial comes next.
                Some(crate::redial::GATE) => detail.error_message.clone(),
                Some(g) => Some(gate_reason(g).to_string()),
                None => detail.error_code.clone(),
            },
            "until": rfc3339(detail.next_at),
        })),
        "pending" => Some(json!({
            "gate": "rate_budget",
            "reason": "due: waiting for its turn within the account's rate",
            "until": null,
        })),
        _ => None,
    };
    if let Some(w) = waiting.as_mut().and_then(|w| w.as_object_mut()) {
        let local = w
            .get("until")
            .and_then(|u| u.as_str())
            .and_then(|u| u.parse::<jiff::Timestamp>().ok())
            .map(|t| crate::calling::gate::rfc3339_in(t, &zone));
        w.insert("until_local".into(), json!(local));
    }
    let mut body = serde_json::to_value(&detail)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let mut learned = svc.store.contact_results(detail.id).await?;
    let sessions: Vec<serde_json::Value> = svc
        .store
        .contact_sessions(detail.id)
        .await?
        .into_iter()
        .map(|(session_id, o)| {
            let r = learned
                .iter()
                .position(|r| r.session_id == session_id)
                .map(|i| learned.swap_remove(i))
                .unwrap_or_default();
            json!({
                "session_id": session_id,
                "tags": r.tags.iter().map(|t| json!({
                    "name": t.name,
                    "type": t.info_type,
                    "value": t.value,
                    "content": t.info_content,
                })).collect::<Vec<_>>(),
                "analysis": r.analysis.map(|a| json!({
                    "summary": a.summary,
                    "mood": a.mood,
                    "intention": a.intention,
                })),
                "outcome": o.map(|o| json!({
                    "outcome": o.class,
                    "end_status": o.end_status,
                    "end_status_string": o.end_status_string,
                    "duration_s": o.duration_s,
                    "answered_at": o.answered_at.map(|t| rfc3339(t * 1000)),
                    "ended_at": o.ended_at.map(|t| rfc3339(t * 1000)),
                    "hangup_side": o.hangup_side,
                    "source": o.source,
                })),
            })
        })
        .collect();
    if let Some(obj) = body.as_object_mut() {
        // Times as RFC 3339, like every other time the API gives (they were Unix ms).
        let next =
            (detail.status == "pending" && detail.next_at > 0).then(|| rfc3339(detail.next_at));
        obj.insert("next_at".into(), json!(next));
        if let Some(attempts) = obj.get_mut("attempts").and_then(|a| a.as_array_mut()) {
            for a in attempts.iter_mut().filter_map(|a| a.as_object_mut()) {
                for key in ["started_at", "sent_at", "finished_at"] {
                    if let Some(v) = a.get_mut(key) {
                        *v = json!(v.as_i64().map(rfc3339));
                    }
                }
            }
        }
        obj.insert("waiting".into(), waiting.unwrap_or(serde_json::Value::Null));
        obj.insert("campaign_state".into(), json!(c.state.as_str()));
        obj.insert("sessions".into(), json!(sessions));
    }
    Ok(Json(body))
}

/// The most a campaign may send per second: its own cap within the account's.
fn rate_cap(svc: &Service, c: &Campaign) -> f64 {
    let account = svc.config().rate.requests_per_second;
    c.settings
        .as_deref()
        .and_then(|s| serde_json::from_str::<CampaignSettings>(s).ok())
        .unwrap_or_default()
        .max_rate(svc.config())
        .map_or(account, |own| own.min(account))
}

/// The AI agent a campaign dials (its settings over the config's).
fn agent_of(svc: &Service, c: &Campaign) -> u64 {
    settings_of(c).request_defaults(svc.config()).ai_agent_id
}

/// What a calling-rule gate means, for people.
fn gate_reason(gate: &str) -> &'static str {
    match gate {
        "window_closed" => "outside the calling window in the contact's time zone",
        "min_gap" => "called too recently (calling.min_gap, across campaigns)",
        "daily_cap" => "called enough today (calling.max_per_day, across campaigns)",
        "caller_cooldown" => "every caller number is resting or at its daily cap",
        _ => "held by a calling rule",
    }
}

/// Reload the do-not-call lists from their files (numbers added are honoured before the next
/// attempt; a failed reload keeps the lists in use); on a PostgreSQL store every replica
/// reloads its own.
async fn reload_dnc(State(svc): State<Arc<Service>>) -> ApiResult<Json<serde_json::Value>> {
    let rules = svc.campaigns.base().rules.clone();
    let report = tokio::task::spawn_blocking(move || rules.dnc.reload())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_dnc",
                e.to_string(),
            )
        })?;
    // Every other replica on the store reloads its lists too.
    svc.store.announce(crate::store::Notice::Dnc).await?;
    Ok(Json(json!({
        "files": report.files,
        "numbers": report.numbers,
        "bad_lines": report.bad_count,
        "bad": report.bad.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

/// A single ad-hoc call: a campaign of one, on the same limiter and store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    callee: String,
    #[serde(default, deserialize_with = "super::settings::whole::option")]
    ai_agent_id: Option<u64>,
    #[serde(default)]
    callers: Option<Vec<String>>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// Idempotency keys: what a client may send to make a retried POST safe.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 100
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

async fn create_call(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let call: CallBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body: {e}: expected JSON {{\"callee\": \"+86…\", \"variables\": {{…}}}}"
        ))
    })?;
    let cfg = svc.config();
    let callee = crate::phone::normalize(
        &call.callee,
        &cfg.campaign.default_country,
        cfg.campaign.callee_format,
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_callee",
            format!("callee {:?}: {e}", call.callee),
        )
    })?;
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v.to_str().unwrap_or_default();
            if !valid_key(k) {
                return Err(ApiError::bad_request(
                    "Idempotency-Key: expected 1 to 100 letters, digits, '-', '_' or '.'",
                ));
            }
            Some(k.to_string())
        }
        None => None,
    };
    // A quick answer for the common case; two keyless POSTs for one number at once (to one
    // replica or two) are decided by the store when the call's campaign is created.
    if key.is_none() {
        if let Some(open) = svc.store.open_call_to(&callee).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "a call to this callee is already queued or in flight (campaign {open}); send an Idempotency-Key to make retries safe"
                ),
            ));
        }
    }
    let name = match &key {
        Some(k) => format!("{CALL_PREFIX}{k}"),
        None => format!("{CALL_PREFIX}{}", uuid::Uuid::new_v4()),
    };
    let settings = CampaignSettings {
        name: Some(name.clone()),
        ai_agent_id: call.ai_agent_id,
        callers: call.callers,
        variables: call.variables,
        ..Default::default()
    };
    // Before anything is kept: a bad ai_agent_id or caller is the request's fault, not the file's.
    settings
        .validate_with(cfg)
        .map_err(ApiError::invalid_settings)?;
    if let Some(existing) = svc.store.find_campaign(&name).await? {
        // A retry with the same key is the same call, never a second one; the same key with
        // another request is a client bug, refused rather than answered with the wrong call.
        let same_settings = existing
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_str::<CampaignSettings>(s).ok())
            .is_some_and(|stored| stored == settings);
        let detail = svc.store.contact_detail(existing.id, &callee).await?;
        let different = match (detail, same_settings) {
            (None, _) => Some("another callee"),
            (Some(_), false) => {
                Some("the same callee with another ai_agent_id, callers or variables")
            }
            (Some(_), true) => None,
        };
        if let Some(what) = different {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "this Idempotency-Key was used for a different request ({what}, campaign {}); send a new key for a new call",
                    existing.id
                ),
            ));
        }
        return call_response(&svc, existing, &callee, StatusCode::OK).await;
    }
    // The callee is already normalised; the campaign's one-row file goes through the same
    // intake as any other (uploads are content-addressed, so calls to one number share it).
    let source = save_upload(&svc, format!("callee\n{callee}\n").as_bytes()).await?;
    let created = svc
        .create_call_campaign(&source, settings, name, key.is_none())
        .await
        .map_err(|e| without_upload_path(e, &source))?;
    // Created by the same key at the same moment (on another replica): the same call.
    let status = if created.existing {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    call_response(&svc, created.campaign, &callee, status).await
}

async fn call_response(
    svc: &Service,
    c: Campaign,
    callee: &str,
    status: StatusCode,
) -> ApiResult<Response> {
    let detail = svc.store.contact_detail(c.id, callee).await?;
    let body = json!({
        "campaign_id": c.id,
        "campaign": c.name,
        "callee": callee,
        "status": detail.as_ref().map(|d| d.status.clone()),
        "session_id": detail.and_then(|d| d.session_id),
        "contact_url": format!("/v1/campaigns/{}/contacts/{}", c.id, callee),
    });
    Ok((status, Json(body)).into_response())
}
