//! The C ABI (`include/wsrt.h`, generated from this module by cbindgen):
//! conversions, checks and documentation only; every function delegates to
//! the Rust API.
//!
//! Every exported function runs inside `ffi_boundary!` (`boundary.rs`), so
//! a Rust panic never unwinds into C: it becomes the function's documented
//! default (`WSRT_ERR_PANIC` for status-returning functions). Pointers are
//! checked with `try_ref!`-style helpers; outputs are written only on
//! success.
#![allow(non_camel_case_types)]
// The exports are safe to call from C whenever the header's pointer rules
// hold; marking them `unsafe fn` would document nothing more to C callers,
// and every dereference inside still sits in an `unsafe` block with its
// SAFETY line (as rustls-ffi does).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, CStr};

pub(crate) mod boundary;
pub(crate) mod group;
pub(crate) mod handles;
pub(crate) mod runtime;
pub(crate) mod task;
pub(crate) mod wait;

pub use group::*;
pub use handles::*;
pub use runtime::*;
pub use task::*;
pub use wait::*;

use crate::task::c_body;

/// Result of every fallible function. `WSRT_OK` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum wsrt_status {
    /// Success.
    WSRT_OK = 0,
    /// A required pointer was NULL.
    WSRT_ERR_NULL,
    /// An argument is invalid: a name that is not UTF-8, an enum value out of
    /// range, a buffer pointer NULL with a non-zero capacity.
    WSRT_ERR_INVALID_ARG,
    /// The runtime is shutting down or shut down.
    WSRT_ERR_SHUTDOWN,
    /// The task is not in a state that allows this (e.g. the result of a
    /// task that is not done).
    WSRT_ERR_INVALID_STATE,
    /// The task ended CANCELLED.
    WSRT_ERR_CANCELLED,
    /// The task ended FAILED; `wsrt_task_error` gives the code.
    WSRT_ERR_FAILED,
    /// `wsrt_task_wait` timed out.
    WSRT_ERR_TIMEOUT,
    /// The call would wait for the worker it runs on (e.g. freeing a
    /// runtime from one of its own tasks).
    WSRT_ERR_WOULD_DEADLOCK,
    /// A bug inside wsrt was caught (a Rust panic); nothing was changed that
    /// the caller can observe as half-done. Please report it.
    WSRT_ERR_PANIC,
    /// The runtime (or the task's runtime) was created in the parent of
    /// this process, before `fork()`: its worker threads do not exist here.
    /// Make a new runtime in the child.
    WSRT_ERR_FORKED,
}

/// Where a task is in its life. SUCCEEDED, FAILED and CANCELLED are final.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum wsrt_state {
    /// Spawned, not started yet.
    WSRT_STATE_PENDING,
    /// A worker runs its function now.
    WSRT_STATE_RUNNING,
    /// Returned `WSRT_TASK_YIELD` (or awaits another task); will run again.
    WSRT_STATE_SUSPENDED,
    /// Final: the function returned `WSRT_TASK_OK`.
    WSRT_STATE_SUCCEEDED,
    /// Final: the function returned a failure code (or a Rust task panicked).
    WSRT_STATE_FAILED,
    /// Final: cancelled before or between runs, or it returned
    /// `WSRT_TASK_CANCELLED`.
    WSRT_STATE_CANCELLED,
}

impl From<crate::task::TaskState> for wsrt_state {
    fn from(s: crate::task::TaskState) -> wsrt_state {
        use crate::task::TaskState as S;
        match s {
            S::Pending => wsrt_state::WSRT_STATE_PENDING,
            S::Running => wsrt_state::WSRT_STATE_RUNNING,
            S::Suspended => wsrt_state::WSRT_STATE_SUSPENDED,
            S::Succeeded => wsrt_state::WSRT_STATE_SUCCEEDED,
            S::Failed => wsrt_state::WSRT_STATE_FAILED,
            S::Cancelled => wsrt_state::WSRT_STATE_CANCELLED,
        }
    }
}

/// The task function returned successfully; its `*result` is kept.
pub const WSRT_TASK_OK: i32 = 0;
/// Returned by a task function: end CANCELLED (with or without a request).
pub const WSRT_TASK_CANCELLED: i32 = -1;
/// Returned by a task function: suspend, and be called again later (at once
/// after other queued work, or when the task passed to `wsrt_await` is done).
/// If a cancel was requested while it ran, the task ends CANCELLED here
/// instead, without being called again (asyncio delivers a cancellation at
/// the next suspension point).
pub const WSRT_TASK_YIELD: i32 = -2;
/// What `wsrt_await` returns when a task awaits itself; returned by the task
/// function, the task ends FAILED with this code.
pub const WSRT_TASK_AWAIT_SELF: i32 = -3;
/// The failure code `wsrt_task_error` reports for a Rust task that panicked.
pub const WSRT_TASK_PANICKED: i32 = i32::MIN;

// The codes a C task returns are the core's (`task/c_body.rs`).
const _: () = assert!(
    WSRT_TASK_OK == c_body::TASK_OK
        && WSRT_TASK_CANCELLED == c_body::TASK_CANCELLED
        && WSRT_TASK_YIELD == c_body::TASK_YIELD
);

/// A static, human-readable description of `status` ("unknown status" for
/// values outside the enum). Never NULL; do not free.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_status_str(status: wsrt_status_int) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"ok",
        1 => c"a required pointer was NULL",
        2 => c"invalid argument",
        3 => c"the runtime is shutting down",
        4 => c"invalid state: the task is not done (or not in a state that allows this)",
        5 => c"the task was cancelled",
        6 => c"the task failed",
        7 => c"timed out",
        8 => c"would deadlock: called from the runtime's own worker",
        9 => c"internal error (a Rust panic was caught)",
        10 => c"the runtime was inherited through fork(): its workers do not exist in this process",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// The library version, `"MAJOR.MINOR.PATCH"`; matches the
/// `WSRT_VERSION_*` macros of the header it was built with. Static; do not
/// free. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("version contains a NUL"),
        };
    VERSION.as_ptr()
}

/// An enum value received from C, as an integer: any value a C caller
/// passes is representable, and out-of-range ones are rejected
/// (`WSRT_ERR_INVALID_ARG`) instead of being undefined behaviour.
/// The header shows the enum type (cbindgen.toml renames these).
pub type wsrt_status_int = i32;
/// See [`wsrt_status_int`].
pub type wsrt_shutdown_mode_int = i32;

/// How `wsrt_runtime_shutdown` treats tasks that are not done.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum wsrt_shutdown_mode {
    /// Refuse new spawns from outside the pool, let every task finish.
    WSRT_SHUTDOWN_DRAIN,
    /// Refuse new spawns, cancel every pending and suspended task, request
    /// cancellation of running ones, and wait for them.
    WSRT_SHUTDOWN_CANCEL,
}
