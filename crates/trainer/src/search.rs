//! The accuracy-constrained search: the write-up's "prune, evaluate, and if accuracy dropped
//! adjust the threshold and try again", done by bisection.
//!
//! Every probe starts from the same trained model: prune to the probed sparsity (or alpha),
//! fine-tune with the masks held, evaluate on the validation split. A probe is kept when its
//! metric is within the tolerance of the dense model's. The first probe is the upper end; if it
//! is rejected, bisection between the highest kept value (0 at first) and the lowest rejected
//! one. Bisection assumes the metric falls monotonically with sparsity, which holds in practice
//! up to noise; where noise makes it jagged, bisection can stop below the true boundary (never
//! above: only kept probes are chosen). Every probe is reported, so a jagged curve is visible.

use std::collections::BTreeMap;

use burn::module::ParamId;
use burn::tensor::Device;
use pruning::importance::GradStats;
use pruning::{MaskSet, ParamInfo};
use serde::Serialize;

use crate::config::{Config, PruningConfig, SearchConfig, SearchMetric};
use crate::data::Splits;
use crate::head::Head;
use crate::hooks::Progress;
use crate::model::Mlp;
use crate::prune;
use crate::seeds::{Phase, Purpose, Seeds};
use crate::train::{TrainError, evaluate_splits};

/// One probe of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// The sparsity or alpha probed.
    pub value: f64,
    /// Fraction of prunable weights pruned.
    pub sparsity: f64,
    /// The validation metric after fine-tuning.
    pub metric: f64,
    /// Within the tolerance of the dense model.
    pub kept: bool,
}

/// What the search found.
pub(crate) struct Found {
    /// The model of the highest kept probe (the dense model when none was kept).
    pub model: Mlp,
    /// Its masks.
    pub masks: MaskSet,
    /// The report for pruning.json.
    pub report: serde_json::Value,
    /// Warnings of the chosen probe's selection.
    pub warnings: Vec<String>,
}

/// What is searched: the rule the config gives (validation rejects a threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Searched {
    Sparsity,
    Alpha,
}

impl Searched {
    /// The rule of `p` and its value, the upper end of the search.
    fn of(p: &PruningConfig) -> (Self, f64) {
        match p.alpha {
            Some(a) => (Self::Alpha, a),
            None => (Self::Sparsity, p.sparsity.unwrap_or(0.0)),
        }
    }

    /// `p` with the rule's value set to `v`.
    fn at(self, p: &PruningConfig, v: f64) -> PruningConfig {
        let mut q = p.clone();
        match self {
            Self::Sparsity => q.sparsity = Some(v),
            Self::Alpha => q.alpha = Some(v),
        }
        q
    }
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn valid_metric(m: &Mlp, splits: &Splits, head: Head, device: &Device, which: SearchMetric) -> f64 {
    let evals = evaluate_splits(m, splits, head, device, false);
    let (_, e) = evals
        .iter()
        .find(|(s, _)| *s == "valid")
        .expect("a search is validated to have a validation split");
    match which {
        SearchMetric::ValAccuracy => e.accuracy().unwrap_or(f64::NAN),
        SearchMetric::ValLoss => e.loss,
    }
}

/// Runs the search from the trained `model`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search(
    model: Mlp,
    params: &[ParamInfo],
    masks: &MaskSet,
    cfg: &Config,
    p: &PruningConfig,
    s: &SearchConfig,
    splits: &Splits,
    head: Head,
    device: &Device,
    progress: &mut Progress,
    grads: Option<&BTreeMap<ParamId, GradStats>>,
) -> Result<Found, TrainError> {
    let dense = valid_metric(&model, splits, head, device, s.metric);
    let ok = |m: f64| match s.metric {
        SearchMetric::ValAccuracy => m >= dense - s.tolerance,
        SearchMetric::ValLoss => m <= dense + s.tolerance,
    };
    let (rule, upper) = Searched::of(p);
    let seeds = Seeds::new(cfg.seed);
    let mut probes: Vec<Probe> = Vec::new();
    let mut best: Option<(f64, Mlp, MaskSet, Vec<String>)> = None;
    let (mut lo, mut hi) = (0.0f64, upper);
    for i in 0..s.probes {
        let value = if i == 0 { upper } else { (lo + hi) / 2.0 };
        let (m, new_masks, warnings) = prune::prune_step(
            model.clone(),
            params,
            masks,
            &rule.at(p, value),
            // Every probe scores as the one pruning step it stands for would: the random
            // criterion draws the same scores at each probe, so probes' masks nest.
            seeds.derived(Phase::Prune { round: 1 }, Purpose::Criterion),
            grads,
        )
        .map_err(TrainError::Prune)?;
        let m = if p.fine_tune_epochs > 0 {
            let order = seeds.rng(Phase::Probe { index: i }, Purpose::Shuffle);
            prune::fine_tune(
                m,
                params,
                &new_masks,
                cfg,
                p,
                splits,
                head,
                device,
                order,
                &mut [progress],
            )?
            .model
        } else {
            m
        };
        let metric = valid_metric(&m, splits, head, device, s.metric);
        let kept = ok(metric);
        probes.push(Probe {
            value,
            sparsity: new_masks.weight_sparsity(),
            metric,
            kept,
        });
        if kept {
            lo = value;
            if best.as_ref().is_none_or(|b| value > b.0) {
                best = Some((value, m, new_masks, warnings));
            }
            if i == 0 {
                // The upper end itself is within the tolerance: nothing higher to find.
                break;
            }
        } else {
            hi = value;
        }
    }
    let chosen = best.as_ref().map(|b| b.0);
    let report = serde_json::json!({
        "rule": rule,
        "upper": upper,
        "metric": s.metric,
        "tolerance": s.tolerance,
        "dense": dense,
        "probes": probes,
        "chosen": chosen,
    });
    Ok(match best {
        Some((_, model, masks, warnings)) => Found {
            model,
            masks,
            report,
            warnings,
        },
        None => Found {
            model,
            masks: masks.clone(),
            report,
            warnings: vec![format!(
                "search: no probe kept the validation metric within {} of the dense model; the dense model is kept",
                s.tolerance
            )],
        },
    })
}

/// The Markdown table of `search` (pruning.json's report): one row per probe, in probe order.
pub fn table(report: &serde_json::Value) -> String {
    let rule = report["rule"].as_str().unwrap_or("sparsity");
    let metric = report["metric"].as_str().unwrap_or("val_accuracy");
    let pct = metric == "val_accuracy";
    let fmt = |v: f64| {
        if pct {
            format!("{:.2} %", 100.0 * v)
        } else {
            format!("{v:.5}")
        }
    };
    let dense = report["dense"].as_f64().unwrap_or(f64::NAN);
    let mut out = format!(
        "Dense {metric}: {}; tolerance {}; chosen {rule}: {}\n\n| probe | {rule} probed | sparsity reached | {metric} | verdict |\n|---:|---:|---:|---:|---|\n",
        fmt(dense),
        report["tolerance"],
        report["chosen"]
            .as_f64()
            .map_or("none (dense kept)".into(), |c| format!("{c:.4}")),
    );
    for (i, p) in report["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        out += &format!(
            "| {} | {:.4} | {:.2} % | {} | {} |\n",
            i + 1,
            p["value"].as_f64().unwrap_or(f64::NAN),
            100.0 * p["sparsity"].as_f64().unwrap_or(f64::NAN),
            fmt(p["metric"].as_f64().unwrap_or(f64::NAN)),
            if p["kept"] == true {
                "kept"
            } else {
                "rejected"
            }
        );
    }
    out
}
