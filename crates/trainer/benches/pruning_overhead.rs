//! What dynamic pruning costs per training step: the step of `train_step.rs` (784-300-100-10,
//! batch 128, ReLU, Adam, ndarray) without pruning, and with a `Pruner` doing its per-step work
//! (gradient masking, re-zeroing weights), then plus a mask update (magnitude scoring, selection)
//! every 100 steps, then plus zeroing the optimizer state of masked weights at every update.
//! Run side by side in one process; the ratios are the overheads. `LOPPER_BENCH_BACKEND=wgpu`
//! (with `--features wgpu`) runs it on a GPU, where a mask update's reading of weights to the host
//! for selection is the cost to watch.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use pruning::importance::Magnitude;
use pruning::schedule::Polynomial;
use pruning::{
    ClearState, Granularity, MaskSet, Plan, Prunable, Pruner, Rule, RunStart, Spec, StepInfo,
    TrainHook,
};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, TrainConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

struct Setup {
    device: Device,
    x: Vec<f32>,
    onehot: Vec<f32>,
}

fn model(device: &Device) -> (Net, ModuleOptimizer) {
    let cfg = ModelConfig {
        hidden: Some(vec![300, 100]),
        activation: Some(ActivationKind::Relu),
        ..ModelConfig::default()
    };
    let train: TrainConfig = toml::from_str("lr = 1e-3").unwrap();
    (Net::new(&cfg, 784, 10, 0, device), build_optimizer(&train))
}

fn pruner(model: &Net, updates: bool, clear_every_update: bool) -> Pruner {
    let params = Prunable::default().select(model).unwrap();
    let masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    if !updates {
        // Per-step work only: 90% random masks held, never updated.
        let mut rng = pruning::Rng::new(1);
        let mut held = masks.clone();
        for m in held.masks.values_mut() {
            for k in &mut m.keep {
                *k = rng.next_f64() >= 0.9;
            }
        }
        return Pruner::new(
            params,
            held,
            Box::new(Magnitude),
            Spec::new(Granularity::Weight, Rule::Sparsity(0.9)),
            Plan::Hold,
            0,
        )
        .unwrap();
    }
    // Updates every 100 steps, ramping to 90% over 20,000 steps: every update does real work.
    let schedule = Polynomial {
        initial: 0.0,
        target: 0.9,
        begin: 0,
        end: 20_000,
        power: 3.0,
        frequency: 100,
    };
    Pruner::new(
        params,
        masks,
        Box::new(Magnitude),
        Spec::new(Granularity::Weight, Rule::Sparsity(0.9)),
        Plan::Prune(Box::new(schedule)),
        0,
    )
    .unwrap()
    .with_clear_state(if clear_every_update {
        ClearState::EveryUpdate
    } else {
        ClearState::OnGrowth
    })
}

/// The backend `LOPPER_BENCH_BACKEND` names (ndarray by default) and the fixed batch on it.
fn setup() -> (BackendKind, Setup) {
    let backend: BackendKind =
        std::env::var("LOPPER_BENCH_BACKEND").map_or(BackendKind::Ndarray, |b| {
            b.parse()
                .unwrap_or_else(|e| panic!("LOPPER_BENCH_BACKEND: {e}"))
        });
    let device: Device = make_device(backend)
        .unwrap_or_else(|e| panic!("{e}"))
        .autodiff();
    let mut onehot = vec![0f32; 128 * 10];
    for r in 0..128 {
        onehot[r * 10 + r % 10] = 1.0;
    }
    let s = Setup {
        x: (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect(),
        onehot,
        device,
    };
    (backend, s)
}

/// The benchmark's name for a case: (with pruning, mask updates, optimizer state cleared).
fn case_name(case: (bool, bool, bool)) -> &'static str {
    match case {
        (false, _, _) => "no_pruning",
        (true, false, _) => "masks_held_no_updates",
        (true, true, false) => "gradual_magnitude_update_every_100",
        (true, true, true) => "gradual_update_every_100_optimizer_state_zeroed",
    }
}

fn bench(c: &mut Criterion) {
    let _flush = trainer::denormals::FlushDenormals::enable();
    trainer::heap::keep_freed_memory();
    // As the trainer's `main` does; LOPPER_POOL_APART=1 measures the old arrangement.
    trainer::threads::join_thread_pool_unless_apart();
    // As training holds it (LOPPER_POOL_SLEEP=1 measures sleeping workers).
    let _awake = trainer::threads::KeepAwake::new();
    let (backend, s) = setup();
    let head = Head::Multiclass(10);
    let mut group = c.benchmark_group(format!("pruning_overhead_784-300-100-10_b128/{backend}"));
    for (with_pruning, updates, clear) in [
        (false, false, false),
        (true, false, false),
        (true, true, false),
        (true, true, true),
    ] {
        let (m, optim) = model(&s.device);
        // In Options so each step can move them, as the training loop does.
        let mut optim = Some(optim);
        let mut pruner = pruner(&m, updates, clear);
        let info0 = RunStart {
            n_epochs: 1,
            n_batches: 1,
        };
        let mut model = Some(if with_pruning {
            pruner.on_run_start(m, &info0).unwrap()
        } else {
            m
        });
        let mut step = 0usize;
        let name = case_name((with_pruning, updates, clear));
        group.bench_function(name, |b| {
            b.iter(|| {
                let xb =
                    Tensor::<2>::from_data(TensorData::new(s.x.clone(), [128, 784]), &s.device);
                let tb =
                    Tensor::<2>::from_data(TensorData::new(s.onehot.clone(), [128, 10]), &s.device);
                let m = model.take().unwrap();
                let loss = head.loss(m.forward(xb), tb);
                let mut grads = GradientsParams::from_grads(loss.backward(), &m);
                let info = StepInfo {
                    step,
                    epoch: 1,
                    batch_idx: 0,
                    n_batches: 1,
                    lr: 1e-3,
                };
                let mut o = optim.take().unwrap();
                let m = if with_pruning {
                    pruner.after_backward(&m, &mut grads, &info).unwrap();
                    let m = o.step(1e-3, m, grads);
                    let m = pruner.after_step(m, &info).unwrap();
                    o = TrainHook::<Net>::edit_optimizer(&mut pruner, o, &info).unwrap();
                    m
                } else {
                    o.step(1e-3, m, grads)
                };
                optim = Some(o);
                model = Some(m);
                step += 1;
                let _: f32 = loss.into_scalar();
            })
        });
        if with_pruning {
            eprintln!(
                "{name}: {} steps, {} mask updates, sparsity {:.3}",
                step,
                pruner.events().len(),
                pruner.weight_sparsity()
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
