//! Random scores: the control every pruning result should be compared against.

use super::{Importance, ScoreInput};
use crate::error::PruneError;
use crate::rng::Rng;

/// Uniform random scores, seeded per parameter path (so adding a layer does not reshuffle the
/// others).
#[derive(Debug, Clone, Copy)]
pub struct RandomScore {
    /// The seed.
    pub seed: u64,
}

impl Importance for RandomScore {
    fn name(&self) -> &'static str {
        "random"
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let mut rng = Rng::derive(self.seed, input.name);
        Ok(input.weight.iter().map(|_| rng.next_f64() as f32).collect())
    }
}
