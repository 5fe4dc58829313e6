//! A campaign's own settings over the config's defaults (AI agent, callers, Variables, retry
//! limits, priority), as given in a multipart `settings` part (JSON), query parameters, or an
//! inbox sidecar `NAME.toml`. Stored with the campaign as JSON, so a restart dials it the same.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::Config;
use crate::dispatch::RequestDefaults;
use crate::duration;
use crate::policy::RetrySettings;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Shown in listings; campaigns share the rate in turn whatever their priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_agent_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callers: Option<Vec<String>>,
    /// Merged over `campaign.variables`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ring_timeout_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// A duration such as `"2s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_initial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
}

impl CampaignSettings {
    pub fn from_json(bytes: &[u8]) -> Result<CampaignSettings, String> {
        let s: CampaignSettings =
            serde_json::from_slice(bytes).map_err(|e| format!("settings: {e}"))?;
        s.validate()?;
        Ok(s)
    }

    pub fn from_toml(text: &str) -> Result<CampaignSettings, String> {
        let s: CampaignSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// Every value checked before a campaign is created: `key = value: expected …`.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.name {
            if name.trim().is_empty()
                || name.len() > 200
                || name.chars().any(|c| c.is_control() || c == '/')
            {
                return Err(format!(
                    "name = {name:?}: expected 1 to 200 characters, no '/' or control characters"
                ));
            }
        }
        if self.ai_agent_id == Some(0) {
            return Err("ai_agent_id = 0: expected a positive integer".into());
        }
        if let Some(callers) = &self.callers {
            let bad = callers.iter().find(|c| {
                let digits = c.strip_prefix('+').unwrap_or(c);
                digits.is_empty() || !digits.chars().all(|ch| ch.is_ascii_digit())
            });
            if let Some(c) = bad {
                return Err(format!(
                    "callers = {c:?}: expected caller numbers of digits, optionally starting with + (e.g. \"008601012345678\")"
                ));
            }
        }
        if let Some(n) = self.max_attempts {
            if !(1..=20).contains(&n) {
                return Err(format!("max_attempts = {n}: expected 1 to 20"));
            }
        }
        for (key, value) in [
            ("backoff_initial", &self.backoff_initial),
            ("backoff_max", &self.backoff_max),
        ] {
            if let Some(v) = value {
                duration::parse(v).map_err(|e| format!("{key} = {v:?}: {e}"))?;
            }
        }
        Ok(())
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
        assert_eq!(e, "max_attempts = 0: expected 1 to 20");
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
}
