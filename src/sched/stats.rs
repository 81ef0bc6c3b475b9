//! Counters: one cache-padded slot per worker (written only by that worker,
//! so an increment is a plain load and store) and one shared slot for every
//! other thread (atomic increments). Spawns from outside the pool, and the
//! ends (succeeded, failed, cancelled) that no worker counts for itself, are
//! counted in the task list's shards instead (`task/list/mod.rs`); the
//! sums here add them.

use crossbeam_utils::CachePadded;

use crate::sync::loom::atomic::{AtomicU64, Ordering};
use crate::task::list::{Tally, TaskList};
use crate::task::TaskState;

/// What is counted. `Unsuspends` counts SUSPENDED → RUNNING or CANCELLED.
/// `Succeeded`, `Failed` and `Cancelled` are counted here by a worker for
/// the tasks it ran to their end (`harness.rs`, `finish_own` and
/// `finish_on_worker`), and by the task list for every other end.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Spawned,
    Succeeded,
    Failed,
    Cancelled,
    Steals,
    RunsStarted,
    RunsEnded,
    Suspends,
    Unsuspends,
    CallbackPanics,
}

const N: usize = 10;

pub(crate) struct Slot([AtomicU64; N]);

pub(crate) struct Counters {
    /// One per worker, then one per lane (if any), then the shared one.
    slots: Box<[CachePadded<Slot>]>,
    workers: usize,
}

/// The slot a thread counts in: its worker's, its lane's (written only by
/// the lane's owner), or the shared one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    Worker(usize),
    Lane(usize),
    Other,
}

/// A snapshot of a runtime's counters (`wsrt_stats` in C).
///
/// Totals are exact once the runtime is shut down; while it runs, each
/// figure is read separately and may be a moment stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tasks spawned since start.
    pub spawned: u64,
    /// Tasks that ended SUCCEEDED.
    pub succeeded: u64,
    /// Tasks that ended FAILED.
    pub failed: u64,
    /// Tasks that ended CANCELLED.
    pub cancelled: u64,
    /// Tasks not started yet (and not cancelled).
    pub pending: u64,
    /// Tasks running now.
    pub running: u64,
    /// Tasks suspended now.
    pub suspended: u64,
    /// Jobs taken from another worker's deque.
    pub steals: u64,
    /// Worker threads.
    pub workers: u64,
    /// Done-callbacks that panicked (caught).
    pub callback_panics: u64,
    /// Wake-ups of a sleeping worker by another worker that first narrowed
    /// the sleeper's CPU affinity to keep it off the waker's CPU, where Linux
    /// would often queue it (Linux only; the sleeper widens its affinity back
    /// as soon as it is awake).
    pub steered_wakes: u64,
}

impl Counters {
    pub(crate) fn new(workers: usize) -> Counters {
        Counters::with_lanes(workers, 0)
    }

    /// Counters with a slot for each of `lanes` lanes too (a group's: the
    /// threads outside the pool that spawn into it count without an atomic
    /// read-modify-write).
    pub(crate) fn with_lanes(workers: usize, lanes: usize) -> Counters {
        Counters {
            slots: (0..=workers + lanes)
                .map(|_| CachePadded::new(Slot(std::array::from_fn(|_| AtomicU64::new(0)))))
                .collect(),
            workers,
        }
    }

    /// Adds one from `who`; `order` is the store's for a slot of its own
    /// (`Release`, or `SeqCst` where a waiter must not miss it), and a
    /// shared slot's read-modify-write is `SeqCst`.
    pub(crate) fn add(&self, who: Who, c: Counter, order: Ordering) {
        self.add_n(who, c, 1, order);
    }

    /// [`add`](Self::add) of `n` at once.
    #[inline]
    pub(crate) fn add_n(&self, who: Who, c: Counter, n: u64, order: Ordering) {
        let slot = match who {
            Who::Worker(i) => i,
            Who::Lane(j) if self.workers + j < self.slots.len() - 1 => self.workers + j,
            _ => {
                self.external(c).fetch_add(n, Ordering::SeqCst);
                return;
            }
        };
        let cell = &self.slots[slot].0[c as usize];
        cell.store(cell.load(Ordering::Relaxed) + n, order);
    }

    /// The sum of every slot's count of `c` (`SeqCst` loads).
    pub(crate) fn total(&self, c: Counter) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0[c as usize].load(Ordering::SeqCst))
            .sum()
    }

    /// Adds one from the worker that owns slot `worker`. `Release`, so a
    /// thread that reads a done count with `Acquire` also sees every count
    /// this worker made before (shutdown relies on it, see `runtime.rs`).
    pub(crate) fn add_owned(&self, worker: usize, c: Counter) {
        self.add_owned_n(worker, c, 1);
    }

    pub(crate) fn add_owned_n(&self, worker: usize, c: Counter, n: u64) {
        let cell = &self.slots[worker].0[c as usize];
        cell.store(cell.load(Ordering::Relaxed) + n, Ordering::Release);
    }

    /// Adds one from any other thread. Only statistics reach here (spawns
    /// from outside and ends are counted by the task list), so `Relaxed`.
    pub(crate) fn add_external(&self, c: Counter) {
        self.external(c).fetch_add(1, Ordering::Relaxed);
    }

    fn external(&self, c: Counter) -> &AtomicU64 {
        &self.slots[self.slots.len() - 1].0[c as usize]
    }

    fn sum(&self, c: Counter, tasks: &TaskList) -> u64 {
        let here = self.total(c);
        let listed = match c {
            Counter::Spawned => tasks.count(Tally::Spawned),
            Counter::Succeeded => tasks.count(Tally::Ended(TaskState::Succeeded)),
            Counter::Failed => tasks.count(Tally::Ended(TaskState::Failed)),
            Counter::Cancelled => tasks.count(Tally::Ended(TaskState::Cancelled)),
            _ => 0,
        };
        here + listed
    }

    /// True if every spawned task is counted done. Done counts are read
    /// first: a done count can only include tasks whose spawn is visible by
    /// then (Release/Acquire chain), so equality means nothing is live.
    pub(crate) fn all_done(&self, tasks: &TaskList) -> bool {
        let done = self.sum(Counter::Succeeded, tasks)
            + self.sum(Counter::Failed, tasks)
            + self.sum(Counter::Cancelled, tasks);
        done == self.sum(Counter::Spawned, tasks)
    }

    pub(crate) fn snapshot(&self, workers: usize, tasks: &TaskList, steered_wakes: u64) -> Stats {
        let sum = |c| self.sum(c, tasks);
        let succeeded = sum(Counter::Succeeded);
        let failed = sum(Counter::Failed);
        let cancelled = sum(Counter::Cancelled);
        let running = sum(Counter::RunsStarted).saturating_sub(sum(Counter::RunsEnded));
        let suspended = sum(Counter::Suspends).saturating_sub(sum(Counter::Unsuspends));
        let spawned = sum(Counter::Spawned);
        Stats {
            spawned,
            succeeded,
            failed,
            cancelled,
            pending: spawned.saturating_sub(succeeded + failed + cancelled + running + suspended),
            running,
            suspended,
            steals: sum(Counter::Steals),
            workers: workers as u64,
            callback_panics: sum(Counter::CallbackPanics),
            steered_wakes,
        }
    }
}
