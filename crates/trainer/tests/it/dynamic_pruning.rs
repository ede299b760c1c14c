//! Pruning inside the training loop through the trainer: gradual schedules, RigL/SET and lottery
//! tickets on the digits set — sparsity logged over time, exact zeros in the saved model, masks
//! that carry over to a later run, and per-level lottery results with their control.

use std::collections::BTreeMap;
use std::path::Path;

use pruning::schedule::{Polynomial, Schedule};
use safetensors::SafeTensors;
use trainer::config::load_config;
use trainer::experiment::run_experiment;

use crate::{opts, repo, shipped, write};

/// `metrics.csv` rows as (step, epoch, split, metric, value).
fn metrics(dir: &Path) -> Vec<(usize, usize, String, String, f64)> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Every weight of model.safetensors under a zero of masks.safetensors is +0.0.
pub(crate) fn assert_saved_model_exactly_sparse(dir: &Path) {
    let model_bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let mask_bytes = std::fs::read(dir.join("masks.safetensors")).unwrap();
    let model = SafeTensors::deserialize(&model_bytes).unwrap();
    let masks = SafeTensors::deserialize(&mask_bytes).unwrap();
    for name in masks.names() {
        let layer = name.strip_suffix("_mask").unwrap();
        let w = model.tensor(layer).unwrap();
        let m = masks.tensor(name).unwrap();
        assert_eq!(w.shape(), m.shape());
        for (c, &k) in w.data().chunks_exact(4).zip(m.data()) {
            if k == 0 {
                assert_eq!(c, [0, 0, 0, 0], "{layer}: nonzero weight under a zero mask");
            }
        }
    }
}

/// A digits config in `dir` with the given `[pruning]` table and epochs.
pub(crate) fn digits_config(
    dir: &Path,
    epochs: usize,
    extra_data: &str,
    pruning: &str,
) -> std::path::PathBuf {
    let csv = repo().join("datasets/digits.csv");
    write(
        dir,
        "digits-dyn.toml",
        &format!(
            r#"seed = 0
[data]
name = "digits"
path = "{}"
test_fraction = 0.2
scale = "global-minmax"
{extra_data}
[model]
hidden = [32]
activation = "sigmoid"
[train]
epochs = {epochs}
batch_size = 64
lr = 0.01
[pruning]
{pruning}
"#,
            csv.display()
        ),
    )
}

#[test]
fn gradual_pruning_on_digits_follows_the_schedule_logs_sparsity_and_saves_exact_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("digits-gradual.toml", &[]), &opts(tmp.path())).unwrap();
    let report = r.pruning.as_ref().unwrap();
    assert_reads_back(&r.dir, report);
    for l in &report.layers {
        let s = l.sparsity;
        assert!((s - 0.9).abs() < 1e-3, "{}: {s}", l.name);
    }
    let (_, test) = *r.evals.last().unwrap();
    assert!(
        test.accuracy().unwrap() >= 0.92,
        "test accuracy {:?}",
        test.accuracy()
    );
    assert_saved_model_exactly_sparse(&r.dir);
    // Each layer trains as a sparse product once its mask is sparse enough (75 %, reached before
    // the schedule ends at step 1610), and the last 690 steps at 90 % all do.
    let sparse = &report.sparse_training;
    assert_eq!(sparse.steps, 2300);
    let names: Vec<&str> = sparse.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["layers.0.weight", "layers.1.weight"]);
    for l in &sparse.layers {
        assert!((691..1610).contains(&l.sparse_steps), "{l:?}");
    }

    // Events: every 50 steps from the end of epoch 10 (23 steps per epoch) to the end of epoch
    // 70, each with tfmot's target for its step.
    let rows = metrics(&r.dir);
    let schedule = Polynomial {
        initial: 0.0,
        target: 0.9,
        begin: 230,
        end: 1610,
        power: 3.0,
        frequency: 50,
    };
    let targets: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.2 == "prune" && r.3 == "target")
        .map(|r| (r.0, r.4))
        .collect();
    let expected: Vec<usize> = (230..=1610).filter(|&s| schedule.should_prune(s)).collect();
    assert_eq!(targets.iter().map(|t| t.0).collect::<Vec<_>>(), expected);
    for (step, t) in &targets {
        assert!((t - schedule.sparsity(*step)).abs() < 1e-12);
    }
    // Sparsity per epoch, overall and per layer: never decreasing, 0 before epoch 10, 0.9 at the end.
    let total: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.2 == "sparsity" && r.3 == "total")
        .map(|r| (r.1, r.4))
        .collect();
    assert_eq!(total.len(), 100);
    assert!(total.windows(2).all(|w| w[1].1 >= w[0].1));
    assert_eq!(total[8].1, 0.0);
    assert!((total[99].1 - 0.9).abs() < 1e-3);
    assert_eq!(
        rows.iter()
            .filter(|r| r.2 == "sparsity" && r.3 == "layers.1.weight")
            .count(),
        100
    );

    // Loading the run's model and masks in a later run keeps what was pruned pruned.
    let mut o = opts(tmp.path());
    o.from = Some(r.dir.clone());
    let again = run_experiment(
        &shipped("digits-static.toml", &["pruning.sparsity=0.1"]),
        &o,
    )
    .unwrap();
    let before = trainer::export::load_masks(&r.dir.join("masks.safetensors")).unwrap();
    let after = trainer::export::load_masks(&again.dir.join("masks.safetensors")).unwrap();
    for (name, m) in &before.masks {
        let later = &after.masks[name];
        assert!(
            m.keep.iter().zip(&later.keep).all(|(b, a)| *b || !*a),
            "{name} revived"
        );
    }
}

#[test]
fn xor_learns_while_half_of_its_weights_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("xor-dynamic.toml", &[]), &opts(tmp.path())).unwrap();
    let (_, train) = r.evals[0];
    assert_eq!(train.correct, Some(4), "XOR with 50% of weights pruned");
    let s = r.pruning.unwrap().total.sparsity;
    assert!((s - 0.5).abs() < 1e-9, "{s}");
    assert_saved_model_exactly_sparse(&r.dir);
}

#[test]
fn rigl_and_set_keep_every_layers_sparsity_at_every_epoch_while_moving_connections() {
    for mode in ["rigl", "set"] {
        let tmp = tempfile::tempdir().unwrap();
        let path = digits_config(
            tmp.path(),
            30,
            "",
            &format!("mode = \"{mode}\"\nsparsity = 0.8\nevery_steps = 20\n"),
        );
        let r = run_experiment(&load_config(&path, &[]).unwrap(), &opts(tmp.path())).unwrap();
        let report = r.pruning.as_ref().unwrap();
        assert_reads_back(&r.dir, report);
        let events = report.events().unwrap();
        // 23 steps per epoch, 30 epochs: updates every 20 steps before 75% of 690 steps.
        assert_eq!(
            events.len(),
            (1..=517).filter(|s| s % 20 == 0).count(),
            "{mode}"
        );
        // The cosine-decayed fraction rounds to no change near the end; early updates move weights.
        let changed = |e: &report::Event| e.changed;
        assert!(
            events[..events.len() / 2].iter().all(|e| changed(e) > 0),
            "{mode}"
        );
        assert!(
            changed(&events[0]) > changed(events.last().unwrap()),
            "{mode}"
        );
        let per_layer: BTreeMap<String, Vec<f64>> = metrics(&r.dir)
            .into_iter()
            .filter(|r| r.2 == "sparsity")
            .fold(BTreeMap::new(), |mut m, r| {
                m.entry(r.3).or_default().push(r.4);
                m
            });
        for (layer, values) in &per_layer {
            assert_eq!(values.len(), 30);
            assert!(
                values.iter().all(|v| (v - values[0]).abs() < 1e-12),
                "{mode} {layer}"
            );
            assert!(
                (values[0] - 0.8).abs() < 2e-3,
                "{mode} {layer}: {}",
                values[0]
            );
        }
        let (_, test) = *r.evals.last().unwrap();
        assert!(
            test.accuracy().unwrap() >= 0.85,
            "{mode}: {:?}",
            test.accuracy()
        );
        assert_saved_model_exactly_sparse(&r.dir);
        // Both 80 %-sparse layers train as sparse products from the first step, except, for
        // RigL, the step before each update, whose dense gradient its growth reads.
        let dense_steps = if mode == "rigl" { events.len() } else { 0 };
        let sparse = &report.sparse_training;
        assert_eq!(sparse.steps, 690);
        assert_eq!(sparse.layers.len(), 2, "{mode}");
        for l in &sparse.layers {
            assert_eq!(l.sparse_steps, 690 - dense_steps, "{mode} {l:?}");
        }
        // The same run multiplying densely learns as well: sparse products change rounding only.
        let dense = run_experiment(
            &load_config(&path, &["train.sparse_products=false".to_string()]).unwrap(),
            &opts(&tmp.path().join("dense")),
        )
        .unwrap();
        let report = dense.pruning.as_ref().unwrap();
        assert_eq!(report.sparse_training.layers, [], "{mode}");
        let other = dense.evals.last().unwrap().1.accuracy().unwrap();
        assert!(
            (other - test.accuracy().unwrap()).abs() < 0.03,
            "{mode}: {other} dense against {:?} sparse",
            test.accuracy()
        );
    }
}

#[test]
fn lottery_levels_prune_the_remaining_weights_and_train_a_reinit_control() {
    let tmp = tempfile::tempdir().unwrap();
    let path = digits_config(
        tmp.path(),
        8,
        "validation_fraction = 0.2",
        "mode = \"lottery\"\nsparsity = 0.2\nrounds = 2\nlayer_factor = { \"layers.1.weight\" = 0.5 }\n",
    );
    let r = run_experiment(&load_config(&path, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let report = r.pruning.as_ref().unwrap();
    assert_reads_back(&r.dir, report);
    let levels = report.levels().unwrap();
    assert_eq!(levels.len(), 3);
    assert!(levels[0].control.is_none());
    for l in &levels[1..] {
        for (side, r) in [("ticket", Some(&l.ticket)), ("control", l.control.as_ref())] {
            let r = r.unwrap();
            let v = r.best_valid_accuracy.unwrap();
            assert!(v > 0.5, "level {} {side}: {v}", l.level);
            assert!(r.test_accuracy_at_best.is_some());
        }
    }
    // 20% then 20% of the remaining (64%) for the hidden layer, 10% twice (81%) for the output.
    let layers = &report.layers;
    assert_eq!(layers[0].kept, 2048 - 410 - 328);
    assert_eq!(layers[1].kept, 320 - 32 - 29);
    assert_saved_model_exactly_sparse(&r.dir);
    let table = std::fs::read_to_string(r.dir.join("lottery.md")).unwrap();
    assert_eq!(table.lines().count(), 2 + 3, "{table}");
}

#[test]
fn keys_of_another_mode_and_impossible_combinations_are_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "mode = \"static\"\nsparsity = 0.5\ndrop_fraction = 0.3\n",
            "`pruning.drop_fraction` does not apply to mode = \"static\" (it is for mode \"rigl\" or \"set\"); remove it",
        ),
        (
            "mode = \"rigl\"\nsparsity = 0.9\nscope = \"global\"\n",
            "`pruning.scope` rigl and set keep each layer's sparsity constant",
        ),
        (
            "mode = \"gradual\"\nsparsity = 0.9\nend_epoch = 5\n",
            "`pruning.every_steps` mode = \"gradual\" needs how often masks are updated",
        ),
        (
            "mode = \"gradual\"\ncriterion = \"taylor\"\nsparsity = 0.9\nend_epoch = 5\nevery_steps = 10\n",
            "`pruning.begin_step` a gradient criterion needs training steps before the first update",
        ),
        (
            "mode = \"gradual\"\nsparsity = 0.9\nbegin_epoch = 1\nbegin_step = 3\nend_epoch = 5\nevery_steps = 10\n",
            "`pruning.begin_step` give pruning.begin_epoch or pruning.begin_step, not both",
        ),
    ];
    for (table, expected) in cases {
        let path = digits_config(tmp.path(), 1, "", table);
        let e = load_config(&path, &[]).unwrap_err().to_string();
        assert!(e.contains(expected), "{table}\n→ {e}");
        assert!(e.contains("digits-dyn.toml"), "{e}");
    }
}

/// pruning.json on disk reads back, through the report's own type, as the report the run
/// returned, to the last bit of every number.
pub(crate) fn assert_reads_back(dir: &std::path::Path, report: &report::PruningReport) {
    let back: report::PruningReport = report::load(&dir.join("pruning.json")).unwrap();
    assert_eq!(report::to_json(&back), report::to_json(report));
}
