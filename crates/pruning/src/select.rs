//! Selection: which entries (weights or units) a rule removes, given their scores.
//!
//! The counting rules, written down because frameworks disagree (sparseml #589, nni #4580):
//! - A fraction `f` of `n` entries is `round(f·n)` entries, rounding half to even — what
//!   PyTorch's `torch.nn.utils.prune` does (Python's `round`).
//! - [`CountOver::Remaining`] (PyTorch's rule, and iterative pruning's): the fraction is of the
//!   entries not yet pruned. [`CountOver::All`]: of all entries, so `f` is the target sparsity;
//!   entries already pruned count towards it.
//! - Ties are broken by index: among equal scores, the lower flat index is pruned first.
//! - Thresholds prune scores strictly below θ; the relative rule uses θ = α·max(score) over the
//!   entries still alive in the scope (the write-up's rule).
//! - Pruned entries stay pruned: selection only ever removes entries that are alive.
//! - Selection is O(n) (`select_nth_unstable`), not a full sort.

use crate::error::PruneError;

/// How much to prune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// A fraction of entries, counted as [`CountOver`] says.
    Sparsity(f64),
    /// Prune entries whose score is below θ.
    Threshold(f64),
    /// Prune entries whose score is below α·max(score).
    Relative(f64),
}

impl Rule {
    /// Checks the amount's range.
    pub fn validate(self) -> Result<(), PruneError> {
        let (what, ok, range, v) = match self {
            Rule::Sparsity(f) => ("sparsity", (0.0..=1.0).contains(&f), "in [0, 1]", f),
            Rule::Threshold(t) => ("threshold", t.is_finite(), "a finite number", t),
            Rule::Relative(a) => ("alpha", (0.0..=1.0).contains(&a), "in [0, 1]", a),
        };
        if ok {
            Ok(())
        } else {
            Err(PruneError::OutOfRange {
                what,
                range,
                value: v,
            })
        }
    }

    /// The same rule with a fraction scaled by `factor` (per-layer overrides such as "output
    /// layer at half rate"); thresholds are unchanged.
    pub fn scaled(self, factor: f64) -> Rule {
        match self {
            Rule::Sparsity(f) => Rule::Sparsity((f * factor).clamp(0.0, 1.0)),
            other => other,
        }
    }
}

/// What a sparsity fraction is a fraction of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum CountOver {
    /// The entries not yet pruned (PyTorch's rule; iterative pruning).
    #[default]
    Remaining,
    /// All entries: the fraction is the target sparsity.
    All,
}

/// `round(fraction·n)`, half to even.
pub fn prune_count(fraction: f64, n: usize) -> usize {
    let x = fraction * n as f64;
    let r = x.round();
    // f64::round rounds half away from zero; move exact halves to the even neighbour.
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    (r.max(0.0) as usize).min(n)
}

/// Flat indices of the `k` smallest scores among `candidates` (ties: lower index first).
pub fn smallest(scores: &[f32], candidates: &[usize], k: usize) -> Vec<usize> {
    let k = k.min(candidates.len());
    if k == 0 {
        return Vec::new();
    }
    let mut keyed: Vec<(f32, usize)> = candidates.iter().map(|&i| (scores[i], i)).collect();
    let order = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if k < keyed.len() {
        keyed.select_nth_unstable_by(k - 1, order);
        keyed.truncate(k);
    }
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// One scope of selection: scores and the current keep flags of the entries ranked together.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// Scores, higher = more important.
    pub scores: &'a [f32],
    /// Current keep flags (pruned entries are never candidates).
    pub keep: &'a [bool],
}

/// New keep flags after applying `rule` to one scope.
pub fn select(scope: &Scope<'_>, rule: Rule, over: CountOver) -> Vec<bool> {
    let alive: Vec<usize> = (0..scope.keep.len()).filter(|&i| scope.keep[i]).collect();
    let mut keep = scope.keep.to_vec();
    let to_prune: Vec<usize> = match rule {
        Rule::Sparsity(f) => {
            let k = match over {
                CountOver::Remaining => prune_count(f, alive.len()),
                CountOver::All => {
                    let already = keep.len() - alive.len();
                    prune_count(f, keep.len()).saturating_sub(already)
                }
            };
            smallest(scope.scores, &alive, k)
        }
        Rule::Threshold(t) => alive
            .iter()
            .copied()
            .filter(|&i| f64::from(scope.scores[i]) < t)
            .collect(),
        Rule::Relative(a) => {
            let max = alive
                .iter()
                .map(|&i| scope.scores[i])
                .fold(f32::NEG_INFINITY, f32::max);
            let t = a * f64::from(max);
            alive
                .iter()
                .copied()
                .filter(|&i| f64::from(scope.scores[i]) < t)
                .collect()
        }
    };
    for i in to_prune {
        keep[i] = false;
    }
    keep
}

/// Keeps the highest-scoring entry of `segment` alive if the selection emptied it while it had
/// an entry before. Returns whether it had to step in.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn keep_one(scores: &[f32], before: &[bool], after: &mut [bool]) -> bool {
    if after.iter().any(|&k| k) || !before.iter().any(|&k| k) {
        return false;
    }
    let best = (0..before.len())
        .filter(|&i| before[i])
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
        .expect("some entry was alive");
    after[best] = true;
    true
}

/// Per-layer sparsities of the Erdős–Rényi-Kernel distribution (RigL, Evci et al. 2020) for
/// layers of `shapes` at overall sparsity `target`: density ∝ (fan_in + fan_out) /
/// (fan_in · fan_out) for dense layers, (out + in + kh + kw) / (out · in · kh · kw) for
/// kernels; layers that would exceed density 1 are kept dense and the others
/// rescaled so that the total count of kept weights matches the target.
pub fn erk_sparsities(shapes: &[Vec<usize>], target: f64) -> Vec<f64> {
    let n: Vec<f64> = shapes
        .iter()
        .map(|s| s.iter().product::<usize>() as f64)
        .collect();
    // Evci et al.'s ERK: density ∝ (sum of the dimensions) / (their product); for a kernel
    // [out, in, kh, kw] the sum includes kh and kw.
    let raw: Vec<f64> = shapes
        .iter()
        .zip(&n)
        .map(|(s, n)| s.iter().sum::<usize>() as f64 / n)
        .collect();
    let budget = (1.0 - target) * n.iter().sum::<f64>();
    let mut dense = vec![false; shapes.len()];
    loop {
        let dense_count: f64 = (0..shapes.len()).filter(|&i| dense[i]).map(|i| n[i]).sum();
        let weighted: f64 = (0..shapes.len())
            .filter(|&i| !dense[i])
            .map(|i| raw[i] * n[i])
            .sum();
        let eps = if weighted > 0.0 {
            (budget - dense_count) / weighted
        } else {
            0.0
        };
        let newly: Vec<usize> = (0..shapes.len())
            .filter(|&i| !dense[i] && eps * raw[i] > 1.0)
            .collect();
        if newly.is_empty() {
            return (0..shapes.len())
                .map(|i| {
                    if dense[i] {
                        0.0
                    } else {
                        (1.0 - eps * raw[i]).clamp(0.0, 1.0)
                    }
                })
                .collect();
        }
        for i in newly {
            dense[i] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_mask(scores: &[f32], rule: Rule, want: &str) {
        let keep = vec![true; scores.len()];
        let got = select(
            &Scope {
                scores,
                keep: &keep,
            },
            rule,
            CountOver::Remaining,
        );
        let got: Vec<&str> = got.iter().map(|&k| if k { "1" } else { "0" }).collect();
        assert_eq!(got.join(" "), want, "{rule:?} on {scores:?}");
    }

    #[test]
    fn rules_on_tiny_vectors() {
        check_mask(&[0.1, 0.9, 0.5, 0.0], Rule::Sparsity(0.5), "0 1 1 0");
        check_mask(&[0.1, 0.9, 0.5, 0.0], Rule::Threshold(0.5), "0 1 1 0");
        check_mask(&[0.1, 0.9, 0.5, 0.0], Rule::Relative(0.5), "0 1 1 0");
        check_mask(&[0.1, 0.9, 0.5, 0.0], Rule::Relative(0.6), "0 1 0 0");
        // Ties: the lower index goes first.
        check_mask(&[0.3, 0.3, 0.3, 0.3], Rule::Sparsity(0.5), "0 0 1 1");
        check_mask(&[0.3, 0.3, 0.3, 0.3], Rule::Sparsity(0.0), "1 1 1 1");
        check_mask(&[0.3, 0.3, 0.3, 0.3], Rule::Sparsity(1.0), "0 0 0 0");
    }

    #[test]
    fn counts_round_half_to_even_like_python() {
        assert_eq!(prune_count(0.5, 5), 2); // round(2.5) = 2
        assert_eq!(prune_count(0.5, 7), 4); // round(3.5) = 4
        assert_eq!(prune_count(0.3, 10), 3);
        assert_eq!(prune_count(0.9, 1000), 900);
        assert_eq!(prune_count(1.0, 3), 3);
    }

    #[test]
    fn remaining_and_all_count_differently_on_a_pruned_mask() {
        let scores = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let mut keep = vec![true; 10];
        keep[9] = false;
        keep[8] = false;
        let s = Scope {
            scores: &scores,
            keep: &keep,
        };
        // Remaining: 50% of the 8 alive = 4 more pruned; All: 50% of 10 = 5, 2 already.
        let r = select(&s, Rule::Sparsity(0.5), CountOver::Remaining);
        assert_eq!(r.iter().filter(|&&k| !k).count(), 6);
        let a = select(&s, Rule::Sparsity(0.5), CountOver::All);
        assert_eq!(a.iter().filter(|&&k| !k).count(), 5);
        // Never revives: the pruned entries stay pruned although they score highest.
        assert!(!r[9] && !a[9]);
    }

    #[test]
    fn keep_one_revives_the_best_entry_only_when_emptied() {
        let scores = [0.2, 0.9, 0.5];
        let before = [true, true, false];
        let mut after = [false, false, false];
        assert!(keep_one(&scores, &before, &mut after));
        assert_eq!(after, [false, true, false]);
        assert!(!keep_one(&scores, &before, &mut after));
    }

    #[test]
    fn erk_matches_the_target_and_favours_small_layers() {
        let shapes = [vec![784, 300], vec![300, 100], vec![100, 10]];
        let s = erk_sparsities(&shapes, 0.9);
        let n: Vec<f64> = shapes.iter().map(|s| (s[0] * s[1]) as f64).collect();
        let kept: f64 = s.iter().zip(&n).map(|(s, n)| (1.0 - s) * n).sum();
        assert!((kept / n.iter().sum::<f64>() - 0.1).abs() < 1e-9);
        assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
        // Kernels count their kernel size: LeNet-5's first conv (6×1×5×5, 150 weights) is
        // kept denser than its second (16×6×5×5) and the big dense layer.
        let lenet = [
            vec![6, 1, 5, 5],
            vec![16, 6, 5, 5],
            vec![400, 120],
            vec![120, 84],
            vec![84, 10],
        ];
        let s = erk_sparsities(&lenet, 0.9);
        assert!(s[0] < s[1] && s[1] < s[2], "{s:?}");
        let n: Vec<f64> = lenet
            .iter()
            .map(|s| s.iter().product::<usize>() as f64)
            .collect();
        let kept: f64 = s.iter().zip(&n).map(|(s, n)| (1.0 - s) * n).sum();
        assert!((kept / n.iter().sum::<f64>() - 0.1).abs() < 1e-9);
    }
}
