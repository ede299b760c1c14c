//! Gradient criteria, from statistics accumulated over N calibration batches.
//!
//! Accumulation is per batch: for batch b with gradient g_b, we add g_b, g_b² and |w·g_b|.
//! Hence Taylor is the mean of per-batch |w·g| (Molchanov et al. 2019 accumulate per batch;
//! |w·mean g| would let batches cancel), Fisher/OBD uses E[g²] (the empirical Fisher diagonal),
//! gradient magnitude is |mean g|, and SNIP is |w·mean g| normalised to sum 1 over all scored
//! weights (Lee et al. 2019, computed at initialisation). Movement pruning (Sanh et al. 2020)
//! keeps weights moving away from zero: score −Σ_b w·g_b (a step of −lr·g grows |w| when w·g < 0).
//!
//! During training (`Pruner`) the same statistics are accumulated on the device between mask
//! updates; `GradNeeds` says which ones a criterion reads, so the others cost nothing.

use super::{Importance, ScoreInput, grads_of};
use crate::error::PruneError;

/// Per-weight gradient statistics over calibration batches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GradStats {
    /// Batches accumulated.
    pub n_batches: usize,
    /// Σ_b g_b.
    pub sum_g: Vec<f32>,
    /// Σ_b g_b².
    pub sum_g2: Vec<f32>,
    /// Σ_b |w·g_b| (with the weight at that batch).
    pub sum_abs_wg: Vec<f32>,
    /// Σ_b w·g_b (signed).
    pub sum_wg: Vec<f32>,
}

/// Which gradient statistics a criterion reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GradNeeds {
    /// Σ g.
    pub g: bool,
    /// Σ g².
    pub g2: bool,
    /// Σ |w·g|.
    pub abs_wg: bool,
    /// Σ w·g.
    pub wg: bool,
}

impl GradNeeds {
    /// Whether any statistic is needed.
    pub fn any(self) -> bool {
        self.g || self.g2 || self.abs_wg || self.wg
    }
}

impl GradStats {
    /// Adds one batch's gradient `g` for weights `w`.
    pub fn add(&mut self, w: &[f32], g: &[f32]) {
        if self.n_batches == 0 {
            self.sum_g = vec![0.0; g.len()];
            self.sum_g2 = vec![0.0; g.len()];
            self.sum_abs_wg = vec![0.0; g.len()];
            self.sum_wg = vec![0.0; g.len()];
        }
        for i in 0..g.len() {
            self.sum_g[i] += g[i];
            self.sum_g2[i] += g[i] * g[i];
            self.sum_abs_wg[i] += (w[i] * g[i]).abs();
            self.sum_wg[i] += w[i] * g[i];
        }
        self.n_batches += 1;
    }

    fn stat<'a>(&self, v: &'a [f32], name: &str, what: &str) -> Result<&'a [f32], PruneError> {
        if v.is_empty() && self.n_batches > 0 {
            return Err(PruneError::NeedsGradients {
                criterion: format!("{what} (statistic {name} was not accumulated)"),
            });
        }
        Ok(v)
    }

    fn mean(&self, v: &[f32]) -> Vec<f32> {
        let n = self.n_batches.max(1) as f32;
        v.iter().map(|x| x / n).collect()
    }
}

/// |E[g]|.
#[derive(Debug, Clone, Copy, Default)]
pub struct GradMagnitude;

impl Importance for GradMagnitude {
    fn name(&self) -> &'static str {
        "grad"
    }
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds {
            g: true,
            ..GradNeeds::default()
        }
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(g.stat(&g.sum_g, "Σg", self.name())?)
            .iter()
            .map(|x| x.abs())
            .collect())
    }
}

/// First-order Taylor: mean over batches of |w·g|.
#[derive(Debug, Clone, Copy, Default)]
pub struct Taylor;

impl Importance for Taylor {
    fn name(&self) -> &'static str {
        "taylor"
    }
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds {
            abs_wg: true,
            ..GradNeeds::default()
        }
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(g.stat(&g.sum_abs_wg, "Σ|w·g|", self.name())?))
    }
}

/// Fisher / Optimal Brain Damage: ½·w²·E[g²].
#[derive(Debug, Clone, Copy, Default)]
pub struct Fisher;

impl Importance for Fisher {
    fn name(&self) -> &'static str {
        "fisher"
    }
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds {
            g2: true,
            ..GradNeeds::default()
        }
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(g.stat(&g.sum_g2, "Σg²", self.name())?)
            .iter()
            .zip(input.weight)
            .map(|(g2, w)| 0.5 * w * w * g2)
            .collect())
    }
}

/// SNIP: |w·E[g]| normalised to sum 1 over all scored parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snip;

impl Importance for Snip {
    fn name(&self) -> &'static str {
        "snip"
    }
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds {
            g: true,
            ..GradNeeds::default()
        }
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        Ok(self.score_all(std::slice::from_ref(input))?.remove(0))
    }
    fn score_all(&self, inputs: &[ScoreInput<'_>]) -> Result<Vec<Vec<f32>>, PruneError> {
        let raw: Vec<Vec<f32>> = inputs
            .iter()
            .map(|i| {
                let g = grads_of(self, i)?;
                Ok(g.mean(g.stat(&g.sum_g, "Σg", self.name())?)
                    .iter()
                    .zip(i.weight)
                    .map(|(g, w)| (w * g).abs())
                    .collect())
            })
            .collect::<Result<_, PruneError>>()?;
        let total: f64 = raw.iter().flatten().map(|&x| f64::from(x)).sum();
        let scale = if total > 0.0 {
            (1.0 / total) as f32
        } else {
            1.0
        };
        Ok(raw
            .into_iter()
            .map(|v| v.into_iter().map(|x| x * scale).collect())
            .collect())
    }
}

/// Movement pruning: −mean over batches of w·g; weights the optimizer pushes away from zero
/// score high, whatever their current size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Movement;

impl Importance for Movement {
    fn name(&self) -> &'static str {
        "movement"
    }
    fn grad_needs(&self) -> GradNeeds {
        GradNeeds {
            wg: true,
            ..GradNeeds::default()
        }
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(g.stat(&g.sum_wg, "Σw·g", self.name())?)
            .iter()
            .map(|x| -x)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_criteria_follow_their_formulas() {
        let w = [2.0, -1.0];
        let mut s = GradStats::default();
        s.add(&w, &[1.0, 3.0]);
        s.add(&w, &[-1.0, 1.0]);
        let input = ScoreInput {
            name: "l.weight",
            weight: &w,
            grads: Some(&s),
        };
        assert_eq!(GradMagnitude.score(&input).unwrap(), vec![0.0, 2.0]);
        // Per-batch |w·g|: (2 + 2) / 2 and (3 + 1) / 2.
        assert_eq!(Taylor.score(&input).unwrap(), vec![2.0, 2.0]);
        // ½·w²·E[g²]: ½·4·1 and ½·1·5.
        assert_eq!(Fisher.score(&input).unwrap(), vec![2.0, 2.5]);
        // |w·E g| = [0, 2], normalised to sum 1.
        assert_eq!(Snip.score(&input).unwrap(), vec![0.0, 1.0]);
        // −mean w·g: −(2 − 2)/2 and −(−3 − 1)/2.
        assert_eq!(Movement.score(&input).unwrap(), vec![0.0, 2.0]);
        let none = ScoreInput {
            grads: None,
            ..input
        };
        assert!(matches!(
            Taylor.score(&none),
            Err(PruneError::NeedsGradients { .. })
        ));
    }
}
