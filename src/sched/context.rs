//! What this thread is to wsrt: one thread-local ([`Here`]) holding the
//! worker it is, the task it runs (with its group and isolation), what
//! that task asked to be suspended for, a worker's allocator heap, outside
//! the pool the lane it spawns on, and the ids it gives its spawns.
//! One thread-local so that a path needing several of them pays one
//! access (in `libwsrt.so` each access is a call to `__tls_get_addr`);
//! jobs get it handed down (`JobRef::execute`) rather than looking it up.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::group::GroupCore;
use super::lanes::OwnLane;
use super::pool::Pool;
use super::worker::WorkerThread;
use crate::sync::alloc::Heap;
use crate::task::id::Ids;
use crate::task::raw::Header;
use crate::task::TaskRef;

/// This thread's wsrt state (module docs).
///
/// `task` and `request` are not neighbours: each run saves both and puts
/// them back with one store each, and the compiler would read two
/// neighbours with one 16-byte load, which the store buffer cannot serve
/// from two stores.
#[repr(C)]
pub(crate) struct Here {
    task: Cell<Option<NonNull<Header>>>,
    pub(super) worker: Cell<*const WorkerThread>,
    /// What the running task asked to suspend for (`wsrt_await`,
    /// `wsrt_sleep`); an await owns one reference of the awaited task.
    request: Cell<Request>,
    /// The running task's group (null if none): where its spawns go.
    group: Cell<*const GroupCore>,
    /// The isolation tag of the isolated wait this thread is in, 0 if none
    /// (`wait.rs`): what the tasks it spawns carry.
    isolation: Cell<u64>,
    /// A worker's allocator heap, while it runs (`sync::alloc::Heap`).
    pub(super) heap: Cell<Option<Heap>>,
    /// Outside the pool: the lane this thread claimed on the runtime it
    /// spawned on last (`lanes::OwnLane`).
    lane: Cell<Option<OwnLane>>,
    /// The ids this thread gives the tasks it spawns (`task/id.rs`).
    ids: Ids,
    /// The task whose cancel this thread is finishing (dropping its body),
    /// if any: a cancel of it from its own `arg_drop` must not wait for
    /// itself (`harness::cancel`).
    cancelling: Cell<*const Header>,
}

/// What a task's run asked to be suspended for, recorded on its thread
/// until the run returns "yield". One word, which every run saves and puts
/// back: 0 for nothing; the address of the task `wsrt_await` awaits (a
/// header is aligned, so even), whose reference the request holds; or
/// `wsrt_sleep`'s deadline, odd: `nanoseconds since epoch() << 1 | 1`.
/// Copied freely, it owns its reference once: whoever takes it out of
/// `Here` turns it into a [`Suspension`] or [`discard`](Self::discard)s it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Request(u64);

impl Request {
    const NONE: Request = Request(0);

    fn awaiting(task: TaskRef) -> Request {
        Request(task.into_raw().as_ptr() as usize as u64)
    }

    fn sleep_until(until: Instant) -> Request {
        let nanos = until.saturating_duration_since(epoch()).as_nanos();
        Request((nanos.min(u128::from(u64::MAX >> 1)) as u64) << 1 | 1)
    }

    /// The suspension this request stands for, taking over an await's
    /// reference.
    #[inline]
    pub(crate) fn into_suspension(self) -> Option<Suspension> {
        match self.0 {
            0 => None,
            word if word & 1 == 1 => Some(Suspension::Sleep(
                epoch() + std::time::Duration::from_nanos(word >> 1),
            )),
            word => {
                let task = word as usize as *mut Header;
                // SAFETY: an await request holds a reference of the task at
                // that address (`request_await`), which passes to the handle.
                Some(Suspension::Await(unsafe {
                    TaskRef::from_raw(NonNull::new_unchecked(task))
                }))
            }
        }
    }

    /// Drops the request (an await's reference with it).
    #[inline]
    pub(crate) fn discard(self) {
        if self != Request::NONE {
            drop(self.into_suspension());
        }
    }
}

/// The instant sleep deadlines in a [`Request`] are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What a run that returned "yield" suspends for ([`Here::with_scope`]).
pub(crate) enum Suspension {
    /// Until this task is done.
    Await(TaskRef),
    /// Until then.
    Sleep(Instant),
}

/// Whom a run on this thread works for: what `current_task()`,
/// `current_group()` and the isolation of its spawns say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    pub(crate) task: Option<NonNull<Header>>,
    pub(crate) group: *const GroupCore,
    pub(crate) isolation: u64,
}

thread_local! {
    // No destructor (nothing to register, no state to check at each
    // access): `request` is only set inside `Here::with_scope`, which takes
    // it back before it returns.
    static HERE: Here = const {
        Here {
            task: Cell::new(None),
            worker: Cell::new(ptr::null()),
            request: Cell::new(Request::NONE),
            group: Cell::new(ptr::null()),
            isolation: Cell::new(0),
            heap: Cell::new(None),
            lane: Cell::new(None),
            ids: Ids::new(),
            cancelling: Cell::new(ptr::null()),
        }
    };
}

/// Runs `f` with this thread's [`Here`], found once.
#[inline]
pub(crate) fn with_here<R>(f: impl FnOnce(&Here) -> R) -> R {
    HERE.with(f)
}

impl Here {
    /// The worker running on this thread, if any.
    #[inline]
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

    /// The scope a run started now would inherit: the current task,
    /// group and isolation (a join half or a scope job, which work for the
    /// task that made them).
    #[inline]
    pub(crate) fn scope(&self) -> Scope {
        Scope {
            task: self.task.get(),
            group: self.group.get(),
            isolation: self.isolation.get(),
        }
    }

    /// The running task's group (null if none).
    pub(crate) fn group(&self) -> *const GroupCore {
        self.group.get()
    }

    /// The isolation tag spawns on this thread carry now (0: none).
    pub(crate) fn isolation(&self) -> u64 {
        self.isolation.get()
    }

    /// The isolation tag of a wait on this thread: the scope's, or, if an
    /// isolated wait began to wait for the running task after its run
    /// began (its ISOLATION_ROOT flag), the task's id, kept for the rest
    /// of the run (spawns then carry it too).
    pub(crate) fn wait_isolation(&self) -> u64 {
        let tag = self.isolation.get();
        if tag != 0 {
            return tag;
        }
        let Some(task) = self.task.get() else {
            return 0;
        };
        // SAFETY: the running task is alive while it runs on this thread.
        let header = unsafe { task.as_ref() };
        if !header.state.load().is_isolation_root() {
            return 0;
        }
        let id = header.id();
        self.isolation.set(id);
        id
    }

    /// Runs `f` with `isolation` as this thread's isolation tag, then puts
    /// the previous one back (also if `f` unwinds).
    pub(crate) fn with_isolation<R>(&self, isolation: u64, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<u64>, u64);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.isolation, self.isolation.replace(isolation));
        f()
    }

    /// True if this thread's scope has no group and no isolation: a run
    /// of a task that has neither changes only the task
    /// ([`Here::with_plain_task`]).
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.group.get().is_null() && self.isolation.get() == 0
    }

    /// [`Here::with_scope`] with `task` for a scope that differs from this
    /// thread's only in its task: `task` is in no group and runs outside
    /// any isolated wait, and the thread's scope is plain
    /// ([`Here::is_plain`]). The isolation goes back to none after `f`: an
    /// isolated wait that begins to wait for `task` during its run sets it
    /// for the rest of the run ([`Here::wait_isolation`]).
    #[inline(always)]
    pub(crate) fn with_plain_task<R>(
        &self,
        task: NonNull<Header>,
        f: impl FnOnce() -> R,
    ) -> (R, Request) {
        debug_assert!(self.is_plain());
        // Puts the thread's scope back if `f` unwinds; forgotten otherwise,
        // the same done in line.
        struct Restore<'a> {
            here: &'a Here,
            task: Option<NonNull<Header>>,
            request: Request,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.here.task.set(self.task);
                self.here.isolation.set(0);
                self.here.request.replace(self.request).discard();
            }
        }
        let restore = Restore {
            here: self,
            task: self.task.replace(Some(task)),
            request: self.request.replace(Request::NONE),
        };
        let value = f();
        let Restore { task, request, .. } = restore;
        std::mem::forget(restore);
        self.task.set(task);
        self.isolation.set(0);
        (value, self.request.replace(request))
    }

    /// Runs `f` in `scope` (what `current_task()` reports on this thread,
    /// the group and isolation its spawns take), then restores the previous
    /// one (also if `f` unwinds), and returns what `f` asked to be
    /// suspended for ([`request_await`], [`request_sleep`]), if anything. A
    /// request pending outside (from a task whose function is in a helping
    /// wait that runs this one) is neither seen nor taken: it is put back
    /// after. So a request lives only as long as the run that made it, and
    /// none is left behind when the thread exits.
    pub(crate) fn with_scope<R>(&self, scope: Scope, f: impl FnOnce() -> R) -> (R, Request) {
        struct Restore<'a> {
            here: &'a Here,
            scope: Scope,
            request: Request,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.here.task.set(self.scope.task);
                self.here.group.set(self.scope.group);
                self.here.isolation.set(self.scope.isolation);
                // Only an unwinding `f` leaves a request of its own here.
                self.here.request.replace(self.request).discard();
            }
        }
        let _restore = Restore {
            here: self,
            scope: Scope {
                task: self.task.replace(scope.task),
                group: self.group.replace(scope.group),
                isolation: self.isolation.replace(scope.isolation),
            },
            request: self.request.replace(Request::NONE),
        };
        let value = f();
        (value, self.request.replace(Request::NONE))
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
        h.request
            .replace(Request::awaiting(other.clone()))
            .discard();
        true
    })
}

/// `wsrt_sleep(ns)`: records that the task running on this thread asks to
/// be suspended until `until` once its run returns "yield" (`None`: a
/// plain yield), replacing an earlier request of the same run. False
/// outside a task (nothing to suspend).
pub(crate) fn request_sleep(until: Option<Instant>) -> bool {
    HERE.with(|h| {
        if h.task.get().is_none() {
            return false;
        }
        let request = until.map_or(Request::NONE, Request::sleep_until);
        h.request.replace(request).discard();
        true
    })
}

/// Runs `f` (the drop of a claimed task's body) noting that this thread
/// finishes `task`'s cancel.
pub(crate) fn finishing_cancel_of<R>(task: NonNull<Header>, f: impl FnOnce() -> R) -> R {
    HERE.with(|h| h.finishing_cancel_of(task, f))
}

impl Here {
    /// [`finishing_cancel_of`], on this thread's `Here`.
    pub(crate) fn finishing_cancel_of<R>(&self, task: NonNull<Header>, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<*const Header>, *const Header);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.cancelling, self.cancelling.replace(task.as_ptr()));
        f()
    }
}

/// True if this thread is finishing `task`'s cancel ([`finishing_cancel_of`]).
pub(crate) fn is_finishing_cancel_of(task: NonNull<Header>) -> bool {
    HERE.with(|h| ptr::eq(h.cancelling.get(), task.as_ptr()))
}

/// In a child after `fork()` (`fork.rs`): this thread is no worker and runs
/// no task here, whatever the thread that forked was. A request it held is
/// dropped with its reference leaked (its task belongs to a runtime the
/// child cannot use).
pub(crate) fn forget_inherited() {
    HERE.with(|h| {
        h.task.set(None);
        h.worker.set(ptr::null());
        h.request.set(Request::NONE);
        h.group.set(ptr::null());
        h.isolation.set(0);
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

/// True if the task running on this thread has been asked to cancel, by
/// its own cancel or its group's (unless it is shielded). False outside a
/// task.
pub fn cancel_requested() -> bool {
    HERE.with(|h| {
        let Some(p) = h.task.get() else {
            return false;
        };
        // SAFETY: the current task is alive while it runs on this thread.
        let state = unsafe { p.as_ref() }.state.load();
        if state.is_cancel_requested() {
            return true;
        }
        let group = h.group.get();
        // SAFETY: a running task's group outlives its run (`group.rs`).
        !group.is_null() && !state.is_shielded() && unsafe { &*group }.is_cancelled()
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_sleep_request_keeps_its_deadline_to_the_nanosecond() {
        for nanos in [0, 1, 999_999_999, 123_456_789_012] {
            let at = epoch() + Duration::from_nanos(nanos);
            let request = Request::sleep_until(at);
            assert_eq!(request.0 & 1, 1, "a sleep is odd, never an address");
            match request.into_suspension() {
                Some(Suspension::Sleep(until)) => assert_eq!(until, at),
                _ => panic!("not a sleep"),
            }
        }
        assert!(Request::NONE.into_suspension().is_none());
    }
}
