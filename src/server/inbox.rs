//! The inbox folder: a CSV file that appears in it becomes a campaign named after the file, with
//! optional settings from a sidecar `NAME.toml`; the file then moves to `done/`, or, when it
//! cannot be used at all, to `rejected/` with `NAME.csv.error.txt` beside it saying why.
//!
//! Files should arrive complete: write them elsewhere (or under a name starting with `.`) and
//! rename them in; the sidecar must be in place before its CSV. Polled once a second, which
//! works on every filesystem a container may mount. A file written in place is taken only once
//! it looks the same (size, time, inode) at two polls in a row, and read again if it changed
//! while it was read. Symbolic links are refused into `rejected/`, never followed (see
//! [`super::inbox_checks`]).
//!
//! Never imported twice: the file's name and content fingerprint are recorded with its campaign
//! in the transaction that creates it. A file seen again after a crash (recorded, not yet moved)
//! is finished and moved, not imported again. Several replicas may watch one shared folder (on
//! a PostgreSQL store): a file is claimed in the database before it is read, so one replica
//! takes it and the others leave it; a replica that dies lets its claim go, and another
//! finishes what it started.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::inbox_checks::{read_sidecar, refuse_entry, Look, Settle};
use super::{CampaignSettings, CreateError, Service};
use crate::dispatch::{now_ms, Stop};

pub const POLL: Duration = Duration::from_secs(1);

/// Poll `dir` until `stop` leaves [`Stop::Run`].
pub async fn watch(svc: Arc<Service>, dir: PathBuf, mut stop: watch::Receiver<Stop>) {
    for sub in ["done", "rejected"] {
        if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
            tracing::error!(dir = %dir.display(), error = %e, "inbox: cannot create {sub}/");
        }
    }
    tracing::info!(dir = %dir.display(), "watching the inbox for contact files");
    let mut inbox = Inbox::new(dir);
    loop {
        if *stop.borrow() != Stop::Run {
            return;
        }
        inbox.pass(&svc, Some(&stop)).await;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The inbox folder and what its last pass saw. [`watch`] runs a pass a second; tests step it
/// one pass at a time.
pub struct Inbox {
    dir: PathBuf,
    settle: Settle,
}

impl Inbox {
    pub fn new(dir: PathBuf) -> Inbox {
        Inbox {
            dir,
            settle: Settle::default(),
        }
    }

    /// One look at the folder: refuse links and other non-files, take every file that has
    /// stopped changing since the last pass, leave the rest for the next.
    pub async fn pass(&mut self, svc: &Service, stop: Option<&watch::Receiver<Stop>>) {
        let files = csv_files(&self.dir);
        self.settle.keep_only(&files);
        for file in files {
            if stop.is_some_and(|s| *s.borrow() != Stop::Run) {
                return;
            }
            let name = file_name(&file);
            let sidecar = file.with_extension("toml");
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            let refused = refuse_entry(&meta);
            let look = Look::of(&meta);
            if refused.is_none() && !self.settle.ready(&file, look) {
                tracing::info!(file = ?name, bytes = meta.len(), "inbox: file seen; taken once it stops changing");
                continue;
            }
            // Claimed before it is read: of several replicas watching one shared folder, one
            // takes the file, the others leave it.
            match svc.store.claim_inbox_file(&name).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(file = ?name, "inbox: file taken by another replica");
                    continue;
                }
                Err(e) => {
                    tracing::error!(file = ?name, error = %e, "inbox: cannot claim the file; will retry");
                    continue;
                }
            }
            // Moved away meanwhile by the replica that held it until now.
            if std::fs::symlink_metadata(&file).is_ok() {
                match refused {
                    Some(why) => {
                        let why = format!("{name} {why}");
                        reject(svc, &self.dir, &file, &sidecar, &name, "-", &why).await;
                    }
                    None => take(svc, &self.dir, &file, look).await,
                }
            }
            if let Err(e) = svc.store.release_inbox_file(&name).await {
                tracing::warn!(file = ?name, error = %e, "inbox: cannot let the file's claim go");
            }
        }
    }
}

fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `*.csv` entries directly in `dir` (files and links: a link is refused with a reason,
/// not ignored), oldest name first; hidden files are still being written.
fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.')
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
        })
        .collect();
    out.sort();
    out
}

/// What became of one file this pass.
enum Taken {
    /// In a campaign (now or before a restart): move it to `done/`.
    Imported(i64),
    /// Unusable: move it to `rejected/` with the reason.
    Rejected(String),
    /// The store failed: leave it for the next pass.
    Later,
}

/// Import one file (or finish one imported before a crash) and move it away. `look` is how
/// the file looked at the last two passes.
async fn take(svc: &Service, dir: &Path, file: &Path, look: Look) {
    let name = file_name(file);
    let sidecar = file.with_extension("toml");
    let stem = file
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(why) = super::settings::check_name(&stem) {
        let why = format!("the file's name makes the campaign name: {why}");
        return reject(svc, dir, file, &sidecar, &name, "-", &why).await;
    }
    let fingerprint = match hash(file).await {
        Ok(f) => f,
        Err(Some(why)) => return reject(svc, dir, file, &sidecar, &name, "-", &why).await,
        Err(None) => return,
    };
    match import(svc, file, &name, &sidecar, &fingerprint).await {
        Taken::Imported(id) => {
            reread_if_changed(svc, file, &name, look, id).await;
            finish(svc, dir, file, &sidecar, &name, &fingerprint, id).await
        }
        Taken::Rejected(why) => reject(svc, dir, file, &sidecar, &name, &fingerprint, &why).await,
        Taken::Later => {}
    }
}

/// The file's fingerprint; `Err(Some(why))` when it cannot be read, `Err(None)` to retry.
async fn hash(file: &Path) -> Result<String, Option<String>> {
    let path = file.to_path_buf();
    match tokio::task::spawn_blocking(move || crate::intake::fingerprint(&path)).await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(Some(e.to_string())),
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "inbox: cannot read the file; will retry");
            Err(None)
        }
    }
}

/// A file that changed while it was read (written in place after all) is read again: the
/// intake is idempotent per line, so rows appended since are added and rows already stored
/// stay. Its new content is recorded with the same campaign, so it is never imported twice.
async fn reread_if_changed(svc: &Service, file: &Path, name: &str, mut look: Look, id: i64) {
    for _ in 0..3 {
        let Ok(meta) = std::fs::symlink_metadata(file) else {
            return;
        };
        if let Some(why) = refuse_entry(&meta) {
            // Swapped for a link (or something else) after it was read: never followed.
            tracing::warn!(file = ?name, reason = %why, "inbox: the file was replaced while it was read; keeping what was read");
            return;
        }
        let now = Look::of(&meta);
        if now == look {
            return;
        }
        look = now;
        let Ok(fingerprint) = hash(file).await else {
            return;
        };
        tracing::warn!(file = ?name, "inbox: the file changed while it was read; reading it again (write files elsewhere and rename them in)");
        let Ok(Some(c)) = svc.store.campaign(id).await else {
            return;
        };
        if let Err(e) = svc.import(&c, file).await {
            tracing::error!(file = ?name, error = %e, "inbox: cannot read the changed file again");
            return;
        }
        if let Err(e) = svc
            .store
            .record_inbox_file(name, &fingerprint, Some(id), "imported", None, now_ms())
            .await
        {
            tracing::error!(file = ?name, error = %e, "inbox: cannot record the changed file");
        }
    }
}

async fn import(
    svc: &Service,
    file: &Path,
    name: &str,
    sidecar: &Path,
    fingerprint: &str,
) -> Taken {
    let known = match svc.store.inbox_file(name, fingerprint).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(file = %name, error = %e, "inbox: state store failed; will retry");
            return Taken::Later;
        }
    };
    match known {
        // Seen before a restart: finish the intake if it was cut off.
        Some((Some(campaign_id), outcome)) => {
            if outcome != "imported" {
                if let Ok(Some(c)) = svc.store.campaign(campaign_id).await {
                    if !c.intake_done {
                        if let Err(e) = svc.import(&c, file).await {
                            return Taken::Rejected(e.to_string());
                        }
                        // Started only if still active: a pause or halt set before the stop
                        // stands.
                        if let Err(e) = svc.campaigns.start_current(campaign_id).await {
                            tracing::error!(file = %name, error = %e, "inbox: cannot start the campaign; resume it");
                        }
                    }
                }
            }
            Taken::Imported(campaign_id)
        }
        Some((None, _)) => {
            Taken::Rejected("this file was rejected before (same name and content)".into())
        }
        None => {
            // Errors name the file, line, column and key, never the file's text.
            let side_name = file_name(sidecar);
            let settings = match read_sidecar(sidecar) {
                Ok(Some(text)) => match CampaignSettings::parse_toml(&text) {
                    // Values that parsed but are refused: by line and key, never the value.
                    Ok(s) => match s
                        .validate_with(svc.config())
                        .and_then(|()| s.refuse_reserved_name())
                    {
                        Ok(()) => s,
                        Err(e) => {
                            let why = super::toml_error::withhold(&text, &e);
                            return Taken::Rejected(format!("{side_name}: {why}"));
                        }
                    },
                    Err(e) => return Taken::Rejected(format!("{side_name}: {e}")),
                },
                Ok(None) => CampaignSettings::default(),
                Err(why) => return Taken::Rejected(why),
            };
            let stem = file
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let inbox = Some((name.to_string(), fingerprint.to_string()));
            match svc
                .create_campaign_checked(file, settings, stem, inbox, false)
                .await
            {
                Ok(created) => {
                    if let Some(r) = &created.intake {
                        tracing::info!(file = %name, campaign = %created.campaign.name, accepted = r.accepted, skipped = r.skipped, "inbox: campaign created");
                    }
                    Taken::Imported(created.campaign.id)
                }
                Err(CreateError::Input(why))
                | Err(CreateError::Conflict(why))
                | Err(CreateError::Duplicate(why)) => Taken::Rejected(why),
                Err(e) => {
                    tracing::error!(file = %name, error = %e, "inbox: cannot import; will retry");
                    Taken::Later
                }
            }
        }
    }
}

async fn finish(
    svc: &Service,
    dir: &Path,
    file: &Path,
    sidecar: &Path,
    name: &str,
    fingerprint: &str,
    campaign_id: i64,
) {
    if let Err(e) = svc
        .store
        .record_inbox_file(
            name,
            fingerprint,
            Some(campaign_id),
            "imported",
            None,
            now_ms(),
        )
        .await
    {
        tracing::error!(file = %name, error = %e, "inbox: cannot record the import; will retry");
        return;
    }
    move_into(&dir.join("done"), file, sidecar);
}

async fn reject(
    svc: &Service,
    dir: &Path,
    file: &Path,
    sidecar: &Path,
    name: &str,
    fingerprint: &str,
    why: &str,
) {
    tracing::warn!(file = %name, reason = %why, "inbox: file rejected");
    if fingerprint != "-" {
        if let Err(e) = svc
            .store
            .record_inbox_file(
                name,
                fingerprint,
                None,
                "rejected",
                Some(why.into()),
                now_ms(),
            )
            .await
        {
            tracing::error!(file = %name, error = %e, "inbox: cannot record the rejection");
        }
    }
    let target = dir.join("rejected");
    if let Some(moved) = move_into(&target, file, sidecar) {
        let moved_name = moved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let report = moved.with_file_name(report_name(&moved_name));
        if let Err(e) = std::fs::write(&report, format!("{why}\n")) {
            tracing::error!(file = %report.display(), error = %e, "inbox: cannot write the error report");
        }
    }
}

/// `NAME.error.txt`, with NAME cut short when the whole would pass the 255 bytes a file name
/// may have.
fn report_name(name: &str) -> String {
    const SUFFIX: &str = ".error.txt";
    let mut end = name.len().min(255 - SUFFIX.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &name[..end])
}

/// Move the file (and its sidecar) into `target`, never over an existing file. Returns where
/// the CSV went.
fn move_into(target: &Path, file: &Path, sidecar: &Path) -> Option<PathBuf> {
    let dest = free_name(target, file)?;
    if let Err(e) = std::fs::rename(file, &dest) {
        tracing::error!(file = %file.display(), error = %e, "inbox: cannot move the file");
        return None;
    }
    // A link is moved as a link, never followed.
    if std::fs::symlink_metadata(sidecar).is_ok() {
        if let Some(side_dest) = free_name(target, sidecar) {
            let _ = std::fs::rename(sidecar, side_dest);
        }
    }
    Some(dest)
}

fn free_name(target: &Path, file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let free = |p: &PathBuf| std::fs::symlink_metadata(p).is_err();
    let first = target.join(name);
    if free(&first) {
        return Some(first);
    }
    (1..10_000)
        .map(|i| target.join(format!("{name}.{i}")))
        .find(free)
}
