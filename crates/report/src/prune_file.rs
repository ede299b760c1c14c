//! `trainer prune`'s report: masks chosen for a model file from outside Lopper.

use serde::{Deserialize, Serialize};

/// The report of one `trainer prune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// The model file read.
    pub input: String,
    /// The file written.
    pub output: String,
    /// How its 2-D weights are laid out.
    pub layout: String,
    /// The criterion's name.
    pub criterion: String,
    /// One entry per pruned weight.
    pub layers: Vec<FileLayer>,
    /// Over all of them.
    pub total: FileTotals,
    /// What the selection warned about.
    pub warnings: Vec<String>,
}

/// One pruned weight of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileLayer {
    /// The tensor's name in the file.
    pub name: String,
    /// Its shape, as stored.
    pub shape: Vec<usize>,
    /// Weights in it.
    pub weights: usize,
    /// Of them kept.
    pub kept: usize,
    /// 1 − kept / weights.
    pub sparsity: f64,
}

/// Counts over every pruned weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileTotals {
    /// Weights.
    pub weights: usize,
    /// Of them kept.
    pub kept: usize,
    /// 1 − kept / weights.
    pub sparsity: f64,
}
