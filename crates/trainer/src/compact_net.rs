//! Compaction of a layer-list network: pruned channels and units physically removed — fewer
//! filters, a narrower next layer, batch norm entries dropped — so that the network is smaller
//! and faster, with the masked network's outputs.
//!
//! A unit (a convolution's output channel, a dense neuron) goes when nothing reads it (the next
//! layer's slice for it is all zero), or when it outputs a constant: its filter is all zero, so
//! its output is φ(norm(bias)) at every position, whatever the input. A zero constant is simply
//! dropped (what channel pruning leaves: filter, bias, γ and β all zero). A nonzero one is
//! folded into the next layer's bias — c·Σ of the weights that read it — which is exact for a
//! dense layer and for a convolution without padding. A padded convolution reads zeros at the
//! border instead of c, so there the channel stays, and the compaction says why. Evaluation
//! mode throughout (batch norms use their running statistics). The output layer's units are the
//! network's outputs and stay.

use crate::config::ActivationKind;
use crate::host_net::{NetLayer, net_layers, transpose};
use crate::model::{ConvStage, Net, Op};
use crate::norm::{BatchNorm, Stat};
use burn::module::Param;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};

/// The compacted network and what was kept.
#[derive(Debug)]
pub struct CompactedNet {
    /// The smaller network.
    pub model: Net,
    /// For each layer with weights but the last, the original indices of the units kept.
    pub kept: Vec<Vec<usize>>,
    /// Units that could not be removed, and why.
    pub notes: Vec<String>,
}

/// The value unit `u` of `l` outputs everywhere when its filter is all zero: its bias through
/// the ops after the layer (its norm, activations; pools and flatten keep a constant constant).
fn constant(l: &NetLayer, u: usize) -> f32 {
    let mut v = l.b[u];
    for op in &l.after {
        v = match *op {
            Op::Norm(_) => match &l.norm {
                Some([g, beta, mean, var]) => {
                    g[u] * (v - mean[u]) / (var[u] + crate::norm::EPSILON as f32).sqrt() + beta[u]
                }
                None => v,
            },
            Op::Act(a) => act(a, v),
            _ => v,
        };
    }
    v
}

fn act(a: ActivationKind, v: f32) -> f32 {
    match a {
        ActivationKind::Relu => v.max(0.0),
        ActivationKind::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        ActivationKind::Tanh => v.tanh(),
    }
}

/// Decides the units of layer `i` (all but the last layer), folding constants into layer
/// `i + 1`'s bias; returns the kept indices.
fn decide(layers: &mut [NetLayer], i: usize, notes: &mut Vec<String>) -> Vec<usize> {
    let (left, right) = layers.split_at_mut(i + 1);
    let (cur, next) = (&left[i], &mut right[0]);
    let units = cur.geom.units;
    let block = next.geom.fan_in / units.max(1);
    let mut kept = Vec::new();
    for u in 0..units {
        // Per unit of the next layer, the sum of the weights reading unit u, and whether any
        // is nonzero.
        let reads: Vec<(f32, bool)> = (0..next.geom.units)
            .map(|o| {
                let s = &next.w[o * next.geom.fan_in + u * block..][..block];
                (s.iter().sum(), s.iter().any(|v| *v != 0.0))
            })
            .collect();
        let no_out = reads.iter().all(|(_, any)| !any);
        let zero_in = cur.row(u).iter().all(|v| *v == 0.0);
        if no_out {
            continue;
        }
        if !zero_in {
            kept.push(u);
            continue;
        }
        let c = constant(cur, u);
        if c == 0.0 {
            continue;
        }
        if next.geom.padding > 0 {
            notes.push(format!(
                "{} channel {u}: a constant channel ({c}) feeding a padded convolution ({}) cannot be folded into its bias (the border reads zeros); kept",
                cur.geom.weight, next.geom.weight
            ));
            kept.push(u);
            continue;
        }
        for (b, (s, _)) in next.b.iter_mut().zip(&reads) {
            *b += c * s;
        }
    }
    // A layer of width 0 is no network: keep its first unit, silenced (nothing reads it; a
    // constant it output is already in the next bias).
    if kept.is_empty() {
        kept.push(0);
        let fan_in = next.geom.fan_in;
        for o in 0..next.geom.units {
            next.w[o * fan_in..][..block].fill(0.0);
        }
    }
    kept
}

/// `layer` restricted to units `keep` and, of its inputs, `inputs` (indices into fan_in).
fn slice(layer: &NetLayer, keep: &[usize], inputs: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut w = Vec::with_capacity(keep.len() * inputs.len());
    for &u in keep {
        let row = layer.row(u);
        w.extend(inputs.iter().map(|&k| row[k]));
    }
    (w, keep.iter().map(|&u| layer.b[u]).collect())
}

fn param<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), device))
}

/// `model` with its removable units removed (see the module's doc), on `device`.
pub fn compact_net(model: &Net, device: &Device) -> CompactedNet {
    let mut layers = net_layers(model);
    let n = layers.len();
    let mut notes = Vec::new();
    let mut kept: Vec<Vec<usize>> = Vec::new();
    for i in 0..n.saturating_sub(1) {
        kept.push(decide(&mut layers, i, &mut notes));
    }
    kept.push((0..layers[n - 1].geom.units).collect());
    let mut features = Vec::new();
    let mut dense = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        // The inputs kept: the previous layer's kept units, each its block of inputs.
        let inputs: Vec<usize> = match i.checked_sub(1) {
            None => (0..l.geom.fan_in).collect(),
            Some(p) => {
                let per_unit = l.geom.fan_in / layers[p].geom.units.max(1);
                kept[p]
                    .iter()
                    .flat_map(|&u| u * per_unit..(u + 1) * per_unit)
                    .collect()
            }
        };
        let (w, b) = slice(l, &kept[i], &inputs);
        let units = kept[i].len();
        if l.geom.weight.starts_with("features.") {
            let src = &model.features[features.len()].conv;
            let [_, _, kh, kw] = src.weight.dims();
            let c_in = inputs.len() / (kh * kw);
            let conv = Conv2d {
                weight: param(w, [units, c_in, kh, kw], device),
                bias: Some(param(b, [units], device)),
                stride: src.stride,
                kernel_size: src.kernel_size,
                dilation: src.dilation,
                groups: src.groups,
                padding: src.padding.clone(),
            };
            let norm = l.norm.as_ref().map(|[g, beta, mean, var]| {
                let pick = |v: &Vec<f32>| -> Vec<f32> { kept[i].iter().map(|&u| v[u]).collect() };
                let stat = |v: &Vec<f32>| {
                    Stat::new(
                        burn::module::ParamId::new(),
                        Tensor::from_data(TensorData::new(pick(v), [units]), device),
                    )
                };
                BatchNorm {
                    gamma: param(pick(g), [units], device),
                    beta: param(pick(beta), [units], device),
                    running_mean: stat(mean),
                    running_var: stat(var),
                }
            });
            features.push(ConvStage { conv, norm });
        } else {
            // Burn's Linear holds [in, out].
            let w = transpose(&w, units, inputs.len());
            dense.push(Linear {
                weight: param(w, [inputs.len(), units], device),
                bias: Some(param(b, [units], device)),
            });
        }
    }
    let plan = model.plan.clone();
    CompactedNet {
        model: Net {
            features,
            layers: dense,
            activation: model.activation,
            plan,
            sparse: pruning::sparse::Patterns::new(),
        },
        kept,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};
    use pruning::{Mask, MaskSet, Rng, apply_masks, param_infos};

    use super::*;
    use crate::config::{ModelConfig, Shape};

    const LAYERS: &str = r#"layers = [
      { type = "conv2d", channels = 6, kernel = 3, padding = 1 },
      { type = "batch-norm" }, { type = "relu" }, { type = "max-pool", kernel = 2 },
      { type = "conv2d", channels = 8, kernel = 3, padding = PAD },
      { type = "relu" }, { type = "flatten" }, { type = "dense", units = 12 }, { type = "tanh" },
    ]"#;

    fn device() -> Device {
        #[allow(deprecated)]
        Device::ndarray()
    }

    /// A network of [`LAYERS`] with every parameter (running statistics too) drawn at random.
    fn net(pad: usize) -> Net {
        let cfg: ModelConfig = toml::from_str(&LAYERS.replace("PAD", &pad.to_string())).unwrap();
        let n = Net::new(&cfg, Shape::Image([1, 8, 8]), 5, 1, &device());
        let mut rng = Rng::new(4);
        let values = param_infos(&n)
            .into_iter()
            .map(|p| {
                let v = (0..p.numel()).map(|_| rng.uniform(0.2, 1.2) as f32);
                (p.id, v.collect())
            })
            .collect();
        pruning::Snapshot::from_values(0, values).restore(n)
    }

    fn masked(n: Net, zero: &[(&str, usize)]) -> Net {
        let params = param_infos(&n);
        let mut masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
        for (path, unit) in zero {
            let m: &mut Mask = masks.masks.get_mut(*path).unwrap();
            let per_unit = m.len() / m.shape[0];
            for k in &mut m.keep[unit * per_unit..(unit + 1) * per_unit] {
                *k = false;
            }
        }
        apply_masks(n, &params, &masks).unwrap()
    }

    fn max_diff(a: &Net, b: &Net) -> f32 {
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..16 * 64).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        let x = || Tensor::<2>::from_data(TensorData::new(x.clone(), [16, 64]), &device());
        let (ya, yb) = (a.forward(x()), b.forward(x()));
        let d: Vec<f32> = (ya - yb).abs().into_data().try_to_vec().unwrap();
        d.into_iter().fold(0.0, f32::max)
    }

    #[test]
    fn pruned_and_constant_channels_are_removed_with_the_same_outputs() {
        // Channel 2 of conv 0: filter, bias, γ and β zero (channel pruning) → dropped. Channel
        // 4 of conv 0 and channel 1 of conv 1: filter zero, bias kept → constant, folded into
        // the unpadded conv 1 and into the dense layer. Unit 3 of the dense layer: no incoming
        // weights → tanh(b) folded into the output layer.
        let mut n = masked(
            net(0),
            &[
                ("features.0.conv.weight", 2),
                ("features.0.conv.bias", 2),
                ("features.0.norm.gamma", 2),
                ("features.0.norm.beta", 2),
                ("features.0.conv.weight", 4),
                ("features.1.conv.weight", 1),
            ],
        );
        // Dense unit 3's incoming weights (Burn's [in, out]: a column).
        let w = n.layers[0].weight.val();
        let [n_in, n_out] = w.dims();
        let mut v: Vec<f32> = w.into_data().try_to_vec().unwrap();
        for i in 0..n_in {
            v[i * n_out + 3] = 0.0;
        }
        n.layers[0].weight = param(v, [n_in, n_out], &device());
        let c = compact_net(&n, &device());
        assert_eq!(c.model.widths(), [1, 4, 7, 11, 5]);
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        let d = max_diff(&n, &c.model);
        assert!(d < 1e-5, "outputs differ by {d}");
    }

    #[test]
    fn a_layer_whose_every_channel_is_constant_keeps_one_silent_channel() {
        // Every filter of conv 1 zero, biases kept: all 8 channels are constants folded into
        // the dense layer; one stays (a layer needs a width), reading nothing twice.
        let zero: Vec<(&str, usize)> = (0..8).map(|c| ("features.1.conv.weight", c)).collect();
        let n = masked(net(0), &zero);
        let c = compact_net(&n, &device());
        assert_eq!(c.model.widths()[2], 1);
        let d = max_diff(&n, &c.model);
        assert!(d < 1e-5, "outputs differ by {d}");
    }

    #[test]
    fn a_constant_channel_feeding_a_padded_convolution_stays_and_is_reported() {
        let n = masked(net(1), &[("features.0.conv.weight", 4)]);
        let c = compact_net(&n, &device());
        assert_eq!(c.model.widths(), [1, 6, 8, 12, 5]);
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].contains("padded convolution"), "{}", c.notes[0]);
        assert!(max_diff(&n, &c.model) < 1e-5);
    }
}
