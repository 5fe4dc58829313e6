//! `DescribeTelCdr` (shared/CCC-OUTCOMES.md §1): the request rules and the answer.
//!
//! Rules, in the order they are checked: the body is a JSON object; every field is one the SDK's
//! `DescribeTelCdrRequest` defines (`UnknownParameter`); `SdkAppId`, `StartTimeStamp`,
//! `EndTimeStamp`, `PageSize` and `PageNumber` are present (`MissingParameter`: the CLI's
//! api.json marks all five required) and integers, `Phones`/`SessionIds` arrays of strings
//! (`InvalidParameter`); then the values (`InvalidParameterValue`): `PageSize` 1..=100,
//! `PageNumber` ≥ 0, timestamps in Unix **seconds** (a value past the stand-in's clock by more
//! than a day is refused, which catches milliseconds), `EndTimeStamp` ≥ `StartTimeStamp`, a
//! span under 90 days, a start at most 180 days back, at most 100 `SessionIds` and 100
//! `Phones`.
//!
//! Answer: the records visible now (`cdr_delay` after their call ended) of calls created under
//! `SdkAppId` whose `StartTimestamp` lies in [StartTimeStamp, EndTimeStamp], filtered by
//! `SessionIds` and by `Phones` (either number of the call) when given (both: both apply),
//! sorted by `StartTimestamp` then creation order, page `PageNumber` (from 0) of `PageSize`;
//! `TotalCount` counts every match. What the service does on the points its documents leave
//! open (the limits of the two lists, which number `Phones` matches, the order) is the
//! stand-in's choice, marked UNCONFIRMED there.

use serde_json::{Map, Value};

use super::calls::CallBook;
use super::params::bad;
use super::verify::Refusal;

pub const ACTION: &str = "DescribeTelCdr";

const KNOWN: [&str; 10] = [
    "StartTimeStamp",
    "EndTimeStamp",
    "SdkAppId",
    "PageSize",
    "PageNumber",
    "InstanceId",
    "Limit",
    "Offset",
    "Phones",
    "SessionIds",
];

pub const MAX_PAGE_SIZE: i64 = 100;
pub const MAX_LIST: usize = 100;
pub const MAX_SPAN_SECS: i64 = 90 * 86_400;
pub const MAX_LOOKBACK_SECS: i64 = 180 * 86_400;
/// How far past the stand-in's clock a timestamp may be (a millisecond value is far beyond).
pub const FUTURE_SLACK_SECS: i64 = 86_400;

/// A checked DescribeTelCdr request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub sdk_app_id: i64,
    pub start: i64,
    pub end: i64,
    pub page_size: usize,
    pub page_number: usize,
    pub phones: Vec<String>,
    pub session_ids: Vec<String>,
}

/// A required integer parameter (shared with the stand-in's other query actions).
pub(super) fn int64(obj: &Map<String, Value>, key: &str) -> Result<i64, Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(bad(
            "MissingParameter",
            format!("the parameter `{key}` is missing"),
        )),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| bad("InvalidParameter", format!("`{key}` must be an integer"))),
    }
}

fn strings(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad(
                    "InvalidParameter",
                    format!("`{key}` must be an array of strings"),
                )
            }),
        Some(_) => Err(bad(
            "InvalidParameter",
            format!("`{key}` must be an array of strings"),
        )),
    }
}

fn value_error(message: String) -> Refusal {
    bad("InvalidParameterValue", message)
}

/// A query body as the service reads it: a JSON object naming only `known` parameters (shared
/// with the stand-in's other query actions).
pub(super) fn object(body: &[u8], known: &[&str]) -> Result<Map<String, Value>, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "InvalidParameter",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(bad(
            "InvalidParameter",
            "the request body must be a JSON object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(
            "UnknownParameter",
            format!("the parameter `{unknown}` is not recognized"),
        ));
    }
    Ok(obj)
}

/// Check a DescribeTelCdr body against the rules above; `now` is the stand-in's clock.
pub fn check(body: &[u8], now: i64) -> Result<Query, Refusal> {
    let obj = &object(body, &KNOWN)?;
    let sdk_app_id = int64(obj, "SdkAppId")?;
    let start = int64(obj, "StartTimeStamp")?;
    let end = int64(obj, "EndTimeStamp")?;
    let page_size = int64(obj, "PageSize")?;
    let page_number = int64(obj, "PageNumber")?;
    for deprecated in ["InstanceId", "Limit", "Offset"] {
        if obj.get(deprecated).is_some_and(|v| !v.is_null()) {
            int64(obj, deprecated)?;
        }
    }
    let phones = strings(obj, "Phones")?;
    let session_ids = strings(obj, "SessionIds")?;

    if sdk_app_id <= 0 {
        return Err(value_error(format!(
            "SdkAppId {sdk_app_id} is not a valid application ID"
        )));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(value_error(format!(
            "PageSize must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        )));
    }
    if page_number < 0 {
        return Err(value_error(format!(
            "PageNumber starts at 0, got {page_number}"
        )));
    }
    for (key, t) in [("StartTimeStamp", start), ("EndTimeStamp", end)] {
        if t < 0 || t > now + FUTURE_SLACK_SECS {
            return Err(value_error(format!(
                "{key} {t} is not a Unix time in seconds near the server's clock ({now})"
            )));
        }
    }
    if end < start {
        return Err(value_error(format!(
            "EndTimeStamp {end} is before StartTimeStamp {start}"
        )));
    }
    if end - start >= MAX_SPAN_SECS {
        return Err(value_error(format!(
            "the span from StartTimeStamp to EndTimeStamp must be less than 90 days, got {} s",
            end - start
        )));
    }
    if start < now - MAX_LOOKBACK_SECS {
        return Err(value_error(format!(
            "StartTimeStamp {start} is more than 180 days before the server's clock ({now})"
        )));
    }
    for (key, list) in [("SessionIds", &session_ids), ("Phones", &phones)] {
        if list.len() > MAX_LIST {
            return Err(value_error(format!(
                "{key} holds {} entries, at most {MAX_LIST} are allowed",
                list.len()
            )));
        }
    }
    Ok(Query {
        sdk_app_id,
        start,
        end,
        page_size: page_size as usize,
        page_number: page_number as usize,
        phones,
        session_ids,
    })
}

/// The answer's `TotalCount` and the page's records (`TelCdrInfo` objects), at `now`.
pub fn answer(book: &CallBook, q: &Query, now: i64) -> (usize, Vec<Value>) {
    let wanted = |c: &&super::calls::SimulatedCall| {
        c.sdk_app_id == q.sdk_app_id
            && c.visible(now)
            && (q.start..=q.end).contains(&c.start)
            && (q.phones.is_empty() || q.phones.iter().any(|p| *p == c.callee || *p == c.caller))
    };
    let mut matched: Vec<(i64, usize, &super::calls::SimulatedCall)> = if q.session_ids.is_empty() {
        book.all()
            .iter()
            .enumerate()
            .filter(|(_, c)| wanted(c))
            .map(|(i, c)| (c.start, i, c))
            .collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        q.session_ids
            .iter()
            .filter(|s| seen.insert(s.as_str()))
            .filter_map(|s| book.index_of(s))
            .filter_map(|i| book.get(i).map(|c| (i, c)))
            .filter(|(_, c)| wanted(c))
            .map(|(i, c)| (c.start, i, c))
            .collect()
    };
    matched.sort_by_key(|(start, i, _)| (*start, *i));
    let total = matched.len();
    let page = matched
        .into_iter()
        .skip(q.page_number.saturating_mul(q.page_size))
        .take(q.page_size)
        .map(|(_, _, c)| c.tel_cdr_info())
        .collect();
    (total, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn code(body: &str) -> &'static str {
        check(body.as_bytes(), NOW).unwrap_err().code
    }

    fn body(extra: &str) -> String {
        format!(
            r#"{{"SdkAppId":1400000000,"StartTimeStamp":{},"EndTimeStamp":{NOW},"PageSize":100,"PageNumber":0{extra}}}"#,
            NOW - 600
        )
    }

    #[test]
    fn each_rule_has_its_code() {
        assert!(check(body("").as_bytes(), NOW).is_ok());
        assert_eq!(code("{"), "InvalidParameter");
        assert_eq!(code(&body(r#","Foo":1"#)), "UnknownParameter");
        assert_eq!(
            code(r#"{"StartTimeStamp":1,"EndTimeStamp":2,"PageSize":1,"PageNumber":0}"#),
            "MissingParameter"
        );
        assert_eq!(
            code(r#"{"SdkAppId":1,"StartTimeStamp":1,"EndTimeStamp":2,"PageSize":1}"#),
            "MissingParameter"
        );
        assert_eq!(code(&body(r#","Phones":"0086""#)), "InvalidParameter");
        let over = format!(r#","SessionIds":[{}]"#, vec!["\"s\""; 101].join(","));
        assert_eq!(code(&body(&over)), "InvalidParameterValue");
        let at = format!(r#","SessionIds":[{}]"#, vec!["\"s\""; 100].join(","));
        assert!(check(body(&at).as_bytes(), NOW).is_ok());
        let q = |s: i64, e: i64, size: i64, n: i64| {
            format!(
                r#"{{"SdkAppId":1,"StartTimeStamp":{s},"EndTimeStamp":{e},"PageSize":{size},"PageNumber":{n}}}"#
            )
        };
        assert_eq!(code(&q(NOW - 10, NOW, 101, 0)), "InvalidParameterValue");
        assert_eq!(code(&q(NOW - 10, NOW, 0, 0)), "InvalidParameterValue");
        assert_eq!(code(&q(NOW - 10, NOW, 100, -1)), "InvalidParameterValue");
        assert_eq!(code(&q(NOW, NOW - 10, 100, 0)), "InvalidParameterValue");
        assert_eq!(
            code(&q(NOW - MAX_SPAN_SECS, NOW, 100, 0)),
            "InvalidParameterValue"
        );
        assert!(check(q(NOW - MAX_SPAN_SECS + 1, NOW, 100, 0).as_bytes(), NOW).is_ok());
        // Milliseconds are refused.
        assert_eq!(
            code(&q(NOW * 1000 - 10_000, NOW * 1000, 100, 0)),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(&q(
                NOW - MAX_LOOKBACK_SECS - 10,
                NOW - MAX_LOOKBACK_SECS + 10,
                100,
                0
            )),
            "InvalidParameterValue"
        );
    }
}
