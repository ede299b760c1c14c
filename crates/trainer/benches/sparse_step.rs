//! Sparse training's gain: one training step of 784-300-100-10 ReLU at batch 128 (forward,
//! backward, Adam, and the held masks' per-step work) with random masks at several sparsities,
//! multiplied densely (what PyTorch, tfmot and NNI do) and as sparse products
//! (`pruning::sparse`), beside the unpruned dense step. The sparsity where the sparse step
//! overtakes the masked dense one is `pruning::sparse::MAX_DENSITY`'s measurement.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use pruning::sparse::{Pattern, Patterns};
use pruning::{Mask, MaskHook, TrainHook};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, TrainConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

/// The step at `sparsity` (`None`: unpruned), sparse products or not.
fn step_bench(c: &mut Criterion, backend: BackendKind, sparsity: Option<f64>, sparse: bool) {
    let Ok(device) = make_device(backend) else {
        eprintln!("skipping {backend}: not in this build");
        return;
    };
    let device: Device = device.autodiff();
    let cfg = ModelConfig {
        hidden: Some(vec![300, 100]),
        activation: Some(ActivationKind::Relu),
        ..ModelConfig::default()
    };
    let train: TrainConfig = toml::from_str("lr = 1e-3").unwrap();
    let net = Net::new(&cfg, 784, 10, 0, &device);
    let (params, masks) = common::random_masks(&net, sparsity);
    let mut hold = MaskHook::new(&params, &masks).unwrap();
    let mut patterns = Patterns::new();
    if sparse {
        // The hook's own patterns where it has them (at most MAX_DENSITY kept), as the loop
        // uses them; denser masks get one here, to find the crossover.
        let held = TrainHook::<Net>::sparse_patterns(&hold)
            .cloned()
            .unwrap_or_default();
        for p in params.iter().filter(|p| p.shape.len() == 2) {
            let m: &Mask = &masks.masks[&p.path];
            let own = || Arc::new(Pattern::from_mask(&p.path, m).unwrap());
            patterns.insert(p.id, held.get(&p.id).cloned().unwrap_or_else(own));
        }
    }
    let mut model = Some(hold.apply(net));
    let mut optim = build_optimizer(&train);
    let head = Head::Multiclass(10);
    let x: Vec<f32> = (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect();
    let mut onehot = vec![0f32; 128 * 10];
    for r in 0..128 {
        onehot[r * 10 + r % 10] = 1.0;
    }
    let info = common::STEP;
    let name = match sparsity {
        None => "dense".to_string(),
        Some(s) => format!("{}{}", if sparse { "sparse" } else { "masked" }, s * 100.0),
    };
    c.bench_function(
        &format!("sparse_step_784-300-100-10_b128/{backend}/{name}"),
        |b| {
            b.iter(|| {
                let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [128, 784]), &device);
                let tb =
                    Tensor::<2>::from_data(TensorData::new(onehot.clone(), [128, 10]), &device);
                let m = model.take().expect("the model is put back every iteration");
                let loss = head.loss(m.forward_step(xb, None, &patterns), tb);
                let mut grads = GradientsParams::from_grads(loss.backward(), &m);
                if sparse {
                    TrainHook::<Net>::ran_sparse(&mut hold, &patterns);
                }
                TrainHook::<Net>::after_backward(&mut hold, &m, &mut grads, &info).unwrap();
                let m = optim.step(1e-3, m, grads);
                model = Some(TrainHook::<Net>::after_step(&mut hold, m, &info).unwrap());
                let _: f32 = loss.into_scalar();
            })
        },
    );
}

fn benches(c: &mut Criterion) {
    let _flush = trainer::denormals::FlushDenormals::enable();
    trainer::heap::keep_freed_memory();
    // As the trainer's `main` does; LOPPER_POOL_APART=1 measures the old arrangement.
    trainer::threads::join_thread_pool_unless_apart();
    let _awake = trainer::threads::KeepAwake::new();
    let backends: BTreeMap<&str, BackendKind> = [
        ("flex", BackendKind::Flex),
        ("ndarray", BackendKind::Ndarray),
    ]
    .into();
    let only = std::env::var("LOPPER_BENCH_BACKEND").ok();
    for (name, backend) in backends {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        step_bench(c, backend, None, false);
        for s in [0.5, 0.7, 0.75, 0.8, 0.9, 0.95] {
            step_bench(c, backend, Some(s), false);
            step_bench(c, backend, Some(s), true);
        }
    }
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
