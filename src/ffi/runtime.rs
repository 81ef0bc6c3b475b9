//! `wsrt_runtime_*`.

use super::boundary::{ffi_boundary, try_out, try_ref};
use super::{wsrt_shutdown_mode_int, wsrt_status, wsrt_task};
use crate::runtime::{Error, Handle, Runtime, ShutdownMode};

use wsrt_status::*;

/// A runtime: worker threads and their queues. Opaque; create with
/// `wsrt_runtime_new`, destroy with `wsrt_runtime_free`.
pub struct wsrt_runtime {
    rt: Runtime,
}

impl wsrt_runtime {
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// The Rust handle of a C runtime, for programs mixing both APIs (e.g.
/// `spawn_async` on a runtime created with `wsrt_runtime_new`).
///
/// # Safety
/// `rt` is NULL or a live runtime.
pub unsafe fn handle_of(rt: *const wsrt_runtime) -> Option<Handle> {
    // SAFETY: caller's duty.
    unsafe { rt.as_ref() }.map(|rt| rt.rt.handle().clone())
}

/// Counters of a runtime, filled by `wsrt_runtime_stats`. Totals are exact
/// once the runtime is shut down; while it runs each figure may be a moment
/// stale.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct wsrt_stats {
    /// Tasks spawned since start.
    pub spawned: u64,
    /// Tasks that ended SUCCEEDED since start.
    pub succeeded: u64,
    /// Tasks that ended FAILED since start.
    pub failed: u64,
    /// Tasks that ended CANCELLED since start.
    pub cancelled: u64,
    /// Tasks PENDING now.
    pub pending: u64,
    /// Tasks RUNNING now.
    pub running: u64,
    /// Tasks SUSPENDED now.
    pub suspended: u64,
    /// Jobs taken from another worker's deque since start.
    pub steals: u64,
    /// Number of worker threads.
    pub workers: u64,
}

pub(crate) fn status_of(e: Error) -> wsrt_status {
    match e {
        Error::Shutdown => WSRT_ERR_SHUTDOWN,
        Error::WouldDeadlock => WSRT_ERR_WOULD_DEADLOCK,
        Error::InvalidArgument(_) | Error::Spawn(_) => WSRT_ERR_INVALID_ARG,
    }
}

/// Starts a runtime with `workers` worker threads (0: one per CPU) and
/// writes it to `*out`.
///
/// Returns `WSRT_ERR_NULL` if `out` is NULL, `WSRT_ERR_INVALID_ARG` if
/// `workers` is above 4096 or the threads cannot be started. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_new(workers: usize, out: *mut *mut wsrt_runtime) -> wsrt_status {
    ffi_boundary! {
        let out = try_out!(out);
        match Runtime::builder().workers(workers).build() {
            Ok(rt) => {
                out.write(Box::into_raw(Box::new(wsrt_runtime { rt })));
                WSRT_OK
            }
            Err(e) => status_of(e),
        }
    }
}

/// Shuts the runtime down and waits until no task is live.
///
/// `WSRT_SHUTDOWN_DRAIN` lets every task finish; `WSRT_SHUTDOWN_CANCEL`
/// cancels pending and suspended tasks (their `arg_drop` runs) and asks
/// running ones to stop. Afterwards `wsrt_spawn` returns `WSRT_ERR_SHUTDOWN`
/// (while draining, tasks may still spawn children). Idempotent; CANCEL
/// after DRAIN upgrades. Worker threads are joined by `wsrt_runtime_free`.
///
/// Errors: `WSRT_ERR_NULL`, `WSRT_ERR_INVALID_ARG` (bad mode),
/// `WSRT_ERR_WOULD_DEADLOCK` when called from one of this runtime's own
/// tasks (nothing is done then). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_shutdown(
    rt: *mut wsrt_runtime,
    mode: wsrt_shutdown_mode_int,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let mode = match mode {
            0 => ShutdownMode::Drain,
            1 => ShutdownMode::Cancel,
            _ => return WSRT_ERR_INVALID_ARG,
        };
        match rt.rt.shutdown(mode) {
            Ok(()) => WSRT_OK,
            Err(e) => status_of(e),
        }
    }
}

/// Shuts down (DRAIN) if not yet done, joins the worker threads and frees
/// the runtime. Task handles stay valid afterwards.
///
/// Errors: `WSRT_ERR_NULL`; `WSRT_ERR_WOULD_DEADLOCK` when called from one of
/// this runtime's own tasks or callbacks: nothing is freed then. Call it
/// once, from a thread that is not one of its workers; `rt` is invalid after
/// `WSRT_OK`.
#[no_mangle]
pub extern "C" fn wsrt_runtime_free(rt: *mut wsrt_runtime) -> wsrt_status {
    ffi_boundary! {
        let runtime = try_ref!(rt);
        if runtime.rt.is_own_worker() {
            return WSRT_ERR_WOULD_DEADLOCK;
        }
        // SAFETY: `rt` came from `wsrt_runtime_new` and is freed once (caller's duty).
        drop(unsafe { Box::from_raw(rt) });
        WSRT_OK
    }
}

/// Number of worker threads; 0 if `rt` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_workers(rt: *const wsrt_runtime) -> usize {
    ffi_boundary! { try_ref!(rt).rt.workers() }
}

/// Copies the runtime's counters to `*out`. Errors: `WSRT_ERR_NULL`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_stats(rt: *const wsrt_runtime, out: *mut wsrt_stats) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let out = try_out!(out);
        let s = rt.rt.stats();
        let stats = wsrt_stats {
            spawned: s.spawned,
            succeeded: s.succeeded,
            failed: s.failed,
            cancelled: s.cancelled,
            pending: s.pending,
            running: s.running,
            suspended: s.suspended,
            steals: s.steals,
            workers: s.workers,
        };
        out.write(stats);
        WSRT_OK
    }
}

/// The tasks of `rt` that are not done (asyncio `all_tasks()`), each
/// retained for the caller (release each with `wsrt_task_release`).
///
/// Writes at most `cap` handles to `buf` and the total count to `*len`,
/// even when it is larger than `cap` (then the extra tasks are not
/// retained). `buf` may be NULL when `cap` is 0, to ask for the count.
/// Errors: `WSRT_ERR_NULL` (`rt`, `len`, or `buf` with `cap` > 0).
/// Thread-safe; the list is a snapshot.
#[no_mangle]
pub extern "C" fn wsrt_runtime_all_tasks(
    rt: *mut wsrt_runtime,
    buf: *mut *mut wsrt_task,
    cap: usize,
    len: *mut usize,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let len = try_out!(len);
        if buf.is_null() && cap > 0 {
            return WSRT_ERR_NULL;
        }
        let tasks = rt.rt.all_tasks();
        let total = tasks.len();
        for (i, task) in tasks.into_iter().take(cap).enumerate() {
            // SAFETY: `buf` holds `cap` slots (caller's duty); the handle's
            // reference moves to the caller.
            unsafe { buf.add(i).write(super::task::into_c(task)) };
        }
        len.write(total);
        WSRT_OK
    }
}
