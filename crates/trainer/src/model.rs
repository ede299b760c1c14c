//! The network built from `[model]` — an MLP from `hidden`, or any stack of convolutions,
//! batch norms, pools, a flatten and dense layers from `layers` — with initial weights drawn on
//! the host from our own seeded generator: the same seed gives the same network on every
//! backend, and tests can seed in parallel (Burn's own seeding is process-global on ndarray).

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData, activation};
use pruning::Rng;
use pruning::sparse::Patterns;

use crate::config::{ActivationKind, InitKind, LayerEntry, LayerKind, ModelConfig, Shape};
use crate::norm::BatchNorm;
use crate::seeds::{Phase, Purpose, Seeds};

/// One step of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// The input rows as images `[c, h, w]`.
    Image([usize; 3]),
    /// `features[i].conv`.
    Conv(usize),
    /// `features[i].norm`.
    Norm(usize),
    /// Max pooling.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Step.
        stride: usize,
    },
    /// Average pooling.
    AvgPool {
        /// Window side.
        kernel: usize,
        /// Step.
        stride: usize,
    },
    /// Images to vectors, channel first.
    Flatten,
    /// `layers[i]`.
    Dense(usize),
    /// A nonlinearity.
    Act(ActivationKind),
    /// Dropout with this probability of zeroing a value (training steps only).
    Dropout(f32),
}

/// A convolution and the batch norm after it, if any: the parameters one channel couples.
#[derive(Module, Debug)]
pub struct ConvStage {
    /// The convolution (`weight` `[out, in, kh, kw]`, PyTorch's layout).
    pub conv: Conv2d,
    /// Its batch norm.
    pub norm: Option<BatchNorm>,
}

/// The network: convolution stages (none for an MLP), then dense layers, the last one
/// outputting logits (or the regression value); the head turns them into predictions and
/// losses. Field order is forward order, so the pruning crate discovers which parameters a
/// channel couples by visiting it.
#[derive(Module, Debug)]
pub struct Net {
    /// Convolutions with their batch norms, in order.
    pub features: Vec<ConvStage>,
    /// Dense layers, the output layer last. Standard Burn `Linear`s (`[in, out]`), so the
    /// pruning crate sees them as it would in any other model.
    pub layers: Vec<Linear>,
    /// The MLP's nonlinearity (the one host inference and compaction apply between layers).
    #[module(skip)]
    pub activation: ActivationKind,
    /// What the forward pass does, in order.
    #[module(skip)]
    pub plan: Vec<Op>,
    /// The dense layers [`Net::forward`] multiplies as sparse products (`pruning::sparse`), by
    /// weight: the training loop sets its hooks' patterns for its evaluations, whose weights
    /// the masks hold at zero outside them, and empties it before handing the network back.
    #[module(skip)]
    pub sparse: Patterns,
}

/// What flows through the forward pass.
enum Flow {
    Flat(Tensor<2>),
    /// Flat activations transposed, `[features, batch]`: between two dense layers that both
    /// run as sparse products, which then skip transposing them there and back
    /// (`pruning::sparse::Layout`).
    FlatT(Tensor<2>),
    Image(Tensor<4>),
}

impl Net {
    /// Builds `input → layers… → n_outputs` with initial weights from `seed` (the first
    /// training phase's streams of a run with that seed).
    pub fn new(
        config: &ModelConfig,
        input: impl Into<Shape>,
        n_outputs: usize,
        seed: u64,
        device: &Device,
    ) -> Net {
        Self::for_phase(
            config,
            input.into(),
            n_outputs,
            &Seeds::new(seed),
            Phase::Train,
            device,
        )
    }

    /// Builds the network `phase` of a run starts from (a lottery's reinit control draws its
    /// own), from that phase's `init` and `param ids` streams. `input` is the data's image
    /// shape for a layer list on images, else its feature count; the config was validated
    /// against it.
    pub fn for_phase(
        config: &ModelConfig,
        input: Shape,
        n_outputs: usize,
        seeds: &Seeds,
        phase: Phase,
        device: &Device,
    ) -> Net {
        let mut rng = seeds.rng(phase, Purpose::Init);
        // Parameter ids from the seed too: a resumed run rebuilds the same network with the
        // same ids, which the checkpoint's optimizer state and hook state are keyed by.
        let mut ids = seeds.rng(phase, Purpose::ParamIds);
        let entries = match &config.layers {
            Some(layers) => layers.clone(),
            None => mlp_entries(config.hidden(), config.activation()),
        };
        let mut b = Builder {
            init: config.init,
            rng: &mut rng,
            ids: &mut ids,
            device,
            net: Net {
                features: Vec::new(),
                layers: Vec::new(),
                activation: config.activation(),
                plan: Vec::new(),
                sparse: Patterns::new(),
            },
            shape: input,
        };
        if let Shape::Image(s) = input {
            b.net.plan.push(Op::Image(s));
        }
        for e in &entries {
            b.add(e);
        }
        b.dense(n_outputs);
        // A layer list of dense layers with one nonlinearity is an MLP like `hidden` builds.
        let mut acts = b.net.plan.iter().filter_map(|op| match op {
            Op::Act(a) => Some(*a),
            _ => None,
        });
        if let Some(first) = acts.next()
            && acts.all(|a| a == first)
        {
            b.net.activation = first;
        }
        b.net
    }

    /// Builds an MLP from weights in Burn's layout (`[d_in, d_out]`, row-major).
    pub fn from_weights(
        layers: Vec<(Vec<f32>, [usize; 2], Vec<f32>)>,
        activation: ActivationKind,
        device: &Device,
    ) -> Net {
        let n = layers.len();
        let layers: Vec<Linear> = layers
            .into_iter()
            .map(|(w, shape, b)| {
                let n_out = shape[1];
                Linear {
                    weight: Param::from_tensor(Tensor::from_data(
                        TensorData::new(w, shape),
                        device,
                    )),
                    bias: Some(Param::from_tensor(Tensor::from_data(
                        TensorData::new(b, [n_out]),
                        device,
                    ))),
                }
            })
            .collect();
        let mut plan = Vec::new();
        for i in 0..n {
            plan.push(Op::Dense(i));
            if i + 1 < n {
                plan.push(Op::Act(activation));
            }
        }
        Net {
            features: Vec::new(),
            layers,
            activation,
            plan,
            sparse: Patterns::new(),
        }
    }

    /// Logits (or regression outputs) for a batch `[n, n_inputs]` (images row-major, channel
    /// first). Dropout layers pass values through: this is evaluation's forward pass.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.run(x, None, &self.sparse)
    }

    /// [`Net::forward`] as a training step runs it: dropout layers zero values, each layer from
    /// its own stream of `key` (the loop derives one key per step from the run's seed, so a
    /// resumed run draws the same masks). Without dropout layers it is `forward`.
    pub fn forward_train(&self, x: Tensor<2>, key: u64) -> Tensor<2> {
        self.run(x, Some(key), &Patterns::new())
    }

    /// A training step's forward pass: dropout from `key` where there is one, and the dense
    /// layers whose weights have a pattern in `sparse` multiplied as sparse products
    /// (`pruning::sparse`; the loop passes the patterns its hooks hold).
    pub fn forward_step(&self, x: Tensor<2>, key: Option<u64>, sparse: &Patterns) -> Tensor<2> {
        self.run(x, key, sparse)
    }

    /// The dense layers `forward_step` runs as sparse products with `sparse`, by index.
    pub fn sparse_layers<'a>(&'a self, sparse: &'a Patterns) -> impl Iterator<Item = usize> + 'a {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| sparse.contains_key(&l.weight.id))
            .map(|(i, _)| i)
    }

    /// `sparse` less the patterns of weights that are not a dense layer's (which `forward_step`
    /// would not use): what a step tells hooks it multiplied sparsely.
    pub fn layer_patterns(&self, mut sparse: Patterns) -> Patterns {
        sparse.retain(|id, _| self.layers.iter().any(|l| l.weight.id == *id));
        sparse
    }

    /// The path of `layers[i]`'s weight, as reports name it.
    pub fn dense_weight_path(i: usize) -> String {
        format!("layers.{i}.weight")
    }

    /// `layers[i]` (the plan's op `at`) on `x` (`[features, batch]` where `transposed`), as a
    /// sparse product where `sparse` has its weight's pattern; its output is left transposed
    /// where the next layer takes it so ([`Self::feeds_sparse`]).
    fn dense(
        &self,
        at: usize,
        i: usize,
        x: Tensor<2>,
        transposed: bool,
        sparse: &Patterns,
    ) -> Flow {
        let l = &self.layers[i];
        match sparse.get(&l.weight.id) {
            Some(p) => {
                let layout = pruning::sparse::Layout {
                    input_transposed: transposed,
                    output_transposed: self.feeds_sparse(at, sparse)
                        && pruning::sparse::host_backend(&x.device()),
                };
                let b = l.bias.as_ref().map(|b| b.val());
                let y = pruning::sparse::linear(x, l.weight.val(), b, p, layout);
                match layout.output_transposed {
                    true => Flow::FlatT(y),
                    false => Flow::Flat(y),
                }
            }
            None => Flow::Flat(l.forward(if transposed { x.transpose() } else { x })),
        }
    }

    /// Whether the output of the plan's op `at` reaches a dense layer that runs as a sparse
    /// product through nonlinearities alone (element-wise: the layout of their input does not
    /// matter to them), so it may stay transposed until then.
    fn feeds_sparse(&self, at: usize, sparse: &Patterns) -> bool {
        let next = self.plan[at + 1..]
            .iter()
            .find(|op| !matches!(op, Op::Act(_)));
        matches!(next, Some(Op::Dense(j)) if sparse.contains_key(&self.layers[*j].weight.id))
    }

    /// Whether a training step draws dropout masks.
    pub fn has_dropout(&self) -> bool {
        self.plan
            .iter()
            .any(|op| matches!(op, Op::Dropout(p) if *p > 0.0))
    }

    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "the plan is built with the shapes checked: images reach image ops, vectors dense ones"
    )]
    fn run(&self, x: Tensor<2>, key: Option<u64>, sparse: &Patterns) -> Tensor<2> {
        let mut h = Flow::Flat(x);
        for (at, op) in self.plan.iter().enumerate() {
            h = match (op, h) {
                (Op::Image([c, hh, w]), Flow::Flat(x)) => {
                    let n = x.dims()[0];
                    Flow::Image(x.reshape([n, *c, *hh, *w]))
                }
                (Op::Conv(i), Flow::Image(x)) => Flow::Image(self.features[*i].conv.forward(x)),
                (Op::Norm(i), Flow::Image(x)) => Flow::Image(
                    self.features[*i]
                        .norm
                        .as_ref()
                        .expect("a Norm op has its norm")
                        .forward(x),
                ),
                (Op::MaxPool { kernel, stride }, Flow::Image(x)) => Flow::Image(
                    MaxPool2dConfig::new([*kernel; 2])
                        .with_strides([*stride; 2])
                        .init()
                        .forward(x),
                ),
                (Op::AvgPool { kernel, stride }, Flow::Image(x)) => Flow::Image(
                    AvgPool2dConfig::new([*kernel; 2])
                        .with_strides([*stride; 2])
                        .init()
                        .forward(x),
                ),
                (Op::Flatten, Flow::Image(x)) => Flow::Flat(x.flatten(1, 3)),
                (Op::Dense(i), Flow::Flat(x)) => self.dense(at, *i, x, false, sparse),
                (Op::Dense(i), Flow::FlatT(x)) => self.dense(at, *i, x, true, sparse),
                (Op::Act(a), Flow::Flat(x)) => Flow::Flat(apply(*a, x)),
                (Op::Act(a), Flow::FlatT(x)) => Flow::FlatT(apply(*a, x)),
                (Op::Act(a), Flow::Image(x)) => Flow::Image(apply(*a, x)),
                (Op::Dropout(p), h) => match key {
                    Some(key) if *p > 0.0 => {
                        let stream = Rng::derive(key, &format!("dropout {at}"));
                        match h {
                            Flow::Flat(x) => Flow::Flat(dropout(x, *p, stream)),
                            // Not made (`feeds_sparse` stops at dropout), but the masks are
                            // drawn for `[batch, features]`.
                            Flow::FlatT(x) => Flow::Flat(dropout(x.transpose(), *p, stream)),
                            Flow::Image(x) => Flow::Image(dropout(x, *p, stream)),
                        }
                    }
                    _ => h,
                },
                (op, _) => unreachable!("{op:?} got the wrong kind of input"),
            };
        }
        match h {
            Flow::Flat(x) => x,
            // Not made (nothing follows the output layer), but the caller expects
            // `[batch, outputs]`.
            Flow::FlatT(x) => x.transpose(),
            Flow::Image(_) => unreachable!("the plan ends with the dense output layer"),
        }
    }

    /// Whether it is an MLP: dense layers with the one nonlinearity between them (what host
    /// inference, CSR and compaction handle).
    pub fn is_mlp(&self) -> bool {
        let n = self.layers.len();
        self.features.is_empty()
            && self.plan.len() == 2 * n - 1
            && self.plan.iter().enumerate().all(|(i, op)| {
                if i % 2 == 0 {
                    *op == Op::Dense(i / 2)
                } else {
                    *op == Op::Act(self.activation)
                }
            })
    }

    /// Every layer with weights, in forward order, with what its reports need.
    pub fn geometry(&self) -> Vec<LayerGeom> {
        let mut out = Vec::new();
        for op in &self.plan {
            match *op {
                Op::Conv(i) => {
                    let c = &self.features[i].conv;
                    let [o, ci, kh, kw] = c.weight.dims();
                    out.push(LayerGeom {
                        weight: format!("features.{i}.conv.weight"),
                        units: o,
                        in_channels: ci,
                        fan_in: ci * kh * kw,
                        positions: self.conv_positions(i),
                        padding: pad(&c.padding),
                        norm: self.features[i].norm.is_some(),
                    });
                }
                Op::Dense(i) => {
                    let [n_in, n_out] = self.layers[i].weight.dims();
                    out.push(LayerGeom {
                        weight: Self::dense_weight_path(i),
                        units: n_out,
                        in_channels: n_in,
                        fan_in: n_in,
                        positions: 1,
                        padding: 0,
                        norm: false,
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// Output positions (H·W) of `features[i].conv`, from the plan's shapes.
    fn conv_positions(&self, i: usize) -> usize {
        let mut shape = [0usize; 3];
        for op in &self.plan {
            match *op {
                Op::Image(s) => shape = s,
                Op::Conv(j) => {
                    let c = &self.features[j].conv;
                    let [o, _, k, _] = c.weight.dims();
                    let (s, p) = (c.stride[0], pad(&c.padding));
                    shape = [
                        o,
                        (shape[1] + 2 * p - k) / s + 1,
                        (shape[2] + 2 * p - k) / s + 1,
                    ];
                    if j == i {
                        return shape[1] * shape[2];
                    }
                }
                Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                    shape = [
                        shape[0],
                        (shape[1] - kernel) / stride + 1,
                        (shape[2] - kernel) / stride + 1,
                    ];
                }
                _ => {}
            }
        }
        0
    }

    /// Widths, input first: `[784, 300, 100, 10]`; for a convolutional network input
    /// channels, then each layer's channels or units (LeNet-5: `[1, 6, 16, 120, 84, 10]`).
    pub fn widths(&self) -> Vec<usize> {
        let g = self.geometry();
        let mut w = vec![g.first().map_or(0, |l| l.in_channels)];
        w.extend(g.iter().map(|l| l.units));
        w
    }

    /// Sum of |w| over every layer's weights (convolutions and dense; not biases or norms):
    /// the L1 penalty's base.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    pub fn weight_l1(&self) -> Tensor<1> {
        self.features
            .iter()
            .map(|f| f.conv.weight.val().abs().sum())
            .chain(self.layers.iter().map(|l| l.weight.val().abs().sum()))
            .reduce(|a, b| a + b)
            .expect("a network has at least one layer")
    }
}

/// One layer with weights, as reports see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerGeom {
    /// The weight's path.
    pub weight: String,
    /// Output units (channels).
    pub units: usize,
    /// Input channels (a dense layer's inputs).
    pub in_channels: usize,
    /// Weights per unit: in·kh·kw.
    pub fan_in: usize,
    /// Positions each weight is applied at per sample: the output's H·W (1 for dense).
    pub positions: usize,
    /// Zeros added on every side (convolutions).
    pub padding: usize,
    /// Whether a batch norm follows (γ, β trained; mean and variance kept per unit too). Every
    /// layer has a bias.
    pub norm: bool,
}

/// A symmetric explicit padding's size (the only kind the builder makes).
fn pad(p: &PaddingConfig2d) -> usize {
    match p {
        PaddingConfig2d::Explicit(t, ..) => *t,
        _ => 0,
    }
}

impl Net {
    /// Sum of |γ| over every batch norm: Network Slimming's sparsity penalty (`train.l1_gamma`),
    /// which drives unneeded channels' scales to zero. `None` without batch norms.
    pub fn gamma_l1(&self) -> Option<Tensor<1>> {
        self.features
            .iter()
            .filter_map(|f| f.norm.as_ref())
            .map(|n| n.gamma.val().abs().sum())
            .reduce(|a, b| a + b)
    }
}

/// `x` with each value zeroed with probability `prob` and the rest scaled by 1/(1 − prob), as
/// PyTorch's and Burn's dropout. The mask is drawn on the host from `rng` (Burn's dropout draws
/// from the backend's process-wide generator, which no checkpoint can restore and parallel
/// tests share), so a seed gives the same mask on every backend.
fn dropout<const D: usize>(x: Tensor<D>, prob: f32, mut rng: Rng) -> Tensor<D> {
    let dims = x.dims();
    let keep = 1.0 - f64::from(prob);
    let scale = 1.0 / (1.0 - prob);
    let mask: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| if rng.next_f64() < keep { scale } else { 0.0 })
        .collect();
    let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}

fn apply<const D: usize>(a: ActivationKind, x: Tensor<D>) -> Tensor<D> {
    match a {
        ActivationKind::Sigmoid => activation::sigmoid(x),
        ActivationKind::Relu => activation::relu(x),
        ActivationKind::Tanh => activation::tanh(x),
    }
}

/// The MLP shorthand as a layer list: a dense layer and the nonlinearity per hidden width.
fn mlp_entries(hidden: &[usize], a: ActivationKind) -> Vec<LayerEntry> {
    let kind = match a {
        ActivationKind::Sigmoid => LayerKind::Sigmoid,
        ActivationKind::Relu => LayerKind::Relu,
        ActivationKind::Tanh => LayerKind::Tanh,
    };
    hidden
        .iter()
        .flat_map(|&h| {
            [
                LayerEntry {
                    units: Some(h),
                    ..LayerEntry::of(LayerKind::Dense)
                },
                LayerEntry::of(kind),
            ]
        })
        .collect()
}

/// Builds a network entry by entry, drawing weights in order.
struct Builder<'a> {
    init: InitKind,
    rng: &'a mut Rng,
    ids: &'a mut Rng,
    device: &'a Device,
    net: Net,
    shape: Shape,
}

impl Builder<'_> {
    fn add(&mut self, e: &LayerEntry) {
        let op = match e.kind {
            LayerKind::Conv2d => {
                let Shape::Image([c, h, w]) = self.shape else {
                    return;
                };
                let (out, k) = (e.channels.unwrap_or(1), e.kernel.unwrap_or(1));
                let (s, p) = (e.stride_or_default(), e.padding.unwrap_or(0));
                let conv = init_conv(
                    [c, out],
                    k,
                    s,
                    p,
                    self.init,
                    self.rng,
                    self.ids,
                    self.device,
                );
                self.net.features.push(ConvStage { conv, norm: None });
                self.shape = Shape::Image([out, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1]);
                Op::Conv(self.net.features.len() - 1)
            }
            LayerKind::BatchNorm => {
                let i = self.net.features.len() - 1;
                let stage = &mut self.net.features[i];
                let channels = stage.conv.weight.dims()[0];
                let ids = [(); 4].map(|_| ParamId::from(self.ids.next_u64()));
                stage.norm = Some(BatchNorm::new(channels, ids, self.device));
                Op::Norm(i)
            }
            LayerKind::MaxPool | LayerKind::AvgPool => {
                let (k, s) = (e.kernel.unwrap_or(1), e.stride_or_default());
                if let Shape::Image([c, h, w]) = self.shape {
                    self.shape = Shape::Image([c, (h - k) / s + 1, (w - k) / s + 1]);
                }
                if e.kind == LayerKind::MaxPool {
                    Op::MaxPool {
                        kernel: k,
                        stride: s,
                    }
                } else {
                    Op::AvgPool {
                        kernel: k,
                        stride: s,
                    }
                }
            }
            LayerKind::Flatten => {
                if let Shape::Image([c, h, w]) = self.shape {
                    self.shape = Shape::Flat(c * h * w);
                }
                Op::Flatten
            }
            LayerKind::Dense => {
                self.dense(e.units.unwrap_or(1));
                return;
            }
            LayerKind::Relu => Op::Act(ActivationKind::Relu),
            LayerKind::Sigmoid => Op::Act(ActivationKind::Sigmoid),
            LayerKind::Tanh => Op::Act(ActivationKind::Tanh),
            LayerKind::Dropout => Op::Dropout(e.prob.unwrap_or(0.0) as f32),
        };
        self.net.plan.push(op);
    }

    fn dense(&mut self, units: usize) {
        let n_in = match self.shape {
            Shape::Flat(n) => n,
            Shape::Image([c, h, w]) => c * h * w,
        };
        let l = init_linear(n_in, units, self.init, self.rng, self.ids, self.device);
        self.net.layers.push(l);
        self.net.plan.push(Op::Dense(self.net.layers.len() - 1));
        self.shape = Shape::Flat(units);
    }
}

/// How initial weights are drawn, from the fans.
enum Draw {
    Uniform(f64),
    Normal(f64),
}

/// The weight distribution and bias bound of `kind` for a layer with these fans (PyTorch's
/// formulas; a convolution's fans count its kernel).
fn draw_of(kind: InitKind, fan_in: f64, fan_sum: f64) -> (Draw, Option<f64>) {
    let gain_relu = 2f64.sqrt();
    match kind {
        InitKind::BurnDefault => (
            Draw::Uniform(1.0 / fan_in.sqrt()),
            Some(1.0 / fan_in.sqrt()),
        ),
        InitKind::GlorotUniform => (Draw::Uniform((6.0 / fan_sum).sqrt()), None),
        InitKind::GlorotNormal => (Draw::Normal((2.0 / fan_sum).sqrt()), None),
        InitKind::KaimingUniform => (Draw::Uniform(gain_relu * (3.0 / fan_in).sqrt()), None),
        InitKind::KaimingNormal => (Draw::Normal(gain_relu / fan_in.sqrt()), None),
    }
}

/// `n` weights and `n_bias` biases drawn from `rng`, weights first.
fn draw(
    (d, bias_bound): (Draw, Option<f64>),
    n: usize,
    n_bias: usize,
    rng: &mut Rng,
) -> (Vec<f32>, Vec<f32>) {
    let w: Vec<f32> = (0..n)
        .map(|_| match d {
            Draw::Uniform(a) => rng.uniform(-a, a) as f32,
            Draw::Normal(s) => (s * rng.normal()) as f32,
        })
        .collect();
    let b: Vec<f32> = (0..n_bias)
        .map(|_| bias_bound.map_or(0.0, |a| rng.uniform(-a, a) as f32))
        .collect();
    (w, b)
}

/// A parameter with an id from `ids`.
fn param<const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    ids: &mut Rng,
    device: &Device,
) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), device));
    p.id = ParamId::from(ids.next_u64());
    p
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every argument a layer setting"
)]
fn init_conv(
    [c_in, c_out]: [usize; 2],
    k: usize,
    stride: usize,
    padding: usize,
    kind: InitKind,
    rng: &mut Rng,
    ids: &mut Rng,
    device: &Device,
) -> Conv2d {
    let fan_in = (c_in * k * k) as f64;
    let fan_sum = ((c_in + c_out) * k * k) as f64;
    let (w, b) = draw(
        draw_of(kind, fan_in, fan_sum),
        c_out * c_in * k * k,
        c_out,
        rng,
    );
    Conv2d {
        weight: param(w, [c_out, c_in, k, k], ids, device),
        bias: Some(param(b, [c_out], ids, device)),
        stride: [stride; 2],
        kernel_size: [k; 2],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(padding, padding, padding, padding),
    }
}

fn init_linear(
    n_in: usize,
    n_out: usize,
    kind: InitKind,
    rng: &mut Rng,
    ids: &mut Rng,
    device: &Device,
) -> Linear {
    let fan_in = n_in as f64;
    let fan_sum = (n_in + n_out) as f64;
    let (w, b) = draw(draw_of(kind, fan_in, fan_sum), n_in * n_out, n_out, rng);
    Linear {
        weight: param(w, [n_in, n_out], ids, device),
        bias: Some(param(b, [n_out], ids, device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_zeroes_its_share_and_scales_the_rest() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let x = Tensor::<2>::ones([100, 100], &device);
        let y = dropout(x, 0.3, Rng::new(7))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let zeros = y.iter().filter(|v| **v == 0.0).count();
        assert!((2800..3200).contains(&zeros), "{zeros} of 10000 zeroed");
        let scale = 1.0 / 0.7f32;
        assert!(y.iter().all(|v| *v == 0.0 || *v == scale));
    }

    /// Bits of a tensor's values, in logical order.
    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
        let v: Vec<f32> = t.into_data().try_into_vec().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn sparse_layers_in_a_row_pass_transposed_activations_and_keep_every_bit() {
        use burn::optim::GradientsParams;
        use pruning::sparse::Pattern;
        let hosts = pruning::sparse::host_devices();
        for (device, act) in hosts.iter().flat_map(|d| {
            [
                ActivationKind::Relu,
                ActivationKind::Sigmoid,
                ActivationKind::Tanh,
            ]
            .map(|a| (d, a))
        }) {
            let device = device.clone().autodiff();
            let cfg = crate::config::ModelConfig {
                hidden: Some(vec![40, 24]),
                activation: Some(act),
                ..crate::config::ModelConfig::default()
            };
            let net = Net::new(&cfg, 30, 5, 4, &device);
            let mut rng = Rng::new(11);
            let mut patterns = Patterns::new();
            for l in &net.layers {
                let [rows, cols] = l.weight.dims();
                let mask = pruning::Mask {
                    shape: vec![rows, cols],
                    keep: (0..rows * cols).map(|_| rng.next_f64() < 0.15).collect(),
                };
                let p = Pattern::from_mask("w", &mask).unwrap();
                patterns.insert(l.weight.id, std::sync::Arc::new(p));
            }
            // The hidden layers' outputs stay transposed; the output layer's does not.
            let at = |i: usize| net.plan.iter().position(|op| *op == Op::Dense(i)).unwrap();
            assert!(net.feeds_sparse(at(0), &patterns) && net.feeds_sparse(at(1), &patterns));
            assert!(!net.feeds_sparse(at(2), &patterns));
            let x: Vec<f32> = (0..150 * 30).map(|_| rng.normal() as f32).collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [150, 30]), &device);
            let r: Vec<f32> = (0..150 * 5).map(|_| rng.normal() as f32).collect();
            let r = Tensor::<2>::from_data(TensorData::new(r, [150, 5]), &device);
            let loss = (net.forward_step(x.clone(), None, &patterns) * r.clone()).sum();
            let got = GradientsParams::from_grads(loss.clone().backward(), &net);
            // Layer by layer as before the layouts: `[batch, features]` activations
            // throughout, the product, then Burn's addition of the bias.
            let mut h = x;
            for (i, l) in net.layers.iter().enumerate() {
                let p = &patterns[&l.weight.id];
                h = pruning::sparse::matmul(h, l.weight.val(), p);
                if let Some(b) = &l.bias {
                    h = h + b.val().unsqueeze();
                }
                if i + 1 < net.layers.len() {
                    h = apply(act, h);
                }
            }
            let want_loss = (h * r).sum();
            let want = GradientsParams::from_grads(want_loss.clone().backward(), &net);
            assert_eq!(bits(loss), bits(want_loss), "{device:?} {act:?}");
            for l in &net.layers {
                let (id, b) = (l.weight.id, l.bias.as_ref().unwrap().id);
                let w = (got.get::<2>(id).unwrap(), want.get::<2>(id).unwrap());
                assert!(
                    bits(w.0) == bits(w.1),
                    "{device:?} {act:?}: a weight's gradient"
                );
                let b = (got.get::<1>(b).unwrap(), want.get::<1>(b).unwrap());
                assert!(
                    bits(b.0) == bits(b.1),
                    "{device:?} {act:?}: a bias's gradient"
                );
            }
        }
    }
}
