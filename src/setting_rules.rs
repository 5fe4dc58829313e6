//! The forms and ranges of the request settings that the config file (`[campaign]`,
//! `[retry]`), a campaign's own settings (API, inbox sidecar) and a contacts row (`callers`,
//! `ai_agent_id`, `var:` columns) can all give. One set of checks, so that a value refused in
//! one place is refused in every other: each caller turns a refusal into its own message
//! (config: file and key; API: `key = value`; intake: the row's reason).
//!
//! Pure functions, no I/O.

use std::ops::RangeInclusive;
use std::time::Duration;

/// `MaxRingTimeoutSecond`, seconds.
pub const RING_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=600;
pub const RING_TIMEOUT_EXPECTED: &str = "an integer from 1 to 600 (seconds)";

/// Attempts per contact.
pub const MAX_ATTEMPTS: RangeInclusive<i64> = 1..=100;
pub const MAX_ATTEMPTS_EXPECTED: &str = "an integer from 1 to 100";

/// The longest retry backoff (and any other delay the config schedules).
pub const LONGEST_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);
pub const LONGEST_DELAY_TEXT: &str = "30d";

pub const CALLER_EXPECTED: &str =
    "a caller number of 1 to 24 digits, optionally starting with + (e.g. \"008601012345678\")";

/// The most digits a caller number has: an international number (15 digits at most, E.164)
/// behind its longest access prefix, with room to spare; a 100-digit value is a mistake.
pub const CALLER_MAX_DIGITS: usize = 24;

/// `AIAgentId` is an Int64 at the service: positive, at most `i64::MAX`.
pub fn ai_agent_id_ok(n: u64) -> bool {
    n > 0 && i64::try_from(n).is_ok()
}

pub fn ai_agent_id_expected() -> String {
    format!("a positive integer up to {}", i64::MAX)
}

/// A caller number: an optional leading `+`, then 1 to [`CALLER_MAX_DIGITS`] ASCII digits
/// (nothing else: `1+2` or `++1` would be refused by the service for every contact). The one
/// rule for the config's `callers`, a campaign's settings and the contacts file's column.
pub fn caller_ok(c: &str) -> bool {
    let digits = c.strip_prefix('+').unwrap_or(c);
    (1..=CALLER_MAX_DIGITS).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Bounds of a set of prompt variables (a contacts row's `var:` cells, the config's
/// `campaign.variables`, a campaign's `variables`): they keep one request within
/// [`crate::ccc::MAX_REQUEST_BYTES`] (64 KiB).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// A variable's name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Variables in one set.
pub const MAX_VARIABLES: usize = 64;
/// Names and values of one set together, in bytes.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024;

/// Why a set of variables is refused: which name (never the value), and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariablesRefused {
    /// The offending name (empty for the whole set).
    pub name: Option<String>,
    pub expected: String,
}

/// Check a set of variables against the bounds above. Names are reported (a name is not a
/// secret); values never are.
pub fn variables_ok<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), VariablesRefused> {
    let mut count = 0usize;
    let mut total = 0usize;
    for (name, value) in vars {
        let refused = |expected: String| VariablesRefused {
            name: Some(name.to_string()),
            expected,
        };
        if name.trim().is_empty() {
            return Err(refused("a variable name, not an empty one".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(refused(format!(
                "a variable name of at most {MAX_NAME_BYTES} bytes (it has {})",
                name.len()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(refused("a variable name without control characters".into()));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(refused(format!(
                "a value of at most {MAX_VALUE_BYTES} bytes (it has {}; a request is bounded at 64 KiB)",
                value.len()
            )));
        }
        count += 1;
        total += name.len() + value.len();
    }
    if count > MAX_VARIABLES {
        return Err(VariablesRefused {
            name: None,
            expected: format!("at most {MAX_VARIABLES} variables (there are {count})"),
        });
    }
    if total > MAX_TOTAL_BYTES {
        return Err(VariablesRefused {
            name: None,
            expected: format!(
                "variables of at most {MAX_TOTAL_BYTES} bytes, names and values together (there are {total}; a request is bounded at 64 KiB)"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_digits_with_one_leading_plus() {
        for ok in ["008601012345678", "+8613800138000", "1"] {
            assert!(caller_ok(ok), "{ok}");
        }
        for bad in ["", "+", "1+2", "++1", "12 34", "x1", "1-2"] {
            assert!(!caller_ok(bad), "{bad}");
        }
    }

    #[test]
    fn agent_ids_are_positive_int64() {
        assert!(ai_agent_id_ok(1));
        assert!(ai_agent_id_ok(i64::MAX as u64));
        assert!(!ai_agent_id_ok(0));
        assert!(!ai_agent_id_ok(i64::MAX as u64 + 1));
        assert!(!ai_agent_id_ok(u64::MAX));
    }

    #[test]
    fn variables_are_bounded_by_name_value_count_and_total() {
        assert_eq!(variables_ok([("a", "b")]), Ok(()));
        let e = variables_ok([("", "x")]).unwrap_err();
        assert_eq!(e.name.as_deref(), Some(""));
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(variables_ok([(long.as_str(), "x")]).is_err());
        let big = "v".repeat(MAX_VALUE_BYTES + 1);
        let e = variables_ok([("note", big.as_str())]).unwrap_err();
        assert!(!e.expected.contains("vvv"), "never the value: {e:?}");
        let names: Vec<String> = (0..=MAX_VARIABLES).map(|i| format!("k{i}")).collect();
        let e = variables_ok(names.iter().map(|n| (n.as_str(), "x"))).unwrap_err();
        assert_eq!(e.name, None);
        let value = "v".repeat(MAX_VALUE_BYTES);
        let names: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        assert!(variables_ok(names.iter().map(|n| (n.as_str(), value.as_str()))).is_err());
        assert!(variables_ok([("a\nb", "x")]).is_err());
    }
}
