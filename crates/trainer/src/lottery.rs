//! Lottery tickets (Frankle & Carbin 2019): levels of train → prune a fraction of the remaining
//! weights per layer by magnitude → rewind the survivors to their values at initialisation (or
//! at step k, Frankle et al. 2020) → retrain. Each level is also trained from a fresh random
//! initialisation with the same masks: the control that tells a ticket from a sparse network.

use burn::tensor::Device;
use pruning::{MaskHook, MaskSet, ParamInfo, RunEnd, SnapshotAt, TrainHook};
use report::table::{Align, markdown};
use report::{Level, LevelResult};

use crate::checkpoint::Checkpointing;
use crate::config::{Config, CountOverConfig, PruningConfig, steps_of};
use crate::data::Splits;
use crate::experiment::evals_report;
use crate::head::Head;
use crate::hooks::{BestValid, MetricsLog, Progress};
use crate::model::Mlp;
use crate::prune;
use crate::seeds::{Phase, Purpose, Seeds};
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

fn io(e: std::io::Error) -> TrainError {
    TrainError::Hook {
        name: "metrics.csv".into(),
        cause: e.into(),
    }
}

/// What every training of a lottery run shares.
struct Levels<'a> {
    cfg: &'a Config,
    splits: &'a Splits,
    head: Head,
    device: &'a Device,
    seeds: Seeds,
}

impl Levels<'_> {
    /// Trains one network (ticket or control) with its masks held, logging to `metrics` after
    /// what was logged before. Returns the trained model and the best-validation record.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        model: Mlp,
        params: &[ParamInfo],
        masks: &MaskSet,
        snapshot: Option<&mut SnapshotAt>,
        phase: Phase,
        metrics: &mut MetricsLog,
        progress: &mut Progress,
        ckpt: Option<&mut Checkpointing>,
    ) -> Result<(Trained, BestValid), TrainError> {
        let mut hold = MaskHook::new(params, masks).map_err(TrainError::Prune)?;
        let mut best = BestValid::default();
        let t = {
            let mut hooks: Vec<&mut dyn TrainHook<Mlp>> =
                vec![&mut hold, &mut best, metrics, progress];
            if let Some(s) = snapshot {
                hooks.insert(0, s);
            }
            let (cfg, splits) = (self.cfg, self.splits);
            train_checkpointed(
                model,
                splits,
                self.head,
                &cfg.train,
                self.seeds.rng(phase, Purpose::Shuffle),
                self.device,
                &mut hooks,
                ckpt,
            )?
        };
        let (s0, e0) = metrics.offset();
        metrics.set_offset(s0 + t.end.steps_done, e0 + t.end.epochs_done);
        Ok((t, best))
    }

    /// One side of a level's record: the best validation epoch and the final evaluation.
    fn result(&self, best: &BestValid, model: &Mlp) -> LevelResult {
        let fin = evaluate_splits(model, self.splits, self.head, self.device, false);
        LevelResult {
            best_valid_accuracy: best.valid_accuracy,
            best_step: best.step,
            best_epoch: best.epoch,
            test_accuracy_at_best: best.test_accuracy,
            final_evals: evals_report(&fin, false),
        }
    }
}

/// Runs `p.rounds` levels (or one per `p.levels` entry) after a dense level 0; `ckpt`
/// checkpoints the dense level's training.
#[allow(clippy::too_many_arguments)]
pub fn run_lottery(
    model: Mlp,
    params: &[ParamInfo],
    cfg: &Config,
    p: &PruningConfig,
    splits: &Splits,
    head: Head,
    device: &Device,
    metrics: &mut MetricsLog,
    progress: &mut Progress,
    ckpt: Option<&mut Checkpointing>,
) -> Result<LotteryOutcome, TrainError> {
    let spe = steps_per_epoch(&cfg.train, splits.train.len());
    let rewind = steps_of(p.rewind_epoch, p.rewind_step).map_or(0, |s| s.to_steps(spe));
    let control = p.reinit_control.unwrap_or(true);
    let n_inputs = splits.train.n_features;
    let mut masks = MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    let mut snap = SnapshotAt::new(rewind);
    let run = Levels {
        cfg,
        splits,
        head,
        device,
        seeds: Seeds::new(cfg.seed),
    };
    let (s, e) = metrics.offset();
    metrics.row(s, e, "lottery", "level", 0.0).map_err(io)?;
    let (t, best) = run.train(
        model,
        params,
        &masks,
        Some(&mut snap),
        Phase::Train,
        metrics,
        progress,
        ckpt,
    )?;
    let snapshot = snap.snapshot.ok_or_else(|| {
        TrainError::Prune(pruning::PruneError::Plan(format!(
            "the rewind point (step {rewind}) is after the end of training ({} steps): lower pruning.rewind_epoch / rewind_step",
            t.end.steps_done
        )))
    })?;
    let mut levels = vec![Level {
        level: 0,
        sparsity: 0.0,
        ticket: run.result(&best, &t.model),
        control: None,
    }];
    let (mut model, mut end) = (t.model, t.end);
    for (level, rule) in level_rules(p).iter().enumerate() {
        let level = level + 1;
        let (pruned, new_masks, _warnings) = prune::prune_step(
            model,
            params,
            &masks,
            rule,
            run.seeds
                .derived(Phase::Prune { round: level }, Purpose::Criterion),
            None,
        )
        .map_err(TrainError::Prune)?;
        masks = new_masks;
        let sparsity = masks.weight_sparsity();
        let ticket = snapshot.restore(pruned);
        let (s, e) = metrics.offset();
        metrics
            .row(s, e, "lottery", "level", level as f64)
            .map_err(io)?;
        metrics
            .row(s, e, "lottery", "sparsity", sparsity)
            .map_err(io)?;
        let (t, best) = run.train(
            ticket,
            params,
            &masks,
            None,
            Phase::Level { level },
            metrics,
            progress,
            None,
        )?;
        let mut record = Level {
            level,
            sparsity,
            ticket: run.result(&best, &t.model),
            control: None,
        };
        if control {
            let phase = Phase::Control { level };
            let fresh = Mlp::for_phase(
                &cfg.model,
                n_inputs,
                head.n_outputs(),
                &run.seeds,
                phase,
                device,
            );
            let fresh_params = prune::masked_params(&fresh, p).map_err(TrainError::Prune)?;
            let (s, e) = metrics.offset();
            metrics
                .row(s, e, "lottery", "control", level as f64)
                .map_err(io)?;
            let (c, cbest) = run.train(
                fresh,
                &fresh_params,
                &masks,
                None,
                phase,
                metrics,
                progress,
                None,
            )?;
            record.control = Some(run.result(&cbest, &c.model));
        }
        levels.push(record);
        (model, end) = (t.model, t.end);
    }
    Ok(LotteryOutcome {
        model,
        end,
        masks,
        levels,
    })
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
