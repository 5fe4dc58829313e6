//! One person is not rung again within the hour by default, whatever the campaigns: without a
//! `[calling]` table a gap of one hour per number holds across campaigns (`min_gap = "0s"`
//! turns it off), and `serve` refuses a contacts file that an active or recent campaign
//! already has under another name (409 `duplicate_contacts`, or `rejected/` from the inbox),
//! unless `?allow_duplicate=true`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::served::*;
use crate::support::*;

async fn wait_contact(srv: &Served, id: i64, callee: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, d) = srv
            .get(&format!("/v1/campaigns/{id}/contacts/{callee}"))
            .await;
        if status == 200 && pred(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "timed out; last: {status} {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_file(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {}", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_list_under_other_names_rings_one_person_once() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let csv = csv_of(41, 1);

    let first = srv.create("dupx", &csv).await;
    srv.wait_campaign(first, "the first call", |c| count(c, "placed") == 1)
        .await;
    // The same file under another name: refused, naming the campaign that has it.
    let (status, body) = srv.post("/v1/campaigns?name=dupy", csv.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "duplicate_contacts", "{body}");
    let m = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("\"dupx\"") && m.contains("allow_duplicate"),
        "{m}"
    );
    // And from the inbox, as `dupx (1).csv` (a copy's usual name).
    let inbox = s.dir.path().join("inbox");
    std::fs::write(inbox.join(".dupx (1).csv"), &csv).unwrap();
    std::fs::rename(inbox.join(".dupx (1).csv"), inbox.join("dupx (1).csv")).unwrap();
    let why = wait_file(&inbox.join("rejected").join("dupx (1).csv.error.txt")).await;
    assert!(why.contains("campaign \"dupx\""), "{why}");

    // Asked for on purpose: created, but the person waits out the gap.
    let (status, body) = srv
        .post("/v1/campaigns?name=dupz&allow_duplicate=true", csv.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    let again = body["campaign"]["id"].as_i64().unwrap();
    let d = wait_contact(&srv, again, &callee(41, 0), |d| {
        d["waiting"]["gate"] == "min_gap"
    })
    .await;
    assert_eq!(d["status"], "pending", "{d}");
    // Another file (other columns) with the same number: the gap holds it back as well.
    let other = srv
        .create("other-file", &format!("callee,id\n{},z\n", callee(41, 0)))
        .await;
    wait_contact(&srv, other, &callee(41, 0), |d| {
        d["waiting"]["gate"] == "min_gap"
    })
    .await;

    let (_, list) = srv.get("/v1/campaigns").await;
    let names: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(mock.stats().requests, 1, "one call to one person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_gap_zero_turns_the_default_gap_off() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "[calling]\nmin_gap = \"0s\"\n");
    let srv = Served::start(&s).await;
    let csv = csv_of(42, 1);
    let a = srv.create("gap-a", &csv).await;
    srv.wait_campaign(a, "the first call", |c| count(c, "placed") == 1)
        .await;
    let (status, body) = srv
        .post("/v1/campaigns?name=gap-b&allow_duplicate=true", csv.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    let b = body["campaign"]["id"].as_i64().unwrap();
    srv.wait_campaign(b, "the second call", |c| count(c, "placed") == 1)
        .await;
    assert_eq!(mock.stats().requests, 2);
}
