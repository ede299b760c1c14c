//! The phases of a run once its data and network exist: training, and for each pruning mode its
//! own sequence — static pruning and fine-tuning rounds (or a search), pruning at
//! initialisation, dynamic pruning during training, lottery levels — ending in one pruning
//! report.
//!
//! Every phase reads what the run shares from one [`RunContext`] (config, data, head, device,
//! random streams) and logs through one [`Sinks`]; a mode is a function over those, not a
//! bundle of eight arguments.

use std::collections::BTreeMap;

use burn::module::ParamId;
use pruning::importance::GradStats;
use pruning::{MaskSet, ParamInfo, PruneError, RunEnd, TrainHook};
use report::{ModeReport, PruningReport, Round, Rounds};

use crate::checkpoint::Checkpointing;
use crate::config::{Config, PruningConfig, PruningMode};
use crate::eval::Evaluation;
use crate::hooks::{MetricsLog, Progress, PrunerLog};
use crate::inference::{CsrMlp, HostMlp, compact, sizes_of};
use crate::model::Mlp;
use crate::prune;
use crate::seeds::{Phase, Purpose, Seeds};
use crate::train::{Task, TrainError, Trained, evaluate_splits, train_checkpointed};

/// What every phase of a run shares.
pub(crate) struct RunContext<'a> {
    /// The resolved config.
    pub cfg: &'a Config,
    /// The data, the head and the device networks train on.
    pub task: Task<'a>,
    /// The run's random streams.
    pub seeds: Seeds,
}

impl RunContext<'_> {
    /// The run's first training phase (`[train]`, shuffled by the first phase's stream), with
    /// `hooks`, checkpointed as `ckpt` says.
    pub fn train(
        &self,
        model: Mlp,
        hooks: &mut [&mut dyn TrainHook<Mlp>],
        ckpt: Option<&mut Checkpointing>,
    ) -> Result<Trained, TrainError> {
        let order = self.seeds.rng(Phase::Train, Purpose::Shuffle);
        train_checkpointed(model, &self.task, &self.cfg.train, order, hooks, ckpt)
    }
}

/// Where phases report: metrics.csv and the progress bar.
pub(crate) struct Sinks<'a> {
    /// metrics.csv.
    pub metrics: &'a mut MetricsLog,
    /// The progress bar.
    pub progress: &'a mut Progress,
}

/// A run's pruning setup: the context, the `[pruning]` table and the masked parameters.
pub(crate) struct Setup<'a> {
    /// What the run shares.
    pub ctx: &'a RunContext<'a>,
    /// The `[pruning]` table.
    pub p: &'a PruningConfig,
    /// The parameters masks apply to.
    pub params: &'a [ParamInfo],
}

/// The model after all phases, how the last training phase ended, and the pruning outcome.
pub(crate) struct Phased {
    pub model: Mlp,
    pub end: RunEnd,
    pub masks: Option<MaskSet>,
    pub pruning: Option<PruningReport>,
    /// The compacted network, for runs that prune whole neurons.
    pub compact: Option<HostMlp>,
    /// The weights pruning started from (trained for static pruning, initial otherwise).
    pub before_weights: Option<HostMlp>,
}

/// What a mode's phases leave behind.
struct Outcome {
    model: Mlp,
    end: RunEnd,
    masks: MaskSet,
    mode: ModeReport,
    warnings: Vec<String>,
    before_weights: HostMlp,
}

/// Evaluations as reports record them (`correct` only where `with_correct`: the final ones).
pub(crate) fn evals_report(
    evals: &[(&'static str, Evaluation)],
    with_correct: bool,
) -> report::Evals {
    report::Evals(
        evals
            .iter()
            .map(|(split, e)| {
                let eval = report::SplitEval {
                    n: e.n,
                    loss: e.loss,
                    accuracy: e.accuracy(),
                    correct: e.correct.filter(|_| with_correct),
                };
                (split.to_string(), eval)
            })
            .collect(),
    )
}

/// An IO error of `metrics`' file, as an IO error with its path.
pub(crate) fn metrics_io(metrics: &MetricsLog) -> impl Fn(std::io::Error) -> TrainError + use<> {
    let path = metrics.path().to_path_buf();
    move |cause| TrainError::Io {
        path: path.clone(),
        cause,
    }
}

/// Logs `evals` as `{phase}_loss` / `{phase}_accuracy` rows after what was logged before.
pub(crate) fn log_evals(
    metrics: &mut MetricsLog,
    evals: &[(&'static str, Evaluation)],
    phase: &str,
) -> Result<(), TrainError> {
    let (step, epoch) = metrics.offset();
    for (split, e) in evals {
        metrics
            .row(step, epoch, split, &format!("{phase}_loss"), e.loss)
            .map_err(metrics_io(metrics))?;
        if let Some(a) = e.accuracy() {
            metrics
                .row(step, epoch, split, &format!("{phase}_accuracy"), a)
                .map_err(metrics_io(metrics))?;
        }
    }
    metrics.flush().map_err(metrics_io(metrics))
}

impl Setup<'_> {
    /// Gradient statistics of `m` on the training data, when the criterion needs them.
    pub fn grads_for(&self, m: &Mlp) -> Option<BTreeMap<ParamId, GradStats>> {
        let (p, task) = (self.p, &self.ctx.task);
        let n = task.splits.train.len();
        let batch = self.ctx.cfg.train.batch_size.unwrap_or(n).min(n);
        p.criterion.needs_gradients().then(|| {
            prune::calibrate(
                m,
                &task.splits.train,
                task.head,
                batch,
                p.calibration_batches,
                self.params,
                task.device,
            )
        })
    }

    /// Pruning step `round` of `rule` (the config's `[pruning]`, or a level's or a probe's
    /// variant of it) from `masks`, with the step's own random stream.
    pub fn prune(
        &self,
        model: Mlp,
        masks: &MaskSet,
        rule: &PruningConfig,
        round: usize,
        grads: Option<&BTreeMap<ParamId, GradStats>>,
    ) -> Result<(Mlp, MaskSet, Vec<String>), TrainError> {
        let seed = self
            .ctx
            .seeds
            .derived(Phase::Prune { round }, Purpose::Criterion);
        prune::prune_step(model, self.params, masks, rule, seed, grads).map_err(TrainError::Prune)
    }

    /// Fine-tunes `model` with `masks` held, shuffling with `phase`'s stream.
    pub fn fine_tune(
        &self,
        model: Mlp,
        masks: &MaskSet,
        phase: Phase,
        others: &mut [&mut dyn TrainHook<Mlp>],
    ) -> Result<Trained, TrainError> {
        let tune = prune::fine_tune_config(&self.ctx.cfg.train, self.p);
        let shuffle = self.ctx.seeds.rng(phase, Purpose::Shuffle);
        prune::fine_tune(
            model,
            self.params,
            masks,
            &tune,
            &self.ctx.task,
            shuffle,
            others,
        )
    }

    /// Every split's evaluation of `m`.
    pub fn evaluate(&self, m: &Mlp) -> Vec<(&'static str, Evaluation)> {
        let t = &self.ctx.task;
        evaluate_splits(m, t.splits, t.head, t.device, true)
    }
}

/// Training, and pruning where the config asks for it. `skip_training` (with `--from`) takes
/// `model` as trained; `start_masks` are an earlier run's masks, which stay pruned.
pub(crate) fn run_phases(
    model: Mlp,
    ctx: &RunContext<'_>,
    (skip_training, start_masks): (bool, Option<MaskSet>),
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<Phased, TrainError> {
    let Some(p) = &ctx.cfg.pruning else {
        let mut hooks: [&mut dyn TrainHook<Mlp>; 2] = [sinks.metrics, sinks.progress];
        let t = ctx.train(model, &mut hooks, ckpt)?;
        return Ok(Phased {
            model: t.model,
            end: t.end,
            masks: None,
            pruning: None,
            compact: None,
            before_weights: None,
        });
    };
    let params = prune::masked_params(&model, p).map_err(TrainError::Prune)?;
    let masks = initial_masks(&params, start_masks)?;
    let s = Setup {
        ctx,
        p,
        params: &params,
    };
    let out = match p.mode {
        PruningMode::Gradual | PruningMode::Rigl | PruningMode::Set => {
            dynamic(&s, model, masks, sinks, ckpt)?
        }
        PruningMode::Lottery => {
            let before_weights = HostMlp::from_mlp(&model);
            let out = crate::lottery::run_lottery(&s, model, sinks, ckpt)?;
            Outcome {
                model: out.model,
                end: out.end,
                masks: out.masks,
                mode: ModeReport::Lottery(report::pruning::Levels { levels: out.levels }),
                warnings: Vec::new(),
                before_weights,
            }
        }
        PruningMode::AtInit => at_init(&s, model, masks, sinks, ckpt)?,
        PruningMode::Static => static_rounds(&s, model, masks, skip_training, sinks, ckpt)?,
    };
    finish(&s, out)
}

/// All-ones masks for `params`, with an earlier run's masks carried over where given.
fn initial_masks(params: &[ParamInfo], earlier: Option<MaskSet>) -> Result<MaskSet, TrainError> {
    let mut masks = MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    for (name, m) in earlier.map(|e| e.masks).unwrap_or_default() {
        if let Some(slot) = masks.masks.get_mut(&name) {
            if slot.shape != m.shape {
                return Err(TrainError::Prune(PruneError::ShapeMismatch {
                    name,
                    expected: slot.shape.clone(),
                    got: m.shape,
                }));
            }
            *slot = m;
        }
    }
    Ok(masks)
}

/// Gradual, RigL and SET: one training with the pruner updating masks as it goes.
fn dynamic(
    s: &Setup<'_>,
    model: Mlp,
    masks: MaskSet,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<Outcome, TrainError> {
    let (ctx, p) = (s.ctx, s.p);
    let n_train = ctx.task.splits.train.len();
    let mut pruner = crate::dynamic::pruner(
        p,
        &ctx.cfg.train,
        n_train,
        s.params.to_vec(),
        masks,
        &ctx.seeds,
    )
    .map_err(TrainError::Prune)?;
    let before_weights = HostMlp::from_mlp(&model);
    let t = {
        let mut log = PrunerLog::new(&mut pruner, sinks.metrics);
        let mut hooks: [&mut dyn TrainHook<Mlp>; 2] = [&mut log, sinks.progress];
        ctx.train(model, &mut hooks, ckpt)?
    };
    let masks = pruner.masks().clone();
    let mut warnings = pruner.warnings().to_vec();
    // A schedule that never fired leaves a dense network under a pruning config: say so rather
    // than report a quiet 0 %.
    if p.mode == PruningMode::Gradual && masks.sparsity() == 0.0 {
        warnings.push(format!(
            "the gradual schedule never pruned: no mask update removed a weight in the run's {} steps ({} epochs); check pruning.begin_step/begin_epoch and end_step/end_epoch against train.epochs",
            t.end.steps_done, t.end.epochs_done
        ));
    }
    let events = report::pruning::Events {
        events: pruner.events().iter().map(event_report).collect(),
    };
    let mode = match p.mode {
        PruningMode::Rigl => ModeReport::Rigl(events),
        PruningMode::Set => ModeReport::Set(events),
        _ => ModeReport::Gradual(events),
    };
    Ok(Outcome {
        model: t.model,
        end: t.end,
        masks,
        mode,
        warnings,
        before_weights,
    })
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

/// At-init: prune the initial network, then train it with its masks held.
fn at_init(
    s: &Setup<'_>,
    model: Mlp,
    masks: MaskSet,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<Outcome, TrainError> {
    let ctx = s.ctx;
    let before_weights = HostMlp::from_mlp(&model);
    let before = s.evaluate(&model);
    let grads = s.grads_for(&model);
    let (m, masks, warnings) = s.prune(model, &masks, s.p, 1, grads.as_ref())?;
    let mut hold = pruning::MaskHook::new(s.params, &masks).map_err(TrainError::Prune)?;
    let mut hooks: [&mut dyn TrainHook<Mlp>; 3] = [&mut hold, sinks.metrics, sinks.progress];
    let t = ctx.train(m, &mut hooks, ckpt)?;
    let after = s.evaluate(&t.model);
    let rounds = vec![Round {
        round: 1,
        sparsity: masks.sparsity(),
        after_pruning: None,
        after_fine_tune: None,
        after_training: Some(evals_report(&after, false)),
    }];
    Ok(Outcome {
        model: t.model,
        end: t.end,
        masks,
        mode: ModeReport::AtInit(Rounds {
            before_pruning: evals_report(&before, false),
            rounds,
            search: None,
        }),
        warnings,
        before_weights,
    })
}

/// Static: train (unless the model comes trained), then `rounds` times prune and fine-tune —
/// or search for the highest sparsity within the tolerance.
fn static_rounds(
    s: &Setup<'_>,
    model: Mlp,
    mut masks: MaskSet,
    skip_training: bool,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<Outcome, TrainError> {
    let (ctx, p) = (s.ctx, s.p);
    let (mut model, mut end) = if skip_training {
        // --from: the earlier run's model is the trained model.
        let none = RunEnd {
            epochs_done: 0,
            steps_done: 0,
            stopped_early: false,
        };
        (model, none)
    } else {
        let mut hooks: [&mut dyn TrainHook<Mlp>; 2] = [sinks.metrics, sinks.progress];
        let t = ctx.train(model, &mut hooks, ckpt)?;
        (t.model, t.end)
    };
    sinks.metrics.set_offset(end.steps_done, end.epochs_done);
    let before_weights = HostMlp::from_mlp(&model);
    let before = s.evaluate(&model);
    log_evals(sinks.metrics, &before, "before_pruning")?;
    let mut rounds = Vec::new();
    let mut warnings = Vec::new();
    let mut search = None;
    if p.search.is_some() {
        let grads = s.grads_for(&model);
        let found = crate::search::search(s, model, &masks, sinks.progress, grads.as_ref())?;
        masks = found.masks;
        warnings.extend(found.warnings);
        let after = s.evaluate(&found.model);
        log_evals(sinks.metrics, &after, "after_search")?;
        rounds.push(Round {
            round: 1,
            sparsity: masks.sparsity(),
            after_pruning: None,
            after_fine_tune: Some(evals_report(&after, false)),
            after_training: None,
        });
        search = Some(found.report);
        model = found.model;
    } else {
        for round in 1..=p.rounds {
            let (m, record, e, w) = prune_and_tune(s, model, &mut masks, round, sinks)?;
            model = m;
            end = e.unwrap_or(end);
            warnings.extend(w.iter().map(|w| format!("round {round}: {w}")));
            rounds.push(record);
        }
    }
    Ok(Outcome {
        model,
        end,
        masks,
        mode: ModeReport::Static(Rounds {
            before_pruning: evals_report(&before, false),
            rounds,
            search,
        }),
        warnings,
        before_weights,
    })
}

/// One static round: prune, evaluate, fine-tune (when asked), evaluate.
fn prune_and_tune(
    s: &Setup<'_>,
    model: Mlp,
    masks: &mut MaskSet,
    round: usize,
    sinks: &mut Sinks<'_>,
) -> Result<(Mlp, Round, Option<RunEnd>, Vec<String>), TrainError> {
    let grads = s.grads_for(&model);
    let (mut model, new_masks, warnings) = s.prune(model, masks, s.p, round, grads.as_ref())?;
    *masks = new_masks;
    let after = s.evaluate(&model);
    log_evals(sinks.metrics, &after, "after_pruning")?;
    let (step, epoch) = sinks.metrics.offset();
    sinks
        .metrics
        .row(step, epoch, "prune", "sparsity", masks.sparsity())
        .map_err(metrics_io(sinks.metrics))?;
    let mut record = Round {
        round,
        sparsity: masks.sparsity(),
        after_pruning: Some(evals_report(&after, false)),
        after_fine_tune: None,
        after_training: None,
    };
    let mut end = None;
    if s.p.fine_tune_epochs > 0 {
        let mut others: [&mut dyn TrainHook<Mlp>; 2] = [sinks.metrics, sinks.progress];
        let t = s.fine_tune(model, masks, Phase::FineTune { round }, &mut others)?;
        model = t.model;
        let (s0, e0) = sinks.metrics.offset();
        sinks
            .metrics
            .set_offset(s0 + t.end.steps_done, e0 + t.end.epochs_done);
        let tuned = s.evaluate(&model);
        log_evals(sinks.metrics, &tuned, "after_fine_tune")?;
        record.after_fine_tune = Some(evals_report(&tuned, false));
        end = Some(t.end);
    }
    Ok((model, record, end, warnings))
}

/// The saved model made exactly sparse, and the report of what pruning removed and bought.
fn finish(s: &Setup<'_>, out: Outcome) -> Result<Phased, TrainError> {
    let (p, task) = (s.p, &s.ctx.task);
    // The saved model is exactly sparse: one last multiplication by the masks.
    let model = pruning::apply_masks(out.model, s.params, &out.masks).map_err(TrainError::Prune)?;
    let (layers, total) = prune::layer_report(&model, &out.masks);
    // What pruning buys: bytes in each storage format, and the compacted network.
    let host = HostMlp::from_mlp(&model);
    let compacted = compact(&host);
    let sizes = sizes_of(&host, &CsrMlp::from_host(&host), &compacted);
    let mut compact_report = report::Compact {
        widths: compacted.model.widths(),
        dense_macs_per_sample: host.macs(),
        compact_macs_per_sample: compacted.model.macs(),
        final_evals: None,
    };
    let neurons = matches!(
        p.granularity_parsed(),
        Some(crate::config::Granularity::Neuron)
    );
    let compact_model = if neurons {
        let small = compacted.model.to_mlp(task.device);
        let evals = evaluate_splits(&small, task.splits, task.head, task.device, true);
        compact_report.final_evals = Some(evals_report(&evals, false));
        Some(compacted.model)
    } else {
        None
    };
    let config = serde_json::to_value(p).map_err(|e| {
        TrainError::Prune(PruneError::Plan(format!(
            "the [pruning] table as JSON: {e}"
        )))
    })?;
    let report = PruningReport {
        config,
        mode: out.mode,
        layers,
        total,
        sizes,
        compact: compact_report,
        warnings: out.warnings,
    };
    Ok(Phased {
        model,
        end: out.end,
        masks: Some(out.masks),
        pruning: Some(report),
        compact: compact_model,
        before_weights: Some(out.before_weights),
    })
}
