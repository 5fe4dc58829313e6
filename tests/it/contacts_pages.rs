//! `GET /v1/campaigns/{id}/contacts`: every contact exactly once across pages, in line order;
//! filters that filter; a search by number that goes on past its window; refusals in words.

use std::collections::BTreeSet;

use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::store::{ContactFilter, Store, SEARCH_WINDOW};
use serde_json::Value;

use crate::served::{in_process, TOKEN};

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Follow `next_cursor` from the first page; every page's lines, in order.
async fn all_pages(http: &reqwest::Client, base: &str, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = get(http, format!("{base}?{query}&cursor={cursor}")).await;
        assert_eq!(status, 200, "{body}");
        pages.push(body["contacts"].as_array().unwrap().clone());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                return pages;
            }
        }
        assert!(pages.len() < 100, "paging does not end: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_page_in_line_order_filter_by_status_and_search_by_number() {
    let p = in_process(64 * 1024, async |_| {}).await;
    let http = reqwest::Client::new();
    // 20 dialable rows (lines 2..=21), a bad number (line 22) and a duplicate (line 23).
    let mut csv = String::from("callee,id,var:name\n");
    for i in 0..20 {
        csv.push_str(&format!("+86138000{:05},c{i},Name {i}\n", 100 + i));
    }
    csv.push_str("not-a-number,bad,Nobody\n+8613800000100,dup,Again\n");
    let r = http
        .post(format!("{}/v1/campaigns?name=paged", p.base))
        .bearer_auth(TOKEN)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().await.unwrap()["campaign"]["id"]
        .as_i64()
        .unwrap();
    let base = format!("{}/v1/campaigns/{id}/contacts", p.base);

    // Every contact once, in line order, 7 at a time.
    let pages = all_pages(&http, &base, "limit=7").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7, 7, 7, 1]
    );
    let lines: Vec<u64> = pages
        .iter()
        .flatten()
        .map(|c| c["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, (2..=23).collect::<Vec<_>>());
    let first = &pages[0][0];
    assert_eq!(first["callee"], "008613800000100", "{first}");
    assert_eq!(first["ext_id"], "c0");
    assert_eq!(first["name"], "Name 0");

    // Only the skipped rows, and only they.
    let skipped: Vec<Value> = all_pages(&http, &base, "status=skipped").await.concat();
    let ids: BTreeSet<&str> = skipped
        .iter()
        .map(|c| c["ext_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["bad", "dup"]), "{skipped:?}");
    assert!(skipped.iter().all(|c| c["status"] == "skipped"));
    // No call has an outcome here: an outcome filter finds nobody (and says where it stopped).
    let (status, answered) = get(&http, format!("{base}?outcome=answered")).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["contacts"], Value::Array(vec![]), "{answered}");
    assert!(pages[0].iter().all(|c| c["outcome"].is_null()));
    let (_, none) = get(&http, format!("{base}?status=placed")).await;
    assert_eq!(none["contacts"], Value::Array(vec![]), "{none}");
    assert!(none["next_cursor"].is_null());

    // A number as people type it finds its contact (and its skipped duplicate).
    let found: Vec<Value> = all_pages(&http, &base, "q=%2B86%20138%200000%200107")
        .await
        .concat();
    assert_eq!(
        found
            .iter()
            .map(|c| c["ext_id"].clone())
            .collect::<Vec<_>>(),
        vec![Value::from("c7")],
        "{found:?}"
    );
    let twice: Vec<Value> = all_pages(&http, &base, "q=13800000100").await.concat();
    assert_eq!(twice.len(), 2, "{twice:?}");
    let (_, both) = get(&http, format!("{base}?q=13800000100&status=pending")).await;
    assert_eq!(both["contacts"].as_array().unwrap().len(), 1, "{both}");
    assert_eq!(both["contacts"][0]["ext_id"], "c0");

    // Refusals say what was wrong.
    for (query, words) in [
        ("status=done", "expected one of pending, in_flight"),
        ("outcome=hung_up", "expected one of answered, not_answered"),
        ("q=abc", "part of a phone number"),
        // 65 spaces ('+' in a query): over the documented maxLength, not an empty search.
        (&format!("q={}", "+".repeat(65)), "expected at most 64"),
        ("q=%2B", "part of a phone number"),
        ("cursor=x", "next_cursor"),
        ("limit=0", "from 1 to 500"),
        ("limit=501", "from 1 to 500"),
        ("sort=line", "unknown field"),
        // openapi.json's pattern: 32 digits at most.
        ("q=111111111111111111111111111111111", "1 to 32 digits"),
    ] {
        let (status, body) = get(&http, format!("{base}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{query}: {message}");
    }
    let (status, _) = get(&http, format!("{}/v1/campaigns/999/contacts", p.base)).await;
    assert_eq!(status, 404);
    let r = http.get(&base).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the token is required");
    let _ = p.stop.send(ccc_dialer::dispatch::Stop::Now);
}

fn row(line: u64, callee: String) -> NewContact {
    NewContact {
        line,
        callee,
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: None,
    }
}

#[tokio::test]
async fn a_search_by_number_reads_a_window_per_page_and_goes_on_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = store.create_campaign("t", "fp", "x.csv", 0).await.unwrap();
    let n = SEARCH_WINDOW * 2 + 500;
    let rows = (0..n)
        .map(|i| row(i + 2, format!("0086139{i:08}")))
        .collect();
    store.insert_contacts(c.id, rows, 0).await.unwrap();
    // The one match lies in the third window: the first two pages are empty and say go on.
    let wanted = format!("{:08}", n - 10);
    let filter = ContactFilter {
        status: None,
        digits: Some(wanted.clone()),
        ..Default::default()
    };
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store
            .contacts_page(c.id, after, filter.clone(), 50)
            .await
            .unwrap();
        pages.push(page.contacts.len());
        match page.next_after {
            Some(next) => {
                assert!(next > after, "the cursor moves on");
                after = next;
            }
            None => {
                assert_eq!(page.contacts.len(), 1);
                assert_eq!(page.contacts[0].callee, format!("0086139{wanted}"));
                break;
            }
        }
    }
    assert_eq!(pages, vec![0, 0, 1]);
    // Status and search together use the status index; a status page ends without a window.
    let pending = store
        .contacts_page(
            c.id,
            0,
            ContactFilter {
                status: Some(Status::Pending),
                digits: None,
                ..Default::default()
            },
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        pending.contacts.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(pending.next_after, Some(4));
}

#[tokio::test]
async fn an_outcome_filter_finds_the_contacts_whose_latest_call_had_that_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = store.create_campaign("t", "fp", "x.csv", 0).await.unwrap();
    let rows = (0..30)
        .map(|i| row(i + 2, format!("0086139{i:08}")))
        .collect();
    store.insert_contacts(c.id, rows, 0).await.unwrap();
    // Calls on lines 5, 10 and 25 with their records: answered, busy, answered.
    let id = c.id;
    store
        .call(move |db| {
            for (line, class) in [(5, "answered"), (10, "busy"), (25, "answered")] {
                db.execute(
                    "UPDATE contacts SET status = 'placed', session_id = 's' || ?2
                     WHERE campaign_id = ?1 AND line = ?2",
                    rusqlite::params![id, line],
                )?;
                db.execute(
                    "INSERT INTO outcomes (session_id, contact_id, class, source, recorded_at)
                     SELECT session_id, id, ?3, 'test', 0 FROM contacts
                     WHERE campaign_id = ?1 AND line = ?2",
                    rusqlite::params![id, line, class],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let answered = store
        .contacts_page(
            c.id,
            0,
            ContactFilter {
                outcome: Some("answered".into()),
                ..Default::default()
            },
            50,
        )
        .await
        .unwrap();
    assert_eq!(
        answered
            .contacts
            .iter()
            .map(|r| (r.line, r.outcome.clone()))
            .collect::<Vec<_>>(),
        vec![(5, Some("answered".into())), (25, Some("answered".into()))]
    );
    assert_eq!(answered.next_after, None, "30 lines fit in one window");
    let all = store
        .contacts_page(c.id, 0, ContactFilter::default(), 50)
        .await
        .unwrap();
    let busy: Vec<u64> = all
        .contacts
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("busy"))
        .map(|r| r.line)
        .collect();
    assert_eq!(busy, vec![10], "every row carries its outcome");
}
