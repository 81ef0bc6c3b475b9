//! Fork-join without allocation (rayon's stack job).
//!
//! `join(a, b)` on a worker pushes `b` as a job that lives on the caller's
//! stack, runs `a` inline, then pops `b` back and runs it inline too unless a
//! thief took it; in that case it runs other jobs until the thief sets the
//! latch. Outside the pool the whole join is handed to a worker and the
//! caller blocks.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use crate::latch::{Latch, Waiter};
use crate::runtime::{Runtime, Shared};
use crate::task::raw::Header;
use crate::worker::{self, Here, JobRef, JobVtable, WorkerThread};

/// A job on its owner's stack; the owner does not return before it ran.
#[repr(C)]
struct StackJob<F, R> {
    /// First, as a `JobRef` requires.
    job: &'static JobVtable,
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Result<R, Box<dyn Any + Send>>>>,
    latch: Latch,
    /// The task the owner runs on behalf of, so `current_task()` and
    /// `cancel_requested()` inside `b` answer for it on any thread.
    task: Option<NonNull<Header>>,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn new(f: F, waiter: Waiter) -> Self {
        StackJob {
            job: &Self::JOB,
            f: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            latch: Latch::new(waiter),
            task: worker::current_task_ptr(),
        }
    }

    const JOB: JobVtable = JobVtable {
        execute: Self::execute,
    };

    fn as_job_ref(&self) -> JobRef {
        // SAFETY: `self` starts with `&Self::JOB`; the owner keeps it alive
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
        let (result, _await) =
            here.with_task(this.task, || panic::catch_unwind(AssertUnwindSafe(f)));
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

/// Runs `a` and `b`, potentially in parallel, and returns both results.
///
/// On a worker thread of any wsrt runtime it forks onto that worker's deque.
/// Elsewhere it runs on the process-wide default runtime ([`global`]), one
/// worker per CPU, started on first use; use [`Handle::join`] to pick one.
/// A panic in either closure is propagated after both finished.
///
/// [`Handle::join`]: crate::Handle::join
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match WorkerThread::current() {
        Some(w) => join_on(w, a, b),
        None => in_worker(&global().shared, move |w| join_on(w, a, b)),
    }
}

/// The process-wide default runtime, used by [`join`] and [`crate::spawn`]
/// outside the pool. Started on first use (one worker per CPU); never shut
/// down.
///
/// # Panics
/// If its worker threads cannot be started.
pub fn global() -> &'static Runtime {
    static GLOBAL: OnceLock<Runtime> = OnceLock::new();
    GLOBAL.get_or_init(|| Runtime::new().expect("wsrt: cannot start the global runtime"))
}

pub(crate) fn join_in<A, B, RA, RB>(shared: &Arc<Shared>, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match WorkerThread::current_of(shared) {
        Some(w) => join_on(w, a, b),
        // The `Runtime` was dropped: its threads are gone, run here.
        None if shared.is_exiting() => (a(), b()),
        None => in_worker(shared, move |w| join_on(w, a, b)),
    }
}

fn join_on<A, B, RA, RB>(w: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = StackJob::new(b, Waiter::Worker(w.index));
    let job_ref = job_b.as_job_ref();
    w.push(job_ref);
    let result_a = panic::catch_unwind(AssertUnwindSafe(a));
    // Get `b` back, or wait for the thief. Jobs above ours were pushed by
    // `a` and not taken back, so they are ours to run.
    while !job_b.latch.probe() {
        match w.pop() {
            Some(job) if job.is(&job_ref) => {
                let result_b = job_b.run_inline();
                return (unwrap(result_a), result_b);
            }
            Some(job) => job.execute(w.here()),
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

/// Runs `op` on one of `shared`'s workers and blocks until it returns.
pub(crate) fn in_worker<R, OP>(shared: &Shared, op: OP) -> R
where
    OP: FnOnce(&WorkerThread) -> R + Send,
    R: Send,
{
    let job = StackJob::new(
        move || op(WorkerThread::current().expect("injected job runs on a worker")),
        Waiter::Thread(std::thread::current()),
    );
    shared.injector.push(job.as_job_ref());
    shared.sleep.notify_one();
    job.latch.wait();
    job.into_result()
}
