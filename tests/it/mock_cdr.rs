//! The stand-in's call records: every created call lives (rings, is answered or not, talks,
//! ends) and its record is returned by DescribeTelCdr only `cdr_delay` after the end, under the
//! real request rules and a window of its own. The stand-in's clock is driven by hand, so no
//! test waits for time to pass.

use std::collections::BTreeSet;
use std::time::Duration;

use ccc_dialer::mock::{ManualClock, MockOptions, MockServer};
use serde_json::{json, Value};

use crate::support::{api_call, error_code, outcome_options};

const T0: i64 = 1_790_000_000;
const APP: i64 = 1400000000;

fn create_body(callee: &str) -> String {
    json!({"SdkAppId": APP, "AIAgentId": 15, "Callee": callee, "Callers": ["008601012345678"]})
        .to_string()
}

async fn spawn(faults: &str, clock: &ManualClock, f: impl FnOnce(&mut MockOptions)) -> MockServer {
    let mut opts = MockOptions {
        clock: clock.clock(),
        ..outcome_options(faults)
    };
    f(&mut opts);
    MockServer::spawn(opts).await.unwrap()
}

/// CreateAIAgentCall at the stand-in's clock; returns the SessionId.
async fn create(mock: &MockServer, clock: &ManualClock, callee: &str) -> String {
    let r = api_call(mock, "CreateAIAgentCall", &create_body(callee), clock.now()).await;
    r["SessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("call created: {r}"))
        .to_string()
}

/// DescribeTelCdr over [T0 - 60, now] with `extra` fields; returns the `Response` object.
async fn describe(mock: &MockServer, clock: &ManualClock, page: i64, extra: Value) -> Value {
    let mut body = json!({
        "SdkAppId": APP,
        "StartTimeStamp": T0 - 60,
        "EndTimeStamp": clock.now(),
        "PageSize": 100,
        "PageNumber": page,
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    api_call(mock, "DescribeTelCdr", &body.to_string(), clock.now()).await
}

fn session_ids(r: &Value) -> Vec<String> {
    r["TelCdrList"]
        .as_array()
        .unwrap_or_else(|| panic!("a TelCdrList: {r}"))
        .iter()
        .map(|c| c["SessionId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn each_request_rule_is_refused_with_the_service_code() {
    let clock = ManualClock::at(T0);
    let mock = spawn("", &clock, |_| {}).await;
    let now = T0;
    let q = |s: i64, e: i64, size: i64, n: i64| json!({"SdkAppId": APP, "StartTimeStamp": s, "EndTimeStamp": e, "PageSize": size, "PageNumber": n});
    let with = |mut v: Value, key: &str, x: Value| {
        v[key] = x;
        v
    };
    let without = |mut v: Value, key: &str| {
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let ok = q(now - 600, now, 100, 0);
    let ids = |n: usize| Value::from((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("a good request", ok.clone(), ""),
        (
            "no SdkAppId",
            without(ok.clone(), "SdkAppId"),
            "MissingParameter",
        ),
        (
            "no StartTimeStamp",
            without(ok.clone(), "StartTimeStamp"),
            "MissingParameter",
        ),
        (
            "no EndTimeStamp",
            without(ok.clone(), "EndTimeStamp"),
            "MissingParameter",
        ),
        (
            "no PageSize",
            without(ok.clone(), "PageSize"),
            "MissingParameter",
        ),
        (
            "no PageNumber",
            without(ok.clone(), "PageNumber"),
            "MissingParameter",
        ),
        (
            "a string SdkAppId",
            with(ok.clone(), "SdkAppId", json!("1400000000")),
            "InvalidParameter",
        ),
        (
            "a field the action lacks",
            with(ok.clone(), "Callee", json!("0086")),
            "UnknownParameter",
        ),
        (
            "Phones not a list",
            with(ok.clone(), "Phones", json!("008613800138000")),
            "InvalidParameter",
        ),
        (
            "PageSize 101",
            q(now - 600, now, 101, 0),
            "InvalidParameterValue",
        ),
        (
            "PageSize 0",
            q(now - 600, now, 0, 0),
            "InvalidParameterValue",
        ),
        (
            "PageNumber -1",
            q(now - 600, now, 100, -1),
            "InvalidParameterValue",
        ),
        (
            "end before start",
            q(now, now - 600, 100, 0),
            "InvalidParameterValue",
        ),
        (
            "a span of 90 days",
            q(now - 90 * 86_400, now, 100, 0),
            "InvalidParameterValue",
        ),
        (
            "a span just under 90 days",
            q(now - 90 * 86_400 + 1, now, 100, 0),
            "",
        ),
        (
            "milliseconds",
            q((now - 600) * 1000, now * 1000, 100, 0),
            "InvalidParameterValue",
        ),
        (
            "101 SessionIds",
            with(ok.clone(), "SessionIds", ids(101)),
            "InvalidParameterValue",
        ),
        (
            "100 SessionIds",
            with(ok.clone(), "SessionIds", ids(100)),
            "",
        ),
        (
            "101 Phones",
            with(ok.clone(), "Phones", ids(101)),
            "InvalidParameterValue",
        ),
    ];
    for (what, body, want) in &cases {
        let r = api_call(&mock, "DescribeTelCdr", &body.to_string(), now).await;
        assert_eq!(error_code(&r), *want, "{what}: {r}");
        if want.is_empty() {
            assert_eq!(r["TotalCount"], 0, "{what}: {r}");
        } else {
            assert!(
                r["RequestId"].is_string(),
                "{what}: the service's envelope: {r}"
            );
            assert!(r["Error"]["Message"].is_string(), "{what}: {r}");
        }
    }
    // Signatures are checked for this action as for CreateAIAgentCall: a body changed after
    // signing, or a timestamp 301 s off the stand-in's clock, is refused.
    let req = crate::support::signed_request(&mock, "DescribeTelCdr", &ok.to_string(), now);
    let r: Value = req
        .body(q(now - 10, now, 100, 0).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&r["Response"]), "AuthFailure.SignatureFailure");
    let r = api_call(&mock, "DescribeTelCdr", &ok.to_string(), now - 301).await;
    assert_eq!(error_code(&r), "AuthFailure.SignatureExpire");

    let stats = mock.stats();
    let d = &stats.actions["DescribeTelCdr"];
    assert_eq!(d.requests, cases.len() as u64 + 2);
    assert_eq!(d.errors_by_code["MissingParameter"], 5);
    assert_eq!(d.errors_by_code["InvalidParameterValue"], 8);
    // None of it is CreateAIAgentCall's.
    assert_eq!(stats.requests, 0);
    assert!(
        stats.errors_by_code.is_empty(),
        "{:?}",
        stats.errors_by_code
    );
    assert_eq!(stats.signature_failures, 1);
}

#[tokio::test]
async fn a_record_appears_only_the_delay_after_its_call_ended() {
    let clock = ManualClock::at(T0);
    let faults = "[[rule]]\ncallee = \"008613800138000\"\ncalls = [\"answered:30s\"]\n";
    let mock = spawn(faults, &clock, |o| {
        o.cdr_delay = Duration::from_secs(5);
        o.call_length.ring = ccc_dialer::mock::Length::Fixed(Duration::from_secs(4));
    })
    .await;
    let session = create(&mock, &clock, "008613800138000").await;
    // Rings 4 s, talks 30 s: ends at T0 + 34, visible from T0 + 39.
    for t in [T0, T0 + 34, T0 + 38] {
        clock.set(t);
        let r = describe(&mock, &clock, 0, json!({})).await;
        assert_eq!(
            (r["TotalCount"].as_u64(), session_ids(&r).len()),
            (Some(0), 0),
            "at {t}: {r}"
        );
    }
    clock.set(T0 + 39);
    let r = describe(&mock, &clock, 0, json!({})).await;
    assert_eq!(r["TotalCount"], 1, "{r}");
    let c = &r["TelCdrList"][0];
    assert_eq!(c["SessionId"], session.as_str());
    assert_eq!(c["Callee"], "008613800138000");
    assert_eq!(c["Caller"], "008601012345678");
    assert_eq!(c["Direction"], 1);
    assert_eq!(c["AIAgentId"], 15);
    assert_eq!(
        (&c["Time"], &c["StartTimestamp"], &c["RingTimestamp"]),
        (&json!(T0), &json!(T0), &json!(T0))
    );
    assert_eq!(c["AcceptTimestamp"], T0 + 4);
    assert_eq!(c["EndedTimestamp"], T0 + 34);
    assert_eq!(c["Duration"], 30);
    assert_eq!(
        (&c["EndStatus"], &c["EndStatusString"]),
        (&json!(1), &json!("ok"))
    );
    assert_eq!(c["HungUpSide"], "user");
    // The deprecated list carries the same records.
    assert_eq!(r["TelCdrs"], r["TelCdrList"]);
}

#[tokio::test]
async fn pages_return_every_record_once_and_the_filters_narrow_them() {
    let clock = ManualClock::at(T0);
    let mock = spawn("", &clock, |o| o.rate_limit = 0).await;
    let mut in_order = Vec::new();
    for i in 0..250 {
        // A second apart, so the order by StartTimestamp is the order of creation.
        clock.set(T0 + i);
        in_order.push(create(&mock, &clock, &format!("0086138{:08}", i)).await);
    }
    let created: BTreeSet<String> = in_order.iter().cloned().collect();
    // A call of another application is never among this one's records.
    let other = json!({"SdkAppId": 1400000001, "AIAgentId": 15, "Callee": "008613900000000"});
    api_call(&mock, "CreateAIAgentCall", &other.to_string(), clock.now()).await;
    clock.set(T0 + 300);
    let mut seen = Vec::new();
    for page in 0..4 {
        let r = describe(&mock, &clock, page, json!({})).await;
        assert_eq!(r["TotalCount"], 250, "{r}");
        let ids = session_ids(&r);
        assert_eq!(ids.len(), [100, 100, 50, 0][page as usize], "page {page}");
        seen.extend(ids);
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    assert_eq!(unique, created, "every record once");

    // SessionIds: exactly those (an unknown one is ignored).
    let wanted: Vec<String> = in_order[..3].to_vec();
    let mut ask = wanted.clone();
    ask.push("no-such-session".into());
    let r = describe(&mock, &clock, 0, json!({ "SessionIds": ask })).await;
    assert_eq!(r["TotalCount"], 3);
    let got: BTreeSet<String> = session_ids(&r).into_iter().collect();
    assert_eq!(got, wanted.into_iter().collect());
    // Phones: the calls of that number.
    let r = describe(&mock, &clock, 0, json!({"Phones": ["008613800000007"]})).await;
    assert_eq!(r["TotalCount"], 1);
    assert_eq!(r["TelCdrList"][0]["Callee"], "008613800000007");
    // Both: both apply.
    let both = |phone: &str| json!({"Phones": [phone], "SessionIds": [&in_order[0]]});
    let r = describe(&mock, &clock, 0, both("008613800000007")).await;
    assert_eq!(r["TotalCount"], 0, "{r}");
    let r = describe(&mock, &clock, 0, both("008613800000000")).await;
    assert_eq!(session_ids(&r), vec![in_order[0].clone()]);
    // The page order is by StartTimestamp.
    let r = describe(&mock, &clock, 0, json!({})).await;
    assert_eq!(session_ids(&r), in_order[..100].to_vec());
    // The time window: calls started in [T0 + 10, T0 + 19].
    let body = json!({"SdkAppId": APP, "StartTimeStamp": T0 + 10, "EndTimeStamp": T0 + 19, "PageSize": 100, "PageNumber": 0});
    let r = api_call(&mock, "DescribeTelCdr", &body.to_string(), clock.now()).await;
    assert_eq!(r["TotalCount"], 10, "{r}");
    assert_eq!(r["TelCdrList"][0]["Callee"], "008613800000010");
}

#[tokio::test]
async fn each_action_has_its_own_window() {
    // Judged by the stand-in's own arrival log per action, not by how fast this machine sends.
    let clock = ManualClock::at(T0);
    let mock = spawn("", &clock, |o| o.rate_limit = 3).await;
    for i in 0..3 {
        create(&mock, &clock, &format!("0086138{:08}", i)).await;
    }
    let mut refused = Vec::new();
    for _ in 0..6 {
        let r = describe(&mock, &clock, 0, json!({})).await;
        let code = error_code(&r);
        assert!(code.is_empty() || code == "RequestLimitExceeded", "{r}");
        refused.push(code == "RequestLimitExceeded");
    }
    // A describe is refused exactly when three admitted describes arrived within the second
    // before it; the three creates just before them never count.
    let arrivals = mock.action_arrivals("DescribeTelCdr");
    assert_eq!(arrivals.len(), 6);
    let mut admitted: Vec<std::time::Instant> = Vec::new();
    for (i, t) in arrivals.iter().enumerate() {
        let in_window = admitted
            .iter()
            .filter(|a| t.duration_since(**a) < Duration::from_secs(1))
            .count();
        assert_eq!(refused[i], in_window >= 3, "describe {i}: {refused:?}");
        if !refused[i] {
            admitted.push(*t);
        }
    }
    assert!(refused[..3].iter().all(|r| !r), "{refused:?}");
    let stats = mock.stats();
    let d = &stats.actions["DescribeTelCdr"];
    assert_eq!(d.requests, 6);
    assert_eq!(
        d.rate_limited,
        refused.iter().filter(|r| **r).count() as u64
    );
    assert!(d.max_in_any_window >= 1 && d.max_in_any_window <= 6);
    assert_eq!(stats.actions["CreateAIAgentCall"].requests, 3);
    // The top level is CreateAIAgentCall's alone.
    assert_eq!((stats.requests, stats.rate_limited), (3, 0));
    assert_eq!(mock.action_requests("DescribeTelCdr"), 6);
}

#[tokio::test]
async fn scripted_outcomes_end_as_scripted() {
    let clock = ManualClock::at(T0);
    let faults = r#"
[[rule]]
callee = "008613800000001"
calls = ["not_answered", "answered:30s"]
[[rule]]
callee = "008613800000002"
calls = ["busy"]
[[rule]]
callee = "008613800000003"
calls = ["voicemail"]
[[rule]]
callee = "008613800000004"
calls = ["dead"]
[[rule]]
callee = "008613800000005"
calls = ["end:299"]
[[rule]]
callee = "008613800000006"
calls = ["answered:45s:229"]
[[rule]]
callee = "008613800000007"
calls = ["no_record"]
[[rule]]
callee = "008613800000008"
outcomes = ["drop"]
calls = ["answered:12s"]
"#;
    let mock = spawn(faults, &clock, |o| {
        o.call_length.ring = ccc_dialer::mock::Length::Fixed(Duration::from_secs(5));
    })
    .await;
    let mut sessions = Vec::new();
    for i in 1..=7 {
        sessions.push(create(&mock, &clock, &format!("00861380000000{i}")).await);
    }
    let second = create(&mock, &clock, "008613800000001").await;
    // The reply to this one is lost: the call exists all the same.
    let lost = crate::support::signed_request(
        &mock,
        "CreateAIAgentCall",
        &create_body("008613800000008"),
        clock.now(),
    )
    .send()
    .await;
    let reply = match lost {
        Ok(resp) => resp.text().await.ok(),
        Err(_) => None,
    };
    assert!(reply.is_none(), "the reply is cut: {reply:?}");

    clock.set(T0 + 120);
    let r = describe(&mock, &clock, 0, json!({})).await;
    let list = r["TelCdrList"].as_array().unwrap();
    let by_session = |s: &str| list.iter().find(|c| c["SessionId"] == s).cloned();
    let fields = |c: &Value| {
        (
            c["EndStatus"].as_i64().unwrap(),
            c["EndStatusString"].as_str().unwrap().to_string(),
            c["AcceptTimestamp"].as_i64().unwrap(),
            c["Duration"].as_i64().unwrap(),
        )
    };
    let expect = [
        (202, "notAnswer", 0, 0),
        (206, "busy", 0, 0),
        (222, "voiceMailReached", 0, 0),
        (205, "numberNotExist", 0, 0),
        (299, "unknown", 0, 0),
        (229, "maxCallDurationReached", T0 + 5, 45),
    ];
    for (i, (status, string, accept, duration)) in expect.iter().enumerate() {
        let c = by_session(&sessions[i]).unwrap_or_else(|| panic!("record {i}: {r}"));
        assert_eq!(
            fields(&c),
            (*status, string.to_string(), *accept, *duration),
            "callee {}",
            i + 1
        );
    }
    // The second call of the first callee is answered and talks 30 s.
    let c = by_session(&second).unwrap();
    assert_eq!(fields(&c), (1, "ok".into(), T0 + 5, 30));
    // Not answered rang (for the ring length); busy never rang.
    assert_eq!(by_session(&sessions[0]).unwrap()["RingTimestamp"], T0);
    assert_eq!(by_session(&sessions[0]).unwrap()["EndedTimestamp"], T0 + 5);
    assert_eq!(by_session(&sessions[1]).unwrap()["RingTimestamp"], 0);
    // no_record: the call exists, its record never appears.
    assert!(by_session(&sessions[6]).is_none());
    assert!(mock.call(&sessions[6]).is_some());
    // The dropped reply: found by its number, answered and talked 12 s.
    let r = describe(&mock, &clock, 0, json!({"Phones": ["008613800000008"]})).await;
    assert_eq!(r["TotalCount"], 1, "{r}");
    assert_eq!(fields(&r["TelCdrList"][0]), (1, "ok".into(), T0 + 5, 12));
    assert_eq!(r["TotalCount"], 1);
    assert_eq!(mock.calls().len(), 9);
}

#[tokio::test]
async fn unscripted_calls_follow_the_answer_ratio() {
    let clock = ManualClock::at(T0);
    let mock = spawn("", &clock, |o| o.answer_ratio = 0.0).await;
    for i in 0..10 {
        create(&mock, &clock, &format!("0086138{:08}", i)).await;
    }
    let r = describe(&mock, &clock, 0, json!({})).await;
    let list = r["TelCdrList"].as_array().unwrap();
    assert_eq!(list.len(), 10);
    for c in list {
        assert_eq!(c["AcceptTimestamp"], 0, "{c}");
        assert!(
            [202, 203, 205, 206].contains(&c["EndStatus"].as_i64().unwrap()),
            "{c}"
        );
    }
}

#[tokio::test]
async fn post_call_tags_come_with_the_record_of_an_answered_call() {
    let clock = ManualClock::at(T0);
    let faults = r#"
[[rule]]
callee = "008613800000001"
calls = ["answered:10s"]
tags = [{ interested = true, intent = ["follow_up"], note = "call back friday" }]
[[rule]]
callee = "008613800000002"
calls = ["busy"]
tags = [{ interested = true }]
"#;
    let mock = spawn(faults, &clock, |_| {}).await;
    let answered = create(&mock, &clock, "008613800000001").await;
    let busy = create(&mock, &clock, "008613800000002").await;
    let ask = |session: &str, start: i64| {
        json!({"SdkAppId": APP, "SessionId": session, "StartTime": start, "EndTime": clock.now()})
            .to_string()
    };
    let action = "DescribeAICallExtractResult";
    // Before the call ended: nothing yet.
    let r = api_call(&mock, action, &ask(&answered, T0 - 60), clock.now()).await;
    assert_eq!(r["ResultList"], json!([]), "{r}");
    clock.set(T0 + 10);
    let r = api_call(&mock, action, &ask(&answered, T0 - 60), clock.now()).await;
    let list = r["ResultList"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(list.len(), 3, "{r}");
    let by = |name: &str| list.iter().find(|e| e["InfoName"] == name).unwrap().clone();
    assert_eq!(
        (
            &by("interested")["InfoType"],
            &by("interested")["Result"]["Boolean"]
        ),
        (&json!("Boolean"), &json!(true))
    );
    assert_eq!(by("intent")["Result"]["Chosen"], json!(["follow_up"]));
    assert_eq!(by("note")["Result"]["Text"], "call back friday");
    // An unanswered call, an unknown session, a window that misses the call: no tags.
    for (session, start) in [
        (busy.as_str(), T0 - 60),
        ("no-such-session", T0 - 60),
        (answered.as_str(), T0 + 1),
    ] {
        let r = api_call(&mock, action, &ask(session, start), clock.now()).await;
        assert_eq!(r["ResultList"], json!([]), "{session}: {r}");
    }
    let r = api_call(
        &mock,
        action,
        &json!({"SdkAppId": APP, "SessionId": answered}).to_string(),
        clock.now(),
    )
    .await;
    assert_eq!(error_code(&r), "MissingParameter");
    let stats = mock.stats();
    assert_eq!(stats.actions[action].requests, 6);
    assert_eq!(stats.actions[action].errors_by_code["MissingParameter"], 1);
    assert!(!stats.actions.contains_key("DescribeTelCdr"));
}

#[tokio::test]
async fn describe_tel_cdr_can_be_scripted_to_fail_while_calls_go_through() {
    let clock = ManualClock::at(T0);
    let faults = r#"
[[action]]
name = "DescribeTelCdr"
outcomes = ["error:AuthFailure.UnauthorizedOperation", "error:RequestLimitExceeded", "http:502", "ok", "error:InternalError"]
"#;
    let mock = spawn(faults, &clock, |_| {}).await;
    let body = json!({"SdkAppId": APP, "StartTimeStamp": T0 - 60, "EndTimeStamp": T0, "PageSize": 100, "PageNumber": 0}).to_string();
    let mut replies = Vec::new();
    for i in 0..6 {
        // A call between every query: CreateAIAgentCall is never scripted by the action's list.
        create(&mock, &clock, &format!("0086138{:08}", i)).await;
        let resp = crate::support::signed_request(&mock, "DescribeTelCdr", &body, T0)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        replies.push((
            status,
            error_code(&v["Response"]),
            v["Response"]["TotalCount"].as_u64(),
        ));
    }
    assert_eq!(
        replies,
        [
            (200, "AuthFailure.UnauthorizedOperation".to_string(), None),
            (200, "RequestLimitExceeded".to_string(), None),
            (502, String::new(), None),
            (200, String::new(), Some(4)),
            (200, "InternalError".to_string(), None),
            (200, String::new(), Some(6)),
        ]
    );
    assert_eq!(mock.stats().accepted, 6);
}
