//! Writing one figure as PNG and SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;

/// Something drawable on any plotters backend. `fine` is true for the bitmap (PNG), where a
/// heat map can afford one pixel per weight; SVG gets a coarser grid.
pub trait Figure {
    /// Draws onto `root`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fine: bool,
    ) -> Result<(), String>;
}

/// Draws `fig` at `size` into `dir/stem.png` and `dir/stem.svg`.
pub fn both(dir: &Path, stem: &str, size: (u32, u32), fig: &impl Figure) -> Result<(), PlotError> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let fail = |path: &Path, message: String| PlotError {
        path: path.to_path_buf(),
        message,
    };
    // Drawn under temporary names and renamed when complete (crate::atomic): a failure leaves
    // the previous picture or none, never half of one.
    let (png_tmp, svg_tmp) = (
        crate::atomic::temp_path(&png),
        crate::atomic::temp_path(&svg),
    );
    let drawn = (|| {
        let root = BitMapBackend::new(&png_tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        fig.draw(&root, true).map_err(|m| fail(&png, m))?;
        root.present().map_err(|e| fail(&png, e.to_string()))
    })();
    commit(&png_tmp, &png, drawn)?;
    let drawn = (|| {
        let root = SVGBackend::new(&svg_tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        fig.draw(&root, false).map_err(|m| fail(&svg, m))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))
    })();
    commit(&svg_tmp, &svg, drawn)
}

/// Renames a complete drawing over its final name, or removes the partial one.
fn commit(tmp: &Path, path: &Path, drawn: Result<(), PlotError>) -> Result<(), PlotError> {
    match drawn {
        Ok(()) => crate::atomic::finish(tmp, path, Ok(())).map_err(|e| PlotError {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// Any drawing error as text.
pub fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Colours of the series, in order (matplotlib's tab10, readable on white): ten before a colour
/// repeats (a sensitivity plot has one series per layer).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The font of every label.
pub const FONT: &str = "sans-serif";

/// Tick positions for an axis of whole numbers (epochs) from 0 to `max`: steps of 1, 2 or 5
/// × 10^k, never below 1, at most `most` ticks. Plotters' own ticks on a float axis fall
/// between whole numbers on short runs, and rounded they read `0 0 0 1 1 1`.
pub fn integer_ticks(max: f64, most: usize) -> Vec<f64> {
    let max = max.max(1.0).floor();
    let most = most.max(2) as f64;
    let mut step = 1.0;
    'search: for exp in 0..19 {
        for m in [1.0, 2.0, 5.0] {
            step = m * 10f64.powi(exp);
            if (max / step).floor() + 1.0 <= most {
                break 'search;
            }
        }
    }
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= max)
        .collect()
}

/// The range of a percentage axis showing data between `lo` and `hi` (in %): a little room
/// around the data, at least `min_span` points tall (a constant accuracy gets a readable axis,
/// not 99.98–100.02), and never beyond 0–100 (an accuracy axis that reaches 102.5 % shows
/// values that cannot exist).
pub fn percent_range(lo: f64, hi: f64, min_span: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.clamp(0.0, 100.0), hi.clamp(0.0, 100.0))
    } else {
        (0.0, 100.0)
    };
    let pad = (hi - lo) * 0.08;
    let (mut a, mut b) = (lo - pad, hi + pad);
    if b - a < min_span {
        let mid = (a + b) / 2.0;
        (a, b) = (mid - min_span / 2.0, mid + min_span / 2.0);
    }
    if b > 100.0 {
        (a, b) = (a - (b - 100.0), 100.0);
    }
    if a < 0.0 {
        (a, b) = (0.0, (b - a).min(100.0));
    }
    (a, b)
}

/// The range of a value axis (a loss, an error) showing data between `lo` and `hi`: `pad` of
/// the data's span around it (at least 5 % of its size, so a flat line is a flat line), and
/// never below 0 for data that is not.
pub fn value_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * pad).max(hi.abs() * 0.05).max(1e-6);
    let bottom = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    (bottom, hi + pad)
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// A line.
    Line(RGBColor),
    /// A line with a dot (series drawn with points).
    LineDot(RGBColor),
}

/// Width of the legend column to the right of a chart.
pub const LEGEND_WIDTH: u32 = 200;

/// Splits `area` into the chart's part and a legend column on its right: legends never sit on
/// the data, however the curves run.
pub fn with_legend_column<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let w = area.dim_in_pixel().0;
    area.split_horizontally(w.saturating_sub(LEGEND_WIDTH))
}

/// Draws `entries` top-down into `area` (from [`with_legend_column`]), starting at `top`
/// pixels, level with the chart's plotting area.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Mark)],
    top: i32,
) -> Result<(), String> {
    for (i, (label, mark)) in entries.iter().enumerate() {
        let y = top + 24 * i as i32;
        let color = match mark {
            Mark::Line(c) | Mark::LineDot(c) => *c,
        };
        area.draw(&PathElement::new(
            vec![(8, y), (36, y)],
            color.stroke_width(2),
        ))
        .map_err(s)?;
        if let Mark::LineDot(_) = mark {
            area.draw(&Circle::new((22, y), 4, color.filled()))
                .map_err(s)?;
        }
        let style =
            (FONT, 15)
                .into_font()
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ));
        area.draw(&Text::new(label.clone(), (44, y), style))
            .map_err(s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ticks_are_whole_distinct_and_few() {
        assert_eq!(integer_ticks(2.0, 6), vec![0.0, 1.0, 2.0]);
        assert_eq!(integer_ticks(1.0, 6), vec![0.0, 1.0]);
        assert_eq!(integer_ticks(0.3, 6), vec![0.0, 1.0]);
        assert_eq!(integer_ticks(7.0, 6), vec![0.0, 2.0, 4.0, 6.0]);
        assert_eq!(
            integer_ticks(1000.0, 6),
            vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
        );
        assert_eq!(integer_ticks(13.0, 6), vec![0.0, 5.0, 10.0]);
    }

    #[test]
    fn value_axes_pad_the_data_and_stay_non_negative_for_non_negative_data() {
        assert_eq!(value_range(0.0, 1.0, 0.1), (0.0, 1.1));
        let (a, b) = value_range(0.5, 0.5, 0.1);
        assert!(a < 0.5 && b > 0.5 && a > 0.0, "{a}..{b}");
        assert_eq!(value_range(-1.0, 1.0, 0.1), (-1.2, 1.2));
        assert_eq!(
            value_range(f64::INFINITY, f64::NEG_INFINITY, 0.1),
            (0.0, 1.0)
        );
    }

    #[test]
    fn percent_axes_stay_within_0_and_100_and_give_a_constant_room() {
        assert_eq!(percent_range(100.0, 100.0, 10.0), (90.0, 100.0));
        assert_eq!(percent_range(0.0, 0.0, 10.0), (0.0, 10.0));
        assert_eq!(percent_range(50.0, 50.0, 10.0), (45.0, 55.0));
        let (a, b) = percent_range(60.0, 99.0, 5.0);
        assert!(a < 60.0 && b == 100.0, "{a}..{b}");
        let (a, b) = percent_range(3.0, 99.9, 5.0);
        assert!(a == 0.0 && b == 100.0, "{a}..{b}");
    }
}
