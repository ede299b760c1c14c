//! Integration tests of the trainer: one test binary (matklad's "Delete Cargo Integration
//! Tests"), one module per concern.

mod cli;
mod config_errors;
mod conv;
mod datasets;
mod dynamic_pruning;
mod end_to_end;
mod experiments;
mod fuzz;
mod hardening;
mod payoff;
mod resume;
mod slurm;
mod sparse_training;
mod static_pruning;
#[cfg(feature = "wgpu")]
mod wgpu;
mod writeup;

use std::path::{Path, PathBuf};

use trainer::config::{LoadedConfig, load_config};
use trainer::experiment::RunOptions;

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

/// A shipped config from `configs/`, with `--set`-style overrides.
pub fn shipped(name: &str, overrides: &[&str]) -> LoadedConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_config(&repo().join("configs").join(name), &o).unwrap()
}

/// Run options writing run folders under `root`, without a progress bar.
pub fn opts(root: &Path) -> RunOptions {
    RunOptions {
        runs_root: root.to_path_buf(),
        out: None,
        progress: false,
        from: None,
        resume: None,
    }
}
