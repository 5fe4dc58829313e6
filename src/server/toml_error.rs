//! A TOML error said without quoting the file: line, column, the key of the line when it looks
//! like one, and the parser's complaint with any value taken out.
//!
//! Inbox settings files (`NAME.toml`) are written by whoever may write to the inbox; the error
//! goes to the log, to `rejected/NAME.csv.error.txt` and into the store. Quoting the offending
//! line would copy whatever it holds (a credential pasted by mistake) into all three.

/// `line L, column C[, key K]: what`.
pub fn describe(text: &str, e: &toml::de::Error) -> String {
    let what = redact(e.message().trim_end());
    let Some(span) = e.span() else {
        return what;
    };
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| looks_like_key(k));
    match key {
        Some(k) => format!("line {line}, column {column}, key {k}: {what}"),
        None => format!("line {line}, column {column}: {what}"),
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A bare or dotted TOML key of a sensible length: anything else on the left of `=` is not
/// shown (it may be part of a value). Spaces only around the dots of a dotted key: `name
/// AKIDsecret = 3` is not a key, and its second word must not be quoted (found by fuzzing,
/// FUZZING.md).
fn looks_like_key(k: &str) -> bool {
    k.len() <= 64
        && k.split('.').all(|part| {
            let part = part.trim_matches(' ');
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        })
}

/// serde's `invalid type: string "…", expected u64` without the value:
/// `invalid type: a string, expected u64`. Other messages name keys, not values.
fn redact(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest
                .split(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap_or("value");
            let expected = rest
                .rsplit_once(", expected ")
                .map_or(String::new(), |(_, x)| format!(", expected {x}"));
            return format!("{}{kind}{expected}", prefix);
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            ai_agent_id: Option<u64>,
            name: Option<String>,
        }
        describe(text, &toml::from_str::<S>(text).unwrap_err())
    }

    #[test]
    fn errors_name_the_place_and_key_but_never_the_value() {
        let e = err("AKIDsecretvalue123\n");
        assert_eq!(e, "line 1, column 19: key with no value, expected `=`");
        let e = err("name = \"ok\"\nai_agent_id = \"AKIDsecret\"\n");
        assert_eq!(
            e,
            "line 2, column 15, key ai_agent_id: invalid type: string, expected u64"
        );
        let e = err("ai_agent_id = 99999999999999999999999\n");
        assert!(!e.contains("9999"), "{e}");
        let e = err("name = 5\n");
        assert_eq!(
            e,
            "line 1, column 8, key name: invalid type: integer, expected a string"
        );
        // Something that is not a key on the left of `=` is not quoted either.
        let e = err("AKID:secret/x=y\n");
        assert!(!e.contains("AKID") && !e.contains("secret"), "{e}");
        // Two words left of `=` are not a key: the second may be a pasted secret.
        let e = err("name AKIDsecret = 3\n");
        assert!(!e.contains("AKIDsecret"), "{e}");
        assert!(e.starts_with("line 1, column 6: "), "{e}");
        let e = err("calling . hours = 3\n");
        assert!(e.contains("key calling . hours"), "{e}");
        let e = err("名前 = \"秘密\n");
        assert!(!e.contains("秘密"), "{e}");
    }
}
