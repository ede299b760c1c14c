//! The experiments researchers run around single trainings: sweeps over grids and seeds
//! (resumable, aggregated with mean ± sd) and the accuracy-constrained search.

use std::path::{Path, PathBuf};
use std::process::Command;

use trainer::config::load_config;
use trainer::experiment::run_experiment;

use super::dynamic_pruning::digits_config;
use super::opts;

/// Digits (64-32-10 sigmoid, with a validation split) with the given `[pruning]` table, and
/// `tail` (more tables) after it.
fn digits(dir: &Path, epochs: usize, pruning: &str, tail: &str) -> PathBuf {
    let path = digits_config(dir, epochs, "validation_fraction = 0.15", pruning);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text + tail).unwrap();
    path
}

fn sweep(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.arg("sweep")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra);
    c.output().unwrap()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn a_sweep_runs_every_point_once_resumes_and_reports_mean_and_sd() {
    let tmp = tempfile::tempdir().unwrap();
    let config = digits(
        tmp.path(),
        15,
        "criterion = \"l1\"\nscope = \"global\"\nsparsity = 0.5\nfine_tune_epochs = 2",
        "",
    );
    let out = tmp.path().join("sweep");
    let args = [
        "--grid",
        "pruning.sparsity=0.5,0.9",
        "--seeds",
        "0,1",
        "--jobs",
        "2",
    ];
    let first = sweep(&config, &out, &args);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("6 points run, 0 already finished"),
        "{stdout}"
    );

    // 2 grid values × 2 seeds, and the dense baseline once per seed.
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(
        rows[0],
        [
            "method",
            "pruning.sparsity",
            "seed",
            "split",
            "accuracy",
            "loss",
            "sparsity",
            "accuracy_before_pruning",
            "units_removed",
            "wall_s",
            "run_dir"
        ]
    );
    assert_eq!(rows.len(), 7);
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for r in &rows[1..] {
        let measured: f64 = r[col("sparsity")].parse().unwrap();
        let asked: f64 = r[col("pruning.sparsity")].parse().unwrap_or(0.0);
        assert!((measured - asked).abs() < 0.01, "{r:?}");
        assert!(out.join(&r[col("run_dir")]).join("summary.json").is_file());
    }
    // The table's mean ± sd are those of the seeds' accuracies.
    let accs: Vec<f64> = rows[1..]
        .iter()
        .filter(|r| r[col("method")] == "config" && r[col("pruning.sparsity")] == "0.9")
        .map(|r| r[col("accuracy")].parse().unwrap())
        .collect();
    assert_eq!(accs.len(), 2);
    let (m, sd) = trainer::sweep::mean_sd(&accs);
    let expected = (accs[0] - accs[1]).abs() / 2f64.sqrt();
    assert!((sd - expected).abs() < 1e-12);
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    let line = format!(
        "| config | pruning.sparsity=0.9 | 2 | 90.0 % | {:.2} ± {:.2} % |",
        100.0 * m,
        100.0 * sd
    );
    assert!(table.contains(&line), "{line}\nnot in\n{table}");
    assert!(out.join("sweep.png").is_file() && out.join("sweep.svg").is_file());

    // Rerun: nothing to do. Remove one finished point: only it runs again.
    let again = sweep(&config, &out, &args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 points run, 6 already finished"));
    let victim = out.join(&rows[2][col("run_dir")]);
    std::fs::remove_file(victim.join("summary.json")).unwrap();
    let third = sweep(&config, &out, &args);
    assert!(String::from_utf8_lossy(&third.stdout).contains("1 points run, 5 already finished"));
    let without_time = |rows: Vec<Vec<String>>| {
        let t = col("wall_s");
        rows.into_iter()
            .map(|mut r| {
                r.remove(t);
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_time(csv_rows(&out.join("results.csv"))),
        without_time(rows.clone()),
        "a rerun point gives the same numbers"
    );

    // A sweep folder belongs to its config.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap() + "\n# edited\n",
    )
    .unwrap();
    let edited = sweep(&config, &out, &args);
    assert_eq!(edited.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&edited.stderr).contains("was made from a different"));
}

#[test]
fn a_sweep_point_stopped_half_way_continues_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::write(
        tmp.path(),
        "gmp.toml",
        "seed = 1\n[data]\nname = \"digits\"\ntest_fraction = 0.2\n[model]\nhidden = [32]\nactivation = \"sigmoid\"\n[train]\nepochs = 20\nbatch_size = 64\noptimizer = \"adam\"\nlr = 0.01\ncheckpoint_every = 6\n[pruning]\nmode = \"gradual\"\nsparsity = 0.8\nbegin_epoch = 2\nend_epoch = 15\nevery_steps = 25\n",
    );
    let out = tmp.path().join("sweep");
    let first = sweep(&config, &out, &["--seeds", "0"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let point = out.join("config/base/seed-0");
    let files = |name: &str| std::fs::read(point.join(name)).unwrap();
    let (metrics, model) = (files("metrics.csv"), files("model.safetensors"));

    // As a killed point leaves it: no summary, metrics beyond the last checkpoint (epoch 18 of 20).
    std::fs::remove_file(point.join("summary.json")).unwrap();
    std::fs::write(
        point.join("kept.txt"),
        "the folder is continued, not restarted",
    )
    .unwrap();
    let again = sweep(&config, &out, &["--seeds", "0"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("1 points run, 1 already finished"));
    assert!(
        point.join("kept.txt").is_file(),
        "the point was started afresh"
    );
    assert!(files("metrics.csv") == metrics && files("model.safetensors") == model);
}

#[test]
fn sweep_baselines_and_a_sweep_table_in_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = digits(
        tmp.path(),
        10,
        "criterion = \"taylor\"\nsparsity = 0.8\ncalibration_batches = 2",
        "[sweep]\ngrid = { \"pruning.sparsity\" = [0.8] }\nseeds = [3]\nbaselines = true\njobs = 2\n",
    );
    let out = tmp.path().join("sweep");
    let run = sweep(&config, &out, &["--quiet"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.stdout.is_empty(), "--quiet prints nothing");
    let rows = csv_rows(&out.join("results.csv"));
    let methods: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        methods,
        [
            "dense",
            "config",
            "random",
            "magnitude-layer",
            "magnitude-global"
        ]
    );
    assert!(rows[1..].iter().all(|r| r[2] == "3"), "seed from [sweep]");
    // The baselines really changed the criterion and scope.
    let cfg = |m: &str| {
        let dir = out.join(m).join("sparsity-0.8").join("seed-3");
        std::fs::read_to_string(dir.join("config.toml")).unwrap()
    };
    assert!(cfg("random").contains("criterion = \"random\""));
    assert!(cfg("magnitude-global").contains("scope = \"global\""));
    assert!(
        !std::fs::read_to_string(out.join("dense/seed-3/config.toml"))
            .unwrap()
            .contains("[pruning]")
    );

    // Without [sweep] and without flags: the config's seed, one run at a time, no grid.
    let plain = digits(tmp.path(), 3, "sparsity = 0.5", "");
    let run = sweep(&plain, &tmp.path().join("plain"), &["--quiet"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = csv_rows(&tmp.path().join("plain/results.csv"));
    let methods: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(methods, ["dense", "config"]);

    // A grid key that does not exist fails before anything runs, naming it.
    let bad = sweep(
        &config,
        &tmp.path().join("bad"),
        &["--grid", "pruning.sparsty=0.5"],
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sparsty"), "{err}");
    assert!(!tmp.path().join("bad/config").exists());
}

#[test]
fn the_search_bisects_to_the_highest_sparsity_within_the_tolerance() {
    let tmp = tempfile::tempdir().unwrap();
    let config = digits(
        tmp.path(),
        30,
        "criterion = \"l1\"\nscope = \"global\"\nsparsity = 0.99\nfine_tune_epochs = 3\nsearch = { metric = \"val_accuracy\", tolerance = 0.02, probes = 6 }",
        "",
    );
    let r = run_experiment(&load_config(&config, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let report = r.pruning.unwrap();
    crate::dynamic_pruning::assert_reads_back(&r.dir, &report);
    let s = report.search().unwrap();
    let dense = s.dense;
    let probes = &s.probes;
    assert_eq!(probes[0].value, 0.99, "the upper end is probed first");
    assert!(!probes[0].kept, "99 % is too much for digits: {probes:?}");
    let (mut lo, mut hi) = (0.0f64, 0.99f64);
    for p in probes {
        let (v, m, kept) = (p.value, p.metric, p.kept);
        assert_eq!(kept, m >= dense - 0.02, "{p:?}");
        assert!(v > lo && v <= hi, "probe {v} outside ({lo}, {hi}]");
        if kept {
            lo = v;
        } else {
            hi = v;
        }
    }
    assert_eq!(probes.len(), 6);
    let chosen = s.chosen.unwrap();
    assert_eq!(chosen, lo, "the highest kept probe is chosen");
    // The saved model is the chosen probe's: its sparsity is the run's.
    let total = report.total.sparsity;
    let kept_probe = probes.iter().find(|p| p.value == chosen).unwrap();
    assert!((total - kept_probe.sparsity).abs() < 1e-9);
    assert!(
        chosen > 0.5,
        "digits keeps accuracy well past half its weights: {chosen}"
    );
    let md = std::fs::read_to_string(r.dir.join("search.md")).unwrap();
    assert_eq!(
        md.matches("| kept |").count() + md.matches("| rejected |").count(),
        6,
        "{md}"
    );
    assert!(r.dir.join("search.png").is_file());

    // The relative rule: alpha is searched instead.
    let alpha = digits(
        tmp.path(),
        30,
        "criterion = \"l1\"\nscope = \"global\"\nalpha = 0.5\nsearch = { metric = \"val_loss\", tolerance = 0.05, probes = 3 }",
        "",
    );
    let r = run_experiment(&load_config(&alpha, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let report = r.pruning.unwrap();
    let s = report.search().unwrap();
    assert_eq!(s.rule, report::SearchRule::Alpha);
    assert_eq!(s.probes[0].value, 0.5);
}

#[test]
fn a_search_without_a_validation_split_or_in_another_mode_is_an_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = digits(
        tmp.path(),
        5,
        "sparsity = 0.9\nsearch = { metric = \"val_accuracy\", tolerance = 0.01 }",
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("validation_fraction = 0.15\n", "")).unwrap();
    let e = load_config(&path, &[]).unwrap_err().to_string();
    assert!(
        e.contains("`pruning.search`") && e.contains("validation_fraction"),
        "{e}"
    );
    let path = digits(
        tmp.path(),
        5,
        "mode = \"at-init\"\nsparsity = 0.9\nsearch = { metric = \"val_accuracy\", tolerance = 0.01 }",
        "",
    );
    let e = load_config(&path, &[]).unwrap_err().to_string();
    assert!(
        e.contains(
            "`pruning.search` does not apply to mode = \"at-init\" (it is for mode \"static\")"
        ),
        "{e}"
    );
}
