//! Groups: structured cancellation (asyncio's TaskGroup, Trio's nurseries,
//! oneTBB's `task_group_context`), as the scheduler sees them.
//!
//! A grouped task's header points to its group instead of its pool (the
//! GROUPED flag of its state word says which), so a group costs its tasks
//! no memory. A group is cancelled by one flag, set on it and on every
//! group below it. Nobody walks the group's tasks: a worker that pops a
//! PENDING task checks its group's flag and cancels it there; a RUNNING
//! task sees the flag through `cancel_requested()`; a task that suspends
//! checks it after parking; a thread outside the pool that waits for the
//! group ends those its own lane still holds (`wait.rs`, `TakeBack`). Only
//! tasks already parked (SUSPENDED in no queue: awaiting, sleeping) are
//! looked for, in the live-task list, and only if the group ever had one
//! (`has_parked`, a store-then-load against the parking task's: one of the
//! two sees the other). [`CancelFlags`] holds the two flags and that
//! handshake (and is what the loom models of `sched/loom_tests.rs` drive).
//!
//! Counts are kept per thread, as the pool's are: a worker's slot, a
//! lane's (its thread's), or a shared one. A task's end is counted with a
//! `SeqCst` store, then the pool's count of group waiters read: a waiter
//! registers, then sums the counts, so either it sees the end or the
//! finisher sees it and wakes it (`Pool::notify_group_waiters`).
//!
//! Lifetime: tasks hold no reference to their group; they reach it only
//! while they are not counted done. A group lives while a handle holds it
//! (`Group`, `wsrt_group *`) or, once the last handle is gone, while the
//! pool keeps it in its orphans until its tasks are done
//! ([`Pool::reap_orphans`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::pool::Pool;
use super::stats::{Counter, Counters, Who};
use super::timer::Alarm;
use super::tuning::LANES;
use crate::sync::loom::atomic as shim;

/// A group's cancel flag and its "a task parked" flag: the handshake
/// between a cancel and a task that parks (module docs), on the loom
/// shim's atomics so that the models can check it.
///
/// Each side stores its own flag, then a `SeqCst` fence, then loads the
/// other's (a store-then-load, Dekker's): a parking task notes it parks
/// ([`note_parked`](Self::note_parked)) before its state word says
/// SUSPENDED and reads [`is_cancelled`](Self::is_cancelled) after; a
/// cancel sets the flag ([`cancel`](Self::cancel)), then reads whether
/// any task ever parked. At least one of the two sees the other's store,
/// so either the parked task cancels itself or the cancel looks for it.
pub(crate) struct CancelFlags {
    cancelled: shim::AtomicBool,
    /// A task of the group parked (suspended in no queue) at least once.
    has_parked: shim::AtomicBool,
}

/// What [`CancelFlags::cancel`] found.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cancel {
    /// This call set the flag (false: it was set already).
    pub(crate) won: bool,
    /// A task of the group ever parked: the canceller must look for the
    /// parked ones (the live-task walk).
    pub(crate) walk: bool,
}

impl CancelFlags {
    pub(crate) fn new() -> CancelFlags {
        CancelFlags {
            cancelled: shim::AtomicBool::new(false),
            has_parked: shim::AtomicBool::new(false),
        }
    }

    /// Sets the flag, then (after a `SeqCst` fence, against
    /// `note_parked`'s) reads whether a task ever parked.
    pub(crate) fn cancel(&self) -> Cancel {
        let won = !self.cancelled.swap(true, shim::Ordering::SeqCst);
        shim::fence(shim::Ordering::SeqCst);
        let walk = self.has_parked.load(shim::Ordering::SeqCst);
        Cancel { won, walk }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        // SeqCst: ordered with the parking task's flag (type docs).
        self.cancelled.load(shim::Ordering::SeqCst)
    }

    /// A task is about to park: noted before its state word says
    /// SUSPENDED, and before it reads `is_cancelled` (type docs).
    pub(crate) fn note_parked(&self) {
        if !self.has_parked.load(shim::Ordering::Relaxed) {
            self.has_parked.store(true, shim::Ordering::SeqCst);
        }
        shim::fence(shim::Ordering::SeqCst);
    }
}

/// The first task that fails cancels the group.
pub(crate) const CANCEL_ON_FAILURE: u32 = 1;

pub(crate) struct GroupCore {
    pub(crate) pool: Arc<Pool>,
    parent: Option<Arc<GroupCore>>,
    /// The groups made below this one (alive or not).
    children: Mutex<Vec<Weak<GroupCore>>>,
    flags: u32,
    cancel_flags: CancelFlags,
    counters: Counters,
    /// Bumped by every `set_deadline`: a timer entry of another generation
    /// is stale.
    deadline_generation: AtomicU64,
    /// User handles (`Group`, `wsrt_group *`); at zero the group goes to
    /// its pool's orphans.
    handles: AtomicUsize,
}

/// A snapshot of a group's counts (`wsrt_group_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Tasks spawned into the group since it was made.
    pub spawned: u64,
    /// Tasks of the group that ended SUCCEEDED.
    pub succeeded: u64,
    /// Tasks of the group that ended FAILED.
    pub failed: u64,
    /// Tasks of the group that ended CANCELLED.
    pub cancelled: u64,
    /// Tasks of the group not started yet (and not cancelled).
    pub pending: u64,
    /// Tasks of the group running now.
    pub running: u64,
    /// Tasks of the group suspended now.
    pub suspended: u64,
}

impl GroupCore {
    /// A counted reference to this group, from a plain one (a task's
    /// header holds only `Arc::as_ptr` of its group).
    pub(crate) fn counted(&self) -> Arc<GroupCore> {
        // Every group lives in an `Arc` (`new` is the only way to make one)
        // and `&self` keeps it alive: its strong count is at least one.
        let ptr: *const GroupCore = self;
        // SAFETY: `ptr` is an `Arc`'s, alive (above).
        unsafe { Arc::increment_strong_count(ptr) };
        // SAFETY: the increment gave the `Arc` built here a count of its own.
        unsafe { Arc::from_raw(ptr) }
    }

    /// A new group of `pool` (below `parent`, if any), with one handle. A
    /// group made below a cancelled one is cancelled.
    pub(crate) fn new(pool: &Arc<Pool>, parent: Option<&Arc<GroupCore>>, flags: u32) -> Arc<Self> {
        pool.reap_orphans();
        let group = Arc::new(GroupCore {
            pool: pool.clone(),
            parent: parent.cloned(),
            children: Mutex::new(Vec::new()),
            flags,
            cancel_flags: CancelFlags::new(),
            counters: Counters::with_lanes(pool.workers(), LANES),
            deadline_generation: AtomicU64::new(0),
            handles: AtomicUsize::new(1),
        });
        if let Some(parent) = parent {
            let mut children = lock(&parent.children);
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&group));
            // Under the lock a cancel of the parent takes to reach the
            // children: either it sees this one, or this sees its flag.
            if parent.is_cancelled() {
                // No task of the new group has parked: nothing to walk.
                let _ = group.cancel_flags.cancel();
            }
        }
        group
    }

    /// True once this group or a group above it was cancelled. A cancel
    /// sets the flags of the groups below one after the other: the walk up
    /// sees it at once (a task spawned into a child after its parent's
    /// cancel was seen never runs). Groups are rarely deep.
    pub(crate) fn is_cancelled(&self) -> bool {
        let mut group = Some(self);
        while let Some(g) = group {
            if g.cancel_flags.is_cancelled() {
                return true;
            }
            group = g.parent.as_deref();
        }
        false
    }

    pub(crate) fn cancels_on_failure(&self) -> bool {
        self.flags & CANCEL_ON_FAILURE != 0
    }

    /// Cancels this group and every group below it. False if it was
    /// already cancelled. Pending tasks end when a worker reaches them,
    /// running ones are asked, parked ones end here.
    pub(crate) fn cancel(self: &Arc<Self>) -> bool {
        // Store-then-load against a parking task (`CancelFlags`): our flag
        // is stored, now we look for parked tasks.
        let Cancel { won, walk } = self.cancel_flags.cancel();
        if !won {
            return false;
        }
        let mut parked = walk;
        for child in self.children_alive() {
            child.cancel_below(&mut parked);
        }
        if parked {
            self.cancel_parked();
        }
        true
    }

    /// A group below a cancelled one: cancelled too (already or not), and
    /// its parked tasks looked for by the walk of the group cancelled.
    fn cancel_below(self: &Arc<Self>, parked: &mut bool) {
        *parked |= self.cancel_flags.cancel().walk;
        for child in self.children_alive() {
            child.cancel_below(parked);
        }
    }

    /// Cancels the parked tasks of this group and the groups below: the
    /// live-task list's walk, only when one of them ever parked a task.
    /// The pending tasks it meets end too (their bodies go now rather than
    /// when a worker pops them). A task's group is compared by address
    /// with the subtree's, which this holds: a group not in it is never
    /// read (it may be gone).
    fn cancel_parked(self: &Arc<Self>) {
        if self.pool.is_forked() {
            return;
        }
        let mut subtree = vec![self.clone()];
        let mut i = 0;
        while i < subtree.len() {
            let children = subtree[i].children_alive();
            subtree.extend(children);
            i += 1;
        }
        for task in self.pool.tasks.live_tasks() {
            let s = task.header().state.load();
            if s.is_grouped() && !s.is_shielded() {
                let owner = task.header().owner;
                if subtree
                    .iter()
                    .any(|g| std::ptr::eq(Arc::as_ptr(g).cast(), owner))
                {
                    let _ = task.cancel();
                }
            }
        }
    }

    /// A task of this group is parking: noted before it looks at the
    /// cancel flag (module docs).
    pub(crate) fn note_parked(&self) {
        self.cancel_flags.note_parked();
    }

    /// True if this group is `ancestor` or below it.
    pub(crate) fn is_in(&self, ancestor: &GroupCore) -> bool {
        let mut g = Some(self);
        while let Some(group) = g {
            if std::ptr::eq(group, ancestor) {
                return true;
            }
            g = group.parent.as_deref();
        }
        false
    }

    pub(crate) fn children_alive(&self) -> Vec<Arc<GroupCore>> {
        lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Counts `c` for this group, from `who`.
    pub(crate) fn count(&self, who: Who, c: Counter) {
        self.counters.add(who, c, Ordering::Release);
    }

    /// Counts the end of one of its tasks, then wakes the pool's group
    /// waiters if there are any (module docs). The last access a task makes
    /// to its group: the group may be freed right after.
    pub(crate) fn count_end(&self, who: Who, end: Counter, pool: &Pool) {
        self.count_ends(who, end, 1, pool);
    }

    /// [`count_end`](Self::count_end) for `n` tasks that ended alike.
    pub(crate) fn count_ends(&self, who: Who, end: Counter, n: u64, pool: &Pool) {
        self.counters.add_n(who, end, n, Ordering::SeqCst);
        pool.notify_group_waiters();
    }

    /// True if every task spawned into this group is done (ends read
    /// first: a counted end comes after its task's spawn was counted).
    pub(crate) fn is_quiet(&self) -> bool {
        let done = self.counters.total(Counter::Succeeded)
            + self.counters.total(Counter::Failed)
            + self.counters.total(Counter::Cancelled);
        done == self.counters.total(Counter::Spawned)
    }

    /// True if this group and every group below it are quiet.
    pub(crate) fn subtree_is_quiet(&self) -> bool {
        self.is_quiet() && self.children_alive().iter().all(|c| c.subtree_is_quiet())
    }

    pub(crate) fn stats(&self) -> GroupStats {
        let c = &self.counters;
        let succeeded = c.total(Counter::Succeeded);
        let failed = c.total(Counter::Failed);
        let cancelled = c.total(Counter::Cancelled);
        let running = c
            .total(Counter::RunsStarted)
            .saturating_sub(c.total(Counter::RunsEnded));
        let suspended = c
            .total(Counter::Suspends)
            .saturating_sub(c.total(Counter::Unsuspends));
        let spawned = c.total(Counter::Spawned);
        GroupStats {
            spawned,
            succeeded,
            failed,
            cancelled,
            pending: spawned.saturating_sub(succeeded + failed + cancelled + running + suspended),
            running,
            suspended,
        }
    }

    /// Cancels this group once `timeout` has passed (the pool's timer: no
    /// thread waits for it); `None` removes the deadline. A later call
    /// replaces it: an entry of an older generation fires into nothing.
    pub(crate) fn set_deadline(self: &Arc<Self>, timeout: Option<Duration>) {
        let generation = self.deadline_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(timeout) = timeout else {
            return;
        };
        let Some(at) = Instant::now().checked_add(timeout) else {
            return; // beyond what the clock can hold: never
        };
        let alarm = Alarm::Deadline {
            group: Arc::downgrade(self),
            generation,
        };
        self.pool.timer.insert(&self.pool, at, alarm);
    }

    pub(crate) fn deadline_is(&self, generation: u64) -> bool {
        self.deadline_generation.load(Ordering::SeqCst) == generation
    }

    /// A user handle more (`Group::clone`, `wsrt_group_retain`).
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A user handle less; the last one hands the group to its pool, which
    /// keeps it until its tasks are done (module docs).
    pub(crate) fn drop_handle(self: &Arc<Self>) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.adopt_orphan(self.clone());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing under these locks panics; poison cannot happen.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
