//! Per-layer sparsity as bars, and accuracy against sparsity for runs that visit several
//! sparsities (iterative rounds, lottery levels).

use report::{Evals, Level, LevelResult, PruningReport, Round, SearchMetric, SearchReport};
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{
    FONT, Figure, Mark, PALETTE, both, legend, percent_range, s, value_range, with_legend_column,
};

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
pub fn layer_bars(dir: &Path, p: &PruningReport) -> Result<Vec<(String, String)>, PlotError> {
    let layers: Vec<(String, f64)> = p
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.sparsity))
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
    /// Per series, per point: the half-height of an error bar (empty: no bars).
    errors: Vec<Vec<f64>>,
    title: String,
    y_desc: String,
    /// The y values are percentages (accuracy): the axis stays within 0–100 %.
    percent: bool,
}

impl Figure for AccVsSparsity {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _fine: bool,
    ) -> Result<(), String> {
        let err = |i: usize, j: usize| {
            self.errors
                .get(i)
                .and_then(|e| e.get(j))
                .copied()
                .unwrap_or(0.0)
        };
        let (lo, hi) = self
            .series
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.1.iter().enumerate().map(move |(j, p)| (i, j, p.1)))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (i, j, y)| {
                (a.min(y - err(i, j)), b.max(y + err(i, j)))
            });
        let (y_min, y_max) = if self.percent {
            // At least five points of accuracy on the axis, so a flat line looks flat; never
            // past 100 %.
            percent_range(lo, hi, 5.0)
        } else {
            value_range(lo, hi, 0.1)
        };
        let (plot, key) = with_legend_column(root);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..100f64, y_min..y_max)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("sparsity (% of weights pruned)")
            .y_desc(&self.y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(s)?;
        let mut entries = Vec::new();
        for (i, (label, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(s)?;
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(s)?;
            let bars = pts.iter().enumerate().filter(|(j, _)| err(i, *j) > 0.0);
            chart
                .draw_series(bars.map(|(j, &(x, y))| {
                    // Mean ± sd may pass 0 or 100 %; the bar stops at the axis, as the data can.
                    let e = err(i, j);
                    let (lo, hi) = (y - e, y + e);
                    let (lo, hi) = if self.percent {
                        (lo.max(0.0), hi.min(100.0))
                    } else {
                        (lo, hi)
                    };
                    ErrorBar::new_vertical(x, lo, y, hi, color.stroke_width(2), 8)
                }))
                .map_err(s)?;
            entries.push((label.clone(), Mark::LineDot(color)));
        }
        legend(&key, &entries, 60)
    }
}

/// One side of a lottery level: the ticket or its control.
type Side = fn(&Level) -> Option<&LevelResult>;
/// One stage of a pruning round: right after pruning, or fine-tuned.
type Stage = fn(&Round) -> Option<&Evals>;

/// `accuracy_vs_sparsity.png/svg` for static runs with several rounds and for lottery runs.
pub fn accuracy_vs_sparsity(
    dir: &Path,
    p: &PruningReport,
) -> Result<Vec<(String, String)>, PlotError> {
    let pct = |v: Option<f64>| v.map(|a| a * 100.0);
    let mut series = Vec::new();
    let mut split = "test".to_string();
    if let Some(levels) = p.levels() {
        let sides: [(&str, Side); 2] = [
            ("lottery ticket (rewound)", |l| Some(&l.ticket)),
            ("random reinit (control)", |l| l.control.as_ref()),
        ];
        for (label, side) in sides {
            let pts: Vec<(f64, f64)> = levels
                .iter()
                .filter_map(|l| Some((l.sparsity * 100.0, pct(side(l)?.test_accuracy_at_best)?)))
                .collect();
            if !pts.is_empty() {
                series.push((label.to_string(), pts));
            }
        }
    } else if let Some(before) = p.before_pruning() {
        split = before.reported().map_or("train", |(s, _)| s).to_string();
        let dense = pct(before.accuracy(&split));
        let stages: [(&str, Stage); 2] = [
            ("after pruning", |r| r.after_pruning.as_ref()),
            ("after fine-tuning", |r| r.after_fine_tune.as_ref()),
        ];
        for (label, stage) in stages {
            let mut pts: Vec<(f64, f64)> = dense.map(|a| (0.0, a)).into_iter().collect();
            pts.extend(
                p.rounds()
                    .iter()
                    .filter_map(|r| Some((r.sparsity * 100.0, pct(stage(r)?.accuracy(&split))?))),
            );
            if pts.len() > 1 {
                series.push((label.to_string(), pts));
            }
        }
    }
    if series.iter().map(|s| s.1.len()).max().unwrap_or(0) < 2 {
        return Ok(Vec::new());
    }
    let fig = AccVsSparsity {
        percent: true,
        errors: Vec::new(),
        series,
        title: format!("{split} accuracy against sparsity"),
        y_desc: format!("{split} accuracy (%)"),
    };
    both(dir, "accuracy_vs_sparsity", (1000, 500), &fig)?;
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
        percent: r.metric == "accuracy",
        errors: Vec::new(),
        series,
        title: format!(
            "Sensitivity: {} {} with one layer pruned",
            r.split, r.metric
        ),
        y_desc: format!("{} {}{unit}", r.split, r.metric),
    };
    both(dir, "sensitivity", (1000, 500), &fig)
}

/// `sweep.png/svg`: accuracy against measured sparsity, one line per method, mean over seeds with
/// ± one sample standard deviation as error bars; the dense baseline as a flat line.
pub fn sweep_plot(dir: &Path, groups: &[crate::sweep::Group]) -> Result<(), PlotError> {
    use crate::sweep::mean_sd;
    let mut methods: Vec<&str> = groups.iter().map(|g| g.method.as_str()).collect();
    methods.dedup();
    let mut series = Vec::new();
    let mut errors = Vec::new();
    for m in methods {
        let mut pts: Vec<(f64, f64, f64)> = groups
            .iter()
            .filter(|g| g.method == m && !g.accuracies.is_empty())
            .map(|g| {
                let (a, sd) = mean_sd(&g.accuracies);
                (100.0 * mean_sd(&g.sparsities).0, 100.0 * a, 100.0 * sd)
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if m == "dense" && pts.len() == 1 {
            let (_, a, sd) = pts[0];
            series.push(("dense".to_string(), vec![(0.0, a), (100.0, a)]));
            errors.push(vec![sd, 0.0]);
            continue;
        }
        series.push((m.to_string(), pts.iter().map(|p| (p.0, p.1)).collect()));
        errors.push(pts.iter().map(|p| p.2).collect());
    }
    if series.is_empty() {
        return Ok(());
    }
    let split = groups.first().map_or("test", |g| g.split.as_str());
    let fig = AccVsSparsity {
        percent: true,
        series,
        errors,
        title: format!("{split} accuracy against sparsity (mean ± sd over seeds)"),
        y_desc: format!("{split} accuracy (%)"),
    };
    both(dir, "sweep", (1000, 500), &fig)
}

/// `search.png/svg`: every probe of an accuracy-constrained search (metric against sparsity),
/// the kept ones on their own line, and the dense model's metric less the tolerance.
pub fn search_plot(dir: &Path, search: &SearchReport) -> Result<Vec<(String, String)>, PlotError> {
    let accuracy = search.metric == SearchMetric::ValAccuracy;
    let scale = if accuracy { 100.0 } else { 1.0 };
    let probes: Vec<(f64, f64, bool)> = search
        .probes
        .iter()
        .map(|p| (p.sparsity * 100.0, p.metric * scale, p.kept))
        .collect();
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let mut all: Vec<(f64, f64)> = probes.iter().map(|p| (p.0, p.1)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let kept: Vec<(f64, f64)> = all
        .iter()
        .copied()
        .filter(|q| probes.iter().any(|p| p.2 && p.0 == q.0 && p.1 == q.1))
        .collect();
    let dense = search.dense * scale;
    let tol = search.tolerance * scale;
    let bound = if accuracy { dense - tol } else { dense + tol };
    let mut series = vec![("every probe".to_string(), all)];
    if !kept.is_empty() {
        series.push(("kept".to_string(), kept));
    }
    series.push(("dense".to_string(), vec![(0.0, dense), (100.0, dense)]));
    series.push(("tolerance".to_string(), vec![(0.0, bound), (100.0, bound)]));
    let unit = if accuracy { " (%)" } else { "" };
    let name = search.metric.name();
    let fig = AccVsSparsity {
        percent: accuracy,
        errors: Vec::new(),
        series,
        title: format!("Search: {name} of each probe after fine-tuning"),
        y_desc: format!("{name}{unit}"),
    };
    both(dir, "search", (1000, 500), &fig)?;
    Ok(vec![(
        "search".into(),
        "Accuracy-constrained search: every probe, the kept ones, and the tolerance".into(),
    )])
}
