//! Training curves from `metrics.csv`: loss and accuracy per epoch for each split, with the
//! epochs of pruning events (mask updates, pruning rounds, lottery levels) marked.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{FONT, Figure, PALETTE, both, s};

/// Pruning events: a colour no split uses.
const EVENT: RGBColor = RGBColor(148, 103, 189);

struct Curves {
    /// (split, metric) → (epoch, value) points.
    series: BTreeMap<(String, String), Vec<(f64, f64)>>,
    /// Epochs at which masks changed.
    events: Vec<f64>,
}

fn read(dir: &Path) -> Option<Curves> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).ok()?;
    let mut series: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut events = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let [_, epoch, split, metric, value] = f[..] else {
            continue;
        };
        let (Ok(epoch), Ok(value)) = (epoch.parse::<f64>(), value.parse::<f64>()) else {
            continue;
        };
        match (split, metric) {
            ("prune", "sparsity") | ("lottery", "level") | ("lottery", "control") => {
                events.push(epoch)
            }
            (_, "loss" | "accuracy") if ["train", "valid", "test"].contains(&split) => series
                .entry((split.to_string(), metric.to_string()))
                .or_default()
                .push((epoch, value)),
            _ => {}
        }
    }
    events.dedup();
    Some(Curves { series, events })
}

impl Curves {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: &str,
        title: &str,
    ) -> Result<(), String> {
        let points: Vec<&(f64, f64)> = self
            .series
            .iter()
            .filter(|((_, m), _)| m == metric)
            .flat_map(|(_, p)| p)
            .collect();
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let (mut y_min, mut y_max) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        if !y_min.is_finite() {
            (y_min, y_max) = (0.0, 1.0);
        }
        let pad = ((y_max - y_min) * 0.05).max(0.02);
        // A little room on the right, so an event at the last epoch is not hidden by the frame.
        let x_max = x_max * 1.02;
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(metric)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(s)?;
        for &e in &self.events {
            chart
                .draw_series(LineSeries::new(
                    vec![(e, y_min - pad), (e, y_max + pad)],
                    EVENT.stroke_width(2),
                ))
                .map_err(s)?;
        }
        if !self.events.is_empty() {
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                .map_err(s)?
                .label("pruning event")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], EVENT.stroke_width(2))
                });
        }
        for (i, split) in ["train", "valid", "test"].iter().enumerate() {
            let Some(p) = self.series.get(&(split.to_string(), metric.to_string())) else {
                continue;
            };
            let color = PALETTE[i];
            chart
                .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
                .map_err(s)?
                .label(*split)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(s)?;
        Ok(())
    }
}

impl Figure for Curves {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _fine: bool,
    ) -> Result<(), String> {
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        self.panel(&left, "loss", "Loss per epoch")?;
        if self.series.keys().any(|(_, m)| m == "accuracy") {
            self.panel(&right, "accuracy", "Accuracy per epoch")?;
        }
        Ok(())
    }
}

/// `training.png/svg`, when metrics.csv has at least two epochs.
pub fn training_curves(dir: &Path) -> Result<Vec<(String, String)>, PlotError> {
    let Some(c) = read(dir) else {
        return Ok(Vec::new());
    };
    if c.series.values().all(|p| p.len() < 2) {
        return Ok(Vec::new());
    }
    both(dir, "training", (1200, 480), &c)?;
    Ok(vec![(
        "training".into(),
        "Loss and accuracy per epoch (purple lines: pruning events)".into(),
    )])
}
