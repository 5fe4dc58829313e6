//! The API refuses cleanly and says why, in one shape: every refusal is JSON
//! `{"error": {"code", "message"}}` (the HTTP layer's own included), settings are checked before
//! anything is kept and with the config's ranges, ad-hoc calls' names are theirs alone, an
//! Idempotency-Key answers only for the request it was first sent with, and a campaign whose
//! contacts are not all in is not resumed.
//!
//! `serve` runs in-process on port 0 against the stand-in, with a small body limit, so the
//! store can be prepared before it starts and inspected while it runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use ccc_dialer::dispatch::{now_ms, Stop};
use ccc_dialer::mock::MockServer;
use ccc_dialer::server::{CampaignSettings, CreateError, Service};
use ccc_dialer::store::{NewCampaign, Store};

use crate::served::{in_process, TOKEN};
use crate::support::*;

const MAX_BODY: usize = 64 * 1024;

struct Api {
    base: String,
    http: reqwest::Client,
    svc: Arc<Service>,
    uploads: std::path::PathBuf,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _mock: MockServer,
    scratch: Scratch,
}

/// What the service answered: status, headers, and the body as JSON (a string if it is not).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// The answer is the error envelope with this status and code; returns the message.
    fn refused(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content-type {ct:?}");
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        let message = self.body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.message: {}", self.body));
        assert!(!message.is_empty());
        message
    }
}

/// Start `serve`; `prepare` sees the store before the service does.
async fn start(prepare: impl AsyncFnOnce(&Store)) -> Api {
    let p = in_process(MAX_BODY, prepare).await;
    Api {
        base: p.base,
        http: reqwest::Client::new(),
        svc: p.svc,
        uploads: p.uploads,
        stop: p.stop,
        task: p.task,
        _mock: p.mock,
        scratch: p.scratch,
    }
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.bearer_auth(TOKEN).send().await.expect("an answer");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).body(body))
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn call(&self, key: Option<&str>, body: Value) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/v1/calls", self.base))
            .json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    /// A multipart upload with the contacts and, if given, settings, under `content_type`
    /// (`{b}` is replaced by the boundary).
    async fn multipart(&self, content_type: &str, csv: &str, settings: Option<Value>) -> Answer {
        let b = "api-refusals-boundary-7f1d";
        let mut body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"contacts\"\r\n\
             Content-Type: text/csv\r\n\r\n{csv}\r\n"
        );
        if let Some(s) = settings {
            body.push_str(&format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"settings\"\r\n\
                 Content-Type: application/json\r\n\r\n{s}\r\n"
            ));
        }
        body.push_str(&format!("--{b}--\r\n"));
        let req = self
            .http
            .post(format!("{}/v1/campaigns", self.base))
            .header("content-type", content_type.replace("{b}", b))
            .body(body);
        self.send(req).await
    }

    fn uploads_kept(&self) -> usize {
        std::fs::read_dir(&self.uploads).map_or(0, |d| d.count())
    }

    async fn stop(self) {
        drop(self.http);
        self.stop.send_replace(Stop::Now);
        // A guard against a hang, not a timing assertion.
        let served = tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("serve stops when asked")
            .expect("serve task");
        served.expect("serve ran without error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_layers_own_refusals_are_json_envelopes_with_their_status() {
    let api = start(async |_| {}).await;
    // Just over the limit: a body much larger than the socket buffers can still be on its way
    // when the refusal closes the connection (the client then sees a broken pipe, not a 413).
    let huge = "callee\n".to_string() + &"+8613800000000\n".repeat(MAX_BODY / 15 + 10);

    let a = api.post("/v1/calls", huge.clone()).await;
    a.refused(413, "too_large");
    let a = api.post("/v1/campaigns", huge.clone()).await;
    a.refused(413, "too_large");
    let a = api
        .multipart("multipart/form-data; boundary={b}", &huge, None)
        .await;
    a.refused(413, "too_large");

    let a = api
        .send(api.http.delete(format!("{}/v1/campaigns", api.base)))
        .await;
    let m = a.refused(405, "method_not_allowed");
    assert!(m.contains("DELETE") && m.contains("/v1/campaigns"), "{m}");
    let allow = a.headers.get("allow").and_then(|v| v.to_str().ok());
    assert!(
        allow.is_some_and(|v| v.contains("GET") && v.contains("POST")),
        "{allow:?}"
    );
    // Without a token too: a method no route serves is not an authentication question.
    let r = api
        .http
        .put(format!("{}/healthz", api.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status().as_u16(), 405);
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // Every 405 says what the path does serve (it once ended on an empty "allowed:").
    let m = body["error"]["message"].as_str().unwrap_or_default();
    assert!(m.ends_with("allowed: GET, HEAD"), "{m}");
    assert_eq!(allow.as_deref(), Some("GET, HEAD"), "{body}");

    // A path segment that is not UTF-8 once decoded.
    let a = api.get("/v1/campaigns/%FF").await;
    a.refused(400, "bad_request");
    let a = api.get("/v1/campaigns/1/contacts/%C3%28").await;
    a.refused(400, "bad_request");

    // What was JSON stays as it was.
    api.get("/v1/campaigns/999").await.refused(404, "not_found");
    api.get("/v1/nothing").await.refused(404, "not_found");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_call_settings_are_refused_before_the_upload_is_kept() {
    let api = start(async |_| {}).await;
    for (body, key) in [
        (
            json!({"callee": "+8613800000001", "ai_agent_id": 0}),
            "ai_agent_id",
        ),
        (
            json!({"callee": "+8613800000001", "callers": ["0086100", "12a"]}),
            "callers",
        ),
        (
            json!({"callee": "+8613800000001", "callers": [""]}),
            "callers",
        ),
    ] {
        let a = api.call(Some("k-bad"), body).await;
        let m = a.refused(422, "invalid_settings");
        assert!(m.starts_with(key), "{m}");
    }
    assert_eq!(api.uploads_kept(), 0, "nothing is kept for a refused call");
    let a = api.get("/v1/campaigns").await;
    assert_eq!(a.body["campaigns"], json!([]), "{}", a.body);
    // The key was not used up by the refusals.
    let a = api
        .call(Some("k-bad"), json!({"callee": "+8613800000001"}))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_settings_take_the_configs_ranges() {
    let api = start(async |_| {}).await;
    let mp = "multipart/form-data; boundary={b}";
    let a = api
        .multipart(
            mp,
            "callee\n+8613800000001\n",
            Some(json!({"max_attempts": 50})),
        )
        .await;
    assert_eq!(
        a.status, 201,
        "max_attempts 50 is within the config's 1 to 100: {}",
        a.body
    );
    for (settings, key) in [
        (json!({"max_attempts": 101}), "max_attempts = 101"),
        (
            json!({"max_ring_timeout_second": 0}),
            "max_ring_timeout_second = 0",
        ),
        (
            json!({"max_ring_timeout_second": 601}),
            "max_ring_timeout_second = 601",
        ),
        (
            json!({"backoff_initial": "1m", "backoff_max": "10s"}),
            "backoff_max = \"10s\"",
        ),
    ] {
        let a = api
            .multipart(mp, "callee\n+8613800000002\n", Some(settings))
            .await;
        let m = a.refused(422, "invalid_settings");
        assert!(m.starts_with(key), "{m}");
    }
    // Names are counted in characters: 200 two-byte characters are a valid name.
    let long = "é".repeat(200);
    let a = api
        .multipart(mp, "callee\n+8613800000003\n", Some(json!({"name": long})))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["campaign"]["name"], long.as_str());
    let a = api
        .multipart(
            mp,
            "callee\n+8613800000004\n",
            Some(json!({"name": format!("{long}é")})),
        )
        .await;
    let m = a.refused(422, "invalid_settings");
    assert!(m.contains("characters, not bytes"), "{m}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_is_recognised_whatever_the_case_of_its_media_type() {
    let api = start(async |_| {}).await;
    let a = api
        .multipart(
            "Multipart/Form-Data; boundary={b}",
            "callee,id\n+8613800000005,c5\n",
            Some(json!({"name": "mixed-case", "priority": 7})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["campaign"]["name"], "mixed-case");
    assert_eq!(a.body["campaign"]["priority"], 7);
    assert_eq!(a.body["intake"]["accepted"], 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_ad_hoc_calls_are_refused_for_uploads_and_changed_for_the_inbox() {
    let api = start(async |_| {}).await;
    let csv = "callee\n+8613800000006\n";
    let a = api.post("/v1/campaigns?name=call-k7", csv).await;
    let m = a.refused(422, "invalid_settings");
    assert!(m.contains("reserved for ad-hoc calls"), "{m}");
    let a = api
        .multipart(
            "multipart/form-data; boundary={b}",
            csv,
            Some(json!({"name": "call-k7"})),
        )
        .await;
    a.refused(422, "invalid_settings");
    assert_eq!(api.uploads_kept(), 0);
    // So the key is still the call's own: a call with it is placed, not answered by an upload.
    let a = api
        .call(Some("k7"), json!({"callee": "+8613800000006"}))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["campaign"], "call-k7");

    // An inbox file named like a call becomes a campaign of another name.
    let file = api.scratch.dir.path().join("call-k8.csv");
    std::fs::write(&file, "callee\n+8613800000007\n").expect("csv");
    let inbox = |fp: &str| Some(("call-k8.csv".to_string(), fp.to_string()));
    let fp = ccc_dialer::intake::fingerprint(&file).expect("fingerprint");
    let created = api
        .svc
        .create_campaign(
            &file,
            CampaignSettings::default(),
            "call-k8".into(),
            inbox(&fp),
        )
        .await
        .expect("created");
    assert_eq!(created.campaign.name, "inbox-call-k8");
    // A sidecar that names one is refused.
    let other = api.scratch.dir.path().join("other.csv");
    std::fs::write(&other, "callee\n+8613800000008\n").expect("csv");
    let fp = ccc_dialer::intake::fingerprint(&other).expect("fingerprint");
    let named = CampaignSettings {
        name: Some("call-k9".into()),
        ..Default::default()
    };
    let e = api
        .svc
        .create_campaign(
            &other,
            named,
            "other".into(),
            Some(("other.csv".into(), fp)),
        )
        .await
        .expect_err("a reserved name");
    assert!(
        matches!(&e, CreateError::Input(m) if m.contains("reserved for ad-hoc calls")),
        "{e}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_only_the_request_it_was_first_sent_with() {
    let api = start(async |_| {}).await;
    let first = json!({"callee": "+8613800000010", "variables": {"name": "Li"}});
    let a = api.call(Some("order-1"), first.clone()).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.body["campaign_id"].clone();
    // The same body again: the same call.
    let a = api.call(Some("order-1"), first).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["campaign_id"], id);
    for other in [
        json!({"callee": "+8613800000011", "variables": {"name": "Li"}}),
        json!({"callee": "+8613800000010", "variables": {"name": "Han"}}),
        json!({"callee": "+8613800000010"}),
        json!({"callee": "+8613800000010", "variables": {"name": "Li"}, "ai_agent_id": 99}),
        json!({"callee": "+8613800000010", "variables": {"name": "Li"}, "callers": ["0086100"]}),
    ] {
        let a = api.call(Some("order-1"), other.clone()).await;
        let m = a.refused(409, "conflict");
        assert!(m.contains("used for a different request"), "{other}: {m}");
    }
    let a = api.get("/v1/campaigns").await;
    assert_eq!(
        a.body["campaigns"].as_array().map(Vec::len),
        Some(1),
        "one call, however often the key is sent"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_intake_was_cut_off_and_whose_file_is_gone_is_not_resumed() {
    // A campaign created, its intake cut off by a crash, and its uploaded file since removed:
    // the service pauses it at start with the reason.
    let mut id = 0;
    let api = start(async |store: &Store| {
        let c = store
            .create_campaign_with(
                NewCampaign {
                    name: "cut-off".into(),
                    fingerprint: "0".repeat(64),
                    source: Path::new("/nonexistent/uploads/gone.csv")
                        .display()
                        .to_string(),
                    settings: Some("{}".into()),
                    priority: 0,
                    inbox: None,
                    paused: None,
                },
                now_ms(),
            )
            .await
            .expect("campaign");
        id = c.id;
    })
    .await;
    let path = format!("/v1/campaigns/{id}");
    let mut c = api.get(&path).await;
    for _ in 0..200 {
        if c.body["state"] == "paused" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        c = api.get(&path).await;
    }
    assert_eq!(c.body["state"], "paused", "{}", c.body);

    let a = api.post(&format!("{path}/resume"), "").await;
    let m = a.refused(409, "conflict");
    assert!(
        m.contains("intake has not finished") && m.contains("gone"),
        "{m}"
    );
    let c = api.get(&path).await;
    assert_eq!(
        c.body["state"], "paused",
        "not left active and stuck: {}",
        c.body
    );
    // Cancelling it is still possible.
    let a = api.post(&format!("{path}/cancel"), "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_beyond_the_configs_ranges_are_refused_not_clamped_or_parked() {
    let api = start(async |_| {}).await;
    let mp = "multipart/form-data; boundary={b}";
    for (settings, key) in [
        // Would park every retry at next_at = i64::MAX: the campaign active for ever.
        (
            json!({"backoff_initial": "99999999999999d"}),
            "backoff_initial = \"99999999999999d\": expected a duration of at most 30d",
        ),
        (json!({"backoff_max": "31d"}), "backoff_max = \"31d\""),
        (
            json!({"ai_agent_id": u64::MAX}),
            "ai_agent_id = 18446744073709551615: expected a positive integer up to 9223372036854775807",
        ),
        (json!({"priority": -5}), "priority = -5: expected an integer from 0 to 9"),
        (json!({"priority": i64::MAX}), "priority = 9223372036854775807"),
        (json!({"variables": {"": "x"}}), "variables: \"\""),
    ] {
        let a = api
            .multipart(mp, "callee\n+8613800000021\n", Some(settings))
            .await;
        let m = a.refused(422, "invalid_settings");
        assert!(m.starts_with(key), "{m}");
    }
    // The query's priority takes the same path.
    for p in ["-5", "10", "9223372036854775807"] {
        let a = api
            .post(
                &format!("/v1/campaigns?priority={p}"),
                "callee\n+8613800000022\n",
            )
            .await;
        let m = a.refused(422, "invalid_settings");
        assert!(m.starts_with(&format!("priority = {p}:")), "{m}");
    }
    // And an ad-hoc call's agent.
    let a = api
        .call(
            None,
            json!({"callee": "+8613800000023", "ai_agent_id": u64::MAX}),
        )
        .await;
    a.refused(422, "invalid_settings");
    let a = api.get("/v1/campaigns").await;
    assert_eq!(a.body["campaigns"], json!([]), "{}", a.body);
    assert_eq!(
        api.uploads_kept(),
        0,
        "nothing is kept for a refused request"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_form_parts_are_refused_rather_than_the_last_one_winning() {
    let api = start(async |_| {}).await;
    let b = "dup-parts-boundary-3c9e";
    let part = |name: &str, ct: &str, body: &str| {
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {ct}\r\n\r\n{body}\r\n"
        )
    };
    for body in [
        part("contacts", "text/csv", "callee\n+8613800000024\n")
            + &part("contacts", "text/csv", "callee\n+8613800000025\n"),
        part("contacts", "text/csv", "callee\n+8613800000024\n")
            + &part("settings", "application/json", r#"{"priority": 1}"#)
            + &part("settings", "application/json", r#"{"priority": 2}"#),
    ] {
        let req = api
            .http
            .post(format!("{}/v1/campaigns", api.base))
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(format!("{body}--{b}--\r\n"));
        let a = api.send(req).await;
        let m = a.refused(422, "invalid_settings");
        assert!(m.contains("more than once"), "{m}");
    }
    let a = api.get("/v1/campaigns").await;
    assert_eq!(a.body["campaigns"], json!([]), "{}", a.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repost_with_the_same_name_and_contacts_but_other_settings_is_a_conflict() {
    let api = start(async |_| {}).await;
    let mp = "multipart/form-data; boundary={b}";
    let csv = "callee\n+8613800000026\n";
    let first = api
        .multipart(mp, csv, Some(json!({"name": "resent", "max_attempts": 2})))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    // The same request again: the same campaign.
    let again = api
        .multipart(mp, csv, Some(json!({"name": "resent", "max_attempts": 2})))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["campaign"]["id"], first.body["campaign"]["id"]);
    // Other settings: refused, not answered with a campaign that ignores them.
    let other = api
        .multipart(mp, csv, Some(json!({"name": "resent", "max_attempts": 5})))
        .await;
    let m = other.refused(409, "conflict");
    assert!(m.contains("other settings"), "{m}");
    let shown = api
        .get(&format!("/v1/campaigns/{}", first.body["campaign"]["id"]))
        .await;
    assert_eq!(shown.body["settings"]["max_attempts"], 2, "{}", shown.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_an_upload_never_disclose_where_the_server_keeps_it() {
    let api = start(async |_| {}).await;
    let uploads = api.uploads.display().to_string();
    for csv in [
        "number\n123\n",
        "callee,callee\n+8613800000041,+8613800000042\n",
    ] {
        let a = api.post("/v1/campaigns", csv).await;
        let m = a.refused(422, "invalid_contacts");
        assert!(m.starts_with("contacts: line 1: "), "{m}");
        assert!(!m.contains(&uploads) && !m.contains("uploads/"), "{m}");
    }
    api.stop().await;
}
