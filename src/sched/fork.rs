//! A runtime after `fork()`: the child has none of its worker threads, so
//! a runtime inherited from the parent can never run a task again. Every
//! call that would wait for its workers, or take a lock a parent thread
//! may have held at the fork, answers at once instead (`Error::Forked`,
//! `WSRT_ERR_FORKED`); a runtime made in the child works as any other.
//!
//! A `pthread_atfork` child handler, registered when the first runtime
//! starts, counts forks, and marks where the ids of tasks spawned before
//! the fork end (`task/id.rs`): a pool notes the count it started at, a
//! task is inherited if its id is below the mark. So neither question
//! reads anything a parent thread may have been freeing at the fork.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

use super::pool::Pool;

/// Forks of this process (children count theirs) since wsrt was loaded.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The fork count now: a pool started at another count was inherited.
pub(crate) fn forks() -> u64 {
    // Relaxed: written only in a child's only thread, before anything else
    // runs there.
    FORKS.load(Ordering::Relaxed)
}

/// The pools a child abandoned (`abandon`), kept reachable: a list that
/// only grows, pushed on without a lock.
static ABANDONED: AtomicPtr<Abandoned> = AtomicPtr::new(ptr::null_mut());

struct Abandoned {
    _pool: Arc<Pool>,
    next: *mut Abandoned,
}

/// In a child, a runtime inherited through `fork()` is let go of: nothing
/// of it can be freed safely (tasks that will never end point to it, and
/// its locks may have been held by a parent thread at the fork), so it is
/// kept, reachable, for the life of the process.
pub(crate) fn abandon(pool: Arc<Pool>) {
    let node = Box::into_raw(Box::new(Abandoned {
        _pool: pool,
        next: ptr::null_mut(),
    }));
    let mut head = ABANDONED.load(Ordering::Relaxed);
    loop {
        // SAFETY: `node` is ours until the exchange publishes it.
        unsafe { (*node).next = head };
        // Release: publishes the node's fields (read by nobody, but kept
        // consistent); the list is never popped, so no ABA.
        match ABANDONED.compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// Registers the child handler, once per process (a child inherits it).
pub(crate) fn watch_forks() {
    #[cfg(all(unix, not(miri)))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: registers a handler that only touches an atomic and
            // this thread's context; a failure (ENOMEM) leaves forks
            // uncounted, as before wsrt knew of them.
            unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
    }
}

/// Runs in the child, on its only thread, right after the fork.
#[cfg(all(unix, not(miri)))]
extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    crate::task::id::note_fork();
    // A fork from inside a task leaves this thread looking like a worker
    // of a runtime that has none: it is an outside thread here.
    super::context::forget_inherited();
}
