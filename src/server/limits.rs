//! The `[server]` table: what one HTTP client may hold of `serve` before and while it is
//! authenticated (header and body read timeouts, the connection cap). [`crate::config`]
//! composes it; this module owns the keys and their ranges.
//!
//! The defaults leave a slowloris nothing to exhaust: headers must arrive within 10 s (also
//! the longest a kept-alive connection waits for its next request), a body within 120 s, and
//! at the cap of 256 connections the oldest one not serving a request is closed to make room
//! (see [`super::listener`]).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    header_timeout: String,
    body_timeout: String,
    max_connections: i64,
    metrics_refresh: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            header_timeout: "10s".into(),
            body_timeout: "120s".into(),
            max_connections: 256,
            metrics_refresh: "5s".into(),
        }
    }
}

/// Validated `[server]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time for a request's headers to arrive, counted from the end of the previous response on
    /// a kept-alive connection (so also its idle timeout).
    pub header_timeout: Duration,
    /// Time for a request's whole body to arrive once its headers have.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// `/metrics` counts contacts in the store at most this often; scrapes in between are
    /// answered from memory (a count over a million rows costs the store's one thread ~60 ms).
    pub metrics_refresh: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
            max_connections: 256,
            metrics_refresh: Duration::from_secs(5),
        }
    }
}

/// One refused value: key, value as written, what was expected.
pub(crate) type Invalid = (String, String, String);

pub(crate) fn validate(raw: &RawServer) -> Result<ServerLimits, Invalid> {
    let duration = |key: &str, text: &str, max: Duration, max_text: &str| {
        let bad = |why: String| (format!("server.{key}"), format!("{text:?}"), why);
        let d = crate::duration::parse(text).map_err(bad)?;
        if d.is_zero() || d > max {
            return Err(bad(format!("a positive duration of at most {max_text}")));
        }
        Ok(d)
    };
    let header_timeout = duration(
        "header_timeout",
        &raw.header_timeout,
        Duration::from_secs(300),
        "5m",
    )?;
    let body_timeout = duration(
        "body_timeout",
        &raw.body_timeout,
        Duration::from_secs(3600),
        "1h",
    )?;
    let max_connections = match raw.max_connections {
        n @ 1..=65_536 => n as usize,
        n => {
            return Err((
                "server.max_connections".into(),
                n.to_string(),
                "an integer from 1 to 65536".into(),
            ))
        }
    };
    let metrics_refresh = duration(
        "metrics_refresh",
        &raw.metrics_refresh,
        Duration::from_secs(3600),
        "1h",
    )?;
    Ok(ServerLimits {
        header_timeout,
        body_timeout,
        max_connections,
        metrics_refresh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerLimits, Invalid> {
        validate(&toml::from_str::<RawServer>(text).unwrap())
    }

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(parse(""), Ok(ServerLimits::default()));
        let l = parse("header_timeout = \"2s\"\nbody_timeout = \"5m\"\nmax_connections = 10\n")
            .unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.body_timeout, Duration::from_secs(300));
        assert_eq!(l.max_connections, 10);
        let (key, value, expected) = parse("header_timeout = \"0s\"").unwrap_err();
        assert_eq!(
            (key.as_str(), value.as_str(), expected.as_str()),
            (
                "server.header_timeout",
                "\"0s\"",
                "a positive duration of at most 5m"
            )
        );
        let (key, _, _) = parse("body_timeout = \"2h\"").unwrap_err();
        assert_eq!(key, "server.body_timeout");
        let (key, value, _) = parse("max_connections = 0").unwrap_err();
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("server.max_connections", "0")
        );
    }
}
