//! The `[outcomes]` table of the configuration: its TOML shape and its validation into
//! [`OutcomeSettings`]. [`crate::config`] owns the file and the error type; this module owns
//! the keys. Absent, outcome tracking is off (today's behaviour).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use super::classes::{OutcomeClass, OutcomeOverrides};

/// The default DescribeTelCdr budget (its own limit, not CreateAIAgentCall's).
pub const DEFAULT_RPS: f64 = 5.0;
/// DescribeTelCdr's documented limit, per sub-account.
pub const DOCUMENTED_CAP: f64 = 20.0;
/// The default budget of DescribeAICallExtractResult and of DescribeAIAnalysisResult (each its
/// own limiter; one request per answered session).
pub const DEFAULT_TAGS_RPS: f64 = 10.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOutcomes {
    enabled: bool,
    requests_per_second: f64,
    first_check_after: String,
    check_every: String,
    give_up_after: String,
    reconcile_after: String,
    classes: BTreeMap<String, String>,
    tags: bool,
    analysis: bool,
    tags_requests_per_second: f64,
}

impl Default for RawOutcomes {
    fn default() -> Self {
        RawOutcomes {
            enabled: false,
            requests_per_second: DEFAULT_RPS,
            first_check_after: "30s".into(),
            check_every: "30s".into(),
            give_up_after: "24h".into(),
            reconcile_after: "2h".into(),
            classes: BTreeMap::new(),
            tags: false,
            analysis: false,
            tags_requests_per_second: DEFAULT_TAGS_RPS,
        }
    }
}

/// Validated outcome tracking settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeSettings {
    pub enabled: bool,
    /// DescribeTelCdr requests per second (its own limiter).
    pub requests_per_second: f64,
    /// First check of a session this long after its request was sent.
    pub first_check_after: Duration,
    /// Then every this long…
    pub check_every: Duration,
    /// …until this long after the send: outcome `no_record`.
    pub give_up_after: Duration,
    /// An `unknown` contact with no call record this long after the send becomes `not_placed`.
    pub reconcile_after: Duration,
    /// `[outcomes.classes]`: end code → class.
    pub classes: OutcomeOverrides,
    /// Ask DescribeAICallExtractResult for every answered session's post-call tags.
    pub tags: bool,
    /// Ask DescribeAIAnalysisResult for every answered session's summary, mood and intention.
    pub analysis: bool,
    /// Requests per second of each of those two actions (each its own limiter).
    pub tags_requests_per_second: f64,
}

impl Default for OutcomeSettings {
    fn default() -> Self {
        // The defaults are valid by construction.
        validate(RawOutcomes::default()).unwrap_or(OutcomeSettings {
            enabled: false,
            requests_per_second: DEFAULT_RPS,
            first_check_after: Duration::from_secs(30),
            check_every: Duration::from_secs(30),
            give_up_after: Duration::from_secs(24 * 3600),
            reconcile_after: Duration::from_secs(2 * 3600),
            classes: OutcomeOverrides::new(),
            tags: false,
            analysis: false,
            tags_requests_per_second: DEFAULT_TAGS_RPS,
        })
    }
}

/// A bad key: its name, the value as written, what was expected.
pub type Invalid = (String, String, String);

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Invalid {
    (key.to_string(), value.to_string(), expected.to_string())
}

pub(crate) fn validate(raw: RawOutcomes) -> Result<OutcomeSettings, Invalid> {
    let rps = raw.requests_per_second;
    if !rps.is_finite() || !(0.1..=DOCUMENTED_CAP).contains(&rps) {
        return Err(invalid(
            "outcomes.requests_per_second",
            rps,
            "a number from 0.1 to 20 (DescribeTelCdr's documented limit; its own budget, not CreateAIAgentCall's)",
        ));
    }
    let tags_rps = raw.tags_requests_per_second;
    if !tags_rps.is_finite() || !(0.1..=DOCUMENTED_CAP).contains(&tags_rps) {
        return Err(invalid(
            "outcomes.tags_requests_per_second",
            tags_rps,
            "a number from 0.1 to 20 (each of DescribeAICallExtractResult and DescribeAIAnalysisResult; their own budgets, not CreateAIAgentCall's)",
        ));
    }
    for (key, on) in [
        ("outcomes.tags", raw.tags),
        ("outcomes.analysis", raw.analysis),
    ] {
        if on && !raw.enabled {
            return Err(invalid(
                key,
                "true",
                "false unless outcomes.enabled = true (they are asked for answered calls, which the call records tell)",
            ));
        }
    }
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let duration = |key: &str, text: &str, min: Duration, max: Duration, range: &str| {
        let d = crate::duration::parse(text).map_err(|e| invalid(key, format!("{text:?}"), &e))?;
        if d < min || d > max {
            return Err(invalid(key, format!("{text:?}"), range));
        }
        Ok(d)
    };
    let first_check_after = duration(
        "outcomes.first_check_after",
        &raw.first_check_after,
        Duration::ZERO,
        DAY,
        "a duration from 0s to 24h",
    )?;
    let check_every = duration(
        "outcomes.check_every",
        &raw.check_every,
        Duration::from_secs(1),
        DAY,
        "a duration from 1s to 24h",
    )?;
    // The service keeps records about 180 days; a query spans under 90.
    let give_up_after = duration(
        "outcomes.give_up_after",
        &raw.give_up_after,
        Duration::from_secs(10),
        80 * DAY,
        "a duration from 10s to 80d",
    )?;
    if give_up_after < first_check_after {
        return Err(invalid(
            "outcomes.give_up_after",
            format!("{:?}", raw.give_up_after),
            "a duration at least outcomes.first_check_after",
        ));
    }
    let reconcile_after = duration(
        "outcomes.reconcile_after",
        &raw.reconcile_after,
        Duration::from_secs(10),
        80 * DAY,
        "a duration from 10s to 80d (ring time + the longest talk + the record's delay)",
    )?;
    let mut classes = OutcomeOverrides::new();
    for (code, class) in raw.classes {
        let key = format!("outcomes.classes.\"{code}\"");
        let n: i64 = code.trim().parse().map_err(|_| {
            invalid(
                &key,
                format!("{class:?}"),
                "an EndStatus code as the key (digits, e.g. \"209\" = \"not_answered\")",
            )
        })?;
        let parsed: OutcomeClass = class
            .parse()
            .map_err(|e: String| invalid(&key, format!("{class:?}"), &e))?;
        if parsed == OutcomeClass::NoRecord {
            return Err(invalid(
                &key,
                format!("{class:?}"),
                "a class a call record can have (no_record means no record came)",
            ));
        }
        classes.insert(n, parsed);
    }
    Ok(OutcomeSettings {
        enabled: raw.enabled,
        requests_per_second: rps,
        first_check_after,
        check_every,
        give_up_after,
        reconcile_after,
        classes,
        tags: raw.tags,
        analysis: raw.analysis,
        tags_requests_per_second: tags_rps,
    })
}

impl OutcomeSettings {
    /// Whether anything is asked after an answered call (tags or analysis).
    pub fn ai_results(&self) -> bool {
        self.tags || self.analysis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OutcomeSettings, Invalid> {
        validate(toml::from_str::<RawOutcomes>(text).map_err(|e| invalid("?", e, "toml"))?)
    }

    #[test]
    fn defaults_are_off_with_the_issues_figures() {
        let s = parse("").unwrap();
        assert!(!s.enabled);
        assert_eq!(s.requests_per_second, 5.0);
        assert_eq!(s.first_check_after, Duration::from_secs(30));
        assert_eq!(s.check_every, Duration::from_secs(30));
        assert_eq!(s.give_up_after, Duration::from_secs(24 * 3600));
        assert_eq!(s.reconcile_after, Duration::from_secs(7200));
        assert_eq!(s, OutcomeSettings::default());
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_what_was_expected() {
        let e = parse("requests_per_second = 25").unwrap_err();
        assert_eq!(e.0, "outcomes.requests_per_second");
        assert!(e.2.contains("0.1 to 20"), "{e:?}");
        let e = parse("check_every = \"0s\"").unwrap_err();
        assert_eq!(
            (e.0.as_str(), e.1.as_str()),
            ("outcomes.check_every", "\"0s\"")
        );
        let e = parse("give_up_after = \"9s\"").unwrap_err();
        assert_eq!(e.0, "outcomes.give_up_after");
        let e = parse("tags = true").unwrap_err();
        assert_eq!(e.0, "outcomes.tags");
        assert!(parse("enabled = true\ntags = true\nanalysis = true")
            .unwrap()
            .ai_results());
        let e = parse("tags_requests_per_second = 0").unwrap_err();
        assert_eq!(e.0, "outcomes.tags_requests_per_second");
        let e = parse("reconcile_after = \"soon\"").unwrap_err();
        assert_eq!(e.0, "outcomes.reconcile_after");
        let e = parse("[classes]\n\"abc\" = \"busy\"").unwrap_err();
        assert_eq!(e.0, "outcomes.classes.\"abc\"");
        let e = parse("[classes]\n\"209\" = \"bsy\"").unwrap_err();
        assert!(e.2.contains("\"busy\""), "{e:?}");
        let e = parse("[classes]\n\"209\" = \"no_record\"").unwrap_err();
        assert_eq!(e.0, "outcomes.classes.\"209\"");
    }

    #[test]
    fn overrides_are_read_by_code() {
        let s = parse("enabled = true\n[classes]\n\"209\" = \"not_answered\"").unwrap();
        assert!(s.enabled);
        assert_eq!(s.classes.get(&209), Some(&OutcomeClass::NotAnswered));
    }
}
