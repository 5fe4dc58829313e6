//! The stand-in's data push (shared/CCC-OUTCOMES.md §4): after a call ended, its CDR is POSTed
//! as JSON to `{url}?action=cdr&version=1` with `Content-Type: application/json;charset=utf8`,
//! HTTP Basic auth when configured, and an `X-TCCC-PUSH-UUID` header that identifies the push
//! (a repeated or retried push carries the same one). A push is delivered when the receiver
//! answers 2xx with `{"ErrCode": 0, …}`; anything else (another status, another ErrCode, no
//! JSON, no answer within the timeout) is retried, at most three times, `retry_interval`
//! apart (the service's interval is UNCONFIRMED).
//!
//! Deliveries can be made late, repeated or never sent, per callee in the fault script's `push`
//! list or at random by ratio, so a receiver meets what the documentation warns of: pushes
//! that fail, arrive late or out of order, or come twice.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::calls::SimulatedCall;
use crate::secret::Secret;

/// The header naming one push.
pub const UUID_HEADER: &str = "X-TCCC-PUSH-UUID";
/// Retries after the first delivery attempt, as the service documents.
pub const RETRIES: u32 = 3;

/// Where and how the stand-in pushes call records.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The receiver; `action=cdr&version=1` is appended to its query.
    pub url: reqwest::Url,
    /// HTTP Basic (user, password); `None`: no auth.
    pub basic_auth: Option<(String, Secret)>,
    /// A push is due this long after its call ended (rounded up to whole seconds).
    pub delay: Duration,
    /// Share of the pushes no fault script names that are sent `late_by` later than due.
    pub late_ratio: f64,
    pub late_by: Duration,
    /// Share of the pushes no fault script names that are delivered twice (same UUID).
    pub duplicate_ratio: f64,
    pub retry_interval: Duration,
    /// How long the receiver has to answer one attempt.
    pub timeout: Duration,
    /// Also send `EndStatus`, `AIAgentId` and `SysHangupReason`, which the readable part of
    /// the push documentation does not list (UNCONFIRMED whether the service sends them).
    pub extra_fields: bool,
}

impl PushOptions {
    /// Defaults around a receiver URL: due at the call's end, none late or repeated, retries
    /// 1 s apart, 5 s to answer.
    pub fn to(url: reqwest::Url) -> PushOptions {
        PushOptions {
            url,
            basic_auth: None,
            delay: Duration::ZERO,
            late_ratio: 0.0,
            late_by: Duration::from_secs(30),
            duplicate_ratio: 0.0,
            retry_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            extra_fields: false,
        }
    }

    /// The URL a push goes to.
    pub fn target(&self) -> reqwest::Url {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("action", "cdr")
            .append_pair("version", "1");
        url
    }
}

/// What happens to the push of one call (a fault script's `push` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushScript {
    /// Sent when due.
    OnTime,
    /// Sent this much later than due.
    Late(Duration),
    /// Sent when due and again a second later, with the same UUID.
    Twice,
    /// Never sent: only DescribeTelCdr tells.
    Never,
}

pub const PUSH_FORMS: &str = "\"on_time\", \"late:DURATION\", \"twice\" or \"never\"";

impl PushScript {
    pub fn parse(text: &str) -> Option<PushScript> {
        match text.trim() {
            "on_time" => Some(PushScript::OnTime),
            "twice" => Some(PushScript::Twice),
            "never" => Some(PushScript::Never),
            t => t
                .strip_prefix("late:")
                .and_then(|d| crate::duration::parse(d).ok())
                .map(PushScript::Late),
        }
    }

    /// The script of a push no fault script names.
    pub fn default_for(opts: &PushOptions) -> PushScript {
        if opts.duplicate_ratio > 0.0 && rand::random::<f64>() < opts.duplicate_ratio {
            return PushScript::Twice;
        }
        if opts.late_ratio > 0.0 && rand::random::<f64>() < opts.late_ratio {
            return PushScript::Late(opts.late_by);
        }
        PushScript::OnTime
    }
}

/// The push's figures, in the stand-in's stats.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushStats {
    /// Deliveries scheduled (a repeated push counts twice).
    pub scheduled: u64,
    /// POSTs sent, retries included.
    pub attempts: u64,
    /// Deliveries the receiver acknowledged with ErrCode 0.
    pub delivered: u64,
    /// Attempts that were not acknowledged.
    pub failed_attempts: u64,
    /// Deliveries given up after the last retry.
    pub gave_up: u64,
}

/// One delivery waiting for its time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    /// Unix second from which it is sent.
    pub at: i64,
    seq: u64,
    pub uuid: String,
    /// The call's index in the call book.
    pub call: usize,
}

/// Deliveries by due time.
#[derive(Default)]
pub struct PushQueue {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
}

fn whole_seconds_up(d: Duration) -> i64 {
    d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0)
}

impl PushQueue {
    /// Schedule the push of `call` (index `index`) by `script`; returns the deliveries queued.
    pub fn schedule(
        &mut self,
        index: usize,
        call: &SimulatedCall,
        script: &PushScript,
        delay: Duration,
    ) -> u64 {
        // As the call record: from the second its line is free.
        let due = call.line_free + whole_seconds_up(delay);
        let uuid = uuid::Uuid::new_v4().to_string();
        let times = match script {
            PushScript::OnTime => vec![due],
            PushScript::Late(by) => vec![due + whole_seconds_up(*by)],
            PushScript::Twice => vec![due, due + 1],
            PushScript::Never => vec![],
        };
        for at in &times {
            self.seq += 1;
            self.heap.push(Reverse(Due {
                at: *at,
                seq: self.seq,
                uuid: uuid.clone(),
                call: index,
            }));
        }
        times.len() as u64
    }

    /// Take every delivery due at `now`, earliest first.
    pub fn take_due(&mut self, now: i64) -> Vec<Due> {
        let mut out = Vec::new();
        while self.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = self.heap.pop() {
                out.push(d);
            }
        }
        out
    }
}

/// The push body of a call: the fields of the CDR push documentation (§4).
pub fn body(call: &SimulatedCall, extra_fields: bool) -> Value {
    let mut v = json!({
        "SdkAppId": call.sdk_app_id,
        "SessionId": call.session_id,
        "Caller": call.caller,
        "Callee": call.callee,
        "Direction": 1,
        "CallType": 1,
        "Duration": call.duration(),
        "SeatUser": null,
        "CallerLocation": "",
        "IVRDuration": 0,
        "RingTimestamp": call.ring,
        "AcceptTimestamp": call.accept,
        "EndedTimestamp": call.ended,
        "StartTimestamp": call.start,
        "IVRKeyPressed": [],
        "IVRKeyPressedEx": [],
        "HungUpSide": call.hung_up_side,
        "ServeParticipants": [],
        "EndStatusString": call.end_status_string,
        "QueuedTimestamp": 0,
        "PostIVRKeyPressed": [],
        "QueuedSkillGroupName": "",
        "QueuedSkillGroupId": 0,
        "RecordId": "",
        "UserRemark": "",
        "Uui": "",
    });
    if extra_fields {
        v["EndStatus"] = json!(call.end_status);
        v["AIAgentId"] = json!(call.ai_agent_id);
        v["SysHangupReason"] = json!(if call.accept > 0 {
            call.sys_hangup_reason
        } else {
            0
        });
    }
    v
}

/// Whether a receiver's answer acknowledges the push: 2xx and `{"ErrCode": 0}`.
pub fn acknowledged(status: u16, text: &str) -> bool {
    (200..300).contains(&status)
        && serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("ErrCode").and_then(Value::as_i64))
            == Some(0)
}

/// One attempt to deliver `body`: acknowledged or not.
pub async fn attempt(
    client: &reqwest::Client,
    opts: &PushOptions,
    uuid: &str,
    body: &Value,
) -> bool {
    let mut req = client
        .post(opts.target())
        .timeout(opts.timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json;charset=utf8",
        )
        .header(UUID_HEADER, uuid)
        .body(body.to_string());
    if let Some((user, password)) = &opts.basic_auth {
        req = req.basic_auth(user, Some(password.expose()));
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            acknowledged(status, &text)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_with_errcode_0_acknowledges() {
        assert!(acknowledged(200, r#"{"ErrCode":0,"ErrMsg":""}"#));
        assert!(!acknowledged(200, r#"{"ErrCode":1,"ErrMsg":"no"}"#));
        assert!(!acknowledged(200, "ok"));
        assert!(!acknowledged(200, "{}"));
        assert!(!acknowledged(500, r#"{"ErrCode":0}"#));
    }

    #[test]
    fn scripts_parse_and_the_target_carries_action_and_version() {
        assert_eq!(PushScript::parse("on_time"), Some(PushScript::OnTime));
        assert_eq!(
            PushScript::parse("late:30s"),
            Some(PushScript::Late(Duration::from_secs(30)))
        );
        assert_eq!(PushScript::parse("twice"), Some(PushScript::Twice));
        assert_eq!(PushScript::parse("never"), Some(PushScript::Never));
        assert_eq!(PushScript::parse("late"), None);
        let o = PushOptions::to(reqwest::Url::parse("http://127.0.0.1:9/v1/ccc/cdr?k=1").unwrap());
        assert_eq!(
            o.target().as_str(),
            "http://127.0.0.1:9/v1/ccc/cdr?k=1&action=cdr&version=1"
        );
    }
}
