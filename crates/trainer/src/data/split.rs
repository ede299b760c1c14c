//! Seeded, optionally stratified splitting of sample indices.
//!
//! Counting rule: each held-out part takes `round(fraction × n)` samples (per class when
//! stratified), rounding half away from zero; the training part keeps the rest. Indices within
//! each part are sorted so that the order does not depend on the shuffle.

use pruning::Rng;

/// Splits `0..n` into `fractions.len() + 1` parts: training first, then one per fraction.
pub fn split_indices(
    n: usize,
    stratify_by: Option<&[u32]>,
    fractions: &[f64],
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    let groups: Vec<Vec<usize>> = match stratify_by {
        Some(labels) => {
            let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
            let mut g = vec![Vec::new(); n_classes];
            for (i, &l) in labels.iter().enumerate() {
                g[l as usize].push(i);
            }
            g
        }
        None => vec![(0..n).collect()],
    };
    let mut parts = vec![Vec::new(); fractions.len() + 1];
    for mut group in groups {
        rng.shuffle(&mut group);
        let mut start = 0;
        for (k, f) in fractions.iter().enumerate() {
            let take = ((f * group.len() as f64).round() as usize).min(group.len() - start);
            parts[k + 1].extend_from_slice(&group[start..start + take]);
            start += take;
        }
        parts[0].extend_from_slice(&group[start..]);
    }
    for p in &mut parts {
        p.sort_unstable();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_class_proportions_and_covers_everything() {
        let labels: Vec<u32> = (0..100).map(|i| u32::from(i % 4 == 0)).collect();
        let parts = split_indices(100, Some(&labels), &[0.2, 0.2], &mut Rng::new(0));
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![60, 20, 20]
        );
        for p in &parts[1..] {
            let ones = p.iter().filter(|&&i| labels[i] == 1).count();
            assert_eq!(ones, 5, "25% of each part is class 1");
        }
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_split() {
        let a = split_indices(50, None, &[0.3], &mut Rng::new(9));
        let b = split_indices(50, None, &[0.3], &mut Rng::new(9));
        let c = split_indices(50, None, &[0.3], &mut Rng::new(10));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[1].len(), 15);
    }
}
