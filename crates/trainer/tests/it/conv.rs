//! Convolutional networks from `[model] layers`: digits as 1×8×8 images through conv, batch
//! norm, pools and dense layers; channel pruning that removes a channel with its bias, batch
//! norm entries and the next layer's slice; every pruning mode on kernels; reports in
//! multiply-adds; `--from`; and layer-list errors before any training.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use trainer::config::{BackendKind, load_config};
use trainer::experiment::{RunOptions, run_experiment};

use super::dynamic_pruning::assert_saved_model_exactly_sparse;
use super::{opts, repo, write};

/// A small conv net for 1×8×8 digits: conv 8 (3×3, padding 1) + batch norm + ReLU + max
/// pool, conv 16 (3×3) + ReLU, flatten, dense 32 + ReLU, and the output layer.
pub(crate) const LAYERS: &str = r#"layers = [
  { type = "conv2d", channels = 8, kernel = 3, padding = 1 },
  { type = "batch-norm" },
  { type = "relu" },
  { type = "max-pool", kernel = 2 },
  { type = "conv2d", channels = 16, kernel = 3 },
  { type = "relu" },
  { type = "flatten" },
  { type = "dense", units = 32 },
  { type = "relu" },
]"#;

/// A digits config with [`LAYERS`], `epochs` and a `[pruning]` table, in `dir`.
pub(crate) fn conv_config(dir: &Path, epochs: usize, pruning: &str) -> PathBuf {
    let csv = repo().join("datasets/digits.csv");
    write(
        dir,
        "conv.toml",
        &format!(
            r#"seed = 0
[data]
name = "digits"
path = "{}"
test_fraction = 0.2
validation_fraction = 0.1
scale = "global-minmax"
[model]
{LAYERS}
[train]
epochs = {epochs}
batch_size = 64
lr = 0.01
{pruning}"#,
            csv.display()
        ),
    )
}

fn tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

#[test]
fn channel_pruning_removes_whole_channels_with_their_norm_and_next_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conv_config(
        tmp.path(),
        8,
        "[pruning]\nmode = \"static\"\ncriterion = \"l1\"\ngranularity = \"neuron\"\nsparsity = 0.5\nfine_tune_epochs = 4\n",
    );
    let r = run_experiment(&load_config(&cfg, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let test = r.evals.last().unwrap().1;
    assert!(test.accuracy().unwrap() > 0.85, "{test:?}");
    assert_saved_model_exactly_sparse(&r.dir);
    let bytes = std::fs::read(r.dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    // Conv 0: 4 of 8 channels gone, each with its filter, bias, γ, β and conv 1's input slice.
    let (shape, w0) = tensor(&st, "features.0.conv.weight");
    assert_eq!(shape, [8, 1, 3, 3]);
    let (_, b0) = tensor(&st, "features.0.conv.bias");
    let (_, gamma) = tensor(&st, "features.0.norm.gamma");
    let (_, beta) = tensor(&st, "features.0.norm.beta");
    let (shape1, w1) = tensor(&st, "features.1.conv.weight");
    assert_eq!(shape1, [16, 8, 3, 3]);
    let gone: Vec<usize> = (0..8)
        .filter(|&c| w0[c * 9..(c + 1) * 9].iter().all(|v| *v == 0.0))
        .collect();
    assert_eq!(gone.len(), 4, "{gone:?}");
    for &c in &gone {
        assert_eq!((b0[c], gamma[c], beta[c]), (0.0, 0.0, 0.0), "channel {c}");
        for o in 0..16 {
            let slice = &w1[(o * 8 + c) * 9..(o * 8 + c + 1) * 9];
            assert!(slice.iter().all(|v| *v == 0.0), "conv 1 reads channel {c}");
        }
    }
    for c in (0..8).filter(|c| !gone.contains(c)) {
        assert!(gamma[c] != 0.0 && w0[c * 9..(c + 1) * 9].iter().any(|v| *v != 0.0));
    }
    // Conv 1's pruned channels take their 2×2 block of the dense layer's inputs with them.
    let (shape, d0) = tensor(&st, "layers.0.weight");
    assert_eq!(shape, [32, 64], "PyTorch's [out, in]");
    for c in (0..16).filter(|&c| w1[c * 72..(c + 1) * 72].iter().all(|v| *v == 0.0)) {
        for o in 0..32 {
            assert!(
                d0[o * 64 + c * 4..o * 64 + c * 4 + 4]
                    .iter()
                    .all(|v| *v == 0.0)
            );
        }
    }
    // Reported in multiply-adds: a 3×3 kernel on 8×8 and on 2×2 positions, then the dense
    // layers; compaction keeps half the channels and units.
    let p: report::PruningReport = report::load(&r.dir.join("pruning.json")).unwrap();
    assert_eq!(
        p.total.dense_macs_per_sample,
        8 * 9 * 64 + 16 * 72 * 4 + 64 * 32 + 32 * 10
    );
    assert_eq!(p.compact.widths, [1, 4, 8, 16, 10]);
    assert_eq!(
        p.compact.compact_macs_per_sample,
        4 * 9 * 64 + 8 * 4 * 9 * 4 + 8 * 4 * 16 + 16 * 10
    );
    // The compacted network (4 and 8 filters, 16 units) was built, saved and scores what the
    // masked one scores.
    let small = p.compact.final_evals.as_ref().unwrap();
    assert_eq!(small.accuracy("test"), test.accuracy());
    assert!(r.dir.join("compact.safetensors").is_file());
    assert!(
        p.sizes.compact_bytes < p.sizes.dense_bytes / 2,
        "{:?}",
        p.sizes
    );
    // Filter heat maps: one per layer, linked from index.html.
    let index = std::fs::read_to_string(r.dir.join("index.html")).unwrap();
    for layer in [
        "features.0.conv.weight",
        "features.1.conv.weight",
        "layers.1.weight",
    ] {
        assert!(
            r.dir.join(format!("weights_{layer}.png")).is_file(),
            "{layer}"
        );
        assert!(index.contains(&format!("weights_{layer}.png")), "{layer}");
    }
    let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.0.conv.weight",
            "features.1.conv.weight",
            "layers.0.weight",
            "layers.1.weight"
        ]
    );
    let summary: report::Summary = report::load(&r.dir.join("summary.json")).unwrap();
    assert_eq!(summary.widths, [1, 8, 16, 32, 10]);
    // The resolved config.toml holds the layer list, and trains the same network again.
    let echo = std::fs::read_to_string(r.dir.join("config.toml")).unwrap();
    assert!(
        echo.contains("type = \"batch-norm\"") && !echo.contains("hidden"),
        "{echo}"
    );
    load_config(&r.dir.join("config.toml"), &[]).unwrap();
    run_folder_commands_take_it(&r.dir, test.accuracy().unwrap());
}

/// Every tensor of a safetensors file by name.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let (shape, v) = tensor(&st, &n);
            (n, shape, v)
        })
        .collect()
}

/// `trainer compact`, `infer` and `sensitivity` on the folder of a channel-pruned conv run
/// (1-8-16-32-10, half of each layer's units pruned).
fn run_folder_commands_take_it(dir: &Path, test_accuracy: f64) {
    use trainer::inference::run_folder::{Format, compact_run, infer_run};
    let saved = tensors(&dir.join("compact.safetensors"));
    let c = compact_run(dir).unwrap();
    assert_eq!(c.widths_before, [1, 8, 16, 32, 10]);
    assert_eq!(c.widths_after, [1, 4, 8, 16, 10]);
    assert_eq!(c.accuracy_before, Some(test_accuracy));
    assert_eq!(c.accuracy_after, Some(test_accuracy));
    assert!(c.max_abs_diff <= 1e-5, "{}", c.max_abs_diff);
    // The network the training run compacted and saved.
    assert_eq!(tensors(&dir.join("compact.safetensors")), saved);
    // Dense by default for a layer list.
    for (format, ran) in [
        (None, Format::Dense),
        (Some(Format::Compact), Format::Compact),
    ] {
        // One batch of the whole split, as the run's evaluation.
        let r = infer_run(dir, format, 100_000, 1).unwrap();
        assert_eq!(r.format, ran);
        assert_eq!(r.accuracy, Some(test_accuracy), "{format:?}");
        // The run's own backend (the config names none: the default).
        assert_eq!(r.engine, format!("burn-{}", BackendKind::default()));
    }
    let e = infer_run(dir, Some(Format::Csr), 32, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("use --format dense or compact"), "{e}");
    let s = trainer::sensitivity::sensitivity(dir, &[0.0, 0.95], 0.01).unwrap();
    let layers: Vec<&String> = s.suggested.keys().collect();
    assert_eq!(
        layers,
        [
            "features.0.conv.weight",
            "features.1.conv.weight",
            "layers.0.weight",
            "layers.1.weight"
        ]
    );
    for p in &s.probes {
        if p.sparsity == 0.0 {
            assert_eq!(p.metric, s.baseline, "{}", p.layer);
        }
    }
    // 95 % of the first convolution's (already halved) filters is more than digits tolerate.
    let first = s
        .probes
        .iter()
        .find(|p| p.layer == "features.0.conv.weight" && p.sparsity == 0.95)
        .unwrap();
    assert!(
        first.metric < s.baseline - 0.05,
        "{first:?} vs {}",
        s.baseline
    );
    assert!(dir.join("sensitivity_targets.toml").is_file());
}

#[test]
fn dropout_drops_in_training_steps_only_and_repeats_by_key() {
    use burn::tensor::{Tensor, TensorData};
    use trainer::config::{ModelConfig, Shape};
    use trainer::model::Net;
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let dense = "{ type = \"dense\", units = 32 },";
    let with: ModelConfig = toml::from_str(&LAYERS.replace(
        dense,
        &format!("{dense}\n  {{ type = \"dropout\", prob = 0.5 }},"),
    ))
    .unwrap();
    let without: ModelConfig = toml::from_str(LAYERS).unwrap();
    let net = Net::new(&with, Shape::Image([1, 8, 8]), 4, 3, &device);
    let plain = Net::new(&without, Shape::Image([1, 8, 8]), 4, 3, &device);
    let x = || {
        let v: Vec<f32> = (0..16 * 64).map(|k| (k % 13) as f32 / 13.0).collect();
        Tensor::<2>::from_data(TensorData::new(v, [16, 64]), &device)
    };
    let out = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    // Evaluation passes values through: the same network as without the entry (which draws
    // no initial weights).
    let eval = out(net.forward(x()));
    assert_eq!(eval, out(plain.forward(x())));
    let a = out(net.forward_train(x(), 1));
    assert_eq!(a, out(net.forward_train(x(), 1)), "a key gives one mask");
    assert_ne!(a, eval);
    assert_ne!(a, out(net.forward_train(x(), 2)));
    assert!(net.has_dropout() && !plain.has_dropout());
    assert_eq!(out(plain.forward_train(x(), 1)), eval);
}

#[test]
fn every_dynamic_mode_runs_on_kernels_and_keeps_them_masked() {
    let tmp = tempfile::tempdir().unwrap();
    for pruning in [
        "mode = \"gradual\"\ncriterion = \"taylor\"\nscope = \"global\"\nsparsity = 0.8\nbegin_epoch = 1\nend_epoch = 3\nevery_steps = 10\n",
        "mode = \"rigl\"\nscope = \"erk\"\nsparsity = 0.8\nevery_steps = 10\n",
        "mode = \"lottery\"\ncriterion = \"l1\"\nlevels = [0.5, 0.75]\nrewind_epoch = 1\n",
        "mode = \"at-init\"\ncriterion = \"snip\"\ngranularity = \"2:4\"\nsparsity = 0.5\ninclude = [\"features.1.conv.weight\", \"layers.*.weight\"]\n",
    ] {
        let cfg = conv_config(tmp.path(), 4, &format!("[pruning]\n{pruning}"));
        let r = run_experiment(&load_config(&cfg, &[]).unwrap(), &opts(tmp.path()))
            .unwrap_or_else(|e| panic!("{pruning}: {e}"));
        assert_saved_model_exactly_sparse(&r.dir);
        let p: report::PruningReport = report::load(&r.dir.join("pruning.json")).unwrap();
        let conv = p
            .layers
            .iter()
            .find(|l| l.name == "features.1.conv.weight")
            .unwrap();
        assert!(conv.sparsity > 0.4, "{pruning}: {conv:?}");
        assert!(
            r.evals.last().unwrap().1.accuracy().unwrap() > 0.5,
            "{pruning}"
        );
    }
}

#[test]
fn a_from_run_prunes_an_earlier_conv_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dense = conv_config(tmp.path(), 5, "");
    let first = run_experiment(&load_config(&dense, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let before = first.evals.last().unwrap().1;
    let prune = conv_config(
        tmp.path(),
        5,
        "[pruning]\nmode = \"static\"\ncriterion = \"l2\"\nsparsity = 0.3\nfine_tune_epochs = 0\n",
    );
    let o = RunOptions {
        from: Some(first.dir.clone()),
        ..opts(tmp.path())
    };
    let r = run_experiment(&load_config(&prune, &[]).unwrap(), &o).unwrap();
    let p: report::PruningReport = report::load(&r.dir.join("pruning.json")).unwrap();
    // Before pruning the loaded network scores what it scored when saved (running statistics
    // of the batch norm included).
    let at_load = p.before_pruning().unwrap();
    assert_eq!(at_load.accuracy("test"), before.accuracy());
}

#[test]
fn layer_list_errors_name_the_layer_and_shapes_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "layers = [{ type = \"conv2d\", channels = 4, kernel = 3 }, { type = \"dense\", units = 8 }]",
            "`model.layers[1]` dense takes vectors, but its input is images of 4×6×6",
        ),
        (
            "preset = \"lenet5\"",
            "`model.layers[3]` a 5×5 window does not fit its input of 6×4×4",
        ),
        (
            "layers = [{ type = \"conv2d\", channels = 4, kernel = 3, units = 2 }, { type = \"flatten\" }]",
            "`units` does not apply to type = \"conv2d\"",
        ),
        (
            "hidden = [8]\npreset = \"conv2\"",
            "`model.hidden` is the MLP shorthand",
        ),
        (
            "layers = [{ type = \"maxpool\", kernel = 2 }]",
            "unknown variant `maxpool`",
        ),
    ];
    for (model, expected) in cases {
        let csv = repo().join("datasets/digits.csv");
        let path = write(
            tmp.path(),
            "bad.toml",
            &format!(
                "[data]\nname = \"digits\"\npath = \"{}\"\n[model]\n{model}\n",
                csv.display()
            ),
        );
        let e = load_config(&path, &[]).unwrap_err().to_string();
        assert!(
            e.contains(expected) && e.contains("bad.toml"),
            "{model}: {e}"
        );
    }
    // Vectors cannot feed a convolution: moons have no image shape.
    let path = write(
        tmp.path(),
        "moons.toml",
        "[data]\nname = \"moons\"\n[model]\nlayers = [{ type = \"conv2d\", channels = 2, kernel = 1 }, { type = \"flatten\" }]\n",
    );
    let e = load_config(&path, &[]).unwrap_err().to_string();
    assert!(
        e.contains("conv2d needs images") && e.contains("line 4"),
        "{e}"
    );
}

#[test]
fn calibration_leaves_the_batch_norm_statistics_alone() {
    use pruning::{param_infos, read_params};
    use trainer::config::{ModelConfig, Shape};
    use trainer::data::{Dataset, Targets};
    use trainer::head::Head;
    use trainer::model::Net;
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray().autodiff();
    let cfg: ModelConfig = toml::from_str(LAYERS).unwrap();
    let model = Net::new(&cfg, Shape::Image([1, 8, 8]), 4, 0, &device);
    let train = Dataset {
        x: (0..32 * 64).map(|k| (k % 17) as f32 / 17.0).collect(),
        n_features: 64,
        y: Targets::Classes {
            labels: (0..32).map(|k| k % 4).collect(),
            n_classes: 4,
        },
    };
    let stats: Vec<_> = param_infos(&model)
        .into_iter()
        .filter(|p| p.path.contains("running"))
        .map(|p| p.id)
        .collect();
    assert_eq!(stats.len(), 2);
    let before = read_params(&model, &stats);
    let params = pruning::Prunable::default().select(&model).unwrap();
    let grads =
        trainer::prune::calibrate(&model, &train, Head::Multiclass(4), 16, 2, &params, &device);
    assert_eq!(
        grads.len(),
        params.len(),
        "a gradient per kernel and matrix"
    );
    assert_eq!(read_params(&model, &stats), before);
}

#[test]
fn granularities_the_layers_cannot_take_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        // The first conv has 1 input channel: no groups of 4.
        (
            "[pruning]\nmode = \"gradual\"\ngranularity = \"2:4\"\nsparsity = 0.5\nevery_steps = 10\nend_epoch = 40\n",
            "2:4 sparsity needs N < M and M dividing the input width of `features.0.conv.weight` (1)",
        ),
        // Neuron pruning across a layer left out.
        (
            "[pruning]\nmode = \"static\"\ngranularity = \"neuron\"\nsparsity = 0.5\nexclude = [\"features.1.conv.weight\"]\n",
            "but not `features.1.conv.weight` between them",
        ),
    ];
    for (pruning, expected) in cases {
        let cfg = conv_config(tmp.path(), 50, pruning);
        let e = run_experiment(&load_config(&cfg, &[]).unwrap(), &opts(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected) && e.contains("conv.toml"), "{e}");
        // Refused before training: no run folder was made.
        let folders = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert_eq!(folders, 0, "{pruning}");
    }
    // A CSV whose rows do not hold the declared image.
    let csv = write(
        tmp.path(),
        "img.csv",
        "a,b,c,label\n1,2,3,0\n4,5,6,1\n1,1,1,0\n2,2,2,1\n",
    );
    let path = write(
        tmp.path(),
        "img.toml",
        &format!(
            "[data]\nname = \"csv\"\npath = \"{}\"\nshape = [1, 2, 2]\n[model]\nlayers = [{{ type = \"conv2d\", channels = 2, kernel = 1 }}, {{ type = \"flatten\" }}]\n",
            csv.display()
        ),
    );
    let e = run_experiment(&load_config(&path, &[]).unwrap(), &opts(tmp.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`data.shape`") && e.contains("4 values per sample, but the data has 3"),
        "{e}"
    );
}

#[test]
fn network_slimming_prunes_batch_normed_channels_only() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conv_config(
        tmp.path(),
        6,
        "l1_gamma = 1e-3\n[pruning]\nmode = \"static\"\ncriterion = \"slimming\"\ngranularity = \"neuron\"\nsparsity = 0.5\nfine_tune_epochs = 2\n",
    );
    let r = run_experiment(&load_config(&cfg, &[]).unwrap(), &opts(tmp.path())).unwrap();
    let p: report::PruningReport = report::load(&r.dir.join("pruning.json")).unwrap();
    let dead: Vec<(&str, usize)> = p
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.dead_units))
        .collect();
    // Conv 0 has the only batch norm: half its channels go; the other layers keep their units.
    assert_eq!(
        dead,
        [
            ("features.0.conv.weight", 4),
            ("features.1.conv.weight", 0),
            ("layers.0.weight", 0),
            ("layers.1.weight", 0)
        ]
    );
    assert!(r.evals.last().unwrap().1.accuracy().unwrap() > 0.8);
    // Its keys need batch norms and channels.
    let cases = [
        (
            "[pruning]\nmode = \"static\"\ncriterion = \"slimming\"\nsparsity = 0.5\n",
            "`pruning.criterion` \"slimming\" ranks channels",
        ),
        (
            "[pruning]\nmode = \"static\"\ncriterion = \"slimming\"\ngranularity = \"neuron\"\nscope = \"global\"\nsparsity = 0.5\n",
            "`pruning.scope` \"slimming\" ranks each batch-normed layer's channels on their own",
        ),
        (
            "[pruning]\nmode = \"at-init\"\ncriterion = \"slimming\"\ngranularity = \"neuron\"\nsparsity = 0.5\n",
            "use it with mode = \"static\" or \"gradual\"",
        ),
        ("l1_gamma = -1.0\n", "`train.l1_gamma` must be"),
    ];
    for (extra, expected) in cases {
        let cfg = conv_config(tmp.path(), 1, extra);
        let e = load_config(&cfg, &[]).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
    let mlp = write(
        tmp.path(),
        "mlp.toml",
        "[data]\nname = \"moons\"\n[train]\nl1_gamma = 1e-4\n",
    );
    let e = load_config(&mlp, &[]).unwrap_err().to_string();
    assert!(e.contains("the network has none"), "{e}");
}
