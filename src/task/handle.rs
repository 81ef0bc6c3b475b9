//! Task handles: the untyped [`TaskRef`] and the typed [`Task<T>`].

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::body::Failure;
use super::callbacks::{CDoneFn, Callback};
use super::raw::{self, Header, Waited};
use super::state::TaskState;

/// Why [`Task::join`] returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task ended CANCELLED.
    Cancelled,
    /// The task's closure panicked; the panic message.
    Panicked(String),
    /// The task's function returned this failure code (C tasks).
    Failed(i32),
    /// The task succeeded, but its value was already moved out by a `join`
    /// through another clone of the handle.
    ResultTaken,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled => f.write_str("task was cancelled"),
            TaskError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            TaskError::Failed(code) => write!(f, "task failed with code {code}"),
            TaskError::ResultTaken => f.write_str("task result was already taken by another join"),
        }
    }
}

impl std::error::Error for TaskError {}

impl From<Failure> for TaskError {
    fn from(f: Failure) -> TaskError {
        match f {
            Failure::Code(code) => TaskError::Failed(code),
            Failure::Panicked(msg) => TaskError::Panicked(msg),
        }
    }
}

/// Identifies a done-callback added with [`TaskRef::on_done`], for
/// [`TaskRef::remove_done_callback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackKey(u64);

/// An untyped, reference-counted task handle: everything but the value.
///
/// Cloning adds a reference; dropping removes one. A handle stays valid after
/// its runtime is dropped (the task is done by then).
pub struct TaskRef {
    ptr: NonNull<Header>,
}

// SAFETY: the handle only reaches the task through atomics, the extras lock,
// the first callback's slot (written by the adder that published it in the
// state word, then taken by one thread: `task/mod.rs`, `callbacks.rs`), and
// the output (moved out once, under the TAKEN flag); task bodies, outputs
// and callbacks are `Send`.
unsafe impl Send for TaskRef {}
// SAFETY: as above; every `&self` method is thread-safe.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Adopts a reference the caller owns.
    ///
    /// # Safety
    /// `ptr` is a live task and the caller gives up one reference to it.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> TaskRef {
        TaskRef { ptr }
    }

    /// A handle that must not be dropped (wrap it in `ManuallyDrop`): for
    /// lending `&TaskRef` while a reference is held some other way.
    pub(crate) fn from_header(ptr: NonNull<Header>) -> TaskRef {
        TaskRef { ptr }
    }

    /// Gives up the handle without dropping its reference.
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }

    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    /// The task's C handle: the address of its header (what callbacks get).
    pub(crate) fn c_handle(&self) -> *mut c_void {
        self.ptr.as_ptr().cast()
    }

    /// A handle for the C handle of a live task, lent for a call: never
    /// dropped, so it gives up no reference.
    pub(crate) fn lent(task: *mut c_void) -> ManuallyDrop<TaskRef> {
        let ptr = NonNull::new(task.cast::<Header>()).expect("a task handle is not null");
        ManuallyDrop::new(TaskRef::from_header(ptr))
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: our reference keeps the task alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The task's id: unique in the process and non-zero; the ids of the
    /// tasks one thread spawns increase in its spawn order (across threads
    /// they promise no order).
    pub fn id(&self) -> u64 {
        self.header().id()
    }

    /// The task's name; `Task-<id>` unless set.
    pub fn name(&self) -> String {
        self.header()
            .extras
            .name()
            .unwrap_or_else(|| format!("Task-{}", self.id()))
    }

    /// Renames the task; allowed at any time, from any thread.
    pub fn set_name(&self, name: impl AsRef<str>) {
        self.header().extras.set_name(name.as_ref());
    }

    /// Where the task is in its life right now.
    pub fn state(&self) -> TaskState {
        self.header().state.load().lifecycle()
    }

    /// True once SUCCEEDED, FAILED or CANCELLED.
    pub fn is_done(&self) -> bool {
        self.header().state.load().is_done()
    }

    /// True only if the task ended CANCELLED.
    pub fn is_cancelled(&self) -> bool {
        self.state() == TaskState::Cancelled
    }

    /// True once `cancel()` was called while the task was running.
    pub fn is_cancel_requested(&self) -> bool {
        self.header().state.load().is_cancel_requested()
    }

    /// Requests cancellation (asyncio `Task.cancel`).
    ///
    /// Returns false, changing nothing, if the task is done. A PENDING or
    /// SUSPENDED task becomes CANCELLED before this returns: its closure is
    /// dropped without running (again) and its done-callbacks run on this
    /// thread. A RUNNING task only gets its cancel-requested flag set; the
    /// closure may observe it with [`crate::cancel_requested`].
    pub fn cancel(&self) -> bool {
        // SAFETY: we hold a reference.
        unsafe { raw::cancel(self.ptr) }
    }

    /// Why the task did not succeed: `None` while not done or if SUCCEEDED.
    pub fn error(&self) -> Option<TaskError> {
        match self.state() {
            TaskState::Cancelled => Some(TaskError::Cancelled),
            // SAFETY: we hold a reference and saw FAILED with Acquire.
            TaskState::Failed => unsafe { raw::failure(self.ptr) }.map(TaskError::from),
            _ => None,
        }
    }

    /// Blocks until the task is done. On a worker thread it runs other
    /// queued tasks while it waits instead of blocking the worker, so a
    /// task waiting for its children needs no second worker.
    ///
    /// # Panics
    /// If called from inside the task itself, which could never finish
    /// (asyncio raises `RuntimeError` for a task awaiting itself), or in a
    /// child process on a task not done whose runtime the child inherited
    /// through `fork()` (no worker of it exists there).
    pub fn wait(&self) {
        match self.wait_until(None) {
            Waited::OnItself => panic!("a task cannot wait for itself (it would never finish)"),
            Waited::Forked => panic!(
                "the task's runtime was inherited through fork(): its workers do not \
                 exist in this process, so the task can never finish"
            ),
            Waited::Done | Waited::TimedOut => {}
        }
    }

    /// Like [`wait`](Self::wait) with a time limit; true if the task is done.
    /// A zero duration only looks. Inside the task itself, or on a task of
    /// a runtime inherited through `fork()`, it returns false at once.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        matches!(
            self.wait_until(Instant::now().checked_add(timeout)),
            Waited::Done
        )
    }

    /// Waits until the task is done or `deadline` passes (`None`: no
    /// limit); inside the task itself it returns at once. The scheduler's
    /// wait (`sched/wait.rs`), through the task's vtable.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Waited {
        if self.is_done() {
            return Waited::Done;
        }
        // SAFETY: our reference keeps the task alive for the call.
        unsafe { (self.header().vtable.wait)(self.ptr, deadline) }
    }

    /// Adds a done-callback (asyncio `add_done_callback`).
    ///
    /// Callbacks run exactly once each, after the state is final, in the
    /// order they were added, on the thread that finished the task (a worker,
    /// or the thread that cancelled it). On a task that is already done, `f`
    /// runs on this thread before `on_done` returns. A panic in `f` is caught
    /// and counted in [`crate::Stats::callback_panics`].
    pub fn on_done<F>(&self, f: F) -> CallbackKey
    where
        F: FnOnce(&TaskRef) + Send + 'static,
    {
        let callback = Callback::Boxed(Box::new(move |task| f(&TaskRef::lent(task))));
        match self.add_callback(callback) {
            Ok(key) => CallbackKey(key),
            Err(callback) => {
                let _panicked = callback.run(self.c_handle());
                CallbackKey(u64::MAX)
            }
        }
    }

    /// Removes a callback added by `on_done`; true if it was removed before it
    /// ran, in which case it never runs.
    pub fn remove_done_callback(&self, key: CallbackKey) -> bool {
        let header = self.header();
        header.extras.remove(&header.state, key.0)
    }

    pub(crate) fn add_callback(&self, callback: Callback) -> Result<u64, Callback> {
        let header = self.header();
        header.extras.add(&header.state, callback)
    }

    pub(crate) fn remove_callback_key(&self, key: u64) -> bool {
        let header = self.header();
        header.extras.remove(&header.state, key)
    }

    /// Adds a C callback; on a done task it runs now, on this thread.
    pub(crate) fn add_c_callback(&self, cb: CDoneFn, user: usize) {
        if let Err(callback) = self.add_callback(Callback::C { cb, user }) {
            // A C function cannot unwind into us; nothing to count.
            let _panicked = callback.run(self.c_handle());
        }
    }

    pub(crate) fn remove_c_callback(&self, cb: CDoneFn, user: usize) -> usize {
        let header = self.header();
        header.extras.remove_c(&header.state, cb, user)
    }

    /// Queues the task again if it is parked (suspended, unscheduled).
    pub(crate) fn wake(self) {
        // SAFETY: we hold a reference for the call.
        unsafe { raw::wake(self.ptr) }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        self.header().state.ref_inc();
        TaskRef { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { raw::drop_ref(self.ptr) }
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &TaskRef) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

/// A handle to a task whose closure returns `T`.
///
/// Dereferences to [`TaskRef`] for everything but the value. Clones share the
/// task; the value is moved out by the first [`join`](Task::join).
pub struct Task<T> {
    raw: TaskRef,
    /// The done-callback that wakes the future awaiting this handle, while
    /// one is set (`future.rs`): each poll replaces it, a drop takes it back.
    pub(crate) waiting: Option<u64>,
    _output: PhantomData<fn() -> T>,
}

// SAFETY: the value of type `T` is moved out at most once, under the TAKEN
// flag, by whichever thread joins; that needs `T: Send` and nothing more.
unsafe impl<T: Send> Send for Task<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Task<T> {}

impl<T: Send + 'static> Task<T> {
    /// # Safety
    /// `raw` is a task whose body's output type is `T`.
    pub(crate) unsafe fn from_task_ref(raw: TaskRef) -> Task<T> {
        Task {
            raw,
            waiting: None,
            _output: PhantomData,
        }
    }

    /// Waits for the task (helping if on a worker) and returns its value.
    ///
    /// `Err(Cancelled)` if it ended CANCELLED, `Err(Panicked(msg))` if its
    /// closure panicked, `Err(ResultTaken)` if another clone already joined.
    pub fn join(self) -> Result<T, TaskError> {
        self.raw.wait();
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: the handle's reference is ours (given up if it succeeds);
        // the body's output type is `T`.
        if unsafe { raw::take_output_and_free(self.raw.ptr, out.as_mut_ptr()) } {
            std::mem::forget(self);
            // SAFETY: written by `take_output_and_free`.
            return Ok(unsafe { out.assume_init() });
        }
        self.take()
    }

    /// The value if the task is done, without waiting (asyncio `result()`);
    /// while it is not done, the handle comes back as `Err`.
    pub fn try_join(self) -> Result<Result<T, TaskError>, Task<T>> {
        if self.is_done() {
            Ok(self.take())
        } else {
            Err(self)
        }
    }

    pub(crate) fn take(&self) -> Result<T, TaskError> {
        debug_assert!(self.is_done());
        if self.raw.header().state.take_output() {
            let mut out = MaybeUninit::<T>::uninit();
            // SAFETY: we won `take_output`; the body's output type is `T`.
            unsafe {
                raw::take_output(self.raw.ptr, out.as_mut_ptr());
                return Ok(out.assume_init());
            }
        }
        Err(self.raw.error().unwrap_or(TaskError::ResultTaken))
    }

    /// Adds a done-callback that receives this typed handle; see
    /// [`TaskRef::on_done`].
    pub fn on_done<F>(&self, f: F) -> CallbackKey
    where
        F: FnOnce(&Task<T>) + Send + 'static,
    {
        self.raw.on_done(move |raw| {
            let typed = ManuallyDrop::new(Task::<T> {
                raw: TaskRef::from_header(raw.as_ptr()),
                waiting: None,
                _output: PhantomData,
            });
            f(&typed)
        })
    }

    /// The untyped handle.
    pub fn as_task_ref(&self) -> &TaskRef {
        &self.raw
    }
}

impl<T> Deref for Task<T> {
    type Target = TaskRef;
    fn deref(&self) -> &TaskRef {
        &self.raw
    }
}

impl<T> Clone for Task<T> {
    fn clone(&self) -> Task<T> {
        Task {
            raw: self.raw.clone(),
            waiting: None,
            _output: PhantomData,
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        // A future dropped while it waited (a lost race in a `select`)
        // takes its wake-up back: a task awaited again and again must not
        // collect them.
        if let Some(key) = self.waiting.take() {
            self.raw.remove_callback_key(key);
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}
