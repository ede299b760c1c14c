//! Keeping freed memory in the process for the next training step (glibc's malloc).
//!
//! A training step allocates and frees the same large buffers every time: activations,
//! gradients, packed GEMM panels, the optimizer's host copies (a 784×300 weight is 940 KB).
//! glibc serves blocks above its mmap threshold with a fresh `mmap` and returns them with
//! `munmap`, and trims the heap's top back to the system past its trim threshold; either way
//! the next step page-faults the same memory in again and zeroes it. Its dynamic threshold
//! adapts only after some frees, and not always. Measured (`cargo bench -p trainer --bench
//! train_step`, 784-300-100-10, batch 128, Flex): 2.94 ms per step with glibc's defaults,
//! 1.63 ms with both thresholds raised (one alone did nothing: 3.11 and 3.29 ms). The cost: the
//! process keeps up to its peak heap instead of returning it between steps.

/// Serve blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) from the heap and trim
/// it only past 512 MiB free. Call once at start, before threads allocate; a no-op where the C
/// library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both values are in range for 64-bit
    // glibc (a refused value returns 0 and leaves the default, which is merely slower).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
