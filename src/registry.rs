//! The live-task registry: every task that is not done, for
//! `wsrt_runtime_all_tasks` (asyncio `all_tasks()`) and for
//! `shutdown(Cancel)`, which must reach tasks that sit in no queue
//! (suspended on another task).
//!
//! Sharded so that spawning and finishing threads rarely meet on one
//! lock: a worker lists the tasks it spawns in its own shard (tasks it
//! spawns are mostly finished by itself, from its own deque), other threads
//! spread theirs by task id (blocks of 64) over the remaining *outside*
//! shards. The shard is recorded in the task's state word, the task's place
//! in it in its header ([`Links`]). The registry holds no reference: a task
//! is unlisted by the thread that finished it before that thread drops the
//! reference that kept it alive, so a listed task is always alive while
//! the shard lock is held (and, in a worker's table, while a walk runs).
//!
//! # Two shapes: a table for a worker, a list for the others
//!
//! A worker's shard is a table (`table.rs`): a listed task's slot holds
//! its address, and the worker lists and unlists its own tasks there
//! without the lock, with plain stores; other threads unlisting one of its
//! tasks, and walkers, take the shard's lock. A walker keeps the worker
//! from dropping a task it may be reading with a flag and an asymmetric
//! fence (`membarrier` on Linux): the worker's side costs a plain load.
//! An outside shard is an intrusive doubly linked list, under its lock:
//! the spawning thread lists 64 tasks in a row, the worker that ran them
//! unlists them together, and they are each other's neighbours, in that
//! worker's cache by then. In a list, listing a task writes into the task
//! listed before it; for a worker, those are tasks it spawned just before,
//! often stolen by another worker and running there, whose header lines
//! each such write took back (lists → tables under the lock, side by side,
//! `wsrt_bench W 1 5 ARGS`: nested 49.0 → 45.2 ns a task, median of 16
//! rounds' medians, faster in 10 of 16; spawn_wait 77.5 → 73.6, 10 of 12).
//! Tables for outside shards were slower (spawn_wait 8%): a row freed by
//! a worker is a line the spawner must take back at its next spawn.
//! Without the lock on the worker's own path (a compare-exchange and a
//! store at spawn and at finish), side by side with the locked table:
//! `wsrt_bench fib 1 5 30` 37.4 → 35.9 ns a task (faster in 7 of 8
//! rounds), `wsrt_bench nested 1 5 1000 1000` level (faster in 6 of 10,
//! −1.3 ns). A table keeps its largest size (8 bytes a slot) until the
//! runtime is freed.
//!
//! Workers past the state word's reach (`SHARDS_MAX / 2`, 256) list their
//! spawns in an outside shard's list, under its lock.
//!
//! A worker that finishes a task another thread listed (spawned from
//! outside, or stolen from another worker) does not unlink it at once: it
//! keeps it, with its reference, and unlinks a batch at a time, one lock
//! per shard ([`Registry::remove_finished`], `WorkerThread::unlist_finished`
//! in `worker.rs`). Unlinked one by one, each such task took the lock line
//! from the spawning thread and gave it back at its next spawn. A done task
//! may so stay listed for a while; `live_tasks` skips done tasks.
//!
//! # Counting spawns from outside, and every end
//!
//! Workers count what they spawn in their own counter slots (`stats.rs`,
//! plain stores), and the ends (a task becoming SUCCEEDED, FAILED or
//! CANCELLED) of the tasks they run to their end and unlist from their
//! own table or keep for a batch. Other threads count their
//! spawns in the outside shard that lists the task, and every other end is
//! counted in the shard that listed the task, under the lock that the
//! thread takes anyway to unlist it. The lock, the list and the counts
//! share one cache line, so counting costs no atomic read-modify-write of
//! its own, and an end needs no look-up of the current worker (a
//! thread-local access, which in `libwsrt.so` is a call).
//! Before, a spawn from outside paid a `SeqCst` CAS on a shared counter, a
//! cancel from outside a `fetch_add`, and a cancel the thread-local
//! look-up; per task of the C cancel workload, the two atomics cost 13–19
//! ns and the look-up 3–6 (see the commits).
//!
//! The lock also orders those counts against shutdown, which *closes*
//! every shard (under its lock) before it checks whether all is done
//! (`runtime.rs`): a spawn or end counted in an open shard is ordered
//! before the close, so shutdown's check sees it; a spawn from outside
//! finding its shard closed is refused; an end finding it closed is told so
//! (under the lock, before it counts), and a thread outside the pool then
//! checks for itself (a worker checks when it next goes idle).
//!
//! While `live_tasks` walks a shard, spawns and finishes that need that
//! shard's lock wait (spinning, then yielding), and so does a worker
//! unlisting its own task from the table being walked; a worker's own
//! spawns do not wait. It is an introspection call.

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::{Backoff, CachePadded};

use crate::stats::Counter;
use crate::table::Table;
use crate::task::raw::Header;
use crate::task::state::SHARDS_MAX;
use crate::task::TaskRef;

/// A task's place in its shard: its slot in a worker's table
/// (`slot_or_prev`: written by the worker before the task is listed, read
/// by the thread that unlists it), or its neighbours in an outside shard's
/// list (touched only under the shard's lock).
pub(crate) struct Links {
    slot_or_prev: UnsafeCell<usize>,
    next: UnsafeCell<*const Header>,
}

impl Links {
    pub(crate) fn new() -> Links {
        Links {
            slot_or_prev: UnsafeCell::new(0),
            next: UnsafeCell::new(ptr::null()),
        }
    }
}

/// The tasks of one shard (module docs).
enum Members {
    /// A worker's shard: its tasks are in `Registry::tables`, outside the
    /// lock; a task's `slot_or_prev` is its slot's address there.
    Table,
    /// An outside shard; a task's `slot_or_prev` is the previous task's
    /// address (0 for the head).
    List { head: *const Header },
}

struct Shard {
    members: Members,
    /// Set by shutdown; see "Counting" in the module docs.
    closed: bool,
}

// SAFETY: the addresses in `members` are only followed under the shard's
// lock.
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

    #[inline]
    fn lock(&self) -> SpinGuard<'_, T> {
        if !self.try_lock() {
            self.lock_contended();
        }
        SpinGuard(self)
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release of the previous holder's unlock.
        self.locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Out of line: spawns and finishes inline only the first try.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let backoff = Backoff::new();
        loop {
            // Wait on a plain load so waiters do not bounce the line.
            while self.locked.load(Ordering::Relaxed) {
                backoff.snooze();
            }
            if self.try_lock() {
                return;
            }
        }
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

/// One shard: its lock, its list and its counts, on one cache line.
struct Bucket {
    list: SpinLock<Shard>,
    /// See [`SHARD_COUNTERS`]: written under the lock, read without it.
    counts: [AtomicU64; SHARD_COUNTERS],
}

/// The counts a shard keeps: spawns from outside (outside shards only),
/// then ends by state, `Succeeded`, `Failed`, `Cancelled` (every shard).
const SHARD_COUNTERS: usize = 4;
const SPAWNED: usize = 0;

fn end_index(end: Counter) -> usize {
    match end {
        Counter::Succeeded => 1,
        Counter::Failed => 2,
        Counter::Cancelled => 3,
        _ => unreachable!("not an end state"),
    }
}

pub(crate) struct Registry {
    shards: Box<[CachePadded<Bucket>]>,
    /// Shards `0..worker_shards` belong to workers, the rest are outside shards.
    worker_shards: usize,
    /// The table of each worker shard (`table.rs`).
    tables: Box<[Table]>,
}

/// The fewest outside shards. Tasks spawned from outside go round them by
/// id (in blocks, `OUTSIDE_BLOCK`, since this was measured), so a task's
/// list neighbours were spawned this many spawns apart. When
/// the workers keep up with an outside spawner, those neighbours are the
/// tasks in flight: with 8 shards, linking a new task wrote into a task a
/// worker was running, and unlinking a finished one into the task the
/// spawner was filling in; from 64 on, the neighbours are mostly done and
/// gone and the lists nearly empty. Measured through the C ABI
/// (`target/peers/wsrt_bench W 1 7 500000`, per-process medians of 7,
/// 3 processes each, alternating), 8 → 32 / 64 / 128 shards: spawn_wait
/// 155–158 → 150–154 / 134–137 / 133–136 ns, callbacks 183–222 → 164–169 /
/// 150–161 / 153–155; detached and cancel unchanged.
const OUTSIDE_SHARDS_MIN: usize = 64;

/// Tasks spawned from outside go round the outside shards in blocks of
/// this many consecutive ids, one block per shard, rather than one task per
/// shard: a worker's batch of finished tasks (`remove_finished`, at most as
/// many) then falls in one or two shards, unlinked under one or two locks,
/// and its tasks are each other's list neighbours; meanwhile the spawner
/// has moved on to the next block's shard. (Without the batches, blocks
/// made callbacks and cancel slower: each finish met the spawner on the
/// shard it was filling.) Side by side with one task per shard (old and
/// new library alternating, `target/peers/wsrt_bench W 1 10 N` and the
/// bench's `--child W wsrt_rust`; medians of 10 runs), ns per task: detached
/// C 65–68 → 57–62, Rust 67–75 → 56–62; cancel C 80–90 → 74; callbacks
/// equal while the vCPUs are near each other, C 204–216 → 102–108 and Rust
/// 257–263 → 128–175 while the host has them far apart.
const OUTSIDE_BLOCK: u64 = 64;

impl Registry {
    pub(crate) fn new(workers: usize) -> Registry {
        // One shard per worker, then as many again (at least
        // `OUTSIDE_SHARDS_MIN`) for spawns from other threads; within what
        // the state word can name.
        let worker_shards = workers.clamp(1, SHARDS_MAX / 2);
        let n = worker_shards + worker_shards.max(OUTSIDE_SHARDS_MIN);
        Registry {
            shards: (0..n)
                .map(|i| {
                    CachePadded::new(Bucket {
                        list: SpinLock::new(Shard {
                            members: if i < worker_shards {
                                Members::Table
                            } else {
                                Members::List { head: ptr::null() }
                            },
                            closed: false,
                        }),
                        counts: std::array::from_fn(|_| AtomicU64::new(0)),
                    })
                })
                .collect(),
            worker_shards,
            tables: (0..worker_shards).map(|_| Table::new()).collect(),
        }
    }

    /// Where worker `index` lists the tasks it spawns (`WorkerThread::shard`,
    /// computed once: a division per spawn is not free): its own table,
    /// or for workers beyond the state word's reach, an outside shard's
    /// list, under its lock.
    pub(crate) fn worker_shard(&self, index: usize) -> usize {
        if index < self.worker_shards {
            index
        } else {
            self.worker_shards + index % (self.shards.len() - self.worker_shards)
        }
    }

    /// Whether `shard` is a worker's table, which its worker lists in and
    /// unlists from without the lock (`insert`, `remove_own`).
    #[inline]
    pub(crate) fn is_table(&self, shard: usize) -> bool {
        shard < self.worker_shards
    }

    /// The shard for task `id` spawned from outside the pool (a worker's
    /// spawns go to its own, `worker_shard`).
    pub(crate) fn outside_shard(&self, id: u64) -> usize {
        let outside = self.shards.len() - self.worker_shards;
        self.worker_shards + ((id / OUTSIDE_BLOCK) as usize % outside)
    }

    fn bucket(&self, header: &Header) -> &Bucket {
        &self.shards[header.state.load().shard()]
    }

    /// Lists a task spawned by a worker (which counts it itself), in its
    /// table without a lock.
    ///
    /// # Safety
    /// Called by the worker whose shard (`worker_shard`) `header` names.
    #[inline]
    pub(crate) unsafe fn insert(&self, header: &Header) {
        let index = header.state.load().shard();
        match self.tables.get(index) {
            Some(table) => {
                let address = header as *const Header as usize;
                // SAFETY: the caller is the table's owner. The slot goes
                // into the links before the task is listed: a walker that
                // finds it may cancel it, which reads them to unlist it.
                unsafe {
                    table.insert(address, |slot| {
                        *header.links.slot_or_prev.get() = slot;
                    })
                };
            }
            None => self.insert_listed(index, header),
        }
    }

    /// `insert` for a worker beyond the state word's reach (`worker_shard`).
    #[cold]
    #[inline(never)]
    fn insert_listed(&self, index: usize, header: &Header) {
        self.link(index, &mut self.shards[index].list.lock(), header);
    }

    /// Unlists a task that a worker ran to its end from its own table,
    /// without a lock (the caller counts the end itself). When this
    /// returns, no walker can reach the task.
    ///
    /// # Safety
    /// Called by the worker whose table (`is_table`) `header` names.
    #[inline]
    pub(crate) unsafe fn remove_own(&self, header: &Header) {
        let table = &self.tables[header.state.load().shard()];
        // SAFETY: only the thread that unlists a task reads its links,
        // and the caller is the table's owner.
        unsafe { table.remove_own(*header.links.slot_or_prev.get()) };
    }

    /// Lists a task spawned from outside the pool and counts it, unless
    /// shutdown closed its shard: then nothing happens and the spawn is
    /// refused (false).
    #[inline]
    pub(crate) fn insert_outside(&self, header: &Header) -> bool {
        let bucket = self.bucket(header);
        let mut shard = bucket.list.lock();
        if shard.closed {
            return false;
        }
        self.link(header.state.load().shard(), &mut shard, header);
        bump(&bucket.counts[SPAWNED]);
        true
    }

    /// Unlists a task that became final and counts its `end` in its shard,
    /// on whatever thread that is. If shutdown already closed the shard,
    /// `closed` runs first, under the lock: this count may be the last one,
    /// so a thread outside the pool must keep the runtime alive (the count
    /// lets shutdown finish) and check for itself afterwards.
    #[inline]
    pub(crate) fn remove(&self, header: &Header, end: Counter, closed: impl FnOnce()) {
        let index = header.state.load().shard();
        let bucket = &self.shards[index];
        let mut shard = bucket.list.lock();
        self.unlink(index, &mut shard, header);
        if shard.closed {
            closed();
        }
        bump(&bucket.counts[end_index(end)]);
    }

    /// Unlists tasks a worker finished and counted itself (`raw.rs`,
    /// `finish_on_worker`), grouped by shard: one lock per shard.
    #[inline]
    pub(crate) fn remove_finished(&self, tasks: &mut [TaskRef]) {
        let shard_of = |t: &TaskRef| t.header().state.load().shard();
        tasks.sort_unstable_by_key(shard_of);
        for group in tasks.chunk_by(|a, b| shard_of(a) == shard_of(b)) {
            let index = shard_of(&group[0]);
            let mut shard = self.shards[index].list.lock();
            for task in group {
                self.unlink(index, &mut shard, task.header());
            }
        }
    }

    /// Shutdown: spawns from outside are refused from here on, and ends
    /// report that they came after (module docs).
    pub(crate) fn close(&self) {
        for bucket in self.shards.iter() {
            bucket.list.lock().closed = true;
        }
    }

    /// The part of counter `c` kept in the shards.
    pub(crate) fn count(&self, c: Counter) -> u64 {
        let index = match c {
            Counter::Spawned => SPAWNED,
            Counter::Succeeded | Counter::Failed | Counter::Cancelled => end_index(c),
            _ => return 0,
        };
        self.shards
            .iter()
            .map(|b| b.counts[index].load(Ordering::SeqCst))
            .sum()
    }

    /// Handles to every listed task that is not done, shard by shard.
    pub(crate) fn live_tasks(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        self.walk(|header| {
            if !header.state.load().is_done() {
                // Under the shard's lock, so the task is alive to take it.
                header.state.ref_inc();
                // SAFETY: we just added the reference the handle owns.
                out.push(unsafe { TaskRef::from_raw(NonNull::from(header)) });
            }
        });
        out
    }

    /// Calls `f` on every listed task, done or not, each shard under its
    /// lock (`f` must not touch the registry).
    fn walk(&self, mut f: impl FnMut(&Header)) {
        for (index, bucket) in self.shards.iter().enumerate() {
            let shard = bucket.list.lock();
            match &shard.members {
                Members::Table => {
                    // SAFETY: we hold the shard's lock; a listed value is a
                    // task's header, alive while it is listed and walked
                    // (`table.rs`).
                    unsafe { self.tables[index].walk(|task| f(&*(task as *const Header))) };
                }
                Members::List { head } => {
                    let mut p = *head;
                    // SAFETY: listed tasks are alive while the lock is held.
                    while let Some(header) = unsafe { p.as_ref() } {
                        f(header);
                        // SAFETY: as above.
                        p = unsafe { *header.links.next.get() };
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
impl Registry {
    /// How many tasks are listed, done or not.
    pub(crate) fn listed(&self) -> usize {
        let mut n = 0;
        self.walk(|_| n += 1);
        n
    }
}

/// Adds one to a count of a shard; the caller holds its lock, so
/// a load and a store do. `Release`, as a worker's own counts (`stats.rs`).
fn bump(count: &AtomicU64) {
    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
}

impl Registry {
    /// Lists `header` in list shard `index` (`shard` is its locked part).
    #[inline]
    fn link(&self, index: usize, shard: &mut Shard, header: &Header) {
        let links = &header.links;
        let address = header as *const Header as usize;
        let Members::List { head } = &mut shard.members else {
            unreachable!("shard {index} is a table, which only its worker lists in");
        };
        // SAFETY: a listed task's links are only touched under its shard's
        // lock, which the caller holds (it has `&mut Shard`), and every
        // listed task is alive (module docs).
        unsafe {
            *links.slot_or_prev.get() = 0;
            *links.next.get() = *head;
            if let Some(old) = head.as_ref() {
                *old.links.slot_or_prev.get() = address;
            }
        }
        *head = header;
    }

    /// Takes `header` out of shard `index` (`shard` is its locked part).
    #[inline]
    fn unlink(&self, index: usize, shard: &mut Shard, header: &Header) {
        let links = &header.links;
        match &mut shard.members {
            Members::Table => {
                // SAFETY: we hold the shard's lock, and the slot is the
                // task's, listed (only the thread that unlists a task reads
                // its links after `insert` wrote them).
                unsafe { self.tables[index].remove_remote(*links.slot_or_prev.get()) };
            }
            Members::List { head } => {
                // SAFETY: as in `link`.
                unsafe {
                    let prev = *links.slot_or_prev.get() as *const Header;
                    let next = *links.next.get();
                    match prev.as_ref() {
                        Some(p) => *p.links.next.get() = next,
                        None => *head = next,
                    }
                    if let Some(n) = next.as_ref() {
                        *n.links.slot_or_prev.get() = prev as usize;
                    }
                }
            }
        }
    }
}
