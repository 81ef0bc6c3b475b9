//! The task allocation: header, tag and stage in one `Cell<B>`, and the
//! vtable through which everything that depends on the body type is
//! reached. The vtable also carries the scheduler's entries
//! ([`Schedule`]): `sched/harness.rs` implements them, and they are the only
//! way this module reaches the scheduler.

use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::time::Instant;

use super::body::{Body, BodyKind, Failure, Step, StoredFailure};
use super::callbacks::Extras;
use super::state::{SpawnKind, State, TaskState, ToCancelled};
use crate::sync::alloc::{self, FreeBatch, Heap};

/// The type-independent part of every task, at offset 0 of its `Cell`.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) vtable: &'static Vtable,
    pub(crate) state: State,
    /// The runtime it was spawned on, as the scheduler's opaque pointer
    /// (`sched/harness.rs` reads it). See "Who may touch what" in `mod.rs`.
    pub(crate) owner: *const (),
    /// The first callback, the id, and the name and further callbacks.
    pub(crate) extras: Extras,
    /// Its place in the runtime's live-task list.
    pub(crate) links: Links,
}

// Eight words on 64-bit targets: a task with up to 16 bytes of body and
// output then fits a 64 + 16 byte allocator size class.
const _: () = assert!(std::mem::size_of::<Header>() <= 8 * std::mem::size_of::<usize>());

impl Header {
    /// The task's id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.extras.id()
    }
}

/// A task's place in its shard of the live-task list (`list/`, which alone
/// touches it otherwise): its slot in a worker's table (`slot_or_prev`:
/// written by the worker before the task is listed, read by the thread that
/// unlists it), or its neighbours in an outside shard's list (touched only
/// under the shard's lock).
pub(crate) struct Links {
    pub(crate) slot_or_prev: UnsafeCell<usize>,
    pub(crate) next: UnsafeCell<Next>,
}

/// The second word of [`Links`]: the next task of an outside shard's list;
/// or, for a task in a worker's table (which has no list neighbours) whose
/// state word says ISOLATED, the isolation tag it was spawned under
/// (written at spawn, then only read: [`isolation_tag`]).
#[derive(Clone, Copy)]
pub(crate) union Next {
    pub(crate) task: *const Header,
    pub(crate) tag: u64,
}

impl Links {
    fn new(isolation: u64) -> Links {
        Links {
            slot_or_prev: UnsafeCell::new(0),
            next: UnsafeCell::new(if isolation != 0 {
                Next { tag: isolation }
            } else {
                Next { task: ptr::null() }
            }),
        }
    }
}

/// The isolation tag of a task spawned inside an isolated wait, or 0.
///
/// # Safety
/// The caller holds a reference to the task.
pub(crate) unsafe fn isolation_tag(ptr: NonNull<Header>) -> u64 {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    if !header.state.load().is_isolated() {
        return 0;
    }
    // SAFETY: an ISOLATED task is in a worker's table, where `next` holds
    // its tag, written before the task was shared and never again.
    unsafe { (*header.links.next.get()).tag }
}

/// How a wait for a task ended ([`Schedule::wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    Done,
    TimedOut,
    /// Called inside the task itself, which could never finish (asyncio
    /// raises `RuntimeError` for a task awaiting itself).
    OnItself,
    /// The task is not done and its runtime was inherited through
    /// `fork()`: it has no workers in this process.
    Forked,
}

/// What the scheduler does for a task, as functions every task's vtable
/// holds (tokio's `Schedule`, async-task's `TaskVTable`): `sched/harness.rs`
/// implements it for the one scheduler there is.
pub(crate) trait Schedule: 'static {
    /// `TaskRef::cancel`: the asyncio rules, and whatever the end of the
    /// task then needs (callbacks, the list, the counts).
    ///
    /// # Safety
    /// The caller holds a reference to the task.
    unsafe fn cancel(task: NonNull<Header>) -> bool;

    /// A wake-up of a task suspended on something that is now ready: a
    /// parked task is queued again; otherwise nothing.
    ///
    /// # Safety
    /// The caller holds a reference to the task (and keeps it).
    unsafe fn wake(task: NonNull<Header>);

    /// `TaskRef::wait_until`: until the task is done or `deadline`.
    ///
    /// # Safety
    /// The caller holds a reference to the task (and keeps it).
    unsafe fn wait(task: NonNull<Header>, deadline: Option<Instant>) -> Waited;
}

/// Operations that need the body type, then the scheduler's.
pub(crate) struct Vtable {
    /// Runs the body once; see [`Ran`].
    pub(crate) run: unsafe fn(NonNull<Header>) -> Ran,
    pub(crate) drop_body: unsafe fn(NonNull<Header>),
    dealloc: unsafe fn(NonNull<Header>, Option<&FreeBatch>),
    failure: unsafe fn(NonNull<Header>) -> Option<Failure>,
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    tag: unsafe fn(NonNull<Header>) -> *const (),
    /// `B::KIND`, for `tag_of` and `output_of`.
    kind: BodyKind,
    /// [`Schedule::cancel`].
    pub(crate) cancel: unsafe fn(NonNull<Header>) -> bool,
    /// [`Schedule::wake`].
    pub(crate) wake: unsafe fn(NonNull<Header>),
    /// [`Schedule::wait`].
    pub(crate) wait: unsafe fn(NonNull<Header>, Option<Instant>) -> Waited,
}

/// How one run of a task's body ended ([`Vtable::run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// Done: the body is released (a C task's `arg_drop` ran) and the
    /// outcome stored; the caller makes the state `end`. `drop_observable`:
    /// dropping the stored value runs user code
    /// ([`Body::output_drop_observable`]).
    Done {
        end: TaskState,
        drop_observable: bool,
    },
    /// Not done: queue it again now (`WSRT_TASK_YIELD`), or, if the run
    /// asked to await a task (`wsrt_await`), once that task is done.
    Yield,
    /// Not done: run it again when its waker fires (futures).
    Wait,
}

/// The body until it is released, then the outcome of a task that ran to
/// SUCCEEDED or FAILED. Untagged: the state word says which field is live,
/// so the cell pays no discriminant (for a C task, the difference between
/// two allocator size classes):
///
/// - not done, or CANCELLED with the body not yet released by the
///   canceller that won the transition: `body`;
/// - SUCCEEDED without TAKEN: `value`; FAILED: `failure` (written before
///   the state became final, by the thread that ran the task);
/// - CANCELLED after the canceller released the body, or SUCCEEDED with
///   TAKEN: nothing.
union Stage<B: Body> {
    body: ManuallyDrop<B>,
    value: ManuallyDrop<B::Output>,
    failure: ManuallyDrop<StoredFailure>,
}

#[repr(C)]
struct Cell<B: Body> {
    header: Header,
    tag: B::Tag,
    stage: UnsafeCell<Stage<B>>,
}

/// The vtable of a task with body `B` on scheduler `S`.
struct VtableOf<B, S>(PhantomData<(B, S)>);

impl<B: Body, S: Schedule> VtableOf<B, S> {
    const VTABLE: Vtable = Vtable {
        run: run::<B>,
        drop_body: drop_body::<B>,
        dealloc: dealloc::<B>,
        failure: failure_of::<B>,
        take_output: take_output_of::<B>,
        tag: tag::<B>,
        kind: B::KIND,
        cancel: S::cancel,
        wake: S::wake,
        wait: S::wait,
    };
}

impl<B: Body> Cell<B> {
    /// # Safety
    /// `ptr` must point to the header of a live `Cell<B>`.
    unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a Cell<B> {
        // SAFETY: the header is the first field of the `repr(C)` cell.
        unsafe { ptr.cast::<Cell<B>>().as_ref() }
    }
}

/// Where a new task goes and what it is, for [`allocate`].
pub(crate) struct Spawn {
    pub(crate) id: u64,
    /// The scheduler's pointer to its runtime, or to the task's group
    /// (`kind.grouped`).
    pub(crate) owner: *const (),
    pub(crate) refs: u64,
    /// Its shard of the live-task list.
    pub(crate) shard: usize,
    pub(crate) kind: SpawnKind,
    /// With `kind.isolated`: the isolation tag (non-zero). Only for a task
    /// listed in a worker's table.
    pub(crate) isolation: u64,
}

/// Allocates a PENDING, scheduled task, from `heap` if given (the calling
/// worker's), for scheduler `S`.
pub(crate) fn allocate<B: Body, S: Schedule>(
    heap: Option<Heap>,
    body: B,
    tag: B::Tag,
    spawn: Spawn,
) -> NonNull<Header> {
    debug_assert_eq!(spawn.kind.isolated, spawn.isolation != 0);
    let cell = alloc::boxed_in(heap, || Cell {
        header: Header {
            vtable: &VtableOf::<B, S>::VTABLE,
            state: State::new(spawn.refs, spawn.shard, spawn.kind),
            owner: spawn.owner,
            extras: Extras::new(spawn.id),
            links: Links::new(spawn.isolation),
        },
        tag,
        stage: UnsafeCell::new(Stage {
            body: ManuallyDrop::new(body),
        }),
    });
    cell.cast()
}

/// The size of a task cell with body `B` (before the allocator pads it to
/// its size class).
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

/// Runs the body once, on the thread that won the transition to RUNNING
/// (so owns the stage). A panic is caught and ends the task FAILED. On an
/// end, releases the body and stores the outcome, both before the caller
/// makes the state final, so a thread that sees "done" sees them.
///
/// # Safety
/// `ptr` is a `Cell<B>` task whose stage the caller owns and which holds
/// the body; the caller holds a reference.
unsafe fn run<B: Body>(ptr: NonNull<Header>) -> Ran {
    // SAFETY: the vtable was made for a `Cell<B>` (caller's duty).
    let cell = unsafe { Cell::<B>::from_header(ptr) };
    // SAFETY: the stage is ours and holds the body (caller's duty).
    let body = unsafe { &mut *(*cell.stage.get()).body };
    let step = panic::catch_unwind(AssertUnwindSafe(|| body.run(&cell.tag, ptr.cast())));
    let (end, outcome) = match step {
        Ok(Step::Ready(value)) => (TaskState::Succeeded, Some(Ok(value))),
        Ok(Step::Failed(code)) => (TaskState::Failed, Some(Err(Failure::Code(code)))),
        Err(payload) => {
            let failure = Failure::Panicked(panic_message(&*payload));
            (TaskState::Failed, Some(Err(failure)))
        }
        Ok(Step::Cancelled) => (TaskState::Cancelled, None),
        Ok(Step::Yield) => return Ran::Yield,
        Ok(Step::Wait) => return Ran::Wait,
    };
    let drop_observable = match &outcome {
        Some(Ok(value)) => B::output_drop_observable(value),
        _ => false,
    };
    // SAFETY: we own the stage, which still holds the body.
    unsafe { release_body(cell) };
    let stage = cell.stage.get();
    match outcome {
        // SAFETY: as above; the body is gone, the value becomes live.
        Some(Ok(value)) => unsafe { (*stage).value = ManuallyDrop::new(value) },
        // SAFETY: as above; the body is gone, the failure becomes live.
        Some(Err(f)) => unsafe { (*stage).failure = ManuallyDrop::new(StoredFailure::new(f)) },
        None => {}
    }
    Ran::Done {
        end,
        drop_observable,
    }
}

/// Makes a task that was never queued CANCELLED (a refused spawn).
///
/// # Safety
/// The caller holds the only reference and the task was never scheduled.
pub(crate) unsafe fn cancel_unscheduled(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive.
    let header = unsafe { ptr.as_ref() };
    let claimed = matches!(
        header.state.transition_to_cancelled(),
        ToCancelled::Claimed { .. }
    );
    debug_assert!(claimed);
    // SAFETY: nobody else can reach the task; we own the stage.
    unsafe { (header.vtable.drop_body)(ptr) };
    let _ = header.state.finish_cancel();
}

/// [`Schedule::cancel`], through the task's vtable.
///
/// # Safety
/// The caller holds a reference to the task.
pub(crate) unsafe fn cancel(ptr: NonNull<Header>) -> bool {
    // SAFETY: the caller's reference keeps the header alive; forwarded.
    unsafe { (ptr.as_ref().vtable.cancel)(ptr) }
}

/// [`Schedule::wake`], through the task's vtable.
///
/// # Safety
/// The caller holds a reference to the task (and keeps it).
pub(crate) unsafe fn wake(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive; forwarded.
    unsafe { (ptr.as_ref().vtable.wake)(ptr) }
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

/// [`drop_ref`], freeing the task into `frees` (a worker's batch,
/// `sync/alloc.rs`) if the reference was the last.
///
/// # Safety
/// As for [`drop_ref`].
pub(crate) unsafe fn drop_ref_in(ptr: NonNull<Header>, frees: Option<&FreeBatch>) {
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
/// adds one (`ref_inc`), and the task list and `current_task`, which reach a
/// task without one, only reach tasks that are not done or whose finisher
/// still holds its reference (`list/mod.rs`).
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
    // SAFETY: a SUCCEEDED task's value is live (nobody takes it, caller's
    // duty) and only read from now on.
    Some(unsafe { &*(*cell.stage.get()).value })
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
    match now.lifecycle() {
        TaskState::Succeeded if !now.is_taken() => {
            // A panicking destructor of the output is caught (as the
            // body's in `release_body`): this may run on a worker, and the
            // cell must still be freed.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the stage's rule (on `Stage`): the value is live.
                unsafe { ManuallyDrop::drop(&mut stage.value) };
            }));
        }
        // SAFETY: the stage's rule: the failure is live. Its drop frees a
        // message and cannot panic.
        TaskState::Failed => unsafe { ManuallyDrop::drop(&mut stage.failure) },
        _ => {}
    }
    cell.header.state.poison();
    // SAFETY: allocated by `allocate::<B>`; no reference remains. Drops the
    // header (and its callback list) and the tag in place, then frees.
    unsafe { alloc::free_in(ptr, frees) };
}

/// # Safety
/// The task is FAILED (Acquire-observed) and the caller holds a reference.
unsafe fn failure_of<B: Body>(ptr: NonNull<Header>) -> Option<Failure> {
    // SAFETY: a FAILED task's failure is live and only read from now on.
    Some(unsafe { (*Cell::<B>::from_header(ptr).stage.get()).failure.get() })
}

/// # Safety
/// The caller won `take_output` and `out` points to a `MaybeUninit<B::Output>`.
unsafe fn take_output_of<B: Body>(ptr: NonNull<Header>, out: *mut ()) {
    // SAFETY: the cell is a `Cell<B>` (caller's duty).
    let stage = unsafe { Cell::<B>::from_header(ptr) }.stage.get();
    // SAFETY: `take_output` is won by one thread only, once the task
    // SUCCEEDED, so the value is live and this is the only access that
    // moves it; TAKEN tells `dealloc` it is gone.
    let value = unsafe { ManuallyDrop::take(&mut (*stage).value) };
    // SAFETY: `out` is valid for a write of `B::Output` (caller's duty).
    unsafe { out.cast::<B::Output>().write(value) }
}

/// # Safety
/// The caller holds a reference.
unsafe fn tag<B: Body>(ptr: NonNull<Header>) -> *const () {
    // SAFETY: the cell is a `Cell<B>`.
    let cell = unsafe { Cell::<B>::from_header(ptr) };
    (&cell.tag as *const B::Tag).cast()
}
