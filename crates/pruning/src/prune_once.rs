//! One pruning step on a module: score its weights, select masks, combine them with the current
//! masks (pruning never revives), multiply the module by them. Static pruning calls it once per
//! round; the `Pruner` calls it at every scheduled update.

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};

use crate::error::PruneError;
use crate::granularity::{Granularity, LayerInput, Spec, select_masks};
use crate::importance::{GradStats, Importance, ScoreInput};
use crate::mask::MaskSet;
use crate::module::{apply_masks, read_params};
use crate::params::{ParamInfo, param_infos};
use crate::structure::Structure;

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

/// The scored layers of `params`: its weights (matrices and kernels), each with the per-unit
/// parameters coupled to its units (bias, batch norm γ and β) that are among `params` too. Which
/// parameters couple, and along which axis units lie, comes from the module's `structure`; the
/// layers come in its (forward) order, whatever order `params` lists them in (`scores` follow
/// `params`).
pub fn layer_inputs(
    params: &[ParamInfo],
    structure: &Structure,
    scores: Vec<Vec<f32>>,
    masks: &MaskSet,
) -> Result<Vec<LayerInput>, PruneError> {
    let mut layers = params
        .iter()
        .filter(|p| p.is_weight())
        .zip(scores)
        .map(|(p, scores)| {
            let (order, node) = structure
                .layers
                .iter()
                .enumerate()
                .find(|(_, l)| l.weight == p.path)
                .ok_or_else(|| PruneError::UnknownParam {
                    name: p.path.clone(),
                    valid: structure.layers.iter().map(|l| l.weight.clone()).collect(),
                })?;
            let input = LayerInput {
                name: p.path.clone(),
                unit_params: node
                    .unit_params
                    .iter()
                    .filter(|u| params.iter().any(|q| &&q.path == u))
                    .cloned()
                    .collect(),
                shape: p.shape.clone(),
                unit_axis: node.unit_axis,
                keep: masks.masks[&p.path].keep.clone(),
                scores,
            };
            Ok((order, input))
        })
        .collect::<Result<Vec<_>, PruneError>>()?;
    layers.sort_by_key(|(order, _)| *order);
    Ok(layers.into_iter().map(|(_, l)| l).collect())
}

/// Neuron pruning couples each pruned layer with the next pruned one: they must be neighbours
/// in the network, or a unit's slice would be cut from the wrong layer. An error names the
/// layer left out between two pruned ones.
pub fn check_neighbours(params: &[ParamInfo], structure: &Structure) -> Result<(), PruneError> {
    let order: Vec<usize> = structure
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| params.iter().any(|p| p.path == l.weight))
        .map(|(i, _)| i)
        .collect();
    match order.windows(2).find(|w| w[1] != w[0] + 1) {
        Some(w) => Err(PruneError::Gap {
            before: structure.layers[w[0]].weight.clone(),
            skipped: structure.layers[w[0] + 1].weight.clone(),
            after: structure.layers[w[1]].weight.clone(),
        }),
        None => Ok(()),
    }
}

/// Scores the weights among `params` with `criterion`, selects by `spec`, and applies
/// the combined masks to every parameter in `params` (biases masked with their units).
pub fn prune_once<M: Module>(
    module: M,
    params: &[ParamInfo],
    current: &MaskSet,
    criterion: &dyn Importance,
    spec: &Spec,
    grads: Option<&BTreeMap<ParamId, GradStats>>,
) -> Result<Pruned<M>, PruneError> {
    let weights: Vec<&ParamInfo> = params.iter().filter(|p| p.is_weight()).collect();
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
    // The declared structure, or the one the whole module shows (all its parameters in
    // visiting order, not only the pruned ones).
    let structure = match &spec.structure {
        Some(s) => s.clone(),
        None => Structure::discover(&param_infos(&module)),
    };
    // Only units couple across layers; weights, rows and N:M select each layer alone.
    if matches!(spec.granularity, Granularity::Neuron(_)) {
        check_neighbours(params, &structure)?;
    }
    let layers = layer_inputs(params, &structure, scores, current)?;
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
