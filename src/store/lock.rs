//! One writing process per store: an exclusive OS lock (`flock`) on `STATE.lock` beside the
//! SQLite file, held by `run` and `serve` for as long as the process lives.
//!
//! Invariants:
//! - The lock belongs to the open file, not to the file's contents: the OS releases it on any
//!   exit, `kill -9` and a crash included, so a stale lock file never blocks the next run.
//! - The holder writes who it is (pid, command, since when) into the file *after* taking the
//!   lock; a process refused the lock reads that to name the holder.
//! - Readers (`status`, `export`) never take the exclusive lock. They probe with a shared lock
//!   for an instant to learn whether a writer is live; a writer that meets such a probe tries
//!   again for a moment before it concludes the store is taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer keeps trying while the lock is held only by a reader's probe.
const PROBE_PATIENCE: Duration = Duration::from_millis(500);
const PROBE_STEP: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{state}: the state store is in use by another ccc-dialer process ({holder})\n\
         hint: one process per store; stop that one first, or use another --state file"
    )]
    Held { state: PathBuf, holder: String },
    #[error(
        "{target}: the state store is in use by another ccc-dialer process ({holder})\n\
         hint: `run` and `serve` share a PostgreSQL store (database and schema) with each \
         other; `purge`, `requeue`, `outcomes` and `dnc` need it to themselves, and so does a \
         ccc-dialer from before leases: stop those first, or use another schema \
         (`?options=-csearch_path%3DNAME`) or database"
    )]
    PgHeld { target: String, holder: String },
    #[error("{path}: cannot lock the state store: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// The lock file of the store at `state`: `STATE.lock` beside the real file. The path is
/// resolved first (symlinks, `..`, a relative spelling), so two processes that name one store
/// differently (`--state s.db` and `--state link-to-s.db`) meet at the same lock.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = resolved(state).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// `state` with symlinks and `..` resolved: the file itself when it exists, else its folder
/// resolved and its name kept (a store not created yet); as given when neither resolves.
fn resolved(state: &Path) -> PathBuf {
    if let Ok(real) = state.canonicalize() {
        return real;
    }
    let parent = match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), state.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => state.to_path_buf(),
    }
}

/// The exclusive lock of one store, released when dropped or when the process ends.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Take the store's lock for `command` (e.g. `run`), or say who holds it.
    pub fn acquire(state: &Path, command: &str) -> Result<StoreLock, LockError> {
        let path = lock_path(state);
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        // Never truncate on open: the file may hold a live holder's name.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut waited = Duration::ZERO;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    // An empty file: a reader's probe (or a writer between its lock and its
                    // note). Either passes within moments.
                    if holder.is_none() && waited < PROBE_PATIENCE {
                        std::thread::sleep(PROBE_STEP);
                        waited += PROBE_STEP;
                        continue;
                    }
                    return Err(LockError::Held {
                        state: state.to_path_buf(),
                        holder: holder
                            .unwrap_or_else(|| "a process that has not said which".to_string()),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let note = format!(
            "pid {}, `ccc-dialer {command}`, since {}",
            std::process::id(),
            jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC")
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(note.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StoreLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Leave no stale name behind on a clean exit (the lock itself goes with the file).
        let _ = self._file.set_len(0);
    }
}

/// The live writer of the store at `state`, described, if there is one. Takes no lock that a
/// writer could meet for more than an instant, and creates no file.
pub fn live_writer(state: &Path) -> Option<String> {
    let path = lock_path(state);
    let mut file = OpenOptions::new().read(true).open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(
            read_holder(&mut file).unwrap_or_else(|| "a process that has not said which".into()),
        ),
        Err(TryLockError::Error(_)) => None,
    }
}

/// What the holder wrote into the lock file (bounded: the file is ours, but never trust size).
fn read_holder(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(1024).read_to_string(&mut text).ok()?;
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_store_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let first = StoreLock::acquire(&state, "run --state s.db").unwrap();
        assert_eq!(
            first.path(),
            dir.path().canonicalize().unwrap().join("s.db.lock")
        );
        let e = StoreLock::acquire(&state, "serve").unwrap_err().to_string();
        assert!(e.contains("in use by another ccc-dialer process"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("`ccc-dialer run --state s.db`, since 20"), "{e}");
        let writer = live_writer(&state).unwrap();
        assert!(writer.contains("ccc-dialer run"), "{writer}");
        drop(first);
        assert_eq!(live_writer(&state), None);
        let again = StoreLock::acquire(&state, "serve").unwrap();
        drop(again);
    }

    #[cfg(unix)]
    #[test]
    fn one_store_named_through_a_symlink_or_dot_dot_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        std::fs::write(&state, b"").unwrap();
        std::os::unix::fs::symlink(&state, dir.path().join("link.db")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let _first = StoreLock::acquire(&state, "run").unwrap();
        for other in [dir.path().join("link.db"), dir.path().join("sub/../s.db")] {
            let e = StoreLock::acquire(&other, "serve").unwrap_err().to_string();
            assert!(e.contains("in use by another ccc-dialer process"), "{e}");
            assert!(live_writer(&other).is_some(), "{}", other.display());
        }
    }

    #[test]
    fn no_lock_file_means_no_writer() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(live_writer(&dir.path().join("none.db")), None);
        assert!(!dir.path().join("none.db.lock").exists());
    }
}
