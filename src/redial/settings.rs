//! The `[redial]` table: its shape in the config, in `serve`'s campaign `settings` (JSON) and in
//! an inbox sidecar (TOML), and its one validation into a [`RedialPolicy`]. Absent, nothing is
//! redialled (the behaviour before issue 14).
//!
//! ```toml
//! [redial]
//! on = ["not_answered", "busy", "202"]  # outcome classes, or end codes as strings
//! max_dials = 3                         # calls per contact in this campaign, the first included
//! after = "2h"                          # least time from a call's end to the next dial
//! ```

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{RedialPolicy, Trigger};

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
}

/// A bad key: its name (`redial.on[1]`), the value as written, what was expected.
pub type Invalid = (String, String, String);

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Invalid {
    (key.to_string(), value.to_string(), expected.to_string())
}

/// The policy `raw` describes. Keys are named `redial.KEY` as in the config.
pub fn validate(raw: &RawRedial) -> Result<RedialPolicy, Invalid> {
    if raw.on.is_empty() {
        return Err(invalid(
            "redial.on",
            "[]",
            "a list of at least one outcome class or end code, e.g. [\"not_answered\", \"busy\"]",
        ));
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
    fn json_settings_take_whole_floats_and_refuse_fractions() {
        let r: RawRedial =
            serde_json::from_str(r#"{"on": ["busy"], "max_dials": 2.0, "after": "10s"}"#).unwrap();
        assert_eq!(validate(&r).unwrap().max_dials, 2);
        assert!(
            serde_json::from_str::<RawRedial>(r#"{"on": ["busy"], "max_dials": 2.5}"#).is_err()
        );
    }
}
