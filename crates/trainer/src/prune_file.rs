//! `trainer prune`: pruning a model given as a safetensors file — ours, or a PyTorch
//! `state_dict` saved with `safetensors` — without training. Works on host arrays, so any 2-D
//! or 4-D float `*weight` tensor is prunable whatever model it came from: a dense layer's
//! matrix, or a convolution's kernel in PyTorch's `[out, in, kh, kw]` (ranked as
//! `[out, in·kh·kw]`; `granularity = "rows"` removes whole filters).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pruning::importance::ScoreInput;
use pruning::module::glob_match;
use pruning::{LayerInput, MaskSet, select_masks};
use report::{FileLayer, FileReport, FileTotals};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::PruningConfig;
use crate::prune::spec;
use crate::seeds::{Phase, Purpose, Seeds};

/// Errors of `trainer prune`.
#[derive(Debug, thiserror::Error)]
pub enum PruneFileError {
    /// File system failure.
    #[error("cannot access {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The input is not usable.
    #[error("{}: {message}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Selection failed.
    #[error(transparent)]
    Prune(#[from] pruning::PruneError),
}

/// Whether `crit` can score weights from a file alone: not from data, not from batch norms.
fn file_criterion(crit: &dyn pruning::importance::Importance) -> Result<(), String> {
    if crit.scores_units_by_norm() {
        return Err(
            "criterion `slimming` ranks channels by their batch norms' |γ|, and a file has names, not a module's structure to find them by; prune the network inside a training config".into(),
        );
    }
    if crit.needs_gradients() {
        return Err(format!(
            "criterion `{}` needs gradients from data, and `trainer prune` has only the weights; \
             use l1, l2 or random here, or prune inside a training config (`[pruning]`) where \
             calibration batches are available",
            crit.name()
        ));
    }
    Ok(())
}

/// Natural order: `fc2` before `fc10`, so that layers come in network order.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((std::mem::take(&mut text), num.parse().unwrap_or(u64::MAX)));
                num.clear();
            }
            text.push(c);
        }
    }
    out.push((text, num.parse().unwrap_or(0)));
    out
}

/// Prunes the weights in `input` as `cfg` says and writes `output`: every tensor of the input
/// (pruned weights replaced) plus `<name>_mask` (uint8) for each pruned weight. `burn_layout`
/// says the weights are `[in, out]` rather than PyTorch's `[out, in]`. Returns the report.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn prune_file(
    input: &Path,
    output: &Path,
    cfg: &PruningConfig,
    burn_layout: bool,
    seed: u64,
) -> Result<FileReport, PruneFileError> {
    let bad = |message: String| PruneFileError::Input {
        path: input.to_path_buf(),
        message,
    };
    // The random criterion draws what a static run with this seed draws at its pruning step.
    let stream = Seeds::new(seed).derived(Phase::Prune { round: 1 }, Purpose::Criterion);
    let crit = cfg.rule.criterion.importance(stream);
    file_criterion(crit.as_ref()).map_err(bad)?;
    let bytes = std::fs::read(input).map_err(|source| PruneFileError::Io {
        path: input.to_path_buf(),
        cause: source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort_by_key(|n| natural_key(n));
    let prunable = prunable_names(&st, &names, cfg).map_err(|e| match e {
        Selection::Prune(e) => PruneFileError::from(e),
        Selection::Empty(message) => bad(message),
    })?;
    // What `include` selects must be a prunable matrix, and not pruned already.
    let weights = read_weights(&st, &names, &prunable).map_err(bad)?;
    let inputs: Vec<ScoreInput<'_>> = prunable
        .iter()
        .zip(&weights)
        .map(|(n, w)| ScoreInput {
            name: n,
            weight: w,
            grads: None,
        })
        .collect();
    let scores = crit.score_all(&inputs)?;
    let unit_axis = if burn_layout { 1 } else { 0 };
    let layers = layer_inputs(&st, &names, (&prunable, &weights), scores, unit_axis);
    // Under neuron pruning a bias is masked with its units: one float per unit, not masked
    // already.
    let neurons = matches!(cfg.granularity(), pruning::Granularity::Neuron(_));
    if neurons {
        if let Some(k) = layers.iter().find(|l| l.shape.len() > 2) {
            return Err(bad(format!(
                "`{}` is a convolution kernel {:?}, and granularity = \"neuron\" on a file cannot \
                 know what its channels feed (a batch norm, the next layer's slice): a file has \
                 names, not a module's structure. Use granularity = \"rows\" to remove whole \
                 filters, or prune the network inside a training config",
                k.name, k.shape
            )));
        }
        check_biases(&st, &names, &layers).map_err(bad)?;
    }
    let selection = select_masks(&layers, &spec(cfg))?;
    write_output(&st, &names, &selection.masks, output)?;
    let layout = if burn_layout {
        "burn [in, out]"
    } else {
        "pytorch [out, in]"
    };
    Ok(FileReport {
        input: input.display().to_string(),
        output: output.display().to_string(),
        layout: layout.into(),
        criterion: crit.name().to_string(),
        layers: report_layers(&layers, &selection.masks),
        total: totals(&selection.masks),
        warnings: selection.warnings,
    })
}

/// The selection's inputs: each prunable matrix with its scores, its bias (when the file has
/// one) and which axis holds its units.
fn layer_inputs(
    st: &SafeTensors<'_>,
    names: &[String],
    (prunable, weights): (&[String], &[Vec<f32>]),
    scores: Vec<Vec<f32>>,
    unit_axis: usize,
) -> Vec<LayerInput> {
    prunable
        .iter()
        .zip(scores)
        .zip(weights)
        .map(|((n, scores), w)| {
            // Checked before: 2-D or 4-D, and `w` holds all of it.
            let shape = st
                .tensor(n)
                .map_or(vec![w.len(), 1], |t| t.shape().to_vec());
            let bias = n.strip_suffix("weight").map(|p| format!("{p}bias"));
            LayerInput {
                name: n.clone(),
                unit_params: bias.filter(|b| names.contains(b)).into_iter().collect(),
                // A kernel's units (filters) are its first axis in either framework.
                unit_axis: if shape.len() == 2 { unit_axis } else { 0 },
                shape,
                keep: vec![true; scores.len()],
                scores,
            }
        })
        .collect()
}

/// Each pruned tensor's counts.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn report_layers(layers: &[LayerInput], masks: &pruning::MaskSet) -> Vec<FileLayer> {
    layers
        .iter()
        .map(|l| {
            let m = &masks.masks[&l.name];
            FileLayer {
                name: l.name.clone(),
                shape: l.shape.to_vec(),
                weights: m.len(),
                kept: m.kept(),
                sparsity: m.sparsity(),
            }
        })
        .collect()
}

fn totals(masks: &pruning::MaskSet) -> FileTotals {
    let (kept, total) = masks.counts();
    FileTotals {
        weights: total,
        kept,
        sparsity: 1.0 - kept as f64 / total.max(1) as f64,
    }
}

/// Why no tensor was selected for pruning.
enum Selection {
    /// An `include`/`exclude` pattern names nothing.
    Prune(pruning::PruneError),
    /// Nothing prunable is left.
    Empty(String),
}

/// The tensors to prune: `include` (default: every 2-D or 4-D float32 `*weight`) less
/// `exclude`.
#[allow(
    clippy::expect_used,
    reason = "names come from the file's own listing, so each is there"
)]
fn prunable_names(
    st: &SafeTensors<'_>,
    names: &[String],
    cfg: &PruningConfig,
) -> Result<Vec<String>, Selection> {
    let is_candidate = |n: &str| {
        let t = st.tensor(n).expect("listed");
        t.dtype() == Dtype::F32 && [2, 4].contains(&t.shape().len()) && n.ends_with("weight")
    };
    for pat in cfg.rule.include.iter().chain(&cfg.rule.exclude) {
        if !names.iter().any(|n| glob_match(pat, n)) {
            return Err(Selection::Prune(pruning::PruneError::UnknownParam {
                name: pat.clone(),
                valid: names.to_vec(),
            }));
        }
    }
    let prunable: Vec<String> = names
        .iter()
        .filter(|n| {
            if cfg.rule.include.is_empty() {
                is_candidate(n)
            } else {
                cfg.rule.include.iter().any(|g| glob_match(g, n))
            }
        })
        .filter(|n| !cfg.rule.exclude.iter().any(|g| glob_match(g, n)))
        .cloned()
        .collect();
    if prunable.is_empty() {
        return Err(Selection::Empty(format!(
            "no 2-D or 4-D float32 tensor named `*weight` to prune; tensors: {}",
            names.join(", ")
        )));
    }
    Ok(prunable)
}

/// The values of each tensor in `prunable`: 2-D or 4-D float32, finite, without masks of an earlier
/// pruning.
fn read_weights(
    st: &SafeTensors<'_>,
    names: &[String],
    prunable: &[String],
) -> Result<Vec<Vec<f32>>, String> {
    let mut weights: Vec<Vec<f32>> = Vec::new();
    for n in prunable {
        let t = st.tensor(n).map_err(|e| e.to_string())?;
        if t.dtype() != Dtype::F32 || ![2, 4].contains(&t.shape().len()) {
            return Err(format!(
                "`{n}` is {:?} of shape {:?}; only 2-D (dense) and 4-D (convolution) float32 weights are pruned (biases go with their units under granularity = \"neuron\")",
                t.dtype(),
                t.shape()
            ));
        }
        if names.iter().any(|m| *m == format!("{n}_mask")) {
            return Err(format!(
                "`{n}` already has `{n}_mask`: the file was pruned before; prune the original, or remove the masks first"
            ));
        }
        let w: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(k) = w.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "`{n}` holds {} at flat index {k}; scores of NaN or infinite weights mean nothing",
                w[k]
            ));
        }
        weights.push(w);
    }
    Ok(weights)
}

/// Under neuron pruning each layer's bias is masked with its units: it must be one float32 per
/// unit, and not masked already.
fn check_biases(
    st: &SafeTensors<'_>,
    names: &[String],
    layers: &[LayerInput],
) -> Result<(), String> {
    for l in layers {
        let Some(b) = l.unit_params.first() else {
            continue;
        };
        let t = st.tensor(b).map_err(|e| e.to_string())?;
        let units = l.shape[l.unit_axis];
        if t.dtype() != Dtype::F32 || t.shape() != [units] {
            return Err(format!(
                "`{b}` is {:?} of shape {:?}, but `{}` has {units} units: it does not fit as their bias",
                t.dtype(),
                t.shape(),
                l.name
            ));
        }
        if names.iter().any(|m| *m == format!("{b}_mask")) {
            return Err(format!(
                "`{b}` already has `{b}_mask`: the file was pruned before; prune the original, or remove the masks first"
            ));
        }
    }
    Ok(())
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn write_output(
    st: &SafeTensors<'_>,
    names: &[String],
    masks: &MaskSet,
    output: &Path,
) -> Result<(), PruneFileError> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for n in names {
        let t = st.tensor(n).expect("listed");
        let mut data = t.data().to_vec();
        if let Some(m) = masks.masks.get(n.as_str()) {
            if t.dtype() == Dtype::F32 {
                for (chunk, &keep) in data.chunks_exact_mut(4).zip(&m.keep) {
                    if !keep {
                        chunk.copy_from_slice(&0f32.to_le_bytes());
                    }
                }
            }
            let mask: Vec<u8> = m.keep.iter().map(|&k| u8::from(k)).collect();
            buffers.push((format!("{n}_mask"), Dtype::U8, m.shape.clone(), mask));
        }
        buffers.push((n.clone(), t.dtype(), t.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let meta = HashMap::from([("pruned_by".to_string(), "lopper trainer prune".to_string())]);
    crate::export::write_safetensors(views, meta, output).map_err(|message| PruneFileError::Input {
        path: output.to_path_buf(),
        message,
    })
}
