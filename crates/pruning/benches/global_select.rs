//! Global magnitude selection over 10.5M weights (layers 2048x4096, 1024x2048, 10x1024) at 90%:
//! scoring |w| and selecting one global ranking. The PyTorch reference is
//! `benches/torch_global_unstructured.py`, run in the same sitting.

use criterion::{Criterion, criterion_group, criterion_main};
use pruning::importance::{Importance, Magnitude, ScoreInput};
use pruning::{Granularity, LayerInput, Rng, Rule, ScopeKind, Spec, select_masks};

fn bench(c: &mut Criterion) {
    let shapes = [[4096usize, 2048usize], [2048, 1024], [1024, 10]];
    let mut rng = Rng::new(0);
    let weights: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| {
            (0..s[0] * s[1])
                .map(|_| (0.05 * rng.normal()) as f32)
                .collect()
        })
        .collect();
    let total: usize = weights.iter().map(Vec::len).sum();
    assert!(total >= 10_000_000);
    let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(0.9));
    spec.scope = ScopeKind::Global;
    let mut group = c.benchmark_group("global_magnitude_select");
    group.sample_size(10);
    group.bench_function(format!("{total}_weights_90pct"), |b| {
        b.iter(|| {
            let layers: Vec<LayerInput> = weights
                .iter()
                .zip(&shapes)
                .enumerate()
                .map(|(i, (w, s))| {
                    let name = format!("layers.{i}.weight");
                    let scores = Magnitude
                        .score(&ScoreInput {
                            name: &name,
                            weight: w,
                            grads: None,
                        })
                        .unwrap();
                    LayerInput {
                        keep: vec![true; w.len()],
                        name,
                        unit_params: vec![],
                        shape: s.to_vec(),
                        unit_axis: 1,
                        scores,
                    }
                })
                .collect();
            select_masks(&layers, &spec).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
