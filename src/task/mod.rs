//! Tasks: one allocation each, one atomic state word, reference counted.
//!
//! # Who owns a reference
//!
//! A task is freed when its reference count (in the state word) drops to
//! zero. References are held by:
//!
//! 1. every [`Task`]/[`TaskRef`] handle (and every retained C `wsrt_task *`);
//! 2. the scheduler, from spawn until the task is done: one reference, held
//!    by the queue while SCHEDULED, by the worker while RUNNING, and by the
//!    task itself while SUSPENDED and unscheduled ("parked"); a wake-up
//!    moves it back to a queue, a cancel of a parked task drops it. So a
//!    task listed in the live-task list (not done) is always alive;
//! 3. every `Waker` of an async task, and the `Resume` entry a task
//!    suspended by `wsrt_await` leaves in the awaited task's callback list;
//! 4. whoever finishes a task (worker or canceller) while it runs the
//!    done-callbacks, so callbacks may release the last handle safely.
//!
//! # Who may touch what
//!
//! - `state`: anyone, only through `state.rs`; one plain store among its
//!   read-modify-writes: the holder of the last reference marks the value
//!   taken before it frees the task (`raw::take_output_and_free`).
//! - `stage` (closure, then output): the thread that won the transition to
//!   RUNNING, or the canceller that won PENDING/SUSPENDED → CANCELLED. After
//!   the task is done the stage holds the output and is only read, except by
//!   `Task::join`, which moves a success value out after winning the TAKEN
//!   flag of the state word, or, holding the last reference, without a
//!   contest (`raw::take_output_and_free`).
//! - `extras` (name, callback list): under its mutex.
//! - `owner` (the runtime, opaque here): dereferenced only by the
//!   scheduler (`sched/harness.rs`), by a worker of that runtime, or by a
//!   thread that just made the task leave a non-final state it controls
//!   (the canceller, the waker) after taking a counted reference to the
//!   runtime: a task that is not yet counted as done keeps the runtime from
//!   finishing shutdown, so the runtime is alive at that moment.
//!
//! # The callbacks: a slot, then a list
//!
//! 1. The first adder publishes the task's slot (`publish_slot`: SLOT_USED,
//!    SLOT_FULL and the kind, once per task, only while not done), then
//!    writes its entry there; whoever takes the entry waits until it is
//!    written (`callbacks.rs`, "Publish, then fill"). Every later adder uses
//!    the list: under the list lock, and only after a successful
//!    `set_callbacks` CAS, which fails once the task is done. An adder that
//!    finds the task done runs its callback itself, at once, on its thread.
//! 2. The thread that makes the task final reads SLOT_FULL and CALLBACKS
//!    from the same CAS that makes it final. It runs the slot's entry if
//!    full, then, if CALLBACKS, takes the list lock and pops entries one at
//!    a time, in insertion order, running each with the lock released. The
//!    slot's entry was added before any list entry, so order holds.
//! 3. A removal withdraws a slot entry with `unpublish_slot` (only while
//!    not done) or takes a list entry out under the lock. So each entry runs
//!    exactly once, after the state is final, or is removed and never runs.

pub(crate) mod c_body;
pub(crate) mod callbacks;
pub(crate) mod future;
pub(crate) mod handle;
pub(crate) mod id;
pub(crate) mod list;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod raw;
pub(crate) mod state;

pub(crate) use callbacks::Callback;
pub(crate) use handle::Waited;
pub use handle::{CallbackKey, Task, TaskError, TaskRef};
pub use state::TaskState;

/// How a task failed, as stored in the task once it is FAILED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The function returned this error code (C tasks).
    Code(i32),
    /// The function panicked with this message. Boxed, so that the
    /// pointer's niche leaves `Result<T, Failure>` at 16 bytes for any `T`
    /// of up to 8 bytes (24 with a `Box<str>` here): a C task's cell then
    /// fits a 96-byte allocator size class (`c_body.rs`, `CPlainTask`).
    /// The extra allocation is paid only when a task panics.
    #[allow(clippy::box_collection)]
    Panicked(Box<String>),
}

/// How one run of a task's function ended.
pub(crate) enum Step<T> {
    /// Done with a value: SUCCEEDED.
    Ready(T),
    /// Done, cancelled by its own choice: CANCELLED.
    Cancelled,
    /// Done with an error code: FAILED.
    Failed(i32),
    /// Not done: queue it again now (`WSRT_TASK_YIELD`), or, if the run
    /// asked to await a task (`wsrt_await`, kept in the thread's context,
    /// `sched/context.rs`), run it again once that task is done.
    Yield,
    /// Not done: run it again when its waker fires (futures).
    Wait,
}

impl<T> Step<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Ready(value) => Step::Ready(f(value)),
            Step::Cancelled => Step::Cancelled,
            Step::Failed(code) => Step::Failed(code),
            Step::Yield => Step::Yield,
            Step::Wait => Step::Wait,
        }
    }
}

/// What a task runs: a closure, a C function with its argument, a future.
///
/// `Tag` is immutable data readable at any time through an untyped handle
/// (the C `arg`), kept outside the stage so reading it never races the run.
pub(crate) trait Body: Send + 'static {
    type Output: Send + 'static;
    type Tag: Send + Sync + 'static;
    /// Runs the function once. Called only by the thread that won the
    /// transition to RUNNING.
    fn run(&mut self, tag: &Self::Tag, task: &TaskRef) -> Step<Self::Output>;

    /// Cleans up once the task is done (or cancelled before it ran):
    /// exactly once, by the thread that ends the task, right before the body
    /// is dropped in place (a pinned future is never moved), and before the
    /// state becomes final when it ran. `tag` is there for bodies whose
    /// clean-up needs it (the C `arg_drop(arg)`).
    fn release(&mut self, _tag: &Self::Tag) {}

    /// True if dropping `output` may run code of the user's (a `Drop`, the
    /// C `result_drop`): such a task must be freed by whoever drops its
    /// last reference, when they drop it, so a worker never keeps it in its
    /// batch of finished tasks (`sched/harness.rs`).
    fn output_drop_observable(_output: &Self::Output) -> bool {
        std::mem::needs_drop::<Self::Output>()
    }

    /// For the body types whose tag or output is read from outside
    /// `raw.rs` (the C ABI's), a kind of their own: the check that a task
    /// has such a body is then one byte compare (`raw::tag_of`,
    /// `raw::output_of`). Each kind but `Other` names exactly one type.
    const KIND: BodyKind = BodyKind::Other;
}

/// See [`Body::KIND`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BodyKind {
    Other,
    /// `c_body::CPlainTask`.
    CPlain,
    /// `c_body::CTask`.
    C,
}

/// A closure run once.
pub(crate) struct Once<F>(pub(crate) Option<F>);

impl<F, T> Body for Once<F>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    type Tag = ();
    fn run(&mut self, _tag: &(), _task: &TaskRef) -> Step<T> {
        let f = self.0.take().expect("a one-shot task ran twice");
        Step::Ready(f())
    }
}
