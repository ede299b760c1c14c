//! Integration tests of the trainer: one test binary (matklad's "Delete Cargo Integration
//! Tests"), one module per concern.

mod cli;
mod config_errors;
mod datasets;
mod end_to_end;
mod static_pruning;

use std::path::{Path, PathBuf};

/// The repository root (tests run from the crate's folder).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
