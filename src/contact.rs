//! A contact as the engine sees it: its status, what a row may override, and its result row.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where a contact is. `Pending` and `InFlight` are not final; the rest are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting for its (next) attempt.
    Pending,
    /// An attempt is written down and its request may be on the wire. After a crash this means
    /// *in doubt*: it becomes `Unknown`, never silently `Pending`.
    InFlight,
    Placed,
    Failed,
    Skipped,
    /// In doubt: the request may have reached the service, the reply was lost.
    Unknown,
    Cancelled,
    /// The campaign ended (`calling.not_after`) before this contact could be called.
    Expired,
    /// Was `unknown`; the service's call records show no call for it by
    /// `outcomes.reconcile_after`: the request did not create a call. Dialled again only with
    /// `retry.redial_not_placed` (or `--redial-not-placed`).
    NotPlaced,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::InFlight,
        Status::Placed,
        Status::Failed,
        Status::Skipped,
        Status::Unknown,
        Status::Cancelled,
        Status::Expired,
        Status::NotPlaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in_flight",
            Status::Placed => "placed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unknown => "unknown",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::NotPlaced => "not_placed",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::InFlight)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// What one CSV row overrides of the campaign's settings. Stored as JSON with the contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_agent_id: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The contact's own IANA zone (a checked name), for its calling window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
            && self.ai_agent_id.is_none()
            && self.variables.is_empty()
            && self.timezone.is_none()
    }
}

/// The skip reason of a contact on a do-not-call list (stored with error code `Dnc`).
pub const DNC_REASON: &str = "on a do-not-call list";

/// A row ready for the store: either a dialable contact or a skipped line with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub line: u64,
    /// Normalised number when dialable; the raw text when skipped.
    pub callee: String,
    pub ext_id: Option<String>,
    pub overrides: Overrides,
    /// `Some(reason)` for a row that will not be dialled.
    pub skip_reason: Option<String>,
}

/// One row of the results file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRow {
    pub callee: String,
    pub status: String,
    pub session_id: String,
    pub request_id: String,
    pub error_code: String,
    pub error_message: String,
    pub attempts: u32,
    pub line: u64,
    pub id: String,
    pub updated_at: String,
    /// The outcome class of the contact's latest session (`answered`, `not_answered`, …,
    /// `no_record`); empty while unknown or when outcome tracking is off.
    #[serde(default)]
    pub outcome: String,
    /// The call record's `EndStatus`, kept raw (also an undocumented code).
    #[serde(default)]
    pub end_status: String,
    #[serde(default)]
    pub end_status_string: String,
    /// Talk time in seconds.
    #[serde(default)]
    pub duration_s: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`; empty when not answered.
    #[serde(default)]
    pub answered_at: String,
    #[serde(default)]
    pub ended_at: String,
    /// `user`, `seat` or `system`, as the record says.
    #[serde(default)]
    pub hangup_side: String,
    /// Calls created for the contact in this campaign (attempts placed, or in doubt), redials
    /// included.
    #[serde(default)]
    pub dials: u32,
    /// When its first call was sent (UTC, as `updated_at`); empty before any.
    #[serde(default)]
    pub first_dialled_at: String,
}
