//! Every kind of figure, drawn for a 2-epoch and a 1000-epoch run, checked by the labels it drew:
//! the SVG's text elements (what a reader sees), not pixels.

use std::path::Path;

use report::{
    Evals, LayerCounts, Level, LevelResult, ModeReport, PruningReport, Round, SearchMetric,
    SearchReport, SplitEval, Totals,
};

use super::*;
use crate::inference::HostLayer;

/// One `<text>` of a plotters SVG.
#[derive(Debug, Clone)]
struct Label {
    x: f64,
    y: f64,
    anchor: String,
    text: String,
}

impl Label {
    fn number(&self) -> Option<f64> {
        self.text.trim().trim_end_matches('%').parse().ok()
    }
}

fn attr(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    tag.split(&key)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn labels(path: &Path) -> Vec<Label> {
    let svg = std::fs::read_to_string(path).unwrap();
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let (tag, rest) = t.split_once('>').unwrap();
            let text = rest.split("</text>").next().unwrap().trim().to_string();
            Label {
                x: attr(tag, "x").parse().unwrap(),
                y: attr(tag, "y").parse().unwrap(),
                anchor: attr(tag, "text-anchor"),
                text,
            }
        })
        .collect()
}

/// The x-axis tick labels, one list per panel, left to right. Plotters writes them centred
/// under the axis, all at one height; a panel ends where x jumps back to a new axis.
fn x_ticks(all: &[Label]) -> Vec<Vec<(f64, String)>> {
    let numeric: Vec<&Label> = all
        .iter()
        .filter(|l| l.anchor == "middle" && l.number().is_some())
        .collect();
    // The lowest row of centred numbers is the x axis (cell values in a heat map sit above it).
    let Some(y) = numeric.iter().map(|l| l.y).reduce(f64::max) else {
        return Vec::new();
    };
    let mut row: Vec<&Label> = numeric.into_iter().filter(|l| l.y == y).collect();
    row.sort_by(|a, b| a.x.total_cmp(&b.x));
    // A value below the one before starts the next panel's axis; an equal one stays (and is
    // the repeat the checks catch).
    let mut panels: Vec<Vec<(f64, String)>> = Vec::new();
    let mut last: Option<f64> = None;
    for l in row {
        let v = l.number().unwrap_or_default();
        if last.is_none_or(|p| v < p) {
            panels.push(Vec::new());
        }
        if let Some(p) = panels.last_mut() {
            p.push((l.x, l.text.clone()));
        }
        last = Some(v);
    }
    panels
}

/// The y-axis tick labels (right-aligned numbers), grouped by axis (same x), bottom to top.
fn y_ticks(all: &[Label]) -> Vec<Vec<f64>> {
    let mut axes: Vec<(f64, Vec<(f64, f64)>)> = Vec::new();
    for l in all.iter().filter(|l| l.anchor == "end") {
        let Some(v) = l.number() else { continue };
        match axes.iter_mut().find(|(x, _)| *x == l.x) {
            Some((_, ticks)) => ticks.push((l.y, v)),
            None => axes.push((l.x, vec![(l.y, v)])),
        }
    }
    axes.sort_by(|a, b| a.0.total_cmp(&b.0));
    axes.into_iter()
        .map(|(_, mut t)| {
            t.sort_by(|a, b| b.0.total_cmp(&a.0));
            t.into_iter().map(|(_, v)| v).collect()
        })
        .collect()
}

/// What every figure promises: x ticks distinct and growing on each axis; y ticks distinct;
/// legends (the only left-aligned texts) beside the plotting areas, not on them.
fn check_common(path: &Path) -> Vec<Label> {
    let all = labels(path);
    let name = path.display();
    for panel in x_ticks(&all) {
        let values: Vec<f64> = panel.iter().map(|(_, t)| t.parse().unwrap()).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{name}: x tick labels repeat or fall: {panel:?}"
        );
    }
    for axis in y_ticks(&all) {
        // Growing upwards, or downwards for images (a kernel's row 0 is at the top).
        let up = axis.windows(2).all(|w| w[0] < w[1]);
        let down = axis.windows(2).all(|w| w[0] > w[1]);
        assert!(up || down, "{name}: y tick labels repeat: {axis:?}");
    }
    let spans: Vec<(f64, f64)> = x_ticks(&all)
        .iter()
        .filter(|p| p.len() > 1)
        .map(|p| (p[0].0, p[p.len() - 1].0))
        .collect();
    for l in all.iter().filter(|l| l.anchor == "start") {
        assert!(
            spans.iter().all(|(a, b)| l.x < *a || l.x > *b),
            "{name}: legend entry {:?} at x = {} lies over a plot ({spans:?})",
            l.text,
            l.x
        );
    }
    all
}

/// Percent axes never pass 100 % (nor fall below 0).
fn check_percent_axis(path: &Path, axis: &[f64]) {
    assert!(axis.len() >= 2, "{}: {axis:?}", path.display());
    assert!(
        axis.iter().all(|v| (0.0..=100.0).contains(v)),
        "{}: a percent axis labelled {axis:?}",
        path.display()
    );
}

fn metrics(dir: &Path, epochs: usize, constant_accuracy: bool) {
    let mut csv = String::from("step,epoch,split,metric,value\n");
    for e in 1..=epochs {
        let t = e as f64 / epochs as f64;
        for split in ["train", "test"] {
            let acc = if constant_accuracy {
                1.0
            } else {
                0.5 + 0.4 * t
            };
            csv += &format!("{e},{e},{split},loss,{}\n", 0.7 * (1.0 - t) + 0.05);
            csv += &format!("{e},{e},{split},accuracy,{acc}\n");
        }
        if e == epochs.div_ceil(2) {
            csv += &format!("{e},{e},prune,sparsity,0.5\n");
        }
    }
    std::fs::write(dir.join("metrics.csv"), csv).unwrap();
}

fn evals(accuracy: f64) -> Evals {
    Evals(
        [(
            "train".to_string(),
            SplitEval {
                n: 5,
                loss: 0.1,
                accuracy: Some(accuracy),
                correct: None,
            },
        )]
        .into(),
    )
}

fn layer(name: &str, sparsity: f64) -> LayerCounts {
    LayerCounts {
        name: name.into(),
        shape_out_in: [3, 2],
        weights: 6,
        kept: 3,
        sparsity,
        dead_units: 0,
    }
}

fn pruning_report(mode: ModeReport, layers: Vec<LayerCounts>) -> PruningReport {
    PruningReport {
        config: serde_json::Value::Null,
        mode,
        layers,
        total: Totals {
            weights: 9,
            kept: 5,
            sparsity: 0.44,
            parameters: 13,
            nonzero_parameters: 9,
            compression_ratio: 1.4,
            dense_macs_per_sample: 9,
            nonzero_macs_per_sample: 5,
            theoretical_speedup: 1.8,
        },
        sizes: report::Sizes {
            dense_bytes: 52,
            csr_bytes: 80,
            bitmask_bytes: 40,
            compact_bytes: 52,
        },
        compact: report::Compact {
            widths: vec![2, 3, 1],
            dense_macs_per_sample: 9,
            compact_macs_per_sample: 9,
            final_evals: None,
        },
        warnings: Vec::new(),
        sparse_training: report::pruning::SparseTraining::default(),
    }
}

fn search_report(
    metric: SearchMetric,
    dense: f64,
    tolerance: f64,
    probes: &[(f64, f64, bool)],
) -> SearchReport {
    SearchReport {
        rule: report::SearchRule::Sparsity,
        upper: probes[0].0,
        metric,
        tolerance,
        dense,
        probes: probes
            .iter()
            .map(|&(sparsity, metric, kept)| report::Probe {
                value: sparsity,
                sparsity,
                metric,
                kept,
            })
            .collect(),
        chosen: None,
    }
}

fn report() -> PruningReport {
    // Accuracy at 100 % before and after: the axis must still stop at 100.
    let round = |round, sparsity, pruned, tuned| Round {
        round,
        sparsity,
        after_pruning: Some(evals(pruned)),
        after_fine_tune: Some(evals(tuned)),
        after_training: None,
    };
    pruning_report(
        ModeReport::Static(report::Rounds {
            before_pruning: evals(1.0),
            rounds: vec![round(1, 0.3, 1.0, 1.0), round(2, 0.6, 0.6, 0.99)],
            search: Some(search_report(
                SearchMetric::ValAccuracy,
                1.0,
                0.01,
                &[(0.98, 0.2, false), (0.49, 1.0, true), (0.73, 0.995, true)],
            )),
        }),
        vec![
            layer("layers.0.weight", 0.5),
            layer("layers.1.weight", 1.0 / 3.0),
        ],
    )
}

fn lottery_report() -> PruningReport {
    let side = |acc: f64| LevelResult {
        best_valid_accuracy: None,
        best_step: 0,
        best_epoch: 0,
        test_accuracy_at_best: Some(acc),
        final_evals: evals(acc),
    };
    let level = |level, sparsity, ticket, control: Option<f64>| Level {
        level,
        sparsity,
        ticket: side(ticket),
        control: control.map(side),
    };
    pruning_report(
        ModeReport::Lottery(report::pruning::Levels {
            levels: vec![
                level(0, 0.0, 1.0, None),
                level(1, 0.5, 1.0, Some(0.75)),
                level(2, 0.8, 1.0, Some(1.0)),
            ],
        }),
        vec![layer("layers.0.weight", 0.8)],
    )
}

fn small_model() -> HostMlp {
    HostMlp {
        layers: vec![
            HostLayer {
                w: vec![1.5, -0.5, 0.0, 2.0, 0.25, -1.0],
                n_out: 3,
                n_in: 2,
                b: vec![0.0; 3],
            },
            HostLayer {
                w: vec![2.0, 0.0, -1.5],
                n_out: 1,
                n_in: 3,
                b: vec![0.0],
            },
        ],
        activation: crate::config::ActivationKind::Sigmoid,
    }
}

/// An MLP's weights before and after: the same.
fn mlp(model: &HostMlp) -> Weights<'_> {
    Weights::Mlp {
        before: Some(model),
        after: model,
    }
}

#[test]
fn every_figure_of_a_2_and_a_1000_epoch_run_has_readable_axes() {
    for epochs in [2, 1000] {
        for constant in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            metrics(dir, epochs, constant);
            let model = small_model();
            let written = write_all(dir, mlp(&model), Some(&report()), true).unwrap();
            let stems: Vec<&str> = written.iter().map(|(s, _)| s.as_str()).collect();
            assert_eq!(
                stems,
                [
                    "training",
                    "sparsity",
                    "accuracy_vs_sparsity",
                    "search",
                    "weights_layers.0.weight",
                    "weights_layers.1.weight",
                    "kernels"
                ]
            );
            for stem in &stems {
                check_common(&dir.join(format!("{stem}.svg")));
            }

            // Training curves: whole epochs, each once; accuracy in 0–100 %.
            let training = dir.join("training.svg");
            let all = labels(&training);
            let panels = x_ticks(&all);
            assert_eq!(panels.len(), 2, "{panels:?}");
            for p in &panels {
                let ticks: Vec<&str> = p.iter().map(|(_, t)| t.as_str()).collect();
                let expected: &[&str] = if epochs == 2 {
                    &["0", "1", "2"]
                } else {
                    &["0", "200", "400", "600", "800", "1000"]
                };
                assert_eq!(ticks, expected, "{epochs} epochs");
            }
            let y = y_ticks(&all);
            assert_eq!(y.len(), 2, "{y:?}");
            check_percent_axis(&training, &y[1]);
            if constant {
                // A constant 100 % gets an axis below it, not 99.98–100.02.
                assert!(y[1][0] <= 92.0, "{:?}", y[1]);
                assert_eq!(*y[1].last().unwrap(), 100.0, "{:?}", y[1]);
            }
            let legend: Vec<&str> = all
                .iter()
                .filter(|l| l.anchor == "start")
                .map(|l| l.text.as_str())
                .collect();
            assert_eq!(
                legend,
                [
                    "train",
                    "test",
                    "pruning event",
                    "train",
                    "test",
                    "pruning event"
                ]
            );

            for stem in ["accuracy_vs_sparsity", "search"] {
                let path = dir.join(format!("{stem}.svg"));
                let y = y_ticks(&labels(&path));
                check_percent_axis(&path, &y[0]);
            }
            let path = dir.join("sparsity.svg");
            check_percent_axis(&path, &y_ticks(&labels(&path))[0]);
        }
    }
}

#[test]
fn lottery_sensitivity_and_sweep_figures_stay_within_100_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let written = sparsity::accuracy_vs_sparsity(dir, &lottery_report()).unwrap();
    assert_eq!(written.len(), 1);
    let path = dir.join("accuracy_vs_sparsity.svg");
    let all = check_common(&path);
    check_percent_axis(&path, &y_ticks(&all)[0]);

    let sens = crate::sensitivity::Sensitivity {
        split: "test",
        metric: "accuracy",
        baseline: 1.0,
        probes: ["layers.0.weight", "layers.1.weight"]
            .iter()
            .flat_map(|l| {
                [0.5, 0.9].map(|s| crate::sensitivity::Probe {
                    layer: l.to_string(),
                    sparsity: s,
                    metric: 1.0,
                })
            })
            .collect(),
        suggested: Default::default(),
        tolerance: 0.01,
    };
    sensitivity_plot(dir, &sens).unwrap();
    let path = dir.join("sensitivity.svg");
    let all = check_common(&path);
    check_percent_axis(&path, &y_ticks(&all)[0]);

    let group = |method: &str, sparsity: f64, acc: [f64; 2]| crate::sweep::Group {
        method: method.into(),
        values: vec![],
        accuracies: acc.to_vec(),
        sparsities: vec![sparsity; 2],
        split: "train".into(),
    };
    let groups = [
        group("dense", 0.0, [1.0, 1.0]),
        group("config", 0.33, [1.0, 0.8]),
        group("config", 0.5, [1.0, 1.0]),
    ];
    sweep_plot(dir, &groups).unwrap();
    let path = dir.join("sweep.svg");
    let all = check_common(&path);
    check_percent_axis(&path, &y_ticks(&all)[0]);
}

#[test]
fn kernels_are_drawn_in_keras_layout_with_every_value() {
    let tmp = tempfile::tempdir().unwrap();
    let written = kernels::gray_kernels(tmp.path(), &small_model()).unwrap();
    assert_eq!(written[0].0, "kernels");
    let all = check_common(&tmp.path().join("kernels.svg"));
    let texts: Vec<&str> = all.iter().map(|l| l.text.as_str()).collect();
    // Kernel 1 is 2 inputs × 3 units; kernel 2 is 3 × 1, as Keras's get_weights() gives them.
    assert!(texts.contains(&"kernel 1 (2 × 3)"), "{texts:?}");
    assert!(texts.contains(&"kernel 2 (3 × 1)"), "{texts:?}");
    for v in ["1.50", "-0.50", "0.00", "2.00", "0.25", "-1.00", "-1.50"] {
        assert!(texts.contains(&v), "{v} missing: {texts:?}");
    }
}

#[test]
fn a_loss_only_run_gets_one_wide_panel_and_loss_axes_stay_non_negative() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut csv = String::from("step,epoch,split,metric,value\n");
    for e in 1..=2 {
        csv += &format!("{e},{e},train,loss,{}\n", 0.02 / f64::from(e));
    }
    std::fs::write(dir.join("metrics.csv"), csv).unwrap();
    curves::training_curves(dir).unwrap();
    let path = dir.join("training.svg");
    let all = check_common(&path);
    assert_eq!(x_ticks(&all).len(), 1, "a regression run has one panel");
    let y = y_ticks(&all);
    assert!(y[0].iter().all(|v| *v >= 0.0), "{y:?}");

    let search = search_report(
        SearchMetric::ValLoss,
        0.001,
        0.002,
        &[(0.5, 0.002, true), (0.9, 0.004, false)],
    );
    sparsity::search_plot(dir, &search).unwrap();
    let path = dir.join("search.svg");
    let y = y_ticks(&check_common(&path));
    assert!(y[0].iter().all(|v| *v >= 0.0), "{y:?}");
}
