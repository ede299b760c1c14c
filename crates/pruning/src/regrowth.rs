//! Dynamic sparse training: every ΔT steps each layer drops its smallest-magnitude active
//! weights and grows as many inactive ones, so its sparsity stays constant while the
//! connectivity moves. SET (Mocanu et al. 2018) grows at random; RigL (Evci et al. 2020) grows
//! where the dense gradient is largest, with the update fraction decayed by a cosine and no
//! updates from `end` on. Weights grown start at zero (they are masked, hence zero, until
//! grown) with zeroed optimizer state (see `optim_state.rs`).
//!
//! All functions here are pure and work on host arrays.

use crate::rng::Rng;
use crate::select::{prune_count, smallest};

/// How inactive weights are chosen to grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// Uniformly at random among inactive weights (SET).
    Random,
    /// Largest |dense gradient| among inactive weights (RigL).
    Gradient,
}

/// When and how much to rewire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rewiring {
    /// Growth criterion.
    pub growth: Growth,
    /// Fraction of each layer's active weights dropped at the first update (ζ; RigL uses 0.3).
    pub drop_fraction: f64,
    /// Steps between updates (ΔT).
    pub every: usize,
    /// No updates at or after this step (RigL stops at 75% of training).
    pub end: usize,
}

impl Rewiring {
    /// Whether connectivity is updated after `step` completed optimizer steps.
    pub fn should_update(&self, step: usize) -> bool {
        step > 0 && step < self.end && step.is_multiple_of(self.every.max(1))
    }

    /// The drop fraction at `step`: ζ/2·(1 + cos(π·step/end)).
    pub fn fraction(&self, step: usize) -> f64 {
        let t = (step as f64 / self.end.max(1) as f64).min(1.0);
        self.drop_fraction / 2.0 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Random keep flags for a layer of `n` weights with exactly `n − round(sparsity·n)` kept.
pub fn random_keep(n: usize, sparsity: f64, rng: &mut Rng) -> Vec<bool> {
    let pruned = prune_count(sparsity, n);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut keep = vec![true; n];
    for &i in &order[..pruned] {
        keep[i] = false;
    }
    keep
}

/// One drop-and-grow update of a layer: drops the `round(fraction·active)` active weights of
/// smallest |w|, then grows as many by the highest `grow_score` among the weights inactive after
/// the drop (a weight just dropped may grow back, as in RigL). Ties go to the lower index.
/// Returns the new keep flags; the number kept never changes.
pub fn rewire(weights: &[f32], keep: &[bool], grow_score: &[f32], fraction: f64) -> Vec<bool> {
    let active: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    let k = prune_count(fraction, active.len());
    let inactive = keep.len() - active.len();
    // Growth needs as many candidates as were dropped; it always has them (the dropped ones).
    if k == 0 || inactive + k == 0 {
        return keep.to_vec();
    }
    let magnitude: Vec<f32> = weights.iter().map(|w| w.abs()).collect();
    let mut next = keep.to_vec();
    for i in smallest(&magnitude, &active, k) {
        next[i] = false;
    }
    let candidates: Vec<usize> = (0..keep.len()).filter(|&i| !next[i]).collect();
    let negated: Vec<f32> = grow_score.iter().map(|s| -s).collect();
    for i in smallest(&negated, &candidates, k) {
        next[i] = true;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_fraction_and_update_steps() {
        let r = Rewiring {
            growth: Growth::Gradient,
            drop_fraction: 0.3,
            every: 100,
            end: 1000,
        };
        assert!((r.fraction(0) - 0.3).abs() < 1e-12);
        assert!((r.fraction(500) - 0.15).abs() < 1e-12);
        assert!(r.fraction(1000).abs() < 1e-12);
        assert!(!r.should_update(0));
        assert!(r.should_update(100));
        assert!(!r.should_update(150));
        assert!(r.should_update(900));
        assert!(!r.should_update(1000));
    }

    #[test]
    fn rewire_drops_smallest_and_grows_largest_gradient() {
        let w = [0.5, -0.1, 0.0, 0.9, 0.0, 0.3];
        let keep = [true, true, false, true, false, true];
        let grow = [0.0, 0.0, 0.2, 0.0, 0.7, 0.0];
        // 4 active, fraction 0.5 → drop 2 smallest |w| (indices 1 and 5), grow 2 largest
        // scores among inactive {1, 2, 4, 5}: 4 and 2.
        let next = rewire(&w, &keep, &grow, 0.5);
        assert_eq!(next, vec![true, false, true, true, true, false]);
        assert_eq!(next.iter().filter(|k| **k).count(), 4);
    }

    #[test]
    fn random_keep_is_exact() {
        let mut rng = Rng::new(3);
        let k = random_keep(1000, 0.9, &mut rng);
        assert_eq!(k.iter().filter(|x| **x).count(), 100);
    }
}
