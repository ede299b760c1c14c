//! Nothing touched outside its folder, one writer per folder, run folders that work from anywhere:
//! the trainer and its sweeps run as a careless or hostile user would run them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::write;

fn trainer(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.current_dir(cwd);
    c
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A digits project of `epochs` epochs, the set as a CSV named relative to the config
/// (`data.csv` beside it). The tests that signal a running process need runs long enough that
/// the signal lands mid-run.
fn project(dir: &Path, epochs: usize, train_extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        crate::repo().join("datasets/digits.csv"),
        dir.join("data.csv"),
    )
    .unwrap();
    write(
        dir,
        "digits.toml",
        &format!(
            "seed = 0\n[data]\nname = \"csv\"\npath = \"data.csv\"\ntarget = \"digit\"\n\
             test_fraction = 0.2\nscale = \"global-minmax\"\n[model]\nhidden = [32]\n\
             [train]\nepochs = {epochs}\nbatch_size = 64\nlr = 0.01\n{train_extra}\n"
        ),
    )
}

fn epochs_logged(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .map(|t| t.lines().filter(|l| l.contains(",train,loss,")).count())
        .unwrap_or(0)
}

/// Waits until `ready` holds, failing the test if `child` ends first.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process ended before {what}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_second_process_on_a_running_folder_is_refused_and_the_first_finishes_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let epochs = 1200;
    let config = project(&tmp.path().join("p"), epochs, "checkpoint_every = 1");
    let run = tmp.path().join("run");
    let mut first = trainer(tmp.path())
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .arg("--quiet")
        .spawn()
        .unwrap();
    wait_for(&mut first, "its first checkpoint", || {
        run.join("checkpoint.safetensors").is_file()
    });
    let second = trainer(tmp.path())
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    let e = err(&second);
    assert!(
        e.contains("in use by another Lopper process")
            && e.contains(&format!("pid {}", first.id())),
        "{e}"
    );
    assert!(first.wait().unwrap().success());
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(!metrics.contains('\0'), "NUL bytes in metrics.csv");
    assert_eq!(epochs_logged(&run), epochs, "every epoch logged once");
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"ok\""), "{summary}");
}

#[test]
fn a_run_folder_moved_elsewhere_resumes_compacts_and_infers() {
    let tmp = tempfile::tempdir().unwrap();
    // The config names its data relative to itself, and the run starts from another folder.
    let config = project(
        &tmp.path().join("project"),
        60,
        "checkpoint_every = 1\n[pruning]\ncriterion = \"l1\"\ngranularity = \"neuron\"\nsparsity = 0.5",
    );
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let run = tmp.path().join("run");
    // Named relative to the working directory, as a user types it.
    let relative = Path::new("..").join(config.strip_prefix(tmp.path()).unwrap());
    let mut child = trainer(&elsewhere)
        .arg("--config")
        .arg(&relative)
        .arg("--out")
        .arg(&run)
        .arg("--quiet")
        .spawn()
        .unwrap();
    wait_for(&mut child, "two epochs and a checkpoint", || {
        run.join("checkpoint.safetensors").is_file() && epochs_logged(&run) >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // Moved and renamed, then used from a third folder.
    let moved = tmp.path().join("archive").join("renamed-run");
    std::fs::create_dir(tmp.path().join("archive")).unwrap();
    std::fs::rename(&run, &moved).unwrap();
    let third = tmp.path().join("third");
    std::fs::create_dir(&third).unwrap();
    ok(&trainer(&third)
        .arg("--resume")
        .arg(&moved)
        .arg("--quiet")
        .output()
        .unwrap());
    assert!(
        std::fs::read_to_string(moved.join("summary.json"))
            .unwrap()
            .contains("\"status\": \"ok\"")
    );
    ok(&trainer(&third).arg("compact").arg(&moved).output().unwrap());
    let infer = ok(&trainer(&third)
        .args(["infer"])
        .arg(&moved)
        .args(["--format", "csr"])
        .output()
        .unwrap());
    assert!(infer.contains("accuracy"), "{infer}");
}

fn sweep(cwd: &Path, config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = trainer(cwd);
    c.arg("sweep")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

#[test]
fn sweep_names_come_from_its_folder_only_and_repeats_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = project(
        &tmp.path().join("p"),
        2,
        "[pruning]\ncriterion = \"l1\"\nsparsity = 0.5",
    );
    // A folder that is not Lopper's: a sweep neither writes into it nor deletes from it.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    write(&theirs, "thesis.tex", "years of work");
    let e = err(&sweep(tmp.path(), &config, &theirs, &["--seeds", "0"])
        .output()
        .unwrap());
    assert!(e.contains("was not made by Lopper"), "{e}");
    let names: Vec<_> = std::fs::read_dir(&theirs).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing written into a foreign folder");

    // A grid key with an absolute path in it (no dots, so all of it is the key's last part)
    // stays a name inside the sweep folder: the point folder it would have named, which exists
    // outside and looks half-written, is neither deleted nor written to.
    let base = std::env::temp_dir().join(format!("lopper-victim-{}", std::process::id()));
    let victim = PathBuf::from(format!("{}-0.5", base.display())).join("seed-0");
    std::fs::create_dir_all(&victim).unwrap();
    write(&victim, "keep.txt", "x");
    let out = tmp.path().join("sweep");
    let key = format!("--grid=pruning.layer_factor.{}=0.5", base.display());
    // The sweep runs (its point then fails: no such layer) — inside its own folder.
    let e = err(&sweep(tmp.path(), &config, &out, &[&key, "--seeds", "0"])
        .output()
        .unwrap());
    assert!(e.contains("sweep points failed"), "{e}");
    let intact =
        victim.join("keep.txt").is_file() && std::fs::read_dir(&victim).unwrap().count() == 1;
    std::fs::remove_dir_all(victim.parent().unwrap()).unwrap();
    assert!(intact, "a folder outside the sweep was touched");
    for entry in walk(&out) {
        assert!(entry.starts_with(&out), "{} outside", entry.display());
    }

    // Seeds or grid values given twice would run one folder twice; the same value written two
    // ways is the same experiment.
    let refusals: [(&[&str], &str); 3] = [
        (&["--seeds", "0,0"], "seed 0 is given twice"),
        (
            &["--grid", "pruning.sparsity=0.5,0.5"],
            "lists the value 0.5 twice",
        ),
        (
            &["--grid", "pruning.sparsity=0.5,5e-1"],
            "are the same experiment",
        ),
    ];
    for (i, (args, expected)) in refusals.iter().enumerate() {
        let folder = tmp.path().join(format!("repeat-{i}"));
        let e = err(&sweep(tmp.path(), &config, &folder, args).output().unwrap());
        assert!(e.contains(expected), "{args:?}: {e}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn a_sweep_stopped_with_ctrl_c_leaves_no_orphan_and_a_rerun_gives_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let config = project(&tmp.path().join("p"), 1000, "");
    let args = ["--seeds", "0,1", "--jobs", "2"];
    let reference = tmp.path().join("reference");
    ok(&sweep(tmp.path(), &config, &reference, &args)
        .output()
        .unwrap());

    let out = tmp.path().join("stopped");
    // In a process group of its own, as a shell's foreground job is: Ctrl-C there is SIGINT
    // to the whole group. A shell also starts a foreground job with SIGINT's default action,
    // whereas this test may inherit it ignored (a job started with `&` by a script does, and
    // the ignored disposition survives exec): that is restored here, or the sweep would not
    // hear the signal and its points would run to their end.
    let mut cmd = sweep(tmp.path(), &config, &out, &args);
    // SAFETY: between fork and exec the closure calls only `signal`, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut parent = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let points: Vec<PathBuf> = ["seed-0", "seed-1"]
        .iter()
        .map(|s| out.join("config/base").join(s))
        .collect();
    wait_for(&mut parent, "both points train", || {
        points.iter().all(|p| epochs_logged(p) >= 1)
    });
    let status = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", parent.id())])
        .status()
        .unwrap();
    assert!(status.success());
    parent.wait().unwrap();
    // The points die with their sweep: within a few seconds nobody holds their folders.
    let start = Instant::now();
    while points.iter().any(|p| trainer::folder::holder(p).is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a point process outlived its sweep"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each point heard its sweep die (SIGHUP) and ended at its epoch's end, saying so.
    for p in &points {
        let summary = std::fs::read_to_string(p.join("summary.json")).unwrap();
        assert!(summary.contains("\"status\": \"interrupted\""), "{summary}");
    }

    // Run again at once: the half-written points start afresh and match the reference.
    ok(&sweep(tmp.path(), &config, &out, &args).output().unwrap());
    let table = |dir: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let t = header.iter().position(|c| *c == "wall_s").unwrap();
        text.lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(t);
                f.join(",")
            })
            .collect()
    };
    assert_eq!(table(&out), table(&reference));
}

#[test]
fn ctrl_c_ends_a_run_interrupted_with_a_checkpoint_it_resumes_from_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let config = project(&tmp.path().join("p"), 600, "checkpoint_every = 1000");
    let whole = tmp.path().join("whole");
    ok(&trainer(tmp.path())
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&whole)
        .arg("--quiet")
        .output()
        .unwrap());

    let run = tmp.path().join("run");
    let mut child = trainer(tmp.path())
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .arg("--quiet")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "three epochs", || epochs_logged(&run) >= 3);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"interrupted\""), "{summary}");
    // checkpoint_every = 1000 never fires by itself: this checkpoint is the interruption's.
    assert!(run.join("checkpoint.safetensors").is_file());
    ok(&trainer(tmp.path())
        .arg("--resume")
        .arg(&run)
        .arg("--quiet")
        .output()
        .unwrap());
    for f in ["metrics.csv", "model.safetensors"] {
        assert!(
            std::fs::read(run.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(),
            "{f} differs from the run that was never stopped"
        );
    }
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_run_naming_the_file_and_keeps_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // A developer's unprivileged run cannot mount; CI (root with CAP_SYS_ADMIN) must.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (root with CAP_SYS_ADMIN) for this test"
        );
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    }
    let _disk = SmallDisk(mount.clone());
    // 64-256-10: the model file (76 KB) cannot fit in 64 KB; config and metrics can.
    let config = project(&tmp.path().join("p"), 2, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("hidden = [32]", "hidden = [256]");
    std::fs::write(&config, text).unwrap();
    let run = mount.join("run");
    let out = trainer(tmp.path())
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .arg("--quiet")
        .output()
        .unwrap();
    let e = err(&out);
    assert!(
        e.contains("model.safetensors") && e.contains("No space left on device"),
        "{e}"
    );
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"status\": \"failed\"") && summary.contains("No space left on device"),
        "{summary}"
    );
    assert_eq!(epochs_logged(&run), 2, "metrics.csv intact");
    assert!(
        std::fs::read_to_string(run.join("config.toml"))
            .unwrap()
            .contains("hidden = [256]")
    );
    assert!(
        !run.join("model.safetensors").exists(),
        "no truncated model file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A tensor of a hand-written model file: name, shape, values.
type Tensor = (&'static str, Vec<usize>, Vec<f32>);

/// Writes a Lopper-format model file with the given tensors.
fn model_file(path: &Path, tensors: &[Tensor]) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.to_string(), s.clone(), b)
        })
        .collect();
    let views = bytes.iter().map(|(n, s, b)| {
        (
            n.clone(),
            TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
        )
    });
    let meta = std::collections::HashMap::from([("activation".to_string(), "sigmoid".to_string())]);
    trainer::export::write_safetensors(views, meta, path).unwrap();
}

#[test]
fn broken_model_files_are_errors_in_compact_infer_and_sensitivity() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(&trainer(&crate::repo())
        .args(["--config", "configs/xor.toml", "--quiet", "--out"])
        .arg(&run)
        .output()
        .unwrap());
    let w0 = || ("layers.0.weight", vec![3, 2], vec![0.5; 6]);
    let b0 = || ("layers.0.bias", vec![3], vec![0.0; 3]);
    let w1 = || ("layers.1.weight", vec![1, 3], vec![0.5; 3]);
    let b1 = || ("layers.1.bias", vec![1], vec![0.0]);
    let cases: Vec<(&str, Vec<Tensor>)> = vec![
        (
            "NaN",
            vec![
                (
                    "layers.0.weight",
                    vec![3, 2],
                    vec![0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5],
                ),
                b0(),
                w1(),
                b1(),
            ],
        ),
        (
            "has shape [2] but",
            vec![w0(), ("layers.0.bias", vec![2], vec![0.0; 2]), w1(), b1()],
        ),
        (
            "do not form a chain",
            vec![
                w0(),
                b0(),
                ("layers.1.weight", vec![1, 4], vec![0.5; 4]),
                b1(),
            ],
        ),
        (
            "without gaps",
            vec![
                w0(),
                b0(),
                ("layers.2.weight", vec![1, 3], vec![0.5; 3]),
                ("layers.2.bias", vec![1], vec![0.0]),
            ],
        ),
        (
            "the run's data has 2 features",
            vec![
                ("layers.0.weight", vec![3, 5], vec![0.5; 15]),
                b0(),
                w1(),
                b1(),
            ],
        ),
    ];
    for (expected, tensors) in cases {
        model_file(&run.join("model.safetensors"), &tensors);
        for args in [&["compact"][..], &["infer"], &["sensitivity"]] {
            let out = trainer(tmp.path()).args(args).arg(&run).output().unwrap();
            let e = err(&out);
            assert!(
                e.contains(expected) && e.contains("model.safetensors"),
                "{args:?} with {expected}: {e}"
            );
        }
    }
}

#[test]
fn pruning_every_unit_with_allow_empty_ends_in_a_constant_network_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(&trainer(&crate::repo())
        .args(["--config", "configs/xor.toml", "--quiet", "--out"])
        .arg(&run)
        .args([
            "--set",
            "pruning.alpha=1.0",
            "--set",
            "pruning.allow_empty=true",
        ])
        .args(["--set", "pruning.neuron_side=\"both\""])
        .output()
        .unwrap());
    ok(&trainer(tmp.path())
        .arg("compact")
        .arg(&run)
        .output()
        .unwrap());
    ok(&trainer(tmp.path())
        .args(["infer"])
        .arg(&run)
        .args(["--format", "compact"])
        .output()
        .unwrap());
}

#[test]
fn trainer_prune_refuses_masks_biases_and_nan_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let w = || ("fc.weight", vec![2, 2], vec![1.0, -2.0, 3.0, 0.5]);
    let cases: Vec<(&str, Vec<Tensor>, &[&str])> = vec![
        (
            "already has `fc.weight_mask`",
            vec![w(), ("fc.weight_mask", vec![2, 2], vec![1.0; 4])],
            &[],
        ),
        (
            "only 2-D (dense) and 4-D (convolution) float32 weights",
            vec![w(), ("fc.bias", vec![2], vec![0.0; 2])],
            &["--config", "bias.toml"],
        ),
        (
            "NaN",
            vec![("fc.weight", vec![2, 2], vec![1.0, f32::NAN, 3.0, 0.5])],
            &[],
        ),
    ];
    write(
        tmp.path(),
        "bias.toml",
        "[data]\nname = \"xor\"\n[pruning]\ncriterion = \"l1\"\nsparsity = 0.5\ninclude = [\"fc.bias\"]\n",
    );
    for (expected, tensors, extra) in cases {
        let input = tmp.path().join("in.safetensors");
        model_file(&input, &tensors);
        let out = trainer(tmp.path())
            .arg("prune")
            .arg(&input)
            .args(["--out", "out.safetensors", "--sparsity", "0.5"])
            .args(extra)
            .output()
            .unwrap();
        let e = err(&out);
        assert!(
            e.contains(expected) && e.contains("in.safetensors"),
            "{expected}: {e}"
        );
    }
}

#[test]
fn a_gradual_schedule_that_never_fires_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let stdout = ok(&trainer(&crate::repo())
        .args(["--config", "configs/xor-dynamic.toml", "--out"])
        .arg(&run)
        .args([
            "--set",
            "pruning.begin_step=2000",
            "--set",
            "pruning.end_step=3000",
        ])
        .output()
        .unwrap());
    assert!(
        stdout.contains("warning: the gradual schedule never pruned"),
        "{stdout}"
    );
    let report = std::fs::read_to_string(run.join("pruning.json")).unwrap();
    assert!(report.contains("never pruned"), "{report}");
}

#[test]
fn a_network_or_data_set_too_big_for_memory_is_a_config_error_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    for (set, key) in [
        ("model.hidden=[4000000000]", "`model.hidden`"),
        ("data.n=100000000000", "`data.n`"),
    ] {
        let config = if key == "`data.n`" {
            "configs/moons.toml"
        } else {
            "configs/xor.toml"
        };
        let out = trainer(&crate::repo())
            .args(["--config", config, "--quiet", "--set", set, "--out"])
            .arg(tmp.path().join("run"))
            .output()
            .unwrap();
        let e = err(&out);
        assert!(
            e.contains(key) && e.contains("of memory, but") && e.contains("available"),
            "{e}"
        );
        assert!(
            !tmp.path().join("run").exists(),
            "no run folder for a run that cannot start"
        );
    }
}

#[test]
fn trainer_prune_never_replaces_a_file_and_infer_refuses_zero_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.safetensors");
    model_file(
        &input,
        &[("fc.weight", vec![2, 2], vec![1.0, -2.0, 3.0, 0.5])],
    );
    let before = std::fs::read(&input).unwrap();
    let out = trainer(tmp.path())
        .arg("prune")
        .arg(&input)
        .arg("--out")
        .arg(&input)
        .args(["--sparsity", "0.5"])
        .output()
        .unwrap();
    assert!(err(&out).contains("never replaces a file"));
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is untouched"
    );

    let run = tmp.path().join("run");
    ok(&trainer(&crate::repo())
        .args(["--config", "configs/xor.toml", "--quiet", "--out"])
        .arg(&run)
        .output()
        .unwrap());
    for flag in ["--batch", "--repeats"] {
        let out = trainer(tmp.path())
            .arg("infer")
            .arg(&run)
            .args([flag, "0"])
            .output()
            .unwrap();
        assert!(err(&out).contains("0 is not in 1.."), "{flag}");
    }
}

#[test]
fn a_corrupted_checkpoint_is_refused_on_resume_not_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(&trainer(&crate::repo())
        .args(["--config", "configs/seed-xor.toml", "--quiet", "--out"])
        .arg(&run)
        .args([
            "--set",
            "train.checkpoint_every=1",
            "--set",
            "train.epochs=5",
        ])
        .output()
        .unwrap());
    // As a kill would have left it, with one sample index out of range in the checkpoint (a
    // run without pruning: one phase, so the last checkpoint is inside its training).
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let path = run.join("checkpoint.safetensors");
    let mut c = trainer::checkpoint::Checkpoint::load(&path).unwrap();
    c.training.as_mut().unwrap().order[0] = 1_000_000;
    c.save(&path).unwrap();
    let e = err(&trainer(tmp.path())
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap());
    assert!(
        e.contains("sample order is not an order of the 5 training samples"),
        "{e}"
    );
}

#[test]
fn trainer_prune_by_neuron_refuses_a_bias_that_does_not_fit_its_units() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.safetensors");
    model_file(
        &input,
        &[
            (
                "fc1.weight",
                vec![3, 2],
                vec![1.0, -2.0, 3.0, 0.5, 0.1, 0.2],
            ),
            ("fc1.bias", vec![2], vec![0.0; 2]),
            ("fc2.weight", vec![1, 3], vec![1.0, 2.0, 3.0]),
        ],
    );
    let out = trainer(tmp.path())
        .arg("prune")
        .arg(&input)
        .args([
            "--out",
            "out.safetensors",
            "--granularity",
            "neuron",
            "--sparsity",
            "0.5",
        ])
        .output()
        .unwrap();
    let e = err(&out);
    assert!(
        e.contains("`fc1.bias`") && e.contains("does not fit"),
        "{e}"
    );
    assert!(!tmp.path().join("out.safetensors").exists());
}
