//! The one runner: executes a run's phase list ([`crate::phases::plan`]) over one state, with a
//! checkpoint at the start of every phase after the first (and every N epochs inside training
//! phases), so `--resume` continues a run killed in any phase.
//!
//! What passes from phase to phase is a [`State`]: the network, its masks, the weights to
//! rewind to, the search's best probe, and the report so far ([`Record`]). It is what a
//! phase-boundary checkpoint holds; the runner numbers metrics.csv's steps and epochs across
//! phases from it.

use pruning::{MaskSet, ParamInfo, PruneError, RunEnd, Snapshot, TrainHook};
use report::{ModeReport, PruningReport, Round, Rounds};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Bag, Checkpointing, put_masks, put_snapshot, take_masks, take_snapshot};
use crate::config::PruningMode;
use crate::inference::{HostMlp, compact, sizes_of};
use crate::metrics_log::MetricsLog;
use crate::model::Net;
use crate::phases::{
    PhaseKind, RunContext, Setup, Sinks, Training, evals_report, initial_masks, plan,
};
use crate::prune;
use crate::search::SearchProgress;
use crate::train::{TrainError, evaluate_splits};

/// The report so far, and where metrics.csv stands: the serializable part of a [`State`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Evaluations before pruning (static, at-init).
    pub before_pruning: Option<report::Evals>,
    /// Static and at-init rounds.
    pub rounds: Vec<Round>,
    /// Lottery levels.
    pub levels: Vec<report::Level>,
    /// The search, while it runs.
    pub search: Option<SearchProgress>,
    /// Gradual, RigL and SET mask updates.
    pub events: Vec<report::Event>,
    /// Warnings for pruning.json.
    pub warnings: Vec<String>,
    /// How the training that ends the run ended.
    pub end: RunEnd,
    /// Steps and epochs logged by finished phases: the next phase's rows follow them.
    pub offset: (usize, usize),
    /// metrics.csv's length at the phase boundary.
    pub metrics_bytes: u64,
}

/// What passes from phase to phase.
pub(crate) struct State {
    /// The network.
    pub model: Net,
    /// Its masks (none in a run that does not prune).
    pub masks: MaskSet,
    /// The lottery's rewind point.
    pub anchor: Option<Snapshot>,
    /// The weights pruning started from (trained for static pruning, initial otherwise).
    pub before: Option<Snapshot>,
    /// The search's highest kept probe so far: its network and masks.
    pub best: Option<(Snapshot, MaskSet)>,
    /// The report so far.
    pub record: Record,
}

impl State {
    /// A training phase that ends the run (so far) ended as `end`: the run's end, and the next
    /// phase's rows follow its own.
    pub fn ended(&mut self, end: RunEnd, metrics: &mut MetricsLog) {
        self.advance(&end, metrics);
        self.record.end = end;
    }

    /// A training phase's rows start after the earlier phases'; it ended as `end`.
    pub fn advance(&mut self, end: &RunEnd, metrics: &mut MetricsLog) {
        let (s, e) = self.record.offset;
        self.record.offset = (s + end.steps_done, e + end.epochs_done);
        metrics.set_offset(self.record.offset.0, self.record.offset.1);
    }

    /// The state as checkpoint entries, with metrics.csv at `metrics_bytes`.
    fn to_bag(&self, metrics_bytes: u64) -> Result<Bag, String> {
        let mut bag = Bag::default();
        put_snapshot(&mut bag, "model.", &Snapshot::take(&self.model, 0));
        put_masks(&mut bag, "masks.", &self.masks);
        if let Some(a) = &self.anchor {
            put_snapshot(&mut bag, "anchor.", a);
        }
        if let Some(b) = &self.before {
            put_snapshot(&mut bag, "before.", b);
        }
        if let Some((b, m)) = &self.best {
            put_snapshot(&mut bag, "best.", b);
            put_masks(&mut bag, "best_masks.", m);
        }
        let record = Record {
            metrics_bytes,
            ..self.record.clone()
        };
        let json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
        bag.text.insert("record".into(), json);
        Ok(bag)
    }

    /// The state [`State::to_bag`] wrote, restored into `model` (rebuilt from the config: the
    /// same parameters, with the same ids).
    fn from_bag(mut bag: Bag, model: Net) -> Result<Self, String> {
        let snapshot = |bag: &mut Bag, prefix: &str| {
            let key = format!("{prefix}step");
            bag.text
                .contains_key(&key)
                .then(|| take_snapshot(bag, prefix))
                .transpose()
        };
        let weights = take_snapshot(&mut bag, "model.")?;
        if let Some(p) = pruning::param_infos(&model)
            .iter()
            .find(|p| weights.values().get(&p.id).map(Vec::len) != Some(p.shape.iter().product()))
        {
            return Err(format!(
                "it holds no fitting values for this network's `{}`: it was written for another network or by another build; start the run again",
                p.path
            ));
        }
        let record: Record = serde_json::from_str(bag.get("record")?)
            .map_err(|e| format!("its record does not parse: {e}"))?;
        let best = match snapshot(&mut bag, "best.")? {
            Some(b) => Some((b, take_masks(&mut bag, "best_masks.")?)),
            None => None,
        };
        Ok(Self {
            model: weights.restore(model),
            masks: take_masks(&mut bag, "masks.")?,
            anchor: snapshot(&mut bag, "anchor.")?,
            before: snapshot(&mut bag, "before.")?,
            best,
            record,
        })
    }
}

/// The model after all phases, how the last training phase ended, and the pruning outcome.
pub(crate) struct Phased {
    pub model: Net,
    pub end: RunEnd,
    pub masks: Option<MaskSet>,
    pub pruning: Option<PruningReport>,
    /// The compacted network, for runs that prune whole neurons.
    pub compact: Option<HostMlp>,
    /// The compacted layer-list network, for runs that prune whole channels or neurons.
    pub compact_net: Option<Net>,
    /// The weights pruning started from (trained for static pruning, initial otherwise).
    pub before_weights: Option<HostMlp>,
}

/// Runs the phases `ctx`'s config compiles to from `model`. `from` (`--from`) takes `model`
/// as trained, with `start_masks` (an earlier run's masks, which stay pruned).
pub(crate) fn run(
    model: Net,
    ctx: &RunContext<'_>,
    (from, start_masks): (bool, Option<MaskSet>),
    sinks: &mut Sinks<'_>,
    mut ckpt: Option<&mut Checkpointing>,
) -> Result<Phased, TrainError> {
    let phases = plan(ctx.cfg, from);
    let params = match &ctx.cfg.pruning {
        Some(p) => prune::masked_params(&model, p).map_err(TrainError::Prune)?,
        None => Vec::new(),
    };
    let setup = ctx.cfg.pruning.as_ref().map(|p| Setup {
        ctx,
        p,
        params: &params,
    });
    let state = start(model, &params, start_masks, ctx)?;
    let (mut state, first) = resume(state, ckpt.as_deref_mut(), phases.len(), sinks.metrics)?;
    for (i, &kind) in phases.iter().enumerate().skip(first) {
        if i > first {
            boundary(i, &state, sinks.metrics, ckpt.as_deref_mut())?;
        }
        let (s0, e0) = state.record.offset;
        sinks.metrics.set_offset(s0, e0);
        state = match &setup {
            Some(s) => run_phase(kind, s, state, sinks, ckpt.as_deref_mut())?,
            None => dense(ctx, state, sinks, ckpt.as_deref_mut())?,
        };
    }
    match &setup {
        Some(s) => finish(s, state),
        None => Ok(Phased {
            model: state.model,
            end: state.record.end,
            masks: None,
            pruning: None,
            compact: None,
            compact_net: None,
            before_weights: None,
        }),
    }
}

/// The state before the first phase: the initial network with all-ones masks (or an earlier
/// run's), and — except for static pruning, which starts from the trained network — the
/// initial weights as the ones pruning started from.
fn start(
    model: Net,
    params: &[ParamInfo],
    start_masks: Option<MaskSet>,
    ctx: &RunContext<'_>,
) -> Result<State, TrainError> {
    let statik = ctx
        .cfg
        .pruning
        .as_ref()
        .is_some_and(|p| p.mode() == PruningMode::Static);
    let before = (ctx.cfg.pruning.is_some() && !statik).then(|| Snapshot::take(&model, 0));
    Ok(State {
        masks: initial_masks(params, start_masks)?,
        model,
        anchor: None,
        before,
        best: None,
        record: Record::default(),
    })
}

/// Takes the checkpoint to resume from, if any: the state at its phase's start (metrics.csv
/// cut back to that point) and the phase to continue with; its training part goes to the loop.
fn resume(
    state: State,
    ckpt: Option<&mut Checkpointing>,
    n_phases: usize,
    metrics: &mut MetricsLog,
) -> Result<(State, usize), TrainError> {
    let Some(c) = ckpt else {
        return Ok((state, 0));
    };
    let Some(r) = c.resume.take() else {
        return Ok((state, 0));
    };
    let fail = |message: String| TrainError::Checkpoint {
        path: c.path.clone(),
        message,
    };
    if r.phase >= n_phases {
        return Err(fail(format!(
            "it was written in phase {} of a run with more phases than this one's {n_phases}: resume with the build and config that wrote it",
            r.phase + 1
        )));
    }
    let state = if r.phase == 0 {
        state
    } else {
        let s = State::from_bag(r.state.clone(), state.model).map_err(fail)?;
        // Inside a training phase the loop's checkpoint cuts metrics.csv (further on).
        if r.training.is_none() {
            metrics
                .truncate(s.record.metrics_bytes)
                .map_err(|e| fail(e.to_string()))?;
        }
        s
    };
    c.phase = (r.phase, r.state);
    c.resume_training = r.training;
    Ok((state, r.phase))
}

/// The start of phase `i`: a checkpoint that resumes there, and a stop if Ctrl-C was pressed.
fn boundary(
    i: usize,
    state: &State,
    metrics: &mut MetricsLog,
    ckpt: Option<&mut Checkpointing>,
) -> Result<(), TrainError> {
    if let Some(c) = ckpt {
        let bytes = metrics.position().map_err(metrics.io_error())?;
        let bag = state
            .to_bag(bytes)
            .map_err(|message| TrainError::Checkpoint {
                path: c.path.clone(),
                message,
            })?;
        c.begin_phase(i, bag)?;
    }
    if crate::interrupt::requested() {
        return Err(TrainError::Interrupted {
            epoch: state.record.offset.1,
        });
    }
    Ok(())
}

fn run_phase(
    kind: PhaseKind,
    s: &Setup<'_>,
    state: State,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    match kind {
        PhaseKind::Train(Training::Dense) => dense(s.ctx, state, sinks, ckpt),
        PhaseKind::Train(Training::Dynamic) => crate::dynamic::train(s, state, sinks, ckpt),
        PhaseKind::Train(Training::Held) => crate::rounds::train_held(s, state, sinks, ckpt),
        PhaseKind::Train(Training::LotteryDense) => crate::lottery::dense(s, state, sinks, ckpt),
        PhaseKind::PruneAtInit => crate::rounds::prune_at_init(s, state),
        PhaseKind::Baseline => crate::rounds::baseline(s, state, sinks),
        PhaseKind::Prune { round } => crate::rounds::prune(s, state, round, sinks),
        PhaseKind::FineTune { round } => crate::rounds::fine_tune(s, state, round, sinks, ckpt),
        PhaseKind::Rewind { level } => crate::lottery::rewind(s, state, level, sinks),
        PhaseKind::Ticket { level } => crate::lottery::ticket(s, state, level, sinks, ckpt),
        PhaseKind::Control { level } => crate::lottery::control(s, state, level, sinks, ckpt),
        PhaseKind::Probe { index } => crate::search::probe(s, state, index, sinks, ckpt),
        PhaseKind::Choose => crate::search::choose(s, state, sinks),
    }
}

/// The dense network trained, nothing held.
fn dense(
    ctx: &RunContext<'_>,
    mut state: State,
    sinks: &mut Sinks<'_>,
    ckpt: Option<&mut Checkpointing>,
) -> Result<State, TrainError> {
    let mut hooks: [&mut dyn TrainHook<Net>; 1] = [sinks.progress];
    let t = ctx.train(state.model, &mut hooks, sinks.metrics, ckpt)?;
    state.model = t.model;
    state.ended(t.end, sinks.metrics);
    Ok(state)
}

/// pruning.json's account of the layers the last training phase ran sparse.
fn sparse_training(end: &pruning::RunEnd) -> report::pruning::SparseTraining {
    report::pruning::SparseTraining {
        steps: end.steps_done,
        layers: end
            .sparse_steps
            .iter()
            .map(|(name, n)| report::pruning::SparseLayer {
                name: name.clone(),
                sparse_steps: *n,
            })
            .collect(),
    }
}

/// What the mode's phases recorded, as pruning.json's mode section.
fn mode_report(mode: PruningMode, record: Record) -> Result<ModeReport, TrainError> {
    let rounds = |search| Rounds {
        before_pruning: record.before_pruning.clone().unwrap_or_default(),
        rounds: record.rounds.clone(),
        search,
    };
    let events = || report::pruning::Events {
        events: record.events.clone(),
    };
    Ok(match mode {
        PruningMode::Static => {
            let search = record.search.as_ref().map(SearchProgress::report);
            ModeReport::Static(rounds(search))
        }
        PruningMode::AtInit => ModeReport::AtInit(rounds(None)),
        PruningMode::Gradual => ModeReport::Gradual(events()),
        PruningMode::Rigl => ModeReport::Rigl(events()),
        PruningMode::Set => ModeReport::Set(events()),
        PruningMode::Lottery => ModeReport::Lottery(report::pruning::Levels {
            levels: record.levels,
        }),
    })
}

/// [`finish`] for a layer-list network: its counts come from `counts::net_counts`, its
/// compaction from `compact_net`; there is no host copy (weight maps).
fn finish_layer_list(
    s: &Setup<'_>,
    model: Net,
    masks: MaskSet,
    record: Record,
) -> Result<Phased, TrainError> {
    let task = &s.ctx.task;
    let small = crate::compact_net::compact_net(&model, task.device);
    let mut c = crate::counts::net_counts(&model, &masks, &small.model);
    let mut warnings = record.warnings.clone();
    warnings.extend(small.notes);
    let compact_net = if matches!(s.p.granularity(), pruning::Granularity::Neuron(_)) {
        let evals = evaluate_splits(&small.model, task.splits, task.head, task.device, true);
        c.compact.final_evals = Some(evals_report(&evals, false));
        Some(small.model)
    } else {
        None
    };
    let config = serde_json::to_value(s.p).map_err(|e| {
        TrainError::Prune(PruneError::Plan(format!(
            "the [pruning] table as JSON: {e}"
        )))
    })?;
    let end = record.end.clone();
    let report = PruningReport {
        config,
        mode: mode_report(s.p.mode(), record)?,
        layers: c.layers,
        total: c.total,
        sizes: c.sizes,
        compact: c.compact,
        warnings,
        sparse_training: sparse_training(&end),
    };
    Ok(Phased {
        model,
        end,
        masks: Some(masks),
        pruning: Some(report),
        compact: None,
        compact_net,
        before_weights: None,
    })
}

/// The saved model made exactly sparse, and the report of what pruning removed and bought.
fn finish(s: &Setup<'_>, state: State) -> Result<Phased, TrainError> {
    let (p, task) = (s.p, &s.ctx.task);
    let before_weights = state
        .before
        .as_ref()
        .filter(|_| state.model.is_mlp())
        .map(|b| HostMlp::from_mlp(&b.restore(state.model.clone())));
    // The saved model is exactly sparse: one last zeroing by the masks.
    let model =
        pruning::apply_masks(state.model, s.params, &state.masks).map_err(TrainError::Prune)?;
    if !model.is_mlp() {
        return finish_layer_list(s, model, state.masks, state.record);
    }
    let (layers, total) = prune::layer_report(&model, &state.masks);
    // What pruning buys: bytes in each storage format, and the compacted network.
    let host = HostMlp::from_mlp(&model);
    let compacted = compact(&host);
    let sizes = sizes_of(&host, &compacted);
    let mut compact_report = report::Compact {
        widths: compacted.model.widths(),
        dense_macs_per_sample: host.macs(),
        compact_macs_per_sample: compacted.model.macs(),
        final_evals: None,
    };
    let compact_model = if matches!(p.granularity(), pruning::Granularity::Neuron(_)) {
        let small = compacted.model.to_mlp(task.device);
        let evals = evaluate_splits(&small, task.splits, task.head, task.device, true);
        compact_report.final_evals = Some(evals_report(&evals, false));
        Some(compacted.model)
    } else {
        None
    };
    let config = serde_json::to_value(p).map_err(|e| {
        TrainError::Prune(PruneError::Plan(format!(
            "the [pruning] table as JSON: {e}"
        )))
    })?;
    let end = state.record.end.clone();
    let warnings = state.record.warnings.clone();
    let report = PruningReport {
        config,
        mode: mode_report(p.mode(), state.record)?,
        layers,
        total,
        sizes,
        compact: compact_report,
        warnings,
        sparse_training: sparse_training(&end),
    };
    Ok(Phased {
        model,
        end,
        masks: Some(state.masks),
        pruning: Some(report),
        compact: compact_model,
        compact_net: None,
        before_weights,
    })
}
