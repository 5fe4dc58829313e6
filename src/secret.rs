//! A string that must never be printed: `Debug` and `Display` show `***`.
//!
//! Secrets (API keys, session tokens, the service's bearer token) live in this type from the
//! moment they are read until they are used, so a stray `{:?}` in a log line cannot leak them.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is used (signing, comparing), never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE");
    }
}
