//! The calling rules in the engine, end to end through `serve` against the stand-in: a closed
//! window holds contacts (nothing sent, the gate and its opening visible), do-not-call lists at
//! intake and reloaded mid-campaign, the minimum gap across two campaigns, and caller rotation
//! and rest against the stand-in's `CallerOverFrequency` script.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::served::*;
use crate::support::*;

fn calling_scratch(
    mock: &ccc_dialer::mock::MockServer,
    campaign_extra: &str,
    calling: &str,
) -> Scratch {
    Scratch::new(
        &mock.endpoint(),
        campaign_extra,
        &format!(
            "[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n\n[calling]\n{calling}"
        ),
    )
}

/// An RFC 3339 time of the API as Unix ms.
fn ms(v: &Value) -> Option<i64> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// `[calling.hours]` lines open every day from two hours before `now`'s hour (UTC) to three
/// after (clamped to the day), and the opening hour.
fn hours_around(now: jiff::Timestamp) -> (i8, String) {
    let hour = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).hour();
    let start = (hour - 2).max(0);
    let end = (hour + 3).min(24);
    let range = format!("\"{start:02}:00-{end:02}:00\"");
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| format!("{d} = [{range}]\n"))
        .collect();
    (start, days)
}

/// Poll one contact until `pred` holds (bounded; fails with the last body).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_nothing_is_sent_and_the_contact_says_until_when() {
    // Open only from the day after tomorrow (Shanghai time): today and tomorrow are blackout
    // dates, whatever the hour this test runs at.
    use ccc_dialer::calling::{day, zones};
    let zone = zones::zone("Asia/Shanghai").unwrap();
    let today = day::local_date(jiff::Timestamp::now(), &zone);
    let tomorrow = today.tomorrow().unwrap();
    let opening = day::first_instant_from(tomorrow.tomorrow().unwrap().at(9, 0, 0, 0), &zone);
    let mock = mock_with(20, 0, "").await;
    let s = calling_scratch(
        &mock,
        "",
        &format!(
            "timezone = \"Asia/Shanghai\"\nblackout_dates = [\"{today}\", \"{tomorrow}\"]\n\
             [calling.hours]\nmon = [\"09:00-20:00\"]\ntue = [\"09:00-20:00\"]\nwed = [\"09:00-20:00\"]\n\
             thu = [\"09:00-20:00\"]\nfri = [\"09:00-20:00\"]\nsat = [\"09:00-20:00\"]\nsun = [\"09:00-20:00\"]\n"
        ),
    );
    let srv = Served::start(&s).await;
    let id = srv.create("night", &csv_of(11, 5)).await;
    let d = wait_contact(&srv, id, &callee(11, 0), |d| {
        !d["waiting"]["until"].is_null()
    })
    .await;
    assert_eq!(d["waiting"]["gate"], "window_closed", "{d}");
    assert_eq!(d["gate"], "window_closed", "{d}");
    assert_eq!(ms(&d["next_at"]), Some(opening.as_millisecond()), "{d}");
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(0), "{d}");
    let c = srv.campaign(id).await;
    assert_eq!(state(&c), "active");
    assert_eq!(
        mock.stats().requests,
        0,
        "nothing may be sent outside the window"
    );
    // `status` says the same about this contact, from the store alone.
    let out = std::process::Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .args(["--callee", &callee(11, 0)])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let until = ccc_dialer::times::utc_text(opening.as_millisecond());
    assert!(
        text.contains(&format!("waiting: window_closed until {until}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_call_numbers_are_skipped_at_intake_and_when_added_mid_campaign() {
    let mock = mock_with(20, 100, "").await;
    let dnc = tempfile::tempdir().unwrap();
    let dnc_file = dnc.path().join("dnc.txt");
    // Listed in another spelling: numbers are normalised like contacts.
    std::fs::write(&dnc_file, format!("# opted out\n{}\n", normalised(12, 1))).unwrap();
    let s = calling_scratch(
        &mock,
        "",
        &format!("dnc_files = [\"{}\"]\n", dnc_file.display()),
    );
    let srv = Served::start(&s).await;
    let (status, body) = srv.post("/v1/campaigns?name=dnc", csv_of(12, 40)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["campaign"]["id"].as_i64().unwrap();
    assert_eq!(body["intake"]["skipped"], 1, "{body}");
    assert!(
        body["intake"]["skipped_rows"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("do-not-call")),
        "{body}"
    );
    // Hold the campaign, add the last contact to the list, reload, go on.
    let (status, _) = srv.post(&format!("/v1/campaigns/{id}/pause"), "").await;
    assert_eq!(status, 200);
    std::fs::write(
        &dnc_file,
        format!("{}\n{}\n", normalised(12, 1), callee(12, 39)),
    )
    .unwrap();
    let (status, r) = srv.post("/v1/dnc/reload", "").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["numbers"], 2, "{r}");
    let (status, _) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 200);
    let c = srv
        .wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "skipped"), 2, "{c}");
    assert_eq!(count(&c, "placed"), 38, "{c}");
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/{}", callee(12, 39)))
        .await;
    assert_eq!(d["status"], "skipped", "{d}");
    assert_eq!(d["error_code"], "Dnc", "{d}");
    let stats = mock.stats();
    assert!(!stats.requests_by_callee.contains_key(&normalised(12, 1)));
    assert!(!stats.requests_by_callee.contains_key(&normalised(12, 39)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimum_gap_holds_a_number_across_two_campaigns() {
    let mock = mock_with(20, 0, "").await;
    let s = calling_scratch(&mock, "", "min_gap = \"4h\"\n");
    let srv = Served::start(&s).await;
    let first = srv.create("first", &csv_of(13, 1)).await;
    srv.wait_campaign(first, "the first call", |c| state(c) == "completed")
        .await;
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{first}/contacts/{}", callee(13, 0)))
        .await;
    let sent = ms(&d["attempts"][0]["sent_at"]).expect("sent_at");

    // The same number (another spelling) in a second campaign waits; the other is called.
    let second = srv
        .create(
            "second",
            &format!("callee\n{}\n{}\n", normalised(13, 0), callee(13, 1)),
        )
        .await;
    let d = wait_contact(&srv, second, &callee(13, 0), |d| d["gate"] == "min_gap").await;
    assert_eq!(d["waiting"]["gate"], "min_gap", "{d}");
    assert_eq!(ms(&d["next_at"]), Some(sent + 4 * 3600 * 1000), "{d}");
    assert_eq!(d["attempts_used"], 0);
    srv.wait_campaign(second, "the other number", |c| count(c, "placed") == 1)
        .await;
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.get(&normalised(13, 0)), Some(&1));
    assert_eq!(stats.calls_per_callee.get(&normalised(13, 1)), Some(&1));
    assert_eq!(state(&srv.campaign(second).await), "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_frequency_rests_and_calls_go_on_the_other_caller() {
    let faults = fails_once(&normalised(14, 0), "FailedOperation.CallerOverFrequency");
    let mock = mock_with(20, 0, &faults).await;
    let s = calling_scratch(
        &mock,
        "callers = [\"008601000000001\", \"008601000000002\"]",
        "caller_cooldown = \"10m\"\n",
    );
    let srv = Served::start(&s).await;
    let id = srv.create("rotate", &csv_of(14, 8)).await;
    let c = srv
        .wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 8, "{c}");
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/{}", callee(14, 0)))
        .await;
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{d}");
    let rested = attempts[0]["caller"].as_str().expect("caller").to_string();
    assert_eq!(attempts[0]["code"], "FailedOperation.CallerOverFrequency");
    assert_ne!(attempts[1]["caller"].as_str(), Some(rested.as_str()), "{d}");
    assert_eq!(
        d["attempts_used"], 1,
        "the rest did not use an attempt: {d}"
    );
    // One caller per request, and none on the resting caller once it rested.
    let rest_began = ms(&attempts[0]["finished_at"]).expect("finished_at");
    let stats = mock.stats();
    for i in 0..8 {
        let body = &stats.last_body_by_callee[&normalised(14, i)];
        assert_eq!(body["Callers"].as_array().map(Vec::len), Some(1), "{body}");
        let (_, d) = srv
            .get(&format!("/v1/campaigns/{id}/contacts/{}", callee(14, i)))
            .await;
        for a in d["attempts"].as_array().expect("attempts") {
            if ms(&a["started_at"]) > Some(rest_began) {
                assert_ne!(a["caller"].as_str(), Some(rested.as_str()), "{d}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_caller_rests_contacts_wait_without_using_attempts() {
    let faults = fails_once(&normalised(15, 0), "FailedOperation.CallerOverFrequency");
    let mock = mock_with(20, 0, &faults).await;
    let s = calling_scratch(
        &mock,
        "callers = [\"008601000000001\"]",
        "caller_cooldown = \"10m\"\n",
    );
    let srv = Served::start(&s).await;
    let id = srv.create("resting", &csv_of(15, 5)).await;
    let d = wait_contact(&srv, id, &callee(15, 4), |d| d["gate"] == "caller_cooldown").await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts_used"], 0, "{d}");
    assert_eq!(d["waiting"]["gate"], "caller_cooldown", "{d}");
    let c = srv.campaign(id).await;
    assert_eq!(count(&c, "failed"), 0, "{c}");
    assert_eq!(state(&c), "active", "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_skips_listed_numbers_and_expires_what_the_campaign_end_leaves() {
    let mock = mock_with(20, 0, "").await;
    let dnc = tempfile::tempdir().unwrap();
    let dnc_file = dnc.path().join("dnc.csv");
    std::fs::write(&dnc_file, format!("phone,why\n{},asked\n", callee(16, 2))).unwrap();
    let s = calling_scratch(
        &mock,
        "",
        &format!(
            "dnc_files = [\"{}\"]\nnot_after = \"2020-01-01T00:00:00+08:00\"\n",
            dnc_file.display()
        ),
    );
    s.write_contacts(&csv_of(16, 4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        if r.callee == normalised(16, 2) {
            assert_eq!(
                (r.status.as_str(), r.error_code.as_str()),
                ("skipped", "Dnc"),
                "{r:?}"
            );
        } else {
            assert_eq!(
                (r.status.as_str(), r.error_code.as_str()),
                ("expired", "NotAfter"),
                "{r:?}"
            );
        }
    }
    assert_eq!(
        mock.stats().requests,
        0,
        "nothing is sent after the campaign's end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_work_time_from_the_service_moves_the_contact_to_its_next_opening() {
    // Our window is open now (UTC, a few hours around the current hour, every day); the
    // service says "not work time": the contact moves to tomorrow's opening, not a fixed delay.
    let now = jiff::Timestamp::now();
    let (start, days) = hours_around(now);
    let expected = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap()
        .at(start, 0, 0, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond();
    let faults = fails_once(&normalised(17, 0), "FailedOperation.CalloutRuleNotWorkTime");
    let mock = mock_with(20, 0, &faults).await;
    let s = calling_scratch(
        &mock,
        "",
        &format!("timezone = \"UTC\"\n[calling.hours]\n{days}"),
    );
    let srv = Served::start(&s).await;
    let id = srv
        .create(
            "notworktime",
            &format!("callee,timezone\n{},UTC\n", callee(17, 0)),
        )
        .await;
    let d = wait_contact(&srv, id, &callee(17, 0), |d| d["reschedules"] == 1).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(ms(&d["next_at"]), Some(expected), "{d}");
    assert_eq!(d["attempts_used"], 0, "{d}");
    assert_eq!(mock.stats().requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_campaigns_dialling_at_once_never_call_one_number_twice_within_the_gap() {
    let mock = mock_with(20, 50, "").await;
    let s = calling_scratch(&mock, "", "min_gap = \"4h\"\n");
    let srv = Served::start(&s).await;
    let a = srv.create("a", &csv_of(18, 30)).await;
    // The same file under a second name is refused unless asked for (`allow_duplicate`): here
    // it is, to show the gate holds when both campaigns dial.
    let (status, body) = srv
        .post("/v1/campaigns?name=b&allow_duplicate=true", csv_of(18, 30))
        .await;
    assert_eq!(status, 201, "{body}");
    let b = body["campaign"]["id"].as_i64().expect("id");
    // Every number is called once, by one campaign or the other; the other one's copy waits.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ca, cb) = (srv.campaign(a).await, srv.campaign(b).await);
        if count(&ca, "placed") + count(&cb, "placed") == 30
            && count(&ca, "in_flight") + count(&cb, "in_flight") == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "{ca}\n{cb}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "called twice: {:?}",
        stats.duplicate_callees
    );
    assert_eq!(stats.accepted, 30);
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{b}/contacts/{}", callee(18, 0)))
        .await;
    let (_, e) = srv
        .get(&format!("/v1/campaigns/{a}/contacts/{}", callee(18, 0)))
        .await;
    let gates: Vec<&Value> = vec![&d["gate"], &e["gate"]];
    assert!(gates.contains(&&Value::from("min_gap")), "{d}\n{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_whose_window_opens_after_the_end_expires_alone() {
    let now = jiff::Timestamp::now();
    let (_, days) = hours_around(now);
    let not_after = (now + jiff::SignedDuration::from_hours(1)).to_string();
    let mock = mock_with(20, 0, "").await;
    let s = calling_scratch(
        &mock,
        "",
        &format!("timezone = \"UTC\"\nnot_after = \"{not_after}\"\n[calling.hours]\n{days}"),
    );
    let srv = Served::start(&s).await;
    // Twelve hours ahead of UTC: the same hours are closed there now and open after the end.
    let csv = format!(
        "callee,timezone\n{},Etc/GMT-12\n{},UTC\n{},UTC\n",
        callee(19, 0),
        callee(19, 1),
        callee(19, 2)
    );
    let id = srv.create("ending", &csv).await;
    let c = srv
        .wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 2, "{c}");
    assert_eq!(count(&c, "expired"), 1, "{c}");
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/{}", callee(19, 0)))
        .await;
    assert_eq!(
        (d["status"].as_str(), d["error_code"].as_str()),
        (Some("expired"), Some("NotAfter")),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_carries_its_own_window_while_others_dial() {
    use ccc_dialer::calling::{day, zones};
    let zone = zones::zone("Asia/Shanghai").unwrap();
    let today = day::local_date(jiff::Timestamp::now(), &zone);
    let tomorrow = today.tomorrow().unwrap();
    let mock = mock_with(20, 0, "").await;
    // No [calling] table: the service calls at any hour, except where a campaign says not.
    let s = scratch(&mock, "");
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("holiday.toml"),
        format!(
            "[calling]\ntimezone = \"Asia/Shanghai\"\nblackout_dates = [\"{today}\", \"{tomorrow}\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(inbox.join(".holiday.part"), csv_of(20, 3)).unwrap();
    std::fs::rename(inbox.join(".holiday.part"), inbox.join("holiday.csv")).unwrap();
    let srv = Served::start(&s).await;
    let open = srv.create("open", &csv_of(21, 3)).await;
    srv.wait_campaign(open, "the campaign without a window", |c| {
        state(c) == "completed"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let holiday = loop {
        let (_, list) = srv.get("/v1/campaigns").await;
        if let Some(id) = list["campaigns"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "holiday"))
            .and_then(|c| c["id"].as_i64())
        {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the inbox file never became a campaign"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let d = wait_contact(&srv, holiday, &callee(20, 0), |d| {
        d["gate"] == "window_closed"
    })
    .await;
    assert_eq!(d["waiting"]["gate"], "window_closed", "{d}");
    let stats = mock.stats();
    assert_eq!(
        stats.accepted, 3,
        "only the campaign without a window dialled"
    );
    assert!(!stats.requests_by_callee.contains_key(&normalised(20, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cool_down_caller_over_frequency_is_an_ordinary_transient_failure() {
    let faults = fails_once(&normalised(23, 0), "FailedOperation.CallerOverFrequency");
    let mock = mock_with(20, 0, &faults).await;
    let s = calling_scratch(
        &mock,
        "callers = [\"008601000000001\"]",
        "caller_cooldown = \"0s\"\ncaller_daily_cap = 100\n",
    );
    let srv = Served::start(&s).await;
    let id = srv.create("nocool", &csv_of(23, 1)).await;
    srv.wait_campaign(id, "completion", |c| state(c) == "completed")
        .await;
    let (_, d) = srv
        .get(&format!("/v1/campaigns/{id}/contacts/{}", callee(23, 0)))
        .await;
    assert_eq!(d["status"], "placed", "{d}");
    // The retry waited its backoff and used an attempt: no free instant loop on one caller.
    assert_eq!(d["attempts_used"], 2, "{d}");
}
