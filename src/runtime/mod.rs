//! The runtime: [`Runtime`] owns a pool of worker threads (`sched/`),
//! [`Handle`] spawns on it, [`Builder`] configures it, [`global`] is the
//! process-wide default one.

mod builder;
mod global;

use std::fmt;
use std::sync::Arc;

pub use crate::error::Error;
use std::time::{Duration, Instant};

pub use builder::Builder;
pub use global::global;

use crate::group::{Group, GroupFlags};
use crate::sched::job;
use crate::sched::pool::{Into, Pool};
pub use crate::sched::shutdown::ShutdownMode;
use crate::sched::stats::Stats;
use crate::task::body::{Cancellable, Cancelled};
use crate::task::c_body::{CBody, CDropFn, CFn, SendPtr};
use crate::task::future::Async;
use crate::task::{Once, Task, TaskRef};

/// A cloneable handle to a runtime: spawn, stats, shutdown. It keeps the
/// runtime's shared state alive but not its threads; spawning through it
/// after shutdown is refused.
#[derive(Clone)]
pub struct Handle {
    pub(crate) pool: Arc<Pool>,
}

impl Handle {
    /// Whether `group` belongs to this runtime.
    pub(crate) fn owns(&self, group: &crate::group::Group) -> bool {
        Arc::ptr_eq(&group.core().pool, &self.pool)
    }

    /// The runtime of the worker thread this is called on, if any.
    pub fn current() -> Option<Handle> {
        crate::sched::worker::WorkerThread::current().map(|w| Handle {
            pool: w.pool.clone(),
        })
    }

    /// Spawns `f` and returns its handle.
    ///
    /// From one of this runtime's workers the task goes to that worker's own
    /// deque (LIFO); from another thread to that thread's lane (a FIFO
    /// queue of its own that the workers steal from; the first eight
    /// threads that spawn get one), otherwise to the global injector. If
    /// the runtime is shutting down the spawn is refused and the returned
    /// task is already CANCELLED (`f` is dropped without running); use
    /// [`try_spawn`] to get `f` back instead.
    ///
    /// [`try_spawn`]: Handle::try_spawn
    pub fn spawn<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&self.pool, f)
    }

    /// Spawns `f`, or gives it back if the runtime is shutting down.
    pub fn try_spawn<F, T>(&self, f: F) -> Result<Task<T>, F>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self
            .pool
            .spawn_body(Once(Some(f)), (), true, None, Into::default())
        {
            // SAFETY: the body's output type is `T`.
            Ok(Some(raw)) => Ok(unsafe { Task::from_task_ref(raw) }),
            Ok(None) => unreachable!("asked for a handle"),
            Err(Once(f)) => Err(f.expect("refused body still holds its closure")),
        }
    }

    /// Spawns a future as a task. While it awaits (returns `Pending`) the
    /// task is SUSPENDED and holds no worker; its waker queues it again.
    /// Awaiting another [`Task`] inside it suspends until that task is done.
    /// Cancelling it while suspended drops the future at once. Refused after
    /// shutdown like [`spawn`](Handle::spawn) (the task is CANCELLED).
    pub fn spawn_async<F>(&self, future: F) -> Task<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.pool.spawn_task(Async(future), Into::default())
    }

    /// Spawns `f`, which may end the task CANCELLED: returning
    /// `Err(Cancelled)` (say, once it sees [`crate::cancel_requested`]) ends
    /// it CANCELLED, `Ok(value)` SUCCEEDED with `value`.
    ///
    /// ```
    /// let rt = wsrt::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn_cancellable(|| {
    ///     while !wsrt::cancel_requested() {
    ///         std::hint::spin_loop();
    ///     }
    ///     Err::<(), _>(wsrt::Cancelled)
    /// });
    /// while t.state() != wsrt::TaskState::Running {}
    /// t.cancel();
    /// assert_eq!(t.join(), Err(wsrt::TaskError::Cancelled));
    /// ```
    pub fn spawn_cancellable<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> Result<T, Cancelled> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.spawn_task(Cancellable(Some(f)), Into::default())
    }

    /// A new group of this runtime's: see [`Group`].
    pub fn group(&self) -> Group {
        Group::new(&self.pool, None, GroupFlags::default())
    }

    /// A new group with `flags` (e.g. [`GroupFlags::CANCEL_ON_FAILURE`]).
    pub fn group_with(&self, flags: GroupFlags) -> Group {
        Group::new(&self.pool, None, flags)
    }

    /// Spawns `f` without a handle (the cheapest spawn). Returns false, and
    /// drops `f`, if the runtime is shutting down.
    pub fn spawn_detached<F>(&self, f: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        self.pool
            .spawn_body(Once(Some(f)), (), false, None, Into::default())
            .is_ok()
    }

    /// The C ABI's spawn (`wsrt_spawn`): a task calling `func(arg, &result)`
    /// until it is done, with a handle if `handle`. Refused with
    /// [`Error::Shutdown`] if the runtime is shutting down: nothing was
    /// spawned and `arg_drop` is not called (the caller keeps `arg`).
    pub(crate) fn spawn_c(&self, spawn: CSpawn<'_>) -> Result<Option<TaskRef>, Error> {
        // A refused body comes back and is dropped here, without
        // `release`: `arg_drop` does not run.
        if self.pool.is_forked() {
            return Err(Error::Forked);
        }
        let CSpawn {
            func,
            arg,
            arg_drop,
            result_drop,
            name,
            handle,
            group,
            shielded,
        } = spawn;
        if group.is_some_and(|g| !Arc::ptr_eq(&g.core().pool, &self.pool)) {
            return Err(Error::InvalidArgument("a group of another runtime"));
        }
        let into = Into {
            group: group.map(Group::core),
            shielded,
        };
        let arg = SendPtr(arg);
        let spawned = match CBody::new(func, arg_drop, result_drop) {
            CBody::Plain(body) => self.pool.spawn_body(body, arg, handle, name, into).ok(),
            CBody::Full(body) => self.pool.spawn_body(body, arg, handle, name, into).ok(),
        };
        spawned.ok_or(Error::Shutdown)
    }

    /// Counters since start; exact once the runtime is shut down.
    pub fn stats(&self) -> Stats {
        self.pool.counters.snapshot(
            self.pool.workers(),
            &self.pool.tasks,
            self.pool.sleep.steered_wakes(),
        )
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// Handles to every task that is not done (asyncio `all_tasks()`).
    /// Empty in a child process that inherited the runtime through
    /// `fork()` (its list may be locked by a thread that is not there).
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        if self.pool.is_forked() {
            return Vec::new();
        }
        self.pool.tasks.live_tasks()
    }

    /// True in a child process that inherited the runtime through `fork()`.
    pub(crate) fn is_forked(&self) -> bool {
        self.pool.is_forked()
    }

    /// Shuts the runtime down and waits until no task is live. Idempotent;
    /// `Cancel` after `Drain` upgrades. From one of its own workers it does
    /// nothing and returns [`Error::WouldDeadlock`].
    pub fn shutdown(&self, mode: ShutdownMode) -> Result<(), Error> {
        self.shutdown_until(mode, None)
    }

    /// Like [`shutdown`](Self::shutdown), waiting at most `timeout`:
    /// [`Error::Timeout`] if tasks are still running then (they were asked
    /// to stop with `Cancel`; call again, or drop the `Runtime`, which
    /// waits). New spawns from outside are refused from the first call on.
    pub fn shutdown_timeout(&self, mode: ShutdownMode, timeout: Duration) -> Result<(), Error> {
        self.shutdown_until(mode, Instant::now().checked_add(timeout))
    }

    fn shutdown_until(&self, mode: ShutdownMode, deadline: Option<Instant>) -> Result<(), Error> {
        if self.pool.is_own_worker() {
            return Err(Error::WouldDeadlock);
        }
        if self.pool.is_forked() {
            return Err(Error::Forked);
        }
        match self.pool.shutdown(mode, deadline) {
            true => Ok(()),
            false => Err(Error::Timeout),
        }
    }

    /// True on one of this runtime's worker threads (inside its tasks).
    pub(crate) fn is_own_worker(&self) -> bool {
        self.pool.is_own_worker()
    }

    /// True once shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        self.pool.is_shutting_down()
    }

    /// Fork-join on this runtime: see [`crate::join`]. Through a handle
    /// whose `Runtime` was dropped, both closures run on the caller.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        job::join_in(&self.pool, a, b)
    }

    /// Scoped spawns that may borrow from the caller: see [`crate::Scope`].
    /// Through a handle whose `Runtime` was dropped, they run on the caller.
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&crate::scope::Scope<'scope>) -> R,
    {
        crate::scope::scope_in(&self.pool, op)
    }
}

/// [`Handle::spawn`] on a runtime the caller only borrows: `crate::spawn`
/// from a worker uses its worker's runtime without cloning the `Arc`, whose
/// count every worker would otherwise write at every spawn.
pub(crate) fn spawn_on<F, T>(pool: &Arc<Pool>, f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pool.spawn_task(Once(Some(f)), Into::default())
}

/// What `wsrt_spawn` asks for (`Handle::spawn_c`).
pub(crate) struct CSpawn<'a> {
    pub(crate) func: CFn,
    pub(crate) arg: *mut std::ffi::c_void,
    pub(crate) arg_drop: Option<CDropFn>,
    pub(crate) result_drop: Option<CDropFn>,
    pub(crate) name: Option<&'a str>,
    /// With a handle (else detached).
    pub(crate) handle: bool,
    /// Its group (else the spawning task's).
    pub(crate) group: Option<&'a Group>,
    pub(crate) shielded: bool,
}

/// A work-stealing runtime: worker threads, their deques, and the tasks.
///
/// Dereferences to [`Handle`] for spawning. Dropping it drains (as
/// `shutdown(ShutdownMode::Drain)`) and joins the worker threads; task
/// handles stay valid afterwards.
pub struct Runtime {
    handle: Handle,
}

impl Runtime {
    /// A runtime with one worker per CPU.
    pub fn new() -> Result<Runtime, Error> {
        Builder::default().build()
    }

    /// A builder to choose the number of workers.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A cloneable handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl std::ops::Deref for Runtime {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let pool = &self.handle.pool;
        if pool.is_forked() {
            // Inherited through fork(): no worker thread exists here to
            // join (its handles are kept with the pool, never joined), and
            // tasks that never end point to the pool. Abandon it.
            crate::sched::fork::abandon(pool.clone());
            return;
        }
        let on_own_worker = pool.is_own_worker();
        if !on_own_worker {
            pool.shutdown(ShutdownMode::Drain, None);
        } else {
            // Cannot wait for ourselves: start the drain (spawns from
            // outside are refused from here on), let it finish on its own,
            // and leave the threads to exit when idle.
            pool.begin_shutdown(ShutdownMode::Drain);
        }
        pool.set_exiting();
        let threads = std::mem::take(&mut *pool.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if !on_own_worker {
            for thread in threads {
                let _ = thread.join();
            }
            pool.timer.stop();
            // No task is live: the groups kept for their tasks go.
            pool.drop_orphans();
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .field("stats", &self.stats())
            .finish()
    }
}
