//! The progress bar: one tick per epoch with the latest loss and validation accuracy. Hidden
//! when stderr is not a terminal (CI logs, pipes) or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pruning::{EpochEnd, HookError, RunEnd, RunStart, TrainHook};

use crate::model::Net;

/// The indicatif progress bar as a hook.
pub struct Progress {
    bar: ProgressBar,
    visible: bool,
}

impl Progress {
    /// A bar that draws only if `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> Self {
        let visible = visible && std::io::stderr().is_terminal();
        Self {
            bar: ProgressBar::hidden(),
            visible,
        }
    }
}

impl TrainHook<Net> for Progress {
    fn name(&self) -> &str {
        "progress"
    }

    fn on_run_start(&mut self, model: Net, info: &RunStart) -> Result<Net, HookError> {
        if self.visible {
            self.bar = ProgressBar::with_draw_target(
                Some(info.n_epochs as u64),
                ProgressDrawTarget::stderr(),
            );
            self.bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} epoch {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
                )?
                .progress_chars("=> "),
            );
        }
        Ok(model)
    }

    fn on_epoch_end(&mut self, _model: &Net, e: &EpochEnd) -> Result<(), HookError> {
        let mut msg = String::new();
        if let Some(l) = e.get("train", "loss") {
            msg.push_str(&format!("loss {l:.4}"));
        }
        if let Some(a) = e.get("valid", "accuracy") {
            msg.push_str(&format!("  val acc {:.2}%", 100.0 * a));
        }
        self.bar.set_message(msg);
        self.bar.set_position(e.epoch as u64);
        Ok(())
    }

    fn on_run_end(&mut self, _model: &Net, _end: &RunEnd) -> Result<(), HookError> {
        self.bar.finish_and_clear();
        Ok(())
    }
}
