//! The account's send window kept by the store (issue 15: one cap across replicas). On
//! PostgreSQL every process on the store takes its slots from one window per API action,
//! decided in the transaction that writes the request down; on SQLite (one process, whose
//! limiter keeps the window) the store shares nothing and gives no slot. Written once, run on
//! both: each behaviour says what either store must do.

use std::collections::HashSet;

use std::time::{Duration, Instant};

use ccc_dialer::store::window::{Slot, UNREPORTED_MARGIN};
use ccc_dialer::store::{Store, StoreError};

use super::{campaign_with, row, DEADLINE};
use crate::pg::Fixture;

contract!(
    the_window_is_shared_by_every_process_on_a_postgres_store_and_by_none_on_sqlite,
    a_full_window_writes_no_attempt_down_and_leaves_the_contact_pending,
    a_slot_never_used_is_given_back_and_a_departure_moves_its_send,
    an_unreported_send_counts_as_leaving_now_until_its_bound_then_at_its_bound,
);

/// One second plus the margin: the spacing between a send and the one `cap` after it.
fn spacing_us() -> i64 {
    (ccc_dialer::limiter::WINDOW + ccc_dialer::limiter::WINDOW_MARGIN).as_micros() as i64
}

/// A connection of the test's own to the fixture's schema.
async fn connect(f: &Fixture) -> Option<tokio_postgres::Client> {
    let Fixture::Postgres(schema) = f else {
        return None;
    };
    let (c, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    Some(c)
}

/// The reported departures the database keeps for `action` (µs, ascending).
async fn left_by(f: &Fixture, action: &str) -> Vec<i64> {
    let Some(c) = connect(f).await else {
        return Vec::new();
    };
    c.query_opt(
        "SELECT left_by FROM send_windows WHERE action = $1",
        &[&action],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
    .unwrap_or_default()
}

/// The sends of `action` not yet reported: (slot, left-by, bound), by slot.
async fn pending(f: &Fixture, action: &str) -> Vec<(i64, i64, i64)> {
    let Some(c) = connect(f).await else {
        return Vec::new();
    };
    c.query(
        "SELECT e.slot, e.left_by, e.expires FROM send_windows s, unnest(s.pending) e
         WHERE s.action = $1 ORDER BY e.slot",
        &[&action],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Move everything `action`'s window keeps `by` into the past: as if that much time went by
/// (without waiting for it).
async fn age(f: &Fixture, action: &str, by: Duration) {
    let Some(c) = connect(f).await else {
        return;
    };
    let by = by.as_micros() as i64;
    c.execute(
        "UPDATE send_windows SET last_slot = last_slot - $2,
           left_by = ARRAY(SELECT v - $2 FROM unnest(left_by) v ORDER BY v),
           pending = ARRAY(SELECT ROW(e.slot - $2, e.left_by - $2, e.expires - $2)::send_window_pending
             FROM unnest(pending) e ORDER BY e.slot)
         WHERE action = $1",
        &[&action, &by],
    )
    .await
    .unwrap();
}

/// The latest moment `slot`'s request may be handed to its connection, plus the allowance: the
/// slot and its hold (µs on the database's clock).
fn left_by_us(slot: &Slot) -> i64 {
    slot.slot_us() + slot.hold().as_micros() as i64
}

/// A slot of `action` from `store`, or `None` when the window had no room (nothing written).
async fn reserve(store: &Store, action: &str) -> Option<Slot> {
    match store.sending_reserved(action, 1_000).await {
        Ok((_, slot)) => Some(slot.expect("a shared window gives every request a slot")),
        Err(StoreError::WindowFull(_)) => None,
        Err(e) => panic!("{e}"),
    }
}

async fn the_window_is_shared_by_every_process_on_a_postgres_store_and_by_none_on_sqlite(
    f: &Fixture,
) {
    // Two processes on one store: two handles, each with its own connections.
    let (a, b) = (f.open().await, f.open().await);
    let action = "DescribeTelCdr";
    let shared = a.share_window(action, 3.0);
    assert_eq!(b.share_window(action, 3.0), shared);
    // A lifted cap is each process's own (one row rewritten per request would not scale).
    assert!(!a.share_window("Lifted", 100_000.0));
    assert!(!a.shares_window("Lifted"));
    if matches!(f, Fixture::Sqlite(_)) {
        assert!(!shared, "a SQLite store is one process: nothing to share");
        let (_, slot) = a.sending_reserved(action, 1_000).await.unwrap();
        assert!(slot.is_none());
        return;
    }
    assert!(shared && a.shares_window(action) && b.shares_window(action));
    // Three sends, from both processes, fill the window of 3.
    let mut slots = Vec::new();
    for store in [&a, &b, &a] {
        slots.push(reserve(store, action).await.expect("room for the cap"));
    }
    // Handed out in strictly increasing order, each kept as not yet reported, with its slot
    // plus the hold it asked for, until it leaves.
    assert!(slots.windows(2).all(|w| w[0].slot_us() < w[1].slot_us()));
    let kept = pending(f, action).await;
    assert_eq!(
        kept.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
        slots
            .iter()
            .map(|s| (s.slot_us(), left_by_us(s)))
            .collect::<Vec<_>>()
    );
    assert!(left_by(f, action).await.is_empty(), "none reported yet");
    // The fourth, from either process, goes no earlier than a second (and the margin) after
    // the first may have left; that is beyond the horizon, so the window says "not yet".
    for store in [&b, &a] {
        if let Some(fourth) = reserve(store, action).await {
            // Only when this host paused the test long enough for the first to age.
            assert!(fourth.slot_us() >= left_by_us(&slots[0]) + spacing_us());
        }
    }
    // Another action's window is its own.
    assert!(a.share_window("CreateAIAgentCall", 3.0));
    assert!(reserve(&a, "CreateAIAgentCall").await.is_some());
    // A process that does not share an action's window takes no slot in it.
    let (_, slot) = b.sending_reserved("Unshared", 1_000).await.unwrap();
    assert!(slot.is_none());
}

async fn a_full_window_writes_no_attempt_down_and_leaves_the_contact_pending(f: &Fixture) {
    let store = f.open().await;
    let other = f.open().await;
    let id = campaign_with(&store, "w", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = store.due_contacts(id, 0, 10, HashSet::new()).await.unwrap();
    // PostgreSQL: the two processes take turns at these contacts here, so none stays claimed
    // by the first (a claimed contact is its claimer's alone: see `store::pg::lease`).
    store.release_claims(id).await.unwrap();
    let shared = store.share_window("CreateAIAgentCall", 2.0);
    other.share_window("CreateAIAgentCall", 2.0);
    let first = store
        .begin_attempt_checked(d[0].id, 1_000, None, None, false)
        .await
        .unwrap();
    let second = other
        .begin_attempt_checked(d[1].id, 1_000, None, None, false)
        .await
        .unwrap();
    assert_eq!((first.n, second.n), (1, 1));
    if !shared {
        assert!(first.slot.is_none() && second.slot.is_none());
        return;
    }
    let (s1, s2) = (first.slot.unwrap(), second.slot.unwrap());
    assert!(s1.slot_us() < s2.slot_us());
    match store
        .begin_attempt_checked(d[2].id, 1_000, None, None, false)
        .await
    {
        Err(StoreError::WindowFull(_)) => {
            // Nothing written down: the contact is still pending, with no attempt.
            let again = store.due_contacts(id, 0, 10, HashSet::new()).await.unwrap();
            assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), [d[2].id]);
            assert_eq!(again[0].attempts, 0);
            let counts = store.counts(id).await.unwrap();
            assert_eq!(counts.get(&ccc_dialer::contact::Status::InFlight), Some(&2));
        }
        Ok(third) => {
            let t = third.slot.unwrap();
            assert!(t.slot_us() >= left_by_us(&s1) + spacing_us());
        }
        Err(e) => panic!("{e}"),
    }
}

async fn a_slot_never_used_is_given_back_and_a_departure_moves_its_send(f: &Fixture) {
    let store = f.open().await;
    let action = "DescribeAICallExtractResult";
    if !store.share_window(action, 2.0) {
        // Nothing shared, nothing to give back: the calls answer at once.
        let (_, slot) = store.sending_reserved(action, 1).await.unwrap();
        assert!(slot.is_none());
        return;
    }
    let a = reserve(&store, action).await.unwrap();
    let b = reserve(&store, action).await.unwrap();
    // a never reached a connection: its slot goes back. b left: it counts from then, which is
    // before its left-by (the database's clock less how long ago, read when told). Told at
    // once, the two reports may share one statement.
    let (gave_back, told) = tokio::join!(
        store.window_left(&a, None),
        store.window_left(&b, Some(Instant::now()))
    );
    gave_back.unwrap();
    told.unwrap();
    assert!(pending(f, action).await.is_empty(), "both reported");
    let kept = left_by(f, action).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0] >= b.slot_us() && kept[0] != left_by_us(&b),
        "b counts from when it was told to have left: {kept:?}"
    );
    // With a's slot back there is room for one more at once.
    let c = reserve(&store, action)
        .await
        .expect("the given-back slot is free");
    assert!(c.slot_us() > b.slot_us());
    assert_eq!(left_by(f, action).await.len(), 1);
    assert_eq!(
        pending(f, action)
            .await
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [c.slot_us()]
    );
}

/// A request handed to its connection in time may still leave late (a new TLS connection, a
/// stalled write), and a process killed after sending never reports it: until its departure is
/// told, a send counts as leaving at the moment every other reservation is decided, so its
/// left-by passing frees nothing; past its bound (its left-by, the request timeout and the
/// margin: a request not written by then never leaves) it counts as having left at the bound,
/// and a second after that it binds nothing. Time is moved on by ageing the window's row.
async fn an_unreported_send_counts_as_leaving_now_until_its_bound_then_at_its_bound(f: &Fixture) {
    let store = f.open().await;
    let action = "DescribeTelCdr";
    if !store.share_window(action, 1.0) {
        let (_, slot) = store.sending_reserved(action, 1).await.unwrap();
        assert!(slot.is_none());
        return;
    }
    let timeout = Duration::from_secs(2);
    store.set_request_timeout(timeout);
    let a = reserve(&store, action)
        .await
        .expect("an empty window has room");
    let bound =
        Duration::from_micros((left_by_us(&a) - a.slot_us()) as u64) + timeout + UNREPORTED_MARGIN;
    assert_eq!(
        pending(f, action).await,
        [(
            a.slot_us(),
            left_by_us(&a),
            a.slot_us() + bound.as_micros() as i64
        )]
    );
    // A second after its slot, its left-by long passed, a never reported: it may be leaving
    // only now, so the window of one has no room (counted at its left-by, it would).
    age(f, action, Duration::from_secs(1)).await;
    assert!(
        reserve(&store, action).await.is_none(),
        "an unreported send past its left-by freed its place"
    );
    // Shortly before its bound: still as if leaving now.
    age(f, action, bound - Duration::from_millis(1_000 + 1_100)).await;
    assert!(reserve(&store, action).await.is_none());
    assert_eq!(pending(f, action).await.len(), 1);
    // Just past its bound: it counts as having left at the bound (about now), so the window
    // stays full for a second more.
    age(f, action, Duration::from_millis(1_200)).await;
    assert!(
        reserve(&store, action).await.is_none(),
        "an unreported send past its bound was dropped rather than counted at its bound"
    );
    // A second (and the margin) after its bound, it binds nothing.
    age(f, action, Duration::from_millis(1_300)).await;
    assert!(reserve(&store, action).await.is_some());
}
