//! `trainer compact RUN_DIR` and `trainer infer RUN_DIR`: a finished run's model, compacted or
//! run without Burn, on the run's own test data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::compact::compact;
use super::csr::CsrMlp;
use super::host::HostMlp;
use crate::config::load_config;
use crate::data::{self, Dataset, Targets};
use crate::export::load_model;
use crate::head::Head;

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
}

/// A finished run: its network on the host and its evaluation split.
pub struct RunFolder {
    /// The network.
    pub model: HostMlp,
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
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let model = HostMlp::from_mlp(&load_model(&model_path, &device)?);
    let loaded = load_config(&config_path, &[])?;
    let splits = data::load(&loaded.config.data, loaded.config.seed, dir)?;
    let head = Head::for_data(&splits.train);
    // load_model checked the chain; the ends must fit the run's data.
    let (n_in, n_out) = (
        model.layers.first().map_or(0, |l| l.n_in),
        model.layers.last().map_or(0, |l| l.n_out),
    );
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
}

/// Compacts the run's model into `dir/compact.safetensors` and checks it on the run's data.
pub fn compact_run(dir: &Path) -> Result<CompactReport, RunFolderError> {
    let run = open_run(dir)?;
    // It writes into the folder (checked to be a run's above): not while another process (a
    // resume, say) holds it.
    let _lock = crate::folder::FolderLock::acquire(dir)?;
    let small = compact(&run.model);
    let n = run.eval.len();
    let a = run.model.forward(&run.eval.x, n);
    let b = small.model.forward(&run.eval.x, n);
    let max_abs_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    small.model.save(&dir.join("compact.safetensors"))?;
    Ok(CompactReport {
        widths_before: run.model.widths(),
        widths_after: small.model.widths(),
        accuracy_before: accuracy(run.head, &a, &run.eval),
        accuracy_after: accuracy(run.head, &b, &run.eval),
        max_abs_diff,
        split: run.split,
    })
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

/// Runs the whole evaluation split through the run's network in `format`, `repeats` times.
pub fn infer_run(
    dir: &Path,
    format: Format,
    batch: usize,
    repeats: usize,
) -> Result<InferReport, RunFolderError> {
    let run = open_run(dir)?;
    let n = run.eval.len();
    let d = run.eval.n_features;
    let batch = batch.clamp(1, n.max(1));
    let csr = CsrMlp::from_host(&run.model);
    let small = compact(&run.model).model;
    let forward = |x: &[f32], b: usize| match format {
        Format::Dense => run.model.forward(x, b),
        Format::Csr => csr.forward(x, b),
        Format::Compact => small.forward(x, b),
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
        samples: n,
        batch,
        accuracy: accuracy(run.head, &out, &run.eval),
        us_per_sample: times[times.len() / 2],
        split: run.split,
    })
}
