//! Redial by outcome, end to end against the stand-in's scripted calls: a not-answered call is
//! dialled again and ends answered, a busy number gets `max_dials` calls and ends busy, the
//! campaign's end expires a pending redial, a number put on the do-not-call list between two
//! calls is not called again, the per-person gap across two campaigns holds a redial, and
//! kill -9 at any point never creates a call beyond the policy; a "callback = yes" post-call tag
//! (`[[redial.on_tag]]`) redials an answered call within `max_dials`, and kill -9 between the
//! tag and its redial creates no extra call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ccc_dialer::contact::ResultRow;
use ccc_dialer::mock::{MockOptions, MockServer};
use ccc_dialer::store::Store;
use serde_json::Value;

use crate::served::{self, Served};
use crate::support::{
    bin, code_of, outcome_options, output_within, read_command, stderr_of, Scratch,
};

/// `[outcomes]` asking at once and every second, no per-person gap (unless a test sets one).
pub(crate) const FAST: &str = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\n";

pub(crate) fn callee(i: usize) -> String {
    format!("0086138{:08}", 7_000 + i)
}

/// `[[rule]]`s giving each callee its calls, in order.
pub(crate) fn scripts(calls: &[(usize, &[&str])]) -> String {
    calls
        .iter()
        .map(|(i, c)| {
            let list: Vec<String> = c.iter().map(|s| format!("\"{s}\"")).collect();
            format!(
                "[[rule]]\ncallee = \"{}\"\ncalls = [{}]\n",
                callee(*i),
                list.join(", ")
            )
        })
        .collect()
}

pub(crate) async fn mock(faults: &str) -> MockServer {
    MockServer::spawn(MockOptions {
        ..outcome_options(faults)
    })
    .await
    .expect("stand-in starts")
}

pub(crate) fn scratch(mock: &MockServer, contacts: usize, extra: &str) -> Scratch {
    let s = Scratch::new(&mock.endpoint(), "", &format!("{FAST}\n{extra}"));
    let mut csv = String::from("callee\n");
    for i in 0..contacts {
        csv.push_str(&format!("+86138{:08}\n", 7_000 + i));
    }
    s.write_contacts(&csv);
    s
}

/// `run` to its exit, within the tests' deadline.
pub(crate) async fn run(s: &Scratch, extra_args: &[&str]) -> std::process::Output {
    let mut cmd = s.run_command();
    cmd.args(extra_args);
    output_within(cmd, "ccc-dialer run to exit").await
}

/// Start the run again and again, killing it (SIGKILL) once `progress` has grown by each step
/// (polled every `poll_ms`, with a deadline); stops early when a run finishes by itself.
/// Asserts at least one kill happened.
async fn kill_9_at_steps(s: &Scratch, steps: &[u64], progress: impl Fn() -> u64, poll_ms: u64) {
    let mut kills = 0;
    for &step in steps {
        let mut child = s.spawn();
        let base = progress();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut finished = false;
        while progress() < base + step {
            if child.try_wait().expect("try_wait").is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(poll_ms)).await;
        }
        if finished {
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
    }
    assert!(kills > 0, "the run was never killed");
}

/// Run to the end (with `--redial-not-placed`, at most four times) until every row is placed.
async fn run_to_the_end(s: &Scratch) {
    for _ in 0..4 {
        let out = run(s, &["--redial-not-placed"]).await;
        assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
        if s.results().iter().all(|r| r.status == "placed") {
            break;
        }
    }
}

pub(crate) fn by_callee(rows: Vec<ResultRow>) -> HashMap<String, ResultRow> {
    rows.into_iter().map(|r| (r.callee.clone(), r)).collect()
}

pub(crate) fn created(mock: &MockServer, i: usize) -> u32 {
    mock.stats()
        .calls_per_callee
        .get(&callee(i))
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn calls_not_reached_are_redialled_by_outcome_until_answered_or_max_dials() {
    // 0: not answered, then answered. 1: busy every time. 2: rejected (not in `on`).
    // 3: answered at once. 4: unreachable (210, in `on` by its end code), then answered.
    let faults = scripts(&[
        (0, &["not_answered", "answered:1s"]),
        (1, &["busy", "busy", "busy", "busy"]),
        (2, &["rejected", "answered:1s"]),
        (3, &["answered:1s"]),
        (4, &["end:210", "answered:1s"]),
    ]);
    let mock = mock(&faults).await;
    let s = scratch(
        &mock,
        5,
        "[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"not_answered\", \"busy\", \"210\"]\nmax_dials = 3\nafter = \"1s\"\n",
    );
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    let want: [(&str, u32); 5] = [
        ("answered", 2),
        ("busy", 3),
        ("rejected", 1),
        ("answered", 1),
        ("answered", 2),
    ];
    for (i, (outcome, dials)) in want.iter().enumerate() {
        let r = &rows[&callee(i)];
        assert_eq!(
            (r.status.as_str(), r.outcome.as_str(), r.dials),
            ("placed", *outcome, *dials),
            "callee {i}: {r:?}"
        );
        assert!(!r.first_dialled_at.is_empty(), "{r:?}");
        assert_eq!(created(&mock, i), *dials, "calls created for callee {i}");
    }
    // The final row is the last call's: its session is the last one created.
    let last = mock
        .calls()
        .into_iter()
        .rfind(|c| c.callee == callee(0))
        .expect("a call");
    assert_eq!(rows[&callee(0)].session_id, last.session_id);
    // Campaign counts: reached 3 (0, 3, 4), not reached after all dials 2 (1, 2).
    let store = Store::open_read_only(&s.state, false).unwrap();
    let campaign = store.find_campaign("run").await.unwrap().unwrap();
    let c = store.outcome_counts(campaign.id).await.unwrap();
    assert_eq!((c.reached, c.not_reached, c.redials_pending), (3, 2, 0));
    // The answer rate by dial: 1st 1/5, 2nd 2/3 (0, 4 answered; 1 busy), 3rd 0/1.
    let (by_dial, _) = store.outcomes_by_dial(campaign.id).await.unwrap();
    assert_eq!(by_dial, vec![(1, 5, 5, 1), (2, 3, 3, 2), (3, 1, 1, 0)]);
    let text = stderr_of(&out);
    assert!(
        text.contains("reached 3, not reached after all dials 2"),
        "{text}"
    );
    // 9 calls to 5 contacts: the summary and `status` count contacts, by their latest call
    // (3 of 5 answered), and say so; `report`'s by-dial table counts every call.
    assert!(
        text.contains("contacts' latest calls ended: 5 / 5 placed"),
        "{text}"
    );
    let status = read_command("status", &s.state, &[]);
    assert!(
        status.contains("answer rate: 60.0% (3 answered of 5 contacts whose latest call ended)"),
        "{status}"
    );
    let report = read_command("report", &s.state, &[]);
    assert!(
        report.contains("answer rate 60.0% (contacts, by their latest call)"),
        "{report}"
    );
    // `status --callee` lists every session with its outcome.
    let out = std::process::Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .args(["--callee", &callee(0)])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("dials: 2"), "{text}");
    let not_answered = text.find("outcome not_answered").expect(&text);
    let answered = text.find("outcome answered").expect(&text);
    assert!(not_answered < answered, "oldest first: {text}");
}

#[tokio::test]
async fn the_campaigns_end_expires_a_pending_redial() {
    let faults = scripts(&[(0, &["not_answered", "answered:1s"]), (1, &["answered:1s"])]);
    let mock = mock(&faults).await;
    // The redial would be due in an hour; the campaign ends in 15 s.
    let end = ccc_dialer::times::rfc3339_seconds(ccc_dialer::times::now_ms() + 15_000);
    let s = scratch(
        &mock,
        2,
        &format!(
            "[calling]\nmin_gap = \"0s\"\nnot_after = \"{end}\"\n[redial]\non = [\"not_answered\"]\nafter = \"1h\"\n"
        ),
    );
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    let r = &rows[&callee(0)];
    assert_eq!(
        (
            r.status.as_str(),
            r.error_code.as_str(),
            r.outcome.as_str(),
            r.dials
        ),
        ("expired", "NotAfter", "not_answered", 1),
        "{r:?}"
    );
    assert_eq!(created(&mock, 0), 1);
    assert_eq!(rows[&callee(1)].outcome, "answered");
}

/// Poll one contact of a served campaign until `pred` holds (bounded).
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_put_on_the_do_not_call_list_between_calls_is_not_redialled() {
    let faults = scripts(&[(0, &["not_answered", "answered:1s"])]);
    let mock = mock(&faults).await;
    let dnc = tempfile::tempdir().unwrap();
    let dnc_file = dnc.path().join("dnc.txt");
    std::fs::write(&dnc_file, "# opted out\n").unwrap();
    let s = served::scratch(
        &mock,
        &format!(
            "{FAST}\n[calling]\nmin_gap = \"0s\"\ndnc_files = [\"{}\"]\n[redial]\non = [\"not_answered\"]\nafter = \"10s\"\n",
            dnc_file.display()
        ),
    );
    let srv = Served::start(&s).await;
    let id = srv
        .create("dnc-redial", &format!("callee\n+86138{:08}\n", 7_000))
        .await;
    // "Why not now": the redial wait, until when, and the outcome that caused it.
    let d = wait_contact(&srv, id, &callee(0), |d| d["gate"] == "redial_after").await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["waiting"]["gate"], "redial_after", "{d}");
    assert!(!d["waiting"]["until"].is_null(), "{d}");
    let reason = d["waiting"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("redial 2 of 3") && reason.contains("not_answered"),
        "{d}"
    );
    assert_eq!(d["dials"], 1, "{d}");
    let out = std::process::Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .args(["--callee", &callee(0)])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("waiting: redial_after until") && text.contains("not_answered"),
        "{text}"
    );
    // The person opts out before the redial is due.
    std::fs::write(&dnc_file, format!("{}\n", callee(0))).unwrap();
    let (status, r) = srv.post("/v1/dnc/reload", "").await;
    assert_eq!(status, 200, "{r}");
    let d = wait_contact(&srv, id, &callee(0), |d| d["status"] != "pending").await;
    assert_eq!(
        (&d["status"], &d["error_code"]),
        (&Value::from("skipped"), &Value::from("Dnc")),
        "{d}"
    );
    assert_eq!(d["sessions"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(created(&mock, 0), 1, "not called again");
    let c = srv
        .wait_campaign(id, "completion", |c| served::state(c) == "completed")
        .await;
    assert_eq!(c["outcomes"]["not_reached"], 1, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redial_waits_for_the_per_person_gap_after_a_call_from_another_campaign() {
    // Calls to the number, in order: campaign A's first (not answered), campaign B's, A's redial.
    let faults = scripts(&[(0, &["not_answered", "answered:1s", "answered:1s"])]);
    let mock = mock(&faults).await;
    let s = served::scratch(
        &mock,
        &format!(
            "{FAST}\n[calling]\nmin_gap = \"5s\"\n[redial]\non = [\"not_answered\"]\nmax_dials = 2\nafter = \"1s\"\n"
        ),
    );
    let srv = Served::start(&s).await;
    let csv = format!("callee\n+86138{:08}\n", 7_000);
    let a = srv.create("a", &csv).await;
    wait_contact(&srv, a, &callee(0), |d| d["dials"] == 1).await;
    // Hold A (its own gap keeps the redial for 5 s) while B calls the number.
    let (status, _) = srv.post(&format!("/v1/campaigns/{a}/pause"), "").await;
    assert_eq!(status, 200);
    let b = srv
        .create("b", &format!("callee,id\n+86138{:08},b\n", 7_000))
        .await;
    let db = wait_contact(&srv, b, &callee(0), |d| d["dials"] == 1).await;
    let (status, _) = srv.post(&format!("/v1/campaigns/{a}/resume"), "").await;
    assert_eq!(status, 200);
    let da = wait_contact(&srv, a, &callee(0), |d| d["dials"] == 2).await;
    // The contact view gives RFC 3339 times.
    let sent = |d: &Value, n: usize| {
        d["attempts"][n]["sent_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .expect("sent_at")
            .as_millisecond()
    };
    let (a1, b1, a2) = (sent(&da, 0), sent(&db, 0), sent(&da, 1));
    assert!(b1 - a1 >= 5_000, "B waited for the gap after A: {a1} {b1}");
    assert!(
        a2 - b1 >= 5_000,
        "A's redial waited for the gap after B's call: {b1} {a2}"
    );
    assert_eq!(created(&mock, 0), 3);
    srv.wait_campaign(a, "A's last outcome", |c| {
        c["outcomes"]["reached"] == 1 && served::state(c) == "completed"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_point_never_creates_a_call_beyond_the_redial_policy() {
    // Per callee: i % 3 == 0 not answered then answered (2 calls), 1 busy every time (3 calls,
    // max_dials), 2 answered at once (1 call).
    let n = 12;
    let plan: Vec<(usize, &[&str], u32)> = (0..n)
        .map(|i| match i % 3 {
            0 => (i, &["not_answered", "answered:1s"][..], 2),
            1 => (i, &["busy", "busy", "busy", "busy"][..], 3),
            _ => (i, &["answered:1s"][..], 1),
        })
        .collect();
    let faults = scripts(&plan.iter().map(|(i, c, _)| (*i, *c)).collect::<Vec<_>>());
    let mock = mock(&faults).await;
    let s = scratch(
        &mock,
        n,
        "[rate]\nrequests_per_second = 4\n[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"not_answered\", \"busy\"]\nmax_dials = 3\nafter = \"1s\"\n",
    );
    let progress =
        || mock.action_requests("CreateAIAgentCall") + mock.action_requests("DescribeTelCdr");
    // Kill the run after 1, 2, 3 or 5 more requests reached the stand-in: mid-request,
    // mid-record, between a record and the redial it schedules.
    kill_9_at_steps(&s, &[1, 3, 2, 5, 1, 2, 3, 1], progress, 2).await;
    // Contacts whose request never left (reconciled not_placed) are dialled again on request,
    // as an operator would.
    run_to_the_end(&s).await;
    let rows = by_callee(s.results());
    let store = Store::open_read_only(&s.state, false).unwrap();
    let campaign = store.find_campaign("run").await.unwrap().unwrap();
    for (i, _, dials) in &plan {
        let r = &rows[&callee(*i)];
        let detail = store
            .contact_detail(campaign.id, &callee(*i))
            .await
            .unwrap();
        assert_eq!(
            created(&mock, *i),
            *dials,
            "calls created for callee {i}: {r:?}\n{detail:#?}"
        );
        assert_eq!((r.status.as_str(), r.dials), ("placed", *dials), "{r:?}");
        let want = if i % 3 == 1 { "busy" } else { "answered" };
        assert_eq!(r.outcome, want, "{r:?}");
    }
}

/// `[outcomes]` as [`FAST`], reading post-call tags, with time to spare for a test killed and
/// run again (a tag check is dropped at `give_up_after`).
const TAGGED: &str = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"120s\"\nreconcile_after = \"10s\"\ntags = true\n";

/// `[[rule]]`s giving each callee its calls and, per call, its `callback` tag.
pub(crate) fn tag_scripts(plan: &[(usize, &[&str], &[bool])]) -> String {
    plan.iter()
        .map(|(i, calls, callbacks)| {
            let calls: Vec<String> = calls.iter().map(|s| format!("\"{s}\"")).collect();
            let tags: Vec<String> = callbacks
                .iter()
                .map(|b| format!("{{ callback = {b} }}"))
                .collect();
            format!(
                "[[rule]]\ncallee = \"{}\"\ncalls = [{}]\ntags = [{}]\n",
                callee(*i),
                calls.join(", "),
                tags.join(", ")
            )
        })
        .collect()
}

pub(crate) fn tagged_scratch(mock: &MockServer, contacts: usize, extra: &str) -> Scratch {
    let s = Scratch::new(&mock.endpoint(), "", &format!("{TAGGED}\n{extra}"));
    let mut csv = String::from("callee\n");
    for i in 0..contacts {
        csv.push_str(&format!("+86138{:08}\n", 7_000 + i));
    }
    s.write_contacts(&csv);
    s
}

#[tokio::test]
async fn a_callback_tag_redials_an_answered_call_within_max_dials() {
    // 0: answered "callback = yes", then answered without: 2 calls. 1: asks every time: 3
    // (max_dials). 2: answered without: 1. 3: not answered (not in `on`): 1. 4: busy (in `on`),
    // answered asking for a callback, answered without: 3, by outcome then by tag.
    let plan: [(usize, &[&str], &[bool], u32); 5] = [
        (0, &["answered:1s", "answered:1s"], &[true, false], 2),
        (1, &["answered:1s"; 4], &[true; 4], 3),
        (2, &["answered:1s"], &[false], 1),
        (3, &["not_answered", "answered:1s"], &[true, true], 1),
        (
            4,
            &["busy", "answered:1s", "answered:1s"],
            &[false, true, false],
            3,
        ),
    ];
    let faults = tag_scripts(
        &plan
            .iter()
            .map(|(i, c, t, _)| (*i, *c, *t))
            .collect::<Vec<_>>(),
    );
    let mock = mock(&faults).await;
    let s = tagged_scratch(
        &mock,
        plan.len(),
        "[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"busy\"]\nmax_dials = 3\nafter = \"1s\"\n\
         [[redial.on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"1s\"\n",
    );
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    for (i, _, _, dials) in &plan {
        let r = &rows[&callee(*i)];
        let want = if *i == 3 { "not_answered" } else { "answered" };
        assert_eq!(
            (r.status.as_str(), r.outcome.as_str(), r.dials),
            ("placed", want, *dials),
            "callee {i}: {r:?}"
        );
        assert_eq!(created(&mock, *i), *dials, "calls created for callee {i}");
    }
    // The final row carries the last call's tags.
    let (_, table) = crate::tags::table(&s.results);
    assert_eq!(table[&callee(0)]["tag:callback"], "false");
    assert_eq!(table[&callee(1)]["tag:callback"], "true");
    let store = Store::open_read_only(&s.state, false).unwrap();
    let campaign = store.find_campaign("run").await.unwrap().unwrap();
    let c = store.outcome_counts(campaign.id).await.unwrap();
    assert_eq!((c.reached, c.not_reached, c.redials_pending), (4, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_a_callback_tag_and_its_redial_creates_no_extra_call() {
    // Per callee: i % 3 == 0 asks once (2 calls), 1 asks every time (3 calls, max_dials), 2
    // never asks (1 call).
    let n = 12;
    let plan: Vec<(usize, &[&str], &[bool], u32)> = (0..n)
        .map(|i| match i % 3 {
            0 => (
                i,
                &["answered:0s", "answered:0s"][..],
                &[true, false][..],
                2,
            ),
            1 => (i, &["answered:0s"; 4][..], &[true; 4][..], 3),
            _ => (i, &["answered:0s"][..], &[false][..], 1),
        })
        .collect();
    let faults = tag_scripts(
        &plan
            .iter()
            .map(|(i, c, t, _)| (*i, *c, *t))
            .collect::<Vec<_>>(),
    );
    let mock = mock(&faults).await;
    let s = tagged_scratch(
        &mock,
        n,
        "[rate]\nrequests_per_second = 4\n[calling]\nmin_gap = \"0s\"\n[redial]\nmax_dials = 3\n\
         [[redial.on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"1s\"\n",
    );
    let tag_requests = || mock.action_requests("DescribeAICallExtractResult");
    // Kill the run the moment 1, 2 or 3 more tag requests reached the stand-in: their answers
    // are arriving, being written, or their redials being scheduled.
    kill_9_at_steps(&s, &[1, 2, 1, 3, 1, 2, 1, 1], tag_requests, 1).await;
    run_to_the_end(&s).await;
    let rows = by_callee(s.results());
    let store = Store::open_read_only(&s.state, false).unwrap();
    let campaign = store.find_campaign("run").await.unwrap().unwrap();
    for (i, _, _, dials) in &plan {
        let r = &rows[&callee(*i)];
        let detail = store
            .contact_detail(campaign.id, &callee(*i))
            .await
            .unwrap();
        assert_eq!(
            created(&mock, *i),
            *dials,
            "calls created for callee {i}: {r:?}\n{detail:#?}"
        );
        assert_eq!(
            (r.status.as_str(), r.outcome.as_str(), r.dials),
            ("placed", "answered", *dials),
            "{r:?}"
        );
    }
}
