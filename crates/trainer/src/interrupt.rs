//! Ctrl-C and SIGTERM during a run: the first asks the training loop to stop at the end of the
//! epoch (after a last checkpoint, when the config writes them), so the run folder ends with
//! `"status": "interrupted"` and everything measured so far; a second one stops the process at
//! once with exit code 130. SIGHUP, which a sweep's points get when the sweep dies, only ever
//! asks for the stop at the epoch's end.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process; later calls do nothing). Only training runs call
/// this: a sweep's parent keeps the default action, and its points stop with it.
pub fn install() -> std::io::Result<()> {
    if FLAG.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Order matters: the conditional shutdown sees the flag already set only from the
        // second signal on.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    // A sweep's death (`sweep.rs`, `die_with_parent`): the kernel may send it more than once,
    // so it never stops the run at once.
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&flag))?;
    let _ = FLAG.set(flag);
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
