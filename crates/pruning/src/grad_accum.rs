//! Gradient statistics accumulated on the device during training, read to the host only when
//! masks are updated.
//!
//! Gradient criteria inside the training loop (Taylor, Fisher, movement) average over the steps
//! since the last mask update instead of over separate calibration batches. Each step adds
//! one or two element-wise products per weight on the device; nothing is copied to the host
//! until `take`.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::hook::HookError;
use crate::hook_state::HookState;
use crate::importance::{GradNeeds, GradStats};
use crate::module::host_values;

#[derive(Default)]
struct Sums {
    g: Option<Tensor<1>>,
    g2: Option<Tensor<1>>,
    abs_wg: Option<Tensor<1>>,
    wg: Option<Tensor<1>>,
}

/// The names of the four sums, as checkpoints store them.
const KINDS: [&str; 4] = ["g", "g2", "abs_wg", "wg"];

impl Sums {
    fn slot(&mut self, kind: &str) -> &mut Option<Tensor<1>> {
        match kind {
            "g" => &mut self.g,
            "g2" => &mut self.g2,
            "abs_wg" => &mut self.abs_wg,
            _ => &mut self.wg,
        }
    }
}

fn add(slot: &mut Option<Tensor<1>>, x: Tensor<1>) {
    *slot = Some(match slot.take() {
        Some(s) => s + x,
        None => x,
    });
}

fn host(t: Option<Tensor<1>>) -> Vec<f32> {
    t.map(host_values).unwrap_or_default()
}

/// Running sums of the gradient statistics a criterion needs, for layers' weights.
pub struct GradAccumulator {
    needs: GradNeeds,
    /// The weights, with their ranks.
    ids: Vec<(ParamId, usize)>,
    sums: BTreeMap<ParamId, Sums>,
    n: usize,
}

/// The current values of the parameters `ids`, flattened, without autodiff.
pub fn flat_params<M: Module>(module: &M, ids: &[ParamId]) -> BTreeMap<ParamId, Tensor<1>> {
    struct Collect<'a> {
        ids: &'a [ParamId],
        out: BTreeMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.ids.contains(&param.id) {
                let t = param.val().inner();
                let n = t.shape().num_elements();
                self.out.insert(param.id, t.reshape([n]));
            }
        }
    }
    let mut c = Collect {
        ids,
        out: BTreeMap::new(),
    };
    module.visit(&mut c);
    c.out
}

/// The gradient of a parameter of rank `rank` (1 to 4), flattened (a cheap handle; no copy).
pub fn flat_grad(grads: &GradientsParams, id: ParamId, rank: usize) -> Option<Tensor<1>> {
    fn flat<const D: usize>(g: Tensor<D>) -> Tensor<1> {
        let n = g.shape().num_elements();
        g.reshape([n])
    }
    match rank {
        1 => grads.get::<1>(id),
        2 => grads.get::<2>(id).map(flat),
        3 => grads.get::<3>(id).map(flat),
        4 => grads.get::<4>(id).map(flat),
        _ => None,
    }
}

impl GradAccumulator {
    /// Accumulates what `needs` asks for, for the weights `ids` (each with its rank).
    pub fn new(ids: Vec<(ParamId, usize)>, needs: GradNeeds) -> Self {
        Self {
            needs,
            ids,
            sums: BTreeMap::new(),
            n: 0,
        }
    }

    fn ids(&self) -> Vec<ParamId> {
        self.ids.iter().map(|(id, _)| *id).collect()
    }

    /// Whether it accumulates anything (the criterion reads gradient statistics): then every
    /// step's gradients must be dense.
    pub fn collects(&self) -> bool {
        self.needs.any()
    }

    /// Steps accumulated since the last `take`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether nothing was accumulated since the last `take`.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds one step's (unmasked) gradients with the weights they were computed at.
    pub fn add<M: Module>(&mut self, model: &M, grads: &GradientsParams) {
        if !self.needs.any() {
            return;
        }
        let weights = if self.needs.abs_wg || self.needs.wg {
            flat_params(model, &self.ids())
        } else {
            BTreeMap::new()
        };
        for (id, rank) in &self.ids {
            let Some(g) = flat_grad(grads, *id, *rank) else {
                continue;
            };
            let s = self.sums.entry(*id).or_default();
            if self.needs.g {
                add(&mut s.g, g.clone());
            }
            if self.needs.g2 {
                add(&mut s.g2, g.clone() * g.clone());
            }
            if let Some(w) = weights.get(id) {
                let wg = w.clone() * g;
                if self.needs.abs_wg {
                    add(&mut s.abs_wg, wg.clone().abs());
                }
                if self.needs.wg {
                    add(&mut s.wg, wg);
                }
            }
        }
        self.n += 1;
    }

    /// Writes the window so far into `state` (the sums read to the host) under `prefix`.
    pub fn save(&self, state: &mut HookState, prefix: &str) {
        state
            .words
            .insert(format!("{prefix}n"), vec![self.n as u64]);
        for (id, s) in &self.sums {
            let slots = [&s.g, &s.g2, &s.abs_wg, &s.wg];
            for (kind, t) in KINDS.iter().zip(slots) {
                if let Some(t) = t {
                    let key = format!("{prefix}{}.{kind}", id.val());
                    state.floats.insert(key, host_values(t.clone()));
                }
            }
        }
    }

    /// Continues the window [`save`](Self::save) wrote under `prefix`, the sums back on
    /// `model`'s device.
    pub fn load<M: Module>(
        &mut self,
        model: &M,
        state: &HookState,
        prefix: &str,
    ) -> Result<(), HookError> {
        self.n = state.word(&format!("{prefix}n"))? as usize;
        self.sums.clear();
        for (id, param) in flat_params(model, &self.ids()) {
            for kind in KINDS {
                if let Some(v) = state.floats.get(&format!("{prefix}{}.{kind}", id.val())) {
                    crate::transfers::count_to_device();
                    let data = TensorData::new(v.clone(), [v.len()]);
                    let slot = self.sums.entry(id).or_default().slot(kind);
                    *slot = Some(Tensor::from_data(data, &param.device()));
                }
            }
        }
        Ok(())
    }

    /// The statistics since the last `take`, on the host; starts a new window.
    pub fn take(&mut self) -> BTreeMap<ParamId, GradStats> {
        let n = std::mem::take(&mut self.n);
        std::mem::take(&mut self.sums)
            .into_iter()
            .map(|(id, s)| {
                (
                    id,
                    GradStats {
                        n_batches: n,
                        sum_g: host(s.g),
                        sum_g2: host(s.g2),
                        sum_abs_wg: host(s.abs_wg),
                        sum_wg: host(s.wg),
                    },
                )
            })
            .collect()
    }
}
