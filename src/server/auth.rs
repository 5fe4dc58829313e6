//! The API's bearer token: `CCC_DIALER_API_TOKEN` or `CCC_DIALER_API_TOKEN_FILE`. Without one
//! the service only listens on loopback. Compared in constant time, so the time a refusal
//! takes says nothing about how much of a guess was right.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

use crate::credentials::{read_secret, CredentialsError, Env};
use crate::secret::Secret;

pub const TOKEN_VAR: &str = "CCC_DIALER_API_TOKEN";
/// Shorter tokens are refused: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
/// Fewer distinct characters than this is a pattern (`aaaa…`, `abab…`), not a random token.
pub const MIN_DISTINCT_CHARS: usize = 10;
/// Words of sample and template values: a token holding one was copied from a template.
const PLACEHOLDER_WORDS: &[&str] = &["REPLACE", "CHANGE", "EXAMPLE", "PLACEHOLDER"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthSetupError {
    #[error(transparent)]
    Token(#[from] CredentialsError),
    #[error("{TOKEN_VAR} is {len} characters long: expected at least {MIN_TOKEN_LEN}")]
    TooShort { len: usize },
    #[error("{TOKEN_VAR} looks like a placeholder ({why}): expected a long random token\nhint: generate one, e.g. `head -c 32 /dev/urandom | base64`")]
    Placeholder { why: String },
    #[error("--listen {addr}: refusing to serve the API beyond loopback without a token\nhint: set {TOKEN_VAR} (or {TOKEN_VAR}_FILE), or listen on 127.0.0.1")]
    OpenWithoutToken { addr: SocketAddr },
}

/// The token from the environment (if any), checked against where the service will listen.
pub fn token_for(env: &dyn Env, listen: SocketAddr) -> Result<Option<Secret>, AuthSetupError> {
    let token = read_secret(env, TOKEN_VAR)?;
    if let Some(t) = &token {
        let len = t.expose().chars().count();
        if len < MIN_TOKEN_LEN {
            return Err(AuthSetupError::TooShort { len });
        }
        if let Some(why) = placeholder(t.expose()) {
            return Err(AuthSetupError::Placeholder { why });
        }
    } else if !listen.ip().is_loopback() {
        return Err(AuthSetupError::OpenWithoutToken { addr: listen });
    }
    Ok(token)
}

/// Why `token` looks copied from a template or typed as a pattern (never quoting it).
fn placeholder(token: &str) -> Option<String> {
    let upper = token.to_uppercase();
    if let Some(word) = PLACEHOLDER_WORDS.iter().find(|w| upper.contains(*w)) {
        return Some(format!("it contains {word:?}"));
    }
    let distinct = token
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < MIN_DISTINCT_CHARS {
        return Some(format!(
            "{distinct} distinct characters, expected at least {MIN_DISTINCT_CHARS}"
        ));
    }
    None
}

/// Whether an `Authorization` header value carries the token. With no token configured (the
/// service is on loopback) every request is allowed.
pub fn allows(token: Option<&Secret>, authorization: Option<&[u8]>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = authorization else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer`, `BEARER` are the same.
    let Some((scheme, given)) = split_scheme(value) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return false;
    }
    given.ct_eq(token.expose().as_bytes()).into()
}

/// `scheme SP+ credentials`.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(at);
    let given = rest.trim_ascii_start();
    (!scheme.is_empty() && !given.is_empty()).then_some((scheme, given))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_a_token_only_loopback_is_allowed() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(token_for(&env(&[]), lo), Ok(None));
        assert_eq!(
            token_for(&env(&[]), any),
            Err(AuthSetupError::OpenWithoutToken { addr: any })
        );
        let t = token_for(&env(&[(TOKEN_VAR, "0123456789abcdef0123")]), any).unwrap();
        assert!(t.is_some());
        assert_eq!(
            token_for(&env(&[(TOKEN_VAR, "short")]), any),
            Err(AuthSetupError::TooShort { len: 5 })
        );
    }

    #[test]
    fn placeholder_tokens_are_refused_without_being_quoted() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for (token, why) in [
            ("REPLACE-WITH-A-LONG-RANDOM-TOKEN", "\"REPLACE\""),
            ("please-change-me-0123456789", "\"CHANGE\""),
            ("an-Example-token-0123456789", "\"EXAMPLE\""),
            ("my-placeholder-xyz-0123456789", "\"PLACEHOLDER\""),
            ("aaaaaaaaaaaaaaaaaaaaaaaa", "1 distinct characters"),
            ("abcabcabcabcabcabcabc123", "6 distinct characters"),
        ] {
            let e = token_for(&env(&[(TOKEN_VAR, token)]), lo).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(why), "{token}: {text}");
            assert!(!text.contains(token), "the token is echoed: {text}");
        }
        assert!(token_for(&env(&[(TOKEN_VAR, "k7Qz2mP9xW4vB8nR1tY6")]), lo).is_ok());
    }

    #[test]
    fn only_the_exact_bearer_token_is_allowed() {
        let t = Secret::new("0123456789abcdef0123");
        assert!(allows(Some(&t), Some(b"Bearer 0123456789abcdef0123")));
        assert!(!allows(Some(&t), Some(b"Bearer 0123456789abcdef012")));
        assert!(!allows(Some(&t), Some(b"Bearer 0123456789abcdef01234")));
        assert!(allows(Some(&t), Some(b"bearer 0123456789abcdef0123")));
        assert!(allows(Some(&t), Some(b"BEARER 0123456789abcdef0123")));
        assert!(!allows(Some(&t), Some(b"Basic 0123456789abcdef0123")));
        assert!(!allows(Some(&t), Some(b"Bearer")));
        assert!(!allows(Some(&t), Some(b"Bearer ")));
        assert!(!allows(Some(&t), Some(b"0123456789abcdef0123")));
        assert!(!allows(Some(&t), None));
        assert!(allows(None, None));
    }
}
