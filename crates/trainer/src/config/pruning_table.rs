//! The `[pruning]` table: how weights are chosen (keys every mode shares, [`RuleConfig`]) and
//! the mode's own keys, one struct per mode ([`ModeConfig`]).
//!
//! The TOML stays flat (`mode = "gradual"` next to `sparsity` and `end_epoch`). It is read in
//! two steps: `mode` first, then the shared keys into [`RuleConfig`] and the rest into that
//! mode's struct, both `deny_unknown_fields`. A key of another mode is refused naming the modes
//! it belongs to; an unknown key lists the keys the mode takes. Criteria, granularities, scopes
//! and what fractions count are the pruning crate's own types, parsed here once.

use std::collections::BTreeMap;

use pruning::{CountOver, Criterion, Granularity, ScopeKind, UnitSide};
use serde::de::{self, Visitor};
use serde::{Deserialize, Serialize};

use super::{Invalid, bad, non_negative, one, positive};

/// The validation metric a search holds (the report's own type: configs and reports spell it
/// alike).
pub use report::SearchMetric;

/// When pruning happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruningMode {
    /// Train, then prune the trained model (and optionally fine-tune), `rounds` times.
    #[default]
    Static,
    /// Prune the freshly initialised network, then train it with its masks held (SNIP).
    AtInit,
    /// Prune during training on a schedule (gradual polynomial, linear, one-shot, constant).
    Gradual,
    /// Iterative magnitude pruning with rewinding: lottery tickets, with a reinit control.
    Lottery,
    /// Dynamic sparse training, growth by dense-gradient magnitude (RigL).
    Rigl,
    /// Dynamic sparse training, random growth (SET).
    Set,
}

impl PruningMode {
    const ALL: [PruningMode; 6] = [
        Self::Static,
        Self::AtInit,
        Self::Gradual,
        Self::Lottery,
        Self::Rigl,
        Self::Set,
    ];

    /// Whether pruning happens inside the training loop.
    pub fn is_dynamic(self) -> bool {
        matches!(self, Self::Gradual | Self::Rigl | Self::Set)
    }

    /// The name configs spell it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::AtInit => "at-init",
            Self::Gradual => "gradual",
            Self::Lottery => "lottery",
            Self::Rigl => "rigl",
            Self::Set => "set",
        }
    }

    /// The keys of the mode's own struct.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Static => keys_of::<StaticConfig>(),
            Self::AtInit => keys_of::<AtInitConfig>(),
            Self::Gradual => keys_of::<GradualConfig>(),
            Self::Lottery => keys_of::<LotteryConfig>(),
            Self::Rigl | Self::Set => keys_of::<DropGrowConfig>(),
        }
    }
}

/// The schedule of `mode = "gradual"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Zhu & Gupta: s_t = s_f + (s_i − s_f)(1 − p)^power.
    #[default]
    Polynomial,
    /// The polynomial schedule with power 1.
    Linear,
    /// One update at `begin`, straight to `sparsity`.
    OneShot,
    /// `sparsity` at every update from `begin` (ranking again each time).
    Constant,
}

/// `[pruning] search = { metric = "val_accuracy", tolerance = 0.01 }`: the write-up's loop of
/// prune, evaluate, adjust, by bisection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// What must stay within the tolerance of the dense model.
    pub metric: SearchMetric,
    /// Largest acceptable loss of the metric (accuracy as a fraction: 0.01 = one point).
    pub tolerance: f64,
    /// Probes (prune + fine-tune + evaluate) to spend.
    #[serde(default = "default_probes")]
    pub probes: usize,
}

fn default_probes() -> usize {
    8
}

fn default_granularity() -> Granularity {
    Granularity::Weight
}

fn default_calibration() -> usize {
    10
}

/// How weights are chosen: the keys every mode shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// How weights are scored.
    #[serde(default)]
    pub criterion: Criterion,
    /// `"weight"`, `"neuron"`, or `"N:M"` such as `"2:4"`.
    #[serde(default = "default_granularity")]
    pub granularity: Granularity,
    /// Neurons: which weights score a unit.
    #[serde(default)]
    pub neuron_side: UnitSide,
    /// Ranking scope.
    #[serde(default)]
    pub scope: ScopeKind,
    /// Fraction to prune (per round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<f64>,
    /// Absolute threshold: prune scores below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Relative rule: prune scores below alpha·max(score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// What a fraction counts.
    #[serde(default)]
    pub count_over: CountOver,
    /// Batches of training data whose gradients gradient criteria use.
    #[serde(default = "default_calibration")]
    pub calibration_batches: usize,
    /// Allow a layer to lose every weight or unit.
    #[serde(default)]
    pub allow_empty: bool,
    /// Parameter paths or globs to prune instead of every Linear weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Parameter paths or globs never to prune.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Per-layer multipliers of the fraction, e.g. `{ "layers.2.weight" = 0.5 }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_factor: BTreeMap<String, f64>,
}

/// `mode = "static"`: train, then `rounds` times prune and fine-tune — or search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Rounds of prune + fine-tune.
    #[serde(default = "one")]
    pub rounds: usize,
    /// Epochs of fine-tuning with masks held after each round.
    #[serde(default)]
    pub fine_tune_epochs: usize,
    /// Learning rate for fine-tuning (default: train.lr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tune_lr: Option<f64>,
    /// Find the highest sparsity (or largest alpha) up to the given `sparsity` (`alpha`) whose
    /// validation metric after fine-tuning stays within a tolerance of the dense model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchConfig>,
}

/// `mode = "at-init"`: prune the initial network, train it with its masks held. No keys of
/// its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtInitConfig {}

/// `mode = "gradual"`: the pruner prunes on a schedule during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradualConfig {
    /// The schedule's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleKind>,
    /// Sparsity at the first update (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_sparsity: Option<f64>,
    /// Polynomial: the exponent (default 3, Zhu & Gupta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    /// First update, in epochs completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_epoch: Option<usize>,
    /// First update, in optimizer steps completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_step: Option<usize>,
    /// Last update, in epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_epoch: Option<usize>,
    /// Last update, in optimizer steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_step: Option<usize>,
    /// Steps between mask updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<usize>,
    /// As `every_steps`, in epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_epochs: Option<usize>,
}

/// `mode = "rigl"` and `"set"`: dynamic sparse training, dropping and growing weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropGrowConfig {
    /// No updates from here, in epochs (default 75 % of training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_epoch: Option<usize>,
    /// As `end_epoch`, in optimizer steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_step: Option<usize>,
    /// Steps between mask updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<usize>,
    /// As `every_steps`, in epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_epochs: Option<usize>,
    /// Fraction of active weights dropped (and grown) at the first update (default 0.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_fraction: Option<f64>,
}

/// `mode = "lottery"`: levels of train, prune, rewind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotteryConfig {
    /// Levels of `sparsity` of the remaining weights.
    #[serde(default = "one")]
    pub rounds: usize,
    /// Rewind surviving weights to their values after this many epochs (default 0 = init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind_epoch: Option<usize>,
    /// As `rewind_epoch`, in optimizer steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind_step: Option<usize>,
    /// Also train each level's masks from a fresh random initialisation (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinit_control: Option<bool>,
    /// The sparsity each level prunes to (of all weights), instead of `rounds` levels of
    /// `sparsity` of the remaining ones — so tickets land on chosen points such as a table's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<f64>,
}

/// A mode and its own keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ModeConfig {
    /// `mode = "static"`.
    Static(StaticConfig),
    /// `mode = "at-init"`.
    AtInit(AtInitConfig),
    /// `mode = "gradual"`.
    Gradual(GradualConfig),
    /// `mode = "lottery"`.
    Lottery(LotteryConfig),
    /// `mode = "rigl"`.
    Rigl(DropGrowConfig),
    /// `mode = "set"`.
    Set(DropGrowConfig),
}

/// The `[pruning]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruningConfig {
    /// The mode and its own keys.
    #[serde(flatten)]
    pub mode: ModeConfig,
    /// How weights are chosen.
    #[serde(flatten)]
    pub rule: RuleConfig,
}

impl<'de> Deserialize<'de> for PruningConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        Self::from_table(table)
            .map_err(|(key, message)| de::Error::custom(format!("`{key}` {message}")))
    }
}

/// The keys `T` reads: the field names serde hands a deserializer for a struct.
fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Grab<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only the keys are wanted"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the keys are wanted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut keys));
    keys
}

/// Deserializes `table` as `T`; an error names the key (`pruning.{path}`).
fn typed<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            "pruning".to_string()
        } else {
            format!("pruning.{path}")
        };
        (key, e.into_inner().to_string())
    })
}

impl PruningConfig {
    /// Reads a `[pruning]` table: `mode` first, then the shared keys and that mode's own.
    pub fn from_table(mut table: toml::Table) -> Result<Self, Invalid> {
        let mode = match table.remove("mode") {
            None => PruningMode::Static,
            Some(v) => v.clone().try_into().map_err(|_| {
                let names: Vec<String> = PruningMode::ALL
                    .iter()
                    .map(|m| format!("\"{}\"", m.name()))
                    .collect();
                bad(
                    "pruning.mode",
                    format!("{v} is not one of {}", names.join(", ")),
                )
            })?,
        };
        // Files written before modes had tables of their own echo these defaults in every mode.
        for (key, default) in [("rounds", 1), ("fine_tune_epochs", 0)] {
            let unused = !mode.keys().contains(&key);
            if unused && table.get(key).and_then(toml::Value::as_integer) == Some(default) {
                table.remove(key);
            }
        }
        let shared = keys_of::<RuleConfig>();
        if let Some(key) = table
            .keys()
            .find(|k| !shared.contains(&k.as_str()) && !mode.keys().contains(&k.as_str()))
        {
            return Err(not_in_mode(key, mode, shared));
        }
        let (rule, own): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| shared.contains(&k.as_str()));
        let mode = match mode {
            PruningMode::Static => ModeConfig::Static(typed(own)?),
            PruningMode::AtInit => ModeConfig::AtInit(typed(own)?),
            PruningMode::Gradual => ModeConfig::Gradual(typed(own)?),
            PruningMode::Lottery => ModeConfig::Lottery(typed(own)?),
            PruningMode::Rigl => ModeConfig::Rigl(typed(own)?),
            PruningMode::Set => ModeConfig::Set(typed(own)?),
        };
        Ok(Self {
            mode,
            rule: typed(rule)?,
        })
    }

    /// The mode.
    pub fn mode(&self) -> PruningMode {
        match self.mode {
            ModeConfig::Static(_) => PruningMode::Static,
            ModeConfig::AtInit(_) => PruningMode::AtInit,
            ModeConfig::Gradual(_) => PruningMode::Gradual,
            ModeConfig::Lottery(_) => PruningMode::Lottery,
            ModeConfig::Rigl(_) => PruningMode::Rigl,
            ModeConfig::Set(_) => PruningMode::Set,
        }
    }

    /// Static rounds, or lottery levels of `sparsity` (1 in the other modes).
    pub fn rounds(&self) -> usize {
        match &self.mode {
            ModeConfig::Static(s) => s.rounds,
            ModeConfig::Lottery(l) => l.rounds,
            _ => 1,
        }
    }

    /// Static pruning's fine-tuning epochs (0 in the other modes).
    pub fn fine_tune_epochs(&self) -> usize {
        match &self.mode {
            ModeConfig::Static(s) => s.fine_tune_epochs,
            _ => 0,
        }
    }

    /// Static pruning's fine-tuning learning rate, when given.
    pub fn fine_tune_lr(&self) -> Option<f64> {
        match &self.mode {
            ModeConfig::Static(s) => s.fine_tune_lr,
            _ => None,
        }
    }

    /// The search, in a static run that searches.
    pub fn search(&self) -> Option<&SearchConfig> {
        match &self.mode {
            ModeConfig::Static(s) => s.search.as_ref(),
            _ => None,
        }
    }

    /// The lottery's level sparsities (empty: `rounds` levels of `sparsity`).
    pub fn levels(&self) -> &[f64] {
        match &self.mode {
            ModeConfig::Lottery(l) => &l.levels,
            _ => &[],
        }
    }

    /// What is removed together (neurons scored on their `neuron_side`).
    pub fn granularity(&self) -> Granularity {
        self.rule.granularity.with_side(self.rule.neuron_side)
    }

    /// Checks ranges and combinations; the error names the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_rule()?;
        match &self.mode {
            ModeConfig::Static(s) => s.validate(&self.rule),
            ModeConfig::AtInit(_) => Ok(()),
            ModeConfig::Gradual(g) => g.validate(&self.rule),
            ModeConfig::Lottery(l) => l.validate(&self.rule),
            ModeConfig::Rigl(d) | ModeConfig::Set(d) => d.validate(&self.rule),
        }?;
        let mode = self.mode();
        if mode.is_dynamic() && self.rule.criterion == Criterion::Snip {
            return Err(bad(
                "pruning.criterion",
                "snip scores the network at initialisation: use mode = \"at-init\"",
            ));
        }
        if !mode.is_dynamic() && self.rule.criterion == Criterion::Movement {
            return Err(bad(
                "pruning.criterion",
                "movement accumulates −w·g over training steps: use it with mode = \"gradual\"",
            ));
        }
        Ok(())
    }

    fn validate_rule(&self) -> Result<(), Invalid> {
        let r = &self.rule;
        let rules = [r.sparsity, r.threshold, r.alpha];
        // Lottery `levels` give the sparsities themselves.
        if self.levels().is_empty() && rules.iter().flatten().count() != 1 {
            return Err(bad(
                "pruning.sparsity",
                "give exactly one of pruning.sparsity (fraction), pruning.threshold (absolute) or pruning.alpha (relative: alpha·max score)",
            ));
        }
        for (key, v) in [("sparsity", r.sparsity), ("alpha", r.alpha)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(bad(
                    &format!("pruning.{key}"),
                    format!("must be in [0, 1] (got {v})"),
                ));
            }
        }
        if r.criterion.needs_gradients() && r.calibration_batches == 0 {
            return Err(bad(
                "pruning.calibration_batches",
                "must be ≥ 1 for a gradient criterion",
            ));
        }
        for (k, f) in &r.layer_factor {
            if !(0.0..=10.0).contains(f) {
                return Err(bad(
                    &format!("pruning.layer_factor.{k}"),
                    format!("must be in [0, 10] (got {f})"),
                ));
            }
        }
        Ok(())
    }
}

/// `key` is not one of `mode`'s: name the modes it belongs to, or list the mode's keys.
fn not_in_mode(key: &str, mode: PruningMode, shared: &[&str]) -> Invalid {
    let owners: Vec<String> = PruningMode::ALL
        .iter()
        .filter(|m| m.keys().contains(&key))
        .map(|m| format!("\"{}\"", m.name()))
        .collect();
    let message = if owners.is_empty() {
        let mut valid: Vec<&str> = ["mode"].into_iter().chain(shared.iter().copied()).collect();
        valid.extend(mode.keys());
        format!(
            "is not a key of [pruning] with mode = \"{}\"; its keys are {}",
            mode.name(),
            valid.join(", ")
        )
    } else {
        format!(
            "does not apply to mode = \"{}\" (it is for mode {}); remove it",
            mode.name(),
            owners.join(" or ")
        )
    };
    bad(&format!("pruning.{key}"), message)
}

/// Of two keys that say one thing in epochs and in steps, at most one.
fn one_of(a: (&str, bool), b: (&str, bool)) -> Result<(), Invalid> {
    if a.1 && b.1 {
        return Err(bad(
            &format!("pruning.{}", b.0),
            format!("give pruning.{} or pruning.{}, not both", a.0, b.0),
        ));
    }
    Ok(())
}

impl StaticConfig {
    fn validate(&self, rule: &RuleConfig) -> Result<(), Invalid> {
        if self.rounds == 0 {
            return Err(bad("pruning.rounds", "must be ≥ 1"));
        }
        if let Some(lr) = self.fine_tune_lr {
            positive("pruning.fine_tune_lr", lr)?;
        }
        let Some(search) = &self.search else {
            return Ok(());
        };
        if rule.threshold.is_some() {
            return Err(bad(
                "pruning.search",
                "searches a sparsity or an alpha (their value is the upper end of the search), not a threshold",
            ));
        }
        if self.rounds != 1 {
            return Err(bad(
                "pruning.rounds",
                "a search prunes once per probe: remove rounds",
            ));
        }
        if search.probes == 0 {
            return Err(bad("pruning.search.probes", "must be ≥ 1"));
        }
        non_negative("pruning.search.tolerance", search.tolerance)
    }
}

impl GradualConfig {
    fn validate(&self, rule: &RuleConfig) -> Result<(), Invalid> {
        one_of(
            ("begin_epoch", self.begin_epoch.is_some()),
            ("begin_step", self.begin_step.is_some()),
        )?;
        updates(
            (self.end_epoch, self.end_step),
            (self.every_epochs, self.every_steps),
        )?;
        if self.every_steps.is_none() && self.every_epochs.is_none() {
            return Err(bad(
                "pruning.every_steps",
                "mode = \"gradual\" needs how often masks are updated: pruning.every_steps (e.g. 100) or pruning.every_epochs",
            ));
        }
        if self.end_epoch.is_none() && self.end_step.is_none() {
            return Err(bad(
                "pruning.end_epoch",
                "mode = \"gradual\" needs when the target is reached: pruning.end_epoch or pruning.end_step",
            ));
        }
        needs_sparsity(rule)?;
        if let Some(s) = self.initial_sparsity
            && !(0.0..=1.0).contains(&s)
        {
            return Err(bad(
                "pruning.initial_sparsity",
                format!("must be in [0, 1] (got {s})"),
            ));
        }
        if let Some(p) = self.power {
            positive("pruning.power", p)?;
            if !matches!(self.schedule, None | Some(ScheduleKind::Polynomial)) {
                return Err(bad(
                    "pruning.power",
                    "applies to schedule = \"polynomial\" only; remove it",
                ));
            }
        }
        let begin = self.begin_epoch.or(self.begin_step).unwrap_or(0);
        if rule.criterion.needs_gradients() && begin == 0 {
            return Err(bad(
                "pruning.begin_step",
                "a gradient criterion needs training steps before the first update: set pruning.begin_step ≥ 1 (or begin_epoch ≥ 1)",
            ));
        }
        Ok(())
    }
}

/// When updates end and how often they come: epochs or steps, not both; never every 0.
fn updates(
    end: (Option<usize>, Option<usize>),
    every: (Option<usize>, Option<usize>),
) -> Result<(), Invalid> {
    one_of(
        ("end_epoch", end.0.is_some()),
        ("end_step", end.1.is_some()),
    )?;
    one_of(
        ("every_epochs", every.0.is_some()),
        ("every_steps", every.1.is_some()),
    )?;
    if every.0 == Some(0) || every.1 == Some(0) {
        return Err(bad("pruning.every_steps", "must be ≥ 1"));
    }
    Ok(())
}

fn needs_sparsity(rule: &RuleConfig) -> Result<(), Invalid> {
    if rule.sparsity.is_none() {
        return Err(bad(
            "pruning.sparsity",
            "this mode needs pruning.sparsity (thresholds and alpha are for static pruning)",
        ));
    }
    Ok(())
}

impl DropGrowConfig {
    fn validate(&self, rule: &RuleConfig) -> Result<(), Invalid> {
        updates(
            (self.end_epoch, self.end_step),
            (self.every_epochs, self.every_steps),
        )?;
        needs_sparsity(rule)?;
        if rule.granularity != Granularity::Weight {
            return Err(bad(
                "pruning.granularity",
                "drop-and-grow (rigl, set) moves single weights: use granularity = \"weight\"",
            ));
        }
        if rule.scope == ScopeKind::Global {
            return Err(bad(
                "pruning.scope",
                "rigl and set keep each layer's sparsity constant: use scope = \"layer\" (uniform) or \"erk\"",
            ));
        }
        if rule.criterion != Criterion::L1 {
            return Err(bad(
                "pruning.criterion",
                "rigl and set drop the smallest-magnitude weights: remove pruning.criterion (or set \"l1\")",
            ));
        }
        if let Some(f) = self.drop_fraction
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(bad(
                "pruning.drop_fraction",
                format!("must be in (0, 1] (got {f})"),
            ));
        }
        Ok(())
    }
}

impl LotteryConfig {
    fn validate(&self, rule: &RuleConfig) -> Result<(), Invalid> {
        one_of(
            ("rewind_epoch", self.rewind_epoch.is_some()),
            ("rewind_step", self.rewind_step.is_some()),
        )?;
        if self.rounds == 0 {
            return Err(bad("pruning.rounds", "must be ≥ 1"));
        }
        if rule.granularity != Granularity::Weight {
            return Err(bad(
                "pruning.granularity",
                "lottery tickets prune single weights: use granularity = \"weight\"",
            ));
        }
        if self.levels.is_empty() {
            return needs_sparsity(rule);
        }
        if rule.sparsity.is_some() || self.rounds > 1 {
            return Err(bad(
                "pruning.levels",
                "gives each level's sparsity: remove pruning.sparsity and pruning.rounds",
            ));
        }
        let rising = self.levels.windows(2).all(|w| w[0] < w[1]);
        if !rising || self.levels.iter().any(|s| !(*s > 0.0 && *s < 1.0)) {
            return Err(bad(
                "pruning.levels",
                format!(
                    "must rise strictly, each in (0, 1), e.g. [0.5, 0.8, 0.9] (got {:?})",
                    self.levels
                ),
            ));
        }
        Ok(())
    }
}

/// A step count given in epochs or in optimizer steps.
pub fn steps_of(epoch: Option<usize>, step: Option<usize>) -> Option<pruning::schedule::Steps> {
    match (epoch, step) {
        (Some(e), _) => Some(pruning::schedule::Steps::Epochs(e)),
        (_, Some(s)) => Some(pruning::schedule::Steps::Iterations(s)),
        _ => None,
    }
}
