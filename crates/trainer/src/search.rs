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

use burn::tensor::Device;
use pruning::Snapshot;
use report::table::{Align, markdown};
use report::{Probe, Round, SearchReport, SearchRule};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointing;
use crate::config::{PruningConfig, SearchConfig, SearchMetric};
use crate::data::Splits;
use crate::head::Head;
use crate::model::Net;
use crate::phases::{Setup, Sinks, evals_report, log_evals};
use crate::runner::State;
use crate::seeds::Phase;
use crate::train::{TrainError, evaluate_splits};

/// Where the search stands between probes (the part of a run's state that is the search's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SearchProgress {
    rule: SearchRule,
    upper: f64,
    metric: SearchMetric,
    tolerance: f64,
    /// The trained network's metric.
    dense: f64,
    /// Highest kept and lowest rejected value so far.
    bounds: (f64, f64),
    probes: Vec<Probe>,
    /// The highest kept value, and the warnings of its pruning step.
    best: Option<(f64, Vec<String>)>,
    /// The upper end itself was kept: nothing higher to find, later probes do nothing.
    settled: bool,
}

impl SearchProgress {
    /// The report for pruning.json.
    pub fn report(&self) -> SearchReport {
        SearchReport {
            rule: self.rule,
            upper: self.upper,
            metric: self.metric,
            tolerance: self.tolerance,
            dense: self.dense,
            probes: self.probes.clone(),
            chosen: self.best.as_ref().map(|b| b.0),
        }
    }

    /// Whether `metric` is within the tolerance of the dense network's.
    fn ok(&self, metric: f64) -> bool {
        match self.metric {
            SearchMetric::ValAccuracy => metric >= self.dense - self.tolerance,
            SearchMetric::ValLoss => metric <= self.dense + self.tolerance,
        }
    }
}

/// The rule `p` gives (validation rejects a threshold) and its value, the upper end of the
/// search.
fn searched(p: &PruningConfig) -> (SearchRule, f64) {
    match p.rule.alpha {
        Some(a) => (SearchRule::Alpha, a),
        None => (SearchRule::Sparsity, p.rule.sparsity.unwrap_or(0.0)),
    }
}

/// `p` with `rule`'s value set to `v`.
fn at(rule: SearchRule, p: &PruningConfig, v: f64) -> PruningConfig {
    let mut q = p.clone();
    match rule {
        SearchRule::Sparsity => q.rule.sparsity = Some(v),
        SearchRule::Alpha => q.rule.alpha = Some(v),
    }
    q
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn valid_metric(m: &Net, splits: &Splits, head: Head, device: &Device, which: SearchMetric) -> f64 {
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

fn config(setup: &Setup<'_>) -> Result<SearchConfig, TrainError> {
    setup.p.search().cloned().ok_or_else(|| {
        TrainError::Prune(pruning::PruneError::Plan(
            "a search without [pruning] search".into(),
        ))
    })
}

/// Probe `index`: from the trained network (the state's, unchanged until the choice), prune to
/// the probed value, fine-tune with the masks held, and keep or reject by the validation
/// metric. The first probe is the upper end; later ones bisect.
pub(crate) fn probe(
    setup: &Setup<'_>,
    mut state: State,
    index: usize,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let (p, t) = (setup.p, &setup.ctx.task);
    let s = config(setup)?;
    let valid = |m: &Net| valid_metric(m, t.splits, t.head, t.device, s.metric);
    let progress = match state.record.search.take() {
        Some(progress) => progress,
        None => {
            let (rule, upper) = searched(p);
            SearchProgress {
                rule,
                upper,
                metric: s.metric,
                tolerance: s.tolerance,
                dense: valid(&state.model),
                bounds: (0.0, upper),
                probes: Vec::new(),
                best: None,
                settled: false,
            }
        }
    };
    let progress = state.record.search.insert(progress);
    if progress.settled {
        return Ok(state);
    }
    let (lo, hi) = progress.bounds;
    let value = if index == 0 {
        progress.upper
    } else {
        (lo + hi) / 2.0
    };
    // Every probe scores as the one pruning step it stands for would (round 1's stream): the
    // random criterion draws the same scores at each probe, so probes' masks nest.
    let grads = setup.grads_for(&state.model);
    let rule = at(progress.rule, p, value);
    let (m, masks, warnings) =
        setup.prune(state.model.clone(), &state.masks, &rule, 1, grads.as_ref())?;
    let m = if p.fine_tune_epochs() > 0 {
        let phase = Phase::Probe { index };
        let tuned = setup.fine_tune((m, &masks), phase, sinks.progress, None, ckpt)?;
        tuned.model
    } else {
        m
    };
    let metric = valid(&m);
    let kept = progress.ok(metric);
    progress.probes.push(Probe {
        value,
        sparsity: masks.weight_sparsity(),
        metric,
        kept,
    });
    if kept {
        progress.bounds.0 = value;
        if progress.best.as_ref().is_none_or(|b| value > b.0) {
            progress.best = Some((value, warnings));
            state.best = Some((Snapshot::take(&m, 0), masks));
        }
        // The upper end itself is within the tolerance: nothing higher to find.
        progress.settled = index == 0;
    } else {
        progress.bounds.1 = value;
    }
    Ok(state)
}

/// The search's verdict: the highest kept probe's network and masks (the dense network when
/// none was kept), evaluated (`after_search` rows).
pub(crate) fn choose(
    setup: &Setup<'_>,
    mut state: State,
    sinks: &mut Sinks<'_>,
) -> Result<State, TrainError> {
    let s = config(setup)?;
    let record = &mut state.record;
    let best_warnings = record.search.as_ref().and_then(|p| p.best.as_ref());
    match (state.best.take(), best_warnings) {
        (Some((weights, masks)), Some((_, warnings))) => {
            record.warnings.extend(warnings.iter().cloned());
            state.model = weights.restore(state.model);
            state.masks = masks;
        }
        _ => record.warnings.push(format!(
            "search: no probe kept the validation metric within {} of the dense model; the dense model is kept",
            s.tolerance
        )),
    }
    let after = setup.evaluate(&state.model);
    log_evals(sinks.metrics, &after, "after_search")?;
    state.record.rounds.push(Round {
        round: 1,
        sparsity: state.masks.sparsity(),
        after_pruning: None,
        after_fine_tune: Some(evals_report(&after, false)),
        after_training: None,
    });
    Ok(state)
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
