//! Lanes: the queues of threads outside the pool that spawn (`README.md`,
//! "Lanes").
//!
//! A thread outside the pool claims one of a runtime's [`LANES`] lanes on
//! its first spawn there and keeps it until it exits: a FIFO deque only it
//! pushes on, that the workers steal from. A thread that finds them all
//! claimed uses the injector for that runtime from then on. A lane keeps
//! the capacity of its largest backlog until its runtime is freed; a lane
//! whose thread exited is claimed again by the next thread that needs one,
//! with whatever it still holds.
//!
//! Invariants: one thread at a time owns a lane's pushing end (`claimed`,
//! set by a compare-exchange with `Acquire`, cleared at thread exit with
//! `Release`); a claim is a `Weak`, so it never keeps a runtime alive; a
//! push is followed by the fence and sleeper check of `sleep.rs`, and
//! `has_work` looks at every lane up to `used`, raised before the first
//! push, so no wake-up is lost.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::context;
use super::job::JobRef;
use super::tuning::{LAG, LANES};
use crate::sync::deque::{Steal, Stealer, Worker};

/// What a worker saw of each lane at its last look: how many jobs had been
/// pushed on it. Kept by the worker, for [`Lanes::steal_batch_and_pop`].
pub(crate) type Looks = [Cell<isize>; LANES];

struct Lane {
    /// Set while a thread owns `local`.
    claimed: AtomicBool,
    /// Pushed on only by the thread that claimed the lane (module docs).
    local: UnsafeCell<Worker<JobRef>>,
    stealer: Stealer<JobRef>,
}

// SAFETY: `local` is only reached by the thread holding the claim, and the
// claim's Acquire/Release hands it from one owner to the next; `stealer`
// is `Sync` itself.
unsafe impl Sync for Lane {}

pub(crate) struct Lanes {
    lanes: Box<[Lane]>,
    /// One more than the highest lane ever claimed: workers look at
    /// `lanes[..used]` only.
    used: AtomicUsize,
}

/// A lane this thread owns, released when the thread exits; or (`index`
/// `None`) the note that it found none free and uses the injector.
struct Claim {
    lanes: Weak<Lanes>,
    index: Option<usize>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // The thread's note of its lane must not outlive the claim.
        context::with_here(|h| {
            if h.lane()
                .is_some_and(|l| std::ptr::eq(l.lanes.as_ptr(), self.lanes.as_ptr()))
            {
                h.set_lane(None);
            }
        });
        if let (Some(lanes), Some(index)) = (self.lanes.upgrade(), self.index) {
            // Release: our pushes happen before the next owner's.
            lanes.lanes[index].claimed.store(false, Ordering::Release);
        }
    }
}

/// The lane a thread claimed on the runtime it spawned on last, noted in
/// its `context::Here`, which the spawn path looks at anyway: a spawn that
/// finds it there pushes without a second thread-local look-up (`CLAIMS`:
/// in `libwsrt.so`, a call to `__tls_get_addr`) and without searching the
/// thread's claims. Set only while the thread holds the claim, and cleared
/// by the claim's drop before the lane is released.
#[derive(Clone, Copy)]
pub(crate) struct OwnLane {
    /// Non-null, so that `Option<OwnLane>` is two words.
    lanes: NonNull<Lanes>,
    index: usize,
}

impl Lanes {
    /// The index of `own` if it is one of these lanes.
    pub(crate) fn index_of(&self, own: OwnLane) -> Option<usize> {
        std::ptr::eq(own.lanes.as_ptr(), self).then_some(own.index)
    }
}

thread_local! {
    /// The lanes this thread claimed, the most recently used first.
    static CLAIMS: RefCell<Vec<Claim>> = const { RefCell::new(Vec::new()) };
}

impl Lanes {
    pub(crate) fn new() -> Arc<Lanes> {
        Arc::new(Lanes {
            lanes: (0..LANES)
                .map(|_| {
                    let local = Worker::new_push_only();
                    Lane {
                        claimed: AtomicBool::new(false),
                        stealer: local.stealer(),
                        local: UnsafeCell::new(local),
                    }
                })
                .collect(),
            used: AtomicUsize::new(0),
        })
    }

    /// Pushes `job` on this thread's lane, claiming one if it has none;
    /// `own` is the lane the thread noted (`OwnLane`), if any. Gives the
    /// job back if every lane is taken by other threads, or if this
    /// thread's thread-locals are being destroyed. The caller then wakes a
    /// sleeper as after any push (module docs).
    #[inline]
    pub(crate) fn push(self: &Arc<Self>, job: JobRef, own: Option<OwnLane>) -> Result<(), JobRef> {
        match own {
            Some(own) if std::ptr::eq(own.lanes.as_ptr(), Arc::as_ptr(self)) => {
                // SAFETY: noted while this thread holds the claim on lane
                // `own.index` of these lanes (alive: `self`), and cleared
                // before that claim goes.
                unsafe { &*self.lanes[own.index].local.get() }.push(job);
                Ok(())
            }
            _ => self.push_claimed(job),
        }
    }

    /// [`push`](Self::push) through the thread's claims, noting its lane.
    #[cold]
    fn push_claimed(self: &Arc<Self>, job: JobRef) -> Result<(), JobRef> {
        let pushed = CLAIMS.try_with(|claims| {
            let mut claims = claims.borrow_mut();
            let found = claims
                .iter()
                .position(|c| std::ptr::eq(c.lanes.as_ptr(), Arc::as_ptr(self)));
            let index = match found {
                Some(0) => claims[0].index,
                Some(i) => {
                    // Most recent first: a thread spawning on one runtime
                    // finds its claim at once.
                    claims.swap(0, i);
                    claims[0].index
                }
                None => {
                    // Asked once per thread and runtime: a thread that found
                    // every lane taken keeps using the injector.
                    let index = self.claim();
                    claims.retain(|c| c.lanes.strong_count() > 0);
                    claims.insert(
                        0,
                        Claim {
                            lanes: Arc::downgrade(self),
                            index,
                        },
                    );
                    index
                }
            };
            let index = index?;
            // SAFETY: this thread holds the claim on lane `index`.
            unsafe { &*self.lanes[index].local.get() }.push(job);
            let own = OwnLane {
                lanes: NonNull::from(&**self),
                index,
            };
            context::with_here(|h| h.set_lane(Some(own)));
            Some(())
        });
        match pushed {
            Ok(Some(())) => Ok(()),
            _ => Err(job),
        }
    }

    /// Claims a free lane for this thread and makes workers look at it.
    fn claim(&self) -> Option<usize> {
        let index = self.lanes.iter().position(|lane| {
            // Acquire: pairs with the Release of the previous owner's drop.
            !lane.claimed.load(Ordering::Relaxed)
                && lane
                    .claimed
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })?;
        // Relaxed: the pusher's SeqCst fence after its push orders this
        // before a sleeper's look (module docs); a busy worker that reads
        // it late only finds the lane on a later look.
        self.used.fetch_max(index + 1, Ordering::Relaxed);
        Some(index)
    }

    fn used(&self) -> &[Lane] {
        &self.lanes[..self.used.load(Ordering::Relaxed)]
    }

    /// Steals a batch from a lane into `dest` and pops one job of it,
    /// looking at the lanes from `start` on (workers start at different
    /// lanes). With `keep_behind`, a lane holding at most [`LAG`] jobs whose
    /// thread pushed since this worker's last look (`looks`) is passed
    /// over, and `left` set (`README.md`, "Keeping behind a spawning
    /// thread"). `Retry` if a lane was contended and none gave a job.
    pub(crate) fn steal_batch_and_pop(
        &self,
        dest: &Worker<JobRef>,
        start: usize,
        keep_behind: bool,
        looks: &Looks,
        left: &mut bool,
    ) -> Steal<JobRef> {
        let lanes = self.used();
        let mut retry = false;
        for i in 0..lanes.len() {
            let index = (start + i) % lanes.len();
            let lane = &lanes[index];
            // An empty stealer is two loads; a steal attempt is a fence.
            let (len, pushes) = lane.stealer.len_and_pushes();
            let pushed = looks[index].replace(pushes) != pushes;
            match len {
                0 => continue,
                n if keep_behind && n <= LAG && pushed => {
                    *left = true;
                    continue;
                }
                _ => {}
            }
            match lane.stealer.steal_batch_and_pop(dest) {
                Steal::Success(job) => return Steal::Success(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if retry {
            Steal::Retry
        } else {
            Steal::Empty
        }
    }

    /// Steals a batch from the lane `own` names into `out`, oldest first:
    /// a thread outside the pool taking back jobs from its own lane, as any
    /// thief would (nobody pops a lane).
    pub(crate) fn steal_own(&self, own: OwnLane, out: &mut Vec<JobRef>) -> Steal<()> {
        match self.index_of(own) {
            Some(index) => self.lanes[index].stealer.steal_batch_into(out),
            None => Steal::Empty,
        }
    }

    /// True if any lane holds a job.
    pub(crate) fn has_work(&self) -> bool {
        self.used().iter().any(|lane| !lane.stealer.is_empty())
    }
}

#[cfg(all(test, not(loom)))]
impl Lanes {
    /// How many lanes a thread holds now.
    fn claimed(&self) -> usize {
        self.lanes
            .iter()
            .filter(|lane| lane.claimed.load(Ordering::Acquire))
            .count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::mem::ManuallyDrop;
    use std::pin::Pin;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Barrier};
    use std::task::{Context, Poll};

    use super::{Lanes, Looks, LAG, LANES};
    use crate::sched::context::Here;
    use crate::sched::job::{JobRef, JobVtable};
    use crate::sync::deque::{Steal, Worker};
    use crate::Runtime;

    /// A job these tests queue and steal but never run.
    #[repr(C)]
    struct Unrun(&'static JobVtable);

    unsafe fn never_run(_: NonNull<()>, _: &Here) {
        unreachable!("only queued and stolen");
    }

    static UNRUN_VTABLE: JobVtable = JobVtable { execute: never_run };
    static UNRUN: Unrun = Unrun(&UNRUN_VTABLE);

    fn unrun() -> JobRef {
        // SAFETY: `Unrun` starts with its vtable; these jobs are never run.
        unsafe { JobRef::new(NonNull::from(&UNRUN)) }
    }

    #[test]
    fn a_worker_in_a_streak_stays_behind_a_lane_while_it_is_pushed_on() {
        let lanes = Lanes::new();
        let push = |n: usize| {
            for _ in 0..n {
                assert!(lanes.push(unrun(), None).is_ok(), "a lane for this thread");
            }
        };
        let (dest, looks) = (Worker::new_lifo(), Looks::default());
        // (took a job, left one for later), as a worker in a streak or not.
        let steal = |in_streak: bool| {
            let mut left = false;
            let got = lanes.steal_batch_and_pop(&dest, 0, in_streak, &looks, &mut left);
            while dest.pop().is_some() {}
            (matches!(got, Steal::Success(_)), left)
        };
        push(10);
        assert_eq!(steal(true), (false, true), "pushed on since the last look");
        assert_eq!(steal(true), (true, false), "not pushed on since: taken");
        push(1);
        assert_eq!(steal(true), (false, true));
        push(1);
        assert_eq!(
            steal(false),
            (true, false),
            "outside a streak: taken at once"
        );
        let queued = lanes.lanes[0].stealer.len();
        push(LAG + 1 - queued);
        assert_eq!(
            steal(true),
            (true, false),
            "more than LAG: taken while pushed on"
        );
    }

    #[test]
    fn a_spawning_thread_claims_a_lane_and_gives_it_back_when_it_exits() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let lanes = rt.handle().pool.lanes.clone();
        assert_eq!(lanes.claimed(), 0);
        let (handle, seen) = (rt.handle().clone(), lanes.clone());
        // `join` (not a scope) waits for the thread's thread-local
        // destructors, which release the claim.
        std::thread::spawn(move || {
            assert_eq!(handle.spawn(|| 1).join(), Ok(1));
            assert_eq!(handle.spawn(|| 2).join(), Ok(2));
            assert_eq!((seen.claimed(), seen.used().len()), (1, 1));
        })
        .join()
        .unwrap();
        assert_eq!(lanes.claimed(), 0);
        assert_eq!(rt.spawn(|| 3).join(), Ok(3));
        assert_eq!(
            (lanes.claimed(), lanes.used().len()),
            (1, 1),
            "lane 0 again"
        );
    }

    #[test]
    fn threads_beyond_the_lanes_use_the_injector_and_every_task_runs() {
        const THREADS: usize = LANES + 4;
        const EACH: usize = if cfg!(miri) { 10 } else { 500 };
        let rt = Runtime::builder().workers(2).build().unwrap();
        let lanes = rt.handle().pool.lanes.clone();
        let hits = Arc::new(AtomicUsize::new(0));
        let all_spawned_once = Arc::new(Barrier::new(THREADS + 1));
        let counted = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (rt, hits) = (rt.handle().clone(), hits.clone());
                let (all_spawned_once, counted) = (all_spawned_once.clone(), counted.clone());
                std::thread::spawn(move || {
                    let mut tasks = Vec::with_capacity(EACH);
                    for i in 0..EACH {
                        let hits = hits.clone();
                        tasks.push(rt.spawn(move || hits.fetch_add(1, Ordering::Relaxed)));
                        if i == 0 {
                            all_spawned_once.wait();
                            counted.wait();
                        }
                    }
                    for t in tasks {
                        t.join().unwrap();
                    }
                })
            })
            .collect();
        all_spawned_once.wait();
        assert_eq!(lanes.claimed(), LANES, "every lane taken, once each");
        counted.wait();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(hits.load(Ordering::Relaxed), THREADS * EACH);
        assert_eq!(lanes.claimed(), 0);
        // A task is counted after it is done (and joinable): shut down first.
        rt.shutdown(crate::ShutdownMode::Drain).unwrap();
        assert_eq!(rt.stats().succeeded, (THREADS * EACH) as u64);
    }

    #[test]
    fn a_thread_spawning_on_runtimes_in_turn_queues_each_task_on_its_own() {
        // Its noted lane (`OwnLane`) is one runtime's; a spawn on another
        // must not use it, and a freed runtime's note must not outlive it.
        const EACH: usize = if cfg!(miri) { 10 } else { 200 };
        // Not dropped on a failure: a runtime whose task went astray
        // would wait for it forever in its drop.
        let build = || ManuallyDrop::new(Runtime::builder().workers(1).build().unwrap());
        // The runtime whose worker runs the calling task.
        fn ran_on() -> usize {
            let worker = crate::sched::worker::WorkerThread::current().expect("on a worker");
            Arc::as_ptr(&worker.pool) as usize
        }
        let spawn_in_turn = |x: &Runtime, y: &Runtime| {
            let tasks: Vec<_> = (0..EACH)
                .flat_map(|_| [x, y])
                .map(|rt| (Arc::as_ptr(&rt.handle().pool) as usize, rt.spawn(ran_on)))
                .collect();
            for (i, (expected, t)) in tasks.into_iter().enumerate() {
                // Bounded: a task queued where no worker looks never runs.
                assert!(
                    t.wait_timeout(std::time::Duration::from_secs(60)),
                    "task {i} never ran"
                );
                assert_eq!(t.join(), Ok(expected), "task {i} ran on another runtime");
            }
        };
        let (a, b) = (build(), build());
        spawn_in_turn(&a, &b);
        let claimed = |rt: &Runtime| rt.handle().pool.lanes.claimed();
        assert_eq!((claimed(&a), claimed(&b)), (1, 1));
        drop(ManuallyDrop::into_inner(a));
        let c = build();
        spawn_in_turn(&b, &c);
        assert_eq!((claimed(&b), claimed(&c)), (1, 1));
        drop(ManuallyDrop::into_inner(b));
        drop(ManuallyDrop::into_inner(c));
    }

    /// Pending once (waking itself: a yield), then ready with `f()`.
    struct YieldOnce<F>(Option<F>, bool);

    impl<F: FnOnce() -> usize + Unpin> Future for YieldOnce<F> {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            if !self.1 {
                self.1 = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready((self.0.take().unwrap())())
        }
    }

    #[test]
    // The order it checks depends on the worker's spin, timed in
    // microseconds, which Miri's interpreter stretches out of shape.
    #[cfg_attr(miri, ignore)]
    fn a_thread_that_keeps_spawning_does_not_starve_a_yielded_task() {
        const SPAWNED_AFTER: usize = 4000;
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (release, gate) = mpsc::channel::<()>();
        let blocker = rt.spawn(move || gate.recv().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = hits.clone();
        // Queued on this thread's lane; its yield goes to the injector.
        let yielder = rt.spawn_async(YieldOnce(Some(move || seen.load(Ordering::SeqCst)), false));
        let tasks: Vec<_> = (0..SPAWNED_AFTER)
            .map(|_| {
                let hits = hits.clone();
                rt.spawn(move || hits.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        release.send(()).unwrap();
        let ran_before = yielder.join().unwrap();
        assert!(
            ran_before > 0 && ran_before < SPAWNED_AFTER,
            "the yielded task ran again after {ran_before} of the {SPAWNED_AFTER} \
             tasks queued behind it: it must wait for some, not for all"
        );
        for t in tasks {
            t.join().unwrap();
        }
        blocker.join().unwrap();
    }
}
