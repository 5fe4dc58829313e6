//! Redial by outcome (issue 14): a contact whose call ended not reached (`not_answered`, `busy`,
//! an end code such as `"202"`) is dialled again, `after` the call's end, up to `max_dials`
//! calls in its campaign. Pure: the policy, the outcome and the times are inputs.
//!
//! - [`settings`]: the `[redial]` table (config, `serve` settings, inbox sidecar), one
//!   validation path.
//! - The store applies [`RedialPolicy::decide`] in the transaction that writes the outcome
//!   (`store::redials`), so the decision and its due time are durable with the outcome, or
//!   neither is.
//!
//! Invariants:
//! - A redial is a new call (a new `CreateAIAgentCall`, a new session) of a contact that is
//!   `pending` again: every gate a first call passes (rate token, window, do-not-call, per-person
//!   gap and daily cap, callers, `not_after`, agent lines) applies to it unchanged.
//! - An answered call is never redialled by `on`; a post-call tag may ask for that
//!   (`[[redial.on_tag]]`, decided in the transaction that writes the session's tags, see
//!   `store::tags`), within the same `max_dials`.
//! - Calls are counted from the store's attempts (`placed` or `in_doubt`), so a crash at any point
//!   never makes more than `max_dials` calls of one contact in one campaign.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcomes::classes::OutcomeClass;
use crate::outcomes::tag_rules::TagRule;

pub mod settings;

/// The gate (`contacts.gate`) of a contact waiting for its redial.
pub const GATE: &str = "redial_after";
/// The `error_code` of a contact waiting for its redial; its `error_message` says why.
pub const CODE: &str = "Redial";

/// What `on` matches: an outcome class or a raw end code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Trigger {
    Class(OutcomeClass),
    Code(i64),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Class(c) => f.write_str(c.as_str()),
            Trigger::Code(n) => write!(f, "{n}"),
        }
    }
}

impl From<Trigger> for String {
    fn from(t: Trigger) -> String {
        t.to_string()
    }
}

/// What a class or code in `on` must be.
pub const TRIGGER_FORMS: &str = "an outcome class of a call not answered (\"not_answered\", \
\"busy\", \"rejected\", \"unreachable\", \"invalid_number\", \"voicemail\", \"blocked\", \
\"throttled\", \"other\") or an end code as a string of digits (\"202\")";

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Trigger, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = s.parse().map_err(|_| TRIGGER_FORMS.to_string())?;
            // EndStatus 1 is a normal (answered) call.
            if n == 1 || n > 100_000 {
                return Err(format!(
                    "{TRIGGER_FORMS}; 1 is a normal answered call, never redialled by end code"
                ));
            }
            return Ok(Trigger::Code(n));
        }
        match s.parse::<OutcomeClass>() {
            Ok(OutcomeClass::Answered) => Err(format!(
                "{TRIGGER_FORMS}; an answered call is not redialled by outcome (a post-call tag may ask for it)"
            )),
            Ok(OutcomeClass::NoRecord) => Err(format!(
                "{TRIGGER_FORMS}; no_record means the dialer never learned the outcome: the call may have been answered"
            )),
            Ok(c) => Ok(Trigger::Class(c)),
            Err(_) => Err(TRIGGER_FORMS.to_string()),
        }
    }
}

impl TryFrom<String> for Trigger {
    type Error = String;
    fn try_from(s: String) -> Result<Trigger, String> {
        s.parse()
    }
}

/// A campaign's validated redial policy (stored with the campaign as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedialPolicy {
    /// Outcome classes and end codes that ask for a redial.
    pub on: Vec<Trigger>,
    /// Calls per contact in this campaign, the first included.
    pub max_dials: u32,
    /// The least time from a call's end to the next dial of that contact.
    #[serde(with = "millis")]
    pub after: Duration,
    /// `[[redial.on_tag]]`: post-call tags that ask for a redial (of an answered call too),
    /// each `after` its call's end; the first that matches acts. Counted in `max_dials`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_tag: Vec<TagRule>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What the policy says about one ended call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Dial again at `due_ms` (unix ms): this will be call number `dial`.
    Redial { due_ms: i64, dial: u32 },
    /// The outcome is not in `on` (or the call was answered).
    NotAsked,
    /// `max_dials` calls were made already.
    MaxDials,
}

impl RedialPolicy {
    /// Whether a call of `class` with end code `end_status` asks for a redial.
    pub fn asks(&self, class: OutcomeClass, end_status: Option<i64>) -> bool {
        if class == OutcomeClass::Answered || class == OutcomeClass::NoRecord {
            return false;
        }
        self.on.iter().any(|t| match t {
            Trigger::Class(c) => *c == class,
            Trigger::Code(n) => end_status == Some(*n),
        })
    }

    /// The decision for a call of `class`/`end_status` that ended at `ended_ms` (unix ms),
    /// its contact having had `dials` calls (this one included).
    pub fn decide(
        &self,
        class: OutcomeClass,
        end_status: Option<i64>,
        dials: u32,
        ended_ms: i64,
    ) -> Decision {
        if !self.asks(class, end_status) {
            return Decision::NotAsked;
        }
        if dials >= self.max_dials {
            return Decision::MaxDials;
        }
        Decision::Redial {
            due_ms: due(ended_ms, self.after),
            dial: dials + 1,
        }
    }
}

/// `after` past `from_ms`, never 0 (0 means "a first call" in the queue).
pub fn due(from_ms: i64, after: Duration) -> i64 {
    from_ms
        .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
        .max(1)
}

/// `2h`, `10s`, `1d2h`: a duration as the config writes it.
pub fn human(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutcomeClass as C;

    fn policy() -> RedialPolicy {
        RedialPolicy {
            on: vec![Trigger::Class(C::NotAnswered), Trigger::Code(206)],
            max_dials: 3,
            after: Duration::from_secs(7200),
            on_tag: Vec::new(),
        }
    }

    #[test]
    fn a_class_or_an_end_code_in_on_asks_for_a_redial_after_the_calls_end() {
        let p = policy();
        assert_eq!(
            p.decide(C::NotAnswered, Some(202), 1, 1_000),
            Decision::Redial {
                due_ms: 1_000 + 7_200_000,
                dial: 2
            }
        );
        // Busy by its code 206, whatever the class table says.
        assert!(matches!(
            p.decide(C::Busy, Some(206), 2, 0),
            Decision::Redial { dial: 3, .. }
        ));
        assert_eq!(p.decide(C::Rejected, Some(203), 1, 0), Decision::NotAsked);
    }

    #[test]
    fn max_dials_counts_the_first_call_and_answered_is_never_redialled() {
        let p = policy();
        assert_eq!(
            p.decide(C::NotAnswered, Some(202), 3, 0),
            Decision::MaxDials
        );
        // An answered call with a listed code (the agent's end codes vary) is not redialled.
        assert_eq!(p.decide(C::Answered, Some(206), 1, 0), Decision::NotAsked);
        assert_eq!(p.decide(C::NoRecord, None, 1, 0), Decision::NotAsked);
    }

    #[test]
    fn triggers_parse_classes_and_codes_and_refuse_answered_and_no_record() {
        assert_eq!("busy".parse(), Ok(Trigger::Class(C::Busy)));
        assert_eq!(" 202 ".parse(), Ok(Trigger::Code(202)));
        for bad in ["answered", "no_record", "1", "bsy", "", "20x"] {
            let e = bad.parse::<Trigger>().unwrap_err();
            assert!(e.starts_with("an outcome class"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&policy()).unwrap();
        assert_eq!(
            json,
            r#"{"on":["not_answered","206"],"max_dials":3,"after":7200000}"#
        );
        assert_eq!(
            serde_json::from_str::<RedialPolicy>(&json).unwrap(),
            policy()
        );
    }

    #[test]
    fn due_is_never_zero_and_durations_read_as_written() {
        assert_eq!(due(-5_000, Duration::from_secs(1)), 1);
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        assert_eq!(human(Duration::from_secs(93_784)), "1d2h3m4s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
    }
}
