//! A campaign's own rate cap (`max_rate`): a small campaign held to 2 requests a second while
//! another takes the rest of the account's. Separate from the account's limiter
//! ([`crate::limiter`]), which every request still passes through unchanged.
//!
//! Two layers, like the account's:
//! 1. a governor token bucket one token deep at `max_rate`, taken by the campaign's dispatcher
//!    *before* it takes its turn at the shared limiter ([`CampaignRate::try_take`]): a campaign
//!    waiting for its own cap never holds the other campaigns' turn;
//! 2. a sliding window at the moment of sending ([`CampaignRate::reserve`]): at most
//!    `ceil(max_rate)` requests of the campaign leave within any second, whatever delays the
//!    store or the account's limiter added between the token and the send.
//!
//! The std `Mutex` is never held across an `.await`.

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limiter::SendWindow;

type Gcra = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

pub struct CampaignRate {
    rate: f64,
    gcra: Gcra,
    clock: DefaultClock,
    /// Departures of the campaign's latest `ceil(rate)` requests: the account's kind of window,
    /// with its margin, and no start-up margin (the account's window has it).
    window: Arc<SendWindow>,
}

impl std::fmt::Debug for CampaignRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignRate")
            .field("rate", &self.rate)
            .finish()
    }
}

impl CampaignRate {
    /// `rate` requests per second (validated: see [`crate::config::check_max_rate`]).
    pub fn new(rate: f64) -> CampaignRate {
        let clock = DefaultClock::default();
        let period = Duration::from_secs_f64(1.0 / rate.max(crate::config::MIN_RATE));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        CampaignRate {
            rate,
            gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            window: Arc::new(SendWindow::new((rate.ceil() as usize).max(1), &[], 0)),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Take the campaign's next token if its cap allows a request now; otherwise the instant
    /// to look again (no token taken).
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let earliest = self.window.earliest(now);
        if earliest > now {
            return Err(earliest);
        }
        self.gcra
            .check()
            .map_err(|not_until| now + not_until.wait_time_from(self.clock.now()))
    }

    /// Reserve the send slot of a request that could leave at `departure`: `departure` itself,
    /// or the later instant at which the campaign's window admits it. The caller waits until
    /// then before sending, then counts the request here too with
    /// [`crate::limiter::Departure::also`] (its real departure moves it in both windows).
    pub fn reserve(&self, departure: Instant) -> Instant {
        self.window.reserve(departure)
    }

    /// The request given `slot` (or moved there, see [`crate::limiter::Departure::also`]) was
    /// never sent: its place in the campaign's window goes back.
    pub fn give_back(&self, slot: Instant) {
        self.window.give_back(slot);
    }

    /// The campaign's window.
    pub fn window(&self) -> Arc<SendWindow> {
        self.window.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::WINDOW;

    fn max_in_window(slots: &[Instant]) -> usize {
        let mut best = 0;
        for (i, s) in slots.iter().enumerate() {
            let n = slots[i..].iter().take_while(|t| **t < *s + WINDOW).count();
            best = best.max(n);
        }
        best
    }

    #[test]
    fn the_window_never_lets_more_than_the_cap_leave_in_any_second() {
        let r = CampaignRate::new(2.0);
        let t0 = Instant::now();
        // Ten requests whose account slots came all at once (a burst after a stall).
        let slots: Vec<Instant> = (0..10).map(|_| r.reserve(t0)).collect();
        assert_eq!(max_in_window(&slots), 2);
        assert!(slots.windows(2).all(|w| w[0] <= w[1]));
        // A fractional cap rounds up per window, like the account's.
        let r = CampaignRate::new(2.5);
        let slots: Vec<Instant> = (0..10).map(|_| r.reserve(t0)).collect();
        assert_eq!(max_in_window(&slots), 3);
    }

    #[test]
    fn a_request_that_left_late_holds_back_the_one_a_window_after_it() {
        let r = CampaignRate::new(1.0);
        let t0 = Instant::now();
        let first = r.reserve(t0);
        r.window().left_at(first, t0 + Duration::from_millis(300));
        let second = r.reserve(t0 + Duration::from_millis(1000));
        assert!(second >= t0 + Duration::from_millis(300) + WINDOW);
    }

    #[test]
    fn a_token_is_taken_only_when_the_cap_allows_and_says_when_to_look_again() {
        let r = CampaignRate::new(2.0);
        let now = Instant::now();
        assert_eq!(r.try_take(now), Ok(()));
        // The bucket is one token deep: the next one is about half a second away.
        let again = r.try_take(Instant::now()).unwrap_err();
        assert!(again > now && again <= now + Duration::from_millis(600));
        // A full window holds the next token back until a second after the oldest send.
        let r = CampaignRate::new(20.0);
        let t0 = Instant::now();
        for _ in 0..20 {
            r.reserve(t0);
        }
        let held = r.try_take(t0).unwrap_err();
        assert!(held >= t0 + WINDOW);
    }
}
