//! Pruning schedules: pure functions of the optimizer step saying whether to update masks at a
//! step and to which target sparsity.
//!
//! The gradual schedule is Zhu & Gupta's (2017), as tfmot's `PolynomialDecay` computes it:
//! s_t = s_f + (s_i − s_f)·(1 − p)^power with p = clamp((t − begin) / (end − begin), 0, 1), and
//! masks are updated at steps begin, begin + frequency, … up to and including end.

/// A step count given in optimizer steps or in epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// Optimizer steps.
    Iterations(usize),
    /// Epochs: converted with the number of batches per epoch.
    Epochs(usize),
}

impl Steps {
    /// The count in optimizer steps.
    pub fn to_steps(self, steps_per_epoch: usize) -> usize {
        match self {
            Steps::Iterations(n) => n,
            Steps::Epochs(e) => e * steps_per_epoch,
        }
    }
}

/// When to update masks, and to what sparsity.
pub trait Schedule {
    /// Whether masks are updated at `step`.
    fn should_prune(&self, step: usize) -> bool;
    /// The target sparsity at `step`.
    fn sparsity(&self, step: usize) -> f64;
}

/// The same target at every update, updates every `frequency` steps (from step 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    /// The target sparsity.
    pub sparsity: f64,
    /// Steps between updates (≥ 1).
    pub frequency: usize,
}

impl Schedule for Constant {
    fn should_prune(&self, step: usize) -> bool {
        step.is_multiple_of(self.frequency.max(1))
    }
    fn sparsity(&self, _step: usize) -> f64 {
        self.sparsity
    }
}

/// One update, at `step`, to `sparsity`; the target holds from then on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneShot {
    /// The step of the update.
    pub step: usize,
    /// The target sparsity.
    pub sparsity: f64,
}

impl Schedule for OneShot {
    fn should_prune(&self, step: usize) -> bool {
        step == self.step
    }
    fn sparsity(&self, step: usize) -> f64 {
        if step >= self.step {
            self.sparsity
        } else {
            0.0
        }
    }
}

/// Zhu & Gupta's gradual polynomial schedule (tfmot's `PolynomialDecay`); `power = 1` is the
/// linear schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    /// Sparsity at `begin`.
    pub initial: f64,
    /// Sparsity from `end` on.
    pub target: f64,
    /// First update step.
    pub begin: usize,
    /// Last update step (> begin).
    pub end: usize,
    /// Exponent (3 in Zhu & Gupta).
    pub power: f64,
    /// Steps between updates (≥ 1).
    pub frequency: usize,
}

impl Polynomial {
    /// A linear ramp from `initial` at `begin` to `target` at `end`.
    pub fn linear(initial: f64, target: f64, begin: usize, end: usize, frequency: usize) -> Self {
        Self {
            initial,
            target,
            begin,
            end,
            power: 1.0,
            frequency,
        }
    }
}

impl Polynomial {
    /// The target in float32 with tfmot's order of operations, for bit-level comparison with
    /// TensorFlow: p = min(1, max(0, (t − begin) / (end − begin))),
    /// s = (s_i − s_f)·(1 − p)^power + s_f.
    pub fn sparsity_f32(&self, step: usize) -> f32 {
        let p =
            ((step as f32 - self.begin as f32) / (self.end - self.begin) as f32).clamp(0.0, 1.0);
        ((self.initial - self.target) as f32) * (1.0 - p).powf(self.power as f32)
            + self.target as f32
    }
}

impl Schedule for Polynomial {
    fn should_prune(&self, step: usize) -> bool {
        step >= self.begin
            && step <= self.end
            && (step - self.begin).is_multiple_of(self.frequency.max(1))
    }
    fn sparsity(&self, step: usize) -> f64 {
        let span = self.end.saturating_sub(self.begin).max(1) as f64;
        let p = ((step as f64 - self.begin as f64) / span).clamp(0.0, 1.0);
        self.target + (self.initial - self.target) * (1.0 - p).powf(self.power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &dyn Schedule, table: &[(usize, bool, f64)]) {
        for &(step, prune, sparsity) in table {
            assert_eq!(s.should_prune(step), prune, "should_prune at step {step}");
            assert!(
                (s.sparsity(step) - sparsity).abs() < 1e-12,
                "sparsity at step {step}: {}",
                s.sparsity(step)
            );
        }
    }

    #[test]
    fn schedules_as_tables() {
        check(
            &Constant {
                sparsity: 0.5,
                frequency: 10,
            },
            &[(0, true, 0.5), (5, false, 0.5), (10, true, 0.5)],
        );
        check(
            &OneShot {
                step: 7,
                sparsity: 0.9,
            },
            &[
                (0, false, 0.0),
                (6, false, 0.0),
                (7, true, 0.9),
                (8, false, 0.9),
            ],
        );
        check(
            &Polynomial::linear(0.0, 0.8, 10, 50, 10),
            &[
                (0, false, 0.0),
                (10, true, 0.0),
                (20, true, 0.2),
                (25, false, 0.3),
                (50, true, 0.8),
                (60, false, 0.8),
            ],
        );
        assert_eq!(Steps::Epochs(3).to_steps(100), 300);
        assert_eq!(Steps::Iterations(42).to_steps(100), 42);
    }
}
