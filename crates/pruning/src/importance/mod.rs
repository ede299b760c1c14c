//! Importance criteria: a score per weight, higher = keep. Adding a criterion is one file here,
//! one `pub use`, one variant in the caller's config.

mod criterion;
mod gradient;
mod magnitude;
mod random;
mod slimming;

pub use criterion::Criterion;
pub use gradient::{Fisher, GradMagnitude, GradNeeds, GradStats, Movement, Snip, Taylor};
pub use magnitude::{Magnitude, SquaredMagnitude};
pub use random::RandomScore;
pub use slimming::Slimming;

use crate::error::PruneError;

/// What a criterion may look at for one parameter.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInput<'a> {
    /// The parameter's path.
    pub name: &'a str,
    /// Its values, row-major in the parameter's own layout.
    pub weight: &'a [f32],
    /// Gradient statistics over calibration batches, when the caller collected them.
    pub grads: Option<&'a GradStats>,
}

/// A way to score weights.
pub trait Importance {
    /// The criterion's name, as configs spell it.
    fn name(&self) -> &'static str;

    /// Which gradient statistics scores read (none for magnitude criteria).
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds::default()
    }

    /// Whether scores need gradient statistics.
    fn needs_gradients(&self) -> bool {
        self.grad_needs().any()
    }

    /// Whether units are scored by the |γ| of the batch norm after them (Network Slimming)
    /// rather than by their weights' scores.
    fn scores_units_by_norm(&self) -> bool {
        false
    }

    /// One score per weight, higher = more important.
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError>;

    /// Scores of several parameters at once; criteria that normalise over all of them (SNIP)
    /// override this.
    fn score_all(&self, inputs: &[ScoreInput<'_>]) -> Result<Vec<Vec<f32>>, PruneError> {
        inputs.iter().map(|i| self.score(i)).collect()
    }
}

pub(crate) fn grads_of<'a>(
    criterion: &dyn Importance,
    input: &ScoreInput<'a>,
) -> Result<&'a GradStats, PruneError> {
    input.grads.ok_or_else(|| PruneError::NeedsGradients {
        criterion: criterion.name().to_string(),
    })
}
