//! The phases of static pruning and pruning at initialisation: the evaluation before pruning,
//! pruning steps, fine-tuning, and training with masks chosen at initialisation held.

use pruning::{Snapshot, TrainHook};
use report::Round;

use crate::checkpoint::Checkpointing;
use crate::model::Net;
use crate::phases::{Setup, Sinks, evals_report, log_evals};
use crate::runner::State;
use crate::seeds::Phase;
use crate::train::TrainError;

/// Static pruning starts from the trained network: it is evaluated (`before_pruning` rows)
/// and its weights kept, as the ones pruning started from (and the search's probes start
/// from the network itself).
pub(crate) fn baseline(
    s: &Setup<'_>,
    mut state: State,
    sinks: &mut Sinks<'_>,
) -> Result<State, TrainError> {
    state.before = Some(Snapshot::take(&state.model, 0));
    let before = s.evaluate(&state.model);
    log_evals(sinks.metrics, &before, "before_pruning")?;
    state.record.before_pruning = Some(evals_report(&before, false));
    Ok(state)
}

/// Static step `round`: prune, evaluate (`after_pruning` rows and the sparsity).
pub(crate) fn prune(
    s: &Setup<'_>,
    mut state: State,
    round: usize,
    sinks: &mut Sinks<'_>,
) -> Result<State, TrainError> {
    let grads = s.grads_for(&state.model);
    let (model, masks, warnings) =
        s.prune(state.model, &state.masks, s.p, round, grads.as_ref())?;
    let after = s.evaluate(&model);
    log_evals(sinks.metrics, &after, "after_pruning")?;
    let (step, epoch) = sinks.metrics.offset();
    sinks
        .metrics
        .row(step, epoch, "prune", "sparsity", masks.sparsity())
        .map_err(sinks.metrics.io_error())?;
    let record = &mut state.record;
    record.rounds.push(Round {
        round,
        sparsity: masks.sparsity(),
        after_pruning: Some(evals_report(&after, false)),
        after_fine_tune: None,
        after_training: None,
    });
    let prefixed = warnings.iter().map(|w| format!("round {round}: {w}"));
    record.warnings.extend(prefixed);
    (state.model, state.masks) = (model, masks);
    Ok(state)
}

/// Fine-tuning after step `round`, masks held; evaluated after (`after_fine_tune` rows).
pub(crate) fn fine_tune(
    s: &Setup<'_>,
    mut state: State,
    round: usize,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let phase = Phase::FineTune { round };
    let net = (state.model, &state.masks);
    let t = s.fine_tune(net, phase, sinks.progress, Some(&mut *sinks.metrics), ckpt)?;
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    let tuned = s.evaluate(&state.model);
    log_evals(sinks.metrics, &tuned, "after_fine_tune")?;
    if let Some(r) = state.record.rounds.last_mut() {
        r.after_fine_tune = Some(evals_report(&tuned, false));
    }
    Ok(state)
}

/// At-init: the initial network evaluated and pruned (round 1).
pub(crate) fn prune_at_init(s: &Setup<'_>, mut state: State) -> Result<State, TrainError> {
    let before = s.evaluate(&state.model);
    let grads = s.grads_for(&state.model);
    let (model, masks, warnings) = s.prune(state.model, &state.masks, s.p, 1, grads.as_ref())?;
    let record = &mut state.record;
    record.before_pruning = Some(evals_report(&before, false));
    record.rounds.push(Round {
        round: 1,
        sparsity: masks.sparsity(),
        after_pruning: None,
        after_fine_tune: None,
        after_training: None,
    });
    record.warnings.extend(warnings);
    (state.model, state.masks) = (model, masks);
    Ok(state)
}

/// At-init: the pruned network trained with its masks held, evaluated after.
pub(crate) fn train_held(
    s: &Setup<'_>,
    mut state: State,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let mut hold = pruning::MaskHook::new(s.params, &state.masks).map_err(TrainError::Prune)?;
    let mut hooks: [&mut dyn TrainHook<Net>; 2] = [&mut hold, sinks.progress];
    let t = s.ctx.train(state.model, &mut hooks, sinks.metrics, ckpt)?;
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    let after = s.evaluate(&state.model);
    if let Some(r) = state.record.rounds.last_mut() {
        r.after_training = Some(evals_report(&after, false));
    }
    Ok(state)
}
