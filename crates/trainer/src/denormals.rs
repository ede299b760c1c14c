//! Flushing subnormal floats to zero while training, on x86-64.
//!
//! Adam's first moment of a weight whose gradient is exactly zero (a dead ReLU unit, an
//! always-black border pixel) shrinks by β1 = 0.9 per step and becomes subnormal after ~700
//! steps; x86 arithmetic on subnormals is many times slower. Measured here
//! (`examples/step_breakdown.rs`, 784-300-100-10, batch 128): 3.6 ms per step at first, 11.3 ms
//! per step from step ~1000 on without this guard. With flush-to-zero (FTZ) and
//! denormals-are-zero (DAZ) set, such values become 0 instead — as `torch.set_flush_denormal`
//! does. Training stays deterministic; only values below ~1.2e-38 are affected. The trainer's
//! process flushes on every thread of rayon's pool for good (`threads.rs`: work moves between
//! them, so they must round alike); `train` sets it for its own thread in any case.

/// Sets FTZ and DAZ on the current thread until dropped, then restores the previous mode.
/// A no-op on other architectures.
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

impl FlushDenormals {
    /// Enables flushing on this thread.
    pub fn enable() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FTZ | DAZ);
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self {}
        }
    }
}

/// Sets FTZ and DAZ on the current thread for the rest of its life: for the threads of a pool
/// whose work moves between them ([`crate::threads`]), which must all round alike.
pub fn flush_for_good() {
    std::mem::forget(FlushDenormals::enable());
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit MXCSR register into the given, valid, writable u32.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(csr: u32) {
    // SAFETY: ldmxcsr loads MXCSR from a valid u32; we only ever load a value read from the
    // register with the FTZ/DAZ bits changed, which are valid on every x86-64 CPU with SSE2.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly, preserves_flags));
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn subnormals_flush_inside_the_guard_and_the_mode_is_restored() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let half = std::hint::black_box(0.5f32);
        assert!(
            (tiny * half).is_subnormal(),
            "without the guard the result is subnormal"
        );
        {
            let _g = FlushDenormals::enable();
            assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(half), 0.0);
        }
        assert!(
            (tiny * half).is_subnormal(),
            "the previous mode is restored"
        );
    }
}
