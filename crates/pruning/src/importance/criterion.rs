//! The criteria by name: what a config or a command line picks, mapped to the scorer that
//! implements it. Whether one needs gradients is asked of the scorer itself, never listed twice.

use super::{
    Fisher, GradMagnitude, Importance, Magnitude, Movement, RandomScore, Slimming, Snip,
    SquaredMagnitude, Taylor,
};

/// An importance criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Criterion {
    /// |w| ([`Magnitude`]).
    #[default]
    L1,
    /// w² ([`SquaredMagnitude`]).
    L2,
    /// Seeded random scores, a control ([`RandomScore`]).
    Random,
    /// |E[g]| over calibration batches ([`GradMagnitude`]).
    Grad,
    /// First-order Taylor, mean over batches of |w·g| ([`Taylor`]).
    Taylor,
    /// Fisher / OBD, ½·w²·E[g²] ([`Fisher`]).
    Fisher,
    /// SNIP, |w·E[g]| normalised, at initialisation ([`Snip`]).
    Snip,
    /// Movement, −Σ w·g over the steps since the last update ([`Movement`]).
    Movement,
    /// Network Slimming, a channel's batch norm |γ| ([`Slimming`]; neuron granularity).
    Slimming,
}

impl Criterion {
    /// The scorer; `seed` draws the random criterion's scores.
    pub fn importance(self, seed: u64) -> Box<dyn Importance> {
        match self {
            Self::L1 => Box::new(Magnitude),
            Self::L2 => Box::new(SquaredMagnitude),
            Self::Random => Box::new(RandomScore { seed }),
            Self::Grad => Box::new(GradMagnitude),
            Self::Taylor => Box::new(Taylor),
            Self::Fisher => Box::new(Fisher),
            Self::Snip => Box::new(Snip),
            Self::Movement => Box::new(Movement),
            Self::Slimming => Box::new(Slimming),
        }
    }

    /// Whether its scorer reads gradient statistics (calibration batches, or a window of
    /// training steps).
    pub fn needs_gradients(self) -> bool {
        self.importance(0).grad_needs().any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_criteria_are_the_ones_whose_scorers_read_gradients() {
        use Criterion::*;
        let needs: Vec<Criterion> = [
            L1, L2, Random, Grad, Taylor, Fisher, Snip, Movement, Slimming,
        ]
        .into_iter()
        .filter(|c| c.needs_gradients())
        .collect();
        assert_eq!(needs, [Grad, Taylor, Fisher, Snip, Movement]);
    }
}
