//! What a pruned layer-list network (convolutions, batch norms, dense layers) keeps: per-layer
//! counts, totals in multiply-adds, bytes in each storage format, and the figures of its
//! compaction — the same report an MLP gets, with a convolution's weights counted at every
//! output position it is applied at.
//!
//! A unit (a convolution's output channel, a dense neuron) is dead when its filter is all zero
//! or nothing reads it any more (the next layer's slice for it is all zero). The compaction's
//! figures are those of the compacted network itself (`compact_net`).

use pruning::MaskSet;
use report::{Compact, LayerCounts, Sizes, Totals};

use crate::host_net::{NetLayer, net_layers};
use crate::model::Net;

/// Every report figure of a layer-list network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetCounts {
    /// Per layer with weights, in forward order.
    pub layers: Vec<LayerCounts>,
    /// Over the network.
    pub total: Totals,
    /// Bytes in each storage format.
    pub sizes: Sizes,
    /// What compaction keeps (its evaluation is added by whoever evaluates it).
    pub compact: Compact,
}

/// Floats stored per unit besides its weights: bias, and a batch norm's γ, β, mean, variance.
fn unit_floats(l: &NetLayer) -> usize {
    if l.norm.is_some() { 5 } else { 1 }
}

/// The trained per-unit values: bias, γ and β.
fn trained_per_unit(l: &NetLayer) -> impl Iterator<Item = &f32> {
    let norm = l.norm.iter().flat_map(|[g, b, _, _]| g.iter().chain(b));
    l.b.iter().chain(norm)
}

/// Every layer's weights by path in PyTorch's layout `[out, in·kh·kw]`, with its bias: what
/// the filter heat maps draw.
pub fn weight_tables(model: &Net) -> Vec<(String, crate::inference::HostLayer)> {
    net_layers(model)
        .into_iter()
        .map(|l| {
            let g = l.geom;
            let layer = crate::inference::HostLayer {
                w: l.w,
                n_out: g.units,
                n_in: g.fan_in,
                b: l.b,
            };
            (g.weight, layer)
        })
        .collect()
}

/// Which units of each layer are alive: a filter with a nonzero weight that the next layer still
/// reads. The output layer's units are all alive.
fn alive(layers: &[NetLayer]) -> Vec<Vec<bool>> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let units = l.geom.units;
            match layers.get(i + 1) {
                None => vec![true; units],
                Some(next) => {
                    // Each unit feeds `block` consecutive inputs of every row of the next layer.
                    let block = next.geom.fan_in / units.max(1);
                    (0..units)
                        .map(|u| {
                            let has_in = l.row(u).iter().any(|v| *v != 0.0);
                            let has_out = (0..next.geom.units).any(|o| {
                                next.row(o)[u * block..(u + 1) * block]
                                    .iter()
                                    .any(|v| *v != 0.0)
                            });
                            has_in && has_out
                        })
                        .collect()
                }
            }
        })
        .collect()
}

/// The report figures of `model` under `masks`, and of its compaction `compacted`.
pub fn net_counts(model: &Net, masks: &MaskSet, compacted: &Net) -> NetCounts {
    let (layers, total, mut sizes) = measure(model, masks);
    let (_, small, small_sizes) = measure(compacted, &MaskSet::default());
    sizes.compact_bytes = small_sizes.dense_bytes;
    NetCounts {
        compact: Compact {
            widths: compacted.widths(),
            dense_macs_per_sample: total.dense_macs_per_sample,
            compact_macs_per_sample: small.dense_macs_per_sample,
            final_evals: None,
        },
        layers,
        total,
        sizes,
    }
}

/// Per-layer counts, totals and sizes (but the compacted size) of `model` under `masks`.
fn measure(model: &Net, masks: &MaskSet) -> (Vec<LayerCounts>, Totals, Sizes) {
    let layers = net_layers(model);
    let alive = alive(&layers);
    let mut out = Vec::new();
    let (mut weights, mut kept_w, mut params, mut nonzero_p) = (0, 0, 0, 0);
    let (mut macs, mut nonzero_macs) = (0, 0);
    let mut sizes = Sizes {
        dense_bytes: 0,
        csr_bytes: 0,
        bitmask_bytes: 0,
        compact_bytes: 0,
    };
    for (l, alive) in layers.iter().zip(&alive) {
        let g = &l.geom;
        let numel = l.w.len();
        let nnz = l.w.iter().filter(|v| **v != 0.0).count();
        let kept = masks.masks.get(&g.weight).map_or(nnz, |m| m.kept());
        weights += numel;
        kept_w += kept;
        params += numel + trained_per_unit(l).count();
        nonzero_p += nnz + trained_per_unit(l).filter(|v| **v != 0.0).count();
        macs += numel * g.positions;
        nonzero_macs += nnz * g.positions;
        let unit_floats = g.units * unit_floats(l);
        sizes.dense_bytes += 4 * (numel + unit_floats);
        sizes.csr_bytes += 4 * (2 * nnz + g.units + 1) + 4 * unit_floats;
        sizes.bitmask_bytes += numel.div_ceil(8) + 4 * nnz + 4 * unit_floats;
        out.push(LayerCounts {
            name: g.weight.clone(),
            shape_out_in: [g.units, g.fan_in],
            weights: numel,
            kept,
            sparsity: 1.0 - kept as f64 / numel.max(1) as f64,
            dead_units: alive.iter().filter(|a| !**a).count(),
        });
    }
    let total = Totals::from_counts((weights, kept_w), (params, nonzero_p), (macs, nonzero_macs));
    (out, total, sizes)
}
