//! The envelope every query action's reply shares (DescribeTelCdr,
//! DescribeAICallExtractResult, DescribeAIAnalysisResult): `{"Response": {"Error": {"Code",
//! "Message"}, "RequestId", …the action's fields}}`. Pure.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::ccc::CallError;

/// A reply's own fields (`T`) and its `RequestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T> {
    pub fields: T,
    pub request_id: String,
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Envelope<T> {
    #[serde(rename = "Response")]
    response: Inner<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", bound = "T: DeserializeOwned")]
struct Inner<T> {
    error: Option<ApiError>,
    #[serde(default)]
    request_id: String,
    #[serde(flatten)]
    fields: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

/// Read a reply of `action` (HTTP `status`): its fields, an API error as [`CallError::Api`],
/// or a body that is not such a reply (or a non-2xx status without an error code) as
/// [`CallError::InDoubt`] (for a query that only means "ask again").
pub fn read<T: DeserializeOwned>(
    action: &str,
    status: u16,
    body: &[u8],
) -> Result<Reply<T>, CallError> {
    let bad = |why: String| CallError::InDoubt {
        reason: format!("HTTP {status}: not a {action} reply ({why})"),
    };
    let env: Envelope<T> = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let r = env.response;
    if let Some(e) = r.error {
        return Err(CallError::Api {
            code: e.code,
            message: e.message,
            request_id: r.request_id,
        });
    }
    if !(200..300).contains(&status) {
        return Err(bad("no error code".into()));
    }
    Ok(Reply {
        fields: r.fields,
        request_id: r.request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "PascalCase")]
    struct Fields {
        total_count: Option<u64>,
    }

    #[test]
    fn a_reply_gives_its_fields_an_error_its_code_and_anything_else_is_in_doubt() {
        let ok = br#"{"Response":{"TotalCount":3,"RequestId":"r-1"}}"#;
        let r = read::<Fields>("X", 200, ok).unwrap();
        assert_eq!(
            (r.fields.total_count, r.request_id.as_str()),
            (Some(3), "r-1")
        );

        let err = br#"{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"slow"},"RequestId":"r-2"}}"#;
        match read::<Fields>("X", 200, err) {
            Err(CallError::Api {
                code,
                message,
                request_id,
            }) => assert_eq!(
                (code.as_str(), message.as_str(), request_id.as_str()),
                ("RequestLimitExceeded", "slow", "r-2")
            ),
            other => panic!("{other:?}"),
        }
        // An error code on a 5xx is still the API's error.
        assert!(matches!(
            read::<Fields>("X", 503, err),
            Err(CallError::Api { .. })
        ));
        // A 5xx without one, and a body that is no reply, name the action.
        for (status, body) in [(502, &ok[..]), (200, &b"<html>"[..])] {
            match read::<Fields>("DescribeTelCdr", status, body) {
                Err(CallError::InDoubt { reason }) => {
                    assert!(reason.contains("not a DescribeTelCdr reply"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
