//! Optimizer updates in one pass per parameter on the CPU backends.
//!
//! Burn's optimizers are chains of element-wise tensor operations, each reading and writing the
//! whole tensor (about ten for Adam, up to five for SGD with momentum and weight decay). Here the
//! parameter, its gradient and its state come to the host once, one loop updates them, and the
//! results go back. Each loop does Burn's arithmetic operation for operation, in the same order
//! and precision, so the numbers are identical, not merely close (the tests below compare bit
//! for bit over hundreds of steps), and the state is Burn's own state type, so checkpoints,
//! `pruning::zero_masked_state` and mask re-zeroing see what they saw before. On wgpu the round
//! trip would cost more than it saves, and Burn's optimizer runs instead (`optim.rs`).

mod adam;
mod sgd;

pub use adam::FusedAdam;
pub use sgd::FusedSgd;

use burn::tensor::{Device, Shape, Tensor, TensorData};

/// A tensor's values on the host.
#[allow(
    clippy::expect_used,
    reason = "parameters, gradients and optimizer state are f32 on every backend Lopper builds"
)]
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("f32 parameters and optimizer state")
}

/// A parameter and its gradient on the host for one fused update, and the way back to the
/// parameter's device.
struct HostStep<const D: usize> {
    shape: Shape,
    device: Device,
    /// The parameter's values, updated in place by the optimizer's loop.
    w: Vec<f32>,
    /// Its gradient, read where it lies: a gradient the backward pass just made is Flex's
    /// 16-byte-aligned buffer, which a `Vec<f32>` cannot take over without a copy (a megabyte
    /// per step for the first layer of 784-300-100-10).
    g: TensorData,
}

impl<const D: usize> HostStep<D> {
    /// Whether `tensor` lives in host memory, so a fused update pays; where it does not, the
    /// optimizer hands the step to Burn's own.
    fn applies(tensor: &Tensor<D>) -> bool {
        pruning::sparse::host_backend(&tensor.device())
    }

    /// The host copies of a parameter and its gradient.
    fn take(tensor: Tensor<D>, grad: Tensor<D>) -> Self {
        Self {
            shape: tensor.shape(),
            device: tensor.device(),
            w: host(tensor),
            g: grad.into_data().convert::<f32>(),
        }
    }

    /// The parameter and its gradient, to update the one from the other.
    #[allow(clippy::expect_used, reason = "`take` converted the gradient to f32")]
    fn parts(&mut self) -> (&mut [f32], &[f32]) {
        let g = self.g.as_slice::<f32>().expect("an f32 gradient");
        (&mut self.w, g)
    }

    /// The updated parameter, back on its device.
    fn into_parameter(self) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.w, self.shape), &self.device)
    }

    /// `values` (optimizer state) as a tensor of the parameter's shape on its device.
    fn tensor(&self, values: Vec<f32>) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, self.shape.clone()), &self.device)
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
    use burn::tensor::{Tensor, TensorData};
    use pruning::{Rng, param_infos, read_params};

    use super::*;
    use crate::config::{ActivationKind, ModelConfig};
    use crate::head::Head;
    use crate::model::Net;

    // Both CPU backends: the fused loops run on each.
    use pruning::sparse::host_devices as devices;

    /// `steps` steps of 24-32-16-4 on random batches with `optim` on `device`, from the same
    /// network; the parameters at the end.
    fn train(device: &Device, mut optim: ModuleOptimizer, steps: usize) -> Vec<Vec<f32>> {
        let device = device.clone().autodiff();
        let cfg = ModelConfig {
            hidden: Some(vec![32, 16]),
            activation: Some(ActivationKind::Relu),
            ..ModelConfig::default()
        };
        let mut net = Net::new(&cfg, 24, 4, 7, &device);
        let head = Head::Multiclass(4);
        let mut rng = Rng::new(3);
        for step in 0..steps {
            let x: Vec<f32> = (0..16 * 24).map(|_| rng.normal() as f32).collect();
            let mut t = vec![0f32; 16 * 4];
            for r in 0..16 {
                t[r * 4 + rng.below(4)] = 1.0;
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [16, 24]), &device);
            let t = Tensor::<2>::from_data(TensorData::new(t, [16, 4]), &device);
            let loss = head.loss(net.forward(x), t);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            // A decaying rate, as schedules give.
            net = optim.step(1e-2 / (1.0 + step as f64 / 50.0), net, grads);
        }
        let ids: Vec<_> = param_infos(&net).iter().map(|p| p.id).collect();
        read_params(&net, &ids).into_values().collect()
    }

    /// The largest difference between two trainings' parameters.
    fn worst(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
            .fold(0f32, f32::max)
    }

    #[test]
    fn fused_adam_gives_burns_numbers_over_many_steps() {
        for (device, decay) in devices().iter().flat_map(|d| [(d, 0.0), (d, 1e-2)]) {
            let burn = AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-8)
                .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay)))
                .init();
            let fused = ModuleOptimizer::from(FusedAdam::new(0.9, 0.999, 1e-8, decay));
            // The same operations in the same order and precision: identical, not merely within
            // the 1e-6 a reordering would allow (which is what keeps earlier runs' numbers).
            let (a, b) = (train(device, burn, 300), train(device, fused, 300));
            assert_eq!(worst(&a, &b), 0.0, "{device:?}, decay {decay}");
        }
    }

    #[test]
    fn fused_adam_splits_a_large_parameter_over_the_pool_without_changing_a_bit() {
        use burn::optim::Optimizer;
        // Several chunks and a ragged last one, on the parallel path.
        let n = adam::PARALLEL_FROM + adam::CHUNK / 2 + 3;
        for device in devices() {
            let fused = FusedAdam::new(0.9, 0.999, 1e-8, 1e-2);
            let burn = AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-8)
                .with_weight_decay(Some(WeightDecayConfig::new(1e-2)))
                .build();
            let mut rng = Rng::new(5);
            let mut normal = |n: usize| -> Tensor<1> {
                let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
                Tensor::from_data(TensorData::new(v, [n]), &device)
            };
            let w0 = normal(n);
            let (mut a, mut b) = ((w0.clone(), None), (w0.clone(), None));
            // From inside a pool, where the update splits.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            for step in 0..4 {
                let grad = normal(n);
                let lr = 1e-2 / (1.0 + f64::from(step));
                a = pool.install(|| fused.step(lr, a.0, grad.clone(), a.1));
                b = burn.step(lr, b.0, grad, b.1);
            }
            let (a, b, w0) = (host(a.0), host(b.0), host(w0));
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{device:?}"
            );
            assert!(
                a.iter().zip(&w0).all(|(x, y)| x != y),
                "{device:?}: a weight did not move"
            );
        }
    }

    #[test]
    fn fused_sgd_gives_burns_numbers_over_many_steps() {
        for (momentum, nesterov, decay) in [
            (0.0, false, 0.0),
            (0.0, false, 1e-2),
            (0.9, false, 0.0),
            (0.9, false, 5e-4),
            (0.9, true, 1e-3),
        ] {
            for device in devices() {
                let burn = SgdConfig::new()
                    .with_momentum((momentum > 0.0).then_some(MomentumConfig {
                        momentum,
                        dampening: 0.0,
                        nesterov,
                    }))
                    .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay)))
                    .init();
                let fused =
                    ModuleOptimizer::from(FusedSgd::new(momentum, nesterov, f64::from(decay)));
                let (a, b) = (train(&device, burn, 300), train(&device, fused, 300));
                let what =
                    format!("{device:?}: momentum {momentum}, nesterov {nesterov}, decay {decay}");
                assert_eq!(worst(&a, &b), 0.0, "{what}");
                // And training moved the weights (a no-op on both sides would also agree).
                let fresh =
                    ModuleOptimizer::from(FusedSgd::new(momentum, nesterov, f64::from(decay)));
                assert!(
                    worst(&train(&device, fresh, 0), &b) > 1e-3,
                    "{what}: the weights did not move"
                );
            }
        }
    }
}
