//! Where a worker finds its next job: its own deque, then the queues of
//! threads outside the pool (lanes, then the injector), then other workers'
//! deques from a random victim; repeated while any source answered `Retry`
//! (crossbeam-deque's find order). `README.md` explains why a worker in a
//! streak of lane batches leaves a busy lane's newest tasks for later, and
//! why a worker that ran dry leaves the outside queues alone for a moment.

use std::time::Instant;

use super::job::JobRef;
use super::stats::Counter;
use super::tuning::{FIRST_LOOK_AFTER, LANE_STREAK, SPIN_AFTER_LOOK, STEAL_LIMIT};
use super::worker::WorkerThread;
use crate::sync::deque::Steal;

impl WorkerThread {
    pub(super) fn find_work(&self) -> Option<JobRef> {
        self.local.pop().or_else(|| self.steal())
    }

    fn steal(&self) -> Option<JobRef> {
        self.steal_from(true)
    }

    /// A job from another worker's deque (a batch may come onto this
    /// worker's deque with it).
    pub(super) fn steal_from_workers(&self) -> Option<JobRef> {
        self.steal_from(false)
    }

    /// A job from the queues of threads outside the pool, the lanes then
    /// the injector (a batch may come onto this worker's deque with it).
    pub(super) fn steal_from_outside(&self) -> Option<JobRef> {
        loop {
            let mut retry = false;
            if let Some(job) = self.steal_outside(&mut retry) {
                return Some(job);
            }
            if !retry {
                return None;
            }
        }
    }

    /// The tasks a lane keeps behind are fair game from here on.
    pub(super) fn end_lane_streak(&self) {
        self.lane_streak.set(0);
    }

    fn next_victim(&self, n: usize) -> usize {
        // xorshift64*: cheap and good enough to spread victims.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n
    }

    /// [`steal`](Self::steal), from other workers' deques only unless
    /// `outside` (the lanes and the injector).
    fn steal_from(&self, outside: bool) -> Option<JobRef> {
        let pool = &*self.pool;
        loop {
            let mut retry = false;
            if outside {
                if let Some(job) = self.steal_outside(&mut retry) {
                    return Some(job);
                }
            }
            let n = pool.stealers.len();
            let start = self.next_victim(n);
            for i in 0..n {
                let victim = (start + i) % n;
                if victim == self.index {
                    continue;
                }
                match pool.stealers[victim].steal_batch_and_pop(&self.local) {
                    Steal::Success(job) => {
                        // The popped job plus the batch left in our deque.
                        let stolen = 1 + self.local.len() as u64;
                        pool.counters
                            .add_owned_n(self.index, Counter::Steals, stolen);
                        if !pool.stealers[victim].is_empty() {
                            pool.sleep.notify_from_worker();
                        }
                        // The streak of lane batches ends: the tasks a lane
                        // keeps behind wait for no more than this batch.
                        self.end_lane_streak();
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Takes jobs queued from outside the pool: the lanes of threads that
    /// spawn first, then the injector, so that a yielded task (queued on the
    /// injector) runs after the spawns queued before it. After
    /// [`LANE_STREAK`] batches in a row from the lanes the injector goes
    /// first once: a thread that never stops spawning cannot starve it.
    fn steal_outside(&self, retry: &mut bool) -> Option<JobRef> {
        let mut left = false;
        if self.lane_streak.get() >= LANE_STREAK {
            self.end_lane_streak();
            return self
                .steal_injector(retry)
                .or_else(|| self.steal_lanes(retry, &mut left));
        }
        let job = self.steal_lanes(retry, &mut left);
        if job.is_some() || left {
            // Tasks a lane keeps behind for later still come before the
            // injector: nothing queued after them runs first.
            return job;
        }
        self.end_lane_streak();
        self.steal_injector(retry)
    }

    /// A batch from the lanes, counted in the streak. While the streak
    /// lasts, a lane still being pushed on that holds at most
    /// `tuning::LAG` tasks is left alone, and `left` set (`README.md`).
    fn steal_lanes(&self, retry: &mut bool, left: &mut bool) -> Option<JobRef> {
        let pool = &*self.pool;
        let keep_behind = self.lane_streak.get() > 0;
        match pool.lanes.steal_batch_and_pop(
            &self.local,
            self.index,
            keep_behind,
            &self.lane_looks,
            left,
        ) {
            Steal::Success(job) => {
                self.lane_streak.set(self.lane_streak.get() + 1);
                if pool.lanes.has_work() {
                    pool.sleep.notify_from_worker();
                }
                Some(job)
            }
            Steal::Retry => {
                *retry = true;
                None
            }
            Steal::Empty => None,
        }
    }

    /// A job from the injector, and up to half of the rest (at most
    /// [`STEAL_LIMIT`] in all) onto this worker's deque, which pops them in
    /// the injector's order. One steal each: the injector's own batch steal
    /// fills a crossbeam `Worker` only.
    fn steal_injector(&self, retry: &mut bool) -> Option<JobRef> {
        let pool = &*self.pool;
        let first = match pool.injector.steal() {
            Steal::Success(job) => job,
            Steal::Retry => {
                *retry = true;
                return None;
            }
            Steal::Empty => return None,
        };
        let more = (pool.injector.len() / 2).min(STEAL_LIMIT - 1);
        let mut batch = [first; STEAL_LIMIT];
        let mut n = 0;
        while n < more {
            match pool.injector.steal() {
                Steal::Success(job) => batch[n] = job,
                _ => break,
            }
            n += 1;
        }
        for &job in batch[..n].iter().rev() {
            self.local.push(job);
        }
        if !pool.injector.is_empty() {
            pool.sleep.notify_from_worker();
        }
        Some(first)
    }

    /// A short bounded spin before sleeping: work often arrives within
    /// microseconds of running out (fork-join, bursts). For the first
    /// [`FIRST_LOOK_AFTER`] it leaves the lanes and the injector alone
    /// (`README.md`). Then, once a look everywhere found nothing, the
    /// worker counts as looking for work (`WorkerThread::start_looking`),
    /// and stays counted while it sleeps: announced only then, a worker
    /// that finds work again at once (spawns from outside) writes no
    /// shared counter.
    pub(super) fn spin(&self) -> Option<JobRef> {
        let injector_after = Instant::now() + FIRST_LOOK_AFTER;
        while Instant::now() < injector_after {
            if let Some(job) = self.steal_from(false) {
                return Some(job);
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
        // After the pause the tasks a lane keeps are taken too.
        self.end_lane_streak();
        let until = Instant::now() + SPIN_AFTER_LOOK;
        loop {
            if let Some(job) = self.steal() {
                return Some(job);
            }
            // Nothing anywhere, after a while: busy workers may hand out
            // hidden join halves now (counted once, until a job is found).
            self.start_looking();
            if Instant::now() >= until {
                return None;
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
    }
}
