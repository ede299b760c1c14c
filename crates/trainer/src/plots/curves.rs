//! Training curves from `metrics.csv`: loss and accuracy per epoch for each split, with the
//! epochs of pruning events (mask updates, pruning rounds, lottery levels) marked.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{
    FONT, Figure, Mark, PALETTE, both, integer_ticks, legend, percent_range, s, value_range,
    with_legend_column,
};

/// Pruning events: a colour no split uses.
const EVENT: RGBColor = RGBColor(148, 103, 189);

struct Curves {
    /// (split, metric) → (epoch, value) points.
    series: BTreeMap<(String, String), Vec<(f64, f64)>>,
    /// Epochs at which masks changed.
    events: Vec<f64>,
}

fn read(dir: &Path) -> Result<Curves, PlotError> {
    let path = dir.join("metrics.csv");
    let rows = report::metrics::read(&path).map_err(|e| PlotError {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut series: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut events = Vec::new();
    for r in rows {
        let epoch = r.epoch as f64;
        match (r.split.as_str(), r.metric.as_str()) {
            ("prune", "sparsity") | ("lottery", "level") | ("lottery", "control") => {
                events.push(epoch)
            }
            (split, "loss" | "accuracy") if ["train", "valid", "test"].contains(&split) => series
                .entry((r.split.clone(), r.metric.clone()))
                .or_default()
                .push((epoch, r.value)),
            _ => {}
        }
    }
    events.dedup();
    Ok(Curves { series, events })
}

impl Curves {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: &str,
        title: &str,
    ) -> Result<(), String> {
        // Accuracy is drawn in percent on an axis that stays within 0–100 %.
        let accuracy = metric == "accuracy";
        let scale = if accuracy { 100.0 } else { 1.0 };
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .filter(|((_, m), _)| m == metric)
            .flat_map(|(_, p)| p.iter().map(|&(x, y)| (x, y * scale)))
            .collect();
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (y_min, y_max) = if accuracy {
            percent_range(lo, hi, 10.0)
        } else {
            value_range(lo, hi, 0.05)
        };
        let (plot, key) = with_legend_column(area);
        // Whole epochs only, on an integer axis with ticks we choose: a 2-epoch run gets 0, 1,
        // 2, never 0.0, 0.2, … rounded to `0 0 0 1 1 1`.
        let x_end = x_max.round() as i32;
        let ticks: Vec<i32> = integer_ticks(x_max, 6)
            .into_iter()
            .map(|t| t as i32)
            .collect();
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d((0..x_end).with_key_points(ticks), y_min..y_max)
            .map_err(s)?;
        let y_desc = if accuracy { "accuracy (%)" } else { metric };
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(s)?;
        let mut entries = Vec::new();
        for &e in &self.events {
            chart
                .draw_series(LineSeries::new(
                    vec![(e.round() as i32, y_min), (e.round() as i32, y_max)],
                    EVENT.stroke_width(2),
                ))
                .map_err(s)?;
        }
        for (i, split) in ["train", "valid", "test"].iter().enumerate() {
            let Some(p) = self.series.get(&(split.to_string(), metric.to_string())) else {
                continue;
            };
            let color = PALETTE[i];
            chart
                .draw_series(LineSeries::new(
                    p.iter().map(|&(x, y)| (x.round() as i32, y * scale)),
                    color.stroke_width(2),
                ))
                .map_err(s)?;
            entries.push((split.to_string(), Mark::Line(color)));
        }
        if !self.events.is_empty() {
            entries.push(("pruning event".to_string(), Mark::Line(EVENT)));
        }
        legend(&key, &entries, 60)
    }
}

impl Figure for Curves {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _fine: bool,
    ) -> Result<(), String> {
        // Regression runs have no accuracy: their loss gets the whole width.
        if !self.series.keys().any(|(_, m)| m == "accuracy") {
            return self.panel(root, "loss", "Loss per epoch");
        }
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        self.panel(&left, "loss", "Loss per epoch")?;
        self.panel(&right, "accuracy", "Accuracy per epoch")
    }
}

/// `training.png/svg`, when metrics.csv has at least two epochs.
pub fn training_curves(dir: &Path) -> Result<Vec<(String, String)>, PlotError> {
    let c = read(dir)?;
    if c.series.values().all(|p| p.len() < 2) {
        return Ok(Vec::new());
    }
    both(dir, "training", (1400, 480), &c)?;
    let caption = if c.events.is_empty() {
        "Loss and accuracy per epoch"
    } else {
        "Loss and accuracy per epoch (purple lines: pruning events)"
    };
    Ok(vec![("training".into(), caption.into())])
}
