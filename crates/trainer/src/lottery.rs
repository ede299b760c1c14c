//! Lottery tickets (Frankle & Carbin 2019): levels of train → prune a fraction of the remaining
//! weights per layer by magnitude → rewind the survivors to their values at initialisation (or
//! at step k, Frankle et al. 2020) → retrain. Each level is also trained from a fresh random
//! initialisation with the same masks: the control that tells a ticket from a sparse network.

use burn::tensor::Device;
use pruning::{MaskHook, MaskSet, ParamInfo, Rng, RunEnd, SnapshotAt, TrainHook};
use serde_json::json;

use crate::config::{Config, PruningConfig, steps_of};
use crate::data::Splits;
use crate::dynamic::steps_per_epoch;
use crate::experiment::eval_json;
use crate::head::Head;
use crate::hooks::{BestValid, MetricsLog, Progress};
use crate::model::Mlp;
use crate::prune;
use crate::train::{TrainError, Trained, evaluate_splits, train};

/// The last level's ticket, and every level's results.
pub struct LotteryOutcome {
    /// The ticket of the last level, trained.
    pub model: Mlp,
    /// How its training ended.
    pub end: RunEnd,
    /// Its masks.
    pub masks: MaskSet,
    /// One record per level (level 0 = dense).
    pub levels: serde_json::Value,
}

fn io(e: std::io::Error) -> TrainError {
    TrainError::Hook {
        name: "metrics.csv".into(),
        cause: e.into(),
    }
}

/// Trains one network (ticket or control) with its masks held, logging to `metrics` after
/// what was logged before. Returns the trained model and the best-validation record.
#[allow(clippy::too_many_arguments)]
fn train_level(
    model: Mlp,
    params: &[ParamInfo],
    masks: &MaskSet,
    snapshot: Option<&mut SnapshotAt>,
    cfg: &Config,
    seed: u64,
    splits: &Splits,
    head: Head,
    device: &Device,
    metrics: &mut MetricsLog,
    progress: &mut Progress,
) -> Result<(Trained, BestValid), TrainError> {
    let mut hold = MaskHook::new(params, masks).map_err(TrainError::Prune)?;
    let mut best = BestValid::default();
    let t = {
        let mut hooks: Vec<&mut dyn TrainHook<Mlp>> = vec![&mut hold, &mut best, metrics, progress];
        if let Some(s) = snapshot {
            hooks.insert(0, s);
        }
        train(model, splits, head, &cfg.train, seed, device, &mut hooks)?
    };
    let (s0, e0) = metrics.offset();
    metrics.set_offset(s0 + t.end.steps_done, e0 + t.end.epochs_done);
    Ok((t, best))
}

fn result_json(
    best: &BestValid,
    model: &Mlp,
    splits: &Splits,
    head: Head,
    device: &Device,
) -> serde_json::Value {
    let fin = evaluate_splits(model, splits, head, device, false);
    json!({
        "best_valid_accuracy": best.valid_accuracy,
        "best_step": best.step,
        "best_epoch": best.epoch,
        "test_accuracy_at_best": best.test_accuracy,
        "final": eval_json(&fin),
    })
}

/// Runs `p.rounds` levels after a dense level 0.
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
) -> Result<LotteryOutcome, TrainError> {
    let spe = steps_per_epoch(&cfg.train, splits.train.len());
    let rewind = steps_of(p.rewind_epoch, p.rewind_step).map_or(0, |s| s.to_steps(spe));
    let control = p.reinit_control.unwrap_or(true);
    let n_inputs = splits.train.n_features;
    let mut masks = MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    let mut snap = SnapshotAt::new(rewind);
    let (s, e) = metrics.offset();
    metrics.row(s, e, "lottery", "level", 0.0).map_err(io)?;
    let (t, best) = train_level(
        model,
        params,
        &masks,
        Some(&mut snap),
        cfg,
        cfg.seed,
        splits,
        head,
        device,
        metrics,
        progress,
    )?;
    let snapshot = snap.snapshot.ok_or_else(|| {
        TrainError::Prune(pruning::PruneError::Plan(format!(
            "the rewind point (step {rewind}) is after the end of training ({} steps): lower pruning.rewind_epoch / rewind_step",
            t.end.steps_done
        )))
    })?;
    let mut levels = vec![json!({
        "level": 0,
        "sparsity": 0.0,
        "ticket": result_json(&best, &t.model, splits, head, device),
    })];
    let (mut model, mut end) = (t.model, t.end);
    for level in 1..=p.rounds {
        let (pruned, new_masks, _warnings) =
            prune::prune_step(model, params, &masks, p, cfg.seed, None)
                .map_err(TrainError::Prune)?;
        masks = new_masks;
        let sparsity = weight_sparsity(params, &masks);
        let ticket = snapshot.restore(pruned);
        let (s, e) = metrics.offset();
        metrics
            .row(s, e, "lottery", "level", level as f64)
            .map_err(io)?;
        metrics
            .row(s, e, "lottery", "sparsity", sparsity)
            .map_err(io)?;
        let (t, best) = train_level(
            ticket, params, &masks, None, cfg, cfg.seed, splits, head, device, metrics, progress,
        )?;
        let mut record = json!({
            "level": level,
            "sparsity": sparsity,
            "ticket": result_json(&best, &t.model, splits, head, device),
        });
        if control {
            let seed = Rng::derive(cfg.seed, &format!("reinit-control-{level}")).next_u64();
            let fresh = Mlp::new(&cfg.model, n_inputs, head.n_outputs(), seed, device);
            let fresh_params = prune::masked_params(&fresh, p).map_err(TrainError::Prune)?;
            let (s, e) = metrics.offset();
            metrics
                .row(s, e, "lottery", "control", level as f64)
                .map_err(io)?;
            let (c, cbest) = train_level(
                fresh,
                &fresh_params,
                &masks,
                None,
                cfg,
                seed,
                splits,
                head,
                device,
                metrics,
                progress,
            )?;
            record["control"] = result_json(&cbest, &c.model, splits, head, device);
        }
        levels.push(record);
        (model, end) = (t.model, t.end);
    }
    Ok(LotteryOutcome {
        model,
        end,
        masks,
        levels: json!(levels),
    })
}

/// Sparsity over the pruned 2-D weights.
fn weight_sparsity(params: &[ParamInfo], masks: &MaskSet) -> f64 {
    let (mut kept, mut total) = (0, 0);
    for q in params.iter().filter(|q| q.shape.len() == 2) {
        let m = &masks.masks[&q.path];
        kept += m.kept();
        total += m.len();
    }
    1.0 - kept as f64 / total.max(1) as f64
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |a| format!("{:.2}", a * 100.0))
}

/// The per-level table in Markdown: density, the ticket's and the control's best validation
/// accuracy (with its epoch) and test accuracy at that epoch.
pub fn table(levels: &serde_json::Value) -> String {
    let mut out = String::from(
        "| level | density % | ticket best val % (epoch) | ticket test % | control best val % (epoch) | control test % |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in levels.as_array().into_iter().flatten() {
        let side = |k: &str| {
            let r = &l[k];
            if r.is_null() {
                ("–".to_string(), "–".to_string())
            } else {
                (
                    format!(
                        "{} ({})",
                        pct(r["best_valid_accuracy"].as_f64()),
                        r["best_epoch"]
                    ),
                    pct(r["test_accuracy_at_best"].as_f64()),
                )
            }
        };
        let (tv, tt) = side("ticket");
        let (cv, ct) = side("control");
        let density = 100.0 * (1.0 - l["sparsity"].as_f64().unwrap_or(0.0));
        out.push_str(&format!(
            "| {} | {density:.1} | {tv} | {tt} | {cv} | {ct} |\n",
            l["level"]
        ));
    }
    out
}
