//! The account's send window shared by every replica of a PostgreSQL store: the decision "this
//! request may leave at this slot" is taken by the database, in the transaction that writes the
//! request down (the attempt in `begin_attempt_checked`, a query's row in `sending`), against
//! the send times of every process on the store. The local limiter still paces each process, so
//! the database is asked about once per request; its answer is the guarantee.
//!
//! The rule, per API action, on the database's clock (`clock_timestamp()`: the replicas' clocks
//! do not matter). A slot is handed out no earlier than the `cap`-th latest *counted* send plus
//! one second and [`crate::limiter::WINDOW_MARGIN`], slots go out strictly increasing, and a
//! slot further ahead than [`HORIZON`] is refused. A send counts:
//! - once its process told the database when it left ([`Store::window_left`]): at that moment,
//!   measured on the database's clock as "`clock_timestamp()` minus how long ago", never earlier
//!   than the real departure;
//! - until then, at `GREATEST(left-by, now)`, its left-by being its slot plus the hold it asked
//!   for (see [`Latency::hold`]): as if leaving right now, whatever the slot said. A request
//!   handed to its connection in time can still leave later (a new TLS connection, a stalled
//!   write, a paused host), and its report can be lost with its process; while nobody knows,
//!   every other reservation treats it as leaving at the moment it decides, so one that is
//!   granted (its slot within the horizon, hence the `cap`-th latest counted send more than a
//!   second before now) has only reported sends, which really left no later than counted, at
//!   or before that bound;
//! - after its bound ([`Store::set_request_timeout`]: the slot and its hold plus the HTTP
//!   client's whole-request timeout and [`UNREPORTED_MARGIN`]): at the bound. A request not
//!   written by then was cancelled by its client's timeout and never leaves; one that left
//!   without a report (its process killed) left before it. So a killed replica's last unreported
//!   sends cost the others that much rate for about the request timeout, never the cap.
//!
//! The hold only bounds how late a request may still be handed to its connection
//! ([`Slot::deadline`]): a request the host ran later is not sent at all (the dispatcher releases
//! it, as after a halt). It is sized per reservation from how long this process's database takes
//! from the reservation to the commit ([`Latency`]), between [`MIN_HOLD`] and [`MAX_HOLD`]: a
//! slow database widens it rather than making every request too late. One slower still than
//! that, [`TOO_LATE_IN_A_ROW`] requests in a row, is an error
//! ([`StoreError::WindowTooSlow`]) the dialler stops on and the outcome tracker reports, never a
//! silent loop of requests written down and released.
//!
//! A refused reservation ([`StoreError::WindowFull`]) writes nothing down, and the caller waits
//! until the window has room (no spin), so a request is never written down long before it can
//! leave.
//!
//! SQLite stores are one process, which the local limiter already caps: there the window is not
//! shared ([`Store::share_window`] says so) and every call here answers "no slot".

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{pg, Store, StoreError};

/// The least a request may be late for its slot: what a database that answers at once gets.
pub const MIN_HOLD: Duration = Duration::from_millis(100);
/// The most: past it a request waited so long for the database that it is not sent (and past
/// [`TOO_LATE_IN_A_ROW`] of them, sending stops with an error).
pub const MAX_HOLD: Duration = Duration::from_secs(1);
/// The part of the hold left for opening a connection and writing the request (a new TLS
/// connection to the real endpoint takes about 40 ms).
pub const LEAVE_ALLOWANCE: Duration = Duration::from_millis(50);
/// The furthest ahead a slot is handed out; beyond it the database answers "not before".
pub const HORIZON: Duration = Duration::from_millis(250);
/// Requests of one action in a row that were too late for their slot, after which the database
/// is taken as too slow to send through ([`StoreError::WindowTooSlow`]): a second of them at
/// the account's cap, each with the widest hold.
pub const TOO_LATE_IN_A_ROW: u32 = 20;
/// Added to the HTTP client's request timeout for the bound of an unreported send: the timeout
/// is a timer of the sending process, which a busy host runs late.
pub const UNREPORTED_MARGIN: Duration = Duration::from_secs(5);
/// The request timeout assumed until [`Store::set_request_timeout`] says otherwise: the
/// default of `tencentcloud.request_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Windows larger than this are not shared through the database (a window is one row rewritten
/// per request, its size the cap): a `requests_per_second` above it is a lifted cap, paced by
/// each process alone.
pub const MAX_SHARED_CAP: usize = 1000;

/// The spacing between a send and the one `cap` sends after it: one second and the margin.
pub(crate) fn spacing() -> Duration {
    crate::limiter::WINDOW + crate::limiter::WINDOW_MARGIN
}

/// How long this process's database takes from a reservation to the moment the request may
/// leave (the question's round trip, the rest of the transaction, its commit), and how many
/// requests in a row were too late for their slot. One per process: the database's speed is
/// what it measures, whatever the action.
#[derive(Debug, Default)]
pub struct Latency {
    /// The recent worst (µs): a new measure above it replaces it, and it decays by a sixteenth
    /// per measure, so a slow spell widens the hold at once and a fast one narrows it within a
    /// few dozen requests.
    recent_us: AtomicU64,
    late_in_a_row: AtomicU32,
}

impl Latency {
    /// A reservation took `took` until its request could leave.
    pub fn observe(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .recent_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(took.max(r - r / 16))
            });
    }

    /// The hold to ask for: twice the recent worst latency plus [`LEAVE_ALLOWANCE`], so that a
    /// request whose reservation takes as long as the recent ones is in time with as much to
    /// spare again, within [`MIN_HOLD`]..=[`MAX_HOLD`].
    pub fn hold(&self) -> Duration {
        let recent = Duration::from_micros(self.recent_us.load(Ordering::Relaxed));
        (LEAVE_ALLOWANCE + recent.saturating_mul(2)).clamp(MIN_HOLD, MAX_HOLD)
    }

    /// One more request too late for its slot: how many in a row now.
    pub(crate) fn late(&self) -> u32 {
        self.late_in_a_row.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A request was in time.
    pub(crate) fn in_time(&self) {
        self.late_in_a_row.store(0, Ordering::Relaxed);
    }
}

/// A slot the database reserved for one request of `action`.
#[derive(Debug, Clone)]
pub struct Slot {
    pub(crate) action: String,
    /// The slot on the database's clock (µs since the epoch): its name in the window.
    pub(crate) slot_us: i64,
    /// How late after its slot it may still leave (its left-by is the slot plus this).
    pub(crate) hold: Duration,
    /// When the question was sent and its answer came back (this process's clock): the
    /// database read its clock in between.
    pub(crate) asked: Instant,
    pub(crate) answered: Instant,
    /// How far ahead of the database's clock the slot was.
    pub(crate) ahead: Duration,
    /// This process's measure of its database, told how long this reservation took.
    pub(crate) latency: Arc<Latency>,
}

impl Slot {
    /// The slot on the database's clock (µs since the epoch).
    pub fn slot_us(&self) -> i64 {
        self.slot_us
    }

    /// How late after its slot it may still be handed to its connection (with
    /// [`LEAVE_ALLOWANCE`] for the connection): what its left-by adds to the slot.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The moment to send at: never before the slot on the database's clock.
    pub fn at(&self) -> Instant {
        self.answered + self.ahead
    }

    /// The last moment the request may be handed to its connection: never after the slot plus
    /// its hold (less [`LEAVE_ALLOWANCE`]) on the database's clock.
    pub fn deadline(&self) -> Instant {
        self.asked + self.ahead + self.hold.saturating_sub(LEAVE_ALLOWANCE)
    }
}

/// What `begin_attempt_checked` wrote down: the attempt's number, and its slot in the shared
/// window when the store shares one.
#[derive(Debug, Clone)]
pub struct Begun {
    pub n: i64,
    pub slot: Option<Slot>,
}

impl Store {
    /// Share `action`'s window at `rate` requests per second with every process on this store
    /// (PostgreSQL, a rate up to [`MAX_SHARED_CAP`]): from now on the store reserves a slot for
    /// each request of `action` it writes down. Returns whether it does; SQLite stores (one
    /// process) and lifted caps do not.
    pub fn share_window(&self, action: &str, rate: f64) -> bool {
        let cap = (rate.ceil() as usize).max(1);
        match self.pg() {
            Some(pg) if cap <= MAX_SHARED_CAP => {
                pg.share_window(action, cap);
                true
            }
            Some(_) => {
                tracing::warn!(
                    action,
                    rate,
                    "a rate above {MAX_SHARED_CAP} per second is taken as a lifted cap: each process paces itself and the database does not share the window"
                );
                false
            }
            None => false,
        }
    }

    /// Whether requests of `action` take their slot from the database.
    pub fn shares_window(&self, action: &str) -> bool {
        self.pg().is_some_and(|pg| pg.window_cap(action).is_some())
    }

    /// The request of `slot` left at `at` (this process's clock), or never reached a connection
    /// (`None`: its slot is given back). Reports that come while another is on its way to the
    /// database go with the next one, in one statement.
    pub async fn window_left(&self, slot: &Slot, at: Option<Instant>) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg::window::left(pg, slot, at).await,
            None => Ok(()),
        }
    }

    /// The HTTP client's whole-request timeout (`tencentcloud.request_timeout`): a request
    /// handed to its connection is cancelled by then, so an unreported send of this process
    /// counts as leaving "now" in the shared window until its slot, its hold, this and
    /// [`UNREPORTED_MARGIN`] passed, never longer.
    pub fn set_request_timeout(&self, timeout: Duration) {
        if let Some(pg) = self.pg() {
            pg.windows().set_request_timeout(timeout);
        }
    }
}
