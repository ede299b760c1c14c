//! Where the time of one training step goes: 784-300-100-10, batch 128, ReLU, Adam, on the
//! ndarray backend (`BACKEND=flex`: Flex). Times each phase separately (both CPU backends run
//! synchronously, so wall time per phase is that phase's cost) and prints medians over 200
//! steps. `SPARSITY=0.9` holds random masks of that sparsity on the weights, as a pruned run
//! does, and multiplies sparsely where the held mask allows (`pruning::sparse`: a layer keeping
//! at most `MAX_DENSITY`, a quarter, of its weights; below 75 % the step is the masked dense
//! one); the hook's two passes are then phases of their own. `NO_UPDATE` (any value) leaves
//! out the optimizer's update and the hook's weight pass (the weights then stay as they are, so
//! this is not training): what a step whose update cost nothing would take, the bound on what
//! an optimizer that knows the held pattern could gain.
//!
//!     BACKEND=flex SPARSITY=0.9 cargo run -p trainer --release --example step_breakdown

use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use pruning::sparse::Patterns;
use pruning::{MaskHook, TrainHook};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, TrainConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

// The masks and step information of the sparse step's benchmark.
#[path = "../crates/trainer/benches/common/mod.rs"]
mod common;

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

/// What one step needs: the network and its optimizer, the loss, one batch's data, and the
/// masks held under `SPARSITY`.
struct Step {
    /// Taken out for each optimizer step and put back.
    model: Option<Net>,
    optim: ModuleOptimizer,
    head: Head,
    x: Vec<f32>,
    onehot: Vec<f32>,
    device: Device,
    /// The held masks and the patterns the step multiplies sparsely, under `SPARSITY`.
    held: Option<(MaskHook, Patterns)>,
    /// `NO_UPDATE`: the optimizer and the held masks' weight pass left out.
    no_update: bool,
}

/// `SPARSITY` (unset or empty: none); a value outside [0, 1) ends the process with a message.
fn sparsity_from_env() -> Option<f64> {
    let s = std::env::var("SPARSITY").ok().filter(|s| !s.is_empty())?;
    match s.parse::<f64>() {
        Ok(f) if (0.0..1.0).contains(&f) => Some(f),
        _ => {
            eprintln!("SPARSITY={s}: give the fraction of weights pruned, in [0, 1), e.g. 0.9");
            std::process::exit(2);
        }
    }
}

/// Random masks of `sparsity` on `net`'s weights (those of `benches/sparse_step.rs`), held as
/// a run holds them: the hook (with the net it has zeroed) and the patterns it lets the step
/// multiply sparsely.
fn hold(net: Net, sparsity: f64) -> (Net, MaskHook, Patterns) {
    let (params, masks) = common::random_masks(&net, Some(sparsity));
    let mut hook = MaskHook::new(&params, &masks).expect("masks of the net's shapes");
    let patterns = TrainHook::<Net>::sparse_patterns(&hook)
        .cloned()
        .unwrap_or_default();
    (hook.apply(net), hook, patterns)
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
        let net = Net::new(&cfg, 784, 10, 0, &device);
        let (net, held) = match sparsity_from_env() {
            Some(s) => {
                let (net, hook, patterns) = hold(net, s);
                println!("{} of 3 layers multiplied sparsely", patterns.len());
                (net, Some((hook, patterns)))
            }
            None => (net, None),
        };
        Self {
            model: Some(net),
            held,
            no_update: std::env::var_os("NO_UPDATE").is_some(),
            optim: build_optimizer(&train),
            head: Head::Multiclass(10),
            x: (0..128 * 784).map(|k| (k % 251) as f32 / 251.0).collect(),
            onehot,
            device,
        }
    }

    /// One step; the instants between its phases (batch, forward and loss, backward, gradients,
    /// the held masks' gradient pass, optimizer, the held masks' weight pass).
    fn run(&mut self) -> [Instant; PHASES + 1] {
        let info = common::STEP;
        let t0 = Instant::now();
        let (xb, tb) = batch(&self.x, &self.onehot, &self.device);
        let t1 = Instant::now();
        let model = self.model.take().expect("put back after every step");
        let none = Patterns::new();
        let patterns = self.held.as_ref().map_or(&none, |h| &h.1);
        let loss = self.head.loss(model.forward_step(xb, None, patterns), tb);
        let t2 = Instant::now();
        let g = loss.backward();
        let t3 = Instant::now();
        let mut grads = GradientsParams::from_grads(g, &model);
        let t4 = Instant::now();
        if let Some((hook, patterns)) = &mut self.held {
            TrainHook::<Net>::ran_sparse(hook, patterns);
            TrainHook::<Net>::after_backward(hook, &model, &mut grads, &info).expect("held");
        }
        let t5 = Instant::now();
        let mut model = if self.no_update {
            // Freed inside the phase, as the optimizer frees them.
            drop(grads);
            model
        } else {
            self.optim.step(1e-3, model, grads)
        };
        let t6 = Instant::now();
        if let Some((hook, _)) = self.held.as_mut().filter(|_| !self.no_update) {
            model = TrainHook::<Net>::after_step(hook, model, &info).expect("held");
        }
        self.model = Some(model);
        [t0, t1, t2, t3, t4, t5, t6, Instant::now()]
    }
}

/// The phases `Step::run` times.
const PHASES: usize = 7;

fn main() {
    let _flush = set_up_process();
    let _awake = trainer::threads::KeepAwake::new();
    let mut step = Step::new();
    let names: [&str; PHASES + 1] = [
        "batch",
        "forward+loss",
        "backward",
        "grads",
        "mask grads",
        "optimizer",
        "mask weights",
        "total",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for it in 0..250 {
        let marks = step.run();
        if it >= 50 {
            for k in 0..PHASES {
                t[k].push((marks[k + 1] - marks[k]).as_secs_f64() * 1e3);
            }
            t[PHASES].push((marks[PHASES] - marks[0]).as_secs_f64() * 1e3);
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
