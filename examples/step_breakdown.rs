//! Where the time of one training step goes: 784-300-100-10, batch 128, ReLU, Adam, on the
//! ndarray backend (`BACKEND=flex`: Flex). Times each phase separately (both CPU backends run
//! synchronously, so wall time per phase is that phase's cost) and prints medians over 200
//! steps.
//!
//!     cargo run -p trainer --release --example step_breakdown

use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
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

/// The process set up as the trainer's `main` and `train()` set theirs: subnormals flushed
/// (`NO_FTZ=1` shows their cost; the pool's threads flush them as well, so it also keeps this
/// thread outside the pool), freed memory kept, the thread in rayon's pool
/// (`LOPPER_POOL_APART=1` measures the old arrangement); `main` then keeps the pool's workers
/// polling as training does (`LOPPER_POOL_SLEEP=1` lets them sleep).
fn set_up_process() -> Option<trainer::denormals::FlushDenormals> {
    let no_ftz = std::env::var_os("NO_FTZ").is_some();
    let flush = (!no_ftz).then(trainer::denormals::FlushDenormals::enable);
    trainer::heap::keep_freed_memory();
    if !no_ftz {
        trainer::threads::join_thread_pool_unless_apart();
    }
    flush
}

/// What one step needs: the network and its optimizer, the loss, one batch's data.
struct Step {
    /// Taken out for each optimizer step and put back.
    model: Option<Net>,
    optim: ModuleOptimizer,
    head: Head,
    x: Vec<f32>,
    onehot: Vec<f32>,
    device: Device,
}

impl Step {
    /// 784-300-100-10 on `BACKEND` (`flex`, else ndarray), Adam, a fixed batch of 128.
    fn new() -> Self {
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
        let mut onehot = vec![0f32; 128 * 10];
        for r in 0..128 {
            onehot[r * 10 + r % 10] = 1.0;
        }
        Self {
            model: Some(Net::new(&cfg, 784, 10, 0, &device)),
            optim: build_optimizer(&train),
            head: Head::Multiclass(10),
            x: (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect(),
            onehot,
            device,
        }
    }

    /// One step; the instants between its phases (batch, forward and loss, backward, gradients,
    /// optimizer).
    fn run(&mut self) -> [Instant; 6] {
        let t0 = Instant::now();
        let (xb, tb) = batch(&self.x, &self.onehot, &self.device);
        let t1 = Instant::now();
        let model = self.model.take().expect("put back after every step");
        let loss = self.head.loss(model.forward(xb), tb);
        let t2 = Instant::now();
        let g = loss.backward();
        let t3 = Instant::now();
        let grads = GradientsParams::from_grads(g, &model);
        let t4 = Instant::now();
        self.model = Some(self.optim.step(1e-3, model, grads));
        [t0, t1, t2, t3, t4, Instant::now()]
    }
}

fn main() {
    let _flush = set_up_process();
    let _awake = trainer::threads::KeepAwake::new();
    let mut step = Step::new();
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
        let marks = step.run();
        if it >= 50 {
            for k in 0..5 {
                t[k].push((marks[k + 1] - marks[k]).as_secs_f64() * 1e3);
            }
            t[5].push((marks[5] - marks[0]).as_secs_f64() * 1e3);
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
            step.run();
        }
        println!(
            "steps {:>5}-{:>5}: {:.3} ms/step",
            b * 1000,
            (b + 1) * 1000,
            t0.elapsed().as_secs_f64()
        );
    }
}
