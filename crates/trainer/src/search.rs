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
use pruning::MaskSet;
use pruning::importance::GradStats;
use report::table::{Align, markdown};
use report::{Probe, SearchReport, SearchRule};

use crate::config::{PruningConfig, SearchMetric};
use crate::data::Splits;
use crate::head::Head;
use crate::hooks::Progress;
use crate::model::Mlp;
use crate::phases::Setup;
use crate::seeds::Phase;
use crate::train::{TrainError, evaluate_splits};

/// What the search found.
pub(crate) struct Found {
    /// The model of the highest kept probe (the dense model when none was kept).
    pub model: Mlp,
    /// Its masks.
    pub masks: MaskSet,
    /// The report for pruning.json.
    pub report: SearchReport,
    /// Warnings of the chosen probe's selection.
    pub warnings: Vec<String>,
}

/// The rule `p` gives (validation rejects a threshold) and its value, the upper end of the
/// search.
fn searched(p: &PruningConfig) -> (SearchRule, f64) {
    match p.alpha {
        Some(a) => (SearchRule::Alpha, a),
        None => (SearchRule::Sparsity, p.sparsity.unwrap_or(0.0)),
    }
}

/// `p` with `rule`'s value set to `v`.
fn at(rule: SearchRule, p: &PruningConfig, v: f64) -> PruningConfig {
    let mut q = p.clone();
    match rule {
        SearchRule::Sparsity => q.sparsity = Some(v),
        SearchRule::Alpha => q.alpha = Some(v),
    }
    q
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

/// Runs the search (`[pruning] search`) from the trained `model`.
pub(crate) fn search(
    setup: &Setup<'_>,
    model: Mlp,
    masks: &MaskSet,
    progress: &mut Progress,
    grads: Option<&BTreeMap<ParamId, GradStats>>,
) -> Result<Found, TrainError> {
    let p = setup.p;
    let Some(s) = &p.search else {
        return Err(TrainError::Prune(pruning::PruneError::Plan(
            "a search without [pruning] search".into(),
        )));
    };
    let valid = |m: &Mlp| {
        let t = &setup.ctx.task;
        valid_metric(m, t.splits, t.head, t.device, s.metric)
    };
    let dense = valid(&model);
    let ok = |m: f64| match s.metric {
        SearchMetric::ValAccuracy => m >= dense - s.tolerance,
        SearchMetric::ValLoss => m <= dense + s.tolerance,
    };
    let (rule, upper) = searched(p);
    let mut probes: Vec<Probe> = Vec::new();
    let mut best: Option<(f64, Mlp, MaskSet, Vec<String>)> = None;
    let (mut lo, mut hi) = (0.0f64, upper);
    for i in 0..s.probes {
        let value = if i == 0 { upper } else { (lo + hi) / 2.0 };
        // Every probe scores as the one pruning step it stands for would (round 1's stream): the
        // random criterion draws the same scores at each probe, so probes' masks nest.
        let (m, new_masks, warnings) =
            setup.prune(model.clone(), masks, &at(rule, p, value), 1, grads)?;
        let m = if p.fine_tune_epochs > 0 {
            let phase = Phase::Probe { index: i };
            setup
                .fine_tune(m, &new_masks, phase, &mut [&mut *progress])?
                .model
        } else {
            m
        };
        let metric = valid(&m);
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
    let report = SearchReport {
        rule,
        upper,
        metric: s.metric,
        tolerance: s.tolerance,
        dense,
        probes,
        chosen,
    };
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
pub fn table(report: &SearchReport) -> String {
    let (rule, metric) = (report.rule.name(), report.metric.name());
    let fmt = |v: f64| match report.metric {
        SearchMetric::ValAccuracy => format!("{:.2} %", 100.0 * v),
        SearchMetric::ValLoss => format!("{v:.5}"),
    };
    let head = format!(
        "Dense {metric}: {}; tolerance {}; chosen {rule}: {}\n\n",
        fmt(report.dense),
        report.tolerance,
        report
            .chosen
            .map_or("none (dense kept)".into(), |c| format!("{c:.4}")),
    );
    let probed = format!("{rule} probed");
    let columns = [
        ("probe", Align::Right),
        (probed.as_str(), Align::Right),
        ("sparsity reached", Align::Right),
        (metric, Align::Right),
        ("verdict", Align::Left),
    ];
    let rows: Vec<Vec<String>> = report
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            vec![
                (i + 1).to_string(),
                format!("{:.4}", p.value),
                format!("{:.2} %", 100.0 * p.sparsity),
                fmt(p.metric),
                if p.kept { "kept" } else { "rejected" }.to_string(),
            ]
        })
        .collect();
    head + &markdown(&columns, &rows)
}
