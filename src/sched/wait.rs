//! Waiting for a task: on a worker, by running other jobs meanwhile (a
//! helping wait, as rayon's); elsewhere, by parking the thread until the
//! task's done-callback unparks it.
//!
//! A helping wait runs jobs in the worker's find order, spins briefly when
//! there is nothing to run (what it waits for is usually a stolen half
//! that ends within microseconds), and only then sleeps; whoever completes
//! what it waits for unparks it. What it runs may be any queued job of the
//! pool.

use std::time::Instant;

use crossbeam_utils::Backoff;

use super::context;
use super::worker::WorkerThread;
use crate::task::id;
use crate::task::{Callback, TaskRef, Waited};

/// `TaskRef::wait_until` (the task vtable's `wait`): until `task` is done
/// or `deadline` passes; inside the task itself it returns at once.
pub(crate) fn wait(task: &TaskRef, deadline: Option<Instant>) -> Waited {
    // One thread-local access for both questions (a call in libwsrt.so).
    let (worker, current) = context::with_here(|h| (h.worker(), h.task()));
    if current == Some(task.as_ptr()) {
        return Waited::OnItself;
    }
    if id::inherited(task.id()) && !task.is_done() {
        return Waited::Forked;
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Waited::TimedOut;
    }
    let done = match worker {
        Some(worker) => worker.wait_for_task(task, deadline),
        None => block_until(task, deadline),
    };
    if done {
        Waited::Done
    } else {
        Waited::TimedOut
    }
}

/// Parks this thread (not a worker) until `task` is done or `deadline`.
fn block_until(task: &TaskRef, deadline: Option<Instant>) -> bool {
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

impl WorkerThread {
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
            self.end_lane_streak();
            if !prepared {
                prepared = true;
                if !prepare() {
                    return true;
                }
                continue;
            }
            let pool = &*self.pool;
            self.sleep(|| done() || pool.has_work(), deadline);
        }
    }

    /// [`wait`] on a worker: help until the task is done.
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
}
