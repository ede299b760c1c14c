//! What is removed together: single weights, whole hidden units (neurons), or N of every M
//! weights — and where entries are ranked: per layer or globally.
//!
//! Everything here works on host arrays in each parameter's own layout; `unit_axis` says which
//! axis indexes output units (1 for Burn's `Linear` `[in, out]`, 0 for PyTorch's `[out, in]`).

use std::collections::BTreeMap;

use crate::error::PruneError;
use crate::mask::{Mask, MaskSet};
use crate::select::{CountOver, Rule, Scope, erk_sparsities, keep_one, select};

/// One prunable weight — a dense matrix or a convolution kernel — its scores and current mask.
///
/// A kernel `[out, in, kh, kw]` is ranked as the matrix `[out, in·kh·kw]`: output channels are
/// its units, and input channel c is the run of kh·kw entries c·kh·kw … (c+1)·kh·kw − 1 of each
/// row.
#[derive(Debug, Clone)]
pub struct LayerInput {
    /// The weight's path.
    pub name: String,
    /// Parameters with one entry per unit, masked with their units under neuron (channel)
    /// pruning: the layer's bias, a following batch norm's γ and β (see
    /// [`Structure`](crate::Structure)).
    pub unit_params: Vec<String>,
    /// The weight's shape as the parameter stores it (rank 2, or rank ≥ 3 for convolutions).
    pub shape: Vec<usize>,
    /// Which axis indexes output units: 1 for Burn's `Linear` `[in, out]`, 0 for PyTorch's
    /// `[out, in]` and for every convolution.
    pub unit_axis: usize,
    /// Scores per weight (higher = keep), from an [`Importance`](crate::importance::Importance).
    pub scores: Vec<f32>,
    /// Current keep flags (all true before the first pruning).
    pub keep: Vec<bool>,
}

impl LayerInput {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn n_units(&self) -> usize {
        self.shape[self.unit_axis]
    }
    fn n_inputs(&self) -> usize {
        self.numel() / self.n_units().max(1)
    }
    /// Entries per input channel: a kernel's kh·kw, 1 for a dense layer.
    fn spatial(&self) -> usize {
        self.shape.iter().skip(2).product()
    }
    /// Input channels: a kernel's `in`, a dense layer's inputs.
    fn in_channels(&self) -> usize {
        self.n_inputs() / self.spatial().max(1)
    }
    /// Flat index of (unit, input).
    fn at(&self, unit: usize, input: usize) -> usize {
        if self.unit_axis == 0 {
            unit * self.n_inputs() + input
        } else {
            input * self.shape[1] + unit
        }
    }
    /// A mask of this weight's shape.
    fn mask(&self, keep: Vec<bool>) -> Mask {
        Mask {
            shape: self.shape.clone(),
            keep,
        }
    }
    /// Whether the shape, axis, scores and mask fit together.
    fn check(&self) -> Result<(), PruneError> {
        let axis_ok = match self.shape.len() {
            2 => self.unit_axis < 2,
            r => r > 2 && self.unit_axis == 0,
        };
        if !axis_ok {
            return Err(PruneError::Plan(format!(
                "`{}`: a weight of shape {:?} cannot have its units on axis {} (2-D: 0 or 1; convolutions: 0)",
                self.name, self.shape, self.unit_axis
            )));
        }
        if self.scores.len() != self.numel() || self.keep.len() != self.scores.len() {
            return Err(PruneError::ShapeMismatch {
                name: self.name.clone(),
                expected: self.shape.clone(),
                got: vec![self.scores.len()],
            });
        }
        Ok(())
    }
}

/// Which weights make up a hidden unit's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum UnitSide {
    /// The unit's incoming weights.
    #[default]
    Incoming,
    /// The unit's outgoing weights (into the next layer).
    Outgoing,
    /// Both.
    Both,
}

/// What is removed together. Written as `"weight"`, `"neuron"` (its side given apart, see
/// [`Granularity::with_side`]), `"rows"` or `"N:M"` such as `"2:4"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub enum Granularity {
    /// Single weights.
    Weight,
    /// Hidden units: score = sum of the per-weight scores on `side` (with |w| that is the L1
    /// norm; with w² the squared L2 norm). Pruning a unit masks its incoming weights, its bias
    /// and its outgoing weights. The last layer's units are the network's outputs and are never
    /// pruned.
    Neuron(UnitSide),
    /// Output units of every layer by their incoming weights, the last layer included:
    /// PyTorch's `ln_structured(dim=out)`. Masks only the rows themselves.
    Rows,
    /// N of every M consecutive weights along the input axis kept (e.g. 2:4).
    NOfM(usize, usize),
}

impl Granularity {
    /// Neuron granularity scored on `side`; others unchanged.
    pub fn with_side(self, side: UnitSide) -> Self {
        match self {
            Self::Neuron(_) => Self::Neuron(side),
            other => other,
        }
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not one of \"weight\", \"neuron\", \"rows\" or \"N:M\" with 0 < N < M (e.g. \"2:4\")"
            )
        };
        match s {
            "weight" => Ok(Self::Weight),
            "neuron" => Ok(Self::Neuron(UnitSide::default())),
            "rows" => Ok(Self::Rows),
            nm => {
                let (n, m) = nm.split_once(':').ok_or_else(bad)?;
                let n: usize = n.trim().parse().map_err(|_| bad())?;
                let m: usize = m.trim().parse().map_err(|_| bad())?;
                if n > 0 && n < m {
                    Ok(Self::NOfM(n, m))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Weight => write!(f, "weight"),
            Self::Neuron(_) => write!(f, "neuron"),
            Self::Rows => write!(f, "rows"),
            Self::NOfM(n, m) => write!(f, "{n}:{m}"),
        }
    }
}

impl TryFrom<String> for Granularity {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Granularity> for String {
    fn from(g: Granularity) -> String {
        g.to_string()
    }
}

/// Where entries are ranked against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum ScopeKind {
    /// Each layer on its own, at the same rate (or its override).
    #[default]
    Layer,
    /// One ranking over all layers.
    Global,
    /// Per layer, at Erdős–Rényi-Kernel rates that add up to the target (fraction rules only).
    Erk,
}

/// A whole selection request.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What is removed together.
    pub granularity: Granularity,
    /// How much.
    pub rule: Rule,
    /// Ranking scope.
    pub scope: ScopeKind,
    /// What fractions count.
    pub over: CountOver,
    /// Per-layer multipliers of the fraction (layer-wise scope), e.g. output layer at 0.5.
    pub layer_factor: BTreeMap<String, f64>,
    /// Allow a layer to lose every weight/unit (default: keep ≥ 1, with a warning).
    pub allow_empty: bool,
    /// The module's layers in forward order, for a module that declares them (see
    /// [`Structure`](crate::Structure)); `None` discovers them from the module.
    pub structure: Option<crate::structure::Structure>,
}

impl Spec {
    /// A spec with defaults: layer-wise, counted over remaining, never empty a layer.
    pub fn new(granularity: Granularity, rule: Rule) -> Self {
        Self {
            granularity,
            rule,
            scope: ScopeKind::Layer,
            over: CountOver::Remaining,
            layer_factor: BTreeMap::new(),
            allow_empty: false,
            structure: None,
        }
    }
}

/// The masks a selection produced, and the times the keep-one rule had to step in.
#[derive(Debug, Clone)]
pub struct Selection {
    /// New masks (weights, and biases under neuron pruning).
    pub masks: MaskSet,
    /// One line per layer that the rule would have emptied.
    pub warnings: Vec<String>,
}

/// Selects new masks for `layers` (in network order) according to `spec`.
pub fn select_masks(layers: &[LayerInput], spec: &Spec) -> Result<Selection, PruneError> {
    spec.rule.validate()?;
    for l in layers {
        l.check()?;
    }
    let mut warnings = Vec::new();
    let mut masks = MaskSet::default();
    match spec.granularity {
        Granularity::Weight => {
            let items: Vec<(Vec<f32>, Vec<bool>)> = layers
                .iter()
                .map(|l| (l.scores.clone(), l.keep.clone()))
                .collect();
            let keeps = select_items(layers, &items, spec, &mut warnings, "weight")?;
            for (l, keep) in layers.iter().zip(keeps) {
                masks.masks.insert(l.name.clone(), l.mask(keep));
            }
        }
        Granularity::Rows => rows(layers, spec, &mut masks, &mut warnings)?,
        Granularity::Neuron(side) => neurons(layers, spec, side, &mut masks, &mut warnings)?,
        Granularity::NOfM(n, m) => n_of_m(layers, (n, m), &mut masks)?,
    }
    Ok(Selection { masks, warnings })
}

/// Whole output units (rows) by the sum of their entries' scores, in the spec's scope.
fn rows(
    layers: &[LayerInput],
    spec: &Spec,
    masks: &mut MaskSet,
    warnings: &mut Vec<String>,
) -> Result<(), PruneError> {
    let items: Vec<(Vec<f32>, Vec<bool>)> = layers
        .iter()
        .map(|l| (unit_sums(l, &l.scores), units_alive(l)))
        .collect();
    let keeps = select_items(layers, &items, spec, warnings, "unit")?;
    for (l, unit_keep) in layers.iter().zip(keeps) {
        let mut keep = l.keep.clone();
        for u in (0..l.n_units()).filter(|&u| !unit_keep[u]) {
            for i in 0..l.n_inputs() {
                keep[l.at(u, i)] = false;
            }
        }
        masks.masks.insert(l.name.clone(), l.mask(keep));
    }
    Ok(())
}

/// N of every M consecutive weights along the input axis kept, the lowest-scored pruned. In a
/// kernel the groups run along input channels, at each kernel position (NVIDIA's 2:4 layout).
fn n_of_m(
    layers: &[LayerInput],
    (n, m): (usize, usize),
    masks: &mut MaskSet,
) -> Result<(), PruneError> {
    for l in layers {
        if n >= m || m == 0 || l.in_channels() % m != 0 {
            return Err(PruneError::BadNm {
                name: l.name.clone(),
                n,
                m,
                width: l.in_channels(),
            });
        }
        let mut keep = l.keep.clone();
        let spatial = l.spatial();
        for u in 0..l.n_units() {
            for (g, s) in (0..l.in_channels() / m).flat_map(|g| (0..spatial).map(move |s| (g, s))) {
                let idx: Vec<usize> = (0..m).map(|k| l.at(u, (g * m + k) * spatial + s)).collect();
                let mut order = idx.clone();
                // Lowest scores first; ties pruned from the lower index, as elsewhere.
                order.sort_by(|&a, &b| l.scores[a].total_cmp(&l.scores[b]).then(a.cmp(&b)));
                for &i in &order[..m - n] {
                    keep[i] = false;
                }
            }
        }
        masks.masks.insert(l.name.clone(), l.mask(keep));
    }
    Ok(())
}

fn unit_sums(l: &LayerInput, scores: &[f32]) -> Vec<f32> {
    (0..l.n_units())
        .map(|u| (0..l.n_inputs()).map(|i| scores[l.at(u, i)]).sum())
        .collect()
}

fn units_alive(l: &LayerInput) -> Vec<bool> {
    (0..l.n_units())
        .map(|u| (0..l.n_inputs()).any(|i| l.keep[l.at(u, i)]))
        .collect()
}

/// Runs the rule over per-layer item vectors (weights or units) in the requested scope.
fn select_items(
    layers: &[LayerInput],
    items: &[(Vec<f32>, Vec<bool>)],
    spec: &Spec,
    warnings: &mut Vec<String>,
    what: &str,
) -> Result<Vec<Vec<bool>>, PruneError> {
    let mut out: Vec<Vec<bool>> = match spec.scope {
        ScopeKind::Layer | ScopeKind::Erk => {
            let rates: Vec<Rule> = match (spec.scope, spec.rule) {
                (ScopeKind::Erk, Rule::Sparsity(f)) => {
                    let shapes: Vec<Vec<usize>> = layers.iter().map(|l| l.shape.clone()).collect();
                    erk_sparsities(&shapes, f)
                        .into_iter()
                        .map(Rule::Sparsity)
                        .collect()
                }
                (ScopeKind::Erk, other) => vec![other; layers.len()],
                _ => layers
                    .iter()
                    .map(|l| {
                        spec.rule
                            .scaled(*spec.layer_factor.get(&l.name).unwrap_or(&1.0))
                    })
                    .collect(),
            };
            let over = if spec.scope == ScopeKind::Erk {
                CountOver::All
            } else {
                spec.over
            };
            items
                .iter()
                .zip(rates)
                .map(|((s, k), r)| select(&Scope { scores: s, keep: k }, r, over))
                .collect()
        }
        ScopeKind::Global => {
            let scores: Vec<f32> = items.iter().flat_map(|(s, _)| s.iter().copied()).collect();
            let keep: Vec<bool> = items.iter().flat_map(|(_, k)| k.iter().copied()).collect();
            let all = select(
                &Scope {
                    scores: &scores,
                    keep: &keep,
                },
                spec.rule,
                spec.over,
            );
            let mut start = 0;
            items
                .iter()
                .map(|(s, _)| {
                    let part = all[start..start + s.len()].to_vec();
                    start += s.len();
                    part
                })
                .collect()
        }
    };
    if !spec.allow_empty {
        for ((l, (scores, before)), after) in layers.iter().zip(items).zip(out.iter_mut()) {
            if keep_one(scores, before, after) {
                warnings.push(format!(
                    "`{}`: the rule would prune every {what}; kept its highest-scoring one (allow_empty to permit)",
                    l.name
                ));
            }
        }
    }
    Ok(out)
}

/// How many of `next`'s inputs each unit of `l` feeds: 1 between dense layers, a kernel's
/// kh·kw into a convolution (its input channel), H·W into a dense layer after a flatten (NCHW
/// order keeps a channel's H·W values together). An error when `next` cannot read `l`.
fn block(l: &LayerInput, next: &LayerInput) -> Result<usize, PruneError> {
    let units = l.n_units();
    let fits = match (l.shape.len(), next.shape.len()) {
        (2, 2) => next.n_inputs() == units,
        (_, 2) => units > 0 && next.n_inputs().is_multiple_of(units),
        _ => next.in_channels() == units,
    };
    if !fits {
        return Err(PruneError::ShapeMismatch {
            name: next.name.clone(),
            expected: vec![units],
            got: next.shape.clone(),
        });
    }
    Ok(next.n_inputs() / units)
}

/// Per hidden unit of `l`: its score on `side` and whether it is alive.
fn unit_items(l: &LayerInput, next: &LayerInput, side: UnitSide, block: usize) -> Item {
    let inputs_of = |u: usize| {
        (0..next.n_units()).flat_map(move |o| (0..block).map(move |b| (o, u * block + b)))
    };
    let incoming = unit_sums(l, &l.scores);
    let outgoing: Vec<f32> = (0..l.n_units())
        .map(|u| inputs_of(u).map(|(o, i)| next.scores[next.at(o, i)]).sum())
        .collect();
    let score = match side {
        UnitSide::Incoming => incoming,
        UnitSide::Outgoing => outgoing,
        UnitSide::Both => incoming.iter().zip(&outgoing).map(|(a, b)| a + b).collect(),
    };
    let alive = (0..l.n_units())
        .map(|u| {
            (0..l.n_inputs()).any(|k| l.keep[l.at(u, k)])
                && inputs_of(u).any(|(o, i)| next.keep[next.at(o, i)])
        })
        .collect();
    (score, alive)
}

type Item = (Vec<f32>, Vec<bool>);

/// Hidden units (neurons, or a convolution's output channels) with everything coupled to them:
/// the unit's incoming weights, its per-unit parameters, and the next layer's slice it feeds.
fn neurons(
    layers: &[LayerInput],
    spec: &Spec,
    side: UnitSide,
    masks: &mut MaskSet,
    warnings: &mut Vec<String>,
) -> Result<(), PruneError> {
    // Hidden units are the outputs of every layer but the last; check the chain fits.
    let blocks = layers
        .windows(2)
        .map(|w| block(&w[0], &w[1]))
        .collect::<Result<Vec<usize>, _>>()?;
    let hidden = &layers[..layers.len().saturating_sub(1)];
    let items: Vec<Item> = hidden
        .iter()
        .zip(&blocks)
        .enumerate()
        .map(|(i, (l, &block))| unit_items(l, &layers[i + 1], side, block))
        .collect();
    let keeps = select_items(hidden, &items, spec, warnings, "unit")?;
    let mut weight_keep: Vec<Vec<bool>> = layers.iter().map(|l| l.keep.clone()).collect();
    for (i, unit_keep) in keeps.iter().enumerate() {
        let (l, next, block) = (&layers[i], &layers[i + 1], blocks[i]);
        for u in (0..l.n_units()).filter(|&u| !unit_keep[u]) {
            for k in 0..l.n_inputs() {
                weight_keep[i][l.at(u, k)] = false;
            }
            for o in 0..next.n_units() {
                for b in 0..block {
                    weight_keep[i + 1][next.at(o, u * block + b)] = false;
                }
            }
        }
        for p in &l.unit_params {
            masks.masks.insert(
                p.clone(),
                Mask {
                    shape: vec![l.n_units()],
                    keep: unit_keep.clone(),
                },
            );
        }
    }
    for (l, keep) in layers.iter().zip(weight_keep) {
        masks.masks.insert(l.name.clone(), l.mask(keep));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularities_read_back_as_written() {
        for text in ["weight", "neuron", "rows", "2:4", "1:8"] {
            let g: Granularity = text.parse().unwrap();
            assert_eq!(g.to_string(), text);
        }
        let neuron: Granularity = "neuron".parse().unwrap();
        assert_eq!(
            neuron.with_side(UnitSide::Both),
            Granularity::Neuron(UnitSide::Both)
        );
        for bad in ["4:2", "0:4", "2:2", "x:4", "neurons", ""] {
            let e = bad.parse::<Granularity>().unwrap_err();
            assert!(e.starts_with(&format!("`{bad}` is not one of")), "{e}");
        }
    }
}
