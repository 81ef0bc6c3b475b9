//! A pool's timer: sleeping tasks (`wsrt_sleep`, `wsrt::sleep`) and group
//! deadlines.
//!
//! One binary heap of deadlines under a lock, serviced by one thread of
//! the pool's, started on first use, that sleeps until the earliest
//! deadline and fires what is due: a woken task is queued as a spawn from
//! outside the pool would be (the timer thread's lane). A heap rather than
//! a hashed wheel: the order is exact, an insert is O(log n), and the
//! thread wakes only at an expiry, never to tick, so an idle runtime with
//! any number of sleepers costs no CPU between expiries; the workers never
//! look at the clock for it. Entries are not removed when what they wake
//! goes away (a cancelled sleeper, a replaced deadline): they fire into
//! nothing at their time.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::Instant;

use super::group::GroupCore;
use super::pool::Pool;
use crate::task::TaskRef;

/// What a timer entry does when it is due.
pub(crate) enum Alarm {
    /// Wakes a task parked by `wsrt_sleep` (it owns a reference).
    Wake(TaskRef),
    /// Wakes a future's waker (`wsrt::sleep`), if one is still there.
    Waker(Arc<Mutex<Option<Waker>>>),
    /// Cancels a group whose deadline this is, unless it changed since.
    Deadline {
        group: Weak<GroupCore>,
        generation: u64,
    },
}

impl Alarm {
    fn fire(self) {
        match self {
            Alarm::Wake(task) => task.wake(),
            Alarm::Waker(slot) => {
                let waker = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Alarm::Deadline { group, generation } => {
                if let Some(group) = group.upgrade() {
                    if group.deadline_is(generation) {
                        group.cancel();
                    }
                }
            }
        }
    }
}

struct Entry {
    at: Instant,
    /// Insertion order, so that equal deadlines fire in it.
    seq: u64,
    alarm: Alarm,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap, the earliest must come out first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    seq: u64,
    thread: Option<JoinHandle<()>>,
    stop: bool,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    cv: Condvar,
}

impl Timer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing under this lock panics (alarms fire outside it).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fires `alarm` at `at` (at once if that has passed), starting the
    /// timer thread of `pool` on first use. After `stop`, the alarm is
    /// dropped unfired.
    pub(crate) fn insert(&self, pool: &Pool, at: Instant, alarm: Alarm) {
        let mut state = self.lock();
        if state.stop {
            return;
        }
        let earliest = state.heap.peek().map_or(true, |e| at < e.at);
        let seq = state.seq;
        state.seq += 1;
        state.heap.push(Entry { at, seq, alarm });
        if state.thread.is_none() {
            let timer = pool.timer_handle();
            let name = format!("{}-timer", pool.options.thread_name);
            // The default stack: a group deadline's cancel runs user code
            // here (`arg_drop`s, done-callbacks). Not a worker: the thread
            // hooks are not called on it.
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || timer.run());
            // Without a thread the entry waits for the next insert's try (a
            // sleeper whose runtime cannot start a thread oversleeps).
            if let Ok(thread) = spawned {
                state.thread = Some(thread);
            }
        } else if earliest {
            self.cv.notify_one();
        }
    }

    /// The timer thread: fires what is due, then sleeps until the next
    /// deadline (or an earlier insert, or `stop`).
    fn run(self: Arc<Self>) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            if state.stop {
                return;
            }
            let now = Instant::now();
            while state.heap.peek().is_some_and(|e| e.at <= now) {
                due.push(state.heap.pop().expect("peeked").alarm);
            }
            if !due.is_empty() {
                drop(state);
                for alarm in due.drain(..) {
                    alarm.fire();
                }
                state = self.lock();
                continue;
            }
            state = match state.heap.peek().map(|e| e.at) {
                None => self.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    self.cv
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Tells the timer thread to exit, without waiting for it (it may be
    /// the caller); what is still pending is dropped unfired (the pool is
    /// stopped: no task is left to wake). Later inserts are dropped too.
    pub(crate) fn halt(&self) {
        let pending = {
            let mut state = self.lock();
            state.stop = true;
            std::mem::take(&mut state.heap)
        };
        self.cv.notify_all();
        drop(pending);
    }

    /// [`halt`](Self::halt), then joins the timer thread. Not on that
    /// thread.
    pub(crate) fn stop(&self) {
        self.halt();
        let thread = self.lock().thread.take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
