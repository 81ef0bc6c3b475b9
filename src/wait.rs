//! Waiting for several tasks, [`wait_any`] (asyncio's `wait` with
//! `FIRST_COMPLETED`) and [`wait_all`] (`gather`), and the isolated wait
//! of one ([`TaskRef::wait_isolated`]). The waits themselves, and the
//! rules every wait keeps, are the scheduler's (`sched/wait.rs`).

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sched::wait;
use crate::task::{TaskRef, Waited};

/// Waits until at least one of `tasks` is done, and returns the index of
/// one that is (the first, in the order given). On a worker thread it runs
/// other tasks meanwhile.
///
/// ```
/// let rt = wsrt::Runtime::builder().workers(2).build().unwrap();
/// let (fast, slow) = (rt.spawn(|| 1), rt.spawn(|| loop {
///     if wsrt::cancel_requested() { break 2 }
/// }));
/// assert_eq!(wsrt::wait_any(&[&slow, &fast]), 1);
/// slow.cancel();
/// wsrt::wait_all(&[&fast, &slow]);
/// ```
///
/// # Panics
/// If `tasks` is empty (nothing could ever be done), if every one is the
/// task that calls it, or in a child process on tasks of a runtime
/// inherited through `fork()`.
pub fn wait_any(tasks: &[&TaskRef]) -> usize {
    assert!(!tasks.is_empty(), "wait_any of no task would never return");
    match wait::wait_any(tasks, None) {
        Ok(i) => i,
        Err(Waited::OnItself) => panic!("a task cannot wait for itself (it would never finish)"),
        Err(_) => panic!("the tasks' runtime was inherited through fork()"),
    }
}

/// Like [`wait_any`], at most `timeout` (during which it runs no task, so
/// that it returns on time): `Err(Error::Timeout)` if none is done then.
pub fn wait_any_timeout(tasks: &[&TaskRef], timeout: Duration) -> Result<usize, Error> {
    if tasks.is_empty() {
        return Err(Error::InvalidArgument("wait_any of no task"));
    }
    wait::wait_any(tasks, Instant::now().checked_add(timeout)).map_err(error_of)
}

/// Waits until every one of `tasks` is done. On a worker thread it runs
/// other tasks meanwhile.
///
/// # Panics
/// If one of them is the task that calls it, or in a child process on
/// tasks of a runtime inherited through `fork()`.
pub fn wait_all(tasks: &[&TaskRef]) {
    match wait::wait_all(tasks, None) {
        Waited::Done | Waited::TimedOut => {}
        Waited::OnItself => panic!("a task cannot wait for itself (it would never finish)"),
        Waited::Forked => panic!("the tasks' runtime was inherited through fork()"),
    }
}

/// Like [`wait_all`], at most `timeout`: `Err(Error::Timeout)` if one is
/// not done then.
pub fn wait_all_timeout(tasks: &[&TaskRef], timeout: Duration) -> Result<(), Error> {
    match wait::wait_all(tasks, Instant::now().checked_add(timeout)) {
        Waited::Done => Ok(()),
        other => Err(error_of(other)),
    }
}

pub(crate) fn error_of(waited: Waited) -> Error {
    match waited {
        Waited::TimedOut | Waited::Done => Error::Timeout,
        Waited::OnItself => Error::WouldDeadlock,
        Waited::Forked => Error::Forked,
    }
}

impl TaskRef {
    /// Like [`wait`](TaskRef::wait), but on a worker it runs only this task
    /// and tasks spawned (directly or further down) inside this wait, never
    /// another queued task: a task that holds a lock while it waits is
    /// never handed one that takes the same lock (rayon issue #592;
    /// oneTBB's `isolate`). Waits nested inside it are isolated the same
    /// way, and so is this task's own run, on whichever worker runs it. If
    /// the task already runs on another worker when this wait begins, its
    /// waits for tasks are isolated from the next task they take other
    /// than the one they wait for; a task it spawned before then is not
    /// isolated.
    /// Outside the pool it waits as [`wait`](TaskRef::wait) does, the task
    /// isolated all the same.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let rt = wsrt::Runtime::builder().workers(1).build().unwrap();
    /// let lock = Arc::new(Mutex::new(0));
    /// let l = lock.clone();
    /// let outer = rt.spawn(move || {
    ///     let mut guard = l.lock().unwrap();
    ///     let rt = wsrt::Handle::current().unwrap();
    ///     let child = rt.spawn(|| 41);
    ///     // Queued after the child: a task that takes the lock. A plain
    ///     // wait runs the newest first, here, and would deadlock.
    ///     let l2 = l.clone();
    ///     let _other = rt.spawn(move || *l2.lock().unwrap() += 1);
    ///     child.wait_isolated();
    ///     *guard += child.join().unwrap();
    /// });
    /// outer.wait();
    /// rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    /// assert_eq!(*lock.lock().unwrap(), 42);
    /// ```
    ///
    /// # Panics
    /// As [`wait`](TaskRef::wait).
    pub fn wait_isolated(&self) {
        match self.wait_isolated_until(None) {
            Waited::Done | Waited::TimedOut => {}
            Waited::OnItself => panic!("a task cannot wait for itself (it would never finish)"),
            Waited::Forked => panic!("the task's runtime was inherited through fork()"),
        }
    }

    /// Like [`wait_isolated`](TaskRef::wait_isolated) with a time limit
    /// (during which it runs no task); true if the task is done.
    pub fn wait_isolated_timeout(&self, timeout: Duration) -> bool {
        self.wait_isolated_until(Instant::now().checked_add(timeout)) == Waited::Done
    }

    fn wait_isolated_until(&self, deadline: Option<Instant>) -> Waited {
        if self.is_done() {
            return Waited::Done;
        }
        wait::wait_isolated(self, deadline)
    }
}
