//! A TOML error said without quoting the file: line, column, the key of the line when it looks
//! like one, and the parser's complaint with any value taken out.
//!
//! Inbox settings files (`NAME.toml`) are written by whoever may write to the inbox; the error
//! goes to the log, to `rejected/NAME.csv.error.txt` and into the store. Quoting the offending
//! line would copy whatever it holds (a credential pasted by mistake) into all three.

/// `line L, column C[, key K]: what`; for a key the file may not hold,
/// `unknown key K in [table] at line L: expected one of a, b, c`.
pub fn describe(text: &str, e: &toml::de::Error) -> String {
    if let Some(said) = unknown_key(text, e) {
        return said;
    }
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

/// A refusal of values that parsed (`key = value: expected …`, from the settings' checks) said
/// as `line L, key K: expected …` without the value: the key is the message's first word, its
/// line the first line of `text` that sets it, and any quoted text that is part of one of the
/// file's string values is taken out of the rest.
pub fn withhold(text: &str, message: &str) -> String {
    let (head, expected) = match message.split_once(": expected ") {
        Some((h, x)) => (h, Some(x)),
        None => (message, None),
    };
    let key = head
        .split([' ', ':'])
        .next()
        .filter(|k| looks_like_key(&k.replace('/', ".")))
        .unwrap_or("");
    let what = match expected {
        Some(x) => format!("expected {}", unquote_values(text, x)),
        None => "refused".to_string(),
    };
    let place = match (line_of(text, key), key.is_empty()) {
        (_, true) => String::new(),
        (Some(line), false) => format!("line {line}, key {key}: "),
        (None, false) => format!("key {key}: "),
    };
    format!("{place}{what} (the value is not shown)")
}

/// The first line that sets `key` (its last dotted part, or the first of `a/b`), if any.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let first = key.split('/').next()?;
    let last = first.rsplit('.').next()?.trim();
    if last.is_empty() {
        return None;
    }
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == last)
        })
        .map(|i| i + 1)
}

/// `message` with every quoted string that is part of one of `text`'s string values replaced by
/// `"…"`.
fn unquote_values(text: &str, message: &str) -> String {
    let mut values = Vec::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        collect_strings(&toml::Value::Table(table), &mut values);
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        // The closing quote, skipping escaped ones (`{:?}` escapes).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str(&rest[open..]);
            return out;
        };
        let quoted = &after[..end];
        let unescaped = quoted.replace("\\\"", "\"").replace("\\\\", "\\");
        let secret = !unescaped.is_empty() && values.iter().any(|v| v.contains(unescaped.as_str()));
        out.push('"');
        out.push_str(if secret { "…" } else { quoted });
        out.push('"');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn collect_strings(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        toml::Value::Table(t) => t.values().for_each(|i| collect_strings(i, out)),
        other => out.push(other.to_string()),
    }
}

/// serde's "unknown field `k`, expected one of `a`, `b`" said as TOML: `unknown key k in
/// [table] at line L: expected one of a, b` (the table is the last header above the line; the
/// key is named only when it looks like one, see [`looks_like_key`]).
pub fn unknown_key(text: &str, e: &toml::de::Error) -> Option<String> {
    let rest = e.message().trim_end().strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let expected = expected.trim_start_matches(',').trim().replace('`', "");
    let expected = match expected.as_str() {
        "there are no fields" => "no keys here".to_string(),
        _ => expected,
    };
    let line = e.span().map(|span| {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        text[..start].matches('\n').count() + 1
    });
    let table = line
        .and_then(|l| text.lines().take(l).filter_map(table_header).last())
        .map_or("the top level".to_string(), |t| format!("[{t}]"));
    let key = if looks_like_key(key) {
        key
    } else {
        "(not shown)"
    };
    Some(match line {
        Some(l) => format!("unknown key {key} in {table} at line {l}: {expected}"),
        None => format!("unknown key {key} in {table}: {expected}"),
    })
}

/// `calling.hours` of a `[calling.hours]` or `[[calling.hours]]` line.
fn table_header(line: &str) -> Option<&str> {
    let l = line.trim();
    let inner = l
        .strip_prefix("[[")
        .and_then(|r| r.split_once("]]"))
        .or_else(|| l.strip_prefix('[').and_then(|r| r.split_once(']')))?
        .0
        .trim();
    looks_like_key(inner).then_some(inner)
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
    fn refused_values_are_named_by_line_and_key_and_never_shown() {
        let text = "priority = 1\nbackoff_max = \"AKIDsecret parsecs\"\n";
        let e = withhold(
            text,
            "backoff_max = \"AKIDsecret parsecs\": unknown unit \" parsecs\" in duration \"AKIDsecret parsecs\": expected one of ms, s, m, h, d",
        );
        assert_eq!(
            e,
            "line 2, key backoff_max: expected one of ms, s, m, h, d (the value is not shown)"
        );
        let text = "callers = [\"AKIDsecret\"]\n";
        let e = withhold(
            text,
            "callers = \"AKIDsecret\": expected a caller number of digits, optionally starting with + (e.g. \"008601012345678\")",
        );
        assert!(
            e.starts_with("line 1, key callers: expected a caller number"),
            "{e}"
        );
        assert!(e.contains("\"008601012345678\""), "the example stays: {e}");
        let e = withhold(
            "a = \"x\"\n",
            "backoff_initial/backoff_max: the campaign would back off from 2s up to only 1s: expected backoff_max at least backoff_initial",
        );
        assert_eq!(
            e,
            "key backoff_initial/backoff_max: expected backoff_max at least backoff_initial (the value is not shown)"
        );
        let text = "[calling]\nnot_after = \"AKIDsecret\"\n";
        let e = withhold(
            text,
            "calling.not_after = \"AKIDsecret\": expected \"AKIDsecret\" to be a date",
        );
        assert_eq!(
            e,
            "line 2, key calling.not_after: expected \"…\" to be a date (the value is not shown)"
        );
        let e = withhold(
            "name = \"call-x\"\n",
            "name = \"call-x\": names starting with \"call-\" are reserved",
        );
        assert_eq!(e, "line 1, key name: refused (the value is not shown)");
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
        assert!(
            e.starts_with("unknown key calling in the top level at line 1"),
            "{e}"
        );
        let e = err("名前 = \"秘密\n");
        assert!(!e.contains("秘密"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table_and_the_keys_expected() {
        let e = err("name = \"x\"\nretries = 3\n");
        assert_eq!(
            e,
            "unknown key retries in the top level at line 2: expected ai_agent_id or name"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            campaign: S,
            rule: Option<Vec<S>>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            name: Option<String>,
        }
        let text = "[campaign]\nname = \"a\"\n[[rule]]\nname = \"b\"\nAKIDsecret value = 1\n";
        let e = describe(text, &toml::from_str::<Outer>(text).unwrap_err());
        assert!(!e.contains("AKID"), "{e}");
        let text = "[campaign]\nname = \"a\"\n[[rule]]\nnmae = \"b\"\n";
        let e = describe(text, &toml::from_str::<Outer>(text).unwrap_err());
        assert_eq!(e, "unknown key nmae in [rule] at line 4: expected name");
    }
}
