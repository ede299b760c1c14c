//! Counts of the copies between host and device that this crate makes, per thread.
//!
//! The per-step work of pruning (gradient masking, re-zeroing, gradient accumulation) must stay
//! on the device: a copy to the host per step stalls a GPU pipeline. Every place here that moves
//! tensor data between host and device counts itself, so a test can run steps and see that none
//! of them copied anything. Per thread, because tests run in parallel threads of one process.

use std::cell::Cell;

thread_local! {
    static TO_HOST: Cell<u64> = const { Cell::new(0) };
    static TO_DEVICE: Cell<u64> = const { Cell::new(0) };
}

/// How many tensors this thread has copied each way so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transfers {
    /// Tensors read back to the host.
    pub to_host: u64,
    /// Tensors built from host data.
    pub to_device: u64,
}

/// This thread's counts.
pub fn transfers() -> Transfers {
    Transfers {
        to_host: TO_HOST.with(Cell::get),
        to_device: TO_DEVICE.with(Cell::get),
    }
}

pub(crate) fn count_to_host() {
    TO_HOST.with(|c| c.set(c.get() + 1));
}

pub(crate) fn count_to_device() {
    TO_DEVICE.with(|c| c.set(c.get() + 1));
}
