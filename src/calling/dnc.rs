//! Do-not-call (suppression) lists: files of numbers that must never be dialled.
//!
//! A file is either CSV whose header names a `callee`, `number` or `phone` column (the first of
//! those, in that order), or plain text with one number per line. Blank lines and lines starting
//! with `#` are ignored in both. Every number is normalised exactly as contacts are
//! ([`crate::phone::normalize`] with the campaign's default country and callee format), so
//! `+8613800138000`, `008613800138000` and `13800138000` (default CN) are the same entry.
//!
//! Errors, conservatively: a file that cannot be read, or whose first line looks like a header
//! or a CSV row but names no number column, is an error naming the file (a list silently
//! ignored would call people who asked not to be called). A line whose number is not valid is
//! reported with file and line, counted, and skipped.
//!
//! [`DncLists`] holds the loaded set behind a lock so `serve` can reload it while lookups go on;
//! a failed reload keeps the previous set.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::CalleeFormat;
use crate::phone;

/// Bad lines kept with their text for the report (all are counted).
pub const BAD_LINES_KEPT: usize = 100;

const COLUMNS: [&str; 3] = ["callee", "number", "phone"];

#[derive(Debug, thiserror::Error)]
pub enum DncError {
    #[error("{path}: cannot read the do-not-call list: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: line {line}: no `callee`, `number` or `phone` column in the header (found: {found})\nhint: a do-not-call list is either CSV with a header naming the number column, or one number per line")]
    NoColumn {
        path: PathBuf,
        line: u64,
        found: String,
    },
}

/// One line that did not hold a valid number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub path: PathBuf,
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line {}: {}",
            self.path.display(),
            self.line,
            self.reason
        )
    }
}

/// What a load read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub files: usize,
    /// Distinct numbers in the set.
    pub numbers: usize,
    /// Lines that held no valid number (all of them).
    pub bad_count: u64,
    /// The first [`BAD_LINES_KEPT`] of them.
    pub bad: Vec<BadLine>,
}

/// How numbers are written: the same as the campaign writes its contacts.
#[derive(Debug, Clone)]
pub struct Normalise {
    pub default_country: String,
    pub callee_format: CalleeFormat,
}

/// Read every file in `paths` into one set.
pub fn load(
    paths: &[PathBuf],
    norm: &Normalise,
) -> Result<(HashSet<String>, LoadReport), DncError> {
    let mut set = HashSet::new();
    let mut report = LoadReport::default();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| DncError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        parse(path, &bytes, norm, &mut set, &mut report)?;
        report.files += 1;
    }
    report.numbers = set.len();
    Ok((set, report))
}

/// Add the numbers of one file's contents (`path` names it in messages) to `set`.
pub fn parse(
    path: &Path,
    bytes: &[u8],
    norm: &Normalise,
    set: &mut HashSet<String>,
    report: &mut LoadReport,
) -> Result<(), DncError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // `None` until the first significant line decides; then `Some(None)` for plain text or
    // `Some(Some(i))` for CSV with the number in column `i`.
    let mut column: Option<Option<usize>> = None;
    let mut bad = |line: u64, reason: String| {
        report.bad_count += 1;
        if report.bad.len() < BAD_LINES_KEPT {
            report.bad.push(BadLine {
                path: path.to_path_buf(),
                line,
                reason,
            });
        }
    };
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let Ok(text) = std::str::from_utf8(raw) else {
            bad(line, "not valid UTF-8".into());
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let col = match column {
            Some(c) => c,
            None => {
                let cells = fields(text);
                let named = COLUMNS.iter().find_map(|want| {
                    cells
                        .iter()
                        .position(|c| c.trim().eq_ignore_ascii_case(want))
                });
                if named.is_some() {
                    column = Some(named);
                    continue; // the header
                }
                if cells.len() > 1 || !text.bytes().any(|b| b.is_ascii_digit()) {
                    return Err(DncError::NoColumn {
                        path: path.to_path_buf(),
                        line,
                        found: cells
                            .iter()
                            .map(|c| format!("{c:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                column = Some(None);
                None
            }
        };
        let number = match col {
            None => text.to_string(),
            Some(c) => match fields(text).into_iter().nth(c) {
                Some(v) if !v.trim().is_empty() => v.trim().to_string(),
                _ => {
                    bad(line, format!("no number in column {}", c + 1));
                    continue;
                }
            },
        };
        match phone::normalize(&number, &norm.default_country, norm.callee_format) {
            Ok(n) => {
                set.insert(n);
            }
            Err(e) => bad(line, format!("{number:?}: {e}")),
        }
    }
    Ok(())
}

/// The fields of one CSV line: commas separate, double quotes group (`""` inside quotes is a
/// quote). A field spanning lines is not supported: its lines are reported as bad.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    out.push(field);
    out
}

/// The loaded lists, swappable while in use (std `RwLock`: nothing awaits under it; readers
/// hold it for one hash lookup or an `Arc` clone, a reload only for the pointer swap).
#[derive(Debug)]
pub struct DncLists {
    paths: Vec<PathBuf>,
    norm: Normalise,
    current: RwLock<Arc<HashSet<String>>>,
    /// The account's own list (opt-outs, kept in the store; see [`super::opt_out`]): not read
    /// from files, so a reload keeps it.
    own: RwLock<HashSet<String>>,
}

impl DncLists {
    /// No lists: nothing is suppressed.
    pub fn empty(norm: Normalise) -> DncLists {
        DncLists {
            paths: Vec::new(),
            norm,
            current: RwLock::new(Arc::new(HashSet::new())),
            own: RwLock::new(HashSet::new()),
        }
    }

    /// Load `paths` (none is fine: an empty set).
    pub fn load(paths: Vec<PathBuf>, norm: Normalise) -> Result<(DncLists, LoadReport), DncError> {
        let (set, report) = load(&paths, &norm)?;
        Ok((
            DncLists {
                paths,
                norm,
                current: RwLock::new(Arc::new(set)),
                own: RwLock::new(HashSet::new()),
            },
            report,
        ))
    }

    /// Read the files again and swap the new set in; on error the current set stays.
    pub fn reload(&self) -> Result<LoadReport, DncError> {
        let (set, report) = load(&self.paths, &self.norm)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(report)
    }

    /// The current set, to check many numbers against one consistent version.
    pub fn snapshot(&self) -> Arc<HashSet<String>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `normalised` (as stored for a contact) is on a list (a file's or the account's own).
    pub fn contains(&self, normalised: &str) -> bool {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(normalised)
            || self.own_read().contains(normalised)
    }

    fn own_read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.own
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn own_write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.own
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The account's own list as the store holds it (at start).
    pub fn set_own(&self, numbers: HashSet<String>) {
        *self.own_write() = numbers;
    }

    /// A number just added to the own list in the store.
    pub fn add_own(&self, normalised: &str) {
        self.own_write().insert(normalised.to_string());
    }

    /// A number just taken off the own list in the store.
    pub fn remove_own(&self, normalised: &str) {
        self.own_write().remove(normalised);
    }

    /// Whether the own list holds any number (then every campaign checks it).
    pub fn has_own(&self) -> bool {
        !self.own_read().is_empty()
    }

    /// How numbers are written in these lists (the campaign's default country and format).
    pub fn normalise(&self) -> &Normalise {
        &self.norm
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}
