//! The account's send window shared by every replica of a PostgreSQL store: the decision "this
//! request may leave at this slot" is taken by the database, in the transaction that writes the
//! request down (the attempt in `begin_attempt_checked`, a query's row in `sending`), against
//! the send times of every process on the store. The local limiter still paces each process, so
//! the database is asked about once per request; its answer is the guarantee.
//!
//! The rule, per API action, on the database's clock (`clock_timestamp()`: the replicas' clocks
//! do not matter): each send keeps a *left-by* time, the latest moment it may have left. A slot
//! is handed out no earlier than the `cap`-th latest left-by plus one second and
//! [`crate::limiter::WINDOW_MARGIN`], and slots go out in increasing order. A reserved send's
//! left-by is its slot plus [`HOLD`]: it must leave by then or not at all (the dispatcher
//! releases it unsent, as after a halt). Once it has left, its process tells the database when
//! ([`Store::window_left`]), and its left-by moves to that moment (measured on the database's
//! clock as "`clock_timestamp()` minus how long ago", never earlier than the real departure).
//! So `HOLD` costs rate only while a departure is not yet reported, which at the cap's pace
//! (request `i + cap` asks about a second after request `i`) is never in steady running.
//!
//! A slot further ahead than [`HORIZON`] is refused ([`StoreError::WindowFull`]): nothing is
//! written down, and the caller waits until the window has room (no spin), so a request is
//! never written down long before it can leave.
//!
//! SQLite stores are one process, which the local limiter already caps: there the window is not
//! shared ([`Store::share_window`] says so) and every call here answers "no slot".

use std::time::{Duration, Instant};

use super::{pg, Store, StoreError};

/// How long after its slot a request may still leave. Checked before the request is handed to
/// its connection, with [`LEAVE_ALLOWANCE`] kept for the connection's own set-up.
pub const HOLD: Duration = Duration::from_millis(100);
/// The part of [`HOLD`] left for opening a connection and writing the request (a new TLS
/// connection to the real endpoint takes about 40 ms).
pub const LEAVE_ALLOWANCE: Duration = Duration::from_millis(50);
/// The furthest ahead a slot is handed out; beyond it the database answers "not before".
pub const HORIZON: Duration = Duration::from_millis(250);
/// Windows larger than this are not shared through the database (a window is one row rewritten
/// per request, its size the cap): a `requests_per_second` above it is a lifted cap, paced by
/// each process alone.
pub const MAX_SHARED_CAP: usize = 1000;

/// The spacing between a send and the one `cap` sends after it: one second and the margin.
pub(crate) fn spacing() -> Duration {
    crate::limiter::WINDOW + crate::limiter::WINDOW_MARGIN
}

/// A slot the database reserved for one request of `action`.
#[derive(Debug, Clone)]
pub struct Slot {
    pub(crate) action: String,
    /// The send's left-by as the database stored it (µs on its clock): what
    /// [`Store::window_left`] finds it by.
    pub(crate) recorded_us: i64,
    /// When the question was sent and its answer came back (this process's clock): the
    /// database read its clock in between.
    pub(crate) asked: Instant,
    pub(crate) answered: Instant,
    /// How far ahead of the database's clock the slot was.
    pub(crate) ahead: Duration,
}

impl Slot {
    /// The slot on the database's clock (µs since the epoch).
    pub fn slot_us(&self) -> i64 {
        self.recorded_us - i64::try_from(HOLD.as_micros()).unwrap_or(0)
    }

    /// The latest moment it may leave on the database's clock (µs since the epoch): what the
    /// window counts it at until its departure is told.
    pub fn left_by_us(&self) -> i64 {
        self.recorded_us
    }

    /// The moment to send at: never before the slot on the database's clock.
    pub fn at(&self) -> Instant {
        self.answered + self.ahead
    }

    /// The last moment the request may be handed to its connection: never after the slot plus
    /// [`HOLD`] (less [`LEAVE_ALLOWANCE`]) on the database's clock.
    pub fn deadline(&self) -> Instant {
        self.asked + self.ahead + HOLD - LEAVE_ALLOWANCE
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

    /// The request of `slot` left `ago` before now, or never reached a connection (`None`: its
    /// slot is given back).
    pub async fn window_left(&self, slot: &Slot, ago: Option<Duration>) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg::window::left(pg, slot, ago).await,
            None => Ok(()),
        }
    }
}
