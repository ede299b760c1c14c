//! The pruning crate without the trainer: a hand-written Burn training loop with a `Pruner`
//! hooked in at the four points of a step. Any module works; here a two-layer network learns
//! a noisy two-class problem while gradual magnitude pruning removes half of its hidden units,
//! each with its bias and its outgoing weights.
//!
//! Which parameters prune with a unit is discovered from the module's structure, visited in
//! field order. This module declares its output layer first, so its forward order differs from
//! its field order: it declares its layers instead (`Structure::declared`), as any module whose
//! forward pass does not follow its fields (skip connections, shared layers) does.
//!
//! Run: `cargo run -p pruning --release --example prune_in_your_loop`

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use pruning::importance::Magnitude;
use pruning::schedule::Polynomial;
use pruning::{
    Granularity, LayerNode, MaskSet, Plan, Prunable, Pruner, Rng, Rule, RunStart, Spec, StepInfo,
    Structure, TrainHook, UnitSide, param_infos,
};

/// Fields not in forward order: `out` is visited before `hidden`.
#[derive(Module, Debug)]
struct Net {
    out: Linear,
    hidden: Linear,
}

impl Net {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out
            .forward(burn::tensor::activation::relu(self.hidden.forward(x)))
    }
}

/// Points in 2-D labelled by which side of a circle they fall on, with 10% label noise.
fn data(n: usize, seed: u64, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, b) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
        let inside = a * a + b * b < 0.5;
        let flip = rng.next_f64() < 0.1;
        x.extend([a as f32, b as f32]);
        y.push(i64::from(inside ^ flip));
    }
    (
        Tensor::from_data(TensorData::new(x, [n, 2]), device),
        Tensor::from_data(TensorData::new(y, [n]), device),
    )
}

fn accuracy(net: &Net, x: Tensor<2>, y: Tensor<1, Int>) -> f64 {
    let n = y.dims()[0];
    let hits: i64 = net
        .forward(x)
        .argmax(1)
        .flatten::<1>(0, 1)
        .equal(y)
        .int()
        .sum()
        .into_scalar();
    hits as f64 / n as f64
}

/// The layers in forward order, each with what prunes with its units (Burn's Linear holds
/// [in, out]: units on axis 1). The output layer's units are the network's outputs.
fn declared() -> Structure {
    let node = |weight: &str, bias: &str| LayerNode {
        weight: weight.into(),
        unit_axis: 1,
        unit_params: vec![bias.into()],
        unit_state: vec![],
    };
    Structure::declared(vec![
        node("hidden.weight", "hidden.bias"),
        node("out.weight", "out.bias"),
    ])
}

/// A pruner that removes half of `net`'s hidden units by the L1 norm of their incoming
/// weights, gradually from step 200 to step 800, every 50 steps.
fn half_the_hidden_units(net: &Net) -> Result<Pruner, pruning::PruneError> {
    let structure = declared();
    // What to prune: every Linear weight, plus the biases that go with hidden units.
    let weights = Prunable::default().select(net)?;
    let names: Vec<&str> = weights.iter().map(|p| p.path.as_str()).collect();
    let coupled = structure.coupled_params(&names);
    let params: Vec<_> = param_infos(net)
        .into_iter()
        .filter(|p| names.contains(&p.path.as_str()) || coupled.contains(&p.path))
        .collect();
    let masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let schedule = Polynomial {
        initial: 0.0,
        target: 0.5,
        begin: 200,
        end: 800,
        power: 3.0,
        frequency: 50,
    };
    let mut spec = Spec::new(Granularity::Neuron(UnitSide::Incoming), Rule::Sparsity(0.5));
    spec.structure = Some(structure);
    Pruner::new(
        params,
        masks,
        Box::new(Magnitude),
        spec,
        Plan::Prune(Box::new(schedule)),
        0,
    )
}

fn main() -> Result<(), pruning::HookError> {
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    device.seed(0);
    let mut net = Net {
        out: LinearConfig::new(64, 2).init(&device),
        hidden: LinearConfig::new(2, 64).init(&device),
    };
    let (x, y) = data(2000, 1, &device);
    let (x_test, y_test) = data(1000, 2, &device);
    let (batch, epochs) = (100, 60);
    let n_batches = 2000 / batch;

    let mut pruner = half_the_hidden_units(&net)?;

    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let start = RunStart {
        n_epochs: epochs,
        n_batches,
    };
    net = pruner.on_run_start(net, &start)?;
    let mut step = 0;
    for epoch in 1..=epochs {
        for b in 0..n_batches {
            let xb = x.clone().narrow(0, b * batch, batch);
            let yb = y.clone().narrow(0, b * batch, batch);
            let loss = burn::nn::loss::CrossEntropyLossConfig::new()
                .init(&device)
                .forward(net.forward(xb), yb);
            let mut grads = GradientsParams::from_grads(loss.backward(), &net);
            let info = StepInfo {
                step,
                epoch,
                batch_idx: b,
                n_batches,
                lr: 1e-2,
            };
            // 1. Gradient statistics and masking, before the optimizer sees the gradients.
            pruner.after_backward(&net, &mut grads, &info)?;
            net = optim.step(1e-2, net, grads);
            // 2. Masked weights back to exactly zero; masks updated when the schedule says so.
            net = pruner.after_step(net, &info)?;
            // 3. Optimizer state of newly pruned weights cleared.
            optim = TrainHook::<Net>::edit_optimizer(&mut pruner, optim, &info)?;
            step += 1;
        }
        if epoch % 10 == 0 {
            println!(
                "epoch {epoch:>2}: sparsity {:>5.1}%, test accuracy {:.1}%",
                100.0 * pruner.weight_sparsity(),
                100.0 * accuracy(&net.valid(), x_test.clone().inner(), y_test.clone().inner())
            );
        }
    }
    for e in pruner.events() {
        println!(
            "mask update after step {:>3}: target {:.3}, reached {:.3}",
            e.step, e.target, e.sparsity
        );
    }
    let bias = &pruner.masks().masks["hidden.bias"];
    println!("hidden units kept: {} of {}", bias.kept(), bias.len());
    Ok(())
}
