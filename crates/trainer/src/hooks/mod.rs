//! The trainer's own hooks: metrics logging, the progress bar, the pruner's log, and the best
//! validation epoch.

mod best_valid;
mod metrics_log;
mod progress;
mod pruner_log;

pub use best_valid::BestValid;
pub use metrics_log::MetricsLog;
pub use progress::Progress;
pub use pruner_log::PrunerLog;
