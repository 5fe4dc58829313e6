//! The HTTP listener: the API's router on hyper's HTTP/1 connections, within the limits of
//! [`super::limits`], so that clients that send slowly (or not at all) cannot hold the service:
//!
//! - headers must arrive within `header_timeout` (hyper's header read timeout, which also
//!   runs while a kept-alive connection waits for its next request);
//! - a request's body must arrive whole within `body_timeout` of its headers ([`Deadline`]);
//!   the request then fails and the connection is closed;
//! - at most `max_connections` are open at once. At the cap, the oldest connection that is
//!   not serving a request (one still sending headers, or idle between requests) is closed to
//!   make room for the new one; when every connection is serving a request, the new one waits
//!   in the listen backlog until one ends.
//!
//! A connection "serves a request" from its headers until the last byte of its response, so
//! a results CSV being streamed is never cut.
//!
//! Invariant: the registry's std `Mutex` is never held across an `.await`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::Service;

use super::limits::ServerLimits;
use crate::dispatch::Stop;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serve `app` on `listener` until `stop` leaves [`Stop::Run`]; then stop accepting, let each
/// connection finish its request in progress, and return once all are closed (the caller
/// bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<Stop>,
) -> std::io::Result<()> {
    let open = Arc::new(Registry::default());
    let mut tasks = tokio::task::JoinSet::new();
    'accept: loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // Out of file descriptors and the like: wait a moment rather than spin or die.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut stop) => break 'accept,
        };
        while open.len() >= limits.max_connections {
            if open.evict_oldest_idle() {
                continue;
            }
            // Every connection is serving a request: the new one waits for one to end.
            tokio::select! {
                _ = open.freed.notified() => {}
                _ = stopping(&mut stop) => break 'accept,
            }
        }
        let conn = open.add();
        let app = app.clone();
        let stop = stop.clone();
        tasks.spawn(connection(
            stream,
            app,
            limits.clone(),
            conn,
            open.clone(),
            stop,
        ));
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Until `stop` leaves [`Stop::Run`] (the watch guard dropped before returning).
async fn stopping(stop: &mut watch::Receiver<Stop>) {
    let _ = stop.wait_for(|s| *s != Stop::Run).await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: ServerLimits,
    conn: Arc<Conn>,
    open: Arc<Registry>,
    mut stop: watch::Receiver<Stop>,
) {
    let _slot = Slot {
        conn: conn.clone(),
        open,
    };
    let body_timeout = limits.body_timeout;
    let requests = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::new(&conn);
            let req = req.map(|b| Body::new(Deadline::new(b, body_timeout)));
            let mut app = app.clone();
            async move {
                let res = app.call(req).await?;
                Ok::<_, std::convert::Infallible>(res.map(|b| Tracked {
                    inner: b,
                    _busy: busy,
                }))
            }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), requests);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        // Closed to make room: dropping the connection closes the socket.
        _ = conn.evict.notified() => return,
        _ = stopping(&mut stop) => {}
    }
    // Stopping: finish the request in progress, take no other.
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// One open connection.
struct Conn {
    id: u64,
    /// Requests being served (headers in, response not yet sent whole).
    busy: AtomicUsize,
    evict: Notify,
}

#[derive(Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// A connection closed: room for a waiting one.
    freed: Notify,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn add(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            busy: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        self.lock().insert(conn.id, conn.clone());
        conn
    }

    /// Close the oldest connection serving no request; false when every one is serving one.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let idle = open
            .values()
            .find(|c| c.busy.load(Ordering::Acquire) == 0)
            .map(|c| c.id);
        let Some(id) = idle else { return false };
        if let Some(c) = open.remove(&id) {
            // `notify_one` keeps the wake-up if the task is not waiting yet.
            c.evict.notify_one();
            tracing::debug!(
                connection = id,
                "connection cap reached: closing an idle connection"
            );
        }
        true
    }
}

/// Removes its connection from the registry when the connection ends.
struct Slot {
    conn: Arc<Conn>,
    open: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.lock().remove(&self.conn.id);
        self.open.freed.notify_one();
    }
}

/// Marks its connection as serving a request while it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy until it is sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once `timeout` has passed since its headers arrived.
struct Deadline {
    inner: Incoming,
    timeout: Duration,
    expires: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Deadline {
        Deadline {
            inner,
            timeout,
            expires: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_timeout)")]
struct BodyTimedOut(Duration);

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.expires.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(this.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
