//! Signature verification, the way the service does it: the canonical request is rebuilt from
//! the request's own `SignedHeaders` list (names lowercased, values trimmed and lowercased),
//! `content-type` and `host` must be signed, the credential scope must name the timestamp's UTC
//! date and service `ccc`, and the timestamp must be within 300 s of the server's clock.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::sign;

/// Allowed clock difference between client and service.
pub const MAX_SKEW_SECS: i64 = 300;

/// A refusal: the API error code and message to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

struct Authorization<'a> {
    secret_id: &'a str,
    date: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<String>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(sign::ALGORITHM)?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        secret_id: scope.next()?,
        date: scope.next()?,
        service: scope.next()?,
        terminator: scope.next()?,
        signed_headers: signed?
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: signature?,
    };
    if scope.next().is_some() || auth.secret_id.is_empty() || auth.signature.is_empty() {
        return None;
    }
    Some(auth)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Check the request's signature. `keys` are the accepted (SecretId, SecretKey) pairs; `now` is
/// the server's clock in Unix seconds.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &[(String, Secret)],
    now: i64,
) -> Result<(), Refusal> {
    let Some(auth_value) = header(headers, "authorization") else {
        return Err(refuse(
            "AuthFailure.InvalidAuthorization",
            "Authorization header is missing",
        ));
    };
    let Some(auth) = parse_authorization(auth_value) else {
        return Err(refuse(
            "AuthFailure.InvalidAuthorization",
            "Authorization header is not TC3-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…",
        ));
    };
    let Some(timestamp) =
        header(headers, "x-tc-timestamp").and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Err(refuse(
            "AuthFailure.InvalidAuthorization",
            "X-TC-Timestamp is missing or not a number",
        ));
    };
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err(refuse(
            "AuthFailure.SignatureExpire",
            format!("signature expired: timestamp {timestamp} is more than {MAX_SKEW_SECS} s from server time {now}"),
        ));
    }
    let Some((_, key)) = keys.iter().find(|(id, _)| id == auth.secret_id) else {
        return Err(refuse(
            "AuthFailure.SecretIdNotFound",
            "the SecretId is not found",
        ));
    };
    let expected_date = sign::utc_date(timestamp)
        .map_err(|e| refuse("AuthFailure.SignatureFailure", e.to_string()))?;
    if auth.date != expected_date || auth.service != "ccc" || auth.terminator != "tc3_request" {
        return Err(refuse(
            "AuthFailure.SignatureFailure",
            "credential scope must be <UTC date of X-TC-Timestamp>/ccc/tc3_request",
        ));
    }
    if !auth.signed_headers.iter().any(|h| h == "content-type")
        || !auth.signed_headers.iter().any(|h| h == "host")
    {
        return Err(refuse(
            "AuthFailure.SignatureFailure",
            "content-type and host must be among SignedHeaders",
        ));
    }
    let mut canonical_headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let Some(value) = header(headers, name) else {
            return Err(refuse(
                "AuthFailure.SignatureFailure",
                format!("signed header {name} is not in the request"),
            ));
        };
        canonical_headers.push((name.clone(), value.trim().to_ascii_lowercase()));
    }
    let canonical = sign::canonical_request(&canonical_headers, body);
    let scope = format!("{}/{}/{}", auth.date, auth.service, auth.terminator);
    let signing_key = sign::derive_signing_key(key.expose(), auth.date, auth.service);
    let expected = sign::signature(
        &signing_key,
        &sign::string_to_sign(timestamp, &scope, &canonical),
    );
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(refuse(
            "AuthFailure.SignatureFailure",
            "the provided credentials could not be validated: check your signature",
        ))
    }
}
