//! Every API action's limiter window seeded from the sends the store recorded before this
//! process started, so a restart hands out no fresh burst: CreateAIAgentCall's from its
//! attempts ([`Store::recent_sends`]), every other action's from its own record
//! ([`Store::recent_action_sends`]). The same rules for each: a send counts from when its
//! connection wrote it ([`crate::limiter::Departure`]), one whose departure was never recorded
//! as late as it can have been, and one stored in the future (a wall clock that ran ahead) as
//! now, with the skew logged.

use std::time::{Duration, Instant};

use crate::limiter::Limiter;
use crate::store::{Store, StoreError};

/// The send instants of `action`'s latest requests before this process, as `Instant`s, with
/// the wall clock read as `now_wall` (unix ms) at the monotonic instant `now`. `rate` is the
/// action's requests per second (see [`Limiter::seed_len`]).
pub async fn seed_window(
    store: &Store,
    action: &str,
    rate: f64,
    now_wall: i64,
    now: Instant,
) -> Result<Vec<Instant>, StoreError> {
    let n = Limiter::seed_len(rate);
    let sends = if action == crate::ccc::ACTION {
        store.recent_sends(n, now_wall).await?
    } else {
        store.recent_action_sends(action, n, now_wall).await?
    };
    let (seed, ahead) = seed_instants(&sends, now_wall, now);
    if let Some(ahead) = ahead {
        tracing::warn!(
            action,
            ahead_ms = ahead,
            "stored send times are up to {ahead} ms in the future: the wall clock ran ahead when they were written (and was set back since); counting them as sent now"
        );
    }
    Ok(seed)
}

/// [`seed_window`]'s limiter for `action` at `rate`, its window seeded with what the store
/// recorded (read now). On a PostgreSQL store the account's window for `action` is shared with
/// every process on the store from now on ([`Store::share_window`]).
pub async fn seeded_limiter(store: &Store, action: &str, rate: f64) -> Result<Limiter, StoreError> {
    store.share_window(action, rate);
    let seed = seed_window(
        store,
        action,
        rate,
        crate::dispatch::now_ms(),
        Instant::now(),
    )
    .await?;
    Ok(Limiter::new(rate, &seed))
}

/// Unix-ms send times as instants on the monotonic clock. A time after `now_wall` (written by a
/// clock that ran ahead) counts as `now`: as late as a send can really have been, and never a
/// wait of the skew's length. Returns the instants and, if any was in the future, by how much
/// the furthest was.
pub fn seed_instants(sends: &[i64], now_wall: i64, now: Instant) -> (Vec<Instant>, Option<i64>) {
    let ahead = sends
        .iter()
        .map(|ms| ms - now_wall)
        .filter(|d| *d > 0)
        .max();
    let seed = sends
        .iter()
        .filter_map(|ms| {
            let age = (now_wall - ms).max(0);
            now.checked_sub(Duration::from_millis(age as u64))
        })
        .collect();
    (seed, ahead)
}
