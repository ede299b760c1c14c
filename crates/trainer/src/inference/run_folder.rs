//! `trainer compact RUN_DIR` and `trainer infer RUN_DIR`: a finished run's model, compacted or
//! run without Burn, on the run's own test data. An MLP runs on the host (dense, CSR and
//! compacted kernels); a layer-list network (convolutions, batch norms, dropout) is rebuilt
//! from the run's config and runs through Burn on the run's backend, in evaluation mode.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use burn::tensor::{Device, Tensor, TensorData};

use super::compact::compact;
use super::csr::CsrMlp;
use super::host::HostMlp;
use crate::config::{BackendKind, Config, load_config};
use crate::data::{self, Dataset, Targets};
use crate::export::{holds_layer_list, load_model, load_params};
use crate::head::Head;
use crate::model::Net;

/// Why a run folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// A file of the run folder is missing or unreadable.
    #[error("{}: {message}", path.display())]
    Folder {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// The model file is not ours.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// The config in the folder no longer loads.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Its data cannot be loaded.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The folder is in use by another process.
    #[error(transparent)]
    Busy(#[from] crate::folder::FolderError),
    /// The run's backend is not available in this build or on this machine.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// What was asked does not apply to this run's network.
    #[error("{}: {message}", dir.display())]
    Unsupported {
        /// The run folder.
        dir: PathBuf,
        /// Why, and what to use instead.
        message: String,
    },
}

/// A finished run's network, as the commands run it.
#[derive(Debug, Clone)]
pub enum RunNet {
    /// An MLP, on the host: no Burn, every storage format.
    Mlp(HostMlp),
    /// A layer-list network, through Burn in evaluation mode (batch norms use their running
    /// statistics, dropout passes values through).
    Layers {
        /// The network, rebuilt from the run's config and loaded from its model file.
        net: Net,
        /// The run's backend.
        device: Device,
        /// Which backend that is.
        backend: BackendKind,
    },
}

impl RunNet {
    /// Outputs for `batch` samples in `x` (row-major).
    #[allow(
        clippy::expect_used,
        reason = "every backend here computes in f32, which the tensor is read back as"
    )]
    pub fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        match self {
            Self::Mlp(m) => m.forward(x, batch),
            Self::Layers { net, device, .. } => {
                // In the evaluation's chunks: a whole split in one pass would hold every
                // activation of every sample at once.
                let d = x.len() / batch.max(1);
                let mut out = Vec::new();
                for chunk in x.chunks(crate::eval::EVAL_CHUNK * d.max(1)) {
                    let rows = chunk.len() / d.max(1);
                    let x =
                        Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, d]), device);
                    out.extend(
                        net.forward(x)
                            .into_data()
                            .try_to_vec::<f32>()
                            .expect("f32 outputs"),
                    );
                }
                out
            }
        }
    }

    /// Widths, input first (a layer list's: input channels, then each layer's units).
    pub fn widths(&self) -> Vec<usize> {
        match self {
            Self::Mlp(m) => m.widths(),
            Self::Layers { net, .. } => net.widths(),
        }
    }

    /// What runs it: `host` or `burn-<backend>`.
    pub fn engine(&self) -> String {
        match self {
            Self::Mlp(_) => "host".into(),
            Self::Layers { backend, .. } => format!("burn-{backend}"),
        }
    }
}

/// A finished run: its network on the host and its evaluation split.
pub struct RunFolder {
    /// The network.
    pub model: RunNet,
    /// The test split (or validation, or train when the config has neither).
    pub eval: Dataset,
    /// Which split `eval` is.
    pub split: &'static str,
    /// The task head.
    pub head: Head,
}

/// Loads `dir/model.safetensors` and the data of `dir/config.toml`; evaluates on the test split.
pub fn open_run(dir: &Path) -> Result<RunFolder, RunFolderError> {
    open_run_on(dir, &["test", "valid", "train"])
}

/// As [`open_run`], evaluating on the first of `prefer` that the run's config has.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn open_run_on(dir: &Path, prefer: &[&'static str]) -> Result<RunFolder, RunFolderError> {
    let model_path = dir.join("model.safetensors");
    let config_path = dir.join("config.toml");
    for p in [&model_path, &config_path] {
        if !p.is_file() {
            return Err(RunFolderError::Folder {
                path: p.clone(),
                message: "not found; give the folder a training run wrote (runs/<name>-<hash>)"
                    .into(),
            });
        }
    }
    let loaded = load_config(&config_path, &[])?;
    let splits = data::load(&loaded.config.data, loaded.config.seed, dir)?;
    let head = Head::for_data(&splits.train);
    let model = if holds_layer_list(&model_path)? {
        layer_list(&loaded.config, &splits.train, head, &model_path)?
    } else {
        #[allow(deprecated)]
        let device = burn::tensor::Device::ndarray();
        RunNet::Mlp(HostMlp::from_mlp(&load_model(&model_path, &device)?))
    };
    // A layer list was built from the run's config and data, and load_params checked every
    // shape against it; an MLP file stands alone: load_model checked its chain, and its ends
    // must fit the run's data.
    if let RunNet::Mlp(m) = &model {
        let n_in = m.layers.first().map_or(0, |l| l.n_in);
        let n_out = m.layers.last().map_or(0, |l| l.n_out);
        if n_in != splits.train.n_features || n_out != head.n_outputs() {
            return Err(RunFolderError::Folder {
                path: model_path,
                message: format!(
                    "the model maps {n_in} inputs to {n_out} outputs, but the run's data has {} features and needs {} outputs; was it copied from another run?",
                    splits.train.n_features,
                    head.n_outputs()
                ),
            });
        }
    }
    let mut by_name = [
        ("train", Some(splits.train)),
        ("valid", splits.valid),
        ("test", splits.test),
    ];
    let (split, eval) = prefer
        .iter()
        .find_map(|want| {
            by_name
                .iter_mut()
                .find(|(n, d)| n == want && d.is_some())
                .map(|(n, d)| (*n, d.take().expect("checked")))
        })
        .expect("the train split always exists");
    Ok(RunFolder {
        model,
        eval,
        split,
        head,
    })
}

/// The layer-list network of the run's config, on its backend, with the values of `path` (every
/// parameter checked by path and shape).
fn layer_list(
    cfg: &Config,
    train: &Dataset,
    head: Head,
    path: &Path,
) -> Result<RunNet, RunFolderError> {
    let backend = cfg.backend;
    let device = crate::device::make_device(backend)?;
    let input = cfg.model.input(cfg.data.image_shape(), train.n_features);
    let net = Net::new(&cfg.model, input, head.n_outputs(), cfg.seed, &device);
    Ok(RunNet::Layers {
        net: load_params(net, path)?,
        device,
        backend,
    })
}

/// Accuracy of outputs `out` on `set` (None for regression).
pub fn accuracy(head: Head, out: &[f32], set: &Dataset) -> Option<f64> {
    let Targets::Classes { labels, .. } = &set.y else {
        return None;
    };
    let pred = head.predict(out);
    let hits = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
    Some(hits as f64 / labels.len().max(1) as f64)
}

/// What `trainer compact` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    /// Widths before, input first.
    pub widths_before: Vec<usize>,
    /// Widths after.
    pub widths_after: Vec<usize>,
    /// Accuracy of the original on the evaluation split.
    pub accuracy_before: Option<f64>,
    /// Accuracy of the compacted network.
    pub accuracy_after: Option<f64>,
    /// Largest |difference| of any output over the split.
    pub max_abs_diff: f32,
    /// The split.
    pub split: &'static str,
    /// Units that could not be removed, and why (a layer list's constant channels before a
    /// padded convolution).
    pub notes: Vec<String>,
}

/// Compacts the run's model into `dir/compact.safetensors` and checks it on the run's data.
pub fn compact_run(dir: &Path) -> Result<CompactReport, RunFolderError> {
    let run = open_run(dir)?;
    // It writes into the folder (checked to be a run's above): not while another process (a
    // resume, say) holds it.
    let _lock = crate::folder::FolderLock::acquire(dir)?;
    let path = dir.join("compact.safetensors");
    let (small, notes) = compacted(&run.model);
    let n = run.eval.len();
    let a = run.model.forward(&run.eval.x, n);
    let b = small.forward(&run.eval.x, n);
    let max_abs_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    match &small {
        RunNet::Mlp(m) => m.save(&path)?,
        RunNet::Layers { net, .. } => crate::export::save_model(net, &path)?,
    }
    Ok(CompactReport {
        widths_before: run.model.widths(),
        widths_after: small.widths(),
        accuracy_before: accuracy(run.head, &a, &run.eval),
        accuracy_after: accuracy(run.head, &b, &run.eval),
        max_abs_diff,
        split: run.split,
        notes,
    })
}

/// `model` with its removable units removed, and why any that could not be were kept.
fn compacted(model: &RunNet) -> (RunNet, Vec<String>) {
    match model {
        RunNet::Mlp(m) => (RunNet::Mlp(compact(m).model), Vec::new()),
        RunNet::Layers {
            net,
            device,
            backend,
        } => {
            let small = crate::compact_net::compact_net(net, device);
            let net = RunNet::Layers {
                net: small.model,
                device: device.clone(),
                backend: *backend,
            };
            (net, small.notes)
        }
    }
}

/// How `trainer infer` runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Format {
    /// Every weight, dense rows.
    Dense,
    /// Nonzero weights only, compressed sparse rows.
    Csr,
    /// Dead units removed, dense.
    Compact,
}

/// What `trainer infer` measured.
#[derive(Debug, Clone, Serialize)]
pub struct InferReport {
    /// The format.
    pub format: Format,
    /// What ran it: `host` (an MLP's own kernels) or `burn-<backend>` (a layer list).
    pub engine: String,
    /// Samples evaluated.
    pub samples: usize,
    /// Batch size.
    pub batch: usize,
    /// Accuracy on the split.
    pub accuracy: Option<f64>,
    /// Median over `repeats` passes of the wall time per sample, in microseconds.
    pub us_per_sample: f64,
    /// The split.
    pub split: &'static str,
}

/// Runs the whole evaluation split through the run's network in `format` (by default CSR for
/// an MLP, dense for a layer list), `repeats` times.
pub fn infer_run(
    dir: &Path,
    format: Option<Format>,
    batch: usize,
    repeats: usize,
) -> Result<InferReport, RunFolderError> {
    let run = open_run(dir)?;
    let n = run.eval.len();
    let d = run.eval.n_features;
    let batch = batch.clamp(1, n.max(1));
    let format = format.unwrap_or(match run.model {
        RunNet::Mlp(_) => Format::Csr,
        RunNet::Layers { .. } => Format::Dense,
    });
    let net = match (format, &run.model) {
        (Format::Dense, m) => m.clone(),
        (Format::Compact, m) => compacted(m).0,
        (Format::Csr, RunNet::Mlp(_)) => run.model.clone(),
        (Format::Csr, RunNet::Layers { .. }) => {
            return Err(RunFolderError::Unsupported {
                dir: dir.to_path_buf(),
                message: "--format csr runs MLPs (dense layers with one nonlinearity), and this run's network has convolutions, batch norms, dropout or mixed activations; use --format dense or compact".into(),
            });
        }
    };
    let csr = match (format, &net) {
        (Format::Csr, RunNet::Mlp(m)) => Some(CsrMlp::from_host(m)),
        _ => None,
    };
    let forward = |x: &[f32], b: usize| match &csr {
        Some(c) => c.forward(x, b),
        None => net.forward(x, b),
    };
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..repeats.max(1) {
        out.clear();
        let t = Instant::now();
        for chunk in run.eval.x.chunks(batch * d) {
            out.extend(forward(chunk, chunk.len() / d));
        }
        times.push(t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(InferReport {
        format,
        engine: net.engine(),
        samples: n,
        batch,
        accuracy: accuracy(run.head, &out, &run.eval),
        us_per_sample: times[times.len() / 2],
        split: run.split,
    })
}
