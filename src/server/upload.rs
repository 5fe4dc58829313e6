//! Uploaded contact files, kept in the uploads folder as they arrive.
//!
//! A body is written to a temporary file chunk by chunk while its SHA-256 is computed, never
//! held whole: a 1,000,000-row list is about 25 MB, and buffering it (twice over while axum
//! joined its chunks, then for the whole intake) was most of an importing replica's peak
//! memory. Kept, the file is synced and renamed to `<sha256>.csv` (content-addressed: the same
//! list posted twice is one file); a request refused before then (a body over the limit, bad
//! settings, a client gone part-way) leaves nothing behind.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::api::ApiError;

/// Writes are gathered to this size before they go to the file (a body arrives in chunks of
/// a few KiB).
const WRITE_BUFFER: usize = 256 * 1024;

/// An upload being written: a temporary file in the uploads folder, deleted when dropped
/// unless [`Spool::keep`] renamed it in.
pub struct Spool {
    dir: PathBuf,
    tmp: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    hasher: Sha256,
    len: u64,
    kept: bool,
}

/// An upload kept: `<dir>/<sha256>.csv`.
#[derive(Debug, Clone)]
pub struct Kept {
    pub path: PathBuf,
    pub sha256: String,
}

impl Spool {
    pub async fn create(dir: &Path) -> std::io::Result<Spool> {
        tokio::fs::create_dir_all(dir).await?;
        // A name of its own: two uploads at once (of one list or of two) must not share one.
        let tmp = dir.join(format!("upload-{}.tmp", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            tmp,
            file: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha256::new(),
            len: 0,
            kept: false,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sync the file and rename it to `<sha256>.csv` (an identical upload already kept is
    /// used as it is, and this one deleted).
    pub async fn keep(mut self) -> std::io::Result<Kept> {
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let path = self.dir.join(format!("{sha256}.csv"));
        if !tokio::fs::try_exists(&path).await? {
            tokio::fs::rename(&self.tmp, &path).await?;
            self.kept = true;
        }
        Ok(Kept { path, sha256 })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.kept {
            // Nothing to do about a failure here: the name is unique, and it is never read.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The answer when the uploads folder cannot be written.
pub fn cannot_keep(e: std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("cannot keep the upload: {e}"),
    )
}

/// A plain request body written to a [`Spool`] in `dir`, at most `limit` bytes: more is 413
/// `too_large`, as axum answers for the bodies it reads itself (`--max-body-mib`).
pub async fn spool_body(dir: &Path, body: Body, limit: usize) -> Result<Spool, ApiError> {
    let mut spool = Spool::create(dir).await.map_err(cannot_keep)?;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if spool.len() + chunk.len() as u64 > limit as u64 {
            return Err(too_large(limit));
        }
        spool.write(&chunk).await.map_err(cannot_keep)?;
    }
    Ok(spool)
}

/// A multipart form's part written to a [`Spool`] in `dir` (the form's body is limited by
/// axum already: more is the field's own 413).
pub async fn spool_field(
    dir: &Path,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<Spool, ApiError> {
    let mut spool = Spool::create(dir).await.map_err(cannot_keep)?;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?
    {
        spool.write(&chunk).await.map_err(cannot_keep)?;
    }
    Ok(spool)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::rejected(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the limit of {limit} bytes (`--max-body-mib`)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn a_body_is_kept_under_its_digest_and_once_for_two_identical_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let text = "callee\n+8613800000001\n".repeat(20_000);
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = text
            .as_bytes()
            .chunks(7_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let spool = spool_body(dir.path(), body, usize::MAX).await.unwrap();
        assert_eq!(spool.len(), text.len() as u64);
        let kept = spool.keep().await.unwrap();
        assert_eq!(kept.sha256, sha(text.as_bytes()));
        assert_eq!(kept.path, dir.path().join(format!("{}.csv", kept.sha256)));
        assert_eq!(std::fs::read_to_string(&kept.path).unwrap(), text);
        let again = spool_body(dir.path(), Body::from(text.clone()), usize::MAX)
            .await
            .unwrap()
            .keep()
            .await
            .unwrap();
        assert_eq!(again.path, kept.path);
        assert_eq!(names(dir.path()), vec![format!("{}.csv", kept.sha256)]);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_or_cut_off_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = spool_body(dir.path(), Body::from(vec![b'x'; 1001]), 1000)
            .await
            .err()
            .unwrap();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.code, "too_large");
        // Exactly at the limit is taken.
        let at = spool_body(dir.path(), Body::from(vec![b'x'; 1000]), 1000)
            .await
            .unwrap();
        assert_eq!(at.len(), 1000);
        drop(at);
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"callee\n+86138")),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "gone",
            )),
        ];
        let e = spool_body(
            dir.path(),
            Body::from_stream(futures_util::stream::iter(chunks)),
            usize::MAX,
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[tokio::test]
    async fn the_body_is_on_disk_as_it_arrives_not_held_until_its_end() {
        // The memory bound itself: with the body's end not yet sent, what came so far is in
        // the file already (a buffered body would have written nothing yet).
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            );
        let path = dir.path().to_path_buf();
        let reader =
            tokio::spawn(
                async move { spool_body(&path, Body::from_stream(stream), usize::MAX).await },
            );
        let chunk = vec![b'1'; 64 * 1024];
        let sent = 4 * WRITE_BUFFER;
        for _ in 0..sent / chunk.len() {
            tx.send(Ok(bytes::Bytes::from(chunk.clone())))
                .await
                .unwrap();
        }
        let on_disk = || -> u64 {
            std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        };
        // Bounded: the writes are the spool's own tasks, not a timing question.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // (At most a buffer's worth waits in the writer, and one more on its way to the file.)
        while on_disk() < (sent - 2 * WRITE_BUFFER) as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} bytes on disk of {sent} sent",
                on_disk()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(tx);
        let spool = reader.await.unwrap().unwrap();
        assert_eq!(spool.len(), sent as u64);
    }
}
