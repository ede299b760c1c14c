//! The training loop, after Burn's custom-training-loop pattern, with hooks at named points.
//!
//! The loop itself knows nothing of pruning, logging or progress bars: they are hooks
//! (`pruning::TrainHook`). Per step it does forward, backward, hooks `after_backward`, the
//! optimizer step, hooks `after_step`. The loss is summed on the device and read once per epoch,
//! so no step waits for the host.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use pruning::{EpochEnd, HookError, Rng, RunEnd, RunStart, StepInfo, TrainHook};

use crate::checkpoint::{Checkpointing, Position};
use crate::config::TrainConfig;
use crate::data::Splits;
use crate::denormals::FlushDenormals;
use crate::early_stop::{EarlyStopping, Verdict};
use crate::eval::{Evaluation, evaluate};
use crate::head::Head;
use crate::model::Mlp;
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
    pub model: Mlp,
    /// How the run ended.
    pub end: RunEnd,
}

/// Evaluations of the splits that exist, as `(split, evaluation)`.
pub fn evaluate_splits(
    model: &Mlp,
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

fn hook_err(hook: &dyn TrainHook<Mlp>) -> impl FnOnce(HookError) -> TrainError + '_ {
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
    model: Mlp,
    splits: &Splits,
    head: Head,
    t: &TrainConfig,
    shuffle: Rng,
    device: &Device,
    hooks: &mut [&mut dyn TrainHook<Mlp>],
) -> Result<Trained, TrainError> {
    let task = Task {
        splits,
        head,
        device,
    };
    train_checkpointed(model, &task, t, shuffle, hooks, None)
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

/// [`train`], writing checkpoints as `ckpt` says and first continuing from its `resume`.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn train_checkpointed(
    mut model: Mlp,
    task: &Task<'_>,
    t: &TrainConfig,
    shuffle: Rng,
    hooks: &mut [&mut dyn TrainHook<Mlp>],
    mut ckpt: Option<&mut Checkpointing>,
) -> Result<Trained, TrainError> {
    let Task {
        splits,
        head,
        device,
    } = *task;
    // Subnormal Adam moments would slow every later step ~3× (see `denormals.rs`).
    let _flush = FlushDenormals::enable();
    let train = &splits.train;
    let n = train.len();
    let d = train.n_features;
    let batch_size = batch_size(t, n);
    let n_batches = steps_per_epoch(t, n);
    let schedule = LrSchedule::new(t, n_batches);
    let mut optim = build_optimizer(t);
    let mut shuffle_rng = shuffle;
    let mut order: Vec<usize> = (0..n).collect();
    let info = RunStart {
        n_epochs: t.epochs,
        n_batches,
    };
    for h in hooks.iter_mut() {
        model = h.on_run_start(model, &info).map_err(hook_err(*h))?;
    }
    let mut step = 0usize;
    let mut early = t.early_stopping.as_ref().map(EarlyStopping::new);
    let mut best: Option<Mlp> = None;
    let mut stopped_early = false;
    let mut epochs_done = 0;
    if let Some(c) = ckpt.as_deref_mut()
        && let Some(r) = c.resume.take()
    {
        r.fits(&model, hooks, n)
            .map_err(|message| TrainError::Checkpoint {
                path: c.path.clone(),
                message,
            })?;
        for (h, (_, state)) in hooks.iter_mut().zip(r.hooks) {
            if let Some(state) = state {
                h.load_state(&model, state).map_err(hook_err(*h))?;
            }
        }
        model = r.model.restore(model);
        best = r.best.map(|b| b.restore(model.clone()));
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(r.optim))
            .map_err(|e| TrainError::Checkpoint {
                path: c.path.clone(),
                message: format!("the optimizer state does not load: {e}"),
            })?;
        shuffle_rng = Rng::from_state(r.shuffle);
        order = r.order;
        step = r.step;
        epochs_done = r.epoch;
        if let (Some(es), Some(state)) = (early.as_mut(), r.early) {
            es.restore(state);
        }
    }
    for epoch in epochs_done + 1..=t.epochs {
        if t.shuffle {
            shuffle_rng.shuffle(&mut order);
        }
        let mut loss_sum: Option<Tensor<1>> = None;
        for (batch_idx, idx) in order.chunks(batch_size).enumerate() {
            let lr = schedule.at(step);
            // Gathered straight into the Vec the tensor takes over: one copy per batch.
            let mut x_host = Vec::with_capacity(idx.len() * d);
            for &i in idx {
                x_host.extend_from_slice(&train.x[i * d..(i + 1) * d]);
            }
            let x = Tensor::<2>::from_data(TensorData::new(x_host, [idx.len(), d]), device);
            let targets = head.targets(train, idx, device);
            let out = model.forward(x);
            let data_loss = head.loss(out, targets);
            let loss = if t.l1 > 0.0 {
                data_loss.clone() + model.weight_l1().mul_scalar(t.l1)
            } else {
                data_loss.clone()
            };
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            let info = StepInfo {
                step,
                epoch,
                batch_idx,
                n_batches,
                lr,
            };
            for h in hooks.iter_mut() {
                h.after_backward(&model, &mut grads, &info)
                    .map_err(hook_err(*h))?;
            }
            model = optim.step(lr, model, grads);
            for h in hooks.iter_mut() {
                model = h.after_step(model, &info).map_err(hook_err(*h))?;
            }
            for h in hooks.iter_mut() {
                optim = h.edit_optimizer(optim, &info).map_err(hook_err(*h))?;
            }
            let weighted = data_loss.detach().mul_scalar(idx.len() as f64);
            loss_sum = Some(match loss_sum {
                Some(s) => s + weighted,
                None => weighted,
            });
            step += 1;
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
        epochs_done = epoch;
        let mut metrics = vec![("train".to_string(), "loss".to_string(), train_loss)];
        let eval_now = epoch % t.eval_every == 0 || epoch == t.epochs;
        let mut stop = false;
        if eval_now {
            let evals = evaluate_splits(&model, splits, head, device, true);
            // The train loss logged is the epoch's running mean (what the optimizer saw);
            // from the full pass over the training set only the accuracy is added.
            let (train_eval, held_out) = evals.split_first().expect("train is evaluated");
            if let Some(a) = train_eval.1.accuracy() {
                metrics.push(("train".into(), "accuracy".into(), a));
            }
            metrics.extend(metric_rows(held_out));
            if let Some(es) = early.as_mut() {
                let val = evals
                    .iter()
                    .find(|(s, _)| *s == "valid")
                    .map(|(_, e)| e.loss)
                    .expect("early stopping is validated to have a validation split");
                match es.observe(val) {
                    Verdict::Improved => best = Some(model.clone()),
                    Verdict::Wait => {}
                    Verdict::Stop => stop = true,
                }
            }
        }
        let end = EpochEnd {
            epoch,
            step,
            metrics,
        };
        for h in hooks.iter_mut() {
            h.on_epoch_end(&model, &end).map_err(hook_err(*h))?;
        }
        let interrupted = crate::interrupt::requested();
        if let Some(c) = ckpt.as_deref()
            && !stop
            && (epoch.is_multiple_of(c.every) || interrupted)
        {
            let at = Position {
                epoch,
                step,
                shuffle: &shuffle_rng,
                order: &order,
                early: early.as_ref(),
            };
            c.write(&at, &model, best.as_ref(), &optim, hooks)?;
        }
        if interrupted {
            return Err(TrainError::Interrupted { epoch });
        }
        if stop {
            stopped_early = epoch < t.epochs;
            break;
        }
    }
    if let Some(best_model) = best {
        model = best_model;
    }
    let end = RunEnd {
        epochs_done,
        steps_done: step,
        stopped_early,
    };
    for h in hooks.iter_mut() {
        h.on_run_end(&model, &end).map_err(hook_err(*h))?;
    }
    Ok(Trained { model, end })
}
