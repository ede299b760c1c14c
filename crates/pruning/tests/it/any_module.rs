//! The pruning crate on a module that is not the trainer's MLP: a hand-written struct with
//! named sub-modules, a bias-free layer and a non-Linear parameter.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use pruning::importance::{Importance, Magnitude, ScoreInput};
use pruning::{
    Granularity, LayerInput, MaskSet, Prunable, Rule, Spec, apply_masks, param_infos, read_params,
    select_masks,
};

#[derive(Module, Debug)]
struct Encoder {
    proj: Linear,
    head: Linear,
    scale: Param<Tensor<1>>,
}

fn model(device: &Device) -> Encoder {
    Encoder {
        proj: LinearConfig::new(6, 4).init(device),
        head: LinearConfig::new(4, 3).with_bias(false).init(device),
        scale: Param::from_tensor(Tensor::ones([3], device)),
    }
}

#[test]
fn paths_prunable_set_and_masks_work_on_any_module() {
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    let m = model(&device);
    let paths: Vec<String> = param_infos(&m).into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec!["proj.weight", "proj.bias", "head.weight", "scale"]
    );

    // Default: Linear weights only; biases on request; globs; unknown paths listed.
    let weights = Prunable::default().select(&m).unwrap();
    let names: Vec<&str> = weights.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(names, vec!["proj.weight", "head.weight"]);
    let with_bias = Prunable {
        biases: true,
        ..Default::default()
    }
    .select(&m)
    .unwrap();
    assert_eq!(with_bias.len(), 3);
    let only_head = Prunable {
        include: vec!["head.*".into()],
        ..Default::default()
    }
    .select(&m)
    .unwrap();
    assert_eq!(only_head.len(), 1);
    let e = Prunable {
        exclude: vec!["decoder.weight".into()],
        ..Default::default()
    }
    .select(&m)
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "unknown parameter `decoder.weight`; prunable: proj.weight, proj.bias, head.weight, scale"
    );

    // Score, select 50% per layer, apply: ids kept, half of each weight exactly zero.
    let ids: Vec<_> = weights.iter().map(|p| p.id).collect();
    let values = read_params(&m, &ids);
    let layers: Vec<LayerInput> = weights
        .iter()
        .map(|p| {
            let scores = Magnitude
                .score(&ScoreInput {
                    name: &p.path,
                    weight: &values[&p.id],
                    grads: None,
                })
                .unwrap();
            LayerInput {
                name: p.path.clone(),
                unit_params: vec![],
                shape: p.shape.clone(),
                unit_axis: 1,
                keep: vec![true; scores.len()],
                scores,
            }
        })
        .collect();
    let sel = select_masks(
        &layers,
        &Spec::new(Granularity::Weight, Rule::Sparsity(0.5)),
    )
    .unwrap();
    let before = param_infos(&m);
    let pruned = apply_masks(m, &weights, &sel.masks).unwrap();
    assert_eq!(
        param_infos(&pruned),
        before,
        "paths, ids and shapes survive masking"
    );
    assert!(pruned.proj.weight.val().is_require_grad());
    let after = read_params(&pruned, &ids);
    for p in &weights {
        let zeros = after[&p.id].iter().filter(|v| **v == 0.0).count();
        assert_eq!(zeros, p.numel() / 2, "{}", p.path);
    }
    // A mask set that does not fit is refused with the parameter's name.
    let wrong = MaskSet::ones([("proj.weight", &[6usize, 4][..])]);
    let e = apply_masks(pruned, &weights, &wrong)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "no mask for prunable parameter `head.weight`");
}

/// Fields out of forward order: `out` is visited before `hidden`.
#[derive(Module, Debug)]
struct Reversed {
    out: Linear,
    hidden: Linear,
}

#[test]
fn a_module_whose_fields_are_not_in_forward_order_declares_its_layers() {
    use pruning::importance::Magnitude;
    use pruning::{LayerNode, Structure, UnitSide, prune_once};
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    let m = Reversed {
        out: LinearConfig::new(8, 3).init(&device),
        hidden: LinearConfig::new(4, 8).init(&device),
    };
    let node = |w: &str, b: &str| LayerNode {
        weight: w.into(),
        unit_axis: 1,
        unit_params: vec![b.into()],
        unit_state: vec![],
    };
    let structure = Structure::declared(vec![
        node("hidden.weight", "hidden.bias"),
        node("out.weight", "out.bias"),
    ]);
    let params: Vec<_> = param_infos(&m)
        .into_iter()
        .filter(|p| p.path != "out.bias")
        .collect();
    let masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
    let mut spec = Spec::new(Granularity::Neuron(UnitSide::Incoming), Rule::Sparsity(0.5));
    spec.structure = Some(structure);
    let out = prune_once(m, &params, &masks, &Magnitude, &spec, None).unwrap();
    // Half of the 8 hidden units go, each with its bias and its 3 outgoing weights; the 3
    // outputs stay.
    let bias = &out.masks.masks["hidden.bias"];
    assert_eq!(bias.kept(), 4);
    let hidden = &out.masks.masks["hidden.weight"];
    assert_eq!(hidden.kept(), 4 * 4);
    let o = &out.masks.masks["out.weight"];
    for u in 0..8 {
        for k in 0..3 {
            assert_eq!(o.keep[u * 3 + k], bias.keep[u], "unit {u}");
        }
        for i in 0..4 {
            assert_eq!(hidden.keep[i * 8 + u], bias.keep[u]);
        }
    }
}
