//! `ccc-dialer report` and `GET /v1/campaigns/{id}/report`: totals, requests per contact, the
//! rate against the cap, and the waiting time recorded in the store, after the fact.

use std::process::Command;

use serde_json::Value;

use crate::served::{self, Served};
use crate::support::*;

fn report(state: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("report")
        .arg("--state")
        .arg(state)
        .args(extra)
        .env_remove("CCC_DIALER_LOG")
        .output()
        .expect("spawn ccc-dialer report")
}

fn json_report(state: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = report(state, &args);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).expect("report --format json prints JSON")
}

/// A finished `run`: one contact retried after a transient error, one failed for good.
async fn finished_run() -> (Scratch, ccc_dialer::mock::MockServer) {
    let faults = format!(
        "{}[[rule]]\ncallee = \"{}\"\noutcomes = [\"error:FailedOperation.CalleeIsLimited\"]\n",
        fails_once(&phone(0), "ResourceUnavailable"),
        phone(1)
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nbackoff_initial = \"1s\"\nbackoff_max = \"1s\"\n",
    );
    s.write_contacts(&contacts_csv(5));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    (s, mock)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_report_counts_statuses_codes_requests_and_the_wait_for_a_retry() {
    let (s, mock) = finished_run().await;
    let r = json_report(&s.state, &[]);
    assert_eq!(r["campaign"]["name"], "run");
    assert_eq!(r["total"], 5);
    assert_eq!(r["by_status"]["placed"], 4, "{r:#}");
    assert_eq!(r["by_status"]["failed"], 1, "{r:#}");
    assert_eq!(
        r["by_status"]["pending"], 0,
        "every status is listed: {r:#}"
    );
    assert_eq!(
        r["by_error_code"],
        serde_json::json!([{"status": "failed", "code": "FailedOperation.CalleeIsLimited", "contacts": 1}])
    );
    // Four contacts took one request, the retried one two.
    assert_eq!(
        r["requests_per_contact"],
        serde_json::json!([{"requests": 1, "contacts": 4}, {"requests": 2, "contacts": 1}])
    );
    assert_eq!(r["rate"]["requests_sent"], mock.stats().requests);
    assert_eq!(r["rate"]["requests_sent"], 6);
    assert_eq!(r["rate"]["cap_per_second"], 20.0);
    let busiest = r["rate"]["busiest_second"].as_u64().unwrap();
    assert!((1..=20).contains(&busiest), "{r:#}");
    // Nothing else was due while the retried contact waited out its backoff.
    let waits = r["waiting"]["by_reason"].as_array().unwrap();
    let backoff = waits
        .iter()
        .find(|w| w["reason"] == "retry_backoff")
        .unwrap_or_else(|| panic!("a retry_backoff wait: {r:#}"));
    assert!(backoff["seconds"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(backoff["description"], "retry backoff");
    // The config's zone (CN's) beside UTC.
    assert_eq!(r["zone"], "Asia/Shanghai");
    let created = &r["campaign"]["created_at"];
    assert!(created["utc"].as_str().unwrap().ends_with('Z'), "{created}");
    assert!(
        created["local"]
            .as_str()
            .unwrap()
            .ends_with("+08:00 (Asia/Shanghai)"),
        "{created}"
    );
    assert_eq!(r["outcomes"]["tracked"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_text_report_is_for_people_and_says_outcomes_are_not_tracked() {
    let (s, _mock) = finished_run().await;
    let out = report(&s.state, &[]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "campaign run (id 1): ",
        "contacts: 5",
        "  placed     4",
        "FailedOperation.CalleeIsLimited",
        "    2 request(s): 1 contact(s)",
        "rate (cap 20/s):",
        "  requests sent   6",
        "retry_backoff",
        "+08:00 (Asia/Shanghai)",
        "outcomes: not tracked",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_several_campaigns_report_asks_which_and_takes_a_name_or_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    {
        let store = ccc_dialer::store::Store::open(&state).unwrap();
        store
            .create_campaign("spring", "f1", "a.csv", 0)
            .await
            .unwrap();
        store
            .create_campaign("autumn", "f2", "b.csv", 0)
            .await
            .unwrap();
    }
    let out = report(&state, &[]);
    assert_eq!(code_of(&out), 2);
    let err = stderr_of(&out);
    assert!(err.contains("holds 2 campaigns"), "{err}");
    assert!(
        err.contains("spring (id 1") && err.contains("autumn (id 2"),
        "{err}"
    );
    assert_eq!(
        json_report(&state, &["--campaign", "autumn"])["campaign"]["id"],
        2
    );
    assert_eq!(
        json_report(&state, &["--campaign", "1"])["campaign"]["name"],
        "spring"
    );
    let out = report(&state, &["--campaign", "winter"]);
    assert_eq!(code_of(&out), 2);
    assert!(stderr_of(&out).contains("--campaign winter: no such campaign"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_report_is_the_cli_report() {
    let mock = mock_with(20, 0, "").await;
    let s = served::scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("spring", &served::csv_of(40, 3)).await;
    srv.wait_campaign(id, "completed", |c| served::state(c) == "completed")
        .await;
    let (status, r) = srv.get(&format!("/v1/campaigns/{id}/report")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["campaign"]["name"], "spring");
    assert_eq!(r["campaign"]["state"], "completed");
    assert_eq!(r["total"], 3);
    assert_eq!(r["by_status"]["placed"], 3);
    assert_eq!(r["rate"]["requests_sent"], 3);
    assert_eq!(
        r["requests_per_contact"],
        serde_json::json!([{"requests": 1, "contacts": 3}])
    );
    let (status, body) = srv.get("/v1/campaigns/999/report").await;
    assert_eq!(status, 404, "{body}");
    // The CLI reads the same store (read-only beside the live serve).
    let cli = json_report(&s.state, &["--campaign", &id.to_string()]);
    assert_eq!(cli["by_status"], r["by_status"]);
    assert_eq!(cli["rate"]["requests_sent"], r["rate"]["requests_sent"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_outcomes_tracked_the_report_gives_reach_and_answer_rate_by_dial() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"answered:1s\"]\n\
         [[rule]]\ncallee = \"{}\"\ncalls = [\"not_answered\"]\n\
         [[rule]]\ncallee = \"{}\"\ncalls = [\"busy\"]\n",
        phone(0),
        phone(1),
        phone(2)
    );
    let mock = ccc_dialer::mock::MockServer::spawn(outcome_options(&faults))
        .await
        .unwrap();
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\n",
    );
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let r = json_report(&s.state, &[]);
    let o = &r["outcomes"];
    assert_eq!(o["tracked"], true, "{r:#}");
    assert_eq!(
        o["by_class"]["answered"], 2,
        "contact 3 answers by default: {o:#}"
    );
    assert_eq!(o["by_class"]["not_answered"], 1, "{o:#}");
    assert_eq!(o["by_class"]["busy"], 1, "{o:#}");
    assert_eq!(o["answer_rate"], 0.5, "{o:#}");
    assert_eq!(
        o["by_dial"],
        serde_json::json!([{"dial": 1, "calls": 4, "ended": 4, "answered": 2, "answer_rate": 0.5, "reach": 0.5}])
    );
    let text = String::from_utf8_lossy(&report(&s.state, &[]).stdout).into_owned();
    assert!(text.contains("answer rate 50.0%"), "{text}");
    assert!(!text.contains("not tracked"), "{text}");
}
