//! Storage of a pruned network in the formats people ship, in bytes (f32 values, u32 indices).

use super::compact::Compacted;
use super::csr::Csr;
use super::host::HostMlp;

/// Bytes of the same network stored four ways (a field of `pruning.json`).
pub use report::Sizes;

/// Sizes of `m`, its CSR form and its compaction. The CSR form is counted, not built: building
/// it for inference (`CsrMlp::from_host`) also lays out and reorders the layers for the batch-1
/// kernels, which a report does not need.
pub fn sizes_of(m: &HostMlp, compact: &Compacted) -> Sizes {
    let biases: usize = m.layers.iter().map(|l| l.b.len()).sum();
    let dense = m.layers.iter().map(|l| l.w.len()).sum::<usize>() + biases;
    // Nonzero weights per layer, as CSR keeps them.
    let nnz: Vec<usize> = m
        .layers
        .iter()
        .map(|l| l.w.iter().filter(|&&v| v != 0.0).count())
        .collect();
    let csr_bytes = m
        .layers
        .iter()
        .zip(&nnz)
        .map(|(l, &k)| Csr::stored_bytes(k, l.n_out))
        .sum::<usize>()
        + 4 * biases;
    // One bit per weight, plus the nonzero values CSR already counted.
    let bitmask_bytes = m
        .layers
        .iter()
        .zip(&nnz)
        .map(|(l, &k)| l.w.len().div_ceil(8) + 4 * k)
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
