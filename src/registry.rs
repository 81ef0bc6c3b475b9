//! The live-task registry: every task that is not done, for
//! `wsrt_runtime_all_tasks` (asyncio `all_tasks()`) and for
//! `shutdown(Cancel)`, which must reach tasks that sit in no queue
//! (suspended on another task).
//!
//! Intrusive doubly linked lists, sharded so that spawning and finishing
//! threads rarely meet on one lock: a worker lists the tasks it spawns in
//! its own shard (tasks it spawns are mostly finished by itself, from its
//! own deque), other threads spread theirs by task id over the remaining
//! shards. The shard is recorded in the task's state word. Cost per task:
//! one mostly uncontended lock/unlock at spawn and one at finish (a
//! compare-exchange and a plain store each, see [`SpinLock`]), four pointer
//! writes each, and two pointers in the header. The registry holds no
//! reference: a task unlinks itself (in `finish`) before the reference that
//! kept it alive is dropped, so a listed task is always alive while the
//! shard lock is held.
//!
//! While `live_tasks` walks a shard, spawns and finishes that need that
//! shard wait (spinning, then yielding); it is an introspection call.

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_utils::{Backoff, CachePadded};

use crate::task::raw::Header;
use crate::task::state::SHARDS_MAX;
use crate::task::TaskRef;

/// A task's links; touched only under its shard's lock.
pub(crate) struct Links {
    prev: UnsafeCell<*const Header>,
    next: UnsafeCell<*const Header>,
}

impl Links {
    pub(crate) fn new() -> Links {
        Links {
            prev: UnsafeCell::new(ptr::null()),
            next: UnsafeCell::new(ptr::null()),
        }
    }
}

struct Shard {
    head: *const Header,
}

// SAFETY: the raw pointers are only followed under the shard's lock.
unsafe impl Send for Shard {}

/// A shard's lock. Its critical sections are a few pointer writes (and the
/// walk of `live_tasks`), never user code and never a panic, so waiters
/// spin, then yield, instead of parking. What that buys is the unlock: a
/// plain `Release` store where a parking mutex needs a read-modify-write to
/// look for sleepers, one atomic less at every spawn and every finish
/// (`std::sync::Mutex` → this: spawn_wait Rust 324 → 278–291 ns, nested
/// 149 → 129–137, cancel 134 → 122–125; see the commit).
struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a guard, and one guard exists at a
// time (the `locked` flag); `T: Send` is enough to hand it between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}

struct SpinGuard<'a, T>(&'a SpinLock<T>);

impl<T> SpinLock<T> {
    fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn lock(&self) -> SpinGuard<'_, T> {
        let backoff = Backoff::new();
        // Acquire: pairs with the Release of the previous holder's unlock.
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Wait on a plain load so waiters do not bounce the line.
            while self.locked.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
        SpinGuard(self)
    }
}

impl<T> std::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.0.value.get() }
    }
}

impl<T> std::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release: everything done under the lock is visible to the next holder.
        self.0.locked.store(false, Ordering::Release);
    }
}

pub(crate) struct Registry {
    shards: Box<[CachePadded<SpinLock<Shard>>]>,
    /// Shards `0..worker_shards` belong to workers, the rest to other threads.
    worker_shards: usize,
}

impl Registry {
    pub(crate) fn new(workers: usize) -> Registry {
        // One shard per worker, then as many again (at least 8) for spawns
        // from other threads; within what the state word can name.
        let worker_shards = workers.clamp(1, SHARDS_MAX / 2);
        let n = worker_shards + worker_shards.max(8);
        Registry {
            shards: (0..n)
                .map(|_| CachePadded::new(SpinLock::new(Shard { head: ptr::null() })))
                .collect(),
            worker_shards,
        }
    }

    /// The shard for a task spawned by worker `worker` (or from outside).
    pub(crate) fn shard_for(&self, worker: Option<usize>, id: u64) -> usize {
        let external = self.shards.len() - self.worker_shards;
        match worker {
            Some(w) => w % self.worker_shards,
            None => self.worker_shards + (id as usize % external),
        }
    }

    fn shard(&self, header: &Header) -> SpinGuard<'_, Shard> {
        self.shards[header.state.load().shard()].lock()
    }

    /// Links a newly spawned task.
    pub(crate) fn insert(&self, header: &Header) {
        let mut shard = self.shard(header);
        // SAFETY: links of listed tasks are only touched under this lock, and
        // every listed task is alive (module docs).
        unsafe {
            *header.links.prev.get() = ptr::null();
            *header.links.next.get() = shard.head;
            if let Some(head) = shard.head.as_ref() {
                *head.links.prev.get() = header;
            }
        }
        shard.head = header;
    }

    /// Unlinks a task that became final.
    pub(crate) fn remove(&self, header: &Header) {
        let mut shard = self.shard(header);
        // SAFETY: as in `insert`.
        unsafe {
            let prev = *header.links.prev.get();
            let next = *header.links.next.get();
            match prev.as_ref() {
                Some(p) => *p.links.next.get() = next,
                None => shard.head = next,
            }
            if let Some(n) = next.as_ref() {
                *n.links.prev.get() = prev;
            }
        }
    }

    /// Handles to every listed task that is not done, shard by shard.
    pub(crate) fn live_tasks(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let shard = self.shards[i].lock();
            let mut p = shard.head;
            // SAFETY: listed tasks are alive while the lock is held; we add a
            // reference before the lock is released.
            while let Some(header) = unsafe { p.as_ref() } {
                if !header.state.load().is_done() {
                    header.state.ref_inc();
                    // SAFETY: we just added the reference the handle owns.
                    out.push(unsafe { TaskRef::from_raw(NonNull::from(header)) });
                }
                // SAFETY: as above.
                p = unsafe { *header.links.next.get() };
            }
        }
        out
    }
}
