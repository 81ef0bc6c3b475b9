//! Atomics, locks and spin-waits, swapped for loom's in the crate's own tests
//! under `cfg(loom)` so that the task state word, the callbacks, the deque
//! and the task list's table can be model-checked (tokio's `src/loom/`). As
//! tokio does, the swap needs `test` too: loom is a dev-dependency.

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{atomic, Arc, Mutex, MutexGuard};

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{atomic, Arc, Mutex, MutexGuard};

/// Runs a loom model with a preemption bound of 3 unless
/// `LOOM_MAX_PREEMPTIONS` sets one (every model of the crate).
#[cfg(all(test, loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// One step of a spin-wait for another thread's progress: crossbeam's
/// backoff (spins, then yields the CPU), or, in a loom model, a yield, which
/// lets the model schedule the thread waited for.
#[cfg(not(all(test, loom)))]
#[inline]
pub(crate) fn snooze(backoff: &crossbeam_utils::Backoff) {
    backoff.snooze();
}

#[cfg(all(test, loom))]
pub(crate) fn snooze(_: &crossbeam_utils::Backoff) {
    loom::thread::yield_now();
}
