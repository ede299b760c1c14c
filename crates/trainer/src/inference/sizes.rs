//! Storage of a pruned network in the formats people ship, in bytes (f32 values, u32 indices).

use super::compact::Compacted;
use super::csr::CsrMlp;
use super::host::HostMlp;

/// Bytes of the same network stored four ways (a field of `pruning.json`).
pub use report::Sizes;

/// Sizes of `m`, its CSR form and its compaction.
pub fn sizes_of(m: &HostMlp, csr: &CsrMlp, compact: &Compacted) -> Sizes {
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
    Sizes {
        dense_bytes: 4 * dense,
        csr_bytes,
        bitmask_bytes,
        compact_bytes,
    }
}
