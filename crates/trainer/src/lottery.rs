//! Lottery tickets (Frankle & Carbin 2019): levels of train → prune a fraction of the remaining
//! weights per layer by magnitude → rewind the survivors to their values at initialisation (or
//! at step k, Frankle et al. 2020) → retrain. Each level is also trained from a fresh random
//! initialisation with the same masks: the control that tells a ticket from a sparse network.

use pruning::{CountOver, MaskHook, MaskSet, ParamInfo, PruneError, SnapshotAt, TrainHook};
use report::table::{Align, markdown};
use report::{Level, LevelResult};

use crate::checkpoint::Checkpointing;
use crate::config::{ModeConfig, PruningConfig, steps_of};
use crate::hooks::BestValid;
use crate::metrics_log::MetricsLog;
use crate::model::Net;
use crate::phases::{Setup, Sinks, evals_report};
use crate::prune;
use crate::runner::State;
use crate::seeds::{Phase, Purpose};
use crate::train::{TrainError, Trained, evaluate_splits, steps_per_epoch, train_checkpointed};

/// Trains one network (ticket or control) with its masks held (after `first`, when given),
/// logging after what was logged before. Returns the trained model and the best-validation
/// record.
fn train_level(
    s: &Setup<'_>,
    (model, params): (Net, &[ParamInfo]),
    (masks, phase): (&MaskSet, Phase),
    (sinks, first): (&mut Sinks<'_>, Option<&mut SnapshotAt>),
    ckpt: Option<&mut Checkpointing>,
) -> Result<(Trained, BestValid), TrainError> {
    let mut hold = MaskHook::new(params, masks).map_err(TrainError::Prune)?;
    let mut best = BestValid::default();
    let ctx = s.ctx;
    let mut hooks: Vec<&mut dyn TrainHook<Net>> = vec![&mut hold, &mut best, &mut *sinks.progress];
    if let Some(snapshot) = first {
        hooks.insert(0, snapshot);
    }
    let order = ctx.seeds.rng(phase, Purpose::Shuffle);
    let (task, t) = (&ctx.task, &ctx.cfg.train);
    let log = Some(&mut *sinks.metrics);
    let t = train_checkpointed(model, task, t, order, &mut hooks, log, ckpt)?;
    drop(hooks);
    Ok((t, best))
}

/// One side of a level's record: the best validation epoch and the final evaluation.
fn result(s: &Setup<'_>, best: &BestValid, model: &Net) -> LevelResult {
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
        .map_err(metrics.io_error())
}

/// Level 0: the dense network trained, keeping its weights at the rewind point.
pub(crate) fn dense(
    s: &Setup<'_>,
    mut state: State,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let (ctx, p) = (s.ctx, s.p);
    let spe = steps_per_epoch(&ctx.cfg.train, ctx.task.splits.train.len());
    let rewind = match &p.mode {
        ModeConfig::Lottery(l) => steps_of(l.rewind_epoch, l.rewind_step),
        _ => None,
    };
    let rewind = rewind.map_or(0, |s| s.to_steps(spe));
    let mut snap = SnapshotAt::new(rewind);
    mark(sinks.metrics, "level", 0.0)?;
    let (t, best) = train_level(
        s,
        (state.model, s.params),
        (&state.masks, Phase::Train),
        (sinks, Some(&mut snap)),
        ckpt,
    )?;
    let snapshot = snap.snapshot.ok_or_else(|| {
        TrainError::Prune(PruneError::Plan(format!(
            "the rewind point (step {rewind}) is after the end of training ({} steps): lower pruning.rewind_epoch / rewind_step",
            t.end.steps_done
        )))
    })?;
    state.anchor = Some(snapshot);
    state.record.levels.push(Level {
        level: 0,
        sparsity: 0.0,
        ticket: result(s, &best, &t.model),
        control: None,
    });
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    Ok(state)
}

/// Level `level` begins: the last ticket pruned by the level's rule, its survivors rewound.
pub(crate) fn rewind(
    s: &Setup<'_>,
    mut state: State,
    level: usize,
    sinks: &mut Sinks<'_>,
) -> Result<State, TrainError> {
    let rules = level_rules(s.p);
    let (Some(rule), Some(anchor)) = (rules.get(level - 1), state.anchor.as_ref()) else {
        return Err(TrainError::Prune(PruneError::Plan(format!(
            "lottery level {level} without its rule or rewind point"
        ))));
    };
    let (pruned, masks, _warnings) = s.prune(state.model, &state.masks, rule, level, None)?;
    state.model = anchor.restore(pruned);
    state.masks = masks;
    mark(sinks.metrics, "level", level as f64)?;
    mark(sinks.metrics, "sparsity", state.masks.weight_sparsity())?;
    Ok(state)
}

/// Level `level`'s ticket trained with its masks held.
pub(crate) fn ticket(
    s: &Setup<'_>,
    mut state: State,
    level: usize,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let phase = Phase::Level { level };
    let (t, best) = train_level(
        s,
        (state.model, s.params),
        (&state.masks, phase),
        (sinks, None),
        ckpt,
    )?;
    state.record.levels.push(Level {
        level,
        sparsity: state.masks.weight_sparsity(),
        ticket: result(s, &best, &t.model),
        control: None,
    });
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    Ok(state)
}

/// The control of `level`: the level's masks on a fresh initialisation of its own, trained.
pub(crate) fn control(
    s: &Setup<'_>,
    mut state: State,
    level: usize,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let (ctx, task) = (s.ctx, &s.ctx.task);
    let phase = Phase::Control { level };
    let input = ctx
        .cfg
        .model
        .input(ctx.cfg.data.image_shape(), task.splits.train.n_features);
    let n_outputs = task.head.n_outputs();
    let fresh = Net::for_phase(
        &ctx.cfg.model,
        input,
        n_outputs,
        &ctx.seeds,
        phase,
        task.device,
    );
    let fresh_params = prune::masked_params(&fresh, s.p).map_err(TrainError::Prune)?;
    mark(sinks.metrics, "control", level as f64)?;
    let (c, best) = train_level(
        s,
        (fresh, &fresh_params),
        (&state.masks, phase),
        (sinks, None),
        ckpt,
    )?;
    let control = result(s, &best, &c.model);
    if let Some(l) = state.record.levels.last_mut() {
        l.control = Some(control);
    }
    state.advance(&c.end, sinks.metrics);
    Ok(state)
}

/// Each level's pruning rule: `rounds` times `sparsity` of the remaining weights, or, with
/// `levels`, each listed sparsity of all weights.
pub(crate) fn level_rules(p: &PruningConfig) -> Vec<PruningConfig> {
    if p.levels().is_empty() {
        return vec![p.clone(); p.rounds()];
    }
    p.levels()
        .iter()
        .map(|&s| {
            let mut rule = p.clone();
            rule.rule.sparsity = Some(s);
            rule.rule.count_over = CountOver::All;
            rule
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
