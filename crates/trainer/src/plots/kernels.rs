//! The write-up's own pictures: each layer's kernel as a gray image, in Keras's layout `[in, out]`
//! (a row per input, a column per unit, row 0 at the top), black at the layer's smallest weight
//! and white at its largest — what `plt.imshow(kernel, cmap="gray")` shows. Drawn when the config
//! asks for them (`[plots] gray_kernels = true`), beside the usual red/blue weight maps, whose
//! black means "exactly zero" instead.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{FONT, Figure, both, integer_ticks, s};
use crate::inference::{HostLayer, HostMlp};

/// Kernels small enough get their values written into the cells.
const LABEL_CELLS: usize = 64;

struct Kernels<'a> {
    layers: &'a [HostLayer],
}

/// Gray level of `v` on the layer's own min..max scale (matplotlib's default normalisation; a
/// constant kernel is black, as there).
fn gray(v: f32, min: f32, max: f32) -> RGBColor {
    let t = if max > min {
        ((v - min) / (max - min)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let g = (t * 255.0).round() as u8;
    RGBColor(g, g, g)
}

fn cell_px(layer: &HostLayer) -> usize {
    (360 / layer.n_in.max(layer.n_out)).clamp(1, 90)
}

/// A panel's pixels: cells of [`cell_px`] plus room for axes and caption.
fn panel_size(layer: &HostLayer) -> (u32, u32) {
    let cell = cell_px(layer);
    let w = (layer.n_out.min(1000) * cell + 140).max(320);
    let h = layer.n_in.min(1000) * cell + 150;
    (w as u32, h as u32)
}

/// The layer's smallest and largest weight: the ends of its own gray scale.
fn value_range(layer: &HostLayer) -> (f32, f32) {
    layer
        .w
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        })
}

/// Tick positions for the columns (x) and rows (y) of a `rows` × `cols` kernel, so that labelled
/// indices start at 0 (the top row, the left column) and step evenly.
fn axis_ticks(rows: usize, cols: usize) -> (Vec<i32>, Vec<i32>) {
    // Cell (r, c) spans [2c, 2c + 2] × [2(rows-1-r), 2(rows-r)] on integer axes (row 0 at the
    // top, as an image); ticks sit on the odd centres and are labelled with the index.
    // Integer axes with ticks we choose draw every index once, a single row or column too.
    let step_of = |n: usize| {
        integer_ticks(n.saturating_sub(1) as f64, 12)
            .get(1)
            .map_or(1, |t| *t as usize)
    };
    let x_ticks: Vec<i32> = (0..cols)
        .step_by(step_of(cols))
        .map(|c| 2 * c as i32 + 1)
        .collect();
    let y_ticks: Vec<i32> = (0..rows)
        .step_by(step_of(rows))
        .map(|r| 2 * (rows - 1 - r) as i32 + 1)
        .collect();
    (x_ticks, y_ticks)
}

/// The gray cells, each the mean of a `step` × `step` block, so that a large kernel stays within
/// the panel's pixel budget.
fn cell_rects(
    layer: &HostLayer,
    step: usize,
    (min, max): (f32, f32),
) -> Vec<Rectangle<(i32, i32)>> {
    let (rows, cols) = (layer.n_in, layer.n_out);
    let at = |r: usize, c: usize| layer.w[c * layer.n_in + r];
    let mut cells = Vec::new();
    for r0 in (0..rows).step_by(step) {
        for c0 in (0..cols).step_by(step) {
            let (r1, c1) = ((r0 + step).min(rows), (c0 + step).min(cols));
            let mut sum = 0f32;
            for r in r0..r1 {
                for c in c0..c1 {
                    sum += at(r, c);
                }
            }
            let v = sum / ((r1 - r0) * (c1 - c0)) as f32;
            let y = |r: usize| 2 * (rows - r) as i32;
            cells.push(Rectangle::new(
                [(2 * c0 as i32, y(r1)), (2 * c1 as i32, y(r0))],
                gray(v, min, max).filled(),
            ));
        }
    }
    cells
}

/// Each weight written in its cell, for kernels small enough to read.
fn value_labels(
    layer: &HostLayer,
    (min, max): (f32, f32),
) -> Vec<Text<'static, (i32, i32), String>> {
    let (rows, cols) = (layer.n_in, layer.n_out);
    let at = |r: usize, c: usize| layer.w[c * layer.n_in + r];
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| {
            let v = at(r, c);
            // Dark text on light cells and light text on dark ones.
            let light = gray(v, min, max).0 > 127;
            let colour = if light { BLACK } else { WHITE };
            let style =
                (FONT, 14)
                    .into_font()
                    .color(&colour)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
            Text::new(
                format!("{v:.2}"),
                (2 * c as i32 + 1, 2 * (rows - 1 - r) as i32 + 1),
                style,
            )
        })
        .collect()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    index: usize,
    layer: &HostLayer,
    fine: bool,
) -> Result<(), String> {
    // Keras's kernel: rows are inputs, columns units.
    let (rows, cols) = (layer.n_in, layer.n_out);
    let (min, max) = value_range(layer);
    let limit = if fine { 1000 } else { 150 };
    let step = rows.max(cols).div_ceil(limit).max(1);
    let (x_ticks, y_ticks) = axis_ticks(rows, cols);
    let (w, h) = (2 * cols as i32, 2 * rows as i32);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("kernel {} ({rows} × {cols})", index + 1),
            (FONT, 18),
        )
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(
            (0..w).with_key_points(x_ticks),
            (0..h).with_key_points(y_ticks),
        )
        .map_err(s)?;
    let x_index = |v: &i32| format!("{}", (v - 1) / 2);
    let y_index = move |v: &i32| format!("{}", rows as i32 - 1 - (v - 1) / 2);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(format!("unit (min {min:.3} black, max {max:.3} white)"))
        .y_desc("input")
        .x_label_formatter(&x_index)
        .y_label_formatter(&y_index)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(s)?;
    chart
        .draw_series(cell_rects(layer, step, (min, max)))
        .map_err(s)?;
    if rows * cols <= LABEL_CELLS {
        chart
            .draw_series(value_labels(layer, (min, max)))
            .map_err(s)?;
    }
    Ok(())
}

impl Figure for Kernels<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fine: bool,
    ) -> Result<(), String> {
        let mut breaks = Vec::new();
        let mut x = 0;
        for l in self.layers {
            x += panel_size(l).0 as i32;
            breaks.push(x);
        }
        breaks.pop();
        let areas = root.split_by_breakpoints(breaks, Vec::<i32>::new());
        for (i, (layer, area)) in self.layers.iter().zip(&areas).enumerate() {
            panel(area, i, layer, fine)?;
        }
        Ok(())
    }
}

/// `kernels.png/svg`: every layer's kernel as a gray image, side by side.
pub fn gray_kernels(dir: &Path, model: &HostMlp) -> Result<Vec<(String, String)>, PlotError> {
    let (mut width, mut height) = (0u32, 0u32);
    for l in &model.layers {
        let (w, h) = panel_size(l);
        width += w;
        height = height.max(h);
    }
    both(
        dir,
        "kernels",
        (width, height),
        &Kernels {
            layers: &model.layers,
        },
    )?;
    Ok(vec![(
        "kernels".into(),
        "The write-up's view: each kernel in Keras's [in, out] layout, gray from its smallest \
         weight (black) to its largest (white)"
            .into(),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_spans_black_to_white_over_the_layers_own_range() {
        assert_eq!(gray(-2.0, -2.0, 3.0), RGBColor(0, 0, 0));
        assert_eq!(gray(3.0, -2.0, 3.0), RGBColor(255, 255, 255));
        assert_eq!(gray(0.5, -2.0, 3.0), RGBColor(128, 128, 128));
        assert_eq!(gray(1.0, 1.0, 1.0), RGBColor(0, 0, 0));
    }
}
