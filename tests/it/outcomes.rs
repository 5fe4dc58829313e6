//! Call outcomes through the stand-in: `run` with `[outcomes]` enabled waits for every placed
//! call's record, classes it by the documented table (an unknown end code kept raw), resolves a
//! lost reply from the call records (`placed` with the right SessionId, or `not_placed`), and a
//! `run` killed with SIGKILL while records arrive loses none of them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ccc_dialer::contact::ResultRow;
use ccc_dialer::mock::{ManualClock, MockOptions, MockServer};
use ccc_dialer::store::Store;

use crate::support::{code_of, outcome_options, output_within, stderr_of, Scratch};

/// `[outcomes]` for tests: ask at once, again every second.
const FAST: &str = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\n";

fn callee(i: usize) -> String {
    format!("0086138{:08}", i)
}

fn by_callee(rows: Vec<ResultRow>) -> HashMap<String, ResultRow> {
    rows.into_iter().map(|r| (r.callee.clone(), r)).collect()
}

async fn mock(faults: &str) -> MockServer {
    MockServer::spawn(MockOptions {
        ..outcome_options(faults)
    })
    .await
    .expect("stand-in starts")
}

fn scratch(mock: &MockServer, contacts: usize, extra: &str) -> Scratch {
    let s = Scratch::new(&mock.endpoint(), "", &format!("{FAST}\n{extra}"));
    let mut csv = String::from("callee\n");
    for i in 0..contacts {
        csv.push_str(&format!("+86138{:08}\n", i));
    }
    s.write_contacts(&csv);
    s
}

/// `run` to its exit, within the tests' deadline.
async fn run(s: &Scratch, extra_args: &[&str]) -> std::process::Output {
    let mut cmd = s.run_command();
    cmd.args(extra_args);
    output_within(cmd, "ccc-dialer run to exit").await
}

#[tokio::test]
async fn every_scripted_outcome_ends_in_its_documented_class_and_unknown_codes_stay_raw() {
    // (script, class, EndStatus)
    let scripts: &[(&str, &str, &str)] = &[
        ("answered:2s", "answered", "1"),
        ("answered:1s:229", "answered", "229"),
        ("not_answered", "not_answered", "202"),
        ("rejected", "rejected", "203"),
        ("power_off", "unreachable", "204"),
        ("dead", "invalid_number", "205"),
        ("busy", "busy", "206"),
        ("voicemail", "voicemail", "222"),
        ("end:212", "blocked", "212"),
        ("end:109", "throttled", "109"),
        ("end:220", "not_answered", "220"),
        ("end:234:mysteryCode", "other", "234"),
    ];
    let mut faults = String::new();
    for (i, (script, _, _)) in scripts.iter().enumerate() {
        faults.push_str(&format!(
            "[[rule]]\ncallee = \"{}\"\ncalls = [\"{script}\"]\n",
            callee(i)
        ));
    }
    let mock = mock(&faults).await;
    let s = scratch(&mock, scripts.len(), "");
    let out = run(&s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    let rows = by_callee(s.results());
    for (i, (script, class, code)) in scripts.iter().enumerate() {
        let r = &rows[&callee(i)];
        assert_eq!(r.status, "placed", "{script}");
        assert_eq!(
            (r.outcome.as_str(), r.end_status.as_str()),
            (*class, *code),
            "{script}: {r:?}"
        );
        // The session is the stand-in's.
        let call = mock.call(&r.session_id).expect("the stand-in created it");
        assert_eq!(call.end_status.to_string(), *code);
    }
    let answered = &rows[&callee(0)];
    assert_eq!(answered.duration_s, "2");
    assert!(!answered.answered_at.is_empty() && !answered.ended_at.is_empty());
    assert_eq!(rows[&callee(11)].end_status_string, "mysteryCode");
    assert!(rows[&callee(2)].answered_at.is_empty());
    // One warning names the unknown code.
    let warned = err
        .lines()
        .filter(|l| l.contains("end code the outcome table does not know"))
        .collect::<Vec<_>>();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("234"), "{}", warned[0]);
    // Neither action's window went over 20; the queries asked in batches.
    let stats = mock.stats();
    assert_eq!(stats.windows_over_limit, 0);
    let cdr = &stats.actions["DescribeTelCdr"];
    assert_eq!(cdr.windows_over_limit, 0);
    assert!(cdr.requests >= 1);
    // `status` counts by outcome with the answer rate (2 of 12 contacts' ended calls answered).
    let status = std::process::Command::new(crate::support::bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("contacts by their latest call's outcome:"),
        "{text}"
    );
    assert!(
        text.contains("answer rate: 16.7% (2 answered of 12 contacts whose latest call ended)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_lost_reply_becomes_placed_with_its_session_or_not_placed_when_no_call_exists() {
    // Callee 0: the call is created and answered, the reply is lost. Callee 1: the reply is an
    // HTML 502 (in doubt) and no call was created. Callee 2: an ordinary call.
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"drop\"]\ncalls = [\"answered:1s\"]\n\
         [[rule]]\ncallee = \"{}\"\noutcomes = [\"http:502\"]\n",
        callee(0),
        callee(1)
    );
    let mock = mock(&faults).await;
    // No per-person gap: a not_placed contact's dial still counts for min_gap (the default
    // 1 h would hold the redial below; outcomes_store checks that hold).
    let s = scratch(&mock, 3, "[calling]\nmin_gap = \"0s\"\n");
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    let created: Vec<_> = mock
        .calls()
        .into_iter()
        .filter(|c| c.callee == callee(0))
        .collect();
    assert_eq!(created.len(), 1);
    let r = &rows[&callee(0)];
    assert_eq!(r.status, "placed", "{r:?}");
    assert_eq!(r.session_id, created[0].session_id, "the right SessionId");
    assert_eq!(r.outcome, "answered");
    assert!(r.error_message.contains("reconciled"), "{r:?}");
    let r = &rows[&callee(1)];
    assert_eq!(
        (r.status.as_str(), r.error_code.as_str()),
        ("not_placed", "NoCallRecord"),
        "{r:?}"
    );
    assert!(mock.calls().iter().all(|c| c.callee != callee(1)));
    assert_eq!(rows[&callee(2)].outcome, "answered");
    // A rerun leaves not_placed alone…
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(by_callee(s.results())[&callee(1)].status, "not_placed");
    assert!(mock.calls().iter().all(|c| c.callee != callee(1)));
    // …and dials it again when asked.
    let out = run(&s, &["--redial-not-placed"]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let r = &by_callee(s.results())[&callee(1)];
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str()),
        ("placed", "answered"),
        "{r:?}"
    );
    assert_eq!(
        mock.calls()
            .iter()
            .filter(|c| c.callee == callee(0))
            .count(),
        1,
        "callee 0 not called again"
    );
}

#[tokio::test]
async fn a_run_killed_while_records_arrive_loses_none_and_counts_none_twice() {
    let mock = mock("").await;
    let s = scratch(&mock, 40, "");
    let mut child = s.spawn();
    // Kill the run the moment its first DescribeTelCdr request reached the stand-in: its reply
    // (records of the calls already ended) is arriving or being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.action_requests("DescribeTelCdr") == 0 {
        assert!(Instant::now() < deadline, "no DescribeTelCdr request");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 40);
    let mut sessions = BTreeMap::new();
    for r in &rows {
        assert_eq!(
            (r.status.as_str(), r.outcome.as_str()),
            ("placed", "answered"),
            "{r:?}"
        );
        *sessions.entry(r.session_id.clone()).or_insert(0) += 1;
    }
    assert_eq!(sessions.len(), 40);
    // One outcome row per session in the store, and no check left.
    let store = Store::open(&s.state).unwrap();
    let campaign = store.find_campaign("run").await.unwrap().unwrap();
    let c = store.outcome_counts(campaign.id).await.unwrap();
    assert_eq!(c.by_class.get("answered"), Some(&40));
    assert_eq!((c.awaiting, c.reconciling), (0, 0));
    assert!(store
        .due_sessions(i64::MAX / 2, 0, 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_call_with_no_record_is_given_up_after_give_up_after() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"no_record\"]\n",
        callee(0)
    );
    let mock = mock(&faults).await;
    let s = scratch(&mock, 2, "");
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    assert_eq!(rows[&callee(0)].outcome, "no_record");
    assert_eq!(rows[&callee(0)].status, "placed");
    assert_eq!(rows[&callee(1)].outcome, "answered");
}

/// DescribeTelCdr failing for longer than `give_up_after` (an InternalError every time): `run`
/// still ends, the placed call with `no_record` and the lost reply `unknown` with the reason
/// (nothing was read, so nothing is proved), instead of waiting for ever.
#[tokio::test]
async fn queries_failing_past_the_deadlines_end_the_wait_with_no_record_and_unknown() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"drop\"]\n\
         [[action]]\nname = \"DescribeTelCdr\"\noutcomes = [{}]\n",
        callee(1),
        vec!["\"error:InternalError\""; 200].join(", ")
    );
    let mock = mock(&faults).await;
    let config = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"10s\"\nreconcile_after = \"10s\"\n";
    let s = Scratch::new(&mock.endpoint(), "", config);
    s.write_contacts(&format!("callee\n+86138{:08}\n+86138{:08}\n", 0, 1));
    let child = s
        .run_command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ccc-dialer");
    let pid = child.id().to_string();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().expect("output"));
    // A guard against a hang (the bug this test is for), not a timing assertion.
    let out = match tokio::time::timeout(Duration::from_secs(120), waiting).await {
        Ok(out) => out.expect("join"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            panic!("run still waiting 120 s after the start with every query failing");
        }
    };
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    let r = &rows[&callee(0)];
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str()),
        ("placed", "no_record"),
        "{r:?}"
    );
    let r = &rows[&callee(1)];
    assert_eq!(r.status, "unknown", "{r:?}");
    assert!(r.error_message.contains("could not be read"), "{r:?}");
    assert!(mock.action_requests("DescribeTelCdr") >= 2);
}

/// An InternalError may come after the service created the call. With outcome tracking on, the
/// retry waits until the call records were consulted: callee 0's call exists (created, then
/// the InternalError) and the contact becomes `placed` with that session, never called again;
/// callee 1's request created nothing, so its retry goes once `reconcile_after` proved it.
/// Without the look-up (min_gap 0 s here) callee 0 would be called twice.
#[tokio::test]
async fn a_retry_after_an_internal_error_looks_for_the_call_first_and_never_calls_twice() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"created:error:InternalError\"]\ncalls = [\"answered:1s\"]\n\
         [[rule]]\ncallee = \"{}\"\noutcomes = [\"error:InternalError\"]\n",
        callee(0),
        callee(1)
    );
    let mock = mock(&faults).await;
    let s = scratch(
        &mock,
        3,
        "[calling]\nmin_gap = \"0s\"\n[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    let out = run(&s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    let rows = by_callee(s.results());
    let created = |c: &str| {
        mock.calls()
            .into_iter()
            .filter(|k| k.callee == c)
            .collect::<Vec<_>>()
    };
    let calls0 = created(&callee(0));
    assert_eq!(calls0.len(), 1, "callee 0 was called twice");
    let r = &rows[&callee(0)];
    assert_eq!(
        (r.status.as_str(), r.session_id.as_str(), r.outcome.as_str()),
        ("placed", calls0[0].session_id.as_str(), "answered"),
        "{r:?}"
    );
    assert!(r.error_message.contains("internal error"), "{r:?}");
    // Callee 1: no call from the failed try; the retry went and was answered.
    let calls1 = created(&callee(1));
    assert_eq!(calls1.len(), 1);
    let r = &rows[&callee(1)];
    assert_eq!(
        (r.status.as_str(), r.session_id.as_str(), r.outcome.as_str()),
        ("placed", calls1[0].session_id.as_str(), "answered"),
        "{r:?}"
    );
    assert_eq!(r.attempts, 2, "{r:?}");
    assert_eq!(rows[&callee(2)].outcome, "answered");
}

#[tokio::test]
async fn the_outcomes_command_fetches_later_and_says_by_its_exit_code_whether_all_are_known() {
    // Records appear 60 s after each call ends, on the stand-in's clock (driven by hand: it
    // stays within the 300 s a signature may be off).
    let clock = ManualClock::at(ccc_dialer::times::now_secs());
    let mock = MockServer::spawn(MockOptions {
        cdr_delay: Duration::from_secs(60),
        clock: clock.clock(),
        ..outcome_options("")
    })
    .await
    .unwrap();
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[outcomes]\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\n",
    );
    s.write_contacts("callee\n+8613800000000\n+8613800000001\n");
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(
        mock.action_requests("DescribeTelCdr"),
        0,
        "[outcomes] is off: run does not ask"
    );
    assert!(s.results().iter().all(|r| r.outcome.is_empty()));
    let outcomes = || {
        let mut cmd = std::process::Command::new(crate::support::bin());
        cmd.args(["outcomes", "--config"])
            .arg(&s.config)
            .arg("--state")
            .arg(&s.state)
            .arg("--results")
            .arg(&s.results)
            .env("TENCENTCLOUD_SECRET_ID", crate::support::SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", crate::support::SECRET_KEY);
        cmd
    };
    let cmd = outcomes();
    let out = crate::support::output_within(cmd, "ccc-dialer outcomes to exit").await;
    assert_eq!(code_of(&out), 4, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("2 calls have no outcome yet"),
        "{}",
        stderr_of(&out)
    );
    assert!(mock.action_requests("DescribeTelCdr") >= 1);
    // The records become visible (the stand-in's clock moves on): now everything is known.
    clock.advance(61);
    let cmd = outcomes();
    let out = crate::support::output_within(cmd, "ccc-dialer outcomes to exit").await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(s.results().iter().all(|r| r.outcome == "answered"));
}

#[tokio::test]
async fn an_auth_failure_on_the_query_stops_outcome_tracking_but_not_dialling() {
    let faults = "[[action]]\nname = \"DescribeTelCdr\"\noutcomes = [\"error:AuthFailure.UnauthorizedOperation\"]\n";
    let mock = mock(faults).await;
    let s = scratch(&mock, 30, "");
    let out = run(&s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 3, "{err}");
    assert!(
        err.contains(
            "outcome tracking stopped: DescribeTelCdr answered AuthFailure.UnauthorizedOperation"
        ),
        "{err}"
    );
    // Every contact was dialled and placed all the same.
    let rows = s.results();
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r.status == "placed"), "{rows:?}");
    assert_eq!(mock.calls().len(), 30);
    // Tracking stopped at the first refusal: no query after it.
    assert_eq!(mock.action_requests("DescribeTelCdr"), 1);
    // After the fix, `outcomes` fetches them.
    let mut cmd = std::process::Command::new(crate::support::bin());
    cmd.args(["outcomes", "--config"])
        .arg(&s.config)
        .arg("--state")
        .arg(&s.state)
        .env("TENCENTCLOUD_SECRET_ID", crate::support::SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", crate::support::SECRET_KEY);
    let out = crate::support::output_within(cmd, "ccc-dialer outcomes to exit").await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
}

#[tokio::test]
async fn throttled_and_failing_queries_are_asked_again_and_every_outcome_arrives() {
    let faults = "[[action]]\nname = \"DescribeTelCdr\"\noutcomes = [\"error:RequestLimitExceeded\", \"error:InternalError\", \"http:502\"]\n";
    let mock = mock(faults).await;
    let s = scratch(&mock, 10, "");
    let out = run(&s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    assert!(s.results().iter().all(|r| r.outcome == "answered"));
    assert!(err.contains("DescribeTelCdr throttled"), "{err}");
    assert!(mock.action_requests("DescribeTelCdr") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tracks_outcomes_per_campaign_per_contact_and_in_metrics() {
    use crate::served::{csv_of, normalised, Served};
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"busy\"]\n[[rule]]\ncallee = \"{}\"\ncalls = [\"answered:1s\"]\n",
        normalised(5, 0),
        normalised(5, 1)
    );
    let mock = mock(&faults).await;
    let s = crate::served::scratch(&mock, FAST);
    let srv = Served::start(&s).await;
    let id = srv.create("outcomes", &csv_of(5, 6)).await;
    let c = srv
        .wait_campaign(id, "every outcome known", |c| {
            c["state"] == "completed"
                && c["outcomes"]["awaiting"] == 0
                && c["counts"]["placed"] == 6
        })
        .await;
    let by = &c["outcomes"]["by_outcome"];
    assert_eq!(
        (by["answered"].as_u64(), by["busy"].as_u64()),
        (Some(5), Some(1)),
        "{c}"
    );
    assert_eq!(by["no_record"], 0);
    assert_eq!(c["outcomes"]["answer_rate"].as_f64(), Some(0.8333));
    // The contact lists its session with the outcome.
    let (status, contact) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/{}", normalised(5, 1)))
        .await;
    assert_eq!(status, 200, "{contact}");
    let session = &contact["sessions"][0];
    assert_eq!(session["session_id"], contact["session_id"]);
    assert_eq!(session["outcome"]["outcome"], "answered");
    assert_eq!(session["outcome"]["duration_s"], 1);
    assert_eq!(session["outcome"]["source"], "poll");
    // /metrics counts outcomes by class and the talk time of answered calls.
    let text = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("ccc_dialer_call_outcomes{outcome=\"answered\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("ccc_dialer_call_outcomes{outcome=\"busy\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ccc_dialer_talk_time_seconds_count 5"),
        "{text}"
    );
}
