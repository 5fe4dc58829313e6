//! Intake into the store: stream a contacts file into a campaign, parsing on a blocking thread
//! while the store writes the previous batch (two cores, two stages; bounded memory).

use std::path::{Path, PathBuf};

use crate::calling::dnc::DncLists;
use crate::intake::{self, IntakeError, IntakeOptions, IntakeSummary};
use crate::store::{IntakeCounts, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("intake thread failed: {0}")]
    Thread(String),
}

/// What intake did, for the operator.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub summary: IntakeSummary,
    pub counts: IntakeCounts,
}

/// Stream `path` into campaign `campaign_id`. Idempotent per line, so an interrupted intake can
/// simply be run again.
pub async fn import_file(
    store: &Store,
    campaign_id: i64,
    path: &Path,
    opts: &IntakeOptions,
    now_ms: i64,
) -> Result<ImportReport, ImportError> {
    import_file_with(store, campaign_id, path, opts, None, now_ms).await
}

/// [`import_file`], with contacts on a do-not-call list stored as `skipped` (reason `dnc`).
pub async fn import_file_with(
    store: &Store,
    campaign_id: i64,
    path: &Path,
    opts: &IntakeOptions,
    dnc: Option<&DncLists>,
    now_ms: i64,
) -> Result<ImportReport, ImportError> {
    import_file_after(store, campaign_id, path, opts, dnc, 0, now_ms).await
}

/// [`import_file_with`] for contacts added to a campaign that has some: the file's line `n` is
/// stored as line `first_line + n`, after the campaign's own (line numbers are the contacts'
/// identity within a campaign). A callee already in the campaign is a `skipped` duplicate.
pub async fn import_file_after(
    store: &Store,
    campaign_id: i64,
    path: &Path,
    opts: &IntakeOptions,
    dnc: Option<&DncLists>,
    first_line: u64,
    now_ms: i64,
) -> Result<ImportReport, ImportError> {
    let suppressed = dnc.filter(|d| !d.is_empty()).map(DncLists::snapshot);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<crate::contact::NewContact>>(4);
    let path_buf: PathBuf = path.to_path_buf();
    let opts = opts.clone();
    let parser = tokio::task::spawn_blocking(move || {
        intake::read_file(&path_buf, &opts, |batch| {
            tx.blocking_send(batch)
                .map_err(|_| "the store stopped taking contacts".to_string())
        })
    });
    let mut counts = IntakeCounts::default();
    let mut store_error = None;
    while let Some(mut batch) = rx.recv().await {
        if first_line > 0 {
            for row in batch.iter_mut() {
                row.line += first_line;
            }
        }
        if let Some(set) = &suppressed {
            for row in batch.iter_mut() {
                if row.skip_reason.is_none() && set.contains(&row.callee) {
                    row.skip_reason = Some(crate::contact::DNC_REASON.to_string());
                }
            }
        }
        match store.insert_contacts(campaign_id, batch, now_ms).await {
            Ok(c) => {
                counts.accepted += c.accepted;
                counts.skipped += c.skipped;
                counts.duplicates += c.duplicates;
                counts.already_stored += c.already_stored;
            }
            Err(e) => {
                store_error = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let summary = parser.await.map_err(|e| ImportError::Thread(e.to_string()));
    if let Some(e) = store_error {
        return Err(e.into());
    }
    let summary = summary??;
    Ok(ImportReport { summary, counts })
}
