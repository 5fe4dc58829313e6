//! Fault scripts for the stand-in: per callee pattern, the outcomes of its successive requests.
//!
//! ```toml
//! [[rule]]
//! callee = "008613800000001"      # exact, a prefix with a trailing *, or "*"
//! outcomes = ["error:FailedOperation.CallOutFailed", "ok"]
//! calls = ["not_answered", "answered:30s"]
//! ```
//! The first rule that matches a callee scripts it; every list is optional.
//!
//! Other actions are scripted as a whole (not per callee): the n-th request of the action that
//! passed the signature and window checks gets the n-th reply, then the action answers as usual:
//! ```toml
//! [[action]]
//! name = "DescribeTelCdr"    # or "DescribeAICallExtractResult", "DescribeAIAnalysisResult"
//! outcomes = ["error:InternalError", "error:AuthFailure.UnauthorizedOperation", "ok"]
//! ```
//!
//! `outcomes`: the n-th request for the callee gets the n-th reply; past the end of the list,
//! requests succeed. Replies: `ok`; `error:CODE` or `error:CODE:message` (an API error, no call
//! created); `created:error:CODE` (the call is created, then the reply is the API error CODE:
//! an `InternalError` that came after the service made the call); `drop` (the call is created, then the connection is cut before a complete reply:
//! the call lives and its record appears, the dialer never learns the SessionId); `http:NNN` (an
//! HTTP NNN with an HTML body, no call created); `hang:DURATION` (the call is created, the reply
//! comes after DURATION).
//!
//! `calls`: the n-th call created for the callee lives the n-th script; past the end of the
//! list (and for callees no rule names) a call is answered with the stand-in's answer ratio and
//! talks for its talk length. Scripts: `answered` (talk from the talk length),
//! `answered:DURATION` (talks DURATION), `answered:DURATION:CODE` (answered, ends with EndStatus
//! CODE, e.g. 229); never answered: `not_answered` (202), `rejected` (203), `power_off` (204),
//! `dead` (205), `busy` (206), `voicemail` (222), `end:CODE` (any code; its EndStatusString from
//! the service's table, `unknown` outside it) or `end:CODE:STRING`; `no_record` (the call exists
//! but its record never appears).
//!
//! `push` (with a push URL): the data push of the n-th call created for the callee: `on_time`,
//! `late:DURATION` (sent DURATION after it was due), `twice` (sent again a second later with the
//! same `X-TCCC-PUSH-UUID`) or `never`; past the end of the list, the push ratios apply.
//!
//! `tags`: the post-call tags of the n-th call created for the callee (when it is answered),
//! one table per call: `tags = [{ interested = true, score = 7, note = "call back", intent =
//! ["follow_up"] }]` (boolean, number, text, selector). An answered call no entry names gets
//! `interested` = true or false at even odds.
//!
//! `analysis`: the DescribeAIAnalysisResult items of the n-th call created for the callee (when
//! it is answered), one table per call: `analysis = [{ summary = "wants a call back", mood =
//! "positive", intention = "callback" }]`. An answered call no entry names gets a neutral one.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::calls::{CallScript, CALL_FORMS};
use super::extract::{Tags, TAG_FORMS};
use super::push::{PushScript, PUSH_FORMS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error {
        code: String,
        message: String,
    },
    Drop,
    /// The call is created, then the reply is this API error (an `InternalError` that came after
    /// the service made the call).
    CreatedError {
        code: String,
        message: String,
    },
    Http(u16),
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    outcomes: Vec<Outcome>,
    calls: Vec<CallScript>,
    push: Vec<PushScript>,
    tags: Vec<Tags>,
    analysis: Vec<super::analysis::Items>,
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
    /// Per action other than CreateAIAgentCall: the replies to its successive requests.
    actions: Vec<(String, Vec<Outcome>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("{path}: cannot read the fault script: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: action[{index}].name = {value}: expected DescribeTelCdr, DescribeAICallExtractResult or DescribeAIAnalysisResult")]
    InvalidAction {
        path: PathBuf,
        index: usize,
        value: String,
    },
    #[error("{path}: action[{index}].outcomes = {value}: expected {OUTCOME_FORMS}")]
    ActionOutcome {
        path: PathBuf,
        index: usize,
        value: String,
    },
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
    #[serde(default)]
    action: Vec<RawAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    outcomes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    callee: String,
    #[serde(default)]
    outcomes: Vec<String>,
    #[serde(default)]
    calls: Vec<String>,
    #[serde(default)]
    push: Vec<String>,
    #[serde(default)]
    tags: Vec<toml::Table>,
    #[serde(default)]
    analysis: Vec<toml::Table>,
}

const OUTCOME_FORMS: &str =
    "\"ok\", \"error:CODE\", \"error:CODE:message\", \"created:error:CODE\", \"drop\", \"http:NNN\" or \"hang:DURATION\"";

fn parse_outcome(text: &str) -> Option<Outcome> {
    let text = text.trim();
    if text == "ok" {
        return Some(Outcome::Ok);
    }
    if text == "drop" {
        return Some(Outcome::Drop);
    }
    if let Some(rest) = text.strip_prefix("created:") {
        return match parse_outcome(rest)? {
            Outcome::Error { code, message } => Some(Outcome::CreatedError { code, message }),
            _ => None,
        };
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
            let mut calls = Vec::new();
            for c in &r.calls {
                calls.push(CallScript::parse(c).ok_or_else(|| FaultsError::Invalid {
                    path: path.to_path_buf(),
                    index,
                    key: "calls",
                    value: format!("{c:?}"),
                    expected: CALL_FORMS,
                })?);
            }
            let mut push = Vec::new();
            for p in &r.push {
                push.push(PushScript::parse(p).ok_or_else(|| FaultsError::Invalid {
                    path: path.to_path_buf(),
                    index,
                    key: "push",
                    value: format!("{p:?}"),
                    expected: PUSH_FORMS,
                })?);
            }
            let mut tags = Vec::new();
            for t in &r.tags {
                tags.push(
                    super::extract::parse_tags(t).ok_or_else(|| FaultsError::Invalid {
                        path: path.to_path_buf(),
                        index,
                        key: "tags",
                        value: t.to_string().trim().replace('\n', ", "),
                        expected: TAG_FORMS,
                    })?,
                );
            }
            let mut analysis = Vec::new();
            for t in &r.analysis {
                analysis.push(super::analysis::parse_items(t).ok_or_else(|| {
                    FaultsError::Invalid {
                        path: path.to_path_buf(),
                        index,
                        key: "analysis",
                        value: t.to_string().trim().replace('\n', ", "),
                        expected: super::analysis::ANALYSIS_FORMS,
                    }
                })?);
            }
            rules.push(Rule {
                pattern: r.callee.trim().to_string(),
                outcomes,
                calls,
                push,
                tags,
                analysis,
            });
        }
        let mut actions = Vec::new();
        for (index, a) in raw.action.into_iter().enumerate() {
            if !super::ACTIONS[1..].contains(&a.name.as_str()) {
                return Err(FaultsError::InvalidAction {
                    path: path.to_path_buf(),
                    index,
                    value: format!("{:?}", a.name),
                });
            }
            let mut outcomes = Vec::new();
            for o in &a.outcomes {
                outcomes.push(parse_outcome(o).ok_or_else(|| FaultsError::ActionOutcome {
                    path: path.to_path_buf(),
                    index,
                    value: format!("{o:?}"),
                })?);
            }
            actions.push((a.name, outcomes));
        }
        Ok(Faults { rules, actions })
    }

    /// The scripted reply to the `n`-th (0-based) admitted request of `action` (not
    /// CreateAIAgentCall), if an `[[action]]` table names one.
    pub fn action_outcome(&self, action: &str, n: usize) -> Option<Outcome> {
        self.actions
            .iter()
            .find(|(name, _)| name == action)
            .and_then(|(_, o)| o.get(n).cloned())
    }

    /// The outcome of the `n`-th (0-based) request for `callee`.
    pub fn outcome(&self, callee: &str, n: usize) -> Outcome {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.outcomes.get(n).cloned())
            .unwrap_or(Outcome::Ok)
    }

    /// The script of the `n`-th (0-based) call created for `callee`, if a rule names one.
    pub fn call(&self, callee: &str, n: usize) -> Option<CallScript> {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.calls.get(n).cloned())
    }

    /// The push script of the `n`-th (0-based) call created for `callee`, if a rule names one.
    pub fn push(&self, callee: &str, n: usize) -> Option<PushScript> {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.push.get(n).cloned())
    }

    /// The post-call tags of the `n`-th (0-based) call created for `callee`, if a rule names
    /// them.
    pub fn tags(&self, callee: &str, n: usize) -> Option<Tags> {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.tags.get(n).cloned())
    }

    /// The analysis items of the `n`-th (0-based) call created for `callee`, if a rule names
    /// them.
    pub fn analysis(&self, callee: &str, n: usize) -> Option<super::analysis::Items> {
        self.rules
            .iter()
            .find(|r| r.matches(callee))
            .and_then(|r| r.analysis.get(n).cloned())
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
    fn call_scripts_follow_the_calls_created() {
        let f = Faults::from_toml_str(
            "[[rule]]\ncallee = \"0086138*\"\ncalls = [\"not_answered\", \"answered:30s\", \"busy\", \"voicemail\", \"dead\", \"end:299\", \"end:299:oddOne\", \"answered:1m:229\", \"no_record\", \"answered\"]\n",
        )
        .unwrap();
        let c = "008613800000001";
        let un = |code: i64, string: Option<&str>| {
            Some(CallScript::Unanswered {
                end_status: code,
                string: string.map(str::to_string),
            })
        };
        assert_eq!(f.call(c, 0), un(202, None));
        assert_eq!(
            f.call(c, 1),
            Some(CallScript::Answered {
                talk: Some(Duration::from_secs(30)),
                end_status: 1
            })
        );
        assert_eq!(f.call(c, 2), un(206, None));
        assert_eq!(f.call(c, 3), un(222, None));
        assert_eq!(f.call(c, 4), un(205, None));
        assert_eq!(f.call(c, 5), un(299, None));
        assert_eq!(f.call(c, 6), un(299, Some("oddOne")));
        assert_eq!(
            f.call(c, 7),
            Some(CallScript::Answered {
                talk: Some(Duration::from_secs(60)),
                end_status: 229
            })
        );
        assert_eq!(f.call(c, 8), Some(CallScript::NoRecord));
        assert_eq!(
            f.call(c, 9),
            Some(CallScript::Answered {
                talk: None,
                end_status: 1
            })
        );
        assert_eq!(f.call(c, 10), None);
        assert_eq!(f.call("0044", 0), None);
        // A rule with calls only answers every request.
        assert_eq!(f.outcome(c, 0), Outcome::Ok);
        let e =
            Faults::from_toml_str("[[rule]]\ncallee = \"1\"\ncalls = [\"end:x\"]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("<faults>: rule[0].calls = \"end:x\": expected {CALL_FORMS}")
        );
    }

    #[test]
    fn action_scripts_play_per_action() {
        let f = Faults::from_toml_str(
            "[[action]]\nname = \"DescribeTelCdr\"\noutcomes = [\"error:InternalError\", \"ok\", \"http:502\"]\n",
        )
        .unwrap();
        assert!(matches!(
            f.action_outcome("DescribeTelCdr", 0),
            Some(Outcome::Error { ref code, .. }) if code == "InternalError"
        ));
        assert_eq!(f.action_outcome("DescribeTelCdr", 1), Some(Outcome::Ok));
        assert_eq!(
            f.action_outcome("DescribeTelCdr", 2),
            Some(Outcome::Http(502))
        );
        assert_eq!(f.action_outcome("DescribeTelCdr", 3), None);
        assert_eq!(f.action_outcome("DescribeAICallExtractResult", 0), None);
        let e = Faults::from_toml_str("[[action]]\nname = \"CreateAIAgentCall\"\noutcomes = []\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("action[0].name = \"CreateAIAgentCall\""),
            "{e}"
        );
        let e =
            Faults::from_toml_str("[[action]]\nname = \"DescribeTelCdr\"\noutcomes = [\"x\"]\n")
                .unwrap_err();
        assert!(e.to_string().contains("action[0].outcomes = \"x\""), "{e}");
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
