//! Sensitivity analysis (`trainer sensitivity RUN_DIR`): prune each layer alone, by magnitude,
//! at several sparsities, and record the validation metric. Layers that tolerate more pruning
//! can be given higher rates; the command suggests per-layer targets for a `[pruning]` table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use pruning::select::{prune_count, smallest};
use serde::Serialize;

use crate::inference::run_folder::{RunFolderError, RunNet, accuracy, open_run_on};

/// One probe: `layer` alone pruned to `sparsity`.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The layer's weight.
    pub layer: String,
    /// Fraction of its weights pruned.
    pub sparsity: f64,
    /// The metric on the evaluation split.
    pub metric: f64,
}

/// The whole analysis.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// The split evaluated (validation when the run has one).
    pub split: &'static str,
    /// `accuracy` (higher is better) or `mse` (lower is better, regression).
    pub metric: &'static str,
    /// The unpruned model's metric.
    pub baseline: f64,
    /// Every probe.
    pub probes: Vec<Probe>,
    /// Per layer, the highest sparsity probed whose metric stays within the tolerance.
    pub suggested: BTreeMap<String, f64>,
    /// The tolerance used.
    pub tolerance: f64,
}

/// Runs the analysis on the model of `dir` and writes `sensitivity.csv`, `sensitivity.md`,
/// `sensitivity_targets.toml` and the plot into `dir`.
pub fn sensitivity(
    dir: &Path,
    sparsities: &[f64],
    tolerance: f64,
) -> Result<Sensitivity, RunFolderError> {
    let run = open_run_on(dir, &["valid", "test", "train"])?;
    // It writes into the folder (checked to be a run's above): not while another process (a
    // resume, say) holds it.
    let _lock = crate::folder::FolderLock::acquire(dir)?;
    let n = run.eval.len();
    let score = |m: &RunNet| -> f64 {
        let out = m.forward(&run.eval.x, n);
        match accuracy(run.head, &out, &run.eval) {
            Some(a) => a,
            None => match &run.eval.y {
                crate::data::Targets::Real(y) => {
                    out.iter()
                        .zip(y)
                        .map(|(o, t)| f64::from((o - t).powi(2)))
                        .sum::<f64>()
                        / n.max(1) as f64
                }
                crate::data::Targets::Classes { .. } => f64::NAN,
            },
        }
    };
    let higher_is_better = matches!(run.eval.y, crate::data::Targets::Classes { .. });
    let baseline = score(&run.model);
    let mut probes = Vec::new();
    let mut suggested = BTreeMap::new();
    for (li, (name, w)) in weights(&run.model).into_iter().enumerate() {
        let magnitude: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        let all: Vec<usize> = (0..w.len()).collect();
        let mut best = 0.0;
        for &s in sparsities {
            let pruned = smallest(&magnitude, &all, prune_count(s, w.len()));
            let metric = score(&zeroed(&run.model, li, &pruned));
            let ok = if higher_is_better {
                metric >= baseline - tolerance
            } else {
                metric <= baseline + tolerance
            };
            if ok && s > best {
                best = s;
            }
            probes.push(Probe {
                layer: name.clone(),
                sparsity: s,
                metric,
            });
        }
        suggested.insert(name, best);
    }
    let result = Sensitivity {
        split: run.split,
        metric: if higher_is_better { "accuracy" } else { "mse" },
        baseline,
        probes,
        suggested,
        tolerance,
    };
    write_files(dir, &result, sparsities)?;
    Ok(result)
}

/// Every weight matrix and kernel of `model`, in forward order: its parameter path (as
/// `pruning.json` and `layer_factor` name it) and its values.
fn weights(model: &RunNet) -> Vec<(String, Vec<f32>)> {
    match model {
        RunNet::Mlp(m) => m
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("layers.{i}.weight"), l.w.clone()))
            .collect(),
        RunNet::Layers { net, .. } => {
            let infos: Vec<_> = pruning::param_infos(net)
                .into_iter()
                .filter(pruning::ParamInfo::is_weight)
                .collect();
            let ids: Vec<_> = infos.iter().map(|p| p.id).collect();
            let mut values = pruning::read_params(net, &ids);
            infos
                .into_iter()
                .map(|p| (p.path, values.remove(&p.id).unwrap_or_default()))
                .collect()
        }
    }
}

/// `model` with the weights at `idx` (flat indices into [`weights`]' values) of its `layer`-th
/// weight set to zero.
fn zeroed(model: &RunNet, layer: usize, idx: &[usize]) -> RunNet {
    let mut m = model.clone();
    match &mut m {
        RunNet::Mlp(h) => {
            for &i in idx {
                h.layers[layer].w[i] = 0.0;
            }
        }
        RunNet::Layers { net, .. } => {
            let Some(info) = pruning::param_infos(net)
                .into_iter()
                .filter(pruning::ParamInfo::is_weight)
                .nth(layer)
            else {
                return m;
            };
            let mut v = pruning::read_params(net, &[info.id])
                .remove(&info.id)
                .unwrap_or_default();
            for &i in idx {
                v[i] = 0.0;
            }
            let values = std::collections::BTreeMap::from([(info.id, v)]);
            *net = pruning::Snapshot::from_values(0, values).restore(net.clone());
        }
    }
    m
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunFolderError + '_ {
    move |e| RunFolderError::Folder {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The Markdown table: one row per layer, one column per sparsity.
pub fn table(r: &Sensitivity, sparsities: &[f64]) -> String {
    let mut t = format!("| layer ({} {}) |", r.split, r.metric);
    for s in sparsities {
        let _ = write!(t, " {:.0}% |", s * 100.0);
    }
    t.push_str(" suggested |\n|---|");
    t.push_str(&"---:|".repeat(sparsities.len() + 1));
    t.push('\n');
    for (layer, best) in &r.suggested {
        let _ = write!(t, "| {layer} |");
        for p in r.probes.iter().filter(|p| &p.layer == layer) {
            let _ = write!(t, " {:.4} |", p.metric);
        }
        let _ = writeln!(t, " {:.0}% |", best * 100.0);
    }
    let _ = writeln!(
        t,
        "\nunpruned: {:.4}; suggested = highest sparsity within {} of it",
        r.baseline, r.tolerance
    );
    t
}

/// A `[pruning]` table reaching the suggested rate in every layer (`layer_factor` scales the
/// largest one; `count_over = "all"` makes the fractions exact targets).
pub fn suggested_toml(r: &Sensitivity) -> String {
    let top = r.suggested.values().copied().fold(0.0, f64::max);
    let mut t = format!(
        "# From `trainer sensitivity`: each layer at the highest sparsity that kept {} {} within {} of {:.4}.\n[pruning]\nmode = \"static\"\ncriterion = \"l1\"\nscope = \"layer\"\ncount_over = \"all\"\nsparsity = {top:?}\n",
        r.split, r.metric, r.tolerance, r.baseline
    );
    if top > 0.0 {
        let factors: Vec<String> = r
            .suggested
            .iter()
            .filter(|(_, s)| (**s - top).abs() > 1e-12)
            .map(|(l, s)| format!("\"{l}\" = {:?}", s / top))
            .collect();
        if !factors.is_empty() {
            let _ = writeln!(t, "layer_factor = {{ {} }}", factors.join(", "));
        }
    }
    t
}

fn write_files(dir: &Path, r: &Sensitivity, sparsities: &[f64]) -> Result<(), RunFolderError> {
    let mut csv = String::from("layer,sparsity,metric\n");
    for p in &r.probes {
        let _ = writeln!(csv, "{},{},{}", p.layer, p.sparsity, p.metric);
    }
    for (name, text) in [
        ("sensitivity.csv", csv),
        ("sensitivity.md", table(r, sparsities)),
        ("sensitivity_targets.toml", suggested_toml(r)),
    ] {
        let path = dir.join(name);
        crate::atomic::write(&path, text).map_err(io(&path))?;
    }
    crate::plots::sensitivity_plot(dir, r).map_err(|e| RunFolderError::Folder {
        path: e.path,
        message: e.message,
    })
}
