//! What the inbox checks before it reads a file: that it is a regular file and not a symbolic
//! link (a link would let anyone who may write to the inbox make the service read, and quote,
//! any file it can read), that it has stopped changing (a file copied in place, e.g. by
//! `docker compose cp`, is imported whole, not half), and that its name makes a valid campaign
//! name.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest settings file read (a settings file is a few lines).
pub const SIDECAR_MAX_BYTES: u64 = 64 * 1024;

/// What a file looked like at one poll: size, modification time, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    len: u64,
    modified: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl Look {
    pub fn of(meta: &Metadata) -> Look {
        Look {
            len: meta.len(),
            modified: meta.modified().ok(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The file as it is now (not following a link); `None` when it is gone.
    pub fn now(path: &Path) -> Option<Look> {
        std::fs::symlink_metadata(path).ok().map(|m| Look::of(&m))
    }
}

/// Files seen at the previous poll: a file is taken only once it looks the same at two polls
/// in a row, so one still being written waits.
#[derive(Debug, Default)]
pub struct Settle {
    seen: HashMap<PathBuf, Look>,
}

impl Settle {
    /// Whether `path`, looking like `look` now, looked the same at the previous poll. Records
    /// `look` for the next one.
    pub fn ready(&mut self, path: &Path, look: Look) -> bool {
        let before = self.seen.insert(path.to_path_buf(), look);
        before == Some(look)
    }

    /// Forget files no longer in the folder (taken, moved or deleted).
    pub fn keep_only(&mut self, present: &[PathBuf]) {
        self.seen.retain(|p, _| present.contains(p));
    }
}

/// Why a directory entry is refused before it is read, if it is.
pub fn refuse_entry(meta: &Metadata) -> Option<String> {
    if meta.file_type().is_symlink() {
        return Some(
            "is a symbolic link: links are never followed in the inbox; move or copy the file itself in"
                .into(),
        );
    }
    if !meta.is_file() {
        return Some("is not a regular file".into());
    }
    None
}

/// The settings file beside a CSV: `Ok(None)` when there is none. Never follows a link: the
/// file is opened and then checked to be the regular file the directory holds (a link swapped
/// in between is caught by its inode), and at most [`SIDECAR_MAX_BYTES`] are read.
pub fn read_sidecar(path: &Path) -> Result<Option<String>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let listed = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{name}: cannot read: {e}")),
    };
    if let Some(why) = refuse_entry(&listed) {
        return Err(format!("{name} {why}"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let opened = file
        .metadata()
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    if (opened.dev(), opened.ino()) != (listed.dev(), listed.ino()) {
        return Err(format!(
            "{name} was replaced while it was opened: links are never followed in the inbox"
        ));
    }
    if opened.len() > SIDECAR_MAX_BYTES {
        return Err(format!(
            "{name} is {} bytes: expected at most {SIDECAR_MAX_BYTES} (a settings file is a few lines)",
            opened.len()
        ));
    }
    let mut text = String::new();
    file.take(SIDECAR_MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: cannot read as UTF-8 text: {}", e.kind()))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_ready_only_once_it_looks_the_same_at_two_polls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "callee\n").unwrap();
        let mut s = Settle::default();
        assert!(!s.ready(&p, Look::now(&p).unwrap()), "first sight waits");
        assert!(s.ready(&p, Look::now(&p).unwrap()));
        std::fs::write(&p, "callee\n+8613800000000\n").unwrap();
        assert!(!s.ready(&p, Look::now(&p).unwrap()), "grown: waits again");
        assert!(s.ready(&p, Look::now(&p).unwrap()));
        s.keep_only(&[]);
        assert!(!s.ready(&p, Look::now(&p).unwrap()), "forgotten");
    }

    #[test]
    fn a_linked_sidecar_is_refused_without_reading_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key");
        std::fs::write(&secret, "AKIDsecretvalue123\n").unwrap();
        let side = dir.path().join("a.toml");
        std::os::unix::fs::symlink(&secret, &side).unwrap();
        let e = read_sidecar(&side).unwrap_err();
        assert!(e.starts_with("a.toml is a symbolic link"), "{e}");
        assert!(!e.contains("AKID"));
        assert_eq!(read_sidecar(&dir.path().join("none.toml")), Ok(None));
        std::fs::write(dir.path().join("b.toml"), "priority = 1\n").unwrap();
        assert_eq!(
            read_sidecar(&dir.path().join("b.toml")),
            Ok(Some("priority = 1\n".into()))
        );
    }
}
