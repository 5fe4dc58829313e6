//! TC3-HMAC-SHA256 request signing, exactly as the official Tencent Cloud SDKs sign a JSON POST.
//!
//! Pure: every input (including the timestamp) is an argument; nothing here reads the clock, the
//! environment or the network. The stand-in's verifier reuses [`derive_signing_key`],
//! [`string_to_sign`] and [`hex_sha256`] so client and server cannot drift apart.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
pub const CONTENT_TYPE: &str = "application/json";

/// API credentials. The key and the optional session token never print.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: Secret,
    /// Present for temporary credentials; sent as `X-TC-Token`.
    pub session_token: Option<Secret>,
}

/// What one request is signed over.
#[derive(Clone, Debug)]
pub struct SignRequest<'a> {
    pub host: &'a str,
    pub service: &'a str,
    pub action: &'a str,
    pub version: &'a str,
    /// Sent as `X-TC-Region` only when non-empty.
    pub region: Option<&'a str>,
    /// Sent as `X-TC-Language` when set (the SDKs send `zh-CN` by default).
    pub language: Option<&'a str>,
    pub payload: &'a [u8],
    /// Unix seconds.
    pub timestamp: i64,
}

/// The headers to send, in the order the SDK builds them, plus the intermediate canonical request
/// (kept for tests and diagnostics; it holds no secret).
///
/// The headers carry the session token (`X-TC-Token`) of temporary credentials, so `Debug`
/// prints that value as `***`.
#[derive(Clone)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    pub canonical_request: String,
    pub authorization: String,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if name.eq_ignore_ascii_case("X-TC-Token") {
                    (*name, "***")
                } else {
                    (*name, value.as_str())
                }
            })
            .collect();
        f.debug_struct("Signed")
            .field("headers", &headers)
            .field("canonical_request", &self.canonical_request)
            .field("authorization", &self.authorization)
            .finish()
    }
}

impl Signed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("timestamp {0} is outside the range a date can be computed for")]
    BadTimestamp(i64),
}

/// The timestamp's UTC date as `YYYY-MM-DD`, the date used in the credential scope.
pub fn utc_date(timestamp: i64) -> Result<String, SignError> {
    jiff::Timestamp::from_second(timestamp)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .map_err(|_| SignError::BadTimestamp(timestamp))
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 accepts any key length"),
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The signing key: HMAC chain from `"TC3" + SecretKey` over date, service, `tc3_request`.
pub fn derive_signing_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    hmac_sha256(&k_service, b"tc3_request")
}

pub fn string_to_sign(timestamp: i64, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Canonical request for a POST to `/` with an empty query string.
/// `canonical_headers` are `(lowercase name, trimmed lowercase value)` in signing order.
pub fn canonical_request(canonical_headers: &[(String, String)], payload: &[u8]) -> String {
    let mut headers = String::new();
    for (name, value) in canonical_headers {
        headers.push_str(name);
        headers.push(':');
        headers.push_str(value);
        headers.push('\n');
    }
    let signed: Vec<&str> = canonical_headers.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        "POST\n/\n\n{headers}\n{}\n{}",
        signed.join(";"),
        hex_sha256(payload)
    )
}

/// Sign one JSON POST. Pure: same inputs, same headers.
pub fn sign(creds: &Credentials, req: &SignRequest<'_>) -> Result<Signed, SignError> {
    let date = utc_date(req.timestamp)?;
    let canonical_headers = vec![
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
        ("host".to_string(), req.host.to_ascii_lowercase()),
    ];
    let canonical = canonical_request(&canonical_headers, req.payload);
    let scope = format!("{date}/{}/tc3_request", req.service);
    let key = derive_signing_key(creds.secret_key.expose(), &date, req.service);
    let sig = signature(&key, &string_to_sign(req.timestamp, &scope, &canonical));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders=content-type;host, Signature={sig}",
        creds.secret_id
    );

    let mut headers: Vec<(&'static str, String)> = vec![
        ("Content-Type", CONTENT_TYPE.to_string()),
        ("Host", req.host.to_string()),
        ("X-TC-Action", req.action.to_string()),
        ("X-TC-Timestamp", req.timestamp.to_string()),
        ("X-TC-Version", req.version.to_string()),
    ];
    if let Some(region) = req.region.filter(|r| !r.is_empty()) {
        headers.push(("X-TC-Region", region.to_string()));
    }
    if let Some(token) = &creds.session_token {
        headers.push(("X-TC-Token", token.expose().to_string()));
    }
    if let Some(lang) = req.language.filter(|l| !l.is_empty()) {
        headers.push(("X-TC-Language", lang.to_string()));
    }
    headers.push(("Authorization", authorization.clone()));
    Ok(Signed {
        headers,
        canonical_request: canonical,
        authorization,
    })
}
