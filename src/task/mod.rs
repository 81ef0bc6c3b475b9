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
//! 3. every `Waker` of an async task, and the resume entry a task
//!    suspended by `wsrt_await` leaves in the awaited task's callback list
//!    (`sched/harness.rs`);
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
//! - `extras` (name, callback list): under its mutex; the id, read by
//!   anyone, is written once, at spawn (moved once, before the list is
//!   published, into the list's allocation).
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

pub(crate) mod body;
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

pub(crate) use body::{Body, Once};
pub(crate) use callbacks::Callback;
pub use handle::{CallbackKey, Task, TaskError, TaskRef};
pub(crate) use raw::Waited;
pub use state::TaskState;
