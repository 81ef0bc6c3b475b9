//! wsrt: a multi-threaded work-stealing task runtime with asyncio-style task
//! handles, usable from Rust and, through `include/wsrt.h`, from C and C++.
//!
//! Per-core worker threads run tasks from their own deques and steal from
//! each other when idle. Every spawned task has a reference-counted handle
//! whose state lives in one atomic word:
//!
//! ```text
//! PENDING → RUNNING (→ SUSPENDED → RUNNING …) → SUCCEEDED | FAILED | CANCELLED
//! ```
//!
//! `cancel()` is a request (a pending or suspended task is cancelled at once,
//! a running one is asked), a result before the end is an error, and
//! done-callbacks run exactly once, after the end. The C ABI
//! (`include/wsrt.h`, `docs/api.md`) is built on this crate's API.
//!
//! ```
//! let rt = wsrt::Runtime::builder().workers(2).build().unwrap();
//! let t = rt.spawn(|| 40 + 2);
//! assert_eq!(t.join(), Ok(42));
//!
//! let (a, b) = wsrt::join(|| 1, || 2);
//! assert_eq!(a + b, 3);
//!
//! let mut v = vec![1, 2, 3];
//! rt.scope(|s| {
//!     for x in v.iter_mut() {
//!         s.spawn(move |_| *x *= 10);
//!     }
//! });
//! assert_eq!(v, [10, 20, 30]);
//! ```
//!
//! # Choices where the contract is silent
//!
//! - Task ids are process-wide: unique across runtimes.
//! - `spawn` on a runtime that is shutting down returns a task that is
//!   already CANCELLED (its closure is dropped unrun); `try_spawn` hands the
//!   closure back instead. During a drain, tasks spawned by the runtime's own
//!   workers are still accepted, so running tasks can finish their work.
//! - A task that yields or awaits while a cancel was requested ends
//!   CANCELLED at that point (asyncio delivers the cancellation at the next
//!   suspension point).
//! - `Task::join` moves the value out; other clones then get
//!   [`TaskError::ResultTaken`].
//! - Outside the pool, [`join`] and [`spawn`] use a process-wide default
//!   runtime ([`global`]), started on first use.
//! - A panic from the destructor of a task's closure, future or output is
//!   caught and ignored: the task's outcome is already decided, and the
//!   worker (or canceller) goes on.
//!
//! # Cargo features
//!
//! - `mimalloc` (default): task cells and callback lists come from
//!   mimalloc, called directly; the global allocator is not replaced.
//!   Without it they come from the global allocator (what valgrind and the
//!   sanitizers track).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// Layers, each importing only those below it: `sync` ← `task` ← `sched` ←
// {`runtime`, `join`, `scope`, `group`, `time`, `wait`} ← `ffi`
// (`docs/design.md`).
pub(crate) mod error;
pub mod ffi;
pub(crate) mod group;
pub(crate) mod join;
pub(crate) mod runtime;
pub(crate) mod sched;
pub(crate) mod scope;
pub(crate) mod sync;
pub(crate) mod task;
pub(crate) mod time;
pub(crate) mod wait;

pub use error::Error;
pub use group::{current_group, Group, GroupFlags, GroupStats};
pub use join::join;
pub use runtime::{global, Builder, Handle, Runtime, ShutdownMode};
pub use sched::context::{cancel_requested, current_task};
pub use sched::stats::Stats;
pub use scope::Scope;
pub use task::body::Cancelled;
pub use task::{CallbackKey, Task, TaskError, TaskRef, TaskState};
pub use time::{sleep, Sleep};
pub use wait::{wait_all, wait_all_timeout, wait_any, wait_any_timeout};

/// Spawns `f` on the runtime of the current worker thread, or on the
/// [`global`] runtime when called outside the pool.
pub fn spawn<F, T>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Borrows the worker's runtime: `Handle::current()` would clone its
    // `Arc`, a write to a count shared by every worker, at every spawn.
    match sched::worker::WorkerThread::current() {
        Some(w) => runtime::spawn_on(&w.pool, f),
        None => global().spawn(f),
    }
}

// The Rust code of the README and of docs/api.md is compiled and run as
// doctests, so what they show stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/api.md")]
struct ApiDoctests;
