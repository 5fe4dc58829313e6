//! When a request arrived: the moment its first bytes reached the stand-in's host, as the
//! kernel stamped them, not the moment the stand-in's handler got round to it.
//!
//! The stand-in is the judge of the rate cap, and it runs on the same host as the dialer under
//! test, often a loaded one. Stamped in the handler, an arrival carries the stand-in's own
//! scheduling delay: on a loaded 2-core host the handler ran up to 58 ms after the bytes were
//! there (loopback capture against handler stamps, issue 10), so request `i` stamped late and
//! request `i + 20` stamped on time made the stand-in count 21 or 22 in a second (and refuse
//! one with `RequestLimitExceeded`) while on the wire every 21 requests spanned more than
//! 1.005 s. The real service counts a request when it reaches it, whatever its own threads are
//! doing; on loopback the kernel's receive stamp is that moment (it is taken as the client's
//! write is delivered). Lateness of the dialer itself still shows: a request the dialer writes
//! late is stamped late.
//!
//! On Linux the stamp is `SO_TIMESTAMPNS`; elsewhere the moment the stand-in read the bytes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The arrival of the request being read on one connection, shared between the connection
/// (which stamps it) and the handler (which takes it).
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<Mutex<ConnState>>);

#[derive(Debug, Default)]
struct ConnState {
    /// When the connection may first deliver a request (see [`Arrivals::new`]).
    ready: Option<Instant>,
    /// The earliest moment the bytes of the request being read arrived, once any did.
    request: Option<Instant>,
}

impl Arrivals {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The arrivals of a connection whose start-up (the stand-in's model of a TLS handshake,
    /// see [`super::slow_start`]) is over at `ready`: no request on it arrives sooner.
    ///
    /// From the connection's acceptance, not from its first bytes: a handshake starts when the
    /// connection is opened. A connection the client opened ahead (or in the background, for a
    /// request that then took another) is ready when a request comes later, as a real one
    /// would be; counted from its first bytes, that request was stamped `handshake` after the
    /// client wrote it, a delay no client can see (the real handshake comes before the write),
    /// and the judge counted `cap + 1` in a second that held `cap`.
    pub fn ready_at(ready: Instant) -> Arrivals {
        Arrivals(Arc::new(Mutex::new(ConnState {
            ready: Some(ready),
            request: None,
        })))
    }

    /// Bytes arrived at `at`. The first bytes after a reply start a new request. `handshake`
    /// is what the connection's start-up costs when [`Arrivals::ready_at`] did not say when it
    /// is over: no request arrives sooner than that after the connection's first bytes.
    pub fn received(&self, at: Instant, handshake: std::time::Duration) {
        let mut s = self.lock();
        let ready = *s.ready.get_or_insert(at + handshake);
        if s.request.is_none() {
            s.request = Some(at.max(ready));
        }
    }

    /// A reply is being written: whatever is read next belongs to the next request.
    pub fn replied(&self) {
        self.lock().request = None;
    }

    /// The arrival of the request now being handled (taken: the next request has its own).
    pub fn take(&self) -> Option<Instant> {
        self.lock().request.take()
    }
}

/// The wall-clock milliseconds of `at` (an arrival in the recent past).
pub fn wall_ms(at: Instant) -> i64 {
    let (now, wall) = clock_pair();
    let ago = now.saturating_duration_since(at);
    let wall_ms = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    wall_ms - i64::try_from(ago.as_millis()).unwrap_or(0)
}

/// An `Instant` for a wall-clock stamp taken by the kernel a moment ago.
///
/// The conversion reads both clocks; a pair read across a preemption (the thread descheduled
/// between the two reads, for milliseconds on a loaded host or a vCPU the hypervisor paused)
/// would put the arrival that much too early, and an arrival stamped early by more than the
/// dialer's margin makes the judge count `cap + 1` in a second that held `cap`. So the wall
/// clock is read between two monotonic reads, and the pair is read again (a few times at
/// most, keeping the tightest) when the two were further apart than [`PAIR_SPREAD`].
#[cfg(target_os = "linux")]
fn instant_of(at: std::time::SystemTime) -> Instant {
    let (now, wall) = clock_pair();
    let ago = wall.duration_since(at).unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

/// A monotonic and a wall-clock reading of the same moment (see [`instant_of`]).
pub fn clock_pair() -> (Instant, std::time::SystemTime) {
    let mut best: Option<(std::time::Duration, Instant, std::time::SystemTime)> = None;
    for _ in 0..PAIR_TRIES {
        let before = Instant::now();
        let wall = std::time::SystemTime::now();
        let after = Instant::now();
        let spread = after.duration_since(before);
        if best.is_none_or(|(b, ..)| spread < b) {
            best = Some((spread, before + spread / 2, wall));
        }
        if spread <= PAIR_SPREAD {
            break;
        }
    }
    match best {
        Some((_, now, wall)) => (now, wall),
        None => (Instant::now(), std::time::SystemTime::now()),
    }
}

/// Two clock reads back to back take well under a microsecond; further apart, the thread was
/// descheduled between them.
const PAIR_SPREAD: std::time::Duration = std::time::Duration::from_micros(50);
const PAIR_TRIES: usize = 8;

/// Ask the kernel to stamp every received segment (`SO_TIMESTAMPNS`). Without it (an error),
/// reads are stamped when they happen.
pub fn enable(io: &tokio::net::TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        if let Err(e) = setsockopt(io, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(error = %e, "no kernel receive stamps: arrivals stamped when read");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = io;
}

/// Read from `io` into `buf` as `poll_read` would, returning when the bytes read arrived.
pub fn poll_read_stamped(
    io: &tokio::net::TcpStream,
    cx: &mut std::task::Context<'_>,
    buf: &mut tokio::io::ReadBuf<'_>,
) -> std::task::Poll<std::io::Result<Option<Instant>>> {
    use std::task::Poll;
    loop {
        match io.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let unfilled = buf.initialize_unfilled();
        match io.try_io(tokio::io::Interest::READABLE, || recv(io, unfilled)) {
            Ok((n, at)) => {
                buf.advance(n);
                let at = (n > 0).then(|| at.unwrap_or_else(Instant::now));
                return Poll::Ready(Ok(at));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// One non-blocking read; the kernel's receive stamp of the bytes read, when it gave one.
#[cfg(target_os = "linux")]
fn recv(io: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<Instant>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(
        io.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg[..]),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let mut at = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                let since_epoch = std::time::Duration::from(ts);
                at = Some(instant_of(std::time::UNIX_EPOCH + since_epoch));
            }
        }
    }
    Ok((msg.bytes, at))
}

#[cfg(not(target_os = "linux"))]
fn recv(io: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<Instant>)> {
    io.try_read(buf).map(|n| (n, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_opened_ahead_holds_no_request_and_a_fresh_one_holds_its_first() {
        let t0 = Instant::now();
        let handshake = Duration::from_millis(40);
        // Accepted at t0 and left in the pool: its first request, 5 s later, arrives when it
        // arrives (counted from its first bytes it was stamped 40 ms after it was written).
        let opened_ahead = Arrivals::ready_at(t0 + handshake);
        opened_ahead.received(t0 + Duration::from_secs(5), handshake);
        assert_eq!(opened_ahead.take(), Some(t0 + Duration::from_secs(5)));
        // A request written as soon as its connection was opened waits for the handshake.
        let fresh = Arrivals::ready_at(t0 + handshake);
        fresh.received(t0 + Duration::from_millis(1), handshake);
        assert_eq!(fresh.take(), Some(t0 + handshake));
        // The next request on it is not held.
        fresh.replied();
        fresh.received(t0 + Duration::from_millis(300), handshake);
        assert_eq!(fresh.take(), Some(t0 + Duration::from_millis(300)));
    }
}
