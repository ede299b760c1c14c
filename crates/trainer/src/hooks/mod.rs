//! The trainer's own hooks: metrics logging and the progress bar.

mod metrics_log;
mod progress;

pub use metrics_log::MetricsLog;
pub use progress::Progress;
