//! Snapshots of a module's parameters, for lottery-ticket rewinding (Frankle & Carbin 2019;
//! Frankle et al. 2020 rewind to an early step k instead of initialisation).
//!
//! A snapshot is a host copy by `ParamId`, so restoring it into the trained module keeps the
//! parameter identities the masks and optimizer refer to.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use crate::hook::{HookError, RunStart, StepInfo, TrainHook};
use crate::hook_state::HookState;
use crate::module::read_params;
use crate::params::param_infos;

/// Values of every float parameter of a module at one point of training.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Optimizer steps taken when it was taken.
    pub step: usize,
    values: BTreeMap<ParamId, Vec<f32>>,
}

impl Snapshot {
    /// Copies every float parameter of `module`.
    pub fn take<M: Module>(module: &M, step: usize) -> Self {
        let ids: Vec<ParamId> = param_infos(module).iter().map(|p| p.id).collect();
        Self {
            step,
            values: read_params(module, &ids),
        }
    }

    /// A snapshot of the given values (a checkpoint read back).
    pub fn from_values(step: usize, values: BTreeMap<ParamId, Vec<f32>>) -> Self {
        Self { step, values }
    }

    /// The values, by parameter id.
    pub fn values(&self) -> &BTreeMap<ParamId, Vec<f32>> {
        &self.values
    }

    /// `module` with every parameter the snapshot holds set back to its snapshot value (same
    /// `ParamId`, same device, same `require_grad`). Apply masks afterwards to rewind only the
    /// surviving weights.
    pub fn restore<M: Module>(&self, module: M) -> M {
        struct Restore<'a> {
            values: &'a BTreeMap<ParamId, Vec<f32>>,
        }
        impl ModuleMapper for Restore<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(v) = self.values.get(&param.id) else {
                    return param;
                };
                param.map(|t| {
                    let require_grad = t.is_require_grad();
                    crate::transfers::count_to_device();
                    let out = Tensor::<D>::from_data(
                        TensorData::new(v.clone(), t.shape().dims::<D>()),
                        &t.device(),
                    );
                    if require_grad {
                        out.require_grad()
                    } else {
                        out
                    }
                })
            }
        }
        module.map(&mut Restore {
            values: &self.values,
        })
    }
}

/// A hook that snapshots the module after `step` optimizer steps (0 = before the first step):
/// the rewind point of a lottery-ticket run.
#[derive(Debug, Clone)]
pub struct SnapshotAt {
    /// The step to snapshot at.
    pub step: usize,
    /// The snapshot, once taken.
    pub snapshot: Option<Snapshot>,
}

impl SnapshotAt {
    /// A hook that will snapshot after `step` steps.
    pub fn new(step: usize) -> Self {
        Self {
            step,
            snapshot: None,
        }
    }
}

impl<M: Module> TrainHook<M> for SnapshotAt {
    fn name(&self) -> &str {
        "rewind snapshot"
    }
    fn on_run_start(&mut self, model: M, _info: &RunStart) -> Result<M, HookError> {
        if self.step == 0 {
            self.snapshot = Some(Snapshot::take(&model, 0));
        }
        Ok(model)
    }
    fn after_step(&mut self, model: M, step: &StepInfo) -> Result<M, HookError> {
        if step.step + 1 == self.step {
            self.snapshot = Some(Snapshot::take(&model, self.step));
        }
        Ok(model)
    }

    // A rewind point at step 0 is taken again by `on_run_start` of the resumed run (from the
    // same initial model); a later one must travel in the checkpoint.
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        let Some(snap) = &self.snapshot else {
            return Ok(None);
        };
        let mut st = HookState::default();
        st.words.insert("step".into(), vec![snap.step as u64]);
        for (id, v) in &snap.values {
            st.floats.insert(id.val().to_string(), v.clone());
        }
        Ok(Some(st))
    }

    fn load_state(&mut self, _model: &M, st: HookState) -> Result<(), HookError> {
        let step = st.word("step")? as usize;
        let mut values = BTreeMap::new();
        for (id, v) in st.floats {
            let id: u64 = id
                .parse()
                .map_err(|_| format!("hook state: `{id}` is not a parameter id"))?;
            values.insert(ParamId::from(id), v);
        }
        self.snapshot = Some(Snapshot { step, values });
        Ok(())
    }
}
