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
/// `b` runs on another worker only if one is idle: while every worker is
/// busy, `b` stays with its worker, which takes it back after `a` at the
/// cost of a few loads and stores; once a worker looks for work, each join
/// on a busy worker hands out its oldest pending `b`. So `a` must not wait
/// for `b` (nor for anything only `b` does): it may run first, alone.
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
