//! The results CSV: one row per contact, appended and flushed as each contact becomes final,
//! and rewritten whole from the store at the start and end of a run, so the file always ends
//! with every contact exactly once, whatever happened in between.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::contact::ResultRow;
use crate::store::{ResultExtras, Store, StoreError};

pub mod cells;
pub mod target;

pub const COLUMNS: [&str; 19] = [
    "callee",
    "status",
    "session_id",
    "request_id",
    "error_code",
    "error_message",
    "attempts",
    "line",
    "id",
    "updated_at",
    "outcome",
    "end_status",
    "end_status_string",
    "duration_s",
    "answered_at",
    "ended_at",
    "hangup_side",
    "dials",
    "first_dialled_at",
];

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: cannot write the results file: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: cannot read the results file: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ResultsError {
    ResultsError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The header of a campaign's results: [`COLUMNS`], then what the AI agent learned (see
/// [`ResultExtras`]: `summary`, `mood`, `intention` once the campaign has an analysis, and
/// `tag:NAME` per post-call tag name seen in it, in the order first seen).
pub fn header(extras: &ResultExtras) -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(
            extras
                .header()
                .into_iter()
                .map(|h| cells::neutralise(&h).into_owned()),
        )
        .collect()
}

/// One row as written: the neutralised row and its extra cells.
pub fn write_row<W: std::io::Write>(
    w: &mut csv::Writer<W>,
    row: &ResultRow,
    extras: &[String],
) -> csv::Result<()> {
    if extras.is_empty() {
        return w.serialize(cells::row(row));
    }
    let extras: Vec<String> = extras
        .iter()
        .map(|c| cells::neutralise(c).into_owned())
        .collect();
    w.serialize((cells::row(row), extras))
}

/// Rewrite `path` from the store: every contact (or only final ones), in line order. Written to
/// a temporary file beside it and renamed, so a crash leaves the old file or the new one.
pub async fn rewrite(
    store: &Store,
    campaign_id: i64,
    path: &Path,
    only_final: bool,
) -> Result<u64, ResultsError> {
    let tmp = temporary(path);
    let file = File::create(&tmp).map_err(|e| write_err(&tmp, e))?;
    let extras = store.result_extras(campaign_id).await?;
    // The header is written explicitly so that a file with no rows still has it.
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(std::io::BufWriter::new(file));
    w.write_record(header(&extras))
        .map_err(|e| write_err(&tmp, e))?;
    let tmp2 = tmp.clone();
    let (n, w) = store
        .for_each_result_with(campaign_id, only_final, extras, w, move |w, row, extra| {
            write_row(w, &row, &extra)
                .map_err(|e| StoreError::Other(format!("{}: {e}", tmp2.display())))
        })
        .await?;
    let buf = w.into_inner().map_err(|e| write_err(&tmp, e.error()))?;
    let file = buf.into_inner().map_err(|e| write_err(&tmp, e.error()))?;
    file.sync_all().map_err(|e| write_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(path, e))?;
    Ok(n)
}

/// The file a rewrite writes before renaming it over `path`.
pub fn temporary(path: &Path) -> PathBuf {
    path.with_extension("csv.tmp")
}

/// Appends rows as contacts become final; each row is flushed to the OS at once. A file whose
/// header has extra columns (tags, analysis) gets them empty: the rewrite at the end of the run
/// fills them in.
pub struct Appender {
    path: PathBuf,
    writer: Mutex<csv::Writer<File>>,
    blanks: Vec<String>,
}

impl Appender {
    pub fn open(path: &Path) -> Result<Appender, ResultsError> {
        let width = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(path)
            .ok()
            .and_then(|mut r| r.records().next())
            .and_then(Result::ok)
            .map_or(COLUMNS.len(), |h| h.len());
        let blanks = vec![String::new(); width.saturating_sub(COLUMNS.len())];
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| write_err(path, e))?;
        Ok(Appender {
            path: path.to_path_buf(),
            writer: Mutex::new(
                csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(file),
            ),
            blanks,
        })
    }

    pub fn append(&self, row: &ResultRow) -> Result<(), ResultsError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_row(&mut w, row, &self.blanks).map_err(|e| write_err(&self.path, e))?;
        w.flush().map_err(|e| write_err(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read a results file back (tests, tools).
pub fn read(path: &Path) -> Result<Vec<ResultRow>, ResultsError> {
    let read_err = |e: csv::Error| ResultsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(read_err)?;
    let mut out = Vec::new();
    for row in r.deserialize() {
        out.push(row.map_err(read_err)?);
    }
    Ok(out)
}

impl Drop for Appender {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            let _ = w.flush();
            let _ = w.get_ref().sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_missing_results_file_says_read_not_write() {
        let e = read(Path::new("/nonexistent/results.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/results.csv: cannot read the results file: "),
            "{e}"
        );
    }
}
