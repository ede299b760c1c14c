//! Every random stream of a run, derived from (config seed, phase, purpose) by name.
//!
//! Why names and not arithmetic: fine-tuning once shuffled seed `s`'s data with `s + round`,
//! the very stream the dense training of seed `s + 1` shuffles with, so the "independent" seeds
//! behind every mean ± sd were coupled. A stream named by its phase and purpose belongs to that
//! phase alone, for every seed, and adding a stream shifts no other.
//!
//! The first training phase keeps the bare names its streams have always had (`init`,
//! `param ids`, `split`, `data`, `shuffle`, `pruner`), so dense training, gradual pruning and
//! RigL/SET give the numbers they gave before streams had phases.

use std::fmt;

use pruning::Rng;

/// The part of a run a stream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The run's first training (dense, gradual, RigL/SET, at-init or a lottery's level 0), and
    /// what is drawn once per run: initial weights, the data split, synthetic data.
    Train,
    /// Static pruning step `round` (1-based; at-init pruning is round 1).
    Prune {
        /// Which step.
        round: usize,
    },
    /// The fine-tuning after pruning step `round`.
    FineTune {
        /// Which step it follows.
        round: usize,
    },
    /// Probe `index` (0-based) of an accuracy-constrained search.
    Probe {
        /// Which probe.
        index: usize,
    },
    /// The training of lottery level `level` (1-based; level 0 is [`Phase::Train`]).
    Level {
        /// Which level.
        level: usize,
    },
    /// The reinit control of lottery level `level`: a fresh network with the level's masks.
    Control {
        /// Which level.
        level: usize,
    },
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Train => write!(f, "train"),
            Phase::Prune { round } => write!(f, "prune-{round}"),
            Phase::FineTune { round } => write!(f, "fine-tune-{round}"),
            Phase::Probe { index } => write!(f, "probe-{index}"),
            Phase::Level { level } => write!(f, "level-{level}"),
            Phase::Control { level } => write!(f, "control-{level}"),
        }
    }
}

/// What a stream is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Initial weights.
    Init,
    /// Parameter ids (a resumed run rebuilds the ids its checkpoint is keyed by).
    ParamIds,
    /// The train/validation/test split.
    Split,
    /// Synthetic data sets.
    Data,
    /// The order of the training samples, epoch after epoch.
    Shuffle,
    /// The random criterion's scores.
    Criterion,
    /// The dynamic pruner's own draws (SET/RigL regrowth).
    Pruner,
}

impl Purpose {
    /// Every purpose, for tests and listings.
    pub const ALL: [Purpose; 7] = [
        Purpose::Init,
        Purpose::ParamIds,
        Purpose::Split,
        Purpose::Data,
        Purpose::Shuffle,
        Purpose::Criterion,
        Purpose::Pruner,
    ];

    fn word(self) -> &'static str {
        match self {
            Purpose::Init => "init",
            Purpose::ParamIds => "param ids",
            Purpose::Split => "split",
            Purpose::Data => "data",
            Purpose::Shuffle => "shuffle",
            Purpose::Criterion => "criterion",
            Purpose::Pruner => "pruner",
        }
    }
}

/// The streams of one run: the config's seed, and a name for every (phase, purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    seed: u64,
}

impl Seeds {
    /// The streams of a run with config seed `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The config's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The name a stream is derived by: `shuffle` in the first training phase,
    /// `fine-tune-2/shuffle` after the second pruning step.
    pub fn name(phase: Phase, purpose: Purpose) -> String {
        match phase {
            Phase::Train => purpose.word().to_string(),
            other => format!("{other}/{}", purpose.word()),
        }
    }

    /// The generator of `purpose` in `phase`.
    pub fn rng(&self, phase: Phase, purpose: Purpose) -> Rng {
        Rng::derive(self.seed, &Self::name(phase, purpose))
    }

    /// A seed for code that takes one (the random criterion, the dynamic pruner, a network
    /// built by [`crate::model::Net::new`]): the first draw of the named stream.
    pub fn derived(&self, phase: Phase, purpose: Purpose) -> u64 {
        self.rng(phase, purpose).next_u64()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn phases() -> Vec<Phase> {
        let mut v = vec![Phase::Train];
        for k in 1..=10 {
            v.push(Phase::Prune { round: k });
            v.push(Phase::FineTune { round: k });
            v.push(Phase::Level { level: k });
            v.push(Phase::Control { level: k });
        }
        v.extend((0..10).map(|index| Phase::Probe { index }));
        v
    }

    #[test]
    fn first_draws_of_every_stream_of_seeds_0_to_9_are_pairwise_different() {
        let mut seen: HashMap<u64, (u64, Phase, Purpose)> = HashMap::new();
        for seed in 0..10 {
            let s = Seeds::new(seed);
            for phase in phases() {
                for purpose in Purpose::ALL {
                    let draw = s.rng(phase, purpose).next_u64();
                    if let Some(other) = seen.insert(draw, (seed, phase, purpose)) {
                        panic!("{other:?} and {:?} start alike", (seed, phase, purpose));
                    }
                }
            }
        }
        assert_eq!(seen.len(), 10 * phases().len() * Purpose::ALL.len());
    }

    #[test]
    fn fine_tuning_never_replays_another_seeds_training() {
        // The bug this module ended: fine-tuning round 1 of seed s used seed s+1's shuffle.
        for seed in 0..10 {
            let tune = Seeds::new(seed).rng(Phase::FineTune { round: 1 }, Purpose::Shuffle);
            let next = Seeds::new(seed + 1).rng(Phase::Train, Purpose::Shuffle);
            assert_ne!(tune.state(), next.state());
        }
    }

    #[test]
    fn the_first_training_phase_keeps_its_historic_names() {
        // Dense results stay comparable across versions only while these names stand.
        let s = Seeds::new(7);
        for (purpose, name) in [
            (Purpose::Init, "init"),
            (Purpose::ParamIds, "param ids"),
            (Purpose::Split, "split"),
            (Purpose::Data, "data"),
            (Purpose::Shuffle, "shuffle"),
            (Purpose::Pruner, "pruner"),
        ] {
            assert_eq!(
                s.rng(Phase::Train, purpose).state(),
                Rng::derive(7, name).state()
            );
        }
        assert_eq!(
            Seeds::name(Phase::FineTune { round: 2 }, Purpose::Shuffle),
            "fine-tune-2/shuffle"
        );
    }
}
