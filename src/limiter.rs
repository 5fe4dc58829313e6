//! The one rate limiter every request passes through, first try or retry.
//!
//! Two layers, because pacing alone is not a guarantee:
//! 1. a governor token bucket two tokens deep, paced slightly *below* the configured rate
//!    ([`PACING_FACTOR`]), which spreads requests evenly (see [`BUCKET`] for why two);
//! 2. a sliding-window guard at the moment of sending: the request that would be the
//!    `cap + 1`-th within [`WINDOW`] (plus a small margin) waits. This holds even when the
//!    store's commit delays one request and not the next.
//!
//! A throttling reply from the service lowers the pace (another client may share the account's
//! quota) and the pace recovers step by step. The window is seeded from the send times the store
//! recorded before a restart ([`crate::store::Store::recent_sends`]), so a restart does not hand
//! out a fresh burst.
//!
//! The engine's order for each request: pace → write the attempt down → reserve a window slot →
//! send. The slot is taken after the commit so that a slow fsync cannot squeeze two sends
//! closer together than the window allows.
//!
//! The std `Mutex`es here are never held across an `.await`.

use governor::{Quota, RateLimiter};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(1);
/// Pace at 99.5% of the configured rate: at 20/s, request `i + 20` leaves 1.005 s after
/// request `i`, not 1.000 s.
pub const PACING_FACTOR: f64 = 0.995;
/// Extra spacing the window guard keeps between request `i` and request `i + cap`: room for the
/// jitter between the moment a request leaves and the moment the server notes its arrival. At
/// 5 ms, loopback runs on a busy 2-core host saw the tightest 20-request span at 1.0054 s and,
/// about once in fifteen runs of the crash test, 21 arrivals in a second. 8 ms paced to match
/// cost too much rate (19.78 req/s steady: see BENCHMARKS.md); 6 ms with the stall tracking of
/// [`Limiter::acquire_slot`] is the trade.
pub const WINDOW_MARGIN: Duration = Duration::from_millis(6);
/// How long a send is kept in a window after the latest reservation: a window spans 1 s plus a
/// margin of at most [`WINDOW_MARGIN`] + [`WARMUP_MARGIN`], so an older send can hold back no
/// slot; 2 s leaves room for reservations whose `now` was read a moment earlier. Without it a
/// window kept the latest `cap` sends whatever their age: with the cap lifted (100,000 a
/// second) it grew with every call placed, to 100,000 sends and 2 MiB (BENCHMARKS.md, memory).
const KEEP: Duration = Duration::from_secs(2);
/// A wake-up later than this is recorded as the request's real departure (see
/// [`Limiter::acquire_slot`]); ordinary timer lateness below it is left to the margin, since
/// recording every millisecond would drag the pace down by the sum of them.
const STALL: Duration = Duration::from_millis(2);
/// After a throttling reply the pace drops to this fraction…
const THROTTLE_FACTOR: f64 = 0.7;
/// …and recovers by this fraction of the target for every quiet `RECOVERY_STEP`.
const RECOVERY_FRACTION: f64 = 0.05;
const RECOVERY_STEP: Duration = Duration::from_secs(2);
const MIN_RATE: f64 = 0.2;

type Gcra = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

struct Pace {
    rate: f64,
    gcra: Arc<Gcra>,
    last_change: Instant,
    throttles: u64,
}

pub struct Limiter {
    /// Whose turn it is to wait for the next token: a FIFO queue (tokio's `Mutex` is fair), so
    /// campaigns sharing the limiter take tokens in turn and a big campaign cannot starve a
    /// small one.
    turn: Arc<tokio::sync::Mutex<()>>,
    target: f64,
    cap: usize,
    pace: Mutex<Pace>,
    /// The sends of the latest `cap` requests (see [`SendWindow`]).
    window: Arc<SendWindow>,
    /// No token before this instant: the account's window shared through the database gave
    /// the latest request a slot this late, or has no room before it (see
    /// [`Limiter::hold_until`]).
    hold: Mutex<Option<Instant>>,
}

/// The sliding window at the moment of sending: the send instants of the latest `cap`
/// requests, oldest first, and a slot for the next that keeps every second within the cap.
/// The account's limiter and a campaign's own cap
/// ([`crate::dispatch::campaign_rate::CampaignRate`]) each keep one; a request's
/// [`Departure`] moves its entry in every window it passed to the moment it really left.
pub struct SendWindow {
    cap: usize,
    inner: Mutex<Window>,
}

struct Window {
    sends: VecDeque<Instant>,
    /// How many of the first reservations still get [`WARMUP_MARGIN`].
    warmup_left: usize,
}

impl Window {
    fn margin(&self) -> Duration {
        if self.warmup_left > 0 {
            WINDOW_MARGIN + WARMUP_MARGIN
        } else {
            WINDOW_MARGIN
        }
    }
}

impl SendWindow {
    /// A window of `cap` sends a second, seeded with `recent` (any order; the latest `cap`
    /// are kept), whose first `warmup` reservations keep [`WARMUP_MARGIN`] more.
    pub fn new(cap: usize, recent: &[Instant], warmup: usize) -> SendWindow {
        let cap = cap.max(1);
        let mut sends: VecDeque<Instant> = recent.to_vec().into();
        sends.make_contiguous().sort();
        while sends.len() > cap {
            sends.pop_front();
        }
        SendWindow {
            cap,
            inner: Mutex::new(Window {
                sends,
                warmup_left: warmup,
            }),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The earliest instant a send would be admitted, without reserving it.
    pub fn earliest(&self, now: Instant) -> Instant {
        let w = lock(&self.inner);
        earliest_in(&w.sends, self.cap, now, w.margin())
    }

    /// Reserve the next send slot that keeps every window within the cap: `now` or later.
    pub fn reserve(&self, now: Instant) -> Instant {
        // One lock for reading and taking the slot: two reservations must not see the same window.
        let mut guard = lock(&self.inner);
        let margin = guard.margin();
        guard.warmup_left = guard.warmup_left.saturating_sub(1);
        let w = &mut guard.sends;
        let slot = earliest_in(w, self.cap, now, margin);
        // Slots are handed out in increasing order, so the deque stays sorted.
        let slot = w.back().map_or(slot, |last| slot.max(*last));
        w.push_back(slot);
        while w.len() > self.cap {
            w.pop_front();
        }
        if let Some(horizon) = now.checked_sub(KEEP) {
            while w.front().is_some_and(|t| *t < horizon) {
                w.pop_front();
            }
        }
        slot
    }

    /// The request recorded as leaving at `recorded` really left at `actual`. Past [`STALL`]
    /// the window moves it, so request `i + cap` keeps a full window from the real departure;
    /// ordinary timer lateness below it is left to the margin (recording every millisecond
    /// would drag the pace down by the sum of them).
    pub fn left_at(&self, recorded: Instant, actual: Instant) {
        if actual > recorded + STALL {
            self.relocate(recorded, actual);
        }
    }

    /// Move the send recorded at `recorded` to `actual`, keeping the window sorted. A send no
    /// longer kept (older than [`KEEP`], or past the cap) is counted at `actual` all the same:
    /// it left then.
    fn relocate(&self, recorded: Instant, actual: Instant) {
        let w = &mut lock(&self.inner).sends;
        if let Some(pos) = w.iter().rposition(|t| *t == recorded) {
            w.remove(pos);
        }
        let at = w.partition_point(|t| *t <= actual);
        w.insert(at, actual);
    }

    /// The request given the slot `recorded` was never sent: its place goes back.
    pub fn give_back(&self, recorded: Instant) {
        let w = &mut lock(&self.inner).sends;
        if let Some(pos) = w.iter().rposition(|t| *t == recorded) {
            w.remove(pos);
        }
    }

    #[cfg(test)]
    fn oldest(&self) -> Option<Instant> {
        lock(&self.inner).sends.front().copied()
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        lock(&self.inner).sends.len()
    }
}

/// A request on its way: the slot its windows gave it, and the moment its connection wrote it
/// (see [`crate::connections::Departing`]). The same for every action: the dialler's
/// CreateAIAgentCall and the outcome tracker's DescribeTelCdr both send through one.
pub struct Departure {
    slot: Instant,
    windows: Vec<Arc<SendWindow>>,
    left: Arc<Mutex<Option<Instant>>>,
}

impl Departure {
    /// A request whose slot came from the database's window ([`crate::store::window`]), leaving
    /// at `at`: no window of this process's counts it (a campaign's own cap may, through
    /// [`Departure::also`]).
    pub fn shared(at: Instant) -> Departure {
        Departure {
            slot: at,
            windows: Vec::new(),
            left: Arc::new(Mutex::new(None)),
        }
    }

    /// The instant the windows recorded for it so far.
    pub fn slot(&self) -> Instant {
        self.slot
    }

    /// Count it in `window` too, where it was given `slot` (no later than this departure's):
    /// that window moves it to this departure now, and to the real one when it is known.
    pub fn also(mut self, window: Arc<SendWindow>, slot: Instant) -> Departure {
        if slot != self.slot {
            // Exactly, not past STALL only: its real departure finds it by this slot.
            window.relocate(slot, self.slot);
        }
        self.windows.push(window);
        self
    }

    /// What the request's body calls once its bytes were written to the connection (see
    /// [`crate::connections::Departing`]): every window moves the request to that moment (past
    /// [`STALL`]), and [`Departure::left`] reads it. The moment is taken after the write
    /// returned, so a pause of the host anywhere before it (or while this takes the windows'
    /// locks) can only make it later than the real departure, never earlier.
    pub fn on_leave(&self) -> crate::connections::OnLeave {
        let (slot, windows, left) = (self.slot, self.windows.clone(), self.left.clone());
        Box::new(move |at| {
            if at > slot + STALL {
                for w in &windows {
                    w.relocate(slot, at);
                }
            }
            *lock(&left) = Some(at);
        })
    }

    /// When the request really left: the moment its write to the connection returned, or its
    /// slot when it never reached a connection (or before the write returned).
    pub fn left(&self) -> Instant {
        lock(&self.left).map_or(self.slot, |at| at.max(self.slot))
    }

    /// Whether its connection took it and wrote it, or failed after taking it (some of it may
    /// have reached the service).
    pub fn reached_a_connection(&self) -> bool {
        lock(&self.left).is_some()
    }

    /// [`Departure::left`] on the wall clock (unix ms), `now_ms` read now.
    pub fn left_ms(&self, now_ms: i64) -> i64 {
        now_ms - i64::try_from(self.left().elapsed().as_millis()).unwrap_or(0)
    }
}

/// Extra spacing for the first two windows of sends after a start. A process starting up (a
/// restart after a crash, most of all) competes for the CPU with everything on the host just
/// as its first requests leave; their arrival times jitter more than in steady running. Costs
/// about 20 ms once per start.
pub const WARMUP_MARGIN: Duration = Duration::from_millis(20);

/// Token bucket depth 2, not 1: with depth 1 every late wake-up (timer granularity) is added to
/// the next token's time and the pace drifts below the target (measured: 19.77 req/s when
/// pacing at 19.85). With depth 2 a late request does not delay the next one, so the long-run
/// pace is exact; the cost is that after an idle moment two requests may leave back to back.
/// The window guard still admits at most the cap in any second.
const BUCKET: NonZeroU32 = match NonZeroU32::new(2) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

fn gcra(rate: f64) -> Arc<Gcra> {
    let period = Duration::from_secs_f64(1.0 / (rate * PACING_FACTOR));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(BUCKET);
    Arc::new(RateLimiter::direct(quota))
}

impl Limiter {
    /// `rate` requests per second; the window guard allows `ceil(rate)` per second.
    /// `recent` are the send instants of the latest requests before this process started.
    pub fn new(rate: f64, recent: &[Instant]) -> Limiter {
        let cap = (rate.ceil() as usize).max(1);
        Limiter {
            turn: Arc::new(tokio::sync::Mutex::new(())),
            target: rate,
            cap,
            pace: Mutex::new(Pace {
                rate,
                gcra: gcra(rate),
                last_change: Instant::now(),
                throttles: 0,
            }),
            window: Arc::new(SendWindow::new(cap, recent, 2 * cap)),
            hold: Mutex::new(None),
        }
    }

    /// Hand out no token before `at`: the database's window (shared by every process on a
    /// PostgreSQL store, see [`crate::store::window`]) gave a request a slot that late, or has
    /// no room before it. The pacer asks the database again only then, so a process asks about
    /// once per request, however many share the account.
    pub fn hold_until(&self, at: Instant) {
        let mut h = lock(&self.hold);
        if h.is_none_or(|held| held < at) {
            *h = Some(at);
        }
    }

    /// Wait for the pacer's next token, and until the window would admit a send now.
    ///
    /// The second wait matters after a restart: the window is seeded from before it, and without
    /// this the first requests would be written down at once and then sit in
    /// [`Limiter::acquire_slot`] for up to a second, written down but not sent (a crash then
    /// makes them `unknown` although nothing left).
    ///
    /// Callers are served in the order they asked (round-robin between campaigns).
    pub async fn pace(&self) {
        let _turn = self.take_turn().await;
        self.pace_in_turn().await
    }

    /// Wait for this caller's turn (FIFO). Holding the guard across several
    /// [`Limiter::pace_in_turn`] calls gives a campaign that many tokens in a row: its weight.
    pub async fn take_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    /// [`Limiter::pace`] for a caller that holds its turn (see [`Limiter::take_turn`]).
    pub async fn pace_in_turn(&self) {
        let gcra = {
            let mut p = lock(&self.pace);
            self.recover(&mut p, Instant::now());
            p.gcra.clone()
        };
        gcra.until_ready().await;
        loop {
            let now = Instant::now();
            let held = (*lock(&self.hold)).unwrap_or(now);
            let earliest = self.earliest(now).max(held);
            if earliest <= now {
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(earliest)).await;
        }
    }

    /// The earliest instant a send would be admitted by the window, without reserving it.
    fn earliest(&self, now: Instant) -> Instant {
        self.window.earliest(now)
    }

    /// Reserve the next send slot that keeps every window within the cap. Returns the instant
    /// to send at (now or later); the slot is taken.
    pub fn reserve(&self, now: Instant) -> Instant {
        self.window.reserve(now)
    }

    /// Wait for a slot (see [`Limiter::reserve`]). Returns the departure the window recorded
    /// for this request (pass it to [`Limiter::left_at`] if the request leaves later still).
    ///
    /// A busy host may wake the timer late; past [`STALL`] the window records when the request
    /// really goes (now), not the slot it was given, so request `i + cap` keeps a full window
    /// from when request `i` actually left, not from when it was meant to.
    pub async fn acquire_slot(&self) -> Instant {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
        let now = Instant::now();
        if now > slot + STALL {
            self.window.left_at(slot, now);
            return now;
        }
        slot
    }

    /// [`Limiter::acquire_slot`], as a [`Departure`]: hand its [`Departure::on_leave`] to the
    /// request's body so the window counts the request from when its connection wrote it.
    pub async fn depart(&self) -> Departure {
        let slot = self.acquire_slot().await;
        Departure {
            slot,
            windows: vec![self.window.clone()],
            left: Arc::new(Mutex::new(None)),
        }
    }

    /// The request recorded as leaving at `recorded` really left at `actual` (it had to open a
    /// connection first, or the host ran its connection late: see
    /// [`crate::connections::Departing`]). Like a late wake-up, past [`STALL`] the window moves
    /// it, so request `i + cap` keeps a full window from the real departure.
    pub fn left_at(&self, recorded: Instant, actual: Instant) {
        self.window.left_at(recorded, actual);
    }

    /// A throttling reply: slow down.
    pub fn throttled(&self) {
        let mut p = lock(&self.pace);
        p.throttles += 1;
        let rate = (p.rate * THROTTLE_FACTOR).max(MIN_RATE.min(self.target));
        p.rate = rate;
        p.gcra = gcra(rate);
        p.last_change = Instant::now();
    }

    fn recover(&self, p: &mut Pace, now: Instant) {
        if p.rate >= self.target {
            return;
        }
        let steps = now.duration_since(p.last_change).as_secs_f64() / RECOVERY_STEP.as_secs_f64();
        if steps < 1.0 {
            return;
        }
        let rate = (p.rate + self.target * RECOVERY_FRACTION * steps.floor()).min(self.target);
        p.rate = rate;
        p.gcra = gcra(rate);
        p.last_change = now;
    }

    /// Current pace in requests per second.
    pub fn current_rate(&self) -> f64 {
        lock(&self.pace).rate
    }

    /// Whether a throttling reply holds the pace below the configured rate now.
    pub fn slowed(&self) -> bool {
        lock(&self.pace).rate < self.target
    }

    pub fn throttle_events(&self) -> u64 {
        lock(&self.pace).throttles
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many sends the window of a limiter at `rate` should be seeded with after a restart:
    /// at least the documented cap's, whatever the rate, so a lifted cap gets no burst either.
    pub fn seed_len(rate: f64) -> usize {
        (rate.ceil() as usize).max(crate::config::DOCUMENTED_CAP as usize) * 2
    }
}

/// When the window admits the next send: `cap` sends after the `cap`-th latest, plus the margin.
fn earliest_in(w: &VecDeque<Instant>, cap: usize, now: Instant, margin: Duration) -> Instant {
    if w.len() >= cap {
        now.max(w[w.len() - cap] + WINDOW + margin)
    } else {
        now
    }
}

/// A poisoned lock here only means another task panicked mid-update of plain numbers; the data
/// is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest number of instants within any half-open window of length `WINDOW`.
    fn max_in_window(slots: &[Instant]) -> usize {
        let mut best = 0;
        for (i, s) in slots.iter().enumerate() {
            let n = slots[i..].iter().take_while(|t| **t < *s + WINDOW).count();
            best = best.max(n);
        }
        best
    }

    #[test]
    fn window_guard_never_hands_out_more_than_the_cap_in_any_second() {
        let l = Limiter::new(20.0, &[]);
        let t0 = Instant::now();
        // 100 requests all asking at the same instant (a burst after a stall).
        let slots: Vec<Instant> = (0..100).map(|_| l.reserve(t0)).collect();
        assert_eq!(max_in_window(&slots), 20);
        // And slots never go backwards.
        assert!(slots.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_request_that_left_late_holds_back_the_one_a_window_after_it() {
        let l = Limiter::new(20.0, &[]);
        let t0 = Instant::now();
        let first = l.reserve(t0);
        for i in 1..20 {
            l.reserve(t0 + Duration::from_millis(i * 50));
        }
        // The first request was due at t0 but the host woke it 40 ms late.
        l.left_at(first, t0 + Duration::from_millis(40));
        let twenty_first = l.reserve(t0 + Duration::from_millis(1000));
        assert!(
            twenty_first >= t0 + Duration::from_millis(40) + WINDOW,
            "the 21st must keep a full window from when the 1st really left"
        );
    }

    #[test]
    fn a_request_that_had_to_connect_first_counts_from_when_the_connection_was_ready() {
        let l = Limiter::new(20.0, &[]);
        let t0 = Instant::now();
        let first = l.reserve(t0);
        for i in 1..20 {
            l.reserve(t0 + Duration::from_millis(i * 50));
        }
        // The first request opened a connection: TLS took 40 ms before it could leave.
        l.left_at(first, first + Duration::from_millis(40));
        let twenty_first = l.reserve(t0 + Duration::from_millis(1000));
        assert!(
            twenty_first >= first + Duration::from_millis(40) + WINDOW,
            "request 21 must keep a full window from when request 1 really left"
        );
        // A connection ready within the stall allowance leaves the window as it was.
        let l = Limiter::new(20.0, &[]);
        let first = l.reserve(t0);
        l.left_at(first, first + STALL);
        assert_eq!(l.window.oldest(), Some(first));
    }

    #[test]
    fn with_the_cap_lifted_a_window_keeps_the_last_seconds_of_sends_not_the_cap() {
        // 100,000 a second allowed, 5,000 a second sent for 10 s: the window keeps about 2 s of
        // them (it kept all 50,000, up to the cap, before).
        let w = SendWindow::new(100_000, &[], 0);
        let t0 = Instant::now();
        let mut slots = Vec::new();
        for i in 0..50_000u64 {
            let now = t0 + Duration::from_micros(i * 200);
            let slot = w.reserve(now);
            assert_eq!(slot, now, "never held back below the cap");
            slots.push(slot);
        }
        assert!(w.kept() <= 10_001, "{} sends kept", w.kept());
        // A request that left 3 s after its slot, after its slot was let go: counted when it
        // really left.
        let late = slots[30_000];
        let left = late + Duration::from_secs(3);
        w.left_at(late, left);
        assert!(lock(&w.inner).sends.contains(&left));
        // And a cap of 20 holds exactly as before.
        let w = SendWindow::new(20, &[], 0);
        let slots: Vec<Instant> = (0..200)
            .map(|i| w.reserve(t0 + Duration::from_millis(i * 10)))
            .collect();
        assert_eq!(max_in_window(&slots), 20);
    }

    #[test]
    fn window_is_seeded_from_before_a_restart() {
        let t0 = Instant::now();
        let recent: Vec<Instant> = (0..20)
            .map(|i| t0 + Duration::from_millis(i * 10))
            .collect();
        let l = Limiter::new(20.0, &recent);
        let first = l.reserve(t0 + Duration::from_millis(200));
        assert!(
            first >= t0 + WINDOW,
            "a restart must not hand out a fresh burst"
        );
    }

    #[test]
    fn the_first_windows_after_a_start_keep_a_wider_margin_then_the_usual_one() {
        let t0 = Instant::now();
        let recent: Vec<Instant> = (0..20)
            .map(|i| t0 + Duration::from_millis(i * 10))
            .collect();
        let l = Limiter::new(20.0, &recent);
        let first = l.reserve(t0);
        assert_eq!(first, t0 + WINDOW + WINDOW_MARGIN + WARMUP_MARGIN);
        let mut last = first;
        for _ in 1..40 {
            last = l.reserve(t0);
        }
        // The 41st reservation is past the warm-up: one window after the send 20 before it,
        // with the usual margin.
        let twenty_earlier = l.window.oldest().expect("a full window");
        let next = l.reserve(t0);
        assert_eq!(next, twenty_earlier + WINDOW + WINDOW_MARGIN);
        assert!(next >= last);
    }

    #[test]
    fn pacing_waits_for_a_seeded_window_before_anything_is_written_down() {
        let t0 = Instant::now();
        let recent: Vec<Instant> = (0..20)
            .map(|i| t0 + Duration::from_millis(i * 10))
            .collect();
        let l = Limiter::new(20.0, &recent);
        assert!(
            l.earliest(t0) >= t0 + WINDOW,
            "pace() must hold the first request back"
        );
        let l = Limiter::new(20.0, &recent[..19]);
        assert_eq!(l.earliest(t0), t0, "a window below the cap admits at once");
    }

    #[test]
    fn throttling_slows_the_pace_and_it_recovers_gradually() {
        let l = Limiter::new(20.0, &[]);
        l.throttled();
        let slowed = l.current_rate();
        assert!(slowed < 20.0 * 0.75);
        let mut p = lock(&l.pace);
        let later = p.last_change + RECOVERY_STEP;
        l.recover(&mut p, later);
        assert!(
            p.rate > slowed && p.rate < 20.0,
            "one step up, not all the way"
        );
        let much_later = later + RECOVERY_STEP * 100;
        l.recover(&mut p, much_later);
        assert_eq!(p.rate, 20.0, "back to the target, never above");
    }
}
