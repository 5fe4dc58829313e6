//! Which call record, if any, an in-doubt CreateAIAgentCall created. Pure.
//!
//! The reply was lost, so there is no SessionId; CreateAIAgentCall echoes no custom data
//! either. The dialer asks DescribeTelCdr for the callee as sent (`Phones`) over
//! [send − 60 s, now] and keeps the records that are outbound (`Direction` 1), of the
//! campaign's AI agent (when the record names one), and started within [send − 60 s,
//! send + 120 s], leaving out sessions the store already knows (another attempt's). The
//! per-person gap keeps two calls to one number further apart than that window, so at most one
//! record should match; if two do, the contact stays `unknown` and the reason says why. A
//! record matching in all but naming another agent is [`Match::OtherAgent`] (unknown, never
//! "no call"), and "none" proves nothing unless the answer was whole ([`conclusive`]).

use super::cdr::CallRecord;

/// The window around the send time in which the call must have started, in seconds.
pub const BEFORE_SECS: i64 = 60;
pub const AFTER_SECS: i64 = 120;

/// What the records say about one in-doubt request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    None,
    One(Box<CallRecord>),
    Many(Vec<String>),
    /// No record of the agent, but these sessions match in everything else and name another
    /// AI agent (the config's agent may have changed since): not proof that no call was made.
    OtherAgent(Vec<String>),
}

/// Whether "no matching record" in an answer may be taken as proof the request created no
/// call: every page was read (`complete`) and the query's window reached the last moment the
/// call could have started (`sent_secs` + [`AFTER_SECS`]).
pub fn conclusive(complete: bool, window_end_secs: i64, sent_secs: i64) -> bool {
    complete && window_end_secs >= sent_secs + AFTER_SECS
}

/// The records that may be the call created by a request to `callee` sent at `sent_secs`.
/// `known` says whether a SessionId already belongs to an attempt in the store.
pub fn find(
    records: &[CallRecord],
    callee: &str,
    agent: u64,
    sent_secs: i64,
    known: impl Fn(&str) -> bool,
) -> Match {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let want = digits(callee);
    let candidates = |any_agent: bool| -> Vec<&CallRecord> {
        records
            .iter()
            .filter(|r| {
                let Some(session) = r.session_id.as_deref().filter(|s| !s.is_empty()) else {
                    return false;
                };
                // A protected number leaves Callee empty: the Phones filter matched it already.
                let callee_ok = r
                    .callee
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .is_none_or(|c| same_number(&digits(c), &want));
                r.direction.is_none_or(|d| d == 1)
                    && (any_agent || r.ai_agent_id.is_none_or(|a| a == 0 || a as u64 == agent))
                    && r.started().is_some_and(|t| {
                        (sent_secs - BEFORE_SECS..=sent_secs + AFTER_SECS).contains(&t)
                    })
                    && callee_ok
                    && !known(session)
            })
            .collect()
    };
    let mut hits = candidates(false);
    let mut seen = std::collections::HashSet::new();
    hits.retain(|r| seen.insert(r.session_id.clone()));
    match hits.len() {
        0 => {
            let mut seen = std::collections::HashSet::new();
            let others: Vec<String> = candidates(true)
                .into_iter()
                .filter_map(|r| r.session_id.clone())
                .filter(|s| seen.insert(s.clone()))
                .collect();
            if others.is_empty() {
                Match::None
            } else {
                Match::OtherAgent(others)
            }
        }
        1 => Match::One(Box::new(hits[0].clone())),
        _ => Match::Many(hits.iter().filter_map(|r| r.session_id.clone()).collect()),
    }
}

/// The spellings of `callee` to ask DescribeTelCdr for (`Phones`): as the request sent it
/// first, then the same number with the other international prefix (`+86…` / `0086…`). The
/// documented examples use `0086…`; which spelling a record keeps for a request sent as `+86…`
/// is not documented, and a spelling the service does not match would read as "no call".
pub fn spellings(callee: &str) -> Vec<String> {
    let other = if let Some(rest) = callee.strip_prefix('+') {
        Some(format!("00{rest}"))
    } else {
        callee.strip_prefix("00").map(|rest| format!("+{rest}"))
    };
    std::iter::once(callee.to_string())
        .chain(other.filter(|o| o.len() > 3))
        .collect()
}

/// Two spellings of one number: equal digits, or one ends with the other's national part
/// (`008613012345678` vs `13012345678`, `+86…` vs `0086…`).
fn same_number(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.trim_start_matches('0').to_string();
    let (a, b) = (strip(a), strip(b));
    a == b || (a.len() >= 7 && b.ends_with(&a)) || (b.len() >= 7 && a.ends_with(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(session: &str, start: i64) -> CallRecord {
        CallRecord {
            session_id: Some(session.into()),
            callee: Some("008613012345678".into()),
            direction: Some(1),
            start_timestamp: Some(start),
            ai_agent_id: Some(15),
            ..Default::default()
        }
    }

    const SENT: i64 = 1_800_000_000;

    #[test]
    fn the_one_outbound_record_of_the_agent_near_the_send_time_matches() {
        let r = rec("s-1", SENT + 3);
        assert_eq!(
            find(
                std::slice::from_ref(&r),
                "008613012345678",
                15,
                SENT,
                |_| false
            ),
            Match::One(Box::new(r))
        );
    }

    #[test]
    fn records_outside_the_window_of_another_agent_inbound_or_known_do_not() {
        let early = rec("s-early", SENT - 61);
        let late = rec("s-late", SENT + 121);
        let other_agent = CallRecord {
            ai_agent_id: Some(99),
            ..rec("s-agent", SENT)
        };
        let inbound = CallRecord {
            direction: Some(0),
            ..rec("s-in", SENT)
        };
        let other_number = CallRecord {
            callee: Some("008613099999999".into()),
            ..rec("s-num", SENT)
        };
        let known = rec("s-known", SENT);
        let all = [early, late, inbound, other_number, known];
        assert_eq!(
            find(&all, "008613012345678", 15, SENT, |s| s == "s-known"),
            Match::None
        );
        // A record of another agent is no match, and no proof of "no call" either.
        assert_eq!(
            find(
                std::slice::from_ref(&other_agent),
                "008613012345678",
                15,
                SENT,
                |_| { false }
            ),
            Match::OtherAgent(vec!["s-agent".into()])
        );
        // A record of the agent wins over one of another agent.
        let mine = rec("s-mine", SENT + 5);
        assert_eq!(
            find(
                &[other_agent, mine.clone()],
                "008613012345678",
                15,
                SENT,
                |_| false
            ),
            Match::One(Box::new(mine))
        );
        // The window's edges are inside it; Time stands in for a missing StartTimestamp.
        let edge = CallRecord {
            start_timestamp: None,
            time: Some(SENT + 120),
            ..rec("s-edge", 0)
        };
        assert!(matches!(
            find(&[edge], "+8613012345678", 15, SENT, |_| false),
            Match::One(_)
        ));
        // A record without an agent id is not refused for it.
        let no_agent = CallRecord {
            ai_agent_id: None,
            ..rec("s-na", SENT - 60)
        };
        assert!(matches!(
            find(&[no_agent], "008613012345678", 15, SENT, |_| false),
            Match::One(_)
        ));
    }

    #[test]
    fn the_phone_is_asked_for_as_sent_and_with_the_other_prefix() {
        assert_eq!(
            spellings("+8613012345678"),
            ["+8613012345678", "008613012345678"]
        );
        assert_eq!(
            spellings("008613012345678"),
            ["008613012345678", "+8613012345678"]
        );
        assert_eq!(spellings("13012345678"), ["13012345678"]);
    }

    #[test]
    fn two_matches_are_named_not_chosen() {
        let m = find(
            &[rec("s-1", SENT), rec("s-2", SENT + 30), rec("s-1", SENT)],
            "008613012345678",
            15,
            SENT,
            |_| false,
        );
        assert_eq!(m, Match::Many(vec!["s-1".into(), "s-2".into()]));
    }

    #[test]
    fn no_record_proves_nothing_unless_every_page_was_read_up_to_the_windows_end() {
        assert!(conclusive(true, SENT + AFTER_SECS, SENT));
        assert!(conclusive(true, SENT + 3600, SENT));
        // The call may still start (or its record appear) after the window's end.
        assert!(!conclusive(true, SENT + AFTER_SECS - 1, SENT));
        // Pages left unread, or a reply without a record list.
        assert!(!conclusive(false, SENT + 3600, SENT));
    }
}
