//! Where the results file may go: never over the files the dialer reads or keeps its state in.
//! `--results s.db --state s.db` would rename the CSV over the SQLite store; `--results c.csv
//! --contacts c.csv` would overwrite the input. Paths are compared canonically (symlinks and
//! `..` resolved, the file itself need not exist yet), and by device and inode when both
//! files exist (a hard link is the same file under another name).

use std::path::{Path, PathBuf};

/// A file the results must not replace, and what it is (for the message).
pub struct Protected<'a> {
    pub what: String,
    pub path: &'a Path,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--results {results}: is the same file as {what} ({path}); refusing to overwrite it, nothing was written\n\
     hint: name a separate results file, e.g. --results results.csv"
)]
pub struct SameFile {
    pub results: PathBuf,
    pub what: String,
    pub path: PathBuf,
}

/// The store's own files: the SQLite file, its WAL and shared-memory files, and its lock.
pub fn store_files(state: &Path) -> Vec<(String, PathBuf)> {
    let with = |suffix: &str| {
        let mut s = state.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    vec![
        ("--state".to_string(), state.to_path_buf()),
        ("the state store's WAL file".to_string(), with("-wal")),
        (
            "the state store's shared-memory file".to_string(),
            with("-shm"),
        ),
        (
            "the state store's lock file".to_string(),
            crate::store::lock::lock_path(state),
        ),
    ]
}

/// Refuse a results path that is (or whose temporary file, written before the rename, is) one
/// of `protected`.
pub fn check(results: &Path, protected: &[Protected<'_>]) -> Result<(), SameFile> {
    for candidate in [results.to_path_buf(), super::temporary(results)] {
        for p in protected {
            if same_file(&candidate, p.path) {
                return Err(SameFile {
                    results: results.to_path_buf(),
                    what: p.what.clone(),
                    path: p.path.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if (ma.dev(), ma.ino()) == (mb.dev(), mb.ino()) {
                return true;
            }
        }
        #[cfg(not(unix))]
        let _ = (ma, mb);
    }
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The canonical path of `p`, whether or not the file exists: its folder canonicalised, its
/// name kept. `None` when the folder does not exist either (then nothing can collide).
fn canonical(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let name = p.file_name()?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected<'a>(what: &str, path: &'a Path) -> Protected<'a> {
        Protected {
            what: what.to_string(),
            path,
        }
    }

    #[test]
    fn the_same_file_by_another_spelling_a_hard_link_or_a_missing_wal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        std::fs::write(&state, b"x").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let files = store_files(&state);
        let guard: Vec<Protected> = files.iter().map(|(w, p)| protected(w, p)).collect();
        // Another spelling of the store.
        let e = check(&sub.join("../s.db"), &guard).unwrap_err();
        assert_eq!(e.what, "--state");
        // Its WAL file, which does not exist yet.
        let e = check(&dir.path().join("s.db-wal"), &guard).unwrap_err();
        assert_eq!(e.what, "the state store's WAL file");
        // A hard link to the store.
        std::fs::hard_link(&state, dir.path().join("link.csv")).unwrap();
        assert!(check(&dir.path().join("link.csv"), &guard).is_err());
        // A separate file is fine, existing or not.
        assert!(check(&dir.path().join("results.csv"), &guard).is_ok());
        assert!(check(&dir.path().join("nodir/results.csv"), &guard).is_ok());
    }
}
