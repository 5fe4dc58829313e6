//! `ccc-dialer run` end to end, as a child process against the built-in stand-in over loopback.
//! The stand-in's own figures are the judge: calls created per callee, requests per window.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::*;

fn by_callee(
    rows: &[ccc_dialer::contact::ResultRow],
) -> BTreeMap<String, ccc_dialer::contact::ResultRow> {
    rows.iter().map(|r| (r.callee.clone(), r.clone())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_contact_is_placed_exactly_once_with_its_row_variables_and_callers() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "callers = [\"008601012345678\"]\nvariables = { product = \"demo\", name = \"default\" }",
        "",
    );
    let mut csv = String::from("callee,id,var:name,callers\n");
    for i in 0..30 {
        let callers = if i == 7 {
            "008601099999999;008601088888888"
        } else {
            ""
        };
        csv.push_str(&format!("+86138{i:08},c{i},Person {i},{callers}\n"));
    }
    s.write_contacts(&csv);
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));

    let rows = s.results();
    assert_eq!(rows.len(), 30, "every contact exactly once in the results");
    assert!(rows
        .iter()
        .all(|r| r.status == "placed" && !r.session_id.is_empty() && r.attempts == 1));
    assert_eq!(rows[0].id, "c0");
    assert_eq!(rows[0].line, 2);

    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.len(), 30);
    assert!(stats.calls_per_callee.values().all(|n| *n == 1));
    assert!(stats.duplicate_callees.is_empty());
    // What arrived is what the row said, over the config's defaults.
    let body = &stats.last_body_by_callee[&phone(7)];
    assert_eq!(body["SdkAppId"], 1400000000);
    assert_eq!(body["AIAgentId"], 15);
    assert_eq!(
        body["Callers"],
        serde_json::json!(["008601099999999", "008601088888888"])
    );
    assert_eq!(
        body["Variables"],
        serde_json::json!([{"Key": "name", "Value": "Person 7"}, {"Key": "product", "Value": "demo"}])
    );
    let body = &stats.last_body_by_callee[&phone(8)];
    assert_eq!(body["Callers"], serde_json::json!(["008601012345678"]));
    // The session ids in the results are the ones the service handed out.
    for r in &rows {
        assert!(!r.request_id.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_error_class_gets_its_treatment() {
    let faults = format!(
        r#"
[[rule]]
callee = "{throttled}"
outcomes = ["error:RequestLimitExceeded", "ok"]
[[rule]]
callee = "{transient_then_ok}"
outcomes = ["error:FailedOperation.CallOutFailed", "ok"]
[[rule]]
callee = "{transient_forever}"
outcomes = ["error:ResourceUnavailable", "error:ResourceUnavailable", "error:ResourceUnavailable", "error:ResourceUnavailable"]
[[rule]]
callee = "{permanent}"
outcomes = ["error:FailedOperation.CalleeIsBlackUser"]
[[rule]]
callee = "{later}"
outcomes = ["error:FailedOperation.CalloutRuleNotWorkTime", "ok"]
[[rule]]
callee = "{dropped}"
outcomes = ["drop"]
[[rule]]
callee = "{gateway}"
outcomes = ["http:502"]
[[rule]]
callee = "{unrecognised}"
outcomes = ["error:FailedOperation.SomethingNobodyDocumented"]
[[rule]]
callee = "{next_day}"
outcomes = ["error:FailedOperation.CalloutRuleMaxCallCountCalleePerDayAppID", "ok"]
[[rule]]
callee = "{later_forever}"
outcomes = ["error:FailedOperation.CalloutRuleNotWorkTime", "error:FailedOperation.CalloutRuleNotWorkTime", "error:FailedOperation.CalloutRuleNotWorkTime", "ok"]
"#,
        throttled = phone(0),
        transient_then_ok = phone(1),
        transient_forever = phone(2),
        permanent = phone(3),
        later = phone(4),
        dropped = phone(5),
        gateway = phone(6),
        unrecognised = phone(7),
        next_day = phone(9),
        later_forever = phone(10),
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nmax_attempts = 3\nbackoff_initial = \"50ms\"\nbackoff_max = \"100ms\"\nlater_delay = \"100ms\"\n\
         later_delay_daily = \"150ms\"\nmax_reschedules = 2\n",
    );
    s.write_contacts(&contacts_csv(11));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(&s.results());
    let stats = mock.stats();
    let requests = |i: usize| {
        stats
            .requests_by_callee
            .get(&phone(i))
            .copied()
            .unwrap_or(0)
    };

    // throttled: resent, no attempt used
    assert_eq!(
        (rows[&phone(0)].status.as_str(), rows[&phone(0)].attempts),
        ("placed", 1)
    );
    assert_eq!(requests(0), 2);
    // transient: retried, each try an attempt
    assert_eq!(
        (rows[&phone(1)].status.as_str(), rows[&phone(1)].attempts),
        ("placed", 2)
    );
    // transient until the budget is spent
    let r = &rows[&phone(2)];
    assert_eq!(
        (r.status.as_str(), r.attempts, r.error_code.as_str()),
        ("failed", 3, "ResourceUnavailable")
    );
    assert_eq!(requests(2), 3);
    // permanent: once
    let r = &rows[&phone(3)];
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("failed", "FailedOperation.CalleeIsBlackUser")
    );
    assert_eq!(requests(3), 1);
    // later: rescheduled, then placed
    assert_eq!(rows[&phone(4)].status, "placed");
    assert_eq!(requests(4), 2);
    // reply lost after the call was created: unknown, never redialled
    let r = &rows[&phone(5)];
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("unknown", "InDoubt")
    );
    assert_eq!(requests(5), 1);
    assert_eq!(stats.calls_per_callee.get(&phone(5)), Some(&1));
    // a gateway's 5xx without an API body is in doubt too
    assert_eq!(rows[&phone(6)].status, "unknown");
    assert_eq!(requests(6), 1);
    // unrecognised code: failed at once, with a warning naming it
    let r = &rows[&phone(7)];
    assert_eq!((r.status.as_str(), r.attempts), ("failed", 1));
    assert_eq!(requests(7), 1);
    assert!(stderr_of(&out).contains("FailedOperation.SomethingNobodyDocumented"));
    // untouched contact
    assert_eq!(rows[&phone(8)].status, "placed");
    // next day: rescheduled after later_delay_daily, no attempt used, then placed
    assert_eq!(
        (rows[&phone(9)].status.as_str(), rows[&phone(9)].attempts),
        ("placed", 1)
    );
    assert_eq!(requests(9), 2);
    // later, past the reschedule cap: failed with the code, never a fourth request
    let r = &rows[&phone(10)];
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("failed", "FailedOperation.CalloutRuleNotWorkTime")
    );
    assert_eq!(
        requests(10),
        3,
        "the first try and max_reschedules = 2 reschedules"
    );
    assert!(stats.duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn halt_code_stops_the_campaign_and_a_rerun_after_the_fix_redials_nobody() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"error:FailedOperation.AILicenseHasExpired\"]\n",
        phone(5)
    );
    let mock = mock_with(20, 0, &faults).await;
    // One request in flight at a time makes "what was sent before the halt" exact.
    let s = Scratch::new(&mock.endpoint(), "", "[rate]\nmax_in_flight = 1\n");
    s.write_contacts(&contacts_csv(12));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("FailedOperation.AILicenseHasExpired"), "{err}");
    assert!(
        err.contains("renew"),
        "says what the operator must fix: {err}"
    );
    let rows = by_callee(&s.results());
    assert_eq!(rows.len(), 12);
    for i in 0..5 {
        assert_eq!(rows[&phone(i)].status, "placed");
    }
    for i in 5..12 {
        assert_eq!(
            rows[&phone(i)].status,
            "pending",
            "contact {i} stays pending"
        );
    }
    assert_eq!(
        mock.stats().requests,
        6,
        "nothing new was sent after the halt"
    );

    // The fault is gone (the script's list is exhausted): the rerun continues.
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r.status == "placed"));
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "nobody was dialled twice"
    );
    assert!(stats.calls_per_callee.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_replies_and_a_rerun_finishes() {
    let mock = mock_with(20, 500, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(80));
    let child = s.spawn();
    wait_for_requests(&mock, "requests to arrive", 15).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code_of(&out), 130, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 80);
    assert!(
        rows.iter().all(|r| r.status != "unknown"),
        "every reply in flight was waited for"
    );
    assert!(rows.iter().any(|r| r.status == "pending"));
    let placed_before = rows.iter().filter(|r| r.status == "placed").count() as u64;
    assert_eq!(
        placed_before,
        mock.stats().accepted,
        "every call created is recorded as placed"
    );

    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(s.results().iter().all(|r| r.status == "placed"));
    assert!(mock.stats().duplicate_callees.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_skipped_with_their_line_numbers_and_the_rest_is_dialled() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(
        "callee,id,ai_agent_id\n+8613800000001,a,\nnot-a-number,b,\n\n+8613800000001,c,\n+8613800000002,d,-4\n+8613800000003,e,\n",
    );
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("line 3: skipped: callee \"not-a-number\""),
        "{err}"
    );
    assert!(
        err.contains("line 5: skipped: duplicate of line 2"),
        "{err}"
    );
    assert!(
        err.contains("line 6: skipped: ai_agent_id: \"-4\" is not a positive integer"),
        "{err}"
    );
    let rows = s.results();
    let status: Vec<(u64, &str)> = rows.iter().map(|r| (r.line, r.status.as_str())).collect();
    assert_eq!(
        status,
        vec![
            (2, "placed"),
            (3, "skipped"),
            (5, "skipped"),
            (6, "skipped"),
            (7, "placed")
        ]
    );
    assert_eq!(mock.stats().requests, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_or_headerless_contacts_exit_2() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts("");
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 2);
    assert!(
        stderr_of(&out).contains("the contacts file is empty"),
        "{}",
        stderr_of(&out)
    );

    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts("phone\n+8613800000001\n");
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 2);
    assert!(
        stderr_of(&out).contains("no `callee` column"),
        "{}",
        stderr_of(&out)
    );

    let s = Scratch::new(&mock.endpoint(), "", "");
    let out = run_async(&s).await; // contacts file never written
    assert_eq!(code_of(&out), 2);
    assert!(
        stderr_of(&out).contains("contacts.csv"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_contacts_file_against_the_same_state_is_refused() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    assert_eq!(code_of(&run_async(&s).await), 0);
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 2);
    assert!(
        stderr_of(&out).contains("different contacts file"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(mock.stats().requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_sends_nothing_and_writes_no_state() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts("callee\n+8613800000001\nbad\n+8613800000002\n");
    let out = s.run_command().arg("--dry-run").output().unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 contacts would be dialled, 1 skipped"),
        "{stdout}"
    );
    assert!(stderr_of(&out).contains("line 3: skipped"));
    assert_eq!(mock.stats().requests, 0);
    assert!(!s.state.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_export_read_the_store() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"error:FailedOperation.CalleeIsLimited\"]\n",
        phone(1)
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    assert_eq!(code_of(&run_async(&s).await), 0);
    let out = Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("placed     2"), "{text}");
    assert!(text.contains("failed     1"), "{text}");
    assert!(text.contains("FailedOperation.CalleeIsLimited"), "{text}");

    let exported = s.dir.path().join("again.csv");
    let out = Command::new(bin())
        .args(["export", "--state"])
        .arg(&s.state)
        .arg("--results")
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0);
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&s.results).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_stop_signal_stops_waiting_and_reports_the_outstanding_replies_unknown() {
    use std::io::{BufRead, BufReader};
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"hang:120s\"]\n",
    )
    .await;
    let s = Scratch::new(&mock.endpoint(), "", "[run]\ngrace_period = \"120s\"\n");
    s.write_contacts(&contacts_csv(10));
    let mut child = s.spawn();
    wait_for_requests(&mock, "requests to hang", 3).await;
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        // Send the second signal once the first has been taken (signals can coalesce).
        for line in lines.by_ref() {
            if line.unwrap().contains("stop requested") {
                break;
            }
        }
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (child.wait().unwrap(), rest.join("\n"))
    })
    .await
    .unwrap();
    assert_eq!(out.0.code(), Some(130), "{}", out.1);
    let rows = s.results();
    assert_eq!(rows.len(), 10);
    let unknown: Vec<_> = rows.iter().filter(|r| r.status == "unknown").collect();
    assert!(unknown.len() >= 3, "{rows:?}");
    for r in &unknown {
        assert!(
            r.error_message.contains("stopped before the reply arrived"),
            "not a timeout: the dialer stopped waiting: {r:?}"
        );
    }
    assert!(rows
        .iter()
        .all(|r| r.status == "unknown" || r.status == "pending"));
}
