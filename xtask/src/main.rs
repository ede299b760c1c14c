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
  bench  the training-step benchmark, ndarray against flex";

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("lint") => lint(),
        Some("ci") => {
            lint()?;
            // The README's test command, word for word.
            cargo(&["test", "--workspace"])
        }
        Some("bench") => cargo(&["bench", "-p", "trainer", "--bench", "train_step"]),
        _ => bail!("{USAGE}"),
    }
}
