//! Per-layer sparsity as bars, and accuracy against sparsity for runs that visit several
//! sparsities (iterative rounds, lottery levels).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{FONT, Figure, PALETTE, both, s};

struct Bars {
    layers: Vec<(String, f64)>,
}

impl Figure for Bars {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _fine: bool,
    ) -> Result<(), String> {
        let n = self.layers.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Sparsity per layer", (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0f64..100f64)
            .map_err(s)?;
        let names: Vec<String> = self.layers.iter().map(|l| l.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer")
            .y_desc("weights pruned (%)")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(s)?;
        chart
            .draw_series(self.layers.iter().enumerate().map(|(i, (_, sp))| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), sp * 100.0),
                    ],
                    PALETTE[0].filled(),
                );
                bar.set_margin(0, 0, 20, 20);
                bar
            }))
            .map_err(s)?;
        chart
            .draw_series(self.layers.iter().enumerate().map(|(i, (_, sp))| {
                Text::new(
                    format!("{:.1}%", sp * 100.0),
                    (SegmentValue::CenterOf(i), (sp * 100.0 + 3.0).min(97.0)),
                    (FONT, 16).into_font().color(&BLACK),
                )
            }))
            .map_err(s)?;
        Ok(())
    }
}

/// `sparsity.png/svg` from the report's layers.
pub fn layer_bars(dir: &Path, p: &serde_json::Value) -> Result<Vec<(String, String)>, PlotError> {
    let layers: Vec<(String, f64)> = p["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").to_string(),
                l["sparsity"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    if layers.is_empty() {
        return Ok(Vec::new());
    }
    both(dir, "sparsity", (800, 450), &Bars { layers })?;
    Ok(vec![(
        "sparsity".into(),
        "Fraction of each layer's weights pruned".into(),
    )])
}

struct AccVsSparsity {
    /// (label, points (sparsity %, accuracy %)).
    series: Vec<(String, Vec<(f64, f64)>)>,
    title: String,
    y_desc: String,
}

impl Figure for AccVsSparsity {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _fine: bool,
    ) -> Result<(), String> {
        let all: Vec<&(f64, f64)> = self.series.iter().flat_map(|s| &s.1).collect();
        let (lo, hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        // At least five points of accuracy on the axis, so a flat line looks flat.
        let pad = ((hi - lo) * 0.1).max((5.0 - (hi - lo)) / 2.0).max(0.5);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..100f64, (lo - pad).max(0.0)..(hi + pad))
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("sparsity (% of weights pruned)")
            .y_desc(&self.y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(s)?;
        for (i, (label, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(s)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(s)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(s)?;
        Ok(())
    }
}

/// `accuracy_vs_sparsity.png/svg` for static runs with several rounds and for lottery runs.
pub fn accuracy_vs_sparsity(
    dir: &Path,
    p: &serde_json::Value,
) -> Result<Vec<(String, String)>, PlotError> {
    let pct = |v: &serde_json::Value| v.as_f64().map(|a| a * 100.0);
    let mut series = Vec::new();
    let mut split = "test".to_string();
    if let Some(levels) = p["levels"].as_array() {
        for side in ["ticket", "control"] {
            let pts: Vec<(f64, f64)> = levels
                .iter()
                .filter_map(|l| {
                    let acc = pct(&l[side]["test_accuracy_at_best"])?;
                    Some((l["sparsity"].as_f64()? * 100.0, acc))
                })
                .collect();
            let label = if side == "ticket" {
                "lottery ticket (rewound)"
            } else {
                "random reinit (control)"
            };
            if !pts.is_empty() {
                series.push((label.to_string(), pts));
            }
        }
    } else if let Some(rounds) = p["rounds"].as_array() {
        split = ["test", "valid", "train"]
            .into_iter()
            .find(|s| p["before_pruning"].get(*s).is_some())
            .unwrap_or("train")
            .to_string();
        let dense = pct(&p["before_pruning"][&split]["accuracy"]);
        for (key, label) in [
            ("after_pruning", "after pruning"),
            ("after_fine_tune", "after fine-tuning"),
        ] {
            let mut pts: Vec<(f64, f64)> = dense.map(|a| (0.0, a)).into_iter().collect();
            pts.extend(rounds.iter().filter_map(|r| {
                Some((
                    r["sparsity"].as_f64()? * 100.0,
                    pct(&r[key][&split]["accuracy"])?,
                ))
            }));
            if pts.len() > 1 {
                series.push((label.to_string(), pts));
            }
        }
    }
    if series.iter().map(|s| s.1.len()).max().unwrap_or(0) < 2 {
        return Ok(Vec::new());
    }
    let fig = AccVsSparsity {
        series,
        title: format!("{split} accuracy against sparsity"),
        y_desc: format!("{split} accuracy (%)"),
    };
    both(dir, "accuracy_vs_sparsity", (800, 500), &fig)?;
    Ok(vec![(
        "accuracy_vs_sparsity".into(),
        "Accuracy at each sparsity level the run visited".into(),
    )])
}

/// `sensitivity.png/svg`: the metric with each layer pruned alone, against its sparsity.
pub fn sensitivity_plot(dir: &Path, r: &crate::sensitivity::Sensitivity) -> Result<(), PlotError> {
    let scale = if r.metric == "accuracy" { 100.0 } else { 1.0 };
    let mut layers: Vec<String> = r.probes.iter().map(|p| p.layer.clone()).collect();
    layers.dedup();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = layers
        .iter()
        .map(|l| {
            let pts = std::iter::once((0.0, r.baseline * scale))
                .chain(
                    r.probes
                        .iter()
                        .filter(|p| &p.layer == l)
                        .map(|p| (p.sparsity * 100.0, p.metric * scale)),
                )
                .collect();
            (format!("{l} alone"), pts)
        })
        .collect();
    series.push((
        "unpruned".into(),
        vec![(0.0, r.baseline * scale), (100.0, r.baseline * scale)],
    ));
    let unit = if r.metric == "accuracy" { " (%)" } else { "" };
    let fig = AccVsSparsity {
        series,
        title: format!(
            "Sensitivity: {} {} with one layer pruned",
            r.split, r.metric
        ),
        y_desc: format!("{} {}{unit}", r.split, r.metric),
    };
    both(dir, "sensitivity", (800, 500), &fig)
}
