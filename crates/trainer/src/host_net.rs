//! A layer-list network's layers on the host, in PyTorch's layout: what its reports
//! (`counts.rs`), compaction (`compact_net.rs`) and filter maps read, in one pass over its
//! parameters.

use pruning::{param_infos, read_params};

use crate::model::{LayerGeom, Net, Op};

/// One layer with weights: weights `[units, fan_in]` (PyTorch's layout; a kernel's own), bias,
/// and a batch norm's γ, β, mean and variance.
pub struct NetLayer {
    /// Where it sits and how big it is.
    pub geom: LayerGeom,
    /// Weights, row u holding unit u's.
    pub w: Vec<f32>,
    /// Bias per unit.
    pub b: Vec<f32>,
    /// γ, β, running mean, running variance, when a batch norm follows.
    pub norm: Option<[Vec<f32>; 4]>,
    /// What the forward pass applies to this layer's output before the next layer.
    pub after: Vec<Op>,
}

impl NetLayer {
    /// Unit `u`'s weights.
    pub fn row(&self, u: usize) -> &[f32] {
        &self.w[u * self.geom.fan_in..(u + 1) * self.geom.fan_in]
    }
}

/// Each weighted layer's trailing ops, in plan order.
fn ops_after(model: &Net) -> Vec<Vec<Op>> {
    let mut out: Vec<Vec<Op>> = Vec::new();
    for op in &model.plan {
        match op {
            Op::Conv(_) | Op::Dense(_) => out.push(Vec::new()),
            other => {
                if let Some(last) = out.last_mut() {
                    last.push(*other);
                }
            }
        }
    }
    out
}

/// Every layer with weights of `model`, in forward order.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn net_layers(model: &Net) -> Vec<NetLayer> {
    let infos = param_infos(model);
    let ids: Vec<_> = infos.iter().map(|p| p.id).collect();
    let values = read_params(model, &ids);
    let at = |path: String| -> Option<Vec<f32>> {
        infos
            .iter()
            .find(|p| p.path == path)
            .map(|p| values[&p.id].clone())
    };
    model
        .geometry()
        .into_iter()
        .zip(ops_after(model))
        .map(|(geom, after)| {
            let raw = at(geom.weight.clone()).expect("geometry names the model's weights");
            let stem = geom.weight.trim_end_matches("weight").to_string();
            let b = at(format!("{stem}bias")).unwrap_or_else(|| vec![0.0; geom.units]);
            let (w, norm) = match stem.strip_suffix("conv.") {
                Some(module) => {
                    let norm = ["gamma", "beta", "running_mean", "running_var"]
                        .map(|f| at(format!("{module}norm.{f}")));
                    let norm = norm
                        .iter()
                        .all(Option::is_some)
                        .then(|| norm.map(Option::unwrap_or_default));
                    (raw, norm)
                }
                // Burn's Linear is [in, out].
                None => (transpose(&raw, geom.fan_in, geom.units), None),
            };
            NetLayer {
                geom,
                w,
                b,
                norm,
                after,
            }
        })
        .collect()
}

/// `[rows, cols]` row-major to `[cols, rows]`.
pub fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}
