//! The runtime: its shared state, spawning, shutdown and statistics.
//!
//! # Shutdown
//!
//! The mode only moves forward: RUNNING → DRAINING or CANCELLING → STOPPED.
//! Once it leaves RUNNING, spawns from outside the pool are refused;
//! DRAINING still accepts spawns from its own workers (running tasks may
//! need children to finish), CANCELLING refuses them and cancels every
//! queued or suspended task (running ones get a cancel request).
//!
//! Shutdown first *closes* the registry's shards, where threads outside
//! the pool count their spawns and every thread counts ends
//! (`registry.rs`), then moves the mode, then checks. An outside spawn checks and counts under its
//! shard's lock: counted means ordered before the close, so shutdown sees
//! it and waits for the task; refused means nothing counted. An outside
//! thread that finishes a task (a cancel) counts it the same way: while
//! open, the count is all it does, and shutdown's own check sees it; once
//! closed, it pins the runtime, counts, and checks itself.
//!
//! The runtime is STOPPED by whichever thread first sees every spawned task
//! counted as done while shutting down: an idle worker (after its sleep
//! fence), shutdown itself, or an outside thread that finished a task after
//! the close (after a fence of its own). The fences make it impossible for
//! all of them to miss the last completion.
//!
//! STOPPED means no task is live and none can start. Worker threads keep
//! serving non-task jobs (`join`, `scope`) until the `Runtime` is dropped,
//! which joins them.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_deque::Injector;

use crate::deque::{Stealer, Worker};
use crate::lanes::{Lanes, OwnLane};
use crate::registry::Registry;
use crate::sleep::Sleep;
use crate::stats::{Counter, Counters, Stats};
use crate::task::future::Async;
use crate::task::raw;
use crate::task::{Body, Once, Task, TaskRef};
use crate::worker::{self, JobRef, WorkerThread};

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CANCELLING: u8 = 2;
const STOPPED: u8 = 3;

/// Task ids: process-wide, so they are unique across runtimes and increase
/// in spawn order. Starts at 1: 0 is never an id.
///
/// API.md's order across threads needs one counter that every spawn
/// writes, and when two workers spawn at once (fork-join through handles,
/// nested) its cache line travels between their CPUs at every spawn: a
/// per-thread counter in its place (a measuring hack that breaks the order)
/// ran C fib at 35.7-36.2 ns a task instead of 41.3-41.9, nested C at
/// 39.6-39.9 instead of 47-50 (at `38dd155`). So
/// [`spawn_body`](Shared::spawn_body) asks for the line
/// ([`prefetch_next_id`]) before it allocates the task, and takes the id
/// after, so that the line travels while the cell is allocated.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The next task id.
fn next_id() -> u64 {
    // Relaxed: only uniqueness and per-thread order matter, and the
    // spawn itself publishes the id to any other thread. (A spawn that
    // happens before another, through any synchronization, takes its id
    // first in the counter's modification order: coherence.)
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Asks for [`NEXT_ID`]'s cache line in a writable state, ahead of the
/// `fetch_add`: a hint (`prefetchw`) that does nothing else. Side by side
/// (old and new libwsrt.so alternating, `wsrt_bench fib 1 10 30` and
/// `nested 1 10 1000 500`, medians of 10 runs, three rounds): fib C
/// 43.5-46.8 -> 38.5-39.4 ns a task; nested C 48.0 -> 42.6 with the vCPUs
/// near, 64.7-64.8 -> 59.7-62.8 far apart.
///
/// Every x86-64 CPU runs `prefetchw`: AMD's since the first, Intel's since
/// Broadwell, and earlier ones as a no-op (Windows 8.1 requires it).
/// Elsewhere this does nothing.
#[inline(always)]
fn prefetch_next_id() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetchw` reads and writes no memory (a cache hint), cannot
    // fault, and touches neither the stack nor the flags.
    unsafe {
        std::arch::asm!(
            "prefetchw [{0}]",
            in(reg) NEXT_ID.as_ptr(),
            options(nostack, preserves_flags, readonly)
        );
    }
}

/// How [`Handle::shutdown`] treats tasks that are not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Refuse new spawns from outside, let every task finish.
    Drain,
    /// Refuse new spawns, cancel every pending or suspended task, request
    /// cancellation of running ones, then wait for them.
    Cancel,
}

/// Errors of runtime-level operations.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The runtime is shutting down or shut down.
    Shutdown,
    /// The call would wait for the very worker it runs on.
    WouldDeadlock,
    /// An invalid argument (e.g. zero workers after resolution).
    InvalidArgument(&'static str),
    /// The OS refused to start a worker thread.
    Spawn(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shutdown => f.write_str("runtime is shutting down"),
            Error::WouldDeadlock => f.write_str("operation would deadlock on the calling worker"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// State shared by the runtime, its workers and its tasks.
pub(crate) struct Shared {
    pub(crate) injector: Injector<JobRef>,
    /// Queues of the threads outside the pool that spawn (`lanes.rs`).
    pub(crate) lanes: Arc<Lanes>,
    pub(crate) stealers: Box<[Stealer<JobRef>]>,
    pub(crate) sleep: Sleep,
    pub(crate) registry: Registry,
    pub(crate) counters: Counters,
    mode: AtomicU8,
    /// Set when the `Runtime` is dropped: idle workers exit.
    exiting: AtomicBool,
    stopped: Mutex<bool>,
    stopped_cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    pub(crate) fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }

    pub(crate) fn is_cancelling(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == CANCELLING
    }

    /// The `Runtime` was dropped and no task is live: workers may exit.
    pub(crate) fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire) && self.mode() == STOPPED
    }

    pub(crate) fn is_own_worker(&self) -> bool {
        WorkerThread::current_of(self).is_some()
    }

    /// Counts an event; `here` is `WorkerThread::current_of(self)`, which
    /// callers look up once per task (a thread-local access is a call in
    /// `libwsrt.so`).
    pub(crate) fn count_at(&self, here: Option<&WorkerThread>, c: Counter) {
        match here {
            Some(w) => self.counters.add_owned(w.index, c),
            None => self.counters.add_external(c),
        }
    }

    /// Counts a rare event on a thread that has not looked itself up.
    pub(crate) fn count(&self, c: Counter) {
        self.count_at(WorkerThread::current_of(self), c);
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self.lanes.has_work()
            || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Queues a job: on this worker's own deque when called from one (unless
    /// `fifo`, used for yields so other work runs first: then the
    /// injector); from outside the pool on the calling thread's lane, or
    /// the injector if it has none.
    pub(crate) fn schedule(&self, job: JobRef, fifo: bool) {
        let (here, lane) = worker::with_here(|h| (h.worker_of(self), h.lane()));
        self.schedule_at(here, lane, job, fifo);
    }

    /// [`schedule`](Self::schedule) with `here` (and, outside the pool,
    /// the thread's noted lane) already looked up.
    #[inline]
    fn schedule_at(
        &self,
        here: Option<&WorkerThread>,
        lane: Option<OwnLane>,
        job: JobRef,
        fifo: bool,
    ) {
        match here {
            Some(w) if !fifo => w.push(job),
            Some(_) => {
                self.injector.push(job);
                self.sleep.notify_from_worker();
            }
            None => {
                if let Err(job) = self.lanes.push(job, lane) {
                    self.injector.push(job);
                }
                self.sleep.notify_one();
            }
        }
    }

    /// After a task was finished outside the pool once shutdown began, or
    /// by shutdown itself.
    pub(crate) fn after_external_completion(&self) {
        fence(Ordering::SeqCst);
        self.check_quiescent();
    }

    /// While shutting down: stop if every spawned task is done. Callers
    /// issue a `SeqCst` fence after their own counts (module docs).
    pub(crate) fn check_quiescent(&self) {
        let mode = self.mode();
        if (mode == DRAINING || mode == CANCELLING) && self.counters.all_done(&self.registry) {
            self.stop();
        }
    }

    fn stop(&self) {
        if self.mode.swap(STOPPED, Ordering::SeqCst) == STOPPED {
            return;
        }
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stopped_cv.notify_all();
        self.sleep.notify_all();
    }

    /// Admits a spawn from one of this runtime's workers and counts it.
    /// False: refused (and not counted). Spawns from outside are admitted
    /// and counted by the registry (`insert_outside`).
    fn admit(&self, w: &WorkerThread) -> bool {
        let mode = self.mode();
        if mode == RUNNING || mode == DRAINING {
            self.counters.add_owned(w.index, Counter::Spawned);
            true
        } else {
            false
        }
    }

    /// Spawns a task; with `handle`, returns a handle to it. On refusal the
    /// body comes back untouched.
    pub(crate) fn spawn_body<B: Body>(
        self: &Arc<Self>,
        body: B,
        tag: B::Tag,
        handle: bool,
        name: Option<&str>,
    ) -> Result<Option<TaskRef>, B> {
        prefetch_next_id();
        // One thread-local look-up for the worker and, outside the pool,
        // the thread's lane (`lanes::OwnLane`).
        let (here, lane) = worker::with_here(|h| (h.worker_of(self), h.lane()));
        if here.is_some_and(|w| !self.admit(w)) {
            return Err(body);
        }
        let (rt, refs) = (Arc::as_ptr(self), 1 + u64::from(handle));
        let ptr = match here {
            // Listed in the worker's own shard, which does not depend on the
            // id: allocate first, then take the id (see `NEXT_ID`).
            Some(w) => {
                let ptr = raw::allocate(w.here().heap(), body, tag, 0, rt, refs, w.shard);
                // SAFETY: just allocated: nobody else can see it yet.
                unsafe { raw::set_id(ptr, next_id()) };
                ptr
            }
            // Spread over the outside shards by id.
            None => {
                let id = next_id();
                let shard = self.registry.outside_shard(id);
                raw::allocate(None, body, tag, id, rt, refs, shard)
            }
        };
        // SAFETY: just allocated; we hold its references.
        let header = unsafe { ptr.as_ref() };
        if let Some(name) = name {
            header.extras.set_name(name);
        }
        if here.is_some() {
            // SAFETY: a worker lists its spawns in its own shard (above).
            unsafe { self.registry.insert(header) };
        } else if !self.registry.insert_outside(header) {
            // SAFETY: neither listed nor queued: every reference is ours.
            return Err(unsafe { raw::unspawn::<B>(ptr) });
        }
        let task = handle.then(|| {
            // SAFETY: one of the initial references is the handle's.
            unsafe { TaskRef::from_raw(ptr) }
        });
        self.schedule_at(here, lane, JobRef::task(ptr), false);
        Ok(task)
    }

    fn shutdown(&self, mode: ShutdownMode) -> Result<(), Error> {
        if self.is_own_worker() {
            return Err(Error::WouldDeadlock);
        }
        let target = match mode {
            ShutdownMode::Drain => DRAINING,
            ShutdownMode::Cancel => CANCELLING,
        };
        // Outside spawns are refused from here on, outside cancels check.
        self.registry.close();
        // Forward only; STOPPED stays STOPPED.
        let _ = self
            .mode
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                (m < target).then_some(target)
            });
        fence(Ordering::SeqCst);
        if self.mode() == CANCELLING {
            for task in self.registry.live_tasks() {
                // Pending and suspended tasks end now; running ones are asked.
                let _ = task.cancel();
            }
        }
        self.sleep.notify_all();
        self.after_external_completion();
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            stopped = self
                .stopped_cv
                .wait(stopped)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }
}

/// Configures and starts a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    workers: Option<usize>,
    thread_name: Option<String>,
}

impl Builder {
    /// Number of worker threads; 0 or unset means one per CPU.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Prefix of worker thread names (default `wsrt-worker`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = Some(name.into());
        self
    }

    /// Starts the worker threads.
    pub fn build(self) -> Result<Runtime, Error> {
        let n = match self.workers {
            None | Some(0) => num_cpus::get().max(1),
            Some(n) => n,
        };
        if n > 4096 {
            return Err(Error::InvalidArgument("more than 4096 workers"));
        }
        let locals: Vec<Worker<JobRef>> = (0..n).map(|_| Worker::new_lifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            lanes: Lanes::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleep: Sleep::new(n),
            registry: Registry::new(n),
            counters: Counters::new(n),
            mode: AtomicU8::new(RUNNING),
            exiting: AtomicBool::new(false),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            threads: Mutex::new(Vec::with_capacity(n)),
        });
        let prefix = self.thread_name.as_deref().unwrap_or("wsrt-worker");
        let runtime = Runtime {
            handle: Handle {
                shared: shared.clone(),
            },
        };
        for (index, local) in locals.into_iter().enumerate() {
            let worker = WorkerThread::new(index, local, shared.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{prefix}-{index}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(thread) => shared
                    .threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(thread),
                // Dropping `runtime` shuts down and joins the ones started.
                Err(e) => return Err(Error::Spawn(e)),
            }
        }
        Ok(runtime)
    }
}

/// A cloneable handle to a runtime: spawn, stats, shutdown. It keeps the
/// runtime's shared state alive but not its threads; spawning through it
/// after shutdown is refused.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// The runtime of the worker thread this is called on, if any.
    pub fn current() -> Option<Handle> {
        WorkerThread::current().map(|w| Handle {
            shared: w.shared.clone(),
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
        spawn_on(&self.shared, f)
    }

    /// Spawns `f`, or gives it back if the runtime is shutting down.
    pub fn try_spawn<F, T>(&self, f: F) -> Result<Task<T>, F>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.shared.spawn_body(Once(Some(f)), (), true, None) {
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
        match self.shared.spawn_body(Async(future), (), true, None) {
            // SAFETY: the body's output type is `F::Output`.
            Ok(Some(raw)) => unsafe { Task::from_task_ref(raw) },
            Ok(None) => unreachable!("asked for a handle"),
            Err(refused) => {
                drop(refused);
                cancelled_task::<F::Output>(&self.shared)
            }
        }
    }

    /// Spawns `f` without a handle (the cheapest spawn). Returns false, and
    /// drops `f`, if the runtime is shutting down.
    pub fn spawn_detached<F>(&self, f: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .spawn_body(Once(Some(f)), (), false, None)
            .is_ok()
    }

    /// Counters since start; exact once the runtime is shut down.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(
            self.shared.workers(),
            &self.shared.registry,
            self.shared.sleep.steered_wakes(),
        )
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.workers()
    }

    /// Handles to every task that is not done (asyncio `all_tasks()`).
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.shared.registry.live_tasks()
    }

    /// Shuts the runtime down and waits until no task is live. Idempotent;
    /// `Cancel` after `Drain` upgrades. From one of its own workers it does
    /// nothing and returns [`Error::WouldDeadlock`].
    pub fn shutdown(&self, mode: ShutdownMode) -> Result<(), Error> {
        self.shared.shutdown(mode)
    }

    /// True once shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        self.shared.mode() != RUNNING
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
        crate::join::join_in(&self.shared, a, b)
    }

    /// Scoped spawns that may borrow from the caller: see [`crate::Scope`].
    /// Through a handle whose `Runtime` was dropped, they run on the caller.
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&crate::Scope<'scope>) -> R,
    {
        crate::scope::scope_in(&self.shared, op)
    }
}

/// [`Handle::spawn`] on a runtime the caller only borrows: `crate::spawn`
/// from a worker uses its worker's runtime without cloning the `Arc`, whose
/// count every worker would otherwise write at every spawn.
pub(crate) fn spawn_on<F, T>(shared: &Arc<Shared>, f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match shared.spawn_body(Once(Some(f)), (), true, None) {
        // SAFETY: the body's output type is `T`.
        Ok(Some(raw)) => unsafe { Task::from_task_ref(raw) },
        Ok(None) => unreachable!("asked for a handle"),
        Err(refused) => {
            drop(refused);
            cancelled_task::<T>(shared)
        }
    }
}

/// A task that was refused at spawn: CANCELLED, never ran, in no registry.
/// Its runtime pointer is never dereferenced (the task is done).
fn cancelled_task<T: Send + 'static>(shared: &Arc<Shared>) -> Task<T> {
    let body: Once<fn() -> T> = Once(None);
    let ptr = raw::allocate(None, body, (), next_id(), Arc::as_ptr(shared), 1, 0);
    // SAFETY: we hold the only reference, and the body's output type is `T`.
    unsafe {
        raw::cancel_unscheduled(ptr);
        Task::from_task_ref(TaskRef::from_raw(ptr))
    }
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
        let shared = &self.handle.shared;
        let on_own_worker = shared.is_own_worker();
        if !on_own_worker {
            let _ = shared.shutdown(ShutdownMode::Drain);
        } else {
            // Cannot wait for ourselves: start the drain, let it finish on
            // its own, and leave the threads to exit when idle.
            let _ = shared
                .mode
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                    (m < DRAINING).then_some(DRAINING)
                });
        }
        shared.exiting.store(true, Ordering::Release);
        shared.sleep.notify_all();
        let threads =
            std::mem::take(&mut *shared.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if !on_own_worker {
            for thread in threads {
                let _ = thread.join();
            }
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
