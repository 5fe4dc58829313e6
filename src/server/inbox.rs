//! The inbox folder: a CSV file that appears in it becomes a campaign named after the file, with
//! optional settings from a sidecar `NAME.toml`; the file then moves to `done/`, or, when it
//! cannot be used at all, to `rejected/` with `NAME.csv.error.txt` beside it saying why.
//!
//! Files must arrive complete: write them elsewhere (or under a name starting with `.`) and
//! rename them in; the sidecar must be in place before its CSV. Polled once a second, which
//! works on every filesystem a container may mount.
//!
//! Never imported twice: the file's name and content fingerprint are recorded with its campaign
//! in the transaction that creates it. A file seen again after a crash (recorded, not yet moved)
//! is finished and moved, not imported again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

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
    loop {
        if *stop.borrow() != Stop::Run {
            return;
        }
        for file in csv_files(&dir) {
            if *stop.borrow() != Stop::Run {
                return;
            }
            take(&svc, &dir, &file).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The `*.csv` files directly in `dir`, oldest name first; hidden files are still being written.
fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
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

/// Import one file (or finish one imported before a crash) and move it away.
async fn take(svc: &Service, dir: &Path, file: &Path) {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let sidecar = file.with_extension("toml");
    let path = file.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || crate::intake::fingerprint(&path)).await;
    let fingerprint = match hashed {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return reject(svc, dir, file, &sidecar, &name, "-", &e.to_string()).await,
        Err(e) => {
            tracing::error!(file = %name, error = %e, "inbox: cannot read the file; will retry");
            return;
        }
    };
    match import(svc, file, &name, &sidecar, &fingerprint).await {
        Taken::Imported(id) => finish(svc, dir, file, &sidecar, &name, &fingerprint, id).await,
        Taken::Rejected(why) => reject(svc, dir, file, &sidecar, &name, &fingerprint, &why).await,
        Taken::Later => {}
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
                        if let Ok(Some(c)) = svc.store.campaign(campaign_id).await {
                            svc.campaigns.start(&c);
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
            let settings = match std::fs::read_to_string(sidecar) {
                Ok(text) => match CampaignSettings::from_toml(&text) {
                    Ok(s) => s,
                    Err(e) => return Taken::Rejected(format!("{}: {e}", sidecar.display())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => CampaignSettings::default(),
                Err(e) => {
                    return Taken::Rejected(format!("{}: cannot read: {e}", sidecar.display()))
                }
            };
            let stem = file
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let inbox = Some((name.to_string(), fingerprint.to_string()));
            match svc.create_campaign(file, settings, stem, inbox).await {
                Ok(created) => {
                    if let Some(r) = &created.intake {
                        tracing::info!(file = %name, campaign = %created.campaign.name, accepted = r.accepted, skipped = r.skipped, "inbox: campaign created");
                    }
                    Taken::Imported(created.campaign.id)
                }
                Err(CreateError::Input(why)) | Err(CreateError::Conflict(why)) => {
                    Taken::Rejected(why)
                }
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
        let report = moved.with_file_name(format!(
            "{}.error.txt",
            moved.file_name().and_then(|n| n.to_str()).unwrap_or(name)
        ));
        if let Err(e) = std::fs::write(&report, format!("{why}\n")) {
            tracing::error!(file = %report.display(), error = %e, "inbox: cannot write the error report");
        }
    }
}

/// Move the file (and its sidecar) into `target`, never over an existing file. Returns where
/// the CSV went.
fn move_into(target: &Path, file: &Path, sidecar: &Path) -> Option<PathBuf> {
    let dest = free_name(target, file)?;
    if let Err(e) = std::fs::rename(file, &dest) {
        tracing::error!(file = %file.display(), error = %e, "inbox: cannot move the file");
        return None;
    }
    if sidecar.is_file() {
        if let Some(side_dest) = free_name(target, sidecar) {
            let _ = std::fs::rename(sidecar, side_dest);
        }
    }
    Some(dest)
}

fn free_name(target: &Path, file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let first = target.join(name);
    if !first.exists() {
        return Some(first);
    }
    (1..10_000)
        .map(|i| target.join(format!("{name}.{i}")))
        .find(|p| !p.exists())
}
