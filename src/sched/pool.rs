//! A pool: the state its workers, its runtime and its tasks share — the
//! queues (workers' deques, the lanes of threads outside the pool, the
//! injector), the sleepers, the live-task list and the counters — and the
//! paths that queue work on it: spawning and scheduling.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_deque::Injector;

use super::context;
use super::fork;
use super::harness;
use super::job::JobRef;
use super::lanes::{Lanes, OwnLane};
use super::shutdown::RUNNING;
use super::sleep::Sleep;
use super::stats::{Counter, Counters};
use super::worker::WorkerThread;
use crate::sync::deque::{Stealer, Worker};
use crate::task::list::TaskList;
use crate::task::raw::{self, Header};
use crate::task::{Body, TaskRef};

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

    /// True in a child process that inherited this pool from its parent
    /// by `fork()`: its workers do not exist here (`fork.rs`).
    #[inline]
    pub(crate) fn is_forked(&self) -> bool {
        fork::forks() != self.forks
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

    /// Spawns a task; with `handle`, returns a handle to it. On refusal
    /// (shutdown) the body comes back untouched.
    pub(crate) fn spawn_body<B: Body>(
        self: &Arc<Self>,
        body: B,
        tag: B::Tag,
        handle: bool,
        name: Option<&str>,
    ) -> Result<Option<TaskRef>, B> {
        // One thread-local look-up for the worker, the id and, outside the
        // pool, the thread's lane (`lanes::OwnLane`).
        let (here, lane, id) = context::with_here(|h| (h.worker_of(self), h.lane(), h.next_id()));
        match here {
            Some(w) if !self.admit(w) => return Err(body),
            None if self.is_forked() => return Err(body),
            _ => {}
        }
        let refs = 1 + u64::from(handle);
        let ptr = match here {
            // Listed in the worker's own shard.
            Some(w) => harness::allocate(w.here().heap(), body, tag, id, self, refs, w.shard),
            // Spread over the outside shards by id.
            None => {
                let shard = self.tasks.outside_shard(id);
                harness::allocate(None, body, tag, id, self, refs, shard)
            }
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
        let task = handle.then(|| {
            // SAFETY: one of the initial references is the handle's.
            unsafe { TaskRef::from_raw(ptr) }
        });
        self.schedule_at(here, lane, JobRef::task(ptr), false);
        Ok(task)
    }

    /// A task that was refused at spawn: CANCELLED, never ran, in no list.
    /// Its pool pointer is never dereferenced (the task is done).
    pub(crate) fn cancelled_task<B: Body>(self: &Arc<Self>, body: B, tag: B::Tag) -> TaskRef {
        let id = context::with_here(context::Here::next_id);
        let ptr: NonNull<Header> = harness::allocate(None, body, tag, id, self, 1, 0);
        // SAFETY: we hold the only reference; never scheduled.
        unsafe {
            raw::cancel_unscheduled(ptr);
            TaskRef::from_raw(ptr)
        }
    }
}
