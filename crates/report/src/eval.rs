//! One evaluation per data split: what a network scored, at the end or at a phase boundary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Loss and accuracy on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitEval {
    /// Samples evaluated.
    pub n: usize,
    /// Mean loss.
    pub loss: f64,
    /// Fraction correct; `null` for regression.
    #[serde(deserialize_with = "crate::file::required")]
    pub accuracy: Option<f64>,
    /// Samples classified correctly (the run summary's final evaluation records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<usize>,
}

/// Evaluations by split name (`train`, `valid`, `test`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evals(pub BTreeMap<String, SplitEval>);

impl Evals {
    /// The split a run's headline number comes from: test, else validation, else train.
    pub fn reported(&self) -> Option<(&str, &SplitEval)> {
        ["test", "valid", "train"]
            .into_iter()
            .find_map(|s| self.0.get(s).map(|e| (s, e)))
    }

    /// The evaluation of `split`.
    pub fn get(&self, split: &str) -> Option<&SplitEval> {
        self.0.get(split)
    }

    /// The accuracy on `split`, when it was evaluated and is a classification.
    pub fn accuracy(&self, split: &str) -> Option<f64> {
        self.get(split).and_then(|e| e.accuracy)
    }
}
