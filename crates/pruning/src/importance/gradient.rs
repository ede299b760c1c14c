//! Gradient criteria, from statistics accumulated over N calibration batches.
//!
//! Accumulation is per batch: for batch b with gradient g_b, we add g_b, g_b² and |w·g_b|.
//! Hence Taylor is the mean of per-batch |w·g| (Molchanov et al. 2019 accumulate per batch;
//! |w·mean g| would let batches cancel), Fisher/OBD uses E[g²] (the empirical Fisher diagonal),
//! gradient magnitude is |mean g|, and SNIP is |w·mean g| normalised to sum 1 over all scored
//! weights (Lee et al. 2019, computed at initialisation).

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
}

impl GradStats {
    /// Adds one batch's gradient `g` for weights `w`.
    pub fn add(&mut self, w: &[f32], g: &[f32]) {
        if self.n_batches == 0 {
            self.sum_g = vec![0.0; g.len()];
            self.sum_g2 = vec![0.0; g.len()];
            self.sum_abs_wg = vec![0.0; g.len()];
        }
        for i in 0..g.len() {
            self.sum_g[i] += g[i];
            self.sum_g2[i] += g[i] * g[i];
            self.sum_abs_wg[i] += (w[i] * g[i]).abs();
        }
        self.n_batches += 1;
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
    fn needs_gradients(&self) -> bool {
        true
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(&g.sum_g).iter().map(|x| x.abs()).collect())
    }
}

/// First-order Taylor: mean over batches of |w·g|.
#[derive(Debug, Clone, Copy, Default)]
pub struct Taylor;

impl Importance for Taylor {
    fn name(&self) -> &'static str {
        "taylor"
    }
    fn needs_gradients(&self) -> bool {
        true
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(&g.sum_abs_wg))
    }
}

/// Fisher / Optimal Brain Damage: ½·w²·E[g²].
#[derive(Debug, Clone, Copy, Default)]
pub struct Fisher;

impl Importance for Fisher {
    fn name(&self) -> &'static str {
        "fisher"
    }
    fn needs_gradients(&self) -> bool {
        true
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        let g = grads_of(self, input)?;
        Ok(g.mean(&g.sum_g2)
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
    fn needs_gradients(&self) -> bool {
        true
    }
    fn score(&self, input: &ScoreInput<'_>) -> Result<Vec<f32>, PruneError> {
        Ok(self.score_all(std::slice::from_ref(input))?.remove(0))
    }
    fn score_all(&self, inputs: &[ScoreInput<'_>]) -> Result<Vec<Vec<f32>>, PruneError> {
        let raw: Vec<Vec<f32>> = inputs
            .iter()
            .map(|i| {
                let g = grads_of(self, i)?;
                Ok(g.mean(&g.sum_g)
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
