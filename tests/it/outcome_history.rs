//! `GET /v1/campaigns/{id}/outcomes/history`: a campaign's calls by the interval they ended in
//! and outcome, from the counts the store keeps per minute (the console's outcomes chart).

use serde_json::Value;

use crate::served::{normalised, Served};
use crate::support::*;

/// Sum of `by_outcome` over every interval of a history reply.
fn totals(h: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for i in h["intervals"].as_array().expect("intervals") {
        let mut calls = 0;
        for (k, n) in i["by_outcome"].as_object().expect("by_outcome") {
            *out.entry(k.clone()).or_default() += n.as_u64().expect("a count");
            calls += n.as_u64().expect("a count");
        }
        assert_eq!(i["calls"].as_u64(), Some(calls), "{i}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_history_counts_each_call_once_in_the_interval_it_ended_and_pages_long_ranges() {
    // One busy call, three answered: the history holds them all, whenever it is asked.
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"busy\"]\n[[rule]]\ncallee = \"*\"\ncalls = [\"answered:1s\"]\n",
        normalised(8, 0)
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = crate::served::scratch(
        &mock,
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\n",
    );
    let served = Served::start(&s).await;
    let id = served.create("history", &crate::served::csv_of(8, 4)).await;
    let c = served
        .wait_campaign(id, "every outcome known", |c| {
            c["state"] == "completed" && c["outcomes"]["awaiting"] == 0
        })
        .await;

    // The default: minutes since the campaign began, each once, the calls in them.
    let (status, h) = served
        .get(&format!("/v1/campaigns/{id}/outcomes/history"))
        .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["step_seconds"], 60, "{h}");
    assert_eq!(h["next_from"], Value::Null, "{h}");
    let intervals = h["intervals"].as_array().expect("intervals");
    assert!(!intervals.is_empty() && intervals.len() <= 120, "{h}");
    let starts: Vec<jiff::Timestamp> = intervals
        .iter()
        .map(|i| {
            i["start"]
                .as_str()
                .expect("start")
                .parse()
                .expect("RFC 3339")
        })
        .collect();
    for w in starts.windows(2) {
        assert_eq!((w[1] - w[0]).as_secs(), 60, "{h}");
    }
    let by = totals(&h);
    assert_eq!(by.get("answered"), Some(&3), "{h}");
    assert_eq!(by.get("busy"), Some(&1), "{h}");
    assert_eq!(by.values().sum::<u64>(), 4, "{h}");
    // The same figures as the campaign's own counts.
    assert_eq!(c["outcomes"]["by_outcome"]["answered"], 3, "{c}");

    // A longer range than one reply covers: its first 360 minutes, and where the rest starts.
    let from = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 8);
    let (status, h) = served
        .get(&format!(
            "/v1/campaigns/{id}/outcomes/history?step=60&from={from}"
        ))
        .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["intervals"].as_array().map(Vec::len), Some(360), "{h}");
    let first: jiff::Timestamp = h["from"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = h["next_from"].as_str().expect("next_from").parse().unwrap();
    assert_eq!((next - first).as_secs(), 360 * 60, "{h}");
    assert!(totals(&h).is_empty(), "no call eight days ago: {h}");
    // Hourly intervals over the whole range: every call, in one reply of 7 days at most.
    let (status, h) = served
        .get(&format!(
            "/v1/campaigns/{id}/outcomes/history?step=3600&from={}",
            jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)
        ))
        .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["next_from"], Value::Null, "{h}");
    assert_eq!(totals(&h).values().sum::<u64>(), 4, "{h}");

    // Refusals say what was expected.
    let (status, e) = served
        .get(&format!("/v1/campaigns/{id}/outcomes/history?step=7"))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("60, 300, 900 or 3600"),
        "{e}"
    );
    let (status, e) = served
        .get(&format!(
            "/v1/campaigns/{id}/outcomes/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not before"),
        "{e}"
    );
    let (status, e) = served
        .get(&format!(
            "/v1/campaigns/{id}/outcomes/history?from=yesterday"
        ))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("RFC 3339"),
        "{e}"
    );
    let (status, _) = served.get("/v1/campaigns/999/outcomes/history").await;
    assert_eq!(status, 404);
}
