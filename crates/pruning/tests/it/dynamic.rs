//! The pruner in a hand-written loop on a module that is not the trainer's MLP: masked weights
//! stay exactly zero after every optimizer step, optimizer state of pruned weights is cleared,
//! schedules are followed to the weight, drop-and-grow keeps each layer's sparsity, and rewinding
//! restores initial values.

use std::collections::BTreeMap;

use burn::module::{Module, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use pruning::grad_accum::GradAccumulator;
use pruning::importance::{GradNeeds, GradStats, Importance, Magnitude, Taylor};
use pruning::schedule::{Polynomial, Schedule};
use pruning::select::prune_count;
use pruning::{
    Granularity, Growth, MaskSet, ParamInfo, Plan, Prunable, Pruner, Rewiring, Rng, Rule, RunStart,
    Snapshot, Spec, StepInfo, TrainHook, read_params,
};

#[derive(Module, Debug)]
struct Net {
    a: Linear,
    b: Linear,
}

impl Net {
    fn new(device: &Device) -> Self {
        Self {
            a: LinearConfig::new(12, 16).init(device),
            b: LinearConfig::new(16, 4).init(device),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.b.forward(self.a.forward(x).tanh())
    }
}

fn device() -> Device {
    #[allow(deprecated)]
    Device::ndarray().autodiff()
}

/// A fixed regression batch: y = sin of a random projection of x.
fn batch(device: &Device, seed: u64) -> (Tensor<2>, Tensor<2>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..32 * 12)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let y: Vec<f32> = (0..32 * 4).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    (
        Tensor::from_data(TensorData::new(x, [32, 12]), device),
        Tensor::from_data(TensorData::new(y, [32, 4]), device),
    )
}

fn grads_of(net: &Net, device: &Device, step: usize) -> GradientsParams {
    let (x, y) = batch(device, step as u64);
    let loss = (net.forward(x) - y).powi_scalar(2).mean();
    GradientsParams::from_grads(loss.backward(), net)
}

fn weights(net: &Net) -> Vec<ParamInfo> {
    Prunable::default().select(net).unwrap()
}

fn ones(params: &[ParamInfo]) -> MaskSet {
    MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())))
}

/// A pruner over `params` from dense masks, pruning single weights. The spec's rule does not
/// matter: a schedule sets the target at each update, drop-and-grow keeps its own sparsity.
fn new_pruner(
    params: &[ParamInfo],
    criterion: Box<dyn Importance>,
    plan: Plan,
    seed: u64,
) -> Pruner {
    Pruner::new(
        params.to_vec(),
        ones(params),
        criterion,
        Spec::new(Granularity::Weight, Rule::Sparsity(0.0)),
        plan,
        seed,
    )
    .unwrap()
}

/// Every masked entry of every masked parameter is exactly +0.0 or −0.0.
fn assert_masked_zero(net: &Net, pruner: &Pruner, when: &str) {
    let ids: Vec<ParamId> = pruner.params().iter().map(|p| p.id).collect();
    let values = read_params(net, &ids);
    for p in pruner.params() {
        let m = &pruner.masks().masks[&p.path];
        for (i, (&v, &k)) in values[&p.id].iter().zip(&m.keep).enumerate() {
            assert!(k || v == 0.0, "{when}: {}[{i}] = {v} is masked", p.path);
        }
    }
}

/// The loop a user writes: forward, backward, hooks, optimizer step, hooks.
fn run(
    mut net: Net,
    pruner: &mut Pruner,
    mut optim: ModuleOptimizer,
    steps: usize,
    device: &Device,
    mut check: impl FnMut(&Net, &Pruner, usize),
) -> (Net, ModuleOptimizer) {
    net = pruner
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
        TrainHook::<Net>::after_backward(pruner, &net, &mut grads, &info).unwrap();
        net = optim.step(0.01, net, grads);
        net = pruner.after_step(net, &info).unwrap();
        optim = TrainHook::<Net>::edit_optimizer(pruner, optim, &info).unwrap();
        check(&net, pruner, step + 1);
    }
    (net, optim)
}

/// Drop-and-grow every 5 steps until `end`.
fn rewire(growth: Growth, drop_fraction: f64, end: usize, sparsity: f64) -> Plan {
    Plan::Rewire {
        rewiring: Rewiring {
            growth,
            drop_fraction,
            every: 5,
            end,
        },
        sparsity,
    }
}

fn gradual() -> Polynomial {
    Polynomial {
        initial: 0.0,
        target: 0.8,
        begin: 5,
        end: 25,
        power: 3.0,
        frequency: 5,
    }
}

#[test]
fn gradual_pruning_follows_the_schedule_and_masked_weights_stay_zero_with_every_optimizer() {
    let device = device();
    let optimizers: Vec<(&str, ModuleOptimizer)> = vec![
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
        (
            "sgd nesterov",
            SgdConfig::new()
                .with_momentum(Some(MomentumConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: true,
                }))
                .init(),
        ),
    ];
    for (name, optim) in optimizers {
        let net = Net::new(&device);
        let params = weights(&net);
        let mut pruner = new_pruner(
            &params,
            Box::new(Magnitude),
            Plan::Prune(Box::new(gradual())),
            0,
        );
        let (net, _) = run(net, &mut pruner, optim, 40, &device, |net, pruner, step| {
            assert_masked_zero(net, pruner, &format!("{name}, after step {step}"));
        });
        // Updates at 5, 10, …, 25, each to the schedule's target, per layer, to the weight.
        let steps: Vec<usize> = pruner.events().iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![5, 10, 15, 20, 25], "{name}");
        for e in pruner.events() {
            assert_eq!(e.target, gradual().sparsity(e.step));
            for (layer, s) in &e.layers {
                let n = params.iter().find(|p| &p.path == layer).unwrap().numel();
                let expected = prune_count(e.target, n) as f64 / n as f64;
                assert!(
                    (s - expected).abs() < 1e-12,
                    "{name} step {}: {layer} {s}",
                    e.step
                );
            }
        }
        assert!((pruner.weight_sparsity() - 0.8).abs() < 0.01);
        assert_masked_zero(&net, &pruner, name);
    }
}

#[test]
fn optimizer_state_of_pruned_weights_is_cleared_so_they_cannot_move() {
    // Train densely with Adam, prune once at step 10, then keep masking gradients but stop
    // re-zeroing weights: a masked weight moves only if its moments survived the pruning.
    let device = device();
    for clear_state in [true, false] {
        let net = Net::new(&device);
        let params = weights(&net);
        let mut pruner = new_pruner(
            &params,
            Box::new(Magnitude),
            Plan::Prune(Box::new(pruning::schedule::OneShot {
                step: 10,
                sparsity: 0.5,
            })),
            0,
        )
        .with_clear_state(pruning::ClearState::EveryUpdate);
        let mut optim: ModuleOptimizer = AdamConfig::new().init();
        let mut net = pruner
            .on_run_start(
                net,
                &RunStart {
                    n_epochs: 1,
                    n_batches: 20,
                },
            )
            .unwrap();
        let mut moved = 0usize;
        for step in 0..20 {
            let info = StepInfo {
                step,
                epoch: 1,
                batch_idx: step,
                n_batches: 20,
                lr: 0.01,
            };
            let mut grads = grads_of(&net, &device, step);
            TrainHook::<Net>::after_backward(&mut pruner, &net, &mut grads, &info).unwrap();
            net = optim.step(0.01, net, grads);
            if step < 10 {
                net = pruner.after_step(net, &info).unwrap();
                if clear_state {
                    optim = TrainHook::<Net>::edit_optimizer(&mut pruner, optim, &info).unwrap();
                }
            } else {
                // No re-zeroing from here on: count masked weights that moved.
                let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
                let values = read_params(&net, &ids);
                moved = params
                    .iter()
                    .map(|p| {
                        let m = &pruner.masks().masks[&p.path];
                        values[&p.id]
                            .iter()
                            .zip(&m.keep)
                            .filter(|(v, k)| !**k && **v != 0.0)
                            .count()
                    })
                    .sum();
            }
        }
        assert_eq!(pruner.events().len(), 1);
        if clear_state {
            assert_eq!(
                moved, 0,
                "pruned weights moved although their moments were zeroed"
            );
        } else {
            assert!(
                moved > 0,
                "control: stale moments should move pruned weights"
            );
        }
    }
}

#[test]
fn rigl_and_set_keep_each_layers_sparsity_and_grow_from_zero() {
    let device = device();
    for growth in [Growth::Gradient, Growth::Random] {
        let net = Net::new(&device);
        let params = weights(&net);
        let mut pruner = new_pruner(
            &params,
            Box::new(Magnitude),
            rewire(growth, 0.3, 30, 0.75),
            7,
        );
        let kept: BTreeMap<String, usize> = pruner
            .masks()
            .masks
            .iter()
            .map(|(n, m)| (n.clone(), m.kept()))
            .collect();
        for p in &params {
            assert_eq!(kept[&p.path], p.numel() - prune_count(0.75, p.numel()));
        }
        let mut last = pruner.masks().clone();
        let mut events_seen = 0;
        run(
            net,
            &mut pruner,
            AdamConfig::new().init(),
            40,
            &device,
            |net, pruner, step| {
                assert_masked_zero(net, pruner, &format!("{growth:?} after step {step}"));
                let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
                let values = read_params(net, &ids);
                if pruner.events().len() > events_seen {
                    events_seen = pruner.events().len();
                    // Grown weights (newly kept) start at exactly zero.
                    for p in &params {
                        let (old, new) = (&last.masks[&p.path], &pruner.masks().masks[&p.path]);
                        assert_eq!(new.kept(), kept[&p.path], "{growth:?}: sparsity changed");
                        let grown = (new.keep.iter().zip(&old.keep)).map(|(n, o)| *n && !*o);
                        for (v, g) in values[&p.id].iter().zip(grown) {
                            assert!(!g || *v == 0.0, "{growth:?}: grown weight {v} is not zero");
                        }
                    }
                    last = pruner.masks().clone();
                }
            },
        );
        let steps: Vec<usize> = pruner.events().iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![5, 10, 15, 20, 25], "{growth:?}");
        assert!(
            pruner.events()[0].changed > 0,
            "{growth:?}: nothing rewired"
        );
        // The cosine decay: fewer changes at the last update than at the first.
        assert!(pruner.events()[4].changed < pruner.events()[0].changed);
    }
}

#[test]
fn weights_grown_back_start_with_fresh_optimizer_state() {
    // SET from random masks, updates at steps 5 and 10. Weights active at the start, dropped at
    // step 5 and grown back at step 10 carry Adam moments from their active steps unless the
    // pruner cleared them; one more step with all-zero gradients shows which: a weight with
    // zero moments and zero gradient does not move.
    let device = device();
    let net = Net::new(&device);
    let params = weights(&net);
    let mut pruner = new_pruner(
        &params,
        Box::new(Magnitude),
        rewire(Growth::Random, 0.5, 100, 0.5),
        3,
    );
    let mut history = vec![pruner.masks().clone()];
    let (net, mut optim) = run(
        net,
        &mut pruner,
        AdamConfig::new().init(),
        10,
        &device,
        |_, p, _| {
            if p.events().len() >= history.len() {
                history.push(p.masks().clone());
            }
        },
    );
    assert_eq!(history.len(), 3);
    let mut grads = grads_of(&net, &device, 99);
    for p in &params {
        let g = grads.remove::<2>(p.id).unwrap();
        grads.register(p.id, g.mul_scalar(0.0));
    }
    let before = read_params(&net, &params.iter().map(|p| p.id).collect::<Vec<_>>());
    let net = optim.step(0.01, net, grads);
    let after = read_params(&net, &params.iter().map(|p| p.id).collect::<Vec<_>>());
    let (mut regrown, mut moved_active) = (0, 0);
    for p in &params {
        let [k0, k1, k2] = [0, 1, 2].map(|i| &history[i].masks[&p.path].keep);
        for i in 0..k2.len() {
            if k0[i] && !k1[i] && k2[i] {
                regrown += 1;
                assert_eq!(
                    after[&p.id][i], 0.0,
                    "{}[{i}] regrown with stale moments",
                    p.path
                );
            }
            if k0[i] && k1[i] && k2[i] && after[&p.id][i] != before[&p.id][i] {
                moved_active += 1;
            }
        }
    }
    assert!(
        regrown > 0,
        "no weight was dropped and grown back; the test shows nothing"
    );
    assert!(
        moved_active > 0,
        "momentum should move weights active throughout"
    );
}

#[test]
fn gradient_statistics_accumulated_on_the_device_equal_the_host_formulas() {
    let device = device();
    let net = Net::new(&device);
    let params = weights(&net);
    let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
    let needs = GradNeeds {
        g: true,
        g2: true,
        abs_wg: true,
        wg: true,
    };
    let mut acc = GradAccumulator::new(ids.iter().map(|&id| (id, 2)).collect(), needs);
    let mut host: BTreeMap<ParamId, GradStats> = BTreeMap::new();
    let w = read_params(&net, &ids);
    for step in 0..3 {
        let grads = grads_of(&net, &device, step);
        acc.add(&net, &grads);
        for id in &ids {
            let g: Vec<f32> = grads
                .get::<2>(*id)
                .unwrap()
                .into_data()
                .try_to_vec()
                .unwrap();
            host.entry(*id).or_default().add(&w[id], &g);
        }
    }
    assert_eq!(acc.len(), 3);
    let dev = acc.take();
    assert!(acc.is_empty());
    for id in &ids {
        let (a, b) = (&dev[id], &host[id]);
        assert_eq!(a.n_batches, b.n_batches);
        for (x, y) in [
            (&a.sum_g, &b.sum_g),
            (&a.sum_g2, &b.sum_g2),
            (&a.sum_abs_wg, &b.sum_abs_wg),
            (&a.sum_wg, &b.sum_wg),
        ] {
            assert_eq!(x.len(), y.len());
            for (u, v) in x.iter().zip(y) {
                assert!((u - v).abs() <= 1e-6 * (1.0 + v.abs()), "{u} vs {v}");
            }
        }
    }
    // Only what a criterion needs is accumulated: Taylor reads Σ|w·g| alone.
    let mut taylor =
        GradAccumulator::new(ids.iter().map(|&id| (id, 2)).collect(), Taylor.grad_needs());
    taylor.add(&net, &grads_of(&net, &device, 0));
    let t = taylor.take();
    assert!(t[&ids[0]].sum_g.is_empty() && !t[&ids[0]].sum_abs_wg.is_empty());
}

#[test]
fn taylor_pruning_during_training_uses_the_steps_since_the_last_update() {
    let device = device();
    let net = Net::new(&device);
    let params = weights(&net);
    let mut pruner = new_pruner(
        &params,
        Box::new(Taylor),
        Plan::Prune(Box::new(gradual())),
        0,
    );
    run(
        net,
        &mut pruner,
        AdamConfig::new().init(),
        30,
        &device,
        |net, pruner, step| {
            assert_masked_zero(net, pruner, &format!("taylor after step {step}"));
        },
    );
    assert_eq!(pruner.events().len(), 5);
    assert!((pruner.weight_sparsity() - 0.8).abs() < 0.01);

    // A gradient criterion cannot update before any step: a clear error, not a panic.
    let net = Net::new(&device);
    let mut at_zero = new_pruner(
        &params,
        Box::new(Taylor),
        Plan::Prune(Box::new(pruning::schedule::OneShot {
            step: 0,
            sparsity: 0.5,
        })),
        0,
    );
    let e = at_zero
        .on_run_start(
            net,
            &RunStart {
                n_epochs: 1,
                n_batches: 1,
            },
        )
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("taylor") && e.contains("gradients"), "{e}");
}

#[test]
fn rewinding_restores_initial_values_and_keeps_parameter_ids() {
    let device = device();
    let net = Net::new(&device);
    let params = weights(&net);
    let ids: Vec<ParamId> = params.iter().map(|p| p.id).collect();
    let snap = Snapshot::take(&net, 0);
    let before = read_params(&net, &ids);
    let mut pruner = new_pruner(&params, Box::new(Magnitude), Plan::Hold, 0);
    let (trained, _) = run(
        net,
        &mut pruner,
        AdamConfig::new().init(),
        5,
        &device,
        |_, _, _| {},
    );
    assert_ne!(read_params(&trained, &ids), before);
    let rewound = snap.restore(trained);
    assert_eq!(read_params(&rewound, &ids), before);
    // Still trainable: gradients exist for the same ids.
    let grads = grads_of(&rewound, &device, 0);
    assert!(grads.get::<2>(ids[0]).is_some());
}

#[test]
fn steps_between_mask_updates_copy_nothing_between_host_and_device() {
    // Taylor accumulates gradient statistics every step, and the masks are held every step
    // (gradients masked, weights re-zeroed): all of it must stay on the device.
    let device = device();
    for (name, criterion, plan) in [
        (
            "taylor, gradual",
            Box::new(Taylor) as Box<dyn Importance>,
            Plan::Prune(Box::new(gradual())),
        ),
        (
            "rigl",
            Box::new(Magnitude),
            rewire(Growth::Gradient, 0.3, 25, 0.7),
        ),
    ] {
        let net = Net::new(&device);
        let params = weights(&net);
        let mut pruner = new_pruner(&params, criterion, plan, 0);
        let mut last = pruning::transfers();
        let mut copied_at = Vec::new();
        run(
            net,
            &mut pruner,
            AdamConfig::new().init(),
            40,
            &device,
            |_, _, step| {
                let now = pruning::transfers();
                if now != last {
                    copied_at.push(step - 1);
                }
                last = now;
            },
        );
        // An update after `s` completed steps runs in the step of index s − 1 (scores come to the
        // host, masks are selected there); the new masks go to the device once, at their first
        // use in step s (RigL's initial masks at step 0). Nothing else crosses.
        let updates: Vec<usize> = pruner.events().iter().map(|e| e.step).collect();
        assert!(!updates.is_empty(), "{name}: no mask update happened");
        assert!(!copied_at.is_empty(), "{name}: the counters saw nothing");
        for i in &copied_at {
            assert!(
                *i == 0 || updates.iter().any(|&s| *i + 1 == s || *i == s),
                "{name}: step {i} copied between host and device, updates after {updates:?}"
            );
        }
        assert!(
            copied_at.len() <= 2 * updates.len() + 1,
            "{name}: {copied_at:?}"
        );
    }
}
