//! Masks identical to `torch.nn.utils.prune` on convolution weights (copied from
//! `../shared/vectors/conv`: a LeNet-style net, conv weights `[out, in, kh, kw]`, dense
//! `[out, in]`). A conv weight is ranked as the matrix `[out, in·kh·kw]` — PyTorch's row-major
//! order, so entry for entry the same tensor — which makes a filter one row: unstructured
//! pruning ranks its entries, `ln_structured(dim=0)` its rows.

use std::path::Path;

use pruning::importance::{Importance, Magnitude, ScoreInput};
use pruning::{Granularity, LayerInput, Rule, ScopeKind, Spec, select_masks};
use safetensors::SafeTensors;

const LAYERS: [&str; 5] = [
    "conv1.weight",
    "conv2.weight",
    "fc1.weight",
    "fc2.weight",
    "fc3.weight",
];

fn vectors() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/vectors/conv"
    ))
}

/// Every weight as `[out, rest]` with its L1 scores.
fn inputs() -> Vec<LayerInput> {
    let bytes = std::fs::read(vectors().join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    LAYERS
        .iter()
        .map(|name| {
            let t = st.tensor(name).unwrap();
            let w: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let scores = Magnitude
                .score(&ScoreInput {
                    name,
                    weight: &w,
                    grads: None,
                })
                .unwrap();
            LayerInput {
                name: name.to_string(),
                unit_params: vec![],
                shape: t.shape().to_vec(),
                unit_axis: 0,
                keep: vec![true; scores.len()],
                scores,
            }
        })
        .collect()
}

fn check(method: &str, spec: Spec) {
    let bytes = std::fs::read(vectors().join("masks.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("masks.json")).unwrap())
            .unwrap();
    let sel = select_masks(&inputs(), &spec).unwrap();
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
    for layer in LAYERS {
        let ours = &sel.masks.masks[layer];
        let theirs: Vec<bool> = (st.tensor(&format!("{method}/{layer}")).unwrap().data())
            .iter()
            .map(|&b| b == 1)
            .collect();
        let differ = ours
            .keep
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differ, 0,
            "{method} {layer}: {differ} entries differ from PyTorch"
        );
        let kept = json[method][layer]["kept"].as_u64().unwrap();
        assert_eq!(ours.kept() as u64, kept, "{method} {layer}");
    }
}

#[test]
fn l1_unstructured_on_conv_and_dense_weights_matches_pytorch() {
    check(
        "l1_unstructured_a0.6",
        Spec::new(Granularity::Weight, Rule::Sparsity(0.6)),
    );
}

#[test]
fn global_l1_over_convs_and_dense_layers_matches_pytorch() {
    let mut spec = Spec::new(Granularity::Weight, Rule::Sparsity(0.85));
    spec.scope = ScopeKind::Global;
    check("global_l1_a0.85", spec);
}

#[test]
fn ln_structured_over_filters_matches_pytorch() {
    // dim = 0: whole output channels (a conv's filters, a dense layer's rows) by Σ|w|.
    check(
        "ln_structured_n1_dim0_a0.5",
        Spec::new(Granularity::Rows, Rule::Sparsity(0.5)),
    );
}
