//! Task ids: non-zero, unique in the process, increasing in each spawning
//! thread's spawn order, with no order across threads.
//!
//! Each thread takes ids in blocks of [`BLOCK`] from one process-wide
//! counter and hands them out from its own [`Ids`]: a spawn writes only
//! its own thread's state, and the shared counter once per `BLOCK` spawns
//! of a thread. A thread's blocks come from the counter one after another,
//! so each is above the one before.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first id of the next block. Starts at 1: 0 is never an id.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// Ids per block: more means fewer writes to the shared counter, and
/// larger gaps between the ids of different threads.
const BLOCK: u64 = 1024;

/// In a child after `fork()`: the first id the parent had not handed out
/// to any thread. Every task below it was spawned before the fork, on a
/// runtime the child inherited and cannot run (`sched/fork.rs`). 0 in a
/// process that was not forked from one running wsrt.
static FORK_MARK: AtomicU64 = AtomicU64::new(0);

/// In a child right after `fork()`, on its only thread: tasks spawned
/// before this point are inherited. The caller also empties that thread's
/// [`Ids`] ([`Ids::forget`]), so that what it spawns from now on gets ids
/// above the mark.
pub(crate) fn note_fork() {
    FORK_MARK.store(NEXT_BLOCK.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// True if the task whose id `id()` gives was spawned before the last
/// `fork()` of this process's ancestry, on a runtime this child inherited.
/// `id()` is only called in a process that forked.
#[inline]
pub(crate) fn inherited(id: impl FnOnce() -> u64) -> bool {
    // Relaxed: written only in a child's only thread, before anything else.
    let mark = FORK_MARK.load(Ordering::Relaxed);
    mark != 0 && id() < mark
}

/// A thread's block of ids (kept in its `sched::context::Here`).
pub(crate) struct Ids {
    /// The next id to hand out; equal to `end` when the block is used up.
    next: Cell<u64>,
    end: Cell<u64>,
}

impl Ids {
    pub(crate) const fn new() -> Ids {
        Ids {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// Drops the rest of the block (after a fork: `note_fork`).
    pub(crate) fn forget(&self) {
        self.next.set(0);
        self.end.set(0);
    }

    /// The next id of this thread.
    #[inline]
    pub(crate) fn next(&self) -> u64 {
        let id = self.next.get();
        if id == self.end.get() {
            return self.refill();
        }
        self.next.set(id + 1);
        id
    }

    #[cold]
    #[inline(never)]
    fn refill(&self) -> u64 {
        // Relaxed: only uniqueness matters, which the read-modify-write
        // gives; a thread's own fetch_adds are ordered (coherence), so its
        // blocks increase; the spawn publishes each id with its task.
        let start = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
        self.next.set(start + 1);
        self.end.set(start + BLOCK);
        start
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Ids, BLOCK};

    #[test]
    fn a_thread_hands_out_increasing_ids_across_blocks() {
        let ids = Ids::new();
        let got: Vec<u64> = (0..3 * BLOCK + 5).map(|_| ids.next()).collect();
        assert!(got[0] > 0);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn threads_never_share_an_id() {
        let all: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let ids = Ids::new();
                        (0..2 * BLOCK).map(|_| ids.next()).collect::<Vec<u64>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }
}
