//! Redials on both stores: an outcome in `redial.on` puts its contact back to `pending` in the
//! transaction that writes the outcome, `max_dials` counts every call, a poll that corrects a
//! push takes back a redial the push asked for, and the dispatcher learns whether a redial may
//! still come; a `[[redial.on_tag]]` tag schedules its redial in the transaction that writes the
//! tags, once, within `max_dials`, and the campaign waits for the tags that may ask for one.

use std::time::Duration;

use ccc_dialer::contact::Status;
use ccc_dialer::outcomes::ai_results::{Kind, Tag};
use ccc_dialer::outcomes::classes::OutcomeClass;
use ccc_dialer::outcomes::tag_rules::TagRule;
use ccc_dialer::redial::{RedialPolicy, Trigger};
use ccc_dialer::store::{
    AttemptOutcome, OutcomeRecord, RedialDecision, RedialWait, Store, TagActions,
};

use super::DEADLINE;
use crate::pg::Fixture;

contract!(
    a_not_answered_call_is_redialled_after_its_end_with_the_outcome_and_counted,
    busy_by_end_code_is_redialled_until_max_dials_then_stays_busy,
    without_a_policy_or_for_an_outcome_not_in_on_nothing_is_redialled,
    a_poll_that_corrects_a_push_takes_back_the_redial_the_push_asked_for,
    a_redial_asked_for_by_hand_follows_the_same_rules,
    a_held_push_claimed_by_its_attempt_takes_the_redial_decision_and_tells_the_hook,
    a_callback_tag_schedules_its_redial_with_the_tags_once_and_within_max_dials,
);

const CALLEE: &str = "008613000000001";

async fn store_with_policy(f: &Fixture, policy: Option<RedialPolicy>) -> (Store, i64) {
    let store = f.open().await;
    let id = super::campaign_with(&store, "t", vec![super::row(2, CALLEE)]).await;
    store.set_redial_policy(id, policy.clone()).await.unwrap();
    assert_eq!(store.redial_policy(id).await.unwrap(), policy);
    (store, id)
}

fn policy(max_dials: u32) -> RedialPolicy {
    RedialPolicy {
        on: vec![
            Trigger::Class(OutcomeClass::NotAnswered),
            Trigger::Code(206),
        ],
        max_dials,
        after: Duration::from_secs(10),
        on_tag: Vec::new(),
    }
}

/// Dial the campaign's due contact at `sent_at`: placed with session `session`.
async fn dial(store: &Store, campaign: i64, sent_at: i64, session: &str) -> i64 {
    let due = store
        .due_contacts(campaign, sent_at, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "one contact due at {sent_at}");
    let d = &due[0];
    let n = store.begin_attempt(d.id, sent_at, None).await.unwrap();
    let o = AttemptOutcome {
        attempts: d.attempts + 1,
        session_id: Some(session.into()),
        finished_at: sent_at,
        ..super::outcome(Status::Placed, "placed", Some(sent_at))
    };
    store.finish_attempt(d.id, n, o).await.unwrap();
    d.id
}

fn record(session: &str, class: &str, code: i64, ended: i64) -> OutcomeRecord {
    OutcomeRecord {
        session_id: session.into(),
        class: class.into(),
        end_status: Some(code),
        end_status_string: Some(
            match code {
                202 => "notAnswer",
                206 => "busy",
                _ => "ok",
            }
            .into(),
        ),
        ended_at: Some(ended),
        source: "poll".into(),
        recorded_at: ended * 1000 + 500,
        ..Default::default()
    }
}

async fn a_not_answered_call_is_redialled_after_its_end_with_the_outcome_and_counted(f: &Fixture) {
    let (store, id) = store_with_policy(f, Some(policy(3))).await;
    let watch = store.redial_watch();
    let contact = dial(&store, id, 1_000_000, "s-1").await;
    assert!(store.redial_possible(id).await.unwrap());
    let w = store
        .record_outcomes(vec![record("s-1", "not_answered", 202, 1_030)])
        .await
        .unwrap();
    assert_eq!((w.new.len(), w.redials), (1, 1));
    assert!(watch.has_changed().unwrap(), "the dispatchers were woken");
    let due_ms = 1_030_000 + 10_000;
    let d = store.contact_detail(id, CALLEE).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.next_at, d.gate.as_deref()),
        ("pending", due_ms, Some("redial_after"))
    );
    assert_eq!(d.error_code.as_deref(), Some("Redial"));
    let why = d.error_message.clone().unwrap_or_default();
    assert!(
        why.contains("redial 2 of 3") && why.contains("not_answered (EndStatus 202 notAnswer)"),
        "{why}"
    );
    assert_eq!((d.dials, d.first_dialled_at), (1, Some(1_000_000)));
    assert_eq!(store.outcome_counts(id).await.unwrap().redials_pending, 1);
    let w = store
        .record_outcomes(vec![record("s-1", "not_answered", 202, 1_030)])
        .await
        .unwrap();
    assert_eq!(
        (w.new.len(), w.redials),
        (0, 0),
        "a repeat schedules nothing"
    );
    assert!(store
        .due_contacts(id, due_ms - 1, 10, Default::default())
        .await
        .unwrap()
        .is_empty());
    let due = store
        .due_contacts(id, due_ms, 10, Default::default())
        .await
        .unwrap();
    assert_eq!((due.len(), due[0].attempts), (1, 0), "a fresh retry budget");
    assert_eq!(dial(&store, id, due_ms, "s-2").await, contact);
    let w = store
        .record_outcomes(vec![record("s-1", "busy", 206, 1_031)])
        .await
        .unwrap();
    assert_eq!(w.redials, 0, "an older session's record changes nothing");
    let w = store
        .record_outcomes(vec![record("s-2", "answered", 1, 1_050)])
        .await
        .unwrap();
    assert_eq!((w.new.len(), w.redials), (1, 0));
    let r = store.result_of(contact).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str(), r.dials),
        ("placed", "answered", 2)
    );
    assert_eq!(r.first_dialled_at, "1970-01-01T00:16:40.000Z");
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!((c.reached, c.not_reached, c.redials_pending), (1, 0, 0));
    assert!(!store.redial_possible(id).await.unwrap());
    // The report's dials: one call at each, answered on the second.
    let (by_dial, first_answers) = store.outcomes_by_dial(id).await.unwrap();
    assert_eq!(by_dial, vec![(1, 1, 1, 0), (2, 1, 1, 1)]);
    assert_eq!(first_answers, vec![2]);
}

async fn busy_by_end_code_is_redialled_until_max_dials_then_stays_busy(f: &Fixture) {
    let (store, id) = store_with_policy(f, Some(policy(2))).await;
    let contact = dial(&store, id, 1_000_000, "s-1").await;
    let w = store
        .record_outcomes(vec![record("s-1", "busy", 206, 1_001)])
        .await
        .unwrap();
    assert_eq!(w.redials, 1);
    dial(&store, id, 1_011_000, "s-2").await;
    let w = store
        .record_outcomes(vec![record("s-2", "busy", 206, 1_012)])
        .await
        .unwrap();
    assert_eq!((w.new.len(), w.redials), (1, 0), "max_dials = 2 reached");
    let r = store.result_of(contact).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str(), r.dials),
        ("placed", "busy", 2)
    );
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!((c.reached, c.not_reached), (0, 1));
    assert!(!store.redial_possible(id).await.unwrap());
}

async fn without_a_policy_or_for_an_outcome_not_in_on_nothing_is_redialled(f: &Fixture) {
    let (store, id) = store_with_policy(f, None).await;
    dial(&store, id, 1_000_000, "s-1").await;
    assert!(!store.redial_possible(id).await.unwrap());
    let w = store
        .record_outcomes(vec![record("s-1", "not_answered", 202, 1_001)])
        .await
        .unwrap();
    assert_eq!(w.redials, 0);
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!(
        (c.reached, c.not_reached, c.redials_pending),
        (0, 0, 0),
        "without a policy these figures are not kept"
    );
    let other = store.create_campaign("u", "fp", "y.csv", 0).await.unwrap();
    store
        .insert_contacts(other.id, vec![super::row(2, "008613000000002")], 0)
        .await
        .unwrap();
    store
        .set_redial_policy(other.id, Some(policy(3)))
        .await
        .unwrap();
    dial(&store, other.id, 1_000_000, "s-9").await;
    assert!(store.redial_possible(other.id).await.unwrap());
    let w = store
        .record_outcomes(vec![record("s-9", "rejected", 203, 1_001)])
        .await
        .unwrap();
    assert_eq!(w.redials, 0);
    assert!(!store.redial_possible(other.id).await.unwrap());
}

async fn a_poll_that_corrects_a_push_takes_back_the_redial_the_push_asked_for(f: &Fixture) {
    let (store, id) = store_with_policy(f, Some(policy(3))).await;
    let contact = dial(&store, id, 1_000_000, "s-1").await;
    let mut pushed = record("s-1", "not_answered", 202, 1_030);
    pushed.source = "push".into();
    let w = store.record_outcomes(vec![pushed]).await.unwrap();
    assert_eq!(w.redials, 1);
    assert_eq!(store.result_of(contact).await.unwrap().status, "pending");
    let w = store
        .record_outcomes(vec![record("s-1", "answered", 1, 1_030)])
        .await
        .unwrap();
    assert_eq!((w.corrected.len(), w.redials), (1, 0));
    let r = store.result_of(contact).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str(), r.attempts),
        ("placed", "answered", 1),
        "placed again, with the call's own attempts"
    );
    assert_eq!(store.outcome_counts(id).await.unwrap().redials_pending, 0);
}

async fn a_redial_asked_for_by_hand_follows_the_same_rules(f: &Fixture) {
    let (store, id) = store_with_policy(f, Some(policy(2))).await;
    let contact = dial(&store, id, 1_000_000, "s-1").await;
    let d = store
        .schedule_redial(contact, "s-0", 2_000_000, "by hand", 1_500_000)
        .await
        .unwrap();
    assert_eq!(d, RedialDecision::NotLatest, "not the latest session");
    let d = store
        .schedule_redial(contact, "s-1", 2_000_000, "by hand", 1_500_000)
        .await
        .unwrap();
    assert_eq!(
        d,
        RedialDecision::Scheduled {
            due_ms: 2_000_000,
            dial: 2,
            max_dials: 2
        }
    );
    let d = store
        .schedule_redial(contact, "s-1", 2_000_000, "by hand", 1_500_000)
        .await
        .unwrap();
    assert_eq!(d, RedialDecision::NotLatest, "pending already");
    dial(&store, id, 2_000_000, "s-2").await;
    let d = store
        .schedule_redial(contact, "s-2", 3_000_000, "by hand", 2_500_000)
        .await
        .unwrap();
    assert_eq!(d, RedialDecision::MaxDials(2));
    store.set_redial_policy(id, None).await.unwrap();
    let d = store
        .schedule_redial(contact, "s-2", 3_000_000, "by hand", 2_500_000)
        .await
        .unwrap();
    assert_eq!(d, RedialDecision::NotAsked);
}

/// A push held before its attempt had the session is claimed when the reply is written, and
/// decided on like any record: the redial is scheduled in that transaction and the store's
/// arrival hook is told, with the contact.
async fn a_held_push_claimed_by_its_attempt_takes_the_redial_decision_and_tells_the_hook(
    f: &Fixture,
) {
    use std::sync::{Arc, Mutex};
    let (store, id) = store_with_policy(f, Some(policy(3))).await;
    let told: Arc<Mutex<Vec<ccc_dialer::store::Arrival>>> = Arc::default();
    let hook = told.clone();
    store.on_arrival(Arc::new(move |a: &[ccc_dialer::store::Arrival]| {
        hook.lock().unwrap().extend_from_slice(a)
    }));
    let mut redials = store.redial_watch();
    redials.mark_unchanged();
    // A second contact whose session no push names.
    store
        .insert_contacts(id, vec![super::row(3, "008613000000002")], 0)
        .await
        .unwrap();
    let due = store
        .due_contacts(id, 1_000_000, 10, Default::default())
        .await
        .unwrap();
    let (contact, plain) = (due[0].id, due[1].id);
    let n = store.begin_attempt(contact, 1_000_000, None).await.unwrap();
    let m = store.begin_attempt(plain, 1_000_000, None).await.unwrap();
    let mut pushed = record("s-1", "not_answered", 202, 1_030);
    pushed.source = "push".into();
    let w = store.record_outcomes(vec![pushed.clone()]).await.unwrap();
    assert_eq!(
        (w.pending.len(), w.arrivals.len()),
        (1, 0),
        "held, not arrived"
    );
    let placed = |session: &str| AttemptOutcome {
        session_id: Some(session.into()),
        ..super::outcome(Status::Placed, "placed", Some(1_000_000))
    };
    store
        .finish_attempt(plain, m, placed("s-plain"))
        .await
        .unwrap();
    assert!(
        told.lock().unwrap().is_empty(),
        "no held push for that session"
    );
    assert!(!redials.has_changed().unwrap());
    store
        .finish_attempt(contact, n, placed("s-1"))
        .await
        .unwrap();
    let arrived = told.lock().unwrap().clone();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    let a = &arrived[0];
    assert_eq!(
        (
            a.record.session_id.as_str(),
            a.record.contact_id,
            a.record.class.as_str(),
            a.record.source.as_str(),
            a.record.ended_at
        ),
        ("s-1", contact, "not_answered", "push", Some(1_030))
    );
    assert_eq!((a.was.clone(), a.redialled), (None, true));
    assert!(redials.has_changed().unwrap(), "the dispatcher is woken");
    let d = store.contact_detail(id, CALLEE).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.error_code.as_deref(), d.next_at),
        ("pending", Some("Redial"), 1_040_000)
    );
    // Waiting for its redial (no longer placed: the classes count placed contacts); the other
    // contact awaits its record.
    let c = store.outcome_counts(id).await.unwrap();
    assert_eq!(
        (
            c.by_class.get("not_answered"),
            c.redials_pending,
            c.awaiting
        ),
        (None, 1, 1),
        "{c:?}"
    );
    // Claimed once: the same push again is a repeat, nothing arrives.
    let w = store.record_outcomes(vec![pushed]).await.unwrap();
    assert_eq!((w.ignored, w.arrivals.len()), (1, 0));
    assert_eq!(told.lock().unwrap().len(), 1);
    // The poll's record of the same call corrects the push: an arrival with what it was.
    let w = store
        .record_outcomes(vec![record("s-1", "not_answered", 202, 1_030)])
        .await
        .unwrap();
    assert_eq!(w.corrected, vec!["s-1".to_string()]);
    assert_eq!(
        w.arrivals.first().and_then(|a| a.was.clone()),
        Some(("not_answered".to_string(), 1_030_500))
    );
}

fn tag(name: &str, info_type: &str, value: &str) -> Tag {
    Tag {
        name: name.into(),
        info_type: info_type.into(),
        info_content: String::new(),
        value: value.into(),
        result: String::new(),
    }
}

/// An answered record of `session`, ended (unix seconds) `ended`.
fn answered(session: &str, ended: i64) -> OutcomeRecord {
    OutcomeRecord {
        answered_at: Some(ended - 20),
        duration_s: Some(20),
        ..record(session, "answered", 1, ended)
    }
}

async fn a_callback_tag_schedules_its_redial_with_the_tags_once_and_within_max_dials(f: &Fixture) {
    // Redial by tag only (no `on`): callback = yes asks for a call 1 h after the call's end.
    let callback = TagRule {
        name: "callback".into(),
        value: "yes".into(),
        after: Some(Duration::from_secs(3600)),
    };
    let p = RedialPolicy {
        on: Vec::new(),
        max_dials: 2,
        after: Duration::from_secs(10),
        on_tag: vec![callback],
    };
    let (store, id) = store_with_policy(f, Some(p)).await;
    store.set_tag_kinds(vec![Kind::Tags], 0).await.unwrap();
    let contact = dial(&store, id, 1_000_000, "s-1").await;
    assert_eq!(
        store.redial_wait(id).await.unwrap(),
        Some(RedialWait::Outcome)
    );
    let w = store
        .record_outcomes(vec![answered("s-1", 1_030)])
        .await
        .unwrap();
    assert_eq!(
        (w.new.len(), w.redials),
        (1, 0),
        "answered: no redial by outcome"
    );
    // Its tags are awaited: the campaign is not finished, and says why.
    assert_eq!(store.redial_wait(id).await.unwrap(), Some(RedialWait::Tags));
    assert!(store.redial_possible(id).await.unwrap());
    // "callback" (Boolean true) matches "yes": scheduled with the tags, due after the call's end.
    let tags = vec![
        tag("interested", "Boolean", "true"),
        tag("callback", "Boolean", "true"),
    ];
    let w = store
        .record_tags("s-1".into(), tags.clone(), TagActions::default(), 1_040_000)
        .await
        .unwrap();
    let due_ms = 1_030_000 + 3_600_000;
    assert!(w.new);
    assert_eq!(
        w.redial,
        Some((
            "callback=yes".to_string(),
            RedialDecision::Scheduled {
                due_ms,
                dial: 2,
                max_dials: 2
            }
        ))
    );
    let d = store.contact_detail(id, CALLEE).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.next_at, d.gate.as_deref()),
        ("pending", due_ms, Some("redial_after"))
    );
    let why = d.error_message.clone().unwrap_or_default();
    assert!(
        why.contains("redial 2 of 2") && why.contains("post-call tag callback=yes in session s-1"),
        "{why}"
    );
    assert_eq!(
        store.redial_wait(id).await.unwrap(),
        None,
        "nothing awaited now"
    );
    // The same answer again (a check asked twice, a rerun after a crash) schedules nothing.
    let w = store
        .record_tags("s-1".into(), tags.clone(), TagActions::default(), 1_050_000)
        .await
        .unwrap();
    assert_eq!((w.new, w.redial), (false, None));
    assert_eq!(
        store
            .contact_detail(id, CALLEE)
            .await
            .unwrap()
            .unwrap()
            .next_at,
        due_ms
    );
    // The second call answers and asks again: max_dials = 2 calls made, it stays placed.
    assert_eq!(dial(&store, id, due_ms, "s-2").await, contact);
    store
        .record_outcomes(vec![answered("s-2", due_ms / 1000 + 60)])
        .await
        .unwrap();
    let w = store
        .record_tags("s-2".into(), tags, TagActions::default(), due_ms + 90_000)
        .await
        .unwrap();
    assert_eq!(
        w.redial,
        Some(("callback=yes".to_string(), RedialDecision::MaxDials(2)))
    );
    let r = store.result_of(contact).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str(), r.dials),
        ("placed", "answered", 2)
    );
    assert_eq!(store.redial_wait(id).await.unwrap(), None);
}
