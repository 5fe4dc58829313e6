//! What the AI agent learned (issue 14): post-call tags (DescribeAICallExtractResult) and the
//! analysis (DescribeAIAnalysisResult) of every answered call land in the store and in the
//! results as `tag:NAME` / `summary` / `mood` / `intention` columns; an opt-out tag puts the
//! number on the account's own do-not-call list, which every campaign honours; that list is
//! exported and edited by `ccc-dialer dnc` and the API; a run killed while tags arrive loses
//! none and stores none twice. All through the stand-in over loopback.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ccc_dialer::mock::{ManualClock, MockOptions, MockServer};
use ccc_dialer::outcomes::ai_results::Tag;
use ccc_dialer::store::{Store, TagActions};
use serde_json::{json, Value};

use crate::served::{Served, TOKEN};
use crate::support::{api_call, bin, code_of, error_code, outcome_options, stderr_of, Scratch};

/// `[outcomes]` for tests: ask at once, again every second; tags and analysis on.
const TAGS: &str = "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\ngive_up_after = \"15s\"\nreconcile_after = \"10s\"\ntags = true\nanalysis = true\n";
const OPT_OUT: &str = "[dnc]\nopt_out_tag = { name = \"opt_out\", value = \"yes\" }\n";

fn callee(i: usize) -> String {
    format!("0086138{:08}", i)
}

async fn mock(faults: &str) -> MockServer {
    MockServer::spawn(outcome_options(faults))
        .await
        .expect("stand-in starts")
}

fn scratch(mock: &MockServer, contacts: usize, extra: &str) -> Scratch {
    let s = Scratch::new(&mock.endpoint(), "", &format!("{TAGS}\n{extra}"));
    let mut csv = String::from("callee\n");
    for i in 0..contacts {
        csv.push_str(&format!("+86138{:08}\n", i));
    }
    s.write_contacts(&csv);
    s
}

async fn run(s: &Scratch) -> std::process::Output {
    let mut cmd = s.run_command();
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn ccc-dialer"))
        .await
        .expect("join")
}

/// The results file as header → cell maps, by callee, and its header.
pub(crate) fn table(
    path: &std::path::Path,
) -> (Vec<String>, HashMap<String, HashMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).expect("results readable");
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut rows = HashMap::new();
    for rec in r.records() {
        let rec = rec.expect("a well-formed row");
        assert_eq!(rec.len(), header.len(), "every row as wide as the header");
        let row: HashMap<String, String> = header
            .iter()
            .cloned()
            .zip(rec.iter().map(String::from))
            .collect();
        rows.insert(row["callee"].clone(), row);
    }
    (header, rows)
}

fn command(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("spawn ccc-dialer")
}

#[tokio::test]
async fn tags_and_analysis_appear_as_columns_in_the_order_first_seen() {
    let faults = format!(
        r#"
[[rule]]
callee = "{c0}"
calls = ["answered:1s"]
tags = [{{ interested = true, note = "=cmd|' /C calc'!A0" }}]
analysis = [{{ summary = "wants a brochure", mood = "positive", intention = "buy" }}]
[[rule]]
callee = "{c1}"
calls = ["answered:1s"]
tags = [{{ interested = false, intent = ["later", "email"], score = 7 }}]
[[rule]]
callee = "{c2}"
calls = ["busy"]
"#,
        c0 = callee(0),
        c1 = callee(1),
        c2 = callee(2)
    );
    let mock = mock(&faults).await;
    let s = scratch(&mock, 3, "");
    let out = run(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let (header, rows) = table(&s.results);
    // The fixed columns, then the analysis, then one column per tag name, each once.
    let fixed = ccc_dialer::results::COLUMNS.len();
    assert_eq!(
        header[..fixed],
        ccc_dialer::results::COLUMNS.map(String::from)
    );
    assert_eq!(header[fixed..fixed + 3], ["summary", "mood", "intention"]);
    let tags: Vec<&str> = header[fixed + 3..].iter().map(String::as_str).collect();
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["tag:intent", "tag:interested", "tag:note", "tag:score"]
    );
    let r0 = &rows[&callee(0)];
    assert_eq!(r0["outcome"], "answered");
    assert_eq!(r0["tag:interested"], "true");
    // A tag value a spreadsheet would run is neutralised like every other cell.
    assert_eq!(r0["tag:note"], "'=cmd|' /C calc'!A0");
    assert_eq!(
        (
            r0["summary"].as_str(),
            r0["mood"].as_str(),
            r0["intention"].as_str()
        ),
        ("wants a brochure", "positive", "buy")
    );
    assert_eq!(r0["tag:score"], "");
    let r1 = &rows[&callee(1)];
    assert_eq!(r1["tag:interested"], "false");
    assert_eq!(r1["tag:intent"], "later;email");
    assert_eq!(r1["tag:score"], "7");
    assert_eq!(r1["mood"], "neutral");
    // Not answered: nothing was asked for it, every cell empty.
    let r2 = &rows[&callee(2)];
    assert_eq!(r2["outcome"], "busy");
    assert!(header[fixed..].iter().all(|h| r2[h].is_empty()), "{r2:?}");
    let stats = mock.stats();
    for action in ["DescribeAICallExtractResult", "DescribeAIAnalysisResult"] {
        let a = &stats.actions[action];
        assert!(a.requests >= 2, "{action}: {a:?}");
        assert_eq!(a.windows_over_limit, 0, "{action}");
        assert!(a.errors_by_code.is_empty(), "{action}: {a:?}");
    }
    // The order is the store's first-seen order, and `export` writes the same file.
    let store = Store::open(&s.state).unwrap();
    let c = store.find_campaign("run").await.unwrap().unwrap();
    let names = store.campaign_tag_names(c.id).await.unwrap();
    assert_eq!(
        names.iter().map(|n| format!("tag:{n}")).collect::<Vec<_>>(),
        header[fixed + 3..]
    );
    drop(store);
    let exported = s.dir.path().join("exported.csv");
    let out = command(&[
        "export",
        "--state",
        s.state.to_str().unwrap(),
        "--results",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&s.results).unwrap()
    );
    // `status --callee` shows the session's tags and analysis.
    let out = command(&[
        "status",
        "--state",
        s.state.to_str().unwrap(),
        "--callee",
        &callee(1),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("intent=later;email"), "{text}");
    assert!(text.contains("score=7"), "{text}");
    assert!(text.contains("analysis: mood neutral"), "{text}");
}

#[tokio::test]
async fn a_run_killed_while_tags_arrive_loses_none_and_stores_none_twice() {
    let n = 30;
    let mut faults = String::new();
    for i in 0..n {
        faults.push_str(&format!(
            "[[rule]]\ncallee = \"{}\"\ncalls = [\"answered:0s\"]\ntags = [{{ callback = {}, n = {i} }}]\n",
            callee(i),
            i % 2 == 0
        ));
    }
    let mock = mock(&faults).await;
    let s = scratch(&mock, n, "");
    let mut child = s.spawn();
    // Kill the run the moment its first tag request reached the stand-in: its answer is
    // arriving or being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.action_requests("DescribeAICallExtractResult") == 0 {
        assert!(Instant::now() < deadline, "no tag request");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let out = run(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let (_, rows) = table(&s.results);
    assert_eq!(rows.len(), n);
    for i in 0..n {
        let r = &rows[&callee(i)];
        assert_eq!(r["tag:n"], i.to_string(), "{r:?}");
        assert_eq!(r["tag:callback"], (i % 2 == 0).to_string(), "{r:?}");
    }
    // Every session has its two tags exactly once, and the same answer again changes nothing.
    let store = Store::open(&s.state).unwrap();
    let c = store.find_campaign("run").await.unwrap().unwrap();
    let mut sessions = std::collections::BTreeSet::new();
    for r in rows.values() {
        let tags = store.session_tags(r["session_id"].clone()).await.unwrap();
        assert_eq!(tags.len(), 2, "{tags:?}");
        sessions.insert(r["session_id"].clone());
    }
    assert_eq!(sessions.len(), n);
    let session = rows[&callee(0)]["session_id"].clone();
    let again = store
        .record_tags(
            session.clone(),
            vec![Tag {
                name: "n".into(),
                info_type: "Number".into(),
                info_content: String::new(),
                value: "999".into(),
                result: "{}".into(),
            }],
            TagActions::default(),
            0,
        )
        .await
        .unwrap();
    assert!(!again.new);
    let tags = store.session_tags(session).await.unwrap();
    assert_eq!(
        tags.iter()
            .find(|t| t.name == "n")
            .map(|t| t.value.as_str()),
        Some("0")
    );
    assert_eq!(store.pending_tag_checks(vec![c.id]).await.unwrap(), 0);
}

#[tokio::test]
async fn an_opt_out_is_exported_removed_with_a_reason_and_refused_twice() {
    let faults = format!(
        "[[rule]]\ncallee = \"{}\"\ncalls = [\"answered:1s\"]\ntags = [{{ opt_out = true }}]\n\
         [[rule]]\ncallee = \"{}\"\ncalls = [\"answered:1s\"]\ntags = [{{ opt_out = false }}]\n",
        callee(0),
        callee(1)
    );
    let mock = mock(&faults).await;
    let s = scratch(&mock, 2, OPT_OUT);
    let out = run(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let state = s.state.to_str().unwrap().to_string();
    let exported = s.dir.path().join("dnc.csv");
    let export = |to: &std::path::Path| {
        command(&[
            "dnc",
            "export",
            "--state",
            &state,
            "--out",
            to.to_str().unwrap(),
        ])
    };
    let out = export(&exported);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&exported).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("number,added_at,source,campaign_id,campaign,session_id,reason"));
    let (_, rows) = table(&s.results);
    let session = &rows[&callee(0)]["session_id"];
    assert!(lines[1].starts_with(&format!("{},", callee(0))), "{text}");
    assert!(lines[1].contains(",opt_out_tag,"), "{text}");
    assert!(lines[1].contains(&format!(",run,{session},")), "{text}");
    assert!(lines[1].contains("opt_out=yes"), "{text}");
    // The export is itself a valid do-not-call list for `[calling] dnc_files`.
    let norm = ccc_dialer::calling::dnc::Normalise {
        default_country: "CN".into(),
        callee_format: ccc_dialer::config::CalleeFormat::DoubleZero,
    };
    let (set, report) =
        ccc_dialer::calling::dnc::load(std::slice::from_ref(&exported), &norm).unwrap();
    assert_eq!(report.bad_count, 0);
    assert!(set.contains(&callee(0)));
    // Off the list with a reason (the number as written in a contacts file, read with the
    // config); a second removal finds nothing (exit 2), and a reason is required.
    let config = s.config.to_str().unwrap().to_string();
    let out = command(&[
        "dnc",
        "remove",
        "+8613800000000",
        "--state",
        &state,
        "--config",
        &config,
        "--reason",
        "",
    ]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    let out = command(&[
        "dnc",
        "remove",
        "+8613800000000",
        "--state",
        &state,
        "--config",
        &config,
        "--reason",
        "called us back, ticket 12",
    ]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let out = command(&[
        "dnc",
        "remove",
        &callee(0),
        "--state",
        &state,
        "--reason",
        "again",
    ]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("not on the account's own do-not-call list"));
    let out = export(&exported);
    assert_eq!(code_of(&out), 0);
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap().lines().count(),
        1
    );
}

/// The contact's first session's tags, from the API's contact view.
async fn view_tags(served: &Served, campaign: i64, number: &str) -> Vec<Value> {
    let (status, v) = served
        .get(&format!("/v1/campaigns/{campaign}/contacts/{number}"))
        .await;
    assert_eq!(status, 200, "{v}");
    v["sessions"][0]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_opt_out_heard_in_one_campaign_ends_the_numbers_pending_contact_in_another() {
    let x = callee(0);
    let faults = format!(
        "[[rule]]\ncallee = \"{x}\"\ncalls = [\"answered:1s\"]\ntags = [{{ opt_out = true, topic = \"=1+1\" }}]\n"
    );
    let mock = mock(&faults).await;
    let s = Scratch::new(&mock.endpoint(), "", &format!("{TAGS}\n{OPT_OUT}"));
    let served = Served::start(&s).await;
    // B holds the number, paused (nothing dialled); A calls it and hears the opt-out.
    let (status, body) = served
        .post(
            "/v1/campaigns?name=b&paused=true",
            "callee\n+8613800000000\n+8613800000001\n",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = body["campaign"]["id"].as_i64().unwrap();
    let a = served.create("a", "callee\n+8613800000000\n").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = served.get("/v1/dnc").await;
        assert_eq!(status, 200, "{v}");
        if v.as_str().is_some_and(|t| t.contains(&x)) {
            break;
        }
        assert!(Instant::now() < deadline, "no opt-out on the list: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The contact view shows the session's tags.
    let tags = view_tags(&served, a, "+8613800000000").await;
    assert!(
        tags.iter()
            .any(|t| t["name"] == "opt_out" && t["value"] == "true" && t["type"] == "Boolean"),
        "{tags:?}"
    );
    // GET results has the tag columns, neutralised.
    let text = served
        .http
        .get(served.url(&format!("/v1/campaigns/{a}/results")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains(",tag:opt_out") && header.contains(",tag:topic"),
        "{header}"
    );
    assert!(
        text.contains(",'=1+1") || text.contains(",\"'=1+1\""),
        "{text}"
    );
    // B resumed: its gate check ends the number's contact `Dnc`; the other one is called.
    let (status, v) = served.post(&format!("/v1/campaigns/{b}/resume"), "").await;
    assert_eq!(status, 200, "{v}");
    served
        .wait_campaign(b, "b completed", |c| c["state"] == "completed")
        .await;
    let (_, xb) = served
        .get(&format!("/v1/campaigns/{b}/contacts/+8613800000000"))
        .await;
    assert_eq!(
        (xb["status"].as_str(), xb["error_code"].as_str()),
        (Some("skipped"), Some("Dnc")),
        "{xb}"
    );
    let (_, yb) = served
        .get(&format!("/v1/campaigns/{b}/contacts/+8613800000001"))
        .await;
    assert_eq!(yb["status"], "placed", "{yb}");
    let created_for_x = mock.calls().iter().filter(|c| c.callee == x).count();
    assert_eq!(created_for_x, 1, "the number was called once, by A");
    // Taken off the list over the API: the list is empty again.
    let (status, v) = served
        .post(
            "/v1/dnc/remove",
            json!({"number": "+8613800000000", "reason": "asked to be called"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["removed"].as_bool(), v["number"].as_str()),
        (Some(true), Some(x.as_str())),
        "{v}"
    );
    let (_, v) = served.get("/v1/dnc").await;
    assert_eq!(v.as_str().map(|t| t.lines().count()), Some(1), "{v}");
    let (status, v) = served
        .post(
            "/v1/dnc/remove",
            json!({"number": "+8613800000000", "reason": "x"}).to_string(),
        )
        .await;
    assert_eq!((status, v["removed"].as_bool()), (200, Some(false)), "{v}");
    let (status, _) = served
        .post(
            "/v1/dnc/remove",
            json!({"number": "+8613800000000", "reason": " "}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
}

const T0: i64 = 1_790_000_000;
const APP: i64 = 1400000000;

#[tokio::test]
async fn the_stand_in_serves_the_analysis_only_a_while_after_the_call_in_its_own_window() {
    let clock = ManualClock::at(T0);
    let faults = r#"
[[rule]]
callee = "008613800000001"
calls = ["answered:10s"]
analysis = [{ summary = "wants a call back", mood = "positive", intention = "callback" }]
"#;
    let mock = MockServer::spawn(MockOptions {
        clock: clock.clock(),
        ..outcome_options(faults)
    })
    .await
    .unwrap();
    let r = api_call(
        &mock,
        "CreateAIAgentCall",
        &json!({"SdkAppId": APP, "AIAgentId": 15, "Callee": "008613800000001"}).to_string(),
        T0,
    )
    .await;
    let session = r["SessionId"].as_str().unwrap().to_string();
    let action = "DescribeAIAnalysisResult";
    let ask = |start: i64| {
        json!({"SdkAppId": APP, "SessionId": session, "StartTime": start, "EndTime": clock.now()})
            .to_string()
    };
    // While the call talks, and the second its record appears: nothing yet.
    for at in [T0, T0 + 10] {
        clock.set(at);
        let r = api_call(&mock, action, &ask(T0 - 60), at).await;
        assert_eq!(r["ResultList"], json!([]), "at +{}: {r}", at - T0);
    }
    clock.set(T0 + 11);
    let r = api_call(&mock, action, &ask(T0 - 60), clock.now()).await;
    let mut items = r["ResultList"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|i| i["Type"].as_str().unwrap_or("").to_string());
    assert_eq!(
        items,
        [
            json!({"Type": "intention", "Result": "callback"}),
            json!({"Type": "mood", "Result": "positive"}),
            json!({"Type": "summary", "Result": "wants a call back"})
        ],
        "{r}"
    );
    let mut unknown: Value = serde_json::from_str(&ask(T0 - 60)).unwrap();
    unknown["Extra"] = json!(1);
    let r = api_call(&mock, action, &unknown.to_string(), clock.now()).await;
    assert_eq!(error_code(&r), "UnknownParameter", "{r}");
    // Counted as an action of its own (its own figures and window), apart from the tags'.
    let stats = mock.stats();
    assert_eq!(stats.actions[action].requests, 4);
    assert_eq!(stats.actions[action].errors_by_code["UnknownParameter"], 1);
    assert!(!stats.actions.contains_key("DescribeAICallExtractResult"));
    assert_eq!(stats.requests, 1, "one CreateAIAgentCall at the top level");
}

#[test]
fn the_opt_out_tag_and_tags_are_refused_without_what_they_need() {
    let parse = |extra: &str| {
        ccc_dialer::config::Config::parse(
            std::path::Path::new("dialer.toml"),
            &format!("[campaign]\nsdk_app_id = 1400000000\nai_agent_id = 15\n{extra}"),
        )
        .map_err(|e| e.to_string())
    };
    let e = parse(OPT_OUT).unwrap_err();
    assert!(
        e.starts_with("dialer.toml: dnc.opt_out_tag = (set): expected [outcomes] enabled = true and tags = true"),
        "{e}"
    );
    let e = parse("[outcomes]\ntags = true\n").unwrap_err();
    assert!(
        e.starts_with("dialer.toml: outcomes.tags = true: expected false unless outcomes.enabled"),
        "{e}"
    );
    let e = parse(&format!(
        "{TAGS}[dnc]\nopt_out_tag = {{ name = \"\", value = \"yes\" }}\n"
    ))
    .unwrap_err();
    assert!(e.contains("dnc.opt_out_tag.name"), "{e}");
    let c = parse(&format!("{TAGS}{OPT_OUT}")).unwrap();
    let rule = c.dnc.opt_out_tag.expect("the rule");
    assert_eq!(
        (rule.name.as_str(), rule.value.as_str()),
        ("opt_out", "yes")
    );
    assert!(c.outcomes.tags && c.outcomes.analysis);
}
