//! Pictures in the run folder: each layer's weights before and after pruning, per-layer
//! sparsity, training curves with pruning events, accuracy against sparsity, and an
//! `index.html` that shows them with the summary table. Every plot is written as PNG and SVG.

mod curves;
mod draw;
mod heatmap;
mod html;
mod kernels;
mod sparsity;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use html::write_index;
pub use sparsity::{sensitivity_plot, sweep_plot};

use crate::inference::{HostLayer, HostMlp};

/// The weights a run's pictures show.
pub enum Weights<'a> {
    /// An MLP's layers, before pruning (when it pruned) and after.
    Mlp {
        /// The weights pruning started from.
        before: Option<&'a HostMlp>,
        /// The final weights.
        after: &'a HostMlp,
    },
    /// A layer-list network's layers by path, `[out, in·kh·kw]` (PyTorch's layout).
    Layers(&'a [(String, HostLayer)]),
}

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {}: {message}", path.display())]
pub struct PlotError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// Writes every plot that applies to the run in `dir`; returns the file stems written (each as
/// `.png` and `.svg`), in display order, with a caption.
pub fn write_all(
    dir: &Path,
    weights: Weights<'_>,
    pruning: Option<&report::PruningReport>,
    gray_kernels: bool,
) -> Result<Vec<(String, String)>, PlotError> {
    let mut written = Vec::new();
    // A metrics.csv that cannot be read costs the curves, not every other figure.
    match curves::training_curves(dir) {
        Ok(w) => written.extend(w),
        Err(e) => eprintln!("warning: {e}"),
    }
    if let Some(p) = pruning {
        written.extend(sparsity::layer_bars(dir, p)?);
        written.extend(sparsity::accuracy_vs_sparsity(dir, p)?);
        if let Some(search) = p.search() {
            written.extend(sparsity::search_plot(dir, search)?);
        }
    }
    match weights {
        Weights::Mlp { before, after } => {
            written.extend(heatmap::weight_maps(dir, before, after)?);
            if gray_kernels {
                written.extend(kernels::gray_kernels(dir, after)?);
            }
        }
        Weights::Layers(layers) => written.extend(heatmap::filter_maps(dir, layers)?),
    }
    Ok(written)
}
