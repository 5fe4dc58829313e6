//! New connections that start slowly: the stand-in's version of a TLS handshake.
//!
//! The real endpoint costs a new connection a TLS handshake (about 40 ms away from the region)
//! before its first request can be read; the stand-in speaks plain HTTP on loopback, where a
//! connection costs nothing. [`SlowStart`] wraps the listener so that each accepted connection
//! reads nothing until `delay` after it was accepted: a request sent as soon as the connection
//! was opened arrives late (counted from `delay` after the acceptance), the requests after it,
//! and a first request sent on a connection opened well before it, do not. A dialer that sends on fresh connections
//! sees its requests land later than it sent them; one that keeps connections warm does not.
//!
//! Each connection also stamps the arrival of the request it is reading (see
//! [`super::arrival`]): the handler takes it through [`Arrivals`] as connect info.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::arrival::{self, Arrivals};

/// A listener whose connections read nothing for `delay` after they are accepted.
pub struct SlowStart {
    pub listener: TcpListener,
    pub delay: Duration,
    /// See [`super::MockOptions::drop_idle_after`].
    pub drop_idle_after: Option<Duration>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
}

impl axum::serve::Listener for SlowStart {
    type Io = SlowStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (SlowStream, std::net::SocketAddr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        // Small requests go out in one segment each: without this the reply to a warm-up and the
        // next request may wait for each other (Nagle), which is not what is being modelled.
        let _ = io.set_nodelay(true);
        arrival::enable(&io);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let start = (!self.delay.is_zero()).then(|| Box::pin(tokio::time::sleep(self.delay)));
        let stream = SlowStream {
            io,
            start,
            delay: self.delay,
            // The handshake runs from the acceptance (see Arrivals::ready_at).
            arrivals: Arrivals::ready_at(std::time::Instant::now() + self.delay),
            drop_idle_after: self.drop_idle_after,
            last_active: tokio::time::Instant::now(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that holds its first read until its start-up delay is over, and stamps when
/// each request's first bytes arrived.
pub struct SlowStream {
    io: TcpStream,
    start: Option<Pin<Box<tokio::time::Sleep>>>,
    delay: Duration,
    arrivals: Arrivals,
    drop_idle_after: Option<Duration>,
    /// The last read or write; past `drop_idle_after`, the connection is dropped silently.
    last_active: tokio::time::Instant,
}

impl SlowStream {
    /// Idle for too long: the connection is gone for this side, though its peer cannot tell.
    fn dropped(&self) -> bool {
        self.drop_idle_after
            .is_some_and(|after| self.last_active.elapsed() > after)
    }
}

/// The handler learns its request's arrival through axum's connect info.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, SlowStart>>
    for Arrivals
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, SlowStart>) -> Arrivals {
        stream.io().arrivals.clone()
    }
}

impl AsyncRead for SlowStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(start) = self.start.as_mut() {
            if start.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.start = None;
        }
        if self.dropped() {
            // Never woken again: what arrives on it is never read, never answered.
            return Poll::Pending;
        }
        match arrival::poll_read_stamped(&self.io, cx, buf) {
            Poll::Ready(Ok(at)) => {
                if let Some(at) = at {
                    self.arrivals.received(at, self.delay);
                    self.last_active = tokio::time::Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for SlowStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.arrivals.replied();
        self.last_active = tokio::time::Instant::now();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
