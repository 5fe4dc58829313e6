//! `DescribeAICallExtractResult` (shared/CCC-OUTCOMES.md §2.1): an agent call's post-call tags.
//!
//! Request: `SdkAppId`, `SessionId`, `StartTime`, `EndTime` (Unix seconds), all required
//! (`MissingParameter`; wrong type `InvalidParameter`; a field the action lacks
//! `UnknownParameter`); `InvalidParameterValue` for a time past the stand-in's clock by more
//! than a day (milliseconds), `EndTime` before `StartTime`, or a span of 90 days or more (the
//! service's window limit is UNCONFIRMED; the stand-in uses DescribeTelCdr's).
//!
//! Answer: `ResultList`, the tags of an answered call of that application started in the
//! window, from the moment its record is visible; before then, for an unanswered call and for a
//! session the stand-in does not know, an empty list (what the service answers then is
//! UNCONFIRMED). Tags come from the fault script's `tags` list (the n-th call of a callee gets
//! the n-th table: a boolean is a `Boolean` tag, a number `Number`, a string `Text`, an array of
//! strings `Selector`); an answered call no script names gets one `Boolean` tag, `interested`,
//! true or false at even odds.

use serde_json::{json, Value};

use super::calls::SimulatedCall;
use super::params::bad;
use super::tel_cdr::{int64, object, FUTURE_SLACK_SECS, MAX_SPAN_SECS};
use super::verify::Refusal;

pub const ACTION: &str = "DescribeAICallExtractResult";

/// One post-call tag's value.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Text(String),
    Selector(Vec<String>),
    Boolean(bool),
    Number(f64),
}

/// A call's tags, by name, in the script's order.
pub type Tags = Vec<(String, TagValue)>;

pub const TAG_FORMS: &str =
    "a table of tag = value, each value a boolean, a number, a string or an array of strings";

/// Tags from one table of a fault script's `tags` list.
pub fn parse_tags(table: &toml::Table) -> Option<Tags> {
    table
        .iter()
        .map(|(name, v)| {
            let value = match v {
                toml::Value::Boolean(b) => TagValue::Boolean(*b),
                toml::Value::Integer(i) => TagValue::Number(*i as f64),
                toml::Value::Float(f) => TagValue::Number(*f),
                toml::Value::String(s) => TagValue::Text(s.clone()),
                toml::Value::Array(items) => TagValue::Selector(
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()?,
                ),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// The tags of an answered call no script names.
pub fn default_tags() -> Tags {
    vec![(
        "interested".to_string(),
        TagValue::Boolean(rand::random::<bool>()),
    )]
}

/// One `AICallExtractResultElement`: all four result keys, the one `InfoType` names filled.
pub fn element(name: &str, value: &TagValue) -> Value {
    let mut result = json!({"Text": "", "Chosen": [], "Boolean": false, "Number": 0});
    let info_type = match value {
        TagValue::Text(t) => {
            result["Text"] = json!(t);
            "Text"
        }
        TagValue::Selector(c) => {
            result["Chosen"] = json!(c);
            "Selector"
        }
        TagValue::Boolean(b) => {
            result["Boolean"] = json!(b);
            "Boolean"
        }
        TagValue::Number(n) => {
            result["Number"] = json!(n);
            "Number"
        }
    };
    json!({
        "InfoType": info_type,
        "InfoName": name,
        "InfoContent": format!("stand-in tag {name}"),
        "Result": result,
    })
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub sdk_app_id: i64,
    pub session_id: String,
    pub start: i64,
    pub end: i64,
}

const KNOWN: [&str; 4] = ["SdkAppId", "SessionId", "StartTime", "EndTime"];

pub fn check(body: &[u8], now: i64) -> Result<Query, Refusal> {
    let obj = &object(body, &KNOWN)?;
    let sdk_app_id = int64(obj, "SdkAppId")?;
    let session_id = match obj.get("SessionId") {
        None | Some(Value::Null) => {
            return Err(bad(
                "MissingParameter",
                "the parameter `SessionId` is missing",
            ))
        }
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            return Err(bad(
                "InvalidParameter",
                "`SessionId` must be a non-empty string",
            ))
        }
    };
    let start = int64(obj, "StartTime")?;
    let end = int64(obj, "EndTime")?;
    let value_error = |m: String| bad("InvalidParameterValue", m);
    for (key, t) in [("StartTime", start), ("EndTime", end)] {
        if t < 0 || t > now + FUTURE_SLACK_SECS {
            return Err(value_error(format!(
                "{key} {t} is not a Unix time in seconds near the server's clock ({now})"
            )));
        }
    }
    if end < start {
        return Err(value_error(format!(
            "EndTime {end} is before StartTime {start}"
        )));
    }
    if end - start >= MAX_SPAN_SECS {
        return Err(value_error(format!(
            "the span from StartTime to EndTime must be less than 90 days, got {} s",
            end - start
        )));
    }
    Ok(Query {
        sdk_app_id,
        session_id,
        start,
        end,
    })
}

/// The `ResultList` for `q` at `now`.
pub fn answer(call: Option<&SimulatedCall>, q: &Query, now: i64) -> Vec<Value> {
    match call {
        Some(c)
            if c.sdk_app_id == q.sdk_app_id
                && c.accept > 0
                && c.visible(now)
                && (q.start..=q.end).contains(&c.start) =>
        {
            c.tags.iter().map(|(n, v)| element(n, v)).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_map_to_their_info_types() {
        let t: toml::Table = toml::from_str(
            "interested = true\nscore = 7\nnote = \"call back\"\nintent = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let tags = parse_tags(&t).unwrap();
        let e: Vec<Value> = tags.iter().map(|(n, v)| element(n, v)).collect();
        let by = |name: &str| e.iter().find(|x| x["InfoName"] == name).unwrap().clone();
        assert_eq!(by("interested")["InfoType"], "Boolean");
        assert_eq!(by("interested")["Result"]["Boolean"], true);
        assert_eq!(by("score")["InfoType"], "Number");
        assert_eq!(by("score")["Result"]["Number"], 7.0);
        assert_eq!(by("note")["Result"]["Text"], "call back");
        assert_eq!(by("intent")["InfoType"], "Selector");
        assert_eq!(by("intent")["Result"]["Chosen"], json!(["a", "b"]));
        let bad: toml::Table = toml::from_str("x = { y = 1 }\n").unwrap();
        assert!(parse_tags(&bad).is_none());
    }

    #[test]
    fn request_rules_have_their_codes() {
        let now = 1_790_000_000;
        let code = |b: &str| check(b.as_bytes(), now).unwrap_err().code;
        let ok = format!(
            r#"{{"SdkAppId":1,"SessionId":"s","StartTime":{},"EndTime":{now}}}"#,
            now - 60
        );
        assert!(check(ok.as_bytes(), now).is_ok());
        assert_eq!(
            code(r#"{"SdkAppId":1,"StartTime":1,"EndTime":2}"#),
            "MissingParameter"
        );
        assert_eq!(
            code(r#"{"SdkAppId":1,"SessionId":"s","StartTime":1}"#),
            "MissingParameter"
        );
        assert_eq!(
            code(r#"{"SdkAppId":1,"SessionId":7,"StartTime":1,"EndTime":2}"#),
            "InvalidParameter"
        );
        assert_eq!(
            code(r#"{"SdkAppId":1,"SessionId":"s","StartTime":1,"EndTime":2,"X":1}"#),
            "UnknownParameter"
        );
        let ms = format!(
            r#"{{"SdkAppId":1,"SessionId":"s","StartTime":{},"EndTime":{}}}"#,
            (now - 60) * 1000,
            now * 1000
        );
        assert_eq!(code(&ms), "InvalidParameterValue");
        let back = format!(
            r#"{{"SdkAppId":1,"SessionId":"s","StartTime":{now},"EndTime":{}}}"#,
            now - 60
        );
        assert_eq!(code(&back), "InvalidParameterValue");
    }
}
