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
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        fig.draw(&root, true).map_err(|m| fail(&png, m))?;
        root.present().map_err(|e| fail(&png, e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        fig.draw(&root, false).map_err(|m| fail(&svg, m))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    Ok(())
}

/// Any drawing error as text.
pub fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Colours of the series, in order (matplotlib's tab10, readable on white).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The font of every label.
pub const FONT: &str = "sans-serif";
