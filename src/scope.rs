//! Scoped spawns: jobs that may borrow from the caller's stack, all finished
//! before `scope` returns.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::sched::context::{self, Here};
use crate::sched::job::{JobHead, JobRef, JobVtable};
use crate::sched::latch::{CountLatch, Waiter};
use crate::sched::pool::Pool;
use crate::sched::worker::WorkerThread;

/// Spawns closures that borrow from the enclosing stack frame; created by
/// [`Handle::scope`](crate::Handle::scope).
///
/// The scope body runs on the calling thread; spawned closures run on the
/// runtime's workers (jobs, not tasks: they have no handle and are not
/// counted in [`Stats`](crate::Stats)). `scope` returns once all of them
/// finished; on a worker it runs other jobs meanwhile, elsewhere it blocks.
/// If any closure panicked, `scope` panics with the first payload after all
/// finished.
pub struct Scope<'scope> {
    pool: Arc<Pool>,
    latch: CountLatch,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Whom the scope's body works for: its jobs report the same current
    /// task, and spawn into the same group, on any thread.
    cx: context::Scope,
    /// Invariant in `'scope`, like `std::thread::Scope`.
    _marker: PhantomData<&'scope mut &'scope ()>,
}

// SAFETY: `cx` is only copied into jobs to report the current task, group
// and isolation; all other fields are `Sync`.
unsafe impl Sync for Scope<'_> {}
// SAFETY: as above.
unsafe impl Send for Scope<'_> {}

#[repr(C)]
struct HeapJob<'scope, F> {
    /// First, as a `JobRef` requires.
    head: JobHead,
    f: F,
    scope: *const Scope<'scope>,
}

impl<'scope, F> HeapJob<'scope, F>
where
    F: FnOnce(&Scope<'scope>) + Send + 'scope,
{
    const JOB: JobVtable = JobVtable {
        execute: execute::<F>,
    };
}

impl<'scope> Scope<'scope> {
    /// Spawns `f` into the scope; it may borrow anything that outlives it.
    pub fn spawn<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.latch.increment();
        let job = Box::new(HeapJob {
            head: JobHead {
                vtable: &HeapJob::<'scope, F>::JOB,
                scope: self.cx,
            },
            f,
            scope: self,
        });
        // SAFETY: the job starts with the vtable of `execute::<F>`, which
        // matches the boxed type, and the scope waits for the job before
        // anything it borrows goes away.
        let job = unsafe { JobRef::new(NonNull::from(Box::leak(job))) };
        match WorkerThread::current_of(&self.pool) {
            Some(w) => w.push(job),
            // The `Runtime` was dropped: its threads are gone, run here.
            // The `Runtime` was dropped, or inherited through `fork()`: its
            // threads are gone, run here.
            None if self.pool.is_exiting() || self.pool.is_forked() => {
                context::with_here(|here| job.execute(here))
            }
            None => {
                self.pool.injector.push(job);
                self.pool.sleep.notify_one();
            }
        }
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(payload);
    }
}

/// # Safety
/// `ptr` is a leaked `HeapJob<F>` whose scope is still waiting for it.
unsafe fn execute<'scope, F>(ptr: NonNull<()>, here: &Here)
where
    F: FnOnce(&Scope<'scope>) + Send + 'scope,
{
    // SAFETY: caller's duty; the job runs once.
    let job = unsafe { Box::from_raw(ptr.cast::<HeapJob<'scope, F>>().as_ptr()) };
    // SAFETY: the scope outlives its jobs (it waits on the latch).
    let scope = unsafe { &*job.scope };
    let f = job.f;
    // A scope job is not a task's run: a `wsrt_await` in it is dropped.
    let (result, request) = here.with_scope(scope.cx, || {
        panic::catch_unwind(AssertUnwindSafe(|| f(scope)))
    });
    request.discard();
    if let Err(payload) = result {
        scope.record_panic(payload);
    }
    // SAFETY: `scope` may be freed once the count is zero; not used after.
    unsafe { CountLatch::decrement(&scope.latch) };
}

pub(crate) fn scope_in<'scope, OP, R>(pool: &Arc<Pool>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let scope = Scope {
        pool: pool.clone(),
        latch: CountLatch::new(Waiter::current(pool)),
        panic: Mutex::new(None),
        cx: context::with_here(context::Here::scope),
        _marker: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| op(&scope)));
    // SAFETY: `scope` lives until after `wait` below.
    unsafe { CountLatch::decrement(&scope.latch) };
    scope.latch.wait();
    if let Some(payload) = scope.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        panic::resume_unwind(payload);
    }
    result.unwrap_or_else(|payload| panic::resume_unwind(payload))
}
