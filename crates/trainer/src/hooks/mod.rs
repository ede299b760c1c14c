//! The trainer's own hooks: the progress bar and the best validation epoch. (What hooks
//! publish goes to the run's log, [`crate::metrics_log::MetricsLog`], which the loop writes:
//! no hook wraps another.)

mod best_valid;
mod progress;

pub use best_valid::BestValid;
pub use progress::Progress;
