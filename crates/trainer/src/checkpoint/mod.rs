//! Checkpoints of a run, and resuming from one.
//!
//! A run is a list of phases ([`crate::phases`]). A checkpoint says which phase the run is in,
//! holds the runner's state at that phase's start (weights, masks, the report so far: see
//! [`crate::runner`]), and, written inside a training phase, the loop's state at the end of an
//! epoch ([`LoopCheckpoint`]). The rest (data, the initial network) is rebuilt from the config
//! exactly, so a resumed run ends with the numbers of an uninterrupted one, whichever phase it
//! was killed in.
//!
//! One safetensors file, written to a temporary name and renamed over the old one: a kill at
//! any moment leaves either the previous checkpoint or the new one, never half of one.

mod bag;
mod parts;
mod training;

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use pruning::{Rng, Snapshot, TrainHook};

pub use bag::Bag;
pub use parts::{put_masks, put_snapshot, take_masks, take_snapshot};
pub use training::LoopCheckpoint;

use crate::early_stop::EarlyStopping;
use crate::model::Net;
use crate::train::TrainError;

/// The file's name in the run folder.
pub const FILE: &str = "checkpoint.safetensors";

const FORMAT: &str = "lopper-checkpoint/2";

/// What a checkpoint holds.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The phase the run was in: its index in the run's phase list.
    pub phase: usize,
    /// The runner's state at the start of that phase (empty in the first phase, whose start
    /// is rebuilt from the config).
    pub state: Bag,
    /// The training loop's state inside the phase, when one was written there.
    pub training: Option<LoopCheckpoint>,
    /// Wall time the run had spent when the checkpoint was written.
    pub wall_s: f64,
    /// Hash of the run's `config.toml` (a resumed run must use the same one).
    pub config_hash: String,
    /// The config file the run was started from (data paths are relative to it).
    pub config_path: PathBuf,
    /// The earlier run a `--from` run started from.
    pub from: Option<PathBuf>,
}

/// A checkpoint that cannot be read, or does not belong to this run.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bag = Bag::default();
        bag.nest("state.", self.state.clone());
        if let Some(t) = &self.training {
            bag.nest("train.", t.to_bag());
        }
        let text = [
            ("format", FORMAT.to_string()),
            ("phase", self.phase.to_string()),
            ("wall_s", self.wall_s.to_string()),
            ("config_hash", self.config_hash.clone()),
            (
                "config_path",
                self.config_path.to_string_lossy().into_owned(),
            ),
        ];
        bag.text
            .extend(text.into_iter().map(|(k, v)| (k.to_string(), v)));
        if let Some(from) = &self.from {
            let from = from.to_string_lossy().into_owned();
            bag.text.insert("from".into(), from);
        }
        crate::atomic::write(path, bag.to_safetensors().map_err(std::io::Error::other)?)
    }

    /// Reads the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let err = |message: String| CheckpointError {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            err(if e.kind() == std::io::ErrorKind::NotFound {
                "no checkpoint here: the run did not set train.checkpoint_every, or was stopped before its first checkpoint; start it again".into()
            } else {
                e.to_string()
            })
        })?;
        let bad = |what: String| err(format!("not a Lopper checkpoint ({what})"));
        let mut bag = Bag::from_safetensors(&bytes).map_err(bad)?;
        match bag.get("format") {
            Ok(FORMAT) => {}
            Ok("lopper-checkpoint/1") => {
                return Err(err(
                    "written by an earlier Lopper, which checkpointed only the first phase: start the run again".into(),
                ));
            }
            _ => return Err(bad("format".into())),
        }
        let state = bag.take("state.");
        let training = bag.take("train.");
        let training = (!training.is_empty())
            .then(|| LoopCheckpoint::from_bag(training))
            .transpose()
            .map_err(bad)?;
        Ok(Self {
            phase: bag.parse("phase").map_err(bad)?,
            state,
            training,
            wall_s: bag.parse("wall_s").map_err(bad)?,
            config_hash: bag.get("config_hash").map_err(bad)?.to_string(),
            config_path: PathBuf::from(bag.get("config_path").map_err(bad)?),
            from: bag.text.get("from").map(PathBuf::from),
        })
    }
}

/// How a run checkpoints: at the start of every phase after the first, and every `every`
/// epochs inside training phases, into `path`.
pub struct Checkpointing {
    /// Epochs between checkpoints inside a training phase.
    pub every: usize,
    /// Where they go.
    pub path: PathBuf,
    /// Stamped into each checkpoint: which `config.toml` it belongs to.
    pub config_hash: String,
    /// Stamped into each checkpoint: the config file the run started from.
    pub config_path: PathBuf,
    /// Stamped into each checkpoint: the earlier run a `--from` run started from.
    pub from: Option<PathBuf>,
    /// Wall time spent before this process (by the run being resumed).
    pub wall_before: f64,
    /// When this process started.
    pub started: std::time::Instant,
    /// The checkpoint to resume from: the runner takes it when the run starts.
    pub resume: Option<Checkpoint>,
    /// The phase running now, and the runner's state at its start: in every checkpoint
    /// written inside it.
    pub phase: (usize, Bag),
    /// The loop's state to continue from, taken by the training phase being resumed.
    pub resume_training: Option<LoopCheckpoint>,
}

/// Where the loop stands at the end of an epoch.
pub struct Position<'a> {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: usize,
    /// The shuffling generator.
    pub shuffle: &'a Rng,
    /// The sample order the next shuffle starts from.
    pub order: &'a [usize],
    /// Early stopping, when on.
    pub early: Option<&'a EarlyStopping>,
    /// metrics.csv's length with the epoch logged (on the disk), when the phase logs.
    pub metrics_bytes: Option<u64>,
    /// Steps each dense layer ran as a sparse product so far, by layer index.
    pub sparse_steps: &'a std::collections::BTreeMap<usize, usize>,
}

impl Checkpointing {
    fn fail(&self, message: String) -> TrainError {
        TrainError::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }

    fn save(&self, training: Option<LoopCheckpoint>) -> Result<(), TrainError> {
        let (phase, state) = &self.phase;
        Checkpoint {
            phase: *phase,
            state: state.clone(),
            training,
            wall_s: self.wall_before + self.started.elapsed().as_secs_f64(),
            config_hash: self.config_hash.clone(),
            config_path: self.config_path.clone(),
            from: self.from.clone(),
        }
        .save(&self.path)
        .map_err(|e| self.fail(e.to_string()))
    }

    /// Starts phase `phase` from the runner's `state`, and writes the checkpoint that resumes
    /// there.
    pub fn begin_phase(&mut self, phase: usize, state: Bag) -> Result<(), TrainError> {
        self.phase = (phase, state);
        self.save(None)
    }

    /// Writes the loop's state at `at` (after the epoch's hooks ran).
    pub fn write(
        &self,
        at: &Position<'_>,
        model: &Net,
        best: Option<&Net>,
        optim: &ModuleOptimizer,
        hooks: &[&mut dyn TrainHook<Net>],
    ) -> Result<(), TrainError> {
        let mut states = Vec::with_capacity(hooks.len());
        for h in hooks {
            let state = h.save_state().map_err(|e| {
                self.fail(format!("hook `{}` could not save its state: {e}", h.name()))
            })?;
            states.push((h.name().to_string(), state));
        }
        let snapshot = |m: &Net| Snapshot::take(m, at.step);
        let optim = optim.into_bytes().map_err(|e| self.fail(e.to_string()))?;
        self.save(Some(LoopCheckpoint {
            epoch: at.epoch,
            step: at.step,
            model: snapshot(model),
            best: best.map(snapshot),
            optim: optim.to_vec(),
            shuffle: at.shuffle.state(),
            order: at.order.to_vec(),
            early: at.early.map(EarlyStopping::state),
            hooks: states,
            metrics_bytes: at.metrics_bytes,
            sparse_steps: at.sparse_steps.clone(),
        }))
    }
}
