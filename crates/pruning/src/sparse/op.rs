//! The sparse product as a Burn operation: a backend extension with a handwritten backward.
//!
//! Burn has no sparse tensors, and a custom operation is the only way to give one its own
//! gradient. The forward pass and both gradients are host loops (`kernels.rs`), so the
//! operation is registered for the host backends (ndarray, Flex) and their `Autodiff`; the
//! caller ([`super::linear`]) keeps every other device on the dense product.
// ndarray is deprecated in Burn 0.22 but is the backend Lopper's design names.
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, NdArray, TensorMetadata, backend_extension};
use burn::tensor::{TensorData, read_sync};

use super::kernels::{
    Aligned, add_bias, bias_grad, columns, gather_rows_new, put_columns, transpose,
    transpose_uninit, weight_grad_par,
};
use super::pattern::Pattern;

/// How the activations on either side of a sparse product are laid out: `[batch, features]`
/// as everywhere else, or transposed, `[features, batch]`, as the product's loops run them.
///
/// Between two sparse layers the output of one is the input of the next, with only a bias and
/// an element-wise nonlinearity between them, which do not care how the floats are laid out:
/// left transposed, the second product needs no transpose of its input nor the first of its
/// output, and the backward pass likewise (four transposes per pair of layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The input is `[rows, batch]` (its gradient comes back so).
    pub input_transposed: bool,
    /// The output is `[cols, batch]` (its gradient is expected so).
    pub output_transposed: bool,
}

#[backend_extension(NdArray, Flex: cfg(feature = "flex"), Autodiff)]
pub(crate) trait SparseOps: Backend {
    /// `x · w` over the kept weights of `pattern` (`x` `[batch, rows]`, `w` `[rows, cols]`),
    /// each operand as `layout` says.
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        pattern: Arc<Pattern>,
        layout: Layout,
    ) -> FloatTensor<Self>;

    /// `x · w + b` over the kept weights of `pattern` (`b` `[cols]`), each operand as `layout`
    /// says: a dense layer with a bias, whose gradient is summed as Burn sums a broadcast
    /// addition's, so the bits are those of the product followed by the addition.
    fn sparse_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        pattern: Arc<Pattern>,
        layout: Layout,
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

/// The host backends' operations: the forward pass alone (their `Autodiff` adds the backward).
macro_rules! host_sparse_ops {
    ($backend:ty) => {
        impl SparseOps for $backend {
            fn sparse_matmul(
                x: FloatTensor<Self>,
                w: FloatTensor<Self>,
                p: Arc<Pattern>,
                layout: Layout,
            ) -> FloatTensor<Self> {
                forward::<Self>(x, w, None, &p, layout, false).0
            }

            fn sparse_linear(
                x: FloatTensor<Self>,
                w: FloatTensor<Self>,
                b: FloatTensor<Self>,
                p: Arc<Pattern>,
                layout: Layout,
            ) -> FloatTensor<Self> {
                forward::<Self>(x, w, Some(b), &p, layout, false).0
            }
        }
    };
}

host_sparse_ops!(NdArray);

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
host_sparse_ops!(burn::backend::Flex);

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
    layout: Layout,
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

/// The product (plus `bias` where there is one) and what its backward pass keeps: the
/// transposed input blocks only when there is a backward pass (`keep`), not for evaluation.
pub(crate) fn forward<B: HostRead>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    p: &Arc<Pattern>,
    layout: Layout,
    keep: bool,
) -> (FloatTensor<B>, Saved<B>) {
    let device = x.device();
    let [rows, cols] = p.shape();
    let (batch, x_rows) = match layout.input_transposed {
        false => (x.shape()[0], x.shape()[1]),
        true => (x.shape()[1], x.shape()[0]),
    };
    assert_eq!(
        (x_rows, w.shape()[0], w.shape()[1]),
        (rows, rows, cols),
        "the sparse product's operands fit its pattern"
    );
    let bias = bias.map(|b| {
        assert_eq!(b.shape().num_elements(), cols, "one bias per output");
        B::with_values(b, <[f32]>::to_vec)
    });
    let vals = B::with_values(w, |w| {
        let mut vals = Vec::with_capacity(p.nnz());
        for c in 0..cols {
            let ks = p.col_ptr[c] as usize..p.col_ptr[c + 1] as usize;
            vals.extend(p.row_of[ks].iter().map(|&r| w[r as usize * cols + c]));
        }
        vals
    });
    // Written whole by the blocks (their transposes or copies), not zero-filled first.
    let mut y: Vec<f32> = Vec::with_capacity(batch * cols);
    let xt = B::with_values(x, |x| {
        assert_eq!(x.len(), batch * rows, "the input is batch × rows");
        let mut blocks = Vec::with_capacity(batch.div_ceil(BLOCK));
        let y = &mut y.spare_capacity_mut()[..batch * cols];
        for b0 in (0..batch).step_by(BLOCK) {
            let n = BLOCK.min(batch - b0);
            let xt = match layout.input_transposed {
                false => transpose(&x[b0 * rows..(b0 + n) * rows], n, rows),
                true => columns(x, rows, batch, b0, n),
            };
            let mut yt = gather_rows_new(&p.col_ptr, &p.row_of, &vals, &xt, n);
            if let Some(bias) = &bias {
                add_bias(&mut yt, bias, n);
            }
            match layout.output_transposed {
                false => transpose_uninit(&yt, cols, n, &mut y[b0 * cols..(b0 + n) * cols]),
                true => put_columns(&yt, cols, n, y, batch, b0),
            }
            if keep {
                blocks.push(xt);
            }
        }
        blocks
    });
    // SAFETY: the blocks cover the input's `batch` samples (asserted above), and each block's
    // transpose or copy wrote its `n · cols` floats of `y`: all `batch · cols` of them.
    unsafe { y.set_len(batch * cols) };
    let shape = match layout.output_transposed {
        false => [batch, cols],
        true => [cols, batch],
    };
    let out = B::float_from_data(TensorData::new(y, shape), &device);
    let saved = Saved {
        pattern: p.clone(),
        xt,
        vals,
        batch,
        layout,
        device,
    };
    (out, saved)
}

/// The gradients a sparse product's backward pass gives: the input's where asked for, the
/// weight's, and the bias's where there is one.
struct Grads<B: Backend> {
    x: Option<FloatTensor<B>>,
    w: FloatTensor<B>,
    b: Option<FloatTensor<B>>,
}

impl<B: Backend> Saved<B> {
    /// The gradients for `x` (`dy · wᵀ` over the kept weights) where `input`, for `w`
    /// (`xᵀ · dy` at the kept weights, zero elsewhere), and for the bias where `bias`, from
    /// `dy` (laid out as the output is), block by block.
    fn grads(&self, dy: &[f32], input: bool, bias: bool) -> Grads<B> {
        let p = &self.pattern;
        let [rows, cols] = p.shape();
        let batch = self.batch;
        let layout = self.layout;
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
        // Written whole by the blocks' transposes or copies where there is an input gradient.
        let mut dx: Vec<f32> = Vec::with_capacity(if input { batch * rows } else { 0 });
        assert_eq!(
            dy.len(),
            batch * cols,
            "the output gradient is batch × cols"
        );
        for (b, b0) in (0..batch).step_by(BLOCK).enumerate() {
            let n = BLOCK.min(batch - b0);
            let dyt = match layout.output_transposed {
                false => transpose(&dy[b0 * cols..(b0 + n) * cols], n, cols),
                true => columns(dy, cols, batch, b0, n),
            };
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
                let out = &mut dx.spare_capacity_mut()[..batch * rows];
                match layout.input_transposed {
                    false => transpose_uninit(&dxt, rows, n, &mut out[b0 * rows..(b0 + n) * rows]),
                    true => put_columns(&dxt, rows, n, out, batch, b0),
                }
            }
        }
        if input {
            // SAFETY: the blocks cover the output gradient's `batch` samples (asserted above),
            // and each block's transpose or copy wrote its `n · rows` floats of `dx`.
            unsafe { dx.set_len(batch * rows) };
        }
        if g.is_empty() {
            // No samples, no block (`sparse::linear` sends empty operands to the dense product,
            // but a caller of the operation might not): a zero gradient.
            g.resize(rows * cols, 0.0);
        }
        let x_shape = match layout.input_transposed {
            false => [batch, rows],
            true => [rows, batch],
        };
        let d = &self.device;
        Grads {
            x: input.then(|| B::float_from_data(TensorData::new(dx, x_shape), d)),
            w: B::float_from_data(TensorData::new(g, [rows, cols]), d),
            b: bias.then(|| {
                let db = bias_grad(dy, batch, cols, layout.output_transposed);
                B::float_from_data(TensorData::new(db, [cols]), d)
            }),
        }
    }
}

/// The product's node in the autodiff graph (parents: the input and the weight).
#[derive(Debug)]
struct SparseMatmul;

/// The product with a bias (parents: the input, the weight and the bias).
#[derive(Debug)]
struct SparseLinear;

/// Registers the gradients `saved` gives for those of `x`, `w` and `b` that are tracked.
fn register<B: HostRead>(
    saved: &Saved<B>,
    dy: FloatTensor<B>,
    [x, w, b]: [Option<NodeId>; 3],
    grads: &mut Gradients,
) {
    let g = B::with_values(dy, |dy| saved.grads(dy, x.is_some(), b.is_some()));
    if let (Some(id), Some(dx)) = (x, g.x) {
        grads.register::<B>(id, dx);
    }
    if let Some(id) = w {
        grads.register::<B>(id, g.w);
    }
    if let (Some(id), Some(db)) = (b, g.b) {
        grads.register::<B>(id, db);
    }
}

impl<B: HostRead> Backward<B, 2> for SparseMatmul {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let [x, w] = ops.parents.map(|p| p.map(|n| n.id));
        register(&ops.state, dy, [x, w, None], grads);
    }
}

impl<B: HostRead> Backward<B, 3> for SparseLinear {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        register(&ops.state, dy, ops.parents.map(|p| p.map(|n| n.id)), grads);
    }
}

/// The node `kind` prepared, its output from `run` (whose argument says whether to keep what
/// the backward pass needs: only where the graph tracks the node).
fn finish<BO, B, C, const N: usize>(
    kind: OpsKind<BO, B, Arc<Saved<B>>, C, N>,
    run: impl FnOnce(bool) -> (FloatTensor<B>, Saved<B>),
) -> FloatTensor<Autodiff<B, C>>
where
    B: HostRead,
    BO: Backward<B, N, State = Arc<Saved<B>>>,
    C: CheckpointStrategy,
{
    match kind {
        OpsKind::Tracked(prep) => {
            let (y, saved) = run(true);
            prep.finish(Arc::new(saved), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(run(false).0),
    }
}

impl<B: SparseOps + HostRead, C: CheckpointStrategy> SparseOps for Autodiff<B, C> {
    fn sparse_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        pattern: Arc<Pattern>,
        layout: Layout,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (w, w_node) = w.into_parts();
        let kind = SparseMatmul
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful();
        finish(kind, |keep| {
            forward::<B>(x, w, None, &pattern, layout, keep)
        })
    }

    fn sparse_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        pattern: Arc<Pattern>,
        layout: Layout,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (w, w_node) = w.into_parts();
        let (b, b_node) = b.into_parts();
        let kind = SparseLinear
            .prepare::<C>([x_node, w_node, b_node])
            .compute_bound()
            .stateful();
        finish(kind, |keep| {
            forward::<B>(x, w, Some(b), &pattern, layout, keep)
        })
    }
}
