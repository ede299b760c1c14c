//! The training thread as one of the worker threads that Burn's CPU kernels run on.
//!
//! Flex's matrix products (through the `gemm` crate) and Burn's other parallel kernels run on
//! rayon's global pool. A thread outside the pool that starts a parallel product hands all of
//! it to the pool's workers and sleeps until they finish: on 2 cores that wakes two workers and
//! then the caller again, several context switches for each parallel product of a step. A
//! `perf` profile of the Flex step of 784-300-100-10 put about 13 % of it in the kernel's
//! scheduler (`finish_task_switch`, `_raw_spin_unlock_irqrestore`). With the training thread
//! as one of the pool's workers, it computes its own share of each product and wakes one other
//! worker. The pool keeps its size (`RAYON_NUM_THREADS`, else one thread per core), so the
//! products split their work as before.
//!
//! Which thread runs which share of a product now varies from run to run (the training thread
//! takes back what no worker stole in time), so every thread of the pool must round alike: the
//! calling thread and every worker flush subnormal floats to zero for the rest of the process
//! ([`crate::denormals`] says why training does). Before, the shares ran on workers that did not
//! flush; a product whose inputs or partial sums hold subnormals (below ~1.2e-38) can therefore
//! give other bits than an earlier build's. On Fashion-MNIST, with Flex and with ndarray, runs
//! gave byte-identical metrics and models before and after (docs/performance.md).

use rayon::ThreadPoolBuildError;

use crate::denormals;

/// Builds rayon's global pool with the calling thread as one of its workers, every one of them
/// flushing subnormals to zero. Call once, early, from the thread that will train (the
/// trainer's `main` does), after any `std::env::set_var` (it starts threads) and before
/// anything runs on the pool; an error where the pool exists already.
///
/// The calling thread must outlive every use of the pool and be the only thread outside it
/// that uses it: it does not run rayon's work-stealing loop, so with a pool of one thread
/// (`RAYON_NUM_THREADS=1`) a job that another thread sends to the pool would wait until the
/// calling thread next enters rayon.
pub fn join_thread_pool() -> Result<(), ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .start_handler(|_| denormals::flush_for_good())
        .build_global()?;
    denormals::flush_for_good();
    Ok(())
}

/// [`join_thread_pool`] for benchmarks and examples, unless `LOPPER_POOL_APART` is set (to any
/// value): then the calling thread stays outside the pool, as before 2026-12-03, to measure the
/// difference. The trainer itself always joins.
#[allow(
    clippy::expect_used,
    reason = "benchmarks call it first thing, before anything builds the pool"
)]
pub fn join_thread_pool_unless_apart() {
    if std::env::var_os("LOPPER_POOL_APART").is_none() {
        join_thread_pool().expect("the first call builds rayon's pool");
    }
}
