//! A lottery run's levels: each level's ticket and its reinit control.

use serde::{Deserialize, Serialize};

use crate::Evals;

/// One level of a lottery run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// 0 = the dense network.
    pub level: usize,
    /// Sparsity of the level's masks.
    pub sparsity: f64,
    /// The rewound ticket, trained.
    pub ticket: LevelResult,
    /// The same masks on a fresh initialisation, trained (levels ≥ 1, when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<LevelResult>,
}

/// How one training of a level went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelResult {
    /// Best validation accuracy over its epochs (`null` without a validation split).
    #[serde(deserialize_with = "crate::file::required")]
    pub best_valid_accuracy: Option<f64>,
    /// Optimizer steps at that epoch.
    pub best_step: usize,
    /// That epoch.
    pub best_epoch: usize,
    /// Test accuracy at that epoch.
    #[serde(deserialize_with = "crate::file::required")]
    pub test_accuracy_at_best: Option<f64>,
    /// The evaluation at the end of its training.
    #[serde(rename = "final")]
    pub final_evals: Evals,
}
