//! Storage of a pruned network in the formats people ship, in bytes (f32 values, u32 indices).

use serde::Serialize;

use super::compact::Compacted;
use super::csr::CsrMlp;
use super::host::HostMlp;

/// Bytes of the same network stored four ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// Every weight and bias as f32.
    pub dense_bytes: usize,
    /// CSR: nonzero values (f32) + their column indices (u32) + row pointers (u32), plus biases.
    pub csr_bytes: usize,
    /// One bit per weight + the nonzero values (f32), plus biases.
    pub bitmask_bytes: usize,
    /// The compacted dense network as f32.
    pub compact_bytes: usize,
}

impl Sizes {
    /// Sizes of `m`, its CSR form and its compaction.
    pub fn of(m: &HostMlp, csr: &CsrMlp, compact: &Compacted) -> Self {
        let biases: usize = m.layers.iter().map(|l| l.b.len()).sum();
        let dense = m.layers.iter().map(|l| l.w.len()).sum::<usize>() + biases;
        let csr_bytes = csr.layers.iter().map(|l| l.bytes()).sum::<usize>() + 4 * biases;
        // One bit per weight, plus the nonzero values CSR already counted.
        let bitmask_bytes = m
            .layers
            .iter()
            .zip(&csr.layers)
            .map(|(l, c)| l.w.len().div_ceil(8) + 4 * c.nnz())
            .sum::<usize>()
            + 4 * biases;
        let compact_bytes = 4 * compact
            .model
            .layers
            .iter()
            .map(|l| l.w.len() + l.b.len())
            .sum::<usize>();
        Self {
            dense_bytes: 4 * dense,
            csr_bytes,
            bitmask_bytes,
            compact_bytes,
        }
    }
}
