//! A campaign's own settings over the config's defaults (AI agent, callers, Variables, retry
//! limits, priority), as given in a multipart `settings` part (JSON), query parameters, or an
//! inbox sidecar `NAME.toml`. Stored with the campaign as JSON, so a restart dials it the same.
//!
//! Invariant: a value the config would refuse is refused here too, with the same range, so a
//! campaign cannot run with settings no config file could hold.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::calling::settings::{Calling, CampaignWindow};
use crate::config::Config;
use crate::dispatch::RequestDefaults;
use crate::duration;
use crate::policy::RetrySettings;
use crate::setting_rules as rules;

/// Names of ad-hoc call campaigns: `POST /v1/calls` creates `call-<Idempotency-Key>` (or
/// `call-<uuid>`), and looks a retried key up by that name. Nothing else may take such a name,
/// or an upload could answer for a call it never placed.
pub const CALL_PREFIX: &str = "call-";

/// The longest campaign name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// The highest priority: a campaign of priority p takes p + 1 requests in a row at its turn.
pub const PRIORITY_MAX: i64 = 9;
/// The longest backoff, as the config's `retry.backoff_initial`/`backoff_max` (a typo such as
/// `"99999999d"` must not park contacts for ever).
pub const BACKOFF_MAX: std::time::Duration = crate::setting_rules::LONGEST_DELAY;

/// A campaign name, from settings, a query or an inbox file's name: `Err` says what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty()
        || name.chars().count() > NAME_MAX_CHARS
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(format!(
            "name = {name:?}: expected 1 to {NAME_MAX_CHARS} characters (counted as characters, not bytes), not blank, no '/' or control characters"
        ));
    }
    Ok(())
}

/// Integers as JSON Schema counts them: `5` and `5.0` alike (the OpenAPI document says
/// `"type": "integer"`, which a client may well send as a whole float); `5.5` is refused.
pub mod whole {
    use serde::{Deserialize, Deserializer};

    enum Number {
        Unsigned(u64),
        Signed(i64),
        Float(f64),
    }

    struct NumberVisitor;

    impl serde::de::Visitor<'_> for NumberVisitor {
        type Value = Number;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
            Ok(Number::Unsigned(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
            Ok(Number::Signed(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
            Ok(Number::Float(v))
        }
    }

    impl<'de> Deserialize<'de> for Number {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
            d.deserialize_any(NumberVisitor)
        }
    }

    fn convert<T: TryFrom<i128>>(n: Number) -> Result<T, String> {
        let wide: i128 = match n {
            Number::Unsigned(u) => u.into(),
            Number::Signed(i) => i.into(),
            Number::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => f as i128,
            Number::Float(_) => return Err("invalid type: expected an integer".into()),
        };
        T::try_from(wide).map_err(|_| format!("invalid value: integer `{wide}` out of range"))
    }

    pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        match Option::<Number>::deserialize(d)? {
            None => Ok(None),
            Some(n) => convert(n).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Requests in a row at each turn at the shared limiter: p + 1 (0 to 9; more counts as 9).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub priority: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub ai_agent_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callers: Option<Vec<String>>,
    /// Merged over `campaign.variables`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub max_ring_timeout_second: Option<u32>,
    /// Calls this campaign's AI agent takes at once (over `campaign.agent_lines`); shared with
    /// every campaign on the same agent (the latest campaign started wins).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub agent_lines: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub max_attempts: Option<u32>,
    /// A duration such as `"2s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_initial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    /// The campaign's own calling window: `timezone`, `hours` (`mon` … `sun`),
    /// `blackout_dates`, `not_before`, `not_after`, over the config's `[calling]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling: Option<CampaignWindow>,
    /// This campaign's own rate cap, requests per second (over `campaign.max_rate`); at most
    /// the account's `rate.requests_per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// Create the campaign paused: it dials nothing until resumed (only read at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// This campaign's redial policy (`on`, `max_dials`, `after`), in place of the config's
    /// `[redial]` (see `crate::redial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redial: Option<crate::redial::settings::RawRedial>,
}

impl CampaignSettings {
    pub fn from_json(bytes: &[u8]) -> Result<CampaignSettings, String> {
        let s: CampaignSettings =
            serde_json::from_slice(bytes).map_err(|e| format!("settings: {e}"))?;
        s.validate()?;
        Ok(s)
    }

    /// Parse an inbox sidecar. A parse error names line, column and key, never the text: the
    /// file may hold anything (see [`super::toml_error`]).
    pub fn from_toml(text: &str) -> Result<CampaignSettings, String> {
        let s = CampaignSettings::parse_toml(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Parse an inbox sidecar without checking its values (see [`from_toml`](Self::from_toml)).
    pub fn parse_toml(text: &str) -> Result<CampaignSettings, String> {
        toml::from_str(text).map_err(|e| super::toml_error::describe(text, &e))
    }

    /// Every value checked before a campaign is created: `key = value: expected …`. The ranges
    /// are the config's (`campaign.max_ring_timeout_second`, `retry.max_attempts`, …).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if let Some(p) = self.priority {
            if !(0..=PRIORITY_MAX).contains(&p) {
                return Err(format!(
                    "priority = {p}: expected an integer from 0 to {PRIORITY_MAX}"
                ));
            }
        }
        // The config's checks (crate::setting_rules), in this API's `key = value` form.
        if let Some(a) = self.ai_agent_id {
            if !rules::ai_agent_id_ok(a) {
                return Err(format!(
                    "ai_agent_id = {a}: expected {}",
                    rules::ai_agent_id_expected()
                ));
            }
        }
        if let Err(e) =
            rules::variables_ok(self.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            return Err(match e.name {
                Some(name) => format!("variables: {name:?}: expected {}", e.expected),
                None => format!("variables: expected {}", e.expected),
            });
        }
        if let Some(callers) = &self.callers {
            if let Some(c) = callers.iter().find(|c| !rules::caller_ok(c)) {
                return Err(format!(
                    "callers = {c:?}: expected {}",
                    rules::CALLER_EXPECTED
                ));
            }
        }
        if let Some(n) = self.max_ring_timeout_second {
            if !rules::RING_TIMEOUT_SECONDS.contains(&i64::from(n)) {
                return Err(format!(
                    "max_ring_timeout_second = {n}: expected {}",
                    rules::RING_TIMEOUT_EXPECTED
                ));
            }
        }
        if let Some(n) = self.agent_lines {
            if !(1..=crate::config::MAX_AGENT_LINES).contains(&i64::from(n)) {
                return Err(format!(
                    "agent_lines = {n}: expected an integer from 1 to 10000 (the calls the AI agent takes at once)"
                ));
            }
        }
        if let Some(n) = self.max_attempts {
            if !rules::MAX_ATTEMPTS.contains(&i64::from(n)) {
                return Err(format!(
                    "max_attempts = {n}: expected {}",
                    rules::MAX_ATTEMPTS_EXPECTED
                ));
            }
        }
        let mut parsed = [None, None];
        for (slot, (key, value)) in parsed.iter_mut().zip([
            ("backoff_initial", &self.backoff_initial),
            ("backoff_max", &self.backoff_max),
        ]) {
            if let Some(v) = value {
                let d = duration::parse(v).map_err(|e| format!("{key} = {v:?}: expected {e}"))?;
                if d > BACKOFF_MAX {
                    return Err(format!("{key} = {v:?}: expected a duration of at most 30d"));
                }
                *slot = Some(d);
            }
        }
        if let Some(r) = &self.redial {
            crate::redial::settings::validate(r)
                .map_err(|e| crate::redial::settings::describe(&e))?;
        }
        if let [Some(initial), Some(max)] = parsed {
            if max < initial {
                return Err(format!(
                    "backoff_max = {:?}: expected a duration at least backoff_initial ({:?})",
                    self.backoff_max.as_deref().unwrap_or_default(),
                    self.backoff_initial.as_deref().unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and the backoff this campaign would run with (its values
    /// over the config's `[retry]`) is ordered as the config requires.
    pub fn validate_with(&self, cfg: &Config) -> Result<(), String> {
        self.validate()?;
        self.calling_rules(cfg)?;
        if let Some(r) = self.max_rate {
            crate::config::check_max_rate(r, cfg.rate.requests_per_second)
                .map_err(|e| format!("max_rate = {r}: expected {e}"))?;
        }
        if self.redial.is_some() && !cfg.outcomes.enabled {
            return Err(
                "redial: expected [outcomes] enabled = true in the config as well: redials are decided from the calls' outcomes"
                    .to_string(),
            );
        }
        if self.redial.as_ref().is_some_and(|r| !r.on_tag.is_empty()) && !cfg.outcomes.tags {
            return Err(
                "redial.on_tag: expected [outcomes] tags = true in the config as well: the tags are read from DescribeAICallExtractResult"
                    .to_string(),
            );
        }
        let r = self.retry(cfg);
        if r.backoff_max < r.backoff_initial {
            return Err(format!(
                "backoff_initial/backoff_max: the campaign would back off from {:?} up to only {:?} (with the config's retry.backoff_initial/backoff_max): expected backoff_max at least backoff_initial",
                r.backoff_initial, r.backoff_max
            ));
        }
        Ok(())
    }

    /// The config's `[calling]` with this campaign's window over it.
    pub fn calling_rules(&self, cfg: &Config) -> Result<Calling, String> {
        match &self.calling {
            None => Ok(cfg.calling.clone()),
            Some(w) => w.apply(&cfg.calling),
        }
    }

    /// Upload and inbox names may not take the ad-hoc calls' [`CALL_PREFIX`].
    pub fn refuse_reserved_name(&self) -> Result<(), String> {
        match &self.name {
            Some(name) if name.starts_with(CALL_PREFIX) => Err(format!(
                "name = {name:?}: names starting with {CALL_PREFIX:?} are reserved for ad-hoc calls (POST /v1/calls); choose another name"
            )),
            _ => Ok(()),
        }
    }

    /// The request defaults for this campaign: its settings over the config's `[campaign]`.
    pub fn request_defaults(&self, cfg: &Config) -> RequestDefaults {
        let mut d = RequestDefaults::from(&cfg.campaign);
        if let Some(a) = self.ai_agent_id {
            d.ai_agent_id = a;
        }
        if let Some(c) = &self.callers {
            d.callers = c.clone();
        }
        for (k, v) in &self.variables {
            d.variables.insert(k.clone(), v.clone());
        }
        if let Some(t) = self.max_ring_timeout_second {
            d.max_ring_timeout_second = Some(t);
        }
        d
    }

    /// This campaign's rate cap: its own over the config's `campaign.max_rate` (`None`: only
    /// the account's).
    pub fn max_rate(&self, cfg: &Config) -> Option<f64> {
        self.max_rate.or(cfg.campaign.max_rate)
    }

    /// This campaign's redial policy: its own `redial` in place of the config's `[redial]`
    /// (`None`: no redials). A stored policy that no longer validates keeps the config's.
    pub fn redial(&self, cfg: &Config) -> Option<crate::redial::RedialPolicy> {
        match &self.redial {
            Some(r) => match crate::redial::settings::validate(r) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(error = %crate::redial::settings::describe(&e), "campaign redial policy unreadable: using the config's");
                    cfg.redial.clone()
                }
            },
            None => cfg.redial.clone(),
        }
    }

    /// The retry settings for this campaign: its limits over the config's `[retry]`.
    pub fn retry(&self, cfg: &Config) -> RetrySettings {
        let mut r = RetrySettings::from(&cfg.retry);
        if let Some(n) = self.max_attempts {
            r.max_attempts = n;
        }
        // Validated when the campaign was created; a stored value that no longer parses keeps
        // the config's.
        if let Some(d) = self
            .backoff_initial
            .as_deref()
            .and_then(|v| duration::parse(v).ok())
        {
            r.backoff_initial = d;
        }
        if let Some(d) = self
            .backoff_max
            .as_deref()
            .and_then(|v| duration::parse(v).ok())
        {
            r.backoff_max = d;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key() {
        let e = CampaignSettings::from_json(br#"{"agent": 3}"#).unwrap_err();
        assert!(e.contains("unknown field `agent`"), "{e}");
        let e = CampaignSettings::from_json(br#"{"max_attempts": 0}"#).unwrap_err();
        assert_eq!(e, "max_attempts = 0: expected an integer from 1 to 100");
        let e = CampaignSettings::from_toml("backoff_max = \"soon\"").unwrap_err();
        assert!(e.starts_with("backoff_max = \"soon\": "), "{e}");
        let e = CampaignSettings::from_json(br#"{"callers": ["0086100", "x1"]}"#).unwrap_err();
        assert!(e.starts_with("callers = \"x1\": expected"), "{e}");
        let e = CampaignSettings::from_json(br#"{"name": "a/b"}"#).unwrap_err();
        assert!(e.starts_with("name = \"a/b\""), "{e}");
    }

    #[test]
    fn settings_override_the_config_defaults() {
        let cfg = Config::parse(
            std::path::Path::new("t.toml"),
            "[tencentcloud]\nendpoint = \"builtin\"\n[campaign]\nsdk_app_id = 1\nai_agent_id = 2\n\
             callers = [\"0086100\"]\nvariables = { product = \"x\", name = \"y\" }\n[retry]\nmax_attempts = 3\n",
        )
        .unwrap();
        let s = CampaignSettings::from_toml(
            "ai_agent_id = 9\ncallers = [\"0086101\", \"0086102\"]\nmax_attempts = 5\nbackoff_initial = \"3s\"\n\
             [variables]\nname = \"z\"\n",
        )
        .unwrap();
        let d = s.request_defaults(&cfg);
        assert_eq!(d.ai_agent_id, 9);
        assert_eq!(d.callers, vec!["0086101", "0086102"]);
        assert_eq!(d.variables.get("name").map(String::as_str), Some("z"));
        assert_eq!(d.variables.get("product").map(String::as_str), Some("x"));
        let r = s.retry(&cfg);
        assert_eq!(r.max_attempts, 5);
        assert_eq!(r.backoff_initial, std::time::Duration::from_secs(3));
        let none = CampaignSettings::default();
        assert_eq!(none.retry(&cfg).max_attempts, 3);
        assert_eq!(none.request_defaults(&cfg).ai_agent_id, 2);
    }

    #[test]
    fn ranges_are_the_configs_and_names_are_counted_in_characters() {
        let ok = |json: &str| CampaignSettings::from_json(json.as_bytes());
        assert!(ok(r#"{"max_attempts": 100}"#).is_ok());
        assert!(ok(r#"{"max_attempts": 1}"#).is_ok());
        let e = ok(r#"{"max_attempts": 101}"#).unwrap_err();
        assert_eq!(e, "max_attempts = 101: expected an integer from 1 to 100");
        assert!(ok(r#"{"max_ring_timeout_second": 600}"#).is_ok());
        for bad in [0, 601, 4_000_000_000u32] {
            let e = ok(&format!(r#"{{"max_ring_timeout_second": {bad}}}"#)).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "max_ring_timeout_second = {bad}: expected an integer from 1 to 600 (seconds)"
                )
            );
        }
        // 200 characters of two bytes each: 400 bytes, still 200 characters.
        let long = "é".repeat(200);
        assert!(ok(&format!(r#"{{"name": "{long}"}}"#)).is_ok());
        let e = ok(&format!(r#"{{"name": "{long}x"}}"#)).unwrap_err();
        assert!(
            e.contains("1 to 200 characters (counted as characters, not bytes)"),
            "{e}"
        );
        let e = ok(r#"{"backoff_initial": "10s", "backoff_max": "1s"}"#).unwrap_err();
        assert!(
            e.starts_with("backoff_max = \"1s\": expected a duration at least"),
            "{e}"
        );
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let s = CampaignSettings::from_json(br#"{"ai_agent_id": 138641742.0, "priority": 2.0}"#)
            .unwrap();
        assert_eq!((s.ai_agent_id, s.priority), (Some(138641742), Some(2)));
        let e = CampaignSettings::from_json(br#"{"max_attempts": 2.5}"#).unwrap_err();
        assert!(e.contains("expected an integer"), "{e}");
        let e = CampaignSettings::from_json(br#"{"max_attempts": -1}"#).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let s = CampaignSettings::from_toml("max_attempts = 3\n").unwrap();
        assert_eq!(s.max_attempts, Some(3));
    }

    #[test]
    fn settings_out_of_the_configs_ranges_are_refused_not_clamped() {
        let e = |json: &str| CampaignSettings::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(
            e(r#"{"backoff_initial": "99999999999999d"}"#),
            "backoff_initial = \"99999999999999d\": expected a duration of at most 30d"
        );
        assert!(CampaignSettings::from_json(br#"{"backoff_max": "30d"}"#).is_ok());
        let big = e(r#"{"ai_agent_id": 18446744073709551615}"#);
        assert!(big.contains("up to 9223372036854775807"), "{big}");
        assert!(CampaignSettings::from_json(br#"{"ai_agent_id": 9223372036854775807}"#).is_ok());
        for p in ["-5", "10", "9223372036854775807"] {
            assert_eq!(
                e(&format!(r#"{{"priority": {p}}}"#)),
                format!("priority = {p}: expected an integer from 0 to 9")
            );
        }
        assert!(CampaignSettings::from_json(br#"{"priority": 9}"#).is_ok());
        let v = e(r#"{"variables": {"": "x"}}"#);
        assert!(v.contains("not an empty one"), "{v}");
        let v = e(r#"{"variables": {"  ": "x"}}"#);
        assert!(v.contains("not an empty one"), "{v}");
    }

    #[test]
    fn a_backoff_below_the_configs_initial_is_refused_with_the_config() {
        let cfg = Config::parse(
            std::path::Path::new("t.toml"),
            "[tencentcloud]\nendpoint = \"builtin\"\n[campaign]\nsdk_app_id = 1\nai_agent_id = 2\n\
             [retry]\nbackoff_initial = \"10s\"\nbackoff_max = \"1m\"\n",
        )
        .unwrap();
        let s = CampaignSettings::from_json(br#"{"backoff_max": "5s"}"#).unwrap();
        let e = s.validate_with(&cfg).unwrap_err();
        assert!(
            e.contains("expected backoff_max at least backoff_initial"),
            "{e}"
        );
        let s = CampaignSettings::from_json(br#"{"backoff_max": "30s"}"#).unwrap();
        assert!(s.validate_with(&cfg).is_ok());
    }

    #[test]
    fn agent_lines_are_checked_like_the_configs() {
        let ok = |json: &str| CampaignSettings::from_json(json.as_bytes());
        assert_eq!(ok(r#"{"agent_lines": 10}"#).unwrap().agent_lines, Some(10));
        let e = ok(r#"{"agent_lines": 0}"#).unwrap_err();
        assert!(
            e.starts_with("agent_lines = 0: expected an integer from 1 to 10000"),
            "{e}"
        );
        let e = CampaignSettings::from_toml("agent_lines = 10001").unwrap_err();
        assert!(e.starts_with("agent_lines = 10001"), "{e}");
    }

    #[test]
    fn names_of_ad_hoc_calls_are_reserved() {
        let named = |n: &str| CampaignSettings {
            name: Some(n.into()),
            ..Default::default()
        };
        let e = named("call-k1").refuse_reserved_name().unwrap_err();
        assert!(e.contains("reserved for ad-hoc calls"), "{e}");
        assert!(named("recall-k1").refuse_reserved_name().is_ok());
        assert!(CampaignSettings::default().refuse_reserved_name().is_ok());
    }

    #[test]
    fn a_campaign_window_overrides_the_config_and_bad_values_name_the_key() {
        let cfg = Config::parse(
            std::path::Path::new("t.toml"),
            "[tencentcloud]\nendpoint = \"builtin\"\n[campaign]\nsdk_app_id = 1\nai_agent_id = 2\n\
             [calling]\ntimezone = \"Asia/Shanghai\"\nhours.mon = [\"09:00-12:00\"]\n",
        )
        .unwrap();
        let s = CampaignSettings::from_toml(
            "[calling]\ntimezone = \"America/New_York\"\nblackout_dates = [\"2026-12-25\"]\n",
        )
        .unwrap();
        let c = s.calling_rules(&cfg).unwrap();
        assert_eq!(crate::calling::zones::name(c.zone()), "America/New_York");
        // Hours left out stay the config's; the blackout date is the campaign's.
        assert_eq!(c.window.hours_by_day(), cfg.calling.window.hours_by_day());
        assert_eq!(c.window.blackout_dates().len(), 1);
        let bad = CampaignSettings::from_toml("[calling.hours]\nmon = [\"9-5\"]\n").unwrap();
        let e = bad.calling_rules(&cfg).unwrap_err();
        assert!(
            e.starts_with("calling.hours.mon[0] = \"9-5\": expected"),
            "{e}"
        );
        let bad =
            CampaignSettings::from_toml("[calling.hours]\nmonday = [\"09:00-10:00\"]\n").unwrap();
        assert!(bad
            .calling_rules(&cfg)
            .unwrap_err()
            .contains("expected a weekday"));
        assert!(bad.validate_with(&cfg).is_err());
    }
}
