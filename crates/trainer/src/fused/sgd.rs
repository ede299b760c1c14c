//! SGD (momentum, Nesterov, coupled weight decay) in one pass per parameter: Burn's `Sgd`
//! is up to five element-wise tensor operations (decay, two for the velocity, Nesterov's look
//! ahead, the step), here one loop over the host copy with the same arithmetic.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::{MomentumConfig, MomentumState};
use burn::optim::{LearningRate, Optimizer, RecordState, Sgd, SgdConfig, SgdState, StateSink};
use burn::tensor::{Device, Tensor};

use super::HostStep;

/// SGD as PyTorch's `SGD(momentum, nesterov, weight_decay)` with no dampening, Burn's `Sgd` on
/// a GPU.
#[derive(Clone)]
pub struct FusedSgd {
    /// `None`: plain SGD, no velocity kept.
    momentum: Option<f32>,
    nesterov: bool,
    weight_decay: Option<f32>,
    /// Burn's own, for tensors on a GPU.
    burn: Sgd,
}

impl FusedSgd {
    /// SGD with this momentum (0: none), Nesterov's variant or not, and weight decay (0: none).
    pub fn new(momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        let momentum = (momentum > 0.0).then_some(momentum);
        let weight_decay = (weight_decay > 0.0).then_some(weight_decay);
        let burn = SgdConfig::new()
            .with_momentum(momentum.map(|momentum| MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov,
            }))
            .with_weight_decay(weight_decay.map(|d| WeightDecayConfig::new(d as f32)))
            .build();
        Self {
            // Burn converts both to the element type before multiplying.
            momentum: momentum.map(|m| m as f32),
            nesterov,
            weight_decay: weight_decay.map(|d| d as f32),
            burn,
        }
    }
}

/// The velocity a `MomentumState` holds (Burn keeps the field private; its record is public).
fn velocity<const D: usize>(state: &MomentumState<D>) -> Vec<f32> {
    let mut sink = StateSink::default();
    state.state_flatten("", &mut sink);
    let (_, data) = sink.tensors.swap_remove(0);
    #[allow(
        clippy::expect_used,
        reason = "a velocity is the parameter's f32 tensor on every backend Lopper builds"
    )]
    data.try_into_vec::<f32>().expect("an f32 velocity")
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdState<D>;

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
        let lr = lr as f32;
        let previous = state.and_then(|s| s.momentum);
        let mut v = match (self.momentum, &previous) {
            (Some(_), Some(m)) => Some((velocity(m), true)),
            // Burn's first velocity is the gradient itself.
            (Some(_), None) => Some((vec![0.0; w.len()], false)),
            // Without momentum Burn passes a velocity it was given through untouched.
            (None, _) => None,
        };
        let m = self.momentum.unwrap_or(0.0);
        for (i, (w, &g)) in w.iter_mut().zip(g).enumerate() {
            let g = match self.weight_decay {
                Some(p) => *w * p + g,
                None => g,
            };
            let step = match &mut v {
                Some((v, carried)) => {
                    // Burn: grad · (1 − dampening) + velocity · momentum, with dampening 0.
                    v[i] = if *carried { g + v[i] * m } else { g };
                    if self.nesterov { v[i] * m + g } else { v[i] }
                }
                None => g,
            };
            *w -= step * lr;
        }
        let momentum = match v {
            Some((v, _)) => Some(MomentumState::new(p.tensor(v))),
            None => previous,
        };
        (p.into_parameter(), Some(SgdState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Sgd as Optimizer>::to_device(state, device)
    }
}
