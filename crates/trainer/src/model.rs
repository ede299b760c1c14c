//! The dense network (MLP) built from `[model]`, with initial weights drawn on the host from our
//! own seeded generator: the same seed gives the same network on every backend, and tests can
//! seed in parallel (Burn's own seeding is process-global on ndarray).

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData, activation};
use pruning::Rng;

use crate::config::{ActivationKind, InitKind, ModelConfig};
use crate::seeds::{Phase, Purpose, Seeds};

/// A stack of `Linear` layers with one nonlinearity between them. The last layer outputs logits
/// (or the regression value); the head turns them into predictions and losses.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers followed by the output layer. Standard Burn `Linear`s, so the pruning crate
    /// sees them as it would in any other model.
    pub layers: Vec<Linear>,
    /// The hidden nonlinearity.
    #[module(skip)]
    pub activation: ActivationKind,
}

impl Mlp {
    /// Builds `n_inputs → hidden… → n_outputs` with initial weights from `seed` (the first
    /// training phase's streams of a run with that seed).
    pub fn new(
        config: &ModelConfig,
        n_inputs: usize,
        n_outputs: usize,
        seed: u64,
        device: &Device,
    ) -> Mlp {
        Self::for_phase(
            config,
            n_inputs,
            n_outputs,
            &Seeds::new(seed),
            Phase::Train,
            device,
        )
    }

    /// Builds the network `phase` of a run starts from (a lottery's reinit control draws its
    /// own), from that phase's `init` and `param ids` streams.
    pub fn for_phase(
        config: &ModelConfig,
        n_inputs: usize,
        n_outputs: usize,
        seeds: &Seeds,
        phase: Phase,
        device: &Device,
    ) -> Mlp {
        let mut rng = seeds.rng(phase, Purpose::Init);
        // Parameter ids from the seed too: a resumed run rebuilds the same network with the
        // same ids, which the checkpoint's optimizer state and hook state are keyed by.
        let mut ids = seeds.rng(phase, Purpose::ParamIds);
        let mut widths = vec![n_inputs];
        widths.extend_from_slice(&config.hidden);
        widths.push(n_outputs);
        let layers = widths
            .windows(2)
            .map(|w| init_linear(w[0], w[1], config.init, &mut rng, &mut ids, device))
            .collect();
        Mlp {
            layers,
            activation: config.activation,
        }
    }

    /// Builds a network from weights in Burn's layout (`[d_in, d_out]`, row-major).
    pub fn from_weights(
        layers: Vec<(Vec<f32>, [usize; 2], Vec<f32>)>,
        activation: ActivationKind,
        device: &Device,
    ) -> Mlp {
        let layers = layers
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
        Mlp { layers, activation }
    }

    /// Logits (or regression outputs) for a batch `[n, n_inputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
                h = match self.activation {
                    ActivationKind::Sigmoid => activation::sigmoid(h),
                    ActivationKind::Relu => activation::relu(h),
                    ActivationKind::Tanh => activation::tanh(h),
                };
            }
        }
        h
    }

    /// Layer widths, input first: `[784, 300, 100, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].weight.shape()[0]];
        w.extend(self.layers.iter().map(|l| l.weight.shape()[1]));
        w
    }

    /// Sum of |w| over every layer's weights (not biases): the L1 penalty's base.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    pub fn weight_l1(&self) -> Tensor<1> {
        self.layers
            .iter()
            .map(|l| l.weight.val().abs().sum())
            .reduce(|a, b| a + b)
            .expect("an MLP has at least one layer")
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
    let gain_relu = 2f64.sqrt();
    enum Draw {
        Uniform(f64),
        Normal(f64),
    }
    let (draw, bias_bound) = match kind {
        InitKind::BurnDefault => (
            Draw::Uniform(1.0 / fan_in.sqrt()),
            Some(1.0 / fan_in.sqrt()),
        ),
        InitKind::GlorotUniform => (Draw::Uniform((6.0 / fan_sum).sqrt()), None),
        InitKind::GlorotNormal => (Draw::Normal((2.0 / fan_sum).sqrt()), None),
        InitKind::KaimingUniform => (Draw::Uniform(gain_relu * (3.0 / fan_in).sqrt()), None),
        InitKind::KaimingNormal => (Draw::Normal(gain_relu / fan_in.sqrt()), None),
    };
    let w: Vec<f32> = (0..n_in * n_out)
        .map(|_| match draw {
            Draw::Uniform(a) => rng.uniform(-a, a) as f32,
            Draw::Normal(s) => (s * rng.normal()) as f32,
        })
        .collect();
    let b: Vec<f32> = (0..n_out)
        .map(|_| bias_bound.map_or(0.0, |a| rng.uniform(-a, a) as f32))
        .collect();
    let mut weight =
        Param::from_tensor(Tensor::from_data(TensorData::new(w, [n_in, n_out]), device));
    weight.id = ParamId::from(ids.next_u64());
    let mut bias = Param::from_tensor(Tensor::from_data(TensorData::new(b, [n_out]), device));
    bias.id = ParamId::from(ids.next_u64());
    Linear {
        weight,
        bias: Some(bias),
    }
}
