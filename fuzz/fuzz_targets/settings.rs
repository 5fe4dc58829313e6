//! The settings parsers: the config file (`Config::parse`) and a campaign's own settings as
//! JSON (API) and TOML (inbox sidecar). Never a panic; a TOML syntax or type error never quotes
//! a value (the marker `FUZZSECRET` in the input must not reach the message).
#![no_main]

use ccc_dialer::config::{Config, ConfigError};
use ccc_dialer::server::settings::CampaignSettings;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "FUZZSECRET";

/// A message that shows no value: keys may be named (`key K`, ``unknown field `K` ``), and a
/// named key must be a real bare or dotted key; nothing else may carry the marker.
fn assert_no_value(message: &str) {
    let mut rest = message.to_string();
    if let Some(at) = rest.find(", key ") {
        let key = rest[at + 6..].split(": ").next().unwrap_or("").to_string();
        let bare = key.split('.').all(|p| {
            let p = p.trim_matches(' ');
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        assert!(bare, "not a key shown as one: {message}");
        rest = rest.replacen(&format!(", key {key}"), "", 1);
    }
    for named in ["unknown field `", "duplicate key `"] {
        while let Some(at) = rest.find(named) {
            let start = at + named.len();
            let end = rest[start..]
                .find('`')
                .map_or(rest.len(), |e| start + e + 1);
            rest.replace_range(at..end, "");
        }
    }
    assert!(!rest.contains(MARKER), "a value shown: {message}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(settings) = CampaignSettings::from_json(data) {
        let _ = settings.validate();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CampaignSettings::from_toml(text) {
        Ok(settings) => {
            let _ = settings.validate();
        }
        Err(message) => assert_no_value(&message),
    }
    match Config::parse(std::path::Path::new("fuzz.toml"), text) {
        Ok(cfg) => {
            // A parsed config is usable: the values the engine divides or schedules by are sane.
            assert!(cfg.rate.requests_per_second > 0.0);
            assert!(cfg.rate.max_in_flight > 0);
            assert!(cfg.retry.max_attempts > 0);
        }
        Err(e @ (ConfigError::Parse { .. } | ConfigError::Withheld { .. })) => {
            assert_no_value(&e.to_string());
        }
        Err(_) => {}
    }
});
