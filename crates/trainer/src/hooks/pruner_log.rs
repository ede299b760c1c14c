//! The pruner inside the loop, with its sparsity written to `metrics.csv`: every mask update as
//! an event (`prune` rows at the update's step) and the sparsity of every layer at every epoch
//! (`sparsity` rows), so curves of accuracy against sparsity can be drawn from one file.

use burn::optim::{GradientsParams, ModuleOptimizer};
use pruning::{EpochEnd, HookError, HookState, Pruner, RunEnd, RunStart, StepInfo, TrainHook};

use crate::hooks::MetricsLog;
use crate::model::Mlp;

/// Delegates every point to the pruner, and logs after the metrics of each epoch.
pub struct PrunerLog<'a> {
    /// The pruner.
    pub pruner: &'a mut Pruner,
    /// Where rows go (it also logs the epoch's own metrics).
    pub metrics: &'a mut MetricsLog,
    logged: usize,
}

impl<'a> PrunerLog<'a> {
    /// Wraps `pruner`, logging to `metrics`.
    pub fn new(pruner: &'a mut Pruner, metrics: &'a mut MetricsLog) -> Self {
        let logged = pruner.events().len();
        Self {
            pruner,
            metrics,
            logged,
        }
    }

    fn log_events(&mut self) -> std::io::Result<()> {
        let (s0, e0) = self.metrics.offset();
        for ev in &self.pruner.events()[self.logged..] {
            let (s, e) = (ev.step + s0, ev.epoch + e0);
            self.metrics.row(s, e, "prune", "target", ev.target)?;
            self.metrics.row(s, e, "prune", "sparsity", ev.sparsity)?;
            self.metrics
                .row(s, e, "prune", "changed", ev.changed as f64)?;
        }
        self.logged = self.pruner.events().len();
        Ok(())
    }
}

impl TrainHook<Mlp> for PrunerLog<'_> {
    fn name(&self) -> &str {
        "pruner"
    }

    fn on_run_start(&mut self, model: Mlp, info: &RunStart) -> Result<Mlp, HookError> {
        self.pruner.on_run_start(model, info)
    }

    fn after_backward(
        &mut self,
        model: &Mlp,
        grads: &mut GradientsParams,
        step: &StepInfo,
    ) -> Result<(), HookError> {
        self.pruner.after_backward(model, grads, step)
    }

    fn after_step(&mut self, model: Mlp, step: &StepInfo) -> Result<Mlp, HookError> {
        self.pruner.after_step(model, step)
    }

    fn edit_optimizer(
        &mut self,
        optim: ModuleOptimizer,
        step: &StepInfo,
    ) -> Result<ModuleOptimizer, HookError> {
        TrainHook::<Mlp>::edit_optimizer(self.pruner, optim, step)
    }

    fn on_epoch_end(&mut self, model: &Mlp, e: &EpochEnd) -> Result<(), HookError> {
        self.log_events()?;
        let (s0, e0) = self.metrics.offset();
        let (s, ep) = (e.step + s0, e.epoch + e0);
        self.metrics
            .row(s, ep, "sparsity", "total", self.pruner.weight_sparsity())?;
        for (name, v) in self.pruner.layer_sparsity() {
            self.metrics.row(s, ep, "sparsity", &name, v)?;
        }
        self.metrics.on_epoch_end(model, e)
    }

    fn on_run_end(&mut self, model: &Mlp, end: &RunEnd) -> Result<(), HookError> {
        self.log_events()?;
        self.metrics.flush()?;
        self.pruner.on_run_end(model, end)
    }

    // Both halves: the pruner's state, and where metrics.csv stood (under `metrics.`).
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        let mut st = TrainHook::<Mlp>::save_state(&*self.pruner)?.unwrap_or_default();
        if let Some(m) = self.metrics.save_state()? {
            for (k, v) in m.words {
                st.words.insert(format!("{METRICS}{k}"), v);
            }
        }
        Ok(Some(st))
    }

    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    fn load_state(&mut self, model: &Mlp, mut st: HookState) -> Result<(), HookError> {
        let mut m = HookState::default();
        let keys: Vec<String> = st
            .words
            .keys()
            .filter(|k| k.starts_with(METRICS))
            .cloned()
            .collect();
        for k in keys {
            let v = st.words.remove(&k).expect("listed");
            m.words.insert(k[METRICS.len()..].to_string(), v);
        }
        self.metrics.load_state(model, m)?;
        self.pruner.load_state(model, st)?;
        // Events up to the checkpoint are in metrics.csv already.
        self.logged = self.pruner.events().len();
        Ok(())
    }
}

const METRICS: &str = "metrics.";
