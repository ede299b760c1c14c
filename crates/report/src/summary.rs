//! `summary.json`: what ran, on what, and how it ended.

use serde::{Deserialize, Serialize};

use crate::Evals;

/// One run's summary.
// Read through `Wire`: serde's flatten would hide where in the file a nested field is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Wire")]
pub struct Summary {
    /// The config file the run was started from.
    pub config: String,
    /// The data set's name.
    pub dataset: String,
    /// `ndarray`, `flex` or `wgpu`.
    pub backend: String,
    /// The device it ran on.
    pub device: DeviceInfo,
    /// The config's seed.
    pub seed: u64,
    /// Layer widths, inputs to outputs.
    pub widths: Vec<usize>,
    /// Parameters of the dense network.
    pub parameters: usize,
    /// The loss trained on.
    pub loss: String,
    /// Versions of Lopper and Burn.
    pub versions: Versions,
    /// How model.safetensors lays out its weights.
    pub weights_layout: String,
    /// How the run ended (`status` and what goes with it).
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a run ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `ndarray`, `flex` or `wgpu`.
    pub backend: String,
    /// The adapter's name (`cpu` for the CPU backends).
    pub name: String,
    /// Graphics API the adapter runs under (Vulkan, Metal, Dx12, Gl), empty on CPU backends.
    pub api: String,
    /// Driver name and version, as the driver reports them.
    pub driver: String,
    /// Discrete, integrated, virtual, cpu (software rasteriser such as lavapipe) or other.
    pub device_type: String,
}

impl DeviceInfo {
    /// One line for people: `llvmpipe (LLVM 15.0.6, 256 bits) — Vulkan, llvmpipe Mesa 22.3.6`.
    pub fn describe(&self) -> String {
        if self.api.is_empty() {
            return format!("{} ({})", self.backend, self.name);
        }
        format!(
            "{} ({}, {} {}, driver {})",
            self.backend, self.name, self.api, self.device_type, self.driver
        )
    }
}

/// Versions a run was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// Lopper's.
    pub lopper: String,
    /// Burn's.
    pub burn: String,
}

/// How a run ended, tagged by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// It finished and wrote every output.
    Ok(Finished),
    /// It failed; `error` says why.
    Failed(Stopped),
    /// Ctrl-C or SIGTERM stopped it; `--resume` continues it.
    Interrupted(Stopped),
}

/// A finished run's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Epochs of the last training phase.
    pub epochs: usize,
    /// Optimizer steps of the last training phase.
    pub steps: usize,
    /// Early stopping ended it.
    pub stopped_early: bool,
    /// The final network's evaluation on every split.
    #[serde(rename = "final")]
    pub final_evals: Evals,
    /// Seconds, resumed parts included.
    pub wall_time_s: f64,
}

/// A run that did not finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    /// What stopped it.
    pub error: String,
    /// Seconds until it stopped.
    pub wall_time_s: f64,
}

impl Summary {
    /// The status word: `ok`, `failed` or `interrupted`.
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Interrupted(_) => "interrupted",
        }
    }

    /// The figures of a finished run.
    pub fn finished(&self) -> Option<&Finished> {
        match &self.outcome {
            Outcome::Ok(f) => Some(f),
            _ => None,
        }
    }

    /// Seconds the run took, however it ended.
    pub fn wall_time_s(&self) -> f64 {
        match &self.outcome {
            Outcome::Ok(f) => f.wall_time_s,
            Outcome::Failed(s) | Outcome::Interrupted(s) => s.wall_time_s,
        }
    }
}

/// `summary.json` as it lies in the file, checked into a [`Summary`] by its status.
#[derive(Deserialize)]
struct Wire {
    config: String,
    dataset: String,
    backend: String,
    device: DeviceInfo,
    seed: u64,
    widths: Vec<usize>,
    parameters: usize,
    loss: String,
    versions: Versions,
    weights_layout: String,
    status: Status,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    epochs: Option<usize>,
    #[serde(default)]
    steps: Option<usize>,
    #[serde(default)]
    stopped_early: Option<bool>,
    #[serde(default, rename = "final")]
    final_evals: Option<Evals>,
    wall_time_s: f64,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
    Interrupted,
}

/// The error of a field the status requires.
pub(crate) fn missing(field: &str, because: &str) -> String {
    format!("missing field `{field}` ({because} records it)")
}

impl TryFrom<Wire> for Summary {
    type Error = String;

    fn try_from(w: Wire) -> Result<Self, String> {
        let need = |field: &str| missing(field, "a run with status ok");
        let stopped = |error: Option<String>| -> Result<Stopped, String> {
            Ok(Stopped {
                error: error.ok_or_else(|| missing("error", "a run that did not finish"))?,
                wall_time_s: w.wall_time_s,
            })
        };
        let outcome = match w.status {
            Status::Ok => Outcome::Ok(Finished {
                epochs: w.epochs.ok_or_else(|| need("epochs"))?,
                steps: w.steps.ok_or_else(|| need("steps"))?,
                stopped_early: w.stopped_early.ok_or_else(|| need("stopped_early"))?,
                final_evals: w.final_evals.ok_or_else(|| need("final"))?,
                wall_time_s: w.wall_time_s,
            }),
            Status::Failed => Outcome::Failed(stopped(w.error)?),
            Status::Interrupted => Outcome::Interrupted(stopped(w.error)?),
        };
        Ok(Summary {
            config: w.config,
            dataset: w.dataset,
            backend: w.backend,
            device: w.device,
            seed: w.seed,
            widths: w.widths,
            parameters: w.parameters,
            loss: w.loss,
            versions: w.versions,
            weights_layout: w.weights_layout,
            outcome,
        })
    }
}
