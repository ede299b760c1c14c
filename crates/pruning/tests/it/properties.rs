//! Properties of selection on random inputs: exact counts, kept ≥ pruned, no revival, no empty
//! layer unless allowed, N:M blocks hold exactly N.

use pruning::select::prune_count;
use pruning::{
    CountOver, Granularity, LayerInput, Rng, Rule, ScopeKind, Spec, UnitSide, select_masks,
};

fn random_layers(rng: &mut Rng, ties: bool) -> Vec<LayerInput> {
    let n_layers = 2 + rng.below(3);
    let mut widths: Vec<usize> = (0..=n_layers).map(|_| 1 + rng.below(12)).collect();
    widths[0] = 4 * (1 + rng.below(3));
    (0..n_layers)
        .map(|i| {
            let shape = [widths[i], widths[i + 1]];
            let n = shape[0] * shape[1];
            let scores = (0..n)
                .map(|_| {
                    if ties {
                        rng.below(4) as f32
                    } else {
                        rng.next_f64() as f32
                    }
                })
                .collect();
            LayerInput {
                name: format!("layers.{i}.weight"),
                unit_params: vec![format!("layers.{i}.bias")],
                shape: shape.to_vec(),
                unit_axis: 1,
                scores,
                keep: vec![true; n],
            }
        })
        .collect()
}

fn pruned_scores(l: &LayerInput, keep: &[bool]) -> (Vec<f32>, Vec<f32>) {
    let kept = (0..keep.len())
        .filter(|&i| keep[i])
        .map(|i| l.scores[i])
        .collect();
    let pruned = (0..keep.len())
        .filter(|&i| !keep[i] && l.keep[i])
        .map(|i| l.scores[i])
        .collect();
    (kept, pruned)
}

#[test]
fn layerwise_counts_are_exact_and_kept_scores_dominate() {
    let mut rng = Rng::new(11);
    for case in 0..300 {
        let layers = random_layers(&mut rng, case % 2 == 0);
        let f = rng.next_f64();
        let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(f));
        spec.allow_empty = true;
        let sel = select_masks(&layers, &spec).unwrap();
        for l in &layers {
            let keep = &sel.masks.masks[&l.name].keep;
            let n = keep.len();
            assert_eq!(
                keep.iter().filter(|&&k| !k).count(),
                prune_count(f, n),
                "case {case}"
            );
            let (kept, pruned) = pruned_scores(l, keep);
            let min_kept = kept.iter().copied().fold(f32::INFINITY, f32::min);
            let max_pruned = pruned.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!(
                max_pruned <= min_kept,
                "case {case}: pruned {max_pruned} > kept {min_kept}"
            );
        }
    }
}

#[test]
fn global_selection_ranks_across_layers() {
    let mut rng = Rng::new(12);
    for case in 0..200 {
        let layers = random_layers(&mut rng, false);
        let f = rng.next_f64();
        let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(f));
        spec.scope = ScopeKind::Global;
        spec.allow_empty = true;
        let sel = select_masks(&layers, &spec).unwrap();
        let total: usize = layers.iter().map(|l| l.scores.len()).sum();
        let (kept_n, all_n) = sel.masks.counts();
        assert_eq!(all_n, total);
        assert_eq!(total - kept_n, prune_count(f, total), "case {case}");
        let mut min_kept = f32::INFINITY;
        let mut max_pruned = f32::NEG_INFINITY;
        for l in &layers {
            let (kept, pruned) = pruned_scores(l, &sel.masks.masks[&l.name].keep);
            min_kept = kept.iter().copied().fold(min_kept, f32::min);
            max_pruned = pruned.iter().copied().fold(max_pruned, f32::max);
        }
        assert!(max_pruned <= min_kept, "case {case}");
    }
}

#[test]
fn iterating_never_revives_and_layers_are_never_emptied_by_default() {
    let mut rng = Rng::new(13);
    for case in 0..100 {
        let mut layers = random_layers(&mut rng, case % 3 == 0);
        for round in 0..6 {
            let rule = match round % 3 {
                0 => Rule::Sparsity(0.5),
                1 => Rule::Relative(0.7),
                _ => Rule::Threshold(0.6),
            };
            let mut spec = Spec::new(Granularity::Weight, rule);
            spec.scope = if case % 2 == 0 {
                ScopeKind::Global
            } else {
                ScopeKind::Layer
            };
            // Fresh scores each round: a high score must not bring a pruned weight back.
            for l in &mut layers {
                l.scores = (0..l.scores.len()).map(|_| rng.next_f64() as f32).collect();
            }
            let sel = select_masks(&layers, &spec).unwrap();
            for l in &mut layers {
                let keep = &sel.masks.masks[&l.name].keep;
                for (i, (&was, &now)) in l.keep.iter().zip(keep).enumerate() {
                    assert!(was || !now, "case {case} round {round}: revived entry {i}");
                }
                assert!(
                    keep.iter().any(|&k| k),
                    "case {case} round {round}: emptied {}",
                    l.name
                );
                l.keep = keep.clone();
            }
        }
    }
}

#[test]
fn count_over_all_reaches_the_target_sparsity_exactly() {
    let mut rng = Rng::new(14);
    for _ in 0..100 {
        let mut layers = random_layers(&mut rng, false);
        let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(0.3));
        spec.allow_empty = true;
        let first = select_masks(&layers, &spec).unwrap();
        for l in &mut layers {
            l.keep = first.masks.masks[&l.name].keep.clone();
        }
        spec.rule = Rule::Sparsity(0.6);
        spec.over = CountOver::All;
        let second = select_masks(&layers, &spec).unwrap();
        for l in &layers {
            let m = &second.masks.masks[&l.name];
            assert_eq!(m.len() - m.kept(), prune_count(0.6, m.len()));
        }
    }
}

#[test]
fn n_of_m_blocks_hold_exactly_n() {
    let mut rng = Rng::new(15);
    for _ in 0..100 {
        let layers: Vec<LayerInput> = random_layers(&mut rng, true)
            .into_iter()
            .filter(|l| l.shape[0] % 4 == 0)
            .collect();
        let sel = select_masks(
            &layers,
            &Spec::new(Granularity::NOfM(2, 4), Rule::Sparsity(0.5)),
        )
        .unwrap();
        for l in &layers {
            let keep = &sel.masks.masks[&l.name].keep;
            let [n_in, n_out] = l.shape[..] else {
                unreachable!("2-D")
            };
            for o in 0..n_out {
                for g in 0..n_in / 4 {
                    let kept = (0..4).filter(|k| keep[(g * 4 + k) * n_out + o]).count();
                    assert_eq!(kept, 2);
                }
            }
        }
    }
    let bad = vec![LayerInput {
        name: "w".into(),
        unit_params: vec![],
        shape: vec![6, 2],
        unit_axis: 1,
        scores: vec![0.0; 12],
        keep: vec![true; 12],
    }];
    let e = select_masks(
        &bad,
        &Spec::new(Granularity::NOfM(2, 4), Rule::Sparsity(0.5)),
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("input width of `w` (6)")
    );
}

#[test]
fn pruning_a_neuron_masks_its_incoming_bias_and_outgoing_weights() {
    // 3 inputs → 4 hidden → 2 outputs, Burn layout [in, out]; hidden unit 2 has the smallest
    // outgoing weights.
    let l0 = LayerInput {
        name: "l0.weight".into(),
        unit_params: vec!["l0.bias".into()],
        shape: vec![3, 4],
        unit_axis: 1,
        scores: vec![1.0; 12],
        keep: vec![true; 12],
    };
    let mut out_scores = vec![1.0; 8];
    out_scores[2 * 2] = 0.1; // [in=2, out=0]
    out_scores[2 * 2 + 1] = 0.1; // [in=2, out=1]
    let l1 = LayerInput {
        name: "l1.weight".into(),
        unit_params: vec!["l1.bias".into()],
        shape: vec![4, 2],
        unit_axis: 1,
        scores: out_scores,
        keep: vec![true; 8],
    };
    let sel = select_masks(
        &[l0, l1],
        &Spec::new(Granularity::Neuron(UnitSide::Outgoing), Rule::Relative(0.5)),
    )
    .unwrap();
    let m = &sel.masks.masks;
    let col2: Vec<bool> = (0..3).map(|i| m["l0.weight"].keep[i * 4 + 2]).collect();
    assert_eq!(col2, vec![false; 3], "incoming weights of unit 2");
    assert_eq!(m["l0.bias"].keep, vec![true, true, false, true]);
    assert_eq!(
        &m["l1.weight"].keep[4..6],
        &[false, false],
        "outgoing weights of unit 2"
    );
    assert_eq!(m["l0.weight"].kept(), 9);
    assert_eq!(m["l1.weight"].kept(), 6);
    assert!(!m.contains_key("l1.bias"), "output units are never pruned");
}
