//! `wsrt_group_*`: groups of tasks, cancelled, waited for and given a
//! deadline together.

use std::time::Duration;

use super::boundary::{ffi_boundary, try_out, try_ref};
use super::handles::{borrow_group, deadline_after, status_of, wsrt_group, wsrt_runtime};
use super::wsrt_status;
use crate::group::{current_group, Group, GroupFlags};

use wsrt_status::*;

/// `wsrt_group_new` flags: the first task of the group that fails cancels
/// the group (asyncio `TaskGroup`).
pub const WSRT_GROUP_CANCEL_ON_FAILURE: u32 = 1;

/// The counts of one group (not of the groups below it), filled by
/// `wsrt_group_stats`. Each figure is read separately and may be a moment
/// stale while tasks run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct wsrt_group_counts {
    /// Tasks spawned into the group since it was made.
    pub spawned: u64,
    /// Tasks of the group that ended SUCCEEDED.
    pub succeeded: u64,
    /// Tasks of the group that ended FAILED.
    pub failed: u64,
    /// Tasks of the group that ended CANCELLED.
    pub cancelled: u64,
    /// Tasks of the group PENDING now.
    pub pending: u64,
    /// Tasks of the group RUNNING now.
    pub running: u64,
    /// Tasks of the group SUSPENDED now.
    pub suspended: u64,
}

/// A group from `g`, or return the export's NULL default.
macro_rules! try_group {
    ($g:expr) => {
        match borrow_group($g) {
            Some(g) => g,
            None => return $crate::ffi::boundary::NullOrDefault::value(),
        }
    };
}

/// Makes a group of `rt`, below `parent` (NULL: at the top), with
/// `WSRT_GROUP_*` `flags`, and writes a handle to it to `*out`. A group
/// made below a cancelled group is cancelled.
///
/// Errors: `WSRT_ERR_NULL` (`rt`, `out`), `WSRT_ERR_INVALID_ARG` (an
/// unknown flag, a parent of another runtime), `WSRT_ERR_SHUTDOWN`,
/// `WSRT_ERR_FORKED`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_new(
    rt: *mut wsrt_runtime,
    parent: *mut wsrt_group,
    flags: u32,
    out: *mut *mut wsrt_group,
) -> wsrt_status {
    ffi_boundary! {
        let rt = try_ref!(rt);
        let out = try_out!(out);
        let Some(flags) = GroupFlags::from_bits(flags) else {
            return WSRT_ERR_INVALID_ARG;
        };
        let handle = rt.runtime().handle();
        if handle.is_forked() {
            return WSRT_ERR_FORKED;
        }
        if handle.is_shutdown() {
            return WSRT_ERR_SHUTDOWN;
        }
        let group = match borrow_group(parent) {
            Some(parent) if !handle.owns(&parent) => return WSRT_ERR_INVALID_ARG,
            Some(parent) => parent.child_with(flags),
            None => handle.group_with(flags),
        };
        out.write(group.into_raw().cast_mut().cast());
        WSRT_OK
    }
}

/// Adds a reference; returns `g` (NULL for NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_retain(g: *mut wsrt_group) -> *mut wsrt_group {
    ffi_boundary! {
        let group = try_group!(g);
        let _ = Group::clone(&group).into_raw();
        g
    }
}

/// Drops a reference (NULL is fine). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_release(g: *mut wsrt_group) {
    ffi_boundary! {
        if !g.is_null() {
            // SAFETY: the caller gives up the handle it owns.
            drop(unsafe { Group::from_raw(g.cast()) });
        }
    }
}

/// Cancels `g` and every group below it: none of their PENDING or
/// SUSPENDED tasks starts or resumes after this returns; each ends
/// CANCELLED (its `arg_drop` runs), at once or when a worker reaches it,
/// always before the group's wait returns. RUNNING ones are asked
/// (`wsrt_cancel_requested()` turns true inside them), and tasks spawned
/// into them later end CANCELLED without running. Tasks spawned with
/// `WSRT_SPAWN_SHIELDED` are left alone. Returns false if `g` was already
/// cancelled (and for NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_cancel(g: *mut wsrt_group) -> bool {
    ffi_boundary! { try_group!(g).cancel() }
}

/// True once `g`, or a group above it, was cancelled; false for NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_cancelled(g: *const wsrt_group) -> bool {
    ffi_boundary! { try_group!(g).is_cancelled() }
}

/// Cancels `g` once `timeout_ns` has passed (a runtime timer: no thread
/// waits for it). A later call replaces the deadline; a negative timeout
/// removes it. Errors: `WSRT_ERR_NULL`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_set_deadline(g: *mut wsrt_group, timeout_ns: i64) -> wsrt_status {
    ffi_boundary! {
        let group = try_group!(g);
        match u64::try_from(timeout_ns) {
            Ok(ns) => group.set_deadline(Duration::from_nanos(ns)),
            Err(_) => group.clear_deadline(),
        }
        WSRT_OK
    }
}

/// Waits until every task of `g` and of the groups below it is done, or
/// `timeout_ns` passes (< 0: no limit; 0: just look). Without a limit, on
/// a worker thread it runs only tasks of `g` and of the groups below it
/// meanwhile; on another thread, once `g` is cancelled, it ends the
/// cancelled tasks that this thread queued and no worker took yet itself
/// (their `arg_drop` and done-callbacks run here), so they need no free
/// worker. With a limit it runs none, and returns no later than the
/// limit (plus wake-up latency).
///
/// Returns `WSRT_OK`, `WSRT_ERR_TIMEOUT`, `WSRT_ERR_NULL`,
/// `WSRT_ERR_WOULD_DEADLOCK` inside a task of `g` or of a group below it
/// (the group can only be done after that task), `WSRT_ERR_FORKED` in a
/// child on a group of a runtime inherited through `fork()`. Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_wait(g: *mut wsrt_group, timeout_ns: i64) -> wsrt_status {
    ffi_boundary! {
        match try_group!(g).wait_until(deadline_after(timeout_ns)) {
            Ok(()) => WSRT_OK,
            Err(e) => status_of(e),
        }
    }
}

/// Copies the counts of `g` (not of the groups below it) to `*out`: a
/// snapshot. A task's end is counted just after its state is final, so a
/// `wsrt_task_wait` may return a moment before its task is counted; once
/// `wsrt_group_wait` returns, every end is. Errors: `WSRT_ERR_NULL`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn wsrt_group_stats(
    g: *const wsrt_group,
    out: *mut wsrt_group_counts,
) -> wsrt_status {
    ffi_boundary! {
        let group = try_group!(g);
        let out = try_out!(out);
        let s = group.stats();
        out.write(wsrt_group_counts {
            spawned: s.spawned,
            succeeded: s.succeeded,
            failed: s.failed,
            cancelled: s.cancelled,
            pending: s.pending,
            running: s.running,
            suspended: s.suspended,
        });
        WSRT_OK
    }
}

/// The group of the task running on this thread, borrowed (retain it to
/// keep it); NULL outside a task or for a task in no group.
#[no_mangle]
pub extern "C" fn wsrt_current_group() -> *mut wsrt_group {
    ffi_boundary! {
        match current_group() {
            // Borrowed: the running task's group outlives the call. The
            // handle made to find it goes, the pointer stays valid.
            Some(group) => {
                let ptr = std::sync::Arc::as_ptr(group.core()).cast_mut().cast();
                drop(group);
                ptr
            }
            None => std::ptr::null_mut(),
        }
    }
}
