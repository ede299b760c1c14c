//! One training step (forward + backward + Adam) at batch 128 on each CPU backend in this
//! build: 784-300-100-10 ReLU (the figure the backend choice in docs/performance.md rests on)
//! and LeNet-5 on 1×28×28 images (`pytorch_lenet5_step.py` is PyTorch's twin).

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, Preset, Shape, TrainConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

fn step_bench(c: &mut Criterion, backend: BackendKind, lenet: bool, burn_adam: bool) {
    let Ok(device) = make_device(backend) else {
        eprintln!("skipping {backend}: not in this build (cargo xtask bench enables it)");
        return;
    };
    let device: Device = device.autodiff();
    let (cfg, input, name) = if lenet {
        let cfg = ModelConfig {
            hidden: None,
            activation: None,
            preset: Some(Preset::Lenet5),
            layers: Some(Preset::Lenet5.layers()),
            ..ModelConfig::default()
        };
        (cfg, Shape::Image([1, 28, 28]), "lenet5")
    } else {
        let cfg = ModelConfig {
            hidden: Some(vec![300, 100]),
            activation: Some(ActivationKind::Relu),
            ..ModelConfig::default()
        };
        (cfg, Shape::Flat(784), "784-300-100-10")
    };
    let train: TrainConfig = toml::from_str("lr = 1e-3").unwrap();
    // In an Option so each iteration can move the model into the optimizer, as the training
    // loop does: a second live reference to the parameters would defeat in-place updates.
    let mut model = Some(Net::new(&cfg, input, 10, 0, &device));
    // The trainer's optimizer (Adam fused into one pass per parameter on the CPU), or Burn's
    // own Adam: the fused update's gain.
    let (mut optim, variant) = if burn_adam {
        (
            burn::optim::AdamConfig::new().with_epsilon(1e-8).init(),
            "-burn-adam",
        )
    } else {
        (build_optimizer(&train), "")
    };
    let head = Head::Multiclass(10);
    let x: Vec<f32> = (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect();
    let mut onehot = vec![0f32; 128 * 10];
    for r in 0..128 {
        onehot[r * 10 + r % 10] = 1.0;
    }
    c.bench_function(&format!("train_step_{name}_b128/{backend}{variant}"), |b| {
        b.iter(|| {
            // Batch construction is part of a real step, so it is timed too.
            let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [128, 784]), &device);
            let tb = Tensor::<2>::from_data(TensorData::new(onehot.clone(), [128, 10]), &device);
            let m = model.take().expect("the model is put back every iteration");
            let loss = head.loss(m.forward(xb), tb);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(1e-3, m, grads));
            // Reading the loss forces the step to finish.
            let _: f32 = loss.into_scalar();
        })
    });
}

fn benches(c: &mut Criterion) {
    // As `train()` does: without it, subnormal Adam moments slow steps ~3× after ~1000 steps.
    let _flush = trainer::denormals::FlushDenormals::enable();
    // As the trainer's `main` does: the step's buffers stay in the heap between steps.
    trainer::heap::keep_freed_memory();
    // As the trainer's `main` does; LOPPER_POOL_APART=1 measures the old arrangement.
    trainer::threads::join_thread_pool_unless_apart();
    // As training holds it (LOPPER_POOL_SLEEP=1 measures sleeping workers).
    let _awake = trainer::threads::KeepAwake::new();
    for lenet in [false, true] {
        step_bench(c, BackendKind::Ndarray, lenet, false);
        step_bench(c, BackendKind::Flex, lenet, false);
    }
    step_bench(c, BackendKind::Ndarray, false, true);
    step_bench(c, BackendKind::Flex, false, true);
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
