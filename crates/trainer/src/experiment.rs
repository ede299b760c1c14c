//! One experiment end to end: data, model, training, evaluation, and the run folder.
//!
//! The run folder is written as the run goes: `config.toml` first, `metrics.csv` every epoch,
//! then `model.safetensors` and `summary.json`. A failed run still gets a `summary.json` saying
//! why, next to what it measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use report::{Finished, Outcome, PruningReport, Stopped, Summary};

use crate::checkpoint::{Checkpoint, CheckpointError, Checkpointing};
use crate::config::{Config, ConfigError, LoadedConfig, PruningMode};
use crate::data::{self, DataError, Splits};
use crate::device::{DeviceError, DeviceInfo, select_device};
use crate::eval::Evaluation;
use crate::export::{ExportError, load_masks, load_model, load_params, save_masks, save_model};
use crate::head::Head;
use crate::hooks::Progress;
use crate::inference::HostMlp;
use crate::metrics_log::MetricsLog;
use crate::model::Net;
use crate::phases::{RunContext, Sinks, evals_report};
use crate::prune;
use crate::run_dir::create_run_dir;
use crate::runner::Phased;
use crate::seeds::Seeds;
use crate::train::{Task, TrainError, evaluate_splits};

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
    #[error("{cause}\nwhat was written so far is in {}", dir.display())]
    Train {
        /// The failure.
        cause: TrainError,
        /// The run folder.
        dir: PathBuf,
    },
    /// The model file could not be written.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The `[pruning]` table names parameters the model does not have.
    #[error("in {}: [pruning]: {cause}", path.display())]
    Pruning {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        cause: pruning::PruneError,
    },
    /// `--from` cannot be used as asked.
    #[error("--from {}: {message}", dir.display())]
    From {
        /// The earlier run.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint to resume from cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// `--resume` cannot be used as asked.
    #[error("--resume {}: {message}", dir.display())]
    Resume {
        /// The run folder.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run folder is in use by another process, or not Lopper's.
    #[error(transparent)]
    Folder(#[from] crate::folder::FolderError),
    /// The network or the data set would not fit in memory.
    #[error("in {}: `{key}`: {message}", path.display())]
    Resources {
        /// The config file.
        path: PathBuf,
        /// The key that sets the size.
        key: String,
        /// How much is needed and available.
        message: String,
    },
    /// Writing the run folder failed.
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
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
    /// Start from this earlier run's model (and masks) instead of training: static pruning only.
    pub from: Option<PathBuf>,
    /// Continue the stopped run in this folder from its checkpoint (the config is the
    /// folder's `config.toml`).
    pub resume: Option<PathBuf>,
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
    pub model: Net,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    /// Wall time of the whole run in seconds.
    pub wall_s: f64,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// The pruning report (`pruning.json`), when the config prunes.
    pub pruning: Option<PruningReport>,
    /// What the tensors ran on (the adapter, for wgpu).
    pub device: DeviceInfo,
}

/// pruning.json, the masks, the compacted network and the lottery and search tables.
fn write_pruning_outputs(dir: &Path, trained: &Phased) -> Result<(), ExperimentError> {
    let Some(pr) = &trained.pruning else {
        return Ok(());
    };
    let path = dir.join("pruning.json");
    crate::atomic::write(&path, report::to_json(pr)).map_err(io_err(&path))?;
    if let Some(masks) = &trained.masks {
        save_masks(masks, &dir.join("masks.safetensors"))?;
    }
    if let Some(small) = &trained.compact {
        small.save(&dir.join("compact.safetensors"))?;
    }
    if let Some(small) = &trained.compact_net {
        save_model(small, &dir.join("compact.safetensors"))?;
    }
    if let Some(levels) = pr.levels() {
        let path = dir.join("lottery.md");
        crate::atomic::write(&path, crate::lottery::table(levels)).map_err(io_err(&path))?;
    }
    if let Some(search) = pr.search() {
        let path = dir.join("search.md");
        crate::atomic::write(&path, crate::search::table(search)).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Every plot of the run, and index.html.
fn write_plots(
    dir: &Path,
    cfg: &Config,
    trained: &Phased,
    summary: &Summary,
) -> Result<(), crate::plots::PlotError> {
    // An MLP's weight maps before and after pruning; a layer list's filters after.
    let (after, layers);
    let weights = if trained.model.is_mlp() {
        after = HostMlp::from_mlp(&trained.model);
        crate::plots::Weights::Mlp {
            before: trained.before_weights.as_ref(),
            after: &after,
        }
    } else {
        layers = crate::counts::weight_tables(&trained.model);
        crate::plots::Weights::Layers(&layers)
    };
    let plots = crate::plots::write_all(
        dir,
        weights,
        trained.pruning.as_ref(),
        cfg.plots.as_ref().is_some_and(|p| p.gray_kernels),
    )?;
    crate::plots::write_index(dir, summary, trained.pruning.as_ref(), &plots)
}

/// A synthetic data set too big for this machine's memory is a config error, before any
/// allocation.
fn check_synthetic_size(loaded: &LoadedConfig) -> Result<(), ExperimentError> {
    let cfg = &loaded.config;
    if !cfg.data.name.is_synthetic() {
        return Ok(());
    }
    // Features, a split copy and a scaled copy, in f32; blobs also keep a centre per class.
    let n = cfg.data.n.unwrap_or(200) as u64;
    let features = cfg.data.features.unwrap_or(2) as u64;
    let classes = cfg.data.classes.unwrap_or(3) as u64;
    let bytes = n
        .saturating_mul(features)
        .saturating_add(classes.saturating_mul(features))
        .saturating_mul(12);
    let key = match (cfg.data.features, cfg.data.classes) {
        (Some(f), _) if f as u64 > n => "data.features",
        (_, Some(c)) if c as u64 > n => "data.classes",
        _ => "data.n",
    };
    let what = format!("a data set of {n} samples × {features} features");
    match crate::resources::too_big(&what, bytes) {
        Some(message) => Err(ExperimentError::Resources {
            path: loaded.path.clone(),
            key: key.into(),
            message,
        }),
        None => Ok(()),
    }
}

/// A network too big to train at the config's batch size is a config error naming
/// `model.hidden` (or `model.layers`).
fn check_network_size(
    loaded: &LoadedConfig,
    splits: &Splits,
    head: Head,
) -> Result<(), ExperimentError> {
    let cfg = &loaded.config;
    let batch = cfg.train.batch_size.unwrap_or(splits.train.len());
    let input = cfg
        .model
        .input(cfg.data.image_shape(), splits.train.n_features);
    let (key, what, bytes) = match &cfg.model.layers {
        Some(layers) => {
            let (params, per_sample) = crate::config::counts(layers, input, head.n_outputs());
            let bytes = crate::resources::training_bytes(params, per_sample, batch);
            let what = format!("training this layer list ({params} parameters) at batch {batch}");
            ("model.layers", what, bytes)
        }
        None => {
            let mut widths = vec![splits.train.n_features];
            widths.extend(cfg.model.hidden());
            widths.push(head.n_outputs());
            let bytes = crate::resources::network_bytes(&widths, batch);
            let what = format!(
                "training a {} network at batch {batch}",
                widths
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("-")
            );
            ("model.hidden", what, bytes)
        }
    };
    match crate::resources::too_big(&what, bytes) {
        Some(message) => Err(ExperimentError::Resources {
            path: loaded.path.clone(),
            key: key.into(),
            message,
        }),
        None => Ok(()),
    }
}

/// The network a run starts from — freshly initialised, or (`--from`) an earlier run's trained
/// model with its masks — checked against the `[pruning]` table before any folder exists.
fn initial_model(
    loaded: &LoadedConfig,
    from: Option<&Path>,
    splits: &Splits,
    head: Head,
    ad: &burn::tensor::Device,
) -> Result<(Net, Option<pruning::MaskSet>), ExperimentError> {
    let cfg = &loaded.config;
    let input = cfg
        .model
        .input(cfg.data.image_shape(), splits.train.n_features);
    let model = Net::new(&cfg.model, input, head.n_outputs(), cfg.seed, ad);
    let mut start_masks = None;
    let model = match from {
        None => model,
        Some(from) => {
            let fail = |message: String| ExperimentError::From {
                dir: from.to_path_buf(),
                message,
            };
            let statik = cfg.pruning.as_ref().map(|p| p.mode()) == Some(PruningMode::Static);
            if !statik {
                return Err(fail("--from prunes an earlier run's model: the config needs a [pruning] table with mode = \"static\"".into()));
            }
            let masks_path = from.join("masks.safetensors");
            if masks_path.is_file() {
                start_masks = Some(load_masks(&masks_path)?);
            }
            let path = from.join("model.safetensors");
            if !model.is_mlp() || crate::export::holds_layer_list(&path)? {
                // A layer list: the earlier values into the network this config builds (its
                // ids), every parameter checked by path and shape.
                return finish_initial(loaded, load_params(model, &path)?, start_masks);
            }
            let mut earlier = load_model(&from.join("model.safetensors"), ad)?;
            if earlier.widths() != model.widths() {
                return Err(fail(format!(
                    "its network is {:?} but this config and data make {:?}",
                    earlier.widths(),
                    model.widths()
                )));
            }
            // The parameter ids of the network the config builds (from the seed): a resumed
            // run loads the earlier model again and finds its checkpoint's ids.
            for (l, fresh) in earlier.layers.iter_mut().zip(&model.layers) {
                l.weight.id = fresh.weight.id;
                if let (Some(b), Some(fresh)) = (l.bias.as_mut(), fresh.bias.as_ref()) {
                    b.id = fresh.id;
                }
            }
            earlier
        }
    };
    finish_initial(loaded, model, start_masks)
}

/// The initial network and masks, checked against the `[pruning]` table.
fn finish_initial(
    loaded: &LoadedConfig,
    model: Net,
    start_masks: Option<pruning::MaskSet>,
) -> Result<(Net, Option<pruning::MaskSet>), ExperimentError> {
    let cfg = &loaded.config;
    if let Some(p) = &cfg.pruning {
        // Checked before the run folder exists: a typo in a path, or a granularity the
        // layers cannot take (2:4 on a one-channel convolution), is a config error.
        let err = |cause| ExperimentError::Pruning {
            path: loaded.path.clone(),
            cause,
        };
        let params = prune::masked_params(&model, p).map_err(err)?;
        prune::check_selection(&model, &params, p).map_err(err)?;
    }
    Ok((model, start_masks))
}

/// The checkpoint of the stopped run in `dir`, checked to belong to its `config.toml`.
fn resume_checkpoint(dir: &Path) -> Result<Checkpoint, ExperimentError> {
    let fail = |message: String| ExperimentError::Resume {
        dir: dir.to_path_buf(),
        message,
    };
    if crate::run_dir::finished(dir) {
        return Err(fail(
            "this run finished (summary.json says ok): nothing to resume".into(),
        ));
    }
    let ckpt = Checkpoint::load(&dir.join(crate::checkpoint::FILE))?;
    let config_toml = dir.join("config.toml");
    let text = std::fs::read_to_string(&config_toml).map_err(io_err(&config_toml))?;
    if crate::run_dir::short_hash(&text) != ckpt.config_hash {
        return Err(fail(format!(
            "{} changed since the checkpoint was written: put it back, or start a new run",
            config_toml.display()
        )));
    }
    Ok(ckpt)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExperimentError + '_ {
    move |source| ExperimentError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// The resolved config as TOML (what `config.toml` in the run folder holds).
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn resolved_toml(config: &Config) -> String {
    toml::to_string_pretty(config).expect("a config serializes")
}

/// A resumed run's checkpoint, and the folder's lock taken before reading it (a second
/// `--resume` of a run still training is refused, naming the first's pid).
fn take_resume(
    opts: &RunOptions,
) -> Result<(Option<crate::folder::FolderLock>, Option<Checkpoint>), ExperimentError> {
    let Some(dir) = &opts.resume else {
        return Ok((None, None));
    };
    // Only a folder with a checkpoint gets a lock file: `--resume` of some other folder is
    // refused without touching it.
    let mut lock = None;
    if dir.join(crate::checkpoint::FILE).is_file() {
        lock = Some(crate::folder::FolderLock::acquire(dir)?);
    }
    Ok((lock, Some(resume_checkpoint(dir)?)))
}

/// The run folder: the resumed one, or a new one holding `config.toml` (locked by this
/// process from the start).
fn run_folder(
    loaded: &LoadedConfig,
    opts: &RunOptions,
    resolved: &str,
    lock: &mut Option<crate::folder::FolderLock>,
) -> Result<PathBuf, ExperimentError> {
    if let Some(dir) = &opts.resume {
        return Ok(dir.clone());
    }
    let out = opts.out.as_deref();
    let dir = create_run_dir(&opts.runs_root, &loaded.stem(), resolved, out)
        .map_err(io_err(out.unwrap_or(&opts.runs_root)))?;
    *lock = Some(crate::folder::FolderLock::acquire(&dir)?);
    let config_toml = dir.join("config.toml");
    crate::atomic::write(&config_toml, resolved).map_err(io_err(&config_toml))?;
    Ok(dir)
}

/// The final evaluations, the wall time and the summary of a finished run.
type Written = (Vec<(&'static str, Evaluation)>, f64, Summary);

/// What a run knows before its phases: where it is written, what it trains on, and what its
/// summary says about it.
struct Run<'a> {
    cfg: &'a Config,
    dir: PathBuf,
    config_path: PathBuf,
    device: DeviceInfo,
    head: Head,
    widths: Vec<usize>,
    parameters: usize,
    /// Wall time spent by the run being resumed, and when this process started.
    clock: (f64, Instant),
}

impl Run<'_> {
    fn wall_s(&self) -> f64 {
        self.clock.0 + self.clock.1.elapsed().as_secs_f64()
    }

    /// Writes `summary.json` with `outcome`.
    fn write_summary(&self, outcome: Outcome) -> Result<Summary, ExperimentError> {
        let cfg = self.cfg;
        let summary = Summary {
            config: self.config_path.display().to_string(),
            dataset: cfg.data.name.as_str().to_string(),
            backend: cfg.backend.to_string(),
            device: self.device.clone(),
            seed: cfg.seed,
            widths: self.widths.clone(),
            parameters: self.parameters,
            loss: self.head.loss_name().to_string(),
            versions: report::Versions {
                lopper: env!("CARGO_PKG_VERSION").into(),
                burn: BURN_VERSION.into(),
            },
            weights_layout: if cfg.model.is_layer_list() {
                "model.safetensors: PyTorch (conv [out, in, kh, kw], dense [out_features, in_features])"
            } else {
                "model.safetensors: PyTorch [out_features, in_features]"
            }
            .into(),
            outcome,
        };
        let path = self.dir.join("summary.json");
        crate::atomic::write(&path, report::to_json(&summary)).map_err(io_err(&path))?;
        Ok(summary)
    }

    fn stopped(&self, error: String) -> Stopped {
        Stopped {
            error,
            wall_time_s: self.wall_s(),
        }
    }

    /// A failed or interrupted run's summary, and the error that stopped it.
    fn failed(&self, cause: TrainError) -> ExperimentError {
        let stop = self.stopped(cause.to_string());
        let outcome = if matches!(cause, TrainError::Interrupted { .. }) {
            Outcome::Interrupted(stop)
        } else {
            Outcome::Failed(stop)
        };
        if let Err(e) = self.write_summary(outcome) {
            return e;
        }
        ExperimentError::Train {
            cause,
            dir: self.dir.clone(),
        }
    }

    /// Every output after the phases, each written atomically; a failure (a full disk, say)
    /// marks the run failed with the real cause and the file it hit, and leaves earlier files
    /// whole.
    fn write_outputs(
        &self,
        trained: &Phased,
        splits: &Splits,
        ad: &burn::tensor::Device,
    ) -> Result<Written, ExperimentError> {
        let written = (|| -> Result<_, ExperimentError> {
            write_pruning_outputs(&self.dir, trained)?;
            let evals = evaluate_splits(&trained.model, splits, self.head, ad, true);
            save_model(&trained.model, &self.dir.join("model.safetensors"))?;
            let wall_s = self.wall_s();
            let summary = self.write_summary(Outcome::Ok(Finished {
                epochs: trained.end.epochs_done,
                steps: trained.end.steps_done,
                stopped_early: trained.end.stopped_early,
                final_evals: evals_report(&evals, true),
                wall_time_s: wall_s,
            }))?;
            Ok((evals, wall_s, summary))
        })();
        written.map_err(|e| {
            // On a disk too full for even the small summary, the error says so too.
            match self.write_summary(Outcome::Failed(self.stopped(e.to_string()))) {
                Ok(_) => e,
                Err(w) => ExperimentError::Io {
                    path: self.dir.join("summary.json"),
                    cause: std::io::Error::other(format!(
                        "{w}; it was to record that the run failed: {e}"
                    )),
                },
            }
        })
    }
}

impl Run<'_> {
    /// Every output of the finished run, the pictures last: everything measured is on disk
    /// before, so a plotting failure (say, no fonts) costs only the pictures, and says so.
    fn conclude(
        self,
        trained: Phased,
        splits: &Splits,
        ad: &burn::tensor::Device,
    ) -> Result<RunResult, ExperimentError> {
        let (evals, wall_s, summary) = self.write_outputs(&trained, splits, ad)?;
        if let Err(e) = write_plots(&self.dir, self.cfg, &trained, &summary) {
            eprintln!("warning: plots not written: {e}");
        }
        Ok(RunResult {
            pruning: trained.pruning,
            dir: self.dir,
            evals,
            head: self.head,
            model: trained.model,
            widths: self.widths,
            wall_s,
            stopped_early: trained.end.stopped_early,
            device: self.device,
        })
    }
}

/// What a run needs before its folder exists: the data, the device and the network it starts
/// from, all checked.
struct Prepared {
    /// The config file the run started from: data paths in it are relative to it.
    config_path: PathBuf,
    device: DeviceInfo,
    splits: Splits,
    head: Head,
    /// The device with autodiff.
    ad: burn::tensor::Device,
    /// The earlier run a `--from` run starts from (a resumed one: the same).
    from: Option<PathBuf>,
    model: Net,
    start_masks: Option<pruning::MaskSet>,
}

fn prepare(
    loaded: &LoadedConfig,
    opts: &RunOptions,
    resume: Option<&Checkpoint>,
) -> Result<Prepared, ExperimentError> {
    let cfg = &loaded.config;
    let config_path = match resume {
        Some(c) => c.config_path.clone(),
        None => std::fs::canonicalize(&loaded.path).unwrap_or_else(|_| loaded.path.clone()),
    };
    let (device, device_info) = select_device(cfg.backend, cfg.device)?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    check_synthetic_size(loaded)?;
    let splits: Splits = data::load(&cfg.data, cfg.seed, base)?;
    let head = Head::for_data(&splits.train);
    // A layer list reads each sample as an image: the data must hold that many values.
    let image = cfg
        .data
        .shape
        .or(cfg.data.image_shape().filter(|_| cfg.model.is_layer_list()));
    if let Some(shape) = image
        && shape.iter().product::<usize>() != splits.train.n_features
    {
        let key = match cfg.data.name {
            crate::config::DatasetName::Csv => "data.shape",
            crate::config::DatasetName::FashionMnist => "data.dir",
            _ => "data.path",
        };
        return Err(ExperimentError::Resources {
            path: loaded.path.clone(),
            key: key.into(),
            message: format!(
                "images of {shape:?} hold {} values per sample, but the data has {} features",
                shape.iter().product::<usize>(),
                splits.train.n_features
            ),
        });
    }
    check_network_size(loaded, &splits, head)?;
    let ad = device.clone().autodiff();
    let from = (opts.from.clone()).or_else(|| resume.and_then(|c| c.from.clone()));
    let (model, start_masks) = initial_model(loaded, from.as_deref(), &splits, head, &ad)?;
    Ok(Prepared {
        config_path,
        device: device_info,
        splits,
        head,
        ad,
        from,
        model,
        start_masks,
    })
}

/// Runs the experiment `loaded` describes.
pub fn run_experiment(
    loaded: &LoadedConfig,
    opts: &RunOptions,
) -> Result<RunResult, ExperimentError> {
    let start = Instant::now();
    let cfg = &loaded.config;
    let resolved = resolved_toml(cfg);
    // One writer per run folder: a resumed run takes the folder's lock before reading it.
    let (mut lock, resume) = take_resume(opts)?;
    let Prepared {
        config_path,
        device: device_info,
        splits,
        head,
        ad,
        from,
        model,
        start_masks,
    } = prepare(loaded, opts, resume.as_ref())?;
    let dir = run_folder(loaded, opts, &resolved, &mut lock)?;
    let metrics_path = dir.join("metrics.csv");
    // A resumed run continues its log (cut back to its checkpoint by the runner).
    let mut metrics = match opts.resume {
        Some(_) => MetricsLog::append(&metrics_path),
        None => MetricsLog::create(&metrics_path),
    }
    .map_err(io_err(&metrics_path))?;
    let wall_before = resume.as_ref().map_or(0.0, |c| c.wall_s);
    let run = Run {
        cfg,
        dir: dir.clone(),
        config_path: config_path.clone(),
        device: device_info,
        head,
        widths: model.widths(),
        parameters: model.num_params(),
        clock: (wall_before, start),
    };
    let mut checkpointing = cfg.train.checkpoint_every.map(|every| Checkpointing {
        every,
        path: dir.join(crate::checkpoint::FILE),
        config_hash: crate::run_dir::short_hash(&resolved),
        config_path,
        from: from.clone(),
        wall_before,
        started: start,
        resume,
        phase: (0, crate::checkpoint::Bag::default()),
        resume_training: None,
    });
    let task = Task {
        splits: &splits,
        head,
        device: &ad,
    };
    let seeds = Seeds::new(cfg.seed);
    let ctx = RunContext { cfg, task, seeds };
    let mut progress = Progress::new(opts.progress);
    let mut sinks = Sinks {
        metrics: &mut metrics,
        progress: &mut progress,
    };
    let start_from = (from.is_some(), start_masks);
    let phases = crate::runner::run(model, &ctx, start_from, &mut sinks, checkpointing.as_mut());
    // Everything logged reaches the disk before anything reads metrics.csv back; a failure
    // here fails the run like any other.
    let synced = (metrics.sync()).map_err(|cause| TrainError::Io {
        path: metrics_path,
        cause,
    });
    let trained = (phases.and_then(|t| synced.map(|()| t))).map_err(|c| run.failed(c))?;
    let result = run.conclude(trained, &splits, &ad);
    // The folder stays ours until everything is written.
    drop(lock);
    result
}
