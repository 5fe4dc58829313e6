//! `DescribeAIAnalysisResult` (shared/CCC-OUTCOMES.md §2.2): an agent call's summary, mood and
//! intention.
//!
//! Request: `SdkAppId`, `SessionId`, `StartTime`, `EndTime` (Unix seconds), all required, checked
//! as DescribeAICallExtractResult's are (`MissingParameter`, `InvalidParameter`,
//! `UnknownParameter`, `InvalidParameterValue`).
//!
//! Answer: `ResultList` of `{Type, Result}` for an answered call of that application started in
//! the window, ready [`LAG_SECS`] after its call record became visible (the analysis comes after
//! the call is over); before then, for an unanswered call and for a session the stand-in does
//! not know, an empty list (what the service answers then is UNCONFIRMED). The items come from
//! the fault script's `analysis` list (the n-th call of a callee gets the n-th table, e.g.
//! `{ summary = "wants a call back", mood = "positive", intention = "callback" }`, in the
//! table's key order); an answered call no script names gets `summary`, `mood` = `neutral` and
//! `intention` = `none`.

use serde_json::{json, Value};

use super::calls::SimulatedCall;
use super::extract::Query;

pub const ACTION: &str = "DescribeAIAnalysisResult";
/// Seconds after the call record is visible before the analysis is.
pub const LAG_SECS: i64 = 1;

/// A call's analysis items, `(Type, Result)`, in order.
pub type Items = Vec<(String, String)>;

pub const ANALYSIS_FORMS: &str =
    "a table of type = text, e.g. { summary = \"…\", mood = \"positive\", intention = \"callback\" }";

/// Items from one table of a fault script's `analysis` list.
pub fn parse_items(table: &toml::Table) -> Option<Items> {
    table
        .iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// The analysis of an answered call no script names.
pub fn default_items() -> Items {
    vec![
        (
            "summary".into(),
            "the callee talked with the stand-in agent".into(),
        ),
        ("mood".into(), "neutral".into()),
        ("intention".into(), "none".into()),
    ]
}

/// The `ResultList` for `q` at `now`.
pub fn answer(call: Option<&SimulatedCall>, q: &Query, now: i64) -> Vec<Value> {
    match call {
        Some(c)
            if c.sdk_app_id == q.sdk_app_id
                && c.accept > 0
                && c.visible(now - LAG_SECS)
                && (q.start..=q.end).contains(&c.start) =>
        {
            c.analysis
                .iter()
                .map(|(t, r)| json!({"Type": t, "Result": r}))
                .collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_types_and_non_text_values_are_refused() {
        let t: toml::Table =
            toml::from_str("summary = \"s\"\nmood = \"positive\"\nintention = \"callback\"")
                .unwrap();
        let items = parse_items(&t).unwrap();
        assert!(items.contains(&("mood".into(), "positive".into())));
        let bad: toml::Table = toml::from_str("mood = 1").unwrap();
        assert!(parse_items(&bad).is_none());
    }
}
