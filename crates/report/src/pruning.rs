//! `pruning.json`: what pruning removed, what it cost, and what it bought.

use serde::{Deserialize, Serialize};

use crate::{Evals, Level, SearchReport};

/// The pruning report of one run.
// Read through `Wire`: serde's flatten would hide where in the file a nested field is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Wire")]
pub struct PruningReport {
    /// The run's `[pruning]` table, as resolved (an echo for the reader; nothing reads it back).
    pub config: serde_json::Value,
    /// What the mode's phases recorded, tagged by `mode`.
    #[serde(flatten)]
    pub mode: ModeReport,
    /// Counts per masked weight matrix.
    pub layers: Vec<LayerCounts>,
    /// Counts over the network.
    pub total: Totals,
    /// Bytes in each storage format.
    pub sizes: Sizes,
    /// The network with dead units removed.
    pub compact: Compact,
    /// Everything a step warned about (empty layers, a schedule that never fired).
    pub warnings: Vec<String>,
    /// The layers the last training phase multiplied as sparse products, and for how many of
    /// its steps (none on wgpu, with `train.sparse_products = false`, or where no mask was
    /// sparse enough).
    #[serde(default)]
    pub sparse_training: SparseTraining,
}

/// Which layers trained as sparse products (`pruning::sparse`), in the run's last training
/// phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseTraining {
    /// Optimizer steps of the phase.
    pub steps: usize,
    /// Each layer that ran sparse at least once, with the steps it did.
    pub layers: Vec<SparseLayer>,
}

/// One layer's sparse steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseLayer {
    /// The weight's path (`layers.0.weight`).
    pub name: String,
    /// Steps whose forward and backward multiplied it as a sparse product.
    pub sparse_steps: usize,
}

/// The phases' records of each mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ModeReport {
    /// Train, then prune and fine-tune `rounds` times (or search).
    Static(Rounds),
    /// Prune the initial network, then train it.
    AtInit(Rounds),
    /// Masks updated during training on a schedule.
    Gradual(Events),
    /// RigL drop-and-grow.
    Rigl(Events),
    /// SET drop-and-grow.
    Set(Events),
    /// Lottery tickets, level by level.
    Lottery(Levels),
}

/// The static and at-init record: the network before pruning and after each round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rounds {
    /// The network right before the first pruning step.
    pub before_pruning: Evals,
    /// One record per pruning step.
    pub rounds: Vec<Round>,
    /// The accuracy-constrained search, when the config asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchReport>,
}

/// One pruning step and what followed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// Sparsity of the masked weights after the step.
    pub sparsity: f64,
    /// Right after the step (static pruning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_pruning: Option<Evals>,
    /// After the fine-tuning that followed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_fine_tune: Option<Evals>,
    /// After training the network pruned at initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_training: Option<Evals>,
}

impl Round {
    /// The evaluation that ends the round: fine-tuned, trained, or just pruned.
    pub fn last(&self) -> Option<&Evals> {
        self.after_fine_tune
            .as_ref()
            .or(self.after_training.as_ref())
            .or(self.after_pruning.as_ref())
    }
}

/// The dynamic modes' record: every mask update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// In step order.
    pub events: Vec<Event>,
}

/// One mask update during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Optimizer steps completed before the update.
    pub step: usize,
    /// The epoch the next step belongs to (from 1; 0 before training).
    pub epoch: usize,
    /// The target sparsity of the update.
    pub target: f64,
    /// The sparsity reached, over all masked weights.
    pub sparsity: f64,
    /// Weights whose mask changed.
    pub changed: usize,
    /// Each masked weight's sparsity after the update.
    pub layers: Vec<EventLayer>,
}

/// One weight's sparsity after an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLayer {
    /// Its path (`layers.0.weight`).
    pub name: String,
    /// Its sparsity.
    pub sparsity: f64,
}

/// The lottery record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    /// Level 0 (dense) first.
    pub levels: Vec<Level>,
}

/// Counts of one weight matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCounts {
    /// Its path (`layers.0.weight`).
    pub name: String,
    /// `[out, in]`, PyTorch's layout.
    pub shape_out_in: [usize; 2],
    /// Weights in it.
    pub weights: usize,
    /// Weights its mask keeps.
    pub kept: usize,
    /// 1 − kept / weights.
    pub sparsity: f64,
    /// Units left without incoming or outgoing weights (0 for the output layer).
    pub dead_units: usize,
}

/// Counts over the network, in ShrinkBench's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Weights of the masked matrices.
    pub weights: usize,
    /// Of them kept.
    pub kept: usize,
    /// 1 − kept / weights.
    pub sparsity: f64,
    /// Every parameter, biases included.
    pub parameters: usize,
    /// Of them nonzero.
    pub nonzero_parameters: usize,
    /// parameters / nonzero parameters.
    pub compression_ratio: f64,
    /// Multiply-adds per sample of the dense network.
    pub dense_macs_per_sample: usize,
    /// Multiply-adds per sample over nonzero weights.
    pub nonzero_macs_per_sample: usize,
    /// dense / nonzero multiply-adds.
    pub theoretical_speedup: f64,
}

impl Totals {
    /// The totals from the counts: the ratios derived, each guarded against a zero
    /// denominator.
    pub fn from_counts(
        (weights, kept): (usize, usize),
        (parameters, nonzero_parameters): (usize, usize),
        (dense_macs, nonzero_macs): (usize, usize),
    ) -> Self {
        Self {
            weights,
            kept,
            sparsity: 1.0 - kept as f64 / weights.max(1) as f64,
            parameters,
            nonzero_parameters,
            compression_ratio: parameters as f64 / nonzero_parameters.max(1) as f64,
            dense_macs_per_sample: dense_macs,
            nonzero_macs_per_sample: nonzero_macs,
            theoretical_speedup: dense_macs as f64 / nonzero_macs.max(1) as f64,
        }
    }
}

/// Bytes of the same network stored four ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Every weight and bias as f32.
    pub dense_bytes: usize,
    /// CSR: nonzero values (f32) + their column indices (u32) + row pointers (u32), plus biases.
    pub csr_bytes: usize,
    /// One bit per weight + the nonzero values (f32), plus biases.
    pub bitmask_bytes: usize,
    /// The compacted dense network as f32.
    pub compact_bytes: usize,
}

/// The compacted network: dead units removed, constant units folded into the next bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compact {
    /// Its layer widths.
    pub widths: Vec<usize>,
    /// Multiply-adds per sample before compaction.
    pub dense_macs_per_sample: usize,
    /// And after.
    pub compact_macs_per_sample: usize,
    /// Its evaluation, when saved as compact.safetensors (neuron pruning).
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_evals: Option<Evals>,
}

impl PruningReport {
    /// The network right before pruning (static and at-init modes).
    pub fn before_pruning(&self) -> Option<&Evals> {
        match &self.mode {
            ModeReport::Static(r) | ModeReport::AtInit(r) => Some(&r.before_pruning),
            _ => None,
        }
    }

    /// The pruning steps (static and at-init modes).
    pub fn rounds(&self) -> &[Round] {
        match &self.mode {
            ModeReport::Static(r) | ModeReport::AtInit(r) => &r.rounds,
            _ => &[],
        }
    }

    /// The search, when one ran.
    pub fn search(&self) -> Option<&SearchReport> {
        match &self.mode {
            ModeReport::Static(r) => r.search.as_ref(),
            _ => None,
        }
    }

    /// The lottery levels.
    pub fn levels(&self) -> Option<&[Level]> {
        match &self.mode {
            ModeReport::Lottery(l) => Some(&l.levels),
            _ => None,
        }
    }

    /// The mask updates of a dynamic mode.
    pub fn events(&self) -> Option<&[Event]> {
        match &self.mode {
            ModeReport::Gradual(e) | ModeReport::Rigl(e) | ModeReport::Set(e) => Some(&e.events),
            _ => None,
        }
    }

    /// The mode's name as configs spell it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            ModeReport::Static(_) => "static",
            ModeReport::AtInit(_) => "at-init",
            ModeReport::Gradual(_) => "gradual",
            ModeReport::Rigl(_) => "rigl",
            ModeReport::Set(_) => "set",
            ModeReport::Lottery(_) => "lottery",
        }
    }

    /// Hidden units left without incoming or outgoing weights, over the network.
    pub fn units_removed(&self) -> usize {
        self.layers.iter().map(|l| l.dead_units).sum()
    }
}

/// `pruning.json` as it lies in the file, checked into a [`PruningReport`] by its mode.
#[derive(Deserialize)]
struct Wire {
    config: serde_json::Value,
    /// Absent in reports written before it was added: then the config's `mode` says it.
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    before_pruning: Option<Evals>,
    #[serde(default)]
    rounds: Option<Vec<Round>>,
    #[serde(default)]
    search: Option<SearchReport>,
    #[serde(default)]
    events: Option<Vec<Event>>,
    #[serde(default)]
    levels: Option<Vec<Level>>,
    layers: Vec<LayerCounts>,
    total: Totals,
    sizes: Sizes,
    compact: Compact,
    warnings: Vec<String>,
    #[serde(default)]
    sparse_training: SparseTraining,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Static,
    AtInit,
    Gradual,
    Rigl,
    Set,
    Lottery,
}

impl TryFrom<Wire> for PruningReport {
    type Error = String;

    fn try_from(w: Wire) -> Result<Self, String> {
        let need = |f: &str| crate::summary::missing(f, "this mode");
        let rounds = |before: Option<Evals>, rounds: Option<Vec<Round>>, search| {
            Ok::<_, String>(Rounds {
                before_pruning: before.ok_or_else(|| need("before_pruning"))?,
                rounds: rounds.ok_or_else(|| need("rounds"))?,
                search,
            })
        };
        let events = |e: Option<Vec<Event>>| {
            e.map(|events| Events { events })
                .ok_or_else(|| need("events"))
        };
        /// The one key of the echoed `[pruning]` table an old report is read by.
        #[derive(Deserialize)]
        struct Echo {
            mode: Mode,
        }
        let kind = match w.mode {
            Some(m) => m,
            None => {
                serde_json::from_value::<Echo>(w.config.clone())
                    .map_err(|e| format!("missing field `mode`, and the config's: {e}"))?
                    .mode
            }
        };
        let mode = match kind {
            Mode::Static => ModeReport::Static(rounds(w.before_pruning, w.rounds, w.search)?),
            Mode::AtInit => ModeReport::AtInit(rounds(w.before_pruning, w.rounds, None)?),
            Mode::Gradual => ModeReport::Gradual(events(w.events)?),
            Mode::Rigl => ModeReport::Rigl(events(w.events)?),
            Mode::Set => ModeReport::Set(events(w.events)?),
            Mode::Lottery => ModeReport::Lottery(Levels {
                levels: w.levels.ok_or_else(|| need("levels"))?,
            }),
        };
        Ok(PruningReport {
            config: w.config,
            mode,
            layers: w.layers,
            total: w.total,
            sizes: w.sizes,
            compact: w.compact,
            warnings: w.warnings,
            sparse_training: w.sparse_training,
        })
    }
}
