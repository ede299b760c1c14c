//! One experiment end to end: data, model, training, evaluation, and the run folder.
//!
//! The run folder is written as the run goes: `config.toml` first, `metrics.csv` every epoch,
//! then `model.safetensors` and `summary.json`. A failed run still gets a `summary.json` saying
//! why, next to what it measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use serde_json::json;

use crate::config::{Config, ConfigError, LoadedConfig};
use crate::data::{self, DataError, Splits};
use crate::device::{DeviceError, make_device};
use crate::eval::Evaluation;
use crate::export::{ExportError, save_model};
use crate::head::Head;
use crate::hooks::{MetricsLog, Progress};
use crate::model::Mlp;
use crate::run_dir::create_run_dir;
use crate::train::{TrainError, evaluate_splits, train};

/// The Burn version we are built against (pinned in the workspace manifest; a test checks
/// `Cargo.lock` agrees).
pub const BURN_VERSION: &str = "0.22.1";

/// Anything that can stop an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Data not found or unreadable.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Backend not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Training stopped abnormally; the run folder keeps what was written.
    #[error("{source}\nwhat was written so far is in {}", dir.display())]
    Train {
        /// The failure.
        source: TrainError,
        /// The run folder.
        dir: PathBuf,
    },
    /// The model file could not be written.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Writing the run folder failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parent of run folders (normally `runs`).
    pub runs_root: PathBuf,
    /// An exact run folder instead of `runs_root/<stem>-<hash>`.
    pub out: Option<PathBuf>,
    /// Show the progress bar (if stderr is a terminal).
    pub progress: bool,
}

/// What a finished experiment reports.
#[derive(Debug)]
pub struct RunResult {
    /// The run folder.
    pub dir: PathBuf,
    /// Final evaluations: train, then validation and test where they exist.
    pub evals: Vec<(&'static str, Evaluation)>,
    /// The task head.
    pub head: Head,
    /// The trained model.
    pub model: Mlp,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    /// Wall time of the whole run in seconds.
    pub wall_s: f64,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExperimentError + '_ {
    move |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The resolved config as TOML (what `config.toml` in the run folder holds).
pub fn resolved_toml(config: &Config) -> String {
    toml::to_string_pretty(config).expect("a config serializes")
}

/// Runs the experiment `loaded` describes.
pub fn run_experiment(
    loaded: &LoadedConfig,
    opts: &RunOptions,
) -> Result<RunResult, ExperimentError> {
    let start = Instant::now();
    let cfg = &loaded.config;
    let device = make_device(cfg.backend)?;
    let base = loaded.path.parent().unwrap_or(Path::new("."));
    let splits: Splits = data::load(&cfg.data, cfg.seed, base)?;
    let head = Head::for_data(&splits.train);
    let ad = device.clone().autodiff();
    let model = Mlp::new(
        &cfg.model,
        splits.train.n_features,
        head.n_outputs(),
        cfg.seed,
        &ad,
    );
    let widths = model.widths();
    let n_params = model.num_params();

    let resolved = resolved_toml(cfg);
    let dir = create_run_dir(
        &opts.runs_root,
        &loaded.stem(),
        &resolved,
        opts.out.as_deref(),
    )
    .map_err(io_err(&opts.runs_root))?;
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, &resolved).map_err(io_err(&config_path))?;
    let metrics_path = dir.join("metrics.csv");
    let mut metrics = MetricsLog::create(&metrics_path).map_err(io_err(&metrics_path))?;
    let mut progress = Progress::new(opts.progress);

    let base_summary = json!({
        "config": loaded.path.display().to_string(),
        "dataset": cfg.data.name.as_str(),
        "backend": cfg.backend.to_string(),
        "seed": cfg.seed,
        "widths": widths,
        "parameters": n_params,
        "loss": head.loss_name(),
        "versions": { "lopper": env!("CARGO_PKG_VERSION"), "burn": BURN_VERSION },
        "weights_layout": "model.safetensors: PyTorch [out_features, in_features]",
    });
    let summary_path = dir.join("summary.json");
    let write_summary = |extra: serde_json::Value| -> Result<(), ExperimentError> {
        let mut s = base_summary.clone();
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let text = serde_json::to_string_pretty(&s).expect("json");
        std::fs::write(&summary_path, text + "\n").map_err(io_err(&summary_path))
    };

    let trained = {
        let mut hooks: [&mut dyn pruning::TrainHook<Mlp>; 2] = [&mut metrics, &mut progress];
        train(model, &splits, head, &cfg.train, cfg.seed, &ad, &mut hooks)
    };
    let trained = match trained {
        Ok(t) => t,
        Err(source) => {
            write_summary(json!({
                "status": "failed",
                "error": source.to_string(),
                "wall_time_s": start.elapsed().as_secs_f64(),
            }))?;
            return Err(ExperimentError::Train { source, dir });
        }
    };

    let evals = evaluate_splits(&trained.model, &splits, head, &ad, true);
    let model_path = dir.join("model.safetensors");
    save_model(&trained.model, &model_path)?;
    let wall_s = start.elapsed().as_secs_f64();
    let mut final_metrics = serde_json::Map::new();
    for (split, e) in &evals {
        final_metrics.insert(
            split.to_string(),
            json!({ "n": e.n, "loss": e.loss, "accuracy": e.accuracy(), "correct": e.correct }),
        );
    }
    write_summary(json!({
        "status": "ok",
        "epochs": trained.end.epochs_done,
        "steps": trained.end.steps_done,
        "stopped_early": trained.end.stopped_early,
        "final": final_metrics,
        "wall_time_s": wall_s,
    }))?;
    Ok(RunResult {
        dir,
        evals,
        head,
        model: trained.model,
        widths,
        wall_s,
        stopped_early: trained.end.stopped_early,
    })
}
