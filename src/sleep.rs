//! Parking idle workers and waking them when work appears.
//!
//! # Why no wake-up is lost
//!
//! A worker that found nothing announces itself (pushes its index on the
//! sleeper list and stores the new count), issues a `SeqCst` fence, then
//! looks for work once more before it parks. A thread that makes work
//! available pushes it, issues a `SeqCst` fence, then reads the sleeper
//! count. The two fences order the two store→load pairs (Dekker): either the
//! sleeper's last look sees the new work, or the pusher sees the sleeper and
//! unparks one. `Thread::unpark` before `park` leaves a token, so an unpark
//! that lands between the last look and `park` is not lost either.
//!
//! A pusher that sees no sleeper does no syscall and takes no lock: when all
//! workers are busy, spawning costs one fence and one load here.
//!
//! A worker pushing on its *own* deque skips the fence ([`Sleep::notify_local`]):
//! that worker runs the job itself if nobody steals it (it looks in its own
//! deque before it can sleep, and a helping wait looks there too), so a
//! missed wake-up there can cost parallelism for a moment but never
//! progress; the relaxed check still wakes sleepers in the common case, and
//! the next push retries. This keeps `join` and nested spawns fence-free. One sleeper
//! is woken per push; a worker that steals a batch and leaves work behind
//! wakes the next one (`worker.rs`), so wake-ups grow with the work.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Instant;

pub(crate) struct Sleep {
    sleepers: Mutex<Vec<usize>>,
    /// `sleepers.len()`, readable without the lock.
    count: AtomicUsize,
    threads: Box<[OnceLock<Thread>]>,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        Sleep {
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            count: AtomicUsize::new(0),
            threads: (0..workers).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Called once by each worker thread before it can sleep.
    pub(crate) fn register(&self, index: usize) {
        let _ = self.threads[index].set(std::thread::current());
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        // Nothing under this lock panics; poison cannot happen.
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks worker `index` unless `ready()` turns true after it announced
    /// itself; returns when woken, when `deadline` passes, or at once if ready.
    pub(crate) fn sleep(&self, index: usize, ready: impl Fn() -> bool, deadline: Option<Instant>) {
        {
            let mut list = self.list();
            list.push(index);
            self.count.store(list.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if !ready() {
            match deadline {
                None => std::thread::park(),
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
        let mut list = self.list();
        if let Some(i) = list.iter().position(|&w| w == index) {
            list.swap_remove(i);
            self.count.store(list.len(), Ordering::Relaxed);
        }
    }

    /// After making work available: wake one sleeper, if there is one.
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut list = self.list();
            let woken = list.pop();
            self.count.store(list.len(), Ordering::Relaxed);
            woken
        };
        if let Some(index) = woken {
            self.unpark(index);
        }
    }

    /// After a worker pushed on its own deque: wake a sleeper if one is
    /// visible, without the fence (see the module docs for why that is safe).
    pub(crate) fn notify_local(&self) {
        if self.count.load(Ordering::Relaxed) != 0 {
            self.notify_one();
        }
    }

    /// Wake every worker (shutdown).
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        {
            let mut list = self.list();
            list.clear();
            self.count.store(0, Ordering::Relaxed);
        }
        for index in 0..self.threads.len() {
            self.unpark(index);
        }
    }

    /// Worker `index`'s thread, to wake it directly.
    pub(crate) fn thread(&self, index: usize) -> Option<Thread> {
        self.threads[index].get().cloned()
    }

    fn unpark(&self, index: usize) {
        if let Some(thread) = self.threads[index].get() {
            thread.unpark();
        }
    }
}
