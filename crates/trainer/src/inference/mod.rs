//! Inference without Burn, on the host: the trained network as plain arrays in PyTorch's
//! `[out, in]` layout, run densely, in CSR, or compacted (dead units removed). This is where
//! pruning pays off in time and bytes, and where that is measured.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod compact;
pub mod csr;
pub mod host;
pub mod run_folder;
pub mod sizes;

pub use compact::{Compacted, compact};
pub use csr::{Csr, CsrMlp};
pub use host::{HostLayer, HostMlp};
pub use sizes::{Sizes, sizes_of};
