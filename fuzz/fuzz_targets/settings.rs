//! The settings parsers: the config file (`Config::parse`) and a campaign's own settings as
//! JSON (API) and TOML (inbox sidecar). Never a panic; a TOML syntax or type error never quotes
//! a value (the marker `FUZZSECRET` in the input must not reach the message).
#![no_main]

use ccc_dialer::config::{Config, ConfigError};
use ccc_dialer::server::settings::CampaignSettings;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "FUZZSECRET";

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
        Err(message) => assert!(!message.contains(MARKER), "settings echo: {message}"),
    }
    match Config::parse(std::path::Path::new("fuzz.toml"), text) {
        Ok(cfg) => {
            // A parsed config is usable: the values the engine divides or schedules by are sane.
            assert!(cfg.rate.requests_per_second > 0.0);
            assert!(cfg.rate.max_in_flight > 0);
            assert!(cfg.retry.max_attempts > 0);
        }
        Err(e @ (ConfigError::Parse { .. } | ConfigError::Withheld { .. })) => {
            let shown = e.to_string();
            assert!(
                !shown.contains(MARKER),
                "config error echoes a value: {shown}"
            );
        }
        Err(_) => {}
    }
});
