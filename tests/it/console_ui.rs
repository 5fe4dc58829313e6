//! The web console in a real browser (headless Chromium through chromedriver) against `serve`
//! and the built-in stand-in: sign-in, upload with its intake report, a campaign to completion,
//! pause/resume/cancel, "why not now", the contacts table's pages, and user data shown as text.

use serde_json::Value;

use crate::browser::Browser;
use crate::served::{count, serve_command, state, Served, TOKEN};
use crate::support::*;

/// A stand-in that answers every call "outside calling hours": each contact is tried once and
/// rescheduled an hour on, so the campaign stays active, with every contact pending, however
/// long a test takes.
async fn holding_scratch() -> (ccc_dialer::mock::MockServer, Scratch) {
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:FailedOperation.CalloutRuleNotWorkTime\"]\n",
    )
    .await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nlater_delay = \"1h\"\nmax_reschedules = 3\n",
    );
    (mock, s)
}

/// The file lines of the contacts table's rows, top to bottom.
async fn lines(b: &Browser) -> Vec<u64> {
    b.js("return Array.from(document.querySelectorAll('#contact-rows tr')).map(r => Number(r.dataset.line))")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap_or(0))
        .collect()
}

/// Signed in with the test token, on the campaigns page.
async fn signed_in(b: &Browser, served: &Served) {
    b.goto(&served.url("/console/")).await;
    b.type_into("#token", TOKEN).await;
    b.click("#sign-in-button").await;
    b.wait_text("#page-title", "the campaigns page", |t| t == "Campaigns")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_refuses_a_wrong_token_plainly_and_keeps_the_right_one_in_the_tab_only() {
    let mock = mock_with(20, 0, "").await;
    let s = crate::served::scratch(&mock, "");
    let served = Served::start(&s).await;

    // The page: security headers, no inline script.
    let r = reqwest::get(served.url("/console/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = r.text().await.unwrap();
    assert!(
        html.matches("<script").count() == html.matches("<script src=").count(),
        "inline script in {html}"
    );

    let b = Browser::start().await;
    b.goto(&served.url("/")).await;
    b.wait_text("h1", "the sign-in form", |t| t == "Sign in")
        .await;
    b.type_into("#token", "not-the-token").await;
    b.click("#sign-in-button").await;
    let said = b
        .wait_text("#sign-in-error", "the refusal", |t| {
            t.contains("Wrong token")
        })
        .await;
    assert!(said.contains("refused"), "{said}");
    b.check_accessibility("the sign-in form").await;
    assert_eq!(
        b.js("return sessionStorage.getItem('ccc-dialer.token')")
            .await,
        Value::Null,
        "a refused token is not kept"
    );

    b.type_into("#token", TOKEN).await;
    b.click("#sign-in-button").await;
    b.wait_text("#page-title", "the campaigns page", |t| t == "Campaigns")
        .await;
    assert_eq!(
        b.js("return sessionStorage.getItem('ccc-dialer.token')")
            .await,
        Value::from(TOKEN)
    );
    assert_eq!(b.js("return localStorage.length").await, Value::from(0));
    b.check_accessibility("the campaigns page").await;
    assert_eq!(b.js("return document.cookie").await, Value::from(""));
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(TOKEN), "{url}");

    // A reload in the same tab stays signed in; signing out forgets the token.
    b.goto(&served.url("/console/#/")).await;
    b.wait_text("#page-title", "the campaigns page again", |t| {
        t == "Campaigns"
    })
    .await;
    b.click("#sign-out").await;
    b.wait_text("h1", "the sign-in form again", |t| t == "Sign in")
        .await;
    assert_eq!(
        b.js("return sessionStorage.getItem('ccc-dialer.token')")
            .await,
        Value::Null
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_without_a_token_on_loopback_opens_without_sign_in() {
    let mock = mock_with(20, 0, "").await;
    let s = crate::served::scratch(&mock, "");
    let mut cmd = serve_command(&s);
    cmd.env_remove("CCC_DIALER_API_TOKEN");
    let served = Served::start_with(&s, cmd).await;
    let b = Browser::start().await;
    b.goto(&served.url("/console/")).await;
    b.wait_text("#page-title", "the campaigns page", |t| t == "Campaigns")
        .await;
    assert_eq!(b.count("#sign-in").await, 0);
    assert_eq!(
        b.js("return getComputedStyle(document.getElementById('sign-out')).display")
            .await,
        Value::from("none"),
        "no sign-out without a token"
    );
    // Readable 360 px wide: a campaign's card fits, nothing scrolls sideways.
    served.create("narrow", &crate::served::csv_of(4, 3)).await;
    b.client.set_window_size(360, 800).await.unwrap();
    b.wait_text("#campaign-rows", "the campaign listed", |t| {
        t.contains("narrow")
    })
    .await;
    let (page, view) = (
        b.js("return document.documentElement.scrollWidth").await,
        b.js("return window.innerWidth").await,
    );
    assert!(
        page.as_u64() <= view.as_u64(),
        "page {page} px wide in a {view} px window"
    );
    b.check_accessibility("the campaigns page at 360 px").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_upload_shows_the_intake_report_and_the_campaign_runs_to_completion() {
    let mock = mock_with(20, 0, "").await;
    let s = crate::served::scratch(&mock, "");
    let served = Served::start(&s).await;
    // samples/contacts.csv and one row that cannot be dialled.
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/contacts.csv"),
    )
    .unwrap();
    let bad_line = sample.lines().count() + 1;
    let upload = s.dir.path().join("upload.csv");
    std::fs::write(
        &upload,
        format!("{sample}c999,not-a-number,Bad Row,1.00,\n"),
    )
    .unwrap();

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    b.click("a[href='#/new']").await;
    b.wait_text("#page-title", "the new campaign form", |t| {
        t == "New campaign"
    })
    .await;
    b.check_accessibility("the new campaign form").await;
    b.type_into("#file", upload.to_str().unwrap()).await;
    b.type_into("#name", "from-the-console").await;
    b.click("#upload").await;
    b.wait_text("#intake-title", "the intake report", |t| {
        t.contains("from-the-console")
    })
    .await;
    let (_, list) = served.get("/v1/campaigns").await;
    let c = &list["campaigns"][0];
    let id = c["id"].as_i64().unwrap();
    let accepted = c["total"].as_u64().unwrap() - count(c, "skipped");
    let shown = b.wait_text("#intake-accepted", "accepted", |_| true).await;
    assert_eq!(shown, accepted.to_string());
    let skipped_table = b
        .wait_text("#skipped-rows", "the skipped rows", |t| {
            t.contains("not-a-number")
        })
        .await;
    assert!(
        skipped_table.contains(&bad_line.to_string()),
        "line {bad_line} in {skipped_table}"
    );
    b.check_accessibility("the intake report").await;
    // Started by the report's button when the service creates campaigns paused; else opened.
    if b.count("#start-campaign").await > 0 {
        b.click("#start-campaign").await;
    } else {
        b.click("#open-campaign").await;
    }
    b.wait_text("#campaign-state", "completion", |t| t == "completed")
        .await;
    let c = served.campaign(id).await;
    assert_eq!(state(&c), "completed");
    assert_eq!(count(&c, "placed"), mock.stats().accepted);
    assert_eq!(count(&c, "placed"), accepted);
    b.wait_js(
        &format!(
            "document.querySelector('#summary progress') && document.querySelector('#summary progress').value == {}",
            c["total"]
        ),
        "a full progress bar",
    )
    .await;
    b.check_accessibility("a completed campaign's page").await;

    // The results downloaded are the API's results.
    b.click("#download").await;
    let file = b.downloaded(&format!("campaign-{id}-results.csv")).await;
    let api = served
        .http
        .get(served.url(&format!("/v1/campaigns/{id}/results")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&file),
        String::from_utf8_lossy(&api)
    );
    assert!(file.len() > 100, "{}", String::from_utf8_lossy(&file));

    // The campaigns page shows it completed too.
    b.click("a[href='#/']").await;
    b.wait_text(
        &format!("#campaign-rows tr[data-id='{id}']"),
        "the list",
        |t| t.contains("completed"),
    )
    .await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pauses_resumes_and_cancels_with_a_confirmation_that_counts_the_contacts() {
    let (mock, s) = holding_scratch().await;
    let served = Served::start(&s).await;
    let id = served
        .create("steered", &crate::served::csv_of(1, 30))
        .await;
    // Every contact tried once and held for an hour: 30 pending, none on the wire.
    served
        .wait_campaign(id, "every contact tried and held", |c| {
            count(c, "pending") == 30 && count(c, "in_flight") == 0
        })
        .await;
    wait_for_requests(&mock, "every contact tried", 30).await;

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    b.click(&format!("a[href='#/campaign/{id}']")).await;
    b.wait_text("#campaign-state", "active", |t| t == "active")
        .await;
    // Why not now: the contact's panel says what holds it and until when.
    b.click(&format!(
        "button[data-callee='{}']",
        crate::served::normalised(1, 3)
    ))
    .await;
    let why = b
        .wait_text("#why-not-now", "why not now", |t| !t.is_empty())
        .await;
    assert!(why.contains("rescheduled"), "{why}");
    assert!(why.contains("until"), "{why}");
    let attempts = b.count("#contact-panel table.attempts tbody tr").await;
    assert_eq!(attempts, 1);
    b.check_accessibility("a campaign's page with a contact's panel")
        .await;

    b.click("#pause").await;
    b.wait_text("#campaign-state", "paused", |t| t == "paused")
        .await;
    assert_eq!(state(&served.campaign(id).await), "paused");
    b.wait_text("#campaign-reason", "the reason", |t| {
        t.contains("paused by an operator")
    })
    .await;
    b.click("#resume").await;
    b.wait_text("#campaign-state", "active again", |t| t == "active")
        .await;
    assert_eq!(state(&served.campaign(id).await), "active");

    // Cancel asks first, with the number it cancels; keeping it changes nothing.
    b.click("#cancel").await;
    let asked = b
        .wait_text("#cancel-text", "the confirmation", |t| !t.is_empty())
        .await;
    assert!(asked.contains("cancels 30 contacts"), "{asked}");
    b.check_accessibility("the cancel confirmation").await;
    b.click("#cancel-keep").await;
    b.wait_js(
        "!document.getElementById('cancel-dialog').open",
        "the dialog closed",
    )
    .await;
    assert_eq!(state(&served.campaign(id).await), "active");
    b.click("#cancel").await;
    let button = b
        .wait_text("#cancel-confirm", "the confirm button", |t| !t.is_empty())
        .await;
    assert_eq!(button, "Cancel 30 contacts");
    b.click("#cancel-confirm").await;
    b.wait_text("#campaign-state", "cancelled", |t| t == "cancelled")
        .await;
    let c = served.campaign(id).await;
    assert_eq!(state(&c), "cancelled");
    assert_eq!(count(&c, "cancelled"), 30, "{c}");
    assert_eq!(mock.stats().accepted, 0);
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_contacts_table_pages_searches_a_number_reads_its_why_not_now_and_shows_names_as_text(
) {
    let (mock, s) = holding_scratch().await;
    let served = Served::start(&s).await;
    let payload = "<img src=x onerror=\"window.__xss=1\">";
    let id_payload = "<script>window.__xss=2</script>";
    let mut csv = String::from("callee,id,var:name\n");
    for i in 0..120 {
        let (id, name) = match i {
            3 => (id_payload.to_string(), payload.to_string()),
            _ => (format!("r{i}"), format!("Person {i}")),
        };
        csv.push_str(&format!(
            "{},\"{}\",\"{}\"\n",
            crate::served::callee(2, i),
            id.replace('"', "\"\""),
            name.replace('"', "\"\"")
        ));
    }
    let id = served.create("paged", &csv).await;

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    b.goto(&served.url(&format!("/console/#/campaign/{id}")))
        .await;
    b.wait_text("#contacts-page", "page 1", |t| t.starts_with("Page 1"))
        .await;
    assert_eq!(lines(&b).await, (2..52).collect::<Vec<_>>());

    // User data is text: the markup shows as typed and never runs.
    let row = b
        .wait_text(
            "#contact-rows tr[data-line='5'] td.name",
            "the name",
            |_| true,
        )
        .await;
    assert_eq!(row, payload);
    let ext = b
        .wait_text(
            "#contact-rows tr[data-line='5'] td:nth-child(4)",
            "the id",
            |_| true,
        )
        .await;
    assert_eq!(ext, id_payload);
    assert_eq!(b.count("#contact-rows img").await, 0);
    assert_eq!(b.count("#contact-rows script").await, 0);
    assert_eq!(
        b.js("return window.__xss === undefined").await,
        Value::Bool(true)
    );

    b.click("#contacts-next").await;
    b.wait_text("#contacts-page", "page 2", |t| t.starts_with("Page 2"))
        .await;
    assert_eq!(lines(&b).await, (52..102).collect::<Vec<_>>());
    b.click("#contacts-next").await;
    b.wait_text("#contacts-page", "page 3", |t| t.contains("last page"))
        .await;
    assert_eq!(lines(&b).await, (102..122).collect::<Vec<_>>());
    assert_eq!(
        b.js("return document.getElementById('contacts-next').disabled")
            .await,
        Value::Bool(true)
    );
    b.click("#contacts-prev").await;
    b.wait_text("#contacts-page", "page 2 again", |t| {
        t.starts_with("Page 2")
    })
    .await;
    assert_eq!(lines(&b).await, (52..102).collect::<Vec<_>>());

    // Search by number as people type it, then read why the contact found is not called now.
    served
        .wait_campaign(id, "every contact tried and held", |c| {
            count(c, "pending") == 120 && count(c, "in_flight") == 0
        })
        .await;
    wait_for_requests(&mock, "every contact tried", 120).await;
    b.type_into("#filter-q", "+86 139 02 000077").await;
    b.click("#contacts-filter button[type=submit]").await;
    b.wait_text("#contacts-page", "the search", |t| t.contains("lines 79"))
        .await;
    assert_eq!(lines(&b).await, vec![79]);
    b.click(&format!(
        "#contact-rows button[data-callee='{}']",
        crate::served::normalised(2, 77)
    ))
    .await;
    let why = b
        .wait_text("#why-not-now", "why not now", |t| !t.is_empty())
        .await;
    assert!(why.contains("rescheduled"), "{why}");
    assert!(why.contains("until"), "{why}");
    let title = b
        .wait_text("#contact-title", "the contact's panel", |_| true)
        .await;
    assert_eq!(
        title,
        format!("Contact {}", crate::served::normalised(2, 77))
    );
    // An outcome filter: no call here has a record, so nobody matches.
    b.type_into("#filter-q", "").await;
    b.js("document.getElementById('filter-outcome').value = 'answered'; return null")
        .await;
    b.click("#contacts-filter button[type=submit]").await;
    b.wait_text("#contact-rows", "no match", |t| t == "No contacts match.")
        .await;
    b.check_accessibility("the contacts table").await;
    assert_eq!(
        b.js("return window.__xss === undefined").await,
        Value::Bool(true)
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_rate_fall_to_zero_on_pause_and_come_back_on_resume() {
    // Calls that take 300 ms and 1500 contacts: about 75 s of dialling at the cap.
    let mock = mock_with(20, 300, "").await;
    let s = crate::served::scratch(&mock, "");
    let served = Served::start(&s).await;
    let id = served
        .create("paced", &crate::served::csv_of(3, 1500))
        .await;
    let b = Browser::start().await;
    signed_in(&b, &served).await;
    b.goto(&served.url(&format!("/console/#/campaign/{id}")))
        .await;
    let rate = |t: &str| -> f64 {
        t.split(" / ")
            .next()
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    b.wait_text("#summary .rate", "requests flowing", |t| rate(t) >= 1.0)
        .await;
    b.click("#pause").await;
    b.wait_text("#campaign-state", "paused", |t| t == "paused")
        .await;
    // The rate is the last 10 s: it reaches 0 once nothing was sent for 10 s.
    b.wait_text("#summary .rate", "the rate at 0", |t| rate(t) == 0.0)
        .await;
    let held = served.campaign(id).await;
    assert_eq!(held["rate_per_second"], 0.0, "{held}");
    let sent = mock.stats().requests;
    b.click("#resume").await;
    b.wait_text("#summary .rate", "requests flowing again", |t| {
        rate(t) >= 1.0
    })
    .await;
    assert!(mock.stats().requests > sent);
    // The chart draws the dip: samples above 0, then at 0 (the bottom, y = 158), then above.
    // Waited for, not read once: the summary may show the resumed rate from the resume's own
    // reply before the next sample reaches the chart.
    b.wait_js(
        "(() => { const p = document.querySelector('#chart polyline');
             const ys = p ? p.getAttribute('points').split(' ').map(xy => Number(xy.split(',')[1])) : [];
             const up = ys.findIndex(y => y < 158);
             const zero = up < 0 ? -1 : ys.indexOf(158, up);
             return zero > up && ys.slice(zero).some(y => y < 158); })()",
        "the chart's dip to 0 and back",
    )
    .await;
    b.click("#cancel").await;
    // The dialog opens once the campaign's count is read: its button is clickable from then.
    b.wait_js(
        "document.getElementById('cancel-dialog').open",
        "the confirmation open",
    )
    .await;
    b.click("#cancel-confirm").await;
    b.wait_text("#campaign-state", "cancelled", |t| t == "cancelled")
        .await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_call_outcomes_the_answer_rate_and_filters_by_outcome() {
    use crate::served::normalised;
    // The first contact's call is busy, the others are answered and last 1 s.
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"busy\"]\n[[rule]]\ncallee = \"*\"\ncalls = [\"answered:1s\"]\n",
        normalised(6, 0)
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = crate::served::scratch(
        &mock,
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\n",
    );
    let served = Served::start(&s).await;
    let id = served
        .create("outcomes", &crate::served::csv_of(6, 6))
        .await;
    let c = served
        .wait_campaign(id, "every outcome known", |c| {
            c["state"] == "completed" && c["outcomes"]["awaiting"] == 0
        })
        .await;
    assert_eq!(c["outcomes"]["by_outcome"]["busy"], 1, "{c}");

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    b.goto(&served.url(&format!("/console/#/campaign/{id}")))
        .await;
    let rate = b
        .wait_text("#answer-rate", "the answer rate", |t| t.contains('%'))
        .await;
    assert!(rate.contains("83.3%"), "{rate}");
    let busy = b
        .wait_text("#summary li[data-outcome='busy']", "the busy count", |_| {
            true
        })
        .await;
    assert_eq!(busy, "busy 1");
    // Filtered by outcome: the busy contact alone, with its outcome.
    b.js("document.getElementById('filter-outcome').value = 'busy'; return null")
        .await;
    b.click("#contacts-filter button[type=submit]").await;
    b.wait_text("#contacts-page", "the filtered page", |t| {
        t.contains("lines 2–2")
    })
    .await;
    assert_eq!(lines(&b).await, vec![2]);
    let shown = b
        .wait_text("#contact-rows td.outcome", "the outcome", |_| true)
        .await;
    assert_eq!(shown, "busy");
    // Its panel lists the call with its outcome.
    b.click(&format!("button[data-callee='{}']", normalised(6, 0)))
        .await;
    b.wait_text(
        "#contact-panel table.sessions",
        "the call and its outcome",
        |t| t.contains("busy"),
    )
    .await;
    b.check_accessibility("a campaign's page with outcomes")
        .await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_charts_outcomes_shows_the_answer_rate_by_dial_and_each_calls_talk_time_and_tags() {
    use crate::served::normalised;
    // The first contact's call is busy (a redial is due an hour later), the others are
    // answered, last 2 s and leave post-call tags (one holding markup, shown as text).
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"busy\"]\n[[rule]]\ncallee = \"*\"\ncalls = [\"answered:2s\"]\ntags = [{{ interested = true, topic = \"<b>refund</b>\" }}]\n",
        normalised(7, 0)
    );
    let mock = mock_with(20, 0, &faults).await;
    let s = crate::served::scratch(
        &mock,
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\ntags = true\n[redial]\non = [\"busy\"]\nmax_dials = 2\nafter = \"1h\"\n",
    );
    let served = Served::start(&s).await;
    let id = served.create("dials", &crate::served::csv_of(7, 4)).await;
    served
        .wait_campaign(id, "every outcome known, the busy one's redial due", |c| {
            c["outcomes"]["awaiting"] == 0
                && c["outcomes"]["by_outcome"]["answered"] == 3
                && c["outcomes"]["redials_pending"] == 1
        })
        .await;
    // The answered contact's tags have arrived (the contact view carries them).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, v) = served
            .get(&format!("/v1/campaigns/{id}/contacts/{}", normalised(7, 1)))
            .await;
        assert_eq!(status, 200, "{v}");
        if v["sessions"][0]["tags"]
            .as_array()
            .is_some_and(|t| t.len() == 2)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no tags: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, report) = served.get(&format!("/v1/campaigns/{id}/report")).await;
    assert_eq!(status, 200, "{report}");

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    let opened = jiff::Timestamp::now();
    b.goto(&served.url(&format!("/console/#/campaign/{id}")))
        .await;
    // The outcomes chart beside the rate chart: the campaign's history (calls by the minute
    // they ended, every one of them ended before this page opened), a legend with counts.
    let answered = b
        .wait_text(
            "#outcomes-legend li[data-outcome='answered']",
            "the answered count in the outcomes chart",
            |_| true,
        )
        .await;
    assert_eq!(answered, "answered 3");
    let busy = b
        .wait_text("#outcomes-legend li[data-outcome='busy']", "busy", |_| true)
        .await;
    assert_eq!(busy, "busy 1");
    let title = b
        .js("return document.getElementById('outcomes-chart-title').textContent")
        .await;
    assert!(
        title.as_str().unwrap_or("").contains("answered 3, busy 1"),
        "{title}"
    );
    let bars = b
        .js("return Array.from(document.querySelectorAll('#outcomes-chart svg rect.bar')).map(r => [r.dataset.outcome, Number(r.dataset.calls), r.dataset.start])")
        .await;
    let bars = bars.as_array().expect("bars");
    let calls_of = |k: &str| -> u64 {
        bars.iter()
            .filter(|b| b[0] == k)
            .map(|b| b[1].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(calls_of("answered"), 3, "{bars:?}");
    assert_eq!(calls_of("busy"), 1, "{bars:?}");
    assert_eq!(calls_of("voicemail"), 0, "{bars:?}");
    for bar in bars {
        let start: jiff::Timestamp = bar[2].as_str().unwrap_or("").parse().expect("a start");
        assert!(start <= opened, "a bar from before the page opened: {bar}");
    }
    // Redials: the campaign counts the one pending.
    let pending = b
        .wait_text("#redials-pending", "redials pending", |_| true)
        .await;
    assert_eq!(pending, "1");
    if let Ok(path) = std::env::var("CCC_CONSOLE_SCREENSHOT") {
        b.wait_text("#contacts-page", "the contacts table", |t| {
            t.contains("Page 1")
        })
        .await;
        b.wait_js(
            "document.querySelector('#chart polyline')",
            "two samples in the rate chart",
        )
        .await;
        b.screenshot(std::path::Path::new(&path)).await;
    }
    // Answer rate by dial, as the report gives it: one dial, 3 answered of 4.
    let rate = b
        .wait_text(
            "#by-dial-table tr[data-dial='1'] td.answer-rate",
            "dial 1's answer rate",
            |_| true,
        )
        .await;
    assert_eq!(rate, "75.0%");
    assert_eq!(report["outcomes"]["by_dial"][0]["answer_rate"], 0.75);
    assert_eq!(b.count("#by-dial-table tbody tr").await, 1);
    // An answered contact's panel: its call with outcome, talk time and a tags cell.
    b.click(&format!("button[data-callee='{}']", normalised(7, 1)))
        .await;
    let outcome = b
        .wait_text(
            "#contact-panel table.sessions td.session-outcome",
            "the call's outcome",
            |_| true,
        )
        .await;
    assert_eq!(outcome, "answered");
    let talk = b
        .wait_text("#contact-panel td.talk-time", "the talk time", |_| true)
        .await;
    assert_eq!(talk, "2 s");
    let heads = b
        .js("return Array.from(document.querySelectorAll('#contact-panel table.sessions th')).map(t => t.textContent).join('|')")
        .await;
    assert!(heads.as_str().unwrap_or("").contains("Tags"), "{heads}");
    let tags = b
        .wait_text("#contact-panel td.tags", "the call's tags", |t| {
            t.contains("interested")
        })
        .await;
    assert!(tags.contains("interested: true"), "{tags}");
    assert!(tags.contains("topic: <b>refund</b>"), "{tags}");
    assert_eq!(b.count("#contact-panel td.tags b b").await, 0);
    let why = b
        .wait_text("#why-not-now", "why not now", |t| !t.is_empty())
        .await;
    assert!(why.contains("final"), "{why}");
    assert_eq!(
        b.wait_text("#contact-dials", "the calls made", |_| true)
            .await,
        "1"
    );
    // The busy contact's panel: its redial and when it is due.
    b.click(&format!("button[data-callee='{}']", normalised(7, 0)))
        .await;
    let why = b
        .wait_text("#why-not-now", "the redial", |t| t.contains("redial due"))
        .await;
    assert!(why.contains(" at "), "{why}");
    let outcome = b
        .wait_text(
            "#contact-panel table.sessions td.session-outcome",
            "the busy call",
            |_| true,
        )
        .await;
    assert_eq!(outcome, "busy");
    b.check_accessibility("a campaign's page with its outcomes chart and dials")
        .await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_says_when_outcome_tracking_stopped_in_the_banner_and_on_the_campaign() {
    let faults = "[[action]]\nname = \"DescribeTelCdr\"\noutcomes = [\"error:AuthFailure.UnauthorizedOperation\"]\n";
    let mock = mock_with(20, 0, faults).await;
    let s = crate::served::scratch(
        &mock,
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\n",
    );
    let served = Served::start(&s).await;
    let id = served
        .create("untracked", &crate::served::csv_of(8, 3))
        .await;
    let c = served
        .wait_campaign(id, "outcome tracking stopped", |c| {
            c["outcomes"]["stopped"].is_string()
        })
        .await;
    assert!(
        c["outcomes"]["stopped"]
            .as_str()
            .unwrap_or("")
            .contains("AuthFailure.UnauthorizedOperation"),
        "{c}"
    );
    let (_, ready) = served.get("/readyz").await;
    assert_eq!(ready["checks"]["outcomes"]["ok"], false, "{ready}");

    let b = Browser::start().await;
    signed_in(&b, &served).await;
    let banner = b
        .wait_text("#banner", "the health banner", |t| {
            t.contains("outcome tracking stopped")
        })
        .await;
    assert!(
        banner.contains("AuthFailure.UnauthorizedOperation"),
        "{banner}"
    );
    b.goto(&served.url(&format!("/console/#/campaign/{id}")))
        .await;
    let shown = b
        .wait_text("#outcomes-stopped", "the stop on the campaign", |_| true)
        .await;
    assert!(shown.starts_with("Outcome tracking stopped:"), "{shown}");
    assert!(
        shown.contains("AuthFailure.UnauthorizedOperation"),
        "{shown}"
    );
    assert!(shown.contains("dialling goes on"), "{shown}");
    b.check_accessibility("a campaign's page with outcome tracking stopped")
        .await;
    b.quit().await;
}
