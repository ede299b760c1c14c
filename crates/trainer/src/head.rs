//! The output head: how the task sets the output width, the loss, and what counts as correct.
//!
//! Losses are computed from logits (`log_sigmoid`, `log_softmax`) rather than from
//! probabilities, which is the numerically stable form of BCE and cross-entropy.

use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::data::{Dataset, Targets};

/// The task as the network sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Two classes: one sigmoid unit, binary cross-entropy.
    Binary,
    /// More classes: softmax over `n` units, cross-entropy.
    Multiclass(usize),
    /// A real target: one linear unit, mean squared error.
    Regression,
}

impl Head {
    /// The head for a training set.
    pub fn for_data(train: &Dataset) -> Head {
        match train.n_classes() {
            Some(2) => Head::Binary,
            Some(n) => Head::Multiclass(n),
            None => Head::Regression,
        }
    }

    /// Output units.
    pub fn n_outputs(self) -> usize {
        match self {
            Head::Multiclass(n) => n,
            Head::Binary | Head::Regression => 1,
        }
    }

    /// Name of the loss, for reports.
    pub fn loss_name(self) -> &'static str {
        match self {
            Head::Binary => "binary cross-entropy",
            Head::Multiclass(_) => "cross-entropy",
            Head::Regression => "mean squared error",
        }
    }

    /// The target tensor for samples `idx` of `set`: `[n, 1]` for binary and regression,
    /// one-hot `[n, classes]` for multiclass.
    pub fn targets(self, set: &Dataset, idx: &[usize], device: &Device) -> Tensor<2> {
        let n = idx.len();
        let (values, width) = match (&set.y, self) {
            (Targets::Classes { labels, .. }, Head::Binary) => {
                (idx.iter().map(|&i| labels[i] as f32).collect(), 1)
            }
            (Targets::Classes { labels, .. }, Head::Multiclass(c)) => {
                let mut v = vec![0f32; n * c];
                for (r, &i) in idx.iter().enumerate() {
                    v[r * c + labels[i] as usize] = 1.0;
                }
                (v, c)
            }
            (Targets::Real(y), _) => (idx.iter().map(|&i| y[i]).collect(), 1),
            (Targets::Classes { .. }, Head::Regression) => {
                unreachable!("the head is chosen from the data's targets")
            }
        };
        Tensor::from_data(TensorData::new(values, [n, width]), device)
    }

    /// Mean loss of a batch, as a one-element tensor (differentiable).
    pub fn loss(self, out: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        match self {
            Head::Binary => {
                let pos = activation::log_sigmoid(out.clone());
                let neg = activation::log_sigmoid(out.neg());
                (targets.clone() * pos + (targets.neg() + 1.0) * neg)
                    .mean()
                    .neg()
            }
            Head::Multiclass(_) => {
                let logp = activation::log_softmax(out, 1);
                (targets * logp).sum_dim(1).mean().neg()
            }
            Head::Regression => (out - targets).powi_scalar(2).mean(),
        }
    }

    /// Predicted class per row from host-side outputs.
    pub fn predict(self, out: &[f32]) -> Vec<u32> {
        match self {
            Head::Binary => out.iter().map(|&z| u32::from(z > 0.0)).collect(),
            Head::Multiclass(c) => out
                .chunks_exact(c)
                .map(|row| {
                    // First maximum wins, so ties resolve the same way on every backend.
                    let mut best = 0;
                    for (j, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = j;
                        }
                    }
                    best as u32
                })
                .collect(),
            Head::Regression => Vec::new(),
        }
    }
}
