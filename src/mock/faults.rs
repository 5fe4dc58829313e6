//! Fault scripts for the stand-in: per callee pattern, the outcomes of its successive requests.
//!
//! ```toml
//! [[rule]]
//! callee = "008613800000001"      # exact, a prefix with a trailing *, or "*"
//! outcomes = ["error:FailedOperation.CallOutFailed", "ok"]
//! ```
//! The n-th request for a callee gets the n-th outcome of the first rule that matches it; past
//! the end of the list, requests succeed. Outcomes: `ok`; `error:CODE` or `error:CODE:message`
//! (an API error, no call created); `drop` (the call is created, then the connection is cut
//! before a complete reply); `http:NNN` (an HTTP NNN with an HTML body, no call created);
//! `hang:DURATION` (the call is created, the reply comes after DURATION).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error { code: String, message: String },
    Drop,
    Http(u16),
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    outcomes: Vec<Outcome>,
}

impl Rule {
    fn matches(&self, callee: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => callee.starts_with(prefix),
            None => self.pattern == callee,
        }
    }
}

/// A parsed fault script. The default is empty: every request succeeds.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("{path}: cannot read the fault script: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: rule[{index}].{key} = {value}: expected {expected}")]
    Invalid {
        path: PathBuf,
        index: usize,
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    callee: String,
    outcomes: Vec<String>,
}

const OUTCOME_FORMS: &str =
    "\"ok\", \"error:CODE\", \"error:CODE:message\", \"drop\", \"http:NNN\" or \"hang:DURATION\"";

fn parse_outcome(text: &str) -> Option<Outcome> {
    let text = text.trim();
    if text == "ok" {
        return Some(Outcome::Ok);
    }
    if text == "drop" {
        return Some(Outcome::Drop);
    }
    if let Some(rest) = text.strip_prefix("error:") {
        let (code, message) = match rest.split_once(':') {
            Some((c, m)) => (c.trim(), m.trim().to_string()),
            None => (rest.trim(), format!("scripted failure {}", rest.trim())),
        };
        if code.is_empty() {
            return None;
        }
        return Some(Outcome::Error {
            code: code.to_string(),
            message,
        });
    }
    if let Some(status) = text.strip_prefix("http:") {
        return status
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .map(Outcome::Http);
    }
    if let Some(d) = text.strip_prefix("hang:") {
        return crate::duration::parse(d).ok().map(Outcome::Hang);
    }
    None
}

impl Faults {
    pub fn load(path: &Path) -> Result<Faults, FaultsError> {
        let text = std::fs::read_to_string(path).map_err(|e| FaultsError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Faults::parse(path, &text)
    }

    pub fn from_toml_str(text: &str) -> Result<Faults, FaultsError> {
        Faults::parse(Path::new("<faults>"), text)
    }

    fn parse(path: &Path, text: &str) -> Result<Faults, FaultsError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| FaultsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut rules = Vec::new();
        for (index, r) in raw.rule.into_iter().enumerate() {
            if r.callee.trim().is_empty() {
                return Err(FaultsError::Invalid {
                    path: path.to_path_buf(),
                    index,
                    key: "callee",
                    value: format!("{:?}", r.callee),
                    expected: "a callee number, a prefix ending in *, or \"*\"",
                });
            }
            let mut outcomes = Vec::new();
            for o in &r.outcomes {
                outcomes.push(parse_outcome(o).ok_or_else(|| FaultsError::Invalid {
                    path: path.to_path_buf(),
                    index,
                    key: "outcomes",
                    value: format!("{o:?}"),
                    expected: OUTCOME_FORMS,
                })?);
            }
            rules.push(Rule {
                pattern: r.callee.trim().to_string(),
                outcomes,
            });
        }
        Ok(Faults { rules })
    }

    /// The outcome of the `n`-th (0-based) request for `callee`.
    pub fn outcome(&self, callee: &str, n: usize) -> Outcome {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.outcomes.get(n).cloned())
            .unwrap_or(Outcome::Ok)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_request_count_then_succeed() {
        let f = Faults::from_toml_str(
            "[[rule]]\ncallee = \"0086138*\"\noutcomes = [\"error:InternalError\", \"drop\", \"http:502\", \"hang:2s\", \"error:X:custom\"]\n\
             [[rule]]\ncallee = \"*\"\noutcomes = [\"ok\"]\n",
        )
        .unwrap();
        let c = "008613800000001";
        assert!(
            matches!(f.outcome(c, 0), Outcome::Error { ref code, .. } if code == "InternalError")
        );
        assert_eq!(f.outcome(c, 1), Outcome::Drop);
        assert_eq!(f.outcome(c, 2), Outcome::Http(502));
        assert_eq!(f.outcome(c, 3), Outcome::Hang(Duration::from_secs(2)));
        assert_eq!(
            f.outcome(c, 4),
            Outcome::Error {
                code: "X".into(),
                message: "custom".into()
            }
        );
        assert_eq!(f.outcome(c, 5), Outcome::Ok);
        assert_eq!(f.outcome("0044", 0), Outcome::Ok);
    }

    #[test]
    fn bad_scripts_name_the_rule_key_and_value() {
        let e = Faults::from_toml_str("[[rule]]\ncallee = \"1\"\noutcomes = [\"explode\"]\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("<faults>: rule[0].outcomes = \"explode\": expected {OUTCOME_FORMS}")
        );
        let e =
            Faults::from_toml_str("[[rule]]\ncallee = \"1\"\noutcome = [\"ok\"]\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `outcome`"), "{e}");
        let e = Faults::from_toml_str("[[rule]]\ncallee = \"1\"\noutcomes = [\"http:99\"]\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("rule[0].outcomes = \"http:99\""),
            "{e}"
        );
    }
}
