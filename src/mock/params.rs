//! Request body checks, with the service's parameter error codes.
//!
//! As Tencent Cloud API 3.0 does, a body field the action does not define is refused with
//! `UnknownParameter`: the fields are exactly those of the official SDK's
//! `CreateAIAgentCallRequest` model (shared/CCC-API.md), so a request shape the service would
//! refuse for every contact is refused here too.

use serde_json::{Map, Value};

use super::verify::Refusal;

/// The fields CreateAIAgentCall defines (the only action this stand-in serves).
const KNOWN: [&str; 7] = [
    "SdkAppId",
    "AIAgentId",
    "Callee",
    "Callers",
    "Variables",
    "MaxRingTimeoutSecond",
    "PromptVariables",
];

pub(super) fn bad(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn integer(obj: &Map<String, Value>, key: &str, required: bool) -> Result<Option<u64>, Refusal> {
    match obj.get(key) {
        None if required => Err(bad(
            "MissingParameter",
            format!("the parameter `{key}` is missing"),
        )),
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            bad(
                "InvalidParameter",
                format!("`{key}` must be an unsigned integer"),
            )
        }),
    }
}

fn string_array(obj: &Map<String, Value>, key: &str) -> Result<(), Refusal> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(bad(
            "InvalidParameter",
            format!("`{key}` must be an array of strings"),
        )),
    }
}

fn key_values(obj: &Map<String, Value>, key: &str) -> Result<(), Refusal> {
    let Some(v) = obj.get(key) else {
        return Ok(());
    };
    let ok = v.as_array().is_some_and(|items| {
        items.iter().all(|item| {
            item.as_object().is_some_and(|kv| {
                kv.len() == 2
                    && kv.get("Key").is_some_and(Value::is_string)
                    && kv.get("Value").is_some_and(Value::is_string)
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(bad(
            "InvalidParameter",
            format!("`{key}` must be an array of {{\"Key\": string, \"Value\": string}}"),
        ))
    }
}

/// Check a CreateAIAgentCall body; returns the parsed body and its callee.
pub fn check(body: &[u8]) -> Result<(Value, String), Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "InvalidParameter",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(bad(
            "InvalidParameter",
            "the request body must be a JSON object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            "UnknownParameter",
            format!("the parameter `{unknown}` is not recognized"),
        ));
    }
    integer(obj, "SdkAppId", true)?;
    integer(obj, "AIAgentId", true)?;
    let callee = match obj.get("Callee") {
        None => return Err(bad("MissingParameter", "the parameter `Callee` is missing")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            return Err(bad(
                "InvalidParameter",
                "`Callee` must be a non-empty string",
            ))
        }
    };
    string_array(obj, "Callers")?;
    key_values(obj, "Variables")?;
    key_values(obj, "PromptVariables")?;
    integer(obj, "MaxRingTimeoutSecond", false)?;
    Ok((value, callee))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        check(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn malformed_bodies_get_parameter_codes() {
        assert_eq!(code("{"), "InvalidParameter");
        assert_eq!(code("[]"), "InvalidParameter");
        assert_eq!(code(r#"{"AIAgentId":1,"Callee":"1"}"#), "MissingParameter");
        assert_eq!(
            code(r#"{"SdkAppId":"x","AIAgentId":1,"Callee":"1"}"#),
            "InvalidParameter"
        );
        assert_eq!(code(r#"{"SdkAppId":1,"AIAgentId":1}"#), "MissingParameter");
        assert_eq!(
            code(r#"{"SdkAppId":1,"AIAgentId":1,"Callee":"1","Foo":1}"#),
            "UnknownParameter"
        );
        assert_eq!(
            code(r#"{"SdkAppId":1,"AIAgentId":1,"Callee":"1","Variables":[{"Key":"a"}]}"#),
            "InvalidParameter"
        );
        // A field of the sibling action CreateAICall, not of CreateAIAgentCall.
        assert_eq!(
            code(r#"{"SdkAppId":1,"AIAgentId":1,"Callee":"1","AcquireTimeoutSecond":5}"#),
            "UnknownParameter"
        );
        let (_, callee) = check(br#"{"SdkAppId":1,"AIAgentId":1,"Callee":"0086","Callers":["1"],"Variables":[{"Key":"a","Value":"b"}]}"#).unwrap();
        assert_eq!(callee, "0086");
    }
}
