//! `wsrt_spawn`, `wsrt_task_*`, and the calls made from inside a task.

use std::ffi::{c_char, c_void};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use super::boundary::{ffi_boundary, try_out, try_ref, try_task, utf8};
use super::handles::{
    borrow_group, borrow_task, into_c, status_of, wsrt_group, wsrt_runtime, wsrt_task,
};
use super::{wsrt_state, wsrt_status};
use super::{WSRT_TASK_AWAIT_SELF, WSRT_TASK_CANCELLED, WSRT_TASK_PANICKED, WSRT_TASK_YIELD};
use crate::runtime::CSpawn;
use crate::sched::context;
use crate::task::c_body;
use crate::task::callbacks::CDoneFn;
use crate::task::raw::Header;
use crate::task::{TaskError, TaskRef, TaskState};

use wsrt_status::*;

/// A task function: `arg` is the spawn argument, `*result` (NULL on entry)
/// the value to keep on success. Returns `WSRT_TASK_OK`,
/// `WSRT_TASK_CANCELLED`, `WSRT_TASK_YIELD` (or `wsrt_await(...)`'s value),
/// or any other value as a failure code.
pub type wsrt_task_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> i32>;
/// A done-callback: `task` is borrowed for the call (retain it to keep it).
pub type wsrt_done_fn = Option<unsafe extern "C" fn(task: *mut wsrt_task, user: *mut c_void)>;
/// Frees an argument or a result.
pub type wsrt_drop_fn = Option<unsafe extern "C" fn(ptr: *mut c_void)>;

/// Options of `wsrt_spawn`; zero-initialise and set what you need.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wsrt_spawn_opts {
    /// The task's name, copied; NULL: `"Task-<id>"`. Must be UTF-8.
    pub name: *const c_char,
    /// NULL, or called exactly once with `arg` when the task is done: after
    /// its last run, when cancelled before running, or when cancelled at
    /// shutdown. Runs on the thread that ends the task, before the task's
    /// done-callbacks. Never called for a spawn that returned an error.
    pub arg_drop: wsrt_drop_fn,
    /// NULL, or called exactly once with the result of a task that
    /// SUCCEEDED, when the last reference to the task goes: usually inside
    /// the `wsrt_task_release` of the last handle, but the worker that
    /// finished the task may still hold its reference for a moment after
    /// waiters see it done, and then runs it there. Always before
    /// `wsrt_runtime_free` returns. For a detached task, once it is done.
    pub result_drop: wsrt_drop_fn,
    /// The group the task joins (of the same runtime); NULL: the spawning
    /// task's group when called inside a task of this runtime, no group
    /// otherwise.
    pub group: *mut wsrt_group,
    /// `WSRT_SPAWN_*` bits: `WSRT_SPAWN_SHIELDED` leaves the task alone when
    /// its group is cancelled (asyncio `shield`); it still counts for the
    /// group's wait and stats. Its children are not shielded.
    pub flags: u32,
}

/// All NULL and 0: what `wsrt_spawn` does with `opts` NULL.
impl Default for wsrt_spawn_opts {
    fn default() -> Self {
        wsrt_spawn_opts {
            name: ptr::null(),
            arg_drop: None,
            result_drop: None,
            group: ptr::null_mut(),
            flags: 0,
        }
    }
}

/// `wsrt_spawn_opts.flags`: the task's group's cancel leaves it alone.
pub const WSRT_SPAWN_SHIELDED: u32 = 1;

/// Spawns `fn(arg, &result)` on `rt` and, if `out` is not NULL, writes a
/// handle to `*out` (release it with `wsrt_task_release`). With `out` NULL
/// the task is detached: the cheapest spawn.
///
/// Called from a worker of `rt` (inside a task), the task goes to that
/// worker's own deque; from another thread to that thread's own FIFO queue
/// on `rt` (its first spawn claims one of 8; the thread gives it back when
/// it exits), or the runtime's global queue once all 8 are taken. `fn`
/// runs on a worker thread; `arg` and the result are handed across threads.
///
/// With `opts.group` (or, inside a grouped task, its group) the task joins
/// that group: a cancel of the group reaches it (`wsrt_group_cancel`).
///
/// Errors: `WSRT_ERR_NULL` (`rt` or `fn`), `WSRT_ERR_INVALID_ARG` (name not
/// UTF-8, an unknown `opts.flags` bit, a group of another runtime),
/// `WSRT_ERR_SHUTDOWN` (the runtime is shutting down),
/// `WSRT_ERR_FORKED` (in a child process that inherited the runtime through
/// `fork()`). On error nothing was spawned, `*out` is untouched and
/// `arg_drop` is not called. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_spawn(
    rt: *mut wsrt_runtime,
    func: wsrt_task_fn,
    arg: *mut c_void,
    opts: *const wsrt_spawn_opts,
    out: *mut *mut wsrt_task,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let Some(func) = func else {
            return WSRT_ERR_NULL;
        };
        // SAFETY: `opts` is NULL or valid (caller's duty).
        let opts = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        if opts.flags & !WSRT_SPAWN_SHIELDED != 0 {
            return WSRT_ERR_INVALID_ARG;
        }
        // SAFETY: `name` is NULL or a C string (caller's duty).
        let name = match unsafe { utf8(opts.name) } {
            Ok(name) => name,
            Err(status) => return status,
        };
        let group = borrow_group(opts.group);
        let spawn = CSpawn {
            func,
            arg,
            arg_drop: opts.arg_drop,
            result_drop: opts.result_drop,
            name,
            handle: !out.is_null(),
            group: group.as_deref(),
            shielded: opts.flags & WSRT_SPAWN_SHIELDED != 0,
        };
        match rt.runtime().spawn_c(spawn) {
            Ok(Some(task)) => {
                // SAFETY: `out` is non-NULL (a handle was asked for) and
                // valid for a write (caller's duty).
                unsafe { out.write(into_c(task)) };
                WSRT_OK
            }
            Ok(None) => WSRT_OK,
            Err(e) => status_of(e),
        }
    }
}

/// Adds a reference; returns `t` (NULL for NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_retain(t: *mut wsrt_task) -> *mut wsrt_task {
    ffi_boundary! {
        let task = try_task!(t);
        std::mem::forget(TaskRef::clone(&task));
        t
    }
}

/// Drops a reference; the last one frees the task (and runs `result_drop`).
/// NULL is ignored. Thread-safe; may be called from a done-callback of `t`.
/// After its release a handle must not be used again: that is undefined
/// behaviour (its memory may hold another task by then). Debug builds of
/// the library abort with a message when they see it.
#[no_mangle]
pub extern "C" fn wsrt_task_release(t: *mut wsrt_task) {
    ffi_boundary! {
        if let Some(ptr) = NonNull::new(t.cast::<Header>()) {
            // SAFETY: the caller gives up the reference it owns.
            drop(unsafe { TaskRef::from_raw(ptr) });
        }
    }
}

/// The task's id: unique in the process and non-zero; the ids of the tasks
/// one thread spawns increase in its spawn order (across threads they
/// promise no order). 0 for NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_id(t: *const wsrt_task) -> u64 {
    ffi_boundary! { try_task!(t).id() }
}

/// The task's state now; `WSRT_STATE_PENDING` (0) for NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_state(t: *const wsrt_task) -> wsrt_state {
    ffi_boundary! { try_task!(t).state().into() }
}

/// True once SUCCEEDED, FAILED or CANCELLED; false for NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_done(t: *const wsrt_task) -> bool {
    ffi_boundary! { try_task!(t).is_done() }
}

/// True only if the task ended CANCELLED; false for NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_cancelled(t: *const wsrt_task) -> bool {
    ffi_boundary! { try_task!(t).is_cancelled() }
}

/// True once `wsrt_task_cancel` was called while the task ran; false for
/// NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_cancel_requested(t: *const wsrt_task) -> bool {
    ffi_boundary! { try_task!(t).is_cancel_requested() }
}

/// Requests cancellation (asyncio `Task.cancel()`).
///
/// Done task: returns false, changes nothing. PENDING or SUSPENDED: returns
/// true and the task is CANCELLED before this returns; its function is not
/// called (again), its `arg_drop` and done-callbacks run on this thread,
/// in that order: the task is not done until its `arg_drop` has returned,
/// so a wait, or a callback added meanwhile, comes after it. Another
/// thread's cancel of the same task at that moment returns false once the
/// task is CANCELLED.
/// RUNNING: returns true and sets the cancel-requested flag; the function
/// decides. False for NULL, and for a task of a runtime inherited through
/// `fork()` (in the child nothing of it can change). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_cancel(t: *mut wsrt_task) -> bool {
    ffi_boundary! { try_task!(t).cancel() }
}

/// The result of a SUCCEEDED task, to `*out` (still owned by the task; it
/// is freed by `result_drop` with the last handle).
///
/// Errors: `WSRT_ERR_NULL`; `WSRT_ERR_INVALID_STATE` if not done;
/// `WSRT_ERR_CANCELLED`; `WSRT_ERR_FAILED`; `WSRT_ERR_INVALID_ARG` for a task
/// spawned from Rust (its value is not a `void *`). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_result(t: *const wsrt_task, out: *mut *mut c_void) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        let out = try_out!(out);
        match task.state() {
            TaskState::Succeeded => {}
            TaskState::Cancelled => return WSRT_ERR_CANCELLED,
            TaskState::Failed => return WSRT_ERR_FAILED,
            _ => return WSRT_ERR_INVALID_STATE,
        }
        match c_body::result_of(&task) {
            Some(value) => {
                out.write(value);
                WSRT_OK
            }
            None => WSRT_ERR_INVALID_ARG,
        }
    }
}

/// The failure code of a done task to `*code`: 0 if it SUCCEEDED, the
/// function's return value if it FAILED (`WSRT_TASK_PANICKED` for a Rust
/// task that panicked).
///
/// Errors: `WSRT_ERR_NULL`; `WSRT_ERR_INVALID_STATE` if not done;
/// `WSRT_ERR_CANCELLED` if it ended CANCELLED. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_error(t: *const wsrt_task, code: *mut i32) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        let code = try_out!(code);
        let value = match task.state() {
            TaskState::Succeeded => 0,
            TaskState::Failed => match task.error() {
                Some(TaskError::Failed(c)) => c,
                _ => WSRT_TASK_PANICKED,
            },
            TaskState::Cancelled => return WSRT_ERR_CANCELLED,
            _ => return WSRT_ERR_INVALID_STATE,
        };
        code.write(value);
        WSRT_OK
    }
}

/// The core stores C callbacks untyped, with the task's handle passed as
/// `void *`.
fn untyped(cb: unsafe extern "C" fn(*mut wsrt_task, *mut c_void)) -> CDoneFn {
    // SAFETY: both are `extern "C"` functions of two pointer arguments, which
    // are ABI-compatible whatever they point to; the core passes the task's
    // handle (the address of its header, as `into_c`) as the first.
    unsafe { std::mem::transmute::<unsafe extern "C" fn(*mut wsrt_task, *mut c_void), CDoneFn>(cb) }
}

/// Adds `cb(task, user)` to run once the task is done: exactly once, after
/// the state is final, in the order added, on the thread that finished the
/// task (a worker, or the thread that cancelled it). If the task is already
/// done, `cb` runs now, on this thread, before this returns. The same pair
/// may be added several times (it then runs several times).
///
/// Errors: `WSRT_ERR_NULL` (`t` or `cb`). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_add_done_callback(
    t: *mut wsrt_task,
    cb: wsrt_done_fn,
    user: *mut c_void,
) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        let Some(cb) = cb else { return WSRT_ERR_NULL };
        task.add_c_callback(untyped(cb), user as usize);
        WSRT_OK
    }
}

/// Removes every not-yet-run `(cb, user)` callback of the task; returns how
/// many. A removed callback never runs. 0 for NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_remove_done_callback(
    t: *mut wsrt_task,
    cb: wsrt_done_fn,
    user: *mut c_void,
) -> usize {
    ffi_boundary! {
        let task = try_task!(t);
        let Some(cb) = cb else { return 0 };
        task.remove_c_callback(untyped(cb), user as usize)
    }
}

/// Renames the task (the string is copied); allowed at any time.
/// Errors: `WSRT_ERR_NULL`, `WSRT_ERR_INVALID_ARG` (not UTF-8). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_set_name(t: *mut wsrt_task, name: *const c_char) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        // SAFETY: `name` is NULL or a C string (caller's duty).
        match unsafe { utf8(name) } {
            Ok(Some(name)) => {
                task.set_name(name);
                WSRT_OK
            }
            Ok(None) => WSRT_ERR_NULL,
            Err(status) => status,
        }
    }
}

/// Copies the task's name to `buf` with `snprintf` rules: at most `cap - 1`
/// bytes and a terminating NUL (nothing if `cap` is 0; `buf` may then be
/// NULL). Returns the full length of the name, without the NUL; 0 for a
/// NULL task. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_name(t: *const wsrt_task, buf: *mut c_char, cap: usize) -> usize {
    ffi_boundary! {
        let name = try_task!(t).name();
        if !buf.is_null() && cap > 0 {
            let n = name.len().min(cap - 1);
            // SAFETY: `buf` holds `cap` bytes (caller's duty); n < cap.
            unsafe {
                ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        name.len()
    }
}

/// The `arg` the task was spawned with (asyncio `get_coro()`), also after
/// it is done (the pointer value only: `arg_drop` may have freed it). NULL
/// for NULL or for a task spawned from Rust. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_arg(t: *const wsrt_task) -> *mut c_void {
    ffi_boundary! {
        let task = try_task!(t);
        c_body::arg_of(&task).unwrap_or(ptr::null_mut())
    }
}

/// The task running on this thread, borrowed (retain it to keep it); NULL
/// outside a task.
#[no_mangle]
pub extern "C" fn wsrt_current_task() -> *mut wsrt_task {
    ffi_boundary! {
        context::current_task_ptr().map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    }
}

/// True if the task running on this thread was asked to cancel; false
/// outside a task.
#[no_mangle]
pub extern "C" fn wsrt_cancel_requested() -> bool {
    ffi_boundary! { context::cancel_requested() }
}

/// Suspends the current task until `other` is done, without blocking the
/// worker: returns `WSRT_TASK_YIELD`, which the task function must return
/// (`return wsrt_await(other);`; a later `wsrt_await` in the same call wins);
/// the task is SUSPENDED and its function is called again (same `arg`)
/// once `other` is done (at once if it already is). A cancel of the
/// suspended task ends it CANCELLED without calling it again.
///
/// With `other` NULL, or outside a task, it only returns `WSRT_TASK_YIELD`
/// (a plain yield). `other` may belong to another runtime. A task awaiting
/// itself could never resume: that returns `WSRT_TASK_AWAIT_SELF`, which,
/// returned by the function, ends the task FAILED with that code (asyncio
/// raises `RuntimeError` there).
#[no_mangle]
pub extern "C" fn wsrt_await(other: *mut wsrt_task) -> i32 {
    ffi_boundary! {
        default: WSRT_TASK_YIELD;
        match borrow_task(other) {
            Some(other) if !context::request_await(&other) => WSRT_TASK_AWAIT_SELF,
            _ => WSRT_TASK_YIELD,
        }
    }
}

/// Suspends the current task for `ns` nanoseconds without holding a worker
/// (asyncio's `sleep`): returns `WSRT_TASK_YIELD`, which the task function
/// must return (`return wsrt_sleep(ns);`; a later `wsrt_sleep` or
/// `wsrt_await` in the same call wins). The task is SUSPENDED meanwhile,
/// and its function is called again (same `arg`) once the time has passed,
/// on whichever worker is free: a runtime timer wakes it, no thread waits
/// for it. A cancel while it sleeps (its own, its group's, a cancelling
/// shutdown) ends it CANCELLED at once. `ns` <= 0 is a plain yield.
///
/// Outside a task it does nothing and returns `WSRT_TASK_CANCELLED`
/// (there is nothing to suspend).
#[no_mangle]
pub extern "C" fn wsrt_sleep(ns: i64) -> i32 {
    ffi_boundary! {
        default: WSRT_TASK_YIELD;
        let until = match u64::try_from(ns) {
            Ok(ns) if ns > 0 => Some(far_instant(Duration::from_nanos(ns))),
            _ => None,
        };
        if context::request_sleep(until) {
            WSRT_TASK_YIELD
        } else {
            WSRT_TASK_CANCELLED
        }
    }
}

/// `now + d`, or, past what `Instant` holds, as far as it goes (a sleep of
/// centuries).
fn far_instant(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}
