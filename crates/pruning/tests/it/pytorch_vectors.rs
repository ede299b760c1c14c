//! Masks identical to `torch.nn.utils.prune` on the shared vectors (copied from
//! `../shared/vectors`; PyTorch layout `[out, in]`, so output units are axis 0).

use std::collections::BTreeMap;
use std::path::Path;

use pruning::importance::{Importance, Magnitude, ScoreInput, SquaredMagnitude};
use pruning::{Granularity, LayerInput, Rule, ScopeKind, Spec, select_masks};
use safetensors::SafeTensors;

const LAYERS: [&str; 3] = ["fc1.weight", "fc2.weight", "fc3.weight"];

fn vectors() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/vectors"))
}

fn weights() -> BTreeMap<String, (Vec<f32>, [usize; 2])> {
    let bytes = std::fs::read(vectors().join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    LAYERS
        .iter()
        .map(|name| {
            let t = st.tensor(name).unwrap();
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name.to_string(), (v, [t.shape()[0], t.shape()[1]]))
        })
        .collect()
}

fn torch_mask(bytes: &[u8], method: &str, layer: &str) -> Vec<bool> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensor(&format!("{method}/{layer}"))
        .unwrap()
        .data()
        .iter()
        .map(|&b| b == 1)
        .collect()
}

fn inputs(criterion: &dyn Importance) -> Vec<LayerInput> {
    weights()
        .into_iter()
        .map(|(name, (w, shape))| {
            let scores = criterion
                .score(&ScoreInput {
                    name: &name,
                    weight: &w,
                    grads: None,
                })
                .unwrap();
            LayerInput {
                unit_params: vec![],
                shape: shape.to_vec(),
                unit_axis: 0,
                keep: vec![true; scores.len()],
                scores,
                name,
            }
        })
        .collect()
}

fn check(method: &str, criterion: &dyn Importance, spec: Spec) {
    let masks_bytes = std::fs::read(vectors().join("masks.safetensors")).unwrap();
    let sel = select_masks(&inputs(criterion), &spec).unwrap();
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
    for layer in LAYERS {
        let ours = &sel.masks.masks[layer].keep;
        let theirs = torch_mask(&masks_bytes, method, layer);
        let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 0,
            "{method} {layer}: {differ} entries differ from PyTorch"
        );
    }
}

#[test]
fn l1_unstructured_matches_pytorch() {
    for (method, a) in [("l1_unstructured_a0.5", 0.5), ("l1_unstructured_a0.9", 0.9)] {
        check(
            method,
            &Magnitude,
            Spec::new(Granularity::Weight, Rule::Sparsity(a)),
        );
    }
}

#[test]
fn global_unstructured_matches_pytorch() {
    let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(0.8));
    spec.scope = ScopeKind::Global;
    check("global_l1_a0.8", &Magnitude, spec);
    // The counts PyTorch reports, layer by layer.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("masks.json")).unwrap())
            .unwrap();
    let sel = select_masks(&inputs(&Magnitude), &{
        let mut s = Spec::new(Granularity::Weight, Rule::Sparsity(0.8));
        s.scope = ScopeKind::Global;
        s
    })
    .unwrap();
    for layer in LAYERS {
        assert_eq!(
            sel.masks.masks[layer].kept() as u64,
            json["global_l1_a0.8"]["layers"][layer]["kept"]
                .as_u64()
                .unwrap()
        );
    }
}

#[test]
fn ln_structured_rows_match_pytorch() {
    // n = 1 ranks rows by Σ|w|, n = 2 by Σw² (the same order as the L2 norm).
    check(
        "ln_structured_n1_dim0_a0.3",
        &Magnitude,
        Spec::new(Granularity::Rows, Rule::Sparsity(0.3)),
    );
    check(
        "ln_structured_n2_dim0_a0.3",
        &SquaredMagnitude,
        Spec::new(Granularity::Rows, Rule::Sparsity(0.3)),
    );
}
