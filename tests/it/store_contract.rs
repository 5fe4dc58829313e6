//! One store, two implementations: each behaviour below is written once and run against a
//! SQLite file (`store_contract::sqlite::…`) and a PostgreSQL schema of its own
//! (`store_contract::postgres::…`). PostgreSQL tests need the server at 127.0.0.1:5432 (trust
//! auth, user `postgres`, database `test`) and fail, saying so, when it is not there.

use std::collections::HashSet;
use std::time::Duration;

use ccc_dialer::contact::{NewContact, Overrides, Status, DNC_REASON};
use ccc_dialer::store::{
    AttemptOutcome, CampaignState, ContactFilter, PersonGuard, PurgeOutcome, Store, StoreError,
};

use crate::pg::{Fixture, PgSchema};

/// The longest one behaviour may take (a hung database fails the test instead of hanging it).
const DEADLINE: Duration = Duration::from_secs(60);

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = crate::pg::Fixture::sqlite();
                    tokio::time::timeout(super::DEADLINE, super::$name(&f))
                        .await
                        .expect("the behaviour did not finish within its deadline");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = crate::pg::Fixture::postgres().await;
                    tokio::time::timeout(super::DEADLINE, super::$name(&f))
                        .await
                        .expect("the behaviour did not finish within its deadline");
                }
            )*
        }
    };
}

mod leases;
mod outcomes;
mod redials;
mod tags;
mod window;

contract!(
    campaigns_are_created_found_and_steered,
    intake_run_twice_stores_each_line_once_and_dedupes_callees,
    an_attempt_is_refused_for_a_contact_already_in_flight,
    after_a_crash_an_attempt_without_outcome_is_unknown_and_not_due,
    redial_unknown_puts_in_doubt_contacts_back_only_when_asked,
    retries_that_came_due_go_before_first_attempts,
    the_limiter_is_seeded_with_real_send_times,
    counts_follow_every_status_change_and_delete,
    one_number_in_two_campaigns_is_held_by_the_per_person_gap,
    results_come_in_line_order_with_outcome_and_error,
    waits_meta_and_agent_lines_are_kept,
    gates_defer_end_and_expire_pending_contacts,
    a_newer_schema_is_refused,
    outcome_counts_follow_records_and_status_changes,
    held_push_outcomes_are_claimed_by_their_attempt_and_told_to_the_arrival_hook,
    other_actions_sends_are_kept_for_their_limiter,
    an_operator_requeue_resets_failed_contacts_and_reopens_the_campaign,
    contact_pages_follow_the_line_and_filters,
    a_finished_campaign_is_purged_and_its_dials_kept_unless_forgotten,
);

fn row(line: u64, callee: &str) -> NewContact {
    NewContact {
        line,
        callee: callee.into(),
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: None,
    }
}

async fn campaign_with(store: &Store, name: &str, rows: Vec<NewContact>) -> i64 {
    let c = store.create_campaign(name, "fp", "x.csv", 0).await.unwrap();
    store.insert_contacts(c.id, rows, 0).await.unwrap();
    c.id
}

fn outcome(status: Status, outcome: &'static str, sent_at: Option<i64>) -> AttemptOutcome {
    AttemptOutcome {
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
    }
}

/// `settle_in_flight` after a process died with calls in flight: on PostgreSQL its leases run
/// out first (polled, within a deadline; its lease was set to 1 s). Returns how many it settled.
async fn settle_the_dead(store: &Store, campaign: i64, now: i64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.settle_in_flight(campaign, now).await.unwrap() {
            0 if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            n => return n,
        }
    }
}

async fn due(store: &Store, campaign: i64, now: i64) -> Vec<ccc_dialer::store::DueContact> {
    store
        .due_contacts(campaign, now, 100, HashSet::new())
        .await
        .unwrap()
}

async fn campaigns_are_created_found_and_steered(f: &Fixture) {
    let store = f.open().await;
    assert!(store.find_campaign("spring").await.unwrap().is_none());
    let c = store
        .create_campaign("spring", "fp1", "spring.csv", 10)
        .await
        .unwrap();
    assert_eq!(
        (c.state, c.intake_done, c.fingerprint.as_str()),
        (CampaignState::Active, false, "fp1")
    );
    assert!(
        store
            .create_campaign("spring", "fp2", "x", 11)
            .await
            .is_err(),
        "a second campaign of one name"
    );
    store.mark_intake_done(c.id).await.unwrap();
    let found = store.find_campaign("spring").await.unwrap().unwrap();
    assert_eq!((found.id, found.intake_done), (c.id, true));
    assert_eq!(store.campaign(c.id).await.unwrap(), Some(found));

    assert!(store
        .set_campaign_state(c.id, CampaignState::Paused, Some("operator".into()), 20)
        .await
        .unwrap());
    let paused = store.campaign(c.id).await.unwrap().unwrap();
    assert_eq!(
        (paused.state, paused.reason.as_deref()),
        (CampaignState::Paused, Some("operator"))
    );
    store
        .set_campaign_state(c.id, CampaignState::Active, None, 21)
        .await
        .unwrap();
    store
        .set_active_reason(c.id, Some("starts at 09:00".into()))
        .await
        .unwrap();
    assert_eq!(
        store
            .campaign(c.id)
            .await
            .unwrap()
            .unwrap()
            .reason
            .as_deref(),
        Some("starts at 09:00")
    );
    // No contacts open: it completes, and a completed campaign stays so until reopened.
    assert!(store.complete_if_done(c.id, 30).await.unwrap());
    assert!(!store
        .set_campaign_state(c.id, CampaignState::Paused, None, 31)
        .await
        .unwrap());
    assert!(store.reopen(c.id, 32).await.unwrap());
    store
        .insert_contacts(c.id, vec![row(2, "a")], 33)
        .await
        .unwrap();
    assert!(store.has_open_contacts(c.id).await.unwrap());
    assert!(!store.complete_if_done(c.id, 34).await.unwrap());
    assert_eq!(store.last_line(c.id).await.unwrap(), 2);
    assert_eq!(store.cancel_pending(c.id, 35).await.unwrap(), 1);
    assert!(!store.has_open_contacts(c.id).await.unwrap());

    let other = store
        .create_campaign("autumn", "fp3", "a.csv", 40)
        .await
        .unwrap();
    let names: Vec<String> = store
        .campaigns()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["spring", "autumn"], "oldest first");
    assert!(other.id > c.id);

    assert_eq!(store.inbox_file("in.csv", "f").await.unwrap(), None);
    store
        .record_inbox_file("in.csv", "f", Some(other.id), "imported", None, 50)
        .await
        .unwrap();
    assert_eq!(
        store.inbox_file("in.csv", "f").await.unwrap(),
        Some((Some(other.id), "imported".to_string()))
    );
    store.check_writable(60).await.unwrap();
}

async fn intake_run_twice_stores_each_line_once_and_dedupes_callees(f: &Fixture) {
    let store = f.open().await;
    let dnc = NewContact {
        skip_reason: Some(DNC_REASON.into()),
        ..row(6, "d")
    };
    let id = campaign_with(
        &store,
        "t",
        vec![row(2, "a"), row(3, "b"), row(4, "a"), dnc],
    )
    .await;
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
        Some(&2),
        "line 4 repeats line 2's callee; line 6 is on the do-not-call list"
    );
    let codes = store.counts_by_code(id).await.unwrap();
    assert!(
        codes.contains(&("skipped".into(), "Duplicate".into(), 1)),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("skipped".into(), "Dnc".into(), 1)),
        "{codes:?}"
    );
    // An upload cut short: rows never dialled after line 3 are forgotten, counts follow.
    assert_eq!(store.forget_unattempted_after(id, 3).await.unwrap(), 3);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        (counts.get(&Status::Pending), counts.get(&Status::Skipped)),
        (Some(&2), None)
    );
}

async fn an_attempt_is_refused_for_a_contact_already_in_flight(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a")]).await;
    let d = due(&store, id, 1).await;
    assert_eq!(d.len(), 1);
    assert_eq!(store.begin_attempt(d[0].id, 1, None).await.unwrap(), 1);
    assert!(matches!(
        store.begin_attempt(d[0].id, 2, None).await,
        Err(StoreError::NotPending(_))
    ));
    assert!(due(&store, id, 3).await.is_empty());
    assert_eq!(
        store.counts(id).await.unwrap().get(&Status::InFlight),
        Some(&1)
    );
}

async fn after_a_crash_an_attempt_without_outcome_is_unknown_and_not_due(f: &Fixture) {
    let store = f.open().await;
    // PostgreSQL: the dead process's lease must run out before another settles its calls.
    store.set_lease(Duration::from_secs(1));
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b")]).await;
    let d = due(&store, id, 1).await;
    store.begin_attempt(d[0].id, 1, None).await.unwrap();
    drop(store); // the process dies here: no outcome recorded

    let store = f.open().await;
    assert_eq!(
        settle_the_dead(&store, id, 5).await,
        1,
        "the dead process's call in flight is settled"
    );
    let r = store.result_of(d[0].id).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("unknown", "InDoubt")
    );
    let left = due(&store, id, 6).await;
    assert_eq!(
        left.iter().map(|d| d.callee.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    // The in-doubt attempt still counts as a call to that number.
    assert_eq!(store.calls_to("a", 0).await.unwrap(), vec![1]);
}

async fn redial_unknown_puts_in_doubt_contacts_back_only_when_asked(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a")]).await;
    let d = due(&store, id, 1).await;
    store.begin_attempt(d[0].id, 1, None).await.unwrap();
    assert_eq!(store.settle_in_flight(id, 5).await.unwrap(), 1);
    assert!(due(&store, id, 6).await.is_empty());
    assert_eq!(store.requeue_unknown(id, 6).await.unwrap(), 1);
    assert_eq!(store.result_of(d[0].id).await.unwrap().status, "pending");
    assert_eq!(due(&store, id, 7).await.len(), 1, "due again at once");
    // A second attempt is numbered after the first.
    assert_eq!(store.begin_attempt(d[0].id, 8, None).await.unwrap(), 2);
    assert!(store.release_unsent(d[0].id, 9).await.unwrap());
    assert_eq!(
        due(&store, id, 10).await.len(),
        1,
        "an unsent attempt is due again"
    );
}

async fn retries_that_came_due_go_before_first_attempts(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = store.due_contacts(id, 1, 1, HashSet::new()).await.unwrap();
    let n = store.begin_attempt(d[0].id, 1, None).await.unwrap();
    let retry = AttemptOutcome {
        next_at: 100,
        error_code: Some("InternalError".into()),
        ..outcome(Status::Pending, "error", Some(1))
    };
    store.finish_attempt(d[0].id, n, retry).await.unwrap();
    let callees =
        |v: Vec<ccc_dialer::store::DueContact>| v.into_iter().map(|d| d.callee).collect::<Vec<_>>();
    assert_eq!(callees(due(&store, id, 50).await), vec!["b", "c"]);
    assert_eq!(callees(due(&store, id, 100).await), vec!["a", "b", "c"]);
    assert_eq!(store.next_due_at(id).await.unwrap(), Some(0));
    let held: HashSet<i64> = due(&store, id, 100)
        .await
        .iter()
        .map(|d| d.id)
        .take(1)
        .collect();
    assert_eq!(
        callees(store.due_contacts(id, 100, 10, held).await.unwrap()),
        vec!["b", "c"],
        "contacts the dispatcher already holds are left out"
    );
}

async fn the_limiter_is_seeded_with_real_send_times(f: &Fixture) {
    let store = f.open().await;
    store.set_lease(Duration::from_secs(1));
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = due(&store, id, 0).await;
    // a: started at 1000, waited for its slot, sent at 1400.
    let n = store.begin_attempt(d[0].id, 1_000, None).await.unwrap();
    store
        .finish_attempt(d[0].id, n, outcome(Status::Placed, "placed", Some(1_400)))
        .await
        .unwrap();
    // b: written down, released unsent at a stop: not a send.
    let n = store.begin_attempt(d[1].id, 1_100, None).await.unwrap();
    store
        .finish_attempt(d[1].id, n, outcome(Status::Pending, "not_sent", None))
        .await
        .unwrap();
    // c: in flight when the process died.
    store.begin_attempt(d[2].id, 1_200, None).await.unwrap();
    drop(store);
    let store = f.open().await;
    assert_eq!(
        store.recent_sends(10, 8_000).await.unwrap(),
        vec![8_000, 1_400]
    );
    assert_eq!(settle_the_dead(&store, id, 9_000).await, 1);
    assert_eq!(
        store.recent_sends(10, 9_500).await.unwrap(),
        vec![9_000, 1_400]
    );
    assert_eq!(store.sends_since(id, 0).await.unwrap(), 2);
    assert_eq!(store.sends_since(id, 1_150).await.unwrap(), 1);
    assert_eq!(
        store.calls_to("b", 0).await.unwrap(),
        Vec::<i64>::new(),
        "a request that never left rang nobody"
    );
    assert_eq!(store.calls_to("a", 0).await.unwrap(), vec![1_400]);
}

async fn counts_follow_every_status_change_and_delete(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(
        &store,
        "t",
        (0..6).map(|i| row(i + 2, &format!("p{i}"))).collect(),
    )
    .await;
    let d = due(&store, id, 0).await;
    for (i, c) in d.iter().take(3).enumerate() {
        let n = store
            .begin_attempt(c.id, 10 + i as i64, None)
            .await
            .unwrap();
        let o = match i {
            0 => outcome(Status::Placed, "placed", Some(20)),
            1 => AttemptOutcome {
                error_code: Some("InvalidParameterValue".into()),
                ..outcome(Status::Failed, "error", Some(21))
            },
            _ => continue, // left in flight
        };
        store.finish_attempt(c.id, n, o).await.unwrap();
    }
    let counts = store.counts(id).await.unwrap();
    let get = |s| counts.get(&s).copied().unwrap_or(0);
    assert_eq!(
        (
            get(Status::Placed),
            get(Status::Failed),
            get(Status::InFlight),
            get(Status::Pending)
        ),
        (1, 1, 1, 3)
    );
    store.settle_in_flight(id, 30).await.unwrap();
    store.cancel_pending(id, 31).await.unwrap();
    let counts = store.counts(id).await.unwrap();
    let got: Vec<(Status, u64)> = counts.into_iter().collect();
    let mut want = vec![
        (Status::Placed, 1),
        (Status::Failed, 1),
        (Status::Unknown, 1),
        (Status::Cancelled, 3),
    ];
    want.sort();
    assert_eq!(got, want, "no status left with a stale or zero count");
}

async fn one_number_in_two_campaigns_is_held_by_the_per_person_gap(f: &Fixture) {
    let store = f.open().await;
    let a = campaign_with(&store, "a", vec![row(2, "+15550001")]).await;
    let b = campaign_with(&store, "b", vec![row(2, "+15550001"), row(3, "+15550002")]).await;
    let guard = PersonGuard {
        min_gap: Duration::from_secs(3600),
        max_per_day: 5,
        day_zone: jiff::tz::TimeZone::UTC,
        since_ms: 0,
    };
    let now = 1_700_000_000_000;
    let da = due(&store, a, now).await;
    let db = due(&store, b, now).await;
    assert_eq!(
        store
            .person_held(db[0].id, guard.clone(), now)
            .await
            .unwrap(),
        None
    );
    store
        .begin_attempt_guarded(da[0].id, now, Some("caller-1".into()), Some(guard.clone()))
        .await
        .unwrap();
    let held = store
        .begin_attempt_guarded(db[0].id, now + 1_000, None, Some(guard.clone()))
        .await;
    assert!(matches!(held, Err(StoreError::Held(_))), "{held:?}");
    assert!(store
        .person_held(db[0].id, guard.clone(), now + 1_000)
        .await
        .unwrap()
        .is_some());
    // The dispatcher reads its buffer's answers ahead in one call: the same answers, in order
    // (the called number held, the other not).
    let ahead = store
        .persons_held(
            vec![(db[0].id, guard.clone()), (db[1].id, guard.clone())],
            now + 1_000,
        )
        .await
        .unwrap();
    assert!(ahead[0].is_some() && ahead[1].is_none(), "{ahead:?}");
    assert_eq!(
        store.result_of(db[0].id).await.unwrap().status,
        "pending",
        "a held contact stays pending, no attempt used"
    );
    assert_eq!(
        store.caller_uses_since(0).await.unwrap(),
        vec![("caller-1".to_string(), now)]
    );
    // Once the gap has passed, the other campaign may call.
    store
        .begin_attempt_guarded(db[0].id, now + 3_600_000, None, Some(guard))
        .await
        .unwrap();
    assert_eq!(store.prune_dials(now + 1).await.unwrap(), 1);
    assert_eq!(
        store.calls_to("+15550001", 0).await.unwrap(),
        vec![now + 3_600_000]
    );
}

async fn results_come_in_line_order_with_outcome_and_error(f: &Fixture) {
    let store = f.open().await;
    let with_id = NewContact {
        ext_id: Some("crm-7".into()),
        ..row(3, "b")
    };
    let id = campaign_with(&store, "t", vec![row(2, "a"), with_id, row(4, "c")]).await;
    let d = due(&store, id, 0).await;
    let n = store.begin_attempt(d[0].id, 1_000, None).await.unwrap();
    let placed = AttemptOutcome {
        session_id: Some("sess-1".into()),
        request_id: Some("req-1".into()),
        ..outcome(Status::Placed, "placed", Some(1_100))
    };
    store.finish_attempt(d[0].id, n, placed).await.unwrap();
    let n = store.begin_attempt(d[1].id, 1_000, None).await.unwrap();
    let failed = AttemptOutcome {
        error_code: Some("InvalidParameterValue".into()),
        error_message: Some("bad callee".into()),
        ..outcome(Status::Failed, "error", Some(1_200))
    };
    store.finish_attempt(d[1].id, n, failed).await.unwrap();

    let (n, rows) = store
        .for_each_result(id, false, Vec::new(), |rows, r| {
            rows.push(r);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    let summary: Vec<(u64, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.line,
                r.callee.as_str(),
                r.status.as_str(),
                r.session_id.as_str(),
                r.error_code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "a", "placed", "sess-1", ""),
            (3, "b", "failed", "", "InvalidParameterValue"),
            (4, "c", "pending", "", ""),
        ]
    );
    assert_eq!(rows[1].id, "crm-7");
    assert_eq!(rows[1].error_message, "bad callee");
    assert_eq!(rows[0].updated_at, "1970-01-01T00:00:01.500Z");
    let (n, _) = store
        .for_each_result(id, true, (), |_, _| Ok(()))
        .await
        .unwrap();
    assert_eq!(n, 2, "only final rows");
    let sends = store
        .for_each_send(id, Vec::new(), |v, t| v.push(t))
        .await
        .unwrap();
    assert_eq!(sends, vec![1_100, 1_200]);
    assert_eq!(
        store.requests_per_contact(id).await.unwrap(),
        vec![(0, 1), (1, 2)]
    );
}

async fn waits_meta_and_agent_lines_are_kept(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a")]).await;
    store
        .add_waits(id, vec![("rate".into(), 100), ("window_closed".into(), 50)])
        .await
        .unwrap();
    store
        .add_waits(id, vec![("rate".into(), 25)])
        .await
        .unwrap();
    assert_eq!(
        store.waits(id).await.unwrap(),
        vec![("rate".to_string(), 125), ("window_closed".to_string(), 50)]
    );
    assert_eq!(store.meta("zone").await.unwrap(), None);
    store.set_meta("zone", "Asia/Shanghai").await.unwrap();
    store.set_meta("zone", "UTC").await.unwrap();
    assert_eq!(store.meta("zone").await.unwrap().as_deref(), Some("UTC"));
    let saved = ccc_dialer::lines::Saved {
        agent: 42,
        learned: Some(3.0),
        hold_seconds: 12.5,
    };
    store.save_agent_lines(saved, 1).await.unwrap();
    let back = store.agent_lines().await.unwrap();
    assert_eq!(
        back.iter()
            .map(|s| (s.agent, s.learned, s.hold_seconds))
            .collect::<Vec<_>>(),
        vec![(42, Some(3.0), 12.5)]
    );
    let d = due(&store, id, 0).await;
    assert_eq!(
        store.hold_for_lines(vec![d[0].id], 5_000, 1).await.unwrap(),
        1
    );
    assert!(due(&store, id, 10).await.is_empty());
    assert_eq!(store.release_line_holds(id, 10).await.unwrap(), 1);
    assert_eq!(due(&store, id, 10).await.len(), 1);
    assert!(store.outage().await.unwrap().is_none());
}

async fn gates_defer_end_and_expire_pending_contacts(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = due(&store, id, 0).await;
    store
        .defer(d[0].id, 5_000, "window_closed", 1)
        .await
        .unwrap();
    assert_eq!(
        store.next_wait(id).await.unwrap(),
        Some((0, None)),
        "b and c are due now"
    );
    assert!(store
        .end_by_gate(d[1].id, Status::Skipped, "Dnc", "on the list", 2)
        .await
        .unwrap());
    assert!(
        !store
            .end_by_gate(d[1].id, Status::Skipped, "Dnc", "on the list", 3)
            .await
            .unwrap(),
        "only a pending contact is ended"
    );
    let mut by_gate = store.waiting_by_gate(id).await.unwrap();
    by_gate.sort();
    assert_eq!(
        by_gate,
        vec![(None, 1), (Some("window_closed".to_string()), 1)]
    );
    assert_eq!(store.expire_pending(id, "ended", 4).await.unwrap(), 2);
    assert_eq!(store.next_wait(id).await.unwrap(), None);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        (counts.get(&Status::Expired), counts.get(&Status::Skipped)),
        (Some(&2), Some(&1))
    );
}

async fn a_newer_schema_is_refused(f: &Fixture) {
    drop(f.open().await);
    f.set_schema_version(10_000).await;
    let refused = f.try_open().await;
    match refused {
        Err(e @ StoreError::Schema { .. }) => {
            let text = e.to_string();
            assert!(text.contains("newer ccc-dialer"), "{text}");
            assert!(text.contains("10000"), "{text}");
        }
        Err(other) => panic!("refused, but not for its schema: {other}"),
        Ok(_) => panic!("a store from a newer build was opened"),
    }
}

#[tokio::test]
async fn postgres_a_method_without_its_postgres_arm_refuses_naming_itself() {
    // A SQLite-only job (what a store method without a PostgreSQL arm runs) is refused, never
    // run on a connection it was not written for.
    async fn sqlite_only(store: &Store) -> Result<(), StoreError> {
        store
            .call(|_c: &rusqlite::Connection| Ok::<_, StoreError>(()))
            .await
    }
    let schema = PgSchema::create().await;
    let store = tokio::time::timeout(DEADLINE, Store::connect_postgres(&schema.url))
        .await
        .unwrap()
        .unwrap();
    let e = sqlite_only(&store)
        .await
        .expect_err("a SQLite job ran on PostgreSQL");
    assert!(matches!(e, StoreError::NotPorted(_)), "{e}");
    assert!(
        e.to_string()
            .contains("Store::sqlite_only is not available on a PostgreSQL store yet"),
        "the message names the method: {e}"
    );
}

/// Whether the connections this schema's store opened (found by their application name) use
/// TLS, as the server reports it.
async fn connections_use_tls(schema: &PgSchema) -> Vec<bool> {
    let (admin, conn) = tokio_postgres::connect(crate::pg::ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE a.application_name = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn postgres_sslmode_require_encrypts_and_disable_does_not() {
    let schema = PgSchema::create().await;
    let store = tokio::time::timeout(
        DEADLINE,
        Store::connect_postgres(&schema.url_with("sslmode=require")),
    )
    .await
    .unwrap()
    .expect("the test server offers TLS (ssl = on)");
    store.campaigns().await.unwrap();
    assert_eq!(connections_use_tls(&schema).await, vec![true]);
    drop(store);

    let schema = PgSchema::create().await;
    let store = Store::connect_postgres(&schema.url_with("sslmode=disable"))
        .await
        .unwrap();
    store.campaigns().await.unwrap();
    assert_eq!(connections_use_tls(&schema).await, vec![false]);
}

#[tokio::test]
async fn postgres_verify_full_refuses_a_certificate_no_trusted_ca_signed() {
    // The test server's certificate is self-signed: verify-full (public CAs) must refuse it.
    let schema = PgSchema::create().await;
    let e = tokio::time::timeout(
        DEADLINE,
        Store::connect_postgres(&schema.url_with("sslmode=verify-full")),
    )
    .await
    .unwrap()
    .expect_err("an untrusted certificate was accepted");
    let text = e.to_string();
    assert!(matches!(e, StoreError::PgOpen { .. }), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn postgres_a_password_in_the_url_never_shows_in_an_error() {
    // Nothing listens on port 1: the connection fails, and its message names the database
    // without the password.
    let url = "postgres://dialer:Sup3rS3cret@127.0.0.1:1/calls?sslmode=disable&connect_timeout=5";
    let e = tokio::time::timeout(DEADLINE, Store::connect_postgres(url))
        .await
        .unwrap()
        .expect_err("nothing listens on port 1");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("Sup3rS3cret"), "the password leaked: {text}");
        assert!(
            text.contains("postgres://dialer:***@127.0.0.1:1/calls"),
            "{text}"
        );
    }
    let e =
        Store::connect_postgres("postgres://127.0.0.1:1/calls?password=Sup3rS3cret&sslmode=bogus")
            .await
            .expect_err("a bad sslmode");
    assert!(!e.to_string().contains("Sup3rS3cret"), "{e}");
}

async fn outcome_counts_follow_records_and_status_changes(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = due(&store, id, 0).await;
    for (i, c) in d.iter().enumerate() {
        let n = store.begin_attempt(c.id, 1_000, None).await.unwrap();
        let o = match i {
            2 => AttemptOutcome {
                error_code: Some("InternalError".into()),
                ..outcome(Status::Failed, "error", Some(1_000))
            },
            _ => AttemptOutcome {
                session_id: Some(format!("s-{i}")),
                ..outcome(Status::Placed, "placed", Some(1_000))
            },
        };
        store.finish_attempt(c.id, n, o).await.unwrap();
    }
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!((counts.placed(), counts.awaiting), (2, 2));
    // Two records arrive, written into the tables as the outcome tracker would.
    f.insert_outcome("s-0", d[0].id, "answered").await;
    f.insert_outcome("s-1", d[1].id, "busy").await;
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!(counts.by_class.get("answered"), Some(&1), "{counts:?}");
    assert_eq!(counts.by_class.get("busy"), Some(&1), "{counts:?}");
    assert_eq!(counts.awaiting, 0);
    assert_eq!(counts.answer_rate(), Some(0.5));
    // The failed try requeued (allow_double_call) leaves the placed ones' counts as they are.
    let r = ccc_dialer::requeue::parse("failed", vec![], true, "a test").unwrap();
    assert_eq!(store.requeue(id, r, 2_000).await.unwrap(), 1);
    assert_eq!(store.outcome_counts(id).await.unwrap(), counts);
    let sessions = store.contact_sessions(d[0].id).await.unwrap();
    assert_eq!(
        sessions[0].1.as_ref().map(|r| r.class.as_str()),
        Some("answered")
    );
    let known = store
        .known_sessions(vec!["s-0".into(), "s-9".into()])
        .await
        .unwrap();
    assert_eq!(
        known.into_iter().collect::<Vec<_>>(),
        vec!["s-0".to_string()]
    );
    assert_eq!(
        f.outcome_check_kinds().await,
        vec![
            "outcome".to_string(),
            "outcome".into(),
            "retry_check".into()
        ],
        "placed sessions and the InternalError try are enrolled by the store itself"
    );
}

/// A push held because no attempt had its session yet becomes that attempt's outcome in the
/// transaction that writes its reply, once, and the store's arrival hook (the outcome
/// tracker's: lines, `/metrics`, waiters) is told of it with its contact.
async fn held_push_outcomes_are_claimed_by_their_attempt_and_told_to_the_arrival_hook(f: &Fixture) {
    let store = f.open().await;
    let told: std::sync::Arc<std::sync::Mutex<Vec<ccc_dialer::store::Arrival>>> =
        Default::default();
    let hook = told.clone();
    store.on_arrival(std::sync::Arc::new(
        move |a: &[ccc_dialer::store::Arrival]| hook.lock().unwrap().extend_from_slice(a),
    ));
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b")]).await;
    let d = due(&store, id, 0).await;
    f.hold_push("s-0", "busy", 1_030).await;
    for (i, c) in d.iter().enumerate() {
        let n = store.begin_attempt(c.id, 1_000, None).await.unwrap();
        let o = AttemptOutcome {
            session_id: Some(format!("s-{i}")),
            ..outcome(Status::Placed, "placed", Some(1_000))
        };
        store.finish_attempt(c.id, n, o).await.unwrap();
    }
    let arrived = told.lock().unwrap().clone();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    let r = &arrived[0].record;
    assert_eq!(
        (
            r.session_id.as_str(),
            r.contact_id,
            r.class.as_str(),
            r.source.as_str(),
            r.ended_at
        ),
        ("s-0", d[0].id, "busy", "push", Some(1_030))
    );
    assert_eq!(arrived[0].was, None);
    let sessions = store.contact_sessions(d[0].id).await.unwrap();
    assert_eq!(
        sessions[0].1.as_ref().map(|r| r.class.as_str()),
        Some("busy")
    );
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!(
        (counts.by_class.get("busy"), counts.awaiting),
        (Some(&1), 1),
        "{counts:?}"
    );
}

async fn other_actions_sends_are_kept_for_their_limiter(f: &Fixture) {
    let store = f.open().await;
    let a = store.sending("DescribeTelCdr", 1_000).await.unwrap();
    let b = store.sending("DescribeTelCdr", 1_100).await.unwrap();
    let gone = store.sending("DescribeTelCdr", 1_200).await.unwrap();
    store.sent(a, Some(1_050)).await.unwrap();
    store.sent(gone, None).await.unwrap();
    // b never told its departure: it counts as now.
    assert_eq!(
        store
            .recent_action_sends("DescribeTelCdr", 10, 5_000)
            .await
            .unwrap(),
        vec![5_000, 1_050]
    );
    assert!(store
        .recent_action_sends("Other", 10, 5_000)
        .await
        .unwrap()
        .is_empty());
    let _ = b;
}

async fn an_operator_requeue_resets_failed_contacts_and_reopens_the_campaign(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b"), row(4, "c")]).await;
    let d = due(&store, id, 0).await;
    for (c, code) in d.iter().zip([
        "InvalidParameterValue",
        "InternalError",
        "FailedOperation.X",
    ]) {
        let n = store.begin_attempt(c.id, 10, None).await.unwrap();
        let failed = AttemptOutcome {
            error_code: Some(code.into()),
            ..outcome(Status::Failed, "error", Some(11))
        };
        store.finish_attempt(c.id, n, failed).await.unwrap();
    }
    assert!(store.complete_if_done(id, 12).await.unwrap());
    assert_eq!(
        store
            .give_back_failed(vec![d[2].id], "FailedOperation.X".into(), 13)
            .await
            .unwrap(),
        1
    );
    let r = ccc_dialer::requeue::parse("failed", vec![], false, "a test").unwrap();
    assert_eq!(
        store.requeue(id, r, 20).await.unwrap(),
        1,
        "an InternalError may have placed the call: not requeued without allow_double_call"
    );
    let campaign = store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state, CampaignState::Active, "reopened");
    let detail = store.contact_detail(id, "a").await.unwrap().unwrap();
    assert_eq!(detail.status, "pending");
    assert_eq!(
        detail
            .attempts
            .iter()
            .map(|a| a.outcome.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["error", "requeued"]
    );
    assert!(store.contact_detail(id, "nobody").await.unwrap().is_none());
    let page = store.results_page(id, 2, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![3, 4],
        "results after line 2"
    );
}

async fn contact_pages_follow_the_line_and_filters(f: &Fixture) {
    let store = f.open().await;
    let rows = (0..7)
        .map(|i| row(i + 2, &format!("+1555000{i}")))
        .collect();
    let id = campaign_with(&store, "t", rows).await;
    let first = store
        .contacts_page(id, 0, ContactFilter::default(), 3)
        .await
        .unwrap();
    assert_eq!(
        first.contacts.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(first.next_after, Some(4));
    assert_eq!(store.cancel_pending(id, 1).await.unwrap(), 7);
    let filtered = store
        .contacts_page(
            id,
            0,
            ContactFilter {
                digits: Some("0005".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        filtered
            .contacts
            .iter()
            .map(|r| r.callee.as_str())
            .collect::<Vec<_>>(),
        vec!["+15550005"]
    );
    let by_status = store
        .contacts_page(
            id,
            0,
            ContactFilter {
                status: Some(Status::Cancelled),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_status.contacts.len(), 7);
    assert_eq!(by_status.next_after, None);
}

async fn a_finished_campaign_is_purged_and_its_dials_kept_unless_forgotten(f: &Fixture) {
    let store = f.open().await;
    let id = campaign_with(&store, "t", vec![row(2, "a"), row(3, "b")]).await;
    let d = due(&store, id, 0).await;
    let n = store.begin_attempt(d[0].id, 10, None).await.unwrap();
    assert!(matches!(
        store.purge_campaign(id, false, 20).await.unwrap(),
        PurgeOutcome::Unfinished {
            pending: 1,
            in_flight: 1
        }
    ));
    store
        .finish_attempt(d[0].id, n, outcome(Status::Placed, "placed", Some(11)))
        .await
        .unwrap();
    store
        .set_campaign_state(id, CampaignState::Cancelled, None, 21)
        .await
        .unwrap();
    store.cancel_pending(id, 21).await.unwrap();
    assert!(matches!(
        store.purge_campaign(id, false, 22).await.unwrap(),
        PurgeOutcome::DialsNeeded {
            dials: 1,
            newest_at: 11
        }
    ));
    assert_eq!(
        store.finished_before(1_000).await.unwrap(),
        Vec::<i64>::new(),
        "intake not done"
    );
    assert!(!store.source_shared(id, "x.csv").await.unwrap());
    match store.purge_campaign(id, true, 23).await.unwrap() {
        PurgeOutcome::Purged(counts) => {
            assert_eq!((counts.contacts, counts.attempts, counts.dials), (2, 1, 1))
        }
        other => panic!("not purged: {other:?}"),
    }
    store.checkpoint().await.unwrap();
    assert!(matches!(
        store.purge_campaign(id, true, 24).await.unwrap(),
        PurgeOutcome::AlreadyPurged(23)
    ));
    assert!(
        store.counts(id).await.unwrap().is_empty(),
        "no counts left behind"
    );
    assert_eq!(
        store.campaign(id).await.unwrap().unwrap().purged_at,
        Some(23)
    );
}
