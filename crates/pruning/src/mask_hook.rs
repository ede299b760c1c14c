//! Holding masks during training: the hook that keeps pruned weights at exactly zero.
//!
//! Masking the gradient alone is not enough: momentum and weight decay move a weight whose
//! gradient is zero (Distiller #53/#63). So the hook masks gradients before the optimizer step
//! (a fresh optimizer then never builds moments for pruned weights) *and* multiplies the
//! weights by their masks after every step. Masks go to the device once and stay there.

use std::collections::BTreeMap;
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
        })
    }

    /// Multiplies every held parameter of `module` by its mask (on the module's device).
    pub fn apply<M: Module>(&mut self, module: M) -> M {
        module.map(&mut Zeroer { hook: self })
    }
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
        let cache = &mut self.hook.weight_masks;
        param.map(|t| {
            let require_grad = t.is_require_grad();
            let m = cached(cache, id, values, &t.device()).reshape(t.shape());
            let out = (t * m).detach();
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
    pub fn mask_grads(&mut self, grads: &mut GradientsParams) -> Result<(), PruneError> {
        for (id, (values, rank)) in &self.masks {
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
