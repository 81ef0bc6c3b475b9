//! Shutting a pool down: the mode, and how the last task's end is seen.
//!
//! The mode only moves forward: RUNNING → DRAINING or CANCELLING → STOPPED.
//! Once it leaves RUNNING, spawns from outside the pool are refused;
//! DRAINING still accepts spawns from its own workers (running tasks may
//! need children to finish), CANCELLING refuses them and cancels every
//! queued or suspended task (running ones get a cancel request).
//!
//! Shutdown first *closes* the task list's shards, where threads outside
//! the pool count their spawns and every thread counts the ends it does
//! not count in its own worker's slots, then moves the mode, then checks.
//! The pool is STOPPED by whichever thread first sees every spawned task
//! counted as done while shutting down: an idle worker (after its sleep
//! fence), shutdown itself, or an outside thread that finished a task after
//! the close (after a fence of its own). The fences make it impossible for
//! all of them to miss the last end (`docs/design.md`, "Shutdown").
//!
//! STOPPED means no task is live and none can start. Worker threads keep
//! serving non-task jobs (`join`, `scope`) until the `Runtime` is dropped,
//! which joins them.

use std::sync::atomic::{fence, Ordering};
use std::time::Instant;

use super::pool::Pool;
use super::stats::Counter;
use super::worker::WorkerThread;

pub(super) const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CANCELLING: u8 = 2;
const STOPPED: u8 = 3;

/// How a shutdown treats tasks that are not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Refuse new spawns from outside, let every task finish.
    Drain,
    /// Refuse new spawns, cancel every pending or suspended task, request
    /// cancellation of running ones, then wait for them.
    Cancel,
}

impl Pool {
    pub(crate) fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }

    /// True once shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.mode() != RUNNING
    }

    pub(crate) fn is_cancelling(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == CANCELLING
    }

    /// The `Runtime` was dropped and no task is live: workers may exit.
    pub(crate) fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire) && self.mode() == STOPPED
    }

    /// Admits a spawn from one of this pool's workers and counts it.
    /// False: refused (and not counted). Spawns from outside are admitted
    /// and counted by the task list (`insert_outside`).
    pub(super) fn admit(&self, w: &WorkerThread) -> bool {
        let mode = self.mode();
        if mode == RUNNING || mode == DRAINING {
            self.counters.add_owned(w.index, Counter::Spawned);
            true
        } else {
            false
        }
    }

    /// After a task was finished outside the pool once shutdown began, or
    /// by shutdown itself.
    pub(crate) fn after_external_completion(&self) {
        fence(Ordering::SeqCst);
        self.check_quiescent();
    }

    /// While shutting down: stop if every spawned task is done. Callers
    /// issue a `SeqCst` fence after their own counts (module docs).
    pub(crate) fn check_quiescent(&self) {
        let mode = self.mode();
        if (mode == DRAINING || mode == CANCELLING) && self.counters.all_done(&self.tasks) {
            self.stop();
        }
    }

    fn stop(&self) {
        if self.mode.swap(STOPPED, Ordering::SeqCst) == STOPPED {
            return;
        }
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stopped_cv.notify_all();
        self.sleep.notify_all();
        // No task is live: nothing is left to wake. The timer thread exits
        // (`Runtime`'s drop joins it; this may run on that thread itself).
        self.timer.halt();
    }

    /// Moves the mode forward to `mode`'s (STOPPED stays STOPPED) and, for
    /// `Cancel`, cancels what is not running. Does not wait.
    pub(crate) fn begin_shutdown(&self, mode: ShutdownMode) {
        let target = match mode {
            ShutdownMode::Drain => DRAINING,
            ShutdownMode::Cancel => CANCELLING,
        };
        // Outside spawns are refused from here on, outside cancels check.
        self.tasks.close();
        let _ = self
            .mode
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                (m < target).then_some(target)
            });
        fence(Ordering::SeqCst);
        if self.mode() == CANCELLING {
            for task in self.tasks.live_tasks() {
                // Pending and suspended tasks end now; running ones are asked.
                let _ = task.cancel();
            }
        }
        self.sleep.notify_all();
        self.after_external_completion();
    }

    /// Shuts down and waits until no task is live, or until `deadline`
    /// passes: true if stopped. The caller is not one of this pool's
    /// workers (it would wait for itself).
    pub(crate) fn shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) -> bool {
        debug_assert!(!self.is_own_worker());
        self.begin_shutdown(mode);
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            stopped = match deadline {
                None => self
                    .stopped_cv
                    .wait(stopped)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.stopped_cv
                        .wait_timeout(stopped, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }

    /// The `Runtime` is going: idle workers exit once no task is live.
    pub(crate) fn set_exiting(&self) {
        self.exiting.store(true, Ordering::Release);
        self.sleep.notify_all();
    }
}
