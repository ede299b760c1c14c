//! Evaluation of a model on a data set: mean loss and, for classification, accuracy.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::Dataset;
use crate::head::Head;
use crate::model::Net;

/// Rows per forward pass during evaluation; bounds memory on large test sets.
pub const EVAL_CHUNK: usize = 2048;

/// Loss and accuracy on one split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Samples evaluated.
    pub n: usize,
    /// Mean loss (the training loss, without the L1 penalty).
    pub loss: f64,
    /// Correctly classified samples (classification only).
    pub correct: Option<usize>,
}

impl Evaluation {
    /// Fraction correct (classification only).
    pub fn accuracy(&self) -> Option<f64> {
        self.correct.map(|c| c as f64 / self.n as f64)
    }
}

/// Evaluates `model` (autodiff or not) on `set` without recording gradients.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn evaluate(model: &Net, set: &Dataset, head: Head, device: &Device) -> Evaluation {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let n = set.len();
    let d = set.n_features;
    let labels = set.labels();
    let mut loss_sum = 0f64;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(EVAL_CHUNK) {
        let rows = chunk.len();
        let start = chunk[0] * d;
        let x = Tensor::<2>::from_data(
            TensorData::new(set.x[start..start + rows * d].to_vec(), [rows, d]),
            &device,
        );
        let out = model.forward(x);
        let t = head.targets(set, chunk, &device);
        let loss: f32 = head.loss(out.clone(), t).into_scalar();
        loss_sum += f64::from(loss) * rows as f64;
        if let Some(labels) = labels {
            let out = out.into_data().try_to_vec::<f32>().expect("f32 outputs");
            correct += head
                .predict(&out)
                .iter()
                .zip(&labels[chunk[0]..chunk[0] + rows])
                .filter(|(p, l)| p == l)
                .count();
        }
    }
    Evaluation {
        n,
        loss: loss_sum / n.max(1) as f64,
        correct: labels.map(|_| correct),
    }
}
