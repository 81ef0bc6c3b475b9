//! Worker threads: the find-work order, the main loop, and waiting by helping.
//!
//! Find order (crossbeam-deque's, with the lanes of threads outside the
//! pool, `lanes.rs`, beside the injector; the deques are our own,
//! `deque.rs`): own deque (LIFO) → the lanes,
//! then the global injector (`steal_batch_and_pop`; see `steal_outside`) →
//! other workers' deques, from a random victim, stealing half; repeated
//! while any source answered `Retry`. A worker that finds nothing spins
//! briefly (`spin`: a few microseconds, without yielding), then sleeps
//! (`sleep.rs`).
//!
//! A worker that must wait (a `join`, a task handle, a scope) keeps running
//! other jobs in the same order instead of blocking, spins briefly when
//! there is nothing to run (what it waits for is usually a stolen half that
//! ends within microseconds), and only then sleeps; whoever completes what
//! it waits for unparks it.
//!
//! # Not taking each task the moment it is queued
//!
//! A worker that found nothing to run leaves the lanes and the injector
//! alone for the first [`FIRST_LOOK_AFTER`] of its spin; other workers'
//! deques it watches throughout, so fork-join is unaffected. When a thread
//! outside the pool spawns in a loop, workers that look at once take every
//! task as soon as it is queued, one by one, while the spawner is still
//! writing the cache lines around it (the queue's tail and slots, the cells
//! it allocates next): each spawn then meets a worker on those lines. After
//! the pause the spawner has queued about one steal batch (32 tasks at
//! 60–100 ns a spawn), which the worker takes in one go, behind the
//! spawner. A sleeping worker is woken and looks at once: the pause is only
//! in the spin. Measured (`cargo run --release --example bench --only
//! spawn_wait,callbacks,detached,bursty,fib_cutoff`, two runs each,
//! alternating, without → with, after the bench ran each system in a
//! process of its own): spawn_wait 248–265 → 140–143 ns a task (Rust),
//! 244–251 → 138–139 (C); callbacks 342–373 → 157–161 (Rust), 353–359 →
//! 159–160 (C); detached and fib_cutoff no change beyond the noise;
//! bursty's CPU 0.080–0.083 → 0.085–0.106 cpu/wall (the price of the
//! pause; the full tables put rayon at 0.103–0.109, tokio 0.112–0.117).
//!
//! The same meeting happens without the pause when a worker keeps up: it
//! runs the batch it took, comes back and finds the few tasks the spawner
//! has just queued, and takes them while the spawner still writes their
//! neighbours (cells are 80–96 bytes: a task's line holds the end of the
//! one before; a done-callback added right after the spawn meets the
//! worker on it). So a worker that took its last batch from the lanes
//! (`lane_streak` > 0) leaves a lane alone, and the injector behind it,
//! while the lane holds at most [`lanes::LAG`] (128) tasks and its thread
//! pushed on it since the worker's last look: the workers stay that far
//! behind a thread that keeps spawning. A lane whose thread stopped
//! pushing (the end of a burst, a thread now waiting for its tasks) is
//! taken at once; any lane is taken after the worker's pause (`spin` and
//! `help_until` reset the streak) or a batch stolen from another worker,
//! and by a worker woken from sleep. The price is latency while a thread
//! keeps spawning more slowly than the workers run: its tasks wait for a
//! worker's pause ([`FIRST_LOOK_AFTER`]) where they were taken within a
//! batch; once it stops, or queues more than `LAG`, they go at once. Only
//! the newest task was left before; in one process, the two rules alternating run by run (`bench
//! --child callbacks`, a hack switching the limit; three processes, five
//! runs each): spawn_wait Rust 39.3–44.7 → 34.8–38.8 ns a task, callbacks
//! Rust 58.9–62.0 → 39.4–39.8. Leaving up to 32, 64, 128 or 256 tasks:
//! callbacks 44.8, 42.8, 40.5, 39.3. Without the "pushed since the last
//! look" condition the ends of bursty's bursts waited for the pause:
//! bursty CPU 0.056 → 0.072 cpu/wall (with it: 0.054–0.061). Side by side
//! (old and new library alternating, the order swapped every round, six
//! rounds): callbacks Rust 70.6 → 41.8 ns, C 64.3 → 52.0 (6 of 6);
//! spawn_wait Rust 62.0 → 40.9 (5 of 6), C level (46.8 → 46.4); detached,
//! bursty and wake-up latency level.

use std::cell::{Cell, RefCell};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal as InjectorSteal;
use crossbeam_utils::Backoff;

use crate::alloc::{FreeBatch, Heap};
use crate::deque::{self, Item, Steal, Worker};
use crate::lanes::{self, OwnLane};
use crate::runtime::Shared;
use crate::stats::Counter;
use crate::task::raw::{self, Header};
use crate::task::{Callback, TaskRef};

/// How long a worker that ran out of work leaves the lanes and the
/// injector alone (module docs): about what a spawning thread takes to
/// queue a batch.
const FIRST_LOOK_AFTER: Duration = Duration::from_micros(3);

/// How long a worker that ran out of work keeps looking everywhere after
/// [`FIRST_LOOK_AFTER`], before it sleeps. It spins without yielding:
/// crossbeam's `Backoff::snooze`, used here before, ended in four
/// `sched_yield` calls per idle spell, eight syscalls per burst of the
/// bursty workload for nothing a spin does not do (the next step is the
/// sleep, which gives the CPU away anyway). Side by side, six processes
/// each of `bench --child bursty wsrt_rust`: 0.065-0.075 -> 0.058-0.073
/// CPU s per wall s (medians of 5 runs per process); spawn_wait unchanged.
const SPIN_AFTER_LOOK: Duration = Duration::from_micros(3);

/// Batches a worker takes from the lanes in a row before it looks at the
/// injector first once (`steal_outside`).
const LANE_STREAK: u32 = 16;

/// Finished tasks a worker keeps before it takes them off the registry
/// together (`WorkerThread::unlist_finished`).
const UNLIST_BATCH: usize = 64;

/// The first word of every job (task header, stack job, scope job) points to
/// one of these, so a queued job is a thin pointer, not a (data, vtable)
/// pair: a deque slot is 8 bytes, an injector slot 8 plus crossbeam's own
/// state word.
#[repr(C)]
pub(crate) struct JobVtable {
    /// Runs the job; called once per push, with the running thread's
    /// [`Here`] (which the caller has at hand: no thread-local look-up).
    pub(crate) execute: unsafe fn(NonNull<()>, &Here),
}

/// A unit of work in a deque: a pointer to a job whose first word is a
/// `&'static JobVtable` (every job type is `repr(C)` with it first).
#[derive(Clone, Copy)]
pub(crate) struct JobRef(NonNull<&'static JobVtable>);

// SAFETY: every job type is safe to run on another thread (tasks and job
// closures are `Send`); the pointer is only used by `execute`.
unsafe impl Send for JobRef {}

impl JobRef {
    /// # Safety
    /// `job` must start with a `&'static JobVtable` whose `execute(job)` is
    /// sound to call exactly once, on any worker thread.
    pub(crate) unsafe fn new<J>(job: NonNull<J>) -> JobRef {
        JobRef(job.cast())
    }

    /// The job that runs a task; it owns one reference of the task.
    pub(crate) fn task(header: NonNull<Header>) -> JobRef {
        // SAFETY: a task header starts with its vtable, whose first field is
        // the `JobVtable` of `raw::run`, which consumes the scheduler
        // reference the caller hands over.
        unsafe { JobRef::new(header) }
    }

    pub(crate) fn is(&self, other: &JobRef) -> bool {
        self.0 == other.0
    }

    /// Runs the job on this thread, whose [`Here`] is `here`.
    pub(crate) fn execute(self, here: &Here) {
        // SAFETY: `new`'s contract: the job starts with its vtable pointer,
        // and a job is popped from a deque once.
        unsafe {
            let vtable = *self.0.as_ptr();
            (vtable.execute)(self.0.cast(), here)
        }
    }
}

impl Item for JobRef {
    fn into_raw(self) -> NonNull<()> {
        self.0.cast()
    }

    unsafe fn from_raw(ptr: NonNull<()>) -> JobRef {
        JobRef(ptr.cast())
    }
}

/// What this thread is to wsrt: the worker it is, the task it runs, the
/// task that task asked to await (`wsrt_await`), a worker's allocator heap
/// (`alloc::Heap`), and outside the pool the lane it spawns on
/// (`lanes::OwnLane`). One thread-local so that a path that needs more
/// than one pays one access: in libwsrt.so each access is a call to
/// `__tls_get_addr`.
///
/// `task` and `awaiting` are not neighbours: each run saves both and puts
/// them back with one 8-byte store each, and the compiler read two
/// neighbours with one 16-byte load, which the store buffer cannot serve
/// from two stores (a stall at every task run in fork-join).
#[repr(C)]
pub(crate) struct Here {
    task: Cell<Option<NonNull<Header>>>,
    worker: Cell<*const WorkerThread>,
    /// Owns one reference of the task (`TaskRef::into_raw`).
    awaiting: Cell<Option<NonNull<Header>>>,
    /// A worker's allocator heap, while it runs (`alloc::Heap`).
    heap: Cell<Option<Heap>>,
    /// Outside the pool: the lane this thread claimed on the runtime it
    /// spawned on last (`lanes::OwnLane`).
    lane: Cell<Option<OwnLane>>,
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

    /// The worker on this thread if it belongs to `shared`'s runtime.
    pub(crate) fn worker_of(&self, shared: &Shared) -> Option<&'static WorkerThread> {
        self.worker()
            .filter(|w| ptr::eq(Arc::as_ptr(&w.shared), shared))
    }

    pub(crate) fn lane(&self) -> Option<OwnLane> {
        self.lane.get()
    }

    pub(crate) fn set_lane(&self, lane: Option<OwnLane>) {
        self.lane.set(lane);
    }

    /// Runs `f` with `task` as what `current_task()` reports on this
    /// thread, then restores the previous one (also if `f` unwinds), and
    /// returns the task that `f` asked to await ([`set_awaiting`]), if any.
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
                    // SAFETY: `awaiting` owns a reference (`set_awaiting`);
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

/// Records that the task running on this thread asked to await `other`
/// (`wsrt_await`), replacing an earlier request of the same run.
pub(crate) fn set_awaiting(other: TaskRef) {
    let old = HERE.with(|h| h.awaiting.replace(Some(other.into_raw())));
    // SAFETY: `awaiting` owned that reference.
    drop(old.map(|p| unsafe { TaskRef::from_raw(p) }));
}

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

pub(crate) struct WorkerThread {
    pub(crate) index: usize,
    /// The registry shard that lists what this worker spawns.
    pub(crate) shard: usize,
    local: Worker<JobRef>,
    pub(crate) shared: Arc<Shared>,
    rng: Cell<u64>,
    /// Batches taken from the lanes in a row (`steal_outside`).
    lane_streak: Cell<u32>,
    /// What this worker saw of each lane at its last look (`lanes::Looks`).
    lane_looks: lanes::Looks,
    /// Tasks this worker ran to their end and has not yet taken off the
    /// registry, each with the scheduler's reference (`unlist_finished`).
    finished: RefCell<Vec<TaskRef>>,
    /// The cells this worker freed and keeps for a while (`alloc.rs`).
    pub(crate) frees: FreeBatch,
    /// Its thread's [`Here`], set when the thread starts (`run`).
    here: HerePtr,
}

/// A pointer to a thread's [`Here`], kept by that thread's worker.
struct HerePtr(Cell<*const Here>);

// SAFETY: null while the `WorkerThread` moves to its thread; set and used
// only there after (`WorkerThread::run`, `WorkerThread::here`).
unsafe impl Send for HerePtr {}

impl WorkerThread {
    pub(crate) fn new(index: usize, local: Worker<JobRef>, shared: Arc<Shared>) -> WorkerThread {
        WorkerThread {
            index,
            shard: shared.registry.worker_shard(index),
            local,
            shared,
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            lane_streak: Cell::new(0),
            lane_looks: Default::default(),
            finished: RefCell::new(Vec::with_capacity(UNLIST_BATCH)),
            frees: FreeBatch::new(),
            here: HerePtr(Cell::new(ptr::null())),
        }
    }

    /// Keeps a task this worker finished, with the scheduler's reference,
    /// until its batch is taken off the registry.
    pub(crate) fn defer_unlist(&self, task: TaskRef) {
        let full = {
            let mut finished = self.finished.borrow_mut();
            finished.push(task);
            finished.len() >= UNLIST_BATCH
        };
        if full {
            self.unlist_finished();
        }
    }

    /// Takes the finished tasks off the registry, one lock per shard, then
    /// drops their references. Runs when the batch is full, before the
    /// worker sleeps, and when it exits. Their ends were counted when they
    /// finished, and none holds an output whose drop runs user code
    /// (`Body::output_drop_observable`), so all this delays is when a done
    /// task leaves the list (`live_tasks` skips done tasks) and when its
    /// cell is freed if the worker's reference is the last.
    pub(crate) fn unlist_finished(&self) {
        // Out of the cell first, so that nothing below can find it
        // borrowed (the drops run no user code: see above).
        let mut batch = self.finished.take();
        if batch.is_empty() {
            return;
        }
        self.shared.registry.remove_finished(&mut batch);
        for task in batch.drain(..) {
            // SAFETY: the scheduler's reference, which the batch owned.
            unsafe { raw::drop_ref_at(task.into_raw(), Some(self)) };
        }
        let mut finished = self.finished.borrow_mut();
        if finished.capacity() == 0 {
            // Keep the allocation for the next batch.
            *finished = batch;
        }
    }

    /// The worker running on this thread, if any.
    pub(crate) fn current() -> Option<&'static WorkerThread> {
        HERE.with(Here::worker)
    }

    /// This worker's thread's [`Here`], without a thread-local look-up.
    /// `run` sets it before any job runs; a thread-local without a
    /// destructor lives as long as its thread; and a `WorkerThread` is only
    /// reached on its own thread (through `HERE`, or by `run` itself).
    pub(crate) fn here(&self) -> &Here {
        // SAFETY: see above: set, alive, and used on its own thread.
        unsafe { &*self.here.0.get() }
    }

    /// The worker on this thread if it belongs to `shared`'s runtime.
    pub(crate) fn current_of(shared: &Shared) -> Option<&'static WorkerThread> {
        HERE.with(|h| h.worker_of(shared))
    }

    /// Pushes a job on this worker's deque and wakes a sleeper to steal it.
    #[inline]
    pub(crate) fn push(&self, job: JobRef) {
        self.local.push(job);
        self.shared.sleep.notify_local();
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        self.local.pop()
    }

    fn next_victim(&self, n: usize) -> usize {
        // xorshift64*: cheap and good enough to spread victims.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n
    }

    fn find_work(&self) -> Option<JobRef> {
        self.local.pop().or_else(|| self.steal())
    }

    fn steal(&self) -> Option<JobRef> {
        self.steal_from(true)
    }

    /// [`steal`](Self::steal), from other workers' deques only unless
    /// `outside` (the lanes and the injector).
    fn steal_from(&self, outside: bool) -> Option<JobRef> {
        let shared = &*self.shared;
        loop {
            let mut retry = false;
            if outside {
                if let Some(job) = self.steal_outside(&mut retry) {
                    return Some(job);
                }
            }
            let n = shared.stealers.len();
            let start = self.next_victim(n);
            for i in 0..n {
                let victim = (start + i) % n;
                if victim == self.index {
                    continue;
                }
                match shared.stealers[victim].steal_batch_and_pop(&self.local) {
                    Steal::Success(job) => {
                        // The popped job plus the batch left in our deque.
                        let stolen = 1 + self.local.len() as u64;
                        shared
                            .counters
                            .add_owned_n(self.index, Counter::Steals, stolen);
                        if !shared.stealers[victim].is_empty() {
                            shared.sleep.notify_from_worker();
                        }
                        // The streak of lane batches ends: the tasks a lane
                        // keeps behind wait for no more than this batch.
                        self.lane_streak.set(0);
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Takes jobs queued from outside the pool: the lanes of threads that
    /// spawn first, then the injector, so that a yielded task (queued on the
    /// injector) runs after the spawns queued before it. After
    /// [`LANE_STREAK`] batches in a row from the lanes the injector goes
    /// first once: a thread that never stops spawning cannot starve it.
    fn steal_outside(&self, retry: &mut bool) -> Option<JobRef> {
        let mut left = false;
        if self.lane_streak.get() >= LANE_STREAK {
            self.lane_streak.set(0);
            return self
                .steal_injector(retry)
                .or_else(|| self.steal_lanes(retry, &mut left));
        }
        let job = self.steal_lanes(retry, &mut left);
        if job.is_some() || left {
            // Tasks a lane keeps behind for later still come before the
            // injector: nothing queued after them runs first.
            return job;
        }
        self.lane_streak.set(0);
        self.steal_injector(retry)
    }

    /// A batch from the lanes, counted in the streak. While the streak
    /// lasts, a lane still being pushed on that holds at most
    /// [`lanes::LAG`] tasks is left alone, and `left` set (module docs).
    fn steal_lanes(&self, retry: &mut bool, left: &mut bool) -> Option<JobRef> {
        let shared = &*self.shared;
        let keep_behind = self.lane_streak.get() > 0;
        match shared.lanes.steal_batch_and_pop(
            &self.local,
            self.index,
            keep_behind,
            &self.lane_looks,
            left,
        ) {
            Steal::Success(job) => {
                self.lane_streak.set(self.lane_streak.get() + 1);
                if shared.lanes.has_work() {
                    shared.sleep.notify_from_worker();
                }
                Some(job)
            }
            Steal::Retry => {
                *retry = true;
                None
            }
            Steal::Empty => None,
        }
    }

    /// A job from the injector, and up to half of the rest (at most
    /// [`deque::STEAL_LIMIT`] in all) onto this worker's deque, which pops
    /// them in the injector's order. One steal each: the injector's own
    /// batch steal fills a crossbeam `Worker` only.
    fn steal_injector(&self, retry: &mut bool) -> Option<JobRef> {
        let shared = &*self.shared;
        let first = match shared.injector.steal() {
            InjectorSteal::Success(job) => job,
            InjectorSteal::Retry => {
                *retry = true;
                return None;
            }
            InjectorSteal::Empty => return None,
        };
        let more = (shared.injector.len() / 2).min(deque::STEAL_LIMIT - 1);
        let mut batch = [first; deque::STEAL_LIMIT];
        let mut n = 0;
        while n < more {
            match shared.injector.steal() {
                InjectorSteal::Success(job) => batch[n] = job,
                _ => break,
            }
            n += 1;
        }
        for &job in batch[..n].iter().rev() {
            self.local.push(job);
        }
        if !shared.injector.is_empty() {
            shared.sleep.notify_from_worker();
        }
        Some(first)
    }

    /// Runs jobs until `done()` is true (or `deadline` passes; returns
    /// `done()`). With nothing to run it spins (crossbeam's `Backoff`,
    /// spinning then yielding) before it sleeps: a sleeping worker needs a
    /// futex wake-up, and on a busy machine the kernel may then queue it on
    /// the CPU of the thread that woke it. Before the first sleep it calls
    /// `prepare()`, which arranges for this thread to be unparked when
    /// `done()` becomes true and returns false if it already is.
    pub(crate) fn help_until(
        &self,
        done: impl Fn() -> bool,
        mut prepare: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let mut prepared = false;
        let backoff = Backoff::new();
        loop {
            if done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if let Some(job) = self.find_work() {
                job.execute(self.here());
                backoff.reset();
                continue;
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Nothing else to do: the tasks a lane keeps are fair game now.
            self.lane_streak.set(0);
            if !prepared {
                prepared = true;
                if !prepare() {
                    return true;
                }
                continue;
            }
            let shared = &*self.shared;
            self.sleep(|| done() || shared.has_work(), deadline);
        }
    }

    /// Parks this worker (`Sleep::sleep`) after freeing the cells it
    /// deferred (`alloc.rs`): an idle worker keeps no freed memory.
    fn sleep(&self, ready: impl Fn() -> bool, deadline: Option<Instant>) {
        self.unlist_finished();
        self.frees.flush();
        self.shared.sleep.sleep(self.index, ready, deadline);
    }

    /// `TaskRef::wait` on a worker: help until the task is done.
    pub(crate) fn wait_for_task(&self, task: &TaskRef, deadline: Option<Instant>) -> bool {
        let mut key = None;
        let done = self.help_until(
            || task.is_done(),
            || match task.add_callback(Callback::Unpark(std::thread::current())) {
                Ok(k) => {
                    key = Some(k);
                    true
                }
                Err(_) => false,
            },
            deadline,
        );
        if let (false, Some(key)) = (done, key) {
            task.remove_callback_key(key);
        }
        done
    }

    /// The worker thread's body.
    pub(crate) fn run(self) {
        HERE.with(|h| {
            h.worker.set(&self);
            h.heap.set(Heap::this_thread());
            self.here.0.set(h);
        });
        self.shared.sleep.register(self.index);
        self.main_loop();
        self.unlist_finished();
        self.frees.flush();
        HERE.with(|h| {
            h.heap.set(None);
            h.worker.set(ptr::null());
        });
    }

    fn main_loop(&self) {
        let shared = &*self.shared;
        loop {
            if let Some(job) = self.find_work() {
                job.execute(self.here());
                continue;
            }
            if let Some(job) = self.spin() {
                job.execute(self.here());
                continue;
            }
            if shared.is_exiting() && !shared.has_work() {
                return;
            }
            let mode = shared.mode();
            self.sleep(
                || {
                    // After the sleep fence: our done counts are ordered
                    // before this read of everyone's (see `runtime.rs`).
                    shared.check_quiescent();
                    shared.has_work() || shared.mode() != mode || shared.is_exiting()
                },
                None,
            );
        }
    }

    /// A short bounded spin before sleeping: work often arrives within
    /// microseconds of running out (fork-join, bursts). For the first
    /// [`FIRST_LOOK_AFTER`] it leaves the injector alone (module docs).
    fn spin(&self) -> Option<JobRef> {
        let injector_after = Instant::now() + FIRST_LOOK_AFTER;
        while Instant::now() < injector_after {
            if let Some(job) = self.steal_from(false) {
                return Some(job);
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
        // After the pause the tasks a lane keeps are taken too (module docs).
        self.lane_streak.set(0);
        let until = Instant::now() + SPIN_AFTER_LOOK;
        loop {
            if let Some(job) = self.steal() {
                return Some(job);
            }
            if Instant::now() >= until {
                return None;
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;

    use crate::Runtime;

    #[test]
    fn a_worker_unlists_the_tasks_of_other_threads_in_a_batch_before_it_sleeps() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let shared = rt.handle().shared.clone();
        let (send, recv) = mpsc::channel();
        let parent = rt.spawn({
            let shared = shared.clone();
            move || {
                let outside: Vec<crate::Task<u32>> = recv.recv().unwrap();
                let ids: Vec<u64> = outside.iter().map(|t| t.id()).collect();
                // Run here, by the helping joins, on the only worker.
                let sum: u32 = outside.into_iter().map(|t| t.join().unwrap()).sum();
                // Done and counted, off `all_tasks`, still in the batch.
                let live: Vec<u64> = shared
                    .registry
                    .live_tasks()
                    .iter()
                    .map(|t| t.id())
                    .collect();
                assert_eq!(live, vec![crate::current_task().unwrap().id()]);
                assert!(ids.iter().all(|id| !live.contains(id)));
                (sum, shared.registry.listed())
            }
        });
        // Spawned from this thread: listed in an outside shard.
        send.send((0..3).map(|i| rt.spawn(move || i)).collect())
            .unwrap();
        assert_eq!(parent.join(), Ok((3, 4)));
        // Before it sleeps the worker unlists its batch (the parent too).
        shared.sleep.wait_for_sleepers(1);
        assert_eq!(shared.registry.listed(), 0);
        rt.shutdown(crate::ShutdownMode::Drain).unwrap();
        assert_eq!(rt.stats().succeeded, 4);
    }
}
