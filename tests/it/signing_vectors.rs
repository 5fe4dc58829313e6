//! The signer reproduces, byte for byte, what the official Tencent Cloud Python SDK produced.

use ccc_dialer::secret::Secret;
use ccc_dialer::sign::{sign, Credentials, SignRequest};
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::support::data_path;

#[derive(Deserialize)]
struct Vector {
    name: String,
    secret_id: String,
    secret_key: String,
    session_token: Option<String>,
    service: String,
    action: String,
    version: String,
    region: String,
    timestamp: i64,
    host: String,
    body: String,
    canonical_request: String,
    headers: BTreeMap<String, String>,
    authorization: String,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(data_path("tc3-create-ai-agent-call.json"))
        .expect("vector file is part of the repository");
    serde_json::from_str(&text).expect("vector file is valid JSON")
}

#[test]
fn signer_reproduces_every_official_sdk_vector() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 4, "all shared vectors are present");
    for v in vectors {
        let creds = Credentials {
            secret_id: v.secret_id.clone(),
            secret_key: Secret::new(v.secret_key.clone()),
            session_token: v.session_token.clone().map(Secret::new),
        };
        let signed = sign(
            &creds,
            &SignRequest {
                host: &v.host,
                service: &v.service,
                action: &v.action,
                version: &v.version,
                region: Some(v.region.as_str()),
                language: Some("zh-CN"),
                payload: v.body.as_bytes(),
                timestamp: v.timestamp,
            },
        )
        .expect("vector timestamps are valid");
        assert_eq!(signed.canonical_request, v.canonical_request, "{}", v.name);
        assert_eq!(signed.authorization, v.authorization, "{}", v.name);
        let produced: BTreeMap<String, String> = signed
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(
            produced, v.headers,
            "{}: every header, no more, no less",
            v.name
        );
    }
}

#[test]
fn region_header_is_sent_only_when_configured_and_token_only_for_temporary_credentials() {
    let creds = Credentials {
        secret_id: "AKIDEXAMPLE".into(),
        secret_key: Secret::new("key"),
        session_token: None,
    };
    let req = SignRequest {
        host: "ccc.tencentcloudapi.com",
        service: "ccc",
        action: "CreateAIAgentCall",
        version: "2020-02-10",
        region: Some(""),
        language: None,
        payload: b"{}",
        timestamp: 1_732_456_800,
    };
    let signed = sign(&creds, &req).unwrap();
    assert!(signed.header("X-TC-Region").is_none());
    assert!(signed.header("X-TC-Token").is_none());
    assert!(signed.header("X-TC-Language").is_none());
    let signed = sign(
        &creds,
        &SignRequest {
            region: Some("ap-guangzhou"),
            ..req.clone()
        },
    )
    .unwrap();
    assert_eq!(signed.header("X-TC-Region"), Some("ap-guangzhou"));
}

#[test]
fn debug_output_of_signed_headers_hides_the_session_token() {
    let creds = Credentials {
        secret_id: "AKIDEXAMPLE".into(),
        secret_key: Secret::new("key-that-must-not-print"),
        session_token: Some(Secret::new("session-token-that-must-not-print")),
    };
    let signed = sign(
        &creds,
        &SignRequest {
            host: "ccc.tencentcloudapi.com",
            service: "ccc",
            action: "CreateAIAgentCall",
            version: "2020-02-10",
            region: None,
            language: None,
            payload: b"{}",
            timestamp: 1_732_456_800,
        },
    )
    .unwrap();
    // The token is sent (temporary credentials need it) but never printed.
    assert_eq!(
        signed.header("X-TC-Token"),
        Some("session-token-that-must-not-print")
    );
    let shown = format!("{signed:?}");
    assert!(
        !shown.contains("session-token-that-must-not-print"),
        "{shown}"
    );
    assert!(!shown.contains("key-that-must-not-print"), "{shown}");
    assert!(shown.contains("(\"X-TC-Token\", \"***\")"), "{shown}");
}
