//! Magnitude criteria: |w| (the write-up's L1) and w² (L2).

use super::{Importance, ScoreInput};
use crate::error::PruneError;

/// |w|: PyTorch's `l1_unstructured`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Magnitude;

impl Importance for Magnitude {
    fn name(&self) -> &'static str {
        "l1"
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        Ok(input.weight.iter().map(|w| w.abs()).collect())
    }
}

/// w²: ranks exactly as |w| for single weights; differs once summed over groups (L2 norms).
#[derive(Debug, Clone, Copy, Default)]
pub struct SquaredMagnitude;

impl Importance for SquaredMagnitude {
    fn name(&self) -> &'static str {
        "l2"
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        Ok(input.weight.iter().map(|w| w * w).collect())
    }
}
