//! The counts by status the console and the API show every 2 s come from `contact_counts`
//! (kept as contacts change), not from counting the contacts: they must always equal a count.

use std::collections::{BTreeMap, HashSet};

use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::store::{AttemptOutcome, Store};

fn row(line: u64, callee: &str, skip: Option<&str>) -> NewContact {
    NewContact {
        line,
        callee: callee.into(),
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: skip.map(String::from),
    }
}

/// Counted the slow way, from the contacts themselves.
async fn counted(store: &Store, campaign_id: i64) -> BTreeMap<Status, u64> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT status, COUNT(*) FROM contacts WHERE campaign_id = ?1 GROUP BY status",
            )?;
            let rows = stmt.query_map([campaign_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut out = BTreeMap::new();
            for r in rows {
                let (s, n) = r?;
                out.insert(s.parse::<Status>().unwrap(), n as u64);
            }
            Ok(out)
        })
        .await
        .unwrap()
}

async fn same(store: &Store, id: i64, step: &str) -> BTreeMap<Status, u64> {
    let kept = store.counts(id).await.unwrap();
    assert_eq!(kept, counted(store, id).await, "after {step}");
    kept
}

#[tokio::test]
async fn kept_counts_follow_intake_attempts_settling_requeue_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let a = store.create_campaign("a", "fa", "a.csv", 0).await.unwrap();
    let b = store.create_campaign("b", "fb", "b.csv", 0).await.unwrap();
    let rows = vec![
        row(2, "x", None),
        row(3, "y", None),
        row(4, "x", None), // a duplicate: skipped
        row(5, "bad", Some("not a number")),
        row(6, "z", None),
        row(7, "w", None),
    ];
    store.insert_contacts(a.id, rows.clone(), 0).await.unwrap();
    // The same batch again (an intake resumed): nothing counted twice.
    store.insert_contacts(a.id, rows, 0).await.unwrap();
    store
        .insert_contacts(b.id, vec![row(2, "x", None)], 0)
        .await
        .unwrap();
    let c = same(&store, a.id, "intake").await;
    assert_eq!(c.get(&Status::Pending), Some(&4));
    assert_eq!(c.get(&Status::Skipped), Some(&2));
    same(&store, b.id, "intake of another campaign").await;

    let due = store
        .due_contacts(a.id, 0, 3, HashSet::new())
        .await
        .unwrap();
    let outcome = |status, outcome| AttemptOutcome {
        status,
        attempts: 1,
        reschedules: 0,
        next_at: 0,
        session_id: None,
        request_id: None,
        error_code: None,
        error_message: None,
        outcome,
        sent_at: Some(1),
        finished_at: 2,
    };
    let n0 = store.begin_attempt(due[0].id, 1, None).await.unwrap();
    let n1 = store.begin_attempt(due[1].id, 1, None).await.unwrap();
    store.begin_attempt(due[2].id, 1, None).await.unwrap();
    let c = same(&store, a.id, "three attempts begun").await;
    assert_eq!(c.get(&Status::InFlight), Some(&3));
    store
        .finish_attempt(due[0].id, n0, outcome(Status::Placed, "placed"))
        .await
        .unwrap();
    store
        .finish_attempt(due[1].id, n1, outcome(Status::Failed, "error"))
        .await
        .unwrap();
    same(&store, a.id, "two attempts finished").await;
    // The third one's reply is lost: in doubt.
    store.settle_in_flight(a.id, 3).await.unwrap();
    let c = same(&store, a.id, "settling").await;
    assert_eq!(c.get(&Status::Unknown), Some(&1));
    store.requeue_unknown(a.id, 4).await.unwrap();
    same(&store, a.id, "requeue").await;
    store.cancel_pending(a.id, 5).await.unwrap();
    let c = same(&store, a.id, "cancel").await;
    assert_eq!(c.get(&Status::Cancelled), Some(&2));
    assert_eq!(
        c.get(&Status::Pending),
        None,
        "a status emptied is not listed"
    );
    let b_counts = same(&store, b.id, "the other campaign, untouched").await;
    assert_eq!(b_counts, BTreeMap::from([(Status::Pending, 1)]));
}

#[tokio::test]
async fn a_store_of_the_previous_schema_gets_its_counts_built_from_its_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let id = {
        let store = Store::open(&path).unwrap();
        let c = store.create_campaign("a", "fa", "a.csv", 0).await.unwrap();
        store
            .insert_contacts(
                c.id,
                vec![
                    row(2, "x", None),
                    row(3, "y", Some("bad")),
                    row(4, "z", None),
                ],
                0,
            )
            .await
            .unwrap();
        store.cancel_pending(c.id, 1).await.unwrap();
        // As the previous build left it: no kept counts.
        store
            .call(|c| {
                c.execute_batch(
                    "DROP TRIGGER contact_counts_moved; DROP TRIGGER contact_counts_deleted;
                     DROP TABLE contact_counts; PRAGMA user_version = 8;",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        c.id
    };
    let store = Store::open(&path).unwrap();
    let c = same(&store, id, "the migration").await;
    assert_eq!(c.get(&Status::Cancelled), Some(&2));
    assert_eq!(c.get(&Status::Skipped), Some(&1));
}
