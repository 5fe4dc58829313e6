//! Rules that act on a post-call tag: `[[redial.on_tag]]` (call again after a while) and
//! `[dnc] opt_out_tag` (never call again). Pure: parsing the TOML shape and matching stored
//! tags.
//!
//! A rule names a tag and a value. The value matches as the tag's `InfoType` reads it:
//! `Boolean` case-insensitively with yes/no spellings (`yes`, `true`, `1`, `y`, `on` are true;
//! `no`, `false`, `0`, `n`, `off` false); `Selector` when any chosen option equals the value,
//! case-insensitively; `Number` by numeric equality (`7` matches `7.0`); `Text` exactly (after
//! trimming spaces at both ends).

use serde::Deserialize;
use std::time::Duration;

use super::ai_results::Tag;

/// `{ name = "opt_out", value = "yes" }`, and `after` for a redial rule.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTagRule {
    pub name: String,
    pub value: toml::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A validated rule: tag name and value (as written), and for a redial how long after the
/// call's end. Serialisable: a campaign's redial policy keeps its `on_tag` rules as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagRule {
    pub name: String,
    pub value: String,
    pub after: Option<Duration>,
}

/// A bad key: its name, the value as written, what was expected.
pub type Invalid = (String, String, String);

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// Check one rule; `key` names it in messages (`dnc.opt_out_tag`, `redial.on_tag[0]`);
/// `wants_after`: a redial rule needs `after`, an opt-out rule refuses it.
pub fn validate(raw: &RawTagRule, key: &str, wants_after: bool) -> Result<TagRule, Invalid> {
    let bad = |k: &str, v: String, e: &str| (format!("{key}.{k}"), v, e.to_string());
    if raw.name.trim().is_empty() {
        return Err(bad(
            "name",
            format!("{:?}", raw.name),
            "the tag's name as configured on the AI agent (its InfoName), not empty",
        ));
    }
    let value = scalar(&raw.value)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            bad(
                "value",
                raw.value.to_string(),
                "the tag value that triggers the rule: a string, boolean or number, not empty",
            )
        })?;
    let after = match (&raw.after, wants_after) {
        (None, true) => {
            return Err(bad(
                "after",
                "(missing)".into(),
                "how long after the call's end to call again, e.g. \"1d\" or \"2h\"",
            ))
        }
        (Some(a), false) => {
            return Err(bad(
                "after",
                format!("{a:?}"),
                "nothing: an opt-out is never called again",
            ))
        }
        (None, false) => None,
        (Some(a), true) => {
            let d = crate::duration::parse(a).map_err(|e| bad("after", format!("{a:?}"), &e))?;
            if d > Duration::from_secs(80 * 24 * 3600) {
                return Err(bad("after", format!("{a:?}"), "a duration up to 80d"));
            }
            Some(d)
        }
    };
    Ok(TagRule {
        name: raw.name.trim().to_string(),
        value: value.trim().to_string(),
        after,
    })
}

fn truth(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" | "on" => Some(true),
        "no" | "false" | "0" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Whether `tag` (as stored: its `InfoType` and read value) has the rule's value.
pub fn value_matches(info_type: &str, stored: &str, wanted: &str) -> bool {
    match info_type {
        "Boolean" => match (truth(stored), truth(wanted)) {
            (Some(a), Some(b)) => a == b,
            _ => stored.trim().eq_ignore_ascii_case(wanted.trim()),
        },
        "Selector" => stored
            .split(';')
            .any(|c| c.trim().to_lowercase() == wanted.trim().to_lowercase()),
        "Number" => match (stored.trim().parse::<f64>(), wanted.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => stored.trim() == wanted.trim(),
        },
        _ => stored.trim() == wanted.trim(),
    }
}

impl TagRule {
    /// The first of `tags` this rule matches.
    pub fn matches<'a>(&self, tags: &'a [Tag]) -> Option<&'a Tag> {
        tags.iter()
            .find(|t| t.name == self.name && value_matches(&t.info_type, &t.value, &self.value))
    }

    /// `opt_out=yes`, for reasons and logs.
    pub fn describe(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// The first of `rules` (in config order) that `tags` match, and from when (unix ms) the
/// contact may be called again: the call's end (`ended_ms`, else `now_ms`) plus its `after`.
pub fn redial_match<'a>(
    rules: &'a [TagRule],
    tags: &[Tag],
    ended_ms: Option<i64>,
    now_ms: i64,
) -> Option<(&'a TagRule, i64)> {
    let rule = rules.iter().find(|r| r.matches(tags).is_some())?;
    let after = rule
        .after
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
    Some((rule, ended_ms.unwrap_or(now_ms).saturating_add(after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(info_type: &str, name: &str, value: &str) -> Tag {
        Tag {
            name: name.into(),
            info_type: info_type.into(),
            info_content: String::new(),
            value: value.into(),
            result: String::new(),
        }
    }

    fn rule(text: &str, wants_after: bool) -> Result<TagRule, Invalid> {
        let raw: RawTagRule = toml::from_str(text).unwrap();
        validate(&raw, "redial.on_tag[0]", wants_after)
    }

    #[test]
    fn booleans_and_selectors_match_without_case_text_exactly_numbers_by_value() {
        assert!(value_matches("Boolean", "true", "yes"));
        assert!(value_matches("Boolean", "true", "YES"));
        assert!(value_matches("Boolean", "false", "No"));
        assert!(!value_matches("Boolean", "false", "yes"));
        assert!(value_matches("Selector", "later;Callback", "callback"));
        assert!(!value_matches("Selector", "later", "callback"));
        assert!(value_matches("Number", "7", "7.0"));
        assert!(!value_matches("Number", "7", "8"));
        assert!(value_matches("Text", "yes", "yes"));
        assert!(!value_matches("Text", "Yes", "yes"));
    }

    #[test]
    fn a_rule_matches_by_name_and_value() {
        let r = rule("name = \"callback\"\nvalue = \"yes\"\nafter = \"1d\"", true).unwrap();
        assert_eq!(r.after, Some(Duration::from_secs(86_400)));
        let tags = vec![
            tag("Boolean", "interested", "true"),
            tag("Boolean", "callback", "true"),
        ];
        assert_eq!(r.matches(&tags).map(|t| t.name.as_str()), Some("callback"));
        assert!(r.matches(&[tag("Boolean", "callback", "false")]).is_none());
        assert!(r.matches(&[tag("Boolean", "Callback", "true")]).is_none());
        // A boolean value written as a TOML boolean.
        let b = rule("name = \"opt_out\"\nvalue = true", false).unwrap();
        assert_eq!(b.value, "true");
        assert!(b.matches(&[tag("Boolean", "opt_out", "true")]).is_some());
    }

    #[test]
    fn the_first_matching_redial_rule_counts_from_the_calls_end() {
        let rules = vec![
            rule("name = \"callback\"\nvalue = \"yes\"\nafter = \"1d\"", true).unwrap(),
            rule("name = \"intent\"\nvalue = \"later\"\nafter = \"2h\"", true).unwrap(),
        ];
        let tags = vec![
            tag("Selector", "intent", "later;email"),
            tag("Boolean", "callback", "true"),
        ];
        let (r, at) = redial_match(&rules, &tags, Some(1_000), 5_000).unwrap();
        assert_eq!((r.name.as_str(), at), ("callback", 1_000 + 86_400_000));
        let (r, at) = redial_match(&rules, &tags[..1], None, 5_000).unwrap();
        assert_eq!((r.name.as_str(), at), ("intent", 5_000 + 7_200_000));
        assert!(redial_match(&rules, &[tag("Boolean", "callback", "false")], None, 0).is_none());
        // The rules survive the campaign's stored policy (JSON).
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(serde_json::from_str::<Vec<TagRule>>(&json).unwrap(), rules);
    }

    #[test]
    fn bad_rules_name_the_key() {
        let e = rule("name = \"\"\nvalue = \"yes\"\nafter = \"1d\"", true).unwrap_err();
        assert_eq!(e.0, "redial.on_tag[0].name");
        let e = rule("name = \"a\"\nvalue = \"yes\"", true).unwrap_err();
        assert_eq!(e.0, "redial.on_tag[0].after");
        let e = rule("name = \"a\"\nvalue = \"yes\"\nafter = \"soon\"", true).unwrap_err();
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("redial.on_tag[0].after", "\"soon\"")
        );
        let e = rule("name = \"a\"\nvalue = [1]\nafter = \"1d\"", true).unwrap_err();
        assert_eq!(e.0, "redial.on_tag[0].value");
        let e = rule("name = \"a\"\nvalue = \"y\"\nafter = \"1d\"", false).unwrap_err();
        assert_eq!(e.0, "redial.on_tag[0].after");
    }
}
