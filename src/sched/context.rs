//! What this thread is to wsrt: one thread-local ([`Here`]) holding the
//! worker it is, the task it runs, the task that task asked to await, a
//! worker's allocator heap, outside the pool the lane it spawns on, and
//! the ids it gives its spawns.
//! One thread-local so that a path needing several of them pays one
//! access (in `libwsrt.so` each access is a call to `__tls_get_addr`);
//! jobs get it handed down (`JobRef::execute`) rather than looking it up.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use super::lanes::OwnLane;
use super::pool::Pool;
use super::worker::WorkerThread;
use crate::sync::alloc::Heap;
use crate::task::id::Ids;
use crate::task::raw::Header;
use crate::task::TaskRef;

/// This thread's wsrt state (module docs).
///
/// `task` and `awaiting` are not neighbours: each run saves both and puts
/// them back with one 8-byte store each, and the compiler would read two
/// neighbours with one 16-byte load, which the store buffer cannot serve
/// from two stores.
#[repr(C)]
pub(crate) struct Here {
    task: Cell<Option<NonNull<Header>>>,
    pub(super) worker: Cell<*const WorkerThread>,
    /// Owns one reference of the task (`TaskRef::into_raw`).
    awaiting: Cell<Option<NonNull<Header>>>,
    /// A worker's allocator heap, while it runs (`sync::alloc::Heap`).
    pub(super) heap: Cell<Option<Heap>>,
    /// Outside the pool: the lane this thread claimed on the runtime it
    /// spawned on last (`lanes::OwnLane`).
    lane: Cell<Option<OwnLane>>,
    /// The ids this thread gives the tasks it spawns (`task/id.rs`).
    ids: Ids,
}

thread_local! {
    // No destructor (nothing to register, no state to check at each
    // access): `awaiting` is only set inside `Here::with_task`, which takes
    // it back before it returns.
    static HERE: Here = const {
        Here {
            task: Cell::new(None),
            worker: Cell::new(ptr::null()),
            awaiting: Cell::new(None),
            heap: Cell::new(None),
            lane: Cell::new(None),
            ids: Ids::new(),
        }
    };
}

/// Runs `f` with this thread's [`Here`], found once.
pub(crate) fn with_here<R>(f: impl FnOnce(&Here) -> R) -> R {
    HERE.with(f)
}

impl Here {
    /// The worker running on this thread, if any.
    pub(crate) fn worker(&self) -> Option<&'static WorkerThread> {
        let p = self.worker.get();
        // SAFETY: set by `WorkerThread::run` for the lifetime of the
        // worker's thread and cleared before the `WorkerThread` is dropped;
        // only this thread reads it.
        unsafe { p.as_ref() }
    }

    pub(crate) fn task(&self) -> Option<NonNull<Header>> {
        self.task.get()
    }

    /// The worker's allocator heap, while a worker runs on this thread.
    pub(crate) fn heap(&self) -> Option<Heap> {
        self.heap.get()
    }

    /// The worker on this thread if it belongs to `pool`.
    pub(crate) fn worker_of(&self, pool: &Pool) -> Option<&'static WorkerThread> {
        self.worker()
            .filter(|w| ptr::eq(Arc::as_ptr(&w.pool), pool))
    }

    pub(crate) fn lane(&self) -> Option<OwnLane> {
        self.lane.get()
    }

    pub(crate) fn set_lane(&self, lane: Option<OwnLane>) {
        self.lane.set(lane);
    }

    /// The id of the next task this thread spawns.
    #[inline]
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.next()
    }

    /// Runs `f` with `task` as what `current_task()` reports on this
    /// thread, then restores the previous one (also if `f` unwinds), and
    /// returns the task that `f` asked to await ([`request_await`]), if any.
    /// A request pending outside (from a task whose function is in a
    /// helping wait that runs this one) is neither seen nor taken: it is
    /// put back after. So a request lives only as long as the run that
    /// made it, and none is left behind when the thread exits.
    pub(crate) fn with_task<R>(
        &self,
        task: Option<NonNull<Header>>,
        f: impl FnOnce() -> R,
    ) -> (R, Option<TaskRef>) {
        struct Restore<'a> {
            here: &'a Here,
            task: Option<NonNull<Header>>,
            awaiting: Option<NonNull<Header>>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.here.task.set(self.task);
                if let Some(inner) = self.here.awaiting.replace(self.awaiting) {
                    // SAFETY: `awaiting` owns a reference (`request_await`);
                    // only an unwinding `f` leaves one here.
                    drop(unsafe { TaskRef::from_raw(inner) });
                }
            }
        }
        let _restore = Restore {
            here: self,
            task: self.task.replace(task),
            awaiting: self.awaiting.take(),
        };
        let value = f();
        let asked = self.awaiting.take();
        // SAFETY: as in `Restore::drop`.
        let asked = asked.map(|p| unsafe { TaskRef::from_raw(p) });
        (value, asked)
    }
}

/// `wsrt_await(other)`: records that the task running on this thread
/// asks to await `other` once its run returns "yield", replacing an
/// earlier request of the same run (outside a task it does nothing). False,
/// recording nothing, if `other` is the running task itself, which could
/// never resume.
pub(crate) fn request_await(other: &TaskRef) -> bool {
    HERE.with(|h| {
        let Some(current) = h.task.get() else {
            return true;
        };
        if current == other.as_ptr() {
            return false;
        }
        let old = h.awaiting.replace(Some(other.clone().into_raw()));
        // SAFETY: `awaiting` owned that reference.
        drop(old.map(|p| unsafe { TaskRef::from_raw(p) }));
        true
    })
}

/// In a child after `fork()` (`fork.rs`): this thread is no worker and runs
/// no task here, whatever the thread that forked was. An await request it
/// held is dropped with its reference leaked (its task belongs to a
/// runtime the child cannot use).
pub(crate) fn forget_inherited() {
    HERE.with(|h| {
        h.task.set(None);
        h.worker.set(ptr::null());
        h.awaiting.set(None);
        h.heap.set(None);
        h.lane.set(None);
        h.ids.forget();
    });
}

/// The task running on this thread, borrowed: alive while it runs here.
pub(crate) fn current_task_ptr() -> Option<NonNull<Header>> {
    HERE.with(|h| h.task.get())
}

/// The current task, if this thread is running one.
pub fn current_task() -> Option<TaskRef> {
    current_task_ptr().map(|p| {
        let borrowed = std::mem::ManuallyDrop::new(TaskRef::from_header(p));
        TaskRef::clone(&borrowed)
    })
}

/// True if the task running on this thread has been asked to cancel.
/// False outside a task.
pub fn cancel_requested() -> bool {
    current_task_ptr().is_some_and(|p| {
        // SAFETY: the current task is alive while it runs on this thread.
        unsafe { p.as_ref() }.state.load().is_cancel_requested()
    })
}
