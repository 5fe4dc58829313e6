//! Pacing by the AI agent's lines, against a stand-in agent whose calls hold its lines: the
//! capacity codes use no attempt and fail no contact; configured lines are never overrun while
//! the calls last; two campaigns on one agent share its lines, another agent has its own.

use std::time::{Duration, Instant};

use ccc_dialer::mock::{CallLength, Length, MockOptions, MockServer};
use serde_json::Value;

use crate::served::*;
use crate::support::*;

/// A stand-in whose agents take `lines` calls at once, each lasting an hour (longer than any
/// test), so a line never frees while a test looks.
async fn agent_with_lines(lines: u32) -> MockServer {
    MockServer::spawn(MockOptions {
        agent_lines: lines,
        call_length: CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::Fixed(Duration::from_secs(3600)),
        },
        ..mock_options()
    })
    .await
    .expect("stand-in starts")
}

/// Poll `f` until it returns `Some` (bounded; a condition, not a sleep).
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_of(s: &Scratch) -> String {
    let out = std::process::Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .output()
        .expect("status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_capacity_code_uses_no_attempt_and_fails_no_contact() {
    let codes = [
        "FailedOperation.AcquireQuota",
        "LimitExceeded.OutOfQuotaMaxCount",
        "FailedOperation.AIConcurrentOverFrequency",
    ];
    let mut faults = String::new();
    for (i, code) in codes.iter().enumerate() {
        // Refused five times: more than every attempt and reschedule the campaign has.
        faults.push_str(&format!(
            "[[rule]]\ncallee = \"{}\"\noutcomes = [{}\"ok\"]\n",
            phone(i),
            format!("\"error:{code}\", ").repeat(5)
        ));
    }
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        // Lines known and plenty: the refusals here are the script's, not a full agent.
        "agent_lines = 100",
        "[retry]\nmax_attempts = 2\nmax_reschedules = 1\n",
    );
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(
            (r.status.as_str(), r.attempts),
            ("placed", 1),
            "capacity used no attempt and failed nothing: {r:?}"
        );
    }
    let stats = mock.stats();
    for i in 0..3 {
        assert_eq!(stats.requests_by_callee[&phone(i)], 6, "{i}");
    }
    for code in codes {
        assert_eq!(stats.errors_by_code[code], 5, "{code}");
    }
}

/// When the status says the contacts waiting for a line are due ("next: agent_lines_busy until
/// 2026-11-29 13:40:00 UTC (…local time…)"), in seconds from now.
fn next_try_in(status: &str) -> Option<i64> {
    let key = "next: agent_lines_busy until ";
    let at = status.find(key)? + key.len();
    // "2026-11-29 13:40:00 UTC", then perhaps the local time in brackets.
    let until =
        jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", status[at..].split(" UTC").next()?)
            .ok()?
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp();
    Some(until.as_second() - jiff::Timestamp::now().as_second())
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_lines_are_never_overrun_while_their_calls_last() {
    // Calls of an hour, and an estimate saved by an earlier run that learned calls of about an
    // hour: the three calls fill the three lines and nothing more may leave while they last.
    let mock = agent_with_lines(3).await;
    let s = Scratch::new(&mock.endpoint(), "agent_lines = 3", "");
    {
        let store = ccc_dialer::store::Store::open(&s.state).expect("store");
        let saved = ccc_dialer::lines::Saved {
            agent: 15,
            learned: None,
            hold_seconds: 3600.0,
        };
        store.save_agent_lines(saved, 1).await.expect("save");
    }
    s.write_contacts(&contacts_csv(10));
    let mut child = s.spawn();
    // Three calls placed, the seven others waiting for a line, visibly, and (once the three
    // answers are in) told to wait until the estimate believes a line free: for the rest of
    // the calls' likely life (over half an hour: the old probe went after hold ÷ lines, 20
    // minutes here, while every line was believed busy).
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = status_of(&s);
        if mock.stats().accepted == 3
            && text.contains("agent_lines_busy 7")
            && next_try_in(&text).is_some_and(|secs| secs > 30 * 60)
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for 3 calls and 7 contacts waiting a long while for a line: {:?}\n{last}",
            mock.stats()
        );
        last = text;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("pending"), "{text}");
    let stats = mock.stats();
    assert_eq!(stats.accepted, 3);
    assert_eq!(
        stats.requests, 3,
        "nothing more may be sent while the three calls hold the lines"
    );
    assert_eq!(mock.lines().refused, 0, "no request refused for capacity");
    assert_eq!(mock.active_calls(15), 3);
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let rows = s.results();
    assert_eq!(rows.iter().filter(|r| r.status == "placed").count(), 3);
    assert_eq!(rows.iter().filter(|r| r.status == "pending").count(), 7);
    assert!(rows.iter().all(|r| r.status != "failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_lines_pace_a_whole_campaign_without_failing_or_overrunning() {
    // Calls of about a second on three lines, nothing known about their length beforehand.
    let mock = MockServer::spawn(MockOptions {
        agent_lines: 3,
        call_length: CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::LogNormal {
                median: Duration::from_secs(1),
                sigma: 0.5,
            },
        },
        ..mock_options()
    })
    .await
    .expect("stand-in starts");
    let s = Scratch::new(&mock.endpoint(), "agent_lines = 3", "");
    s.write_contacts(&contacts_csv(12));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!((r.status.as_str(), r.attempts), ("placed", 1), "{r:?}");
    }
    let lines = mock.lines();
    assert_eq!(lines.max_active, 3);
    let stats = mock.stats();
    assert_eq!(stats.accepted, 12);
    assert_eq!(stats.requests, 12 + lines.refused);
    // Each refusal was a request the estimate believed had a free line; they teach it the
    // hold and stay few (a dialer probing blindly would be refused over and over).
    assert!(lines.refused <= 12, "{} refused", lines.refused);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_campaigns_on_one_agent_share_its_lines_and_another_agent_has_its_own() {
    let mock = agent_with_lines(2).await;
    let s = Scratch::new(&mock.endpoint(), "agent_lines = 2", "");
    let srv = Served::start(&s).await;
    let a = srv.create("first", &csv_of(21, 5)).await;
    let b = srv.create("second", &csv_of(22, 5)).await;
    // Two ad-hoc calls on agent 16: its own two lines.
    for i in 0..2 {
        let (status, body) = srv
            .post(
                "/v1/calls",
                format!(r#"{{"callee": "{}", "ai_agent_id": 16}}"#, callee(23, i)),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let waiting = |c: &Value| c["counts"]["pending"].as_u64().unwrap_or(0);
    until("two calls on each agent", async || {
        let (ca, cb) = (srv.campaign(a).await, srv.campaign(b).await);
        (mock.stats().accepted == 4 && waiting(&ca) + waiting(&cb) == 8).then_some(())
    })
    .await;
    assert_eq!(mock.active_calls(15), 2, "agent 15's two lines, shared");
    assert_eq!(mock.active_calls(16), 2, "agent 16's own two lines");
    let (ca, cb) = (srv.campaign(a).await, srv.campaign(b).await);
    assert_eq!(count(&ca, "placed") + count(&cb, "placed"), 2);
    assert_eq!(mock.lines().refused, 0, "no request refused for capacity");
    assert_eq!(mock.stats().requests, 4);
    // A contact held back says why, with the estimate.
    let first_waiting = (0..5)
        .map(|i| callee(21, i))
        .chain((0..5).map(|i| callee(22, i)));
    let mut seen = false;
    for c in first_waiting {
        for id in [a, b] {
            let (status, d) = srv.get(&format!("/v1/campaigns/{id}/contacts/{c}")).await;
            if status == 200 && d["status"] == "pending" {
                assert_eq!(d["waiting"]["gate"], "agent_lines_busy", "{d}");
                let reason = d["waiting"]["reason"].as_str().unwrap_or_default();
                assert!(reason.contains("2 of 2 lines busy"), "{d}");
                seen = true;
            }
        }
    }
    assert!(seen);
    let (_, metrics) = srv.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("ccc_dialer_agent_lines{agent=\"15\",learned=\"false\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("ccc_dialer_capacity_refusals_total{agent=\"15\"} 0"));
}

#[tokio::test]
async fn the_learned_estimate_survives_a_restart_and_a_v4_store_is_upgraded() {
    use ccc_dialer::lines::Saved;
    use ccc_dialer::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        // As a build from before line pacing left it: schema 4, no `agent_lines`.
        let store = Store::open(&path).unwrap();
        drop(store);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute_batch("DROP TABLE agent_lines; PRAGMA user_version = 4;")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.agent_lines().await.unwrap().is_empty());
    let saved = Saved {
        agent: 15,
        learned: Some(10.0),
        hold_seconds: 5.5,
    };
    store.save_agent_lines(saved, 1).await.unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.agent_lines().await.unwrap(), vec![saved]);
    // A limiter seeded with it paces by ten lines from the first call.
    let lines = std::sync::Arc::new(ccc_dialer::lines::Lines::new());
    lines.restore(store.agent_lines().await.unwrap());
    let tickets: Vec<_> = (0..10)
        .map(|_| lines.try_start(15).expect("a line"))
        .collect();
    for t in tickets {
        let _ = t.placed(None);
    }
    let busy = lines
        .try_start(15)
        .expect_err("ten calls hold the ~10 lines");
    assert!(busy.to_string().contains("of ~10 lines busy"), "{busy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_line_count_is_refused_naming_the_key_before_anything_is_sent() {
    let mock = mock_with(20, 0, "").await;
    for (campaign, mock_table, key) in [
        ("agent_lines = 0", "", "campaign.agent_lines = 0"),
        (
            "",
            "[mock]\ntalk = \"normal:5s\"\n",
            "mock.talk = \"normal:5s\"",
        ),
    ] {
        let s = Scratch::new(&mock.endpoint(), campaign, mock_table);
        s.write_contacts(&contacts_csv(2));
        let out = run_async(&s).await;
        assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains(key), "{}", stderr_of(&out));
    }
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_outcome_tracking_a_full_agents_calls_are_checked_until_a_record_frees_its_line() {
    // One line, calls of a second, records visible at once; each session's own checks an hour
    // apart (the first at once, before its call ends). Only the checks made while a contact
    // waits for the line (just after every whole second) can find a call's record while the
    // test looks: without them the second contact waits out the hour.
    let mock = MockServer::spawn(MockOptions {
        agent_lines: 1,
        call_length: CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::Fixed(Duration::from_secs(1)),
        },
        cdr_delay: Duration::ZERO,
        ..mock_options()
    })
    .await
    .expect("stand-in starts");
    let s = Scratch::new(
        &mock.endpoint(),
        "agent_lines = 1",
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1h\"\n",
    );
    s.write_contacts(&contacts_csv(3));
    let mut child = s.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.stats().accepted < 3 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the three calls, each after the record of the one before: {:?}",
            mock.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = mock.stats();
    assert_eq!(
        stats.requests, 3,
        "each call left when the record of the one before had freed the line"
    );
    assert_eq!(mock.lines().refused, 0, "no request refused for capacity");
    assert_eq!(mock.lines().max_active, 1);
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
}
