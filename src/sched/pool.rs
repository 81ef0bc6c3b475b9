//! A pool: the state its workers, its runtime and its tasks share — the
//! queues (workers' deques, the lanes of threads outside the pool, the
//! injector), the sleepers, the live-task list and the counters — and the
//! paths that queue work on it: spawning and scheduling.

use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

use crossbeam_deque::Injector;
use crossbeam_utils::CachePadded;

use super::context;
use super::fork;
use super::group::GroupCore;
use super::harness;
use super::job::JobRef;
use super::lanes::{Lanes, OwnLane};
use super::shutdown::RUNNING;
use super::sleep::Sleep;
use super::stats::{Counter, Counters, Who};
use super::timer::Timer;
use super::worker::WorkerThread;
use crate::sync::deque::{Stealer, Worker};
use crate::task::list::TaskList;
use crate::task::raw::{self, Header, Spawn};
use crate::task::state::SpawnKind;
use crate::task::{Body, Once, Task, TaskRef};

/// What a worker thread calls with its index when it starts (before its
/// first job) or stops (after its last).
pub(crate) type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;

/// How a pool is set up (`runtime::Builder` fills it).
#[derive(Clone, Default)]
pub(crate) struct PoolOptions {
    /// Wake a worker off its waker's CPU (`placement.rs`).
    pub(crate) steer_wakeups: bool,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    /// The prefix of its threads' names.
    pub(crate) thread_name: String,
}

/// Where a spawn goes, beyond its pool.
#[derive(Clone, Copy, Default)]
pub(crate) struct Into<'a> {
    /// Its group; `None`: the spawning task's, if it runs on this pool.
    pub(crate) group: Option<&'a Arc<GroupCore>>,
    /// Its group's cancel leaves it alone.
    pub(crate) shielded: bool,
}

/// State shared by a runtime, its workers and its tasks.
pub(crate) struct Pool {
    pub(crate) injector: Injector<JobRef>,
    /// Queues of the threads outside the pool that spawn (`lanes.rs`).
    pub(crate) lanes: Arc<Lanes>,
    pub(crate) stealers: Box<[Stealer<JobRef>]>,
    pub(crate) sleep: Sleep,
    /// Every task that is not done.
    pub(crate) tasks: TaskList,
    pub(crate) counters: Counters,
    /// RUNNING, DRAINING, CANCELLING or STOPPED (`shutdown.rs`).
    pub(super) mode: AtomicU8,
    /// Set when the `Runtime` is dropped: idle workers exit.
    pub(super) exiting: AtomicBool,
    pub(super) stopped: Mutex<bool>,
    pub(super) stopped_cv: Condvar,
    /// The worker threads, joined when the `Runtime` is dropped.
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) options: PoolOptions,
    /// The process's fork count when the pool started (`fork.rs`).
    forks: u64,
    /// Sleeping tasks and group deadlines (`timer.rs`).
    pub(crate) timer: Arc<Timer>,
    /// On lines of its own: group waits write it, and the pool's mode and
    /// its list's and counts' pointers are read by every spawn and run.
    group_waits: CachePadded<GroupWaits>,
    /// Groups no handle holds any more, kept until their tasks are done
    /// (`group.rs`, "Lifetime").
    orphans: Mutex<Vec<Arc<GroupCore>>>,
}

/// The threads in group waits (`notify_group_waiters`).
struct GroupWaits {
    /// Threads in a group wait now.
    waiters: AtomicUsize,
    /// A parked group waiter asks for a wake-up: the next grouped end
    /// takes the flag and wakes the parked waiters, the ends after it only
    /// load it (`park_for_group`).
    wake_wanted: AtomicBool,
    /// The group waiters that are parked.
    parked: Mutex<Vec<Thread>>,
}

impl Pool {
    /// A pool of `n` workers, and the workers, each to run on a thread of
    /// its own ([`WorkerThread::run`]).
    pub(crate) fn new(n: usize, options: PoolOptions) -> (Arc<Pool>, Vec<WorkerThread>) {
        fork::watch_forks();
        let locals: Vec<Worker<JobRef>> = (0..n).map(|_| Worker::new_lifo()).collect();
        let pool = Arc::new(Pool {
            injector: Injector::new(),
            lanes: Lanes::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleep: Sleep::new(n, options.steer_wakeups),
            tasks: TaskList::new(n),
            counters: Counters::new(n),
            mode: AtomicU8::new(RUNNING),
            exiting: AtomicBool::new(false),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            threads: Mutex::new(Vec::with_capacity(n)),
            options,
            forks: fork::forks(),
            timer: Arc::new(Timer::default()),
            group_waits: CachePadded::new(GroupWaits {
                waiters: AtomicUsize::new(0),
                wake_wanted: AtomicBool::new(false),
                parked: Mutex::new(Vec::new()),
            }),
            orphans: Mutex::new(Vec::new()),
        });
        let workers = locals
            .into_iter()
            .enumerate()
            .map(|(index, local)| WorkerThread::new(index, local, pool.clone()))
            .collect();
        (pool, workers)
    }

    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    pub(crate) fn is_own_worker(&self) -> bool {
        WorkerThread::current_of(self).is_some()
    }

    /// This thread's worker, if it is one of this pool's.
    pub(crate) fn own_worker(&self) -> Option<&'static WorkerThread> {
        WorkerThread::current_of(self)
    }

    /// The lane this thread claimed on this pool, if it has one.
    pub(crate) fn lane_of_this_thread(&self) -> Option<usize> {
        context::with_here(|h| h.lane()).and_then(|l| self.lanes.index_of(l))
    }

    /// True if a yield on this thread goes on its own deque rather than
    /// behind other work: in an isolated wait, which takes nothing from
    /// elsewhere (`wait.rs`).
    pub(crate) fn yields_stay_local(&self) -> bool {
        context::with_here(|h| h.isolation() != 0)
    }

    /// The timer, for its thread.
    pub(crate) fn timer_handle(&self) -> Arc<Timer> {
        self.timer.clone()
    }

    /// A thread begins a group wait: ends of grouped tasks wake it from now
    /// on. `SeqCst`: against `notify_group_waiters`' load (`group.rs`).
    pub(crate) fn enter_group_wait(&self) {
        self.group_waits.waiters.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave_group_wait(&self) {
        self.group_waits.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Parks this thread (in a group wait) until a grouped task ends, or
    /// `deadline`, unless `done()` is already true once it is listed.
    pub(crate) fn park_for_group(&self, done: impl Fn() -> bool, deadline: Option<Instant>) {
        lock(&self.group_waits.parked).push(std::thread::current());
        // Store-then-load against an end (`notify_group_waiters`): either
        // the finisher sees the flag and wakes us, or `done()` sees its
        // end.
        self.group_waits.wake_wanted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !done() {
            match deadline {
                None => std::thread::park(),
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
        let me = std::thread::current().id();
        let mut parked = lock(&self.group_waits.parked);
        if let Some(i) = parked.iter().position(|t| t.id() == me) {
            parked.swap_remove(i);
        }
    }

    /// After a grouped task's end was counted (`SeqCst`): wakes the threads
    /// parked in group waits if one asked since the last wake-up. One load
    /// when nobody waits, two while a woken waiter has not parked again:
    /// the ends of a large group do not each take the lock.
    pub(crate) fn notify_group_waiters(&self) {
        if self.group_waits.waiters.load(Ordering::SeqCst) != 0
            && self.group_waits.wake_wanted.load(Ordering::SeqCst)
            && self.group_waits.wake_wanted.swap(false, Ordering::SeqCst)
        {
            for thread in lock(&self.group_waits.parked).iter() {
                thread.unpark();
            }
        }
    }

    /// Keeps a group no handle holds any more until its tasks are done.
    pub(crate) fn adopt_orphan(&self, group: Arc<GroupCore>) {
        lock(&self.orphans).push(group);
        self.reap_orphans();
    }

    /// Lets go of the orphaned groups whose tasks are all done.
    pub(crate) fn reap_orphans(&self) {
        let reaped: Vec<Arc<GroupCore>> = {
            let mut orphans = lock(&self.orphans);
            if orphans.is_empty() {
                return;
            }
            let (quiet, live) = std::mem::take(&mut *orphans)
                .into_iter()
                .partition(|g| g.is_quiet());
            *orphans = live;
            quiet
        };
        // Dropped outside the lock: a group's drop may drop its parent.
        drop(reaped);
    }

    /// The runtime is gone and no task is live: every orphan goes.
    pub(crate) fn drop_orphans(&self) {
        let orphans = std::mem::take(&mut *lock(&self.orphans));
        drop(orphans);
    }

    /// True in a child process that inherited this pool from its parent
    /// by `fork()`: its workers do not exist here (`fork.rs`).
    #[inline]
    pub(crate) fn is_forked(&self) -> bool {
        fork::forks() != self.forks
    }

    /// Counts an event; `here` is `WorkerThread::current_of(self)`, which
    /// callers look up once per task (a thread-local access is a call in
    /// `libwsrt.so`).
    #[inline]
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
        let (here, lane) = context::with_here(|h| (h.worker_of(self), h.lane()));
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

    /// The group a spawn joins: the one asked for, else the spawning
    /// task's (`current`) if that runs on this pool; null for none.
    #[inline]
    fn group_of_spawn(&self, into: &Into<'_>, current: *const GroupCore) -> *const GroupCore {
        if let Some(group) = into.group {
            return Arc::as_ptr(group);
        }
        if current.is_null() {
            return ptr::null();
        }
        // SAFETY: the running task's group is alive while it runs
        // (`harness.rs`), and this thread runs it.
        let current_pool = unsafe { &(*current).pool };
        if ptr::eq(Arc::as_ptr(current_pool), self) {
            current
        } else {
            ptr::null()
        }
    }

    /// Spawns a task; with `handle`, returns a handle to it. On refusal
    /// (shutdown) the body comes back untouched.
    pub(crate) fn spawn_body<B: Body>(
        self: &Arc<Self>,
        body: B,
        tag: B::Tag,
        handle: bool,
        name: Option<&str>,
        into: Into<'_>,
    ) -> Result<Option<TaskRef>, B> {
        // One thread-local look-up for the worker, the id, the spawning
        // task's group and isolation, and, outside the pool, the thread's
        // lane (`lanes::OwnLane`).
        let (here, lane, id, current_group, isolation) = context::with_here(|h| {
            let here = h.worker_of(self);
            let (lane, isolation) = match here {
                Some(_) => (None, h.isolation()),
                None => (h.lane(), 0),
            };
            (here, lane, h.next_id(), h.group(), isolation)
        });
        match here {
            Some(w) if !self.admit(w) => return Err(body),
            None if self.is_forked() => return Err(body),
            _ => {}
        }
        let shard = match here {
            // Listed in the worker's own shard.
            Some(w) => w.shard,
            // Spread over the outside shards by id.
            None => self.tasks.outside_shard(id),
        };
        let heap = here.and_then(|w| w.here().heap());
        let refs = 1 + u64::from(handle);
        // A spawn in no group and no isolated wait, the common case, builds
        // its task from constants (its flags and links fold away in
        // `allocate`); the other kinds work them out.
        let plain = into.group.is_none() && current_group.is_null() && isolation == 0;
        let (ptr, group) = if plain {
            let spawn = Spawn {
                id,
                owner: Arc::as_ptr(self).cast(),
                refs,
                shard,
                kind: SpawnKind::default(),
                isolation: 0,
            };
            (harness::allocate(heap, body, tag, spawn), ptr::null())
        } else {
            let group = self.group_of_spawn(&into, current_group);
            // Only a task in a worker's table has room for a tag (`raw::Next`).
            let isolation = if self.tasks.is_table(shard) {
                isolation
            } else {
                0
            };
            let spawn = Spawn {
                id,
                owner: if group.is_null() {
                    Arc::as_ptr(self).cast()
                } else {
                    group.cast()
                },
                refs,
                shard,
                kind: SpawnKind {
                    grouped: !group.is_null(),
                    shielded: into.shielded && !group.is_null(),
                    isolated: isolation != 0,
                },
                isolation,
            };
            (harness::allocate(heap, body, tag, spawn), group)
        };
        // SAFETY: just allocated; we hold its references.
        let header = unsafe { ptr.as_ref() };
        if let Some(name) = name {
            header.extras.set_name(name);
        }
        if here.is_some() {
            // SAFETY: a worker lists its spawns in its own shard (above).
            unsafe { self.tasks.insert(header) };
        } else if !self.tasks.insert_outside(header) {
            // SAFETY: neither listed nor queued: every reference is ours.
            return Err(unsafe { raw::unspawn::<B>(ptr) });
        }
        if !group.is_null() {
            // Admitted: counted in its group before it is queued, so before
            // it can end (its end is counted after).
            let who = match here {
                Some(w) => Who::Worker(w.index),
                None => lane
                    .and_then(|l| self.lanes.index_of(l))
                    .map_or(Who::Other, Who::Lane),
            };
            // SAFETY: the group is alive: a handle of the caller's, or the
            // running task's (above).
            unsafe { &*group }.count(who, Counter::Spawned);
        }
        let task = handle.then(|| {
            // SAFETY: one of the initial references is the handle's.
            unsafe { TaskRef::from_raw(ptr) }
        });
        self.schedule_at(here, lane, JobRef::task(ptr), false);
        Ok(task)
    }

    /// Spawns `body`, into `into`, with a handle. Refused (shutdown): a task
    /// already CANCELLED, the body dropped unrun.
    pub(crate) fn spawn_task<B: Body<Tag = ()>>(
        self: &Arc<Self>,
        body: B,
        into: Into<'_>,
    ) -> Task<B::Output> {
        match self.spawn_body(body, (), true, None, into) {
            // SAFETY: the body's output type is `B::Output`.
            Ok(Some(raw)) => unsafe { Task::from_task_ref(raw) },
            Ok(None) => unreachable!("asked for a handle"),
            Err(refused) => {
                drop(refused);
                let body: Once<fn() -> B::Output> = Once(None);
                // SAFETY: the body's output type is `B::Output`.
                unsafe { Task::from_task_ref(self.cancelled_task(body, ())) }
            }
        }
    }

    /// A task that was refused at spawn: CANCELLED, never ran, in no list.
    /// Its pool pointer is never dereferenced (the task is done).
    pub(crate) fn cancelled_task<B: Body>(self: &Arc<Self>, body: B, tag: B::Tag) -> TaskRef {
        let spawn = Spawn {
            id: context::with_here(context::Here::next_id),
            owner: Arc::as_ptr(self).cast(),
            refs: 1,
            shard: 0,
            kind: SpawnKind::default(),
            isolation: 0,
        };
        let ptr: NonNull<Header> = harness::allocate(None, body, tag, spawn);
        // SAFETY: we hold the only reference; never scheduled.
        unsafe {
            raw::cancel_unscheduled(ptr);
            TaskRef::from_raw(ptr)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing under these locks panics; poison cannot happen.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
