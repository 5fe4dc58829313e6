//! The request for one contact: the campaign's defaults with the row's overrides on top, and the
//! masked form of a number for logs.

use std::collections::BTreeMap;

use crate::ccc::{CallRequest, Variable};
use crate::store::DueContact;

/// Campaign-wide request defaults (the config's `[campaign]`, or a campaign's own settings).
#[derive(Debug, Clone)]
pub struct RequestDefaults {
    pub sdk_app_id: u64,
    pub ai_agent_id: u64,
    pub callers: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub max_ring_timeout_second: Option<u32>,
}

impl From<&crate::config::Campaign> for RequestDefaults {
    fn from(c: &crate::config::Campaign) -> Self {
        RequestDefaults {
            sdk_app_id: c.sdk_app_id,
            ai_agent_id: c.ai_agent_id,
            callers: c.callers.clone(),
            variables: c.variables.clone(),
            max_ring_timeout_second: c.max_ring_timeout_second,
        }
    }
}

/// The request for one contact: row overrides over campaign defaults. With several callers and
/// a retry after `CallerOverFrequency`, the list is rotated so another caller comes first.
pub fn build_request(d: &RequestDefaults, c: &DueContact, rotate_callers: usize) -> CallRequest {
    let mut callers = if c.overrides.callers.is_empty() {
        d.callers.clone()
    } else {
        c.overrides.callers.clone()
    };
    if !callers.is_empty() {
        let n = rotate_callers % callers.len();
        callers.rotate_left(n);
    }
    let mut vars = d.variables.clone();
    for (k, v) in &c.overrides.variables {
        vars.insert(k.clone(), v.clone());
    }
    CallRequest {
        sdk_app_id: d.sdk_app_id,
        ai_agent_id: c.overrides.ai_agent_id.unwrap_or(d.ai_agent_id),
        callee: c.callee.clone(),
        callers,
        variables: vars
            .into_iter()
            .map(|(key, value)| Variable { key, value })
            .collect(),
        max_ring_timeout_second: d.max_ring_timeout_second,
    }
}

/// `008613800138000` → `0086138****8000`: enough to recognise, not enough to dial.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = (chars.len() - 4).min(7).min(chars.len() / 2);
    chars
        .iter()
        .enumerate()
        .map(|(i, ch)| {
            if i < keep_head || i >= chars.len() - 4 {
                *ch
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Overrides;

    fn defaults() -> RequestDefaults {
        RequestDefaults {
            sdk_app_id: 1,
            ai_agent_id: 15,
            callers: vec!["a".into(), "b".into(), "c".into()],
            variables: [
                ("product".to_string(), "demo".to_string()),
                ("name".to_string(), "x".to_string()),
            ]
            .into_iter()
            .collect(),
            max_ring_timeout_second: Some(40),
        }
    }

    fn contact(overrides: Overrides) -> DueContact {
        DueContact {
            id: 1,
            campaign_id: 1,
            callee: "008613800138000".into(),
            overrides,
            attempts: 0,
            reschedules: 0,
            line: 2,
        }
    }

    #[test]
    fn row_variables_merge_over_config_defaults_and_row_agent_wins() {
        let mut o = Overrides::default();
        o.variables.insert("name".into(), "张三".into());
        o.ai_agent_id = Some(99);
        let req = build_request(&defaults(), &contact(o), 0);
        assert_eq!(req.ai_agent_id, 99);
        assert_eq!(
            req.variables,
            vec![
                Variable {
                    key: "name".into(),
                    value: "张三".into()
                },
                Variable {
                    key: "product".into(),
                    value: "demo".into()
                },
            ]
        );
        assert_eq!(req.max_ring_timeout_second, Some(40));
    }

    #[test]
    fn row_callers_replace_config_callers_and_retries_rotate_them() {
        let req = build_request(&defaults(), &contact(Overrides::default()), 1);
        assert_eq!(req.callers, vec!["b", "c", "a"]);
        let o = Overrides {
            callers: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            build_request(&defaults(), &contact(o), 5).callers,
            vec!["x"]
        );
    }

    #[test]
    fn masking_hides_the_middle_digits() {
        assert_eq!(mask("008613800138000"), "0086138****8000");
        assert_eq!(mask("+8613800138000"), "+861380***8000");
        assert_eq!(mask("12345"), "*****");
    }
}
