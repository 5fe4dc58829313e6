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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthSetupError {
    #[error(transparent)]
    Token(#[from] CredentialsError),
    #[error("{TOKEN_VAR} is {len} characters long: expected at least {MIN_TOKEN_LEN}")]
    TooShort { len: usize },
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
    } else if !listen.ip().is_loopback() {
        return Err(AuthSetupError::OpenWithoutToken { addr: listen });
    }
    Ok(token)
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
    let Some(given) = value.strip_prefix(b"Bearer ") else {
        return false;
    };
    given.ct_eq(token.expose().as_bytes()).into()
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
    fn only_the_exact_bearer_token_is_allowed() {
        let t = Secret::new("0123456789abcdef0123");
        assert!(allows(Some(&t), Some(b"Bearer 0123456789abcdef0123")));
        assert!(!allows(Some(&t), Some(b"Bearer 0123456789abcdef012")));
        assert!(!allows(Some(&t), Some(b"Bearer 0123456789abcdef01234")));
        assert!(!allows(Some(&t), Some(b"bearer 0123456789abcdef0123")));
        assert!(!allows(Some(&t), Some(b"0123456789abcdef0123")));
        assert!(!allows(Some(&t), None));
        assert!(allows(None, None));
    }
}
