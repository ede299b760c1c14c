//! Lopper's reports as types: `summary.json`, `pruning.json` (with its lottery levels, search
//! probes and dynamic-pruning events), `trainer prune`'s report, `metrics.csv` and a sweep's
//! `results.csv`.
//!
//! Why a crate of its own: the trainer writes these files and the CLI summary, `index.html`,
//! the plots, sweeps and `cargo xtask` read them back. Reading through the writer's own types
//! means a renamed or missing field is an error that names the file and the field, never a
//! quiet 0, and xtask reads them without building Burn.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod eval;
pub mod file;
pub mod lottery;
pub mod metrics;
pub mod prune_file;
pub mod pruning;
pub mod results;
pub mod search;
pub mod summary;
pub mod table;

pub use eval::{Evals, SplitEval};
pub use file::{ReportError, load, to_json};
pub use lottery::{Level, LevelResult};
pub use prune_file::{FileLayer, FileReport, FileTotals};
pub use pruning::{
    Compact, Event, EventLayer, LayerCounts, ModeReport, PruningReport, Round, Rounds, Sizes,
    Totals,
};
pub use results::ResultRow;
pub use search::{Probe, SearchMetric, SearchReport, SearchRule};
pub use summary::{DeviceInfo, Finished, Outcome, Stopped, Summary, Versions};
