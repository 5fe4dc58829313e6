//! What the AI agent learned in an answered call: the request and reply of
//! `DescribeAICallExtractResult` (post-call tags) and `DescribeAIAnalysisResult` (summary, mood,
//! intention). Pure: the tag tracker sends what [`AiQuery::body`] builds and reads the reply with
//! [`parse_tags`] / [`parse_analysis`].
//!
//! API facts (shared/CCC-OUTCOMES.md §2.1, §2.2): both take `SdkAppId`, `SessionId`, `StartTime`
//! and `EndTime` (Unix seconds, all required) and answer a `ResultList`. A tag element is
//! `{InfoType, InfoName, InfoContent, Result}` where `Result` carries all four of `Text`,
//! `Chosen`, `Boolean`, `Number`: the one `InfoType` names is the value. What comes back before
//! the result is ready is UNCONFIRMED; an empty list is read as "not yet".

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ccc::CallError;

pub const TAGS_ACTION: &str = "DescribeAICallExtractResult";
pub const ANALYSIS_ACTION: &str = "DescribeAIAnalysisResult";
/// The window starts this long before the call was sent (clock differences).
pub const LEAD_SECS: i64 = 5 * 60;
/// The longest window asked for (the service's limit is UNCONFIRMED; DescribeTelCdr's is under
/// 90 days).
pub const MAX_SPAN_SECS: i64 = 89 * 24 * 3600;

/// Which of the two results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Tags,
    Analysis,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tags => "tags",
            Kind::Analysis => "analysis",
        }
    }

    pub fn action(self) -> &'static str {
        match self {
            Kind::Tags => TAGS_ACTION,
            Kind::Analysis => ANALYSIS_ACTION,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "tags" => Some(Kind::Tags),
            "analysis" => Some(Kind::Analysis),
            _ => None,
        }
    }
}

/// One request for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiQuery {
    pub sdk_app_id: u64,
    pub session_id: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    sdk_app_id: u64,
    session_id: &'a str,
    start_time: i64,
    end_time: i64,
}

impl AiQuery {
    /// The window around a call sent at `sent_secs`: from five minutes before the send to `now`
    /// (at least a second, under 90 days).
    pub fn window(sent_secs: i64, now_secs: i64) -> (i64, i64) {
        let start = (sent_secs - LEAD_SECS).max(now_secs - MAX_SPAN_SECS);
        (start, now_secs.max(start + 1))
    }

    pub fn body(&self) -> Vec<u8> {
        // A struct of numbers and strings always encodes.
        serde_json::to_vec(&Body {
            sdk_app_id: self.sdk_app_id,
            session_id: &self.session_id,
            start_time: self.start,
            end_time: self.end,
        })
        .unwrap_or_default()
    }
}

/// One post-call tag as stored: the element's fields, the value its `InfoType` names read as
/// text, and the raw `Result` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub name: String,
    pub info_type: String,
    pub info_content: String,
    /// Text → the text; Selector → `Chosen` joined with `;`; Boolean → `true`/`false`;
    /// Number → the number (`7`, `2.5`); an unknown `InfoType` → the first non-empty value.
    pub value: String,
    /// The element's `Result` as JSON text.
    pub result: String,
}

/// The analysis of one session (each part empty when the service did not give it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub summary: String,
    pub mood: String,
    pub intention: String,
    /// The `ResultList` as JSON text.
    pub result: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Fields {
    result_list: Option<Vec<Value>>,
}

/// The `ResultList` of a reply of `action` (`None`: the reply had none); an API error as
/// [`CallError::Api`], a body that is not such a reply as [`CallError::InDoubt`] (see
/// [`super::reply::read`]).
fn result_list(action: &str, status: u16, body: &[u8]) -> Result<Option<Vec<Value>>, CallError> {
    Ok(super::reply::read::<Fields>(action, status, body)?
        .fields
        .result_list)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(n) if n.is_finite() => format!("{n}"),
        _ => text(v),
    }
}

/// The value the element's `InfoType` names, as text.
pub fn read_value(info_type: &str, result: &Value) -> String {
    let chosen = || -> String {
        result
            .get("Chosen")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .map(|v| text(Some(v)))
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_default()
    };
    let boolean = || match result.get("Boolean") {
        Some(Value::Bool(b)) => b.to_string(),
        other => text(other),
    };
    match info_type {
        "Text" => text(result.get("Text")),
        "Selector" => chosen(),
        "Boolean" => boolean(),
        "Number" => number_text(result.get("Number")),
        // An InfoType this build does not know: the text, else the choices.
        _ => Some(text(result.get("Text")))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(chosen),
    }
}

/// The tags in a `DescribeAICallExtractResult` reply: `Ok(None)` while there are none yet
/// (an empty or absent `ResultList`). Elements without an `InfoName` are left out.
pub fn parse_tags(status: u16, body: &[u8]) -> Result<Option<Vec<Tag>>, CallError> {
    let list = result_list(TAGS_ACTION, status, body)?.unwrap_or_default();
    let mut out: Vec<Tag> = Vec::new();
    for e in &list {
        let name = text(e.get("InfoName"));
        if name.trim().is_empty() || out.iter().any(|t| t.name == name) {
            continue;
        }
        let info_type = text(e.get("InfoType"));
        let result = e.get("Result").cloned().unwrap_or(Value::Null);
        out.push(Tag {
            value: read_value(&info_type, &result),
            name,
            info_type,
            info_content: text(e.get("InfoContent")),
            result: result.to_string(),
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The analysis in a `DescribeAIAnalysisResult` reply: `Ok(None)` while there is none yet.
pub fn parse_analysis(status: u16, body: &[u8]) -> Result<Option<Analysis>, CallError> {
    let list = result_list(ANALYSIS_ACTION, status, body)?.unwrap_or_default();
    if list.is_empty() {
        return Ok(None);
    }
    let mut a = Analysis {
        result: Value::Array(list.clone()).to_string(),
        ..Default::default()
    };
    for item in &list {
        let value = text(item.get("Result"));
        match text(item.get("Type")).as_str() {
            "summary" => a.summary = value,
            "mood" => a.mood = value,
            "intention" => a.intention = value,
            _ => {}
        }
    }
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_every_required_field_in_seconds() {
        let q = AiQuery {
            sdk_app_id: 1_400_000_000,
            session_id: "s-1".into(),
            start: 1_737_350_008,
            end: 1_737_356_008,
        };
        assert_eq!(
            String::from_utf8(q.body()).unwrap(),
            r#"{"SdkAppId":1400000000,"SessionId":"s-1","StartTime":1737350008,"EndTime":1737356008}"#
        );
        assert_eq!(AiQuery::window(1000, 2000), (700, 2000));
        assert_eq!(AiQuery::window(1000, 500), (700, 701));
    }

    #[test]
    fn each_tag_reads_the_value_its_info_type_names() {
        let body = r#"{"Response":{"ResultList":[
          {"InfoType":"Boolean","InfoName":"interested","InfoContent":"d","Result":{"Text":"","Chosen":[],"Boolean":true,"Number":0}},
          {"InfoType":"Selector","InfoName":"intent","InfoContent":"","Result":{"Text":"x","Chosen":["a","b"],"Boolean":false,"Number":0}},
          {"InfoType":"Number","InfoName":"score","InfoContent":"","Result":{"Text":"","Chosen":[],"Boolean":false,"Number":7}},
          {"InfoType":"Number","InfoName":"half","InfoContent":"","Result":{"Number":2.5}},
          {"InfoType":"Text","InfoName":"note","InfoContent":"","Result":{"Text":"=call back","Chosen":["z"],"Boolean":true,"Number":3}},
          {"InfoType":"Boolean","InfoName":"off","InfoContent":"","Result":{"Boolean":false,"Number":1}},
          {"InfoType":"Text","InfoContent":"no name"}
        ],"RequestId":"r"}}"#;
        let tags = parse_tags(200, body.as_bytes()).unwrap().unwrap();
        let v: Vec<(&str, &str)> = tags
            .iter()
            .map(|t| (t.name.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            v,
            vec![
                ("interested", "true"),
                ("intent", "a;b"),
                ("score", "7"),
                ("half", "2.5"),
                ("note", "=call back"),
                ("off", "false"),
            ]
        );
        assert_eq!(tags[0].info_content, "d");
        assert!(tags[1].result.contains("\"Chosen\":[\"a\",\"b\"]"));
    }

    #[test]
    fn an_empty_list_is_not_yet_and_errors_keep_their_code() {
        let empty = r#"{"Response":{"ResultList":[],"RequestId":"r"}}"#;
        assert_eq!(parse_tags(200, empty.as_bytes()).unwrap(), None);
        assert_eq!(parse_analysis(200, empty.as_bytes()).unwrap(), None);
        let none = r#"{"Response":{"RequestId":"r"}}"#;
        assert_eq!(parse_tags(200, none.as_bytes()).unwrap(), None);
        let err = r#"{"Response":{"Error":{"Code":"InternalError.DBError","Message":"m"},"RequestId":"r"}}"#;
        assert!(matches!(
            parse_tags(200, err.as_bytes()),
            Err(CallError::Api { ref code, .. }) if code == "InternalError.DBError"
        ));
        assert!(matches!(
            parse_analysis(502, b"<html>"),
            Err(CallError::InDoubt { .. })
        ));
    }

    #[test]
    fn the_analysis_has_summary_mood_and_intention() {
        let body = r#"{"Response":{"ResultList":[{"Type":"summary","Result":"会话小结"},{"Type":"mood","Result":"中性"},{"Type":"intention","Result":"待跟进"},{"Type":"other","Result":"x"}],"RequestId":"r"}}"#;
        let a = parse_analysis(200, body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            (a.summary.as_str(), a.mood.as_str(), a.intention.as_str()),
            ("会话小结", "中性", "待跟进")
        );
        assert!(a.result.contains("other"));
    }
}
