//! The live-task list: every task that is not done, for `all_tasks`
//! (asyncio `all_tasks()`) and for `shutdown(Cancel)`, which must reach
//! tasks that sit in no queue (suspended on another task). tokio calls
//! its equivalent `OwnedTasks`.
//!
//! Sharded so that spawning and finishing threads rarely meet on one lock:
//! a worker lists the tasks it spawns in its own shard, a *table*
//! (`table.rs`) it lists in and unlists from without the lock; other
//! threads spread theirs by task id, in blocks, over the *outside* shards,
//! intrusive doubly linked lists under their lock. The shard is recorded
//! in the task's state word, the task's place in it in its header
//! (`raw::Links`). The list holds no reference: a task is unlisted by the
//! thread that finished it before that thread drops the reference that
//! kept it alive, so a listed task is alive while its shard's lock is held
//! (and, in a worker's table, while a walk runs). A worker that finishes
//! a task another thread listed keeps it and unlists a batch at a time
//! ([`TaskList::remove_finished`]): a done task may stay listed for a
//! while, and walks skip done tasks.
//!
//! Each shard also counts the spawns from outside and the ends it sees,
//! under the lock its caller takes anyway; shutdown *closes* every shard
//! under its lock before it checks whether all is done, so a count made in
//! an open shard is seen by that check, a spawn finding its shard closed is
//! refused, and an end finding it closed is told so (the protocol is in
//! `docs/design.md`, "Shutdown").

mod table;

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use self::table::Table;
use super::handle::TaskRef;
use super::raw::{Header, Next};
use super::state::{TaskState, SHARDS_MAX};
use crate::sync::spin_lock::SpinLock;

/// The tasks of one shard (module docs).
enum Members {
    /// A worker's shard: its tasks are in `TaskList::tables`, outside the
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

/// Where a shard counts the end `end`.
fn end_index(end: TaskState) -> usize {
    match end {
        TaskState::Succeeded => 1,
        TaskState::Failed => 2,
        TaskState::Cancelled => 3,
        other => unreachable!("{other:?} is not an end"),
    }
}

/// What a shard counts ([`TaskList::count`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tally {
    /// Spawns from threads outside the pool.
    Spawned,
    /// Ends in this final state.
    Ended(TaskState),
}

pub(crate) struct TaskList {
    shards: Box<[CachePadded<Bucket>]>,
    /// Shards `0..worker_shards` belong to workers, the rest are outside shards.
    worker_shards: usize,
    /// The table of each worker shard (`table.rs`).
    tables: Box<[Table]>,
}

/// The fewest outside shards: more shards put a new task's list
/// neighbours further back in the spawn order, where they are done and
/// gone, so listing and unlisting rarely write into a task in flight.
const OUTSIDE_SHARDS_MIN: usize = 64;

/// Tasks spawned from outside go round the outside shards in blocks of
/// this many consecutive ids, one block per shard: a worker's batch of
/// finished tasks (`remove_finished`, at most as many) then falls in one or
/// two shards, unlinked under one or two locks, while the spawner has moved
/// on to the next block's shard.
const OUTSIDE_BLOCK: u64 = 64;

impl TaskList {
    pub(crate) fn new(workers: usize) -> TaskList {
        // One shard per worker, then as many again (at least
        // `OUTSIDE_SHARDS_MIN`) for spawns from other threads; within what
        // the state word can name.
        let worker_shards = workers.clamp(1, SHARDS_MAX / 2);
        let n = worker_shards + worker_shards.max(OUTSIDE_SHARDS_MIN);
        TaskList {
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
    /// without a lock (the caller counts the end itself). A walker may
    /// still reach the task until the worker's next
    /// [`wait_for_walkers`](Self::wait_for_walkers): the caller keeps its
    /// reference to the task until then.
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

    /// When this returns, no walker can reach a task that the worker
    /// owning table `shard` removed with [`remove_own`](Self::remove_own)
    /// before the call: it may drop their references.
    ///
    /// # Safety
    /// Called by the worker owning table `shard` (`is_table`).
    pub(crate) unsafe fn wait_for_walkers(&self, shard: usize) {
        // SAFETY: the caller is the table's owner.
        unsafe { self.tables[shard].wait_for_walkers() };
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
        bump(&bucket.counts[SPAWNED], 1);
        true
    }

    /// Unlists a task that became final and counts its `end` in its shard,
    /// on whatever thread that is. If shutdown already closed the shard,
    /// `closed` runs first, under the lock: this count may be the last one,
    /// so a thread outside the pool must keep the runtime alive (the count
    /// lets shutdown finish) and check for itself afterwards.
    #[inline]
    pub(crate) fn remove(&self, header: &Header, end: TaskState, closed: impl FnOnce()) {
        let index = header.state.load().shard();
        let bucket = &self.shards[index];
        let mut shard = bucket.list.lock();
        self.unlink(index, &mut shard, header);
        if shard.closed {
            closed();
        }
        bump(&bucket.counts[end_index(end)], 1);
    }

    /// Unlists tasks a worker finished and counted itself
    /// (`sched/harness.rs`), grouped by shard: one lock per shard.
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

    /// [`remove`](Self::remove) for tasks that all ended `end`, grouped by
    /// shard: one lock per shard, and one count of the ends it saw.
    /// `closed` runs (under the lock) for each shard shutdown had closed.
    pub(crate) fn remove_ended(
        &self,
        tasks: &mut [TaskRef],
        end: TaskState,
        mut closed: impl FnMut(),
    ) {
        let shard_of = |t: &TaskRef| t.header().state.load().shard();
        // Tasks spawned one after another share a shard (ids in blocks):
        // a batch is most often in order already.
        if !tasks.windows(2).all(|w| shard_of(&w[0]) <= shard_of(&w[1])) {
            tasks.sort_unstable_by_key(shard_of);
        }
        for group in tasks.chunk_by(|a, b| shard_of(a) == shard_of(b)) {
            let index = shard_of(&group[0]);
            let bucket = &self.shards[index];
            let mut shard = bucket.list.lock();
            for task in group {
                self.unlink(index, &mut shard, task.header());
            }
            if shard.closed {
                closed();
            }
            bump(&bucket.counts[end_index(end)], group.len() as u64);
        }
    }

    /// Shutdown: spawns from outside are refused from here on, and ends
    /// report that they came after (module docs).
    pub(crate) fn close(&self) {
        for bucket in self.shards.iter() {
            bucket.list.lock().closed = true;
        }
    }

    /// The sum of what every shard counted of `what`.
    pub(crate) fn count(&self, what: Tally) -> u64 {
        let index = match what {
            Tally::Spawned => SPAWNED,
            Tally::Ended(end) => end_index(end),
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
    /// lock (`f` must not touch the list).
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
                        p = unsafe { (*header.links.next.get()).task };
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
impl TaskList {
    /// How many tasks are listed, done or not.
    pub(crate) fn listed(&self) -> usize {
        let mut n = 0;
        self.walk(|_| n += 1);
        n
    }
}

/// Adds `n` to a count of a shard; the caller holds its lock, so a load
/// and a store do. `Release`, as a worker's own counts (`stats.rs`).
fn bump(count: &AtomicU64, n: u64) {
    count.store(count.load(Ordering::Relaxed) + n, Ordering::Release);
}

impl TaskList {
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
            *links.next.get() = Next { task: *head };
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
                    let next = (*links.next.get()).task;
                    match prev.as_ref() {
                        Some(p) => *p.links.next.get() = Next { task: next },
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
