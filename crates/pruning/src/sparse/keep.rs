//! Zeroing a weight (or its gradient) outside its pattern, in the tensor's own host buffer.
//!
//! Holding a mask multiplies the weight by it after every step and the gradient before it: on
//! Flex, for 784-300-100-10, those two products took about 0.2 ms of a 1.45 ms sparse step
//! (each reads a megabyte of mask beside the megabyte of weights). A layer that has a pattern
//! keeps at most a quarter of its weights, so saving the kept values, clearing the buffer and
//! putting them back touches the buffer once and reads no mask. Pruned positions become +0.0
//! (a product by the mask gives -0.0 for a negative weight, and NaN for a NaN one).
//!
//! With AVX-512 the pass reads first: each run of 16 weights is loaded and tested under the
//! pattern's pruned lanes ([`Pattern`]'s bits per run), and zeros are stored, masked, only where
//! a pruned weight is not +0.0. After a sparse step the optimizer has usually left them all at
//! zero, so nothing is written: on the 90 %-sparse Flex step the pass went from 0.080 to
//! 0.042 ms and the step's median over seven turns from 0.81 to 0.77 ms (docs/performance.md).
//! Masked stores of zeros without the test (every run written) took 0.062 ms, but the forward
//! product, the next pass to read the weights, was often 0.02-0.03 ms slower and the step even.
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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above); `zero_pruned` checks `pruned` against
        // `w` and writes inside `w` only.
        unsafe { avx512::zero_pruned(&p.pruned, w) };
        return;
    }
    keep_in_portable(p, w);
}

/// [`keep_in`] without AVX-512: save the kept values, clear the buffer, put them back (one
/// pass over the buffer, no mask read; counting nonzeros first, to skip the writes, measured
/// even on 2026-12-02 as a scalar loop).
fn keep_in_portable(p: &Pattern, w: &mut [f32]) {
    let cols = p.shape()[1];
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        _mm512_castps_si512, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_mask_test_epi32_mask,
        _mm512_setzero_ps,
    };

    /// Writes +0.0 at the lanes `pruned` marks in each run of 16 floats of `w` that do not hold
    /// +0.0 already.
    #[target_feature(enable = "avx512f")]
    pub(super) fn zero_pruned(pruned: &[u16], w: &mut [f32]) {
        assert_eq!(pruned.len(), w.len().div_ceil(16), "a mask per run of 16");
        let zero = _mm512_setzero_ps();
        let full = w.len() / 16;
        // The lanes of the last, partial run that lie inside `w` (all, if there is none).
        let tail = match w.len() % 16 {
            0 => u16::MAX,
            r => (1u16 << r) - 1,
        };
        for (i, &bits) in pruned.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            // SAFETY: run `i` starts inside `w` (asserted above). A whole run is read only below
            // `full`; the last, partial run is written under `bits & tail`, lanes inside `w`
            // only, whatever `pruned` says (masked-off lanes are neither written nor faulted on).
            unsafe {
                let at = w.as_mut_ptr().add(16 * i);
                let set = if i < full {
                    let v = _mm512_castps_si512(_mm512_loadu_ps(at));
                    _mm512_mask_test_epi32_mask(bits, v, v)
                } else {
                    bits & tail
                };
                if set != 0 {
                    _mm512_mask_storeu_ps(at, set, zero);
                }
            }
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

// The one test compares the AVX-512 pass with the portable one.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::{Mask, Rng};

    /// The AVX-512 pass against the portable one (on a CPU without AVX-512 only the portable
    /// one runs, and there is nothing to compare).
    #[test]
    fn both_ways_of_zeroing_give_the_same_bits() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng::new(11);
        // Lengths that end inside a run of 16 and on one; sparse, dense, empty and full masks.
        for (rows, cols, kept) in [(37, 23, 0.1), (16, 16, 0.5), (5, 3, 0.0), (9, 7, 1.0)] {
            let mut keep: Vec<bool> = (0..rows * cols).map(|_| rng.next_f64() < kept).collect();
            // Weights 1 and 2 (in the first run, whole where there are 16 or more weights)
            // pruned, unless the mask keeps everything.
            if kept < 1.0 {
                keep[1] = false;
                keep[2] = false;
            }
            let mask = Mask {
                shape: vec![rows, cols],
                keep: keep.clone(),
            };
            let p = Pattern::from_mask("w", &mask).unwrap();
            // Negative values, and at pruned positions a NaN and -0.0 (which a product by the
            // mask would keep as NaN and -0.0) and +0.0 (which needs no store).
            let mut w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
            w[1] = f32::NAN;
            w[2] = -0.0;
            for v in w.iter_mut().skip(3).step_by(5) {
                *v = 0.0;
            }
            let mut portable = w.clone();
            keep_in_portable(&p, &mut portable);
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { avx512::zero_pruned(&p.pruned, &mut w) };
            for (k, (a, b)) in w.iter().zip(&portable).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{rows}x{cols}, weight {k}");
                if !keep[k] {
                    assert_eq!(a.to_bits(), 0, "a pruned weight is +0.0");
                }
            }
        }
    }
}
