//! An unreachable endpoint is an outage for every contact, not each contact's failure: the
//! breaker stops sending, probes with one contact at a time, and resumes when one gets through;
//! no contact uses an attempt or ends `failed` for a request that never left.

use std::process::Command;
use std::time::{Duration, Instant};

use ccc_dialer::mock::{Faults, MockOptions, MockServer};

use crate::support::*;

/// `ccc-dialer status --state …` output.
async fn status_of(s: &Scratch) -> String {
    let state = s.state.clone();
    let mut cmd = Command::new(bin());
    cmd.arg("status").arg("--state").arg(&state);
    let out = output_within(cmd, "status to exit").await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `status` until its output contains `what` (bounded; a condition, not a sleep).
async fn wait_for_status(s: &Scratch, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = status_of(s).await;
        if text.contains(what) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "status never said {what:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port with nothing listening on it.
fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_down_mid_campaign_then_back_places_every_contact_with_no_attempt_used() {
    // The stand-in answers contacts 0-3, holds contact 4's reply while the test takes its
    // listener away (one request in flight at a time, so nothing else is on the wire), then is
    // gone: the next request is refused before it leaves.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\noutcomes = [\"hang:3s\"]\n",
        phone(4)
    );
    let first = MockServer::spawn_on(
        listener,
        MockOptions {
            faults: Faults::from_toml_str(&faults).expect("faults"),
            ..mock_options()
        },
    )
    .expect("stand-in");
    let s = Scratch::new(
        &format!("http://{addr}"),
        "",
        "[rate]\nmax_in_flight = 1\n\n[run]\noutage_probe_initial = \"200ms\"\noutage_probe_max = \"1s\"\n",
    );
    s.write_contacts(&contacts_csv(10));
    let child = s.spawn();

    wait_for_requests(&first, "contact 4's request", 5).await;
    let before = first.stats();
    first.shutdown().await;
    // The breaker opened, and `status` says so from the store.
    let text = wait_for_status(&s, "endpoint unreachable since").await;
    assert!(text.contains("next probe at"), "{text}");
    // Down long enough for several probes to fail (more than the 3 attempts a contact has):
    // none of them may use an attempt or fail a contact.
    wait_for_status(&s, "(4 failed probes;").await;

    // The endpoint comes back on the same port; the next probe gets through.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let second = MockServer::spawn_on(listener, mock_options()).expect("stand-in");
    let pid = child.id();
    let out = wait_within(pid, "the run to exit after the outage", move || {
        child.wait_with_output()
    })
    .await
    .expect("wait");
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));

    let rows = s.results();
    assert_eq!(rows.len(), 10);
    for r in &rows {
        assert_eq!(
            (r.status.as_str(), r.attempts),
            ("placed", 1),
            "no contact failed or used an attempt for the outage: {r:?}"
        );
    }
    let after = second.stats();
    for i in 0..10 {
        let n = before.calls_per_callee.get(&phone(i)).copied().unwrap_or(0)
            + after.calls_per_callee.get(&phone(i)).copied().unwrap_or(0);
        assert_eq!(n, 1, "contact {i} called once in all");
    }
    // Over, and no longer shown.
    let text = status_of(&s).await;
    assert!(!text.contains("unreachable"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_endpoint_never_comes_back_gives_up_with_every_contact_pending() {
    let s = Scratch::new(
        &format!("http://{}", free_port()),
        "",
        // Past the progress line's 10 s period, so that one is written during the outage.
        "[run]\noutage_limit = \"11s\"\noutage_probe_initial = \"100ms\"\noutage_probe_max = \"200ms\"\n",
    );
    s.write_contacts(&contacts_csv(44));
    let out = run_async(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 3, "{err}");
    // The progress line says why nothing moves.
    assert!(
        err.lines().any(|l| l.contains("\"message\":\"progress\"")
            && l.contains("endpoint unreachable since")
            && l.contains("next probe at")),
        "{err}"
    );
    assert!(err.contains("halted: endpoint unreachable since"), "{err}");
    assert!(err.contains("gave up at"), "{err}");
    assert!(err.contains("tencentcloud.endpoint"), "{err}");
    assert!(err.contains(" 0 requests sent"), "nothing left: {err}");
    let rows = s.results();
    assert_eq!(rows.len(), 44);
    for r in &rows {
        assert_eq!((r.status.as_str(), r.attempts), ("pending", 0), "{r:?}");
    }
    let text = status_of(&s).await;
    assert!(text.contains("gave up at"), "{text}");

    // A rerun once the endpoint is back continues where it stopped.
    let mock = MockServer::spawn(mock_options()).await.expect("stand-in");
    let config = std::fs::read_to_string(&s.config).expect("config");
    let config = config.replace(
        &config
            .lines()
            .find(|l| l.starts_with("endpoint"))
            .expect("endpoint line")
            .to_string(),
        &format!("endpoint = \"{}\"", mock.endpoint()),
    );
    std::fs::write(&s.config, config).expect("config");
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(s
        .results()
        .iter()
        .all(|r| r.status == "placed" && r.attempts == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_pauses_its_campaigns_during_an_outage_and_resumes_them_when_a_probe_gets_through() {
    use crate::served::{count, csv_of, normalised, state, Served};
    let addr = free_port();
    let s = Scratch::new(
        &format!("http://{addr}"),
        "",
        "[run]\noutage_probe_initial = \"200ms\"\noutage_probe_max = \"500ms\"\n",
    );
    let served = Served::start(&s).await;
    let id = served.create("down", &csv_of(7, 12)).await;
    let c = served
        .wait_campaign(id, "paused by the outage", |c| {
            state(c) == "paused"
                && c["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("endpoint unreachable since"))
        })
        .await;
    let reason = c["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("next probe at"), "{c}");
    // Several probes fail (more than a contact's 3 attempts) before the endpoint is back.
    let c = served
        .wait_campaign(id, "four failed probes", |c| {
            c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("(4 failed probes;"))
        })
        .await;
    assert!(c["outage"]["since"].is_string(), "{c}");
    assert!(c["outage"]["next_probe_at"].is_string(), "{c}");
    assert_eq!(count(&c, "failed"), 0, "{c}");
    let (status, ready) = served.get("/readyz").await;
    assert_eq!(status, 200, "the API stays reachable: {ready}");
    assert_eq!(ready["checks"]["endpoint"]["ok"], false, "{ready}");
    assert!(
        ready["checks"]["endpoint"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("endpoint unreachable since")),
        "{ready}"
    );

    // The endpoint comes up: the next probe gets through and the campaign resumes by itself.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let mock = MockServer::spawn_on(listener, mock_options()).expect("stand-in");
    let c = served
        .wait_campaign(id, "completed after the outage", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 12, "{c}");
    assert!(c["outage"].is_null(), "{c}");
    let (_, contact) = served
        .get(&format!("/v1/campaigns/{id}/contacts/{}", normalised(7, 0)))
        .await;
    assert_eq!(contact["attempts_used"], 1, "{contact}");
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.len(), 12);
    assert!(stats.calls_per_callee.values().all(|n| *n == 1));
    let (_, ready) = served.get("/readyz").await;
    assert_eq!(ready["checks"]["endpoint"]["ok"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn campaigns_paused_by_an_outage_resume_after_a_restart_once_the_endpoint_is_back() {
    use crate::served::{count, csv_of, state, Served};
    let addr = free_port();
    let s = Scratch::new(
        &format!("http://{addr}"),
        "",
        "[run]\noutage_probe_initial = \"200ms\"\noutage_probe_max = \"500ms\"\n",
    );
    let served = Served::start(&s).await;
    let id = served.create("restart", &csv_of(8, 5)).await;
    served
        .wait_campaign(id, "paused by the outage", |c| {
            state(c) == "paused"
                && c["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("endpoint unreachable since"))
        })
        .await;
    served.signal("-TERM");
    let (code, log) = served.wait_exit().await;
    assert_eq!(code, 0, "{log}");

    // Back up while the service was down: the restarted service resumes what the outage
    // paused, without an operator.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let mock = MockServer::spawn_on(listener, mock_options()).expect("stand-in");
    let served = Served::start(&s).await;
    let c = served
        .wait_campaign(id, "completed after the restart", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 5, "{c}");
    assert_eq!(mock.stats().calls_per_callee.len(), 5);
}
