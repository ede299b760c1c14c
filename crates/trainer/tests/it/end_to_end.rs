//! Whole runs through the library: XOR learned, determinism, the model file's layout, digits'
//! accuracy bar, and a diverging run that stops cleanly.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use safetensors::SafeTensors;
use trainer::config::{load_config, parse_config};
use trainer::experiment::{BURN_VERSION, run_experiment};

use crate::{opts, shipped};
use trainer::export::load_model;

#[test]
fn xor_config_learns_xor_and_writes_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("xor.toml", &[]), &opts(tmp.path())).unwrap();
    let (split, train) = r.evals[0];
    assert_eq!(split, "train");
    assert_eq!(train.correct, Some(4), "XOR not learned: {train:?}");
    for f in [
        "config.toml",
        "metrics.csv",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(r.dir.join(f).is_file(), "{f} missing");
    }
    assert!(
        r.dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("xor-")
    );
    let summary: report::Summary = report::load(&r.dir.join("summary.json")).unwrap();
    let finished = summary.finished().expect("status ok");
    assert_eq!(finished.final_evals.get("train").unwrap().correct, Some(4));
    assert_eq!(summary.parameters, 13);
    // The resolved config in the folder reproduces the run's config.
    let again = parse_config(
        &std::fs::read_to_string(r.dir.join("config.toml")).unwrap(),
        Path::new("config.toml"),
        &[],
    )
    .unwrap();
    assert_eq!(again.config, shipped("xor.toml", &[]).config);
}

#[test]
fn same_config_and_seed_give_identical_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = shipped("moons.toml", &["train.epochs=20", "train.eval_every=5"]);
    let a = run_experiment(&cfg, &opts(tmp.path())).unwrap();
    let b = run_experiment(&cfg, &opts(tmp.path())).unwrap();
    assert_ne!(a.dir, b.dir, "a second run must not overwrite the first");
    let read = |d: &PathBuf| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    assert_eq!(read(&a.dir), read(&b.dir));
    assert!(read(&a.dir).lines().count() > 20);
    let other = shipped(
        "moons.toml",
        &["train.epochs=20", "train.eval_every=5", "seed=1"],
    );
    let c = run_experiment(&other, &opts(tmp.path())).unwrap();
    assert_ne!(read(&a.dir), read(&c.dir), "the seed must matter");
}

#[test]
fn saved_model_uses_pytorch_layout_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = shipped("moons.toml", &["train.epochs=3", "model.hidden=[5, 4]"]);
    let r = run_experiment(&cfg, &opts(tmp.path())).unwrap();
    let bytes = std::fs::read(r.dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        vec![
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    // PyTorch's nn.Linear layout: [out_features, in_features].
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[5, 2]);
    assert_eq!(st.tensor("layers.1.weight").unwrap().shape(), &[4, 5]);
    assert_eq!(st.tensor("layers.2.weight").unwrap().shape(), &[1, 4]);
    // Element [o, i] of the file is Burn's weight[i, o].
    let file_w: Vec<f32> = st
        .tensor("layers.0.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    #[allow(deprecated)]
    let dev = Device::ndarray();
    let burn_w: Vec<f32> = r.model.layers[0]
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    for i in 0..2 {
        for o in 0..5 {
            assert_eq!(file_w[o * 2 + i], burn_w[i * 5 + o]);
        }
    }
    let back = load_model(&r.dir.join("model.safetensors"), &dev).unwrap();
    let back_w: Vec<f32> = back.layers[0]
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(back_w, burn_w);
    assert_eq!(back.activation, r.model.activation);
}

#[test]
fn digits_config_reaches_95_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("digits.toml", &[]), &opts(tmp.path())).unwrap();
    let (split, test) = *r.evals.last().unwrap();
    assert_eq!(split, "test");
    assert_eq!(test.n, 359);
    assert!(
        test.accuracy().unwrap() >= 0.95,
        "digits test accuracy {test:?}"
    );
}

#[test]
fn diverging_run_stops_naming_the_epoch_and_keeps_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    // y = 3x on x in [0, 100]: plain SGD at lr 0.01 on unscaled inputs (a linear model) diverges within a few epochs.
    let mut csv = String::from("x,y\n");
    for i in 0..50 {
        csv.push_str(&format!("{},{}\n", 2 * i, 6 * i));
    }
    crate::write(tmp.path(), "line.csv", &csv);
    let cfg_path = crate::write(
        tmp.path(),
        "diverge.toml",
        "[data]\nname = \"csv\"\npath = \"line.csv\"\ntarget = \"y\"\ntask = \"regression\"\n\
         [model]\nhidden = []\n\
         [train]\nepochs = 200\noptimizer = \"sgd\"\nlr = 0.01\nbatch_size = 10\n",
    );
    let cfg = load_config(&cfg_path, &[]).unwrap();
    let e = run_experiment(&cfg, &opts(&tmp.path().join("runs"))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("the training loss became"), "{msg}");
    assert!(msg.contains("--set train.lr=0.001"), "{msg}");
    let epoch: usize = msg
        .split("in epoch ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("the message names the epoch");
    let dir = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains(",train,loss,"))
            .count(),
        epoch - 1
    );
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"failed\""), "{summary}");
}

#[test]
fn burn_version_in_reports_matches_the_lock_file() {
    let lock = std::fs::read_to_string(crate::repo().join("Cargo.lock")).unwrap();
    let needle = format!("name = \"burn\"\nversion = \"{BURN_VERSION}\"");
    assert!(
        lock.contains(&needle),
        "Cargo.lock does not pin burn {BURN_VERSION}"
    );
}

#[test]
fn early_stopping_keeps_the_best_validation_model() {
    let tmp = tempfile::tempdir().unwrap();
    // A wide network on few noisy points overfits: validation loss turns up and the run stops.
    let cfg = shipped(
        "moons.toml",
        &[
            "data.n=60",
            "data.noise=0.4",
            "model.hidden=[64, 64]",
            "train.epochs=400",
            "train.eval_every=1",
            "train.lr=0.02",
            "train.early_stopping={ patience = 5 }",
        ],
    );
    let r = run_experiment(&cfg, &opts(tmp.path())).unwrap();
    assert!(r.stopped_early, "the run should have stopped early");
    let metrics = std::fs::read_to_string(r.dir.join("metrics.csv")).unwrap();
    let val_losses: Vec<f64> = metrics
        .lines()
        .filter(|l| l.contains(",valid,loss,"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let best = val_losses.iter().copied().fold(f64::INFINITY, f64::min);
    // The last 5 evaluations did not improve, and the kept model is the best one.
    assert!(
        val_losses[val_losses.len() - 5..]
            .iter()
            .all(|&v| v >= best)
    );
    let (_, valid) = r.evals.iter().find(|(s, _)| *s == "valid").unwrap();
    assert!(
        (valid.loss - best).abs() < 1e-6,
        "kept {} best {best}",
        valid.loss
    );
}

#[test]
fn l1_penalty_shrinks_weights_and_sgd_nesterov_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "train.epochs=60",
        "train.optimizer=\"sgd\"",
        "train.lr=0.1",
        "train.momentum=0.9",
        "train.nesterov=true",
    ];
    let plain = run_experiment(&shipped("moons.toml", &base), &opts(tmp.path())).unwrap();
    let mut with_l1 = base.to_vec();
    with_l1.push("train.l1=0.003");
    let l1 = run_experiment(&shipped("moons.toml", &with_l1), &opts(tmp.path())).unwrap();
    let norm = |m: &trainer::model::Net| -> f32 { m.weight_l1().into_scalar() };
    assert!(
        norm(&l1.model) < 0.7 * norm(&plain.model),
        "L1 {} vs plain {}",
        norm(&l1.model),
        norm(&plain.model)
    );
    let (_, test) = *plain.evals.last().unwrap();
    assert!(
        test.accuracy().unwrap() > 0.85,
        "SGD+Nesterov on moons: {test:?}"
    );
}

#[test]
fn flex_backend_learns_xor_from_the_same_initial_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(
        &shipped("xor.toml", &["backend=\"flex\""]),
        &opts(tmp.path()),
    )
    .unwrap();
    assert_eq!(r.evals[0].1.correct, Some(4));
    let summary = std::fs::read_to_string(r.dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"backend\": \"flex\""), "{summary}");
}
