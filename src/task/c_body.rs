//! C tasks: a function `fn(arg, &result)` called until it says it is done,
//! its `arg` (readable at any time through the handle), and the drop
//! functions of the argument and the result. A core body kind, so that the
//! C ABI (`ffi/`) only converts.

use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use super::body::{Body, BodyKind, Step};
use super::handle::TaskRef;
use super::raw;

/// What a C task function returns: done, keep `*result` (`WSRT_TASK_OK`).
pub(crate) const TASK_OK: i32 = 0;
/// Done, CANCELLED (`WSRT_TASK_CANCELLED`).
pub(crate) const TASK_CANCELLED: i32 = -1;
/// Not done: suspend, run again later (`WSRT_TASK_YIELD`). Any other value
/// is a failure code.
pub(crate) const TASK_YIELD: i32 = -2;

/// A C task's function.
pub(crate) type CFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> i32;
/// A C drop function (`arg_drop`, `result_drop`).
pub(crate) type CDropFn = unsafe extern "C" fn(*mut c_void);

/// A pointer handed between threads.
pub(crate) struct SendPtr(pub(crate) *mut c_void);
// SAFETY: the C caller hands the argument and result to whichever thread
// runs or frees the task; that is the documented contract of `wsrt_spawn`.
unsafe impl Send for SendPtr {}
// SAFETY: only the pointer value is shared (`wsrt_task_arg`), never used here.
unsafe impl Sync for SendPtr {}

/// The value of a C task that SUCCEEDED, with its drop function.
pub(crate) struct CResult {
    value: SendPtr,
    drop: Option<CDropFn>,
    /// Handed to a caller of `wsrt_task_join`, who owns it from then on:
    /// `drop` is not called.
    taken: AtomicBool,
}

impl Drop for CResult {
    fn drop(&mut self) {
        if let Some(drop_result) = self.drop.filter(|_| !*self.taken.get_mut()) {
            // SAFETY: the output is dropped once, with the last reference.
            unsafe { drop_result(self.value.0) };
        }
    }
}

/// One call of a C task's function, `func(arg, &result)`, and what its
/// return value means.
fn call(func: CFn, arg: &SendPtr) -> Step<SendPtr> {
    let mut result = ptr::null_mut();
    // SAFETY: `func` and `arg` were given together to `wsrt_spawn`.
    let code = unsafe { func(arg.0, &mut result) };
    match code {
        TASK_OK => Step::Ready(SendPtr(result)),
        TASK_CANCELLED => Step::Cancelled,
        // After `wsrt_await(other)` the run awaits `other` (the scheduler
        // takes the request from the thread's context).
        TASK_YIELD => Step::Yield,
        failure => Step::Failed(failure),
    }
}

/// The body of a C task with drop functions: calls `func(arg, &result)`
/// until it is done. The `arg` itself is the task's tag, stored once;
/// `release` hands it to `arg_drop`.
pub(crate) struct CTask {
    func: CFn,
    arg_drop: Option<CDropFn>,
    result_drop: Option<CDropFn>,
}

impl Body for CTask {
    type Output = CResult;
    type Tag = SendPtr;
    const KIND: BodyKind = BodyKind::C;

    fn run(&mut self, arg: &SendPtr, _task: NonNull<()>) -> Step<CResult> {
        call(self.func, arg).map(|value| CResult {
            value,
            drop: self.result_drop,
            taken: AtomicBool::new(false),
        })
    }

    fn release(&mut self, arg: &SendPtr) {
        if let Some(drop_arg) = self.arg_drop {
            // SAFETY: `release` runs once per task, as `arg_drop` promises.
            unsafe { drop_arg(arg.0) };
        }
    }

    fn output_drop_observable(output: &CResult) -> bool {
        output.drop.is_some()
    }
}

/// The body of a C task spawned with neither `arg_drop` nor `result_drop`
/// (every spawn with `opts` NULL): the function alone, and the result
/// without a drop function, in a cell one allocator size class smaller
/// than a `CTask`'s.
pub(crate) struct CPlainTask {
    func: CFn,
}

const _: () = assert!(raw::cell_size::<CPlainTask>() <= 80);

impl Body for CPlainTask {
    type Output = SendPtr;
    type Tag = SendPtr;
    const KIND: BodyKind = BodyKind::CPlain;

    fn run(&mut self, arg: &SendPtr, _task: NonNull<()>) -> Step<SendPtr> {
        call(self.func, arg)
    }
}

/// The body for a C spawn: the plain one unless a drop function is given.
pub(crate) enum CBody {
    Plain(CPlainTask),
    Full(CTask),
}

impl CBody {
    pub(crate) fn new(func: CFn, arg_drop: Option<CDropFn>, result_drop: Option<CDropFn>) -> CBody {
        match (arg_drop, result_drop) {
            (None, None) => CBody::Plain(CPlainTask { func }),
            (arg_drop, result_drop) => CBody::Full(CTask {
                func,
                arg_drop,
                result_drop,
            }),
        }
    }
}

/// The `arg` of a C task; `None` for a task spawned from Rust.
pub(crate) fn arg_of(task: &TaskRef) -> Option<*mut c_void> {
    // SAFETY: the handle holds a reference; the tag is immutable.
    match unsafe { raw::tag_of::<CPlainTask>(task.as_ptr()) } {
        Some(arg) => Some(arg.0),
        // SAFETY: as above.
        None => unsafe { raw::tag_of::<CTask>(task.as_ptr()) }.map(|arg| arg.0),
    }
}

/// The result of a C task that SUCCEEDED; `None` for a task spawned from
/// Rust, or one that did not succeed.
pub(crate) fn result_of(task: &TaskRef) -> Option<*mut c_void> {
    if task.state() != super::TaskState::Succeeded {
        return None;
    }
    // SAFETY: the handle holds a reference and we saw SUCCEEDED (Acquire);
    // C task outputs are never moved out, only read.
    match unsafe { raw::output_of::<CPlainTask>(task.as_ptr()) } {
        Some(value) => Some(value.0),
        // SAFETY: as above.
        None => unsafe { raw::output_of::<CTask>(task.as_ptr()) }.map(|r| r.value.0),
    }
}

/// Like [`result_of`], handing the result over to the caller: the task's
/// `result_drop` will not be called for it (`wsrt_task_join`).
pub(crate) fn take_result(task: &TaskRef) -> Option<*mut c_void> {
    if task.state() != super::TaskState::Succeeded {
        return None;
    }
    // SAFETY: as `result_of`.
    match unsafe { raw::output_of::<CPlainTask>(task.as_ptr()) } {
        Some(value) => Some(value.0),
        // SAFETY: as above.
        None => unsafe { raw::output_of::<CTask>(task.as_ptr()) }.map(|r| {
            // Relaxed: the caller's release of its reference (AcqRel on
            // the count) orders this before the last one's drop.
            r.taken.store(true, Ordering::Relaxed);
            r.value.0
        }),
    }
}
