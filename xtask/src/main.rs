//! Project automation: `cargo xtask ci` runs exactly what CI (`.ci/run`) runs.

use std::process::Command;

use anyhow::{Context, Result, bail};

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
    ])
}

const USAGE: &str = "usage: cargo xtask <ci|lint|bench>
  ci     lint, then all tests: what .ci/run does
  lint   fmt check, and clippy with warnings denied
  bench  the benchmarks: training step (ndarray against flex), dynamic-pruning overhead,
         sparse inference (dense / CSR / compacted)";

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("lint") => lint(),
        Some("ci") => {
            lint()?;
            // The README's test command, word for word.
            cargo(&["test", "--workspace"])
        }
        Some("bench") => {
            for bench in ["train_step", "pruning_overhead", "sparse_inference"] {
                cargo(&["bench", "-p", "trainer", "--bench", bench])?;
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
