//! A request's way out when the account's window is kept by the database (several processes
//! on one PostgreSQL store, see [`crate::store::window`]), and the same calls when it is not: the
//! dialler's CreateAIAgentCall and the outcome tracker's queries go through here alike.
//!
//! 1. The request is written down and its slot reserved in one transaction; refused for now
//!    ([`crate::store::StoreError::WindowFull`]), the caller waits until there is room ([`wait_for_room`]) and
//!    asks again. Either answer holds this process's pacer until then, so the database is asked
//!    about once per request.
//! 2. [`depart`]: wait for the slot, and check it is not too late to leave ([`Slot::deadline`]):
//!    a request that would leave after its left-by is not sent at all (the host ran it late).
//!    Without a slot (SQLite, or a lifted cap), the local limiter's window decides, as always.
//! 3. [`on_leave`]: once the request's connection wrote it, its departure goes to the database
//!    (and to the local windows), so the send counts from when it really left; one that never
//!    reached a connection gives its slot back ([`never_left`]).

use std::time::Instant;

use crate::connections::OnLeave;
use crate::limiter::{Departure, Limiter};
use crate::store::window::Slot;
use crate::store::{Store, StoreError};

/// The database had no room before `until`: hold the pacer and wait until then.
pub async fn wait_for_room(limiter: &Limiter, until: Instant) {
    limiter.hold_until(until);
    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
}

/// Wait until the request may leave: its slot from the database, or the local window's.
/// `None`: the slot's time to leave passed while this process waited (a host pause); the
/// request must not be sent.
pub async fn depart(limiter: &Limiter, slot: Option<&Slot>) -> Option<Departure> {
    let Some(slot) = slot else {
        return Some(limiter.depart().await);
    };
    limiter.hold_until(slot.at());
    tokio::time::sleep_until(tokio::time::Instant::from_std(slot.at())).await;
    let now = Instant::now();
    if now > slot.deadline() {
        tracing::warn!(
            action = %slot.action,
            late_ms = now.duration_since(slot.deadline()).as_millis() as u64,
            "the host ran this request too late for its slot in the account's window: not sent"
        );
        return None;
    }
    Some(Departure::shared(now))
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
            // How long ago, measured when the database reads its clock: never before the
            // real departure.
            if let Err(e) = store.window_left(&slot, Some(at.elapsed())).await {
                tracing::warn!(action = %slot.action, error = %e, "cannot tell the database when a request left: its slot keeps counting until its deadline");
            }
        });
    })
}

/// After the request: one that never reached a connection gives its slot back. A failure to
/// say so only costs rate (the slot counts until its deadline): it is logged, not returned.
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
/// A query the host ran too late for its slot is not sent: its row goes and it asks again.
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
            Some(d) => return Ok((row, d, slot)),
            None => {
                store.sent(row, None).await?;
                never_left(store, None, slot.as_ref()).await;
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
