//! Waits: for a task, in isolation, for any or all of several, and the
//! fork-join `wsrt_task_join`. The rules every wait keeps are in the header
//! docs of `wsrt_task_wait` and in `sched/wait.rs`.

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use super::boundary::{ffi_boundary, try_task};
use super::handles::{borrow_task, deadline_after, wsrt_task};
use super::wsrt_status::{self, *};
use crate::sched::wait;
use crate::task::{c_body, TaskError, TaskRef, TaskState, Waited};

fn status_of(waited: Waited) -> wsrt_status {
    match waited {
        Waited::Done => WSRT_OK,
        Waited::TimedOut => WSRT_ERR_TIMEOUT,
        Waited::OnItself => WSRT_ERR_WOULD_DEADLOCK,
        Waited::Forked => WSRT_ERR_FORKED,
    }
}

/// Blocks until the task is done or `timeout_ns` passes (< 0: no limit;
/// 0: just look).
///
/// Every wait (this one, `wsrt_task_wait_isolated`, `wsrt_task_join`,
/// `wsrt_wait_any`, `wsrt_wait_all`, `wsrt_group_wait`) keeps two promises:
/// - A finite timeout is kept: it returns `WSRT_ERR_TIMEOUT` within a few
///   milliseconds of it, however long the other queued tasks are. To keep
///   it, a wait with a timeout runs no task: it parks, after handing the
///   jobs its worker queued to an idle worker.
/// - Without a timeout, on a worker thread, it runs other queued tasks
///   while it waits instead of blocking the worker, so a task waiting for
///   its children needs no second worker. Those may be any queued tasks:
///   a task that holds a lock while it waits should wait with
///   `wsrt_task_wait_isolated`.
///
/// Returns `WSRT_OK` once done (whatever the outcome), `WSRT_ERR_TIMEOUT`,
/// `WSRT_ERR_NULL`, `WSRT_ERR_WOULD_DEADLOCK` when a task waits for
/// itself, or `WSRT_ERR_FORKED` at once, in a child process, for a task not
/// done of a runtime inherited through `fork()`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_wait(t: *mut wsrt_task, timeout_ns: i64) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        status_of(task.wait_until(deadline_after(timeout_ns)))
    }
}

/// Like `wsrt_task_wait`, but without a timeout, on a worker, it runs only
/// `t` itself and tasks spawned (directly or further down) inside this
/// wait, never another queued task: a task that holds a lock while it
/// waits is never handed one that takes the same lock (the deadlock of
/// rayon issue #592; oneTBB's `isolate`). Waits nested inside it are
/// isolated the same way, and so is `t`'s own run, on whichever worker
/// runs it: a helping wait inside `t` is never handed a task from outside
/// either. If `t` already runs on another worker when this wait begins,
/// its waits for tasks are isolated from the next task they take other
/// than the one they wait for; a task `t` spawned before then is not
/// isolated. Tasks it
/// leaves alone stay queued for other workers. Outside the pool it waits
/// as `wsrt_task_wait` does, `t` isolated all the same.
///
/// Same returns as `wsrt_task_wait`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_wait_isolated(t: *mut wsrt_task, timeout_ns: i64) -> wsrt_status {
    ffi_boundary! {
        let task = try_task!(t);
        if task.is_done() {
            return WSRT_OK;
        }
        status_of(wait::wait_isolated(&task, deadline_after(timeout_ns)))
    }
}

/// Fork-join in one call: waits for `t` (no limit, as `wsrt_task_wait`),
/// then gives its outcome and releases `t`, in every case (`t` must not be
/// used afterwards).
///
/// - SUCCEEDED: `WSRT_OK`; `*result` gets the result and the caller owns
///   it from then on: the task's `result_drop` is not called for it. (A
///   task spawned from Rust gives NULL.) With `result` NULL the result
///   stays the task's, and `result_drop` frees it as usual.
/// - FAILED: `WSRT_ERR_FAILED`, `*code` gets the failure code
///   (`WSRT_TASK_PANICKED` for a Rust task that panicked).
/// - CANCELLED: `WSRT_ERR_CANCELLED`.
///
/// `result` and `code` may be NULL; they are written only for the outcome
/// they belong to. Also `WSRT_ERR_NULL` (`t` NULL: nothing to release),
/// `WSRT_ERR_WOULD_DEADLOCK` (a task joining itself) and `WSRT_ERR_FORKED`
/// (a task of a runtime inherited through `fork()`), with `t` released.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_task_join(
    t: *mut wsrt_task,
    result: *mut *mut c_void,
    code: *mut i32,
) -> wsrt_status {
    ffi_boundary! {
        let Some(ptr) = NonNull::new(t.cast()) else {
            return WSRT_ERR_NULL;
        };
        // Checked like every use (a released handle aborts a debug build).
        let _ = borrow_task(t);
        // SAFETY: the caller gives up the reference it owns.
        let task = unsafe { TaskRef::from_raw(ptr) };
        let waited = task.wait_until(None);
        if waited != Waited::Done {
            return status_of(waited);
        }
        match task.state() {
            TaskState::Succeeded => {
                // SAFETY: the caller promises a non-NULL `result` is writable.
                if let Some(out) = unsafe { result.as_mut() } {
                    *out = c_body::take_result(&task).unwrap_or(ptr::null_mut());
                }
                WSRT_OK
            }
            TaskState::Failed => {
                let value = match task.error() {
                    Some(TaskError::Failed(c)) => c,
                    _ => super::WSRT_TASK_PANICKED,
                };
                // SAFETY: the caller promises a non-NULL `code` is writable.
                if let Some(out) = unsafe { code.as_mut() } {
                    *out = value;
                }
                WSRT_ERR_FAILED
            }
            _ => WSRT_ERR_CANCELLED,
        }
    }
}

/// Calls `f` with the tasks of a C array, borrowed; or returns
/// `WSRT_ERR_INVALID_ARG` for an empty array (nothing could ever be done)
/// and `WSRT_ERR_NULL` for a NULL array or handle.
///
/// # Safety
/// `tasks` points to `n` readable handles (when not NULL).
unsafe fn with_tasks(
    tasks: *const *mut wsrt_task,
    n: usize,
    f: impl FnOnce(&[&TaskRef]) -> wsrt_status,
) -> wsrt_status {
    if n == 0 {
        return WSRT_ERR_INVALID_ARG;
    }
    if tasks.is_null() {
        return WSRT_ERR_NULL;
    }
    // SAFETY: forwarded: `n` readable handles.
    let handles = unsafe { std::slice::from_raw_parts(tasks, n) };
    let borrowed: Option<Vec<ManuallyDrop<TaskRef>>> =
        handles.iter().map(|&t| borrow_task(t)).collect();
    let Some(borrowed) = borrowed else {
        return WSRT_ERR_NULL;
    };
    let refs: Vec<&TaskRef> = borrowed.iter().map(|t| &**t).collect();
    f(&refs)
}

/// Until at least one of `tasks[0..n)` is done (asyncio's `wait` with
/// `FIRST_COMPLETED`), or `timeout_ns` passes (< 0: no limit): `*index`
/// (if not NULL) gets the index of one that is done, the first in the
/// array's order. Without a timeout, on a worker, it runs other tasks
/// meanwhile, as `wsrt_task_wait`.
///
/// Errors: `WSRT_ERR_INVALID_ARG` for `n` 0 (it could never return),
/// `WSRT_ERR_NULL` (`tasks` or one of its handles), `WSRT_ERR_TIMEOUT`,
/// `WSRT_ERR_WOULD_DEADLOCK` if every task not done is the calling task
/// itself, `WSRT_ERR_FORKED` as `wsrt_task_wait`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_wait_any(
    tasks: *const *mut wsrt_task,
    n: usize,
    timeout_ns: i64,
    index: *mut usize,
) -> wsrt_status {
    ffi_boundary! {
        // SAFETY: the caller promises `n` readable handles.
        unsafe {
            with_tasks(tasks, n, |tasks| match wait::wait_any(tasks, deadline_after(timeout_ns)) {
                Ok(i) => {
                    // SAFETY: the caller promises a non-NULL `index` is writable.
                    if let Some(out) = index.as_mut() {
                        *out = i;
                    }
                    WSRT_OK
                }
                Err(waited) => status_of(waited),
            })
        }
    }
}

/// Until every one of `tasks[0..n)` is done (asyncio's `gather`), or
/// `timeout_ns` passes (< 0: no limit). Without a timeout, on a worker, it
/// runs other tasks meanwhile, as `wsrt_task_wait`.
///
/// Errors: `WSRT_ERR_INVALID_ARG` for `n` 0, `WSRT_ERR_NULL` (`tasks` or
/// one of its handles), `WSRT_ERR_TIMEOUT`, `WSRT_ERR_WOULD_DEADLOCK` if
/// one of them is the calling task itself, `WSRT_ERR_FORKED` as
/// `wsrt_task_wait`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_wait_all(
    tasks: *const *mut wsrt_task,
    n: usize,
    timeout_ns: i64,
) -> wsrt_status {
    ffi_boundary! {
        // SAFETY: the caller promises `n` readable handles.
        unsafe {
            with_tasks(tasks, n, |tasks| status_of(wait::wait_all(tasks, deadline_after(timeout_ns))))
        }
    }
}
