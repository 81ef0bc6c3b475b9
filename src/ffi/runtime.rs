//! `wsrt_runtime_*`.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use super::boundary::{ffi_boundary, try_out, try_ref, utf8};
use super::handles::{into_c, status_of, wsrt_runtime, wsrt_task};
use super::{wsrt_shutdown_mode_int, wsrt_status};
use crate::runtime::{Runtime, ShutdownMode};

use wsrt_status::*;

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

/// A thread hook of `wsrt_runtime_opts`: called on a worker thread with
/// the worker's index (0 to workers - 1) and the options' `hook_user`.
pub type wsrt_thread_fn = Option<unsafe extern "C" fn(index: usize, user: *mut c_void)>;

/// Options of `wsrt_runtime_new_opts`; zero-initialise and set what you
/// need (all zero: the defaults of `wsrt_runtime_new(0, ...)`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wsrt_runtime_opts {
    /// Worker threads; 0: one per CPU available to the process (its
    /// affinity and cgroup quota count).
    pub workers: usize,
    /// Bytes of stack per worker thread; 0: the platform's default for new
    /// threads (RLIMIT_STACK, usually 8 MiB; only touched pages cost
    /// memory). A task waiting inside a task runs other tasks on its own
    /// stack: deep recursions of waits need deep stacks.
    pub stack_size: usize,
    /// Prefix of the worker threads' names (`<prefix>-<index>`; Linux
    /// shows 15 bytes), copied; NULL: "wsrt-worker". Must be UTF-8.
    pub thread_name: *const c_char,
    /// NULL, or called on each worker thread before it runs its first task.
    pub on_thread_start: wsrt_thread_fn,
    /// NULL, or called on each worker thread after it ran its last task,
    /// before the thread exits (inside `wsrt_runtime_free`).
    pub on_thread_stop: wsrt_thread_fn,
    /// Passed to both hooks.
    pub hook_user: *mut c_void,
}

/// A `*mut c_void` the hooks may carry to the workers: the C caller
/// promises `hook_user` may be used from any of them (header docs).
#[derive(Clone, Copy)]
struct HookUser(*mut c_void);
// SAFETY: see above; the pointer is only passed back to the caller's hooks.
unsafe impl Send for HookUser {}
// SAFETY: as above.
unsafe impl Sync for HookUser {}

impl HookUser {
    /// The pointer (a method, so that a closure captures the whole
    /// `HookUser`, not its field).
    fn get(self) -> *mut c_void {
        self.0
    }
}

/// Starts a runtime with `opts` (NULL: all defaults) and writes it to
/// `*out`. The hooks are called on the worker threads, concurrently, each
/// once per worker; `hook_user` must stay valid until `wsrt_runtime_free`
/// returns.
///
/// Errors: `WSRT_ERR_NULL` (`out`), `WSRT_ERR_INVALID_ARG` (more than 4096
/// workers, `thread_name` not UTF-8, or the threads cannot be started).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_new_opts(
    opts: *const wsrt_runtime_opts,
    out: *mut *mut wsrt_runtime,
) -> wsrt_status {
    ffi_boundary! {
        let out = try_out!(out);
        let mut builder = Runtime::builder();
        // SAFETY: `opts` is NULL or valid for a read (caller's duty).
        if let Some(opts) = unsafe { opts.as_ref() }.copied() {
            // SAFETY: `thread_name` is NULL or a C string (caller's duty).
            let name = match unsafe { utf8(opts.thread_name) } {
                Ok(name) => name,
                Err(status) => return status,
            };
            builder = builder.workers(opts.workers).stack_size(opts.stack_size);
            if let Some(name) = name {
                builder = builder.thread_name(name);
            }
            let user = HookUser(opts.hook_user);
            if let Some(start) = opts.on_thread_start {
                // SAFETY: the caller's hook, called as the header says.
                builder = builder.on_thread_start(move |i| unsafe { start(i, user.get()) });
            }
            if let Some(stop) = opts.on_thread_stop {
                // SAFETY: as above.
                builder = builder.on_thread_stop(move |i| unsafe { stop(i, user.get()) });
            }
        }
        match builder.build() {
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
/// tasks (nothing is done then), `WSRT_ERR_FORKED` in a child process that
/// inherited the runtime through `fork()`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_shutdown(
    rt: *mut wsrt_runtime,
    mode: wsrt_shutdown_mode_int,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let Some(mode) = shutdown_mode(mode) else {
            return WSRT_ERR_INVALID_ARG;
        };
        match rt.rt.shutdown(mode) {
            Ok(()) => WSRT_OK,
            Err(e) => status_of(e),
        }
    }
}

/// Like `wsrt_runtime_shutdown`, waiting at most `timeout_ns` (< 0: no
/// limit): `WSRT_ERR_TIMEOUT` if tasks are still running then. New spawns
/// from outside are refused from the first call on, and with CANCEL the
/// running tasks were asked to stop; call again to wait more, or
/// `wsrt_runtime_free`, which waits for them.
///
/// Errors: as `wsrt_runtime_shutdown`, and `WSRT_ERR_TIMEOUT`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_runtime_shutdown_timeout(
    rt: *mut wsrt_runtime,
    mode: wsrt_shutdown_mode_int,
    timeout_ns: i64,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let Some(mode) = shutdown_mode(mode) else {
            return WSRT_ERR_INVALID_ARG;
        };
        let result = match u64::try_from(timeout_ns) {
            Ok(ns) => rt.rt.shutdown_timeout(mode, Duration::from_nanos(ns)),
            Err(_) => rt.rt.shutdown(mode),
        };
        match result {
            Ok(()) => WSRT_OK,
            Err(e) => status_of(e),
        }
    }
}

/// A shutdown mode received from C, if it is one.
fn shutdown_mode(mode: wsrt_shutdown_mode_int) -> Option<ShutdownMode> {
    match mode {
        0 => Some(ShutdownMode::Drain),
        1 => Some(ShutdownMode::Cancel),
        _ => None,
    }
}

/// Shuts down (DRAIN) if not yet done, joins the worker threads and frees
/// the runtime. Task handles stay valid afterwards.
///
/// When it returns `WSRT_OK`, no thread of the runtime exists any more:
/// the library may be `dlclose`d right after. In a child process that
/// inherited the runtime through `fork()` (where its threads never
/// existed) it waits for nothing and frees nothing: the runtime is
/// abandoned, and `WSRT_OK` returned.
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
/// Errors: `WSRT_ERR_NULL` (`rt`, `len`, or `buf` with `cap` > 0),
/// `WSRT_ERR_FORKED` in a child process that inherited the runtime through
/// `fork()`. Thread-safe; the list is a snapshot.
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
        if rt.rt.is_forked() {
            return WSRT_ERR_FORKED;
        }
        let tasks = rt.rt.all_tasks();
        let total = tasks.len();
        for (i, task) in tasks.into_iter().take(cap).enumerate() {
            // SAFETY: `buf` holds `cap` slots (caller's duty); the handle's
            // reference moves to the caller.
            unsafe { buf.add(i).write(into_c(task)) };
        }
        len.write(total);
        WSRT_OK
    }
}
