//! Putting finished contacts back in the queue on an operator's request (`ccc-dialer requeue`,
//! `POST /v1/campaigns/{id}/requeue`): after an outage or a systematic error was fixed, the
//! contacts it failed can be dialled again. A requeued contact is `pending` with its attempts
//! reset, goes through every calling rule when it is dialled (windows, do-not-call lists, the
//! per-person gap and daily cap), and its history records the requeue.
//!
//! What would call someone twice is refused: `placed` always; `unknown`, and `failed` contacts
//! whose last error may have placed the call (`InternalError*`), only with an explicit
//! `allow_double_call` (without it they are left as they are and not counted).

use crate::contact::Status;

/// What to requeue, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue {
    pub status: Status,
    /// Only contacts whose last error code is one of these (empty: any).
    pub codes: Vec<String>,
    /// Who asked, for the history ("an operator (CLI)", "an operator (API)").
    pub by: String,
    /// Also requeue `failed` contacts whose last error may have placed the call
    /// (`InternalError*`, see [`crate::policy::may_have_placed`]).
    pub allow_double_call: bool,
}

/// Check a requeue request: the status must be one that can be dialled again without calling
/// anyone twice (`failed`, `expired`), or `unknown` with `allow_double_call`.
pub fn parse(
    status: &str,
    codes: Vec<String>,
    allow_double_call: bool,
    by: &str,
) -> Result<Requeue, String> {
    let parsed: Status = status.trim().parse().map_err(|_| {
        format!(
            "status {status:?}: expected failed, expired, or unknown (with the double-call flag)"
        )
    })?;
    match parsed {
        Status::Failed | Status::Expired => {}
        Status::Unknown if allow_double_call => {}
        Status::Unknown => return Err(
            "status unknown: the call may have been placed; requeueing it may call someone twice. \
                 Check the call records first, then ask again with the double-call flag \
                 (--allow-double-call / \"allow_double_call\": true)"
                .into(),
        ),
        Status::Placed => {
            return Err(
                "status placed: these contacts were called; requeueing them would call them twice"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "status {}: only failed, expired or unknown contacts can be requeued",
                other.as_str()
            ))
        }
    }
    let codes: Vec<String> = codes.into_iter().map(|c| c.trim().to_string()).collect();
    // An empty code is a mistake, not "any code": `codes: [""]` would requeue every failure.
    if codes.iter().any(String::is_empty) {
        return Err(
            "an empty code: expected an error code such as NotSent or InvalidParameterValue.AIAgentId (leave codes out for every code)"
                .to_string(),
        );
    }
    if let Some(bad) = codes
        .iter()
        .find(|c| c.len() > 200 || c.chars().any(|ch| ch.is_control()))
    {
        return Err(format!(
            "code of {} characters: expected an error code such as NotSent or InvalidParameterValue.AIAgentId",
            bad.chars().count()
        ));
    }
    Ok(Requeue {
        status: parsed,
        codes,
        by: by.to_string(),
        allow_double_call,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_would_call_someone_twice_is_refused() {
        assert!(parse("failed", vec![], false, "x").is_ok());
        assert!(parse("expired", vec![], false, "x").is_ok());
        let e = parse("placed", vec![], true, "x").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = parse("unknown", vec![], false, "x").unwrap_err();
        assert!(e.contains("--allow-double-call"), "{e}");
        assert!(parse("unknown", vec![], true, "x").is_ok());
        assert!(parse("skipped", vec![], true, "x").is_err());
        assert!(parse("pending", vec![], true, "x").is_err());
        assert!(parse("nonsense", vec![], true, "x").is_err());
        let r = parse("failed", vec![" NotSent ".into()], false, "x").unwrap();
        assert_eq!(r.codes, ["NotSent"]);
        // An empty code would widen the requeue to every failure: refused.
        let e = parse("failed", vec!["NotSent".into(), " ".into()], false, "x").unwrap_err();
        assert!(e.starts_with("an empty code"), "{e}");
    }
}
