//! The training thread as one of the worker threads that Burn's CPU kernels run on.
//!
//! Flex's matrix products (through the `gemm` crate) and Burn's other parallel kernels run on
//! rayon's global pool. A thread outside the pool that starts a parallel product hands all of
//! it to the pool's workers and sleeps until they finish: on 2 cores that wakes two workers and
//! then the caller again, several context switches for each of the six products of a step. A
//! `perf` profile of the Flex step of 784-300-100-10 put about 13 % of it in the kernel's
//! scheduler (`finish_task_switch`, `_raw_spin_unlock_irqrestore`). With the training thread
//! as one of the pool's workers, it computes its own share of each product and wakes one other
//! worker. The pool keeps its size (`RAYON_NUM_THREADS`, else one thread per core), so the
//! products split their work as before and give the same numbers.

/// Builds rayon's global pool with the calling thread as one of its workers. Call once, early,
/// from the thread that will train (the trainer's `main` does), before anything runs on the
/// pool: returns false, changing nothing, where the pool exists already. The calling thread must
/// outlive every use of the pool, as `main`'s does.
pub fn join_thread_pool() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}
