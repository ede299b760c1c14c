//! What prunes together: a layer's units (a dense layer's neurons, a convolution's output
//! channels) with everything that has one entry per unit, and the next layer's slice that reads
//! them.
//!
//! An output channel k of a convolution couples its filter `weight[k, :, :, :]`, its `bias[k]`,
//! the following batch norm's `γ[k]`, `β[k]` (and running statistics, which compaction drops),
//! and the next layer's input slice: the next convolution's `weight[:, k, :, :]`, or, after a
//! flatten, the next dense layer's k·H·W … (k+1)·H·W − 1 inputs. A dense neuron is the same with
//! H·W = 1.
//!
//! The structure is discovered from the module itself — the type of the module owning each
//! parameter (`Linear`, `Conv2d`, `BatchNorm`), the field it is in that module (`bias`,
//! `gamma`, …), its shape, and the order the module visits its sub-modules — not from what the
//! user named the sub-modules. Visiting order is field order, which for a sequential network is
//! the order of the forward pass. A module whose forward pass does not follow its fields (a skip
//! connection, a shared layer) declares its layers with [`Structure::declared`] and passes that
//! through [`Spec::structure`](crate::Spec).

use crate::params::ParamInfo;

/// One layer with units, in forward order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNode {
    /// The weight's path.
    pub weight: String,
    /// Which axis of the weight indexes units: 1 for Burn's `Linear` (`[in, out]`), 0 for a
    /// convolution (`[out, in, kh, kw]`) and for weights in PyTorch's layout.
    pub unit_axis: usize,
    /// 1-D parameters with one entry per unit, masked with the unit under channel (neuron)
    /// pruning: the layer's bias, the γ and β of a batch norm that follows it.
    pub unit_params: Vec<String>,
    /// Per-unit state that is not trained (a batch norm's running mean and variance): never
    /// masked — with γ = β = 0 the channel's output is zero whatever they hold — but removed
    /// with the unit when a network is compacted.
    pub unit_state: Vec<String>,
}

/// A module's layers with units, in forward order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Structure {
    /// The layers; consecutive entries feed each other.
    pub layers: Vec<LayerNode>,
}

/// Module types that normalise each channel on its own, so that a channel's γ and β couple to
/// the channel that feeds it. (Layer and group norms mix channels: not coupled.)
const PER_CHANNEL_NORMS: [&str; 1] = ["BatchNorm"];
/// A batch norm's trained per-channel parameters, and its per-channel statistics.
const NORM_PARAMS: [&str; 2] = ["gamma", "beta"];
const NORM_STATE: [&str; 2] = ["running_mean", "running_var"];

impl Structure {
    /// Layers declared by hand, in forward order (for modules whose fields are not in forward
    /// order).
    pub fn declared(layers: Vec<LayerNode>) -> Self {
        Self { layers }
    }

    /// The structure of a module with parameters `params` (all of them, or the ones being
    /// pruned, in the module's visiting order, as [`param_infos`](crate::param_infos) and
    /// [`Prunable::select`](crate::Prunable::select) list them).
    ///
    /// Every parameter of rank ≥ 2 is a layer's weight. Its units are along axis 1 when it is
    /// 2-D (Burn's `Linear` stores `[in, out]`), along axis 0 for rank ≥ 3 (convolutions store
    /// `[out, in, kh, kw]`). A 1-D parameter of the same module with one entry per unit is its bias; a
    /// following `BatchNorm` with as many features, before the next weight, is its norm.
    pub fn discover(params: &[ParamInfo]) -> Self {
        let mut layers: Vec<LayerNode> = Vec::new();
        // The current layer's module path and unit count.
        let mut current: Option<(String, usize)> = None;
        for p in params {
            if p.is_weight() {
                let unit_axis = usize::from(p.shape.len() == 2);
                current = Some((p.module_path().to_string(), p.shape[unit_axis]));
                layers.push(LayerNode {
                    weight: p.path.clone(),
                    unit_axis,
                    unit_params: Vec::new(),
                    unit_state: Vec::new(),
                });
                continue;
            }
            let (Some((module, units)), Some(node)) = (&current, layers.last_mut()) else {
                continue;
            };
            if p.shape != [*units] {
                continue;
            }
            if p.module_path() == module && p.field() == "bias" {
                node.unit_params.push(p.path.clone());
            } else if PER_CHANNEL_NORMS.contains(&p.owner.as_str()) {
                if NORM_PARAMS.contains(&p.field()) {
                    node.unit_params.push(p.path.clone());
                } else if NORM_STATE.contains(&p.field()) {
                    node.unit_state.push(p.path.clone());
                }
            }
        }
        Self { layers }
    }

    /// The layer whose weight is `path`.
    pub fn node(&self, path: &str) -> Option<&LayerNode> {
        self.layers.iter().find(|l| l.weight == path)
    }

    /// Every parameter coupled to the units of the weights in `weights` (biases, batch norm
    /// γ and β), except those of the last layer, whose units are the network's outputs and are
    /// never pruned: what neuron/channel pruning masks besides the weights.
    pub fn coupled_params(&self, weights: &[&str]) -> Vec<String> {
        let last = self.layers.len().saturating_sub(1);
        self.layers
            .iter()
            .take(last)
            .filter(|l| weights.contains(&l.weight.as_str()))
            .flat_map(|l| l.unit_params.iter().cloned())
            .collect()
    }
}
