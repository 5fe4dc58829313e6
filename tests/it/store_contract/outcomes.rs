//! Outcome records and the schedule of checks, on both stores: a placed attempt is due for its
//! check after `first_check_after`, a record seen twice changes nothing, a push is corrected by
//! the poll, an in-doubt attempt or a failed try's retry check is closed by the call records.

use ccc_dialer::contact::Status;
use ccc_dialer::store::{
    AttemptOutcome, OutcomeRecord, PurgeOutcome, Reconciled, Store, StoreError,
};

use super::DEADLINE;

use crate::pg::Fixture;

contract!(
    a_placed_session_is_due_after_first_check_after_and_leaves_with_its_record,
    a_record_seen_twice_changes_nothing_and_a_late_record_replaces_a_give_up,
    an_in_doubt_attempt_is_reconciled_to_placed_or_not_placed,
    overdue_checks_and_the_next_check_follow_the_schedule,
    a_push_and_a_poll_of_one_session_count_once_and_the_poll_corrects_the_push,
    a_push_of_an_unknown_session_hastens_the_lookup_of_an_in_doubt_request_to_its_number,
    a_push_before_the_reply_is_written_is_kept_until_its_attempt_gets_the_session,
    a_failed_try_holds_its_retry_until_the_call_records_rule_out_a_call,
    a_purge_waits_for_the_lookup_of_a_lost_reply_even_when_forgetting_dials,
);

async fn store_with(f: &Fixture, n: u64) -> (Store, i64) {
    let store = f.open().await;
    let rows = (0..n)
        .map(|i| super::row(i + 2, &format!("00861300000000{i}")))
        .collect();
    let id = super::campaign_with(&store, "t", rows).await;
    (store, id)
}

/// Dial every pending contact at `sent_at`: `placed` with session `s-<id>`, or in doubt.
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
            session_id: (!in_doubt).then(|| format!("s-{}", d.id)),
            finished_at: sent_at,
            ..super::outcome(
                Status::Placed,
                if in_doubt { "in_doubt" } else { "placed" },
                Some(sent_at),
            )
        };
        store.finish_attempt(d.id, n, o).await.unwrap();
        ids.push(d.id);
    }
    ids
}

pub(super) fn answered(session: &str) -> OutcomeRecord {
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

async fn a_placed_session_is_due_after_first_check_after_and_leaves_with_its_record(f: &Fixture) {
    let (store, id) = store_with(f, 2).await;
    let ids = dial(&store, id, 1_000_000, false).await;
    assert!(store
        .due_sessions(1_029_000, 30_000, 100)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_sessions(1_030_000, 30_000, 100).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].session_id, format!("s-{}", ids[0]));
    assert_eq!((due[0].sent_at, due[0].checks), (1_000_000, 0));
    store
        .reschedule_checks(vec![(due[1].attempt_id, 1_060_000)])
        .await
        .unwrap();
    let w = store
        .record_outcomes(vec![answered(&due[0].session_id)])
        .await
        .unwrap();
    assert_eq!(w.new, vec![due[0].session_id.clone()]);
    assert!(store
        .due_sessions(1_059_999, 30_000, 100)
        .await
        .unwrap()
        .is_empty());
    let later = store.due_sessions(1_060_000, 30_000, 100).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].checks, 1);
    // Asked-before ones due by a later bound come along with the due ones.
    let along = store
        .due_sessions_until(1_000_000, 30_000, 1_060_000, 100)
        .await
        .unwrap();
    assert_eq!(along.len(), 1);
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!(counts.by_class.get("answered"), Some(&1));
    assert_eq!(
        (counts.awaiting, counts.placed(), counts.ended()),
        (1, 2, 1)
    );
    assert_eq!(counts.answer_rate(), Some(1.0));
    let r = store.result_of(ids[0]).await.unwrap();
    assert_eq!(
        (
            r.outcome.as_str(),
            r.end_status.as_str(),
            r.duration_s.as_str()
        ),
        ("answered", "1", "30")
    );
    assert_eq!(r.answered_at, "2027-01-15T08:00:10Z");
    assert_eq!(r.hangup_side, "user");
    assert_eq!(store.result_of(ids[1]).await.unwrap().outcome, "");
}

async fn a_record_seen_twice_changes_nothing_and_a_late_record_replaces_a_give_up(f: &Fixture) {
    let (store, id) = store_with(f, 1).await;
    let ids = dial(&store, id, 1_000_000, false).await;
    let s = format!("s-{}", ids[0]);
    let gave_up = OutcomeRecord {
        session_id: s.clone(),
        class: "no_record".into(),
        source: "gave_up".into(),
        ..Default::default()
    };
    let w = store.record_outcomes(vec![gave_up.clone()]).await.unwrap();
    assert_eq!(w.new.len(), 1);
    let w = store.record_outcomes(vec![gave_up]).await.unwrap();
    assert_eq!(w.ignored, 1);
    assert_eq!(store.result_of(ids[0]).await.unwrap().outcome, "no_record");
    let w = store.record_outcomes(vec![answered(&s)]).await.unwrap();
    assert_eq!(
        w.new.len(),
        1,
        "the record that came after all replaces the give-up"
    );
    let mut busy = answered(&s);
    busy.class = "busy".into();
    let w = store.record_outcomes(vec![busy]).await.unwrap();
    assert_eq!((w.new.len(), w.ignored), (0, 1));
    assert_eq!(store.result_of(ids[0]).await.unwrap().outcome, "answered");
    let w = store
        .record_outcomes(vec![answered("nobody")])
        .await
        .unwrap();
    assert_eq!((w.ignored, w.pending.len()), (1, 0));
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!(counts.by_class.values().sum::<u64>(), 1);
}

async fn an_in_doubt_attempt_is_reconciled_to_placed_or_not_placed(f: &Fixture) {
    let (store, id) = store_with(f, 3).await;
    let ids = dial(&store, id, 2_000_000, true).await;
    let due = store.due_reconciles(2_030_000, 30_000, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert_eq!(
        (due[0].status.as_str(), due[0].kind.as_str()),
        ("unknown", "reconcile")
    );
    assert_eq!(due[0].callee, "008613000000000");
    assert_eq!(store.outcome_counts(id).await.unwrap().reconciling, 3);
    let by_contact = |c: i64| due.iter().find(|d| d.contact_id == c).unwrap().attempt_id;
    let mut found = answered("s-found");
    found.source = "reconciled".into();
    store
        .finish_reconcile(by_contact(ids[0]), Reconciled::Found(Box::new(found)), 5)
        .await
        .unwrap();
    store
        .finish_reconcile(by_contact(ids[1]), Reconciled::NotPlaced, 5)
        .await
        .unwrap();
    store
        .finish_reconcile(
            by_contact(ids[2]),
            Reconciled::Ambiguous("two match".into()),
            5,
        )
        .await
        .unwrap();
    let r = store.result_of(ids[0]).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.session_id.as_str(), r.outcome.as_str()),
        ("placed", "s-found", "answered")
    );
    assert!(
        r.error_message.contains("reconciled"),
        "{}",
        r.error_message
    );
    let r = store.result_of(ids[1]).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("not_placed", "NoCallRecord")
    );
    let r = store.result_of(ids[2]).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.error_message.as_str()),
        ("unknown", "two match")
    );
    assert!(store
        .due_reconciles(i64::MAX / 2, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        store
            .due_sessions(i64::MAX / 2, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "the reconciled session's own check is closed too"
    );
    let counts = store.outcome_counts(id).await.unwrap();
    assert_eq!((counts.reconciling, counts.awaiting), (0, 0));
    // A second close of the same attempt does nothing.
    store
        .finish_reconcile(by_contact(ids[1]), Reconciled::Ambiguous("late".into()), 6)
        .await
        .unwrap();
    assert_eq!(store.result_of(ids[1]).await.unwrap().status, "not_placed");
    assert_eq!(store.requeue_not_placed(id, 6).await.unwrap(), 1);
    assert_eq!(
        store.counts(id).await.unwrap().get(&Status::Pending),
        Some(&1)
    );
}

/// The poller learns cheaply when the next check falls due, and checks never answered are
/// found once their time is up.
async fn overdue_checks_and_the_next_check_follow_the_schedule(f: &Fixture) {
    let (store, id) = store_with(f, 2).await;
    assert_eq!(store.next_check_due(30_000).await.unwrap(), None);
    let placed = dial(&store, id, 1_000_000, false).await;
    assert_eq!(
        store.next_check_due(30_000).await.unwrap(),
        Some(1_030_000),
        "never asked: first_check_after after the send"
    );
    let due = store.due_sessions(1_030_000, 30_000, 10).await.unwrap();
    store
        .reschedule_checks(vec![
            (due[0].attempt_id, 1_020_000),
            (due[1].attempt_id, 1_090_000),
        ])
        .await
        .unwrap();
    assert_eq!(store.next_check_due(30_000).await.unwrap(), Some(1_020_000));
    // Sent by the give-up bound and due: overdue; the other is not due yet.
    let (sessions, reconciles) = store
        .overdue_checks(1_050_000, 1_000_000, 0, 10)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].contact_id, placed[0]);
    assert!(reconciles.is_empty());
    let (sessions, _) = store
        .overdue_checks(1_050_000, 999_999, 0, 10)
        .await
        .unwrap();
    assert!(sessions.is_empty(), "sent after the give-up bound");
    // An in-doubt attempt is overdue by its own bound.
    store
        .insert_contacts(id, vec![super::row(9, "008613000000009")], 0)
        .await
        .unwrap();
    dial(&store, id, 1_100_000, true).await;
    let (_, reconciles) = store
        .overdue_checks(1_200_000, 0, 1_100_000, 10)
        .await
        .unwrap();
    assert_eq!(reconciles.len(), 1);
}

async fn a_push_and_a_poll_of_one_session_count_once_and_the_poll_corrects_the_push(f: &Fixture) {
    let (store, id) = store_with(f, 1).await;
    let placed = dial(&store, id, 1_000_000, false).await;
    let session = format!("s-{}", placed[0]);
    let mut pushed = answered(&session);
    pushed.source = "push".into();
    pushed.class = "other".into();
    pushed.end_status = None;
    pushed.end_status_string = Some("error".into());
    pushed.recorded_at = 7;
    let w = store.record_outcomes(vec![pushed.clone()]).await.unwrap();
    assert_eq!(w.new, vec![session.clone()]);
    let w = store.record_outcomes(vec![pushed]).await.unwrap();
    assert_eq!((w.new.len(), w.corrected.len(), w.ignored), (0, 0, 1));
    let due = store.due_sessions(i64::MAX / 2, 0, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "the push left the session's check for the poll"
    );
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!((c.by_class.get("other"), c.awaiting), (Some(&1), 0));
    let mut polled = answered(&session);
    polled.class = "busy".into();
    polled.end_status = Some(206);
    polled.end_status_string = Some("busy".into());
    polled.recorded_at = 9;
    let w = store.record_outcomes(vec![polled]).await.unwrap();
    assert_eq!(
        (w.new.len(), w.corrected, w.ignored),
        (0, vec![session.clone()], 0)
    );
    let r = store.result_of(placed[0]).await.unwrap();
    assert_eq!((r.outcome.as_str(), r.end_status.as_str()), ("busy", "206"));
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!(
        (c.by_class.get("busy"), c.by_class.get("other")),
        (Some(&1), None)
    );
    assert!(store
        .due_sessions(i64::MAX / 2, 0, 10)
        .await
        .unwrap()
        .is_empty());
    let sessions = store.contact_sessions(placed[0]).await.unwrap();
    assert_eq!(
        sessions[0].1.as_ref().map(|o| o.recorded_at),
        Some(7),
        "the outcome keeps the time it was first learned"
    );
    // A later push changes nothing any more.
    let mut late = answered(&session);
    late.source = "push".into();
    let w = store.record_outcomes(vec![late]).await.unwrap();
    assert_eq!(w.ignored, 1);
    assert_eq!(store.result_of(placed[0]).await.unwrap().outcome, "busy");
}

async fn a_push_of_an_unknown_session_hastens_the_lookup_of_an_in_doubt_request_to_its_number(
    f: &Fixture,
) {
    let (store, id) = store_with(f, 2).await;
    let sent = 1_800_000_000_000;
    dial(&store, id, sent, true).await;
    let first_ms = 3_600_000;
    let now = sent + 60_000;
    assert!(store
        .due_reconciles(now, first_ms, 10)
        .await
        .unwrap()
        .is_empty());
    let n = store
        .hasten_lookups(vec!["008613000000000".into()], sent / 1000 + 180, now)
        .await
        .unwrap();
    assert_eq!(n, 0, "the call started too long after the send");
    let n = store
        .hasten_lookups(
            vec!["+8613000000000".into(), "008613000000000".into()],
            sent / 1000 + 5,
            now,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let due = store.due_reconciles(now, first_ms, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].callee, "008613000000000");
}

/// A push can come before the dialler has written the reply that names its session (the
/// service pushes a short call's record at once; the reply can be late on a loaded host). Such
/// a record is kept, not dropped, and the attempt that gets the session claims it in the same
/// transaction: the contact's result carries the pushed outcome and the counts include it. The
/// same push again changes nothing; a polled record of an unknown session is not kept (the poll
/// asks only about sessions the store has).
async fn a_push_before_the_reply_is_written_is_kept_until_its_attempt_gets_the_session(
    f: &Fixture,
) {
    let (store, id) = store_with(f, 2).await;
    let due = store
        .due_contacts(id, 1_000_000, 100, Default::default())
        .await
        .unwrap();
    let contact = due[0].id;
    let session = format!("s-{contact}");
    let n = store.begin_attempt(contact, 1_000_000, None).await.unwrap();
    let mut pushed = answered(&session);
    pushed.source = "push".into();
    pushed.class = "busy".into();
    pushed.end_status = Some(206);
    pushed.recorded_at = 1_000_500;
    let w = store.record_outcomes(vec![pushed.clone()]).await.unwrap();
    assert_eq!(
        (w.new.len(), w.pending.clone(), w.ignored),
        (0, vec![session.clone()], 0)
    );
    let w = store.record_outcomes(vec![pushed]).await.unwrap();
    assert_eq!((w.pending.len(), w.ignored), (0, 1), "kept once");
    // A polled record of a session the store does not have is not kept.
    let w = store
        .record_outcomes(vec![answered("s-nobody")])
        .await
        .unwrap();
    assert_eq!((w.new.len(), w.pending.len(), w.ignored), (0, 0, 1));
    let o = AttemptOutcome {
        session_id: Some(session.clone()),
        ..super::outcome(Status::Placed, "placed", Some(1_000_000))
    };
    store.finish_attempt(contact, n, o).await.unwrap();
    let r = store.result_of(contact).await.unwrap();
    assert_eq!((r.outcome.as_str(), r.end_status.as_str()), ("busy", "206"));
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!((c.by_class.get("busy"), c.awaiting), (Some(&1), 0), "{c:?}");
    // Claimed once: the push again (another UUID) is a repeat, and the poll still corrects it.
    let mut again = answered(&session);
    again.source = "push".into();
    let w = store.record_outcomes(vec![again]).await.unwrap();
    assert_eq!((w.new.len(), w.pending.len(), w.ignored), (0, 0, 1));
    let w = store
        .record_outcomes(vec![answered(&session)])
        .await
        .unwrap();
    assert_eq!(w.corrected, vec![session], "the poll still corrects it");
    assert_eq!(store.result_of(contact).await.unwrap().outcome, "answered");
    // The outcomes history (per-minute counts) moved with the correction: one call, answered,
    // and no busy one left behind.
    let history: Vec<(String, u64)> = store
        .outcome_minutes(id, 0, i64::MAX / 60_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.class, m.calls))
        .collect();
    assert_eq!(history, vec![("answered".to_string(), 1)]);
}

/// A lost reply's lookup in the call records needs the attempt and its dial history (a call it
/// finds holds the person back by `min_gap`): a purge, even one forgetting the dial history, is
/// refused while it is open, and goes once it is resolved.
async fn a_purge_waits_for_the_lookup_of_a_lost_reply_even_when_forgetting_dials(f: &Fixture) {
    let (store, id) = store_with(f, 1).await;
    let ids = dial(&store, id, 2_000_000, true).await;
    for forget in [false, true] {
        assert_eq!(
            store.purge_campaign(id, forget, 2_000_100).await.unwrap(),
            PurgeOutcome::LookupsPending { lookups: 1 },
            "forget_dials = {forget}"
        );
    }
    assert_eq!(store.result_of(ids[0]).await.unwrap().status, "unknown");
    let due = store.due_reconciles(2_030_000, 30_000, 10).await.unwrap();
    store
        .finish_reconcile(due[0].attempt_id, Reconciled::NotPlaced, 2_030_000)
        .await
        .unwrap();
    match store.purge_campaign(id, true, 2_030_100).await.unwrap() {
        PurgeOutcome::Purged(counts) => assert_eq!((counts.contacts, counts.attempts), (1, 1)),
        other => panic!("not purged: {other:?}"),
    }
}

/// A try that failed with `InternalError*` may have created the call: its retry waits until
/// the call records rule that out (found: the contact is placed, never called again; not found:
/// the retry goes at once).
async fn a_failed_try_holds_its_retry_until_the_call_records_rule_out_a_call(f: &Fixture) {
    let (store, id) = store_with(f, 2).await;
    let due = store
        .due_contacts(id, 1_000_000, 100, Default::default())
        .await
        .unwrap();
    for d in &due {
        let n = store.begin_attempt(d.id, 1_000_000, None).await.unwrap();
        let o = AttemptOutcome {
            next_at: 1_010_000,
            error_code: Some("InternalError.DBError".into()),
            ..super::outcome(Status::Pending, "error", Some(1_000_000))
        };
        store.finish_attempt(d.id, n, o).await.unwrap();
        store
            .defer(d.id, 5_000_000, "call_record_check", 1_000_001)
            .await
            .unwrap();
    }
    let e = store
        .begin_attempt_checked(due[0].id, 1_020_000, None, None, true)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::AwaitingRecords(1_000_000)), "{e}");
    let checks = store.due_reconciles(1_030_000, 30_000, 10).await.unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.kind == "retry_check"), "{checks:?}");
    let of = |c: i64| {
        checks
            .iter()
            .find(|d| d.contact_id == c)
            .unwrap()
            .attempt_id
    };
    // No call: the held retry is due now.
    store
        .finish_reconcile(of(due[0].id), Reconciled::NotPlaced, 1_030_000)
        .await
        .unwrap();
    let now_due = store
        .due_contacts(id, 1_030_000, 100, Default::default())
        .await
        .unwrap();
    assert_eq!(
        now_due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![due[0].id]
    );
    store
        .begin_attempt_checked(due[0].id, 1_030_000, None, None, true)
        .await
        .expect("the records ruled the call out: the retry may go");
    // A call found: placed with that session, not called again.
    let mut found = answered("s-internal");
    found.source = "reconciled".into();
    store
        .finish_reconcile(of(due[1].id), Reconciled::Found(Box::new(found)), 1_030_000)
        .await
        .unwrap();
    let r = store.result_of(due[1].id).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.session_id.as_str(), r.outcome.as_str()),
        ("placed", "s-internal", "answered")
    );
    assert!(
        r.error_message.contains("internal error"),
        "{}",
        r.error_message
    );
}
