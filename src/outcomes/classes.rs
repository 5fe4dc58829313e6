//! Outcome classes: what a call record says happened to a call, in the few words a campaign's
//! owner reports on. Pure: the record and the overrides are inputs.
//!
//! | class            | when                                                                  |
//! |------------------|-----------------------------------------------------------------------|
//! | `answered`       | `AcceptTimestamp` > 0, whatever the `EndStatus` (1, 225–233 …); also `EndStatus` 1 |
//! | `not_answered`   | 202 notAnswer, 220 callerCancelWhileRing                              |
//! | `busy`           | 206 busy                                                              |
//! | `rejected`       | 203 userReject                                                        |
//! | `unreachable`    | 204, 207, 208, 210, 213, 219, 221                                     |
//! | `invalid_number` | 205 numberNotExist, 215 numberInvalid                                 |
//! | `voicemail`      | 222 voiceMailReached                                                  |
//! | `blocked`        | 100, 108, 110, 111, 212, 216, 217, 218                                |
//! | `throttled`      | 109 tooManyRequest                                                    |
//! | `other`          | any other code (documented ones quietly; an undocumented one is kept raw and warned about once) |
//! | `no_record`      | no call record by `outcomes.give_up_after`                            |
//!
//! `[outcomes.classes]` in the config overrides the table per end code (`"209" = "not_answered"`);
//! an overridden code is classed as configured even when the call was answered.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::cdr::CallRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeClass {
    Answered,
    NotAnswered,
    Busy,
    Rejected,
    Unreachable,
    InvalidNumber,
    Voicemail,
    Blocked,
    Throttled,
    Other,
    NoRecord,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 11] = [
        OutcomeClass::Answered,
        OutcomeClass::NotAnswered,
        OutcomeClass::Busy,
        OutcomeClass::Rejected,
        OutcomeClass::Unreachable,
        OutcomeClass::InvalidNumber,
        OutcomeClass::Voicemail,
        OutcomeClass::Blocked,
        OutcomeClass::Throttled,
        OutcomeClass::Other,
        OutcomeClass::NoRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Answered => "answered",
            OutcomeClass::NotAnswered => "not_answered",
            OutcomeClass::Busy => "busy",
            OutcomeClass::Rejected => "rejected",
            OutcomeClass::Unreachable => "unreachable",
            OutcomeClass::InvalidNumber => "invalid_number",
            OutcomeClass::Voicemail => "voicemail",
            OutcomeClass::Blocked => "blocked",
            OutcomeClass::Throttled => "throttled",
            OutcomeClass::Other => "other",
            OutcomeClass::NoRecord => "no_record",
        }
    }
}

impl std::fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutcomeClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OutcomeClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<String> = OutcomeClass::ALL
                    .iter()
                    .filter(|c| **c != OutcomeClass::NoRecord)
                    .map(|c| format!("{:?}", c.as_str()))
                    .collect();
                format!("one of {}", names.join(", "))
            })
    }
}

use OutcomeClass as C;

/// The default table: `EndStatus` → class. Codes listed as `Other` are documented ones with no
/// better class (they are not warned about).
pub const DEFAULT_TABLE: &[(i64, OutcomeClass)] = &[
    (1, C::Answered),
    (202, C::NotAnswered),
    (220, C::NotAnswered),
    (206, C::Busy),
    (203, C::Rejected),
    (204, C::Unreachable),
    (207, C::Unreachable),
    (208, C::Unreachable),
    (210, C::Unreachable),
    (213, C::Unreachable),
    (219, C::Unreachable),
    (221, C::Unreachable),
    (205, C::InvalidNumber),
    (215, C::InvalidNumber),
    (222, C::Voicemail),
    (100, C::Blocked),
    (108, C::Blocked),
    (110, C::Blocked),
    (111, C::Blocked),
    (212, C::Blocked),
    (216, C::Blocked),
    (217, C::Blocked),
    (218, C::Blocked),
    (109, C::Throttled),
    // Documented, no better class: inbound-only codes, caller cancel, client errors, and the
    // AI agent's own end codes (225–233) when the call was not answered.
    (17, C::Other),
    (102, C::Other),
    (103, C::Other),
    (104, C::Other),
    (105, C::Other),
    (106, C::Other),
    (107, C::Other),
    (209, C::Other),
    (211, C::Other),
    (225, C::Other),
    (226, C::Other),
    (227, C::Other),
    (228, C::Other),
    (229, C::Other),
    (230, C::Other),
    (231, C::Other),
    (232, C::Other),
    (233, C::Other),
    (501, C::Other),
    (502, C::Other),
    (503, C::Other),
];

/// `[outcomes.classes]`: end code → class.
pub type OutcomeOverrides = BTreeMap<i64, OutcomeClass>;

/// How a record was classed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classed {
    pub class: OutcomeClass,
    /// The record's end code is in neither the table nor the overrides (kept raw, warned about).
    pub unknown_code: bool,
}

/// The class of one call record.
pub fn classify(r: &CallRecord, overrides: &OutcomeOverrides) -> Classed {
    let code = r.end_status;
    if let Some(class) = code.and_then(|c| overrides.get(&c)) {
        return Classed {
            class: *class,
            unknown_code: false,
        };
    }
    let in_table = code.and_then(|c| DEFAULT_TABLE.iter().find(|(k, _)| *k == c).map(|e| e.1));
    if r.accept_timestamp.is_some_and(|t| t > 0) {
        return Classed {
            class: C::Answered,
            unknown_code: code.is_some() && in_table.is_none(),
        };
    }
    match in_table {
        Some(class) => Classed {
            class,
            unknown_code: false,
        },
        None => Classed {
            class: C::Other,
            unknown_code: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(end: Option<i64>, accept: i64) -> CallRecord {
        CallRecord {
            end_status: end,
            accept_timestamp: Some(accept),
            ..Default::default()
        }
    }

    #[test]
    fn every_documented_code_lands_in_the_issues_class() {
        let none = OutcomeOverrides::new();
        let want: &[(&[i64], OutcomeClass)] = &[
            (&[202, 220], C::NotAnswered),
            (&[206], C::Busy),
            (&[203], C::Rejected),
            (&[204, 207, 208, 210, 213, 219, 221], C::Unreachable),
            (&[205, 215], C::InvalidNumber),
            (&[222], C::Voicemail),
            (&[100, 108, 110, 111, 212, 216, 217, 218], C::Blocked),
            (&[109], C::Throttled),
            (&[209, 211, 225, 233], C::Other),
        ];
        for (codes, class) in want {
            for code in *codes {
                let c = classify(&rec(Some(*code), 0), &none);
                assert_eq!(c.class, *class, "code {code}");
                assert!(!c.unknown_code, "code {code}");
            }
        }
    }

    #[test]
    fn an_accepted_call_is_answered_whatever_its_end_code() {
        let none = OutcomeOverrides::new();
        for code in [1, 225, 228, 229, 231, 202] {
            assert_eq!(
                classify(&rec(Some(code), 1_729_756_307), &none).class,
                C::Answered
            );
        }
        assert_eq!(classify(&rec(Some(1), 0), &none).class, C::Answered);
    }

    #[test]
    fn an_unknown_code_is_other_and_flagged() {
        let none = OutcomeOverrides::new();
        let c = classify(&rec(Some(234), 0), &none);
        assert_eq!(c.class, C::Other);
        assert!(c.unknown_code);
        let c = classify(&rec(None, 0), &none);
        assert_eq!(c.class, C::Other);
        // Answered with an unknown code: answered, still flagged so the code gets a warning.
        let c = classify(&rec(Some(777), 5), &none);
        assert_eq!((c.class, c.unknown_code), (C::Answered, true));
    }

    #[test]
    fn the_config_overrides_the_table_and_the_accept_rule() {
        let mut o = OutcomeOverrides::new();
        o.insert(209, C::NotAnswered);
        o.insert(234, C::Unreachable);
        o.insert(222, C::Answered);
        assert_eq!(classify(&rec(Some(209), 0), &o).class, C::NotAnswered);
        let c = classify(&rec(Some(234), 0), &o);
        assert_eq!((c.class, c.unknown_code), (C::Unreachable, false));
        assert_eq!(classify(&rec(Some(222), 0), &o).class, C::Answered);
        o.insert(1, C::Other);
        assert_eq!(classify(&rec(Some(1), 9), &o).class, C::Other);
    }

    #[test]
    fn class_names_round_trip_and_a_bad_one_lists_the_choices() {
        for c in OutcomeClass::ALL {
            assert_eq!(c.as_str().parse::<OutcomeClass>(), Ok(c));
        }
        let e = "answred".parse::<OutcomeClass>().unwrap_err();
        assert!(
            e.contains("\"answered\"") && e.contains("\"voicemail\""),
            "{e}"
        );
    }
}
