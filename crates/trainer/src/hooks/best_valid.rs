//! The epoch with the best validation accuracy, and the test accuracy measured at it: what
//! lottery-ticket papers report per level ("early-stopping iteration").

use pruning::{EpochEnd, HookError, HookState, TrainHook};
use serde::Serialize;

use crate::model::Net;

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

impl TrainHook<Net> for BestValid {
    fn name(&self) -> &str {
        "best validation"
    }

    fn on_epoch_end(&mut self, _model: &Net, e: &EpochEnd) -> Result<(), HookError> {
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

    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        let bits = |v: Option<f64>| v.map_or(vec![], |v| vec![v.to_bits()]);
        let mut st = HookState::default();
        st.words.insert("valid".into(), bits(self.valid_accuracy));
        st.words.insert("test".into(), bits(self.test_accuracy));
        st.words
            .insert("at".into(), vec![self.step as u64, self.epoch as u64]);
        Ok(Some(st))
    }

    fn load_state(&mut self, _model: &Net, st: HookState) -> Result<(), HookError> {
        let value = |k: &str| -> Result<Option<f64>, HookError> {
            Ok(st.words(k)?.first().map(|b| f64::from_bits(*b)))
        };
        self.valid_accuracy = value("valid")?;
        self.test_accuracy = value("test")?;
        let &[step, epoch] = st.words("at")? else {
            return Err("hook state `at`: expected a step and an epoch".into());
        };
        (self.step, self.epoch) = (step as usize, epoch as usize);
        Ok(())
    }
}
