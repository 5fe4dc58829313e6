//! Whether outcome or tag tracking stopped on an account-level refusal, shared by the trackers
//! (which report the stop) and the dispatchers (which must not wait for what no tracker will
//! fetch).
//!
//! A campaign with a redial policy stays open while a call's outcome or an answered call's
//! post-call tags may still ask for a redial ([`crate::store::RedialWait`]). Once the tracker
//! that would learn them has stopped, nothing in this process will: `run` ends dialling (every
//! contact that could be dialled without them was) and exits as halted, naming the refused
//! action, its code and the fix; a rerun after the fix fetches them and places the redials they
//! ask for. `serve` keeps the campaign waiting (a restart after the fix continues it) and says
//! why in the campaign's reason.
//!
//! The trackers also [`TrackingStops::wrote`] after each write: a dispatcher waiting for an
//! outcome or tags that may ask for a redial looks again at once (an answer that asks for none
//! ends the campaign's wait as much as one that does), not after its idle minute.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::store::RedialWait;

/// A tracker's stop: the action the service refused, with its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub action: String,
    pub code: String,
    pub message: String,
}

impl Stopped {
    pub fn new(action: &str, code: &str, message: &str) -> Stopped {
        Stopped {
            action: action.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        }
    }

    /// What the operator should do: a permission refused names the action to grant (a CAM
    /// policy allowing only CreateAIAgentCall refuses the queries), else the code's own fix.
    pub fn hint(&self) -> String {
        let c = self.code.as_str();
        if c == "AuthFailure.UnauthorizedOperation"
            || c.starts_with("UnauthorizedOperation")
            || c == "FailedOperation.PermissionDenied"
        {
            format!(
                "fix: grant the key's user permission for ccc:{} (outcome tracking and redials need it beside ccc:CreateAIAgentCall)",
                self.action
            )
        } else {
            crate::policy::halt_hint(c).to_string()
        }
    }
}

/// Why a campaign cannot finish: it waits for `wait`, and the tracker that would fetch it
/// stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untracked {
    pub wait: RedialWait,
    pub stopped: Stopped,
}

impl Untracked {
    /// One line: which tracker stopped on which refusal, and what is left waiting.
    pub fn describe(&self) -> String {
        let (tracker, what) = match self.wait {
            RedialWait::Outcome => (
                "outcome tracking",
                "placed calls' outcomes, which may ask for a redial, stay unknown",
            ),
            RedialWait::Tags => (
                "tag tracking",
                "answered calls' post-call tags, which may ask for a redial, stay unread",
            ),
        };
        format!(
            "{tracker} stopped: {} answered {} ({}), so {what}",
            self.stopped.action, self.stopped.code, self.stopped.message
        )
    }

    /// `serve`'s campaign reason while it waits.
    pub fn waiting_reason(&self) -> String {
        format!(
            "waiting: {}; {}; then restart serve to fetch them and place the redials they ask for (or cancel the campaign)",
            self.describe(),
            self.stopped.hint()
        )
    }
}

/// The stops of one process's trackers.
#[derive(Debug)]
pub struct TrackingStops {
    outcomes: Mutex<Option<Stopped>>,
    tags: Mutex<Option<Stopped>>,
    changed: watch::Sender<u64>,
}

impl Default for TrackingStops {
    fn default() -> Self {
        TrackingStops {
            outcomes: Mutex::new(None),
            tags: Mutex::new(None),
            changed: watch::channel(0).0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrackingStops {
    /// The outcome tracker stopped: calls' outcomes will not be learned.
    pub fn stop_outcomes(&self, s: Stopped) {
        *lock(&self.outcomes) = Some(s);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The tag tracker stopped: post-call tags will not be read.
    pub fn stop_tags(&self, s: Stopped) {
        *lock(&self.tags) = Some(s);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A tracker wrote outcomes or tags: a campaign waiting for them may be done waiting.
    pub fn wrote(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the tracker `wait` needs has stopped, and on what.
    pub fn untracked(&self, wait: RedialWait) -> Option<Untracked> {
        let stopped = match wait {
            RedialWait::Outcome => lock(&self.outcomes).clone(),
            RedialWait::Tags => lock(&self.tags).clone(),
        }?;
        Some(Untracked { wait, stopped })
    }

    /// Changes whenever a tracker stops or wrote: a dispatcher waiting for outcomes or tags
    /// looks again.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_untracked_only_once_its_own_tracker_stopped() {
        let s = TrackingStops::default();
        let mut rx = s.watch();
        assert_eq!(s.untracked(RedialWait::Outcome), None);
        s.stop_tags(Stopped::new(
            "DescribeAICallExtractResult",
            "AuthFailure.UnauthorizedOperation",
            "no",
        ));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert_eq!(s.untracked(RedialWait::Outcome), None);
        let u = s.untracked(RedialWait::Tags).expect("tags stopped");
        assert!(u.describe().starts_with("tag tracking stopped: DescribeAICallExtractResult answered AuthFailure.UnauthorizedOperation (no)"), "{}", u.describe());
        assert!(u
            .stopped
            .hint()
            .contains("permission for ccc:DescribeAICallExtractResult"));
        s.stop_outcomes(Stopped::new(
            "DescribeTelCdr",
            "AuthFailure.SecretIdNotFound",
            "x",
        ));
        assert!(rx.has_changed().unwrap());
        let u = s.untracked(RedialWait::Outcome).expect("outcomes stopped");
        assert!(u
            .describe()
            .contains("outcomes, which may ask for a redial, stay unknown"));
        // Not a permission: the code's own fix.
        assert!(u.stopped.hint().contains("TENCENTCLOUD_SECRET_ID"));
        assert!(u.waiting_reason().contains("restart serve"));
    }
}
