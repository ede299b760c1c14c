//! The accuracy-constrained search's record: every probe, and the value kept.

use serde::{Deserialize, Serialize};

/// The validation metric a search holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMetric {
    /// Validation accuracy must not fall more than the tolerance below the dense model's.
    ValAccuracy,
    /// Validation loss must not rise more than the tolerance above the dense model's.
    ValLoss,
}

impl SearchMetric {
    /// As configs and tables spell it.
    pub fn name(self) -> &'static str {
        match self {
            SearchMetric::ValAccuracy => "val_accuracy",
            SearchMetric::ValLoss => "val_loss",
        }
    }
}

/// What a search varies: the rule the config gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchRule {
    /// The target sparsity.
    Sparsity,
    /// The threshold's α (θ = α·max).
    Alpha,
}

impl SearchRule {
    /// As configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            SearchRule::Sparsity => "sparsity",
            SearchRule::Alpha => "alpha",
        }
    }
}

/// The search's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// What was searched.
    pub rule: SearchRule,
    /// Its upper end (the config's value).
    pub upper: f64,
    /// The metric held.
    pub metric: SearchMetric,
    /// How far from the dense model's metric a probe may be.
    pub tolerance: f64,
    /// The dense model's metric.
    pub dense: f64,
    /// In probe order.
    pub probes: Vec<Probe>,
    /// The highest kept value (`null`: none kept, the dense model stays).
    #[serde(deserialize_with = "crate::file::required")]
    pub chosen: Option<f64>,
}

/// One probe of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The sparsity or alpha probed.
    pub value: f64,
    /// Fraction of prunable weights pruned.
    pub sparsity: f64,
    /// The validation metric after fine-tuning.
    pub metric: f64,
    /// Within the tolerance of the dense model.
    pub kept: bool,
}
