//! Holding masks during training: the hook that keeps pruned weights at exactly zero.
//!
//! Masking the gradient alone is not enough: momentum and weight decay move a weight whose
//! gradient is zero (Distiller #53/#63). So the hook masks gradients before the optimizer step
//! (a fresh optimizer then never builds moments for pruned weights) *and* multiplies the
//! weights by their masks after every step. Masks go to the device once and stay there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::error::PruneError;
use crate::hook::{HookError, RunStart, StepInfo, TrainHook};
use crate::mask::MaskSet;
use crate::params::ParamInfo;
use crate::sparse::{self, Pattern, Patterns};

/// Keeps masked weights at zero through training.
pub struct MaskHook {
    masks: BTreeMap<ParamId, (Vec<f32>, usize)>,
    /// The held 2-D weights sparse enough for a sparse product.
    patterns: Patterns,
    weight_masks: BTreeMap<ParamId, Tensor<1>>,
    grad_masks: BTreeMap<ParamId, Tensor<1>>,
    /// The weights whose gradients this step came from a sparse product over their pattern
    /// (exactly zero where pruned): `mask_grads` skips them, once.
    ran_sparse: BTreeSet<ParamId>,
}

impl MaskHook {
    /// A hook holding `masks` on the `prunable` parameters (checked against them).
    pub fn new(prunable: &[ParamInfo], masks: &MaskSet) -> Result<Self, PruneError> {
        masks.check(
            prunable
                .iter()
                .map(|p| (p.path.as_str(), p.shape.as_slice())),
        )?;
        let mut patterns = Patterns::new();
        for p in prunable
            .iter()
            .filter(|p| p.is_weight() && p.shape.len() == 2)
        {
            let mask = &masks.masks[&p.path];
            if (mask.kept() as f64) <= sparse::MAX_DENSITY * mask.len() as f64 {
                patterns.insert(p.id, Arc::new(Pattern::from_mask(&p.path, mask)?));
            }
        }
        Ok(Self {
            patterns,
            // A mask that keeps everything changes nothing: it is not held (no per-step work).
            masks: prunable
                .iter()
                .filter(|p| masks.masks[&p.path].kept() < masks.masks[&p.path].len())
                .map(|p| (p.id, (masks.masks[&p.path].to_f32(), p.shape.len())))
                .collect(),
            weight_masks: BTreeMap::new(),
            grad_masks: BTreeMap::new(),
            ran_sparse: BTreeSet::new(),
        })
    }

    /// Multiplies every held parameter of `module` by its mask (on the module's device); on the
    /// host backends a weight with a pattern is zeroed outside it in its own buffer instead
    /// ([`sparse::keep`]).
    pub fn apply<M: Module>(&mut self, module: M) -> M {
        module.map(&mut Zeroer { hook: self })
    }

    /// Records which of this hook's patterns the step multiplied sparsely (`TrainHook::ran_sparse`).
    pub fn note_sparse(&mut self, used: &Patterns) {
        self.ran_sparse = self
            .patterns
            .iter()
            .filter(|(id, p)| used.get(id).is_some_and(|u| Arc::ptr_eq(u, p)))
            .map(|(id, _)| *id)
            .collect();
    }
}

/// `t` zeroed outside `pattern`, as a tensor of its own rank.
fn kept<const D: usize>(t: Tensor<D>, pattern: &Arc<Pattern>) -> Tensor<D> {
    let shape = t.shape();
    sparse::keep(t.reshape(pattern.shape()), pattern).reshape(shape)
}

fn cached(
    cache: &mut BTreeMap<ParamId, Tensor<1>>,
    id: ParamId,
    values: &[f32],
    device: &burn::tensor::Device,
) -> Tensor<1> {
    cache
        .entry(id)
        .or_insert_with(|| {
            crate::transfers::count_to_device();
            Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
        })
        .clone()
}

struct Zeroer<'a> {
    hook: &'a mut MaskHook,
}

impl ModuleMapper for Zeroer<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((values, _)) = self.hook.masks.get(&param.id) else {
            return param;
        };
        let id = param.id;
        let pattern = self.hook.patterns.get(&id);
        let cache = &mut self.hook.weight_masks;
        param.map(|t| {
            let require_grad = t.is_require_grad();
            let out = match pattern.filter(|_| sparse::host_backend(&t.device())) {
                Some(p) => kept(t, p),
                None => {
                    let m = cached(cache, id, values, &t.device()).reshape(t.shape());
                    (t * m).detach()
                }
            };
            if require_grad {
                out.require_grad()
            } else {
                out
            }
        })
    }
}

fn mask_grad<const D: usize>(
    grads: &mut GradientsParams,
    id: ParamId,
    values: &[f32],
    cache: &mut BTreeMap<ParamId, Tensor<1>>,
) {
    if let Some(g) = grads.remove::<D>(id) {
        let m = cached(cache, id, values, &g.device()).reshape(g.shape());
        grads.register(id, g * m);
    }
}

impl MaskHook {
    /// Multiplies the gradients of every held parameter by its mask (on the gradients' device).
    /// A gradient that came from a sparse product over the weight's pattern
    /// ([`Self::note_sparse`]) is zero where pruned already and is left as it is; one that has a
    /// pattern otherwise is zeroed outside it in its own buffer on the host backends.
    pub fn mask_grads(&mut self, grads: &mut GradientsParams) -> Result<(), PruneError> {
        let ran_sparse = std::mem::take(&mut self.ran_sparse);
        for (id, (values, rank)) in &self.masks {
            if let Some(p) = self.patterns.get(id)
                && let Some(g) = grads.remove::<2>(*id)
            {
                // Only the host backends run sparse products (elsewhere `sparse::linear` is
                // the dense one, whatever a caller reported).
                let host = sparse::host_backend(&g.device());
                let g = if host && !ran_sparse.contains(id) {
                    sparse::keep(g, p)
                } else {
                    g
                };
                grads.register(*id, g);
                if host {
                    continue;
                }
            }
            match rank {
                1 => mask_grad::<1>(grads, *id, values, &mut self.grad_masks),
                2 => mask_grad::<2>(grads, *id, values, &mut self.grad_masks),
                3 => mask_grad::<3>(grads, *id, values, &mut self.grad_masks),
                4 => mask_grad::<4>(grads, *id, values, &mut self.grad_masks),
                r => {
                    return Err(PruneError::Plan(format!(
                        "cannot mask a rank-{r} parameter"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl<M: Module> TrainHook<M> for MaskHook {
    fn name(&self) -> &str {
        "masks"
    }

    fn on_run_start(&mut self, model: M, _info: &RunStart) -> Result<M, HookError> {
        Ok(self.apply(model))
    }

    fn sparse_patterns(&self) -> Option<&Patterns> {
        Some(&self.patterns)
    }

    fn ran_sparse(&mut self, used: &Patterns) {
        self.note_sparse(used);
    }

    fn after_backward(
        &mut self,
        _model: &M,
        grads: &mut GradientsParams,
        _step: &StepInfo,
    ) -> Result<(), HookError> {
        Ok(self.mask_grads(grads)?)
    }

    fn after_step(&mut self, model: M, _step: &StepInfo) -> Result<M, HookError> {
        Ok(self.apply(model))
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;
    use crate::{Prunable, Rng, read_params};

    fn grad(grads: &GradientsParams, id: ParamId) -> Vec<f32> {
        grads
            .get::<2>(id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn a_sparse_weight_is_zeroed_outside_its_pattern_and_its_sparse_gradient_left_alone() {
        for device in sparse::host_devices() {
            let lin: Linear = LinearConfig::new(40, 30).init(&device);
            let params = Prunable::default().select(&lin).unwrap();
            let w = params.iter().find(|p| p.shape.len() == 2).unwrap().clone();
            let mut masks =
                MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
            let mut rng = Rng::new(3);
            for k in &mut masks.masks.get_mut(&w.path).unwrap().keep {
                *k = rng.next_f64() >= 0.9;
            }
            let keep = masks.masks[&w.path].keep.clone();
            let mut hook = MaskHook::new(&params, &masks).unwrap();
            assert!(hook.patterns.contains_key(&w.id), "10 % kept: a pattern");
            let before = read_params(&lin, &[w.id])[&w.id].clone();
            let lin = hook.apply(lin);
            let after = read_params(&lin, &[w.id])[&w.id].clone();
            for k in 0..keep.len() {
                let want = if keep[k] { before[k] } else { 0.0 };
                assert_eq!(after[k].to_bits(), want.to_bits(), "{device:?} weight {k}");
            }
            // A gradient the step says came from the sparse product is left as it is, once.
            let ones = || Tensor::<2>::ones([40, 30], &device);
            let mut grads = GradientsParams::new();
            grads.register(w.id, ones());
            let own = hook.patterns.clone();
            hook.note_sparse(&own);
            hook.mask_grads(&mut grads).unwrap();
            assert!(grad(&grads, w.id).iter().all(|&g| g == 1.0));
            hook.mask_grads(&mut grads).unwrap();
            let masked = grad(&grads, w.id);
            assert!((0..keep.len()).all(|k| masked[k] == if keep[k] { 1.0 } else { 0.0 }));
            // Patterns the hook did not hand out (equal, but not its own) do not count.
            grads.register(w.id, ones());
            let other: Patterns = own
                .iter()
                .map(|(id, p)| (*id, Arc::new((**p).clone())))
                .collect();
            hook.note_sparse(&other);
            hook.mask_grads(&mut grads).unwrap();
            assert_eq!(grad(&grads, w.id), masked);
        }
    }
}
