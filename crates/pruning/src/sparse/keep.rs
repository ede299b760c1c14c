//! Zeroing a weight (or its gradient) outside its pattern, in the tensor's own host buffer.
//!
//! Holding a mask multiplies the weight by it after every step and the gradient before it: on
//! Flex, for 784-300-100-10, those two products took about 0.2 ms of a 1.45 ms sparse step
//! (each reads a megabyte of mask beside the megabyte of weights). A layer that has a pattern
//! keeps at most a quarter of its weights, so saving the kept values, clearing the buffer and
//! putting them back touches the buffer once and reads no mask. Pruned positions become +0.0
//! (a product by the mask gives -0.0 for a negative weight, and NaN for a NaN one).
// ndarray is deprecated in Burn 0.22 but is the backend Lopper's design names.
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, NdArray, TensorMetadata, backend_extension,
};
use burn::tensor::TensorData;

use super::op::host;
use super::pattern::Pattern;

#[backend_extension(NdArray, Flex: cfg(feature = "flex"), Autodiff)]
pub(crate) trait KeepOps: Backend {
    /// `t` (`[rows, cols]`, the pattern's shape) with every position outside `pattern` zero,
    /// in place where the buffer is the tensor's own; the result is not tracked by autodiff.
    fn keep_pattern(t: FloatTensor<Self>, pattern: Arc<Pattern>) -> FloatTensor<Self>;
}

/// Zeroes `w` (row-major `[rows, cols]`) outside `p`.
pub(crate) fn keep_in(p: &Pattern, w: &mut [f32]) {
    let [rows, cols] = p.shape();
    assert_eq!(w.len(), rows * cols, "the weight fits its pattern");
    let mut kept = Vec::with_capacity(p.nnz());
    for (r, row) in w.chunks_exact(cols).enumerate() {
        let ks = p.row_ptr[r] as usize..p.row_ptr[r + 1] as usize;
        kept.extend(p.col_of[ks].iter().map(|&c| row[c as usize]));
    }
    w.fill(0.0);
    for (r, row) in w.chunks_exact_mut(cols).enumerate() {
        let ks = p.row_ptr[r] as usize..p.row_ptr[r + 1] as usize;
        for (&c, &v) in p.col_of[ks.clone()].iter().zip(&kept[ks]) {
            row[c as usize] = v;
        }
    }
}

impl KeepOps for NdArray {
    /// Through a host copy: ndarray's buffer is not reachable from here without one.
    fn keep_pattern(t: FloatTensor<Self>, pattern: Arc<Pattern>) -> FloatTensor<Self> {
        let (shape, device) = (t.shape(), t.device());
        let mut v = host::<Self>(t);
        keep_in(&pattern, &mut v);
        Self::float_from_data(TensorData::new(v, shape), &device)
    }
}

#[cfg(feature = "flex")]
impl KeepOps for burn::backend::Flex {
    /// In place when the tensor owns a contiguous buffer (a parameter the optimizer just wrote,
    /// a gradient the backward pass just made); otherwise on a fresh contiguous copy.
    #[allow(
        clippy::expect_used,
        reason = "`sparse::keep` passes f32 tensors only, and the buffer is the tensor's own"
    )]
    fn keep_pattern(t: FloatTensor<Self>, pattern: Arc<Pattern>) -> FloatTensor<Self> {
        use burn::backend::flex::FlexTensor;
        let n = t.layout().num_elements();
        let mut t = if t.is_unique()
            && t.layout().contiguous_offsets() == Some((0, n))
            && t.bytes().len() == 4 * n
        {
            t
        } else {
            FlexTensor::from_data(t.into_data())
        };
        let w = t
            .try_storage_mut::<f32>()
            .expect("a tensor just made unique and contiguous is writable");
        keep_in(&pattern, w);
        t
    }
}

impl<B: KeepOps, C: CheckpointStrategy> KeepOps for Autodiff<B, C> {
    fn keep_pattern(t: FloatTensor<Self>, pattern: Arc<Pattern>) -> FloatTensor<Self> {
        Self::from_inner(B::keep_pattern(Self::inner(t), pattern))
    }
}
