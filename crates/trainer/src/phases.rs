//! A run as a list of typed phases, and what every phase shares.
//!
//! A config compiles into a list of [`PhaseKind`]s ([`plan`]): every mode — static, iterative,
//! at-init, gradual, lottery, RigL, SET, search — is a list, not a function of its own, and
//! one runner ([`crate::runner`]) executes any list. Every phase reads what the run shares from
//! one [`RunContext`] (config, data, head, device, random streams) and logs through one
//! [`Sinks`]. A new mode is a new list, plus at most a new phase kind.

use std::collections::BTreeMap;

use burn::module::ParamId;
use pruning::importance::GradStats;
use pruning::{MaskSet, ParamInfo, PruneError, TrainHook};

use crate::checkpoint::Checkpointing;
use crate::config::{Config, ModeConfig, PruningConfig, PruningMode};
use crate::eval::Evaluation;
use crate::hooks::Progress;
use crate::metrics_log::MetricsLog;
use crate::model::Net;
use crate::prune;
use crate::seeds::{Phase, Purpose, Seeds};
use crate::train::{Task, TrainError, Trained, evaluate_splits, train_checkpointed};

/// How a training phase trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Training {
    /// Nothing held: the dense network (no pruning, or before static pruning).
    Dense,
    /// With the pruner changing the masks as it goes: gradual, RigL, SET.
    Dynamic,
    /// With the masks chosen at initialisation held.
    Held,
    /// The lottery's dense level 0, keeping the weights to rewind to.
    LotteryDense,
}

/// One phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhaseKind {
    /// The run's first training (`[train]`, the first training phase's random streams).
    Train(Training),
    /// Evaluates the initial network and prunes it (pruning at initialisation).
    PruneAtInit,
    /// Evaluates the trained network before pruning and keeps its weights (static pruning).
    Baseline,
    /// Static pruning step `round`.
    Prune {
        /// 1-based.
        round: usize,
    },
    /// Fine-tuning after static step `round`, with its masks held.
    FineTune {
        /// 1-based.
        round: usize,
    },
    /// Lottery `level`: prune the last ticket, rewind the survivors.
    Rewind {
        /// 1-based (0 is the dense level).
        level: usize,
    },
    /// Trains `level`'s ticket with its masks held.
    Ticket {
        /// 1-based.
        level: usize,
    },
    /// Trains `level`'s masks on a fresh initialisation: the reinit control.
    Control {
        /// 1-based.
        level: usize,
    },
    /// Search probe `index`: prune the trained network to a probed value, fine-tune, judge.
    Probe {
        /// 0-based.
        index: usize,
    },
    /// The search's verdict: the highest kept probe becomes the network.
    Choose,
}

/// The phases `cfg` runs. `from` (`--from`: an earlier run's model comes trained) skips static
/// pruning's first training.
pub(crate) fn plan(cfg: &Config, from: bool) -> Vec<PhaseKind> {
    use PhaseKind::*;
    let Some(p) = &cfg.pruning else {
        return vec![Train(Training::Dense)];
    };
    match p.mode() {
        PruningMode::Gradual | PruningMode::Rigl | PruningMode::Set => {
            vec![Train(Training::Dynamic)]
        }
        PruningMode::AtInit => vec![PruneAtInit, Train(Training::Held)],
        PruningMode::Lottery => {
            let control = match &p.mode {
                ModeConfig::Lottery(l) => l.reinit_control.unwrap_or(true),
                _ => false,
            };
            let mut phases = vec![Train(Training::LotteryDense)];
            for level in 1..=crate::lottery::level_rules(p).len() {
                phases.extend([Rewind { level }, Ticket { level }]);
                if control {
                    phases.push(Control { level });
                }
            }
            phases
        }
        PruningMode::Static => {
            let mut phases = if from {
                vec![]
            } else {
                vec![Train(Training::Dense)]
            };
            phases.push(Baseline);
            if let Some(search) = &p.search() {
                phases.extend((0..search.probes).map(|index| Probe { index }));
                phases.push(Choose);
            } else {
                for round in 1..=p.rounds() {
                    phases.push(Prune { round });
                    if p.fine_tune_epochs() > 0 {
                        phases.push(FineTune { round });
                    }
                }
            }
            phases
        }
    }
}

/// What every phase of a run shares.
pub(crate) struct RunContext<'a> {
    /// The resolved config.
    pub cfg: &'a Config,
    /// The data, the head and the device networks train on.
    pub task: Task<'a>,
    /// The run's random streams.
    pub seeds: Seeds,
}

impl RunContext<'_> {
    /// The run's first training phase (`[train]`, shuffled by the first phase's stream), with
    /// `hooks`, logged to `log`, checkpointed as `ckpt` says.
    pub fn train(
        &self,
        model: Net,
        hooks: &mut [&mut dyn TrainHook<Net>],
        log: &mut MetricsLog,
        ckpt: Option<&mut Checkpointing>,
    ) -> Result<Trained, TrainError> {
        let order = self.seeds.rng(Phase::Train, Purpose::Shuffle);
        let t = &self.cfg.train;
        train_checkpointed(model, &self.task, t, order, hooks, Some(log), ckpt)
    }
}

/// Where phases report: metrics.csv and the progress bar.
pub(crate) struct Sinks<'a> {
    /// metrics.csv.
    pub metrics: &'a mut MetricsLog,
    /// The progress bar.
    pub progress: &'a mut Progress,
}

/// A run's pruning setup: the context, the `[pruning]` table and the masked parameters.
pub(crate) struct Setup<'a> {
    /// What the run shares.
    pub ctx: &'a RunContext<'a>,
    /// The `[pruning]` table.
    pub p: &'a PruningConfig,
    /// The parameters masks apply to.
    pub params: &'a [ParamInfo],
}

/// Evaluations as reports record them (`correct` only where `with_correct`: the final ones).
pub(crate) fn evals_report(
    evals: &[(&'static str, Evaluation)],
    with_correct: bool,
) -> report::Evals {
    report::Evals(
        evals
            .iter()
            .map(|(split, e)| {
                let eval = report::SplitEval {
                    n: e.n,
                    loss: e.loss,
                    accuracy: e.accuracy(),
                    correct: e.correct.filter(|_| with_correct),
                };
                (split.to_string(), eval)
            })
            .collect(),
    )
}

/// Logs `evals` as `{phase}_loss` / `{phase}_accuracy` rows after what was logged before.
pub(crate) fn log_evals(
    metrics: &mut MetricsLog,
    evals: &[(&'static str, Evaluation)],
    phase: &str,
) -> Result<(), TrainError> {
    let (step, epoch) = metrics.offset();
    for (split, e) in evals {
        metrics
            .row(step, epoch, split, &format!("{phase}_loss"), e.loss)
            .map_err(metrics.io_error())?;
        if let Some(a) = e.accuracy() {
            metrics
                .row(step, epoch, split, &format!("{phase}_accuracy"), a)
                .map_err(metrics.io_error())?;
        }
    }
    metrics.flush().map_err(metrics.io_error())
}

impl Setup<'_> {
    /// Gradient statistics of `m` on the training data, when the criterion needs them.
    pub fn grads_for(&self, m: &Net) -> Option<BTreeMap<ParamId, GradStats>> {
        let (p, task) = (self.p, &self.ctx.task);
        let n = task.splits.train.len();
        let batch = self.ctx.cfg.train.batch_size.unwrap_or(n).min(n);
        p.rule.criterion.needs_gradients().then(|| {
            prune::calibrate(
                m,
                &task.splits.train,
                task.head,
                batch,
                p.rule.calibration_batches,
                self.params,
                task.device,
            )
        })
    }

    /// Pruning step `round` of `rule` (the config's `[pruning]`, or a level's or a probe's
    /// variant of it) from `masks`, with the step's own random stream.
    pub fn prune(
        &self,
        model: Net,
        masks: &MaskSet,
        rule: &PruningConfig,
        round: usize,
        grads: Option<&BTreeMap<ParamId, GradStats>>,
    ) -> Result<(Net, MaskSet, Vec<String>), TrainError> {
        let seed = self
            .ctx
            .seeds
            .derived(Phase::Prune { round }, Purpose::Criterion);
        prune::prune_step(model, self.params, masks, rule, seed, grads).map_err(TrainError::Prune)
    }

    /// Fine-tunes `model` with `masks` held, shuffling with `phase`'s stream; logged to `log`
    /// where given (a search's probes are not).
    pub fn fine_tune(
        &self,
        (model, masks): (Net, &MaskSet),
        phase: Phase,
        progress: &mut Progress,
        log: Option<&mut MetricsLog>,
        ckpt: Option<&mut Checkpointing>,
    ) -> Result<Trained, TrainError> {
        let tune = prune::fine_tune_config(&self.ctx.cfg.train, self.p);
        let shuffle = self.ctx.seeds.rng(phase, Purpose::Shuffle);
        let mut hold = pruning::MaskHook::new(self.params, masks).map_err(TrainError::Prune)?;
        let mut hooks: [&mut dyn TrainHook<Net>; 2] = [&mut hold, progress];
        let task = &self.ctx.task;
        train_checkpointed(model, task, &tune, shuffle, &mut hooks, log, ckpt)
    }

    /// Every split's evaluation of `m`.
    pub fn evaluate(&self, m: &Net) -> Vec<(&'static str, Evaluation)> {
        let t = &self.ctx.task;
        evaluate_splits(m, t.splits, t.head, t.device, true)
    }
}

/// All-ones masks for `params`, with an earlier run's masks carried over where given.
pub(crate) fn initial_masks(
    params: &[ParamInfo],
    earlier: Option<MaskSet>,
) -> Result<MaskSet, TrainError> {
    let mut masks = MaskSet::ones(params.iter().map(|q| (q.path.as_str(), q.shape.as_slice())));
    for (name, m) in earlier.map(|e| e.masks).unwrap_or_default() {
        if let Some(slot) = masks.masks.get_mut(&name) {
            if slot.shape != m.shape {
                return Err(TrainError::Prune(PruneError::ShapeMismatch {
                    name,
                    expected: slot.shape.clone(),
                    got: m.shape,
                }));
            }
            *slot = m;
        }
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::PhaseKind::*;
    use super::*;

    fn phases(pruning: &str, from: bool) -> Vec<PhaseKind> {
        let text = format!(
            "[data]\nname = \"moons\"\nvalidation_fraction = 0.2\n[pruning]\nsparsity = 0.5\n{pruning}"
        );
        let path = std::path::Path::new("t.toml");
        let cfg = crate::config::parse_config(&text, path, &[])
            .unwrap()
            .config;
        plan(&cfg, from)
    }

    #[test]
    fn every_mode_is_a_list_of_phases() {
        let dense = crate::config::parse_config(
            "[data]\nname = \"xor\"\n",
            std::path::Path::new("t.toml"),
            &[],
        )
        .unwrap();
        assert_eq!(plan(&dense.config, false), [Train(Training::Dense)]);
        let rounds = "rounds = 2\nfine_tune_epochs = 3\n";
        let statik = [
            Train(Training::Dense),
            Baseline,
            Prune { round: 1 },
            FineTune { round: 1 },
            Prune { round: 2 },
            FineTune { round: 2 },
        ];
        assert_eq!(phases(rounds, false), statik);
        // --from: the earlier run's model comes trained.
        assert_eq!(phases(rounds, true), statik[1..]);
        assert_eq!(
            phases("rounds = 2\n", false),
            [
                Train(Training::Dense),
                Baseline,
                Prune { round: 1 },
                Prune { round: 2 }
            ]
        );
        let search = "fine_tune_epochs = 1\nsearch = { metric = \"val_loss\", tolerance = 0.1, probes = 3 }\n";
        let probes = (0..3).map(|index| Probe { index });
        let expected: Vec<PhaseKind> = [Train(Training::Dense), Baseline]
            .into_iter()
            .chain(probes)
            .chain([Choose])
            .collect();
        assert_eq!(phases(search, false), expected);
        assert_eq!(
            phases("mode = \"at-init\"\n", false),
            [PruneAtInit, Train(Training::Held)]
        );
        let gradual = "mode = \"gradual\"\nend_epoch = 2\nevery_steps = 1\n";
        for mode in [gradual, "mode = \"rigl\"\n", "mode = \"set\"\n"] {
            let p = phases(mode, false);
            assert_eq!(p, [Train(Training::Dynamic)], "{mode}");
        }
        let lottery = phases("mode = \"lottery\"\nrounds = 2\n", false);
        let level = |level| [Rewind { level }, Ticket { level }, Control { level }];
        let expected: Vec<PhaseKind> = std::iter::once(Train(Training::LotteryDense))
            .chain(level(1))
            .chain(level(2))
            .collect();
        assert_eq!(lottery, expected);
        let no_control = phases("mode = \"lottery\"\nreinit_control = false\n", false);
        assert_eq!(
            no_control,
            [
                Train(Training::LotteryDense),
                Rewind { level: 1 },
                Ticket { level: 1 }
            ]
        );
    }
}
