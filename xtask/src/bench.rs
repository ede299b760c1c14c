//! `cargo xtask bench`: every benchmark, and PyTorch's twins in the same sitting, into one table
//! of ratios (`runs/bench/table.md`). Machines differ by tens of percent, so a figure is only
//! ever quoted as a ratio against PyTorch measured minutes apart on the same machine.
//!
//! PyTorch is whatever `python3` (or `$LOPPER_PYTHON`) imports; the table says which version.
//! Both sides get the same two threads: PyTorch's scripts set them, and Burn's thread pool is
//! held to them with `RAYON_NUM_THREADS` and ndarray's GEMM with `MATMUL_NUM_THREADS` (this
//! process's, which its children inherit).

/// Threads on both sides.
const THREADS: &str = "2";

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::cargo;

/// The Python that imports torch, and torch's version.
fn python() -> Result<(String, String)> {
    let python = std::env::var("LOPPER_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .with_context(|| format!("cannot start {python}"))?;
    if !out.status.success() {
        bail!(
            "{python} cannot import torch, and the table compares against it: install it (`python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch`) and run `LOPPER_PYTHON=/tmp/torch/bin/python cargo xtask bench`"
        );
    }
    Ok((
        python,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// Runs a PyTorch script and returns its stdout.
fn torch_script(python: &str, script: &str, args: &[&str]) -> Result<String> {
    eprintln!("$ {python} {script} {}", args.join(" "));
    let text = crate::output(python, &[&[script], args].concat())?;
    eprint!("{text}");
    Ok(text)
}

/// The number after `key` in `text` (`median 3.129 ms/step` → 3.129 for key `median`).
fn number_after(text: &str, key: &str) -> Result<f64> {
    let rest = text
        .split(key)
        .nth(1)
        .with_context(|| format!("no `{key}` in {text:?}"))?;
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .ok()
        .with_context(|| format!("no number after `{key}` in {text:?}"))
}

/// Criterion's median of benchmark `id` (the folder it writes under target/criterion), in ms,
/// written after `since` (an older file is a benchmark that did not run this time).
fn criterion_ms(id: &str, since: SystemTime) -> Result<f64> {
    let path = crate::target_dir()
        .join("criterion")
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: did the benchmark run?", path.display()))?;
    if std::fs::metadata(&path)?.modified()? < since {
        bail!(
            "{}: left by an earlier sitting; the benchmark did not run now (is its backend in this build?)",
            path.display()
        );
    }
    let median = text
        .split("\"median\"")
        .nth(1)
        .with_context(|| format!("{}: no median", path.display()))?;
    Ok(number_after(median, "\"point_estimate\":")? / 1e6)
}

/// Wall seconds of the release trainer on `configs/fashion-mnist.toml` at batch 128 for
/// `epochs` epochs (data loading and start-up included; they cancel in a difference), in a
/// run folder of its own that it removes afterwards.
fn trainer_seconds(exe: &Path, root: &Path, epochs: usize) -> Result<f64> {
    let out = root.join(format!("fashion-mnist-{epochs}-{}", std::process::id()));
    if out.exists() {
        bail!("{} exists; move it away", out.display());
    }
    let mut cmd = Command::new(exe);
    cmd.args(["--config", "configs/fashion-mnist.toml", "--quiet"])
        .args(["--set", "train.batch_size=128"])
        .args(["--set", &format!("train.epochs={epochs}")])
        .arg("--out")
        .arg(&out);
    eprintln!("$ {cmd:?}");
    let t = Instant::now();
    if !cmd.status()?.success() {
        bail!(
            "the Fashion-MNIST run failed; its folder is {}",
            out.display()
        );
    }
    let seconds = t.elapsed().as_secs_f64();
    // This process made it (it did not exist above).
    std::fs::remove_dir_all(&out)?;
    Ok(seconds)
}

/// One row: what, Lopper's figure, PyTorch's, the ratio.
struct Row {
    what: String,
    ours: f64,
    torch: f64,
    unit: &'static str,
}

/// Everything, in one sitting.
pub fn run() -> Result<()> {
    // Paths below are the workspace's, wherever cargo was called from.
    std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))?;
    // SAFETY: set before this process starts any thread.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", THREADS);
        std::env::set_var("MATMUL_NUM_THREADS", THREADS);
    }
    let started = SystemTime::now();
    let (python, version) = python()?;
    let step = "crates/trainer/benches/pytorch_train_step.py";
    let lenet = "crates/trainer/benches/pytorch_lenet5_step.py";
    let epoch = "crates/trainer/benches/pytorch_fashion_epoch.py";
    // PyTorch before and after ours: the better of the two is its figure (noise only slows).
    let mut torch_step = vec![number_after(&torch_script(&python, step, &[])?, "median")?];
    let mut torch_lenet = vec![number_after(&torch_script(&python, lenet, &[])?, "median")?];
    cargo(&["bench", "-p", "trainer", "--bench", "train_step"])?;
    torch_step.push(number_after(&torch_script(&python, step, &[])?, "median")?);
    torch_lenet.push(number_after(&torch_script(&python, lenet, &[])?, "median")?);
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mut rows = Vec::new();
    for (net, torch) in [
        ("784-300-100-10", best(&torch_step)),
        ("lenet5", best(&torch_lenet)),
    ] {
        for backend in ["ndarray", "flex"] {
            rows.push(Row {
                what: format!("training step, {net}, batch 128, {backend}"),
                ours: criterion_ms(&format!("train_step_{net}_b128_{backend}"), started)?,
                torch,
                unit: "ms",
            });
        }
    }
    // Whole epochs as a user lives them: the marginal cost of one.
    cargo(&["build", "-p", "trainer", "--release"])?;
    let exe = crate::target_dir().join("release/trainer");
    let root = Path::new("runs/bench");
    std::fs::create_dir_all(root)?;
    let t1 = trainer_seconds(&exe, root, 1)?;
    let t3 = trainer_seconds(&exe, root, 3)?;
    let torch_epoch = torch_script(&python, epoch, &["--batch", "128", "--epochs", "1", "3"])?;
    rows.push(Row {
        what: "fashion-mnist.toml (default backend), batch 128: one more epoch (train + full evaluation)".into(),
        ours: (t3 - t1) / 2.0,
        torch: number_after(&torch_epoch, "marginal epoch:")?,
        unit: "s",
    });
    let mut table = format!(
        "| benchmark | Lopper ({THREADS} threads) | PyTorch {version} ({THREADS} threads) | Lopper / PyTorch |\n|---|---:|---:|---:|\n"
    );
    for r in &rows {
        table += &format!(
            "| {} | {:.3} {u} | {:.3} {u} | {:.2}× |\n",
            r.what,
            r.ours,
            r.torch,
            r.ours / r.torch,
            u = r.unit
        );
    }
    // Sparse training has no PyTorch twin (PyTorch multiplies masked weights densely): its
    // ratios are against our own dense steps.
    cargo(&["bench", "-p", "trainer", "--bench", "sparse_step"])?;
    table += &sparse_step_table(started)?;
    // Written now, so a failure below keeps the sitting's training figures.
    std::fs::write(root.join("table.md"), &table)?;
    // Inference has no PyTorch twin: its ratios are against our own fastest dense kernel.
    cargo(&["bench", "-p", "trainer", "--bench", "sparse_inference"])?;
    table += &inference_table(started)?;
    std::fs::write(root.join("table.md"), &table)?;
    print!("{table}");
    cargo(&["bench", "-p", "trainer", "--bench", "pruning_overhead"])?;
    eprintln!("wrote {}", root.join("table.md").display());
    Ok(())
}

/// One training step at 90 % sparsity (random masks on every layer) as sparse products, against
/// the unpruned dense step and the masked dense one, on each CPU backend.
fn sparse_step_table(started: SystemTime) -> Result<String> {
    let mut table = String::from(
        "\n| training step, 784-300-100-10, batch 128, 90 % sparse | dense | masked dense | sparse products | sparse / dense | sparse / masked |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for backend in ["ndarray", "flex"] {
        let ms = |case: &str| {
            criterion_ms(
                &format!("sparse_step_784-300-100-10_b128_{backend}_{case}"),
                started,
            )
        };
        let (d, m, s) = (ms("dense")?, ms("masked90")?, ms("sparse90")?);
        table += &format!(
            "| {backend} | {d:.3} ms | {m:.3} ms | {s:.3} ms | {:.2}× | {:.2}× |\n",
            s / d,
            s / m
        );
    }
    Ok(table)
}

/// The networks `benches/sparse_inference.rs` prunes (784-300-100-10, per-layer magnitude
/// sparsity, or 75 % of each hidden layer's units).
const INFERENCE_CASES: [&str; 7] = [
    "unstructured_00",
    "unstructured_50",
    "unstructured_80",
    "unstructured_90",
    "unstructured_95",
    "unstructured_98",
    "neurons_75",
];

/// Sparsity × format × batch from the inference benchmark, in µs per batch, each format's
/// speed-up over the fastest dense kernel (ours on the host, or Burn's on ndarray or Flex) at
/// that batch.
fn inference_table(started: SystemTime) -> Result<String> {
    let mut table = String::from(
        "\n| inference, 784-300-100-10 | batch | dense (host) | CSR | compacted | fastest dense | CSR speed-up | compacted speed-up |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for batch in [1, 256] {
        let us = |format: &str, case: &str| {
            criterion_ms(
                &format!("inference_784-300-100-10_b{batch}/{format}/{case}"),
                started,
            )
            .map(|ms| ms * 1e3)
        };
        let mut dense = Vec::new();
        for format in ["dense", "burn_ndarray", "burn_flex"] {
            dense.push((us(format, "unstructured_00")?, format));
        }
        let (fastest, which) = dense
            .into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .context("no dense figure")?;
        for case in INFERENCE_CASES {
            let (d, c, k) = (us("dense", case)?, us("csr", case)?, us("compact", case)?);
            table += &format!(
                "| {case} | {batch} | {d:.1} µs | {c:.1} µs | {k:.1} µs | {fastest:.1} µs ({which}) | {:.2}× | {:.2}× |\n",
                fastest / c,
                fastest / k
            );
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_after_their_key() {
        let line = "pytorch 2.15.0 threads=2: median 3.129 ms/step (min 2.594, max 3.986)";
        assert_eq!(number_after(line, "median").unwrap(), 3.129);
        assert_eq!(
            number_after("marginal epoch: 1.530 s", "marginal epoch:").unwrap(),
            1.53
        );
        let json = r#"{"mean":{"point_estimate":1.0},"median":{"confidence_interval":{},"point_estimate":3803600.5,"standard_error":1.0}}"#;
        let median = json.split("\"median\"").nth(1).unwrap();
        assert_eq!(
            number_after(median, "\"point_estimate\":").unwrap(),
            3803600.5
        );
        assert!(number_after(line, "mean").is_err());
    }
}
