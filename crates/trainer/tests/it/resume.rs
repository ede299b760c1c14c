//! Checkpoints and `--resume`: a run killed (SIGKILL, no chance to clean up) after a checkpoint
//! and resumed ends with the bytes of an uninterrupted run — metrics, model, masks, pruning
//! report — and bad resumes are clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.current_dir(crate::repo());
    c
}

fn run(args: &[&str]) -> Output {
    let out = trainer().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "trainer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn epochs_logged(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .map(|t| t.lines().filter(|l| l.contains(",train,loss,")).count())
        .unwrap_or(0)
}

/// Where the run's checkpoint stands: its phase (index in the run's phase list) and, inside a
/// training phase, the epochs done in it.
fn checkpoint_at(out: &Path) -> Option<(usize, Option<usize>)> {
    let c = trainer::checkpoint::Checkpoint::load(&out.join("checkpoint.safetensors")).ok()?;
    Some((c.phase, c.training.map(|t| t.epoch)))
}

/// When to kill a run.
#[derive(Clone, Copy)]
enum Kill {
    /// Once this many epochs are logged and a checkpoint exists.
    AfterEpochs(usize),
    /// Once a checkpoint inside phase `.0` (index in the phase list) has `.1` epochs done.
    InPhase(usize, usize),
}

impl Kill {
    fn now(self, out: &Path) -> bool {
        match self {
            Kill::AfterEpochs(n) => {
                out.join("checkpoint.safetensors").is_file() && epochs_logged(out) >= n
            }
            Kill::InPhase(phase, epochs) => {
                checkpoint_at(out).is_some_and(|(p, e)| p == phase && e >= Some(epochs))
            }
        }
    }
}

/// Starts the run and kills it (SIGKILL) as `kill` says.
fn run_and_kill(config: &Path, sets: &[String], out: &Path, kill: Kill) {
    let mut cmd = trainer();
    cmd.arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--quiet");
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if kill.now(out) {
            child.kill().unwrap();
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed (machine faster than the test assumes)"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "run stalled");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().unwrap();
    assert!(
        !out.join("summary.json").exists(),
        "killed before the end: no summary yet"
    );
}

/// Runs the config `text` uninterrupted (without checkpoints) and killed + resumed (with a
/// checkpoint every epoch), in `tmp`; asserts every result file is byte-identical. With
/// `from_phase_start`, a copy of the killed run loses the training part of its checkpoint, as
/// a kill right after a phase began leaves it, and must resume as exactly. Returns the resumed
/// run folder.
fn killed_and_resumed_match(
    tmp: &Path,
    text: &str,
    sets: &[&str],
    kill: Kill,
    from_phase_start: bool,
) -> PathBuf {
    let config = &crate::write(tmp, "run.toml", text);
    let full = tmp.join("full");
    let full = &full;
    let mut args = vec!["--config", config.to_str().unwrap(), "--quiet", "--out"];
    args.push(full.to_str().unwrap());
    for s in sets {
        args.extend(["--set", s]);
    }
    run(&args);

    let resumed = tmp.join("resumed");
    let mut with_ckpt: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    with_ckpt.push("train.checkpoint_every=1".into());
    run_and_kill(config, &with_ckpt, &resumed, kill);
    let cut = checkpoint_at(&resumed);
    let mut resumed_runs = vec![resumed.clone()];
    if from_phase_start {
        let copy = tmp.join("resumed-at-phase-start");
        std::fs::create_dir(&copy).unwrap();
        for f in std::fs::read_dir(&resumed).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
        }
        let file = copy.join("checkpoint.safetensors");
        let mut c = trainer::checkpoint::Checkpoint::load(&file).unwrap();
        assert!(c.training.take().is_some() && c.phase > 0);
        c.save(&file).unwrap();
        resumed_runs.push(copy);
    }
    for resumed in resumed_runs {
        run(&["--resume", resumed.to_str().unwrap(), "--quiet"]);
        same_results(full, &resumed, cut);
    }
    resumed
}

/// Every result file of `full` and `resumed` byte-identical.
fn same_results(full: &Path, resumed: &Path, cut: Option<(usize, Option<usize>)>) {
    for file in [
        "metrics.csv",
        "model.safetensors",
        "masks.safetensors",
        "pruning.json",
    ] {
        let (a, b) = (full.join(file), resumed.join(file));
        if !a.exists() {
            continue;
        }
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{file} differs after a kill at {cut:?} (phase, epoch) and --resume ({} vs {})",
            a.display(),
            b.display()
        );
    }
    let summary = |d: &Path| -> report::Summary { report::load(&d.join("summary.json")).unwrap() };
    let (a, b) = (summary(full), summary(resumed));
    let (a, b) = (a.finished().unwrap(), b.finished().unwrap());
    assert_eq!(a.final_evals, b.final_evals);
    assert_eq!((a.epochs, a.steps), (b.epochs, b.steps));
}

const DIGITS: &str = r#"seed = 3
[data]
name = "digits"
test_fraction = 0.2
validation_fraction = 0.15
scale = "global-minmax"
[model]
hidden = [32]
activation = "sigmoid"
[train]
epochs = 160
batch_size = 64
optimizer = "adam"
lr = 0.01
"#;

#[test]
fn gradual_taylor_killed_between_mask_updates_resumes_exactly() {
    // Updates every 37 steps: the kill lands inside a window of accumulated gradients.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = &format!(
        "{DIGITS}[pruning]\nmode = \"gradual\"\ncriterion = \"taylor\"\nscope = \"global\"\nsparsity = 0.9\nschedule = \"polynomial\"\nbegin_epoch = 5\nend_epoch = 120\nevery_steps = 37\n"
    );
    killed_and_resumed_match(tmp.path(), cfg, &[], Kill::AfterEpochs(50), false);
}

#[test]
fn set_with_cosine_lr_and_early_stopping_resumes_exactly() {
    // SET draws every growth from the pruner's generator: its position, drop/grow with
    // optimizer-state resets, the learning rate's position, early stopping's counter and best
    // model all cross the kill.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = &format!(
        "{DIGITS}lr_schedule = \"cosine\"\n[train.early_stopping]\npatience = 200\n[pruning]\nmode = \"set\"\nscope = \"erk\"\nsparsity = 0.8\nevery_steps = 20\n"
    );
    killed_and_resumed_match(tmp.path(), cfg, &[], Kill::AfterEpochs(40), false);
}

#[test]
fn lottery_killed_in_its_third_level_resumes_exactly() {
    // Phases: dense level 0, then per level rewind, ticket, control; index 8 is level 3's
    // ticket. The kill lands inside its training (best-validation record, masks held); a copy
    // resumed from the level's start must end the same (metrics.csv cut back to the boundary).
    let tmp = tempfile::tempdir().unwrap();
    let cfg = &format!(
        "{DIGITS}[pruning]\nmode = \"lottery\"\ncriterion = \"l1\"\nscope = \"layer\"\nlevels = [0.5, 0.8, 0.9]\nrewind_epoch = 2\n"
    );
    let sets = ["train.epochs=30"];
    let resumed = killed_and_resumed_match(tmp.path(), cfg, &sets, Kill::InPhase(8, 5), true);
    let report = std::fs::read_to_string(resumed.join("lottery.md")).unwrap();
    assert!(report.contains("| 3 | 10.0 |"), "{report}");
}

#[test]
fn static_pruning_killed_in_its_second_fine_tuning_resumes_exactly() {
    // Phases: train, before-pruning evaluation, then prune and fine-tune per round; index 5
    // is round 2's fine-tuning.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = &format!(
        "{DIGITS}[pruning]\nmode = \"static\"\ncriterion = \"l1\"\nscope = \"global\"\nsparsity = 0.6\nrounds = 2\nfine_tune_epochs = 40\n"
    );
    let sets = ["train.epochs=40"];
    killed_and_resumed_match(tmp.path(), cfg, &sets, Kill::InPhase(5, 5), false);
}

#[test]
fn a_search_killed_in_its_fourth_probe_resumes_exactly() {
    // Phases: train, before-pruning evaluation, probes 1.., the choice; index 5 is probe 4.
    // Probes log no epochs: the kill is timed by the checkpoint's phase. The upper end (99 %)
    // is rejected, so every probe runs.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = &format!(
        "{DIGITS}[pruning]\nmode = \"static\"\ncriterion = \"l1\"\nscope = \"global\"\nsparsity = 0.99\nfine_tune_epochs = 20\n[pruning.search]\nmetric = \"val_accuracy\"\ntolerance = 0.01\nprobes = 5\n"
    );
    let sets = ["train.epochs=40"];
    let resumed = killed_and_resumed_match(tmp.path(), cfg, &sets, Kill::InPhase(5, 3), false);
    let report: report::PruningReport = report::load(&resumed.join("pruning.json")).unwrap();
    let probes = &report.search().unwrap().probes;
    assert!(probes.len() == 5 && !probes[0].kept, "{probes:?}");
}

#[test]
fn resume_refuses_finished_edited_and_checkpointless_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::write(tmp.path(), "run.toml", DIGITS);
    let out = |name: &str| tmp.path().join(name);
    let err = |args: &[&str]| -> String {
        let o = trainer().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        String::from_utf8(o.stderr).unwrap()
    };
    // A finished 3-epoch run in `name`, with or without checkpoints; `stopped` removes its
    // summary, as a kill would have left it.
    let three_epochs = |name: &str, checkpoints: bool, stopped: bool| -> PathBuf {
        let dir = out(name);
        let mut args = vec!["--config", cfg.to_str().unwrap(), "--set", "train.epochs=3"];
        if checkpoints {
            args.extend(["--set", "train.checkpoint_every=1"]);
        }
        args.extend(["--quiet", "--out", dir.to_str().unwrap()]);
        run(&args);
        if stopped {
            std::fs::remove_file(dir.join("summary.json")).unwrap();
        }
        dir
    };

    let plain = three_epochs("plain", false, false);
    let e = err(&["--resume", plain.to_str().unwrap()]);
    assert!(
        e.contains("this run finished (summary.json says ok)"),
        "{e}"
    );
    std::fs::remove_file(plain.join("summary.json")).unwrap();
    let e = err(&["--resume", plain.to_str().unwrap()]);
    assert!(
        e.contains("no checkpoint here") && e.contains("train.checkpoint_every"),
        "{e}"
    );

    let ck = three_epochs("ck", true, true);
    let toml = ck.join("config.toml");
    let edited = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("lr = 0.01", "lr = 0.02");
    std::fs::write(&toml, edited).unwrap();
    let e = err(&["--resume", ck.to_str().unwrap()]);
    assert!(
        e.contains("changed since the checkpoint was written"),
        "{e}"
    );

    // A checkpoint whose parameters are not this network's (ids from another build).
    let other = three_epochs("other", true, true);
    let file = other.join("checkpoint.safetensors");
    let mut c = trainer::checkpoint::Checkpoint::load(&file).unwrap();
    let t = c.training.as_mut().unwrap();
    let mut values = t.model.values().clone();
    let id = *values.keys().next().unwrap();
    let v = values.remove(&id).unwrap();
    values.insert(burn::module::ParamId::from(id.val() ^ 1), v);
    t.model = pruning::Snapshot::from_values(t.step, values);
    c.save(&file).unwrap();
    let e = err(&["--resume", other.to_str().unwrap()]);
    assert!(
        e.contains("holds no values for this network's `layers."),
        "{e}"
    );

    let e = err(&["--resume", ck.to_str().unwrap(), "--seed", "4"]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = err(&[
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        "train.checkpoint_every=0",
    ]);
    assert!(e.contains("train.checkpoint_every"), "{e}");
}

#[test]
fn a_from_run_resumes_from_the_same_earlier_run() {
    // `--from` takes an earlier run's model as trained: its phases start at the evaluation
    // before pruning. A resumed run loads that model again (with the config's parameter ids)
    // and ends as the uninterrupted run did.
    let tmp = tempfile::tempdir().unwrap();
    let dense = crate::write(tmp.path(), "dense.toml", DIGITS);
    let earlier = tmp.path().join("earlier");
    let d = (dense.to_str().unwrap(), earlier.to_str().unwrap());
    run(&[
        "--config",
        d.0,
        "--set",
        "train.epochs=3",
        "--quiet",
        "--out",
        d.1,
    ]);
    let cfg = crate::write(
        tmp.path(),
        "static.toml",
        &format!(
            "{DIGITS}[pruning]\nmode = \"static\"\ncriterion = \"l1\"\nsparsity = 0.5\nrounds = 2\nfine_tune_epochs = 3\n"
        ),
    );
    let pruned = |name: &str| {
        let out = tmp.path().join(name);
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "--from",
            d.1,
            "--set",
            "train.checkpoint_every=1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        run(&args);
        out
    };
    let (full, stopped) = (pruned("full"), pruned("stopped"));
    // As a kill in the last fine-tuning leaves it: no summary yet.
    std::fs::remove_file(stopped.join("summary.json")).unwrap();
    assert_eq!(checkpoint_at(&stopped), Some((4, Some(3))));
    run(&["--resume", stopped.to_str().unwrap(), "--quiet"]);
    same_results(&full, &stopped, None);
}

#[test]
fn a_conv_run_with_batch_norm_killed_in_training_resumes_exactly() {
    // The batch norm's running statistics cross the kill with the weights; gradual pruning
    // of kernels and channels' dense slices by Taylor scores, updates every 13 steps; a
    // dropout layer draws the same masks after the resume.
    let tmp = tempfile::tempdir().unwrap();
    let dense = "{ type = \"dense\", units = 32 },";
    let layers = crate::conv::LAYERS.replace(
        dense,
        &format!("{dense}\n  {{ type = \"dropout\", prob = 0.2 }},"),
    );
    let cfg = &format!(
        "seed = 5\n[data]\nname = \"digits\"\ntest_fraction = 0.2\nvalidation_fraction = 0.1\nscale = \"global-minmax\"\n[model]\n{}\n[train]\nepochs = 14\nbatch_size = 64\nlr = 0.01\n[pruning]\nmode = \"gradual\"\ncriterion = \"taylor\"\nsparsity = 0.7\nbegin_epoch = 2\nend_epoch = 10\nevery_steps = 13\n",
        layers
    );
    killed_and_resumed_match(tmp.path(), cfg, &[], Kill::AfterEpochs(6), false);
}
