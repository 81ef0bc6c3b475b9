//! Worker threads: their state, their main loop, and what they keep for
//! later (finished tasks to unlist, freed cells).
//!
//! A worker runs jobs from its own deque (LIFO), steals when it runs dry
//! (`steal.rs`: the find order), spins briefly, then sleeps (`sleep.rs`).
//! `README.md` describes the find order, the lanes, the keep-behind rule
//! and the sleep handshake.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use super::context::{self, Here};
use super::harness;
use super::job::JobRef;
use super::lanes;
use super::pool::{Pool, ThreadHook};
use super::stats::Counter;
use super::tuning::UNLIST_BATCH;
use crate::sync::alloc::{FreeBatch, Heap};
use crate::sync::deque::Worker;
use crate::task::TaskRef;

pub(crate) struct WorkerThread {
    pub(crate) index: usize,
    /// The task-list shard that lists what this worker spawns.
    pub(crate) shard: usize,
    pub(super) local: Worker<JobRef>,
    pub(crate) pool: Arc<Pool>,
    pub(super) rng: Cell<u64>,
    /// Batches taken from the lanes in a row (`steal.rs`).
    pub(super) lane_streak: Cell<u32>,
    /// What this worker saw of each lane at its last look (`lanes::Looks`).
    pub(super) lane_looks: lanes::Looks,
    /// Tasks this worker ran to their end and has not yet taken off the
    /// task list, each with the scheduler's reference (`unlist_finished`).
    finished: RefCell<Vec<TaskRef>>,
    /// Tasks this worker spawned, ran to their end and took off its own
    /// table, each with the scheduler's reference, which it drops once no
    /// walker of the table can reach them (`drop_retired`).
    retired: RefCell<Vec<TaskRef>>,
    /// The cells this worker freed and keeps for a while (`sync/alloc.rs`).
    pub(crate) frees: FreeBatch,
    /// Its thread's [`Here`], set when the thread starts (`run`).
    here: HerePtr,
    /// Counted in `Sleep`'s workers looking for work.
    looking: Cell<bool>,
}

/// A pointer to a thread's [`Here`], kept by that thread's worker.
struct HerePtr(Cell<*const Here>);

// SAFETY: null while the `WorkerThread` moves to its thread; set and used
// only there after (`WorkerThread::run`, `WorkerThread::here`).
unsafe impl Send for HerePtr {}

impl WorkerThread {
    pub(crate) fn new(index: usize, local: Worker<JobRef>, pool: Arc<Pool>) -> WorkerThread {
        WorkerThread {
            index,
            shard: pool.tasks.worker_shard(index),
            local,
            pool,
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            lane_streak: Cell::new(0),
            lane_looks: Default::default(),
            looking: Cell::new(false),
            finished: RefCell::new(Vec::with_capacity(UNLIST_BATCH)),
            retired: RefCell::new(Vec::with_capacity(UNLIST_BATCH)),
            frees: FreeBatch::new(),
            here: HerePtr(Cell::new(ptr::null())),
        }
    }

    /// Keeps a task this worker finished, with the scheduler's reference,
    /// until its batch is taken off the task list.
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

    /// Takes the finished tasks off the task list, one lock per shard, then
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
        self.pool.tasks.remove_finished(&mut batch);
        for task in batch.drain(..) {
            // SAFETY: the scheduler's reference, which the batch owned.
            unsafe { harness::drop_ref_at(task.into_raw(), Some(self)) };
        }
        let mut finished = self.finished.borrow_mut();
        if finished.capacity() == 0 {
            // Keep the allocation for the next batch.
            *finished = batch;
        }
    }

    /// Keeps the reference of a task this worker took off its own table
    /// (`TaskList::remove_own`) until no walker can reach the task.
    pub(crate) fn retire(&self, task: TaskRef) {
        let full = {
            let mut retired = self.retired.borrow_mut();
            retired.push(task);
            retired.len() >= UNLIST_BATCH
        };
        if full {
            self.drop_retired();
        }
    }

    /// Waits until no walker of this worker's table can reach the retired
    /// tasks (one fence for the batch), then drops their references. Runs
    /// when the batch is full, before the worker sleeps, and when it exits.
    fn drop_retired(&self) {
        // Out of the cell first: a drop may run user code (a closure's
        // captures), which may spawn and retire again.
        let mut batch = self.retired.take();
        if batch.is_empty() {
            return;
        }
        // SAFETY: this worker owns the table its retired tasks were in.
        unsafe { self.pool.tasks.wait_for_walkers(self.shard) };
        for task in batch.drain(..) {
            // SAFETY: the scheduler's reference, which the batch owned.
            unsafe { harness::drop_ref_at(task.into_raw(), Some(self)) };
        }
        let mut retired = self.retired.borrow_mut();
        if retired.capacity() == 0 {
            // Keep the allocation for the next batch.
            *retired = batch;
        }
    }

    /// Lets go of everything kept for later: finished tasks to unlist,
    /// retired tasks, freed cells. An idle or exiting worker keeps nothing.
    fn release_kept(&self) {
        self.unlist_finished();
        self.drop_retired();
        self.frees.flush();
    }

    /// The worker running on this thread, if any.
    #[inline]
    pub(crate) fn current() -> Option<&'static WorkerThread> {
        context::with_here(Here::worker)
    }

    /// This worker's thread's [`Here`], without a thread-local look-up.
    /// `run` sets it before any job runs; a thread-local without a
    /// destructor lives as long as its thread; and a `WorkerThread` is only
    /// reached on its own thread (through the thread-local, or by `run`
    /// itself).
    pub(crate) fn here(&self) -> &Here {
        // SAFETY: see above: set, alive, and used on its own thread.
        unsafe { &*self.here.0.get() }
    }

    /// The worker on this thread if it belongs to `pool`.
    pub(crate) fn current_of(pool: &Pool) -> Option<&'static WorkerThread> {
        context::with_here(|h| h.worker_of(pool))
    }

    /// Pushes a job on this worker's deque and wakes a sleeper to steal it.
    #[inline]
    pub(crate) fn push(&self, job: JobRef) {
        self.local.push(job);
        self.pool.sleep.notify_local();
    }

    /// Pushes the second half of a join, hidden from thieves
    /// (`sync::deque`): taking it back costs no fence. While a worker looks
    /// for work, the oldest hidden job is shown instead, and a sleeper
    /// woken for it: each join of a busy worker hands one out.
    #[inline]
    pub(crate) fn push_join(&self, job: JobRef) {
        self.local.push_hidden(job);
        if self.pool.sleep.looking() != 0 {
            self.share_oldest();
        }
    }

    #[cold]
    fn share_oldest(&self) {
        if self.local.show_oldest() {
            self.pool.sleep.notify_local();
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        self.local.pop()
    }

    /// This worker found nothing to run: it counts among the workers
    /// looking for work, for which busy workers show hidden jobs.
    pub(super) fn start_looking(&self) {
        if !self.looking.replace(true) {
            self.pool.sleep.start_looking();
        }
    }

    /// This worker found a job, or stops looking.
    #[inline]
    pub(super) fn stop_looking(&self) {
        if self.looking.get() {
            self.looking.set(false);
            self.pool.sleep.stop_looking();
        }
    }

    /// Parks this worker (`Sleep::sleep`) after letting go of what it
    /// kept for later.
    pub(super) fn sleep(&self, ready: impl Fn() -> bool, deadline: Option<std::time::Instant>) {
        self.release_kept();
        self.pool.sleep.sleep(self.index, ready, deadline);
    }

    /// The worker thread's body.
    pub(crate) fn run(self) {
        context::with_here(|h| {
            h.worker.set(&self);
            h.heap.set(Heap::this_thread());
            self.here.0.set(h);
        });
        self.pool.sleep.register(self.index);
        self.call_hook(self.pool.options.on_thread_start.as_ref());
        self.main_loop();
        // No task is live once the loop ends: every group kept for its
        // tasks goes (else a `Runtime` dropped on its own worker, which
        // joins nothing, would leave them holding the pool).
        self.pool.reap_orphans();
        self.release_kept();
        self.call_hook(self.pool.options.on_thread_stop.as_ref());
        context::with_here(|h| {
            h.heap.set(None);
            h.worker.set(ptr::null());
        });
    }

    /// Calls a thread hook with this worker's index; a panic in it is
    /// caught (the worker goes on) and counted as a callback panic.
    fn call_hook(&self, hook: Option<&ThreadHook>) {
        if let Some(hook) = hook {
            let index = self.index;
            if panic::catch_unwind(AssertUnwindSafe(|| hook(index))).is_err() {
                self.pool.counters.add_owned(index, Counter::CallbackPanics);
            }
        }
    }

    fn main_loop(&self) {
        let pool = &*self.pool;
        loop {
            if let Some(job) = self.find_work() {
                self.stop_looking();
                job.execute(self.here());
                continue;
            }
            if let Some(job) = self.spin() {
                self.stop_looking();
                job.execute(self.here());
                continue;
            }
            if pool.is_exiting() && !pool.has_work() {
                self.stop_looking();
                return;
            }
            let mode = pool.mode();
            self.sleep(
                || {
                    // After the sleep fence: our done counts are ordered
                    // before this read of everyone's (`shutdown.rs`).
                    pool.check_quiescent();
                    pool.has_work() || pool.mode() != mode || pool.is_exiting()
                },
                None,
            );
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
        let pool = rt.handle().pool.clone();
        let (send, recv) = mpsc::channel();
        let parent = rt.spawn({
            let pool = pool.clone();
            move || {
                let outside: Vec<crate::Task<u32>> = recv.recv().unwrap();
                let ids: Vec<u64> = outside.iter().map(|t| t.id()).collect();
                // Run here, by the helping joins, on the only worker.
                let sum: u32 = outside.into_iter().map(|t| t.join().unwrap()).sum();
                // Done and counted, off `all_tasks`, still in the batch.
                let live: Vec<u64> = pool.tasks.live_tasks().iter().map(|t| t.id()).collect();
                assert_eq!(live, vec![crate::current_task().unwrap().id()]);
                assert!(ids.iter().all(|id| !live.contains(id)));
                (sum, pool.tasks.listed())
            }
        });
        // Spawned from this thread: listed in an outside shard.
        send.send((0..3).map(|i| rt.spawn(move || i)).collect())
            .unwrap();
        assert_eq!(parent.join(), Ok((3, 4)));
        // Before it sleeps the worker unlists its batch (the parent too).
        pool.sleep.wait_for_sleepers(1);
        assert_eq!(pool.tasks.listed(), 0);
        rt.shutdown(crate::ShutdownMode::Drain).unwrap();
        assert_eq!(rt.stats().succeeded, 4);
    }
}

#[cfg(all(test, not(loom)))]
mod kept_tests {
    use crate::sched::worker::WorkerThread;
    use crate::Runtime;

    /// Tasks this worker retired and cells it freed, kept for later.
    fn kept() -> usize {
        let w = WorkerThread::current().expect("on a worker");
        w.retired.borrow().len() + w.frees.held()
    }

    #[test]
    fn a_worker_keeps_the_tasks_it_finished_until_it_sleeps() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let kept_by_children = rt.spawn(|| {
            let before = kept();
            // A marker first, then ten children whose handles go at once:
            // the helping join below runs the children (newest first) and
            // then the marker, on this worker, which spawned them all and
            // keeps the scheduler's reference of each of the eleven,
            // retired, for a batch.
            let marker = crate::spawn(|| 7);
            for _ in 0..10 {
                drop(crate::spawn(|| 1));
            }
            assert_eq!(marker.join(), Ok(7));
            kept() - before
        });
        assert_eq!(kept_by_children.join(), Ok(11));

        rt.handle().pool.sleep.wait_for_sleepers(1);
        // It let go of them before it slept (and woke up for this task).
        assert_eq!(rt.spawn(kept).join(), Ok(0));
    }
}
