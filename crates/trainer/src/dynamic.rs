//! Pruning inside the training loop: gradual schedules, RigL and SET. Maps `[pruning]` onto a
//! `pruning::Pruner` and trains with it; the algorithms live in the `pruning` crate.

use pruning::schedule::{Constant, OneShot, Polynomial, Schedule, Steps};
use pruning::{Growth, MaskSet, ParamInfo, Plan, PruneError, Pruner, Rewiring};

use crate::config::{
    DropGrowConfig, GradualConfig, ModeConfig, PruningConfig, PruningMode, RuleConfig,
    ScheduleKind, TrainConfig, steps_of,
};
use crate::prune::spec;
use crate::seeds::Seeds;
use crate::train::steps_per_epoch;

/// The schedule of `mode = "gradual"`, in optimizer steps.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn schedule(g: &GradualConfig, rule: &RuleConfig, spe: usize) -> Box<dyn Schedule> {
    let to = |s: Option<Steps>| s.map_or(0, |s| s.to_steps(spe));
    let begin = to(steps_of(g.begin_epoch, g.begin_step));
    let end = to(steps_of(g.end_epoch, g.end_step)).max(begin);
    let every = to(steps_of(g.every_epochs, g.every_steps)).max(1);
    let target = rule.sparsity.expect("validated");
    let initial = g.initial_sparsity.unwrap_or(0.0);
    match g.schedule.unwrap_or_default() {
        ScheduleKind::Polynomial | ScheduleKind::Linear if end == begin => Box::new(OneShot {
            step: begin,
            sparsity: target,
        }),
        ScheduleKind::Polynomial => Box::new(Polynomial {
            initial,
            target,
            begin,
            end,
            power: g.power.unwrap_or(3.0),
            frequency: every,
        }),
        ScheduleKind::Linear => Box::new(Polynomial::linear(initial, target, begin, end, every)),
        ScheduleKind::OneShot => Box::new(OneShot {
            step: begin,
            sparsity: target,
        }),
        ScheduleKind::Constant => Box::new(Offset {
            inner: Constant {
                sparsity: target,
                frequency: every,
            },
            begin,
            end,
        }),
    }
}

/// A constant schedule active on `[begin, end]` only.
struct Offset {
    inner: Constant,
    begin: usize,
    end: usize,
}

impl Schedule for Offset {
    fn should_prune(&self, step: usize) -> bool {
        step >= self.begin && step <= self.end && self.inner.should_prune(step - self.begin)
    }
    fn sparsity(&self, step: usize) -> f64 {
        self.inner.sparsity(step)
    }
}

/// The pruner for a dynamic mode.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn pruner(
    p: &PruningConfig,
    train: &TrainConfig,
    n_train: usize,
    params: Vec<ParamInfo>,
    masks: MaskSet,
    seeds: &Seeds,
) -> Result<Pruner, PruneError> {
    let spe = steps_per_epoch(train, n_train);
    let total = train.epochs * spe;
    let rewire = |d: &DropGrowConfig, growth| {
        let end = steps_of(d.end_epoch, d.end_step).map_or(total * 3 / 4, |s| s.to_steps(spe));
        let every = steps_of(d.every_epochs, d.every_steps).map_or(100, |s| s.to_steps(spe));
        Plan::Rewire {
            rewiring: Rewiring {
                growth,
                drop_fraction: d.drop_fraction.unwrap_or(0.3),
                every,
                end,
            },
            sparsity: p.rule.sparsity.expect("validated"),
        }
    };
    let plan = match &p.mode {
        ModeConfig::Gradual(g) => Plan::Prune(schedule(g, &p.rule, spe)),
        ModeConfig::Rigl(d) => rewire(d, Growth::Gradient),
        ModeConfig::Set(d) => rewire(d, Growth::Random),
        _ => Plan::Hold,
    };
    Pruner::new(
        params,
        masks,
        // The random criterion of the first training phase draws per parameter name from the
        // run's seed, as it always has: gradual pruning by random scores keeps its numbers.
        p.rule.criterion.importance(seeds.seed()),
        spec(p),
        plan,
        // The pruner derives its own stream from the seed under the name `pruner`: the
        // first training phase's `Purpose::Pruner` (seeds.rs tests that the names agree).
        seeds.seed(),
    )
}

/// Gradual, RigL and SET: one training phase with the pruner updating the masks as it goes.
pub(crate) fn train(
    s: &crate::phases::Setup<'_>,
    mut state: crate::runner::State,
    sinks: &mut crate::phases::Sinks<'_>,
    ckpt: Option<&mut crate::checkpoint::Checkpointing>,
) -> Result<crate::runner::State, crate::train::TrainError> {
    use crate::train::TrainError;
    let (ctx, p) = (s.ctx, s.p);
    let n_train = ctx.task.splits.train.len();
    let masks = std::mem::take(&mut state.masks);
    let mut pruner = pruner(
        p,
        &ctx.cfg.train,
        n_train,
        s.params.to_vec(),
        masks,
        &ctx.seeds,
    )
    .map_err(TrainError::Prune)?;
    let t = {
        // The pruner publishes its events and sparsities; the loop logs them.
        let mut hooks: [&mut dyn pruning::TrainHook<crate::model::Net>; 2] =
            [&mut pruner, sinks.progress];
        ctx.train(state.model, &mut hooks, sinks.metrics, ckpt)?
    };
    state.masks = pruner.masks().clone();
    let record = &mut state.record;
    record.warnings.extend(pruner.warnings().iter().cloned());
    // A schedule that never fired leaves a dense network under a pruning config: say so rather
    // than report a quiet 0 %.
    if p.mode() == PruningMode::Gradual && state.masks.sparsity() == 0.0 {
        record.warnings.push(format!(
            "the gradual schedule never pruned: no mask update removed a weight in the run's {} steps ({} epochs); check pruning.begin_step/begin_epoch and end_step/end_epoch against train.epochs",
            t.end.steps_done, t.end.epochs_done
        ));
    }
    record.events = pruner.events().iter().map(event_report).collect();
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    Ok(state)
}

fn event_report(e: &pruning::PruneEvent) -> report::Event {
    report::Event {
        step: e.step,
        epoch: e.epoch,
        target: e.target,
        sparsity: e.sparsity,
        changed: e.changed,
        layers: e
            .layers
            .iter()
            .map(|(name, sparsity)| report::EventLayer {
                name: name.clone(),
                sparsity: *sparsity,
            })
            .collect(),
    }
}
