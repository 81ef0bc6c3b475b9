//! Parking idle workers and waking them when work appears.
//!
//! Why no wake-up is lost (`README.md`, "Sleeping without losing a
//! wake-up"): a sleeper announces itself, fences (`SeqCst`), then looks for
//! work once more before it parks; a pusher pushes, fences, then reads the
//! sleeper count. Either the sleeper's last look sees the work, or the
//! pusher sees the sleeper and unparks one (an unpark before `park` leaves
//! a token). A worker pushing on its own deque skips the fence
//! ([`Sleep::notify_local`]): it runs that job itself if nobody steals it,
//! so a missed wake-up costs parallelism for a moment, never progress. One
//! sleeper is woken per push; a worker that steals and leaves work behind
//! wakes the next.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::placement::{self, Place};

pub(crate) struct Sleep {
    sleepers: Mutex<Vec<usize>>,
    /// `sleepers.len()`, readable without the lock.
    count: AtomicUsize,
    threads: Box<[OnceLock<Thread>]>,
    /// To wake a worker off its waker's CPU (`placement.rs`), if the
    /// runtime was built to (`Builder::steer_wakeups`).
    places: Option<Box<[Place]>>,
    /// Wake-ups that steered the sleeper (a statistic).
    steered: AtomicU64,
    /// Workers that found nothing to run (spinning, helping with nothing
    /// to help with, or asleep): while there are any, a busy worker shows
    /// one hidden job at each join (`WorkerThread::push_join`).
    looking: CachePadded<AtomicUsize>,
}

impl Sleep {
    pub(crate) fn new(workers: usize, steer: bool) -> Sleep {
        Sleep {
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            count: AtomicUsize::new(0),
            threads: (0..workers).map(|_| OnceLock::new()).collect(),
            places: steer.then(|| (0..workers).map(|_| Place::default()).collect()),
            steered: AtomicU64::new(0),
            looking: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// How many workers look for work. Relaxed, here and in the updates: a
    /// hint. Read late, a hidden job stays hidden until the next join; its
    /// owner runs it all the same, so only parallelism waits, never
    /// progress.
    #[inline]
    pub(crate) fn looking(&self) -> usize {
        self.looking.load(Ordering::Relaxed)
    }

    pub(crate) fn start_looking(&self) {
        self.looking.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stop_looking(&self) {
        self.looking.fetch_sub(1, Ordering::Relaxed);
    }

    /// Called once by each worker thread before it can sleep.
    pub(crate) fn register(&self, index: usize) {
        let _ = self.threads[index].set(std::thread::current());
        if let Some(places) = &self.places {
            places[index].register();
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        // Nothing under this lock panics; poison cannot happen.
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks worker `index` unless `ready()` turns true after it announced
    /// itself; returns when woken, when `deadline` passes, or at once if ready.
    pub(crate) fn sleep(&self, index: usize, ready: impl Fn() -> bool, deadline: Option<Instant>) {
        {
            let mut list = self.list();
            list.push(index);
            self.count.store(list.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if !ready() {
            match deadline {
                None => std::thread::park(),
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
        let mut list = self.list();
        if let Some(i) = list.iter().position(|&w| w == index) {
            list.swap_remove(i);
            self.count.store(list.len(), Ordering::Relaxed);
        }
        // Still under the list lock: a waker that steered us did so under it.
        if let Some(places) = &self.places {
            places[index].restore();
        }
    }

    /// After making work available: wake one sleeper, if there is one.
    /// For threads outside the pool; workers call [`Sleep::notify_from_worker`].
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) != 0 {
            self.wake_one(None);
        }
    }

    /// [`Sleep::notify_one`] for a worker, which keeps running after the
    /// wake-up: when steering, the sleeper is kept off this CPU
    /// (`placement.rs`).
    pub(crate) fn notify_from_worker(&self) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) != 0 {
            let here = self.places.as_ref().map(|_| placement::current_cpu());
            self.wake_one(here);
        }
    }

    /// After a worker pushed on its own deque: wake a sleeper if one is
    /// visible, without the fence (see the module docs for why that is safe).
    #[inline]
    pub(crate) fn notify_local(&self) {
        if self.count.load(Ordering::Relaxed) != 0 {
            self.notify_from_worker();
        }
    }

    /// Wakes the sleeper that went to sleep last; a worker waker passes its
    /// CPU, `here`, which the sleeper is steered off.
    fn wake_one(&self, here: Option<i32>) {
        let woken = {
            let mut list = self.list();
            let woken = list.pop();
            if let (Some(index), Some(cpu), Some(places)) = (woken, here, &self.places) {
                if places[index].steer_away_from(cpu) {
                    self.steered.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.count.store(list.len(), Ordering::Relaxed);
            woken
        };
        if let Some(index) = woken {
            self.unpark(index);
        }
    }

    /// Waits (yielding) until exactly `n` workers are listed asleep; fails
    /// after a minute instead of hanging.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn wait_for_sleepers(&self, n: usize) {
        wait_for("workers to sleep", || {
            self.count.load(Ordering::Relaxed) == n
        });
    }

    /// How many wake-ups steered their sleeper so far.
    pub(crate) fn steered_wakes(&self) -> u64 {
        self.steered.load(Ordering::Relaxed)
    }

    /// Wake every worker (shutdown).
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        {
            let mut list = self.list();
            list.clear();
            self.count.store(0, Ordering::Relaxed);
        }
        for index in 0..self.threads.len() {
            self.unpark(index);
        }
    }

    /// Worker `index`'s thread, to wake it directly.
    pub(crate) fn thread(&self, index: usize) -> Option<Thread> {
        self.threads[index].get().cloned()
    }

    fn unpark(&self, index: usize) {
        if let Some(thread) = self.threads[index].get() {
            thread.unpark();
        }
    }
}

/// Spins (yielding) until `cond`, failing after a minute instead of hanging.
#[cfg(all(test, not(loom)))]
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

// Not under Miri: the steering test needs the CPU affinity calls.
#[cfg(all(test, target_os = "linux", not(loom), not(miri)))]
mod tests {
    use super::wait_for;
    use crate::sched::placement::{cpus_to_steer_between, linux_own_cpus, AFFINITY_TESTS};
    use crate::Runtime;

    #[test]
    fn with_steering_a_worker_woken_by_a_worker_is_steered_and_runs_with_its_whole_set() {
        let _serial = AFFINITY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(home) = cpus_to_steer_between() else {
            return;
        };
        let rt = Runtime::builder()
            .workers(2)
            .steer_wakeups(true)
            .build()
            .unwrap();
        let pool = rt.handle().pool.clone();
        pool.sleep.wait_for_sleepers(2);
        let before = rt.stats().steered_wakes;
        let task = rt.spawn(move || {
            // On one worker, woken from outside (not steered); the other sleeps.
            pool.sleep.wait_for_sleepers(1);
            // A push on our own deque wakes the sleeper, steered off this CPU.
            let child = crate::spawn(linux_own_cpus);
            // Spin rather than wait: a helping wait could run the child here.
            wait_for("the child run by the other worker", || child.is_done());
            child.join().unwrap()
        });
        let child_cpus = task.join().unwrap();
        assert_eq!(rt.stats().steered_wakes, before + 1);
        assert_eq!(
            child_cpus, home,
            "the woken worker restored its CPUs before running"
        );
    }

    #[test]
    fn by_default_no_worker_changes_a_thread_s_affinity() {
        let _serial = AFFINITY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let calls = crate::sched::placement::affinity_calls();
        let rt = Runtime::builder().workers(2).build().unwrap();
        let h = rt.handle();
        // Wake-ups from outside and from workers, fork-join across both.
        for _ in 0..50 {
            let (a, b) = rt.join(|| h.join(|| 1, || 2), || h.spawn(|| 3).join());
            assert_eq!((a, b), ((1, 2), Ok(3)));
            rt.handle().pool.sleep.wait_for_sleepers(2);
        }
        assert_eq!(rt.stats().steered_wakes, 0);
        assert_eq!(crate::sched::placement::affinity_calls(), calls);
    }
}
