//! Human durations in config files and flags: `500ms`, `2s`, `5m`, `1h`, `1d`, or combinations
//! such as `1h30m`. A few lines of our own instead of an extra crate.

use std::time::Duration;

/// What a duration looks like, the start of every refusal.
const FORM: &str = "a duration such as \"2s\", \"5m\" or \"1h\"";

/// Parse `"2s"`, `"1h30m"`, `"250ms"`. Bare numbers are refused: the unit must be explicit.
/// A refusal says what was expected, to follow "expected " after the key and its value
/// (`min_gap = "4 hours": expected a duration such as …`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("{FORM} (it is empty)"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{FORM}: a number, then its unit"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{FORM} (its number is too large)"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "{FORM}: {n} needs its unit, one of ms, s, m, h, d (e.g. \"{n}s\")"
                ))
            }
            other => {
                let space = if other.starts_with(char::is_whitespace) {
                    ", with no space before it"
                } else {
                    ""
                };
                return Err(format!(
                    "{FORM}: {other:?} is not a unit (one of ms, s, m, h, d{space})"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        assert_eq!(
            parse("5").unwrap_err(),
            "a duration such as \"2s\", \"5m\" or \"1h\": 5 needs its unit, one of ms, s, m, h, d (e.g. \"5s\")"
        );
        assert_eq!(
            parse("5y").unwrap_err(),
            "a duration such as \"2s\", \"5m\" or \"1h\": \"y\" is not a unit (one of ms, s, m, h, d)"
        );
        // Read after "expected ", no refusal repeats it or starts with a problem.
        for bad in ["", "s", "5", "5y", "99999999999999999999999s", "2 parsecs"] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("a duration such as"), "{e}");
            assert!(!e.contains("expected"), "{e}");
        }
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
    }
}
