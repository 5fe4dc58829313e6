//! A request's way out when the account's window is kept by the database (several processes
//! on one PostgreSQL store, see [`crate::store::window`]), and the same calls when it is not: the
//! dialler's CreateAIAgentCall and the outcome tracker's queries go through here alike.
//!
//! 1. The request is written down and its slot reserved in one transaction; refused for now
//!    ([`crate::store::StoreError::WindowFull`]), the caller waits until there is room ([`wait_for_room`]) and
//!    asks again. Either answer holds this process's pacer until then, so the database is asked
//!    about once per request.
//! 2. [`depart`]: wait for the slot, and check it is not too late to leave ([`Slot::deadline`]):
//!    a request that would leave after its left-by is not sent at all (the host ran it late, or
//!    the database took longer to commit than the slot's hold). How long the reservation took
//!    sizes the next ones' hold; [`TOO_LATE_IN_A_ROW`] too late in a row are an error
//!    ([`StoreError::WindowTooSlow`]), not a silent loop. Without a slot (SQLite, or a lifted
//!    cap), the local limiter's window decides, as always.
//! 3. [`on_leave`]: once the request's connection wrote it, its departure goes to the database
//!    (and to the local windows), so the send counts from when it really left; one that never
//!    reached a connection gives its slot back ([`never_left`]).

use std::time::Instant;

use crate::connections::OnLeave;
use crate::limiter::{Departure, Limiter};
use crate::store::window::{Slot, MAX_HOLD, TOO_LATE_IN_A_ROW};
use crate::store::{Store, StoreError};

/// The database had no room before `until`: hold the pacer and wait until then.
pub async fn wait_for_room(limiter: &Limiter, until: Instant) {
    limiter.hold_until(until);
    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
}

/// Wait until the request may leave: its slot from the database, or the local window's.
/// `Ok(None)`: the slot's time to leave passed before the request could go (the host ran it
/// late, or the database took longer than the slot's hold to commit it); the request must not
/// be sent. [`StoreError::WindowTooSlow`]: so did the [`TOO_LATE_IN_A_ROW`] before it, each
/// with a hold widened to what the database took: the caller stops sending through it.
pub async fn depart(
    limiter: &Limiter,
    slot: Option<&Slot>,
) -> Result<Option<Departure>, StoreError> {
    let Some(slot) = slot else {
        return Ok(Some(limiter.depart().await));
    };
    // From the question to here: the reservation, the rest of its transaction, the commit.
    let took = slot.asked.elapsed();
    slot.latency.observe(took);
    limiter.hold_until(slot.at());
    tokio::time::sleep_until(tokio::time::Instant::from_std(slot.at())).await;
    let now = Instant::now();
    if now <= slot.deadline() {
        slot.latency.in_time();
        return Ok(Some(Departure::shared(now)));
    }
    let in_a_row = slot.latency.late();
    let late_ms = now.duration_since(slot.deadline()).as_millis() as u64;
    if in_a_row >= TOO_LATE_IN_A_ROW {
        return Err(StoreError::WindowTooSlow {
            action: slot.action.clone(),
            in_a_row,
            took_ms: took.as_millis() as u64,
            max_ms: MAX_HOLD.as_millis() as u64,
        });
    }
    tracing::warn!(
        action = %slot.action,
        late_ms,
        took_ms = took.as_millis() as u64,
        hold_ms = slot.hold.as_millis() as u64,
        in_a_row,
        "this request was too late for its slot in the account's window (the host ran it late, or the database took that long to commit it): not sent"
    );
    Ok(None)
}

/// What the request's body calls once its connection wrote it: the local windows move it (see
/// [`Departure::on_leave`]) and, with a slot, the database hears when it left.
pub fn on_leave(store: &Store, departure: &Departure, slot: Option<&Slot>) -> OnLeave {
    let local = departure.on_leave();
    let Some(slot) = slot.cloned() else {
        return local;
    };
    let store = store.clone();
    Box::new(move |at| {
        local(at);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if let Err(e) = store.window_left(&slot, Some(at)).await {
                tracing::warn!(action = %slot.action, error = %e, "cannot tell the database when a request left: it counts as leaving now until its bound");
            }
        });
    })
}

/// After the request: one that never reached a connection gives its slot back. A failure to
/// say so only costs rate (the send counts as leaving now until its bound): it is logged, not
/// returned.
pub async fn never_left(store: &Store, departure: Option<&Departure>, slot: Option<&Slot>) {
    let Some(slot) = slot else {
        return;
    };
    if departure.is_some_and(|d| d.reached_a_connection()) {
        return;
    }
    if let Err(e) = store.window_left(slot, None).await {
        tracing::warn!(action = %slot.action, error = %e, "cannot give an unused slot back to the account's window");
    }
}

/// A query of `action` (the outcome tracker's): paced, written down with its slot, and waited
/// for until it may leave. Returns its row (for [`Store::sent`]), its departure, and its slot.
/// A query the host ran too late for its slot is not sent: its row goes and it asks again, up
/// to [`StoreError::WindowTooSlow`], returned.
pub async fn query(
    store: &Store,
    limiter: &Limiter,
    action: &str,
) -> Result<(i64, Departure, Option<Slot>), StoreError> {
    loop {
        limiter.pace().await;
        let (row, slot) = match store
            .sending_reserved(action, crate::dispatch::now_ms())
            .await
        {
            Err(StoreError::WindowFull(until)) => {
                wait_for_room(limiter, until).await;
                continue;
            }
            r => r?,
        };
        match depart(limiter, slot.as_ref()).await {
            Ok(Some(d)) => return Ok((row, d, slot)),
            late => {
                store.sent(row, None).await?;
                never_left(store, None, slot.as_ref()).await;
                late?;
            }
        }
    }
}

/// After a query: its departure written down (`None`: it never reached a connection) and, if
/// it never left, its slot given back.
pub async fn query_sent(
    store: &Store,
    row: i64,
    departure: &Departure,
    slot: Option<&Slot>,
) -> Result<(), StoreError> {
    let left = departure
        .reached_a_connection()
        .then(|| departure.left_ms(crate::dispatch::now_ms()));
    store.sent(row, left).await?;
    never_left(store, Some(departure), slot).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::window::{Latency, MIN_HOLD};

    /// A slot whose reservation was asked `took` ago and is due now, with the hold `latency`
    /// asks for now: a database that took `took` from the question to the commit.
    fn slot_after(latency: &Arc<Latency>, took: Duration) -> Slot {
        let asked = Instant::now()
            .checked_sub(took)
            .expect("the host has been up longer than the test's delays");
        Slot {
            action: "CreateAIAgentCall".into(),
            slot_us: 0,
            hold: latency.hold(),
            asked,
            answered: asked,
            ahead: Duration::ZERO,
            latency: latency.clone(),
        }
    }

    #[tokio::test]
    async fn a_slow_database_widens_the_hold_instead_of_making_every_request_too_late() {
        let limiter = Limiter::new(20.0, &[]);
        let latency = Arc::new(Latency::default());
        assert_eq!(latency.hold(), MIN_HOLD);
        // 400 ms from the question to the commit: more than the fast database's hold.
        let took = Duration::from_millis(400);
        let first = depart(&limiter, Some(&slot_after(&latency, took))).await;
        assert!(matches!(first, Ok(None)), "too late for its slot: not sent");
        // The next reservation asks for a hold sized from it (twice it, and the allowance), so
        // a request whose commit takes as long again leaves, with 400 ms to spare.
        assert!(latency.hold() >= took * 2);
        let second = depart(&limiter, Some(&slot_after(&latency, took))).await;
        assert!(
            matches!(second, Ok(Some(_))),
            "the widened hold covers the slow commit"
        );
    }

    #[tokio::test]
    async fn a_database_slower_than_the_widest_hold_is_an_error_not_a_silent_loop() {
        let limiter = Limiter::new(20.0, &[]);
        let latency = Arc::new(Latency::default());
        let took = MAX_HOLD + Duration::from_secs(1);
        for n in 1..TOO_LATE_IN_A_ROW {
            let r = depart(&limiter, Some(&slot_after(&latency, took))).await;
            assert!(matches!(r, Ok(None)), "request {n}: not sent, asked again");
        }
        match depart(&limiter, Some(&slot_after(&latency, took))).await {
            Err(e @ StoreError::WindowTooSlow { in_a_row, .. }) => {
                assert_eq!(in_a_row, TOO_LATE_IN_A_ROW);
                assert!(e.to_string().contains("database"), "{e}");
            }
            Err(e) => panic!("expected the database to be found too slow, got {e}"),
            Ok(_) => panic!("expected the database to be found too slow, got a departure"),
        }
        // One request in time ends the run: the next late one is only not sent.
        let fast = depart(&limiter, Some(&slot_after(&latency, Duration::ZERO))).await;
        assert!(matches!(fast, Ok(Some(_))));
        let late = depart(&limiter, Some(&slot_after(&latency, took))).await;
        assert!(matches!(late, Ok(None)));
    }
}
