//! Optimizer construction and the learning-rate schedule (a pure function of the step).

use burn::optim::ModuleOptimizer;

use crate::config::{LrScheduleKind, OptimizerKind, TrainConfig};
use crate::fused::{FusedAdam, FusedSgd};

/// Builds the optimizer for `[train]`: Adam or SGD fused into one pass per parameter on the CPU
/// backends (`fused/`: Burn's numbers, bit for bit, in less time), Burn's own on a GPU. Weight
/// decay is coupled (added to the gradient), as PyTorch's `Adam(weight_decay=…)` and
/// `SGD(weight_decay=…)` do.
pub fn build_optimizer(t: &TrainConfig) -> ModuleOptimizer {
    match t.optimizer {
        OptimizerKind::Adam => ModuleOptimizer::from(FusedAdam::new(
            t.beta1 as f32,
            t.beta2 as f32,
            t.epsilon as f32,
            t.weight_decay as f32,
        )),
        OptimizerKind::Sgd => {
            ModuleOptimizer::from(FusedSgd::new(t.momentum, t.nesterov, t.weight_decay))
        }
    }
}

/// The learning rate of a run at each step.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    kind: LrScheduleKind,
    base: f64,
    min: f64,
    gamma: f64,
    step_epochs: usize,
    total_steps: usize,
    steps_per_epoch: usize,
}

impl LrSchedule {
    /// The schedule for `[train]` with `steps_per_epoch` batches per epoch.
    pub fn new(t: &TrainConfig, steps_per_epoch: usize) -> Self {
        Self {
            kind: t.lr_schedule,
            base: t.lr,
            min: t.lr_min,
            gamma: t.lr_gamma,
            step_epochs: t.lr_step_epochs.unwrap_or(1),
            total_steps: t.epochs * steps_per_epoch,
            steps_per_epoch,
        }
    }

    /// The rate at optimizer step `step` (0-based). `step` decays at epoch boundaries: epochs
    /// 1..=k use `lr`, k+1..=2k use `lr·γ`, …; cosine goes from `lr` at step 0 towards `lr_min`
    /// at the last step.
    pub fn at(&self, step: usize) -> f64 {
        match self.kind {
            LrScheduleKind::Constant => self.base,
            LrScheduleKind::Step => {
                let epoch0 = step / self.steps_per_epoch.max(1);
                self.base * self.gamma.powi((epoch0 / self.step_epochs) as i32)
            }
            LrScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(1).max(1) as f64;
                let progress = (step as f64 / span).min(1.0);
                self.min
                    + 0.5 * (self.base - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(extra: &str) -> LrSchedule {
        let t: TrainConfig = toml::from_str(&format!("epochs = 4\nlr = 1.0\n{extra}")).unwrap();
        LrSchedule::new(&t, 10)
    }

    #[test]
    fn schedules_give_the_documented_rates() {
        let c = schedule("");
        assert_eq!(c.at(0), 1.0);
        assert_eq!(c.at(39), 1.0);
        let s = schedule("lr_schedule = \"step\"\nlr_step_epochs = 2\nlr_gamma = 0.5");
        let table = [(0, 1.0), (19, 1.0), (20, 0.5), (39, 0.5)];
        for (step, want) in table {
            assert_eq!(s.at(step), want, "step {step}");
        }
        let cos = schedule("lr_schedule = \"cosine\"\nlr_min = 0.1");
        assert_eq!(cos.at(0), 1.0);
        assert!((cos.at(39) - 0.1).abs() < 1e-12);
        assert!(
            (cos.at(19) - (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * 19.0 / 39.0).cos()))).abs()
                < 1e-12
        );
    }
}
