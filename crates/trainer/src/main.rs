//! The `trainer` command line: reads a config, trains, writes a run folder, prints a summary.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use trainer::config::{BackendKind, find_config, load_config};
use trainer::experiment::{RunOptions, RunResult, run_experiment};

/// Train (and prune) a dense network described by a TOML config.
///
/// A bare config file name that is not in the current directory is looked up in `configs/`,
/// so `--config xor.toml` and `--config xor` both find `configs/xor.toml`. Every run writes a
/// folder under `runs/` (or `--out`) holding the resolved config.toml, metrics.csv,
/// model.safetensors and summary.json (and pruning.json, masks.safetensors when it prunes).
#[derive(Parser, Debug)]
#[command(name = "trainer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// The experiment config (TOML); see configs/README.md for every key.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set train.lr=0.01` (repeatable).
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
    set: Vec<String>,
    /// Override the seed (same as `--set seed=N`).
    #[arg(long)]
    seed: Option<u64>,
    /// Override the backend: flex (default), ndarray or wgpu (GPU; a build with `--features wgpu`).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// The wgpu adapter, by its number in `trainer devices` (same as `--set device=N`).
    #[arg(long, value_name = "N")]
    device: Option<usize>,
    /// Write the run into exactly this folder (must not exist or be empty).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Train without the config's `[pruning]` table: the dense baseline of a pruning config.
    #[arg(long)]
    no_pruning: bool,
    /// Prune the model of an earlier run folder instead of training (its masks carry over).
    #[arg(long, value_name = "RUN_DIR")]
    from: Option<PathBuf>,
    /// Continue a stopped run from its last checkpoint (`train.checkpoint_every`), with the
    /// config saved in its folder; it ends with the numbers an uninterrupted run would have.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "set", "seed", "backend", "device", "out", "no_pruning", "from"])]
    resume: Option<PathBuf>,
    /// No progress bar and no summary table; errors are still printed.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prune a model file (ours, or a PyTorch state_dict saved with safetensors) without
    /// training; writes the pruned weights and `<name>_mask` tensors.
    Prune(PruneArgs),
    /// Remove the dead hidden units of a finished run's model (no incoming or no outgoing weight
    /// left; a layer list's pruned channels, with their batch norm entries), folding constant
    /// units into the next bias; writes RUN_DIR/compact.safetensors and checks it against the
    /// original on the run's test data.
    Compact {
        /// The run folder.
        run_dir: PathBuf,
    },
    /// Prune each layer of a finished run's model alone, by magnitude, at several sparsities;
    /// record the validation metric; write sensitivity.{csv,md,png,svg} and suggested per-layer
    /// targets (sensitivity_targets.toml) into RUN_DIR.
    Sensitivity {
        /// The run folder.
        run_dir: PathBuf,
        /// Sparsities to probe, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0.5,0.8,0.9,0.95,0.98")]
        sparsities: Vec<f64>,
        /// Largest acceptable drop of the metric (accuracy as a fraction: 0.01 = one point).
        #[arg(long, default_value_t = 0.01)]
        tolerance: f64,
    },
    /// Run a config over a grid of values and seeds, each point in its own process and run
    /// folder; skip points already finished; write results.csv, results.md (mean ± sample sd)
    /// and sweep.png/svg (accuracy against sparsity with error bars). The dense baseline always
    /// runs when the config prunes.
    Sweep(SweepArgs),
    /// Run point INDEX of the sweep recorded in DIR, as a local sweep would: what each task of
    /// a Slurm job array (`trainer sweep --executor slurm`) runs.
    SweepPoint {
        /// The sweep folder (on a file system every node sees).
        dir: PathBuf,
        /// The point's number in the sweep's plan (the array task id).
        index: usize,
    },
    /// List the GPU adapters wgpu reaches (Vulkan, Metal, DX12, OpenGL), numbered as `--device`
    /// takes them. Needs a build with `--features wgpu`.
    Devices,
    /// Evaluate a finished run's model, dense, in CSR or compacted, and time it: an MLP on the
    /// host without Burn, a layer list (convolutions, batch norms, dropout) through Burn on the
    /// run's backend (dense or compacted).
    Infer {
        /// The run folder.
        run_dir: PathBuf,
        /// dense, csr or compact [default: csr for an MLP, dense for a layer list].
        #[arg(long, value_enum)]
        format: Option<trainer::inference::run_folder::Format>,
        /// Samples per forward pass (≥ 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        batch: u64,
        /// Passes over the data; the median time is reported (≥ 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        repeats: u64,
    },
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// The experiment config; its `[sweep]` table gives defaults for the flags below.
    #[arg(long, short, required_unless_present = "collect")]
    config: Option<PathBuf>,
    /// Where the points run: `local` (child processes of this one) or `slurm` (one job array
    /// on the cluster; the sweep folder must be on a file system every node sees).
    #[arg(long, value_enum, default_value = "local")]
    executor: Executor,
    /// An option passed to `sbatch` (repeatable), e.g. `--slurm-arg=--partition=gpu`,
    /// `--slurm-arg=--time=2:00:00`, `--slurm-arg=--cpus-per-task=4`, `--slurm-arg=--gpus=1`.
    #[arg(
        long = "slurm-arg",
        allow_hyphen_values = true,
        value_name = "SBATCH_OPTION"
    )]
    slurm_args: Vec<String>,
    /// With `--executor slurm`: follow the array until it ends, then aggregate.
    #[arg(long)]
    wait: bool,
    /// Aggregate the sweep in this folder as it stands (after a Slurm array ends).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "grid", "seeds", "jobs", "baselines", "out"])]
    collect: Option<PathBuf>,
    /// A key and its values, e.g. `--grid pruning.sparsity=0.5,0.8,0.9` (repeatable; the
    /// points are every combination). Replaces the `[sweep]` grid.
    #[arg(long, value_name = "KEY=V1,V2,…")]
    grid: Vec<String>,
    /// Seeds, e.g. `--seeds 0,1,2`.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Runs at once.
    #[arg(long)]
    jobs: Option<usize>,
    /// Also run random pruning, and layer-wise and global magnitude pruning, at every point.
    #[arg(long)]
    baselines: bool,
    /// The sweep folder (default runs/sweep-<config name>); rerunning into it resumes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Where a sweep's points run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Executor {
    /// Child processes of this one, `--jobs` at once.
    Local,
    /// One Slurm job array, `--jobs` tasks at once.
    Slurm,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// The model (.safetensors); every 2-D float32 `*weight` tensor is prunable.
    model: PathBuf,
    /// Where to write the pruned model and its masks (a new file: an existing one is never
    /// replaced).
    #[arg(long)]
    out: PathBuf,
    /// Take the `[pruning]` table of this experiment config (flags below override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// l1, l2 or random (gradient criteria need data: use a training config).
    #[arg(long)]
    criterion: Option<String>,
    /// Fraction of weights to prune.
    #[arg(long)]
    sparsity: Option<f64>,
    /// Prune scores below this absolute threshold.
    #[arg(long)]
    threshold: Option<f64>,
    /// Prune scores below alpha * max(score).
    #[arg(long)]
    alpha: Option<f64>,
    /// layer, global or erk.
    #[arg(long)]
    scope: Option<String>,
    /// weight, neuron (hidden units with their incoming weights, bias and outgoing weights),
    /// or N:M such as 2:4.
    #[arg(long)]
    granularity: Option<String>,
    /// Neurons: the norm of a unit's weights, 1 or 2 (sets the criterion to l1 or l2).
    #[arg(long)]
    norm: Option<u8>,
    /// The file stores weights in Burn's [in, out] layout instead of PyTorch's [out, in].
    #[arg(long)]
    burn_layout: bool,
    /// Seed for the random criterion.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    // Sets an environment variable: before any thread starts.
    trainer::device::host_default_device();
    trainer::heap::keep_freed_memory();
    if let Err(e) = trainer::threads::join_thread_pool() {
        eprintln!(
            "warning: the training thread works outside rayon's pool ({e}); steps are slower"
        );
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Stopped by Ctrl-C or SIGTERM: the shell's convention for SIGINT, 128 + 2.
            let interrupted = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<trainer::experiment::ExperimentError>(),
                    Some(trainer::experiment::ExperimentError::Train {
                        cause: trainer::train::TrainError::Interrupted { .. },
                        ..
                    })
                )
            });
            ExitCode::from(if interrupted { 130 } else { 2 })
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Prune(args)) => prune_command(args),
        Some(Command::Sweep(args)) => sweep_command(args),
        Some(Command::SweepPoint { dir, index }) => sweep_point_command(dir, *index),
        Some(Command::Devices) => devices_command(),
        Some(Command::Compact { run_dir }) => compact_command(run_dir),
        Some(Command::Infer {
            run_dir,
            format,
            batch,
            repeats,
        }) => infer_command(run_dir, *format, *batch, *repeats),
        Some(Command::Sensitivity {
            run_dir,
            sparsities,
            tolerance,
        }) => sensitivity_command(run_dir, sparsities, *tolerance),
        None => train_command(&cli.train),
    }
}

/// `trainer devices`: the wgpu adapters this machine offers.
fn devices_command() -> anyhow::Result<()> {
    let list = trainer::device::adapters()?;
    if list.is_empty() {
        anyhow::bail!(
            "wgpu found no adapter (probed Vulkan, Metal, DX12, OpenGL); on Debian/Ubuntu `apt install mesa-vulkan-drivers libvulkan1` adds lavapipe, Vulkan on the CPU"
        );
    }
    for a in list {
        println!("{:>3}  {}", a.index, a.info.describe());
    }
    Ok(())
}

/// `trainer compact RUN_DIR`.
fn compact_command(run_dir: &Path) -> anyhow::Result<()> {
    let r = trainer::inference::run_folder::compact_run(run_dir)?;
    let pct = |a: Option<f64>| a.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
    println!(
        "compacted {} -> {}",
        join(&r.widths_before),
        join(&r.widths_after)
    );
    println!(
        "{} accuracy: {} before, {} after; largest output difference {:.2e}",
        r.split,
        pct(r.accuracy_before),
        pct(r.accuracy_after),
        r.max_abs_diff
    );
    for note in &r.notes {
        println!("kept: {note}");
    }
    println!("wrote {}", run_dir.join("compact.safetensors").display());
    Ok(())
}

/// `trainer infer RUN_DIR`.
fn infer_command(
    run_dir: &Path,
    format: Option<trainer::inference::run_folder::Format>,
    batch: u64,
    repeats: u64,
) -> anyhow::Result<()> {
    let r = trainer::inference::run_folder::infer_run(
        run_dir,
        format,
        batch as usize,
        repeats as usize,
    )?;
    println!(
        "{:?} ({}): {} {} samples at batch {}: accuracy {}, {:.2} µs per sample (median of {repeats})",
        r.format,
        r.engine,
        r.samples,
        r.split,
        r.batch,
        r.accuracy
            .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
        r.us_per_sample
    );
    Ok(())
}

/// `trainer sensitivity RUN_DIR`.
fn sensitivity_command(run_dir: &Path, sparsities: &[f64], tolerance: f64) -> anyhow::Result<()> {
    if let Some(bad) = sparsities.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        anyhow::bail!("--sparsities: {bad} is not a fraction in [0, 1]");
    }
    let r = trainer::sensitivity::sensitivity(run_dir, sparsities, tolerance)?;
    print!("{}", trainer::sensitivity::table(&r, sparsities));
    println!(
        "wrote sensitivity.csv, sensitivity.md, sensitivity.png/svg and sensitivity_targets.toml in {}",
        run_dir.display()
    );
    Ok(())
}

/// A training run: from a config, or `--resume` of a stopped one.
fn train_command(cli: &TrainArgs) -> anyhow::Result<()> {
    // A training run: Ctrl-C and SIGTERM end it at the epoch's end with its status written.
    trainer::interrupt::install().context("cannot install the Ctrl-C handler")?;
    if let Some(dir) = &cli.resume {
        let path = dir.join("config.toml");
        if !path.is_file() {
            anyhow::bail!(
                "--resume {}: no config.toml there; give the folder of a run (runs/<name>-<hash>)",
                dir.display()
            );
        }
        let loaded = load_config(&path, &[])?;
        let opts = RunOptions {
            runs_root: PathBuf::from("runs"),
            out: None,
            progress: !cli.quiet,
            from: None,
            resume: Some(dir.clone()),
        };
        let result = run_experiment(&loaded, &opts)
            .with_context(|| format!("resuming {} failed", dir.display()))?;
        if !cli.quiet {
            print_summary(&loaded.config, &result);
        }
        return Ok(());
    }
    let Some(config) = &cli.config else {
        anyhow::bail!(
            "no config given: run `trainer --config configs/xor.toml`, or `trainer --help`"
        );
    };
    let path = find_config(config)?;
    let mut overrides = cli.set.clone();
    if let Some(seed) = cli.seed {
        overrides.push(format!("seed={seed}"));
    }
    if let Some(b) = cli.backend {
        overrides.push(format!("backend=\"{b}\""));
    }
    if let Some(d) = cli.device {
        overrides.push(format!("device={d}"));
    }
    let mut loaded = load_config(&path, &overrides)?;
    if cli.no_pruning {
        if loaded.config.pruning.is_none() {
            anyhow::bail!(
                "--no-pruning: {} has no [pruning] table; drop the flag",
                path.display()
            );
        }
        loaded.config.pruning = None;
    }
    let opts = RunOptions {
        runs_root: PathBuf::from("runs"),
        out: cli.out.clone(),
        progress: !cli.quiet,
        from: cli.from.clone(),
        resume: None,
    };
    let result = run_experiment(&loaded, &opts)
        .with_context(|| format!("experiment {} failed", path.display()))?;
    if !cli.quiet {
        print_summary(&loaded.config, &result);
    }
    Ok(())
}

fn sweep_command(a: &SweepArgs) -> anyhow::Result<()> {
    use trainer::sweep::{SweepSpec, run_sweep};
    if let Some(dir) = &a.collect {
        let outcome = trainer::sweep::collect(dir);
        if outcome.is_err() {
            // Points of a Slurm array: each with its task's state and the end of its log.
            for line in trainer::slurm::unfinished(dir).unwrap_or_default() {
                eprintln!("{line}");
            }
        }
        return report_sweep(a, dir, outcome.map(|o| (o.ran, o.skipped)));
    }
    let config = a.config.as_ref().context("--config is required")?;
    let path = find_config(config)?;
    let loaded = load_config(&path, &[])?;
    let spec = SweepSpec::merge(&loaded, &a.grid, a.seeds.clone(), a.baselines, a.jobs)?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("sweep-{}", loaded.stem())));
    let exe = std::env::current_exe().context("cannot find the trainer binary to run points")?;
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    if a.executor == Executor::Slurm {
        return slurm_sweep(a, (&exe, &loaded, &spec), &dir, &bar);
    }
    anyhow::ensure!(
        !a.wait && a.slurm_args.is_empty(),
        "--wait and --slurm-arg go with --executor slurm"
    );
    let outcome = run_sweep(&exe, &loaded, &spec, &dir, |done, total, line| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.println(format!("[{done}/{total}] {line}"));
    });
    bar.finish_and_clear();
    report_sweep(a, &dir, outcome.map(|o| (o.ran, o.skipped)))
}

/// The sweep submitted as a Slurm job array; with `--wait`, followed and aggregated.
fn slurm_sweep(
    a: &SweepArgs,
    (exe, loaded, spec): (
        &std::path::Path,
        &trainer::config::LoadedConfig,
        &trainer::sweep::SweepSpec,
    ),
    dir: &std::path::Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let sub = trainer::slurm::submit(exe, loaded, spec, dir, &a.slurm_args)?;
    let Some(job) = &sub.job else {
        println!(
            "every point of the sweep in {} has finished: nothing to submit",
            dir.display()
        );
        return report_sweep(a, dir, trainer::sweep::collect(dir).map(|o| (0, o.skipped)));
    };
    println!(
        "submitted job array {job}: {} of {} points ({} already finished); its tasks write into {}",
        sub.submitted,
        sub.total,
        sub.total - sub.submitted,
        dir.display()
    );
    if !a.wait {
        println!(
            "follow it with `squeue -j {job}`; when it ends: trainer sweep --collect {}",
            dir.display()
        );
        return Ok(());
    }
    trainer::slurm::wait(dir, job, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let outcome = trainer::sweep::collect(dir);
    if outcome.is_err() {
        for line in trainer::slurm::unfinished(dir)? {
            eprintln!("{line}");
        }
    }
    report_sweep(
        a,
        dir,
        outcome.map(|_| (sub.submitted, sub.total - sub.submitted)),
    )
}

/// The sweep's table and what ran, or the error.
fn report_sweep(
    a: &SweepArgs,
    dir: &std::path::Path,
    outcome: Result<(usize, usize), trainer::sweep::SweepError>,
) -> anyhow::Result<()> {
    let (ran, skipped) = outcome?;
    if !a.quiet {
        let groups = std::fs::read_to_string(dir.join("results.md"))?;
        print!("{groups}");
        println!(
            "{ran} points run, {skipped} already finished; wrote results.csv, results.md and sweep.png/svg in {}",
            dir.display()
        );
    }
    Ok(())
}

/// One point of a sweep, run by a Slurm array task; exits with the point's exit code.
fn sweep_point_command(dir: &std::path::Path, index: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the trainer binary to run the point")?;
    // `scancel` and time limits signal the task's every process: the point's trainer stops at
    // its epoch's end with a checkpoint. This process waits for it instead of dying, which
    // would signal it a second time (it dies with its parent) and stop it at once.
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(sig, seen).context("cannot install a signal handler")?;
    }
    let code = trainer::slurm::run_point(&exe, dir, index)?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn print_summary(config: &trainer::config::Config, r: &RunResult) {
    let widths: Vec<String> = r.widths.iter().map(ToString::to_string).collect();
    println!(
        "{} on {} ({}), network {}, {:.1} s",
        config.data.name.as_str(),
        r.device.describe(),
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
        // Whether training learned XOR: judged before pruning when the run prunes.
        let before = r
            .pruning
            .as_ref()
            .and_then(|p| p.before_pruning())
            .and_then(|b| b.accuracy("train"));
        let (_, mut train) = r.evals[0];
        if let Some(a) = before {
            train.correct = Some((a * train.n as f64).round() as usize);
        }
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
    if let Some(p) = &r.pruning {
        print_pruning(p);
    }
    println!("run folder: {}", r.dir.display());
}

fn join(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

fn print_pruning(p: &report::PruningReport) {
    let mode = p.mode_name();
    if let Some(events) = p.events() {
        println!("pruning ({mode}, {} mask updates):", events.len());
    } else if let Some(levels) = p.levels() {
        println!("lottery tickets (also in lottery.md):");
        print!("{}", trainer::lottery::table(levels));
        println!("final ticket:");
    } else {
        let n = p.rounds().len();
        println!("pruning ({n} round{}):", if n == 1 { "" } else { "s" })
    }
    println!(
        "{:<18} {:>12} {:>10} {:>10} {:>6}",
        "layer", "shape", "kept", "sparsity", "dead"
    );
    for l in &p.layers {
        let shape = format!("{}x{}", l.shape_out_in[0], l.shape_out_in[1]);
        println!(
            "{:<18} {shape:>12} {:>10} {:>9.2}% {:>6}",
            l.name,
            format!("{}/{}", l.kept, l.weights),
            100.0 * l.sparsity,
            l.dead_units
        );
    }
    let t = &p.total;
    println!(
        "total sparsity {:.2}%, compression {:.2}x, theoretical speedup {:.2}x",
        100.0 * t.sparsity,
        t.compression_ratio,
        t.theoretical_speedup
    );
    let kb = |bytes: usize| bytes as f64 / 1024.0;
    println!(
        "storage: dense {:.1} KiB, CSR {:.1} KiB, bitmask+values {:.1} KiB, compacted {:.1} KiB",
        kb(p.sizes.dense_bytes),
        kb(p.sizes.csr_bytes),
        kb(p.sizes.bitmask_bytes),
        kb(p.sizes.compact_bytes)
    );
    let saved = if p.compact.final_evals.is_some() {
        " (saved as compact.safetensors)"
    } else {
        ""
    };
    println!("compacted network: {}{saved}", join(&p.compact.widths));
    for w in &p.warnings {
        println!("warning: {w}");
    }
    // Dynamic and lottery runs have no separate before/after: the final metrics above are the
    // pruned network's.
    let Some((split, before)) = p.before_pruning().and_then(|b| b.reported()) else {
        return;
    };
    let pct = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
    let mut line = format!("{split} accuracy: before pruning {}", pct(before.accuracy));
    for r in p.rounds() {
        for (stage, evals) in [
            ("after pruning", &r.after_pruning),
            ("after fine-tuning", &r.after_fine_tune),
            ("after training", &r.after_training),
        ] {
            if let Some(e) = evals {
                line.push_str(&format!(", {stage} {}", pct(e.accuracy(split))));
            }
        }
    }
    println!("{line}");
}

/// The `[pruning]` rule `trainer prune` applies: a config's table (`--config`) with the flags
/// on top.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn prune_options(a: &PruneArgs) -> anyhow::Result<trainer::config::PruningConfig> {
    let mut table = match &a.config {
        Some(c) => {
            let path = find_config(c)?;
            let loaded = load_config(&path, &[])?;
            let p = loaded.config.pruning.with_context(|| {
                format!(
                    "{} has no [pruning] table; add one or give the flags",
                    path.display()
                )
            })?;
            toml::Table::try_from(&p).expect("serializes")
        }
        None => toml::Table::new(),
    };
    let mut set = |k: &str, v: toml::Value| {
        table.insert(k.to_string(), v);
    };
    if let Some(n) = a.norm {
        anyhow::ensure!(matches!(n, 1 | 2), "--norm takes 1 or 2 (got {n})");
        set("criterion", toml::Value::String(format!("l{n}")));
    }
    if let Some(c) = &a.criterion {
        set("criterion", toml::Value::String(c.clone()));
    }
    if let Some(g) = &a.granularity {
        set("granularity", toml::Value::String(g.clone()));
    }
    if let Some(s) = &a.scope {
        set("scope", toml::Value::String(s.clone()));
    }
    for (k, v) in [
        ("sparsity", a.sparsity),
        ("threshold", a.threshold),
        ("alpha", a.alpha),
    ] {
        if let Some(v) = v {
            // A flag replaces whichever rule the config had.
            table.remove("sparsity");
            table.remove("threshold");
            table.remove("alpha");
            table.insert(k.to_string(), toml::Value::Float(v));
        }
    }
    let cfg: trainer::config::PruningConfig = table
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("pruning options: {}", e.message()))?;
    cfg.validate()
        .map_err(|(key, msg)| anyhow::anyhow!("`{key}` {msg}"))?;
    Ok(cfg)
}

fn prune_command(a: &PruneArgs) -> anyhow::Result<()> {
    // Lopper writes new files only: an existing one (the input itself, or a run's model) could
    // be someone's only copy.
    if a.out.exists() {
        anyhow::bail!(
            "--out {} exists; give a new file name (trainer prune never replaces a file)",
            a.out.display()
        );
    }
    let cfg = prune_options(a)?;
    let report = trainer::prune_file::prune_file(&a.model, &a.out, &cfg, a.burn_layout, a.seed)?;
    if !a.quiet {
        println!(
            "{:<24} {:>12} {:>14} {:>10}",
            "tensor", "shape", "kept", "sparsity"
        );
        for l in &report.layers {
            let shape: Vec<String> = l.shape.iter().map(ToString::to_string).collect();
            println!(
                "{:<24} {:>12} {:>14} {:>9.2}%",
                l.name,
                shape.join("x"),
                format!("{}/{}", l.kept, l.weights),
                100.0 * l.sparsity
            );
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        println!(
            "total sparsity {:.2}%; wrote {} (pruned weights and <name>_mask tensors)",
            100.0 * report.total.sparsity,
            a.out.display()
        );
    }
    Ok(())
}
