//! The OpenAPI document served at `/v1/openapi.json`, kept true: it lists exactly the routes the
//! router serves ([`ROUTES`]), and the running service answers every operation with a status the
//! document lists, the documented content type and headers, and JSON with the properties its
//! schemas require.
//!
//! The live check reads everything it sends from the document itself: request bodies and
//! parameter values are the document's examples, the token goes where `security` says, and only
//! `{id}` is filled in (from a campaign created with the document's own CSV example).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use ccc_dialer::dispatch::Stop;
use ccc_dialer::mock::MockServer;
use ccc_dialer::server::{api::OPENAPI, api::ROUTES};

use crate::served::{in_process, PUSH_PASSWORD, PUSH_USER, TOKEN};
use crate::support::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("src/server/openapi.json is JSON")
}

/// `#/components/...` → the value it points at (anything else is returned as is).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix('#')
                .and_then(|p| doc.pointer(p))
                .unwrap_or_else(|| panic!("$ref {r:?} does not resolve"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Every operation: (METHOD, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_and_every_reference_resolves() {
    let doc = document();
    let version = doc["openapi"]
        .as_str()
        .expect("an `openapi` version string");
    assert!(
        version.starts_with("3."),
        "openapi {version:?}: expected 3.x"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(!operations(&doc).is_empty());
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        resolve(&doc, &serde_json::json!({ "$ref": r }));
    }
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{method} {path}: no responses"
        );
    }
}

#[test]
fn the_document_lists_exactly_the_routes_the_router_serves() {
    let documented: BTreeSet<(String, String)> = operations(&document())
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(served.len(), ROUTES.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.json but not in ROUTES: {unserved:?}"
    );
}

#[test]
fn every_documented_refusal_is_the_error_envelope() {
    let doc = document();
    let envelope = serde_json::json!({ "$ref": "#/components/schemas/Error" });
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().into_iter().flatten() {
            let code: u16 = status.parse().expect("a numeric status");
            // The two answers that are not refusals but reports: readiness says which check
            // failed, and /metrics still carries the figures it could read.
            let report = (path == "/readyz" && code == 503) || (path == "/metrics" && code == 500);
            if code < 400 || report {
                continue;
            }
            let content = resolve(&doc, response)["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {code}: no content"));
            let media: Vec<&String> = content.keys().collect();
            assert_eq!(
                media,
                ["application/json"],
                "{method} {path} {code}: refusals are JSON"
            );
            let schema = &content["application/json"]["schema"];
            assert_eq!(
                resolve(&doc, schema),
                resolve(&doc, &envelope),
                "{method} {path} {code}: refusals are the Error envelope"
            );
        }
    }
}

/// What `value` breaks of `schema`: types, enums, required and unexpected properties, items,
/// `anyOf`/`oneOf`/`allOf`. (Formats, lengths and ranges are not checked.)
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    for all in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(violations(doc, all, value, at));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(choices) = schema[key].as_array() {
            let tried: Vec<_> = choices
                .iter()
                .map(|c| violations(doc, c, value, at))
                .collect();
            if tried.iter().all(|v| !v.is_empty()) {
                out.push(format!("{at}: matches none of {key}: {tried:?}"));
            }
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let is = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        out.push(format!("{at}: {value} is not of type {types:?}"));
        return out;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            out.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            out.push(format!("{at}: {value} is not {c}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                out.push(format!("{at}: required property {name:?} is missing"));
            }
        }
        for (k, v) in obj {
            let at = format!("{at}.{k}");
            match (schema["properties"].get(k), &schema["additionalProperties"]) {
                (Some(s), _) => out.extend(violations(doc, s, v, &at)),
                (None, Value::Bool(false)) => out.push(format!("{at}: not a documented property")),
                (None, s @ Value::Object(_)) => out.extend(violations(doc, s, v, &at)),
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), value.as_array()) {
        for (i, v) in a.iter().enumerate() {
            out.extend(violations(doc, items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

/// `serve` in-process on port 0 against the stand-in, with a token.
struct Running {
    base: String,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _mock: MockServer,
    _scratch: Scratch,
}

async fn start() -> Running {
    let p = in_process(1 << 20, async |_| {}).await;
    Running {
        base: p.base,
        stop: p.stop,
        task: p.task,
        _mock: p.mock,
        _scratch: p.scratch,
    }
}

/// A request built from the document.
struct Call {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// (content type, bytes)
    body: Option<(String, Vec<u8>)>,
    token: bool,
    /// With `token`: the CDR push's HTTP Basic credentials instead of the bearer token.
    basic: bool,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn send(http: &reqwest::Client, base: &str, c: &Call) -> Answer {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut req = http.request(method, format!("{base}{}", c.path));
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    if c.token && c.basic {
        req = req.basic_auth(PUSH_USER, Some(PUSH_PASSWORD));
    } else if c.token {
        req = req.bearer_auth(TOKEN);
    }
    if let Some((ct, bytes)) = &c.body {
        req = req.header("content-type", ct).body(bytes.clone());
    }
    let r = req.send().await.expect("the service answers");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.expect("a readable body"),
    }
}

/// The body of a media type's example, encoded as that media type.
fn example_body(media: &str, m: &Value, what: &str) -> (String, Vec<u8>) {
    let example = m
        .get("example")
        .unwrap_or_else(|| panic!("{what} {media}: add an `example` so the test can send it"));
    match (media, example) {
        ("multipart/form-data", Value::Object(parts)) => {
            let boundary = "openapi-test-boundary-5c2e";
            let mut body = String::new();
            for (name, v) in parts {
                let ct = m["encoding"][name]["contentType"]
                    .as_str()
                    .unwrap_or("text/plain");
                let data = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                body.push_str(&format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                     Content-Type: {ct}\r\n\r\n{data}\r\n"
                ));
            }
            body.push_str(&format!("--{boundary}--\r\n"));
            (
                format!("multipart/form-data; boundary={boundary}"),
                body.into_bytes(),
            )
        }
        (_, Value::String(s)) => (media.to_string(), s.clone().into_bytes()),
        (_, v) => (media.to_string(), v.to_string().into_bytes()),
    }
}

/// Check an answer against the operation's documented responses; returns the JSON, if any.
fn check(doc: &Value, op: &Value, what: &str, a: &Answer) -> Option<Value> {
    assert!(
        !(a.status == 404 && a.text.contains("no such route")) && a.status != 405,
        "{what}: not served by the router ({} {})",
        a.status,
        a.text
    );
    let documented = op["responses"]
        .get(a.status.to_string())
        .map(|r| resolve(doc, r))
        .unwrap_or_else(|| {
            panic!(
                "{what}: status {} is not documented; body: {}",
                a.status, a.text
            )
        });
    for name in documented["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|h| h.0)
    {
        assert!(
            a.headers.contains_key(name.as_str()),
            "{what} {}: documented header {name} is missing",
            a.status
        );
    }
    let content = documented["content"].as_object()?;
    let ct = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let media = content
        .get(essence)
        .unwrap_or_else(|| panic!("{what} {}: content type {ct:?} is not documented", a.status));
    if essence == "application/json" {
        let body: Value = serde_json::from_str(&a.text)
            .unwrap_or_else(|e| panic!("{what} {}: not JSON ({e}): {}", a.status, a.text));
        let wrong = violations(doc, &media["schema"], &body, "body");
        assert!(
            wrong.is_empty(),
            "{what} {}: {wrong:#?}\n{body:#}",
            a.status
        );
        return Some(body);
    }
    if let Some(example) = media["example"].as_str() {
        assert!(
            a.text.starts_with(example),
            "{what} {}: expected the body to start with the documented example {example:?}, got {:?}",
            a.status,
            a.text
        );
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn the_running_service_answers_every_operation_as_documented() {
    let doc = document();
    let running = start().await;
    let http = reqwest::Client::new();
    let base = running.base.as_str();

    // The campaign behind `{id}`: created from the document's own CSV example.
    let create = &doc["paths"]["/v1/campaigns"]["post"];
    let csv = &create["requestBody"]["content"]["text/csv"];
    let first = Call {
        method: "POST".into(),
        path: "/v1/campaigns".into(),
        headers: vec![],
        body: Some(example_body("text/csv", csv, "POST /v1/campaigns")),
        token: true,
        basic: false,
    };
    let a = send(&http, base, &first).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let created = check(&doc, create, "POST /v1/campaigns", &a).expect("JSON");
    let id = created["campaign"]["id"].as_i64().expect("campaign.id");

    // Cancel last but for purge: what comes before it needs a campaign still open, and purge
    // needs it finished.
    let mut ops = operations(&doc);
    ops.sort_by_key(|(_, path, _)| (path.ends_with("/purge"), path.ends_with("/cancel")));
    for (method, path, op) in ops {
        let what = format!("{method} {path}");
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .collect();
        let fill = |id: i64| {
            let mut p = path.clone();
            for param in params.iter().filter(|p| p["in"] == "path") {
                let name = param["name"].as_str().expect("a parameter name");
                let value = match name {
                    "id" => id.to_string(),
                    _ => param["example"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{what}: path parameter {name} needs an example"))
                        .to_string(),
                };
                p = p.replace(&format!("{{{name}}}"), &value);
            }
            assert!(!p.contains('{'), "{what}: a path parameter is not declared");
            p
        };
        // Boolean query switches given an example are sent with it (purge's
        // forget_dial_history: a requeued contact may have been placed, its call is then in the
        // dial history).
        let query: Vec<String> = params
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| {
                Some(format!(
                    "{}={}",
                    p["name"].as_str()?,
                    p.get("example")?.as_bool()?
                ))
            })
            .collect();
        let filled = if query.is_empty() {
            fill(id)
        } else {
            format!("{}?{}", fill(id), query.join("&"))
        };
        let headers: Vec<(String, String)> = params
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| Some((p["name"].as_str()?.into(), p["example"].as_str()?.into())))
            .collect();
        let security = op.get("security").unwrap_or(&doc["security"]);
        let secured = security.as_array().is_some_and(|s| !s.is_empty());
        let basic = security
            .as_array()
            .is_some_and(|s| s.iter().any(|scheme| scheme.get("pushBasic").is_some()));
        let bodies: Vec<Option<(String, Vec<u8>)>> = match op.get("requestBody") {
            Some(rb) => resolve(&doc, rb)["content"]
                .as_object()
                .expect("requestBody content")
                .iter()
                .map(|(media, m)| Some(example_body(media, m, &what)))
                .collect(),
            None => vec![None],
        };
        let call = |body: Option<(String, Vec<u8>)>, path: String, token: bool| Call {
            method: method.clone(),
            path,
            headers: headers.clone(),
            body,
            token,
            basic,
        };

        if secured {
            let a = send(&http, base, &call(bodies[0].clone(), filled.clone(), false)).await;
            assert_eq!(a.status, 401, "{what} without the token: {}", a.text);
            check(&doc, op, &format!("{what} without the token"), &a);
        }
        if path.contains("{id}") {
            let a = send(
                &http,
                base,
                &call(bodies[0].clone(), fill(999_999_999), secured),
            )
            .await;
            assert_eq!(a.status, 404, "{what} for no such campaign: {}", a.text);
            check(&doc, op, &format!("{what} for no such campaign"), &a);
        }
        for body in bodies {
            let media = body.as_ref().map(|b| b.0.clone()).unwrap_or_default();
            let what = format!("{what} {media}");
            let a = send(&http, base, &call(body, filled.clone(), secured)).await;
            // The scenario is arranged so that every documented request succeeds.
            assert!(
                (200..300).contains(&a.status),
                "{what}: {} {}",
                a.status,
                a.text
            );
            check(&doc, op, &what, &a);
            if path == "/v1/openapi.json" {
                assert_eq!(a.text, OPENAPI, "the service serves openapi.json as it is");
            }
        }
    }

    // Methods the document does not list on its paths are not served either.
    for path in doc["paths"].as_object().expect("paths").keys() {
        let item = &doc["paths"][path];
        let filled = path
            .replace("{id}", &id.to_string())
            .replace("{callee}", "+8613800000001");
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                continue;
            }
            let c = Call {
                method: method.to_uppercase(),
                path: filled.clone(),
                headers: vec![],
                body: None,
                token: true,
                basic: false,
            };
            let a = send(&http, base, &c).await;
            assert_eq!(
                a.status, 405,
                "{} {path}: undocumented but answered {} {}",
                c.method, a.status, a.text
            );
            let body: Value = serde_json::from_str(&a.text)
                .unwrap_or_else(|e| panic!("{} {path} 405: not JSON ({e}): {}", c.method, a.text));
            let envelope = serde_json::json!({ "$ref": "#/components/schemas/Error" });
            let wrong = violations(&doc, &envelope, &body, "body");
            assert!(wrong.is_empty(), "{} {path} 405: {wrong:#?}", c.method);
            assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
        }
    }

    drop(http);
    running.stop.send_replace(Stop::Drain);
    // A guard against a hang, not a timing assertion.
    let served = tokio::time::timeout(Duration::from_secs(60), running.task)
        .await
        .expect("serve stops when asked")
        .expect("serve task");
    served.expect("serve ran without error");
}
