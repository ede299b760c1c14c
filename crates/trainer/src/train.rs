//! The training loop, after Burn's custom-training-loop pattern, with hooks at named points.
//!
//! The loop itself knows nothing of pruning, logging or progress bars: they are hooks
//! (`pruning::TrainHook`). Per step it does forward, backward, hooks `after_backward`, the
//! optimizer step, hooks `after_step`. The loss is summed on the device and read once per epoch,
//! so no step waits for the host.

use std::collections::BTreeMap;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use pruning::sparse::Patterns;
use pruning::{EpochEnd, HookError, Published, Rng, RunEnd, RunStart, StepInfo, TrainHook};

use crate::checkpoint::{Checkpointing, Position};
use crate::config::TrainConfig;
use crate::data::{Dataset, Splits};
use crate::denormals::FlushDenormals;
use crate::early_stop::{EarlyStopping, Verdict};
use crate::eval::{Evaluation, evaluate};
use crate::head::Head;
use crate::metrics_log::MetricsLog;
use crate::model::Net;
use crate::optim::{LrSchedule, build_optimizer};

/// Why training stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} in epoch {epoch} (train.lr = {lr}); try a smaller learning rate, e.g. --set train.lr={suggest}"
    )]
    NonFinite {
        /// Epoch in which it happened (from 1).
        epoch: usize,
        /// The offending value.
        value: f64,
        /// The configured learning rate.
        lr: f64,
        /// A suggested smaller rate.
        suggest: f64,
    },
    /// Ctrl-C or SIGTERM: the run stopped at the end of `epoch` (after writing a checkpoint, when
    /// the config asks for them).
    #[error("interrupted after epoch {epoch}")]
    Interrupted {
        /// The last epoch completed.
        epoch: usize,
    },
    /// Pruning failed (a bad mask, or a criterion without the data it needs).
    #[error("pruning: {0}")]
    Prune(pruning::PruneError),
    /// A checkpoint could not be written, or does not fit this run.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file the run writes as it goes (metrics.csv) could not be written.
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A hook failed.
    #[error("hook `{name}` failed: {cause}")]
    Hook {
        /// The hook's name.
        name: String,
        /// Its error.
        cause: HookError,
    },
}

/// What a finished run returns.
#[derive(Debug)]
pub struct Trained {
    /// The final model (the best one when early stopping kept a checkpoint).
    pub model: Net,
    /// How the run ended.
    pub end: RunEnd,
}

/// Evaluations of the splits that exist, as `(split, evaluation)`.
pub fn evaluate_splits(
    model: &Net,
    splits: &Splits,
    head: Head,
    device: &Device,
    include_train: bool,
) -> Vec<(&'static str, Evaluation)> {
    let mut out = Vec::new();
    if include_train {
        out.push(("train", evaluate(model, &splits.train, head, device)));
    }
    if let Some(v) = &splits.valid {
        out.push(("valid", evaluate(model, v, head, device)));
    }
    if let Some(t) = &splits.test {
        out.push(("test", evaluate(model, t, head, device)));
    }
    out
}

fn metric_rows(evals: &[(&'static str, Evaluation)]) -> Vec<(String, String, f64)> {
    let mut rows = Vec::new();
    for (split, e) in evals {
        rows.push((split.to_string(), "loss".into(), e.loss));
        if let Some(a) = e.accuracy() {
            rows.push((split.to_string(), "accuracy".into(), a));
        }
    }
    rows
}

fn hook_err(hook: &dyn TrainHook<Net>) -> impl FnOnce(HookError) -> TrainError + '_ {
    move |source| TrainError::Hook {
        name: hook.name().to_string(),
        cause: source,
    }
}

/// Samples per batch for `t` on `n` training samples (full batch when unset).
fn batch_size(t: &TrainConfig, n: usize) -> usize {
    t.batch_size.unwrap_or(n).min(n).max(1)
}

/// Optimizer steps per epoch for `t` on `n` training samples: how `train` batches them, and
/// what schedules given in epochs convert with.
pub fn steps_per_epoch(t: &TrainConfig, n: usize) -> usize {
    n.div_ceil(batch_size(t, n))
}

/// Trains `model` on `splits.train`, drawing the order of the samples from `shuffle` (a stream
/// of [`crate::seeds::Seeds`]); `device` must have autodiff enabled.
pub fn train(
    model: Net,
    splits: &Splits,
    head: Head,
    t: &TrainConfig,
    shuffle: Rng,
    device: &Device,
    hooks: &mut [&mut dyn TrainHook<Net>],
) -> Result<Trained, TrainError> {
    let task = Task {
        splits,
        head,
        device,
    };
    train_checkpointed(model, &task, t, shuffle, hooks, None, None)
}

/// What a network trains on and where: the data, the task head and the device (with autodiff).
#[derive(Clone, Copy)]
pub struct Task<'a> {
    /// The data.
    pub splits: &'a Splits,
    /// Outputs, loss and predictions of the task.
    pub head: Head,
    /// The device, with autodiff enabled.
    pub device: &'a Device,
}

/// Everything `hooks` published since they were last asked, in hook order.
fn published(hooks: &mut [&mut dyn TrainHook<Net>]) -> Vec<Published> {
    hooks.iter_mut().flat_map(|h| h.publish()).collect()
}

/// [`train`], logging each epoch (its metrics and what the hooks published) to `log`, writing
/// checkpoints as `ckpt` says and first continuing from its `resume_training`.
pub fn train_checkpointed(
    model: Net,
    task: &Task<'_>,
    t: &TrainConfig,
    shuffle: Rng,
    hooks: &mut [&mut dyn TrainHook<Net>],
    mut log: Option<&mut MetricsLog>,
    mut ckpt: Option<&mut Checkpointing>,
) -> Result<Trained, TrainError> {
    // Subnormal Adam moments would slow every later step ~3× (see `denormals.rs`).
    let _flush = FlushDenormals::enable();
    // The pool's workers poll between the step's parallel products instead of sleeping, where
    // the products run on the pool: on a GPU they would only take cores from its driver
    // (lavapipe's threads, on a machine without one).
    let _awake = pruning::sparse::host_backend(task.device).then(crate::threads::KeepAwake::new);
    let n = task.splits.train.len();
    let n_batches = steps_per_epoch(t, n);
    let mut st = LoopState {
        model,
        optim: build_optimizer(t),
        dropout: Rng::derive(shuffle.clone().next_u64(), "dropout").next_u64(),
        shuffle,
        order: (0..n).collect(),
        step: 0,
        epochs_done: 0,
        early: t.early_stopping.as_ref().map(EarlyStopping::new),
        best: None,
        sparse_steps: BTreeMap::new(),
    };
    let info = RunStart {
        n_epochs: t.epochs,
        n_batches,
    };
    for h in hooks.iter_mut() {
        st.model = h.on_run_start(st.model, &info).map_err(hook_err(*h))?;
    }
    if let Some(c) = ckpt.as_deref_mut()
        && let Some(r) = c.resume_training.take()
    {
        st = st.resume(r, &c.path, hooks, log.as_deref_mut(), n)?;
    }
    let schedule = LrSchedule::new(t, n_batches);
    let mut stopped_early = false;
    for epoch in st.epochs_done + 1..=t.epochs {
        let train_loss;
        (st, train_loss) = st.epoch(task, t, &schedule, hooks, epoch)?;
        st.epochs_done = epoch;
        let (metrics, stop) = st.evaluate_held(task, t, hooks, epoch, train_loss);
        let end = EpochEnd {
            epoch,
            step: st.step,
            metrics,
        };
        st.close_epoch(&end, stop, hooks, log.as_deref_mut(), ckpt.as_deref())?;
        if stop {
            stopped_early = epoch < t.epochs;
            break;
        }
    }
    finish(st, stopped_early, hooks, log)
}

/// The end of a run: the network to hand on (the best one where early stopping kept it),
/// what the run did, told to the hooks, and what they published, logged.
fn finish(
    st: LoopState,
    stopped_early: bool,
    hooks: &mut [&mut dyn TrainHook<Net>],
    log: Option<&mut MetricsLog>,
) -> Result<Trained, TrainError> {
    let mut model = st.best.unwrap_or(st.model);
    // Whoever takes the network next (a later phase, export, compaction) may change its
    // weights' masks: it gets no patterns that could go stale.
    model.sparse = Patterns::new();
    let end = RunEnd {
        epochs_done: st.epochs_done,
        steps_done: st.step,
        stopped_early,
        sparse_steps: (st.sparse_steps.into_iter())
            .map(|(i, n)| (Net::dense_weight_path(i), n))
            .collect(),
    };
    for h in hooks.iter_mut() {
        h.on_run_end(&model, &end).map_err(hook_err(*h))?;
    }
    let rows = published(hooks);
    if let Some(log) = log {
        log.published(&rows).map_err(log.io_error())?;
        log.flush().map_err(log.io_error())?;
    }
    Ok(Trained { model, end })
}

/// A training step's forward pass: dropout layers draw from the key of step `step` of the
/// phase's base `dropout`; the layers with a pattern in `sparse` run as sparse products.
fn forward_step(
    model: &Net,
    x: Tensor<2>,
    dropout: u64,
    step: usize,
    sparse: &Patterns,
) -> Tensor<2> {
    let key = model
        .has_dropout()
        .then(|| Rng::derive(dropout, &format!("step {step}")).next_u64());
    model.forward_step(x, key, sparse)
}

/// The patterns the hooks hold for this step, unless a hook needs the step's dense gradients.
fn step_patterns(
    t: &TrainConfig,
    hooks: &[&mut dyn TrainHook<Net>],
    info: &StepInfo,
    device: &Device,
) -> Patterns {
    if hooks.iter().any(|h| h.needs_dense_gradients(info)) {
        return Patterns::new();
    }
    held_patterns(t, hooks, device)
}

/// The patterns the hooks hold, unless sparse products are off or `device` multiplies densely
/// anyway (wgpu): then no layer is counted as sparse either.
fn held_patterns(t: &TrainConfig, hooks: &[&mut dyn TrainHook<Net>], device: &Device) -> Patterns {
    if !t.sparse_products || !pruning::sparse::host_backend(device) {
        return Patterns::new();
    }
    hooks
        .iter()
        .filter_map(|h| h.sparse_patterns())
        .flat_map(|p| p.iter().map(|(id, p)| (*id, p.clone())))
        .collect()
}

/// The samples `idx` of `train` as one batch, gathered straight into the Vec the tensor takes
/// over: one copy per batch.
fn gather(train: &Dataset, idx: &[usize], device: &Device) -> Tensor<2> {
    let d = train.n_features;
    let mut x = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        x.extend_from_slice(&train.x[i * d..(i + 1) * d]);
    }
    Tensor::from_data(TensorData::new(x, [idx.len(), d]), device)
}

/// `data_loss` plus the penalties `t` asks for: L1 on the weights, L1 on batch norms' γ.
fn penalized(model: &Net, t: &TrainConfig, data_loss: Tensor<1>) -> Tensor<1> {
    let mut loss = data_loss;
    if t.l1 > 0.0 {
        loss = loss + model.weight_l1().mul_scalar(t.l1);
    }
    if let Some(gamma) = (t.l1_gamma > 0.0).then(|| model.gamma_l1()).flatten() {
        loss = loss + gamma.mul_scalar(t.l1_gamma);
    }
    loss
}

/// Everything the loop carries from epoch to epoch, and what a checkpoint restores.
struct LoopState {
    model: Net,
    optim: ModuleOptimizer,
    /// The base of each step's dropout key: derived from the phase's shuffle stream as it
    /// starts, so every phase draws its own masks and a resumed run, which rebuilds that stream
    /// and restores `step`, draws the same ones.
    dropout: u64,
    shuffle: Rng,
    order: Vec<usize>,
    step: usize,
    epochs_done: usize,
    early: Option<EarlyStopping>,
    /// The best model so far, under early stopping.
    best: Option<Net>,
    /// Steps each dense layer ran as a sparse product, by layer index.
    sparse_steps: BTreeMap<usize, usize>,
}

impl LoopState {
    /// The end of an epoch: the hooks see it, the log gets its rows, and a checkpoint is
    /// written when one is due (or Ctrl-C asked to stop: then the loop stops here).
    fn close_epoch(
        &self,
        end: &EpochEnd,
        stop: bool,
        hooks: &mut [&mut dyn TrainHook<Net>],
        mut log: Option<&mut MetricsLog>,
        ckpt: Option<&Checkpointing>,
    ) -> Result<(), TrainError> {
        for h in hooks.iter_mut() {
            h.on_epoch_end(&self.model, end).map_err(hook_err(*h))?;
        }
        let rows = published(hooks);
        if let Some(log) = log.as_deref_mut() {
            log.epoch(&rows, end).map_err(log.io_error())?;
        }
        let epoch = end.epoch;
        let interrupted = crate::interrupt::requested();
        if let Some(c) = ckpt
            && !stop
            && (epoch.is_multiple_of(c.every) || interrupted)
        {
            let metrics_bytes = match log {
                Some(log) => Some(log.position().map_err(log.io_error())?),
                None => None,
            };
            let at = Position {
                epoch,
                step: self.step,
                shuffle: &self.shuffle,
                order: &self.order,
                early: self.early.as_ref(),
                metrics_bytes,
                sparse_steps: &self.sparse_steps,
            };
            c.write(&at, &self.model, self.best.as_ref(), &self.optim, hooks)?;
        }
        if interrupted {
            return Err(TrainError::Interrupted { epoch });
        }
        Ok(())
    }

    /// Continues from checkpoint `r` (read from `path`): weights, optimizer, data order,
    /// position, early stopping and every hook's state.
    fn resume(
        mut self,
        r: crate::checkpoint::LoopCheckpoint,
        path: &std::path::Path,
        hooks: &mut [&mut dyn TrainHook<Net>],
        log: Option<&mut MetricsLog>,
        n: usize,
    ) -> Result<Self, TrainError> {
        let fail = |message: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        r.fits(&self.model, hooks, n).map_err(fail)?;
        // metrics.csv back to where it stood: the epochs after the checkpoint log again.
        match (log, r.metrics_bytes) {
            (Some(log), Some(len)) => log.truncate(len).map_err(|e| fail(e.to_string()))?,
            (None, None) => {}
            _ => {
                return Err(fail(
                    "it was written by a training phase that logged differently: resume with the build and config that wrote it".into(),
                ));
            }
        }
        for (h, (_, state)) in hooks.iter_mut().zip(r.hooks) {
            if let Some(state) = state {
                h.load_state(&self.model, state).map_err(hook_err(*h))?;
            }
        }
        self.model = r.model.restore(self.model);
        self.best = r.best.map(|b| b.restore(self.model.clone()));
        self.optim = self
            .optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(r.optim))
            .map_err(|e| fail(format!("the optimizer state does not load: {e}")))?;
        self.shuffle = Rng::from_state(r.shuffle);
        self.order = r.order;
        self.step = r.step;
        self.epochs_done = r.epoch;
        self.sparse_steps = r.sparse_steps;
        if let (Some(es), Some(state)) = (self.early.as_mut(), r.early) {
            es.restore(state);
        }
        Ok(self)
    }

    /// One pass over the training data; returns the epoch's mean training loss.
    #[allow(
        clippy::expect_used,
        reason = "every epoch has a batch: the data set is checked non-empty when loaded"
    )]
    fn epoch(
        mut self,
        task: &Task<'_>,
        t: &TrainConfig,
        schedule: &LrSchedule,
        hooks: &mut [&mut dyn TrainHook<Net>],
        epoch: usize,
    ) -> Result<(Self, f64), TrainError> {
        let (train, head, device) = (&task.splits.train, task.head, task.device);
        let n = train.len();
        let batch_size = batch_size(t, n);
        let n_batches = steps_per_epoch(t, n);
        if t.shuffle {
            self.shuffle.shuffle(&mut self.order);
        }
        let mut loss_sum: Option<Tensor<1>> = None;
        for (batch_idx, idx) in self.order.chunks(batch_size).enumerate() {
            let lr = schedule.at(self.step);
            let x = gather(train, idx, device);
            let targets = head.targets(train, idx, device);
            let model = self.model;
            let info = StepInfo {
                step: self.step,
                epoch,
                batch_idx,
                n_batches,
                lr,
            };
            let sparse = model.layer_patterns(step_patterns(t, hooks, &info, device));
            for layer in model.sparse_layers(&sparse) {
                *self.sparse_steps.entry(layer).or_default() += 1;
            }
            let out = forward_step(&model, x, self.dropout, self.step, &sparse);
            let data_loss = head.loss(out, targets);
            let loss = penalized(&model, t, data_loss.clone());
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            for h in hooks.iter_mut() {
                if !sparse.is_empty() {
                    h.ran_sparse(&sparse);
                }
                h.after_backward(&model, &mut grads, &info)
                    .map_err(hook_err(*h))?;
            }
            let mut model = self.optim.step(lr, model, grads);
            for h in hooks.iter_mut() {
                model = h.after_step(model, &info).map_err(hook_err(*h))?;
            }
            self.model = model;
            for h in hooks.iter_mut() {
                self.optim = h.edit_optimizer(self.optim, &info).map_err(hook_err(*h))?;
            }
            let weighted = data_loss.detach().mul_scalar(idx.len() as f64);
            loss_sum = Some(match loss_sum {
                Some(s) => s + weighted,
                None => weighted,
            });
            self.step += 1;
        }
        let train_loss = f64::from(
            loss_sum
                .expect("every epoch has a batch")
                .into_scalar::<f32>(),
        ) / n as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::NonFinite {
                epoch,
                value: train_loss,
                lr: t.lr,
                suggest: t.lr / 10.0,
            });
        }
        Ok((self, train_loss))
    }

    /// `evaluate` multiplying sparsely too, with the masks the weights stand under now; the
    /// patterns go again before anything else runs the network (masks may change).
    fn evaluate_held(
        &mut self,
        task: &Task<'_>,
        t: &TrainConfig,
        hooks: &[&mut dyn TrainHook<Net>],
        epoch: usize,
        train_loss: f64,
    ) -> (Vec<(String, String, f64)>, bool) {
        self.model.sparse = held_patterns(t, hooks, task.device);
        let out = self.evaluate(task, t, epoch, train_loss);
        self.model.sparse = Patterns::new();
        out
    }

    /// The metrics of the epoch's end: the training loss, and at evaluation epochs every
    /// split's loss and accuracy. Early stopping sees the validation loss; returns whether it
    /// says stop.
    #[allow(
        clippy::expect_used,
        reason = "train is always evaluated, and early stopping is validated to have a validation split"
    )]
    fn evaluate(
        &mut self,
        task: &Task<'_>,
        t: &TrainConfig,
        epoch: usize,
        train_loss: f64,
    ) -> (Vec<(String, String, f64)>, bool) {
        let mut metrics = vec![("train".to_string(), "loss".to_string(), train_loss)];
        if !epoch.is_multiple_of(t.eval_every) && epoch != t.epochs {
            return (metrics, false);
        }
        let evals = evaluate_splits(&self.model, task.splits, task.head, task.device, true);
        // The train loss logged is the epoch's running mean (what the optimizer saw); from the
        // full pass over the training set only the accuracy is added.
        let (train_eval, held_out) = evals.split_first().expect("train is evaluated");
        if let Some(a) = train_eval.1.accuracy() {
            metrics.push(("train".into(), "accuracy".into(), a));
        }
        metrics.extend(metric_rows(held_out));
        let mut stop = false;
        if let Some(es) = self.early.as_mut() {
            let val = evals
                .iter()
                .find(|(s, _)| *s == "valid")
                .map(|(_, e)| e.loss)
                .expect("early stopping is validated to have a validation split");
            match es.observe(val) {
                Verdict::Improved => self.best = Some(self.model.clone()),
                Verdict::Wait => {}
                Verdict::Stop => stop = true,
            }
        }
        (metrics, stop)
    }
}
