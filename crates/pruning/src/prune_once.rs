//! One pruning step on a module: score its weights, select masks, combine them with the current
//! masks (pruning never revives), multiply the module by them. Static pruning calls it once per
//! round; the `Pruner` calls it at every scheduled update.

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};

use crate::error::PruneError;
use crate::granularity::{LayerInput, Spec, select_masks};
use crate::importance::{GradStats, Importance, ScoreInput};
use crate::mask::MaskSet;
use crate::module::{apply_masks, read_params};
use crate::params::ParamInfo;

/// What one pruning step produced.
#[derive(Debug, Clone)]
pub struct Pruned<M> {
    /// The module multiplied by its new masks.
    pub module: M,
    /// The new masks (the old ones AND the selection).
    pub masks: MaskSet,
    /// Layers the keep-one rule protected.
    pub warnings: Vec<String>,
}

/// The scored layers of `params`: its 2-D parameters, each with its bias when the bias is among
/// `params` too. Burn's `Linear` stores `[in, out]`, so units are along axis 1.
pub fn layer_inputs(
    params: &[ParamInfo],
    scores: Vec<Vec<f32>>,
    masks: &MaskSet,
) -> Vec<LayerInput> {
    params
        .iter()
        .filter(|p| p.shape.len() == 2)
        .zip(scores)
        .map(|(p, scores)| {
            let bias = p
                .path
                .strip_suffix("weight")
                .map(|stem| format!("{stem}bias"));
            LayerInput {
                name: p.path.clone(),
                bias: bias.filter(|b| params.iter().any(|q| &q.path == b)),
                shape: [p.shape[0], p.shape[1]],
                unit_axis: 1,
                keep: masks.masks[&p.path].keep.clone(),
                scores,
            }
        })
        .collect()
}

/// Scores the 2-D parameters among `params` with `criterion`, selects by `spec`, and applies
/// the combined masks to every parameter in `params` (biases masked with their units).
pub fn prune_once<M: Module>(
    module: M,
    params: &[ParamInfo],
    current: &MaskSet,
    criterion: &dyn Importance,
    spec: &Spec,
    grads: Option<&BTreeMap<ParamId, GradStats>>,
) -> Result<Pruned<M>, PruneError> {
    let weights: Vec<&ParamInfo> = params.iter().filter(|p| p.shape.len() == 2).collect();
    let ids: Vec<ParamId> = weights.iter().map(|p| p.id).collect();
    let values = read_params(&module, &ids);
    if criterion.needs_gradients() && grads.is_none_or(|g| g.is_empty()) {
        return Err(PruneError::NeedsGradients {
            criterion: criterion.name().into(),
        });
    }
    let inputs: Vec<ScoreInput<'_>> = weights
        .iter()
        .map(|p| ScoreInput {
            name: &p.path,
            weight: &values[&p.id],
            grads: grads.and_then(|g| g.get(&p.id)),
        })
        .collect();
    let scores = criterion.score_all(&inputs)?;
    let layers = layer_inputs(params, scores, current);
    let selection = select_masks(&layers, spec)?;
    let mut masks = current.clone();
    for (name, m) in selection.masks.masks {
        let merged = masks.masks[&name].and(&m);
        masks.masks.insert(name, merged);
    }
    let module = apply_masks(module, params, &masks)?;
    Ok(Pruned {
        module,
        masks,
        warnings: selection.warnings,
    })
}
