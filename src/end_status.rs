//! The service's call end statuses: the `EndStatus` ↔ `EndStatusString` pairs of
//! shared/CCC-OUTCOMES.md §1.4 (the SDK's field comment and the status-code page). The stand-in
//! writes its records with them (a code outside the table gets `"unknown"`), and the push
//! receiver reads a push's `EndStatusString` back into a code (the documented push fields carry
//! no numeric `EndStatus`).

/// (EndStatus, EndStatusString).
const TABLE: &[(i64, &str)] = &[
    (1, "ok"),
    (17, "seatGiveUp"),
    (100, "blackList"),
    (102, "ivrGiveUp"),
    (103, "waitingGiveUp"),
    (104, "ringingGiveUp"),
    (105, "noSeatOnline"),
    (106, "notWorkTime"),
    (107, "ivrEnd"),
    (108, "restrictedCallee"),
    (109, "tooManyRequest"),
    (110, "restrictedArea"),
    (111, "restrictedTime"),
    (202, "notAnswer"),
    (203, "userReject"),
    (204, "powerOff"),
    (205, "numberNotExist"),
    (206, "busy"),
    (207, "outOfCredit"),
    (208, "operatorError"),
    (209, "callerCancel"),
    (210, "notInService"),
    (211, "clientError"),
    (212, "carrierBlocked"),
    (213, "callReminder"),
    (215, "numberInvalid"),
    (216, "callRestricted"),
    (217, "calleeRestricted"),
    (218, "areaRestricted"),
    (219, "promptCallForwarding"),
    (220, "callerCancelWhileRing"),
    (221, "callerCancelWithoutRing"),
    (222, "voiceMailReached"),
    (225, "asrError"),
    (226, "llmasrError"),
    (227, "ttsError"),
    (228, "functionCallHangup"),
    (229, "maxCallDurationReached"),
    (230, "userInactivity"),
    (231, "callTerminatedByAPI"),
    (232, "userHangupDuringAiCall"),
    (233, "aiAgentEndCall"),
    (501, "callConflict"),
    (502, "clientTimeout"),
    (503, "voipClientError"),
];

/// The `EndStatusString` of `code`; `"unknown"` for a code outside the table.
pub fn string_of(code: i64) -> &'static str {
    TABLE
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, s)| s)
}

/// The `EndStatus` of `string`, if the table has it (`"unknown"` and strings outside the table:
/// `None`, kept raw by the caller).
pub fn code_of(string: &str) -> Option<i64> {
    TABLE.iter().find(|(_, s)| *s == string).map(|(c, _)| *c)
}

/// Whether a call that ended with `code` without being answered rang first (its record has a
/// `RingTimestamp`): not answered, rejected, cancelled while ringing, voicemail.
pub fn rang(code: i64) -> bool {
    matches!(code, 202 | 203 | 220 | 222)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_pair_with_their_strings_and_others_are_unknown() {
        assert_eq!(string_of(1), "ok");
        assert_eq!(string_of(202), "notAnswer");
        assert_eq!(string_of(222), "voiceMailReached");
        assert_eq!(string_of(299), "unknown");
        assert_eq!(code_of("busy"), Some(206));
        assert_eq!(code_of("unknown"), None);
        assert_eq!(code_of("unconnected"), None);
        // One string per code.
        for (i, (c, s)) in TABLE.iter().enumerate() {
            assert!(TABLE[i + 1..].iter().all(|(c2, s2)| c2 != c && s2 != s));
        }
    }
}
