//! Spreadsheet formula injection: a results cell that a spreadsheet would read as a formula
//! (`=cmd|' /C calc'!A0`, `@SUM(1+1)`, `+1+1` in a skipped row's callee, an `id`, an error
//! message) is written with a leading `'`, OWASP's rule, in every CSV the dialer writes (the
//! results file, `export`, `GET /v1/campaigns/{id}/results`).
//!
//! One deliberate exception: a cell that is only a sign and digits (`+8613800138000`, the
//! E.164 spelling of a callee, or `-5`) is a number to every spreadsheet, cannot call anything,
//! and is left as it is, so a results file can be read back and its numbers dialled again.

use std::borrow::Cow;

use crate::contact::ResultRow;

/// Characters that make a spreadsheet read a cell as a formula (with their full-width forms,
/// which some spreadsheets fold into the ASCII ones).
const TRIGGERS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// `cell`, with a `'` in front when a spreadsheet would take it for a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let Some(first) = cell.chars().next() else {
        return Cow::Borrowed(cell);
    };
    if !TRIGGERS.contains(&first) || is_signed_number(cell) {
        return Cow::Borrowed(cell);
    }
    Cow::Owned(format!("'{cell}"))
}

/// `+` or `-` followed by ASCII digits only.
fn is_signed_number(cell: &str) -> bool {
    let rest = cell.strip_prefix(['+', '-']).unwrap_or("");
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

/// The row as it is written to a CSV: every text cell neutralised.
pub fn row(r: &ResultRow) -> ResultRow {
    let n = |s: &str| neutralise(s).into_owned();
    ResultRow {
        callee: n(&r.callee),
        status: n(&r.status),
        session_id: n(&r.session_id),
        request_id: n(&r.request_id),
        error_code: n(&r.error_code),
        error_message: n(&r.error_message),
        attempts: r.attempts,
        line: r.line,
        id: n(&r.id),
        updated_at: n(&r.updated_at),
        outcome: n(&r.outcome),
        end_status: n(&r.end_status),
        end_status_string: n(&r.end_status_string),
        duration_s: n(&r.duration_s),
        answered_at: n(&r.answered_at),
        ended_at: n(&r.ended_at),
        hangup_side: n(&r.hangup_side),
        dials: r.dials,
        first_dialled_at: n(&r.first_dialled_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_a_quote_and_numbers_and_plain_text_do_not() {
        for (cell, written) in [
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("＝1+1", "'＝1+1"),
            ("+", "'+"),
            ("+86 138 0013 8000", "'+86 138 0013 8000"),
            ("+8613800138000", "+8613800138000"),
            ("-5", "-5"),
            ("008613800138000", "008613800138000"),
            ("bad number: =1", "bad number: =1"),
            ("'=1", "'=1"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), written, "{cell:?}");
        }
    }
}
