//! Jobs: what the queues hold, and fork-join on the stack (rayon's
//! `StackJob`).
//!
//! A queued job is a thin pointer ([`JobRef`]): either a task's header,
//! marked in its lowest bit and run by the harness (`harness::run`), or a
//! job whose first word points to its [`JobVtable`] (a join's stack job, a
//! scope's heap job). A deque slot is 8 bytes either way.
//!
//! `join(a, b)` on a worker pushes `b` as a job that lives on the caller's
//! stack, runs `a` inline, then pops `b` back and runs it inline too unless
//! a thief took it; then it runs other jobs until the thief sets the latch.
//! `b` is pushed hidden from thieves (`sync::deque`), so popping it back
//! needs no fence; while some worker looks for work, each join shows its
//! worker's oldest hidden job (`WorkerThread::push_join`), the one whose
//! stealing hands out the most work. Outside the pool the whole join is
//! handed to a worker and the caller blocks.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use super::context::{self, Here, Scope};
use super::harness;
use super::latch::{Latch, Waiter};
use super::pool::Pool;
use super::worker::WorkerThread;
use crate::sync::deque::Item;
use crate::task::raw::Header;

/// The first word of every job that is not a task points to one of these.
#[repr(C)]
pub(crate) struct JobVtable {
    /// Runs the job; called once per push, with the running thread's
    /// [`Here`] (which the caller has at hand: no thread-local look-up).
    pub(crate) execute: unsafe fn(NonNull<()>, &Here),
}

/// How every job that is not a task begins: its vtable, then the scope it
/// works for (the task that made it, that task's group, the isolation it
/// was made in), which a filtered wait reads (`wait.rs`).
#[repr(C)]
pub(crate) struct JobHead {
    pub(crate) vtable: &'static JobVtable,
    pub(crate) scope: Scope,
}

/// The lowest bit of a [`JobRef`] to a task's header (headers, like every
/// job, are at least 8-byte aligned).
const TASK: usize = 1;

/// A unit of work in a queue (module docs).
#[derive(Clone, Copy)]
pub(crate) struct JobRef(NonNull<()>);

// SAFETY: every job type is safe to run on another thread (tasks and job
// closures are `Send`); the pointer is only used by `execute`.
unsafe impl Send for JobRef {}

impl JobRef {
    /// # Safety
    /// `job` must start with a [`JobHead`] whose `execute(job)` is sound to
    /// call exactly once, on any worker thread.
    pub(crate) unsafe fn new<J>(job: NonNull<J>) -> JobRef {
        debug_assert!(job.as_ptr() as usize & TASK == 0);
        JobRef(job.cast())
    }

    /// The job that runs a task; it owns one reference of the task (the
    /// scheduler's), which running it consumes.
    pub(crate) fn task(header: NonNull<Header>) -> JobRef {
        let tagged = header.as_ptr().cast::<u8>().wrapping_add(TASK);
        // SAFETY: one past a non-null, aligned address is not null.
        JobRef(unsafe { NonNull::new_unchecked(tagged.cast()) })
    }

    #[inline]
    pub(crate) fn is(&self, other: &JobRef) -> bool {
        self.0 == other.0
    }

    /// The task this job runs, if it is a task.
    pub(crate) fn as_task(&self) -> Option<NonNull<Header>> {
        let ptr = self.0.as_ptr();
        // SAFETY: `task` tagged a non-null header.
        (ptr as usize & TASK != 0)
            .then(|| unsafe { NonNull::new_unchecked(ptr.cast::<u8>().wrapping_sub(TASK).cast()) })
    }

    /// The head of a job that is not a task.
    ///
    /// # Safety
    /// The job is queued (so alive) and not a task.
    pub(crate) unsafe fn head(&self) -> &JobHead {
        // SAFETY: every non-task job starts with its head (`new`).
        unsafe { &*self.0.as_ptr().cast::<JobHead>() }
    }

    /// Runs the job on this thread, whose [`Here`] is `here`.
    #[inline]
    pub(crate) fn execute(self, here: &Here) {
        let ptr = self.0.as_ptr();
        if ptr as usize & TASK != 0 {
            let header = ptr.cast::<u8>().wrapping_sub(TASK).cast::<Header>();
            // SAFETY: `task` tagged a non-null header, with the queue's
            // reference, which running it consumes; a job is popped once.
            unsafe { harness::run(NonNull::new_unchecked(header), here) };
        } else {
            // SAFETY: `new`'s contract: the job starts with its vtable
            // pointer, and a job is popped from a queue once.
            unsafe {
                let vtable = *ptr.cast::<&'static JobVtable>();
                (vtable.execute)(self.0, here)
            }
        }
    }
}

impl Item for JobRef {
    fn into_raw(self) -> NonNull<()> {
        self.0
    }

    unsafe fn from_raw(ptr: NonNull<()>) -> JobRef {
        JobRef(ptr)
    }
}

/// A job on its owner's stack; the owner does not return before it ran.
#[repr(C)]
struct StackJob<F, R> {
    /// First, as a `JobRef` requires. Its scope is whom the owner works
    /// for, so that `current_task()`, `cancel_requested()`, spawns' groups
    /// and isolation inside `b` are the same on any thread.
    head: JobHead,
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Result<R, Box<dyn Any + Send>>>>,
    latch: Latch,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    /// A job of `f` made on a thread whose [`Here`] is `here`.
    #[inline]
    fn new(f: F, waiter: Waiter, here: &Here) -> Self {
        StackJob {
            head: JobHead {
                vtable: &Self::JOB,
                scope: here.scope(),
            },
            f: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            latch: Latch::new(waiter),
        }
    }

    const JOB: JobVtable = JobVtable {
        execute: Self::execute,
    };

    fn as_job_ref(&self) -> JobRef {
        // SAFETY: `self` starts with its head; the owner keeps it alive
        // until the latch is set or it popped the job back; `execute` runs at
        // most once (one pop).
        unsafe { JobRef::new(NonNull::from(self)) }
    }

    /// # Safety
    /// `this` is a live `StackJob<F, R>` whose job was popped once.
    unsafe fn execute(this: NonNull<()>, here: &Here) {
        // SAFETY: caller's duty.
        let this = unsafe { this.cast::<Self>().as_ref() };
        // SAFETY: only the one thread that popped the job touches `f`/`result`
        // until the latch is set.
        let f = unsafe { (*this.f.get()).take() }.expect("stack job ran twice");
        // A join half is not a task's run: a `wsrt_await` in it is dropped.
        let (result, request) =
            here.with_scope(this.head.scope, || panic::catch_unwind(AssertUnwindSafe(f)));
        request.discard();
        // SAFETY: as above.
        unsafe { *this.result.get() = Some(result) };
        // SAFETY: `this` is alive until the latch is set; not touched after.
        unsafe { Latch::set(&this.latch) };
    }

    /// The owner popped its own job back: run it here.
    fn run_inline(self) -> R {
        let f = self.f.into_inner().expect("stack job ran twice");
        f()
    }

    fn into_result(self) -> R {
        match self
            .result
            .into_inner()
            .expect("stack job latch set without result")
        {
            Ok(r) => r,
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}

/// `join(a, b)` for `pool`: on one of its workers, or handed to one.
pub(crate) fn join_in<A, B, RA, RB>(pool: &Pool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match WorkerThread::current_of(pool) {
        Some(w) => join_on(w, a, b),
        // The `Runtime` was dropped, or inherited through `fork()`: its
        // threads are gone, run here.
        None if pool.is_exiting() || pool.is_forked() => (a(), b()),
        None => in_worker(pool, move |w| join_on(w, a, b)),
    }
}

/// `join(a, b)` on worker `w` (module docs).
pub(crate) fn join_on<A, B, RA, RB>(w: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = StackJob::new(b, Waiter::Worker(w.index), w.here());
    let job_ref = job_b.as_job_ref();
    w.push_join(job_ref);
    let result_a = panic::catch_unwind(AssertUnwindSafe(a));
    // Get `b` back, or wait for the thief. Jobs above ours were pushed by
    // `a` and not taken back, so they are ours to run. The pop comes before
    // a look at the latch: `b` is usually still there (hidden), and a thief
    // takes the oldest jobs first, so once `b` is gone the pop finds
    // nothing, or a job left by `a` (or, after a filtered wait put jobs
    // aside, an older one), which is ours to run too.
    loop {
        match w.pop() {
            Some(job) if job.is(&job_ref) => {
                let result_b = job_b.run_inline();
                return (unwrap(result_a), result_b);
            }
            Some(job) => {
                job.execute(w.here());
                if job_b.latch.probe() {
                    break;
                }
            }
            None => {
                job_b.latch.wait();
                break;
            }
        }
    }
    let result_a = unwrap(result_a);
    (result_a, job_b.into_result())
}

fn unwrap<R>(result: Result<R, Box<dyn Any + Send>>) -> R {
    result.unwrap_or_else(|payload| panic::resume_unwind(payload))
}

/// Runs `op` on one of `pool`'s workers and blocks until it returns.
pub(crate) fn in_worker<R, OP>(pool: &Pool, op: OP) -> R
where
    OP: FnOnce(&WorkerThread) -> R + Send,
    R: Send,
{
    let job = context::with_here(|here| {
        StackJob::new(
            move || op(WorkerThread::current().expect("injected job runs on a worker")),
            Waiter::Thread(std::thread::current()),
            here,
        )
    });
    pool.injector.push(job.as_job_ref());
    pool.sleep.notify_one();
    job.latch.wait();
    job.into_result()
}
