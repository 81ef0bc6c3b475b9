//! Waiting: for a task, for any or all of several, for a group.
//!
//! Rules every wait keeps (`docs/api.md`, "Waiting"):
//!
//! - **A finite timeout is kept.** A wait with a deadline never runs a
//!   task: any task could outlast it. It parks (a worker first wakes a
//!   sleeper to take its own queued work) until what it waits for is done
//!   or the deadline passes.
//! - **A wait without a deadline helps.** On a worker it runs other jobs
//!   meanwhile (rayon's helping wait), so a task waiting for its children
//!   needs no second worker; elsewhere it parks, except that a wait for a
//!   cancelled group first ends the group's tasks still queued on its
//!   thread's lane ([`TakeBack`]).
//! - **Isolation.** An isolated wait for task `t` (and every wait nested
//!   in it, on its thread) runs only `t` and what was spawned inside the
//!   isolated wait: such tasks carry its isolation tag (oneTBB's
//!   `isolate`), such jobs their scope's. A task holding a lock while it
//!   waits is then never handed a task that takes the same lock (rayon
//!   #592). The isolated wait marks `t` (ISOLATION_ROOT): a run of `t`
//!   that starts later is isolated with the wait's tag wherever it runs,
//!   and a run already under way switches its task waits to the filter
//!   from the next job they take other than the task they wait for
//!   (`admit`; `run_if_newest` takes only that one). A group wait runs
//!   only tasks of the group and the groups below. A filtered wait takes
//!   jobs from every kind of queue each time it looks, runs what it may,
//!   and puts the others back on the injector, where other workers find
//!   them.
//! - **No wait for oneself.** A wait that can only finish after the task
//!   that waits is refused ([`Waited::OnItself`]).

use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::context::{self, Here};
use super::group::GroupCore;
use super::harness;
use super::job::JobRef;
use super::lanes::OwnLane;
use super::pool::Pool;
use super::stats::Who;
use super::tuning::STEAL_LIMIT;
use super::worker::WorkerThread;
use crate::sync::deque::Steal;
use crate::task::raw::{self, Header};
use crate::task::{id, Callback, TaskRef, Waited};

/// `TaskRef::wait_until` (the task vtable's `wait`): until `task` is done
/// or `deadline` passes. In an isolated wait's scope, the help is
/// filtered as the isolated wait's.
pub(crate) fn wait(task: &TaskRef, deadline: Option<Instant>) -> Waited {
    let caller = Caller::here();
    // The commonest wait: a task waits for the child it spawned last,
    // which no thief took. Nothing needs checking first: a queued task is
    // neither the waiting one nor one inherited through `fork()`, and the
    // awaited task is one that any isolation lets a wait run.
    if let (Some(worker), None) = (caller.worker, deadline) {
        if worker.run_if_newest(task) && task.is_done() {
            return Waited::Done;
        }
    }
    let isolation = match precheck(task, &caller) {
        Ok(isolation) => isolation,
        Err(waited) => return waited,
    };
    // The plain helping wait inline; the rest out of line, so that a
    // nested wait (one per level of a recursive kernel) keeps a small frame
    // on the stack.
    let done = match (caller.worker, deadline) {
        (Some(worker), None) if isolation == 0 => match worker.wait_for_task(task) {
            Helped::Done => true,
            Helped::Isolated(tag) => worker.wait_isolated_for(task, tag),
        },
        (Some(worker), None) => worker.wait_isolated_for(task, isolation),
        (worker, deadline) => block_until(task, worker, deadline),
    };
    waited(done)
}

/// `TaskRef::wait_isolated`: as [`wait`], running only `task` and what is
/// spawned inside this wait (module docs).
pub(crate) fn wait_isolated(task: &TaskRef, deadline: Option<Instant>) -> Waited {
    let caller = Caller::here();
    if let Err(waited) = precheck(task, &caller) {
        return waited;
    }
    let worker = caller.worker;
    // The task's own run is isolated with the wait's tag too, wherever it
    // runs: a helping wait of its own on another worker could otherwise be
    // handed a task that blocks on what this waiter holds, and this wait
    // would never end.
    task.header().state.mark_isolation_root();
    let done = match (worker, deadline) {
        (Some(worker), None) => {
            // The tag: the awaited task's id, unique in the process.
            let tag = task.id();
            let filter = Filter::Isolated {
                tag,
                tasks: &[task],
            };
            worker
                .here()
                .with_isolation(tag, || worker.help_filtered(&filter, || task.is_done()))
        }
        (worker, deadline) => block_until(task, worker, deadline),
    };
    waited(done)
}

fn waited(done: bool) -> Waited {
    if done {
        Waited::Done
    } else {
        Waited::TimedOut
    }
}

/// What a task wait needs to know of its thread, read with one
/// thread-local access (a call in `libwsrt.so`): its worker, if any, the
/// task it runs, and the isolation tag of its scope.
struct Caller {
    worker: Option<&'static WorkerThread>,
    current: Option<NonNull<Header>>,
    isolation: u64,
}

impl Caller {
    #[inline(always)]
    fn here() -> Caller {
        context::with_here(|h| Caller {
            worker: h.worker(),
            current: h.task(),
            isolation: h.isolation(),
        })
    }
}

/// What every task wait checks before it helps or parks: the task itself
/// waiting (`OnItself`), a task of a runtime inherited through `fork()`
/// (`Forked`). Else the wait's isolation tag (`Here::wait_isolation`).
// In line in every wait: LLVM would otherwise make it a call of its own.
#[inline(always)]
fn precheck(task: &TaskRef, caller: &Caller) -> Result<u64, Waited> {
    if caller.current == Some(task.as_ptr()) {
        return Err(Waited::OnItself);
    }
    if id::inherited(|| task.id()) && !task.is_done() {
        return Err(Waited::Forked);
    }
    if caller.isolation != 0 {
        return Ok(caller.isolation);
    }
    match caller.current {
        // SAFETY: the running task is alive while it runs on this thread.
        Some(current) if unsafe { current.as_ref() }.state.load().is_isolation_root() => {
            // An isolated wait began to wait for the running task: the
            // thread takes its tag for the rest of the run.
            Ok(context::with_here(Here::wait_isolation))
        }
        _ => Ok(0),
    }
}

/// Parks this thread until `task` is done or `deadline`, running nothing.
/// A worker first lets a sleeper take the jobs it has queued.
#[inline(never)]
pub(crate) fn block_until(
    task: &TaskRef,
    worker: Option<&WorkerThread>,
    deadline: Option<Instant>,
) -> bool {
    if task.is_done() {
        return true;
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return false;
    }
    if let Some(worker) = worker {
        worker.share_queued();
    }
    let key = match task.add_callback(Callback::Unpark(std::thread::current())) {
        Ok(key) => key,
        Err(_) => return true,
    };
    loop {
        if task.is_done() {
            return true;
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    task.remove_callback_key(key);
                    return task.is_done();
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// `wait_any`: until one of `tasks` is done (`Ok` with the first done, in
/// the order given) or `deadline`. On a worker without a deadline it
/// helps. `OnItself` if every one is the calling task.
pub(crate) fn wait_any(tasks: &[&TaskRef], deadline: Option<Instant>) -> Result<usize, Waited> {
    let first_done = || tasks.iter().position(|t| t.is_done());
    if let Some(i) = first_done() {
        return Ok(i);
    }
    let (worker, current, isolation) =
        context::with_here(|h| (h.worker(), h.task(), h.wait_isolation()));
    if !tasks.is_empty() && tasks.iter().all(|t| Some(t.as_ptr()) == current) {
        return Err(Waited::OnItself);
    }
    if tasks.iter().all(|t| id::inherited(|| t.id())) {
        return Err(Waited::Forked);
    }
    let done = || first_done().is_some();
    match (worker, deadline) {
        (Some(worker), None) if isolation == 0 => {
            let mut keys = Vec::new();
            let helped = worker.help_until(done, || unpark_on_any(tasks, &mut keys), Some(tasks));
            remove_unparks(tasks, &keys);
            if let Helped::Isolated(tag) = helped {
                worker.help_filtered(&Filter::Isolated { tag, tasks }, done);
            }
        }
        (Some(worker), None) => {
            let filter = Filter::Isolated {
                tag: isolation,
                tasks,
            };
            worker.help_filtered(&filter, done);
        }
        (worker, deadline) => {
            if let Some(worker) = worker {
                worker.share_queued();
            }
            let mut keys = Vec::new();
            if unpark_on_any(tasks, &mut keys) {
                while !done() {
                    match deadline {
                        None => std::thread::park(),
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                break;
                            }
                            std::thread::park_timeout(d - now);
                        }
                    }
                }
            }
            remove_unparks(tasks, &keys);
        }
    }
    first_done().ok_or(Waited::TimedOut)
}

/// Arranges for this thread to be unparked when any of `tasks` is done,
/// with the key of each entry in `keys`; false if one already is.
fn unpark_on_any(tasks: &[&TaskRef], keys: &mut Vec<Option<u64>>) -> bool {
    for t in tasks {
        let key = t
            .add_callback(Callback::Unpark(std::thread::current()))
            .ok();
        keys.push(key);
        if key.is_none() {
            return false;
        }
    }
    true
}

/// Takes back the entries of [`unpark_on_any`] from the tasks not done
/// (a task waited for again and again must not collect them).
fn remove_unparks(tasks: &[&TaskRef], keys: &[Option<u64>]) {
    for (t, key) in tasks.iter().zip(keys) {
        if let Some(key) = key {
            t.remove_callback_key(*key);
        }
    }
}

/// `wait_all`: until every one of `tasks` is done, or `deadline`.
/// `OnItself` if one of them is the calling task.
pub(crate) fn wait_all(tasks: &[&TaskRef], deadline: Option<Instant>) -> Waited {
    let current = context::current_task_ptr();
    if tasks
        .iter()
        .any(|t| Some(t.as_ptr()) == current && !t.is_done())
    {
        return Waited::OnItself;
    }
    for task in tasks {
        match wait(task, deadline) {
            Waited::Done => {}
            other => return other,
        }
    }
    Waited::Done
}

/// `Group::wait`: until every task of `group` and of the groups below it
/// is done, or `deadline`. `OnItself` inside a task of one of them.
pub(crate) fn wait_group(group: &Arc<GroupCore>, deadline: Option<Instant>) -> Waited {
    let pool = &group.pool;
    if pool.is_forked() && !group.subtree_is_quiet() {
        return Waited::Forked;
    }
    let (worker, current) = context::with_here(|h| (h.worker_of(pool), h.group()));
    // SAFETY: the running task's group is alive while it runs.
    if !current.is_null() && unsafe { &*current }.is_in(group) {
        return Waited::OnItself;
    }
    let done = || group.subtree_is_quiet();
    if done() {
        return Waited::Done;
    }
    pool.enter_group_wait();
    let finished = match (worker, deadline) {
        (Some(worker), None) => worker.help_filtered(&Filter::Group(group), done),
        (worker, deadline) => {
            if let Some(worker) = worker {
                worker.share_queued();
            }
            // Outside the pool, untimed: made once the group is cancelled.
            let mut take_back = None;
            let may_take_back = worker.is_none() && deadline.is_none();
            loop {
                if done() {
                    break true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break false;
                }
                if may_take_back && group.is_cancelled() {
                    if take_back.is_none() {
                        take_back = Some(TakeBack::new(group));
                    }
                    if let Some(Some(t)) = &mut take_back {
                        if t.end_batch(pool) {
                            continue;
                        }
                    }
                }
                pool.park_for_group(done, deadline);
            }
        }
    };
    pool.leave_group_wait();
    waited(finished)
}

/// What a thread outside the pool does in an untimed wait for a cancelled
/// group: it takes back the group's tasks still queued on its own lane and
/// ends them itself, a batch at a time (module docs). They never run, so
/// no worker needs to be free for them, and their memory is freed on the
/// thread that allocated it.
struct TakeBack {
    own: OwnLane,
    /// Where this thread counts in a group: its lane's slot.
    who: Who,
    /// The jobs of a batch taken from the lane.
    batch: Vec<JobRef>,
    /// The tasks of a batch it ends.
    taken: Vec<TaskRef>,
    /// The groups whose tasks it ends: the cancelled group and those below.
    subtree: Vec<Arc<GroupCore>>,
}

impl TakeBack {
    /// None if this thread has no lane on the group's pool.
    fn new(group: &Arc<GroupCore>) -> Option<TakeBack> {
        let own = context::with_here(|h| h.lane())?;
        let index = group.pool.lanes.index_of(own)?;
        Some(TakeBack {
            own,
            who: Who::Lane(index),
            batch: Vec::with_capacity(STEAL_LIMIT),
            taken: Vec::with_capacity(STEAL_LIMIT),
            subtree: Filter::Group(group).subtree(),
        })
    }

    /// Takes a batch from the lane and ends the tasks of the subtree in it
    /// that are not shielded; the other jobs go to the injector, where any
    /// worker finds them. False if the lane was empty.
    fn end_batch(&mut self, pool: &Pool) -> bool {
        match pool.lanes.steal_own(self.own, &mut self.batch) {
            Steal::Success(()) => {}
            Steal::Retry => return true,
            Steal::Empty => return false,
        }
        let mut gave_back = false;
        let subtree = &self.subtree;
        for job in self.batch.drain(..) {
            match job.as_task().filter(|&t| ends(t, subtree)) {
                // SAFETY: the queue's reference, which taking the job gave us.
                Some(t) => self.taken.push(unsafe { TaskRef::from_raw(t) }),
                None => {
                    pool.injector.push(job);
                    gave_back = true;
                }
            }
        }
        if gave_back {
            pool.sleep.notify_one();
        }
        // SAFETY: taken from a queue of `pool` by a thread outside it; the
        // group, which the caller holds, holds the pool.
        unsafe { harness::end_taken_back(&mut self.taken, pool, self.who) };
        true
    }
}

/// True for a task of `subtree` that is not shielded: one a group wait's
/// take-back ends.
fn ends(task: NonNull<Header>, subtree: &[Arc<GroupCore>]) -> bool {
    // SAFETY: a queued task holds a reference (the queue's, now the
    // taker's); its group is compared by address, never read.
    let header = unsafe { task.as_ref() };
    grouped_in(header, subtree) && !header.state.load().is_shielded()
}

/// True for a task of one of the groups of `subtree` (compared by
/// address, never read: the task's group may be gone if it is done).
fn grouped_in(header: &Header, subtree: &[Arc<GroupCore>]) -> bool {
    header.state.load().is_grouped() && in_subtree(header.owner.cast(), subtree)
}

/// Which jobs a filtered wait may run (module docs).
enum Filter<'a> {
    /// `tasks` (those waited for), and what carries the isolation tag
    /// `tag`.
    Isolated { tag: u64, tasks: &'a [&'a TaskRef] },
    /// The tasks of this group and of the groups below it, and the jobs of
    /// such tasks.
    Group(&'a Arc<GroupCore>),
}

impl Filter<'_> {
    /// True if the wait may run `job`. Reads only what a queued job keeps
    /// alive: a task's word and links, a job's head; a group is compared by
    /// address, never read (it may be gone if its task is done).
    fn allows(&self, job: &JobRef, subtree: &[Arc<GroupCore>]) -> bool {
        match (self, job.as_task()) {
            (Filter::Isolated { tag, tasks }, Some(t)) => {
                // SAFETY: a queued task holds a reference (the queue's).
                tasks.iter().any(|w| w.as_ptr() == t) || unsafe { raw::isolation_tag(t) } == *tag
            }
            (Filter::Isolated { tag, .. }, None) => {
                // SAFETY: a queued job is alive and not a task.
                unsafe { job.head() }.scope.isolation == *tag
            }
            (Filter::Group(_), Some(t)) => {
                // SAFETY: as above.
                grouped_in(unsafe { t.as_ref() }, subtree)
            }
            (Filter::Group(_), None) => {
                // SAFETY: as above.
                in_subtree(unsafe { job.head() }.scope.group, subtree)
            }
        }
    }

    /// The groups whose tasks a group filter allows, held for the scan.
    fn subtree(&self) -> Vec<Arc<GroupCore>> {
        let Filter::Group(group) = self else {
            return Vec::new();
        };
        let mut all = vec![Arc::clone(group)];
        let mut i = 0;
        while i < all.len() {
            let children = all[i].children_alive();
            all.extend(children);
            i += 1;
        }
        all
    }
}

fn in_subtree(group: *const GroupCore, subtree: &[Arc<GroupCore>]) -> bool {
    !group.is_null() && subtree.iter().any(|g| std::ptr::eq(Arc::as_ptr(g), group))
}

/// The longest a filtered wait sleeps before it looks again for jobs it
/// may run that others queued meanwhile.
const FILTERED_LOOK_AGAIN: Duration = Duration::from_millis(2);

/// How a helping wait ended.
pub(crate) enum Helped {
    /// `done()` became true.
    Done,
    /// An isolated wait began to wait for the task this wait runs in: the
    /// wait goes on filtered, with this tag (module docs).
    Isolated(u64),
}

impl WorkerThread {
    /// Runs jobs until `done()` is true. With nothing to run it spins
    /// (crossbeam's `Backoff`, spinning then yielding) before it sleeps: a
    /// sleeping worker needs a futex wake-up, and on a busy machine the
    /// kernel may then queue it on the CPU of the thread that woke it.
    /// Before the first sleep it calls `prepare()`, which arranges for this
    /// thread to be unparked when `done()` becomes true and returns false
    /// if it already is. With `watch` (the tasks a task wait waits for),
    /// it stops (`Helped::Isolated`) when an isolated wait begins to wait
    /// for the running task.
    pub(crate) fn help_until(
        &self,
        done: impl Fn() -> bool,
        mut prepare: impl FnMut() -> bool,
        watch: Option<&[&TaskRef]>,
    ) -> Helped {
        let mut prepared = false;
        let backoff = Backoff::new();
        // Finds in a row that found nothing.
        let mut misses = 0u32;
        let helped = loop {
            if done() {
                break Helped::Done;
            }
            if let Some(job) = self.find_work() {
                self.stop_looking();
                if let Some(awaited) = watch {
                    if let Err(isolated) = self.admit(job, awaited) {
                        break isolated;
                    }
                }
                job.execute(self.here());
                backoff.reset();
                misses = 0;
                continue;
            }
            misses += 1;
            if misses == 2 {
                // A second look found nothing either: as `spin` does.
                self.start_looking();
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Nothing else to do: the tasks a lane keeps are fair game now.
            self.end_lane_streak();
            if !prepared {
                prepared = true;
                if !prepare() {
                    break Helped::Done;
                }
                continue;
            }
            let pool = &*self.pool;
            self.sleep(|| done() || pool.has_work(), None);
        };
        self.stop_looking();
        helped
    }

    /// Ok if a plain wait inside a task for `awaited` may run `job`, found
    /// meanwhile: one of `awaited` always, another job unless an isolated
    /// wait has begun to wait for the running task. Then `job` goes back on
    /// this worker's deque (where the filtered wait looks first) and the
    /// error carries that wait's tag.
    #[inline(always)]
    fn admit(&self, job: JobRef, awaited: &[&TaskRef]) -> Result<(), Helped> {
        if let Some(t) = job.as_task() {
            if awaited.iter().any(|w| w.as_ptr() == t) {
                return Ok(());
            }
        }
        // Acquire: the isolated wait marks the task before it takes any
        // job. A job found here only because that wait took another (the
        // last of this deque, or one it then put aside on the injector) was
        // found after a load that read that take; the fence orders the load
        // of the mark below after it, so the mark is seen. (The pop's own
        // SeqCst fence orders it too: the loom model of this race,
        // `sched/loom_tests.rs`, passes with or without this one, which
        // states the need where it is, at no cost on x86.)
        fence(Ordering::Acquire);
        match self.here().wait_isolation() {
            0 => Ok(()),
            tag => {
                self.local.push(job);
                Err(Helped::Isolated(tag))
            }
        }
    }

    /// [`wait`] on a worker in an isolated wait's scope (tag `tag`): help,
    /// filtered, until `task` is done.
    #[inline(never)]
    fn wait_isolated_for(&self, task: &TaskRef, tag: u64) -> bool {
        let filter = Filter::Isolated {
            tag,
            tasks: &[task],
        };
        self.help_filtered(&filter, || task.is_done())
    }

    /// [`wait`]'s first step on a worker: if `task` is the job this
    /// worker's deque would give next (a child spawned last and not
    /// stolen), takes it and runs it here; false if it is not, or if a
    /// thief took it first.
    #[inline(always)]
    fn run_if_newest(&self, task: &TaskRef) -> bool {
        let job = JobRef::task(task.as_ptr());
        if !self.local.is_newest(&job) {
            return false;
        }
        match self.local.pop() {
            Some(popped) => {
                debug_assert!(popped.is(&job), "the owner's pop took another job");
                popped.execute(self.here());
                true
            }
            None => false,
        }
    }

    /// [`wait`] on a worker, without a deadline: help until the task is
    /// done, or until an isolated wait begins to wait for the running task.
    pub(crate) fn wait_for_task(&self, task: &TaskRef) -> Helped {
        self.help_until(
            || task.is_done(),
            || {
                task.add_callback(Callback::Unpark(std::thread::current()))
                    .is_ok()
            },
            Some(&[task]),
        )
    }

    /// Runs the jobs `filter` allows until `done()` (module docs). Jobs it
    /// may not run go back on the injector once it has looked everywhere;
    /// with nothing to run, it parks, and looks again after a while, or at
    /// once when what it waits for ends (a group's end, or the task's).
    fn help_filtered(&self, filter: &Filter<'_>, done: impl Fn() -> bool) -> bool {
        let pool = &*self.pool;
        let here = self.here();
        let mut aside: Vec<JobRef> = Vec::new();
        let mut pause = Duration::from_micros(50);
        let backoff = Backoff::new();
        loop {
            if done() {
                break;
            }
            let subtree = filter.subtree();
            if let Some(job) = self.find_allowed(filter, &subtree, &mut aside) {
                self.give_back(&mut aside);
                job.execute(here);
                backoff.reset();
                pause = Duration::from_micros(50);
                continue;
            }
            self.give_back(&mut aside);
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            match filter {
                Filter::Isolated { tasks, .. } => {
                    let keys: Vec<_> = tasks
                        .iter()
                        .map(|t| {
                            t.add_callback(Callback::Unpark(std::thread::current()))
                                .ok()
                        })
                        .collect();
                    if !done() {
                        std::thread::park_timeout(pause);
                    }
                    for (t, key) in tasks.iter().zip(keys) {
                        if let Some(key) = key {
                            t.remove_callback_key(key);
                        }
                    }
                }
                Filter::Group(_) => pool.park_for_group(&done, Some(Instant::now() + pause)),
            }
            pause = (pause * 2).min(FILTERED_LOOK_AGAIN);
        }
        self.give_back(&mut aside);
        true
    }

    /// The next job `filter` allows: from this worker's deque, then from
    /// one steal from the other workers' deques, then one from the queues
    /// outside the pool (a steal puts its batch on this deque, looked at
    /// next); what it may not run goes to `aside`. Every call looks at
    /// every kind of queue once: the jobs filtered waits put aside on the
    /// injector must not hide a job this wait may run in a worker's deque.
    fn find_allowed(
        &self,
        filter: &Filter<'_>,
        subtree: &[Arc<GroupCore>],
        aside: &mut Vec<JobRef>,
    ) -> Option<JobRef> {
        let mut steals = [Self::steal_from_workers, Self::steal_from_outside].into_iter();
        loop {
            let job = match self.local.pop() {
                Some(job) => job,
                None => match steals.next()?(self) {
                    Some(job) => job,
                    None => continue,
                },
            };
            if filter.allows(&job, subtree) {
                return Some(job);
            }
            aside.push(job);
        }
    }

    /// Jobs a filtered wait may not run, back on the injector, where any
    /// worker finds them.
    fn give_back(&self, aside: &mut Vec<JobRef>) {
        if aside.is_empty() {
            return;
        }
        let pool: &Pool = &self.pool;
        for job in aside.drain(..) {
            pool.injector.push(job);
        }
        pool.sleep.notify_from_worker();
    }

    /// A worker about to park for a finite wait lets a sleeper take what
    /// it has queued (it will not run it meanwhile).
    pub(crate) fn share_queued(&self) {
        self.local.show_all();
        if self.local.len() != 0 {
            self.pool.sleep.notify_from_worker();
        }
    }
}
