//! What the sparse step's benchmark (`sparse_step.rs`) and `examples/step_breakdown.rs` share,
//! so that the two time the same step: the same masks, the same step information.

use pruning::{MaskSet, ParamInfo, Prunable, StepInfo};
use trainer::model::Net;

/// What every timed step tells the hooks: the held masks' per-step work does not depend on it.
pub const STEP: StepInfo = StepInfo {
    step: 0,
    epoch: 1,
    batch_idx: 0,
    n_batches: 1,
    lr: 1e-3,
};

/// `net`'s prunable parameters and masks on them: each weight of a 2-D parameter kept with
/// probability 1 − `sparsity` (`None`: every weight kept), drawn from one fixed stream.
pub fn random_masks(net: &Net, sparsity: Option<f64>) -> (Vec<ParamInfo>, MaskSet) {
    let params = Prunable::default()
        .select(net)
        .expect("a dense net's weights");
    let mut masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let mut rng = pruning::Rng::new(1);
    if let Some(s) = sparsity {
        for m in masks.masks.values_mut().filter(|m| m.shape.len() == 2) {
            for k in &mut m.keep {
                *k = rng.next_f64() >= s;
            }
        }
    }
    (params, masks)
}
