//! Latches: how a thread that waits for a job learns it is done.
//!
//! The setter must not touch the latch after setting it: the waiter may
//! return and free it (it lives on the waiter's stack). So the setter reads
//! what it needs to wake the waiter first, then sets, then wakes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;

use super::pool::Pool;
use super::worker::WorkerThread;

/// Who waits on a latch.
pub(crate) enum Waiter {
    /// Worker `index` of the runtime that runs the jobs: woken through that
    /// runtime's sleep module (no allocation, no `Thread` clone).
    Worker(usize),
    /// A thread outside the pool, blocked in `park`.
    Thread(Thread),
}

impl Waiter {
    /// The waiter for the current thread, for jobs run by `pool`'s workers.
    pub(crate) fn current(pool: &Pool) -> Waiter {
        match WorkerThread::current_of(pool) {
            Some(w) => Waiter::Worker(w.index),
            None => Waiter::Thread(std::thread::current()),
        }
    }

    /// Something that can wake the waiter, taken before the latch is set.
    fn waker(&self) -> Option<Thread> {
        match self {
            Waiter::Thread(t) => Some(t.clone()),
            // Jobs for a worker's latch run on that runtime's workers (or
            // inline on the waiter itself, which needs no wake-up).
            Waiter::Worker(index) => {
                WorkerThread::current().and_then(|w| w.pool.sleep.thread(*index))
            }
        }
    }

    /// Waits (helping if on a worker) until `done()`.
    pub(crate) fn wait(&self, done: impl Fn() -> bool) {
        match self {
            Waiter::Worker(_) => {
                let worker = WorkerThread::current().expect("a worker waiter runs on its worker");
                worker.help_until(&done, || true, None);
            }
            Waiter::Thread(_) => {
                while !done() {
                    std::thread::park();
                }
            }
        }
    }
}

/// A one-shot latch.
pub(crate) struct Latch {
    set: AtomicBool,
    waiter: Waiter,
}

impl Latch {
    pub(crate) fn new(waiter: Waiter) -> Latch {
        Latch {
            set: AtomicBool::new(false),
            waiter,
        }
    }

    /// Acquire: pairs with `set`, so the job's result is visible.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// # Safety
    /// `this` points to a live latch; it may be freed as soon as the flag is
    /// set, so this function does not touch it afterwards.
    pub(crate) unsafe fn set(this: *const Latch) {
        // SAFETY: alive until the store below (caller's duty).
        let waker = unsafe { (*this).waiter.waker() };
        // SAFETY: as above; Release publishes the job's result.
        unsafe { (*this).set.store(true, Ordering::Release) };
        if let Some(thread) = waker {
            thread.unpark();
        }
    }

    pub(crate) fn wait(&self) {
        self.waiter.wait(|| self.probe());
    }
}

/// A latch set when its count reaches zero (a scope's outstanding jobs).
pub(crate) struct CountLatch {
    count: AtomicUsize,
    waiter: Waiter,
}

impl CountLatch {
    /// Starts at one: the scope body itself.
    pub(crate) fn new(waiter: Waiter) -> CountLatch {
        CountLatch {
            count: AtomicUsize::new(1),
            waiter,
        }
    }

    /// Relaxed: the caller holds a count already, so zero cannot be reached
    /// concurrently.
    pub(crate) fn increment(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// # Safety
    /// As [`Latch::set`]: `this` may be freed once the count is zero.
    pub(crate) unsafe fn decrement(this: *const CountLatch) {
        // SAFETY: alive until the decrement (caller's duty).
        let waker = unsafe { (*this).waiter.waker() };
        // SAFETY: as above. AcqRel: the last decrement sees every job's writes.
        if unsafe { (*this).count.fetch_sub(1, Ordering::AcqRel) } == 1 {
            if let Some(thread) = waker {
                thread.unpark();
            }
        }
    }

    pub(crate) fn wait(&self) {
        self.waiter.wait(|| self.count.load(Ordering::Acquire) == 0);
    }
}
