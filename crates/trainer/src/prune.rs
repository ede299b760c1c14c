//! Static pruning inside the trainer: calibration gradients, scoring, selection, and the report.
//! The algorithms live in the `pruning` crate; this file maps configs onto them and the
//! trainer's network onto `pruning::LayerInput`s.

use std::collections::BTreeMap;

use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use pruning::importance::GradStats;
use pruning::{
    MaskSet, ParamInfo, Prunable, PruneError, Rule, Spec, Structure, param_infos, read_params,
};
use report::{LayerCounts, Totals};

use crate::config::PruningConfig;
use crate::data::Dataset;
use crate::head::Head;
use crate::model::Net;

/// The selection spec a config describes.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn spec(cfg: &PruningConfig) -> Spec {
    let r = &cfg.rule;
    let rule = match (r.sparsity, r.threshold, r.alpha) {
        (Some(s), _, _) => Rule::Sparsity(s),
        (_, Some(t), _) => Rule::Threshold(t),
        (_, _, Some(a)) => Rule::Relative(a),
        _ => unreachable!("validated: one rule"),
    };
    let mut spec = Spec::new(cfg.granularity(), rule);
    spec.scope = r.scope;
    spec.over = r.count_over;
    spec.layer_factor = r.layer_factor.clone();
    spec.allow_empty = r.allow_empty;
    spec
}

/// The parameters a config prunes, plus (for neuron pruning) the biases masked with them.
pub fn masked_params(model: &Net, cfg: &PruningConfig) -> Result<Vec<ParamInfo>, PruneError> {
    let prunable = Prunable {
        include: cfg.rule.include.clone(),
        exclude: cfg.rule.exclude.clone(),
        biases: false,
    }
    .select(model)?;
    for name in cfg.rule.layer_factor.keys() {
        if !prunable.iter().any(|p| &p.path == name) {
            return Err(PruneError::UnknownParam {
                name: name.clone(),
                valid: prunable.iter().map(|p| p.path.clone()).collect(),
            });
        }
    }
    if !matches!(cfg.granularity(), pruning::Granularity::Neuron(_)) {
        return Ok(prunable);
    }
    // What the module's structure couples to the pruned units: biases (and batch norms) of
    // every layer but the last (output units are never pruned).
    let all = param_infos(model);
    let weights: Vec<&str> = prunable.iter().map(|p| p.path.as_str()).collect();
    let coupled = Structure::discover(&all).coupled_params(&weights);
    Ok(all
        .into_iter()
        .filter(|p| weights.contains(&p.path.as_str()) || coupled.contains(&p.path))
        .collect())
}

/// Whether the config's granularity and scope fit the network: a selection from constant
/// scores, run once before training, so that an N:M group that does not divide a layer's input
/// channels, or neuron pruning across a layer left out, fails before any epoch rather than at
/// the pruning step.
pub fn check_selection(
    model: &Net,
    params: &[ParamInfo],
    cfg: &PruningConfig,
) -> Result<(), PruneError> {
    // Any rule: what could not fit is the granularity, scope and criterion.
    let mut spec = Spec::new(cfg.granularity(), Rule::Sparsity(0.5));
    spec.scope = cfg.rule.scope;
    let criterion = cfg.rule.criterion.importance(0);
    pruning::prune_once::check_fit(model, params, criterion.as_ref(), &spec)
}

/// Gradient statistics over the first `n_batches` training batches (in data order), without
/// changing the model.
pub fn calibrate(
    model: &Net,
    train: &Dataset,
    head: Head,
    batch_size: usize,
    n_batches: usize,
    params: &[ParamInfo],
    device: &Device,
) -> BTreeMap<ParamId, GradStats> {
    // A copy: forward passes on the training device move batch norms' running statistics,
    // and calibration must not (a clone copies them; see `norm.rs`).
    let model = &model.clone();
    let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
    let weights = read_params(model, &ids);
    let mut stats: BTreeMap<ParamId, GradStats> = BTreeMap::new();
    let d = train.n_features;
    let idx: Vec<usize> = (0..train.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)).take(n_batches) {
        let start = chunk[0] * d;
        let x = Tensor::<2>::from_data(
            TensorData::new(
                train.x[start..start + chunk.len() * d].to_vec(),
                [chunk.len(), d],
            ),
            device,
        );
        let loss = head.loss(model.forward(x), head.targets(train, chunk, device));
        let grads = GradientsParams::from_grads(loss.backward(), model);
        for p in params {
            let g: Option<Vec<f32>> = pruning::grad_accum::flat_grad(&grads, p.id, p.shape.len())
                .map(pruning::host_values);
            if let Some(g) = g {
                stats.entry(p.id).or_default().add(&weights[&p.id], &g);
            }
        }
    }
    stats
}

/// One pruning step: scores the model's current weights, selects new masks (never reviving a
/// pruned weight), and applies them. Returns the masked model, the masks and any warnings.
/// `seed` seeds the random criterion: the step's own stream
/// ([`crate::seeds::Purpose::Criterion`]), never the run's seed itself.
pub fn prune_step(
    model: Net,
    params: &[ParamInfo],
    current: &MaskSet,
    cfg: &PruningConfig,
    seed: u64,
    grads: Option<&BTreeMap<ParamId, GradStats>>,
) -> Result<(Net, MaskSet, Vec<String>), PruneError> {
    let crit = cfg.rule.criterion.importance(seed);
    let out = pruning::prune_once(model, params, current, crit.as_ref(), &spec(cfg), grads)?;
    Ok((out.module, out.masks, out.warnings))
}

/// Per-layer and total counts of a masked MLP, in ShrinkBench's terms: compression ratio =
/// all parameters / nonzero parameters; theoretical speedup = dense multiply-adds / nonzero
/// multiply-adds (one multiply-add per weight per sample for dense layers).
pub fn layer_report(model: &Net, masks: &MaskSet) -> (Vec<LayerCounts>, Totals) {
    // One read of every layer, in PyTorch's [out, in] layout: row u holds unit u's inputs.
    let host = crate::export::layer_tensors(model);
    let mut layers = Vec::new();
    let (mut total_w, mut kept_w, mut nonzero_w, mut total_p, mut nonzero_p) = (0, 0, 0, 0, 0);
    for (i, (w, [n_out, n_in], b)) in host.iter().enumerate() {
        let (n_out, n_in) = (*n_out, *n_in);
        let name = format!("layers.{i}.weight");
        let nonzero = w.iter().filter(|v| **v != 0.0).count();
        let kept = masks.masks.get(&name).map_or(nonzero, |m| m.kept());
        // A hidden unit is dead when it has no incoming weight or no outgoing weight left.
        let dead = match host.get(i + 1) {
            Some((next, [n_next, _], _)) => (0..n_out)
                .filter(|&u| {
                    let no_in = w[u * n_in..(u + 1) * n_in].iter().all(|v| *v == 0.0);
                    let no_out = (0..*n_next).all(|o| next[o * n_out + u] == 0.0);
                    no_in || no_out
                })
                .count(),
            None => 0,
        };
        total_w += w.len();
        kept_w += kept;
        nonzero_w += nonzero;
        total_p += w.len() + b.len();
        nonzero_p += nonzero + b.iter().filter(|v| **v != 0.0).count();
        layers.push(LayerCounts {
            sparsity: 1.0 - kept as f64 / w.len() as f64,
            name,
            shape_out_in: [n_out, n_in],
            weights: w.len(),
            kept,
            dead_units: dead,
        });
    }
    // One multiply-add per weight per sample: MACs are weight counts.
    let total = Totals::from_counts(
        (total_w, kept_w),
        (total_p, nonzero_p),
        (total_w, nonzero_w),
    );
    (layers, total)
}

/// The training settings of fine-tuning after pruning: `fine_tune_epochs` at `fine_tune_lr`
/// (default `train.lr`), constant rate, no early stopping.
pub fn fine_tune_config(
    train: &crate::config::TrainConfig,
    p: &PruningConfig,
) -> crate::config::TrainConfig {
    let mut tune = train.clone();
    tune.epochs = p.fine_tune_epochs();
    tune.lr = p.fine_tune_lr().unwrap_or(train.lr);
    tune.early_stopping = None;
    tune.lr_schedule = crate::config::LrScheduleKind::Constant;
    tune.lr_step_epochs = None;
    tune
}
