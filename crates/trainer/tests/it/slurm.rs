//! Sweeps on Slurm, against a real single-node Slurm (`cargo xtask slurm-up`; `.ci/run` brings
//! one up and sets `LOPPER_SLURM=1`, under which a missing Slurm fails the test instead of
//! skipping it).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use report::ResultRow;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Whether a Slurm answers here; without one the test is skipped, unless CI says it is up.
fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("idle"));
    if !up {
        assert!(
            std::env::var_os("LOPPER_SLURM").is_none(),
            "LOPPER_SLURM is set but no Slurm node is idle: run `cargo xtask slurm-up`"
        );
        eprintln!("skipped: no Slurm here (cargo xtask slurm-up starts one)");
    }
    up
}

/// Long enough (450 epochs, about 3 s on Flex) that a task can be cancelled mid-run;
/// checkpoints every epoch.
const DIGITS: &str = r#"seed = 1
[data]
name = "digits"
test_fraction = 0.2
validation_fraction = 0.15
scale = "global-minmax"
[model]
hidden = [32]
activation = "sigmoid"
[train]
epochs = 450
batch_size = 64
optimizer = "adam"
lr = 0.01
checkpoint_every = 1
[pruning]
mode = "static"
criterion = "l1"
scope = "global"
sparsity = 0.5
fine_tune_epochs = 3
"#;

fn sweep(config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = trainer();
    c.args(["sweep", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out);
    c.args([
        "--grid",
        "pruning.sparsity=0.5,0.9",
        "--seeds",
        "1,2",
        "--jobs",
        "2",
        "--quiet",
    ]);
    c.args(extra);
    c
}

/// results.csv without the wall times, which differ run to run.
fn numbers(dir: &Path) -> Vec<ResultRow> {
    let (_, mut rows) = report::results::read(&dir.join("results.csv")).unwrap();
    for r in &mut rows {
        r.wall_s = 0.0;
    }
    rows
}

fn squeue(job: &str, state: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-j", job, "-t", state, "-o", "%i"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn a_slurm_sweep_equals_the_local_one_and_completes_a_cancelled_task_when_rerun() {
    if !slurm_up() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::write(tmp.path(), "digits.toml", DIGITS);
    let local = tmp.path().join("local");
    let started = Instant::now();
    ok(sweep(&config, &local, &[]).output().unwrap());
    let local_s = started.elapsed().as_secs_f64();

    // Submitted without waiting; one running task cancelled once it has a checkpoint.
    let on_slurm = tmp.path().join("slurm");
    let started = Instant::now();
    let said = ok(sweep(&config, &on_slurm, &["--executor", "slurm"])
        .output()
        .unwrap());
    let job = said
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert!(
        said.starts_with("submitted job array ") && said.contains("6 of 6 points"),
        "{said}"
    );
    let cancelled = loop {
        let running = squeue(&job, "RUNNING");
        // Task i runs point i: seed 1's dense, 0.5, 0.9, then seed 2's.
        let dirs = [
            "dense/seed-1",
            "config/sparsity-0.5/seed-1",
            "config/sparsity-0.9/seed-1",
            "dense/seed-2",
            "config/sparsity-0.5/seed-2",
            "config/sparsity-0.9/seed-2",
        ];
        let mid_run = running.iter().find(|t| {
            let i: usize = t.rsplit('_').next().unwrap().parse().unwrap();
            // Well inside its 450 epochs of training: the cancel cannot miss it.
            let ckpt = on_slurm.join(dirs[i]).join("checkpoint.safetensors");
            let c = trainer::checkpoint::Checkpoint::load(&ckpt).ok();
            c.is_some_and(|c| c.phase == 0 && c.training.is_some_and(|t| t.epoch < 300))
        });
        if let Some(task) = mid_run
            && Command::new("scancel")
                .arg(task)
                .status()
                .unwrap()
                .success()
        {
            break task.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no task ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    while !squeue(&job, "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the array did not end"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Collecting now says what is missing.
    let e = err(trainer()
        .args(["sweep", "--collect"])
        .arg(&on_slurm)
        .output()
        .unwrap());
    assert!(e.contains("1 of 6 sweep points failed"), "{e}");
    assert!(
        e.contains(&format!(
            "(task {}): CANCELLED",
            cancelled.rsplit('_').next().unwrap()
        )),
        "{e}"
    );
    // The same command again submits the cancelled point alone; it resumes and the sweep
    // ends number for number as the local one.
    let said = ok(
        sweep(&config, &on_slurm, &["--executor", "slurm", "--wait"])
            .output()
            .unwrap(),
    );
    assert!(
        said.contains("1 of 6 points (5 already finished)"),
        "{cancelled}: {said}"
    );
    let slurm_s = started.elapsed().as_secs_f64();
    assert_eq!(numbers(&local), numbers(&on_slurm));
    eprintln!(
        "digits sweep, 6 points: local {local_s:.1} s, Slurm {slurm_s:.1} s (with one cancel and a resubmission)"
    );

    // A rejected submission is an error quoting sbatch.
    let bad = tmp.path().join("bad");
    let e = err(sweep(
        &config,
        &bad,
        &["--executor", "slurm", "--slurm-arg=--partition=nowhere"],
    )
    .output()
    .unwrap());
    assert!(
        e.contains("`sbatch") && e.contains("was refused") && e.contains("partition"),
        "{e}"
    );
}

#[test]
fn without_slurm_or_a_shared_folder_the_errors_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::write(tmp.path(), "digits.toml", DIGITS);
    let e = err(
        sweep(&config, &tmp.path().join("s"), &["--executor", "slurm"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert!(e.contains("`sbatch` is not on PATH"), "{e}");
    // A task on a node that does not see the sweep folder.
    let e = err(trainer()
        .args(["sweep-point", "/nonexistent/sweep", "0"])
        .output()
        .unwrap());
    assert!(
        e.contains("the sweep folder /nonexistent/sweep is not visible on this node")
            && e.contains("a file system every node mounts"),
        "{e}"
    );
    // Points run and collected later read the config the sweep was planned from: an edit
    // in between is refused, not silently swept.
    let two_epochs = DIGITS.replace("epochs = 450", "epochs = 2");
    let quick = crate::write(tmp.path(), "quick.toml", &two_epochs);
    let dir = tmp.path().join("quick");
    let mut local = trainer();
    local.args([
        "sweep",
        "--grid",
        "pruning.sparsity=0.5",
        "--seeds",
        "1",
        "--quiet",
    ]);
    ok(local
        .arg("--config")
        .arg(&quick)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap());
    let collect = || {
        let mut c = trainer();
        c.args(["sweep", "--quiet", "--collect"]).arg(&dir);
        c.output().unwrap()
    };
    ok(collect());
    std::fs::write(&quick, DIGITS.replace("epochs = 450", "epochs = 3")).unwrap();
    let e = err(collect());
    assert!(e.contains("quick.toml changed since the sweep in"), "{e}");
    let e = err(trainer()
        .args(["sweep", "--wait", "--config"])
        .arg(&config)
        .output()
        .unwrap());
    assert!(
        e.contains("--wait and --slurm-arg go with --executor slurm"),
        "{e}"
    );
}
