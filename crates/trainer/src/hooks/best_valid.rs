//! The epoch with the best validation accuracy, and the test accuracy measured at it: what
//! lottery-ticket papers report per level ("early-stopping iteration").

use pruning::{EpochEnd, HookError, TrainHook};
use serde::Serialize;

use crate::model::Mlp;

/// Best validation accuracy seen so far (ties keep the earlier epoch).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BestValid {
    /// Best validation accuracy.
    pub valid_accuracy: Option<f64>,
    /// Optimizer steps completed at that epoch.
    pub step: usize,
    /// The epoch.
    pub epoch: usize,
    /// Test accuracy at that epoch.
    pub test_accuracy: Option<f64>,
}

impl TrainHook<Mlp> for BestValid {
    fn name(&self) -> &str {
        "best validation"
    }

    fn on_epoch_end(&mut self, _model: &Mlp, e: &EpochEnd) -> Result<(), HookError> {
        if let Some(v) = e.get("valid", "accuracy")
            && self.valid_accuracy.is_none_or(|best| v > best)
        {
            self.valid_accuracy = Some(v);
            self.step = e.step;
            self.epoch = e.epoch;
            self.test_accuracy = e.get("test", "accuracy");
        }
        Ok(())
    }
}
