//! Batch normalisation whose running statistics belong to one copy of the network.
//!
//! Burn's `BatchNorm` keeps its running mean and variance in a `RunningState`, an `Arc` that
//! every clone of the module shares: the best-validation copy, a lottery's rewind point and each
//! search probe would all move the live network's statistics (and it theirs). Lopper clones
//! networks at every such point, so this norm holds its statistics in [`Stat`], which a clone
//! copies. Otherwise it computes what PyTorch's `BatchNorm2d` does: batch statistics while
//! training (the running variance updated with the unbiased batch variance, momentum 0.1), the
//! running ones in evaluation. The struct is named `BatchNorm` with fields `gamma`, `beta`,
//! `running_mean` and `running_var`, so the pruning crate couples it to its convolution's
//! channels as it would Burn's own.

use std::sync::{Arc, Mutex};

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param, ParamId,
};
use burn::tensor::{Device, Tensor};

/// A per-channel statistic updated by the forward pass: visited and mapped like a parameter
/// (so checkpoints, snapshots and model files hold it) but never trained.
#[derive(Debug)]
pub struct Stat {
    id: ParamId,
    value: Arc<Mutex<Tensor<1>>>,
}

impl Clone for Stat {
    /// A copy with its own cell: updating the copy leaves the original alone.
    fn clone(&self) -> Self {
        Self::new(self.id, self.get())
    }
}

impl Stat {
    /// A statistic with `id` holding `value`.
    pub fn new(id: ParamId, value: Tensor<1>) -> Self {
        Self {
            id,
            value: Arc::new(Mutex::new(value)),
        }
    }

    /// The current value.
    pub fn get(&self) -> Tensor<1> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, value: Tensor<1>) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stat(id={})", self.id)
    }
}

impl ModuleDisplayDefault for Stat {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"Stat".to_string()).optional()
    }
}

impl ModuleDisplay for Stat {}

impl Module for Stat {
    fn collect_devices(&self, mut devices: Devices) -> Devices {
        let device = self.get().device();
        if !devices.contains(&device) {
            devices.push(device);
        }
        devices
    }

    fn fork(self, device: &Device) -> Self {
        self.to_device(device)
    }

    fn to_device(self, device: &Device) -> Self {
        Self::new(self.id, self.get().to_device(device))
    }

    fn train(self) -> Self {
        Self::new(self.id, Tensor::from_inner(self.get().inner()))
    }

    fn valid(&self) -> Self {
        Self::new(self.id, self.get().inner())
    }

    fn materialize(self) -> Self {
        self
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        visitor.visit_float(&Param::initialized(self.id, self.get()));
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let out = mapper.map_float(Param::initialized(self.id, self.get()));
        let (id, tensor, _) = out.consume();
        // A statistic is never trained, whatever the mapper asked.
        Self::new(id, tensor.set_require_grad(false))
    }
}

/// PyTorch's `BatchNorm2d` over a convolution's channels (momentum 0.1, ε 1e-5).
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale per channel (starts at 1).
    pub gamma: Param<Tensor<1>>,
    /// Shift per channel (starts at 0).
    pub beta: Param<Tensor<1>>,
    /// Running mean per channel (starts at 0).
    pub running_mean: Stat,
    /// Running variance per channel (starts at 1).
    pub running_var: Stat,
}

/// PyTorch's defaults.
const MOMENTUM: f64 = 0.1;
/// The variance's ε (PyTorch's default).
pub const EPSILON: f64 = 1e-5;

impl BatchNorm {
    /// A norm over `channels` with γ = 1, β = 0, mean 0, variance 1, and the given ids.
    pub fn new(channels: usize, ids: [ParamId; 4], device: &Device) -> Self {
        let [g, b, m, v] = ids;
        let mut gamma = Param::from_tensor(Tensor::ones([channels], device));
        gamma.id = g;
        let mut beta = Param::from_tensor(Tensor::zeros([channels], device));
        beta.id = b;
        Self {
            gamma,
            beta,
            running_mean: Stat::new(m, Tensor::zeros([channels], device)),
            running_var: Stat::new(v, Tensor::ones([channels], device)),
        }
    }

    /// Normalises `x` `[n, c, h, w]` per channel: with the batch's statistics (and updating the
    /// running ones) where gradients are taken, with the running ones elsewhere.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !x.device().is_autodiff() {
            return burn::tensor::module::batch_norm(
                x,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.get(),
                self.running_var.get(),
                EPSILON,
            );
        }
        let [n, _, h, w] = x.dims();
        let out =
            burn::tensor::module::batch_norm_train(x, self.gamma.val(), self.beta.val(), EPSILON);
        // PyTorch keeps the unbiased variance.
        let count = (n * h * w) as f64;
        let unbiased = out.variance.mul_scalar(count / (count - 1.0).max(1.0));
        let mean = self
            .running_mean
            .get()
            .mul_scalar(1.0 - MOMENTUM)
            .add(out.mean.mul_scalar(MOMENTUM));
        let var = self
            .running_var
            .get()
            .mul_scalar(1.0 - MOMENTUM)
            .add(unbiased.mul_scalar(MOMENTUM));
        self.running_mean.set(mean.detach());
        self.running_var.set(var.detach());
        out.output
    }
}
