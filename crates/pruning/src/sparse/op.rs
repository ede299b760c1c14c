//! The sparse product as a Burn operation: a backend extension with a handwritten backward.
//!
//! Burn has no sparse tensors, and a custom operation is the only way to give one its own
//! gradient. The forward pass and both gradients are host loops (`kernels.rs`), so the
//! operation is registered for the host backends (ndarray, Flex) and their `Autodiff`; the
//! caller ([`super::matmul`]) keeps every other device on the dense product.
// ndarray is deprecated in Burn 0.22 but is the backend Lopper's design names.
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, NdArray, TensorMetadata, backend_extension};
use burn::tensor::{TensorData, read_sync};

use super::kernels::{Aligned, gather_rows_new, transpose, transpose_uninit, weight_grad_par};
use super::pattern::Pattern;

#[backend_extension(NdArray, Flex: cfg(feature = "flex"), Autodiff)]
pub(crate) trait SparseOps: Backend {
    /// `x · w` over the kept weights of `pattern` (`x` `[batch, rows]`, `w` `[rows, cols]`).
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        pattern: Arc<Pattern>,
    ) -> FloatTensor<Self>;
}

/// A tensor's values on the host, as cheaply as each backend allows.
pub(crate) trait HostRead: Backend {
    /// `f` of the values, row-major.
    fn with_values<R>(t: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        f(&host::<Self>(t))
    }
}

impl HostRead for NdArray {
    /// ndarray copies a tensor whose buffer is shared (a parameter, or one the autodiff graph
    /// holds too) float by float through a dynamic-rank iterator, about 10 ns a float; the
    /// fresh result of one vectorized operation moves out without a copy.
    fn with_values<R>(t: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        f(&host::<Self>(Self::float_mul_scalar(t, 1.0f32.into())))
    }
}

impl SparseOps for NdArray {
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        p: Arc<Pattern>,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, w, &p, false).0
    }
}

#[cfg(feature = "flex")]
impl HostRead for burn::backend::Flex {
    /// Flex's buffer is host memory: read in place (a parameter's megabyte is not copied).
    fn with_values<R>(t: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        match t.as_slice::<f32>() {
            Some(v) => f(v),
            None => f(&host::<Self>(t)),
        }
    }
}

#[cfg(feature = "flex")]
impl SparseOps for burn::backend::Flex {
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        p: Arc<Pattern>,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, w, &p, false).0
    }
}

/// Samples multiplied together: their transposed activations (`[rows][BLOCK]`, 400 kB for 784
/// inputs) stay in the core's cache while a layer's kept weights pass, whatever the batch
/// (evaluation multiplies 2048 samples at once).
const BLOCK: usize = 128;

/// What the backward pass needs from the forward one, kept on the host.
#[derive(Debug)]
pub(crate) struct Saved<B: Backend> {
    pattern: Arc<Pattern>,
    /// `x` transposed block by block: `[rows][n]` for each block of `n ≤ BLOCK` samples.
    xt: Vec<Aligned>,
    /// The kept weights in column order.
    vals: Vec<f32>,
    batch: usize,
    device: B::Device,
}

#[allow(
    clippy::expect_used,
    reason = "the host backends read synchronously, and Lopper's parameters are f32"
)]
pub(crate) fn host<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    read_sync(B::float_into_data(t))
        .expect("host backends read synchronously")
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensors")
}

/// The product and what its backward pass keeps: the transposed input blocks only when there
/// is a backward pass (`keep`), not for evaluation.
pub(crate) fn forward<B: HostRead>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    p: &Arc<Pattern>,
    keep: bool,
) -> (FloatTensor<B>, Saved<B>) {
    let device = x.device();
    let batch = x.shape()[0];
    let [rows, cols] = p.shape();
    assert_eq!(
        (x.shape()[1], w.shape()[0], w.shape()[1]),
        (rows, rows, cols),
        "the sparse product's operands fit its pattern"
    );
    let vals = B::with_values(w, |w| {
        let mut vals = Vec::with_capacity(p.nnz());
        for c in 0..cols {
            let ks = p.col_ptr[c] as usize..p.col_ptr[c + 1] as usize;
            vals.extend(p.row_of[ks].iter().map(|&r| w[r as usize * cols + c]));
        }
        vals
    });
    // Written whole by the blocks' transposes, not zero-filled first.
    let mut y: Vec<f32> = Vec::with_capacity(batch * cols);
    let xt = B::with_values(x, |x| {
        assert_eq!(x.len(), batch * rows, "the input is [batch, rows]");
        let mut blocks = Vec::with_capacity(batch.div_ceil(BLOCK));
        let ys = y.spare_capacity_mut()[..batch * cols].chunks_mut(BLOCK * cols);
        for (xb, yb) in x.chunks(BLOCK * rows).zip(ys) {
            let n = xb.len() / rows;
            let xt = transpose(xb, n, rows);
            let yt = gather_rows_new(&p.col_ptr, &p.row_of, &vals, &xt, n);
            transpose_uninit(&yt, cols, n, yb);
            if keep {
                blocks.push(xt);
            }
        }
        blocks
    });
    // SAFETY: the blocks cover the input's `batch` rows (asserted above), and each block's
    // transpose wrote its chunk of `y` whole: all `batch · cols` floats.
    unsafe { y.set_len(batch * cols) };
    let out = B::float_from_data(TensorData::new(y, [batch, cols]), &device);
    let saved = Saved {
        pattern: p.clone(),
        xt,
        vals,
        batch,
        device,
    };
    (out, saved)
}

impl<B: Backend> Saved<B> {
    /// The gradients for `x` (`dy · wᵀ` over the kept weights) where `input` and for `w`
    /// (`xᵀ · dy` at the kept weights, zero elsewhere), from `dy`, block by block.
    fn grads(&self, dy: &[f32], input: bool) -> (Option<FloatTensor<B>>, FloatTensor<B>) {
        let p = &self.pattern;
        let [rows, cols] = p.shape();
        // In row order, for the input gradient only (the first layer's input, the data, has
        // none).
        let vals: Vec<f32> = if input {
            p.at.iter().map(|&k| self.vals[k as usize]).collect()
        } else {
            Vec::new()
        };
        // Written whole by the first block (each row cleared as its gradients are written,
        // `weight_grad_par` into uninitialized rows), added to by the others.
        let mut g: Vec<f32> = Vec::with_capacity(rows * cols);
        // Written whole by the blocks' transposes where there is an input gradient.
        let mut dx: Vec<f32> = Vec::with_capacity(if input { self.batch * rows } else { 0 });
        assert_eq!(
            dy.len(),
            self.batch * cols,
            "the output gradient is [batch, cols]"
        );
        for (b, dyb) in dy.chunks(BLOCK * cols).enumerate() {
            let n = dyb.len() / cols;
            let dyt = transpose(dyb, n, cols);
            if b == 0 {
                let spare = &mut g.spare_capacity_mut()[..rows * cols];
                weight_grad_par(&p.row_ptr, &p.col_of, &self.xt[0], &dyt, n, spare);
                // SAFETY: into uninitialized rows `weight_grad_par` writes all `rows · cols`
                // entries.
                unsafe { g.set_len(rows * cols) };
            } else {
                weight_grad_par(&p.row_ptr, &p.col_of, &self.xt[b], &dyt, n, &mut g);
            }
            if input {
                let dxt = gather_rows_new(&p.row_ptr, &p.col_of, &vals, &dyt, n);
                let at = b * BLOCK * rows;
                transpose_uninit(
                    &dxt,
                    rows,
                    n,
                    &mut dx.spare_capacity_mut()[at..at + n * rows],
                );
            }
        }
        if input {
            // SAFETY: the blocks cover the output gradient's `batch` rows (asserted above), and
            // each block's transpose wrote its `n · rows` floats of `dx` at its offset.
            unsafe { dx.set_len(self.batch * rows) };
        }
        if g.is_empty() {
            // No samples, no block (`sparse::matmul` sends empty operands to the dense product,
            // but a caller of the operation might not): a zero gradient.
            g.resize(rows * cols, 0.0);
        }
        let dx = input
            .then(|| B::float_from_data(TensorData::new(dx, [self.batch, rows]), &self.device));
        let g = B::float_from_data(TensorData::new(g, [rows, cols]), &self.device);
        (dx, g)
    }
}

#[derive(Debug)]
struct SparseMatmul;

impl<B: HostRead> Backward<B, 2> for SparseMatmul {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved: Arc<Saved<B>> = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let [x, w] = ops.parents;
        let (dx, dw) = B::with_values(dy, |dy| saved.grads(dy, x.is_some()));
        if let (Some(node), Some(dx)) = (x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = w {
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B: SparseOps + HostRead, C: CheckpointStrategy> SparseOps for Autodiff<B, C> {
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        pattern: Arc<Pattern>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (w, w_node) = w.into_parts();
        match SparseMatmul
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, saved) = forward::<B>(x, w, &pattern, true);
                prep.finish(Arc::new(saved), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(x, w, &pattern, false).0),
        }
    }
}
