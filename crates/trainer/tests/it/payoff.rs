//! What pruning buys, checked: compaction keeps every output (for each activation), CSR and
//! dense host inference agree with Burn, storage sizes add up, and the CLI commands run on a
//! real run folder.

use burn::tensor::{Device, Tensor, TensorData};
use pruning::Rng;
use trainer::config::{ActivationKind, ModelConfig};
use trainer::experiment::run_experiment;
use trainer::inference::{CsrMlp, HostMlp, compact, sizes_of};
use trainer::model::Net;

use crate::{opts, shipped};

fn device() -> Device {
    #[allow(deprecated)]
    Device::ndarray()
}

/// An 8-12-10-3 network with hidden units removed three ways: no incoming weights (a constant
/// unit, bias kept), no outgoing weights, and both; plus scattered zero weights.
fn neuron_pruned(activation: ActivationKind) -> HostMlp {
    let cfg = ModelConfig {
        hidden: Some(vec![12, 10]),
        activation: Some(activation),
        ..ModelConfig::default()
    };
    let mut m = HostMlp::from_mlp(&Net::new(&cfg, 8, 3, 5, &device()));
    let mut rng = Rng::new(9);
    for l in &mut m.layers {
        for v in l.w.iter_mut() {
            if rng.next_f64() < 0.2 {
                *v = 0.0;
            }
        }
    }
    let (first, rest) = m.layers.split_at_mut(1);
    let (l0, l1) = (&mut first[0], &mut rest[0]);
    for j in [1, 4] {
        l0.w[j * 8..(j + 1) * 8].fill(0.0); // no inputs: outputs φ(b_j)
    }
    for j in [4, 7, 11] {
        for o in 0..l1.n_out {
            l1.w[o * l1.n_in + j] = 0.0; // no outputs
        }
    }
    let (mid, last) = m.layers.split_at_mut(2);
    let l1 = &mut mid[1];
    l1.w[3 * 12..4 * 12].fill(0.0); // layer 2, unit 3: no inputs
    for o in 0..3 {
        last[0].w[o * 10 + 6] = 0.0; // layer 2, unit 6: no outputs
    }
    m
}

#[test]
fn compaction_keeps_every_output_for_sigmoid_tanh_and_relu() {
    let mut rng = Rng::new(1);
    let n = 500;
    let x: Vec<f32> = (0..n * 8).map(|_| rng.uniform(-2.0, 2.0) as f32).collect();
    for activation in [
        ActivationKind::Sigmoid,
        ActivationKind::Tanh,
        ActivationKind::Relu,
    ] {
        let m = neuron_pruned(activation);
        let c = compact(&m);
        // Units 1, 4, 7, 11 of the first hidden layer and 3, 6 of the second are gone.
        assert_eq!(c.model.widths(), vec![8, 8, 8, 3], "{activation:?}");
        assert_eq!(c.kept_units[0], vec![0, 2, 3, 5, 6, 8, 9, 10]);
        // Reference: Burn's forward pass of the uncompacted network.
        let burn_out: Vec<f32> = m
            .to_mlp(&device())
            .forward(Tensor::from_data(
                TensorData::new(x.clone(), [n, 8]),
                &device(),
            ))
            .into_data()
            .try_to_vec()
            .unwrap();
        let small_burn: Vec<f32> = c
            .model
            .to_mlp(&device())
            .forward(Tensor::from_data(
                TensorData::new(x.clone(), [n, 8]),
                &device(),
            ))
            .into_data()
            .try_to_vec()
            .unwrap();
        for (name, out) in [
            ("compacted (Burn)", small_burn),
            ("compacted (host)", c.model.forward(&x, n)),
            ("dense (host)", m.forward(&x, n)),
            ("csr (host)", CsrMlp::from_host(&m).forward(&x, n)),
        ] {
            let diff = out
                .iter()
                .zip(&burn_out)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff <= 1e-5, "{activation:?} {name}: max |diff| {diff}");
        }
        // One sample at a time (the batch-1 kernels) gives the same outputs as a batch.
        let csr = CsrMlp::from_host(&m);
        for s in 0..20 {
            let xs = &x[s * 8..(s + 1) * 8];
            for (a, b) in m.forward(xs, 1).iter().zip(csr.forward(xs, 1)) {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{activation:?} sample {s}: dense {a} csr {b}"
                );
            }
            let one = m.forward(xs, 1);
            for (a, b) in one.iter().zip(&burn_out[s * 3..(s + 1) * 3]) {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{activation:?} sample {s}: {a} vs Burn {b}"
                );
            }
        }
    }
}

#[test]
fn storage_sizes_count_values_indices_and_bits() {
    let m = neuron_pruned(ActivationKind::Relu);
    let csr = CsrMlp::from_host(&m);
    let c = compact(&m);
    let s = sizes_of(&m, &c);
    let weights: usize = m.layers.iter().map(|l| l.w.len()).sum();
    let biases: usize = m.layers.iter().map(|l| l.b.len()).sum();
    let nnz: usize = csr.layers.iter().map(|l| l.nnz()).sum();
    assert_eq!(s.dense_bytes, 4 * (weights + biases));
    // Values and column indices, row pointers (n_out + 1 per layer), biases.
    assert_eq!(s.csr_bytes, 8 * nnz + 4 * (13 + 11 + 4) + 4 * biases);
    // Counted without building it, as the built CSR network measures itself.
    let built: usize = csr.layers.iter().map(|l| l.bytes()).sum();
    assert_eq!(s.csr_bytes, built + 4 * biases);
    assert_eq!(
        s.bitmask_bytes,
        (96usize.div_ceil(8) + 120usize.div_ceil(8) + 30usize.div_ceil(8)) + 4 * nnz + 4 * biases
    );
    assert_eq!(s.compact_bytes, 4 * (8 * 8 + 8 + 8 * 8 + 8 + 3 * 8 + 3));
    assert!(s.compact_bytes < s.dense_bytes);
}

#[test]
fn a_neuron_pruned_run_is_compacted_with_the_same_accuracy_and_the_commands_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(
        &shipped(
            "digits-taylor.toml",
            &["train.epochs=20", "pruning.fine_tune_epochs=3"],
        ),
        &opts(tmp.path()),
    )
    .unwrap();
    let p = r.pruning.as_ref().unwrap();
    assert_eq!(p.compact.widths, [64, 16, 10]);
    let (_, test) = *r.evals.last().unwrap();
    assert_eq!(
        p.compact.final_evals.as_ref().unwrap().accuracy("test"),
        test.accuracy(),
        "the compacted network classifies the test set exactly as the pruned one"
    );
    assert!(r.dir.join("compact.safetensors").is_file());
    let small = trainer::export::load_model(&r.dir.join("compact.safetensors"), &device()).unwrap();
    assert_eq!(small.widths(), vec![64, 16, 10]);

    let c = trainer::inference::run_folder::compact_run(&r.dir).unwrap();
    assert_eq!(c.widths_after, vec![64, 16, 10]);
    assert_eq!(c.accuracy_before, c.accuracy_after);
    assert!(c.max_abs_diff <= 1e-5);
    use trainer::inference::run_folder::{Format, infer_run};
    for format in [Format::Dense, Format::Csr, Format::Compact] {
        let i = infer_run(&r.dir, Some(format), 32, 1).unwrap();
        assert_eq!(i.accuracy, test.accuracy(), "{format:?}");
        assert_eq!(i.samples, 359);
    }
    let e = match infer_run(&tmp.path().join("nope"), Some(Format::Csr), 1, 1) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a missing run folder must be an error"),
    };
    assert!(
        e.contains("model.safetensors") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn run_folders_get_plots_and_an_index_page_that_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(&shipped("xor.toml", &[]), &opts(tmp.path())).unwrap();
    let html = std::fs::read_to_string(r.dir.join("index.html")).unwrap();
    let stems = [
        "training",
        "sparsity",
        "accuracy_vs_sparsity",
        "weights_layers.0.weight",
        "weights_layers.1.weight",
    ];
    for stem in stems {
        let png = std::fs::read(r.dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        let svg = std::fs::read_to_string(r.dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{stem}.svg");
        assert!(
            html.contains(&format!("src=\"{stem}.png\"")),
            "index.html lacks {stem}"
        );
    }
    // Text is rendered (axis titles, captions) and the pruning event is drawn.
    let svg = std::fs::read_to_string(r.dir.join("training.svg")).unwrap();
    assert!(
        svg.contains("epoch") && svg.contains("pruning event"),
        "{}",
        &svg[..200]
    );
    assert!(html.contains("layers.0.weight") && html.contains("33.33%"));
    // A run without pruning gets curves and weight pictures, no sparsity plots.
    let plain = run_experiment(
        &shipped("digits.toml", &["train.epochs=3"]),
        &opts(tmp.path()),
    )
    .unwrap();
    assert!(plain.dir.join("training.png").is_file());
    assert!(plain.dir.join("weights_layers.0.weight.png").is_file());
    assert!(!plain.dir.join("sparsity.png").exists());
}

#[test]
fn sensitivity_prunes_each_layer_alone_and_suggests_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_experiment(
        &shipped(
            "digits.toml",
            &["train.epochs=30", "data.validation_fraction=0.2"],
        ),
        &opts(tmp.path()),
    )
    .unwrap();
    let s = trainer::sensitivity::sensitivity(&r.dir, &[0.5, 0.9, 0.99], 0.02).unwrap();
    assert_eq!(s.split, "valid");
    assert_eq!(s.probes.len(), 6);
    // The baseline is the run's own validation accuracy.
    let valid = r.evals.iter().find(|(n, _)| *n == "valid").unwrap().1;
    assert!((s.baseline - valid.accuracy().unwrap()).abs() < 1e-9);
    // Pruning 99% of the first layer alone hurts more than pruning half of it.
    let at = |layer: &str, sp: f64| {
        s.probes
            .iter()
            .find(|p| p.layer == layer && p.sparsity == sp)
            .unwrap()
            .metric
    };
    assert!(at("layers.0.weight", 0.99) < at("layers.0.weight", 0.5) - 0.1);
    // Each suggestion is the highest probe within the tolerance; at least one layer keeps its
    // accuracy at 50 %, so the rule is exercised.
    assert!(s.suggested.values().any(|b| *b > 0.0), "{:?}", s.suggested);
    for (layer, best) in &s.suggested {
        for sp in [0.5, 0.9, 0.99] {
            let within = at(layer, sp) >= s.baseline - 0.02;
            assert!(
                !within || sp <= *best,
                "{layer}: {sp} is within tolerance, suggested {best}"
            );
        }
        if *best > 0.0 {
            assert!(at(layer, *best) >= s.baseline - 0.02, "{layer} at {best}");
        }
    }
    for f in [
        "sensitivity.csv",
        "sensitivity.md",
        "sensitivity.png",
        "sensitivity.svg",
    ] {
        assert!(r.dir.join(f).is_file(), "{f}");
    }
    // The suggested table is a valid [pruning] table of a config.
    let toml_text = std::fs::read_to_string(r.dir.join("sensitivity_targets.toml")).unwrap();
    let cfg = std::fs::read_to_string(crate::repo().join("configs/digits.toml")).unwrap();
    let path = crate::write(tmp.path(), "suggested.toml", &format!("{cfg}\n{toml_text}"));
    let loaded = trainer::config::load_config(&path, &[]).unwrap();
    assert!(loaded.config.pruning.is_some());
}
