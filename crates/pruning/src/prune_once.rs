//! One pruning step on a module: score its weights, select masks, combine them with the current
//! masks (pruning never revives), multiply the module by them. Static pruning calls it once per
//! round; the `Pruner` calls it at every scheduled update.

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};

use crate::error::PruneError;
use crate::granularity::{Granularity, LayerInput, Selection, Spec, select_masks};
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
fn check_neighbours(params: &[ParamInfo], structure: &Structure) -> Result<(), PruneError> {
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

/// Network Slimming's scores: unit u's first incoming weight scored |γ_u| and the others 0, so
/// that the unit's score — the sum over its incoming weights — is exactly its batch norm's
/// |γ_u|. Layers without a batch norm are not pruned: their units score the largest value and
/// the layer's factor is 0, which holds in layer scope only — so only layer scope is taken.
fn norm_scores<M: Module>(
    module: &M,
    layers: &mut [LayerInput],
    spec: &mut Spec,
) -> Result<(), PruneError> {
    if spec.granularity != Granularity::Neuron(crate::granularity::UnitSide::Incoming) {
        return Err(PruneError::Plan(
            "slimming scores channels by their batch norm's |γ|: use granularity \"neuron\" (scored on the incoming side)".into(),
        ));
    }
    if spec.scope != crate::granularity::ScopeKind::Layer {
        return Err(PruneError::Plan(
            "slimming ranks each batch-normed layer's channels on their own: use scope \"layer\" (in a global ranking the layers without a batch norm could not be kept out)".into(),
        ));
    }
    let infos = param_infos(module);
    let gamma_of = |l: &LayerInput| {
        l.unit_params
            .iter()
            .find(|p| p.ends_with(".gamma"))
            .and_then(|g| infos.iter().find(|i| &i.path == g))
    };
    let ids: Vec<_> = layers.iter().filter_map(gamma_of).map(|i| i.id).collect();
    // The output layer never has its units pruned: a batch norm elsewhere is needed.
    if layers.iter().rev().skip(1).all(|l| gamma_of(l).is_none()) {
        return Err(PruneError::Plan(
            "slimming needs batch norms: no pruned layer's channels have one (a batch-norm after a conv2d)".into(),
        ));
    }
    let values = read_params(module, &ids);
    for l in layers.iter_mut() {
        let units = l.shape[l.unit_axis];
        let per_unit = l.scores.len() / units.max(1);
        // The first weight of each unit: row starts for [out, …], the first row for [in, out].
        let first = |u: usize| if l.unit_axis == 0 { u * per_unit } else { u };
        let gamma = gamma_of(l).and_then(|g| values.get(&g.id));
        let mut scores = vec![0f32; l.scores.len()];
        for u in 0..units {
            scores[first(u)] = gamma.map_or(f32::MAX, |g| g[u].abs());
        }
        if gamma.is_none() {
            spec.layer_factor.insert(l.name.clone(), 0.0);
        }
        l.scores = scores;
    }
    Ok(())
}

/// The selection from `scores` (one per weight of `params`): the module's structure, the layer
/// inputs in its order, Network Slimming's unit scores when `criterion` asks, then `spec`.
fn select_scored<M: Module>(
    module: &M,
    params: &[ParamInfo],
    current: &MaskSet,
    criterion: &dyn Importance,
    spec: &Spec,
    scores: Vec<Vec<f32>>,
) -> Result<Selection, PruneError> {
    // The declared structure, or the one the whole module shows (all its parameters in
    // visiting order, not only the pruned ones).
    let structure = match &spec.structure {
        Some(s) => s.clone(),
        None => Structure::discover(&param_infos(module)),
    };
    // Only units couple across layers; weights, rows and N:M select each layer alone.
    if matches!(spec.granularity, Granularity::Neuron(_)) {
        check_neighbours(params, &structure)?;
    }
    let mut layers = layer_inputs(params, &structure, scores, current)?;
    let mut spec = spec.clone();
    if criterion.scores_units_by_norm() {
        norm_scores(module, &mut layers, &mut spec)?;
    }
    select_masks(&layers, &spec)
}

/// Whether `spec` and `criterion` fit `module`'s layers: the selection [`prune_once`] would
/// make, from constant scores, without touching the module — so that an N:M group that does
/// not divide a layer's input channels, or neuron pruning across a layer left out, fails
/// before training rather than at the pruning step.
pub fn check_fit<M: Module>(
    module: &M,
    params: &[ParamInfo],
    criterion: &dyn Importance,
    spec: &Spec,
) -> Result<(), PruneError> {
    let ones = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let scores = params
        .iter()
        .filter(|p| p.is_weight())
        .map(|p| vec![1.0; p.numel()])
        .collect();
    select_scored(module, params, &ones, criterion, spec, scores).map(|_| ())
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
    let selection = select_scored(&module, params, current, criterion, spec, scores)?;
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
