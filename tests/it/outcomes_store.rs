//! Outcome records in the SQLite store, beyond the behaviours both stores are held to in
//! `store_contract::outcomes` and `::redials` (a check's schedule, a record seen twice,
//! reconciliation, pushes and polls, a held push claimed by its attempt): in-doubt attempts
//! settled after a crash, lookahead, the call history a not-placed contact keeps, the queries'
//! send times seeding the next tracker, the kept counts against a join.

use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::store::{AttemptOutcome, OutcomeRecord, Reconciled, Store};

fn row(line: u64, callee: &str) -> NewContact {
    NewContact {
        line,
        callee: callee.into(),
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: None,
    }
}

async fn store_with(n: u64) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = store.create_campaign("t", "fp", "x.csv", 0).await.unwrap();
    let rows = (0..n)
        .map(|i| row(i + 2, &format!("00861300000000{i}")))
        .collect();
    store.insert_contacts(c.id, rows, 0).await.unwrap();
    (dir, store, c.id)
}

/// Dial every pending contact at `sent_at`: `placed` with session `s-<line>`, or in doubt.
async fn dial(store: &Store, campaign: i64, sent_at: i64, in_doubt: bool) -> Vec<i64> {
    let due = store
        .due_contacts(campaign, sent_at, 100, Default::default())
        .await
        .unwrap();
    let mut ids = vec![];
    for d in due {
        let n = store.begin_attempt(d.id, sent_at, None).await.unwrap();
        let o = AttemptOutcome {
            status: if in_doubt {
                Status::Unknown
            } else {
                Status::Placed
            },
            attempts: 1,
            reschedules: 0,
            next_at: 0,
            session_id: (!in_doubt).then(|| format!("s-{}", d.id)),
            request_id: None,
            error_code: None,
            error_message: None,
            outcome: if in_doubt { "in_doubt" } else { "placed" },
            sent_at: Some(sent_at),
            finished_at: sent_at,
        };
        store.finish_attempt(d.id, n, o).await.unwrap();
        ids.push(d.id);
    }
    ids
}

fn answered(session: &str) -> OutcomeRecord {
    OutcomeRecord {
        session_id: session.into(),
        class: "answered".into(),
        end_status: Some(1),
        end_status_string: Some("ok".into()),
        duration_s: Some(30),
        answered_at: Some(1_800_000_010),
        ended_at: Some(1_800_000_040),
        hangup_side: Some("user".into()),
        source: "poll".into(),
        recorded_at: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn attempts_settled_in_doubt_after_a_crash_are_scheduled_for_reconciliation() {
    let (_dir, store, id) = store_with(1).await;
    let due = store
        .due_contacts(id, 1, 10, Default::default())
        .await
        .unwrap();
    store.begin_attempt(due[0].id, 1_000, None).await.unwrap();
    assert!(store
        .due_reconciles(i64::MAX / 2, 0, 10)
        .await
        .unwrap()
        .is_empty());
    store.settle_in_flight(id, 2_000).await.unwrap();
    let r = store.due_reconciles(i64::MAX / 2, 0, 10).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].sent_at, 1_000,
        "no send time recorded: the start stands for it"
    );
}

/// The poller asks nothing while no check is due, and when one is due it takes along, in the
/// same request, a session due a few seconds later (so requests carry up to 100 SessionIds
/// without putting any check off).
#[tokio::test]
async fn a_due_check_takes_along_sessions_due_within_seconds_and_nothing_is_asked_early_alone() {
    use ccc_dialer::ccc::{system_clock, Client, ClientSettings};
    use ccc_dialer::mock::MockServer;
    use ccc_dialer::outcomes::poller::Tracker;
    use std::time::Duration;

    let mock = MockServer::spawn(crate::support::outcome_options(""))
        .await
        .unwrap();
    let (_dir, store, campaign) = store_with(1).await;
    let t0 = ccc_dialer::times::now_ms();
    dial(&store, campaign, t0, false).await;
    store
        .insert_contacts(campaign, vec![row(9, "008613000000009")], t0)
        .await
        .unwrap();
    dial(&store, campaign, t0 + 3_000, false).await;

    let client = Client::new(
        &ClientSettings {
            endpoint: mock.endpoint(),
            region: None,
            language: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(50),
        },
        ccc_dialer::sign::Credentials {
            secret_id: crate::support::SECRET_ID.into(),
            secret_key: ccc_dialer::secret::Secret::new(crate::support::SECRET_KEY),
            session_token: None,
        },
        system_clock(),
    )
    .unwrap();
    let settings = ccc_dialer::outcomes::settings::OutcomeSettings {
        enabled: true,
        first_check_after: Duration::from_secs(30),
        check_every: Duration::from_secs(30),
        ..Default::default()
    };
    let tracker = Tracker::new(store.clone(), client, settings, 1_400_000_000, 15);
    let asked = |m: &MockServer| {
        m.stats()
            .actions
            .get("DescribeTelCdr")
            .map_or(0, |a| a.requests)
    };

    // A second before the first session's check: nothing is due, nothing is asked.
    tracker.pass(t0 + 29_000).await.unwrap();
    assert_eq!(asked(&mock), 0, "asked before any check was due");

    // The first session is due; the second, due 3 s later, goes in the same request.
    let r = tracker.pass(t0 + 30_000).await.unwrap();
    assert_eq!(r.sessions_asked, 2, "{r:?}");
    assert_eq!(
        asked(&mock),
        1,
        "two sessions due 3 s apart took one request"
    );

    // Neither is due again until check_every after that request.
    tracker.pass(t0 + 34_000).await.unwrap();
    assert_eq!(
        asked(&mock),
        1,
        "a session was asked about again before check_every"
    );
}

#[tokio::test]
async fn a_not_placed_contact_stays_in_its_numbers_call_history_so_a_redial_waits_for_the_gap() {
    // "No call record yet" is not proof that no phone rang (a record exists only after the
    // call ended): the dial stays counted, so `--redial-not-placed` still waits for min_gap
    // and max_per_day.
    let (_dir, store, id) = store_with(1).await;
    let sent = 2_000_000;
    let ids = dial(&store, id, sent, true).await;
    let due = store
        .due_reconciles(sent + 30_000, 30_000, 10)
        .await
        .unwrap();
    store
        .finish_reconcile(due[0].attempt_id, Reconciled::NotPlaced, sent + 30_000)
        .await
        .unwrap();
    assert_eq!(store.result_of(ids[0]).await.unwrap().status, "not_placed");
    assert_eq!(
        store.calls_to("008613000000000", 0).await.unwrap(),
        vec![sent]
    );
    assert_eq!(
        store.requeue_not_placed(id, sent + 40_000).await.unwrap(),
        1
    );
    let guard = ccc_dialer::store::PersonGuard {
        min_gap: std::time::Duration::from_secs(3600),
        max_per_day: 0,
        day_zone: jiff::tz::TimeZone::UTC,
        since_ms: 0,
    };
    let held = store
        .person_held(ids[0], guard.clone(), sent + 40_000)
        .await
        .unwrap();
    assert!(
        matches!(held, Some(ccc_dialer::calling::gate::Gate::MinGap { .. })),
        "{held:?}"
    );
    // The gap passes as usual.
    assert_eq!(
        store
            .person_held(ids[0], guard, sent + 3_600_000)
            .await
            .unwrap(),
        None
    );
}

/// DescribeTelCdr's limiter keeps CreateAIAgentCall's rules: every query is written down
/// before it leaves and its departure (when its connection took it) after, and a new tracker
/// on the store (as a restart builds one) seeds its window from them: the recorded departures
/// of both hold 5 a second in every second. Judged by the departures the trackers recorded,
/// the instants their windows counted, not by arrival times. A query
/// written down and never told its departure (a kill between the two) counts as now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_queries_are_recorded_as_they_leave_and_seed_the_next_trackers_window() {
    use ccc_dialer::ccc::{system_clock, Client, ClientSettings};
    use ccc_dialer::mock::MockServer;
    use ccc_dialer::outcomes::poller::Tracker;
    use std::time::Duration;
    const ACTION: &str = "DescribeTelCdr";

    let mock = MockServer::spawn(crate::support::outcome_options(""))
        .await
        .unwrap();
    let tracker = |store: &Store| {
        let client = Client::new(
            &ClientSettings {
                endpoint: mock.endpoint(),
                region: None,
                language: None,
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(50),
            },
            ccc_dialer::sign::Credentials {
                secret_id: crate::support::SECRET_ID.into(),
                secret_key: ccc_dialer::secret::Secret::new(crate::support::SECRET_KEY),
                session_token: None,
            },
            system_clock(),
        )
        .unwrap();
        let settings = ccc_dialer::outcomes::settings::OutcomeSettings {
            enabled: true,
            requests_per_second: 5.0,
            first_check_after: Duration::from_secs(1),
            check_every: Duration::from_secs(30),
            ..Default::default()
        };
        Tracker::new(store.clone(), client, settings, 1_400_000_000, 15)
    };
    let asked = |m: &MockServer| m.stats().actions.get(ACTION).map_or(0, |a| a.requests);
    let now = ccc_dialer::times::now_ms;

    // Six lost replies: one reconciling query each.
    let (_dir, store, campaign) = store_with(6).await;
    dial(&store, campaign, now() - 10_000, true).await;
    let before = now();
    let first = tracker(&store);
    let r = first.pass(now()).await.unwrap();
    assert_eq!(r.reconciles_asked, 6);
    assert_eq!(asked(&mock), 6);
    let mut earlier = store.recent_action_sends(ACTION, 100, now()).await.unwrap();
    earlier.sort();
    assert_eq!(earlier.len(), 6, "every query recorded once: {earlier:?}");
    assert!(
        earlier.iter().all(|t| *t >= before && *t <= now()),
        "recorded departures outside the pass: {earlier:?} (pass began at {before})"
    );
    drop(first);

    // Six more; a new tracker asks about them at once.
    let rows = (0..6)
        .map(|i| row(20 + i, &format!("00861310000000{i}")))
        .collect();
    store.insert_contacts(campaign, rows, now()).await.unwrap();
    dial(&store, campaign, now() - 10_000, true).await;
    let second = tracker(&store);
    let r = second.pass(now()).await.unwrap();
    assert_eq!(r.reconciles_asked, 6);
    assert_eq!(asked(&mock), 12);
    let mut all = store.recent_action_sends(ACTION, 100, now()).await.unwrap();
    all.sort();
    assert_eq!(all.len(), 12);
    // Both trackers' recorded departures: at most 5 in any second. Unseeded, the second
    // tracker's first queries leave at once (two back to back), within a second of the first
    // tracker's last ones.
    let most = (0..all.len())
        .map(|i| all[i..].iter().take_while(|t| **t < all[i] + 1_000).count())
        .max()
        .unwrap_or(0);
    assert!(
        most <= 5,
        "{most} queries in one second across the restart: the new tracker's window was not \
         seeded from the last one's queries ({all:?})"
    );

    // Written down, never told its departure: as late as it can have left.
    store.sending(ACTION, now() - 5_000).await.unwrap();
    let at = now();
    let seeded = store.recent_action_sends(ACTION, 1, at).await.unwrap();
    assert_eq!(seeded, vec![at]);
}

/// The counts by outcome a campaign view reads are kept by triggers (not a join over every
/// placed contact); they equal that join after every way an outcome or a contact changes:
/// records written (poll, give-up, a late record replacing a give-up), an in-doubt request
/// reconciled to a placed call, contacts deleted by a purge, and a store migrated from before
/// the kept counts (built from what is stored).
#[tokio::test]
async fn the_kept_counts_by_outcome_equal_a_join_over_the_placed_contacts() {
    let (dir, store, id) = store_with(6).await;
    let placed = dial(&store, id, 1_000_000, false).await;
    let joined = |path: std::path::PathBuf| {
        let db = rusqlite::Connection::open(path).unwrap();
        let mut stmt = db
            .prepare(
                "SELECT o.class, COUNT(*) FROM contacts k JOIN outcomes o ON o.session_id = k.session_id
                 WHERE k.campaign_id = ?1 AND k.status = 'placed' GROUP BY o.class",
            )
            .unwrap();
        stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    let db = dir.path().join("s.db");
    let check = |what: &str, counts: ccc_dialer::store::OutcomeCounts| {
        assert_eq!(counts.by_class, joined(db.clone()), "{what}");
        counts
    };
    let c = check(
        "placed, nothing known",
        store.outcome_counts(id).await.unwrap(),
    );
    assert_eq!(c.awaiting, 6);

    let mut busy = answered(&format!("s-{}", placed[1]));
    busy.class = "busy".into();
    let give_up = OutcomeRecord {
        session_id: format!("s-{}", placed[2]),
        class: "no_record".into(),
        source: "gave_up".into(),
        recorded_at: 1,
        ..Default::default()
    };
    store
        .record_outcomes(vec![answered(&format!("s-{}", placed[0])), busy, give_up])
        .await
        .unwrap();
    let c = check("three written", store.outcome_counts(id).await.unwrap());
    assert_eq!((c.by_class.get("answered"), c.awaiting), (Some(&1), 3));
    // A late record replaces the give-up: moved from no_record to answered.
    store
        .record_outcomes(vec![answered(&format!("s-{}", placed[2]))])
        .await
        .unwrap();
    let c = check("give-up replaced", store.outcome_counts(id).await.unwrap());
    assert_eq!(c.by_class.get("no_record"), None);
    assert_eq!(c.by_class.get("answered"), Some(&2));

    // An in-doubt request reconciled to the call it created counts under its outcome.
    store
        .insert_contacts(id, vec![row(50, "008613000000050")], 0)
        .await
        .unwrap();
    dial(&store, id, 2_000_000, true).await;
    let due = store.due_reconciles(i64::MAX / 2, 0, 10).await.unwrap();
    let mut found = answered("s-found");
    found.class = "voicemail".into();
    store
        .finish_reconcile(due[0].attempt_id, Reconciled::Found(Box::new(found)), 5)
        .await
        .unwrap();
    let c = check("reconciled", store.outcome_counts(id).await.unwrap());
    assert_eq!(c.by_class.get("voicemail"), Some(&1));
    assert_eq!(c.awaiting, 3);

    // A store from before the kept counts: built from what is stored when it is opened.
    let expected = store.outcome_counts(id).await.unwrap();
    drop(store);
    {
        let db = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        db.execute_batch("DROP TABLE outcome_counts; PRAGMA user_version = 9;")
            .unwrap();
    }
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(
        check("migrated", store.outcome_counts(id).await.unwrap()),
        expected
    );

    // A contact deleted, its outcome first, as a purge deletes them: it leaves the counts.
    {
        let db = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        for sql in [
            "DELETE FROM dials WHERE attempt_id IN (SELECT id FROM attempts WHERE contact_id = ?1)",
            "DELETE FROM outcome_checks WHERE contact_id = ?1",
            "DELETE FROM outcomes WHERE contact_id = ?1",
            "DELETE FROM attempts WHERE contact_id = ?1",
            "DELETE FROM contacts WHERE id = ?1",
        ] {
            db.execute(sql, [placed[0]]).unwrap();
        }
    }
    let c = check("deleted", store.outcome_counts(id).await.unwrap());
    assert_eq!(c.by_class.get("answered"), Some(&1));
}
