//! The `[redial]` table: its shape in the config, in `serve`'s campaign `settings` (JSON) and in
//! an inbox sidecar (TOML), and its one validation into a [`RedialPolicy`]. Absent, nothing is
//! redialled (the behaviour before issue 14).
//!
//! ```toml
//! [redial]
//! on = ["not_answered", "busy", "202"]  # outcome classes, or end codes as strings
//! max_dials = 3                         # calls per contact in this campaign, the first included
//! after = "2h"                          # least time from a call's end to the next dial
//!
//! [[redial.on_tag]]                     # a post-call tag asks for a redial (answered calls too)
//! name = "callback"
//! value = "yes"
//! after = "1d"                          # from the call's end
//! ```
//!
//! `on` may be left out when `on_tag` rules are given (redial by tag only).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{RedialPolicy, Trigger};
use crate::outcomes::tag_rules::{self, RawTagRule};

/// `max_dials` when left out (Tencent's own batch task allows 1 to 3 tries).
pub const DEFAULT_MAX_DIALS: u32 = 3;
/// The most calls per contact a policy may ask for.
pub const MAX_DIALS: u32 = 10;
/// `after` when left out.
pub const DEFAULT_AFTER: &str = "2h";
/// The longest `after`.
pub const AFTER_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedial {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::server::settings::whole::option"
    )]
    pub max_dials: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `[[redial.on_tag]]`: `{ name, value, after }` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_tag: Vec<RawTagRule>,
}

/// A bad key: its name (`redial.on[1]`), the value as written, what was expected.
pub type Invalid = (String, String, String);

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Invalid {
    (key.to_string(), value.to_string(), expected.to_string())
}

/// The policy `raw` describes. Keys are named `redial.KEY` as in the config.
pub fn validate(raw: &RawRedial) -> Result<RedialPolicy, Invalid> {
    if raw.on.is_empty() && raw.on_tag.is_empty() {
        return Err(invalid(
            "redial.on",
            "[]",
            "a list of at least one outcome class or end code, e.g. [\"not_answered\", \"busy\"] \
             (or [[redial.on_tag]] rules to redial by post-call tag only)",
        ));
    }
    let mut on_tag = Vec::with_capacity(raw.on_tag.len());
    for (i, rule) in raw.on_tag.iter().enumerate() {
        on_tag.push(tag_rules::validate(
            rule,
            &format!("redial.on_tag[{i}]"),
            true,
        )?);
    }
    let mut on = Vec::with_capacity(raw.on.len());
    for (i, text) in raw.on.iter().enumerate() {
        let t: Trigger = text
            .parse()
            .map_err(|e: String| invalid(&format!("redial.on[{i}]"), format!("{text:?}"), &e))?;
        if !on.contains(&t) {
            on.push(t);
        }
    }
    let max_dials = raw.max_dials.unwrap_or(DEFAULT_MAX_DIALS);
    if !(1..=MAX_DIALS).contains(&max_dials) {
        return Err(invalid(
            "redial.max_dials",
            max_dials,
            "an integer from 1 to 10 (calls per contact, the first included)",
        ));
    }
    let after_text = raw.after.as_deref().unwrap_or(DEFAULT_AFTER);
    let after = crate::duration::parse(after_text)
        .map_err(|e| invalid("redial.after", format!("{after_text:?}"), &e))?;
    if after < Duration::from_secs(1) || after > AFTER_MAX {
        return Err(invalid(
            "redial.after",
            format!("{after_text:?}"),
            "a duration from 1s to 30d (from a call's end to the next dial)",
        ));
    }
    Ok(RedialPolicy {
        on,
        max_dials,
        after,
        on_tag,
    })
}

/// `key = value: expected …`, as `serve` settings and sidecars say it.
pub fn describe((key, value, expected): &Invalid) -> String {
    format!("{key} = {value}: expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::classes::OutcomeClass;

    fn parse(text: &str) -> Result<RedialPolicy, Invalid> {
        validate(&toml::from_str::<RawRedial>(text).map_err(|e| invalid("?", e, "toml"))?)
    }

    #[test]
    fn the_issues_example_reads_and_defaults_fill_the_rest() {
        let p = parse("on = [\"not_answered\", \"busy\", \"unreachable\", \"voicemail\", \"202\"]\nmax_dials = 3\nafter = \"2h\"").unwrap();
        assert_eq!(p.on.len(), 5);
        assert_eq!(p.on[4], Trigger::Code(202));
        assert_eq!((p.max_dials, p.after), (3, Duration::from_secs(7200)));
        let p = parse("on = [\"busy\", \"busy\"]").unwrap();
        assert_eq!(p.on, vec![Trigger::Class(OutcomeClass::Busy)]);
        assert_eq!((p.max_dials, p.after), (3, Duration::from_secs(7200)));
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_what_was_expected() {
        let e = parse("").unwrap_err();
        assert_eq!(e.0, "redial.on");
        let e = parse("on = [\"busy\", \"answred\"]").unwrap_err();
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("redial.on[1]", "\"answred\"")
        );
        assert!(e.2.contains("\"not_answered\""), "{e:?}");
        let e = parse("on = [\"answered\"]").unwrap_err();
        assert!(e.2.contains("post-call tag"), "{e:?}");
        let e = parse("on = [\"busy\"]\nmax_dials = 0").unwrap_err();
        assert_eq!((e.0.as_str(), e.1.as_str()), ("redial.max_dials", "0"));
        let e = parse("on = [\"busy\"]\nmax_dials = 11").unwrap_err();
        assert_eq!(e.0, "redial.max_dials");
        let e = parse("on = [\"busy\"]\nafter = \"0s\"").unwrap_err();
        assert_eq!((e.0.as_str(), e.1.as_str()), ("redial.after", "\"0s\""));
        let e = parse("on = [\"busy\"]\nafter = \"31d\"").unwrap_err();
        assert!(e.2.contains("1s to 30d"), "{e:?}");
        let e = parse("on = [\"busy\"]\nafter = \"soon\"").unwrap_err();
        assert_eq!(e.0, "redial.after");
        assert!(toml::from_str::<RawRedial>("tries = 3").is_err());
        assert_eq!(
            describe(&("redial.max_dials".into(), "0".into(), "x".into())),
            "redial.max_dials = 0: expected x"
        );
    }

    #[test]
    fn on_tag_rules_read_alone_or_beside_on_and_bad_ones_name_their_key() {
        let p = parse(
            "[[on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"1d\"\n\
             [[on_tag]]\nname = \"intent\"\nvalue = \"later\"\nafter = \"2h\"",
        )
        .unwrap();
        assert!(p.on.is_empty());
        assert_eq!(p.on_tag.len(), 2);
        assert_eq!(
            (p.on_tag[0].name.as_str(), p.on_tag[0].value.as_str()),
            ("callback", "yes")
        );
        assert_eq!(p.on_tag[1].after, Some(Duration::from_secs(7200)));
        let e =
            parse("on = [\"busy\"]\n[[on_tag]]\nname = \"callback\"\nvalue = \"yes\"").unwrap_err();
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("redial.on_tag[0].after", "(missing)")
        );
        let e = parse(
            "[[on_tag]]\nname = \"a\"\nvalue = \"yes\"\nafter = \"1d\"\n\
             [[on_tag]]\nname = \"b\"\nvalue = \"\"\nafter = \"1d\"",
        )
        .unwrap_err();
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("redial.on_tag[1].value", "\"\"")
        );
        let e = parse("[[on_tag]]\nname = \" \"\nvalue = \"yes\"\nafter = \"1d\"").unwrap_err();
        assert_eq!(e.0, "redial.on_tag[0].name");
        assert!(
            toml::from_str::<RawRedial>("[[on_tag]]\nname = \"a\"\nvalue = 1\nwhen = 2").is_err()
        );
        // The policy keeps its rules through the campaign's stored JSON.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<RedialPolicy>(&json).unwrap(), p);
        // The same table as serve's JSON settings.
        let r: RawRedial = serde_json::from_str(
            r#"{"on_tag": [{"name": "callback", "value": true, "after": "10s"}]}"#,
        )
        .unwrap();
        let p = validate(&r).unwrap();
        assert_eq!(p.on_tag[0].value, "true");
        assert_eq!(
            serde_json::from_str::<RawRedial>(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn json_settings_take_whole_floats_and_refuse_fractions() {
        let r: RawRedial =
            serde_json::from_str(r#"{"on": ["busy"], "max_dials": 2.0, "after": "10s"}"#).unwrap();
        assert_eq!(validate(&r).unwrap().max_dials, 2);
        assert!(
            serde_json::from_str::<RawRedial>(r#"{"on": ["busy"], "max_dials": 2.5}"#).is_err()
        );
    }
}
