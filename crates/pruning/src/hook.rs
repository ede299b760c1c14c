//! The training-loop hook: named points where pruning, logging and progress display plug in.
//!
//! A training loop calls every hook at the same points, so extending it never means adding an
//! `if` to the loop. The points are chosen for pruning: `after_backward` is where gradients can
//! be read (gradient criteria) or masked, before the optimizer turns them into updates;
//! `after_step` is where masked weights are re-zeroed, because momentum and weight decay move
//! them even when their gradient is zero; `edit_optimizer` is where optimizer state of pruned
//! weights is cleared.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};

use crate::hook_state::HookState;
use crate::sparse::Patterns;

/// An error raised by a hook; it stops the run and is reported with the hook's name.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where the loop stands when a step-level hook is called.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Optimizer steps taken before this one (0 for the first step).
    pub step: usize,
    /// Epoch of this step, counted from 1.
    pub epoch: usize,
    /// Index of the batch within the epoch, from 0.
    pub batch_idx: usize,
    /// Batches per epoch.
    pub n_batches: usize,
    /// Learning rate used by this step.
    pub lr: f64,
}

/// Facts about a run, given once before the first step.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    /// Number of epochs the run will do unless stopped early.
    pub n_epochs: usize,
    /// Batches per epoch.
    pub n_batches: usize,
}

/// Metrics at the end of an epoch, as `(split, metric, value)` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochEnd {
    /// Epoch just finished, counted from 1.
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: usize,
    /// Every metric measured at this epoch, e.g. `("train", "loss", 0.12)`.
    pub metrics: Vec<(String, String, f64)>,
}

impl EpochEnd {
    /// The value of `metric` on `split`, if it was measured this epoch.
    pub fn get(&self, split: &str, metric: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(s, m, _)| s == split && m == metric)
            .map(|(_, _, v)| *v)
    }
}

/// A value a hook publishes for the run's log (a pruning event, a layer's sparsity), at a
/// step and epoch of its training phase. The run numbers steps and epochs across phases: a
/// hook never needs to know where its phase starts, nor where the log goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Optimizer steps completed in the phase.
    pub step: usize,
    /// The epoch, counted from 1 (0 before training).
    pub epoch: usize,
    /// What the value is about (`prune`, `sparsity`, a split).
    pub split: String,
    /// Its name.
    pub metric: String,
    /// The value.
    pub value: f64,
}

impl Published {
    /// A row at `(step, epoch)`.
    pub fn new(step: usize, epoch: usize, split: &str, metric: &str, value: f64) -> Self {
        Self {
            step,
            epoch,
            split: split.to_string(),
            metric: metric.to_string(),
            value,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunEnd {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub steps_done: usize,
    /// Whether early stopping ended the run before its last epoch.
    pub stopped_early: bool,
    /// Steps each weight ran as a sparse product ([`crate::sparse`]), by path; weights that
    /// never did are left out.
    #[cfg_attr(feature = "serde", serde(default))]
    pub sparse_steps: Vec<(String, usize)>,
}

/// A participant in the training loop. Every method has a do-nothing default, so a hook names
/// only the points it cares about.
pub trait TrainHook<M: Module> {
    /// A short name used in error messages.
    fn name(&self) -> &str;

    /// Called once before the first step; returns the model training starts from (a pruner
    /// applies its initial masks here, so the very first forward pass is already sparse).
    fn on_run_start(&mut self, model: M, _info: &RunStart) -> Result<M, HookError> {
        Ok(model)
    }

    /// The masked 2-D weights the hook holds whose masks are sparse enough for a sparse product
    /// to pay, with their patterns ([`crate::sparse`]). Asked before every step; a model that
    /// multiplies these weights as sparse products trains faster and gets the gradients that
    /// holding the masks leaves anyway.
    fn sparse_patterns(&self) -> Option<&Patterns> {
        None
    }

    /// Whether step `step` needs the gradients of pruned weights too (RigL's growth reads them,
    /// gradient criteria accumulate them): then it runs dense. Asked before every step.
    fn needs_dense_gradients(&self, _step: &StepInfo) -> bool {
        false
    }

    /// Told after the backward pass, before `after_backward`, which weights this step multiplied
    /// as sparse products and over which patterns (those [`Self::sparse_patterns`] gave, as the
    /// loop used them): their gradients are exactly zero outside those patterns, so a hook that
    /// masks gradients may leave them as they are. That holds while pruned weights are exactly
    /// zero when the step starts (an L1 penalty's sign(0) is 0) and no hook earlier in the list
    /// writes to pruned positions of a gradient. A loop that never calls it loses only speed.
    fn ran_sparse(&mut self, _used: &Patterns) {}

    /// Called with the step's gradients in hand, before the optimizer step. A hook may change
    /// them (mask, clip, accumulate statistics).
    fn after_backward(
        &mut self,
        _model: &M,
        _grads: &mut GradientsParams,
        _step: &StepInfo,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// Called after the optimizer step with the updated model; returns the model the loop
    /// continues with (a pruning hook re-applies its masks here).
    fn after_step(&mut self, model: M, _step: &StepInfo) -> Result<M, HookError> {
        Ok(model)
    }

    /// Called after `after_step` with the optimizer; returns the optimizer the loop continues
    /// with. A pruner zeroes the optimizer state of newly masked weights here, so that a weight
    /// regrown later starts with fresh moments.
    fn edit_optimizer(
        &mut self,
        optim: ModuleOptimizer,
        _step: &StepInfo,
    ) -> Result<ModuleOptimizer, HookError> {
        Ok(optim)
    }

    /// Called after each epoch's evaluation.
    fn on_epoch_end(&mut self, _model: &M, _epoch: &EpochEnd) -> Result<(), HookError> {
        Ok(())
    }

    /// Called once when the loop ends normally, with the model it returns.
    fn on_run_end(&mut self, _model: &M, _end: &RunEnd) -> Result<(), HookError> {
        Ok(())
    }

    /// What the hook has to publish since it was last asked: asked after every `on_epoch_end`
    /// and after `on_run_end`, before the loop hands the epoch's own metrics to the run's log.
    fn publish(&mut self) -> Vec<Published> {
        Vec::new()
    }

    /// The state a checkpoint must keep (called after `on_epoch_end`): what the run's config
    /// cannot rebuild. `None` for hooks without such state.
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        Ok(None)
    }

    /// Takes back what [`save_state`](Self::save_state) gave, in a resumed run, after
    /// `on_run_start` (which saw the freshly built model, passed here too: state that lives on
    /// the device goes where the model is) and before the first resumed step.
    fn load_state(&mut self, _model: &M, _state: HookState) -> Result<(), HookError> {
        Ok(())
    }
}
