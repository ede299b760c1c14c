//! Lottery tickets (Frankle & Carbin 2019): levels of train → prune a fraction of the remaining
//! weights per layer by magnitude → rewind the survivors to their values at initialisation (or
//! at step k, Frankle et al. 2020) → retrain. Each level is also trained from a fresh random
//! initialisation with the same masks: the control that tells a ticket from a sparse network.

use pruning::{MaskHook, MaskSet, ParamInfo, RunEnd, SnapshotAt, TrainHook};
use report::table::{Align, markdown};
use report::{Level, LevelResult};

use crate::checkpoint::Checkpointing;
use crate::config::{CountOverConfig, PruningConfig, steps_of};
use crate::hooks::{BestValid, MetricsLog};
use crate::model::Mlp;
use crate::phases::{Setup, Sinks, evals_report, metrics_io};
use crate::prune;
use crate::seeds::{Phase, Purpose};
use crate::train::{TrainError, Trained, evaluate_splits, steps_per_epoch, train_checkpointed};

/// The last level's ticket, and every level's results.
pub struct LotteryOutcome {
    /// The ticket of the last level, trained.
    pub model: Mlp,
    /// How its training ended.
    pub end: RunEnd,
    /// Its masks.
    pub masks: MaskSet,
    /// One record per level (level 0 = dense).
    pub levels: Vec<Level>,
}

/// The start of level 0: the snapshot to rewind to, and the run's checkpoints.
struct LevelZero<'a, 'b> {
    snapshot: &'a mut SnapshotAt,
    ckpt: Option<&'b mut Checkpointing>,
}

/// Trains one network (ticket or control) with its masks held, logging after what was logged
/// before. Returns the trained model and the best-validation record.
fn train_level(
    s: &Setup<'_>,
    (model, params): (Mlp, &[ParamInfo]),
    masks: &MaskSet,
    phase: Phase,
    sinks: &mut Sinks<'_>,
    zero: Option<LevelZero<'_, '_>>,
) -> Result<(Trained, BestValid), TrainError> {
    let mut hold = MaskHook::new(params, masks).map_err(TrainError::Prune)?;
    let mut best = BestValid::default();
    let ctx = s.ctx;
    let t = {
        let mut hooks: Vec<&mut dyn TrainHook<Mlp>> = vec![
            &mut hold,
            &mut best,
            &mut *sinks.metrics,
            &mut *sinks.progress,
        ];
        let mut ckpt = None;
        if let Some(z) = zero {
            hooks.insert(0, z.snapshot);
            ckpt = z.ckpt;
        }
        let order = ctx.seeds.rng(phase, Purpose::Shuffle);
        train_checkpointed(model, &ctx.task, &ctx.cfg.train, order, &mut hooks, ckpt)?
    };
    let (s0, e0) = sinks.metrics.offset();
    sinks
        .metrics
        .set_offset(s0 + t.end.steps_done, e0 + t.end.epochs_done);
    Ok((t, best))
}

/// One side of a level's record: the best validation epoch and the final evaluation.
fn result(s: &Setup<'_>, best: &BestValid, model: &Mlp) -> LevelResult {
    let t = &s.ctx.task;
    let fin = evaluate_splits(model, t.splits, t.head, t.device, false);
    LevelResult {
        best_valid_accuracy: best.valid_accuracy,
        best_step: best.step,
        best_epoch: best.epoch,
        test_accuracy_at_best: best.test_accuracy,
        final_evals: evals_report(&fin, false),
    }
}

/// Logs a lottery marker row (`level`, `sparsity`, `control`) at the current position.
fn mark(metrics: &mut MetricsLog, metric: &str, value: f64) -> Result<(), TrainError> {
    let (step, epoch) = metrics.offset();
    metrics
        .row(step, epoch, "lottery", metric, value)
        .map_err(metrics_io(metrics))
}

/// Runs `p.rounds` levels (or one per `p.levels` entry) after a dense level 0; `ckpt`
/// checkpoints the dense level's training.
pub(crate) fn run_lottery(
    s: &Setup<'_>,
    model: Mlp,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<LotteryOutcome, TrainError> {
    let (ctx, p, params) = (s.ctx, s.p, s.params);
    let spe = steps_per_epoch(&ctx.cfg.train, ctx.task.splits.train.len());
    let rewind = steps_of(p.rewind_epoch, p.rewind_step).map_or(0, |s| s.to_steps(spe));
    let mut masks = MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    let mut snap = SnapshotAt::new(rewind);
    mark(sinks.metrics, "level", 0.0)?;
    let zero = LevelZero {
        snapshot: &mut snap,
        ckpt,
    };
    let (t, best) = train_level(s, (model, params), &masks, Phase::Train, sinks, Some(zero))?;
    let snapshot = snap.snapshot.ok_or_else(|| {
        TrainError::Prune(pruning::PruneError::Plan(format!(
            "the rewind point (step {rewind}) is after the end of training ({} steps): lower pruning.rewind_epoch / rewind_step",
            t.end.steps_done
        )))
    })?;
    let mut levels = vec![Level {
        level: 0,
        sparsity: 0.0,
        ticket: result(s, &best, &t.model),
        control: None,
    }];
    let (mut model, mut end) = (t.model, t.end);
    for (level, rule) in level_rules(p).iter().enumerate() {
        let level = level + 1;
        let (pruned, new_masks, _warnings) = s.prune(model, &masks, rule, level, None)?;
        masks = new_masks;
        let sparsity = masks.weight_sparsity();
        let ticket = snapshot.restore(pruned);
        mark(sinks.metrics, "level", level as f64)?;
        mark(sinks.metrics, "sparsity", sparsity)?;
        let phase = Phase::Level { level };
        let (t, best) = train_level(s, (ticket, params), &masks, phase, sinks, None)?;
        let control = if p.reinit_control.unwrap_or(true) {
            Some(reinit_control(s, &masks, level, sinks)?)
        } else {
            None
        };
        levels.push(Level {
            level,
            sparsity,
            ticket: result(s, &best, &t.model),
            control,
        });
        (model, end) = (t.model, t.end);
    }
    Ok(LotteryOutcome {
        model,
        end,
        masks,
        levels,
    })
}

/// The control of `level`: the level's masks on a fresh initialisation of its own, trained.
fn reinit_control(
    s: &Setup<'_>,
    masks: &MaskSet,
    level: usize,
    sinks: &mut Sinks<'_>,
) -> Result<LevelResult, TrainError> {
    let (ctx, task) = (s.ctx, &s.ctx.task);
    let phase = Phase::Control { level };
    let n_inputs = task.splits.train.n_features;
    let n_outputs = task.head.n_outputs();
    let fresh = Mlp::for_phase(
        &ctx.cfg.model,
        n_inputs,
        n_outputs,
        &ctx.seeds,
        phase,
        task.device,
    );
    let fresh_params = prune::masked_params(&fresh, s.p).map_err(TrainError::Prune)?;
    mark(sinks.metrics, "control", level as f64)?;
    let (c, best) = train_level(s, (fresh, &fresh_params), masks, phase, sinks, None)?;
    Ok(result(s, &best, &c.model))
}

/// Each level's pruning rule: `rounds` times `sparsity` of the remaining weights, or, with
/// `levels`, each listed sparsity of all weights.
fn level_rules(p: &PruningConfig) -> Vec<PruningConfig> {
    if p.levels.is_empty() {
        return vec![p.clone(); p.rounds];
    }
    p.levels
        .iter()
        .map(|&s| PruningConfig {
            sparsity: Some(s),
            count_over: CountOverConfig::All,
            ..p.clone()
        })
        .collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |a| format!("{:.2}", a * 100.0))
}

/// Column titles of the per-level table (accuracies in %).
pub const COLUMNS: [&str; 6] = [
    "level",
    "density %",
    "ticket best val % (epoch)",
    "ticket test %",
    "control best val % (epoch)",
    "control test %",
];

/// One level's cells, in the order of [`COLUMNS`]: density, the ticket's and the control's
/// best validation accuracy (with its epoch) and test accuracy at that epoch (without a
/// validation split, the test accuracy at the end of training).
pub fn row(level: &Level) -> [String; 6] {
    let side = |r: Option<&LevelResult>| match r {
        None => ("–".to_string(), "–".to_string()),
        // No validation split: no best epoch to pick, so the test accuracy at the end.
        Some(r) if r.best_valid_accuracy.is_none() => {
            ("–".to_string(), pct(r.final_evals.accuracy("test")))
        }
        Some(r) => (
            format!("{} ({})", pct(r.best_valid_accuracy), r.best_epoch),
            pct(r.test_accuracy_at_best),
        ),
    };
    let (tv, tt) = side(Some(&level.ticket));
    let (cv, ct) = side(level.control.as_ref());
    let density = 100.0 * (1.0 - level.sparsity);
    [
        level.level.to_string(),
        format!("{density:.1}"),
        tv,
        tt,
        cv,
        ct,
    ]
}

/// The per-level table in Markdown.
pub fn table(levels: &[Level]) -> String {
    let columns: Vec<(&str, Align)> = COLUMNS.iter().map(|c| (*c, Align::Right)).collect();
    let rows: Vec<Vec<String>> = levels.iter().map(|l| row(l).to_vec()).collect();
    markdown(&columns, &rows)
}
