//! Zeroing optimizer state (Adam's moments, SGD's velocity) where weights are masked.
//!
//! Masking gradients stops a pruned weight's moments from *growing*, but what they held when
//! the weight was pruned decays only slowly: a weight regrown later (RigL, SET) would start with
//! a stale update direction. Burn keeps optimizer state private, so we go through its record:
//! serialise, multiply every per-parameter state tensor that has the parameter's size by the
//! mask, load it back. Any optimizer whose state tensors have the parameter's shape is covered,
//! without naming its fields. The round trip costs about one copy of the state, once per mask
//! update, never per step.

use std::collections::BTreeMap;

use burn::module::ParamId;
use burn::optim::ModuleOptimizer;
use burn::tensor::DType;
use burn_pack::{Reader, Tensor, Writer};

use crate::error::PruneError;

fn record_err(e: impl std::fmt::Display) -> PruneError {
    PruneError::OptimizerState {
        message: e.to_string(),
    }
}

/// Multiplies each state tensor of the parameters in `keep` by its keep flags (false → 0).
/// Returns the optimizer and the number of state tensors changed.
pub fn zero_masked_state(
    optim: ModuleOptimizer,
    keep: &BTreeMap<ParamId, Vec<bool>>,
) -> Result<(ModuleOptimizer, usize), PruneError> {
    if keep.is_empty() {
        return Ok((optim, 0));
    }
    let by_id: BTreeMap<u64, &Vec<bool>> = keep.iter().map(|(id, k)| (id.val(), k)).collect();
    crate::transfers::count_to_host();
    let bytes = optim.into_bytes().map_err(record_err)?;
    let reader = Reader::from_bytes(bytes).map_err(record_err)?;
    let scalars = reader.scalars().clone();
    let metadata = reader.metadata().clone();
    let mut changed = 0;
    let mut tensors = Vec::new();
    for t in reader.into_tensors().map_err(record_err)? {
        let (name, dtype, shape, param_id, data) = t.into_parts().map_err(record_err)?;
        let flags = param_id.and_then(|id| by_id.get(&id));
        let data = match flags {
            Some(flags) if dtype == DType::F32 && data.len() == flags.len() * 4 => {
                let mut raw = data.to_vec();
                for (chunk, &k) in raw.chunks_exact_mut(4).zip(flags.iter()) {
                    if !k {
                        chunk.copy_from_slice(&0f32.to_le_bytes());
                    }
                }
                changed += 1;
                burn_pack::Bytes::from_bytes_vec(raw)
            }
            _ => data,
        };
        tensors.push(Tensor::new(name, dtype, shape, param_id, data));
    }
    let mut writer = Writer::new(tensors);
    for (k, v) in &scalars {
        writer = writer.with_scalar(k, *v);
    }
    for (k, v) in &metadata {
        writer = writer.with_metadata(k, v);
    }
    crate::transfers::count_to_device();
    let bytes = writer.into_bytes().map_err(record_err)?;
    let optim = optim.from_bytes(bytes).map_err(record_err)?;
    Ok((optim, changed))
}
