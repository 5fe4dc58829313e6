//! Contact-list intake: stream a CSV, validate and normalise each row, hand rows on in batches.
//!
//! Pure with respect to the store: rows go to a caller-supplied sink, so the parser is tested on
//! its own. Never loads the whole file; a bad row becomes a skipped row with its line number and
//! reason, never an abort. Only a file that cannot be read at all, is empty, or has no `callee`
//! column is an error.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::calling::zones;
use crate::config::CalleeFormat;
use crate::contact::{NewContact, Overrides};
use crate::phone;

/// Rows handed to the sink at a time.
pub const BATCH: usize = 2000;

/// Bounds that keep one row's request within [`crate::ccc::MAX_REQUEST_BYTES`] (64 KiB) next
/// to the campaign's own variables. A row past any of them is skipped with the reason; nothing
/// of the oversized cell is stored or echoed.
pub const MAX_CELL_BYTES: usize = crate::setting_rules::MAX_VALUE_BYTES;
/// A variable's name (`var:NAME`), in bytes.
pub const MAX_VARIABLE_NAME_BYTES: usize = crate::setting_rules::MAX_NAME_BYTES;
/// Non-empty `var:` cells in one row.
pub const MAX_VARIABLES: usize = crate::setting_rules::MAX_VARIABLES;
/// The row's variables, names and values together, in bytes.
pub const MAX_VARIABLE_BYTES: usize = crate::setting_rules::MAX_TOTAL_BYTES;
/// The most of a skipped row's callee kept in its result.
const SKIPPED_CALLEE_CHARS: usize = 64;

#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// ISO region for national numbers (e.g. `CN`).
    pub default_country: String,
    pub callee_format: CalleeFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{path}: cannot read the contacts file: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: the contacts file is empty: expected a header row with a `callee` column and one row per contact")]
    Empty { path: PathBuf },
    #[error("{path}: line 1: no `callee` column in the header (found: {found})\nhint: the header must name the column holding the numbers to dial, e.g. `callee,id,var:name`")]
    NoCallee { path: PathBuf, found: String },
    #[error("{path}: line 1: column {column:?} appears twice in the header")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{0}")]
    Sink(String),
}

/// What the header says about each column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Column {
    Callee,
    Callers,
    AgentId,
    Id,
    Timezone,
    Var(String),
    Ignored(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeSummary {
    /// Data rows read (blank lines are not rows).
    pub rows: u64,
    /// Header columns that mean nothing to the dialer (reported, not an error).
    pub ignored_columns: Vec<String>,
}

fn columns(path: &Path, header: &csv::ByteRecord) -> Result<Vec<Column>, IntakeError> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in header.iter() {
        let name = String::from_utf8_lossy(raw).trim().to_string();
        let lower = name.to_ascii_lowercase();
        let col = match lower.as_str() {
            "callee" => Column::Callee,
            "callers" => Column::Callers,
            "ai_agent_id" => Column::AgentId,
            "id" => Column::Id,
            "timezone" => Column::Timezone,
            _ if lower.starts_with("var:") && name.len() > 4 => Column::Var(name[4..].to_string()),
            _ => Column::Ignored(name.clone()),
        };
        if !matches!(col, Column::Ignored(_)) && !seen.insert(col.clone()) {
            return Err(IntakeError::DuplicateColumn {
                path: path.to_path_buf(),
                column: name,
            });
        }
        out.push(col);
    }
    if !out.contains(&Column::Callee) {
        let found = header
            .iter()
            .map(|f| format!("{:?}", String::from_utf8_lossy(f)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(IntakeError::NoCallee {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(out)
}

/// Turn one record into a contact (or a skipped row with the reason).
fn row(cols: &[Column], rec: &csv::ByteRecord, line: u64, opts: &IntakeOptions) -> NewContact {
    let mut callee_raw = String::new();
    let mut ext_id = None;
    let mut overrides = Overrides::default();
    let mut problem: Option<String> = None;
    let mut note = |p: String| {
        problem.get_or_insert(p);
    };
    let mut variable_bytes = 0usize;
    for (i, col) in cols.iter().enumerate() {
        let bytes = rec.get(i).unwrap_or_default();
        if bytes.len() > MAX_CELL_BYTES {
            note(format!(
                "column {} is {} bytes, more than {MAX_CELL_BYTES} (a request is bounded at 64 KiB)",
                i + 1,
                bytes.len()
            ));
            continue;
        }
        let value = match std::str::from_utf8(bytes) {
            Ok(v) => v.trim(),
            Err(_) => {
                note(format!("column {} is not valid UTF-8", i + 1));
                continue;
            }
        };
        match col {
            Column::Callee => callee_raw = value.to_string(),
            Column::Id if !value.is_empty() => ext_id = Some(value.to_string()),
            Column::Callers if !value.is_empty() => {
                for c in value.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                    if crate::setting_rules::caller_ok(c) {
                        overrides.callers.push(c.to_string());
                    } else {
                        note(format!(
                            "callers: {c:?} is not {}",
                            crate::setting_rules::CALLER_EXPECTED
                        ));
                    }
                }
            }
            Column::AgentId if !value.is_empty() => match value.parse::<u64>() {
                Ok(n) if crate::setting_rules::ai_agent_id_ok(n) => overrides.ai_agent_id = Some(n),
                _ => note(format!(
                    "ai_agent_id: {value:?} is not {}",
                    crate::setting_rules::ai_agent_id_expected()
                )),
            },
            Column::Timezone if !value.is_empty() => match zones::zone(value) {
                Ok(tz) => overrides.timezone = Some(zones::name(&tz)),
                Err(_) => note(format!(
                    "timezone: {value:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\")"
                )),
            },
            Column::Var(name) if !value.is_empty() => {
                variable_bytes += name.len() + value.len();
                if name.len() > MAX_VARIABLE_NAME_BYTES {
                    note(format!(
                        "column {}: a variable name of {} bytes, more than {MAX_VARIABLE_NAME_BYTES}",
                        i + 1,
                        name.len()
                    ));
                } else if overrides.variables.len() == MAX_VARIABLES {
                    note(format!("more than {MAX_VARIABLES} variables in one row"));
                } else if variable_bytes > MAX_VARIABLE_BYTES {
                    note(format!(
                        "the row's variables are more than {MAX_VARIABLE_BYTES} bytes (a request is bounded at 64 KiB)"
                    ));
                } else {
                    overrides.variables.insert(name.clone(), value.to_string());
                }
            }
            _ => {}
        }
    }
    if problem.is_none() {
        match phone::normalize(&callee_raw, &opts.default_country, opts.callee_format) {
            Ok(n) => {
                return NewContact {
                    line,
                    callee: n,
                    ext_id,
                    overrides,
                    skip_reason: None,
                }
            }
            Err(e) => problem = Some(format!("callee {:?}: {e}", shortened(&callee_raw))),
        }
    }
    NewContact {
        line,
        callee: shortened(&callee_raw),
        ext_id,
        overrides: Overrides::default(),
        skip_reason: problem,
    }
}

/// At most [`SKIPPED_CALLEE_CHARS`] characters of `text`, with `…` when cut.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(SKIPPED_CALLEE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Counts lines for error reports. The csv crate's own line numbers drift with CRLF files, so
/// this reader notes where every `\n` is as bytes pass through; [`Lines::line_of`] turns a
/// record's end offset into its 1-based line. Only newlines not yet passed are kept.
struct LineCounting<R> {
    inner: R,
    offset: u64,
    newlines: Rc<RefCell<VecDeque<u64>>>,
}

impl<R: Read> Read for LineCounting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                nl.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

struct Lines {
    newlines: Rc<RefCell<VecDeque<u64>>>,
    passed: u64,
}

impl Lines {
    /// [`Lines::line_of`], never at or before the previous record's line: a quote left open to
    /// the end of the file makes the record's last byte a newline inside it, which `line_of`
    /// cannot tell from a terminator, and two records on one line would make the store keep
    /// only the first (every row must end in a result).
    fn after(&mut self, previous: u64, end: u64, inner_newlines: u64) -> u64 {
        self.line_of(end, inner_newlines).max(previous + 1)
    }

    /// The 1-based line on which the record just read starts. `end` is the reader's position
    /// after the record (just past its terminator, or the end of input); `inner_newlines` the
    /// newlines inside its quoted fields. Asked in increasing order of `end`.
    ///
    /// Why from the end: the csv reader reports a record's start *before* blank lines it skipped
    /// and, with CRLF, at the `\n` of the previous line, so its start offset is not the line.
    fn line_of(&mut self, end: u64, inner_newlines: u64) -> u64 {
        let last_byte = end.saturating_sub(1);
        let mut nl = self.newlines.borrow_mut();
        while nl.front().is_some_and(|o| *o < last_byte) {
            nl.pop_front();
            self.passed += 1;
        }
        (self.passed + 1).saturating_sub(inner_newlines)
    }
}

fn newlines_in(rec: &csv::ByteRecord) -> u64 {
    rec.iter()
        .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
        .sum()
}

/// Stream `reader` (named `path` in messages), calling `sink` with batches of up to [`BATCH`]
/// rows. `sink` errors stop the intake (the store is gone); bad rows never do.
pub fn read<R: Read>(
    path: &Path,
    reader: R,
    opts: &IntakeOptions,
    mut sink: impl FnMut(Vec<NewContact>) -> Result<(), String>,
) -> Result<IntakeSummary, IntakeError> {
    let newlines = Rc::new(RefCell::new(VecDeque::new()));
    let mut lines = Lines {
        newlines: newlines.clone(),
        passed: 0,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(LineCounting {
            inner: reader,
            offset: 0,
            newlines,
        });
    let unreadable = |e: csv::Error| IntakeError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut rec = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut rec).map_err(unreadable)? {
        return Err(IntakeError::Empty {
            path: path.to_path_buf(),
        });
    }
    // (The csv reader drops a UTF-8 byte-order mark before the header itself.)
    let cols = columns(path, &rec)?;
    let mut summary = IntakeSummary {
        ignored_columns: cols
            .iter()
            .filter_map(|c| match c {
                Column::Ignored(n) => Some(n.clone()),
                _ => None,
            })
            .collect(),
        ..Default::default()
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_line = 1;
    loop {
        let more = match rdr.read_byte_record(&mut rec) {
            Ok(more) => more,
            Err(e) => {
                // A record the CSV reader cannot split (I/O trouble mid-file) ends the intake;
                // everything read so far is kept.
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(unreadable(e));
                }
                let line = lines.after(last_line, rdr.position().byte(), 0);
                last_line = line;
                summary.rows += 1;
                batch.push(NewContact {
                    line,
                    callee: String::new(),
                    ext_id: None,
                    overrides: Overrides::default(),
                    skip_reason: Some(format!("unreadable CSV record: {e}")),
                });
                true
            }
        };
        if !more {
            break;
        }
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // blank line
        }
        let line = lines.after(last_line, rdr.position().byte(), newlines_in(&rec));
        last_line = line;
        summary.rows += 1;
        batch.push(row(&cols, &rec, line, opts));
        if batch.len() >= BATCH {
            sink(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .map_err(IntakeError::Sink)?;
        }
    }
    if !batch.is_empty() {
        sink(batch).map_err(IntakeError::Sink)?;
    }
    if summary.rows == 0 {
        return Err(IntakeError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(summary)
}

/// Open `path` and stream it (see [`read`]).
pub fn read_file(
    path: &Path,
    opts: &IntakeOptions,
    sink: impl FnMut(Vec<NewContact>) -> Result<(), String>,
) -> Result<IntakeSummary, IntakeError> {
    let file = std::fs::File::open(path).map_err(|e| IntakeError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    read(
        path,
        std::io::BufReader::with_capacity(1 << 16, file),
        opts,
        sink,
    )
}

/// SHA-256 of the file: a rerun against the same state must be given the same list.
pub fn fingerprint(path: &Path) -> Result<String, IntakeError> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| IntakeError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| IntakeError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Check only what makes a whole file unusable (unreadable, empty, no `callee` column) before
/// a campaign is created for it; rows are checked by [`read`].
pub fn check_header(path: &Path) -> Result<(), IntakeError> {
    let file = std::fs::File::open(path).map_err(|e| IntakeError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let mut rec = csv::ByteRecord::new();
    let read = rdr
        .read_byte_record(&mut rec)
        .map_err(|e| IntakeError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !read {
        return Err(IntakeError::Empty {
            path: path.to_path_buf(),
        });
    }
    columns(path, &rec).map(|_| ())
}

/// The parsed rows of a small in-memory CSV (tests and the single-call path).
pub fn parse_all(
    text: &str,
    opts: &IntakeOptions,
) -> Result<(IntakeSummary, Vec<NewContact>), IntakeError> {
    let mut all = Vec::new();
    let summary = read(Path::new("<input>"), text.as_bytes(), opts, |b| {
        all.extend(b);
        Ok(())
    })?;
    Ok((summary, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IntakeOptions {
        IntakeOptions {
            default_country: "CN".into(),
            callee_format: CalleeFormat::DoubleZero,
        }
    }

    #[test]
    fn reads_bom_crlf_quotes_blank_lines_and_var_columns() {
        let text = "\u{feff}callee,id,var:name,\"var:dify-inputs-user\",callers,ai_agent_id\r\n\
                    +8613800138000,c1,\"Zhang, San\",u-1,008601012345678;008601012345679,7\r\n\
                    \r\n\
                    13800138001,c2,,,,\r\n";
        let (summary, rows) = parse_all(text, &opts()).unwrap();
        assert_eq!(summary.rows, 2);
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!(a.line, 2);
        assert_eq!(a.callee, "008613800138000");
        assert_eq!(a.ext_id.as_deref(), Some("c1"));
        assert_eq!(
            a.overrides.variables.get("name").map(String::as_str),
            Some("Zhang, San")
        );
        assert_eq!(
            a.overrides
                .variables
                .get("dify-inputs-user")
                .map(String::as_str),
            Some("u-1")
        );
        assert_eq!(
            a.overrides.callers,
            vec!["008601012345678", "008601012345679"]
        );
        assert_eq!(a.overrides.ai_agent_id, Some(7));
        let b = &rows[1];
        assert_eq!(b.line, 4, "the blank line still counts for line numbers");
        assert_eq!(b.callee, "008613800138001");
        assert!(b.overrides.is_empty());
    }

    #[test]
    fn a_quote_left_open_to_the_end_is_a_skipped_row_on_its_own_line() {
        let text = "callee\n+8613800000001\n\"unterminated\n+8613800000002\n";
        let (summary, rows) = parse_all(text, &opts()).unwrap();
        assert_eq!(summary.rows, 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 3, "{rows:?}");
        assert!(rows[1].skip_reason.is_some(), "{rows:?}");
        let (_, rows) = parse_all("callee\n+8613800000001\n\"unterminated\n", &opts()).unwrap();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn line_numbers_hold_for_lf_quoted_newlines_blank_lines_and_no_final_newline() {
        let text = "callee,var:note\n\n+8613800138000,\"two\nlines\"\n\n\n+8613800138001,x\n+8613800138002,\"a\r\nb\"\r\n+8613800138003,last";
        let (_, rows) = parse_all(text, &opts()).unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 7, 8, 10]);
    }

    #[test]
    fn bad_rows_are_skipped_with_line_and_reason() {
        let text = "callee,ai_agent_id\nabc,\n+8613800138000,zero\n+8613800138000,\n";
        let (_, rows) = parse_all(text, &opts()).unwrap();
        assert_eq!(rows[0].line, 2);
        assert!(
            rows[0]
                .skip_reason
                .as_deref()
                .unwrap()
                .starts_with("callee \"abc\""),
            "{:?}",
            rows[0]
        );
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            rows[1].skip_reason.as_deref(),
            Some("ai_agent_id: \"zero\" is not a positive integer up to 9223372036854775807")
        );
        assert_eq!(rows[2].skip_reason, None);
    }

    #[test]
    fn a_rows_agent_and_callers_take_the_configs_and_the_apis_rules() {
        // The service's AIAgentId is an Int64; a caller is digits after at most one leading +.
        let text = "callee,ai_agent_id,callers
\
                    +8613800138000,18446744073709551615,\n\
                    +8613800138001,,1+2\n\
                    +8613800138002,9223372036854775807,+8601012345678\n\
                    +8613800138003,,1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111\n\
                    +8613800138004,,+\n";
        let (_, rows) = parse_all(text, &opts()).unwrap();
        assert!(
            rows[0]
                .skip_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("ai_agent_id: \"18446744073709551615\" is not")),
            "{:?}",
            rows[0]
        );
        assert!(
            rows[1]
                .skip_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("callers: \"1+2\" is not a caller number")),
            "{:?}",
            rows[1]
        );
        assert_eq!(rows[2].skip_reason, None);
        // The config's and the API's rule: a bare + or 100 digits are no caller number.
        for row in &rows[3..5] {
            assert!(
                row.skip_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("is not a caller number of 1 to 24 digits")),
                "{row:?}"
            );
        }
    }

    #[test]
    fn a_timezone_column_is_checked_and_kept_by_its_iana_name() {
        let text = "callee,timezone\n+8613800138000,asia/urumqi\n+8613800138001,Mars/Olympus\n+8613800138002,\n";
        let (_, rows) = parse_all(text, &opts()).unwrap();
        assert_eq!(rows[0].overrides.timezone.as_deref(), Some("Asia/Urumqi"));
        assert_eq!(rows[0].skip_reason, None);
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            rows[1].skip_reason.as_deref(),
            Some(
                "timezone: \"Mars/Olympus\" is not an IANA time zone name (e.g. \"Asia/Shanghai\")"
            )
        );
        assert_eq!(
            rows[2].overrides.timezone, None,
            "an empty cell means no zone"
        );
        assert!(rows[2].overrides.is_empty());
    }

    #[test]
    fn empty_file_and_missing_callee_column_are_errors() {
        assert!(matches!(
            parse_all("", &opts()),
            Err(IntakeError::Empty { .. })
        ));
        assert!(matches!(
            parse_all("callee\n\n", &opts()),
            Err(IntakeError::Empty { .. })
        ));
        let e = parse_all("phone,name\n123,x\n", &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "<input>: line 1: no `callee` column in the header (found: \"phone\", \"name\")\nhint: the header must name the column holding the numbers to dial, e.g. `callee,id,var:name`"
        );
    }

    #[test]
    fn invalid_utf8_in_a_row_skips_that_row_only() {
        let mut bytes = b"callee,var:name\n+8613800138000,ok\n+8613800138001,".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        let mut all = Vec::new();
        read(Path::new("x.csv"), &bytes[..], &opts(), |b| {
            all.extend(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].skip_reason.is_none());
        assert_eq!(
            all[1].skip_reason.as_deref(),
            Some("column 2 is not valid UTF-8")
        );
        assert_eq!(all[1].line, 3);
    }
}
