//! The `trainer` command line: reads a config, trains, writes a run folder, prints a summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use trainer::config::{BackendKind, find_config, load_config};
use trainer::experiment::{RunOptions, RunResult, run_experiment};

/// Train (and prune) a dense network described by a TOML config.
///
/// A bare config file name that is not in the current directory is looked up in `configs/`,
/// so `--config xor.toml` and `--config xor` both find `configs/xor.toml`. Every run writes a
/// folder under `runs/` (or `--out`) holding the resolved config.toml, metrics.csv,
/// model.safetensors and summary.json.
#[derive(Parser, Debug)]
#[command(name = "trainer", version)]
struct Cli {
    /// The experiment config (TOML); see configs/README.md for every key.
    #[arg(long, short)]
    config: PathBuf,
    /// Override a config value, e.g. `--set train.lr=0.01` (repeatable).
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
    set: Vec<String>,
    /// Override the seed (same as `--set seed=N`).
    #[arg(long)]
    seed: Option<u64>,
    /// Override the backend: ndarray (default) or flex.
    #[arg(long)]
    backend: Option<BackendKind>,
    /// Write the run into exactly this folder (must not exist or be empty).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar and no summary table; errors are still printed.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let path = find_config(&cli.config)?;
    let mut overrides = cli.set.clone();
    if let Some(seed) = cli.seed {
        overrides.push(format!("seed={seed}"));
    }
    if let Some(b) = cli.backend {
        overrides.push(format!("backend=\"{b}\""));
    }
    let loaded = load_config(&path, &overrides)?;
    let opts = RunOptions {
        runs_root: PathBuf::from("runs"),
        out: cli.out.clone(),
        progress: !cli.quiet,
    };
    let result = run_experiment(&loaded, &opts)
        .with_context(|| format!("experiment {} failed", path.display()))?;
    if !cli.quiet {
        print_summary(&loaded.config, &result);
    }
    Ok(())
}

fn print_summary(config: &trainer::config::Config, r: &RunResult) {
    let widths: Vec<String> = r.widths.iter().map(ToString::to_string).collect();
    println!(
        "{} on {} ({}), network {}, {:.1} s",
        config.data.name.as_str(),
        config.backend,
        r.head.loss_name(),
        widths.join("-"),
        r.wall_s
    );
    if r.stopped_early {
        println!("early stopping ended the run; the best validation checkpoint is kept");
    }
    println!(
        "{:<6} {:>8} {:>10} {:>10} {:>14}",
        "split", "samples", "loss", "accuracy", "correct"
    );
    for (split, e) in &r.evals {
        let acc = e
            .accuracy()
            .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        let correct = e
            .correct
            .map_or("-".to_string(), |c| format!("{c}/{}", e.n));
        println!(
            "{split:<6} {:>8} {:>10.5} {acc:>10} {correct:>14}",
            e.n, e.loss
        );
    }
    if matches!(config.data.name, trainer::config::DatasetName::Xor) {
        let (_, train) = r.evals[0];
        if train.correct == Some(train.n) {
            println!("XOR learned: all {} points classified correctly.", train.n);
        } else {
            println!(
                "XOR not learned: {}/{} points correct (try another seed or more epochs).",
                train.correct.unwrap_or(0),
                train.n
            );
        }
    }
    println!("run folder: {}", r.dir.display());
}
