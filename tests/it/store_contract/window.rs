//! The account's send window kept by the store (issue 15: one cap across replicas). On
//! PostgreSQL every process on the store takes its slots from one window per API action,
//! decided in the transaction that writes the request down; on SQLite (one process, whose
//! limiter keeps the window) the store shares nothing and gives no slot. Written once, run on
//! both: each behaviour says what either store must do.

use std::collections::HashSet;

use ccc_dialer::store::window::{Slot, HOLD};
use ccc_dialer::store::{Store, StoreError};

use super::{campaign_with, row, DEADLINE};
use crate::pg::Fixture;

contract!(
    the_window_is_shared_by_every_process_on_a_postgres_store_and_by_none_on_sqlite,
    a_full_window_writes_no_attempt_down_and_leaves_the_contact_pending,
    a_slot_never_used_is_given_back_and_a_departure_moves_its_send,
);

/// One second plus the margin: the spacing between a send and the one `cap` after it.
fn spacing_us() -> i64 {
    (ccc_dialer::limiter::WINDOW + ccc_dialer::limiter::WINDOW_MARGIN).as_micros() as i64
}

/// The left-by times the database keeps for `action` (µs, ascending), read with a connection
/// of its own.
async fn left_by(f: &Fixture, action: &str) -> Vec<i64> {
    let Fixture::Postgres(schema) = f else {
        return Vec::new();
    };
    let (c, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.query_opt(
        "SELECT left_by FROM send_windows WHERE action = $1",
        &[&action],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
    .unwrap_or_default()
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
    // Handed out in increasing order, each counted at its slot plus the hold until it leaves.
    assert!(slots.windows(2).all(|w| w[0].slot_us() <= w[1].slot_us()));
    assert!(slots
        .iter()
        .all(|s| s.left_by_us() == s.slot_us() + HOLD.as_micros() as i64));
    assert_eq!(
        left_by(f, action).await,
        slots.iter().map(Slot::left_by_us).collect::<Vec<_>>()
    );
    // The fourth, from either process, goes no earlier than a second (and the margin) after
    // the first may have left; that is beyond the horizon, so the window says "not yet".
    for store in [&b, &a] {
        if let Some(fourth) = reserve(store, action).await {
            // Only when this host paused the test long enough for the first to age.
            assert!(fourth.slot_us() >= slots[0].left_by_us() + spacing_us());
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
    assert!(s1.slot_us() <= s2.slot_us());
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
            assert!(t.slot_us() >= s1.left_by_us() + spacing_us());
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
    // before its left-by (the database's clock less how long ago, read when told).
    store.window_left(&a, None).await.unwrap();
    store
        .window_left(&b, Some(std::time::Duration::ZERO))
        .await
        .unwrap();
    let kept = left_by(f, action).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0] >= b.slot_us() && kept[0] != b.left_by_us(),
        "b counts from when it was told to have left: {kept:?}"
    );
    // With a's slot back there is room for one more at once.
    let c = reserve(&store, action)
        .await
        .expect("the given-back slot is free");
    assert!(c.slot_us() >= b.slot_us());
    assert_eq!(left_by(f, action).await.len(), 2);
}
