//! The store is the queue: intake is idempotent per line, an attempt is refused for a contact
//! that is not pending, and an attempt without an outcome after a crash is in doubt.

use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::store::Store;

fn row(line: u64, callee: &str) -> NewContact {
    NewContact {
        line,
        callee: callee.into(),
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: None,
    }
}

async fn store_with(rows: Vec<NewContact>) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = store.create_campaign("t", "fp", "x.csv", 0).await.unwrap();
    store.insert_contacts(c.id, rows, 0).await.unwrap();
    (dir, store, c.id)
}

#[tokio::test]
async fn intake_run_twice_stores_each_line_once_and_dedupes_callees() {
    let (_dir, store, id) = store_with(vec![row(2, "a"), row(3, "b"), row(4, "a")]).await;
    let again = store
        .insert_contacts(
            id,
            vec![row(2, "a"), row(3, "b"), row(4, "a"), row(5, "c")],
            0,
        )
        .await
        .unwrap();
    assert_eq!(again.already_stored, 3);
    assert_eq!(again.accepted, 1);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(counts.get(&Status::Pending), Some(&3));
    assert_eq!(
        counts.get(&Status::Skipped),
        Some(&1),
        "line 4 repeats line 2's callee"
    );
}

#[tokio::test]
async fn an_attempt_is_refused_for_a_contact_already_in_flight() {
    let (_dir, store, id) = store_with(vec![row(2, "a")]).await;
    let due = store
        .due_contacts(id, 1, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    store.begin_attempt(due[0].id, 1, None).await.unwrap();
    assert!(store.begin_attempt(due[0].id, 2, None).await.is_err());
    assert!(store
        .due_contacts(id, 3, 10, Default::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn after_a_crash_an_attempt_without_outcome_is_unknown_and_not_due() {
    let (dir, store, id) = store_with(vec![row(2, "a"), row(3, "b")]).await;
    let due = store
        .due_contacts(id, 1, 10, Default::default())
        .await
        .unwrap();
    store.begin_attempt(due[0].id, 1, None).await.unwrap();
    drop(store); // the process dies here: no outcome recorded

    let store = Store::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(store.settle_in_flight(id, 5).await.unwrap(), 1);
    let r = store.result_of(due[0].id).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("unknown", "InDoubt")
    );
    let due_now = store
        .due_contacts(id, 10, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(
        due_now
            .iter()
            .map(|d| d.callee.as_str())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
}

#[tokio::test]
async fn redial_unknown_puts_in_doubt_contacts_back_in_the_queue_only_when_asked() {
    let (_dir, store, id) = store_with(vec![row(2, "a")]).await;
    let due = store
        .due_contacts(id, 1, 10, Default::default())
        .await
        .unwrap();
    store.begin_attempt(due[0].id, 1, None).await.unwrap();
    assert_eq!(store.settle_in_flight(id, 5).await.unwrap(), 1);
    assert_eq!(store.result_of(due[0].id).await.unwrap().status, "unknown");
    assert_eq!(store.requeue_unknown(id, 6).await.unwrap(), 1);
    assert_eq!(store.result_of(due[0].id).await.unwrap().status, "pending");
    let due = store
        .due_contacts(id, 7, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "due again at once");
}

#[tokio::test]
async fn retries_that_came_due_go_before_first_attempts() {
    let (_dir, store, id) = store_with(vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let due = store
        .due_contacts(id, 1, 1, Default::default())
        .await
        .unwrap();
    let n = store.begin_attempt(due[0].id, 1, None).await.unwrap();
    store
        .finish_attempt(
            due[0].id,
            n,
            ccc_dialer::store::AttemptOutcome {
                status: Status::Pending,
                attempts: 1,
                reschedules: 0,
                next_at: 100,
                session_id: None,
                request_id: None,
                error_code: Some("InternalError".into()),
                error_message: None,
                outcome: "error",
                sent_at: Some(1),
                finished_at: 2,
            },
        )
        .await
        .unwrap();
    let before = store
        .due_contacts(id, 50, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|d| d.callee.as_str()).collect::<Vec<_>>(),
        vec!["b", "c"]
    );
    let after = store
        .due_contacts(id, 100, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|d| d.callee.as_str()).collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
}

#[tokio::test]
async fn the_limiter_is_seeded_with_real_send_times_or_an_upper_bound_never_an_earlier_start() {
    let (dir, store, id) = store_with(vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let due = store
        .due_contacts(id, 0, 10, Default::default())
        .await
        .unwrap();
    let outcome = |status, sent_at, outcome| ccc_dialer::store::AttemptOutcome {
        status,
        attempts: 1,
        reschedules: 0,
        next_at: 0,
        session_id: None,
        request_id: None,
        error_code: None,
        error_message: None,
        outcome,
        sent_at,
        finished_at: 1_500,
    };
    // a: started at 1000, waited for its slot, sent at 1400.
    let n = store.begin_attempt(due[0].id, 1_000, None).await.unwrap();
    store
        .finish_attempt(due[0].id, n, outcome(Status::Placed, Some(1_400), "placed"))
        .await
        .unwrap();
    // b: written down, released unsent at a stop: not a send.
    let n = store.begin_attempt(due[1].id, 1_100, None).await.unwrap();
    store
        .finish_attempt(due[1].id, n, outcome(Status::Pending, None, "not_sent"))
        .await
        .unwrap();
    // c: in flight when the process died.
    store.begin_attempt(due[2].id, 1_200, None).await.unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    // Not settled yet (serve used to seed its window before settling): it may have left at
    // any moment up to now, so it counts as now, never as its start.
    assert_eq!(
        store.recent_sends(10, 8_000).await.unwrap(),
        vec![8_000, 1_400]
    );
    store.settle_in_flight(id, 9_000).await.unwrap();
    assert_eq!(
        store.recent_sends(10, 9_500).await.unwrap(),
        vec![9_000, 1_400]
    );
}

#[tokio::test]
async fn a_restart_seeds_in_doubt_sends_no_earlier_than_they_can_have_left() {
    // 20 attempts written down 3 s before a kill -9, their replies never recorded: the next
    // start must hold its first request for a window, as if all 20 had just left.
    let rows: Vec<_> = (0..20).map(|i| row(i + 2, &format!("p{i}"))).collect();
    let (_dir, store, id) = store_with(rows).await;
    let due = store
        .due_contacts(id, 0, 20, Default::default())
        .await
        .unwrap();
    let now_wall = 1_000_000;
    for d in &due {
        store
            .begin_attempt(d.id, now_wall - 3_000, None)
            .await
            .unwrap();
    }
    let now = std::time::Instant::now();
    let seed = ccc_dialer::seed::seed_window(&store, ccc_dialer::ccc::ACTION, 20.0, now_wall, now)
        .await
        .unwrap();
    assert_eq!(seed.len(), 20);
    assert!(seed.iter().all(|t| *t >= now), "seeded earlier than now");
    let limiter = ccc_dialer::limiter::Limiter::new(20.0, &seed);
    assert!(
        limiter.reserve(now) >= now + ccc_dialer::limiter::WINDOW,
        "the first request after the restart was not held for the in-doubt sends"
    );
}

#[tokio::test]
async fn a_store_from_before_the_dials_table_is_upgraded_with_its_calls_counted() {
    let (dir, store, id) = store_with(vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let due = store
        .due_contacts(id, 10, 10, Default::default())
        .await
        .unwrap();
    let placed = |n| ccc_dialer::store::AttemptOutcome {
        status: n,
        attempts: 1,
        reschedules: 0,
        next_at: 0,
        session_id: Some("s".into()),
        request_id: None,
        error_code: None,
        error_message: None,
        outcome: "placed",
        sent_at: Some(1_000),
        finished_at: 1_100,
    };
    let n = store.begin_attempt(due[0].id, 900, None).await.unwrap();
    store
        .finish_attempt(due[0].id, n, placed(Status::Placed))
        .await
        .unwrap();
    // A refused request never rang: it must not count.
    let n = store.begin_attempt(due[1].id, 950, None).await.unwrap();
    let mut refused = placed(Status::Failed);
    refused.outcome = "error";
    store.finish_attempt(due[1].id, n, refused).await.unwrap();
    drop(store);
    // As a build from before `dials` left it: schema 3, no such table.
    let path = dir.path().join("s.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute_batch("DROP TABLE dials; PRAGMA user_version = 3;")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.calls_to("a", 0).await.unwrap(), vec![1_000]);
    assert!(store.calls_to("b", 0).await.unwrap().is_empty());
    // And attempts can be written down again.
    store.begin_attempt(due[2].id, 2_000, None).await.unwrap();
    assert_eq!(store.calls_to("c", 0).await.unwrap(), vec![2_000]);
}

#[tokio::test]
async fn a_wall_clock_that_ran_ahead_does_not_hold_the_restart_for_the_skew() {
    // The last run's 20 sends were written by a clock 20 s ahead; NTP set it back before the
    // rerun. Read as they are, they lie 20 s in the future and the window would hold the first
    // request for 20 s; counted as now, at most one window.
    let rows: Vec<_> = (0..20).map(|i| row(i + 2, &format!("p{i}"))).collect();
    let (_dir, store, id) = store_with(rows).await;
    let due = store
        .due_contacts(id, 0, 20, Default::default())
        .await
        .unwrap();
    let now_wall: i64 = 1_000_000;
    for (i, d) in due.iter().enumerate() {
        let sent = now_wall + 20_000 - 1_000 + i as i64 * 50;
        let n = store.begin_attempt(d.id, sent, None).await.unwrap();
        let placed = ccc_dialer::store::AttemptOutcome {
            status: Status::Placed,
            attempts: 1,
            reschedules: 0,
            next_at: 0,
            session_id: Some(format!("s{i}")),
            request_id: None,
            error_code: None,
            error_message: None,
            outcome: "placed",
            sent_at: Some(sent),
            finished_at: sent + 300,
        };
        store.finish_attempt(d.id, n, placed).await.unwrap();
    }
    let now = std::time::Instant::now();
    let seed = ccc_dialer::seed::seed_window(&store, ccc_dialer::ccc::ACTION, 20.0, now_wall, now)
        .await
        .unwrap();
    assert!(seed.iter().all(|t| *t <= now), "a seed lies in the future");
    let (_, ahead) = ccc_dialer::seed::seed_instants(&[now_wall + 19_950], now_wall, now);
    assert_eq!(ahead, Some(19_950), "the skew is reported");
    let limiter = ccc_dialer::limiter::Limiter::new(20.0, &seed);
    let first = limiter.reserve(now);
    assert!(
        first
            <= now
                + ccc_dialer::limiter::WINDOW
                + ccc_dialer::limiter::WINDOW_MARGIN
                + ccc_dialer::limiter::WARMUP_MARGIN,
        "the first request was held {:?} for a clock skew",
        first - now
    );
}

#[tokio::test]
async fn a_final_attempt_returns_its_result_row_with_the_write_and_a_retry_none() {
    let (_dir, store, id) = store_with(vec![row(2, "a"), row(3, "b")]).await;
    let due = store
        .due_contacts(id, 0, 10, Default::default())
        .await
        .unwrap();
    let outcome =
        |status, session: Option<&str>, outcome, next_at| ccc_dialer::store::AttemptOutcome {
            status,
            attempts: 1,
            reschedules: 0,
            next_at,
            session_id: session.map(String::from),
            request_id: Some("r-1".into()),
            error_code: None,
            error_message: None,
            outcome,
            sent_at: Some(1_050),
            finished_at: 1_100,
        };
    // a: placed, final: its row (what the results file gets) comes back with the write.
    let n = store.begin_attempt(due[0].id, 1_000, None).await.unwrap();
    let row_a = store
        .finish_attempt_with_result(
            due[0].id,
            n,
            outcome(Status::Placed, Some("s-1"), "placed", 0),
        )
        .await
        .unwrap()
        .expect("a final outcome returns its row");
    assert_eq!(row_a.status, "placed");
    assert_eq!(row_a.session_id, "s-1");
    assert_eq!(row_a.callee, "a");
    assert_eq!(row_a, store.result_of(due[0].id).await.unwrap());
    // b: will be retried: not final, no row.
    let n = store.begin_attempt(due[1].id, 1_000, None).await.unwrap();
    let row_b = store
        .finish_attempt_with_result(due[1].id, n, outcome(Status::Pending, None, "error", 5_000))
        .await
        .unwrap();
    assert!(row_b.is_none(), "{row_b:?}");
    assert_eq!(store.result_of(due[1].id).await.unwrap().status, "pending");
}

/// A job bigger than the savepoint journal's memory spills it to a temporary file, and that
/// works: an addition of 150,000 rows is stored whole, and the one UPDATE that cancels them all
/// (a savepoint journal of thousands of pages) ends every one. With the bundled SQLite built
/// with a 1 MiB in-memory journal (de06951) the spill failed with SQLITE_FULL and the cancel
/// left all of them pending (.cargo/config.toml says why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_addition_is_stored_whole_and_cancelled_whole() {
    const ADDED: u64 = 150_000;
    let (dir, store, id) = store_with(vec![row(2, "+8613700000000")]).await;
    let file = dir.path().join("more.csv");
    let mut text = String::from("callee\n");
    for i in 1..=ADDED {
        text.push_str(&format!("+86137{i:08}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let opts = ccc_dialer::intake::IntakeOptions {
        default_country: "CN".into(),
        callee_format: ccc_dialer::config::CalleeFormat::DoubleZero,
    };
    let last = store.last_line(id).await.unwrap();
    let report = ccc_dialer::import::import_file_after(&store, id, &file, &opts, None, last, 0)
        .await
        .unwrap();
    assert_eq!(report.counts.accepted, ADDED, "{:?}", report.counts);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        counts.get(&Status::Pending),
        Some(&(ADDED + 1)),
        "{counts:?}"
    );
    let cancelled = store.cancel_pending(id, 1).await.unwrap();
    assert_eq!(cancelled, ADDED + 1);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        counts.get(&Status::Pending).copied().unwrap_or(0),
        0,
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&Status::Cancelled),
        Some(&(ADDED + 1)),
        "{counts:?}"
    );
}
