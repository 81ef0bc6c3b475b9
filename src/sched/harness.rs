//! What the scheduler does with a task: runs it, suspends it, cancels it,
//! finishes it (callbacks, then the list and the counts), wakes it. These
//! fill every task's vtable ([`Sched`] implements `task::raw::Schedule`),
//! the only way `task/` reaches the scheduler.
//!
//! Who unlists a task a worker ran to its end: that worker, from its own
//! table without a lock, if it spawned it (`finish_own`); otherwise the
//! worker keeps it and unlists a batch at a time (`finish_on_worker`),
//! unless freeing it then would run user code late (its output's drop);
//! otherwise `finish`, at once, under the shard's lock. A task cancelled
//! from outside is finished by the canceller (`finish`).

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use super::context::{self, Here};
use super::job::JobRef;
use super::pool::Pool;
use super::stats::Counter;
use super::wait;
use super::worker::WorkerThread;
use crate::sync::alloc::Heap;
use crate::task::id;
use crate::task::raw::{self, Header, Ran, Schedule};
use crate::task::state::{Snapshot, TaskState, ToCancelled, ToNotified, ToRunning, ToSuspended};
use crate::task::{Body, Callback, TaskRef, Waited};

/// The scheduler, as the task vtables know it.
pub(crate) struct Sched;

impl Schedule for Sched {
    unsafe fn cancel(task: NonNull<Header>) -> bool {
        // SAFETY: forwarded.
        unsafe { cancel(task) }
    }

    unsafe fn wake(task: NonNull<Header>) {
        // SAFETY: forwarded.
        unsafe { wake(task) }
    }

    unsafe fn wait(task: NonNull<Header>, deadline: Option<Instant>) -> Waited {
        // The caller's reference keeps the task alive for the call.
        wait::wait(&ManuallyDrop::new(TaskRef::from_header(task)), deadline)
    }
}

/// Allocates a PENDING, scheduled task of `pool` (`raw::allocate`).
#[inline]
pub(crate) fn allocate<B: Body>(
    heap: Option<Heap>,
    body: B,
    tag: B::Tag,
    id: u64,
    pool: &Arc<Pool>,
    refs: u64,
    shard: usize,
) -> NonNull<Header> {
    let owner = Arc::as_ptr(pool).cast::<()>();
    raw::allocate::<B, Sched>(heap, body, tag, id, owner, refs, shard)
}

/// The pool a task was spawned on.
///
/// # Safety
/// The pool is alive: the caller is one of its workers, or the task is not
/// yet counted as done (see "Who may touch what" in `task/mod.rs`).
unsafe fn pool_of<'a>(header: &Header) -> &'a Pool {
    // SAFETY: `owner` is `Arc::as_ptr` of the pool (`allocate`), alive
    // (caller's duty).
    unsafe { &*header.owner.cast::<Pool>() }
}

/// Runs a task popped from a queue. Consumes the queue's reference.
///
/// # Safety
/// `ptr` is a task of the pool whose worker calls this, with the queue's
/// reference.
pub(crate) unsafe fn run(ptr: NonNull<Header>, cx: &Here) {
    // SAFETY: the queue's reference keeps the task alive.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: a queued task belongs to the calling worker's pool, and the
    // worker holds an `Arc` of it.
    let pool = unsafe { pool_of(header) };
    let here = cx.worker();
    debug_assert!(here.is_some_and(|w| std::ptr::eq(Arc::as_ptr(&w.pool), pool)));
    if pool.is_cancelling() {
        // Shutdown(Cancel): queued tasks end without running.
        // SAFETY: we hold the queue's reference.
        unsafe { cancel_queued(ptr, pool, here) };
        // SAFETY: the queue's reference is ours to drop.
        unsafe { drop_ref_at(ptr, here) };
        return;
    }
    match header.state.transition_to_running() {
        ToRunning::Done => {
            // Cancelled while queued: the canceller finished it.
            // SAFETY: the queue's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
            return;
        }
        ToRunning::Run { resumed } => {
            if resumed {
                pool.count_at(here, Counter::Unsuspends);
            }
            pool.count_at(here, Counter::RunsStarted);
        }
    }
    // SAFETY: winning the transition to RUNNING gave us the stage, which
    // holds the body; the queue's reference (now ours) keeps the task.
    let (ran, awaiting) = cx.with_task(Some(ptr), || unsafe { (header.vtable.run)(ptr) });
    pool.count_at(here, Counter::RunsEnded);
    let (end, drop_observable) = match ran {
        Ran::Done {
            end,
            drop_observable,
        } => (end, drop_observable),
        Ran::Yield => {
            // Queued again, unless it asked to await a task first
            // (`wsrt_await`): then it runs again once that one is done.
            let yield_now = awaiting.is_none();
            // SAFETY: we own the stage and the scheduler's reference.
            unsafe { suspend(ptr, pool, here, yield_now, awaiting) };
            return;
        }
        Ran::Wait => {
            // SAFETY: as above.
            unsafe { suspend(ptr, pool, here, false, None) };
            return;
        }
    };
    // An await request not followed by a yield has nothing to do.
    drop(awaiting);
    // The body was released and the outcome written (`Vtable::run`) before
    // the state becomes final, so a thread that sees "done" sees both.
    let now = header.state.transition_to_complete(end);
    let shard = now.shard();
    match here {
        Some(w) if shard == w.shard && pool.tasks.is_table(shard) => {
            // SAFETY: we made the task final, the queue's reference is
            // still ours, and `w` is the worker whose table lists it.
            unsafe { finish_own(ptr, pool, w, now, drop_observable) }
        }
        Some(w) if shard != w.shard && !drop_observable => {
            // SAFETY: as above; the reference goes to the worker's batch.
            unsafe { finish_on_worker(ptr, pool, w, now) }
        }
        _ => {
            // SAFETY: as above.
            unsafe { finish(ptr, pool, now) };
            // SAFETY: the scheduler's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
        }
    }
}

/// The function returned "not yet". The scheduler's reference moves to the
/// queue (yield, or woken while running) or stays with the parked task until
/// a wake-up queues it (`other`'s resume entry, or a future's waker).
///
/// # Safety
/// Called by `run` only, with the stage and the scheduler reference owned.
unsafe fn suspend(
    ptr: NonNull<Header>,
    pool: &Pool,
    here: Option<&WorkerThread>,
    yield_now: bool,
    other: Option<TaskRef>,
) {
    // SAFETY: we hold the scheduler's reference.
    let header = unsafe { ptr.as_ref() };
    match header.state.transition_to_suspended(yield_now) {
        ToSuspended::Reschedule => {
            pool.count_at(here, Counter::Suspends);
            pool.schedule(JobRef::task(ptr), true);
        }
        ToSuspended::Parked => {
            // The task keeps the scheduler reference while parked.
            pool.count_at(here, Counter::Suspends);
            if let Some(other) = other {
                // A reference for the entry, given up when it runs.
                let me = ManuallyDrop::new(TaskRef::from_header(ptr));
                let entry = Callback::C {
                    cb: resume,
                    user: TaskRef::clone(&me).into_raw().as_ptr() as usize,
                };
                if let Err(entry) = other.add_callback(entry) {
                    // `other` is already done: resume at once.
                    entry.run(other.c_handle());
                }
            }
        }
        ToSuspended::Cancelled(now) => {
            // A cancel request arrived while it ran: it ends here.
            // SAFETY: we still own the stage.
            unsafe { (header.vtable.drop_body)(ptr) };
            // SAFETY: we made the task final and hold a reference.
            unsafe { finish(ptr, pool, now) };
            // SAFETY: the scheduler's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
        }
    }
}

/// The entry a task suspended on another (`wsrt_await`) leaves in that
/// other task's callbacks: it wakes the suspended task, whose reference
/// `suspended` owns, when `_done` is done.
///
/// # Safety
/// `suspended` is a task header with a reference the entry owns; called
/// once.
unsafe extern "C" fn resume(_done: *mut c_void, suspended: *mut c_void) {
    // SAFETY: the entry's reference, given up by this one run.
    let suspended = unsafe { TaskRef::from_raw(NonNull::new_unchecked(suspended.cast())) };
    suspended.wake();
}

/// `cancel()` through a handle. True unless the task was already done. In a
/// child that inherited the task's runtime through `fork()` it changes
/// nothing and returns false: ending a task takes locks a parent thread may
/// have held at the fork.
///
/// # Safety
/// The caller holds a reference to the task.
unsafe fn cancel(ptr: NonNull<Header>) -> bool {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if id::inherited(header.id) {
        return false;
    }
    match header.state.transition_to_cancelled() {
        ToCancelled::AlreadyDone => false,
        ToCancelled::Requested => true,
        ToCancelled::Cancelled { was, parked, now } => {
            // The task is final but not yet counted as done, so its pool
            // cannot have finished shutting down: it is alive until `finish`
            // counts the task (which pins it first if it still needs it).
            // SAFETY: see above.
            let pool = unsafe { pool_of(header) };
            if was == TaskState::Suspended {
                pool.count(Counter::Unsuspends);
            }
            // SAFETY: winning the transition gave us the stage.
            unsafe { (header.vtable.drop_body)(ptr) };
            // SAFETY: we made the task final and hold a reference.
            unsafe { finish(ptr, pool, now) };
            if parked {
                // SAFETY: the reference a parked task kept is now ours.
                unsafe { raw::drop_ref(ptr) };
            }
            true
        }
    }
}

/// Shutdown(Cancel): ends a task popped from a queue without running it.
///
/// # Safety
/// Called by a worker of `pool` (`here`) holding the queue's reference.
unsafe fn cancel_queued(ptr: NonNull<Header>, pool: &Pool, here: Option<&WorkerThread>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if let ToCancelled::Cancelled { was, parked, now } = header.state.transition_to_cancelled() {
        debug_assert!(!parked, "a queued task is scheduled, not parked");
        if was == TaskState::Suspended {
            pool.count_at(here, Counter::Unsuspends);
        }
        // SAFETY: winning the transition gave us the stage.
        unsafe { (header.vtable.drop_body)(ptr) };
        // SAFETY: we made the task final and hold a reference.
        unsafe { finish(ptr, pool, now) };
    }
}

/// Everything after a task became final: callbacks (rule 2 of
/// `task/mod.rs`), then the list and the count, and a shutdown check if
/// needed. The count comes last: a task counted as done lets shutdown
/// finish, so nothing touches the pool through this task afterwards unless
/// it pinned it first. (The task stays listed while its callbacks run;
/// `live_tasks` skips done tasks.)
///
/// # Safety
/// The caller made the task final (`now` is the state it made) and holds a
/// reference to it; `pool` is its pool, alive because the task is not
/// counted yet (and held by the caller if it is a worker).
unsafe fn finish(ptr: NonNull<Header>, pool: &Pool, now: Snapshot) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, pool, now) };
    let mut pinned = None;
    pool.tasks.remove(header, now.lifecycle(), || {
        // Shutdown has begun and this count may be the last one. A worker
        // checks when it next goes idle (after its sleep fence); another
        // thread checks below, which needs the pool alive.
        if !pool.is_own_worker() {
            // SAFETY: not counted yet, so the pool is alive (caller's duty).
            pinned = Some(unsafe { pin_pool(header) });
        }
    });
    // Counted before shutdown began: shutdown's own check sees it, and the
    // pool may be gone from here on unless this is one of its workers.
    // Otherwise check now.
    if let Some(pool) = pinned {
        pool.after_external_completion();
    }
}

/// `finish` for a task that worker `w` of `pool` ran to its end: the end is
/// counted in the worker's own slots (as its spawns are, and ordered for
/// shutdown the same way: the worker checks when it next goes idle), and
/// the task goes to the worker's batch of finished tasks, which takes it
/// off the list later, together with others (`WorkerThread::
/// unlist_finished`): one lock per shard and batch instead of one per task,
/// on a line the spawning thread writes too.
///
/// # Safety
/// As `finish`, and the caller's reference (the scheduler's) moves to the
/// batch.
unsafe fn finish_on_worker(ptr: NonNull<Header>, pool: &Pool, w: &WorkerThread, now: Snapshot) {
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, pool, now) };
    pool.counters.add_owned(w.index, end_counter(now));
    // SAFETY: the caller's reference moves into the batch's `TaskRef`.
    w.defer_unlist(unsafe { TaskRef::from_raw(ptr) });
}

/// `finish` for a task that worker `w` of `pool` spawned and ran to its
/// end: unlisted from the worker's table without a lock, the end counted
/// in the worker's own slots (as in `finish_on_worker`). The scheduler's
/// reference is dropped once no walker of the table can reach the task:
/// in a batch with others (`WorkerThread::retire`), or at once, after
/// waiting for walkers, if freeing the task may run user code
/// (`drop_observable`).
///
/// # Safety
/// As `finish`, `w`'s table lists the task, and the caller's reference (the
/// scheduler's) is given up here.
unsafe fn finish_own(
    ptr: NonNull<Header>,
    pool: &Pool,
    w: &WorkerThread,
    now: Snapshot,
    drop_observable: bool,
) {
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, pool, now) };
    // SAFETY: as above; `w` is the table's owner, and this thread.
    unsafe { pool.tasks.remove_own(ptr.as_ref()) };
    pool.counters.add_owned(w.index, end_counter(now));
    if drop_observable {
        // SAFETY: `w` owns the table; after this no walker reaches the
        // task, and the scheduler's reference is ours to drop.
        unsafe {
            pool.tasks.wait_for_walkers(w.shard);
            drop_ref_at(ptr, Some(w));
        }
    } else {
        // SAFETY: the scheduler's reference moves to the batch.
        w.retire(unsafe { TaskRef::from_raw(ptr) });
    }
}

/// Rule 2 of `task/mod.rs`: runs the callbacks of a task that just became
/// final (`now`). The caller holds a reference.
///
/// # Safety
/// `ptr` is a task that the caller holds a reference to.
unsafe fn run_callbacks(ptr: NonNull<Header>, pool: &Pool, now: Snapshot) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    header.extras.drain(now, |callback| {
        if callback.run(ptr.as_ptr().cast()) {
            pool.count(Counter::CallbackPanics);
        }
    });
}

fn end_counter(now: Snapshot) -> Counter {
    match now.lifecycle() {
        TaskState::Succeeded => Counter::Succeeded,
        TaskState::Failed => Counter::Failed,
        _ => Counter::Cancelled,
    }
}

/// Wakes a task suspended on something that is now ready: a parked task
/// is queued (its kept reference moves to the queue); otherwise nothing.
///
/// # Safety
/// The caller holds a reference to the task (and keeps it).
unsafe fn wake(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if header.state.transition_to_notified() == ToNotified::Schedule {
        // Parked and now scheduled by us: not done, so the pool is alive.
        // SAFETY: see the line above.
        unsafe { with_pool(header, |pool| pool.schedule(JobRef::task(ptr), false)) };
    }
}

/// Runs `f` with the task's pool, pinned for the call unless this thread
/// is one of its workers (which hold it alive anyway).
///
/// # Safety
/// The task must not yet be counted as done by its pool.
unsafe fn with_pool<R>(header: &Header, f: impl FnOnce(&Pool) -> R) -> R {
    if let Some(worker) = context::with_here(Here::worker) {
        if std::ptr::eq(Arc::as_ptr(&worker.pool).cast(), header.owner) {
            return f(&worker.pool);
        }
    }
    // SAFETY: forwarded to the caller.
    let pool = unsafe { pin_pool(header) };
    f(&pool)
}

/// A counted reference to the task's pool.
///
/// # Safety
/// The task must not yet be counted as done by its pool.
unsafe fn pin_pool(header: &Header) -> Arc<Pool> {
    let pool = header.owner.cast::<Pool>();
    // SAFETY: `owner` came from `Arc::as_ptr` of the pool's `Arc`
    // (`allocate`), which is alive while the task is not counted as done
    // (caller's duty).
    unsafe {
        Arc::increment_strong_count(pool);
        Arc::from_raw(pool)
    }
}

/// Drops one reference on the thread `here` says: a worker frees the task
/// into its batch of frees (`sync/alloc.rs`) if the reference was the last.
///
/// # Safety
/// The caller owns the reference it drops.
pub(crate) unsafe fn drop_ref_at(ptr: NonNull<Header>, here: Option<&WorkerThread>) {
    // SAFETY: forwarded.
    unsafe { raw::drop_ref_in(ptr, here.map(|w| &w.frees)) }
}
