//! Dynamic pruning: the hook that prunes during training.
//!
//! At every step it masks gradients before the optimizer step and re-zeroes masked weights
//! after it (as `MaskHook` does). When its plan says so — a schedule's update steps, or every ΔT
//! steps for drop-and-grow — it scores the current weights, selects new masks, applies them, and
//! asks the loop (through `edit_optimizer`) to zero the optimizer state of the weights whose
//! mask changed (see [`ClearState`] for when).
//!
//! Steps are counted as optimizer steps *completed*: an update "at step t" happens after t steps
//! and before step t + 1, which is when tfmot's `UpdatePruningStep` fires (an update at step 0
//! happens in `on_run_start`, before any training).

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};

use crate::error::PruneError;
use crate::grad_accum::{GradAccumulator, flat_grad};
use crate::granularity::{Granularity, ScopeKind, Spec};
use crate::hook::{EpochEnd, HookError, Published, RunStart, StepInfo, TrainHook};
use crate::hook_state::HookState;
use crate::importance::Importance;
use crate::mask::{Mask, MaskSet};
use crate::mask_hook::MaskHook;
use crate::module::{host_values, read_params};
use crate::optim_state::zero_masked_state;
use crate::params::ParamInfo;
use crate::prune_once::prune_once;
use crate::regrowth::{Growth, Rewiring, random_keep, rewire};
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::select::{CountOver, Rule, erk_sparsities};
use crate::sparse::Patterns;

/// What the pruner does over training.
pub enum Plan {
    /// Prune at the schedule's update steps to its target sparsity (of all weights, per the
    /// spec's scope); pruned weights never come back.
    Prune(Box<dyn Schedule>),
    /// Keep every layer at `sparsity` (uniform, or ERK when the spec's scope is `Erk`) from a
    /// random start, and move connections by drop-and-grow.
    Rewire {
        /// SET or RigL, and when.
        rewiring: Rewiring,
        /// Overall sparsity.
        sparsity: f64,
    },
    /// Only hold the masks given (fine-tuning a pruned model, lottery-ticket retraining).
    Hold,
}

/// When the pruner zeroes optimizer state (Adam's moments, SGD's velocity) of masked weights.
///
/// A pruned weight's gradient is masked and the weight is re-zeroed after every step, so what
/// its moments hold can never reach the network while it stays pruned; it matters only when a
/// weight is grown back, which must start from fresh moments. Zeroing goes through Burn's
/// optimizer record (a full serialise/load, about 16 ms for 784-300-100-10 with Adam), so by
/// default it runs only at updates that grow weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClearState {
    /// At updates that grow weights (RigL, SET): grown and dropped weights start fresh.
    #[default]
    OnGrowth,
    /// At every mask update: the state of every masked weight is zero after each update.
    EveryUpdate,
}

/// One mask update.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneEvent {
    /// Optimizer steps completed before the update.
    pub step: usize,
    /// The epoch the next step belongs to (from 1; 0 before training).
    pub epoch: usize,
    /// The target sparsity of the update.
    pub target: f64,
    /// The sparsity reached, over all masked weights.
    pub sparsity: f64,
    /// Weights whose mask changed (pruned, or dropped and grown).
    pub changed: usize,
    /// Sparsity of each weight after the update, by path.
    pub layers: Vec<(String, f64)>,
}

/// The dynamic-pruning hook. Works on any module; the masked parameters are given as
/// [`ParamInfo`]s (from [`Prunable::select`](crate::Prunable::select)).
pub struct Pruner {
    params: Vec<ParamInfo>,
    masks: MaskSet,
    hold: MaskHook,
    criterion: Box<dyn Importance>,
    spec: Spec,
    plan: Plan,
    accum: GradAccumulator,
    dense: Option<BTreeMap<ParamId, Vec<f32>>>,
    reset: Option<BTreeMap<ParamId, Vec<bool>>>,
    events: Vec<PruneEvent>,
    /// Events already published.
    published: usize,
    /// The position of the epoch that ended and whose sparsity is not yet published.
    epoch_end: Option<(usize, usize)>,
    warnings: Vec<String>,
    rng: Rng,
    steps_per_epoch: usize,
    clear_state: ClearState,
}

impl Pruner {
    /// A pruner over `params` starting from `masks` (all ones for a dense start). For
    /// [`Plan::Rewire`] the initial random masks are drawn here from `seed`.
    pub fn new(
        params: Vec<ParamInfo>,
        masks: MaskSet,
        criterion: Box<dyn Importance>,
        spec: Spec,
        plan: Plan,
        seed: u64,
    ) -> Result<Self, PruneError> {
        let mut rng = Rng::derive(seed, "pruner");
        let mut masks = masks;
        if let Plan::Rewire { sparsity, .. } = &plan {
            if spec.granularity != Granularity::Weight {
                return Err(PruneError::Plan(
                    "drop-and-grow (SET, RigL) works on single weights: use granularity \"weight\""
                        .into(),
                ));
            }
            let weights: Vec<&ParamInfo> = params.iter().filter(|p| p.is_weight()).collect();
            let shapes: Vec<Vec<usize>> = weights.iter().map(|p| p.shape.clone()).collect();
            let rates = match spec.scope {
                ScopeKind::Erk => erk_sparsities(&shapes, *sparsity),
                ScopeKind::Layer => vec![*sparsity; shapes.len()],
                ScopeKind::Global => {
                    return Err(PruneError::Plan(
                        "drop-and-grow keeps each layer's sparsity: use scope \"layer\" (uniform) or \"erk\""
                            .into(),
                    ));
                }
            };
            for (p, rate) in weights.iter().zip(rates) {
                let keep = random_keep(p.numel(), rate, &mut rng);
                let slot = masks
                    .masks
                    .get_mut(&p.path)
                    .ok_or_else(|| PruneError::MissingMask {
                        name: p.path.clone(),
                    })?;
                for (k, r) in slot.keep.iter_mut().zip(keep) {
                    *k = *k && r;
                }
            }
        }
        let hold = MaskHook::new(&params, &masks)?;
        let weight_ids = params
            .iter()
            .filter(|p| p.is_weight())
            .map(|p| (p.id, p.shape.len()))
            .collect();
        let accum = GradAccumulator::new(weight_ids, criterion.grad_needs());
        Ok(Self {
            params,
            masks,
            hold,
            criterion,
            spec,
            plan,
            accum,
            dense: None,
            reset: None,
            events: Vec::new(),
            published: 0,
            epoch_end: None,
            warnings: Vec::new(),
            rng,
            steps_per_epoch: 1,
            clear_state: ClearState::default(),
        })
    }

    /// Sets when optimizer state of masked weights is zeroed.
    pub fn with_clear_state(mut self, when: ClearState) -> Self {
        self.clear_state = when;
        self
    }

    /// The current masks.
    pub fn masks(&self) -> &MaskSet {
        &self.masks
    }

    /// The masked parameters.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// Every mask update so far.
    pub fn events(&self) -> &[PruneEvent] {
        &self.events
    }

    /// Times the keep-one rule stepped in, with the step.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Sparsity of each masked weight (matrices and kernels), by path.
    pub fn layer_sparsity(&self) -> Vec<(String, f64)> {
        self.params
            .iter()
            .filter(|p| p.is_weight())
            .map(|p| (p.path.clone(), self.masks.masks[&p.path].sparsity()))
            .collect()
    }

    /// Sparsity over all masked weights (matrices and kernels).
    pub fn weight_sparsity(&self) -> f64 {
        self.masks.weight_sparsity()
    }

    /// `module` multiplied by the current masks.
    pub fn apply<M: Module>(&mut self, module: M) -> M {
        self.hold.apply(module)
    }

    fn due(&self, step: usize) -> bool {
        match &self.plan {
            Plan::Prune(s) => s.should_prune(step),
            Plan::Rewire { rewiring, .. } => rewiring.should_update(step),
            Plan::Hold => false,
        }
    }

    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    fn update<M: Module>(&mut self, module: M, step: usize) -> Result<M, PruneError> {
        let before = self.masks.clone();
        let (module, target) = match &self.plan {
            Plan::Hold => return Ok(module),
            Plan::Prune(schedule) => {
                let target = schedule.sparsity(step);
                // `prune_once` returns the module already multiplied by the new masks.
                let module = self.prune_to(module, step, target)?;
                self.hold = MaskHook::new(&self.params, &self.masks)?;
                (module, target)
            }
            Plan::Rewire { rewiring, sparsity } => {
                let (rewiring, sparsity) = (*rewiring, *sparsity);
                self.rewire_masks(&module, step, rewiring)?;
                self.hold = MaskHook::new(&self.params, &self.masks)?;
                (self.hold.apply(module), sparsity)
            }
        };
        self.record(&before, step, target);
        Ok(module)
    }

    /// A schedule's update: the masked parameters pruned to `target` of all their entries.
    fn prune_to<M: Module>(
        &mut self,
        module: M,
        step: usize,
        target: f64,
    ) -> Result<M, PruneError> {
        let mut spec = self.spec.clone();
        spec.rule = Rule::Sparsity(target);
        spec.over = CountOver::All;
        let stats = self.accum.take();
        let grads = (!stats.is_empty()).then_some(&stats);
        let out = prune_once(
            module,
            &self.params,
            &self.masks,
            self.criterion.as_ref(),
            &spec,
            grads,
        )?;
        self.warnings
            .extend(out.warnings.iter().map(|w| format!("step {step}: {w}")));
        self.masks = out.masks;
        Ok(out.module)
    }

    /// A drop-and-grow update of every weight's mask: the smallest active weights dropped, as
    /// many grown by the growth score (random, or the dense gradient's magnitude).
    #[allow(
        clippy::expect_used,
        reason = "every masked parameter has a mask: checked in new"
    )]
    fn rewire_masks<M: Module>(
        &mut self,
        module: &M,
        step: usize,
        rewiring: Rewiring,
    ) -> Result<(), PruneError> {
        let weights: Vec<ParamInfo> = self
            .params
            .iter()
            .filter(|p| p.is_weight())
            .cloned()
            .collect();
        let ids: Vec<ParamId> = weights.iter().map(|p| p.id).collect();
        let values = read_params(module, &ids);
        let fraction = rewiring.fraction(step);
        for p in &weights {
            // A module other than the one the pruner was made for lacks these ids.
            let w = values.get(&p.id).ok_or_else(|| PruneError::UnknownParam {
                name: p.path.clone(),
                valid: Vec::new(),
            })?;
            let grow: Vec<f32> = match rewiring.growth {
                Growth::Random => (0..w.len()).map(|_| self.rng.next_f64() as f32).collect(),
                Growth::Gradient => {
                    let dense =
                        self.dense
                            .as_ref()
                            .and_then(|d| d.get(&p.id))
                            .ok_or_else(|| {
                                PruneError::Plan(format!(
                                    "no dense gradient of `{}` at step {step}",
                                    p.path
                                ))
                            })?;
                    dense.iter().map(|g| g.abs()).collect()
                }
            };
            let slot = self.masks.masks.get_mut(&p.path).expect("checked in new");
            slot.keep = rewire(w, &slot.keep, &grow, fraction);
        }
        self.dense = None;
        Ok(())
    }

    /// The update's event, and — when weights grew, or on every update if asked — the optimizer
    /// state to clear: wherever a weight was masked before or is masked now, so dropped and
    /// grown weights alike start from fresh state.
    fn record(&mut self, before: &MaskSet, step: usize, target: f64) {
        let (mut changed, mut grew) = (0, false);
        for (name, m) in &self.masks.masks {
            for (now, was) in m.keep.iter().zip(&before.masks[name].keep) {
                changed += usize::from(now != was);
                grew |= *now && !*was;
            }
        }
        if grew || self.clear_state == ClearState::EveryUpdate {
            self.reset = Some(
                self.params
                    .iter()
                    .map(|p| {
                        let (now, was) = (&self.masks.masks[&p.path], &before.masks[&p.path]);
                        let keep = now.keep.iter().zip(&was.keep).map(|(a, b)| *a && *b);
                        (p.id, keep.collect())
                    })
                    .collect(),
            );
        }
        self.events.push(PruneEvent {
            step,
            epoch: step / self.steps_per_epoch.max(1) + 1,
            target,
            sparsity: self.weight_sparsity(),
            changed,
            layers: self.layer_sparsity(),
        });
    }
}

impl Pruner {
    /// Whether RigL grows by gradient after `step`: it reads the dense gradient of that step.
    fn grows_at(&self, step: &StepInfo) -> bool {
        matches!(&self.plan, Plan::Rewire { rewiring, .. }
            if rewiring.growth == Growth::Gradient && rewiring.should_update(step.step + 1))
    }
}

impl<M: Module> TrainHook<M> for Pruner {
    fn name(&self) -> &str {
        "pruner"
    }

    fn on_run_start(&mut self, model: M, info: &RunStart) -> Result<M, HookError> {
        self.steps_per_epoch = info.n_batches;
        let model = self.hold.apply(model);
        if self.due(0) {
            return Ok(self.update(model, 0)?);
        }
        Ok(model)
    }

    fn sparse_patterns(&self) -> Option<&Patterns> {
        TrainHook::<M>::sparse_patterns(&self.hold)
    }

    fn needs_dense_gradients(&self, step: &StepInfo) -> bool {
        self.accum.collects() || self.grows_at(step)
    }

    fn ran_sparse(&mut self, used: &Patterns) {
        self.hold.note_sparse(used);
    }

    fn after_backward(
        &mut self,
        model: &M,
        grads: &mut GradientsParams,
        step: &StepInfo,
    ) -> Result<(), HookError> {
        // Statistics and RigL's growth read the dense gradient, before it is masked.
        self.accum.add(model, grads);
        if self.grows_at(step) {
            let mut dense = BTreeMap::new();
            for p in self.params.iter().filter(|p| p.is_weight()) {
                if let Some(g) = flat_grad(grads, p.id, p.shape.len()) {
                    dense.insert(p.id, host_values(g));
                }
            }
            self.dense = Some(dense);
        }
        Ok(self.hold.mask_grads(grads)?)
    }

    fn after_step(&mut self, model: M, step: &StepInfo) -> Result<M, HookError> {
        let model = self.hold.apply(model);
        let done = step.step + 1;
        if self.due(done) {
            return Ok(self.update(model, done)?);
        }
        Ok(model)
    }

    fn edit_optimizer(
        &mut self,
        optim: ModuleOptimizer,
        _step: &StepInfo,
    ) -> Result<ModuleOptimizer, HookError> {
        match self.reset.take() {
            Some(keep) => Ok(zero_masked_state(optim, &keep)?.0),
            None => Ok(optim),
        }
    }

    fn on_epoch_end(&mut self, _model: &M, e: &EpochEnd) -> Result<(), HookError> {
        self.epoch_end = Some((e.step, e.epoch));
        Ok(())
    }

    // Every mask update as an event (`prune` rows at the update's step), and at every epoch's
    // end the sparsity of every layer (`sparsity` rows): curves of accuracy against sparsity
    // come from one log.
    fn publish(&mut self) -> Vec<Published> {
        let mut rows = Vec::new();
        for ev in &self.events[self.published..] {
            let (s, e) = (ev.step, ev.epoch);
            rows.push(Published::new(s, e, "prune", "target", ev.target));
            rows.push(Published::new(s, e, "prune", "sparsity", ev.sparsity));
            rows.push(Published::new(s, e, "prune", "changed", ev.changed as f64));
        }
        self.published = self.events.len();
        if let Some((s, e)) = self.epoch_end.take() {
            let total = self.weight_sparsity();
            rows.push(Published::new(s, e, "sparsity", "total", total));
            for (name, v) in self.layer_sparsity() {
                rows.push(Published::new(s, e, "sparsity", &name, v));
            }
        }
        rows
    }

    // Between steps the dense gradient and the pending optimizer reset are always empty (both
    // are used within the step that sets them): the masks, the gradient window, the generator
    // and the record of updates are the whole state. An update's per-layer sparsities are in
    // `layer_sparsity` order, so only the numbers are stored.
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        let mut st = HookState::default();
        for (name, m) in &self.masks.masks {
            st.floats.insert(format!("mask.{name}"), m.to_f32());
        }
        self.accum.save(&mut st, "accum.");
        st.words.insert("rng".into(), self.rng.state().to_vec());
        let mut words = Vec::new();
        for e in &self.events {
            words.extend([e.step, e.epoch, e.changed].map(|v| v as u64));
            words.extend([e.target, e.sparsity].map(f64::to_bits));
            words.extend(e.layers.iter().map(|(_, s)| s.to_bits()));
        }
        st.words.insert("events".into(), words);
        st.text
            .insert("warnings".into(), self.warnings.join(WARNING_SEPARATOR));
        Ok(Some(st))
    }

    fn load_state(&mut self, model: &M, st: HookState) -> Result<(), HookError> {
        for (name, m) in self.masks.masks.iter_mut() {
            let values = st.floats(&format!("mask.{name}"))?;
            *m = Mask::from_f32(name, &m.shape, values)?;
        }
        self.hold = MaskHook::new(&self.params, &self.masks)?;
        self.accum.load(model, &st, "accum.")?;
        let rng: [u64; 4] = st
            .words("rng")?
            .try_into()
            .map_err(|_| "hook state `rng`: expected 4 words")?;
        self.rng = Rng::from_state(rng);
        let names: Vec<String> = self.layer_sparsity().into_iter().map(|(n, _)| n).collect();
        let words = st.words("events")?;
        let width = 5 + names.len();
        if words.len() % width != 0 {
            return Err("hook state `events` does not fit this pruner's layers".into());
        }
        self.events = words
            .chunks_exact(width)
            .map(|w| PruneEvent {
                step: w[0] as usize,
                epoch: w[1] as usize,
                changed: w[2] as usize,
                target: f64::from_bits(w[3]),
                sparsity: f64::from_bits(w[4]),
                layers: names
                    .iter()
                    .cloned()
                    .zip(w[5..].iter().map(|b| f64::from_bits(*b)))
                    .collect(),
            })
            .collect();
        let warnings = st.text("warnings")?;
        self.warnings = if warnings.is_empty() {
            Vec::new()
        } else {
            warnings
                .split(WARNING_SEPARATOR)
                .map(str::to_string)
                .collect()
        };
        self.dense = None;
        self.reset = None;
        // Checkpoints are written after the epoch's rows were published.
        self.published = self.events.len();
        self.epoch_end = None;
        Ok(())
    }
}

/// Joins warnings in a checkpoint (ASCII record separator: never in a message).
const WARNING_SEPARATOR: &str = "\u{1e}";
