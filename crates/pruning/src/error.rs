//! Typed errors of the pruning library. Messages quote the bad value and say what is valid.

/// Everything that can go wrong when scoring, selecting or applying masks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PruneError {
    /// A parameter path that the module does not have.
    #[error("unknown parameter `{name}`; prunable: {}", valid.join(", "))]
    UnknownParam {
        /// The path asked for.
        name: String,
        /// The paths that exist.
        valid: Vec<String>,
    },
    /// A mask whose shape differs from its parameter's.
    #[error("mask for `{name}` has shape {got:?}, but the parameter has shape {expected:?}")]
    ShapeMismatch {
        /// The parameter.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The mask's shape.
        got: Vec<usize>,
    },
    /// A prunable parameter without a mask.
    #[error("no mask for prunable parameter `{name}`")]
    MissingMask {
        /// The parameter.
        name: String,
    },
    /// A mask for a parameter that is not prunable (or does not exist).
    #[error("mask `{name}` matches no prunable parameter; prunable: {}", valid.join(", "))]
    ExtraMask {
        /// The mask's name.
        name: String,
        /// The prunable parameters.
        valid: Vec<String>,
    },
    /// A mask value other than 0 or 1.
    #[error("mask for `{name}` holds {value} at flat index {index}; masks hold only 0 and 1")]
    NotBinary {
        /// The parameter.
        name: String,
        /// Where.
        index: usize,
        /// What.
        value: f32,
    },
    /// An amount outside its range.
    #[error("{what} must be {range} (got {value})")]
    OutOfRange {
        /// Which amount.
        what: &'static str,
        /// The valid range, in words.
        range: &'static str,
        /// The value given.
        value: f64,
    },
    /// N:M sparsity that cannot be applied to a parameter.
    #[error("{n}:{m} sparsity needs N < M and M dividing the input width of `{name}` ({width})")]
    BadNm {
        /// The parameter.
        name: String,
        /// Kept per group.
        n: usize,
        /// Group size.
        m: usize,
        /// The input width.
        width: usize,
    },
    /// Neuron pruning of two layers that are not neighbours in the network.
    #[error(
        "neuron pruning prunes `{before}` and `{after}` but not `{skipped}` between them: a unit of `{before}` feeds `{skipped}`, not `{after}`; prune every layer in between (include it; with scope \"layer\" and a sparsity rule, layer_factor 0 keeps its units)"
    )]
    Gap {
        /// The pruned layer before the gap.
        before: String,
        /// The first layer left out.
        skipped: String,
        /// The pruned layer after the gap.
        after: String,
    },
    /// A criterion that needs gradients was given none.
    #[error(
        "criterion `{criterion}` scores weights from gradients, and none were accumulated; give it calibration batches (or use a magnitude criterion)"
    )]
    NeedsGradients {
        /// The criterion.
        criterion: String,
    },
    /// Neuron pruning on a parameter that is not a matrix.
    #[error("`{name}` has shape {shape:?}; neuron pruning needs 2-D weights")]
    NotAMatrix {
        /// The parameter.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The optimizer's state could not be read or written back.
    #[error("cannot zero optimizer state of masked weights: {message}")]
    OptimizerState {
        /// What failed.
        message: String,
    },
    /// A pruning plan that cannot run as configured.
    #[error("{0}")]
    Plan(String),
}
