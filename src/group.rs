//! Groups of tasks, cancelled, waited for and given a deadline together
//! (asyncio's `TaskGroup`, Trio's nurseries, oneTBB's
//! `task_group_context`). The mechanics are the scheduler's
//! (`sched/group.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sched::context;
pub use crate::sched::group::GroupStats;
use crate::sched::group::{GroupCore, CANCEL_ON_FAILURE};
use crate::sched::pool::{Into, Pool};
use crate::sched::wait;
use crate::task::body::{Cancellable, Cancelled};
use crate::task::future::Async;
use crate::task::{Once, Task, Waited};

/// How a group behaves; combine with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupFlags(u32);

impl GroupFlags {
    /// The first task of the group that fails (panics, or returns a
    /// failure code) cancels the group (asyncio's `TaskGroup`).
    pub const CANCEL_ON_FAILURE: GroupFlags = GroupFlags(CANCEL_ON_FAILURE);

    /// The flags as `WSRT_GROUP_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from `WSRT_GROUP_*` bits; `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<GroupFlags> {
        if bits & !CANCEL_ON_FAILURE == 0 {
            Some(GroupFlags(bits))
        } else {
            None
        }
    }
}

impl std::ops::BitOr for GroupFlags {
    type Output = GroupFlags;
    fn bitor(self, other: GroupFlags) -> GroupFlags {
        GroupFlags(self.0 | other.0)
    }
}

/// A group of tasks of one runtime, made with [`Handle::group`]
/// (`rt.group()`), or below another with [`Group::child`].
///
/// - Tasks spawned with [`Group::spawn`], and every task those spawn on the
///   same runtime, belong to the group (a task spawned inside a grouped
///   task joins its group, unless spawned into another).
/// - [`Group::cancel`] cancels the group and every group below it: their
///   pending and suspended tasks end CANCELLED without running (again),
///   before the group's wait returns; running ones see
///   [`crate::cancel_requested`]; tasks spawned into it later end CANCELLED
///   without running. Tasks spawned with [`Group::spawn_shielded`] are left
///   alone (asyncio's `shield`), but still counted and waited for.
/// - [`Group::wait`] waits for every task of the group and of the groups
///   below it; on a worker thread it runs only those tasks meanwhile.
///
/// Clones share the group. Dropping the last handle neither cancels nor
/// waits: the tasks go on (see the C++ `wsrt::Group` for a handle that
/// waits when it goes, like a Trio nursery).
///
/// ```
/// use std::time::Duration;
/// let rt = wsrt::Runtime::builder().workers(2).build().unwrap();
/// let g = rt.group();
/// let slow = g.spawn(|| {
///     while !wsrt::cancel_requested() {
///         std::hint::spin_loop();
///     }
/// });
/// g.set_deadline(Duration::from_millis(20));
/// g.wait(); // the deadline cancels the group; the task sees the request
/// assert!(g.is_cancelled());
/// assert_eq!(slow.state(), wsrt::TaskState::Succeeded);
/// ```
///
/// [`Handle::group`]: crate::Handle::group
pub struct Group {
    core: Arc<GroupCore>,
}

impl Group {
    pub(crate) fn new(pool: &Arc<Pool>, parent: Option<&Group>, flags: GroupFlags) -> Group {
        Group {
            core: GroupCore::new(pool, parent.map(|p| &p.core), flags.0),
        }
    }

    /// A handle of its own for a group (the C ABI's `wsrt_group *`).
    pub(crate) fn from_core(core: Arc<GroupCore>) -> Group {
        core.add_handle();
        Group { core }
    }

    pub(crate) fn core(&self) -> &Arc<GroupCore> {
        &self.core
    }

    /// Gives up the handle as a raw pointer (the C ABI's `wsrt_group *`);
    /// [`Group::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> *const () {
        // Never dropped: its count in the `Arc` and its handle stay with
        // the pointer.
        let this = std::mem::ManuallyDrop::new(self);
        Arc::as_ptr(&this.core).cast()
    }

    /// # Safety
    /// `ptr` came from [`Group::into_raw`] and is taken back once.
    pub(crate) unsafe fn from_raw(ptr: *const ()) -> Group {
        Group {
            // SAFETY: forwarded.
            core: unsafe { Arc::from_raw(ptr.cast()) },
        }
    }

    /// A new group below this one (cancelled with it, waited for with it).
    pub fn child(&self) -> Group {
        self.child_with(GroupFlags::default())
    }

    /// A new group below this one, with `flags`.
    pub fn child_with(&self, flags: GroupFlags) -> Group {
        Group::new(&self.core.pool, Some(self), flags)
    }

    /// Spawns `f` into the group; see [`Handle::spawn`](crate::Handle::spawn).
    pub fn spawn<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.core.pool.spawn_task(Once(Some(f)), self.into(false))
    }

    /// Spawns `f` into the group, left alone by the group's cancel (its
    /// children are not: they belong to the group like any other task).
    pub fn spawn_shielded<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.core.pool.spawn_task(Once(Some(f)), self.into(true))
    }

    /// Spawns `f` into the group; `Err(Cancelled)` ends the task CANCELLED
    /// (see [`Handle::spawn_cancellable`](crate::Handle::spawn_cancellable)).
    pub fn spawn_cancellable<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> Result<T, Cancelled> + Send + 'static,
        T: Send + 'static,
    {
        self.core
            .pool
            .spawn_task(Cancellable(Some(f)), self.into(false))
    }

    /// Spawns a future into the group (see
    /// [`Handle::spawn_async`](crate::Handle::spawn_async)); a cancel of the
    /// group while it awaits drops it at once.
    pub fn spawn_async<F>(&self, future: F) -> Task<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.pool.spawn_task(Async(future), self.into(false))
    }

    fn into(&self, shielded: bool) -> Into<'_> {
        Into {
            group: Some(&self.core),
            shielded,
        }
    }

    /// Cancels the group and every group below it (type docs). False if it
    /// was cancelled already.
    pub fn cancel(&self) -> bool {
        self.core.cancel()
    }

    /// True once the group, or a group above it, was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    /// Cancels the group once `timeout` has passed (the runtime's timer: no
    /// thread waits for it). A later call replaces the deadline.
    pub fn set_deadline(&self, timeout: Duration) {
        self.core.set_deadline(Some(timeout));
    }

    /// Removes the deadline, if any.
    pub fn clear_deadline(&self) {
        self.core.set_deadline(None);
    }

    /// Waits until every task of the group and of the groups below it is
    /// done. On a worker thread it runs only those tasks meanwhile; on
    /// another thread, once the group is cancelled, it ends the cancelled
    /// tasks that this thread spawned and no worker took yet itself (their
    /// closures are dropped and their done-callbacks run here).
    ///
    /// # Panics
    /// Inside a task of the group (or below), which could never see the
    /// group done; in a child process on a group of a runtime inherited
    /// through `fork()`.
    pub fn wait(&self) {
        match wait::wait_group(&self.core, None) {
            Waited::Done | Waited::TimedOut => {}
            Waited::OnItself => {
                panic!("a task cannot wait for its own group (it would never be done)")
            }
            Waited::Forked => panic!("the group's runtime was inherited through fork()"),
        }
    }

    /// Like [`wait`](Self::wait), at most `timeout` (during which it runs
    /// no task, so that it returns on time); true if the group is done.
    /// False at once inside a task of the group.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Instant::now().checked_add(timeout)).is_ok()
    }

    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Result<(), Error> {
        match wait::wait_group(&self.core, deadline) {
            Waited::Done => Ok(()),
            Waited::TimedOut => Err(Error::Timeout),
            Waited::OnItself => Err(Error::WouldDeadlock),
            Waited::Forked => Err(Error::Forked),
        }
    }

    /// The group's own counts (not those of the groups below it): a
    /// snapshot. A task's end is counted just after its state is final, so
    /// a task wait may return a moment before it is counted; once
    /// [`wait`](Self::wait) returns, every end is.
    pub fn stats(&self) -> GroupStats {
        self.core.stats()
    }
}

impl Clone for Group {
    fn clone(&self) -> Group {
        Group::from_core(self.core.clone())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.core.drop_handle();
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("cancelled", &self.is_cancelled())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The group of the task running on this thread, if it has one.
pub fn current_group() -> Option<Group> {
    let group = context::with_here(context::Here::group);
    if group.is_null() {
        return None;
    }
    // SAFETY: the running task's group is alive while it runs, in an `Arc`
    // (`GroupCore::new`); the increment gives the new handle its own count.
    let core = unsafe {
        Arc::increment_strong_count(group);
        Arc::from_raw(group)
    };
    Some(Group::from_core(core))
}
