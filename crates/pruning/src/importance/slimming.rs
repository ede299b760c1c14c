//! Network Slimming (Liu et al. 2017): a channel is as important as the |γ| of the batch norm
//! that scales it. Trained with an L1 penalty on γ, unneeded channels' γ shrink towards zero,
//! and pruning the smallest removes channels the network has already switched off.

use super::Importance;
use crate::error::PruneError;

/// Scores a layer's units (channels) by their batch norm's |γ|; its weights carry no score of
/// their own. Layers without a batch norm keep their units (in layer scope, the only scope it
/// takes). Only for neuron (channel) granularity; ties go by index.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slimming;

impl Importance for Slimming {
    fn name(&self) -> &'static str {
        "slimming"
    }

    /// |w|, which `prune_once` replaces with the units' |γ|.
    fn score(&self, input: &super::ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        Ok(input.weight.iter().map(|w| w.abs()).collect())
    }

    fn scores_units_by_norm(&self) -> bool {
        true
    }
}
