//! The campaign controls an operator reaches for (issue 12): a start time (`not_before`),
//! campaigns created paused, contacts added to a campaign, a per-campaign rate cap's checks,
//! `export --campaign`, `status` with every campaign's state and reason, local times, and
//! `call` honouring the calling window. Through the CLI and the API alike.
//!
//! The cap itself (a 2/s campaign beside a full-rate one) is judged by the clock, in the `cap`
//! binary.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::served::*;
use crate::support::*;

/// `POST /v1/campaigns` as multipart: the contacts and a `settings` part.
async fn create_with(srv: &Served, csv: &str, settings: Value) -> (u16, Value) {
    let b = "campaign-controls-boundary-3c9e";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"contacts\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"settings\"\r\nContent-Type: application/json\r\n\r\n{settings}\r\n\
         --{b}--\r\n"
    );
    let r = srv
        .http
        .post(srv.url("/v1/campaigns"))
        .bearer_auth(TOKEN)
        .header("content-type", format!("multipart/form-data; boundary={b}"))
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An instant `secs` from now, as RFC 3339 in Shanghai's offset (+08:00).
fn shanghai_in(secs: i64) -> String {
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    at.to_zoned_datetime(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn status_of(s: &Scratch, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .args(extra)
        .output()
        .expect("status")
}

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_before_its_start_sends_nothing_and_says_until_when_one_past_it_dials() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let start = shanghai_in(24 * 3600);
    let (status, body) = create_with(
        &srv,
        &csv_of(41, 5),
        json!({"name": "later", "calling": {"timezone": "Asia/Shanghai", "not_before": start}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let later = body["campaign"]["id"].as_i64().expect("id");
    assert_eq!(body["campaign"]["timezone"], "Asia/Shanghai", "{body}");
    assert!(
        body["campaign"]["created_at_local"]
            .as_str()
            .is_some_and(|t| t.ends_with("+08:00")),
        "{body}"
    );
    // The runner says what it waits for: its start, in the campaign's zone and in UTC.
    let c = srv
        .wait_campaign(later, "the start-time reason", |c| {
            c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not_before"))
        })
        .await;
    assert_eq!(state(&c), "active", "{c}");
    let start_utc: jiff::Timestamp = start.parse().expect("start parses");
    let reason = c["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&start_utc.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            && reason.contains("Asia/Shanghai"),
        "{reason}"
    );
    assert_eq!(mock.requests(), 0, "nothing may be sent before the start");
    let (code, d) = srv
        .get(&format!("/v1/campaigns/{later}/contacts/{}", callee(41, 0)))
        .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["waiting"]["gate"], "not_before", "{d}");
    let until: jiff::Timestamp = d["waiting"]["until"]
        .as_str()
        .and_then(|u| u.parse().ok())
        .expect("until");
    assert_eq!(until, start_utc, "{d}");
    assert_eq!(d["waiting"]["until_local"].as_str(), Some(start.as_str()));
    // `status` shows the same, from the store.
    let out = status_of(&s, &[]);
    let text = stdout_of(&out);
    assert!(
        text.contains("campaign later (id")
            && text.contains("active: waiting for the campaign's start (not_before)"),
        "{text}"
    );

    // A start already past: dialled at once.
    let (status, body) = create_with(
        &srv,
        &csv_of(42, 4),
        json!({"name": "now", "calling": {"not_before": shanghai_in(-3600)}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let now = body["campaign"]["id"].as_i64().expect("id");
    let c = srv
        .wait_campaign(now, "the started campaign", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 4, "{c}");
    assert_eq!(mock.requests(), 4, "only the started campaign dialled");
    assert_eq!(count(&srv.campaign(later).await, "pending"), 5);

    // A start after the end is refused, naming both.
    let (status, body) = create_with(
        &srv,
        &csv_of(43, 1),
        json!({"calling": {"not_before": shanghai_in(7200), "not_after": shanghai_in(3600)}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("calling.not_after") && m.contains("not_before")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_waits_for_its_start_time_and_dials_once_it_has_passed() {
    let mock = mock_with(20, 0, "").await;
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(30)).to_string();
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        &format!("[calling]\ntimezone = \"Asia/Shanghai\"\nnot_before = \"{future}\"\n"),
    );
    s.write_contacts(&contacts_csv(3));
    let mut child = s.spawn();
    // Bounded polling of the store (a condition, not a sleep): the run records why it waits.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let out = status_of(&s, &["--config", s.config.to_str().expect("utf-8 path")]);
        let text = stdout_of(&out);
        if text.contains("not_before") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "run never said it waits for its start: {text} {}",
            stderr_of(&out)
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("run ended before its start time: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("campaign run (id 1, 3 contacts): active"),
        "{text}"
    );
    assert!(
        text.contains("CST Asia/Shanghai"),
        "local time shown: {text}"
    );
    assert_eq!(mock.requests(), 0, "nothing may be sent before the start");
    // SIGTERM while it waits: interrupted, and `status` says how to continue.
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let pid = child.id();
    let out = wait_within(pid, "the interrupted run to exit", move || {
        child.wait_with_output()
    })
    .await
    .expect("run output");
    assert_eq!(code_of(&out), 130, "{}", stderr_of(&out));
    let text = stdout_of(&status_of(&s, &[]));
    assert!(
        text.contains(
            "campaign run (id 1, 3 contacts): active: interrupted: rerun the same command"
        ),
        "{text}"
    );
    assert_eq!(mock.requests(), 0);
    // The time it waited for its start is in the report's waiting totals.
    let out = Command::new(bin())
        .args(["report", "--format", "json", "--state"])
        .arg(&s.state)
        .env_remove("CCC_DIALER_LOG")
        .output()
        .expect("report");
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let r: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let by_reason = r["waiting"]["by_reason"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        by_reason
            .iter()
            .any(|w| w["reason"] == "not_before" && w["seconds"].as_f64().is_some()),
        "{r:#}"
    );

    // The same campaign with its start in the past: it dials and completes.
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let cfg = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(&s.config, cfg.replace(&future, &past)).expect("config");
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(mock.requests(), 3);
    let text = stdout_of(&status_of(&s, &[]));
    assert!(
        text.contains("campaign run (id 1, 3 contacts): completed"),
        "a finished run reads completed, not active: {text}"
    );
    assert!(
        text.contains("CST Asia/Shanghai"),
        "the zone the run was configured with, without --config: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_created_paused_dial_nothing_until_resumed() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    // The inbox: a sidecar asks for the campaign paused.
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(inbox.join("held.toml"), "paused = true\n").expect("sidecar");
    std::fs::write(inbox.join(".held.csv.part"), csv_of(44, 3)).expect("csv");
    std::fs::rename(inbox.join(".held.csv.part"), inbox.join("held.csv")).expect("rename");
    let srv = Served::start(&s).await;
    let (status, body) = srv
        .post("/v1/campaigns?name=waiting&paused=true", csv_of(45, 4))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["campaign"]["id"].as_i64().expect("id");
    assert_eq!(state(&body["campaign"]), "paused", "{body}");
    assert!(
        body["campaign"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("created paused")),
        "{body}"
    );
    assert_eq!(body["intake"]["accepted"], 4, "{body}");
    // The inbox campaign, once imported, is paused too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let (_, list) = srv.get("/v1/campaigns").await;
        let found = list["campaigns"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "held").cloned());
        if let Some(c) = found.filter(|c| c["total"] == 3) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "inbox file never imported: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state(&held), "paused", "{held}");
    assert_eq!(mock.requests(), 0, "a paused campaign dials nothing");
    // Resumed, it dials.
    let (status, body) = srv.post(&format!("/v1/campaigns/{id}/resume"), "").await;
    assert_eq!(status, 200, "{body}");
    let c = srv
        .wait_campaign(id, "the resumed campaign", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 4, "{c}");
    assert_eq!(mock.requests(), 4, "the inbox campaign still waits");
    // The list filters by state (it once ignored `?state=` and listed everything).
    let names = |list: &Value| -> Vec<String> {
        list["campaigns"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| c["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, list) = srv.get("/v1/campaigns?state=paused").await;
    assert_eq!(
        (status, names(&list)),
        (200, vec!["held".to_string()]),
        "{list}"
    );
    let (status, list) = srv.get("/v1/campaigns?state=completed,paused").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list).len(), 2, "{list}");
    let (_, list) = srv.get("/v1/campaigns?state=active").await;
    assert_eq!(names(&list), Vec::<String>::new(), "{list}");
    for bad in ["state=running", "status=paused"] {
        let (status, body) = srv.get(&format!("/v1/campaigns?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("state")),
            "{bad}: {body}"
        );
    }
    // A value that is not a boolean is refused.
    let (status, body) = srv
        .post("/v1/campaigns?name=x&paused=maybe", csv_of(46, 1))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_added_to_a_campaign_are_dialled_once_and_repeats_are_duplicates() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("grow", &csv_of(47, 3)).await;
    srv.wait_campaign(id, "the first contacts", |c| state(c) == "completed")
        .await;
    // Two new numbers, one already in the campaign, one that is not a number.
    let more = format!(
        "callee,id\n{},n1\n{},again\n{},n2\nnot-a-number,bad\n",
        callee(47, 10),
        callee(47, 0),
        callee(47, 11)
    );
    let (status, body) = srv
        .post(&format!("/v1/campaigns/{id}/contacts"), more.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let intake = &body["intake"];
    assert_eq!(
        (
            &intake["rows"],
            &intake["accepted"],
            &intake["duplicates"],
            &intake["skipped"]
        ),
        (&json!(4), &json!(2), &json!(1), &json!(2)),
        "{body}"
    );
    let lines: Vec<u64> = intake["skipped_rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["line"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(lines, vec![3, 5], "lines of the added body: {body}");
    assert_eq!(
        intake["skipped_rows"][0]["reason"], "duplicate of line 2 of the campaign (already in it)",
        "{body}"
    );
    let c = srv
        .wait_campaign(id, "the added contacts", |c| {
            state(c) == "completed" && count(c, "placed") == 5
        })
        .await;
    assert_eq!(c["total"], 7, "{c}");
    let stats = mock.stats();
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(stats.requests, 5);
    // The same body again adds nothing: every number is in the campaign now.
    let (status, body) = srv
        .post(&format!("/v1/campaigns/{id}/contacts"), more)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["intake"]["accepted"], 0, "{body}");
    assert_eq!(body["intake"]["duplicates"], 3, "{body}");
    assert_eq!(state(&body["campaign"]), "completed", "{body}");
    // Refusals: no callee column, an unknown campaign, a cancelled one.
    let (status, body) = srv
        .post(&format!("/v1/campaigns/{id}/contacts"), "number\n1\n")
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_contacts", "{body}");
    let (status, _) = srv.post("/v1/campaigns/999/contacts", csv_of(48, 1)).await;
    assert_eq!(status, 404);
    let (status, body) = srv
        .post("/v1/campaigns?name=stopped&paused=true", csv_of(49, 1))
        .await;
    assert_eq!(status, 201, "{body}");
    let stopped = body["campaign"]["id"].as_i64().expect("id");
    let (status, _) = srv
        .post(&format!("/v1/campaigns/{stopped}/cancel"), "")
        .await;
    assert_eq!(status, 200);
    let (status, body) = srv
        .post(&format!("/v1/campaigns/{stopped}/contacts"), csv_of(49, 2))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(mock.stats().requests, 5, "nothing more was dialled");
    // A purged campaign takes no more contacts: its history is gone.
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{id}/purge?forget_dial_history=true"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = srv
        .post(&format!("/v1/campaigns/{id}/contacts"), csv_of(47, 20))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("purged")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_rate_cap_above_the_accounts_is_refused_in_settings_and_config() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "[rate]\nrequests_per_second = 10\n");
    let srv = Served::start(&s).await;
    for bad in [json!(11), json!(0), json!(-2)] {
        let (status, body) = create_with(&srv, &csv_of(50, 1), json!({"max_rate": bad})).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_rate")),
            "{body}"
        );
    }
    let (status, body) = create_with(&srv, &csv_of(50, 2), json!({"max_rate": 2.5})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["campaign"]["settings"]["max_rate"], 2.5, "{body}");
    drop(srv);
    // The config's `campaign.max_rate`, with the same range.
    let s = Scratch::new(
        &mock.endpoint(),
        "max_rate = 25",
        "[rate]\nrequests_per_second = 20\n",
    );
    s.write_contacts(&contacts_csv(1));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("campaign.max_rate = 25: expected") && err.contains("(20)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_names_its_campaign_and_refuses_to_guess_among_several() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let first = srv.create("first", &csv_of(51, 2)).await;
    let second = srv.create("second", &csv_of(52, 3)).await;
    for id in [first, second] {
        srv.wait_campaign(id, "completed", |c| state(c) == "completed")
            .await;
    }
    let export = |extra: &[&str]| {
        Command::new(bin())
            .args(["export", "--state"])
            .arg(&s.state)
            .arg("--results")
            .arg(&s.results)
            .args(extra)
            .output()
            .expect("export")
    };
    let out = export(&[]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("holds 2 campaigns") && err.contains("first") && err.contains("second"),
        "{err}"
    );
    assert!(!s.results.exists(), "nothing written");
    let out = export(&["--campaign", "second"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(s.results().len(), 3);
    let out = export(&["--campaign", &first.to_string()]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(s.results().len(), 2);
    let out = export(&["--campaign", "third"]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("no campaign of that name or id"));
    // `status` lists each with its state.
    let text = stdout_of(&status_of(&s, &[]));
    assert!(
        text.contains("campaign first (id 1, 2 contacts): completed")
            && text.contains("campaign second (id 2, 3 contacts): completed"),
        "{text}"
    );
}

/// `ccc-dialer call` with the test key, to one number.
async fn call(config: &std::path::Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(["call", "--config"])
        .arg(config)
        .args(["--callee", "+8613900000001"])
        .args(extra)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env_remove("TENCENTCLOUD_SESSION_TOKEN");
    output_within(cmd, "the call command to exit").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_outside_the_window_sends_nothing_unless_the_operator_insists() {
    let mock = mock_with(20, 0, "").await;
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    let today = jiff::Timestamp::now().to_zoned_datetime(zone).date();
    let tomorrow = today.tomorrow().expect("tomorrow");
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        &format!(
            "[calling]\ntimezone = \"Asia/Shanghai\"\nblackout_dates = [\"{today}\", \"{tomorrow}\"]\n"
        ),
    );
    let out = call(&s.config, &[]).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("window_closed") && err.contains("--ignore-window") && err.contains("UTC"),
        "{err}"
    );
    assert_eq!(mock.requests(), 0, "nothing sent outside the window");
    let out = call(&s.config, &["--ignore-window"]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(mock.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_added_to_a_campaign_still_running_are_dialled_while_it_waits() {
    // The first contact fails once and then waits ten minutes for its retry: the campaign
    // stays active, its dispatcher idle until then.
    let mock = mock_with(
        20,
        0,
        &fails_once(&normalised(53, 0), "ResourceUnavailable"),
    )
    .await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let (status, body) = create_with(
        &srv,
        &csv_of(53, 1),
        json!({"name": "waiting", "backoff_initial": "10m", "backoff_max": "10m"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["campaign"]["id"].as_i64().expect("id");
    wait_for_requests(&mock, "the first attempt", 1).await;
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{id}/contacts"),
            format!("callee\n{}\n{}\n", callee(53, 1), callee(53, 2)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["intake"]["accepted"], 2, "{body}");
    let c = srv
        .wait_campaign(id, "the added contacts placed", |c| count(c, "placed") == 2)
        .await;
    assert_eq!(
        state(&c),
        "active",
        "the first still waits for its retry: {c}"
    );
    assert_eq!(count(&c, "pending"), 1, "{c}");
    assert_eq!(mock.requests(), 3);
}

/// Rows for `callee(prefix, i)`, `i` in `range`, stored from line `first_line + 1` on: what an
/// addition cut short leaves in the store.
fn pending_rows(
    prefix: u32,
    range: std::ops::Range<usize>,
    first_line: u64,
) -> Vec<ccc_dialer::contact::NewContact> {
    range
        .enumerate()
        .map(|(k, i)| ccc_dialer::contact::NewContact {
            line: first_line + 1 + k as u64,
            callee: normalised(prefix, i),
            ext_id: None,
            overrides: Default::default(),
            skip_reason: None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_an_interrupted_add_left_in_a_completed_campaign_are_dialled() {
    let mock = mock_with(20, 0, "").await;
    let s = scratch(&mock, "");
    let srv = Served::start(&s).await;
    let id = srv.create("cut-short", &csv_of(50, 2)).await;
    srv.wait_campaign(id, "the first contacts", |c| {
        state(c) == "completed" && count(c, "placed") == 2
    })
    .await;
    // An addition cut short (the client went away, kill -9) after storing rows: pending
    // contacts in a campaign the store says is completed.
    let store = ccc_dialer::store::Store::open(&s.state).expect("store");
    let last = store.last_line(id).await.expect("last line");
    store
        .insert_contacts(
            id,
            pending_rows(50, 10..13, last),
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .expect("insert");
    drop(store);
    // Repeating the request: every number is in the campaign already (accepted 0), and the
    // ones left pending are dialled all the same.
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{id}/contacts"),
            format!(
                "callee\n{}\n{}\n{}\n",
                callee(50, 10),
                callee(50, 11),
                callee(50, 12)
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["intake"]["accepted"], 0, "{body}");
    assert_eq!(body["intake"]["duplicates"], 3, "{body}");
    srv.wait_campaign(id, "the contacts left pending, after the repeat", |c| {
        state(c) == "completed" && count(c, "placed") == 5 && count(c, "pending") == 0
    })
    .await;
    // The same left by a process that died: the next start dials them.
    srv.signal("-TERM");
    let (code, log) = srv.wait_exit().await;
    assert_eq!(code, 0, "{log}");
    let store = ccc_dialer::store::Store::open(&s.state).expect("store");
    let last = store.last_line(id).await.expect("last line");
    store
        .insert_contacts(
            id,
            pending_rows(50, 20..22, last),
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .expect("insert");
    drop(store);
    let srv = Served::start(&s).await;
    let c = srv
        .wait_campaign(id, "the contacts left pending, after a restart", |c| {
            state(c) == "completed" && count(c, "placed") == 7 && count(c, "pending") == 0
        })
        .await;
    // 7 contacts and the repeat's 3 duplicates.
    assert_eq!(c["total"], 10, "{c}");
    let stats = mock.stats();
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(stats.requests, 7, "each contact dialled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_contacts_are_added_leaves_none_of_them_pending() {
    let p = in_process(1 << 20, async |_| {}).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let r = http
        .post(format!("{}/v1/campaigns?name=adding&paused=true", p.base))
        .bearer_auth(TOKEN)
        .body(csv_of(51, 1))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.expect("json");
    let id = body["campaign"]["id"].as_i64().expect("id");
    // A large addition, cancelled once its first rows are in the store.
    let big = p.scratch.dir.path().join("more.csv");
    let mut text = String::from("callee\n");
    for i in 0..150_000u32 {
        text.push_str(&format!("+86137{i:08}\n"));
    }
    std::fs::write(&big, text).expect("write");
    let campaign = p
        .svc
        .store
        .campaign(id)
        .await
        .expect("read")
        .expect("campaign");
    let svc = p.svc.clone();
    let adding = tokio::spawn(async move { svc.add_contacts(&campaign, &big).await });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = p.svc.store.counts(id).await.expect("counts");
        if counts.values().sum::<u64>() > 1 {
            break;
        }
        assert!(
            !adding.is_finished(),
            "the addition ended before a row was seen"
        );
        assert!(Instant::now() < deadline, "no added row seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !adding.is_finished(),
        "the addition ended before the cancel: nothing to judge (make the file larger)"
    );
    p.svc.campaigns.cancel(id).await.expect("cancel");
    let _ = adding.await.expect("join");
    let c = p
        .svc
        .store
        .campaign(id)
        .await
        .expect("read")
        .expect("campaign");
    assert_eq!(c.state, ccc_dialer::store::CampaignState::Cancelled);
    let counts = p.svc.store.counts(id).await.expect("counts");
    assert_eq!(
        counts
            .get(&ccc_dialer::contact::Status::Pending)
            .copied()
            .unwrap_or(0),
        0,
        "{counts:?}"
    );
    assert_eq!(p.mock.stats().requests, 0, "nothing dialled");
    let _ = p.stop.send(ccc_dialer::dispatch::Stop::Now);
    let _ = p.task.await;
}

#[tokio::test]
async fn the_rows_of_a_failed_addition_do_not_make_a_corrected_upload_duplicates() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ccc_dialer::store::Store::open(&dir.path().join("state.db")).expect("store");
    let c = store
        .create_campaign("grow", "f", "contacts.csv", 0)
        .await
        .expect("campaign");
    let first = dir.path().join("first.csv");
    std::fs::write(&first, csv_of(52, 2)).expect("write");
    let opts = ccc_dialer::intake::IntakeOptions {
        default_country: "CN".into(),
        callee_format: ccc_dialer::config::CalleeFormat::DoubleZero,
    };
    let now = ccc_dialer::dispatch::now_ms();
    let r = ccc_dialer::import::import_file_after(&store, c.id, &first, &opts, None, 0, now)
        .await
        .expect("import");
    assert_eq!(r.counts.accepted, 2);
    let last = store.last_line(c.id).await.expect("last line");
    // An addition that stored three rows (one a duplicate) and then failed: its rows go.
    let failed = dir.path().join("failed.csv");
    std::fs::write(
        &failed,
        format!(
            "callee\n{}\n{}\n{}\n",
            callee(52, 5),
            callee(52, 6),
            callee(52, 0)
        ),
    )
    .expect("write");
    let r = ccc_dialer::import::import_file_after(&store, c.id, &failed, &opts, None, last, now)
        .await
        .expect("import");
    assert_eq!((r.counts.accepted, r.counts.duplicates), (2, 1));
    assert_eq!(
        store
            .forget_unattempted_after(c.id, last)
            .await
            .expect("forget"),
        3
    );
    // The corrected upload: its new numbers are accepted, not duplicates of the failed rows.
    let r = ccc_dialer::import::import_file_after(&store, c.id, &failed, &opts, None, last, now)
        .await
        .expect("import");
    assert_eq!((r.counts.accepted, r.counts.duplicates), (2, 1));
    let counts = store.counts(c.id).await.expect("counts");
    assert_eq!(
        counts.get(&ccc_dialer::contact::Status::Pending).copied(),
        Some(4),
        "{counts:?}"
    );
}
