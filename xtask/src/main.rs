//! Project automation: `cargo xtask ci` runs exactly what CI (`.ci/run`) runs.

use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod results;
mod slurm;

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .with_context(|| format!("cannot start cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; a failure carries its stderr.
fn output(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {cmd}"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Cargo's target folder.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .unwrap_or_else(|| "target".into())
        .into()
}

fn lint() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    // The workspace build has wgpu (crates/wgpu-tests); the trainer as `cargo run -p trainer`
    // builds it, without wgpu, is linted on its own so code only that build compiles is too.
    cargo(&[
        "clippy",
        "-p",
        "trainer",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
}

/// One training run of the GPU benchmark, as summary.json records it.
struct BenchRun {
    config: &'static str,
    backend: &'static str,
    device: String,
    epochs: f64,
    wall_s: f64,
    test_accuracy: f64,
}

/// One training run of the GPU benchmark: `configs/{config}.toml` on `backend`, in
/// `root/{config}-{backend}` (replacing only a folder Lopper made).
fn gpu_bench_run(
    exe: &std::path::Path,
    root: &std::path::Path,
    config: &'static str,
    backend: &'static str,
    quick: bool,
) -> Result<BenchRun> {
    let out = root.join(format!("{config}-{backend}"));
    if out.exists() {
        // Only a run folder the trainer made (its marker file) is replaced.
        if !out.join(".lopper").is_file() {
            bail!(
                "{} exists and was not made by Lopper; move it away",
                out.display()
            );
        }
        std::fs::remove_dir_all(&out)?;
    }
    let mut cmd = Command::new(exe);
    cmd.args([
        "--config",
        &format!("configs/{config}.toml"),
        "--backend",
        backend,
    ])
    .arg("--out")
    .arg(&out)
    .arg("--quiet");
    if quick {
        cmd.args(["--set", "train.epochs=2"]);
        if config.ends_with("gmp") {
            cmd.args([
                "--set",
                "pruning.begin_epoch=0",
                "--set",
                "pruning.end_epoch=1",
            ]);
        }
    }
    eprintln!("$ {cmd:?}");
    if !cmd.status()?.success() {
        bail!(
            "{config} on {backend} failed; its run folder is {}",
            out.display()
        );
    }
    let path = out.join("summary.json");
    let s: report::Summary = report::load(&path)?;
    let f = s
        .finished()
        .with_context(|| format!("{}: status {}", path.display(), s.status()))?;
    Ok(BenchRun {
        config,
        backend,
        device: s.device.name.clone(),
        epochs: f.epochs as f64,
        wall_s: f.wall_time_s,
        test_accuracy: f.final_evals.accuracy("test").unwrap_or(f64::NAN),
    })
}

fn gpu_bench(quick: bool) -> Result<()> {
    cargo(&["build", "-p", "trainer", "--release", "--features", "wgpu"])?;
    let exe = target_dir().join("release/trainer");
    let exe = exe.as_path();
    let status = Command::new(exe).arg("devices").status()?;
    if !status.success() {
        bail!("no wgpu adapter: see the error above");
    }
    let root = std::path::Path::new("runs/gpu-bench");
    let mut runs = Vec::new();
    for config in ["fashion-mnist", "fashion-mnist-gmp"] {
        for backend in ["wgpu", "ndarray"] {
            runs.push(gpu_bench_run(exe, root, config, backend, quick)?);
        }
    }
    let mut table = String::from(
        "| config | backend | device | epochs | wall s | s per epoch (incl. loading, evaluation) | test accuracy |\n|---|---|---|---:|---:|---:|---:|\n",
    );
    for r in &runs {
        table += &format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2}% |\n",
            r.config,
            r.backend,
            r.device,
            r.epochs,
            r.wall_s,
            r.wall_s / r.epochs,
            100.0 * r.test_accuracy
        );
    }
    std::fs::write(root.join("results.md"), &table)?;
    print!("{table}");
    if !quick {
        // What pruning adds per step on the GPU, mask updates (host selection) included.
        eprintln!(
            "$ LOPPER_BENCH_BACKEND=wgpu cargo bench -p trainer --features wgpu --bench pruning_overhead"
        );
        let status = Command::new(env!("CARGO"))
            .args([
                "bench",
                "-p",
                "trainer",
                "--features",
                "wgpu",
                "--bench",
                "pruning_overhead",
            ])
            .env("LOPPER_BENCH_BACKEND", "wgpu")
            .status()?;
        if !status.success() {
            bail!("the wgpu pruning-overhead benchmark failed");
        }
    }
    Ok(())
}

const USAGE: &str =
    "usage: cargo xtask <ci|lint|bench|results|gpu-bench [--quick]|slurm-up|slurm-down>
  ci         lint, a one-node Slurm up, all tests (the wgpu ones included), Slurm down: what
             .ci/run does
  lint       fmt check, and clippy with warnings denied: the workspace (wgpu included), and
             the trainer as the README's first command builds it (without wgpu)
  bench      every benchmark with PyTorch's twins in the same sitting (python3 or $LOPPER_PYTHON
             must import torch): training steps (784-300-100-10 and LeNet-5, ndarray and flex),
             the marginal epoch of fashion-mnist.toml at batch 128, into runs/bench/table.md;
             then dynamic-pruning overhead and sparse inference (dense / CSR / compacted)
  results   the Fashion-MNIST table of docs/results.md: one sweep per configs/results/*.toml (dense,
             one-shot, gradual, lottery + reinit control, RigL, random at 50–98 %, seeds 0–2),
             merged into runs/results/table.md; resumable (about an hour on 2 cores)
  gpu-bench  build with wgpu, train configs/fashion-mnist.toml and fashion-mnist-gmp.toml on
             wgpu and on ndarray, and tabulate epoch times and accuracies side by side
             (runs/gpu-bench/results.md); --quick: one epoch each, to check a machine works
  slurm-up   a one-node Slurm on this machine (installs slurm-wlm and munge when missing, writes
             /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd; waits for the node)
  slurm-down stop it";

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("lint") => lint(),
        Some("ci") => {
            lint()?;
            // The Slurm executor's test runs against a real one-node Slurm (and fails, not
            // skips, without it).
            slurm::up()?;
            // SAFETY: set before any thread of this process is started. LOPPER_WGPU: the wgpu
            // tests (in the workspace build through crates/wgpu-tests) fail without an adapter.
            unsafe {
                std::env::set_var("LOPPER_SLURM", "1");
                std::env::set_var("LOPPER_WGPU", "1");
            }
            // The README's test command, word for word.
            let tested = cargo(&["test", "--workspace"]);
            slurm::down()?;
            tested
        }
        Some("results") => results::run(),
        Some("slurm-up") => slurm::up(),
        Some("slurm-down") => slurm::down(),
        Some("gpu-bench") => gpu_bench(std::env::args().nth(2).as_deref() == Some("--quick")),
        Some("bench") => bench::run(),
        _ => bail!("{USAGE}"),
    }
}
