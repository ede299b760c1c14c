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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

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
    let _ = JOINED.set(std::thread::current().id());
    Ok(())
}

/// The thread that joined the global pool ([`join_thread_pool`]), the one [`KeepAwake`] works
/// for.
static JOINED: OnceLock<ThreadId> = OnceLock::new();

/// Set (to any value) where the pool's workers should sleep between products while training,
/// as rayon's do by default: for cores shared with other work. A sweep sets it for points that
/// run several at once.
pub const SLEEP_ENV: &str = "LOPPER_POOL_SLEEP";

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

/// While it lives, the pool's other workers look for work without pause instead of going to
/// sleep; dropped, they go back to rayon's own idling (a few dozen yields, then sleep).
///
/// Rayon puts an idle worker to sleep within microseconds, and the training step leaves the
/// pool idle between its parallel products (the element-wise work between them runs on the
/// training thread alone), so each product had to wake a sleeping worker. On a virtual
/// machine that is an interrupt to a halted core: `examples/step_breakdown.rs` measured the
/// Flex step of 784-300-100-10 at 1.41–1.45 ms with sleeping workers and 1.08–1.16 ms with
/// polling ones. OpenMP's threads (PyTorch's) likewise spin for a while between parallel
/// regions before they block (`OMP_WAIT_POLICY`, `GOMP_SPINCOUNT`). The workers do the same
/// work either way, so the numbers do not change.
///
/// The cost is a core per worker kept busy while the guard lives, which is why training on the
/// CPU backends holds it (`train.rs`) and nothing else does. A polling worker calls
/// `sched_yield` whenever it finds no work, which lets a thread waiting for the same core run,
/// but the worker still counts as busy: where processes share the cores (a sweep running
/// several points at once) they should not poll, and the sweep sets [`SLEEP_ENV`] for them.
///
/// Inert unless the calling thread is the one that joined the global pool
/// ([`join_thread_pool`]), as the trainer's training thread is, and [`SLEEP_ENV`] is unset:
/// any other thread's products go to the pool from outside and wake it anyway, tests that
/// train on their own threads should not keep cores busy, and two guards held on two workers
/// could each end up polling inside the other's job, waiting for a drop that never comes.
pub struct KeepAwake {
    shared: Option<Arc<Awake>>,
}

/// The job a guard sends to every worker of its pool.
type PollJob = Box<dyn Fn(rayon::BroadcastContext<'_>) + Send + Sync + 'static>;

/// What a guard shares with its polling workers.
#[derive(Default)]
struct Awake {
    /// Set when the guard is dropped.
    stop: AtomicBool,
    /// Workers polling now.
    polling: AtomicUsize,
}

impl KeepAwake {
    /// Every other worker of the global pool polls for work until the guard is dropped, where
    /// the calling thread joined the pool and [`SLEEP_ENV`] is unset; otherwise nothing happens.
    pub fn new() -> Self {
        let joined = JOINED.get() == Some(&std::thread::current().id());
        let me = rayon::current_thread_index().filter(|_| joined);
        if std::env::var_os(SLEEP_ENV).is_some() {
            return Self { shared: None };
        }
        Self::start(me, |job| rayon::spawn_broadcast(job))
    }

    /// The guard for the caller, worker `me` of the pool that `broadcast` sends a job to every
    /// worker of; inert for `None`.
    fn start(me: Option<usize>, broadcast: impl FnOnce(PollJob)) -> Self {
        let shared = me.map(|me| {
            let shared = Arc::new(Awake::default());
            broadcast(Box::new(poll_until_stopped(me, Arc::clone(&shared))));
            shared
        });
        Self { shared }
    }
}

impl Default for KeepAwake {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The job every worker of a pool gets: all but `caller` look for work (run a stolen job, or
/// yield the core) until `shared.stop`. The caller's copy returns at once, since the caller
/// runs it whenever it waits inside rayon (it would otherwise poll forever, with the guard's
/// owner stuck inside it).
fn poll_until_stopped(
    caller: usize,
    shared: Arc<Awake>,
) -> impl Fn(rayon::BroadcastContext<'_>) + Send + Sync + 'static {
    move |ctx| {
        if ctx.index() == caller {
            return;
        }
        shared.polling.fetch_add(1, Ordering::Relaxed);
        while !shared.stop.load(Ordering::Relaxed) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::thread::yield_now();
            }
        }
        shared.polling.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use rayon::prelude::*;

    use super::*;

    /// Waits up to ten seconds for `done`.
    fn eventually(done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn the_other_workers_poll_while_the_guard_lives_and_the_caller_goes_on_working() {
        let (tx, rx) = mpsc::channel();
        // A thread that joins its pool, as the trainer's main thread joins the global one.
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .use_current_thread()
                .build()
                .unwrap();
            let guard =
                KeepAwake::start(pool.current_thread_index(), |job| pool.spawn_broadcast(job));
            let shared = Arc::clone(guard.shared.as_ref().unwrap());
            let polling = || shared.polling.load(Ordering::Relaxed);
            let both = eventually(|| polling() == 2);
            // The caller looks for work: its own copy of the job is there, and must return.
            pool.yield_now();
            // Parallel work the polling workers steal.
            let sum: u64 = pool.install(|| (0..1_000_000u64).into_par_iter().sum());
            drop(guard);
            let stopped = eventually(|| polling() == 0);
            tx.send((both, sum, stopped)).unwrap();
        });
        let (both, sum, stopped) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the caller got stuck polling instead of working");
        assert!(both, "the two other workers did not start polling");
        assert_eq!(sum, 499_999_500_000);
        assert!(
            stopped,
            "the workers went on polling after the guard was dropped"
        );
    }

    #[test]
    fn the_guard_does_nothing_for_a_thread_that_did_not_join_the_pool() {
        // The test's own thread is no worker of any pool.
        assert!(KeepAwake::new().shared.is_none());
        // A worker of a pool that did not join it as the trainer's thread does: two such
        // guards could each poll inside the other's job.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        assert!(pool.install(|| KeepAwake::new().shared.is_none()));
    }
}
