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

/// The campaign's rate (`GET /v1/campaigns[/{id}]`, every 2 s from the console) counts the last
/// 10 s of attempts through their time index: a handful of rows, not every contact of the
/// campaign (a scan of a million contacts held the store thread for ~0.3 s per request).
#[tokio::test]
async fn the_rate_reads_the_recent_attempts_by_their_time_index_and_counts_only_sends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let plan: Vec<String> = store
        .call(|c| {
            let mut stmt = c.prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                ccc_dialer::store::SENDS_SINCE_SQL
            ))?;
            let rows = stmt.query_map([1i64, 0i64], |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap();
    assert!(
        plan.first()
            .is_some_and(|p| p.starts_with("SEARCH a USING INDEX attempts_started")),
        "the recent attempts first, through attempts_started: {plan:?}"
    );
    assert!(
        plan.iter()
            .all(|p| !p.starts_with("SCAN") && !p.contains("SEARCH k USING COVERING INDEX")),
        "no contact scanned: {plan:?}"
    );

    // What it counts: this campaign's attempts since the moment, that reached the network.
    let a = store.create_campaign("a", "fa", "a.csv", 0).await.unwrap();
    let b = store.create_campaign("b", "fb", "b.csv", 0).await.unwrap();
    let rows = (2..8).map(|l| row(l, &format!("1{l}"), None)).collect();
    store.insert_contacts(a.id, rows, 0).await.unwrap();
    store
        .insert_contacts(b.id, vec![row(2, "x", None)], 0)
        .await
        .unwrap();
    let due = store
        .due_contacts(a.id, 0, 6, HashSet::new())
        .await
        .unwrap();
    let finish = |status, outcome: &'static str| AttemptOutcome {
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
    // Before the window: not counted.
    let n = store.begin_attempt(due[0].id, 500, None).await.unwrap();
    store
        .finish_attempt(due[0].id, n, finish(Status::Placed, "placed"))
        .await
        .unwrap();
    // In the window: placed, failed, still in flight count; not sent (a refusal before the
    // network) does not.
    for (i, at) in [(1, 1000), (2, 1500), (3, 2000)] {
        store.begin_attempt(due[i].id, at, None).await.unwrap();
    }
    let n = store.begin_attempt(due[4].id, 1200, None).await.unwrap();
    store
        .finish_attempt(due[4].id, n, finish(Status::Pending, "not_sent"))
        .await
        .unwrap();
    let other = store
        .due_contacts(b.id, 0, 1, HashSet::new())
        .await
        .unwrap();
    store.begin_attempt(other[0].id, 1800, None).await.unwrap();
    assert_eq!(store.sends_since(a.id, 1000).await.unwrap(), 3);
    assert_eq!(store.sends_since(a.id, 0).await.unwrap(), 4);
    assert_eq!(store.sends_since(b.id, 1000).await.unwrap(), 1);
    assert_eq!(store.sends_since(a.id, 2001).await.unwrap(), 0);
}

/// The counts `GET /v1/campaigns/{id}` shows are the ones a count of the contacts gives, after a
/// campaign through `serve` with failures, a retry, duplicates and invalid rows, contacts added,
/// a cancelled campaign and a requeue (every figure compared, zeros included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apis_counts_equal_a_count_of_the_contacts_through_a_served_campaign() {
    use crate::served::{callee, count, csv_of, state, Served};
    use crate::support::{mock_with, Scratch};
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"error:FailedOperation.CalleeIsBlackUser\"]\n\
         [[rule]]\ncallee = \"{}\"\noutcomes = [\"error:FailedOperation.CallOutFailed\", \"ok\"]\n\
         [[rule]]\ncallee = \"{}\"\noutcomes = [\"error:ResourceUnavailable\", \"error:ResourceUnavailable\"]\n",
        crate::served::normalised(81, 1),
        crate::served::normalised(81, 2),
        crate::served::normalised(81, 3),
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nmax_attempts = 2\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    let srv = Served::start(&s).await;
    let state_db = s.state.clone();
    let same = |c: serde_json::Value, step: &'static str| {
        let state_db = state_db.clone();
        async move {
            let id = c["id"].as_i64().expect("id");
            let counted = tokio::task::spawn_blocking(move || {
                let db = rusqlite::Connection::open_with_flags(
                    &state_db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open the store read-only");
                let mut stmt = db
                    .prepare(
                        "SELECT status, COUNT(*) FROM contacts WHERE campaign_id = ?1
                         GROUP BY status",
                    )
                    .expect("prepare");
                stmt.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .expect("query")
                    .collect::<Result<BTreeMap<_, _>, _>>()
                    .expect("rows")
            })
            .await
            .expect("join");
            let shown = c["counts"].as_object().expect("counts");
            for (status, n) in shown {
                let want = counted.get(status).copied().unwrap_or(0);
                assert_eq!(n.as_i64(), Some(want), "{status} after {step}: {c}");
            }
            for status in counted.keys() {
                assert!(
                    shown.contains_key(status),
                    "{status} shown after {step}: {c}"
                );
            }
            assert_eq!(
                c["total"].as_i64(),
                Some(counted.values().sum::<i64>()),
                "total after {step}: {c}"
            );
        }
    };

    // Twelve numbers, one of them twice, and a row that is no number.
    let csv = format!("{}{}\nnot-a-number\n", csv_of(81, 12), callee(81, 5));
    let a = srv.create("a", &csv).await;
    let c = srv
        .wait_campaign(a, "a done", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "failed"), 2, "{c}");
    assert_eq!(count(&c, "skipped"), 2, "{c}");
    assert_eq!(count(&c, "placed"), 10, "{c}");
    same(
        c,
        "a campaign with failures, a retry, a duplicate and a bad row",
    )
    .await;

    // Contacts added to the finished campaign are dialled; one is already in it.
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{a}/contacts"),
            format!("callee\n{}\n{}\n", callee(81, 20), callee(81, 4)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let c = srv
        .wait_campaign(a, "the added one placed", |c| {
            state(c) == "completed" && count(c, "placed") == 11
        })
        .await;
    same(c, "contacts added").await;

    // The one that failed for want of resources requeued (and placed); the other stays failed.
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{a}/requeue"),
            r#"{"status": "failed", "codes": ["ResourceUnavailable"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requeued"], 1, "{body}");
    let c = srv
        .wait_campaign(a, "the requeued one placed", |c| {
            state(c) == "completed" && count(c, "placed") == 12
        })
        .await;
    same(c, "requeue").await;

    // A campaign created paused, then cancelled.
    let (status, body) = srv
        .post("/v1/campaigns?name=b&paused=true", csv_of(82, 5))
        .await;
    assert_eq!(status, 201, "{body}");
    let b = body["campaign"]["id"].as_i64().expect("id");
    same(srv.campaign(b).await, "created paused").await;
    let (status, body) = srv.post(&format!("/v1/campaigns/{b}/cancel"), "").await;
    assert_eq!(status, 200, "{body}");
    let c = srv.campaign(b).await;
    assert_eq!(count(&c, "cancelled"), 5, "{c}");
    same(c, "cancel").await;
    same(srv.campaign(a).await, "the other campaign, untouched").await;
}
