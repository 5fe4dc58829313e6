//! The TOML configuration: read once, validated into typed settings, never re-read.
//!
//! Every problem is reported before any call is placed, as one message naming the file, the key,
//! the value and what was expected (exit code 2). Secrets are not configuration: see
//! [`crate::credentials`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::calling::settings::{self as calling, Calling, RawCalling};
use crate::duration;
use crate::policy::{Class, ClassOverrides};
use crate::setting_rules as rules;

/// The documented CreateAIAgentCall limit, in requests per second.
pub const DOCUMENTED_CAP: u32 = 20;
/// The most lines an agent may be configured with (`campaign.agent_lines`).
pub const MAX_AGENT_LINES: i64 = 10_000;
/// The slowest pace accepted, in requests per second.
pub const MIN_RATE: f64 = 0.02;
pub const DEFAULT_ENDPOINT: &str = "https://ccc.tencentcloudapi.com";
/// `endpoint = "builtin"` runs the built-in stand-in in-process (demo, no cloud account).
pub const BUILTIN_ENDPOINT: &str = "builtin";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key} = {value}: expected {expected}")]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        expected: String,
    },
    /// A value that may hold a secret (an endpoint with user-info, a variable): named by its
    /// key, never shown.
    #[error("{path}: {key}: expected {expected} (the value is not shown: it may hold a secret)")]
    Withheld {
        path: PathBuf,
        key: String,
        expected: String,
    },
    /// A key earlier versions read and this one refuses: what it did and why it went.
    #[error("{path}: {key}: this setting was removed: {why}\nhint: delete the line")]
    Removed {
        path: PathBuf,
        key: &'static str,
        why: &'static str,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tencentcloud: RawTencentCloud,
    campaign: Option<RawCampaign>,
    #[serde(default)]
    rate: RawRate,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    mock: RawMock,
    calling: Option<RawCalling>,
    #[serde(default)]
    server: crate::server::limits::RawServer,
    #[serde(default)]
    outcomes: crate::outcomes::settings::RawOutcomes,
    #[serde(default)]
    store: crate::purge::RawStore,
    #[serde(default)]
    notify: crate::notify::RawNotify,
    #[serde(default)]
    dnc: crate::calling::opt_out::RawDnc,
    redial: Option<crate::redial::settings::RawRedial>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTencentCloud {
    endpoint: String,
    region: String,
    language: String,
    connect_timeout: String,
    request_timeout: String,
    idle_timeout: String,
}

impl Default for RawTencentCloud {
    fn default() -> Self {
        RawTencentCloud {
            endpoint: DEFAULT_ENDPOINT.into(),
            region: String::new(),
            language: "zh-CN".into(),
            connect_timeout: "5s".into(),
            request_timeout: "30s".into(),
            idle_timeout: "50s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    sdk_app_id: i64,
    ai_agent_id: i64,
    #[serde(default)]
    callers: Vec<String>,
    max_ring_timeout_second: Option<i64>,
    /// Removed (see [`ConfigError::Removed`]): read only to say so by name.
    acquire_timeout_second: Option<toml::Value>,
    #[serde(default)]
    variables: BTreeMap<String, toml::Value>,
    #[serde(default = "default_country")]
    default_country: String,
    #[serde(default = "default_callee_format")]
    callee_format: String,
    agent_lines: Option<i64>,
    max_rate: Option<f64>,
}

fn default_country() -> String {
    "CN".into()
}
fn default_callee_format() -> String {
    "00".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRate {
    requests_per_second: f64,
    account_quota: u32,
    max_in_flight: i64,
}

impl Default for RawRate {
    fn default() -> Self {
        RawRate {
            requests_per_second: DOCUMENTED_CAP as f64,
            account_quota: DOCUMENTED_CAP,
            max_in_flight: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetry {
    max_attempts: i64,
    backoff_initial: String,
    backoff_max: String,
    later_delay: String,
    later_delay_daily: String,
    max_reschedules: i64,
    redial_unknown: bool,
    redial_not_placed: bool,
    systematic_after: i64,
    classes: BTreeMap<String, String>,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            max_attempts: 3,
            backoff_initial: "2s".into(),
            backoff_max: "5m".into(),
            later_delay: "1h".into(),
            later_delay_daily: "24h".into(),
            max_reschedules: 3,
            redial_unknown: false,
            redial_not_placed: false,
            systematic_after: crate::dispatch::systematic::DEFAULT_AFTER as i64,
            classes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRun {
    grace_period: String,
    outage_limit: String,
    outage_probe_initial: String,
    outage_probe_max: String,
}

impl Default for RawRun {
    fn default() -> Self {
        RawRun {
            grace_period: "10s".into(),
            outage_limit: "10m".into(),
            outage_probe_initial: "1s".into(),
            outage_probe_max: "1m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMock {
    latency_ms: u64,
    rate_limit: u32,
    faults: Option<PathBuf>,
    new_connection_delay_ms: u64,
    agent_lines: u32,
    ring: String,
    talk: String,
    cdr_delay: String,
    answer_ratio: f64,
}

impl Default for RawMock {
    fn default() -> Self {
        RawMock {
            latency_ms: 0,
            rate_limit: DOCUMENTED_CAP,
            faults: None,
            new_connection_delay_ms: 0,
            agent_lines: 0,
            ring: "0s".into(),
            talk: "lognormal:5s".into(),
            cdr_delay: "2s".into(),
            answer_ratio: 1.0,
        }
    }
}

/// Where calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An `http(s)://host[:port]` URL.
    Url(String),
    /// The built-in stand-in, started in-process.
    Builtin,
}

#[derive(Debug, Clone)]
pub struct TencentCloud {
    pub endpoint: Endpoint,
    pub region: Option<String>,
    pub language: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// An idle connection is closed after this (see [`crate::connections`]).
    pub idle_timeout: Duration,
}

/// How callees are written in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalleeFormat {
    /// `0086…`: international prefix 00, as the service's examples.
    DoubleZero,
    /// `+86…`: E.164.
    E164,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub sdk_app_id: u64,
    pub ai_agent_id: u64,
    pub callers: Vec<String>,
    pub max_ring_timeout_second: Option<u32>,
    pub variables: BTreeMap<String, String>,
    pub default_country: String,
    pub callee_format: CalleeFormat,
    /// Calls the AI agent takes at once, when the operator knows it (`None`: learned).
    pub agent_lines: Option<u32>,
    /// The campaign's own rate cap, requests per second (`None`: only the account's).
    pub max_rate: Option<f64>,
}

/// A campaign's rate cap (`campaign.max_rate`, or `max_rate` in a `serve` campaign's
/// settings) against the account's `rate.requests_per_second`: `Err` is what was expected.
/// The one check both use.
pub fn check_max_rate(value: f64, account: f64) -> Result<(), String> {
    if value.is_finite() && value >= MIN_RATE && value <= account {
        Ok(())
    } else {
        Err(format!(
            "a number of requests per second from {MIN_RATE} up to the account's rate.requests_per_second ({account})"
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Rate {
    pub requests_per_second: f64,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub later_delay: Duration,
    pub later_delay_daily: Duration,
    pub max_reschedules: u32,
    pub redial_unknown: bool,
    /// Dial `not_placed` contacts again (the call records showed their request created no
    /// call). Safe, unlike `redial_unknown`, but off unless asked for.
    pub redial_not_placed: bool,
    /// Halt after this many distinct contacts in a row fail with one permanent or unrecognised
    /// code (0 = never).
    pub systematic_after: u32,
    pub classes: ClassOverrides,
}

#[derive(Debug, Clone)]
pub struct Mock {
    pub latency_ms: u64,
    pub rate_limit: u32,
    pub faults: Option<PathBuf>,
    /// Each new connection's first request waits this long (a TLS handshake's cost).
    pub new_connection_delay_ms: u64,
    /// Calls each AI agent of the stand-in takes at once (0 = no limit).
    pub agent_lines: u32,
    pub call_length: crate::mock::CallLength,
    /// A call's record is visible this long after the call ended.
    pub cdr_delay: Duration,
    /// Share of unscripted calls that are answered.
    pub answer_ratio: f64,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub tencentcloud: TencentCloud,
    pub campaign: Campaign,
    pub rate: Rate,
    pub retry: Retry,
    pub grace_period: Duration,
    /// `[run]`'s outage keys: how the endpoint's breaker probes, and when `run` gives up.
    pub outage: crate::outage::OutageSettings,
    pub mock: Mock,
    /// `[calling]`: windows, do-not-call lists, per-person pacing, caller rotation.
    pub calling: Calling,
    /// `[server]`: what one HTTP client may hold of `serve` (timeouts, connection cap).
    pub server: crate::server::limits::ServerLimits,
    /// `[outcomes]`: call outcomes from DescribeTelCdr (off by default).
    pub outcomes: crate::outcomes::settings::OutcomeSettings,
    /// `[store] retain`: finished campaigns' contacts are deleted this long after (`None`: kept).
    pub retain: Option<Duration>,
    /// `[store] lease`: how long a replica's claim on a contact lasts unless renewed
    /// (PostgreSQL; see `store::pg::lease`).
    pub lease: Duration,
    /// `[notify]`: the webhook told when a campaign completes, halts or is paused by the engine.
    pub notify: Option<crate::notify::NotifySettings>,
    /// `[dnc]`: the post-call tag that puts a number on the account's own do-not-call list.
    pub dnc: crate::calling::opt_out::DncSettings,
    /// `[redial]`: dial a contact again by its call's outcome (`None`: never).
    pub redial: Option<crate::redial::RedialPolicy>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parse and validate `text` as if read from `path` (the path appears in messages and
    /// anchors relative paths such as `mock.faults`).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        Validator { path }.validate(raw)
    }
}

/// `invalid TOML at line L, column C, key K: what` without quoting the line or any value: a
/// secret pasted into the config by mistake (`secret_key = "…"`, `sdk_app_id = "AKID…"`) must
/// not be echoed to the terminal or logs.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    if let Some(said) = crate::server::toml_error::unknown_key(text, e) {
        return said;
    }
    let said = crate::server::toml_error::describe(text, e);
    match e.span() {
        Some(_) => format!("invalid TOML at {said}"),
        None => format!("invalid TOML: {said}"),
    }
}

struct Validator<'a> {
    path: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, value: impl std::fmt::Display, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    fn withheld(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::Withheld {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
        }
    }

    fn duration(&self, key: &str, value: &str) -> Result<Duration, ConfigError> {
        duration::parse(value).map_err(|e| self.invalid(key, format!("{value:?}"), &e))
    }

    /// A delay the engine schedules with: at most `max` (a typo such as `"1000000d"` must
    /// not park contacts for ever).
    fn delay(
        &self,
        key: &str,
        value: &str,
        max: Duration,
        max_text: &str,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, value)?;
        if d > max {
            return Err(self.invalid(
                key,
                format!("{value:?}"),
                &format!("a duration of at most {max_text}"),
            ));
        }
        Ok(d)
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let tencentcloud = self.tencentcloud(&raw.tencentcloud)?;
        let campaign = match raw.campaign {
            Some(c) => self.campaign(c)?,
            None => {
                return Err(self.invalid(
                    "[campaign]",
                    "(missing)",
                    "a [campaign] table with at least sdk_app_id and ai_agent_id",
                ))
            }
        };
        let calling = calling::validate(
            raw.calling,
            &campaign.default_country,
            self.path.parent().unwrap_or(Path::new(".")),
        )
        .map_err(|e| self.invalid(&e.key, e.value, &e.expected))?;
        let rate = self.rate(&raw.rate)?;
        if let Some(r) = campaign.max_rate {
            check_max_rate(r, rate.requests_per_second)
                .map_err(|e| self.invalid("campaign.max_rate", r, &e))?;
        }
        let retry = self.retry(raw.retry)?;
        let grace_period = self.delay(
            "run.grace_period",
            &raw.run.grace_period,
            Duration::from_secs(3600),
            "1h",
        )?;
        let outage = self.outage(&raw.run)?;
        let server = crate::server::limits::validate(&raw.server)
            .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
        let outcomes = crate::outcomes::settings::validate(raw.outcomes)
            .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
        let dnc = crate::calling::opt_out::validate(raw.dnc)
            .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
        if dnc.opt_out_tag.is_some() && !outcomes.tags {
            return Err(self.invalid(
                "dnc.opt_out_tag",
                "(set)",
                "[outcomes] enabled = true and tags = true too (the tag is read from DescribeAICallExtractResult)",
            ));
        }
        let retain = crate::purge::validate(&raw.store)
            .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
        let lease = crate::purge::lease(&raw.store)
            .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
        let notify = crate::notify::validate(&raw.notify).map_err(|e| match e {
            crate::notify::Invalid::Shown(key, value, expected) => {
                self.invalid(&key, value, &expected)
            }
            crate::notify::Invalid::Withheld(key, expected) => self.withheld(&key, &expected),
        })?;
        let redial = match &raw.redial {
            None => None,
            Some(r) => {
                let policy = crate::redial::settings::validate(r)
                    .map_err(|(key, value, expected)| self.invalid(&key, value, &expected))?;
                if !outcomes.enabled {
                    return Err(self.invalid(
                        "[redial]",
                        "(present)",
                        "[outcomes] enabled = true as well: redials are decided from the calls' outcomes",
                    ));
                }
                if !policy.on_tag.is_empty() && !outcomes.tags {
                    return Err(self.invalid(
                        "redial.on_tag",
                        "(set)",
                        "[outcomes] tags = true too (the tags are read from DescribeAICallExtractResult)",
                    ));
                }
                Some(policy)
            }
        };
        let faults = raw.mock.faults.map(|p| {
            if p.is_relative() {
                self.path.parent().unwrap_or(Path::new(".")).join(p)
            } else {
                p
            }
        });
        let length = |key: &str, text: &str| {
            crate::mock::Length::parse(text).map_err(|e| {
                let expected = e.split_once(": expected ").map_or(e.as_str(), |(_, x)| x);
                self.invalid(key, format!("{text:?}"), expected)
            })
        };
        let call_length = crate::mock::CallLength {
            ring: length("mock.ring", &raw.mock.ring)?,
            talk: length("mock.talk", &raw.mock.talk)?,
        };
        let cdr_delay = self.delay(
            "mock.cdr_delay",
            &raw.mock.cdr_delay,
            Duration::from_secs(3600),
            "1h",
        )?;
        let answer_ratio = raw.mock.answer_ratio;
        if !(0.0..=1.0).contains(&answer_ratio) {
            return Err(self.invalid(
                "mock.answer_ratio",
                answer_ratio,
                "a number from 0.0 to 1.0",
            ));
        }
        Ok(Config {
            path: self.path.to_path_buf(),
            tencentcloud,
            campaign,
            rate,
            retry,
            grace_period,
            outage,
            mock: Mock {
                latency_ms: raw.mock.latency_ms,
                rate_limit: raw.mock.rate_limit,
                faults,
                new_connection_delay_ms: raw.mock.new_connection_delay_ms,
                agent_lines: raw.mock.agent_lines,
                call_length,
                cdr_delay,
                answer_ratio,
            },
            calling,
            server,
            outcomes,
            retain,
            lease,
            notify,
            dnc,
            redial,
        })
    }

    fn outage(&self, raw: &RawRun) -> Result<crate::outage::OutageSettings, ConfigError> {
        const MONTH: Duration = rules::LONGEST_DELAY;
        let positive = |key: &str, value: &str, max: Duration, max_text: &str| {
            let d = self.delay(key, value, max, max_text)?;
            if d.is_zero() {
                return Err(self.invalid(key, format!("{value:?}"), "a positive duration"));
            }
            Ok(d)
        };
        let limit = positive("run.outage_limit", &raw.outage_limit, MONTH, "30d")?;
        let probe_initial = positive(
            "run.outage_probe_initial",
            &raw.outage_probe_initial,
            Duration::from_secs(3600),
            "1h",
        )?;
        let probe_max = positive(
            "run.outage_probe_max",
            &raw.outage_probe_max,
            Duration::from_secs(3600),
            "1h",
        )?;
        if probe_max < probe_initial {
            return Err(self.invalid(
                "run.outage_probe_max",
                format!("{:?}", raw.outage_probe_max),
                "a duration at least run.outage_probe_initial",
            ));
        }
        Ok(crate::outage::OutageSettings {
            probe_initial,
            probe_max,
            limit: Some(limit),
        })
    }

    fn tencentcloud(&self, raw: &RawTencentCloud) -> Result<TencentCloud, ConfigError> {
        let endpoint = if raw.endpoint == BUILTIN_ENDPOINT {
            Endpoint::Builtin
        } else {
            let url = raw.endpoint.trim_end_matches('/');
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            // Never echoed: `https://id:key@host` or a query string may carry a credential.
            match rest {
                Some(host) if host.contains('@') => {
                    return Err(self.withheld(
                        "tencentcloud.endpoint",
                        "an http(s)://host[:port] URL without user-info (no `name:password@`): credentials come only from the environment",
                    ))
                }
                Some(host)
                    if !host.is_empty()
                        && !host.contains(['/', '?', '#'])
                        && !host.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    Endpoint::Url(url.to_string())
                }
                _ => {
                    return Err(self.withheld(
                        "tencentcloud.endpoint",
                        "an http(s)://host[:port] URL without a path (e.g. \"https://ccc.tencentcloudapi.com\"), or \"builtin\"",
                    ))
                }
            }
        };
        let connect_timeout =
            self.duration("tencentcloud.connect_timeout", &raw.connect_timeout)?;
        let request_timeout =
            self.duration("tencentcloud.request_timeout", &raw.request_timeout)?;
        if connect_timeout.is_zero() {
            return Err(self.invalid(
                "tencentcloud.connect_timeout",
                "\"0s\"",
                "a positive duration",
            ));
        }
        if request_timeout < connect_timeout {
            return Err(self.invalid(
                "tencentcloud.request_timeout",
                format!("{:?}", raw.request_timeout),
                "a duration at least as long as tencentcloud.connect_timeout",
            ));
        }
        let idle_timeout = self.duration("tencentcloud.idle_timeout", &raw.idle_timeout)?;
        if idle_timeout.is_zero() {
            return Err(self.invalid(
                "tencentcloud.idle_timeout",
                format!("{:?}", raw.idle_timeout),
                "a positive duration",
            ));
        }
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Ok(TencentCloud {
            endpoint,
            region: non_empty(&raw.region),
            language: non_empty(&raw.language),
            connect_timeout,
            request_timeout,
            idle_timeout,
        })
    }

    fn campaign(&self, raw: RawCampaign) -> Result<Campaign, ConfigError> {
        let positive = |key: &str, v: i64| -> Result<u64, ConfigError> {
            u64::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| self.invalid(key, v, "a positive integer"))
        };
        let sdk_app_id = positive("campaign.sdk_app_id", raw.sdk_app_id)?;
        let ai_agent_id = positive("campaign.ai_agent_id", raw.ai_agent_id)?;
        let max_ring_timeout_second = match raw.max_ring_timeout_second {
            Some(v) if rules::RING_TIMEOUT_SECONDS.contains(&v) => Some(v as u32),
            Some(v) => {
                return Err(self.invalid(
                    "campaign.max_ring_timeout_second",
                    v,
                    rules::RING_TIMEOUT_EXPECTED,
                ))
            }
            None => None,
        };
        if raw.acquire_timeout_second.is_some() {
            return Err(ConfigError::Removed {
                path: self.path.to_path_buf(),
                key: "campaign.acquire_timeout_second",
                why: "CreateAIAgentCall does not define AcquireTimeoutSecond (a field of the sibling action CreateAICall); the service answers UnknownParameter to a request that carries it, for every contact",
            });
        }
        for (i, c) in raw.callers.iter().enumerate() {
            if !rules::caller_ok(c.trim()) {
                return Err(self.invalid(
                    &format!("campaign.callers[{i}]"),
                    format!("{c:?}"),
                    rules::CALLER_EXPECTED,
                ));
            }
        }
        let mut variables = BTreeMap::new();
        for (k, v) in raw.variables {
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(self.withheld(
                        &format!("campaign.variables.{k}"),
                        "a string, number or boolean",
                    ))
                }
            };
            variables.insert(k, value);
        }
        if let Err(e) = rules::variables_ok(variables.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            let key = match &e.name {
                Some(name) => format!("campaign.variables.{name:?}"),
                None => "campaign.variables".to_string(),
            };
            return Err(self.withheld(&key, &e.expected));
        }
        let default_country = raw.default_country.trim().to_ascii_uppercase();
        if crate::phone::country_code_for_region(&default_country).is_none() {
            return Err(self.invalid(
                "campaign.default_country",
                format!("{:?}", raw.default_country),
                "an ISO 3166 two-letter region code with a telephone country code (e.g. \"CN\", \"DE\", \"US\")",
            ));
        }
        let agent_lines = match raw.agent_lines {
            None => None,
            Some(n) if (1..=MAX_AGENT_LINES).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(self.invalid(
                    "campaign.agent_lines",
                    n,
                    "an integer from 1 to 10000 (the calls the AI agent takes at once), or leave it out to learn it",
                ))
            }
        };
        let callee_format = match raw.callee_format.as_str() {
            "00" => CalleeFormat::DoubleZero,
            "e164" | "+" => CalleeFormat::E164,
            other => {
                return Err(self.invalid(
                    "campaign.callee_format",
                    format!("{other:?}"),
                    "\"00\" (0086…, as the service's examples) or \"e164\" (+86…)",
                ))
            }
        };
        Ok(Campaign {
            sdk_app_id,
            ai_agent_id,
            callers: raw
                .callers
                .into_iter()
                .map(|c| c.trim().to_string())
                .collect(),
            max_ring_timeout_second,
            variables,
            default_country,
            callee_format,
            agent_lines,
            max_rate: raw.max_rate,
        })
    }

    fn rate(&self, raw: &RawRate) -> Result<Rate, ConfigError> {
        if raw.account_quota == 0 {
            return Err(self.invalid(
                "rate.account_quota",
                0,
                "a positive integer (requests per second)",
            ));
        }
        let rps = raw.requests_per_second;
        // Below one request a minute the limiter's pacing period would not fit in a Duration
        // sensibly, and no campaign wants it.
        if !rps.is_finite() || rps < MIN_RATE {
            return Err(self.invalid(
                "rate.requests_per_second",
                rps,
                "a number from 0.02 (about one a minute) up to the account's quota",
            ));
        }
        if rps > raw.account_quota as f64 {
            let expected = if raw.account_quota == DOCUMENTED_CAP {
                format!(
                    "at most {DOCUMENTED_CAP}, the documented CreateAIAgentCall limit\n\
                     hint: if Tencent Cloud granted this account a higher quota, say so with rate.account_quota = N"
                )
            } else {
                format!("at most rate.account_quota = {}", raw.account_quota)
            };
            return Err(self.invalid("rate.requests_per_second", rps, &expected));
        }
        let max_in_flight = match raw.max_in_flight {
            0 => default_in_flight(rps),
            n if (1..=10_000).contains(&n) => n as usize,
            n => {
                return Err(self.invalid(
                    "rate.max_in_flight",
                    n,
                    "an integer from 1 to 10000, or 0 for the default (enough for 3 s replies at the rate)",
                ))
            }
        };
        Ok(Rate {
            requests_per_second: rps,
            max_in_flight,
        })
    }

    fn retry(&self, raw: RawRetry) -> Result<Retry, ConfigError> {
        let max_attempts = match raw.max_attempts {
            n if rules::MAX_ATTEMPTS.contains(&n) => n as u32,
            n => return Err(self.invalid("retry.max_attempts", n, rules::MAX_ATTEMPTS_EXPECTED)),
        };
        const MONTH: Duration = rules::LONGEST_DELAY;
        let backoff_initial =
            self.delay("retry.backoff_initial", &raw.backoff_initial, MONTH, "30d")?;
        let backoff_max = self.delay("retry.backoff_max", &raw.backoff_max, MONTH, "30d")?;
        if backoff_max < backoff_initial {
            return Err(self.invalid(
                "retry.backoff_max",
                format!("{:?}", raw.backoff_max),
                "a duration at least retry.backoff_initial",
            ));
        }
        let later_delay = self.delay("retry.later_delay", &raw.later_delay, MONTH, "30d")?;
        let later_delay_daily = self.delay(
            "retry.later_delay_daily",
            &raw.later_delay_daily,
            MONTH,
            "30d",
        )?;
        let max_reschedules = match raw.max_reschedules {
            n if (0..=1000).contains(&n) => n as u32,
            n => return Err(self.invalid("retry.max_reschedules", n, "an integer from 0 to 1000")),
        };
        let systematic_after = match raw.systematic_after {
            n if (0..=100_000).contains(&n) => n as u32,
            n => {
                return Err(self.invalid(
                    "retry.systematic_after",
                    n,
                    "an integer from 0 (never halt) to 100000",
                ))
            }
        };
        let mut classes = ClassOverrides::default();
        for (code, class) in raw.classes {
            let parsed: Class = class.parse().map_err(|e: String| {
                self.invalid(
                    &format!("retry.classes.\"{code}\""),
                    format!("{class:?}"),
                    &e,
                )
            })?;
            classes.insert(code, parsed);
        }
        Ok(Retry {
            max_attempts,
            backoff_initial,
            backoff_max,
            later_delay,
            later_delay_daily,
            max_reschedules,
            redial_unknown: raw.redial_unknown,
            redial_not_placed: raw.redial_not_placed,
            systematic_after,
            classes,
        })
    }
}

/// Enough requests in flight for the rate to hold when replies take 3 s, plus headroom
/// (bounded: a lifted cap does not mean unbounded concurrency).
pub fn default_in_flight(rps: f64) -> usize {
    ((rps * 3.0).ceil() as usize + 4).clamp(8, 1024)
}
