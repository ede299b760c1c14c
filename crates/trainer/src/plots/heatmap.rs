//! Each layer's weights as a picture, before and after pruning (the write-up's figure).
//!
//! Rows are output units, columns inputs (PyTorch's `[out, in]`). Positive weights are red,
//! negative blue, brighter with |w| (square-root scale, so small weights still show); a weight
//! that is exactly zero — pruned — is black, which no weight colour comes close to. The PNG has
//! one pixel per weight; the SVG averages blocks so it stays small (a block is black only when
//! every weight in it is zero).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::draw::{FONT, Figure, both, s};
use crate::inference::{HostLayer, HostMlp};

/// Colour of a weight relative to the layer's largest |w|.
fn colour(v: f32, max: f32) -> RGBColor {
    if v == 0.0 {
        return RGBColor(0, 0, 0);
    }
    let t = (v.abs() / max.max(1e-12)).min(1.0).sqrt();
    // From a pale tint (small) to a saturated colour (large); never dark, so black means zero.
    let lerp = |a: f32, b: f32| (a + (b - a) * t) as u8;
    if v > 0.0 {
        RGBColor(lerp(255.0, 200.0), lerp(225.0, 20.0), lerp(215.0, 20.0))
    } else {
        RGBColor(lerp(215.0, 20.0), lerp(225.0, 60.0), lerp(255.0, 200.0))
    }
}

struct Pair<'a> {
    name: String,
    before: Option<&'a HostLayer>,
    after: &'a HostLayer,
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    layer: &HostLayer,
    title: &str,
    fine: bool,
) -> Result<(), String> {
    let (rows, cols) = (layer.n_out, layer.n_in);
    let max = layer.w.iter().fold(0f32, |m, v| m.max(v.abs()));
    // Block size: 1 for PNG (one pixel per weight when it fits), coarser for SVG.
    let limit = if fine { 800 } else { 120 };
    let step = rows.max(cols).div_ceil(limit).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0..cols, 0..rows)
        .map_err(s)?;
    // No more tick labels than fit: a 10-unit layer drawn 40 pixels tall gets a few, not ten
    // on top of each other.
    let (w, h) = area.dim_in_pixel();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels((w as usize / 60).clamp(2, 10))
        .y_labels((h as usize / 40).clamp(2, 10))
        .x_desc("input")
        .y_desc("unit")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(s)?;
    let mut cells = Vec::new();
    for r0 in (0..rows).step_by(step) {
        for c0 in (0..cols).step_by(step) {
            let (r1, c1) = ((r0 + step).min(rows), (c0 + step).min(cols));
            let (mut sum, mut n, mut nonzero) = (0f32, 0, 0);
            for r in r0..r1 {
                for c in c0..c1 {
                    let v = layer.w[r * cols + c];
                    sum += v;
                    n += 1;
                    nonzero += usize::from(v != 0.0);
                }
            }
            let v = if nonzero == 0 { 0.0 } else { sum / n as f32 };
            // A partly pruned block keeps a visible colour even if its mean is tiny.
            let v = if nonzero > 0 && v == 0.0 {
                f32::MIN_POSITIVE
            } else {
                v
            };
            cells.push(Rectangle::new(
                [(c0, r0), (c1, r1)],
                colour(v, max).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(s)?;
    Ok(())
}

impl Figure for Pair<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fine: bool,
    ) -> Result<(), String> {
        let zero = |l: &HostLayer| {
            100.0 * l.w.iter().filter(|v| **v == 0.0).count() as f64 / l.w.len().max(1) as f64
        };
        let root = root
            .titled(
                &format!(
                    "{}: {} units × {} inputs (black = exactly zero)",
                    self.name, self.after.n_out, self.after.n_in
                ),
                (FONT, 20),
            )
            .map_err(s)?;
        match self.before {
            Some(b) => {
                let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
                panel(
                    &left,
                    b,
                    &format!("before pruning: {:.1}% zero", zero(b)),
                    fine,
                )?;
                panel(
                    &right,
                    self.after,
                    &format!("after: {:.1}% zero", zero(self.after)),
                    fine,
                )
            }
            None => panel(
                &root,
                self.after,
                &format!("{:.1}% zero", zero(self.after)),
                fine,
            ),
        }
    }
}

/// `weights_layers.N.png/svg` for every layer.
pub fn weight_maps(
    dir: &Path,
    before: Option<&HostMlp>,
    after: &HostMlp,
) -> Result<Vec<(String, String)>, PlotError> {
    let named: Vec<(String, HostLayer)> = after
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("layers.{i}.weight"), l.clone()))
        .collect();
    maps(dir, before.map(|b| b.layers.as_slice()), &named)
}

/// `weights_<name>.png/svg` for every layer of a layer-list network: a convolution's kernel
/// `[out, in, kh, kw]` drawn as its filters (rows) by input channel × kernel position
/// (columns), so a pruned filter is a black row.
pub fn filter_maps(
    dir: &Path,
    layers: &[(String, HostLayer)],
) -> Result<Vec<(String, String)>, PlotError> {
    maps(dir, None, layers)
}

fn maps(
    dir: &Path,
    before: Option<&[HostLayer]>,
    after: &[(String, HostLayer)],
) -> Result<Vec<(String, String)>, PlotError> {
    let mut out = Vec::new();
    for (i, (name, layer)) in after.iter().enumerate() {
        let name = name.clone();
        let b = before
            .and_then(|m| m.get(i))
            .filter(|b| b.w.len() == layer.w.len());
        // At least one pixel per weight, more for small layers, so each weight can be seen.
        let scale = (400 / layer.n_in.max(layer.n_out)).clamp(1, 40);
        let panels = if b.is_some() { 2 } else { 1 };
        let width = (panels * (layer.n_in.min(800) * scale + 90)) as u32;
        let height = (layer.n_out.min(600) * scale + 130) as u32;
        let stem = format!("weights_{name}");
        both(
            dir,
            &stem,
            (width.max(500), height),
            &Pair {
                name: name.clone(),
                before: b,
                after: layer,
            },
        )?;
        out.push((
            stem,
            format!("{name}: red positive, blue negative, black exactly zero (pruned)"),
        ));
    }
    Ok(out)
}
