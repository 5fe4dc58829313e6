//! The retry policy: which class each API outcome belongs to, and what happens next.
//!
//! Pure: the table, the overrides, the contact's counters and `now` are inputs; the decision is
//! the output. One table in code ([`DEFAULT_TABLE`]), overridable per code or pattern from the
//! config. The most specific match wins (an exact code beats a pattern; a longer pattern beats a
//! shorter one; at equal specificity the config's override wins).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::ccc::CallError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `RequestLimitExceeded*`: slow down and resend; no attempt used.
    Throttled,
    /// Every line of the AI agent is busy: no attempt used, the contact waits at the front of
    /// the queue until a line is likely free, and the engine paces by the agent's lines.
    Capacity,
    /// Retry with exponential backoff; each try uses an attempt.
    Transient,
    /// Reschedule after `retry.later_delay` (e.g. outside calling hours).
    Later,
    /// Reschedule after `retry.later_delay_daily` (per-day limits).
    NextDay,
    /// `failed` at once, never retried.
    Permanent,
    /// Account-level problem: stop the whole campaign; the contact stays `pending`.
    Halt,
    /// The request may have reached the service: `unknown`, never redialled.
    InDoubt,
    /// A code nobody classified: `failed`, with a warning.
    Unrecognised,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Throttled => "throttled",
            Class::Capacity => "capacity",
            Class::Transient => "transient",
            Class::Later => "later",
            Class::NextDay => "next_day",
            Class::Permanent => "permanent",
            Class::Halt => "halt",
            Class::InDoubt => "in_doubt",
            Class::Unrecognised => "unrecognised",
        }
    }
}

impl FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "throttled" => Class::Throttled,
            "capacity" => Class::Capacity,
            "transient" => Class::Transient,
            "later" => Class::Later,
            "next_day" => Class::NextDay,
            "permanent" => Class::Permanent,
            "halt" => Class::Halt,
            "in_doubt" => Class::InDoubt,
            "unrecognised" => Class::Unrecognised,
            _ => {
                return Err(
                    "one of \"throttled\", \"capacity\", \"transient\", \"later\", \"next_day\", \"permanent\", \"halt\", \"in_doubt\", \"unrecognised\""
                        .into(),
                )
            }
        })
    }
}

/// Default classes. A pattern ending in `*` matches any code with that prefix.
pub const DEFAULT_TABLE: &[(&str, Class)] = &[
    ("RequestLimitExceeded", Class::Throttled),
    ("RequestLimitExceeded.*", Class::Throttled),
    ("InternalError*", Class::Transient),
    // The request is too large for this contact (also refused locally, before sending).
    ("RequestSizeLimitExceeded", Class::Permanent),
    ("ResourceUnavailable*", Class::Transient),
    ("ResourceInsufficient*", Class::Transient),
    ("FailedOperation.CallOutFailed", Class::Transient),
    ("FailedOperation.AIConcurrentOverFrequency", Class::Capacity),
    ("FailedOperation.AcquireQuota", Class::Capacity),
    ("FailedOperation.CallerOverFrequency", Class::Transient),
    ("LimitExceeded.OutOfQuotaMaxCount", Class::Capacity),
    ("FailedOperation.CalloutRuleNotWorkTime", Class::Later),
    (
        "FailedOperation.CalloutRuleMaxCallCountCalleeIntervalTime",
        Class::Later,
    ),
    (
        "FailedOperation.CalloutRuleMaxCallCountCalleePerDayAppID",
        Class::NextDay,
    ),
    ("FailedOperation.CalleeIsBlackUser", Class::Permanent),
    ("FailedOperation.CalloutRuleBlindArea", Class::Permanent),
    ("FailedOperation.CalleeIsLimited", Class::Permanent),
    ("InvalidParameterValue", Class::Permanent),
    ("InvalidParameterValue.*", Class::Permanent),
    ("InvalidParameter", Class::Permanent),
    ("InvalidParameter.*", Class::Permanent),
    // Our request's shape is wrong for the action: every contact would fail the same way.
    ("MissingParameter", Class::Halt),
    ("MissingParameter.*", Class::Halt),
    ("UnknownParameter", Class::Halt),
    ("UnknownParameter.*", Class::Halt),
    ("FailedOperation.AILicenseHasExpired", Class::Halt),
    ("FailedOperation.AIConcurrentNoPackage", Class::Halt),
    ("FailedOperation.NoCallOutNumber", Class::Halt),
    ("FailedOperation.PermissionDenied", Class::Halt),
    ("LimitExceeded.BasePackageExpired", Class::Halt),
    ("LimitExceeded.InsufficientLicense", Class::Halt),
    ("InvalidParameterValue.InstanceNotExist", Class::Halt),
    ("InvalidParameterValue.ExperienceAccount", Class::Halt),
    ("OperationDenied", Class::Halt),
    ("OperationDenied.*", Class::Halt),
    ("AuthFailure", Class::Halt),
    ("AuthFailure.*", Class::Halt),
    ("UnauthorizedOperation*", Class::Halt),
    ("InvalidAction", Class::Halt),
    ("NoSuchVersion", Class::Halt),
    ("UnsupportedOperation*", Class::Halt),
];

/// Per-code overrides from `[retry.classes]`.
pub type ClassOverrides = BTreeMap<String, Class>;

/// Specificity of `pattern` against `code`: `None` if it does not match; exact matches rank
/// above every prefix; longer prefixes rank above shorter ones.
fn specificity(pattern: &str, code: &str) -> Option<usize> {
    match pattern.strip_suffix('*') {
        Some(prefix) if code.starts_with(prefix) => Some(prefix.len()),
        Some(_) => None,
        None if pattern == code => Some(usize::MAX),
        None => None,
    }
}

/// The class of an API error code.
pub fn classify_code(code: &str, overrides: &ClassOverrides) -> Class {
    // (specificity, is_override) — larger wins; overrides win ties.
    let mut best: Option<((usize, bool), Class)> = None;
    let defaults = DEFAULT_TABLE.iter().map(|(p, c)| (*p, *c, false));
    let custom = overrides.iter().map(|(p, c)| (p.as_str(), *c, true));
    for (pattern, class, is_override) in defaults.chain(custom) {
        if let Some(s) = specificity(pattern, code) {
            let rank = (s, is_override);
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, class));
            }
        }
    }
    best.map(|(_, c)| c).unwrap_or(Class::Unrecognised)
}

/// The class of any failed call.
pub fn classify(err: &CallError, overrides: &ClassOverrides) -> Class {
    match err {
        CallError::NotSent { .. } => Class::Transient,
        CallError::InDoubt { .. } => Class::InDoubt,
        CallError::Api { code, .. } => classify_code(code, overrides),
    }
}

/// Settings the decision needs (a view of `[retry]`).
#[derive(Debug, Clone)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub later_delay: Duration,
    pub later_delay_daily: Duration,
    pub max_reschedules: u32,
}

impl From<&crate::config::Retry> for RetrySettings {
    fn from(r: &crate::config::Retry) -> Self {
        RetrySettings {
            max_attempts: r.max_attempts,
            backoff_initial: r.backoff_initial,
            backoff_max: r.backoff_max,
            later_delay: r.later_delay,
            later_delay_daily: r.later_delay_daily,
            max_reschedules: r.max_reschedules,
        }
    }
}

/// What the engine does with a contact after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send again after `after`. `uses_attempt` is false for throttling and halts.
    Retry { after: Duration, uses_attempt: bool },
    /// Every line busy (capacity class): due again when a line is likely free, at the front of
    /// the queue; no attempt used, never `failed`.
    WaitForLine,
    /// Reschedule (later class): counts a reschedule, not an attempt.
    Reschedule { after: Duration },
    /// Final: `failed`.
    Fail,
    /// Final: `unknown` (in doubt).
    Unknown,
    /// Stop the whole campaign; the contact goes back to `pending` untouched.
    Halt,
}

/// Decide what follows a failure of class `class`.
///
/// `attempts` counts attempts used *including* the one that just failed; `reschedules` counts
/// reschedules so far; `jitter` is a number in `[0, 1)` supplied by the caller (random in
/// production, fixed in tests).
pub fn decide(
    class: Class,
    attempts: u32,
    reschedules: u32,
    s: &RetrySettings,
    throttle_backoff: Duration,
    jitter: f64,
) -> Decision {
    match class {
        Class::Throttled => Decision::Retry {
            after: throttle_backoff,
            uses_attempt: false,
        },
        Class::Capacity => Decision::WaitForLine,
        Class::Transient if attempts < s.max_attempts => Decision::Retry {
            after: backoff(attempts, s, jitter),
            uses_attempt: true,
        },
        Class::Transient => Decision::Fail,
        Class::Later if reschedules < s.max_reschedules => Decision::Reschedule {
            after: s.later_delay,
        },
        Class::NextDay if reschedules < s.max_reschedules => Decision::Reschedule {
            after: s.later_delay_daily,
        },
        Class::Later | Class::NextDay => Decision::Fail,
        Class::Permanent | Class::Unrecognised => Decision::Fail,
        Class::Halt => Decision::Halt,
        Class::InDoubt => Decision::Unknown,
    }
}

/// Exponential backoff with "equal jitter": the n-th retry waits between half and all of
/// `initial * 2^n`, capped at `max`, and never less than `initial`. The first retry waits
/// between `initial` and twice it, so contacts that failed together do not retry together.
pub fn backoff(attempts: u32, s: &RetrySettings, jitter: f64) -> Duration {
    let exp = attempts.clamp(1, 30);
    let full = s
        .backoff_initial
        .saturating_mul(1u32 << exp)
        .min(s.backoff_max);
    let jitter = jitter.clamp(0.0, 1.0);
    let d = full.mul_f64(0.5 + 0.5 * jitter);
    d.max(s.backoff_initial).min(s.backoff_max)
}

/// Whether the service may have created the call before answering with `code`: an internal
/// error says nothing about how far the request got. Such an attempt keeps its place in the
/// per-person history (`min_gap`, `max_per_day` hold its retry) as a call that may have rung.
/// Every other error code is a refusal: nobody's phone rang.
/// Permanent codes about one callee, not the request every contact shares: they never count
/// towards a systematic-error halt.
pub fn is_about_the_callee(code: &str) -> bool {
    matches!(
        code,
        "FailedOperation.CalleeIsBlackUser"
            | "FailedOperation.CalloutRuleBlindArea"
            | "FailedOperation.CalleeIsLimited"
            | "InvalidParameter.IllegalPhoneNumber"
            | "InvalidParameter.InvalidPhoneNumber"
    )
}

pub fn may_have_placed(code: &str) -> bool {
    code.starts_with("InternalError")
}

/// Whether a halt code concerns the whole account (every campaign stops) rather than one
/// campaign's own settings: `NoCallOutNumber` depends on the campaign's agent and callers.
pub fn halt_is_account_wide(code: &str) -> bool {
    code != "FailedOperation.NoCallOutNumber"
}

/// What the operator must fix after a halt code.
pub fn halt_hint(code: &str) -> &'static str {
    match code {
        c if c.starts_with("AuthFailure") => "fix: check TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (and the session token), and that this host's clock is right",
        c if c.starts_with("UnauthorizedOperation") || c == "FailedOperation.PermissionDenied" => "fix: grant the key's user permission for ccc:CreateAIAgentCall",
        "FailedOperation.AILicenseHasExpired" | "LimitExceeded.BasePackageExpired" => "fix: renew the AI call package in the CCC console",
        "FailedOperation.AIConcurrentNoPackage" | "LimitExceeded.InsufficientLicense" => "fix: buy AI concurrency licences for this SdkAppId",
        "FailedOperation.NoCallOutNumber" => "fix: give the agent a caller number, or set campaign.callers",
        "InvalidParameterValue.InstanceNotExist" => "fix: campaign.sdk_app_id does not exist in this account",
        "InvalidParameterValue.ExperienceAccount" => "fix: trial accounts cannot place AI agent calls; upgrade the account",
        c if c.starts_with("OperationDenied") => "fix: the account is disabled; contact Tencent Cloud",
        crate::outage::CODE => "fix: check this host's network, DNS, proxy and firewall, and tencentcloud.endpoint",
        c if c.starts_with("UnknownParameter") || c.starts_with("MissingParameter") => "fix: the request's shape is refused for every contact (a field the action does not define, or one it requires is missing): check [campaign] and the campaign's settings, or upgrade ccc-dialer",
        _ => "fix: see the code's meaning in the CCC API documentation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            later_delay: Duration::from_secs(3600),
            later_delay_daily: Duration::from_secs(86_400),
            max_reschedules: 2,
        }
    }

    #[test]
    fn every_code_in_the_issue_table_has_its_class() {
        let none = ClassOverrides::new();
        let cases = [
            ("RequestLimitExceeded", Class::Throttled),
            ("RequestLimitExceeded.UinLimitExceeded", Class::Throttled),
            (
                "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
                Class::Throttled,
            ),
            ("InternalError", Class::Transient),
            ("InternalError.DBError", Class::Transient),
            ("ResourceUnavailable", Class::Transient),
            ("ResourceInsufficient.Foo", Class::Transient),
            ("FailedOperation.CallOutFailed", Class::Transient),
            ("FailedOperation.AIConcurrentOverFrequency", Class::Capacity),
            ("FailedOperation.AcquireQuota", Class::Capacity),
            ("FailedOperation.CallerOverFrequency", Class::Transient),
            ("LimitExceeded.OutOfQuotaMaxCount", Class::Capacity),
            ("FailedOperation.CalloutRuleNotWorkTime", Class::Later),
            (
                "FailedOperation.CalloutRuleMaxCallCountCalleeIntervalTime",
                Class::Later,
            ),
            (
                "FailedOperation.CalloutRuleMaxCallCountCalleePerDayAppID",
                Class::NextDay,
            ),
            ("FailedOperation.CalleeIsBlackUser", Class::Permanent),
            ("FailedOperation.CalloutRuleBlindArea", Class::Permanent),
            ("FailedOperation.CalleeIsLimited", Class::Permanent),
            ("InvalidParameterValue", Class::Permanent),
            ("InvalidParameter", Class::Permanent),
            ("InvalidParameter.IllegalPhoneNumber", Class::Permanent),
            ("MissingParameter", Class::Halt),
            ("MissingParameter.Callee", Class::Halt),
            ("UnknownParameter", Class::Halt),
            ("UnknownParameter.AcquireTimeoutSecond", Class::Halt),
            ("FailedOperation.AILicenseHasExpired", Class::Halt),
            ("FailedOperation.AIConcurrentNoPackage", Class::Halt),
            ("FailedOperation.NoCallOutNumber", Class::Halt),
            ("FailedOperation.PermissionDenied", Class::Halt),
            ("LimitExceeded.BasePackageExpired", Class::Halt),
            ("LimitExceeded.InsufficientLicense", Class::Halt),
            ("InvalidParameterValue.InstanceNotExist", Class::Halt),
            ("InvalidParameterValue.ExperienceAccount", Class::Halt),
            ("OperationDenied.UinDisabled", Class::Halt),
            ("AuthFailure.SignatureFailure", Class::Halt),
            ("AuthFailure.SecretIdNotFound", Class::Halt),
            ("UnauthorizedOperation", Class::Halt),
            ("UnauthorizedOperation.Foo", Class::Halt),
            ("FailedOperation.SomethingNew", Class::Unrecognised),
            ("LimitExceeded.SomethingNew", Class::Unrecognised),
            ("", Class::Unrecognised),
        ];
        for (code, class) in cases {
            assert_eq!(classify_code(code, &none), class, "{code}");
        }
    }

    #[test]
    fn most_specific_override_wins_and_defaults_keep_their_exact_codes() {
        let mut o = ClassOverrides::new();
        o.insert("FailedOperation.*".into(), Class::Transient);
        o.insert("FailedOperation.CallOutFailed".into(), Class::Permanent);
        assert_eq!(
            classify_code("FailedOperation.SomethingNew", &o),
            Class::Transient
        );
        assert_eq!(
            classify_code("FailedOperation.CallOutFailed", &o),
            Class::Permanent
        );
        // A broad override does not beat a default's exact code.
        assert_eq!(
            classify_code("FailedOperation.CalleeIsBlackUser", &o),
            Class::Permanent
        );
        assert_eq!(
            classify_code("FailedOperation.AILicenseHasExpired", &o),
            Class::Halt
        );
    }

    #[test]
    fn transport_failures_split_into_safe_to_resend_and_in_doubt() {
        let none = ClassOverrides::new();
        let not_sent = CallError::NotSent {
            reason: "connection refused".into(),
        };
        let in_doubt = CallError::InDoubt {
            reason: "timed out".into(),
        };
        assert_eq!(classify(&not_sent, &none), Class::Transient);
        assert_eq!(classify(&in_doubt, &none), Class::InDoubt);
    }

    #[test]
    fn transient_retries_until_the_attempt_budget_is_spent() {
        let s = settings();
        let t = Duration::from_secs(1);
        assert!(matches!(
            decide(Class::Transient, 1, 0, &s, t, 0.0),
            Decision::Retry {
                uses_attempt: true,
                ..
            }
        ));
        assert!(matches!(
            decide(Class::Transient, 2, 0, &s, t, 0.0),
            Decision::Retry {
                uses_attempt: true,
                ..
            }
        ));
        assert_eq!(decide(Class::Transient, 3, 0, &s, t, 0.0), Decision::Fail);
    }

    #[test]
    fn throttling_never_uses_an_attempt_even_at_the_budget() {
        let s = settings();
        let t = Duration::from_millis(700);
        assert_eq!(
            decide(Class::Throttled, 3, 0, &s, t, 0.5),
            Decision::Retry {
                after: t,
                uses_attempt: false
            }
        );
    }

    #[test]
    fn capacity_never_uses_an_attempt_and_never_fails_even_past_every_budget() {
        let s = settings();
        for code in [
            "FailedOperation.AcquireQuota",
            "LimitExceeded.OutOfQuotaMaxCount",
            "FailedOperation.AIConcurrentOverFrequency",
        ] {
            let class = classify_code(code, &ClassOverrides::new());
            assert_eq!(class, Class::Capacity, "{code}");
            for (attempts, reschedules) in [(0, 0), (3, 2), (1000, 1000)] {
                assert_eq!(
                    decide(class, attempts, reschedules, &s, Duration::ZERO, 0.5),
                    Decision::WaitForLine
                );
            }
        }
        // Overridable like any other row.
        let mut o = ClassOverrides::new();
        o.insert(
            "FailedOperation.AcquireQuota".into(),
            "transient".parse().unwrap(),
        );
        assert_eq!(
            classify_code("FailedOperation.AcquireQuota", &o),
            Class::Transient
        );
    }

    #[test]
    fn later_codes_reschedule_until_the_cap_then_fail() {
        let s = settings();
        let t = Duration::ZERO;
        assert_eq!(
            decide(Class::Later, 1, 0, &s, t, 0.0),
            Decision::Reschedule {
                after: Duration::from_secs(3600)
            }
        );
        assert_eq!(
            decide(Class::NextDay, 1, 1, &s, t, 0.0),
            Decision::Reschedule {
                after: Duration::from_secs(86_400)
            }
        );
        assert_eq!(decide(Class::Later, 1, 2, &s, t, 0.0), Decision::Fail);
    }

    #[test]
    fn permanent_unrecognised_halt_and_in_doubt_are_final_or_stop() {
        let s = settings();
        let t = Duration::ZERO;
        assert_eq!(decide(Class::Permanent, 1, 0, &s, t, 0.0), Decision::Fail);
        assert_eq!(
            decide(Class::Unrecognised, 1, 0, &s, t, 0.0),
            Decision::Fail
        );
        assert_eq!(decide(Class::Halt, 1, 0, &s, t, 0.0), Decision::Halt);
        assert_eq!(decide(Class::InDoubt, 1, 0, &s, t, 0.0), Decision::Unknown);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_inside_the_bounds() {
        let s = settings();
        // The first retry waits between backoff_initial and twice it: jittered, never less.
        assert_eq!(backoff(1, &s, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(1, &s, 0.5), Duration::from_secs(3));
        assert_eq!(backoff(2, &s, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(3, &s, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(3, &s, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(20, &s, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(20, &s, 0.0), Duration::from_secs(150));
    }
}
