//! The wall clock and instants as text, through jiff (the one time library of the crate).
//!
//! Every instant the store keeps is Unix milliseconds (or seconds); these are the few shapes
//! they are shown in: RFC 3339 in UTC for files and the API, "… UTC" for a person's terminal,
//! the HTTP `Date` form for the stand-in. An instant outside jiff's range (years -9999..=9999)
//! prints as the empty string: it can only come from a damaged store, and a blank is safer to
//! show than a panic.

use jiff::fmt::rfc2822::{DateTimeParser, DateTimePrinter};
use jiff::Timestamp;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Now, in whole seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

fn from_ms(ms: i64, format: &str) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_default()
}

/// `ms` as RFC 3339 in UTC with milliseconds: `2026-11-29T15:30:00.123Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    from_ms(ms, "%Y-%m-%dT%H:%M:%S%.3fZ")
}

/// `ms` as RFC 3339 in UTC to the second: `2026-11-29T15:30:00Z`.
pub fn rfc3339_seconds(ms: i64) -> String {
    from_ms(ms, "%Y-%m-%dT%H:%M:%SZ")
}

/// `ms` for a person reading a terminal: `2026-11-29 15:30:00 UTC`.
pub fn utc_text(ms: i64) -> String {
    from_ms(ms, "%Y-%m-%d %H:%M:%S UTC")
}

/// `secs` (Unix seconds) as an HTTP `Date` header: `Sun, 29 Nov 2026 15:30:00 GMT`.
pub fn http_date(secs: i64) -> Option<String> {
    let t = Timestamp::from_second(secs).ok()?;
    DateTimePrinter::new().timestamp_to_rfc9110_string(&t).ok()
}

/// An HTTP `Date` header (RFC 9110's IMF-fixdate, or any RFC 2822 date) as Unix seconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    static PARSER: DateTimeParser = DateTimeParser::new();
    PARSER.parse_timestamp(text).ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ms = 1_796_571_000_123; // 2026-12-06T15:30:00.123Z
        assert_eq!(rfc3339_millis(ms), "2026-12-06T15:30:00.123Z");
        assert_eq!(rfc3339_seconds(ms), "2026-12-06T15:30:00Z");
        assert_eq!(utc_text(ms), "2026-12-06 15:30:00 UTC");
        assert_eq!(
            http_date(ms / 1000).as_deref(),
            Some("Sun, 06 Dec 2026 15:30:00 GMT")
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn http_dates_read_back() {
        assert_eq!(
            parse_http_date("Sun, 06 Dec 2026 15:30:00 GMT"),
            Some(1_796_571_000)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Dec 2026 23:30:00 +0800"),
            Some(1_796_571_000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn out_of_range_prints_nothing() {
        assert_eq!(rfc3339_millis(i64::MAX), "");
        assert_eq!(utc_text(i64::MIN), "");
        assert_eq!(http_date(i64::MAX), None);
    }
}
