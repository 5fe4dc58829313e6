//! Connections to the endpoint: opened before the requests that need them, kept warm, and each
//! request's real departure noted.
//!
//! Why: the limiter's window guard takes the moment a request is handed to the HTTP client as
//! the moment it left. A request that has to open a connection first (TCP, then TLS: about
//! 40 ms to the real endpoint) leaves later than that, and so does one whose connection task a
//! busy host runs late (measured: up to 38 ms on a loaded 2-core host), while request `i + cap`
//! leaves at once on a warm connection: the service can see `cap + 1` requests in one second.
//! Two defences:
//!
//! 1. [`warm_up`]: before the first request, as many connections as requests may be in flight
//!    are opened; then [`KeepWarm`] touches the idle ones every [`KEEP_WARM_EVERY`] (so neither
//!    side closes them as idle; one the service closed is replaced there, ahead of need),
//!    holding free in-flight permits while it does so that it never takes the connection a
//!    request needs. The client speaks HTTP/1.1 only (see 2. for why), so every request in
//!    flight needs a connection of its own. Idle connections are closed after `tencentcloud.idle_timeout` (50 s by default), before
//!    a NAT, a firewall or the endpoint's keep-alive limit may have dropped them without a
//!    word: a request sent on a connection dropped that way gets no reply and ends in doubt.
//!    TCP keep-alive probes ([`KEEPALIVE_IDLE`]) keep the connections known to everything on
//!    the way and close one whose peer vanished. Each round touches every idle connection, so
//!    none reaches the idle timeout while the client lives and the pool keeps what the pace's
//!    worst case needs; a request that finds none idle all the same opens one, and
//!    [`Departing`] counts its set-up.
//! 2. [`Departing`]: the request body notes the moment the connection takes it, which is after
//!    any connection set-up (TLS included) and when the connection's task really runs; the
//!    dispatcher hands that to the limiter like a late timer wake-up
//!    ([`crate::limiter::Departure`]). [`TimingLayer`], reqwest's connector wrapped, tells
//!    [`warm_up`] how many connections it opened. This holds over HTTP/1.1 only: there hyper
//!    writes the request to the socket in the very poll that takes the body. Over HTTP/2 the
//!    body becomes DATA frames queued on a stream, written later by the connection's own task
//!    (shared by every stream), so the moment noted would be earlier than the write by however
//!    late a busy host runs that task, the gap this module closes. Hence
//!    [`crate::ccc::Client`] is built `http1_only` although the endpoint offers HTTP/2.
//!
//! A warm-up is a `GET /` with no action and no signature: the endpoint answers it with an
//! error and it is no API call, so it is neither rate-limited nor able to place a call. Its
//! answer is read to the end and ignored: only the connection matters. Read to the end, not a
//! `HEAD`: hyper puts a connection back in the pool before it delivers the end of a reply's
//! body, but after a reply without one it does so later, in a task of its own; the first
//! requests after a warm-up of `HEAD`s found the warmed connections not back yet on a loaded
//! host and opened new ones (the stand-in saw one such request arrive 40 ms after it left).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How often the pool is topped up and its idle connections touched: well inside the
/// usual server keep-alive timeouts (60 s and more).
pub const KEEP_WARM_EVERY: Duration = Duration::from_secs(20);
/// TCP keep-alive: the first probe after this long without traffic…
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// …then one every this long…
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// …and the connection is closed after this many unanswered.
pub const KEEPALIVE_RETRIES: u32 = 3;

/// The most connections kept warm, whatever `max_in_flight` says.
pub const MAX_WARM: usize = 256;

/// Told when a connection a request had to open became ready.
pub type OnConnect = Arc<dyn Fn(Instant) + Send + Sync>;

/// Told the moment a request's body was handed to its connection: when it really left.
pub type OnLeave = Box<dyn FnOnce(Instant) + Send + Sync>;

/// A request body that notes the moment the connection takes it (see the module doc, 2).
///
/// hyper takes the body in the connection's own task, once the connection is ready (opened,
/// TLS done, or taken from the pool), and writes the request out in the same poll. Whatever
/// delayed the request on its way there (a connection to open, a busy host that ran the
/// connection's task late) is before that moment; only the write itself is after it.
pub struct Departing {
    data: Option<bytes::Bytes>,
    len: u64,
    on_leave: Option<OnLeave>,
}

impl Departing {
    pub fn new(data: Vec<u8>, on_leave: Option<OnLeave>) -> Departing {
        Departing {
            len: data.len() as u64,
            data: Some(data.into()),
            on_leave,
        }
    }
}

impl http_body::Body for Departing {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let Some(data) = self.data.take() else {
            return Poll::Ready(None);
        };
        if let Some(on_leave) = self.on_leave.take() {
            on_leave(Instant::now());
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(if self.data.is_some() { self.len } else { 0 })
    }
}

tokio::task_local! {
    static ON_CONNECT: OnConnect;
}

/// Run `request` with `on_connect` told when each connection it starts opening is ready (hyper
/// starts the connection inside the request's own task, where this is visible; it may finish
/// it in the background after the request took another, and that one is reported too: right
/// for counting connections, not for timing a request).
pub async fn reporting_connects<F: Future>(on_connect: OnConnect, request: F) -> F::Output {
    ON_CONNECT.scope(on_connect, request).await
}

/// A connector layer that reports when each connection is ready (see [`reporting_connects`]):
/// how [`warm_up`] counts the connections it opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimingLayer;

impl<S> tower_layer::Layer<S> for TimingLayer {
    type Service = Timing<S>;

    fn layer(&self, inner: S) -> Timing<S> {
        Timing { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Timing<S> {
    inner: S,
}

impl<S, R> tower_service::Service<R> for Timing<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: R) -> Self::Future {
        let report = ON_CONNECT.try_with(Arc::clone).ok();
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            let conn = connecting.await;
            if let (Ok(_), Some(report)) = (&conn, report) {
                report(Instant::now());
            }
            conn
        })
    }
}

/// What a warm-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmed {
    /// Warm-up requests answered (any status): connections known to be open.
    pub answered: usize,
}

/// Open (or touch) `n` connections to `url`: one request first, then `n` at once, each on its
/// own connection (the pool hands an idle connection to one request at a time and opens new
/// ones for the rest). A request that finds a connection freed by a quicker one opens none, so
/// the round is repeated (a few times at most) until `n` connections were opened.
pub async fn warm_up(http: &reqwest::Client, url: &str, n: usize) -> Warmed {
    let n = n.clamp(1, MAX_WARM);
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    let on_connect: OnConnect = Arc::new(move |_| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    reporting_connects(on_connect, async {
        let mut answered = usize::from(read_out(http.get(url).send().await).await);
        if n == 1 {
            return Warmed { answered };
        }
        for _ in 0..WARM_ROUNDS {
            answered = touch(http, url, n).await;
            if answered < n || opened.load(std::sync::atomic::Ordering::Relaxed) >= n {
                break;
            }
        }
        Warmed { answered }
    })
    .await
}

/// Warm-up rounds at most (see [`warm_up`]).
const WARM_ROUNDS: usize = 4;

/// `n` warm-up requests at once; returns how many were answered. Each answer is read to its
/// end, so its connection is back in the pool when this returns (see the module doc).
async fn touch(http: &reqwest::Client, url: &str, n: usize) -> usize {
    let all = (0..n).map(|_| async { read_out(http.get(url).send().await).await });
    futures_util::future::join_all(all)
        .await
        .into_iter()
        .filter(|answered| *answered)
        .count()
}

/// Whether a warm-up was answered, once its reply was read to the end (at most
/// [`WARM_REPLY_MAX`] bytes of it: past that the connection is given up, not read on).
async fn read_out(reply: Result<reqwest::Response, reqwest::Error>) -> bool {
    let Ok(mut r) = reply else {
        return false;
    };
    let mut read = 0;
    while let Ok(Some(chunk)) = r.chunk().await {
        read += chunk.len();
        if read > WARM_REPLY_MAX {
            break;
        }
    }
    true
}

/// The most of a warm-up's reply read (the service's is a short error in JSON).
const WARM_REPLY_MAX: usize = 64 * 1024;

/// Keeps the connections warm in the background until dropped.
pub struct KeepWarm {
    task: tokio::task::JoinHandle<()>,
}

impl KeepWarm {
    /// Every [`KEEP_WARM_EVERY`], touch as many connections as there are free in-flight
    /// `permits`, holding all of them meanwhile: every idle connection is touched (the pool
    /// hands out the most recently used first, so a round of fewer would touch the same few
    /// each time and leave the others to the idle timeout), none is opened for a request
    /// because the round held the idle ones (a request waits for a permit until the round is
    /// over, one round trip), and together with the requests in flight never more than
    /// `max_in_flight` at once.
    pub fn start(
        http: reqwest::Client,
        url: String,
        permits: Arc<tokio::sync::Semaphore>,
    ) -> KeepWarm {
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(KEEP_WARM_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let free = permits.available_permits().min(MAX_WARM);
                if free == 0 {
                    continue;
                }
                let Ok(held) = permits.clone().try_acquire_many_owned(free as u32) else {
                    continue;
                };
                let answered = touch(&http, &url, free).await;
                drop(held);
                tracing::debug!(touched = free, answered, "connections kept warm");
            }
        });
        KeepWarm { task }
    }
}

impl Drop for KeepWarm {
    fn drop(&mut self) {
        self.task.abort();
    }
}
