//! Early stopping on validation loss, keeping the best model seen.

use crate::config::EarlyStoppingConfig;

/// What to do after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This evaluation is the best so far: keep this model.
    Improved,
    /// Not better, but patience remains.
    Wait,
    /// `patience` evaluations in a row without improvement: stop.
    Stop,
}

/// Tracks validation loss across evaluations. Improvement means a decrease of more than
/// `min_delta` below the best loss so far.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    best: Option<f64>,
    since_best: usize,
}

impl EarlyStopping {
    /// A tracker for `[train.early_stopping]`.
    pub fn new(config: &EarlyStoppingConfig) -> Self {
        Self {
            patience: config.patience,
            min_delta: config.min_delta,
            best: None,
            since_best: 0,
        }
    }

    /// Best loss so far and evaluations since it: what a checkpoint keeps.
    pub fn state(&self) -> (Option<f64>, usize) {
        (self.best, self.since_best)
    }

    /// Continues from a [`state`](Self::state).
    pub fn restore(&mut self, (best, since_best): (Option<f64>, usize)) {
        self.best = best;
        self.since_best = since_best;
    }

    /// Records one evaluation's validation loss.
    pub fn observe(&mut self, val_loss: f64) -> Verdict {
        if self.best.is_none_or(|b| val_loss < b - self.min_delta) {
            self.best = Some(val_loss);
            self.since_best = 0;
            Verdict::Improved
        } else {
            self.since_best += 1;
            if self.since_best >= self.patience {
                Verdict::Stop
            } else {
                Verdict::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let mut es = EarlyStopping::new(&EarlyStoppingConfig {
            patience: 2,
            min_delta: 0.01,
        });
        use Verdict::*;
        let seen: Vec<Verdict> = [1.0, 0.9, 0.895, 0.95, 0.85, 0.86, 0.849]
            .iter()
            .map(|&l| es.observe(l))
            .collect();
        // 0.895 is within min_delta of 0.9: no improvement; 0.849 is not 0.01 below 0.85.
        assert_eq!(
            seen,
            vec![Improved, Improved, Wait, Stop, Improved, Wait, Stop]
        );
    }
}
