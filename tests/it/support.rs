//! Shared test scaffolding: paths to test data, the built-in stand-in on port 0, child processes.

use std::path::PathBuf;

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}
