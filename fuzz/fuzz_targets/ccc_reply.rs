//! The CreateAIAgentCall reply parser: any status and body. Never a panic; a call is reported
//! placed only for a 2xx reply with a non-empty SessionId and no error; anything unreadable is
//! in doubt (never "not sent": the request did leave), with a bounded description.
#![no_main]

use ccc_dialer::ccc::{parse_reply, CallError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (status, body) = input;
    match parse_reply(status, body) {
        Ok(placed) => {
            assert!((200..300).contains(&status), "placed on HTTP {status}");
            assert!(!placed.session_id.is_empty());
            // (Not a full JSON check: fields the parser ignores are skipped unvalidated, e.g.
            // invalid UTF-8 in an unknown field, and the call was placed all the same. An
            // escaped SessionId is not found verbatim.)
            assert!(
                String::from_utf8_lossy(body).contains(placed.session_id.as_str())
                    || body.contains(&b'\\'),
                "SessionId not from the body"
            );
        }
        Err(CallError::NotSent { .. }) => panic!("a reply means the request left"),
        Err(CallError::InDoubt { reason }) => {
            assert!(reason.len() < 512, "description of {} bytes", reason.len())
        }
        Err(CallError::Api { .. }) => {}
    }
});
