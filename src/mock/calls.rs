//! Simulated call lives: every call the stand-in creates rings, is answered or not, talks and
//! ends, and leaves a call record (`TelCdrInfo`, shared/CCC-OUTCOMES.md §1.3) that
//! `DescribeTelCdr` returns only from `cdr_delay` after the call ended. Times are whole Unix
//! seconds from the stand-in's clock, as the service's records are: the record's end is the
//! second the call ended in (rounded down), and the record is visible from the second after
//! the line was free (rounded up), so a record visible means the call's line is already free.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

use super::lines::CallLength;
use crate::end_status;

/// What happens to one created call (a fault script's `calls` entry, or the default).
#[derive(Debug, Clone, PartialEq)]
pub enum CallScript {
    /// Answered after the ring; talks `talk` (drawn from the talk length when `None`); ends
    /// with `end_status` (1 `ok`, or e.g. 229 `maxCallDurationReached`).
    Answered {
        talk: Option<Duration>,
        end_status: i64,
    },
    /// Never answered: ends with `end_status` (202 not answered, 206 busy, …), its string from
    /// the table unless `string` names one.
    Unanswered {
        end_status: i64,
        string: Option<String>,
    },
    /// The call exists, but no record of it ever appears.
    NoRecord,
}

/// The forms of a `calls` entry, for error messages.
pub const CALL_FORMS: &str = "\"answered\", \"answered:DURATION\", \"answered:DURATION:CODE\", \
\"not_answered\", \"rejected\", \"power_off\", \"dead\", \"busy\", \"voicemail\", \"end:CODE\", \
\"end:CODE:STRING\" or \"no_record\"";

impl CallScript {
    pub fn parse(text: &str) -> Option<CallScript> {
        let text = text.trim();
        let unanswered = |end_status| {
            Some(CallScript::Unanswered {
                end_status,
                string: None,
            })
        };
        match text {
            "answered" => {
                return Some(CallScript::Answered {
                    talk: None,
                    end_status: 1,
                })
            }
            "not_answered" => return unanswered(202),
            "rejected" => return unanswered(203),
            "power_off" => return unanswered(204),
            "dead" => return unanswered(205),
            "busy" => return unanswered(206),
            "voicemail" => return unanswered(222),
            "no_record" => return Some(CallScript::NoRecord),
            _ => {}
        }
        if let Some(rest) = text.strip_prefix("answered:") {
            let (talk, code) = match rest.split_once(':') {
                Some((t, c)) => (t, c.trim().parse::<i64>().ok()?),
                None => (rest, 1),
            };
            return Some(CallScript::Answered {
                talk: Some(crate::duration::parse(talk).ok()?),
                end_status: code,
            });
        }
        if let Some(rest) = text.strip_prefix("end:") {
            let (code, string) = match rest.split_once(':') {
                Some((c, s)) if !s.trim().is_empty() => (c, Some(s.trim().to_string())),
                Some(_) => return None,
                None => (rest, None),
            };
            return Some(CallScript::Unanswered {
                end_status: code.trim().parse().ok()?,
                string,
            });
        }
        None
    }

    /// The script of a call no fault script names: answered with probability `answer_ratio`,
    /// otherwise not answered (60 %), busy (20 %), rejected (10 %) or a dead number (10 %).
    pub fn default_for(answer_ratio: f64) -> CallScript {
        if answer_ratio >= 1.0 || rand::random::<f64>() < answer_ratio {
            return CallScript::Answered {
                talk: None,
                end_status: 1,
            };
        }
        let end_status = match rand::random::<f64>() {
            x if x < 0.6 => 202,
            x if x < 0.8 => 206,
            x if x < 0.9 => 203,
            _ => 205,
        };
        CallScript::Unanswered {
            end_status,
            string: None,
        }
    }
}

/// Who and what a created call is, from the CreateAIAgentCall request.
#[derive(Debug, Clone)]
pub struct Placed {
    pub session_id: String,
    pub sdk_app_id: i64,
    pub ai_agent_id: i64,
    pub caller: String,
    pub callee: String,
}

/// One simulated call, with the record the service would keep of it.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedCall {
    pub session_id: String,
    pub sdk_app_id: i64,
    pub ai_agent_id: i64,
    pub caller: String,
    pub callee: String,
    /// Unix seconds: created; started ringing (0: never rang); answered (0: not answered); ended.
    pub start: i64,
    pub ring: i64,
    pub accept: i64,
    pub ended: i64,
    pub end_status: i64,
    pub end_status_string: String,
    pub hung_up_side: &'static str,
    pub sys_hangup_reason: i64,
    /// The Unix second from which DescribeTelCdr returns the record (and its push is due, with
    /// the push's own delay); `None`: never. Never before `line_free`.
    pub visible_at: Option<i64>,
    /// The first whole Unix second at which the call no longer holds its agent's line (its
    /// real end rounded up; `ended` is rounded down).
    pub line_free: i64,
    /// How long the call holds its agent's line (ring and talk before rounding to seconds).
    #[serde(skip)]
    pub held: Duration,
    /// Post-call tags (answered calls), for DescribeAICallExtractResult.
    #[serde(skip)]
    pub tags: super::extract::Tags,
    /// Summary, mood, intention (answered calls), for DescribeAIAnalysisResult.
    #[serde(skip)]
    pub analysis: super::analysis::Items,
}

/// The caller number when the request names none.
pub const DEFAULT_CALLER: &str = "008675536000000";
/// The stand-in's name for every agent.
pub const AGENT_NAME: &str = "stand-in agent";

fn whole_seconds(d: Duration) -> i64 {
    d.as_secs_f64().round() as i64
}

impl SimulatedCall {
    /// Live the call out: created in the Unix second `start` (the record's `StartTimestamp`),
    /// at `start_ms` (Unix milliseconds, no earlier than the real moment: the line's end is
    /// counted from it), ring and talk drawn from `length` unless the script fixes them;
    /// visible `cdr_delay` (rounded up to whole seconds) after its line is free (the end
    /// rounded up to a whole second).
    pub fn live(
        placed: Placed,
        script: &CallScript,
        length: &CallLength,
        (start, start_ms): (i64, i64),
        cdr_delay: Duration,
    ) -> SimulatedCall {
        // The second a call `held` long from the start ends in (down) and is over by (up).
        let end_ms = |held: Duration| {
            let ms = held.as_nanos().div_ceil(1_000_000);
            start_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX / 2))
        };
        let down = |held: Duration| end_ms(held).div_euclid(1000).max(start);
        let up = |held: Duration| (end_ms(held) + 999).div_euclid(1000).max(start);
        let ring_drawn = length.ring.draw();
        let ring_for = whole_seconds(ring_drawn);
        let (held, ring, accept, ended, end_status, string, side, reason) = match script {
            CallScript::Answered { talk, end_status } => {
                let talk = talk.unwrap_or_else(|| length.talk.draw());
                let accept = start + ring_for;
                let held = ring_drawn + talk;
                (
                    held,
                    start,
                    accept,
                    down(held).max(accept),
                    *end_status,
                    end_status::string_of(*end_status).to_string(),
                    "user",
                    1010,
                )
            }
            CallScript::Unanswered { end_status, string } => {
                let string = string
                    .clone()
                    .unwrap_or_else(|| end_status::string_of(*end_status).to_string());
                let side = if *end_status == 203 { "user" } else { "system" };
                if end_status::rang(*end_status) {
                    let ended = down(ring_drawn);
                    (ring_drawn, start, 0, ended, *end_status, string, side, 0)
                } else {
                    (Duration::ZERO, 0, 0, start, *end_status, string, side, 0)
                }
            }
            CallScript::NoRecord => {
                let string = end_status::string_of(202).to_string();
                (
                    ring_drawn,
                    start,
                    0,
                    down(ring_drawn),
                    202,
                    string,
                    "system",
                    0,
                )
            }
        };
        let line_free = if held.is_zero() { ended } else { up(held) };
        let delay = cdr_delay.as_secs() as i64 + i64::from(cdr_delay.subsec_nanos() > 0);
        SimulatedCall {
            session_id: placed.session_id,
            sdk_app_id: placed.sdk_app_id,
            ai_agent_id: placed.ai_agent_id,
            caller: placed.caller,
            callee: placed.callee,
            start,
            ring,
            accept,
            ended,
            end_status,
            end_status_string: string,
            hung_up_side: side,
            sys_hangup_reason: reason,
            visible_at: (!matches!(script, CallScript::NoRecord)).then_some(line_free + delay),
            line_free,
            held,
            tags: Vec::new(),
            analysis: Vec::new(),
        }
    }

    /// Talk time in seconds: `EndedTimestamp - AcceptTimestamp`, 0 when not answered.
    pub fn duration(&self) -> i64 {
        if self.accept > 0 {
            self.ended - self.accept
        } else {
            0
        }
    }

    pub fn visible(&self, now: i64) -> bool {
        self.visible_at.is_some_and(|t| now >= t)
    }

    /// The record as DescribeTelCdr returns it (`TelCdrInfo`, every field of the SDK model).
    pub fn tel_cdr_info(&self) -> Value {
        let (reason, reason_string) = if self.accept > 0 {
            (self.sys_hangup_reason, "userHangupDuringAIAgent")
        } else {
            (0, "")
        };
        // Two halves: one json! of every field is past the macro's recursion limit.
        let mut record = json!({
            "Caller": self.caller,
            "Callee": self.callee,
            "Time": self.start,
            "Direction": 1,
            "CallType": 1,
            "Duration": self.duration(),
            "RecordURL": "",
            "RecordId": "",
            "SeatUser": null,
            "EndStatus": self.end_status,
            "SkillGroup": "",
            "CallerLocation": "",
            "IVRDuration": 0,
            "RingTimestamp": self.ring,
            "AcceptTimestamp": self.accept,
            "EndedTimestamp": self.ended,
            "IVRKeyPressed": [],
            "IVRKeyPressedEx": [],
            "HungUpSide": self.hung_up_side,
            "ServeParticipants": [],
            "SkillGroupId": 0,
            "EndStatusString": self.end_status_string,
            "StartTimestamp": self.start,
        });
        let rest = json!({
            "QueuedTimestamp": 0,
            "PostIVRKeyPressed": [],
            "PostIVRKeyPressedEx": [],
            "QueuedSkillGroupId": 0,
            "SessionId": self.session_id,
            "ProtectedCaller": "",
            "ProtectedCallee": "",
            "Uui": "",
            "UUI": "",
            "AsrUrl": "",
            "AsrStatus": "NotExists",
            "CustomRecordURL": "",
            "Remark": "",
            "QueuedSkillGroupName": "",
            "VoicemailRecordURL": [],
            "VoicemailAsrURL": [],
            "AIAgentId": self.ai_agent_id,
            "AIAgentName": AGENT_NAME,
            "SysHangupReason": reason,
            "SysHangupReasonString": reason_string,
        });
        if let (Some(all), Value::Object(rest)) = (record.as_object_mut(), rest) {
            all.extend(rest);
        }
        record
    }
}

/// Every call the stand-in created, in creation order.
#[derive(Default)]
pub struct CallBook {
    calls: Vec<SimulatedCall>,
    by_session: HashMap<String, usize>,
    created_by_callee: HashMap<String, usize>,
}

impl CallBook {
    /// How many calls were created for `callee` so far (the index of its next call's script).
    pub fn created_for(&self, callee: &str) -> usize {
        self.created_by_callee.get(callee).copied().unwrap_or(0)
    }

    pub fn add(&mut self, call: SimulatedCall) -> usize {
        *self
            .created_by_callee
            .entry(call.callee.clone())
            .or_default() += 1;
        let index = self.calls.len();
        self.by_session.insert(call.session_id.clone(), index);
        self.calls.push(call);
        index
    }

    pub fn all(&self) -> &[SimulatedCall] {
        &self.calls
    }

    pub fn get(&self, index: usize) -> Option<&SimulatedCall> {
        self.calls.get(index)
    }

    pub fn index_of(&self, session_id: &str) -> Option<usize> {
        self.by_session.get(session_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Length;

    fn placed() -> Placed {
        Placed {
            session_id: "s1".into(),
            sdk_app_id: 1400000000,
            ai_agent_id: 15,
            caller: DEFAULT_CALLER.into(),
            callee: "008613800138000".into(),
        }
    }

    fn length(ring: u64, talk: u64) -> CallLength {
        CallLength {
            ring: Length::Fixed(Duration::from_secs(ring)),
            talk: Length::Fixed(Duration::from_secs(talk)),
        }
    }

    #[test]
    fn an_answered_call_rings_talks_and_is_visible_after_the_delay() {
        let script = CallScript::Answered {
            talk: None,
            end_status: 1,
        };
        let c = SimulatedCall::live(
            placed(),
            &script,
            &length(3, 20),
            (1000, 1_000_000),
            Duration::from_millis(1500),
        );
        assert_eq!(
            (c.start, c.ring, c.accept, c.ended),
            (1000, 1000, 1003, 1023)
        );
        assert_eq!(c.duration(), 20);
        assert_eq!(c.held, Duration::from_secs(23));
        // 1.5 s rounds up to 2 s.
        assert_eq!(c.visible_at, Some(1025));
        assert!(!c.visible(1024) && c.visible(1025));
        let r = c.tel_cdr_info();
        assert_eq!(r["EndStatus"], 1);
        assert_eq!(r["EndStatusString"], "ok");
        assert_eq!(r["Duration"], 20);
        assert_eq!(r["Direction"], 1);
        assert_eq!(r["AIAgentId"], 15);
        assert_eq!(r["HungUpSide"], "user");
        assert_eq!(r["SysHangupReason"], 1010);
    }

    #[test]
    fn unanswered_calls_ring_or_not_by_their_code_and_no_record_never_shows() {
        let l = length(10, 20);
        let un = |code| CallScript::Unanswered {
            end_status: code,
            string: None,
        };
        let c = SimulatedCall::live(placed(), &un(202), &l, (1000, 1_000_000), Duration::ZERO);
        assert_eq!(
            (c.ring, c.accept, c.ended, c.duration()),
            (1000, 0, 1010, 0)
        );
        assert_eq!(c.visible_at, Some(1010));
        let c = SimulatedCall::live(placed(), &un(206), &l, (1000, 1_000_000), Duration::ZERO);
        assert_eq!((c.ring, c.accept, c.ended), (0, 0, 1000));
        assert_eq!(c.tel_cdr_info()["EndStatusString"], "busy");
        assert_eq!(c.tel_cdr_info()["SysHangupReason"], 0);
        let c = SimulatedCall::live(placed(), &un(299), &l, (1000, 1_000_000), Duration::ZERO);
        assert_eq!(c.tel_cdr_info()["EndStatusString"], "unknown");
        let c = SimulatedCall::live(
            placed(),
            &CallScript::NoRecord,
            &l,
            (1000, 1_000_000),
            Duration::ZERO,
        );
        assert_eq!(c.visible_at, None);
        assert!(!c.visible(i64::MAX));
    }

    #[test]
    fn the_default_script_follows_the_answer_ratio() {
        assert!(
            (0..100).all(|_| matches!(CallScript::default_for(1.0), CallScript::Answered { .. }))
        );
        assert!((0..100).all(|_| matches!(
            CallScript::default_for(0.0),
            CallScript::Unanswered {
                end_status: 202 | 203 | 205 | 206,
                ..
            }
        )));
    }
}
