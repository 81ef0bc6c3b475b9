//! Task ids: non-zero, unique in the process, increasing in each spawning
//! thread's spawn order.

use std::sync::atomic::{AtomicU64, Ordering};

/// The next id to hand out. Starts at 1: 0 is never an id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The next task id.
pub(crate) fn next_id() -> u64 {
    // Relaxed: only uniqueness and per-thread order matter, and the spawn
    // itself publishes the id to any other thread.
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Asks for [`NEXT_ID`]'s cache line in a writable state, ahead of the
/// `fetch_add`, so that it travels while the spawn allocates the task: a
/// hint (`prefetchw`) that does nothing else. Every x86-64 CPU runs
/// `prefetchw` (earlier ones as a no-op); elsewhere this does nothing.
#[inline(always)]
pub(crate) fn prefetch_next_id() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetchw` reads and writes no memory (a cache hint), cannot
    // fault, and touches neither the stack nor the flags.
    unsafe {
        std::arch::asm!(
            "prefetchw [{0}]",
            in(reg) NEXT_ID.as_ptr(),
            options(nostack, preserves_flags, readonly)
        );
    }
}
