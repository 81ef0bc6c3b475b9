//! Fork-join without allocation: the public [`join`]. The stack jobs and
//! the helping wait behind it are the scheduler's (`sched/job.rs`).

use crate::runtime::global;
use crate::sched::job;
use crate::sched::worker::WorkerThread;

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
        Some(w) => job::join_on(w, a, b),
        None => job::join_in(&global().pool, a, b),
    }
}
