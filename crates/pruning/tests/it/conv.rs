//! Convolutional networks: the coupled groups discovered from a conv stack's structure, channel
//! pruning that zeroes exactly a channel's filter, bias, batch norm γ/β and the next layer's
//! input slice (a convolution's, or a dense layer's after a flatten), masks that hold through
//! Adam with weight decay and SGD with momentum, gradient criteria and drop-and-grow on kernels,
//! and N:M along input channels.

use std::collections::BTreeMap;

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use pruning::importance::{Magnitude, Taylor};
use pruning::schedule::Polynomial;
use pruning::{
    Granularity, Growth, LayerInput, MaskHook, MaskSet, ParamInfo, Plan, Prunable, Pruner,
    Rewiring, Rng, Rule, RunStart, Spec, StepInfo, Structure, TrainHook, apply_masks, param_infos,
    read_params, select_masks,
};

/// conv → (batch norm) → ReLU → (max pool 2×2).
#[derive(Module, Debug)]
struct Block {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    #[module(skip)]
    pool: bool,
}

/// Blocks, flatten, one dense layer.
#[derive(Module, Debug)]
struct ConvStack {
    blocks: Vec<Block>,
    head: Linear,
    #[module(skip)]
    input: [usize; 3],
}

impl ConvStack {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [c, h, w] = self.input;
        let n = x.dims()[0];
        let mut a: Tensor<4> = x.reshape([n, c, h, w]);
        for b in &self.blocks {
            a = b.conv.forward(a);
            if let Some(norm) = &b.norm {
                a = norm.forward(a);
            }
            a = burn::tensor::activation::relu(a);
            if b.pool {
                a = MaxPool2dConfig::new([2, 2]).init().forward(a);
            }
        }
        self.head.forward(a.flatten(1, 3))
    }
}

/// A random stack: 1–3 blocks of 1–5 channels, kernels 1–3, padding 0–1, batch norm and
/// pooling at random; every parameter drawn nonzero (so that a zero can only be a mask's).
fn random_stack(rng: &mut Rng, device: &Device) -> ConvStack {
    let input = [1 + rng.below(2), 6 + rng.below(3), 6 + rng.below(3)];
    let (mut c, mut h, mut w) = (input[0], input[1], input[2]);
    let mut blocks = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let out = 1 + rng.below(5);
        let k = 1 + rng.below(3.min(h).min(w));
        let pad = rng.below(2);
        let conv = Conv2dConfig::new([c, out], [k, k])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .init(device);
        (c, h, w) = (out, h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
        let pool = h >= 4 && w >= 4 && rng.below(2) == 0;
        if pool {
            (h, w) = (h / 2, w / 2);
        }
        let norm = (rng.below(2) == 0).then(|| BatchNormConfig::new(out).init(device));
        blocks.push(Block { conv, norm, pool });
    }
    let head = LinearConfig::new(c * h * w, 3).init(device);
    nonzero(
        ConvStack {
            blocks,
            head,
            input,
        },
        rng,
    )
}

/// Every trained parameter replaced by values in ±[0.5, 1.5] (same ids).
fn nonzero<M: Module>(m: M, rng: &mut Rng) -> M {
    struct Fill<'a>(&'a mut Rng);
    impl burn::module::ModuleMapper for Fill<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let rng = &mut *self.0;
            p.map(|t| {
                let shape = t.shape();
                let n = shape.num_elements();
                let v: Vec<f32> = (0..n)
                    .map(|_| {
                        let x = rng.uniform(0.5, 1.5) as f32;
                        if rng.below(2) == 0 { x } else { -x }
                    })
                    .collect();
                Tensor::<1>::from_data(TensorData::new(v, [n]), &t.device())
                    .reshape(shape)
                    .require_grad()
            })
        }
    }
    m.map(&mut Fill(rng))
}

fn device() -> Device {
    #[allow(deprecated)]
    Device::ndarray().autodiff()
}

/// The weights a stack prunes by default, plus what channel pruning masks with them.
fn channel_params(m: &ConvStack) -> Vec<ParamInfo> {
    let all = param_infos(m);
    let weights = Prunable::default().select(m).unwrap();
    let names: Vec<&str> = weights.iter().map(|p| p.path.as_str()).collect();
    let coupled = Structure::discover(&all).coupled_params(&names);
    all.into_iter()
        .filter(|p| names.contains(&p.path.as_str()) || coupled.contains(&p.path))
        .collect()
}

/// Layer inputs scoring every entry 1 except channel `k` of layer `i`'s filter (0).
fn scored(m: &ConvStack, params: &[ParamInfo], i: usize, k: usize) -> Vec<LayerInput> {
    let structure = Structure::discover(params);
    params
        .iter()
        .filter(|p| p.is_weight())
        .enumerate()
        .map(|(j, p)| {
            let node = structure.node(&p.path).unwrap();
            let n = p.numel();
            let per_unit = n / p.shape[0];
            let scores = (0..n)
                .map(|e| {
                    if j == i && e / per_unit == k {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            let _ = m;
            LayerInput {
                name: p.path.clone(),
                unit_params: node.unit_params.clone(),
                shape: p.shape.clone(),
                unit_axis: node.unit_axis,
                scores,
                keep: vec![true; n],
            }
        })
        .collect()
}

/// Whether entry `e` of parameter `path` belongs to channel `k` of block `i`'s group.
fn coupled(m: &ConvStack, path: &str, shape: &[usize], e: usize, i: usize, k: usize) -> bool {
    let here = format!("blocks.{i}.");
    let next = format!("blocks.{}.conv.weight", i + 1);
    if path == format!("{here}conv.weight") {
        return e / (shape[1] * shape[2] * shape[3]) == k;
    }
    if [
        format!("{here}conv.bias"),
        format!("{here}norm.gamma"),
        format!("{here}norm.beta"),
    ]
    .contains(&path.to_string())
    {
        return e == k;
    }
    if path == next {
        return (e / (shape[2] * shape[3])) % shape[1] == k;
    }
    if path == "head.weight" && i + 1 == m.blocks.len() {
        // Burn's Linear is [in, out]; after the flatten, channel k is inputs k·H·W … (k+1)·H·W.
        let channels = m.blocks[i].conv.weight.dims()[0];
        let hw = shape[0] / channels;
        return (e / shape[1]) / hw == k;
    }
    false
}

#[test]
fn the_structure_of_a_conv_stack_is_discovered_from_its_modules() {
    let device = device();
    let m = ConvStack {
        blocks: vec![
            Block {
                conv: Conv2dConfig::new([1, 4], [3, 3]).init(&device),
                norm: Some(BatchNormConfig::new(4).init(&device)),
                pool: true,
            },
            Block {
                conv: Conv2dConfig::new([4, 6], [3, 3])
                    .with_bias(false)
                    .init(&device),
                norm: None,
                pool: false,
            },
        ],
        head: LinearConfig::new(6 * 2 * 2, 3).init(&device),
        input: [1, 10, 10],
    };
    let s = Structure::discover(&param_infos(&m));
    let summary: Vec<(&str, usize, Vec<&str>, Vec<&str>)> = s
        .layers
        .iter()
        .map(|l| {
            (
                l.weight.as_str(),
                l.unit_axis,
                l.unit_params.iter().map(String::as_str).collect(),
                l.unit_state.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "blocks.0.conv.weight",
                0,
                vec![
                    "blocks.0.conv.bias",
                    "blocks.0.norm.gamma",
                    "blocks.0.norm.beta"
                ],
                vec!["blocks.0.norm.running_mean", "blocks.0.norm.running_var"],
            ),
            ("blocks.1.conv.weight", 0, vec![], vec![]),
            ("head.weight", 1, vec!["head.bias"], vec![]),
        ]
    );
    // The default prunable set: conv and dense weights; channel pruning adds the hidden
    // layers' per-channel parameters, never the output layer's bias.
    let names: Vec<String> = channel_params(&m).into_iter().map(|p| p.path).collect();
    assert_eq!(
        names,
        vec![
            "blocks.0.conv.weight",
            "blocks.0.conv.bias",
            "blocks.0.norm.gamma",
            "blocks.0.norm.beta",
            "blocks.1.conv.weight",
            "head.weight",
        ]
    );
}

#[test]
fn pruning_channel_k_of_layer_i_zeroes_exactly_its_coupled_slices() {
    let device = device();
    let mut rng = Rng::new(13);
    for case in 0..60 {
        let m = random_stack(&mut rng, &device);
        let i = rng.below(m.blocks.len());
        let n_units = m.blocks[i].conv.weight.dims()[0];
        let k = rng.below(n_units);
        let params = channel_params(&m);
        let layers = scored(&m, &params, i, k);
        // One unit of layer i, none elsewhere.
        let mut spec = Spec::new(
            Granularity::Neuron(Default::default()),
            Rule::Sparsity(1.0 / n_units as f64),
        );
        spec.allow_empty = true;
        for l in &layers {
            if l.name != format!("blocks.{i}.conv.weight") {
                spec.layer_factor.insert(l.name.clone(), 0.0);
            }
        }
        let sel = select_masks(&layers, &spec).unwrap();
        let mut masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
        for (name, mask) in sel.masks.masks {
            masks.masks.insert(name, mask);
        }
        let before = param_infos(&m);
        let pruned = apply_masks(m, &params, &masks).unwrap();
        assert_eq!(param_infos(&pruned), before, "ids and shapes survive");
        let all: Vec<ParamInfo> = param_infos(&pruned);
        let ids: Vec<ParamId> = all.iter().map(|p| p.id).collect();
        let values = read_params(&pruned, &ids);
        let mut zeroed = 0;
        for p in all.iter().filter(|p| !p.path.contains("running")) {
            for (e, v) in values[&p.id].iter().enumerate() {
                let expect = coupled(&pruned, &p.path, &p.shape, e, i, k);
                assert_eq!(
                    *v == 0.0,
                    expect,
                    "case {case}: layer {i} channel {k}: {}[{e}] = {v}",
                    p.path
                );
                zeroed += usize::from(expect);
            }
        }
        assert!(zeroed > 0);
    }
}

/// A digits-sized batch (1×8×8 images, 4 classes).
fn batch(device: &Device, seed: u64) -> (Tensor<2>, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..16 * 64).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let y: Vec<i64> = (0..16).map(|_| rng.below(3) as i64).collect();
    (Tensor::from_data(TensorData::new(x, [16, 64]), device), y)
}

fn grads_of(net: &ConvStack, device: &Device, step: usize) -> GradientsParams {
    let (x, y) = batch(device, step as u64);
    let logits = net.forward(x);
    let targets = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(y, [16]), device);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits, targets);
    GradientsParams::from_grads(loss.backward(), net)
}

fn lenet_like(device: &Device) -> ConvStack {
    let m = ConvStack {
        blocks: vec![
            Block {
                conv: Conv2dConfig::new([1, 6], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
                norm: Some(BatchNormConfig::new(6).init(device)),
                pool: true,
            },
            Block {
                conv: Conv2dConfig::new([6, 8], [3, 3]).init(device),
                norm: Some(BatchNormConfig::new(8).init(device)),
                pool: false,
            },
        ],
        head: LinearConfig::new(8 * 2 * 2, 3).init(device),
        input: [1, 8, 8],
    };
    nonzero(m, &mut Rng::new(5))
}

/// forward, backward, hook, optimizer step, hook — for `steps` steps.
fn train(
    mut net: ConvStack,
    hook: &mut dyn TrainHook<ConvStack>,
    mut optim: ModuleOptimizer,
    steps: usize,
    device: &Device,
    mut check: impl FnMut(&ConvStack, usize),
) -> ConvStack {
    net = hook
        .on_run_start(
            net,
            &RunStart {
                n_epochs: 1,
                n_batches: steps,
            },
        )
        .unwrap();
    for step in 0..steps {
        let info = StepInfo {
            step,
            epoch: 1,
            batch_idx: step,
            n_batches: steps,
            lr: 0.01,
        };
        let mut grads = grads_of(&net, device, step);
        hook.after_backward(&net, &mut grads, &info).unwrap();
        net = optim.step(0.01, net, grads);
        net = hook.after_step(net, &info).unwrap();
        optim = hook.edit_optimizer(optim, &info).unwrap();
        check(&net, step + 1);
    }
    net
}

fn assert_masked_zero(net: &ConvStack, params: &[ParamInfo], masks: &MaskSet, when: &str) {
    let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
    let values = read_params(net, &ids);
    for p in params {
        for (e, (v, k)) in values[&p.id]
            .iter()
            .zip(&masks.masks[&p.path].keep)
            .enumerate()
        {
            assert!(*k || *v == 0.0, "{when}: {}[{e}] = {v} is masked", p.path);
        }
    }
}

fn optimizers() -> Vec<(&'static str, ModuleOptimizer)> {
    vec![
        (
            "adam + weight decay",
            AdamConfig::new()
                .with_weight_decay(Some(WeightDecayConfig::new(0.05)))
                .init(),
        ),
        (
            "sgd momentum + weight decay",
            SgdConfig::new()
                .with_momentum(Some(MomentumConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: false,
                }))
                .with_weight_decay(Some(WeightDecayConfig::new(0.05)))
                .init(),
        ),
    ]
}

#[test]
fn pruned_channels_and_batch_norm_entries_stay_exactly_zero_through_training() {
    let device = device();
    for (name, optim) in optimizers() {
        let net = lenet_like(&device);
        let params = channel_params(&net);
        let ids: Vec<ParamId> = params
            .iter()
            .filter(|p| p.is_weight())
            .map(|p| p.id)
            .collect();
        let values = read_params(&net, &ids);
        let layers: Vec<LayerInput> = pruning::prune_once::layer_inputs(
            &params,
            &Structure::discover(&param_infos(&net)),
            params
                .iter()
                .filter(|p| p.is_weight())
                .map(|p| values[&p.id].iter().map(|v| v.abs()).collect())
                .collect(),
            &MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice()))),
        )
        .unwrap();
        let spec = Spec::new(Granularity::Neuron(Default::default()), Rule::Sparsity(0.5));
        let masks = select_masks(&layers, &spec).unwrap().masks;
        // Half of each conv's channels: 3 of 6 and 4 of 8, with their γ and β.
        assert_eq!(masks.masks["blocks.0.norm.gamma"].kept(), 3);
        assert_eq!(masks.masks["blocks.1.norm.beta"].kept(), 4);
        assert_eq!(masks.masks["blocks.1.conv.weight"].kept(), 4 * 3 * 9);
        let mut hook = MaskHook::new(&params, &masks).unwrap();
        let first = read_params(&net, &ids);
        let net = train(net, &mut hook, optim, 15, &device, |net, step| {
            assert_masked_zero(net, &params, &masks, &format!("{name}, step {step}"));
        });
        // The kept weights did train.
        let last = read_params(&net, &ids);
        assert!(ids.iter().any(|id| first[id] != last[id]), "{name}");
    }
}

#[test]
fn gradual_taylor_and_rigl_run_on_kernels() {
    let device = device();
    // Taylor needs |w·g| accumulated from 4-D gradients.
    let net = lenet_like(&device);
    let params = Prunable::default().select(&net).unwrap();
    let ones = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let schedule = Polynomial {
        initial: 0.0,
        target: 0.7,
        begin: 2,
        end: 10,
        power: 3.0,
        frequency: 2,
    };
    let mut pruner = Pruner::new(
        params.clone(),
        ones.clone(),
        Box::new(Taylor),
        Spec::new(Granularity::Weight, Rule::Sparsity(0.0)),
        Plan::Prune(Box::new(schedule)),
        0,
    )
    .unwrap();
    let net = train(
        net,
        &mut pruner,
        optimizers().remove(0).1,
        12,
        &device,
        |_, _| {},
    );
    assert_masked_zero(&net, &params, pruner.masks(), "taylor");
    let by_layer: BTreeMap<String, f64> = pruner.layer_sparsity().into_iter().collect();
    assert!(
        (by_layer["blocks.1.conv.weight"] - 0.7).abs() < 0.01,
        "{by_layer:?}"
    );
    // RigL: gradient growth reads the dense 4-D gradient; each layer keeps its sparsity.
    let net = lenet_like(&device);
    let params = Prunable::default().select(&net).unwrap();
    let mut rigl = Pruner::new(
        params.clone(),
        ones,
        Box::new(Magnitude),
        Spec::new(Granularity::Weight, Rule::Sparsity(0.0)),
        Plan::Rewire {
            rewiring: Rewiring {
                growth: Growth::Gradient,
                drop_fraction: 0.3,
                every: 3,
                end: 12,
            },
            sparsity: 0.8,
        },
        1,
    )
    .unwrap();
    let start = rigl.masks().clone();
    let net = train(
        net,
        &mut rigl,
        optimizers().remove(0).1,
        12,
        &device,
        |_, _| {},
    );
    assert_masked_zero(&net, &params, rigl.masks(), "rigl");
    assert!(rigl.events().iter().any(|e| e.changed > 0));
    assert_ne!(&start, rigl.masks());
    for (layer, s) in rigl.layer_sparsity() {
        let n = params.iter().find(|p| p.path == layer).unwrap().numel();
        let expected = pruning::select::prune_count(0.8, n) as f64 / n as f64;
        assert!((s - expected).abs() < 1e-12, "{layer}: {s}");
    }
}

#[test]
fn n_of_m_on_a_kernel_groups_input_channels_at_each_position() {
    let mut rng = Rng::new(3);
    let shape = vec![4, 8, 3, 3];
    let n: usize = shape.iter().product();
    let layer = LayerInput {
        name: "conv.weight".into(),
        unit_params: vec![],
        shape: shape.clone(),
        unit_axis: 0,
        scores: (0..n).map(|_| rng.next_f64() as f32).collect(),
        keep: vec![true; n],
    };
    let sel = select_masks(
        std::slice::from_ref(&layer),
        &Spec::new(Granularity::NOfM(2, 4), Rule::Sparsity(0.5)),
    )
    .unwrap();
    let keep = &sel.masks.masks["conv.weight"].keep;
    for o in 0..4 {
        for pos in 0..9 {
            for g in 0..2 {
                let group: Vec<usize> = (0..4).map(|c| (o * 8 + g * 4 + c) * 9 + pos).collect();
                assert_eq!(group.iter().filter(|&&e| keep[e]).count(), 2);
                // The two kept are the group's two highest scores.
                let mut by_score = group.clone();
                by_score.sort_by(|&a, &b| layer.scores[b].total_cmp(&layer.scores[a]));
                assert!(keep[by_score[0]] && keep[by_score[1]]);
            }
        }
    }
    // Input channels that do not split into groups of M are refused by name.
    let mut odd = layer.clone();
    odd.shape = vec![4, 6, 3, 3];
    odd.scores.truncate(4 * 6 * 9);
    odd.keep.truncate(4 * 6 * 9);
    let e = select_masks(
        &[odd],
        &Spec::new(Granularity::NOfM(2, 4), Rule::Sparsity(0.5)),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("conv.weight") && e.contains('6'), "{e}");
}

#[test]
fn neuron_pruning_across_a_layer_left_out_is_an_error_naming_it() {
    let device = device();
    let m = lenet_like(&device);
    let params: Vec<ParamInfo> = channel_params(&m)
        .into_iter()
        .filter(|p| !p.path.starts_with("blocks.1."))
        .collect();
    let masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let spec = Spec::new(Granularity::Neuron(Default::default()), Rule::Sparsity(0.5));
    let e = pruning::prune_once(m, &params, &masks, &Magnitude, &spec, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "prunes `blocks.0.conv.weight` and `head.weight` but not `blocks.1.conv.weight`"
        ),
        "{e}"
    );
}

#[test]
fn slimming_prunes_the_channels_with_the_smallest_batch_norm_scale() {
    use pruning::importance::Slimming;
    let device = device();
    let m = lenet_like(&device);
    // γ of block 0: channels 0, 2, 4 small; of block 1: channels 1, 3, 5, 7 small (signs do not
    // matter: |γ|).
    let gammas: [(&str, Vec<f32>); 2] = [
        ("blocks.0.norm.gamma", vec![0.1, 0.9, -0.2, 0.8, 0.3, -0.7]),
        (
            "blocks.1.norm.gamma",
            vec![0.9, 0.1, 0.8, -0.2, 0.7, 0.3, 0.6, 0.05],
        ),
    ];
    let infos = param_infos(&m);
    let values: BTreeMap<ParamId, Vec<f32>> = gammas
        .iter()
        .map(|(path, v)| {
            (
                infos.iter().find(|p| &p.path == path).unwrap().id,
                v.clone(),
            )
        })
        .collect();
    let m = pruning::Snapshot::from_values(0, values).restore(m);
    let params = channel_params(&m);
    let masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let spec = Spec::new(Granularity::Neuron(Default::default()), Rule::Sparsity(0.5));
    let out = pruning::prune_once(m, &params, &masks, &Slimming, &spec, None).unwrap();
    let kept = |path: &str| -> Vec<bool> { out.masks.masks[path].keep.clone() };
    assert_eq!(
        kept("blocks.0.norm.gamma"),
        [false, true, false, true, false, true]
    );
    assert_eq!(
        kept("blocks.1.norm.beta"),
        [true, false, true, false, true, false, true, false]
    );
    // Slimming ranks channels: other granularities are refused.
    let m = lenet_like(&device);
    let params = channel_params(&m);
    let weight = Spec::new(Granularity::Weight, Rule::Sparsity(0.5));
    let e = pruning::prune_once(m, &params, &masks_of(&params), &Slimming, &weight, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("use granularity \"neuron\""), "{e}");
}

fn masks_of(params: &[ParamInfo]) -> MaskSet {
    MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())))
}
