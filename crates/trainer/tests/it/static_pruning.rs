//! Static pruning through the trainer: accuracy bars, exact zeros in the saved model, masks in
//! PyTorch's naming, and masks held through every optimizer step.

use std::path::Path;

use burn::tensor::Device;
use pruning::{HookError, MaskHook, StepInfo, TrainHook};
use safetensors::SafeTensors;
use trainer::data;
use trainer::experiment::run_experiment;

use crate::{opts, shipped};
use trainer::head::Head;
use trainer::model::Net;
use trainer::prune::{masked_params, prune_step};
use trainer::seeds::{Phase, Purpose, Seeds};
use trainer::train::train;

/// The order a run with seed 0 shuffles its first training with.
fn shuffle() -> pruning::Rng {
    Seeds::new(0).rng(Phase::Train, Purpose::Shuffle)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn digits_global_80_percent_with_fine_tuning_keeps_94_percent_and_saves_exact_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("digits-static.toml", &[]), &opts(tmp.path())).unwrap();
    let report = r.pruning.as_ref().unwrap();
    let sparsity = report.total.sparsity;
    assert!((sparsity - 0.8).abs() < 1e-3, "sparsity {sparsity}");
    let tuned = report.rounds()[0]
        .after_fine_tune
        .as_ref()
        .and_then(|e| e.accuracy("test"))
        .unwrap();
    assert!(tuned >= 0.94, "digits after pruning + fine-tuning: {tuned}");
    let (_, test) = *r.evals.last().unwrap();
    assert_eq!(test.accuracy().unwrap(), tuned);

    let model_bytes = std::fs::read(r.dir.join("model.safetensors")).unwrap();
    let mask_bytes = std::fs::read(r.dir.join("masks.safetensors")).unwrap();
    let model = SafeTensors::deserialize(&model_bytes).unwrap();
    let masks = SafeTensors::deserialize(&mask_bytes).unwrap();
    let mut names = masks.names();
    names.sort();
    assert_eq!(names, vec!["layers.0.weight_mask", "layers.1.weight_mask"]);
    for layer in ["layers.0.weight", "layers.1.weight"] {
        let w = model.tensor(layer).unwrap();
        let m = masks.tensor(&format!("{layer}_mask")).unwrap();
        assert_eq!(
            w.shape(),
            m.shape(),
            "masks use the model file's [out, in] layout"
        );
        let w = f32s(w.data());
        for (i, (&wi, &mi)) in w.iter().zip(m.data()).enumerate() {
            if mi == 0 {
                assert_eq!(
                    wi.to_bits(),
                    0f32.to_bits(),
                    "{layer}[{i}] = {wi} under a zero mask"
                );
            } else {
                assert_eq!(mi, 1);
            }
        }
    }
    std::fs::read_to_string(r.dir.join("pruning.json")).unwrap();
}

#[test]
fn xor_config_applies_the_write_ups_neuron_step() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("xor.toml", &[]), &opts(tmp.path())).unwrap();
    let p = r.pruning.unwrap();
    crate::dynamic_pruning::assert_reads_back(&r.dir, &p);
    assert_eq!(p.before_pruning().unwrap().accuracy("train"), Some(1.0));
    // Units whose outgoing |w| is below half the largest are removed whole.
    let dead = p.layers[0].dead_units;
    assert!(dead >= 1, "no unit pruned: {p:?}");
    let kept_out = p.layers[1].kept;
    assert_eq!(kept_out, 3 - dead);
}

/// A freshly initialised digits network pruned by `digits-static.toml` (with overrides).
struct Pruned {
    cfg: trainer::config::Config,
    device: Device,
    splits: data::Splits,
    head: Head,
    model: Net,
    params: Vec<pruning::ParamInfo>,
    masks: pruning::MaskSet,
}

fn pruned_digits(overrides: &[&str]) -> Pruned {
    let cfg = shipped("digits-static.toml", overrides).config;
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    let splits = data::load(&cfg.data, cfg.seed, Path::new(".")).unwrap();
    let head = Head::for_data(&splits.train);
    let model = Net::new(&cfg.model, 64, head.n_outputs(), 0, &device);
    let p = cfg.pruning.as_ref().unwrap();
    let params = masked_params(&model, p).unwrap();
    let ones = pruning::MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    let (model, masks, _) = prune_step(model, &params, &ones, p, 0, None).unwrap();
    Pruned {
        cfg,
        device,
        splits,
        head,
        model,
        params,
        masks,
    }
}

/// Fails the run if any masked weight is nonzero after an optimizer step.
struct ZeroCheck {
    zero_at: Vec<(usize, Vec<usize>)>,
    steps_checked: usize,
}

impl TrainHook<Net> for ZeroCheck {
    fn name(&self) -> &str {
        "zero-check"
    }
    fn after_step(&mut self, model: Net, step: &StepInfo) -> Result<Net, HookError> {
        for (layer, idx) in &self.zero_at {
            let w: Vec<f32> = model.layers[*layer]
                .weight
                .val()
                .into_data()
                .try_to_vec()
                .unwrap();
            if let Some(&i) = idx.iter().find(|&&i| w[i] != 0.0) {
                return Err(
                    format!("step {}: layers.{layer}.weight[{i}] = {}", step.step, w[i]).into(),
                );
            }
        }
        self.steps_checked += 1;
        Ok(model)
    }
}

#[test]
fn masked_weights_stay_exactly_zero_after_every_step_with_adam_momentum_and_decay() {
    let optimizers = [
        vec!["train.optimizer=\"adam\"", "train.weight_decay=0.01"],
        vec![
            "train.optimizer=\"sgd\"",
            "train.momentum=0.9",
            "train.weight_decay=0.01",
        ],
        vec![
            "train.optimizer=\"sgd\"",
            "train.momentum=0.9",
            "train.nesterov=true",
        ],
    ];
    for extra in optimizers {
        let mut o = vec!["train.epochs=5", "train.lr=0.05"];
        o.extend(extra.iter().copied());
        let Pruned {
            cfg,
            device,
            splits,
            head,
            model,
            params,
            masks,
        } = pruned_digits(&o);
        let zero_at = masks
            .masks
            .iter()
            .map(|(name, m)| {
                let layer: usize = name.split('.').nth(1).unwrap().parse().unwrap();
                (layer, (0..m.len()).filter(|&i| !m.keep[i]).collect())
            })
            .collect();
        let mut hold = MaskHook::new(&params, &masks).unwrap();
        let mut check = ZeroCheck {
            zero_at,
            steps_checked: 0,
        };
        {
            let mut hooks: [&mut dyn TrainHook<Net>; 2] = [&mut hold, &mut check];
            train(
                model,
                &splits,
                head,
                &cfg.train,
                shuffle(),
                &device,
                &mut hooks,
            )
            .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        }
        assert_eq!(check.steps_checked, 5 * 23, "{extra:?}");
    }
}

#[test]
fn without_the_mask_hook_momentum_revives_pruned_weights() {
    // The control for the test above: it must be able to fail.
    let Pruned {
        cfg,
        device,
        splits,
        head,
        model,
        masks,
        ..
    } = pruned_digits(&[
        "train.epochs=1",
        "train.optimizer=\"sgd\"",
        "train.momentum=0.9",
        "train.weight_decay=0.01",
    ]);
    let m = &masks.masks["layers.0.weight"];
    let mut check = ZeroCheck {
        zero_at: vec![(0, (0..m.len()).filter(|&i| !m.keep[i]).collect())],
        steps_checked: 0,
    };
    let mut hooks: [&mut dyn TrainHook<Net>; 1] = [&mut check];
    let e = train(
        model,
        &splits,
        head,
        &cfg.train,
        shuffle(),
        &device,
        &mut hooks,
    )
    .unwrap_err();
    assert!(e.to_string().contains("zero-check"), "{e}");
}

#[test]
fn pruning_from_an_earlier_run_keeps_its_masks_and_iterative_rounds_compound() {
    let tmp = tempfile::tempdir().unwrap();
    // Round one: train, prune 50% layer-wise, two rounds (50% of the remaining each time).
    let first = run_experiment(
        &shipped(
            "digits-static.toml",
            &[
                "train.epochs=10",
                "pruning.scope=\"layer\"",
                "pruning.sparsity=0.5",
                "pruning.rounds=2",
                "pruning.fine_tune_epochs=1",
            ],
        ),
        &opts(tmp.path()),
    )
    .unwrap();
    let p = first.pruning.unwrap();
    let s1 = p.rounds()[0].sparsity;
    let s2 = p.rounds()[1].sparsity;
    assert!(
        (s1 - 0.5).abs() < 1e-3 && (s2 - 0.75).abs() < 1e-3,
        "{s1} {s2}"
    );
    // Round two, from that run: another 50% of what remains, without training.
    let mut o = opts(tmp.path());
    o.from = Some(first.dir.clone());
    let second = run_experiment(
        &shipped(
            "digits-static.toml",
            &["pruning.scope=\"layer\"", "pruning.sparsity=0.5"],
        ),
        &o,
    )
    .unwrap();
    let before = trainer::export::load_masks(&first.dir.join("masks.safetensors")).unwrap();
    let after = trainer::export::load_masks(&second.dir.join("masks.safetensors")).unwrap();
    for (name, m) in &after.masks {
        let earlier = &before.masks[name];
        assert!(
            m.keep
                .iter()
                .zip(&earlier.keep)
                .all(|(now, was)| *was || !*now),
            "{name} revived"
        );
    }
    assert!(
        (after.sparsity() - 0.875).abs() < 2e-3,
        "{}",
        after.sparsity()
    );
    let acc0 = second
        .pruning
        .unwrap()
        .before_pruning()
        .unwrap()
        .accuracy("test")
        .unwrap();
    let acc_first = first.evals.last().unwrap().1.accuracy().unwrap();
    assert_eq!(
        acc0, acc_first,
        "--from starts from the earlier run's final model"
    );
}

#[test]
fn applying_masks_keeps_param_ids_and_gradient_requirement() {
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    let cfg = shipped("digits-static.toml", &[]).config;
    let model = Net::new(&cfg.model, 64, 10, 0, &device);
    let before = pruning::param_infos(&model);
    let p = cfg.pruning.as_ref().unwrap();
    let params = masked_params(&model, p).unwrap();
    let ones = pruning::MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    let (model, _, _) = prune_step(model, &params, &ones, p, 0, None).unwrap();
    assert_eq!(pruning::param_infos(&model), before);
    assert!(model.layers[0].weight.val().is_require_grad());
    // Unknown parameter paths are errors that list the valid ones.
    let mut bad = p.clone();
    bad.rule.exclude = vec!["layers.9.weight".into()];
    let e = masked_params(&model, &bad).unwrap_err().to_string();
    assert!(
        e.contains("unknown parameter `layers.9.weight`; prunable: layers.0.weight"),
        "{e}"
    );
}
