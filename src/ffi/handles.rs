//! The three opaque handles C holds (`wsrt_runtime`, `wsrt_task`,
//! `wsrt_group`), their conversions to the Rust API, and the conversions
//! every export file shares. The export files (`runtime.rs`, `task.rs`,
//! `group.rs`, `wait.rs`) import from here and never from each other.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::wsrt_status::{self, *};
use crate::group::Group;
use crate::runtime::{Error, Handle, Runtime};
use crate::task::raw::Header;
use crate::task::TaskRef;

/// A runtime: worker threads and their queues. Opaque; create with
/// `wsrt_runtime_new`, destroy with `wsrt_runtime_free`.
pub struct wsrt_runtime {
    pub(super) rt: Runtime,
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

/// A task handle. Opaque and reference counted: every handle a function
/// gives you (`wsrt_spawn`'s `out`, `wsrt_task_retain`, the list of
/// `wsrt_runtime_all_tasks`) must be released once with
/// `wsrt_task_release`. A handle stays valid, and queryable, after its
/// runtime is freed; it must not be used after its release.
pub struct wsrt_task {
    _opaque: [u8; 0],
}

/// A group of tasks of one runtime. Opaque and reference counted: every
/// handle a function gives you (`wsrt_group_new`'s `out`,
/// `wsrt_group_retain`) must be released once with `wsrt_group_release`.
/// Releasing the last handle neither cancels nor waits: the group's tasks
/// go on. A task spawned into a group, and every task it spawns on the
/// same runtime, belong to it.
pub struct wsrt_group {
    _opaque: [u8; 0],
}

/// Converts an owned Rust handle into a C handle (the reference moves
/// along: release it with `wsrt_task_release`). For programs mixing the
/// Rust API and the C ABI.
pub fn into_c(task: TaskRef) -> *mut wsrt_task {
    task.into_raw().as_ptr().cast()
}

/// A Rust handle for a C handle, with a reference of its own (the C handle
/// stays valid and owned by the caller). `None` for NULL.
///
/// # Safety
/// `t` is NULL or a live handle.
pub unsafe fn from_c(t: *const wsrt_task) -> Option<TaskRef> {
    borrow_task(t).map(|task| TaskRef::clone(&task))
}

/// The handle behind `t`, borrowed: the caller's reference keeps it alive
/// for the call (header docs), and it is never dropped. `None` for NULL.
///
/// Debug builds abort with a message on a handle used after its last
/// release, as long as the freed memory was not reused (undefined
/// behaviour, which release builds do not look for).
pub(crate) fn borrow_task(t: *const wsrt_task) -> Option<ManuallyDrop<TaskRef>> {
    let ptr = NonNull::new(t.cast_mut().cast::<Header>())?;
    let task = ManuallyDrop::new(TaskRef::from_header(ptr));
    if task.header().state.is_poisoned() {
        eprintln!("wsrt: a wsrt_task was used after its last wsrt_task_release");
        std::process::abort();
    }
    Some(task)
}

/// The group behind `g`, borrowed for the call (never dropped). `None` for
/// NULL.
pub(crate) fn borrow_group(g: *const wsrt_group) -> Option<ManuallyDrop<Group>> {
    // SAFETY: a non-NULL `g` is a live handle (header docs), from
    // `Group::into_raw`; borrowed, so never dropped.
    (!g.is_null()).then(|| ManuallyDrop::new(unsafe { Group::from_raw(g.cast()) }))
}

/// The status of a Rust API error.
pub(crate) fn status_of(e: Error) -> wsrt_status {
    match e {
        Error::Shutdown => WSRT_ERR_SHUTDOWN,
        Error::WouldDeadlock => WSRT_ERR_WOULD_DEADLOCK,
        Error::InvalidArgument(_) | Error::Spawn(_) => WSRT_ERR_INVALID_ARG,
        Error::Timeout => WSRT_ERR_TIMEOUT,
        Error::Forked => WSRT_ERR_FORKED,
    }
}

/// The deadline of a wait of `timeout_ns` from now: none for a negative
/// timeout, or one past what `Instant` can hold (then the wait has no limit).
pub(crate) fn deadline_after(timeout_ns: i64) -> Option<Instant> {
    u64::try_from(timeout_ns)
        .ok()
        .and_then(|ns| Instant::now().checked_add(Duration::from_nanos(ns)))
}
