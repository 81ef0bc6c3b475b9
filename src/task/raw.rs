//! The task allocation: header, tag and stage in one `Cell<B>`, a vtable for
//! the parts that depend on the body type, and the paths that run, cancel,
//! finish, wake and free a task.

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

use super::callbacks::Extras;
use super::state::{Snapshot, State, TaskState, ToCancelled, ToNotified, ToRunning, ToSuspended};
use super::{Body, BodyKind, Callback, Failure, Step, TaskRef};
use crate::alloc::{self, FreeBatch};
use crate::registry::Links;
use crate::runtime::Shared;
use crate::stats::Counter;
use crate::worker::{self, JobRef, JobVtable, WorkerThread};

/// The type-independent part of every task, at offset 0 of its `Cell`.
#[repr(C)]
pub(crate) struct Header {
    /// First, so that a pointer to the header is a job (`worker::JobRef`).
    pub(crate) vtable: &'static Vtable,
    pub(crate) state: State,
    pub(crate) id: u64,
    /// The runtime it was spawned on. See "Who may touch what" in `mod.rs`.
    pub(crate) runtime: *const Shared,
    pub(crate) extras: Extras,
    /// Its place in the runtime's live-task registry.
    pub(crate) links: Links,
}

/// Operations that need the body type.
#[repr(C)]
pub(crate) struct Vtable {
    /// First: runs the task once (the argument is its header), consuming
    /// the scheduler's reference; what a queued `JobRef` of the task calls.
    job: JobVtable,
    drop_body: unsafe fn(NonNull<Header>),
    dealloc: unsafe fn(NonNull<Header>, Option<&FreeBatch>),
    failure: unsafe fn(NonNull<Header>) -> Option<Failure>,
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    tag: unsafe fn(NonNull<Header>) -> *const (),
    /// `B::KIND`, for `tag_of` and `output_of`.
    kind: BodyKind,
}

/// The body until it is released, then the outcome of a task that ran to
/// SUCCEEDED or FAILED. Untagged: the state word says which field is live,
/// so the cell pays no discriminant (8 bytes, which for a C task is the
/// difference between two allocator size classes):
///
/// - not done, or CANCELLED with the body not yet released by the
///   canceller that won the transition: `body`;
/// - SUCCEEDED without TAKEN, or FAILED: `outcome` (written before the
///   state became final, by the thread that ran the task);
/// - CANCELLED after the canceller released the body, or SUCCEEDED with
///   TAKEN: nothing.
union Stage<B: Body> {
    body: ManuallyDrop<B>,
    outcome: ManuallyDrop<Result<B::Output, Failure>>,
}

#[repr(C)]
struct Cell<B: Body> {
    header: Header,
    tag: B::Tag,
    stage: UnsafeCell<Stage<B>>,
}

impl<B: Body> Cell<B> {
    const VTABLE: Vtable = Vtable {
        job: JobVtable { execute: run::<B> },
        drop_body: drop_body::<B>,
        dealloc: dealloc::<B>,
        failure: failure_of::<B>,
        take_output: take_output_of::<B>,
        tag: tag::<B>,
        kind: B::KIND,
    };

    /// # Safety
    /// `ptr` must point to the header of a live `Cell<B>`.
    unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a Cell<B> {
        // SAFETY: the header is the first field of the `repr(C)` cell.
        unsafe { ptr.cast::<Cell<B>>().as_ref() }
    }
}

/// Allocates a PENDING, scheduled task holding `refs` references, from
/// `heap` if given (the calling worker's).
pub(crate) fn allocate<B: Body>(
    heap: Option<alloc::Heap>,
    body: B,
    tag: B::Tag,
    id: u64,
    runtime: *const Shared,
    refs: u64,
    shard: usize,
) -> NonNull<Header> {
    let cell = alloc::boxed_in(heap, || Cell {
        header: Header {
            vtable: &Cell::<B>::VTABLE,
            state: State::new(refs, shard),
            id,
            runtime,
            extras: Extras::new(),
            links: Links::new(),
        },
        tag,
        stage: UnsafeCell::new(Stage {
            body: ManuallyDrop::new(body),
        }),
    });
    cell.cast()
}

/// Sets the id of a task that [`allocate`] just returned.
///
/// # Safety
/// Nobody else can see the task yet: it is neither listed nor queued, and
/// no reference to it was handed out.
pub(crate) unsafe fn set_id(ptr: NonNull<Header>, id: u64) {
    // SAFETY: the caller's duty: this is the only access to the header.
    unsafe { (*ptr.as_ptr()).id = id };
}

/// The size of a task cell with body `B` (before the allocator rounds it
/// up to its size class).
pub(crate) const fn cell_size<B: Body>() -> usize {
    std::mem::size_of::<Cell<B>>()
}

/// The message carried by a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).into()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "task panicked with a non-string payload".into()
    }
}

/// Runs a task popped from a queue. Consumes the queue's reference.
///
/// # Safety
/// `ptr` is a `Cell<B>` task of the runtime whose worker calls this.
unsafe fn run<B: Body>(ptr: NonNull<()>, cx: &worker::Here) {
    let ptr = ptr.cast::<Header>();
    // SAFETY: the queue's reference keeps the task alive.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: a queued task belongs to the calling worker's runtime, and the
    // worker holds an `Arc` of it.
    let rt = unsafe { &*header.runtime };
    let here = cx.worker();
    debug_assert!(here.is_some_and(|w| std::ptr::eq(Arc::as_ptr(&w.shared), rt)));
    if rt.is_cancelling() {
        // Shutdown(Cancel): queued tasks end without running.
        // SAFETY: we hold the queue's reference.
        unsafe { cancel_queued(ptr, rt, here) };
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
                rt.count_at(here, Counter::Unsuspends);
            }
            rt.count_at(here, Counter::RunsStarted);
        }
    }
    // SAFETY: `ptr` is a `Cell<B>` (it was allocated with this vtable).
    let cell = unsafe { Cell::<B>::from_header(ptr) };
    // SAFETY: winning the transition to RUNNING gives us the stage, which
    // holds the body (the task is not done).
    let body = unsafe { &mut *(*cell.stage.get()).body };
    // A borrowed handle: the queue's reference (now ours) keeps it alive.
    let this = ManuallyDrop::new(TaskRef::from_header(ptr));
    let (step, awaiting) = cx.with_task(Some(ptr), || {
        panic::catch_unwind(AssertUnwindSafe(|| body.run(&cell.tag, &this)))
    });
    rt.count_at(here, Counter::RunsEnded);

    let (end, outcome) = match step {
        Ok(Step::Ready(value)) => (TaskState::Succeeded, Some(Ok(value))),
        Ok(Step::Failed(code)) => (TaskState::Failed, Some(Err(Failure::Code(code)))),
        Err(payload) => {
            let failure = Failure::Panicked(Box::new(panic_message(&*payload)));
            (TaskState::Failed, Some(Err(failure)))
        }
        Ok(Step::Cancelled) => (TaskState::Cancelled, None),
        Ok(Step::Yield) => {
            // Queued again, unless it asked to await a task first
            // (`wsrt_await`): then it runs again once that one is done.
            let yield_now = awaiting.is_none();
            // SAFETY: we own the stage and the scheduler's reference.
            unsafe { suspend(ptr, rt, here, yield_now, awaiting) };
            return;
        }
        Ok(Step::Wait) => {
            // SAFETY: as above.
            unsafe { suspend(ptr, rt, here, false, None) };
            return;
        }
    };
    // An await request not followed by a yield has nothing to do.
    drop(awaiting);
    // Who takes the task off the registry: its worker, from its own table
    // without a lock (`finish_own`); or a worker that finished a task
    // another thread listed (and so whose shard lock that thread takes
    // too), later, in a batch (`finish_on_worker`), unless freeing it then
    // would run user code late; or `finish`, at once, under the lock.
    let shard = header.state.load().shard();
    let unlist = match here {
        Some(w) if shard == w.shard && rt.registry.is_table(shard) => Unlist::Own(w),
        Some(w)
            if shard != w.shard
                && match &outcome {
                    Some(Ok(value)) => !B::output_drop_observable(value),
                    _ => true,
                } =>
        {
            Unlist::Batch(w)
        }
        _ => Unlist::Now,
    };
    // SAFETY: we own the stage, which still holds the body.
    unsafe { release_body(cell) };
    if let Some(outcome) = outcome {
        // SAFETY: as above; the body is gone, the outcome becomes live.
        unsafe { (*cell.stage.get()).outcome = ManuallyDrop::new(outcome) };
    }
    // The body was released above (for a C task: `arg_drop` ran) and the
    // outcome written before the state becomes final, so a thread that sees
    // "done" sees both.
    let now = header.state.transition_to_complete(end);
    match unlist {
        // SAFETY: we made the task final, the queue's reference is still
        // ours, and `w` is the worker whose table lists it.
        Unlist::Own(w) => unsafe { finish_own(ptr, rt, w, now) },
        // SAFETY: as above; the reference goes to the worker's batch.
        Unlist::Batch(w) => unsafe { finish_on_worker(ptr, rt, w, now) },
        Unlist::Now => {
            // SAFETY: as above.
            unsafe { finish(ptr, rt, now) };
            // SAFETY: the scheduler's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
        }
    }
}

/// Who takes a task its worker ran to its end off the registry (`run`).
enum Unlist<'a> {
    Own(&'a WorkerThread),
    Batch(&'a WorkerThread),
    Now,
}

/// The function returned "not yet". The scheduler's reference moves to the
/// queue (yield, or woken while running) or stays with the parked task until
/// a wake-up queues it (`other`'s `Resume` entry, or a future's waker).
///
/// # Safety
/// Called by `run` only, with the stage and the scheduler reference owned.
unsafe fn suspend(
    ptr: NonNull<Header>,
    rt: &Shared,
    here: Option<&WorkerThread>,
    yield_now: bool,
    other: Option<TaskRef>,
) {
    // SAFETY: we hold the scheduler's reference.
    let header = unsafe { ptr.as_ref() };
    match header.state.transition_to_suspended(yield_now) {
        ToSuspended::Reschedule => {
            rt.count_at(here, Counter::Suspends);
            rt.schedule(JobRef::task(ptr), true);
        }
        ToSuspended::Parked => {
            // The task keeps the scheduler reference while parked.
            rt.count_at(here, Counter::Suspends);
            if let Some(other) = other {
                let me = ManuallyDrop::new(TaskRef::from_header(ptr));
                let entry = Callback::Resume(TaskRef::clone(&me));
                if let Err(Callback::Resume(me)) = other.add_callback(entry) {
                    // `other` is already done: resume at once.
                    me.wake();
                }
            }
        }
        ToSuspended::Cancelled(now) => {
            // A cancel request arrived while it ran: it ends here.
            // SAFETY: we still own the stage.
            unsafe { (header.vtable.drop_body)(ptr) };
            // SAFETY: we made the task final and hold a reference.
            unsafe { finish(ptr, rt, now) };
            // SAFETY: the scheduler's reference is ours to drop.
            unsafe { drop_ref_at(ptr, here) };
        }
    }
}

/// `cancel()` through a handle. True unless the task was already done.
///
/// # Safety
/// The caller holds a reference to the task.
pub(crate) unsafe fn cancel(ptr: NonNull<Header>) -> bool {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    match header.state.transition_to_cancelled() {
        ToCancelled::AlreadyDone => false,
        ToCancelled::Requested => true,
        ToCancelled::Cancelled { was, parked, now } => {
            // The task is final but not yet counted as done, so its runtime
            // cannot have finished shutting down: it is alive until `finish`
            // counts the task (which pins it first if it still needs it).
            // SAFETY: see above.
            let rt = unsafe { &*header.runtime };
            if was == TaskState::Suspended {
                rt.count(Counter::Unsuspends);
            }
            // SAFETY: winning the transition gave us the stage.
            unsafe { (header.vtable.drop_body)(ptr) };
            // SAFETY: we made the task final and hold a reference.
            unsafe { finish(ptr, rt, now) };
            if parked {
                // SAFETY: the reference a parked task kept is now ours.
                unsafe { drop_ref(ptr) };
            }
            true
        }
    }
}

/// Shutdown(Cancel): ends a task popped from a queue without running it.
///
/// # Safety
/// Called by a worker of `rt` (`here`) holding the queue's reference.
unsafe fn cancel_queued(ptr: NonNull<Header>, rt: &Shared, here: Option<&WorkerThread>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if let ToCancelled::Cancelled { was, parked, now } = header.state.transition_to_cancelled() {
        debug_assert!(!parked, "a queued task is scheduled, not parked");
        if was == TaskState::Suspended {
            rt.count_at(here, Counter::Unsuspends);
        }
        // SAFETY: winning the transition gave us the stage.
        unsafe { (header.vtable.drop_body)(ptr) };
        // SAFETY: we made the task final and hold a reference.
        unsafe { finish(ptr, rt, now) };
    }
}

/// Makes a task that was never queued CANCELLED (a refused spawn).
///
/// # Safety
/// The caller holds the only reference and the task was never scheduled.
pub(crate) unsafe fn cancel_unscheduled(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    let cancelled = matches!(
        header.state.transition_to_cancelled(),
        ToCancelled::Cancelled { .. }
    );
    debug_assert!(cancelled);
    // SAFETY: nobody else can reach the task; we own the stage.
    unsafe { (header.vtable.drop_body)(ptr) };
}

/// Everything after a task became final: callbacks (rule 2 of `mod.rs`),
/// then registry and count, and a shutdown check if needed. The count
/// comes last: a task counted as done lets shutdown finish, so nothing
/// touches the runtime through this task afterwards unless it pinned it
/// first. (The task stays listed while its callbacks run; `live_tasks`
/// skips done tasks.)
///
/// # Safety
/// The caller made the task final (`now` is the state it made) and holds a
/// reference to it; `rt` is its runtime, alive because the task is not
/// counted yet (and held by the caller if it is a worker).
unsafe fn finish(ptr: NonNull<Header>, rt: &Shared, now: Snapshot) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, rt, now) };
    let end = end_counter(now);
    let mut pinned = None;
    rt.registry.remove(header, end, || {
        // Shutdown has begun and this count may be the last one. A worker
        // checks when it next goes idle (after its sleep fence); another
        // thread checks below, which needs the runtime alive.
        if !rt.is_own_worker() {
            // SAFETY: not counted yet, so the runtime is alive (caller's duty).
            pinned = Some(unsafe { pin_runtime(header) });
        }
    });
    // Counted before shutdown began: shutdown's own check sees it
    // (`runtime.rs`), and the runtime may be gone from here on unless this
    // is one of its workers. Otherwise check now.
    if let Some(rt) = pinned {
        rt.after_external_completion();
    }
}

/// `finish` for a task that worker `w` of `rt` ran to its end: the end is
/// counted in the worker's own slots (as its spawns are, and ordered for
/// shutdown the same way: the worker checks when it next goes idle), and
/// the task goes to the worker's batch of finished tasks, which takes it
/// off the registry later, together with others (`WorkerThread::
/// unlist_finished`): one lock per shard and batch instead of one per task,
/// on a line the spawning thread writes too.
///
/// # Safety
/// As `finish`, and the caller's reference (the scheduler's) moves to the
/// batch.
unsafe fn finish_on_worker(ptr: NonNull<Header>, rt: &Shared, w: &WorkerThread, now: Snapshot) {
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, rt, now) };
    rt.counters.add_owned(w.index, end_counter(now));
    // SAFETY: the caller's reference moves into the batch's `TaskRef`.
    w.defer_unlist(unsafe { TaskRef::from_raw(ptr) });
}

/// `finish` for a task that worker `w` of `rt` spawned and ran to its end:
/// unlisted from the worker's table without a lock (`table.rs`), the end
/// counted in the worker's own slots (as in `finish_on_worker`).
///
/// # Safety
/// As `finish`, `w`'s table lists the task, and the caller's reference (the
/// scheduler's) is dropped here.
unsafe fn finish_own(ptr: NonNull<Header>, rt: &Shared, w: &WorkerThread, now: Snapshot) {
    // SAFETY: the caller holds a reference.
    unsafe { run_callbacks(ptr, rt, now) };
    // SAFETY: as above; `w` is the table's owner, and this thread.
    unsafe { rt.registry.remove_own(ptr.as_ref()) };
    rt.counters.add_owned(w.index, end_counter(now));
    // SAFETY: the scheduler's reference is ours to drop; no walker can
    // reach the task any more.
    unsafe { drop_ref_at(ptr, Some(w)) };
}

/// Rule 2 of `mod.rs`: runs the callbacks of a task that just became final
/// (`now`). The caller holds a reference.
///
/// # Safety
/// `ptr` is a task that the caller holds a reference to.
unsafe fn run_callbacks(ptr: NonNull<Header>, rt: &Shared, now: Snapshot) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    let this = ManuallyDrop::new(TaskRef::from_header(ptr));
    header.extras.drain(now, |callback| {
        if callback.run(&this) {
            rt.count(Counter::CallbackPanics);
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
pub(crate) unsafe fn wake(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if header.state.transition_to_notified() == ToNotified::Schedule {
        // Parked and now scheduled by us: not done, so the runtime is alive.
        // SAFETY: see the line above.
        unsafe { with_runtime(header, |rt| rt.schedule(JobRef::task(ptr), false)) };
    }
}

/// Runs `f` with the task's runtime, pinned for the call unless this thread
/// is one of its workers (which hold it alive anyway).
///
/// # Safety
/// The task must not yet be counted as done by its runtime.
unsafe fn with_runtime<R>(header: &Header, f: impl FnOnce(&Shared) -> R) -> R {
    if let Some(worker) = worker::WorkerThread::current() {
        if std::ptr::eq(Arc::as_ptr(&worker.shared), header.runtime) {
            return f(&worker.shared);
        }
    }
    // SAFETY: forwarded to the caller.
    let rt = unsafe { pin_runtime(header) };
    f(&rt)
}

/// A counted reference to the task's runtime.
///
/// # Safety
/// The task must not yet be counted as done by its runtime.
unsafe fn pin_runtime(header: &Header) -> Arc<Shared> {
    // SAFETY: `runtime` came from `Arc::as_ptr` of the runtime's `Arc`,
    // which is alive while the task is not counted as done (caller's duty).
    unsafe {
        Arc::increment_strong_count(header.runtime);
        Arc::from_raw(header.runtime)
    }
}

/// Takes the body back out of a task that was allocated but never listed
/// nor queued (a spawn refused by shutdown), and frees the task.
///
/// # Safety
/// `ptr` is a `Cell<B>` fresh from `allocate` that nobody else can reach.
pub(crate) unsafe fn unspawn<B: Body>(ptr: NonNull<Header>) -> B {
    let cell = ptr.cast::<Cell<B>>();
    // SAFETY: the task never ran, so its stage holds the body; nobody else
    // can reach the cell (caller's duty).
    let body = unsafe { ManuallyDrop::take(&mut (*(*cell.as_ptr()).stage.get()).body) };
    // SAFETY: allocated by `allocate::<B>`. Drops the header (a name set at
    // spawn) and the tag in place, and not the stage, whose body is moved
    // out; then frees.
    unsafe { alloc::free(cell) };
    body
}

/// Drops one reference, freeing the task if it was the last.
///
/// # Safety
/// The caller owns the reference it drops.
pub(crate) unsafe fn drop_ref(ptr: NonNull<Header>) {
    // SAFETY: forwarded.
    unsafe { drop_ref_in(ptr, None) }
}

/// [`drop_ref`] on the thread `here` says: a worker frees the task into
/// its batch of frees (`alloc.rs`) if the reference was the last.
///
/// # Safety
/// As for [`drop_ref`].
pub(crate) unsafe fn drop_ref_at(ptr: NonNull<Header>, here: Option<&WorkerThread>) {
    // SAFETY: forwarded.
    unsafe { drop_ref_in(ptr, here.map(|w| &w.frees)) }
}

/// # Safety
/// As for [`drop_ref`].
unsafe fn drop_ref_in(ptr: NonNull<Header>, frees: Option<&FreeBatch>) {
    // SAFETY: the caller's reference keeps the header alive until here.
    let header = unsafe { ptr.as_ref() };
    if header.state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { (header.vtable.dealloc)(ptr, frees) };
    }
}

/// Takes the success value into `out` and frees the task, if the caller's
/// reference is the last one and the value is there: then no
/// read-modify-write is needed, where `State::take_output` and `drop_ref`
/// make two (`Task::join` of a task that finished a while ago, and that
/// its worker let go of). Returns false, having done nothing, otherwise.
///
/// Why a count of 1 seen by a load means the caller's is the last: every
/// other holder drops its reference with a `Release` decrement (`ref_dec`)
/// that this `Acquire` load, reading the count they left, synchronizes
/// with; and no count can grow again, since only a holder of a reference
/// adds one (`ref_inc`), and the registry and `current_task`, which reach a
/// task without one, only reach tasks that are not done or whose finisher
/// still holds its reference (`registry.rs`).
///
/// # Safety
/// The caller owns a reference, which this consumes when it returns true,
/// and `T` is the body's output type.
pub(crate) unsafe fn take_output_and_free<T>(ptr: NonNull<Header>, out: *mut T) -> bool {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    let now = header.state.load();
    if now.ref_count() != 1 || now.lifecycle() != TaskState::Succeeded || now.is_taken() {
        return false;
    }
    // SAFETY: SUCCEEDED and not taken: the outcome is live; ours alone
    // (see above); the type is the caller's duty.
    unsafe { (header.vtable.take_output)(ptr, out.cast()) };
    // `dealloc` must not drop the value that was just moved out.
    header.state.set_taken_by_last_owner(now);
    // SAFETY: the last reference.
    unsafe { (header.vtable.dealloc)(ptr, None) };
    true
}

/// The failure of a FAILED task.
///
/// # Safety
/// The caller holds a reference and has seen the task FAILED (Acquire).
pub(crate) unsafe fn failure(ptr: NonNull<Header>) -> Option<Failure> {
    // SAFETY: forwarded.
    unsafe { (ptr.as_ref().vtable.failure)(ptr) }
}

/// Moves the success value into `out` (a `*mut MaybeUninit<T>`).
///
/// # Safety
/// The caller won `State::take_output`, and `T` is the body's output type.
pub(crate) unsafe fn take_output<T>(ptr: NonNull<Header>, out: *mut T) {
    // SAFETY: forwarded.
    unsafe { (ptr.as_ref().vtable.take_output)(ptr, out.cast()) }
}

/// True if the task of `vtable` has a `B` body; `B` must have a
/// [`BodyKind`] of its own (checked at compile time).
fn has_kind<B: Body>(vtable: &Vtable) -> bool {
    const { assert!(!matches!(B::KIND, BodyKind::Other)) };
    vtable.kind == B::KIND
}

/// The immutable tag if the body is a `B`, else `None`.
///
/// # Safety
/// The caller holds a reference.
pub(crate) unsafe fn tag_of<B: Body>(ptr: NonNull<Header>) -> Option<&'static B::Tag> {
    // SAFETY: the caller's reference keeps the header alive.
    let vtable = unsafe { ptr.as_ref().vtable };
    if !has_kind::<B>(vtable) {
        return None;
    }
    // SAFETY: the type matches; the tag is immutable and lives as long as
    // the caller's reference (the `'static` is narrowed by the caller).
    Some(unsafe { &*(vtable.tag)(ptr).cast::<B::Tag>() })
}

/// The output of a SUCCEEDED task if the body is a `B`, read in place.
///
/// # Safety
/// The caller holds a reference and has seen the task SUCCEEDED; nobody
/// takes the output of a `B` task (it is only read).
pub(crate) unsafe fn output_of<B: Body>(ptr: NonNull<Header>) -> Option<&'static B::Output> {
    // SAFETY: the caller's reference keeps the header alive.
    let vtable = unsafe { ptr.as_ref().vtable };
    if !has_kind::<B>(vtable) {
        return None;
    }
    // SAFETY: the type matches.
    let cell = unsafe { Cell::<B>::from_header(ptr) };
    // SAFETY: a SUCCEEDED task's outcome is live (nobody takes it, caller's
    // duty) and only read from now on.
    unsafe { &*(*cell.stage.get()).outcome }.as_ref().ok()
}

/// # Safety
/// The caller owns the stage (won RUNNING or CANCELLED) and it holds the
/// body.
unsafe fn drop_body<B: Body>(ptr: NonNull<Header>) {
    // SAFETY: the cell is a `Cell<B>`; the rest is the caller's duty.
    unsafe { release_body(Cell::<B>::from_header(ptr)) };
}

/// Releases the body and drops it in place (a future is pinned there); the
/// stage then holds nothing until an outcome is written.
///
/// A panic from a destructor (a closure's captures, a future's state) is
/// caught and dropped: the task's outcome is already decided, and the
/// thread here is a worker or a canceller that must go on to finish it.
///
/// # Safety
/// The caller owns the stage and it holds the body.
unsafe fn release_body<B: Body>(cell: &Cell<B>) {
    // SAFETY: caller's duty; the stage is ours and holds the body.
    let body = unsafe { &mut (*cell.stage.get()).body };
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        body.release(&cell.tag);
        // SAFETY: the body is live and never touched again; if its drop
        // panics, unwinding drops the rest of it, still in place.
        unsafe { ManuallyDrop::drop(body) };
    }));
}

/// # Safety
/// The last reference was dropped.
unsafe fn dealloc<B: Body>(ptr: NonNull<Header>, frees: Option<&FreeBatch>) {
    let mut ptr = ptr.cast::<Cell<B>>();
    // SAFETY: no references remain, and `ref_dec`'s AcqRel made every write
    // to the cell visible.
    let cell = unsafe { ptr.as_mut() };
    let now = cell.header.state.load();
    debug_assert!(now.is_done(), "a task freed before it was done");
    let stage = cell.stage.get_mut();
    let outcome_live = match now.lifecycle() {
        TaskState::Succeeded => !now.is_taken(),
        TaskState::Failed => true,
        _ => false,
    };
    if outcome_live {
        // A panicking destructor of the output is caught (as the body's in
        // `release_body`): this may run on a worker, and the cell must
        // still be freed.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the stage's rule (on `Stage`): the outcome is live.
            unsafe { ManuallyDrop::drop(&mut stage.outcome) };
        }));
    }
    // SAFETY: allocated by `allocate::<B>`; no reference remains. Drops the
    // header (and its callback list) and the tag in place, then frees.
    unsafe { alloc::free_in(ptr, frees) };
}

/// # Safety
/// The task is FAILED (Acquire-observed) and the caller holds a reference.
unsafe fn failure_of<B: Body>(ptr: NonNull<Header>) -> Option<Failure> {
    // SAFETY: a FAILED task's outcome is live and only read from now on.
    match unsafe { &*(*Cell::<B>::from_header(ptr).stage.get()).outcome } {
        Err(f) => Some(f.clone()),
        Ok(_) => None,
    }
}

/// # Safety
/// The caller won `take_output` and `out` points to a `MaybeUninit<B::Output>`.
unsafe fn take_output_of<B: Body>(ptr: NonNull<Header>, out: *mut ()) {
    // SAFETY: the cell is a `Cell<B>` (caller's duty).
    let stage = unsafe { Cell::<B>::from_header(ptr) }.stage.get();
    // SAFETY: `take_output` is won by one thread only, once the task
    // SUCCEEDED, so the outcome is live and this is the only access that
    // moves it; TAKEN tells `dealloc` it is gone.
    let outcome = unsafe { ManuallyDrop::take(&mut (*stage).outcome) };
    match outcome {
        // SAFETY: `out` is valid for a write of `B::Output` (caller's duty).
        Ok(value) => unsafe { out.cast::<B::Output>().write(value) },
        Err(_) => unreachable!("took the output of a task that did not succeed"),
    }
}

/// # Safety
/// The caller holds a reference.
unsafe fn tag<B: Body>(ptr: NonNull<Header>) -> *const () {
    // SAFETY: the cell is a `Cell<B>`.
    let cell = unsafe { Cell::<B>::from_header(ptr) };
    (&cell.tag as *const B::Tag).cast()
}
