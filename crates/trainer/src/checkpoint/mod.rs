//! Checkpoints of a run's (first) training phase, and resuming from one.
//!
//! A checkpoint is everything the loop cannot rebuild from the config: the weights, the
//! optimizer's state, the shuffling generator and the epoch's sample order, the position
//! (epoch, step), early stopping's state and best model, and each hook's state (the pruner's
//! masks, gradient window, generator and update record; `metrics.csv`'s length). The rest
//! (data, the initial network, masks chosen at initialisation) is rebuilt from the config
//! exactly, so a resumed run ends with the numbers of an uninterrupted one.
//!
//! One safetensors file, written to a temporary name and renamed over the old one: a kill at
//! any moment leaves either the previous checkpoint or the new one, never half of one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::optim::ModuleOptimizer;
use pruning::{HookState, Rng, Snapshot, TrainHook};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::early_stop::EarlyStopping;
use crate::model::Mlp;
use crate::train::TrainError;

/// The file's name in the run folder.
pub const FILE: &str = "checkpoint.safetensors";

const FORMAT: &str = "lopper-checkpoint/1";

/// What a checkpoint holds.
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: usize,
    /// Every parameter's values, by id (ids are derived from the seed, so a rebuilt network
    /// has the same ones).
    pub model: Snapshot,
    /// Early stopping's best model so far.
    pub best: Option<Snapshot>,
    /// The optimizer's record (burnpack bytes).
    pub optim: Vec<u8>,
    /// The shuffling generator's state.
    pub shuffle: [u64; 4],
    /// The sample order the next shuffle starts from.
    pub order: Vec<usize>,
    /// Early stopping: best validation loss and evaluations since.
    pub early: Option<(Option<f64>, usize)>,
    /// Each hook's name and state, in the loop's order.
    pub hooks: Vec<(String, Option<HookState>)>,
    /// Wall time the run had spent when the checkpoint was written.
    pub wall_s: f64,
    /// Hash of the run's `config.toml` (a resumed run must use the same one).
    pub config_hash: String,
    /// The config file the run was started from (data paths are relative to it).
    pub config_path: PathBuf,
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

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// Whether this checkpoint was written by a loop like the one about to resume: the same
    /// hooks, in order, and values for every parameter of `model`.
    /// Also that every value has its parameter's size and the sample order is an order of the
    /// `n_samples` training samples: a corrupted file is refused, never indexed out of bounds.
    pub fn fits(
        &self,
        model: &Mlp,
        hooks: &[&mut dyn TrainHook<Mlp>],
        n_samples: usize,
    ) -> Result<(), String> {
        let names: Vec<&str> = hooks.iter().map(|h| h.name()).collect();
        let saved: Vec<&str> = self.hooks.iter().map(|(n, _)| n.as_str()).collect();
        if names != saved {
            return Err(format!(
                "it was written by a loop with hooks {saved:?}, this run has {names:?}: resume with the build and config that wrote it"
            ));
        }
        // Ids derive from the seed: a network that does not find its own ids in the file is
        // not the network that wrote it, and restoring would silently keep fresh weights.
        let params = pruning::param_infos(model);
        if let Some(p) = params
            .iter()
            .find(|p| !self.model.values().contains_key(&p.id))
        {
            return Err(format!(
                "it holds no values for this network's `{}`: it was written for another network or by another build; start the run again",
                p.path
            ));
        }
        for snapshot in std::iter::once(&self.model).chain(self.best.as_ref()) {
            for p in &params {
                let size: usize = p.shape.iter().product();
                let got = snapshot.values().get(&p.id).map(Vec::len);
                if got.is_some_and(|g| g != size) {
                    return Err(format!(
                        "`{}` has {} values in it but {size} in the network: the file is corrupt; start the run again",
                        p.path,
                        got.unwrap_or(0)
                    ));
                }
            }
        }
        let mut seen = vec![false; n_samples];
        let permutation = self.order.len() == n_samples
            && self
                .order
                .iter()
                .all(|&i| i < n_samples && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return Err(format!(
                "its sample order is not an order of the {n_samples} training samples: the file is corrupt or the data changed; start the run again"
            ));
        }
        Ok(())
    }

    /// Writes the checkpoint to `path` atomically (temporary file, then rename).
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut buffers: Vec<(String, Dtype, Vec<u8>)> = Vec::new();
        let mut meta: HashMap<String, String> = HashMap::new();
        for (id, v) in self.model.values() {
            buffers.push((format!("model.{}", id.val()), Dtype::F32, f32_bytes(v)));
        }
        if let Some(best) = &self.best {
            for (id, v) in best.values() {
                buffers.push((format!("best.{}", id.val()), Dtype::F32, f32_bytes(v)));
            }
        }
        buffers.push(("optim".into(), Dtype::U8, self.optim.clone()));
        let order: Vec<u64> = self.order.iter().map(|&i| i as u64).collect();
        buffers.push(("order".into(), Dtype::U64, u64_bytes(&order)));
        buffers.push(("shuffle".into(), Dtype::U64, u64_bytes(&self.shuffle)));
        let mut names = Vec::new();
        for (i, (name, state)) in self.hooks.iter().enumerate() {
            names.push(name.clone());
            let Some(st) = state else { continue };
            meta.insert(format!("hook.{i}"), "state".into());
            for (k, v) in &st.floats {
                buffers.push((format!("hook.{i}.f.{k}"), Dtype::F32, f32_bytes(v)));
            }
            for (k, v) in &st.words {
                buffers.push((format!("hook.{i}.w.{k}"), Dtype::U64, u64_bytes(v)));
            }
            for (k, v) in &st.text {
                meta.insert(format!("hook.{i}.t.{k}"), v.clone());
            }
        }
        meta.insert("format".into(), FORMAT.into());
        meta.insert("hooks".into(), names.join("\n"));
        meta.insert("epoch".into(), self.epoch.to_string());
        meta.insert("step".into(), self.step.to_string());
        meta.insert("wall_s".into(), self.wall_s.to_string());
        meta.insert("config_hash".into(), self.config_hash.clone());
        meta.insert(
            "config_path".into(),
            self.config_path.to_string_lossy().into_owned(),
        );
        if let Some((best, since)) = self.early {
            let best = best.map_or("none".into(), |b| b.to_bits().to_string());
            meta.insert("early".into(), format!("{best},{since}"));
        }
        let views: Vec<(String, TensorView<'_>)> = buffers
            .iter()
            .map(|(name, dtype, bytes)| {
                let width = match dtype {
                    Dtype::U8 => 1,
                    Dtype::F32 => 4,
                    _ => 8,
                };
                let view = TensorView::new(*dtype, vec![bytes.len() / width], bytes)
                    .expect("lengths are whole elements");
                (name.clone(), view)
            })
            .collect();
        let bytes = crate::export::safetensors_bytes(views, meta).map_err(std::io::Error::other)?;
        crate::atomic::write(path, bytes)
    }

    /// Reads the checkpoint at `path`.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
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
        let bad = |what: &str| err(format!("not a Lopper checkpoint ({what})"));
        let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad("format"));
        }
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(k));
        let num =
            |k: &str| -> Result<usize, CheckpointError> { get(k)?.parse().map_err(|_| bad(k)) };
        let mut model = BTreeMap::new();
        let mut best = BTreeMap::new();
        let (mut optim, mut order, mut shuffle) = (None, None, None);
        let mut hook_floats: BTreeMap<usize, BTreeMap<String, Vec<f32>>> = BTreeMap::new();
        let mut hook_words: BTreeMap<usize, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let floats = || -> Vec<f32> {
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            };
            let words = || -> Vec<u64> {
                data.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            };
            let id = |s: &str| s.parse::<u64>().map(ParamId::from).map_err(|_| bad(&name));
            // Weights that are NaN or infinite would train on as NaN: refuse them here.
            let finite = |v: Vec<f32>| -> Result<Vec<f32>, CheckpointError> {
                match v.iter().position(|x| !x.is_finite()) {
                    None => Ok(v),
                    Some(k) => Err(CheckpointError {
                        path: path.to_path_buf(),
                        message: format!(
                            "`{name}` holds {} at flat index {k}; the checkpoint is corrupt: start the run again",
                            v[k]
                        ),
                    }),
                }
            };
            if let Some(rest) = name.strip_prefix("model.") {
                model.insert(id(rest)?, finite(floats())?);
            } else if let Some(rest) = name.strip_prefix("best.") {
                best.insert(id(rest)?, finite(floats())?);
            } else if name == "optim" {
                optim = Some(data.to_vec());
            } else if name == "order" {
                order = Some(words().into_iter().map(|w| w as usize).collect());
            } else if name == "shuffle" {
                shuffle = Some(words().try_into().map_err(|_| bad("shuffle"))?);
            } else if let Some(rest) = name.strip_prefix("hook.") {
                let (i, rest) = rest.split_once('.').ok_or_else(|| bad(&name))?;
                let i: usize = i.parse().map_err(|_| bad(&name))?;
                match rest.split_once('.') {
                    Some(("f", k)) => {
                        hook_floats.entry(i).or_default().insert(k.into(), floats());
                    }
                    Some(("w", k)) => {
                        hook_words.entry(i).or_default().insert(k.into(), words());
                    }
                    _ => return Err(bad(&name)),
                }
            }
        }
        let names = get("hooks")?;
        let mut hooks = Vec::new();
        for (i, name) in names.split('\n').enumerate() {
            let state = meta.contains_key(&format!("hook.{i}")).then(|| {
                let prefix = format!("hook.{i}.t.");
                HookState {
                    floats: hook_floats.remove(&i).unwrap_or_default(),
                    words: hook_words.remove(&i).unwrap_or_default(),
                    text: meta
                        .iter()
                        .filter_map(|(k, v)| {
                            k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone()))
                        })
                        .collect(),
                }
            });
            hooks.push((name.to_string(), state));
        }
        let early = match meta.get("early") {
            None => None,
            Some(e) => {
                let (b, since) = e.split_once(',').ok_or_else(|| bad("early"))?;
                let best = match b {
                    "none" => None,
                    bits => Some(f64::from_bits(bits.parse().map_err(|_| bad("early"))?)),
                };
                Some((best, since.parse().map_err(|_| bad("early"))?))
            }
        };
        let step = num("step")?;
        Ok(Self {
            epoch: num("epoch")?,
            step,
            model: Snapshot::from_values(step, model),
            best: (!best.is_empty()).then(|| Snapshot::from_values(step, best)),
            optim: optim.ok_or_else(|| bad("optim"))?,
            shuffle: shuffle.ok_or_else(|| bad("shuffle"))?,
            order: order.ok_or_else(|| bad("order"))?,
            early,
            hooks,
            wall_s: get("wall_s")?.parse().map_err(|_| bad("wall_s"))?,
            config_hash: get("config_hash")?.clone(),
            config_path: PathBuf::from(get("config_path")?),
        })
    }
}

/// How a training loop checkpoints: every `every` epochs into `path`; `resume` is the
/// checkpoint to continue from, taken by the loop when it starts.
pub struct Checkpointing {
    /// Epochs between checkpoints.
    pub every: usize,
    /// Where they go.
    pub path: PathBuf,
    /// Stamped into each checkpoint: which `config.toml` it belongs to.
    pub config_hash: String,
    /// Stamped into each checkpoint: the config file the run started from.
    pub config_path: PathBuf,
    /// Wall time spent before this process (by the run being resumed).
    pub wall_before: f64,
    /// When this process started.
    pub started: std::time::Instant,
    /// The checkpoint to resume from.
    pub resume: Option<Checkpoint>,
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
}

impl Checkpointing {
    /// Writes the loop's state at `at` (after the epoch's hooks ran).
    pub fn write(
        &self,
        at: &Position<'_>,
        model: &Mlp,
        best: Option<&Mlp>,
        optim: &ModuleOptimizer,
        hooks: &[&mut dyn TrainHook<Mlp>],
    ) -> Result<(), TrainError> {
        let fail = |message: String| TrainError::Checkpoint {
            path: self.path.clone(),
            message,
        };
        let mut states = Vec::with_capacity(hooks.len());
        for h in hooks {
            let state = h
                .save_state()
                .map_err(|e| fail(format!("hook `{}` could not save its state: {e}", h.name())))?;
            states.push((h.name().to_string(), state));
        }
        let snapshot = |m: &Mlp| Snapshot::take(m, at.step);
        let optim = optim.into_bytes().map_err(|e| fail(e.to_string()))?;
        Checkpoint {
            epoch: at.epoch,
            step: at.step,
            model: snapshot(model),
            best: best.map(snapshot),
            optim: optim.to_vec(),
            shuffle: at.shuffle.state(),
            order: at.order.to_vec(),
            early: at.early.map(EarlyStopping::state),
            hooks: states,
            wall_s: self.wall_before + self.started.elapsed().as_secs_f64(),
            config_hash: self.config_hash.clone(),
            config_path: self.config_path.clone(),
        }
        .save(&self.path)
        .map_err(|e| fail(e.to_string()))
    }
}
