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
//! 2. [`Departing`]: the request body notes the moment its bytes were written to the
//!    connection's socket (the write call that took their last byte returned), which is after
//!    any connection set-up (TLS included), after the connection's task really ran, and after
//!    any pause of the host between the two; the dispatcher hands that to the limiter like a
//!    late timer wake-up ([`crate::limiter::Departure`]). Noting the moment the connection
//!    *took* the body, as before, left the write itself unseen: on the loaded 2-core host the
//!    dialer was paused 7-8 ms between the two, more than the window's 6 ms margin, and the
//!    stand-in counted 21 in one second. [`TimingLayer`], reqwest's connector wrapped, tells
//!    [`warm_up`] how many connections it opened. This holds over HTTP/1.1 only: there hyper
//!    writes the request in the connection's task as soon as it takes the body, and drops its
//!    bytes after the write (a test below holds hyper to that). Over HTTP/2 the body becomes
//!    DATA frames queued on a stream, written later by the connection's own task (shared by
//!    every stream), a path no test here checks. Hence [`crate::ccc::Client`] is built
//!    `http1_only` although the endpoint offers HTTP/2.
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

/// A request body that notes the moment its bytes were written to the connection (see the
/// module doc, 2).
///
/// hyper takes the body in the connection's own task, once the connection is ready (opened,
/// TLS done, or taken from the pool), and queues it beside the request's head: the connection
/// writes vectored (TCP and rustls both do), so hyper keeps the body's own bytes in its write
/// queue, hands them to the socket's write, and drops them once that write took their last
/// byte. The bytes are owned by a [`Written`] that notes the moment it is dropped: after the
/// write call returned, so never earlier than the request left, however long a busy host paused
/// the connection's task between taking the body and writing it (measured: 7-8 ms on the
/// loaded 2-core host, more than the window's margin). Whatever delayed the request before
/// that (a connection to open, a task run late) is before it too. A body dropped unsent after
/// its connection took it (the connection failed) notes its drop, too late rather than early;
/// one no connection took notes nothing.
pub struct Departing {
    data: Option<bytes::Bytes>,
    len: u64,
    /// Set when the connection takes the body: from then on a drop of the bytes means written.
    taken: Arc<std::sync::atomic::AtomicBool>,
}

impl Departing {
    pub fn new(data: Vec<u8>, on_leave: Option<OnLeave>) -> Departing {
        let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let len = data.len() as u64;
        let data = match on_leave {
            Some(on_leave) => bytes::Bytes::from_owner(Written {
                data,
                taken: taken.clone(),
                on_leave: Some(on_leave),
            }),
            None => data.into(),
        };
        Departing {
            len,
            data: Some(data),
            taken,
        }
    }
}

/// A request's bytes, which tell [`OnLeave`] when they are dropped after the connection took
/// them: once hyper's write of their last byte returned (see [`Departing`]).
struct Written {
    data: Vec<u8>,
    taken: Arc<std::sync::atomic::AtomicBool>,
    on_leave: Option<OnLeave>,
}

impl AsRef<[u8]> for Written {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.taken.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        if let Some(on_leave) = self.on_leave.take() {
            on_leave(Instant::now());
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
        self.taken.store(true, std::sync::atomic::Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection that keeps what was written to it and answers `200` once the whole request
    /// (ending with `body`) was written; it writes vectored, as TCP and rustls do.
    #[derive(Clone, Default)]
    struct Wire {
        written: Arc<Mutex<Vec<u8>>>,
        body: Vec<u8>,
        reader: Arc<Mutex<Option<std::task::Waker>>>,
        answered: Arc<std::sync::atomic::AtomicBool>,
    }

    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

    impl Wire {
        fn take(&self, bufs: &[std::io::IoSlice<'_>]) -> usize {
            let mut w = locked(&self.written);
            for b in bufs {
                w.extend_from_slice(b);
            }
            if w.ends_with(&self.body) {
                if let Some(waker) = locked(&self.reader).take() {
                    waker.wake();
                }
            }
            bufs.iter().map(|b| b.len()).sum()
        }
    }

    impl hyper::rt::Read for Wire {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<std::io::Result<()>> {
            let complete = locked(&self.written).ends_with(&self.body);
            if complete
                && !self
                    .answered
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                buf.put_slice(REPLY);
                return Poll::Ready(Ok(()));
            }
            *locked(&self.reader) = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl hyper::rt::Write for Wire {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(self.take(&[std::io::IoSlice::new(buf)])))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(self.take(bufs)))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The departure is noted once the connection wrote the request's last byte, not when it
    /// took the body: a pause of the host between the two (7-8 ms measured on a loaded 2-core
    /// host) must not make the window count the request earlier than it left. hyper's HTTP/1
    /// connection is what reqwest's run on; were it to drop the body's bytes before writing
    /// them, what the connection had written when the departure was noted would lack the body.
    #[tokio::test]
    async fn a_request_counts_as_gone_once_its_connection_wrote_its_last_byte() {
        let body = br#"{"SdkAppId":1400000000,"Callee":"+8613800000000"}"#.to_vec();
        let wire = Wire {
            body: body.clone(),
            ..Wire::default()
        };
        let on_wire_then: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (seen, on_wire) = (on_wire_then.clone(), wire.written.clone());
        let on_leave: OnLeave = Box::new(move |_| {
            *locked(&seen) = Some(locked(&on_wire).clone());
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(wire.clone())
            .await
            .expect("handshake on an in-memory connection");
        let driving = tokio::spawn(conn);
        let request = hyper::Request::post("http://ccc.example/")
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Departing::new(body.clone(), Some(on_leave)))
            .expect("a request");
        let reply = sender.send_request(request).await.expect("a reply");
        assert_eq!(reply.status(), 200);
        let then = locked(&on_wire_then)
            .clone()
            .expect("the departure was noted");
        assert!(
            then.ends_with(&body) && then.starts_with(b"POST "),
            "when the departure was noted the connection had written {:?}",
            String::from_utf8_lossy(&then)
        );
        drop(sender);
        let _ = driving.await;
    }

    /// A body no connection took (the request failed before one was ready) notes nothing: its
    /// departure stays the slot the window gave it.
    #[test]
    fn a_body_no_connection_took_notes_no_departure() {
        let noted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = noted.clone();
        let on_leave: OnLeave =
            Box::new(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst));
        drop(Departing::new(b"{}".to_vec(), Some(on_leave)));
        assert!(!noted.load(std::sync::atomic::Ordering::SeqCst));
    }
}
