//! The experiment config: what researchers edit, as serde structs that reject unknown keys,
//! plus loading (file lookup, `--set` overrides) and the checks that parsing alone cannot do.
//!
//! Every table is `deny_unknown_fields`, and enums are plain strings rather than tagged tables
//! (serde's tagged enums weaken unknown-key checks, serde #2123).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod layers;
mod pruning_table;

pub use layers::{LayerEntry, LayerKind, Preset, Shape, counts, shapes};
pub use pruning_table::{
    AtInitConfig, DropGrowConfig, GradualConfig, LotteryConfig, ModeConfig, PruningConfig,
    PruningMode, RuleConfig, ScheduleKind, SearchConfig, SearchMetric, StaticConfig, steps_of,
};

/// Errors from reading, overriding or checking a config. Each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named on the command line was not found anywhere we looked.
    #[error("config file `{name}` not found (looked at {}); pass a path, or a file name from configs/", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// What the user asked for.
        name: String,
        /// Every place we looked.
        tried: Vec<PathBuf>,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config {}: {cause}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type; the message carries the line,
    /// column and a caret from the `toml` crate.
    #[error("in {}: {message}", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The `toml` crate's message.
        message: String,
    },
    /// A `--set` argument that could not be applied.
    #[error("in --set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value that parsed but makes no sense.
    #[error("in {}{}: `{key}` {message}", path.display(), location.map_or(String::new(), |(l, c)| format!(", line {l}, column {c}")))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Line and column of the key in the file, when it is written there (not a default).
        location: Option<(usize, usize)>,
        /// Dotted key, e.g. `train.lr`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed for initial weights, data splits, shuffling and synthetic data.
    #[serde(default)]
    pub seed: u64,
    /// Which Burn backend runs the tensors.
    #[serde(default)]
    pub backend: BackendKind,
    /// The wgpu adapter, by its number in `trainer devices`; absent: wgpu's choice (a
    /// high-performance GPU first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<usize>,
    /// The data set and how it is split and scaled.
    pub data: DataConfig,
    /// The network.
    #[serde(default)]
    pub model: ModelConfig,
    /// The optimizer and the loop.
    #[serde(default)]
    pub train: TrainConfig,
    /// Optional pruning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruning: Option<PruningConfig>,
    /// What `trainer sweep` varies; a plain run trains the config as written and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepConfig>,
    /// Pictures beyond the usual ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plots: Option<PlotsConfig>,
}

/// `[plots]`: pictures a run draws besides its training curves, sparsity bars and weight maps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotsConfig {
    /// Also draw every layer's kernel as the write-up shows it (`kernels.png`): a gray image in
    /// Keras's `[in, out]` layout, black at the layer's smallest weight, white at its largest.
    #[serde(default)]
    pub gray_kernels: bool,
}

/// `[sweep]`: the grid, seeds and baselines of `trainer sweep` (its flags add to or replace them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Values of each key, by its `--set` path: `grid = { "pruning.sparsity" = [0.5, 0.9] }`.
    pub grid: std::collections::BTreeMap<String, Vec<toml::Value>>,
    /// Seeds every point runs with; empty: the config's `seed` only.
    pub seeds: Vec<u64>,
    /// Also run random pruning and layer-wise and global magnitude pruning at every point.
    pub baselines: bool,
    /// Runs at once (separate processes).
    pub jobs: usize,
}

impl Default for SweepConfig {
    /// A missing `[sweep]` or key: no grid, the config's seed, one run at a time.
    fn default() -> Self {
        Self {
            grid: Default::default(),
            seeds: Vec::new(),
            baselines: false,
            jobs: one(),
        }
    }
}

/// Tensor backends Lopper can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// `burn-ndarray` on the CPU, as the design names it.
    Ndarray,
    /// Burn's Flex CPU backend (the `flex` cargo feature, on by default): the default, as the
    /// faster CPU backend (docs/performance.md, "CPU backends").
    Flex,
    /// Burn's wgpu backend: Vulkan, Metal or DX12 GPUs (the `wgpu` cargo feature).
    Wgpu,
}

impl Default for BackendKind {
    /// Flex where it is built in (faster than ndarray on our training step and epoch:
    /// docs/performance.md), ndarray in a build without it.
    fn default() -> Self {
        if cfg!(feature = "flex") {
            Self::Flex
        } else {
            Self::Ndarray
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndarray" => Ok(Self::Ndarray),
            "flex" => Ok(Self::Flex),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(format!(
                "unknown backend `{other}`; valid: ndarray, flex, wgpu"
            )),
        }
    }
}

/// Built-in and file-backed data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// The four XOR points.
    Xor,
    /// The write-up's five samples.
    SeedXor,
    /// Two interleaving half circles.
    Moons,
    /// A small circle inside a large one.
    Circles,
    /// Interleaved spiral arms, one per class.
    Spirals,
    /// Gaussian clusters, one per class.
    Blobs,
    /// A CSV file with a header row.
    Csv,
    /// The 8×8 handwritten digits (`datasets/digits.csv`).
    Digits,
    /// Fashion-MNIST from IDX gzip files.
    FashionMnist,
}

impl DatasetName {
    /// Generated from the seed (sizes from `n`, `features`, `classes`), not read from files.
    pub fn is_synthetic(self) -> bool {
        matches!(
            self,
            Self::Moons | Self::Circles | Self::Spirals | Self::Blobs
        )
    }

    /// The name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xor => "xor",
            Self::SeedXor => "seed-xor",
            Self::Moons => "moons",
            Self::Circles => "circles",
            Self::Spirals => "spirals",
            Self::Blobs => "blobs",
            Self::Csv => "csv",
            Self::Digits => "digits",
            Self::FashionMnist => "fashion-mnist",
        }
    }
}

/// How features are rescaled; statistics always come from the training split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    /// Leave features as they are.
    #[default]
    None,
    /// Per feature: subtract the mean, divide by the standard deviation.
    Standardize,
    /// Per feature: map [min, max] to [0, 1].
    Minmax,
    /// One min and max over all features (keeps images' relative intensities): [0, 1].
    GlobalMinmax,
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Class labels: 1 sigmoid unit + BCE for two classes, softmax + cross-entropy for more.
    Classification,
    /// A real-valued target with mean squared error.
    Regression,
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Which data set.
    pub name: DatasetName,
    /// Synthetic sets: number of samples (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Synthetic sets: standard deviation of the Gaussian noise added to points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// `spirals` and `blobs`: number of classes (default 2 and 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// `blobs`: number of features (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<usize>,
    /// `csv` and `digits`: the file, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `csv`: the target column's name (default: the last column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `csv`: classification or regression (default classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskKind>,
    /// `fashion-mnist`: folder with the four IDX gzip files, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Fraction of the samples held out for validation.
    #[serde(default)]
    pub validation_fraction: f64,
    /// Fraction held out for testing (data sets without their own test split).
    #[serde(default)]
    pub test_fraction: f64,
    /// Keep class proportions equal across splits (classification).
    #[serde(default = "yes")]
    pub stratify: bool,
    /// Feature scaling.
    #[serde(default)]
    pub scale: Scale,
    /// Use only the first N training samples (quick experiments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// `csv`: the image shape `[channels, height, width]` of each row's features (row-major,
    /// channel first), for convolutional layers. Digits and Fashion-MNIST know theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<[usize; 3]>,
}

impl DataConfig {
    /// Each sample's image shape, for data sets of images: digits 1×8×8, Fashion-MNIST
    /// 1×28×28, a CSV file with `shape`.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.name {
            DatasetName::Digits => Some([1, 8, 8]),
            DatasetName::FashionMnist => Some([1, 28, 28]),
            DatasetName::Csv => self.shape,
            _ => None,
        }
    }
}

/// Hidden-unit nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// Logistic sigmoid, as in the write-up.
    #[default]
    Sigmoid,
    /// max(0, x).
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

/// Weight initialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitKind {
    /// Burn's (and PyTorch's) default: weights and biases U(±1/√fan_in).
    #[default]
    BurnDefault,
    /// Glorot/Xavier uniform, zero biases.
    GlorotUniform,
    /// Glorot/Xavier normal, zero biases.
    GlorotNormal,
    /// Kaiming/He uniform (gain √2), zero biases.
    KaimingUniform,
    /// Kaiming/He normal (gain √2), zero biases.
    KaimingNormal,
}

/// The `[model]` table: an MLP by `hidden` widths and one `activation`, or any network by its
/// `layers` (or a named `preset` of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// MLP shorthand: hidden layer widths; input and output widths come from the data.
    /// (A run's config.toml always shows it for an MLP.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<usize>>,
    /// MLP shorthand: the hidden-unit nonlinearity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<ActivationKind>,
    /// Weight initialization.
    #[serde(default)]
    pub init: InitKind,
    /// A named network, expanded into `layers` (which a run's config.toml shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The network's layers in forward order; the output layer comes from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerEntry>>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            hidden: Some(default_hidden()),
            activation: Some(ActivationKind::default()),
            init: InitKind::default(),
            preset: None,
            layers: None,
        }
    }
}

impl ModelConfig {
    /// The MLP's hidden widths (empty for a layer list).
    pub fn hidden(&self) -> &[usize] {
        self.hidden.as_deref().unwrap_or_default()
    }

    /// The MLP's nonlinearity (and the default for a layer list's reports).
    pub fn activation(&self) -> ActivationKind {
        self.activation.unwrap_or_default()
    }

    /// What the network's input is: images of the data's shape for a layer list on image data,
    /// else vectors of `n_features`.
    pub fn input(&self, image: Option<[usize; 3]>, n_features: usize) -> Shape {
        match (self.is_layer_list(), image) {
            (true, Some(s)) => Shape::Image(s),
            _ => Shape::Flat(n_features),
        }
    }

    /// Whether the network is given by `layers` rather than the MLP shorthand.
    pub fn is_layer_list(&self) -> bool {
        self.layers.is_some()
    }

    /// Fills in what the config leaves to defaults, so that a run's config.toml shows the
    /// network it trained: a preset's layers, or the MLP's widths and nonlinearity.
    fn resolve(&mut self) -> Result<(), Invalid> {
        if let Some(p) = self.preset {
            match &self.layers {
                None => self.layers = Some(p.layers()),
                Some(l) if *l == p.layers() => {}
                Some(_) => {
                    return Err(bad(
                        "model.layers",
                        "differs from the layers of `model.preset`; give one of the two",
                    ));
                }
            }
        }
        if self.layers.is_some() {
            for (key, given) in [
                ("model.hidden", self.hidden.is_some()),
                ("model.activation", self.activation.is_some()),
            ] {
                if given {
                    return Err(bad(
                        key,
                        "is the MLP shorthand and does not apply with `model.layers` or `model.preset` (write the activations into the layer list); remove it",
                    ));
                }
            }
        } else {
            self.hidden.get_or_insert_with(default_hidden);
            self.activation.get_or_insert_with(ActivationKind::default);
        }
        Ok(())
    }

    /// Checks the layer list against the data's image shape (or vectors).
    fn validate(&self, image: Option<[usize; 3]>) -> Result<(), Invalid> {
        if self.hidden().contains(&0) {
            return Err(bad(
                "model.hidden",
                "layer widths must be ≥ 1 (remove empty layers)",
            ));
        }
        if let Some(layers) = &self.layers {
            let input = image.map_or(Shape::Flat(0), Shape::Image);
            shapes(layers, input)?;
        }
        Ok(())
    }
}

/// Optimizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam.
    #[default]
    Adam,
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd,
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrScheduleKind {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Multiply by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Cosine decay from `lr` to `lr_min` over the run, per step.
    Cosine,
}

/// `[train.early_stopping]`: stop when validation loss stops improving; keep the best model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Smallest decrease of validation loss that counts as improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// The `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Samples per step; omit for full-batch training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Reshuffle the training set every epoch (seeded).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Which optimizer.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// SGD: Nesterov momentum.
    #[serde(default)]
    pub nesterov: bool,
    /// Adam β1.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam β2.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam ε (PyTorch's default 1e-8; Burn's own default is 1e-5).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// L2 weight decay added to the gradient (coupled, as PyTorch's `weight_decay`).
    #[serde(default)]
    pub weight_decay: f64,
    /// L1 penalty on weights (not biases): the write-up's sparsity regulation.
    #[serde(default)]
    pub l1: f64,
    /// L1 penalty on batch norms' γ (Network Slimming's sparsity training; e.g. 1e-4).
    /// (Left out of config.toml when 0, so configs from before it keep their run folders'
    /// names.)
    #[serde(default, skip_serializing_if = "is_zero")]
    pub l1_gamma: f64,
    /// Learning-rate schedule.
    #[serde(default)]
    pub lr_schedule: LrScheduleKind,
    /// `step` schedule: epochs between decays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_step_epochs: Option<usize>,
    /// `step` schedule: the decay factor.
    #[serde(default = "default_gamma")]
    pub lr_gamma: f64,
    /// `cosine` schedule: the final rate.
    #[serde(default)]
    pub lr_min: f64,
    /// Evaluate on validation and test every N epochs (and always after the last).
    #[serde(default = "one")]
    pub eval_every: usize,
    /// Optional early stopping on validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Write `checkpoint.safetensors` every N epochs (of the first training phase), so that
    /// `--resume RUN_DIR` can continue a stopped run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Multiply dense layers whose held masks are sparse enough as sparse products on the CPU
    /// backends (`pruning::sparse`): same loss and kept gradients, less work. `false` runs every
    /// product dense, as before it existed (the masks hold either way). (Left out of
    /// config.toml when true, so configs from before it keep their run folders' names.)
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub sparse_products: bool,
}

impl Default for TrainConfig {
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "each expect names the invariant, checked before, that makes it unreachable"
    )]
    fn default() -> Self {
        toml::from_str("").expect("an empty [train] table uses every default")
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}
fn one() -> usize {
    1
}
fn default_hidden() -> Vec<usize> {
    vec![16]
}
fn default_epochs() -> usize {
    100
}
fn default_lr() -> f64 {
    1e-3
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_epsilon() -> f64 {
    1e-8
}
fn default_gamma() -> f64 {
    0.1
}

/// A config read from a file, with the file's location kept for relative paths and messages.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed, overridden and checked config; relative data paths already resolved.
    pub config: Config,
    /// Where it came from.
    pub path: PathBuf,
}

impl LoadedConfig {
    /// The config file's stem as a folder name: `[A-Za-z0-9._-]` only (others become `_`), at
    /// most 100 bytes, never starting with a dot.
    pub fn stem(&self) -> String {
        let raw = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut clean: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        if clean.is_empty() || clean.starts_with('.') {
            clean.insert_str(0, "run");
        }
        clean
    }
}

/// Finds a config: the path as given, else (for a bare file name) `configs/NAME`, and the same
/// with `.toml` appended. Relative paths are taken from the current directory.
pub fn find_config(name: &Path) -> Result<PathBuf, ConfigError> {
    find_config_in(Path::new(""), name)
}

/// [`find_config`] with relative paths taken from `root` instead of the current directory.
pub fn find_config_in(root: &Path, name: &Path) -> Result<PathBuf, ConfigError> {
    let bare = name.components().count() == 1;
    let mut candidates = vec![name.to_path_buf()];
    if bare {
        candidates.push(Path::new("configs").join(name));
    }
    if name.extension().is_none() {
        let with_ext = name.with_extension("toml");
        if bare {
            candidates.push(Path::new("configs").join(&with_ext));
        }
        candidates.insert(1, with_ext);
    }
    let tried: Vec<PathBuf> = candidates.iter().map(|c| root.join(c)).collect();
    match tried.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(ConfigError::NotFound {
            name: name.display().to_string(),
            tried,
        }),
    }
}

/// Reads, overrides (`table.key=value`) and checks a config file.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        cause: source,
    })?;
    parse_config(&text, path, overrides)
}

/// Parses config text as if read from `path`.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn parse_config(
    text: &str,
    path: &Path,
    overrides: &[String],
) -> Result<LoadedConfig, ConfigError> {
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    };
    let invalid = |(key, message): Invalid| invalid_key(text, path, overrides, key, message);
    // `[pruning]` is read mode first; its errors name the key and the key's own line.
    let table: toml::Table = toml::from_str(text).map_err(parse_err)?;
    if let Some(p) = table.get("pruning").and_then(toml::Value::as_table) {
        PruningConfig::from_table(p.clone()).map_err(invalid)?;
    }
    let mut config: Config = toml::from_str(text).map_err(parse_err)?;
    if !overrides.is_empty() {
        let mut table = toml::Table::try_from(&config).expect("a parsed config serializes");
        for arg in overrides {
            apply_override(&mut table, arg)?;
        }
        config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Override {
                arg: overrides.join(" "),
                message: e.message().to_string(),
            })?;
    }
    // Data paths relative to the config file become absolute, so the run folder's config.toml
    // names the same files from any working directory (`--resume`, `compact`, `infer` and
    // `sensitivity` read it, possibly after the folder was moved).
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [&mut config.data.path, &mut config.data.dir]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            let joined = base.join(&*p);
            *p = std::path::absolute(&joined).unwrap_or(joined);
        }
    }
    config.model.resolve().map_err(invalid)?;
    config.validate().map_err(invalid)?;
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
    })
}

/// A bad value of `key`, located in `text` (or said to come from `--set`).
fn invalid_key(
    text: &str,
    path: &Path,
    overrides: &[String],
    key: String,
    message: String,
) -> ConfigError {
    let set_by_flag = overrides
        .iter()
        .any(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == key));
    ConfigError::Invalid {
        path: path.to_path_buf(),
        location: if set_by_flag {
            None
        } else {
            locate_key(text, &key)
        },
        message: if set_by_flag {
            format!("{message} (set by --set)")
        } else {
            message
        },
        key,
    }
}

/// Line and column (1-based) where dotted `key` is written in `text`: as `k = …` under its
/// `[table]` header, or as a dotted `table.k = …`. Good enough for the flat configs we ship;
/// `None` when the key is not written (a default) or written in a form we do not trace.
pub fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    // `model.layers[3]`: the fourth entry's `type`, after where the list starts (inline
    // tables or `[[model.layers]]`, one `type` per entry).
    if let Some((list, index)) = key
        .strip_suffix(']')
        .and_then(|k| k.rsplit_once('['))
        .and_then(|(list, i)| Some((list, i.parse::<usize>().ok()?)))
    {
        // Inline (`layers = [`) or as array-of-tables headers (`[[model.layers]]`).
        let (line, _) = locate_key(text, list).or_else(|| locate_key(text, &format!("[{list}")))?;
        let mut seen = 0;
        for (i, l) in text.lines().enumerate().skip(line - 1) {
            for (col, _) in l.match_indices("type") {
                let rest = l[col + 4..].trim_start();
                if rest.starts_with('=') {
                    if seen == index {
                        return Some((i + 1, col + 1));
                    }
                    seen += 1;
                }
            }
        }
        return None;
    }
    let (table, last) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.split(']').next().unwrap_or("").trim().to_string();
            if current == key {
                return Some((i + 1, line.len() - trimmed.len() + 1));
            }
            continue;
        }
        let Some((lhs, _)) = trimmed.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim();
        let full = if current.is_empty() {
            lhs.to_string()
        } else {
            format!("{current}.{lhs}")
        };
        if full == key || (current == table && lhs == last) {
            return Some((i + 1, line.len() - trimmed.len() + 1));
        }
    }
    None
}

fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Override {
        arg: arg.to_string(),
        message,
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected table.key=value, e.g. --set train.lr=0.01".into()))?;
    let key = key.trim();
    // A value is read as TOML (numbers, booleans, arrays); anything else is taken as a string.
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err(format!("`{key}` is not a dotted key")));
    }
    let mut cur = table;
    for part in &parts[..parts.len() - 1] {
        cur = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| err(format!("`{part}` is a value, not a table")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

type Invalid = (String, String);

fn bad(key: &str, message: impl Into<String>) -> Invalid {
    (key.to_string(), message.into())
}

fn fraction(key: &str, v: f64) -> Result<(), Invalid> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(key, format!("must be in [0, 1) (got {v})")))
    }
}

fn positive(key: &str, v: f64) -> Result<(), Invalid> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(bad(key, format!("must be a positive number (got {v})")))
    }
}

fn non_negative(key: &str, v: f64) -> Result<(), Invalid> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(bad(key, format!("must be ≥ 0 (got {v})")))
    }
}

impl TrainConfig {
    /// The loop's keys: counts ≥ 1, rates in range, each optimizer's and schedule's own keys.
    fn validate(&self) -> Result<(), Invalid> {
        let t = self;
        if t.epochs == 0 {
            return Err(bad("train.epochs", "must be ≥ 1"));
        }
        if t.batch_size == Some(0) {
            return Err(bad(
                "train.batch_size",
                "must be ≥ 1 (omit it for full-batch training)",
            ));
        }
        positive("train.lr", t.lr)?;
        non_negative("train.weight_decay", t.weight_decay)?;
        non_negative("train.l1", t.l1)?;
        non_negative("train.l1_gamma", t.l1_gamma)?;
        if t.checkpoint_every == Some(0) {
            return Err(bad(
                "train.checkpoint_every",
                "must be ≥ 1 (epochs between checkpoints); remove it for no checkpoints",
            ));
        }
        if t.eval_every == 0 {
            return Err(bad("train.eval_every", "must be ≥ 1"));
        }
        match t.optimizer {
            OptimizerKind::Adam => {
                fraction("train.beta1", t.beta1)?;
                fraction("train.beta2", t.beta2)?;
                positive("train.epsilon", t.epsilon)?;
                if t.momentum != 0.0 || t.nesterov {
                    return Err(bad(
                        "train.momentum",
                        "applies to optimizer = \"sgd\" only; remove it or set optimizer = \"sgd\"",
                    ));
                }
            }
            OptimizerKind::Sgd => {
                fraction("train.momentum", t.momentum)?;
                if t.nesterov && t.momentum == 0.0 {
                    return Err(bad(
                        "train.nesterov",
                        "needs train.momentum > 0 (Nesterov momentum without momentum does nothing)",
                    ));
                }
            }
        }
        match t.lr_schedule {
            LrScheduleKind::Step => match t.lr_step_epochs {
                None | Some(0) => {
                    return Err(bad(
                        "train.lr_step_epochs",
                        "must be ≥ 1 when lr_schedule = \"step\"",
                    ));
                }
                Some(_) => positive("train.lr_gamma", t.lr_gamma)?,
            },
            LrScheduleKind::Cosine => {
                non_negative("train.lr_min", t.lr_min)?;
                if t.lr_min >= t.lr {
                    return Err(bad("train.lr_min", "must be below train.lr"));
                }
            }
            LrScheduleKind::Constant => {}
        }
        if t.lr_schedule != LrScheduleKind::Step && t.lr_step_epochs.is_some() {
            return Err(bad(
                "train.lr_step_epochs",
                "applies to lr_schedule = \"step\" only",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Checks what parsing cannot: ranges, and keys that do not apply to the chosen data set
    /// (a key that would be silently ignored is an error).
    pub fn validate(&self) -> Result<(), Invalid> {
        self.data.validate()?;
        if self.sweep.as_ref().is_some_and(|s| s.jobs == 0) {
            return Err(bad("sweep.jobs", "must be ≥ 1 (runs at once)"));
        }
        if let (Some(_), BackendKind::Ndarray | BackendKind::Flex) = (self.device, self.backend) {
            return Err(bad(
                "device",
                format!(
                    "picks a GPU adapter, but backend `{}` has one device; remove `device` or set `backend = \"wgpu\"`",
                    self.backend
                ),
            ));
        }
        self.model.validate(self.data.image_shape())?;
        self.check_slimming()?;
        self.train.validate()?;
        if let Some(p) = &self.pruning {
            p.validate()?;
            // `trainer prune` takes "rows" (PyTorch's ln_structured on a file); a training run
            // would lose its outputs with it.
            if p.granularity() == pruning::Granularity::Rows {
                return Err(bad(
                    "pruning.granularity",
                    "\"rows\" (every layer's output units, PyTorch's ln_structured) would prune the network's outputs: use \"neuron\"",
                ));
            }
            if p.search().is_some() && self.data.validation_fraction == 0.0 {
                return Err(bad(
                    "pruning.search",
                    "judges probes on a validation split: set data.validation_fraction (e.g. 0.1)",
                ));
            }
        }
        if let Some(es) = &self.train.early_stopping {
            if es.patience == 0 {
                return Err(bad("train.early_stopping.patience", "must be ≥ 1"));
            }
            non_negative("train.early_stopping.min_delta", es.min_delta)?;
            if self.data.validation_fraction == 0.0 {
                return Err(bad(
                    "train.early_stopping",
                    "needs a validation split: set data.validation_fraction (e.g. 0.1)",
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Network Slimming's keys need batch norms, and its criterion ranks channels.
    fn check_slimming(&self) -> Result<(), Invalid> {
        let norms = self
            .model
            .layers
            .iter()
            .flatten()
            .any(|l| l.kind == LayerKind::BatchNorm);
        if self.train.l1_gamma > 0.0 && !norms {
            return Err(bad(
                "train.l1_gamma",
                "penalises batch norms' γ, and the network has none (add { type = \"batch-norm\" } after a conv2d, or remove it)",
            ));
        }
        let Some(p) = &self.pruning else {
            return Ok(());
        };
        if p.rule.criterion != pruning::Criterion::Slimming {
            return Ok(());
        }
        if !matches!(p.mode(), PruningMode::Static | PruningMode::Gradual) {
            return Err(bad(
                "pruning.criterion",
                "\"slimming\" ranks trained batch norms' |γ|: use it with mode = \"static\" or \"gradual\"",
            ));
        }
        if p.granularity() != pruning::Granularity::Neuron(pruning::UnitSide::Incoming) {
            return Err(bad(
                "pruning.criterion",
                "\"slimming\" ranks channels by their batch norm's |γ|: set granularity = \"neuron\" (incoming side)",
            ));
        }
        if p.rule.scope != pruning::ScopeKind::Layer {
            return Err(bad(
                "pruning.scope",
                "\"slimming\" ranks each batch-normed layer's channels on their own: use scope = \"layer\"",
            ));
        }
        if !norms {
            return Err(bad(
                "pruning.criterion",
                "\"slimming\" ranks channels by their batch norm's |γ|, and the network has no batch norm",
            ));
        }
        Ok(())
    }
}

impl DataConfig {
    /// A key of another data set would be silently ignored: refuse it, naming this one's keys.
    fn only_own_keys(&self) -> Result<(), Invalid> {
        use DatasetName::*;
        let allowed: &[&str] = match self.name {
            Xor | SeedXor => &[],
            Moons | Circles => &["n", "noise"],
            Spirals => &["n", "noise", "classes"],
            Blobs => &["n", "noise", "classes", "features"],
            Csv => &["path", "target", "task", "shape"],
            Digits => &["path"],
            FashionMnist => &["dir"],
        };
        let present = [
            ("n", self.n.is_some()),
            ("noise", self.noise.is_some()),
            ("classes", self.classes.is_some()),
            ("features", self.features.is_some()),
            ("path", self.path.is_some()),
            ("target", self.target.is_some()),
            ("task", self.task.is_some()),
            ("dir", self.dir.is_some()),
            ("shape", self.shape.is_some()),
        ];
        for (key, is_set) in present {
            if is_set && !allowed.contains(&key) {
                let valid = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(bad(
                    &format!("data.{key}"),
                    format!(
                        "does not apply to data.name = \"{}\" (its keys: {valid}); remove it",
                        self.name.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        use DatasetName::*;
        fraction("data.validation_fraction", self.validation_fraction)?;
        fraction("data.test_fraction", self.test_fraction)?;
        if self.validation_fraction + self.test_fraction >= 1.0 {
            return Err(bad(
                "data.test_fraction",
                "validation_fraction + test_fraction must leave samples to train on",
            ));
        }
        let synthetic = matches!(self.name, Moons | Circles | Spirals | Blobs);
        self.only_own_keys()?;
        if self.name == Csv && self.path.is_none() {
            return Err(bad("data.path", "is required for data.name = \"csv\""));
        }
        if synthetic && self.n.is_some_and(|n| n < 2) {
            return Err(bad("data.n", "must be ≥ 2"));
        }
        if let Some(noise) = self.noise {
            non_negative("data.noise", noise)?;
        }
        if self.classes.is_some_and(|c| c < 2) {
            return Err(bad("data.classes", "must be ≥ 2"));
        }
        if self.features == Some(0) {
            return Err(bad("data.features", "must be ≥ 1"));
        }
        if self.limit == Some(0) {
            return Err(bad(
                "data.limit",
                "must be ≥ 1 (omit it to use all samples)",
            ));
        }
        if matches!(self.name, Xor | SeedXor)
            && (self.validation_fraction > 0.0 || self.test_fraction > 0.0)
        {
            return Err(bad(
                "data.validation_fraction",
                "XOR has too few points to split; it is evaluated on its training points",
            ));
        }
        if self.name == FashionMnist && self.test_fraction > 0.0 {
            return Err(bad(
                "data.test_fraction",
                "fashion-mnist has its own 10,000-image test split; remove test_fraction",
            ));
        }
        Ok(())
    }
}
