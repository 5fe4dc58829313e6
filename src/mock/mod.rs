//! The built-in CCC stand-in: a real HTTP server that answers CreateAIAgentCall and
//! DescribeTelCdr (and DescribeAICallExtractResult, DescribeAIAnalysisResult) like the service does (signature checks, error envelope, a strict 1-second
//! rate window per action), with simulated latency, scripted faults and simulated call lives
//! (each created call rings, is answered or not, talks, ends and leaves a call record), and
//! that keeps its own figures at `/__admin/stats`.
//!
//! Order of checks for each request: arrival is counted (every request, for its action's window
//! figures) → signature → action and version → the action's strict rate window (only
//! authenticated requests are admitted into it, as the service limits per account and action)
//! → body parameters → the callee's scripted outcome (CreateAIAgentCall) or the records
//! visible now (DescribeTelCdr).

mod analysis;
mod arrival;
mod calls;
mod extract;
mod faults;
mod lines;
mod params;
mod push;
mod slow_start;
mod stats;
mod tel_cdr;
mod verify;

pub use calls::{CallScript, SimulatedCall, AGENT_NAME, DEFAULT_CALLER};
pub use faults::{Faults, FaultsError, Outcome};
pub use lines::{CallLength, Length};
pub use push::{PushOptions, PushScript, PushStats, RETRIES as PUSH_RETRIES, UUID_HEADER};
pub use stats::{ActionStats, MockStats};
pub use tel_cdr::{MAX_LIST, MAX_PAGE_SIZE, MAX_SPAN_SECS};
pub use verify::{verify, Refusal, MAX_SKEW_SECS};

/// The API actions the stand-in serves.
pub const ACTIONS: [&str; 4] = [
    crate::ccc::ACTION,
    tel_cdr::ACTION,
    extract::ACTION,
    analysis::ACTION,
];

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::secret::Secret;
use stats::Recorder;

/// Unix seconds; injectable so tests can check signatures made at a fixed time and drive the
/// simulated calls' lives.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A clock a test sets and moves by hand (see [`MockOptions::clock`]).
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(unix_seconds: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(unix_seconds)))
    }

    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, unix_seconds: i64) {
        self.0.store(unix_seconds, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// The clock to give the stand-in.
    pub fn clock(&self) -> Clock {
        let at = self.0.clone();
        Arc::new(move || at.load(Ordering::SeqCst))
    }
}

pub struct MockOptions {
    /// Accepted (SecretId, SecretKey) pairs.
    pub credentials: Vec<(String, Secret)>,
    /// At most this many requests in any sliding 1-second window; 0 = no limit.
    pub rate_limit: u32,
    /// Median reply latency in ms, log-normal with a long tail; 0 = none.
    pub latency_ms: u64,
    pub faults: Faults,
    pub clock: Clock,
    /// Keep the last accepted body per callee in the figures (tests); off for big benchmarks.
    pub keep_bodies: bool,
    /// Each new connection's first request is read this long after the connection was
    /// accepted (the real endpoint's TLS handshake); zero = none.
    pub new_connection_delay: Duration,
    /// A connection idle for longer than this is dropped without a word, as a NAT or a firewall
    /// drops one: nothing on it is read again and nothing is answered (tests); `None` = never.
    pub drop_idle_after: Option<Duration>,
    /// Calls each AI agent takes at once (`FailedOperation.AcquireQuota` past it); 0 = no limit.
    pub agent_lines: u32,
    /// How long a call rings and talks: it holds its agent's line (with `agent_lines`) and
    /// its record says so.
    pub call_length: CallLength,
    /// A call's record is returned by DescribeTelCdr from this long after the call ended
    /// (rounded up to whole seconds).
    pub cdr_delay: Duration,
    /// Share of the calls no fault script names that are answered (the rest: not answered,
    /// busy, rejected, dead number); 1.0 = every one.
    pub answer_ratio: f64,
    /// Push every call record to a receiver (the service's data push); `None`: no push.
    pub push: Option<PushOptions>,
}

/// The default `cdr_delay`.
pub const DEFAULT_CDR_DELAY: Duration = Duration::from_secs(2);

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            credentials: Vec::new(),
            rate_limit: crate::config::DOCUMENTED_CAP,
            latency_ms: 0,
            faults: Faults::default(),
            clock: Arc::new(crate::times::now_secs),
            keep_bodies: true,
            new_connection_delay: Duration::ZERO,
            drop_idle_after: None,
            agent_lines: 0,
            call_length: CallLength::default(),
            cdr_delay: DEFAULT_CDR_DELAY,
            answer_ratio: 1.0,
            push: None,
        }
    }
}

struct Shared {
    opts: MockOptions,
    recorder: Mutex<Recorder>,
    lines: Mutex<lines::AgentLines>,
    calls: Mutex<calls::CallBook>,
    pushes: Mutex<push::PushQueue>,
}

/// The stand-in's view of its agents' lines, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct LineFigures {
    /// Requests refused with `FailedOperation.AcquireQuota`.
    pub refused: u64,
    /// The most calls one agent held at once.
    pub max_active: u32,
    /// (start, end) of every call placed.
    pub spans: Vec<(Instant, Instant)>,
}

impl Shared {
    fn new(opts: MockOptions) -> Shared {
        Shared {
            opts,
            recorder: Mutex::new(Recorder::default()),
            lines: Mutex::new(lines::AgentLines::default()),
            calls: Mutex::new(calls::CallBook::default()),
            pushes: Mutex::new(push::PushQueue::default()),
        }
    }

    fn pushes<T>(&self, f: impl FnOnce(&mut push::PushQueue) -> T) -> T {
        let mut q = self.pushes.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut q)
    }

    fn calls<T>(&self, f: impl FnOnce(&mut calls::CallBook) -> T) -> T {
        let mut b = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut b)
    }

    fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> T) -> T {
        let mut r = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut r)
    }

    fn agents<T>(&self, f: impl FnOnce(&mut lines::AgentLines) -> T) -> T {
        let mut a = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut a)
    }

    /// A line for a call on `agent` held for `held`, unless every line of it is busy (always,
    /// without lines).
    fn take_line(&self, agent: u64, created: Instant, held: Duration) -> bool {
        let lines = self.opts.agent_lines;
        lines == 0
            || self.agents(|a| {
                let took = a.take_until(agent, lines, created, created + held);
                tracing::trace!(
                    agent,
                    took,
                    active = a.active(agent, created),
                    held_ms = held.as_millis() as u64,
                    "stand-in line"
                );
                took
            })
    }
}

/// A running stand-in (tests and benchmarks). Dropping it stops the server.
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accepted: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pusher: Option<tokio::task::JoinHandle<()>>,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(api).get(no_action))
        .route("/__admin/stats", get(admin_stats))
        .route("/__admin/reset", post(admin_reset))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            date_from_clock,
        ))
        .with_state(shared)
}

/// The `Date` header from the stand-in's own clock (as the service's comes from its clock), so
/// a test can give the stand-in a clock far from the dialer's and see the dialer notice.
async fn date_from_clock(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(req).await;
    let now = (shared.opts.clock)();
    if let Some(text) = crate::times::http_date(now) {
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            response.headers_mut().insert(header::DATE, v);
        }
    }
    response
}

impl MockServer {
    /// Serve on `listener` until `shutdown` resolves.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        opts: MockOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = slow_start::SlowStart {
            listener,
            delay: opts.new_connection_delay,
            drop_idle_after: opts.drop_idle_after,
            accepted: Arc::new(AtomicU64::new(0)),
        };
        let shared = Arc::new(Shared::new(opts));
        let pusher = tokio::spawn(push_loop(shared.clone()));
        let app = router(shared).into_make_service_with_connect_info::<arrival::Arrivals>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        pusher.abort();
        served
    }

    /// Bind 127.0.0.1 on a free port and serve in the background.
    pub async fn spawn(opts: MockOptions) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        MockServer::spawn_on(listener, opts)
    }

    /// Serve on `listener` in the background (a test that takes the endpoint down and brings it
    /// back on the same port).
    pub fn spawn_on(
        listener: tokio::net::TcpListener,
        opts: MockOptions,
    ) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let listener = slow_start::SlowStart {
            listener,
            delay: opts.new_connection_delay,
            drop_idle_after: opts.drop_idle_after,
            accepted: accepted.clone(),
        };
        let shared = Arc::new(Shared::new(opts));
        let pusher = Some(tokio::spawn(push_loop(shared.clone())));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone()).into_make_service_with_connect_info::<arrival::Arrivals>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(MockServer {
            addr,
            shared,
            accepted,
            stop: Some(stop),
            task: Some(task),
            pusher,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A full copy of the figures (per-callee maps included: costly for big runs).
    pub fn stats(&self) -> MockStats {
        self.shared.record(|r| r.stats.clone())
    }

    /// Arrival instants of every CreateAIAgentCall request so far, in the order they arrived
    /// (handlers may record them a little out of order: see `arrival`).
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        let mut log = self.shared.record(|r| r.log.clone());
        log.sort();
        log
    }

    /// Arrival instants of every request naming `action` so far, in the order they arrived.
    pub fn action_arrivals(&self, action: &str) -> Vec<std::time::Instant> {
        if action == stats::CREATE {
            return self.arrivals();
        }
        let mut log = self.shared.record(|r| {
            r.action_log
                .iter()
                .find(|(a, _)| **a == action)
                .map(|(_, log)| log.clone())
                .unwrap_or_default()
        });
        log.sort();
        log
    }

    /// Arrival instants of every request that named a callee, with the callee, in the order
    /// they arrived.
    pub fn arrivals_by_callee(&self) -> Vec<(std::time::Instant, String)> {
        let mut log = self.shared.record(|r| r.callee_log.clone());
        log.sort_by_key(|(at, _)| *at);
        log
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The agents' lines: refusals for capacity, the most calls at once, every call's span.
    pub fn lines(&self) -> LineFigures {
        self.shared.agents(|a| LineFigures {
            refused: a.refused,
            max_active: a.max_active,
            spans: a.spans.clone(),
        })
    }

    /// Calls of `agent` holding a line now.
    pub fn active_calls(&self, agent: u64) -> u32 {
        self.shared.agents(|a| a.active(agent, Instant::now()))
    }

    /// CreateAIAgentCall requests seen so far: cheap enough to poll.
    pub fn requests(&self) -> u64 {
        self.shared.record(|r| r.stats.requests)
    }

    /// Requests naming `action` seen so far: cheap enough to poll.
    pub fn action_requests(&self, action: &str) -> u64 {
        self.shared
            .record(|r| r.stats.actions.get(action).map_or(0, |a| a.requests))
    }

    /// Every call created so far, in creation order, with its simulated life and record
    /// (visible to DescribeTelCdr or not yet).
    pub fn calls(&self) -> Vec<SimulatedCall> {
        self.shared.calls(|b| b.all().to_vec())
    }

    /// The call created with `session_id`.
    pub fn call(&self, session_id: &str) -> Option<SimulatedCall> {
        self.shared
            .calls(|b| b.index_of(session_id).and_then(|i| b.get(i).cloned()))
    }

    pub async fn shutdown(mut self) {
        if let Some(pusher) = self.pusher.take() {
            pusher.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(pusher) = self.pusher.take() {
            pusher.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn envelope(response: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "Response": response }).to_string(),
    )
        .into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn api_error(shared: &Shared, action: &'static str, code: &str, message: &str) -> Response {
    shared.record(|r| r.error(action, code));
    envelope(serde_json::json!({
        "Error": { "Code": code, "Message": message },
        "RequestId": request_id(),
    }))
}

/// Log-normal around the median with sigma 0.6 (p99 ≈ 4× the median), capped at 20×.
fn latency(median_ms: u64) -> Duration {
    if median_ms == 0 {
        return Duration::ZERO;
    }
    // Box–Muller from two uniforms.
    let u1: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rand::random::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let ms = (median_ms as f64 * (0.6 * z).exp()).min(median_ms as f64 * 20.0);
    Duration::from_secs_f64(ms / 1000.0)
}

/// Every API request: counted, verified, routed to its action, limited by its action's window.
async fn api(
    State(shared): State<Arc<Shared>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // When the request reached the host (see `arrival`), not when this handler ran.
    let arrived = extensions
        .get::<axum::extract::ConnectInfo<arrival::Arrivals>>()
        .and_then(|c| c.0.take())
        .unwrap_or_else(Instant::now);
    let opts = &shared.opts;
    let named = headers
        .get("x-tc-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let served = ACTIONS.iter().copied().find(|a| *a == named);
    // A request naming no served action counts with CreateAIAgentCall (the top-level figures).
    let action = served.unwrap_or(stats::CREATE);
    shared.record(|r| r.arrival(action, arrived, arrival::wall_ms(arrived), opts.rate_limit));

    if let Err(refusal) = verify::verify(&headers, &body, &opts.credentials, (opts.clock)()) {
        return api_error(&shared, action, refusal.code, &refusal.message);
    }
    if served.is_none() {
        return api_error(
            &shared,
            action,
            "InvalidAction",
            &format!(
                "the action is not found (this stand-in serves {})",
                ACTIONS.join(", ")
            ),
        );
    }
    let version_ok =
        headers.get("x-tc-version").and_then(|v| v.to_str().ok()) == Some(crate::ccc::VERSION);
    if !version_ok {
        return api_error(
            &shared,
            action,
            "NoSuchVersion",
            "the API version is not found (expected 2020-02-10)",
        );
    }
    if !shared.record(|r| r.admit(action, arrived, opts.rate_limit)) {
        return api_error(
            &shared,
            action,
            "RequestLimitExceeded",
            "request rate exceeds the limit of this API",
        );
    }
    if action != stats::CREATE {
        let n = shared.record(|r| r.action_request(action));
        match opts.faults.action_outcome(action, n) {
            None | Some(Outcome::Ok) => {}
            Some(Outcome::Hang(d)) => tokio::time::sleep(d).await,
            Some(other) => return scripted_failure(&shared, action, other).await,
        }
    }
    match action {
        tel_cdr::ACTION => describe_tel_cdr(&shared, &body).await,
        extract::ACTION => describe_extract_result(&shared, &body, extract::ACTION).await,
        analysis::ACTION => describe_extract_result(&shared, &body, analysis::ACTION).await,
        _ => create_ai_agent_call(&shared, body, arrived).await,
    }
}

/// A scripted reply that is not the action's own answer: an API error, an HTML gateway error, or
/// a reply cut off after its headers.
async fn scripted_failure(shared: &Shared, action: &'static str, outcome: Outcome) -> Response {
    tokio::time::sleep(latency(shared.opts.latency_ms)).await;
    match outcome {
        Outcome::Error { code, message } | Outcome::CreatedError { code, message } => {
            api_error(shared, action, &code, &message)
        }
        Outcome::Http(status) => gateway_error(shared, action, status),
        _ => cut_reply(),
    }
}

fn gateway_error(shared: &Shared, action: &'static str, status: u16) -> Response {
    shared.record(|r| r.error(action, &format!("HTTP {status}")));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        format!("<html><body><h1>{status}</h1>gateway error</body></html>"),
    )
        .into_response()
}

/// Headers, then the body fails and the connection is cut.
fn cut_reply() -> Response {
    let cut = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by fault script"))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(cut),
    )
        .into_response()
}

async fn describe_tel_cdr(shared: &Shared, body: &[u8]) -> Response {
    let now = (shared.opts.clock)();
    let delay = latency(shared.opts.latency_ms);
    let answer = tel_cdr::check(body, now).map(|q| shared.calls(|b| tel_cdr::answer(b, &q, now)));
    tokio::time::sleep(delay).await;
    match answer {
        Err(refusal) => api_error(shared, tel_cdr::ACTION, refusal.code, &refusal.message),
        Ok((total, list)) => envelope(serde_json::json!({
            "TotalCount": total,
            "TelCdrList": list,
            "TelCdrs": list,
            "RequestId": request_id(),
        })),
    }
}

/// DescribeAICallExtractResult and DescribeAIAnalysisResult: the same request, each its own
/// answer.
async fn describe_extract_result(shared: &Shared, body: &[u8], action: &'static str) -> Response {
    let now = (shared.opts.clock)();
    let delay = latency(shared.opts.latency_ms);
    let answer = extract::check(body, now).map(|q| {
        shared.calls(|b| {
            let call = b.index_of(&q.session_id).and_then(|i| b.get(i));
            if action == analysis::ACTION {
                analysis::answer(call, &q, now)
            } else {
                extract::answer(call, &q, now)
            }
        })
    });
    tokio::time::sleep(delay).await;
    match answer {
        Err(refusal) => api_error(shared, action, refusal.code, &refusal.message),
        Ok(list) => envelope(serde_json::json!({
            "ResultList": list,
            "RequestId": request_id(),
        })),
    }
}

/// The call a CreateAIAgentCall request creates: its script (the fault script's, else the
/// default), lived out from the stand-in's clock now (`created`: the line's clock then).
///
/// The stand-in's clock counts whole seconds; when it reads as the real clock, the real
/// milliseconds (rounded up) place the call's end within its second, so that its record is
/// visible only once its line is free.
fn new_call(shared: &Shared, parsed: &serde_json::Value, callee: &str) -> (SimulatedCall, Instant) {
    let opts = &shared.opts;
    let created = Instant::now();
    let real_ms = crate::times::now_ms();
    let second = (opts.clock)();
    let start_ms = if real_ms.div_euclid(1000) == second {
        real_ms + 1
    } else {
        second.saturating_mul(1000)
    };
    let int = |key: &str| parsed.get(key).and_then(|v| v.as_i64()).unwrap_or(0);
    let caller = parsed
        .get("Callers")
        .and_then(|v| v.get(0))
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_CALLER)
        .to_string();
    let placed = calls::Placed {
        session_id: uuid::Uuid::new_v4().to_string(),
        sdk_app_id: int("SdkAppId"),
        ai_agent_id: int("AIAgentId"),
        caller,
        callee: callee.to_string(),
    };
    let n = shared.calls(|b| b.created_for(callee));
    let script = opts
        .faults
        .call(callee, n)
        .unwrap_or_else(|| CallScript::default_for(opts.answer_ratio));
    let mut call = SimulatedCall::live(
        placed,
        &script,
        &opts.call_length,
        (second, start_ms),
        opts.cdr_delay,
    );
    if call.accept > 0 {
        call.tags = opts
            .faults
            .tags(callee, n)
            .unwrap_or_else(extract::default_tags);
        call.analysis = opts
            .faults
            .analysis(callee, n)
            .unwrap_or_else(analysis::default_items);
    }
    (call, created)
}

async fn create_ai_agent_call(shared: &Shared, body: Bytes, arrived: Instant) -> Response {
    let opts = &shared.opts;
    let action = stats::CREATE;
    let (parsed, callee) = match params::check(&body) {
        Ok(ok) => ok,
        Err(refusal) => return api_error(shared, action, refusal.code, &refusal.message),
    };
    let n = shared.record(|r| r.callee_request(&callee, arrived));
    let delay = latency(opts.latency_ms);
    let outcome = opts.faults.outcome(&callee, n);
    let creates = matches!(
        outcome,
        Outcome::Ok | Outcome::Hang(_) | Outcome::Drop | Outcome::CreatedError { .. }
    );
    let agent = parsed
        .get("AIAgentId")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let mut session_id = String::new();
    if creates {
        let (call, created) = new_call(shared, &parsed, &callee);
        if !shared.take_line(agent, created, call.held) {
            tokio::time::sleep(delay).await;
            return api_error(
                shared,
                action,
                "FailedOperation.AcquireQuota",
                "agent concurrency over the limit: every line of this AI agent is busy",
            );
        }
        session_id = call.session_id.clone();
        let n = shared.calls(|b| b.created_for(&callee));
        let script = opts.push.as_ref().map(|p| {
            opts.faults
                .push(&callee, n)
                .unwrap_or_else(|| push::PushScript::default_for(p))
        });
        let queued = shared.calls(|b| {
            let index = b.add(call.clone());
            match (&script, &opts.push) {
                (Some(script), Some(p)) => {
                    shared.pushes(|q| q.schedule(index, &call, script, p.delay))
                }
                _ => 0,
            }
        });
        shared.record(|r| r.stats.pushes.scheduled += queued);
    }
    match outcome {
        Outcome::Ok => {
            shared.record(|r| r.created(&callee, parsed, opts.keep_bodies));
            tokio::time::sleep(delay).await;
            success(&session_id)
        }
        Outcome::Hang(d) => {
            shared.record(|r| r.created(&callee, parsed, opts.keep_bodies));
            tokio::time::sleep(d).await;
            success(&session_id)
        }
        Outcome::Error { code, message } => {
            tokio::time::sleep(delay).await;
            api_error(shared, action, &code, &message)
        }
        Outcome::Http(status) => {
            tokio::time::sleep(delay).await;
            gateway_error(shared, action, status)
        }
        Outcome::CreatedError { code, message } => {
            // The call exists (and lives, and leaves its record); the reply is an error.
            shared.record(|r| r.created(&callee, parsed, opts.keep_bodies));
            tokio::time::sleep(delay).await;
            api_error(shared, action, &code, &message)
        }
        Outcome::Drop => {
            // The call exists (and lives, and leaves its record); the reply never completes:
            // headers, then the body fails and the connection is cut.
            shared.record(|r| r.created(&callee, parsed, opts.keep_bodies));
            tokio::time::sleep(delay).await;
            cut_reply()
        }
    }
}

/// The data push: every 100 ms, send the deliveries due by the stand-in's clock, each with up
/// to three retries, at most 16 at once. Runs for the server's life (nothing without a URL).
async fn push_loop(shared: Arc<Shared>) {
    let Some(opts) = shared.opts.push.clone() else {
        return;
    };
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the stand-in cannot push: no HTTP client");
            return;
        }
    };
    let opts = Arc::new(opts);
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let mut deliveries = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while deliveries.try_join_next().is_some() {}
        let now = (shared.opts.clock)();
        for due in shared.pushes(|q| q.take_due(now)) {
            let body = shared.calls(|b| b.get(due.call).map(|c| push::body(c, opts.extra_fields)));
            let Some(body) = body else { continue };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (shared, client, opts) = (shared.clone(), client.clone(), opts.clone());
            deliveries.spawn(async move {
                let _permit = permit;
                for n in 0..=push::RETRIES {
                    if n > 0 {
                        tokio::time::sleep(opts.retry_interval).await;
                    }
                    let ok = push::attempt(&client, &opts, &due.uuid, &body).await;
                    shared.record(|r| {
                        r.stats.pushes.attempts += 1;
                        if ok {
                            r.stats.pushes.delivered += 1;
                        } else {
                            r.stats.pushes.failed_attempts += 1;
                        }
                    });
                    if ok {
                        return;
                    }
                }
                shared.record(|r| r.stats.pushes.gave_up += 1);
            });
        }
    }
}

/// `GET /` without an action (the dialer's connection warm-ups): the service's error envelope,
/// with a body as the service's has; no API call, so not counted.
async fn no_action() -> Response {
    envelope(serde_json::json!({
        "Error": {
            "Code": "MissingParameter",
            "Message": "the request is missing the required parameter `Action`",
        },
        "RequestId": request_id(),
    }))
}

fn success(session_id: &str) -> Response {
    envelope(serde_json::json!({
        "SessionId": session_id,
        "RequestId": request_id(),
    }))
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Json<MockStats> {
    Json(shared.record(|r| r.stats.clone()))
}

async fn admin_reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.record(|r| r.reset());
    StatusCode::NO_CONTENT
}
