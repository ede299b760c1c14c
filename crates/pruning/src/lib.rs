//! Pruning for any Burn [`Module`](burn::module::Module), and the hook through which a training
//! loop lets pruning act at fixed points of each step.
//!
//! This crate knows nothing of files, configs or terminals: the `trainer` crate does that. What
//! lives here must work on any module, not only the trainer's MLP.
#![warn(missing_docs)]
// No panic reachable from input: `unwrap` and `expect` only where an invariant checked before
// makes them unreachable, each such function marked with an `allow` that says so.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod grad_accum;
pub mod granularity;
pub mod hook;
pub mod hook_state;
pub mod importance;
pub mod mask;
pub mod mask_hook;
pub mod module;
pub mod optim_state;
pub mod params;
pub mod prune_once;
pub mod pruner;
pub mod regrowth;
pub mod rewind;
pub mod rng;
pub mod schedule;
pub mod select;
pub mod sparse;
pub mod structure;
pub mod transfers;

pub use error::PruneError;
pub use granularity::{
    Granularity, LayerInput, ScopeKind, Selection, Spec, UnitSide, select_masks,
};
pub use hook::{EpochEnd, HookError, Published, RunEnd, RunStart, StepInfo, TrainHook};
pub use hook_state::HookState;
pub use importance::Criterion;
pub use mask::{Mask, MaskSet};
pub use mask_hook::MaskHook;
pub use module::{Prunable, apply_masks, host_values, read_params};
pub use optim_state::zero_masked_state;
pub use params::{ParamInfo, param_infos};
pub use prune_once::{Pruned, prune_once};
pub use pruner::{ClearState, Plan, PruneEvent, Pruner};
pub use regrowth::{Growth, Rewiring};
pub use rewind::{Snapshot, SnapshotAt};
pub use rng::Rng;
pub use select::{CountOver, Rule};
pub use structure::{LayerNode, Structure};
pub use transfers::{Transfers, transfers};
