//! What the scheduler does with a task: runs it, suspends it, cancels it,
//! finishes it (callbacks, then its group's count, then the list and the
//! pool's counts), wakes it. These fill every task's vtable ([`Sched`]
//! implements `task::raw::Schedule`), the only way `task/` reaches the
//! scheduler.
//!
//! A task's `owner` is its pool, or, for a grouped task (GROUPED in its
//! state word), its group, which leads to the pool. Either is read only
//! while the task is not counted done: its group is reaped, and its pool
//! may finish shutting down, once it is (`group.rs`, `shutdown.rs`). So a
//! task's end is counted in its group first, then in its pool.
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

use super::context::{self, Here, Request, Scope, Suspension};
use super::group::GroupCore;
use super::job::JobRef;
use super::pool::Pool;
use super::stats::{Counter, Who};
use super::timer::Alarm;
use super::wait;
use super::worker::WorkerThread;
use crate::sync::alloc::Heap;
use crate::task::id;
use crate::task::raw::{self, Header, Ran, Schedule, Spawn};
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

/// Allocates a PENDING, scheduled task (`raw::allocate`); `spawn.owner`
/// is its pool or, if `spawn.kind.grouped`, its group.
#[inline]
pub(crate) fn allocate<B: Body>(
    heap: Option<Heap>,
    body: B,
    tag: B::Tag,
    spawn: Spawn,
) -> NonNull<Header> {
    raw::allocate::<B, Sched>(heap, body, tag, spawn)
}

/// The group of a grouped task.
///
/// # Safety
/// The task is grouped (`now` is a snapshot of its word) and not counted
/// done (module docs).
unsafe fn group_of<'a>(header: &Header, now: Snapshot) -> Option<&'a GroupCore> {
    // SAFETY: a grouped task's owner is its group (`Pool::spawn_body`),
    // alive while the task is not counted done (caller's duty).
    now.is_grouped()
        .then(|| unsafe { &*header.owner.cast::<GroupCore>() })
}

/// The pool a task was spawned on.
///
/// # Safety
/// The task is not yet counted as done (module docs).
unsafe fn pool_of<'a>(header: &Header) -> &'a Pool {
    // SAFETY: the owner is the pool, or the group, whose pool is; either
    // alive (caller's duty).
    match unsafe { group_of(header, header.state.load()) } {
        Some(group) => &group.pool,
        // SAFETY: an ungrouped task's owner is its pool, alive (as above).
        None => unsafe { &*header.owner.cast::<Pool>() },
    }
}

/// The isolation tag of a task whose run is isolated (`has_isolation`).
///
/// # Safety
/// The caller holds a reference to the task.
#[cold]
unsafe fn tag_of(ptr: NonNull<Header>, flags: Snapshot) -> u64 {
    if flags.is_isolation_root() {
        // An isolated wait waits for it: its whole run is isolated with
        // that wait's tag (its id), on whichever worker runs it.
        // SAFETY: the caller's reference keeps the header alive.
        unsafe { ptr.as_ref() }.id()
    } else {
        // SAFETY: forwarded; ISOLATED: its links hold the tag.
        unsafe { raw::isolation_tag(ptr) }
    }
}

/// Where a thread counts in a group: its worker's slot, its lane's, or the
/// shared one.
fn who(pool: &Pool, here: Option<&WorkerThread>) -> Who {
    match here {
        Some(w) => Who::Worker(w.index),
        None => pool.lane_of_this_thread().map_or(Who::Other, Who::Lane),
    }
}

/// Runs a task popped from a queue. Consumes the queue's reference.
///
/// # Safety
/// `ptr` is a task of the pool whose worker calls this, with the queue's
/// reference.
pub(crate) unsafe fn run(ptr: NonNull<Header>, cx: &Here) {
    // SAFETY: the queue's reference keeps the task alive.
    let header = unsafe { ptr.as_ref() };
    let worker = cx.worker().expect("tasks run on workers");
    let here = Some(worker);
    // A queued task belongs to the calling worker's pool, which the worker
    // holds: read it from the worker, not the task (whose group may be gone
    // if the task is done).
    let pool = &*worker.pool;
    if pool.is_cancelling() {
        // Shutdown(Cancel): queued tasks end without running.
        // SAFETY: we hold the queue's reference.
        unsafe { cancel_queued(ptr, pool, cx) };
        // SAFETY: the queue's reference is ours to drop.
        unsafe { drop_ref_at(ptr, here) };
        return;
    }
    let (resumed, flags) = match header.state.transition_to_running() {
        ToRunning::Done => {
            // Cancelled while queued: the canceller finished it.
            // SAFETY: the queue's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
            return;
        }
        ToRunning::Run { resumed, now } => (resumed, now),
    };
    if resumed || !flags.is_plain() || !cx.is_plain() {
        // SAFETY: forwarded; we won RUNNING.
        unsafe { run_in_scope(ptr, cx, pool, here, flags, resumed) };
        return;
    }
    // The common case: a first run of a task in no group and outside any
    // isolation, on a thread whose scope has neither: only the running
    // task changes.
    pool.counters.add_owned(worker.index, Counter::RunsStarted);
    // SAFETY: winning the transition to RUNNING gave us the stage, which
    // holds the body; the queue's reference (now ours) keeps the task.
    let (ran, request) = cx.with_plain_task(ptr, || unsafe { (header.vtable.run)(ptr) });
    pool.counters.add_owned(worker.index, Counter::RunsEnded);
    // SAFETY: we ran it; the stage and the queue's reference are ours.
    unsafe { after_run(ptr, pool, here, None, ran, request) };
}

/// `run` for every other task: grouped, isolated, resumed, or run in a
/// scope with a group or an isolation (a helping wait inside such a task).
///
/// # Safety
/// As `run`, and the caller won RUNNING (`flags`, `resumed`).
#[inline]
unsafe fn run_in_scope(
    ptr: NonNull<Header>,
    cx: &Here,
    pool: &Pool,
    here: Option<&WorkerThread>,
    flags: Snapshot,
    resumed: bool,
) {
    // SAFETY: the queue's reference keeps the task alive.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: we won RUNNING: the task is live, and stays so until we end
    // it (a cancel now only asks), so its group is alive.
    let group = unsafe { group_of(header, flags) };
    let who = || who(pool, here);
    if resumed {
        pool.count_at(here, Counter::Unsuspends);
        if let Some(group) = group {
            group.count(who(), Counter::Unsuspends);
        }
    }
    if group.is_some_and(|g| !flags.is_shielded() && g.is_cancelled()) {
        // Its group was cancelled before it started (or resumed): it ends
        // CANCELLED without running.
        // SAFETY: we own the stage, which holds the body.
        unsafe { (header.vtable.drop_body)(ptr) };
        let now = header.state.transition_to_complete(TaskState::Cancelled);
        // SAFETY: as `run`'s end below: the queue's reference is ours.
        unsafe { complete(ptr, pool, here, now, false) };
        return;
    }
    pool.count_at(here, Counter::RunsStarted);
    if let Some(group) = group {
        group.count(who(), Counter::RunsStarted);
    }
    let (ran, request) = if group.is_none() && !flags.has_isolation() && cx.is_plain() {
        // SAFETY: winning the transition to RUNNING gave us the stage,
        // which holds the body; the queue's reference (now ours) keeps the
        // task.
        cx.with_plain_task(ptr, || unsafe { (header.vtable.run)(ptr) })
    } else {
        let scope = Scope {
            task: Some(ptr),
            group: group.map_or(std::ptr::null(), |g| g as *const GroupCore),
            isolation: if flags.has_isolation() {
                // SAFETY: the queue's reference (now ours) keeps the task.
                unsafe { tag_of(ptr, flags) }
            } else {
                // A task from outside an isolated wait run inside one (the
                // awaited task itself) lends its spawns the wait's tag.
                cx.isolation()
            },
        };
        // SAFETY: as above.
        cx.with_scope(scope, || unsafe { (header.vtable.run)(ptr) })
    };
    pool.count_at(here, Counter::RunsEnded);
    if let Some(group) = group {
        group.count(who(), Counter::RunsEnded);
    }
    // SAFETY: we ran it; the stage and the queue's reference are ours.
    unsafe { after_run(ptr, pool, here, group, ran, request) };
}

/// What follows a run: the task ends (`complete`), or suspends as it asked.
///
/// # Safety
/// The caller ran the task (`ran`) and owns its stage and the queue's
/// reference; `group` is its group, if any.
#[inline(always)]
unsafe fn after_run(
    ptr: NonNull<Header>,
    pool: &Pool,
    here: Option<&WorkerThread>,
    group: Option<&GroupCore>,
    ran: Ran,
    request: Request,
) {
    // SAFETY: the queue's reference keeps the task alive.
    let header = unsafe { ptr.as_ref() };
    let (end, drop_observable) = match ran {
        Ran::Done {
            end,
            drop_observable,
        } => (end, drop_observable),
        Ran::Yield => {
            // Queued again, unless it asked to await a task or to sleep
            // first: then it runs again once that task is done, or then.
            // SAFETY: we own the stage and the scheduler's reference.
            unsafe {
                suspend(
                    ptr,
                    pool,
                    here,
                    group,
                    request.into_suspension().map_or(Park::Yield, Park::For),
                )
            };
            return;
        }
        Ran::Wait => {
            request.discard();
            // SAFETY: as above.
            unsafe { suspend(ptr, pool, here, group, Park::Wake) };
            return;
        }
    };
    // A request not followed by a yield has nothing to do.
    request.discard();
    // The body was released and the outcome written (`Vtable::run`) before
    // the state becomes final, so a thread that sees "done" sees both.
    let now = header.state.transition_to_complete(end);
    // SAFETY: we made the task final and the queue's reference is ours.
    unsafe { complete(ptr, pool, here, now, drop_observable) };
}

/// After `run` made a task final: its counts, the list, and the
/// scheduler's reference (module docs).
///
/// # Safety
/// The caller made the task final (`now`) and owns the scheduler's
/// reference; `here` is the worker of `pool` running it.
#[inline(always)]
unsafe fn complete(
    ptr: NonNull<Header>,
    pool: &Pool,
    here: Option<&WorkerThread>,
    now: Snapshot,
    drop_observable: bool,
) {
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

/// What a suspended task waits for.
enum Park {
    /// Nothing: queued again at once (`WSRT_TASK_YIELD`).
    Yield,
    /// Its waker (futures).
    Wake,
    /// The task awaited, or the time asked for.
    For(Suspension),
}

/// The function returned "not yet". The scheduler's reference moves to the
/// queue (yield, or woken while running) or stays with the parked task until
/// a wake-up queues it (the awaited task's resume entry, the timer, or a
/// future's waker).
///
/// # Safety
/// Called by `run` only, with the stage and the scheduler reference owned.
unsafe fn suspend(
    ptr: NonNull<Header>,
    pool: &Pool,
    here: Option<&WorkerThread>,
    group: Option<&GroupCore>,
    park: Park,
) {
    // SAFETY: we hold the scheduler's reference.
    let header = unsafe { ptr.as_ref() };
    // Once parked, the task may be woken, run and freed elsewhere at once:
    // what we still do with it afterwards needs a reference of our own.
    let guarded = group.is_some() || matches!(park, Park::For(_));
    let me = guarded.then(|| TaskRef::clone(&ManuallyDrop::new(TaskRef::from_header(ptr))));
    // So does its group, which may go with its last task once that ended
    // elsewhere (`group.rs`, lifetime): held until we are done with it.
    let group = group.map(GroupCore::counted);
    let group = group.as_deref();
    let reschedule = matches!(park, Park::Yield);
    let who = who(pool, here);
    // A grouped task about to park says so first (a store-then-load
    // against a group cancel, `group.rs`): a cancel that then misses the
    // flag below finds the task in its walk, so a task seen SUSPENDED is
    // CANCELLED by the time the cancel returns.
    let watched = group.filter(|_| !reschedule && !header.state.load().is_shielded());
    if let Some(group) = watched {
        group.note_parked();
    }
    match header.state.transition_to_suspended(reschedule) {
        ToSuspended::Reschedule => {
            count_suspend(pool, here, group, who);
            // A yield (or a wake-up while it ran) goes behind other work
            // (the injector), unless this thread is in an isolated wait
            // (`wait.rs`), which takes nothing from there.
            pool.schedule(JobRef::task(ptr), !pool.yields_stay_local());
        }
        ToSuspended::Parked => {
            // The task keeps the scheduler reference while parked.
            count_suspend(pool, here, group, who);
            // What follows parking uses the task: guarded by `me`.
            let me = || me.as_ref().expect("a parked task that is used is guarded");
            match park {
                Park::For(Suspension::Await(other)) => {
                    let entry = Callback::C {
                        cb: resume,
                        user: TaskRef::clone(me()).into_raw().as_ptr() as usize,
                    };
                    if let Err(entry) = other.add_callback(entry) {
                        // `other` is already done: resume at once.
                        entry.run(other.c_handle());
                    }
                }
                Park::For(Suspension::Sleep(until)) => {
                    pool.timer
                        .insert(pool, until, Alarm::Wake(TaskRef::clone(me())));
                }
                Park::Yield | Park::Wake => {}
            }
            if let Some(group) = watched {
                // Either the cancel's walk finds this task parked, or we
                // see its flag here (after our note).
                if group.is_cancelled() {
                    let _ = me().cancel();
                }
            }
        }
        ToSuspended::Cancelled => {
            // A cancel request arrived while it ran: it ends here, its
            // body dropped before anyone can see it done.
            // SAFETY: we still own the stage.
            unsafe { (header.vtable.drop_body)(ptr) };
            let now = header.state.transition_to_complete(TaskState::Cancelled);
            // SAFETY: we made the task final and hold a reference.
            unsafe { finish(ptr, pool, now) };
            // SAFETY: the scheduler's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
        }
    }
}

fn count_suspend(pool: &Pool, here: Option<&WorkerThread>, group: Option<&GroupCore>, who: Who) {
    pool.count_at(here, Counter::Suspends);
    if let Some(group) = group {
        group.count(who, Counter::Suspends);
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
    if id::inherited(|| header.id()) {
        return false;
    }
    match header.state.transition_to_cancelled() {
        ToCancelled::AlreadyDone => {
            // Done, or another cancel claimed it and is dropping its body:
            // wait for that one, so that a cancel that returns sees the
            // task final (unless it is that drop, on this thread, which
            // cancels its own task).
            if header.state.load().is_claimed() && !context::is_finishing_cancel_of(ptr) {
                let task = ManuallyDrop::new(TaskRef::from_header(ptr));
                wait::block_until(&task, None, None);
            }
            false
        }
        ToCancelled::Requested => true,
        ToCancelled::Claimed { was, parked, now } => {
            // The task is claimed, not yet counted as done, so its pool
            // cannot have finished shutting down nor its group been
            // reaped: both are alive until `finish` counts the task.
            // SAFETY: see above.
            let pool = unsafe { pool_of(header) };
            if was == TaskState::Suspended {
                pool.count(Counter::Unsuspends);
                // SAFETY: as above.
                if let Some(group) = unsafe { group_of(header, now) } {
                    group.count(who(pool, pool.own_worker()), Counter::Unsuspends);
                }
            }
            // SAFETY: winning the transition gave us the stage.
            context::finishing_cancel_of(ptr, || unsafe { (header.vtable.drop_body)(ptr) });
            // Final only now: whoever sees it done sees its `arg_drop` run.
            let now = header.state.finish_cancel();
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

/// Ends a task popped from a queue without running it: shutdown(Cancel),
/// or its group was cancelled.
///
/// # Safety
/// Called by a worker of `pool` (`cx`'s) holding the queue's reference.
unsafe fn cancel_queued(ptr: NonNull<Header>, pool: &Pool, cx: &Here) {
    let here = cx.worker();
    // SAFETY: forwarded.
    if let Some(now) = unsafe { claim_queued(ptr, pool, cx, here, || who(pool, here)) } {
        // SAFETY: we made the task final and hold a reference.
        unsafe { finish(ptr, pool, now) };
    }
}

/// Claims a queued task for a cancel and drops its body; the state it
/// made final, or None if the task was done or claimed already. The
/// caller finishes it (callbacks, counts, the list). `who` is where this
/// thread counts in a group.
///
/// # Safety
/// The caller took `ptr` from a queue of `pool` and holds that reference;
/// `cx` is this thread's, `here` its worker of `pool` if it is one.
unsafe fn claim_queued(
    ptr: NonNull<Header>,
    pool: &Pool,
    cx: &Here,
    here: Option<&WorkerThread>,
    who: impl FnOnce() -> Who,
) -> Option<Snapshot> {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    let ToCancelled::Claimed { was, parked, now } = header.state.transition_to_cancelled() else {
        return None;
    };
    debug_assert!(!parked, "a queued task is scheduled, not parked");
    if was == TaskState::Suspended {
        pool.count_at(here, Counter::Unsuspends);
        // SAFETY: claimed, not counted done: the group is alive.
        if let Some(group) = unsafe { group_of(header, now) } {
            group.count(who(), Counter::Unsuspends);
        }
    }
    // SAFETY: winning the transition gave us the stage.
    cx.finishing_cancel_of(ptr, || unsafe { (header.vtable.drop_body)(ptr) });
    // Final only now: whoever sees it done sees its `arg_drop` run.
    Some(header.state.finish_cancel())
}

/// Ends the tasks of a cancelled group that a thread outside the pool
/// took back from its own lane (`wait.rs`, `TakeBack`): each claimed, its
/// body dropped and its callbacks run as `cancel_queued` would; then the
/// ends counted in their groups, a count for each run of tasks of one
/// group; then all unlisted and counted in the pool together, one lock a
/// shard as `finish_on_worker`'s batches; then the queue's references go,
/// freeing the tasks on the thread that allocated them. `who` is the
/// thread's lane; a task someone else ended meanwhile is only let go.
///
/// # Safety
/// Each of `taken` is a task of a group (GROUPED) and holds the reference
/// of a queue of `pool` it was taken from, by a thread outside the pool
/// that holds the pool alive.
pub(crate) unsafe fn end_taken_back(taken: &mut Vec<TaskRef>, pool: &Pool, who: Who) {
    context::with_here(|cx| {
        taken.retain(|task| {
            let ptr = task.as_ptr();
            // SAFETY: taken from a queue of `pool`, with its reference;
            // this thread is no worker of it.
            let Some(now) = (unsafe { claim_queued(ptr, pool, cx, None, || who) }) else {
                return false;
            };
            // SAFETY: we made the task final and hold a reference.
            unsafe { run_callbacks(ptr, pool, now) };
            true
        })
    });
    for run in taken.chunk_by(|a, b| a.header().owner == b.header().owner) {
        let header = run[0].header();
        // SAFETY: final and not counted done, so its group is alive; each
        // count is the last access to the group through these tasks.
        let group = unsafe { group_of(header, header.state.load()) };
        group.expect("a task taken back is grouped").count_ends(
            who,
            Counter::Cancelled,
            run.len() as u64,
            pool,
        );
    }
    let mut closed = false;
    pool.tasks
        .remove_ended(taken, TaskState::Cancelled, || closed = true);
    if closed {
        // As in `finish`: shutdown has begun and these counts may be the
        // last; the caller keeps the pool alive for the check.
        pool.after_external_completion();
    }
    taken.clear();
}

/// Counts the end of a grouped task in its group (nothing for another):
/// a failure first cancels the group if it asks for that. The task's last
/// access to its group, before its pool counts it (module docs).
///
/// # Safety
/// The task is final (`now`) and not counted done.
#[inline]
unsafe fn end_in_group(header: &Header, now: Snapshot, who: impl FnOnce() -> Who, pool: &Pool) {
    if now.is_grouped() {
        // SAFETY: forwarded.
        unsafe { end_in_group_of(header, now, who(), pool) };
    }
}

#[cold]
unsafe fn end_in_group_of(header: &Header, now: Snapshot, who: Who, pool: &Pool) {
    // SAFETY: final, not counted done: the group is alive.
    let Some(group) = (unsafe { group_of(header, now) }) else {
        return;
    };
    if now.lifecycle() == TaskState::Failed && group.cancels_on_failure() {
        // `cancel` takes a counted reference.
        group.counted().cancel();
    }
    group.count_end(who, end_counter(now), pool);
}

/// Everything after a task became final: callbacks (rule 2 of
/// `task/mod.rs`), its group's count, then the list and the pool's count,
/// and a shutdown check if needed. The pool's count comes last: a task
/// counted as done lets shutdown finish, so nothing touches the pool
/// through this task afterwards unless it pinned it first. (The task stays
/// listed while its callbacks run; `live_tasks` skips done tasks.)
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
    // SAFETY: the caller made the task final; not counted yet.
    unsafe { end_in_group(header, now, || who(pool, pool.own_worker()), pool) };
    let mut pinned = None;
    pool.tasks.remove(header, now.lifecycle(), || {
        // Shutdown has begun and this count may be the last one. A worker
        // checks when it next goes idle (after its sleep fence); another
        // thread checks below, which needs the pool alive.
        if !pool.is_own_worker() {
            // SAFETY: not counted yet, so the pool is alive (caller's duty).
            pinned = Some(unsafe { pin_pool(header, pool) });
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
    // SAFETY: the caller holds a reference, made it final; not counted.
    unsafe {
        run_callbacks(ptr, pool, now);
        end_in_group(ptr.as_ref(), now, || Who::Worker(w.index), pool);
    }
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
    // SAFETY: the caller holds a reference, made it final; not counted.
    unsafe {
        run_callbacks(ptr, pool, now);
        end_in_group(ptr.as_ref(), now, || Who::Worker(w.index), pool);
    }
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
    // SAFETY: forwarded to the caller.
    let pool = unsafe { pool_of(header) };
    if pool.is_own_worker() {
        return f(pool);
    }
    // SAFETY: forwarded to the caller.
    let pinned = unsafe { pin_pool(header, pool) };
    f(&pinned)
}

/// A counted reference to `pool`, the task's pool.
///
/// # Safety
/// The task must not yet be counted as done by its pool.
unsafe fn pin_pool(_header: &Header, pool: &Pool) -> Arc<Pool> {
    let pool = pool as *const Pool;
    // SAFETY: a pool lives in the `Arc` the runtime made (`Pool::new`),
    // alive while the task is not counted as done (caller's duty).
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
