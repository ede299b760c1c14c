//! Adam in one pass per parameter (see the module's doc): about ten of Burn's element-wise
//! tensor operations per parameter (weight decay, two moment updates, a square, a square root,
//! bias corrections, the step) in one loop, with Burn's `AdamState`.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::{HostStep, host};

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
            b1,
            b2,
            f1,
            f2,
            combined: bc2_sqrt / (1.0 - b1.powi(time as i32)),
            eps: self.epsilon * bc2_sqrt,
            // Burn multiplies by the rate as the tensor's element type.
            lr: lr as f32,
            decay: self.weight_decay.unwrap_or(0.0),
        };
        update(
            &c,
            time == 1,
            self.weight_decay.is_some(),
            (w, g, &mut m, &mut v),
        );
        let momentum = AdaptiveMomentumState::new(time, p.tensor(m), p.tensor(v));
        (p.into_parameter(), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// What one step multiplies every element by.
struct Coefficients {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    /// √(1 − β₂ᵗ) / (1 − β₁ᵗ): Burn's bias corrections, folded as Burn folds them.
    combined: f32,
    /// ε·√(1 − β₂ᵗ).
    eps: f32,
    lr: f32,
    decay: f32,
}

/// One Adam step over a parameter `w`, its gradient `g` and moments `m`, `v`. The loop has no
/// branch inside (first step and weight decay are constants of each compiled copy) so that it
/// vectorises; it is compiled for AVX-512 and AVX2 as well and picked at run time. Square root,
/// division, product and sum round the same in every vector width, and Rust never fuses a
/// product and a sum, so every width gives the same bits. The loop is bound by memory (a
/// `perf` annotation puts most of it on the stores), so vectors gained little: the optimizer
/// phase of the Flex MLP step went from 0.243–0.249 to 0.230–0.237 ms (`step_breakdown`, three
/// turns each).
fn update(
    c: &Coefficients,
    first: bool,
    decay: bool,
    wgmv: (&mut [f32], &[f32], &mut [f32], &mut [f32]),
) {
    match (first, decay) {
        (true, true) => dispatched::<true, true>(c, wgmv),
        (true, false) => dispatched::<true, false>(c, wgmv),
        (false, true) => dispatched::<false, true>(c, wgmv),
        (false, false) => dispatched::<false, false>(c, wgmv),
    }
}

fn dispatched<const FIRST: bool, const DECAY: bool>(
    c: &Coefficients,
    (w, g, m, v): (&mut [f32], &[f32], &mut [f32], &mut [f32]),
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<const F: bool, const D: bool>(
            c: &Coefficients,
            w: &mut [f32],
            g: &[f32],
            m: &mut [f32],
            v: &mut [f32],
        ) {
            elements::<F, D>(c, w, g, m, v);
        }
        #[target_feature(enable = "avx2")]
        fn avx2<const F: bool, const D: bool>(
            c: &Coefficients,
            w: &mut [f32],
            g: &[f32],
            m: &mut [f32],
            v: &mut [f32],
        ) {
            elements::<F, D>(c, w, g, m, v);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { avx512::<FIRST, DECAY>(c, w, g, m, v) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2::<FIRST, DECAY>(c, w, g, m, v) };
        }
    }
    elements::<FIRST, DECAY>(c, w, g, m, v);
}

/// Burn's Adam, element by element, in Burn's order and precision.
#[inline(always)]
fn elements<const FIRST: bool, const DECAY: bool>(
    c: &Coefficients,
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = w.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let gi = if DECAY { w[i] * c.decay + g[i] } else { g[i] };
        // Burn's first step starts the moments from the gradient alone (no 0·β term).
        if FIRST {
            m[i] = gi * c.f1;
            v[i] = gi * gi * c.f2;
        } else {
            m[i] = m[i] * c.b1 + gi * c.f1;
            v[i] = v[i] * c.b2 + gi * gi * c.f2;
        }
        let update = m[i] * c.combined / (v[i].sqrt() + c.eps);
        w[i] -= update * c.lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched loop (AVX-512 or AVX2 where the CPU has them) gives the bits of the
    /// baseline one, on every branch and at lengths with and without a vector tail.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        let c = Coefficients {
            b1: 0.9,
            b2: 0.999,
            f1: 0.1,
            f2: 1e-3,
            combined: 3.16,
            eps: 1e-8 * 0.0316,
            lr: 1e-3,
            decay: 1e-2,
        };
        let mut rng = pruning::Rng::new(5);
        for n in [1, 15, 16, 17, 100, 1001] {
            let mut draw = |scale: f64| -> Vec<f32> {
                (0..n).map(|_| (rng.normal() * scale) as f32).collect()
            };
            let (w, g, m) = (draw(1.0), draw(1e-2), draw(1e-3));
            let v: Vec<f32> = draw(1e-3).iter().map(|x| x * x).collect();
            for (first, decay) in [(true, true), (true, false), (false, true), (false, false)] {
                let (mut w1, mut m1, mut v1) = (w.clone(), m.clone(), v.clone());
                let (mut w2, mut m2, mut v2) = (w.clone(), m.clone(), v.clone());
                update(&c, first, decay, (&mut w1, &g, &mut m1, &mut v1));
                match (first, decay) {
                    (true, true) => elements::<true, true>(&c, &mut w2, &g, &mut m2, &mut v2),
                    (true, false) => elements::<true, false>(&c, &mut w2, &g, &mut m2, &mut v2),
                    (false, true) => elements::<false, true>(&c, &mut w2, &g, &mut m2, &mut v2),
                    (false, false) => elements::<false, false>(&c, &mut w2, &g, &mut m2, &mut v2),
                }
                let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let what = format!("n {n}, first {first}, decay {decay}");
                assert_eq!(bits(&w1), bits(&w2), "{what}: weights");
                assert_eq!(bits(&m1), bits(&m2), "{what}: first moments");
                assert_eq!(bits(&v1), bits(&v2), "{what}: second moments");
                assert_ne!(bits(&w1), bits(&w), "{what}: the step moved nothing");
            }
        }
    }
}
