//! The wgpu backend against the CPU backend. Built whenever the trainer has its `wgpu` feature:
//! `cargo test --workspace` turns it on (crates/wgpu-tests); CI runs them on lavapipe, Mesa's
//! Vulkan on the CPU. From the same initial weights one step agrees to
//! stated tolerances; masks from the same weights and data are identical; XOR, digits and every
//! pruning mode run and meet the CPU bars.

use std::collections::BTreeMap;
use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use pruning::{Rng, host_values, param_infos, read_params};
use trainer::config::{ActivationKind, BackendKind, ModelConfig, Shape, TrainConfig, load_config};
use trainer::device::select_device;
use trainer::experiment::run_experiment;
use trainer::head::Head;
use trainer::model::Net;
use trainer::optim::build_optimizer;

use super::dynamic_pruning::{assert_saved_model_exactly_sparse, digits_config};
use super::{opts, shipped};

/// Whether wgpu finds an adapter here (lavapipe counts). Without one the test is skipped, unless
/// `LOPPER_WGPU` is set (CI sets it after installing lavapipe), which makes that a failure.
fn adapter_here() -> bool {
    let found = select_device(BackendKind::Wgpu, None);
    if let Err(e) = &found {
        assert!(
            std::env::var_os("LOPPER_WGPU").is_none(),
            "LOPPER_WGPU is set but wgpu found no adapter: {e}"
        );
        eprintln!("skipped: no wgpu adapter here (apt install mesa-vulkan-drivers libvulkan1)");
    }
    found.is_ok()
}

fn gpu() -> Device {
    select_device(BackendKind::Wgpu, None)
        .expect("a wgpu adapter (CI installs lavapipe: mesa-vulkan-drivers)")
        .0
}

fn cpu() -> Device {
    select_device(BackendKind::Ndarray, None).unwrap().0
}

/// Everything one training step produces, on the host, by parameter path.
struct Step {
    out: Vec<f32>,
    loss: f32,
    grads: BTreeMap<String, Vec<f32>>,
    after: BTreeMap<String, Vec<f32>>,
}

fn one_step(device: Device, activation: ActivationKind, train_toml: &str) -> Step {
    let cfg = ModelConfig {
        hidden: Some(vec![32, 16]),
        activation: Some(activation),
        ..ModelConfig::default()
    };
    step_of(device, &cfg, Shape::Flat(20), train_toml)
}

/// One step of the network `cfg` builds on `input` (20 features, or 1×8×8 images), 5 classes.
fn step_of(device: Device, cfg: &ModelConfig, input: Shape, train_toml: &str) -> Step {
    let ad = device.autodiff();
    let model = Net::new(cfg, input, 5, 3, &ad);
    let n_in = match input {
        Shape::Flat(n) => n,
        Shape::Image([c, h, w]) => c * h * w,
    };
    let train: TrainConfig = toml::from_str(train_toml).unwrap();
    let mut optim = build_optimizer(&train);
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..64 * n_in)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let mut onehot = vec![0f32; 64 * 5];
    for r in 0..64 {
        onehot[r * 5 + (r * 7) % 5] = 1.0;
    }
    let x = Tensor::<2>::from_data(TensorData::new(x, [64, n_in]), &ad);
    let t = Tensor::<2>::from_data(TensorData::new(onehot, [64, 5]), &ad);
    let out = model.forward(x);
    let loss = Head::Multiclass(5).loss(out.clone(), t);
    let params = param_infos(&model);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut g = BTreeMap::new();
    for p in &params {
        // Batch norms' running statistics are not trained: no gradient.
        if let Some(v) = pruning::grad_accum::flat_grad(&grads, p.id, p.shape.len()) {
            g.insert(p.path.clone(), host_values(v));
        }
    }
    let model = optim.step(train.lr, model, grads);
    let ids: Vec<_> = params.iter().map(|p| p.id).collect();
    let after = read_params(&model, &ids);
    Step {
        out: host_values(out.detach()),
        loss: loss.into_scalar(),
        grads: g,
        after: params
            .iter()
            .map(|p| (p.path.clone(), after[&p.id].clone()))
            .collect(),
    }
}

/// The largest difference over every parameter.
fn worst(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f32 {
    a.iter()
        .map(|(k, v)| max_diff(v, &b[k]))
        .fold(0.0, f32::max)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn one_step_on_wgpu_agrees_with_ndarray_from_the_same_initial_weights() {
    if !adapter_here() {
        return;
    }
    for (activation, train) in [
        (ActivationKind::Relu, "lr = 1e-3\noptimizer = \"adam\""),
        (
            ActivationKind::Sigmoid,
            "lr = 0.1\noptimizer = \"sgd\"\nmomentum = 0.9\nweight_decay = 1e-3",
        ),
        (
            ActivationKind::Tanh,
            "lr = 1e-2\noptimizer = \"adam\"\nweight_decay = 1e-2",
        ),
    ] {
        let c = one_step(cpu(), activation, train);
        let g = one_step(gpu(), activation, train);
        let what = format!("{activation:?} / {}", train.replace('\n', ", "));
        eprintln!(
            "{what}: largest difference: forward {:.1e}, loss {:.1e}, gradients {:.1e}, after the step {:.1e}",
            max_diff(&c.out, &g.out),
            (c.loss - g.loss).abs(),
            worst(&c.grads, &g.grads),
            worst(&c.after, &g.after)
        );
        // Sums run in another order on the GPU: agreement to float32 rounding, not bit-exact.
        assert!(max_diff(&c.out, &g.out) < 1e-5, "{what}: forward");
        assert!(
            (c.loss - g.loss).abs() < 1e-5,
            "{what}: loss {} vs {}",
            c.loss,
            g.loss
        );
        for (name, cg) in &c.grads {
            let d = max_diff(cg, &g.grads[name]);
            assert!(d < 1e-6, "{what}: gradient of {name} differs by {d}");
        }
        for (name, ca) in &c.after {
            let d = max_diff(ca, &g.after[name]);
            assert!(d < 1e-6, "{what}: {name} after one step differs by {d}");
        }
    }
}

#[test]
fn one_conv_step_on_wgpu_agrees_with_ndarray_from_the_same_initial_weights() {
    if !adapter_here() {
        return;
    }
    // Conv, batch norm, pools and dense layers on 1×8×8 images: the same tolerances as dense
    // layers; the batch norm's running statistics moved the same way.
    let cfg: ModelConfig = toml::from_str(crate::conv::LAYERS).unwrap();
    for train in [
        "lr = 1e-3\noptimizer = \"adam\"\nweight_decay = 1e-2",
        "lr = 0.05\noptimizer = \"sgd\"\nmomentum = 0.9",
    ] {
        let input = Shape::Image([1, 8, 8]);
        let c = step_of(cpu(), &cfg, input, train);
        let g = step_of(gpu(), &cfg, input, train);
        eprintln!(
            "conv {train:?}: largest difference: forward {:.1e}, loss {:.1e}, gradients {:.1e}, after the step {:.1e}",
            max_diff(&c.out, &g.out),
            (c.loss - g.loss).abs(),
            worst(&c.grads, &g.grads),
            worst(&c.after, &g.after)
        );
        assert!(max_diff(&c.out, &g.out) < 1e-5, "{train}: forward");
        assert!((c.loss - g.loss).abs() < 1e-5, "{train}: loss");
        assert!(c.grads.contains_key("features.0.conv.weight"));
        for (name, cg) in &c.grads {
            let d = max_diff(cg, &g.grads[name]);
            assert!(d < 1e-6, "{train}: gradient of {name} differs by {d}");
        }
        for (name, ca) in &c.after {
            let d = max_diff(ca, &g.after[name]);
            assert!(d < 1e-6, "{train}: {name} after one step differs by {d}");
        }
    }
}

#[test]
fn conv_channel_masks_at_initialisation_are_identical_on_wgpu() {
    if !adapter_here() {
        return;
    }
    for (criterion, granularity) in [("l1", "neuron"), ("snip", "weight"), ("taylor", "neuron")] {
        let tmp = tempfile::tempdir().unwrap();
        let pruning = format!(
            "[pruning]\nmode = \"at-init\"\ncriterion = \"{criterion}\"\ngranularity = \"{granularity}\"\nsparsity = 0.5\ncalibration_batches = 4\n"
        );
        let path = crate::conv::conv_config(tmp.path(), 1, &pruning);
        let mut dirs = Vec::new();
        for backend in ["ndarray", "wgpu"] {
            let cfg = load_config(&path, &[format!("backend=\"{backend}\"")]).unwrap();
            let r = run_experiment(&cfg, &opts(tmp.path())).unwrap();
            assert_saved_model_exactly_sparse(&r.dir);
            dirs.push(r.dir);
        }
        assert!(
            masks_bytes(&dirs[0]) == masks_bytes(&dirs[1]),
            "{criterion}/{granularity}: conv masks differ between ndarray and wgpu"
        );
    }
}

fn masks_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("masks.safetensors")).unwrap()
}

#[test]
fn masks_at_initialisation_are_identical_on_wgpu_for_every_deterministic_criterion() {
    if !adapter_here() {
        return;
    }
    // Pruning at initialisation scores the same initial weights (and, for gradient criteria,
    // gradients of the same calibration batches) on both backends.
    for (criterion, granularity) in [
        ("l1", "weight"),
        ("l2", "neuron"),
        ("snip", "weight"),
        ("taylor", "neuron"),
        ("fisher", "weight"),
        ("grad", "weight"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let pruning = format!(
            "mode = \"at-init\"\ncriterion = \"{criterion}\"\ngranularity = \"{granularity}\"\nsparsity = 0.5\ncalibration_batches = 4\n"
        );
        let path = digits_config(tmp.path(), 2, "", &pruning);
        let mut dirs = Vec::new();
        for backend in ["ndarray", "wgpu"] {
            let cfg = load_config(&path, &[format!("backend=\"{backend}\"")]).unwrap();
            let r = run_experiment(&cfg, &opts(tmp.path())).unwrap();
            assert_saved_model_exactly_sparse(&r.dir);
            dirs.push(r.dir);
        }
        assert!(
            masks_bytes(&dirs[0]) == masks_bytes(&dirs[1]),
            "{criterion}/{granularity}: masks differ between ndarray and wgpu"
        );
    }
}

#[test]
fn xor_and_digits_reach_the_cpu_bars_on_wgpu() {
    if !adapter_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let xor = run_experiment(
        &shipped("xor.toml", &["backend=\"wgpu\""]),
        &opts(tmp.path()),
    )
    .unwrap();
    assert_eq!(xor.evals[0].1.correct, Some(4), "XOR on wgpu");
    let summary = std::fs::read_to_string(xor.dir.join("summary.json")).unwrap();
    let s: report::Summary = report::load(&xor.dir.join("summary.json")).unwrap();
    assert_eq!(s.backend, "wgpu");
    assert_eq!(s.device.backend, "wgpu");
    assert!(!s.device.name.is_empty(), "{summary}");

    let digits = run_experiment(
        &shipped("digits.toml", &["backend=\"wgpu\""]),
        &opts(tmp.path()),
    )
    .unwrap();
    let (_, test) = *digits.evals.last().unwrap();
    assert!(test.accuracy().unwrap() >= 0.95, "digits on wgpu: {test:?}");
}

#[test]
fn every_pruning_mode_runs_on_wgpu_as_on_ndarray_and_keeps_pruned_weights_at_zero() {
    if !adapter_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (pruning, epochs) in [
        (
            "mode = \"static\"\ncriterion = \"taylor\"\ngranularity = \"neuron\"\nsparsity = 0.5\ncalibration_batches = 4\nfine_tune_epochs = 5",
            20,
        ),
        (
            "mode = \"gradual\"\ncriterion = \"movement\"\nsparsity = 0.8\nbegin_epoch = 2\nend_epoch = 8\nevery_steps = 10",
            10,
        ),
        (
            "mode = \"gradual\"\ncriterion = \"fisher\"\nscope = \"global\"\nsparsity = 0.8\nbegin_epoch = 2\nend_epoch = 8\nevery_steps = 10",
            10,
        ),
        ("mode = \"rigl\"\nsparsity = 0.8\nevery_steps = 20", 10),
        ("mode = \"set\"\nsparsity = 0.8\nevery_steps = 20", 10),
        (
            "mode = \"lottery\"\nrounds = 2\nsparsity = 0.3\nreinit_control = false",
            5,
        ),
    ] {
        let path = digits_config(tmp.path(), epochs, "", pruning);
        let mut acc = Vec::new();
        for backend in ["ndarray", "wgpu"] {
            let cfg = load_config(&path, &[format!("backend=\"{backend}\"")]).unwrap();
            let r = run_experiment(&cfg, &opts(tmp.path()))
                .unwrap_or_else(|e| panic!("{pruning} on {backend}: {e}"));
            assert_saved_model_exactly_sparse(&r.dir);
            let (_, test) = *r.evals.last().unwrap();
            acc.push(test.accuracy().unwrap());
        }
        // Sums in another order shift a mask decision now and then; the outcome must not move.
        assert!(
            (acc[0] - acc[1]).abs() <= 0.02,
            "{pruning}: test accuracy {:.4} on ndarray, {:.4} on wgpu",
            acc[0],
            acc[1]
        );
    }
}

#[test]
fn an_adapter_number_that_does_not_exist_is_an_error_listing_those_that_do() {
    if !adapter_here() {
        return;
    }
    let e = select_device(BackendKind::Wgpu, Some(99))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no wgpu adapter 99") && e.contains("0: wgpu ("),
        "{e}"
    );
    let (_, info) = select_device(BackendKind::Wgpu, Some(0)).unwrap();
    assert_eq!(info.backend, "wgpu");
}

#[test]
fn no_adapter_at_all_is_an_error_saying_what_was_probed_and_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // Point the Vulkan loader and GLVND's EGL at drivers that do not exist.
    let missing = tmp.path().join("missing.json");
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(super::repo())
        .args([
            "--config",
            "configs/xor.toml",
            "--backend",
            "wgpu",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .env("VK_ICD_FILENAMES", &missing)
        .env("VK_DRIVER_FILES", &missing)
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", &missing)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("Probed Vulkan, Metal, DX12, OpenGL: found no adapters")
            && err.contains("apt install mesa-vulkan-drivers libvulkan1"),
        "{err}"
    );
    assert!(!out.exists(), "no run folder for a run that never started");
}
