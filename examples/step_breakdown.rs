//! Where the time of one training step goes: 784-300-100-10, batch 128, ReLU, Adam, on the
//! ndarray backend (`BACKEND=flex`: Flex). Times each phase separately (both CPU backends run
//! synchronously, so wall time per phase is that phase's cost) and prints medians over 200
//! steps.
//!
//!     cargo run -p trainer --release --example step_breakdown

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, TrainConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One batch of inputs and one-hot targets on `device`, built as a training step builds it.
fn batch(x: &[f32], onehot: &[f32], device: &Device) -> (Tensor<2>, Tensor<2>) {
    (
        Tensor::from_data(TensorData::new(x.to_vec(), [128, 784]), device),
        Tensor::from_data(TensorData::new(onehot.to_vec(), [128, 10]), device),
    )
}

fn main() {
    // As `train()` does; NO_FTZ=1 shows the cost of subnormals.
    let _flush = std::env::var("NO_FTZ")
        .is_err()
        .then(trainer::denormals::FlushDenormals::enable);
    // BACKEND=flex for Burn's Flex backend.
    trainer::heap::keep_freed_memory();
    // As the trainer's `main` does; LOPPER_POOL_APART=1 measures the old arrangement.
    if std::env::var_os("LOPPER_POOL_APART").is_none() {
        trainer::threads::join_thread_pool();
    }
    let kind = match std::env::var("BACKEND").as_deref() {
        Ok("flex") => BackendKind::Flex,
        _ => BackendKind::Ndarray,
    };
    let device = make_device(kind).expect("a CPU backend").autodiff();
    let cfg = ModelConfig {
        hidden: Some(vec![300, 100]),
        activation: Some(ActivationKind::Relu),
        ..ModelConfig::default()
    };
    let train: TrainConfig = toml::from_str("lr = 1e-3").expect("config");
    let mut model = Net::new(&cfg, 784, 10, 0, &device);
    let mut optim = build_optimizer(&train);
    let head = Head::Multiclass(10);
    let x: Vec<f32> = (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect();
    let mut onehot = vec![0f32; 128 * 10];
    for r in 0..128 {
        onehot[r * 10 + r % 10] = 1.0;
    }
    let names = [
        "batch",
        "forward+loss",
        "backward",
        "grads",
        "optimizer",
        "total",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for it in 0..250 {
        let t0 = Instant::now();
        let (xb, tb) = batch(&x, &onehot, &device);
        let t1 = Instant::now();
        let loss = head.loss(model.forward(xb), tb);
        let t2 = Instant::now();
        let g = loss.backward();
        let t3 = Instant::now();
        let grads = GradientsParams::from_grads(g, &model);
        let t4 = Instant::now();
        model = optim.step(1e-3, model, grads);
        let t5 = Instant::now();
        if it >= 50 {
            let marks = [t0, t1, t2, t3, t4, t5];
            for k in 0..5 {
                t[k].push((marks[k + 1] - marks[k]).as_secs_f64() * 1e3);
            }
            t[5].push((t5 - t0).as_secs_f64() * 1e3);
        }
    }
    for (name, v) in names.iter().zip(t) {
        println!("{name:<14} {:>7.3} ms", median(v));
    }
    // Long runs must not slow down: time blocks of 1000 further steps.
    let blocks: usize = std::env::var("BLOCKS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    for b in 0..blocks {
        let t0 = Instant::now();
        for _ in 0..1000 {
            let (xb, tb) = batch(&x, &onehot, &device);
            let loss = head.loss(model.forward(xb), tb);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        println!(
            "steps {:>5}-{:>5}: {:.3} ms/step",
            b * 1000,
            (b + 1) * 1000,
            t0.elapsed().as_secs_f64()
        );
    }
}
