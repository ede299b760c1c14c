//! Adam in one pass per parameter (see the module's doc): about ten of Burn's element-wise
//! tensor operations per parameter (weight decay, two moment updates, a square, a square root,
//! bias corrections, the step) in one loop, with Burn's `AdamState`.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use rayon::prelude::*;

use super::{HostStep, host};

/// Parameters with at least this many weights are updated by rayon's pool in chunks of
/// [`CHUNK`]: the update is bound by memory, and each core brings its own cache bandwidth.
/// Below it, waking a worker costs more than it saves.
pub(super) const PARALLEL_FROM: usize = 1 << 16;
/// 16,384 weights: 64 KiB of each of the four arrays a chunk touches.
pub(super) const CHUNK: usize = 1 << 14;

/// One step's constants of Burn's Adam arithmetic.
struct Coefficients {
    /// The first step, whose moments start from the gradient alone.
    first: bool,
    b1: f32,
    b2: f32,
    /// 1 − β₁ and 1 − β₂.
    f1: f32,
    f2: f32,
    /// √(1 − β₂ᵗ) / (1 − β₁ᵗ).
    combined: f32,
    /// ε · √(1 − β₂ᵗ).
    eps: f32,
    lr: f32,
    decay: Option<f32>,
}

impl Coefficients {
    /// Burn's Adam on these weights, gradients and moments, in its order of operations.
    fn update(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let c = self;
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = match c.decay {
                Some(p) => *w * p + g,
                None => g,
            };
            // Burn's first step starts the moments from the gradient alone (no 0·β term).
            if c.first {
                *m = g * c.f1;
                *v = g * g * c.f2;
            } else {
                *m = *m * c.b1 + g * c.f1;
                *v = *v * c.b2 + g * g * c.f2;
            }
            let update = *m * c.combined / (v.sqrt() + c.eps);
            *w -= update * c.lr;
        }
    }
}

/// Adam with coupled weight decay (PyTorch's `Adam(weight_decay=…)`), as Burn's `AdamConfig`
/// without AMSGrad or gradient clipping (which `[train]` does not offer).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    /// Burn's own, for tensors on a GPU.
    burn: Adam,
}

impl FusedAdam {
    /// Adam with these β₁, β₂, ε and weight decay (0: none).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let decay = (weight_decay > 0.0).then_some(weight_decay);
        let burn = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(decay.map(WeightDecayConfig::new))
            .build();
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay: decay,
            burn,
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !HostStep::applies(&tensor) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let mut p = HostStep::take(tensor, grad);
        let (w, g) = p.parts();
        let (b1, b2) = (self.beta_1, self.beta_2);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let (time, mut m, mut v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                host(s.momentum.moment_1),
                host(s.momentum.moment_2),
            ),
            None => (1, vec![0.0; w.len()], vec![0.0; w.len()]),
        };
        let bc2_sqrt = (1.0 - b2.powi(time as i32)).sqrt();
        let c = Coefficients {
            first: time == 1,
            b1,
            b2,
            f1,
            f2,
            combined: bc2_sqrt / (1.0 - b1.powi(time as i32)),
            eps: self.epsilon * bc2_sqrt,
            // Burn multiplies by the rate as the tensor's element type.
            lr: lr as f32,
            decay: self.weight_decay,
        };
        // Only from inside the pool, as the training thread is: its threads all flush
        // subnormals alike (`threads.rs`), where a caller outside it may flush and its workers not.
        if w.len() < PARALLEL_FROM || rayon::current_thread_index().is_none() {
            c.update(w, g, &mut m, &mut v);
        } else {
            // Element by element, so any split gives the same bits.
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((w, g), m), v)| c.update(w, g, m, v));
        }
        let momentum = AdaptiveMomentumState::new(time, p.tensor(m), p.tensor(v));
        (p.into_parameter(), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
