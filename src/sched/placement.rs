//! Keeping a worker woken by another worker off the waker's CPU (Linux; a
//! no-op elsewhere). Off unless a runtime is built with
//! `Builder::steer_wakeups(true)`: it changes the affinity of the
//! library's own threads only, and its win was measured on one host.
//!
//! A worker wakes a sibling so that the two run at once: the waker goes on
//! with its own work. Linux does not know that, and may queue the woken
//! worker on the waker's busy CPU although its own is idle, until a
//! load-balance tick moves one of them. So a worker that wakes a sibling
//! first narrows the sleeper's affinity to the CPUs it started with minus
//! the waker's own, and the sleeper widens it back as soon as it is awake:
//! two `sched_setaffinity` calls per such wake-up. A thread outside the
//! pool wakes without steering: it usually blocks next, and the sleeper
//! taking over its CPU is the fastest wake-up there is.
//!
//! A worker restores the affinity it had when it started; a mask changed by
//! someone else while a worker was asleep and steered is overwritten, and a
//! worker whose set has a single CPU, or lacks the waker's, is not steered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// `sched_setaffinity` calls made by any runtime of the process, for the
/// tests that check a default runtime makes none.
static AFFINITY_CALLS: AtomicU64 = AtomicU64::new(0);

/// How many `sched_setaffinity` calls wsrt made so far in this process.
#[cfg(all(test, not(loom)))]
pub(crate) fn affinity_calls() -> u64 {
    AFFINITY_CALLS.load(Relaxed)
}

/// Held by every test that makes `sched_setaffinity` calls or counts them
/// (the count is the process's, and tests run in parallel).
#[cfg(all(test, target_os = "linux", not(loom), not(miri)))]
pub(crate) static AFFINITY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a waker needs to steer one worker.
pub(crate) struct Place {
    /// Its affinity was narrowed by a waker and must be restored.
    steered: AtomicBool,
    #[cfg(target_os = "linux")]
    os: std::sync::OnceLock<linux::Thread>,
}

impl Default for Place {
    fn default() -> Self {
        Place {
            steered: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            os: std::sync::OnceLock::new(),
        }
    }
}

impl Place {
    /// On the worker's own thread, once, before it can sleep.
    pub(crate) fn register(&self) {
        #[cfg(target_os = "linux")]
        let _ = self.os.set(linux::Thread::current());
    }

    /// Keeps the (sleeping) worker off `cpu` until it [`restore`](Self::restore)s;
    /// false if it could not (one CPU, `cpu` not in its set, not Linux).
    ///
    /// Called by the waker with the sleeper list locked, as `restore` is:
    /// the lock orders a steer before the restore that undoes it.
    pub(crate) fn steer_away_from(&self, cpu: i32) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(thread) = self.os.get() {
            if thread.exclude(cpu) {
                self.steered.store(true, Relaxed);
                return true;
            }
        }
        let _ = cpu;
        false
    }

    /// On the worker's own thread once awake, with the sleeper list locked.
    pub(crate) fn restore(&self) {
        if self.steered.load(Relaxed) {
            self.steered.store(false, Relaxed);
            #[cfg(target_os = "linux")]
            if let Some(thread) = self.os.get() {
                thread.restore();
            }
        }
    }
}

/// The CPU this thread is running on, or -1.
pub(crate) fn current_cpu() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu has no preconditions; it reads the CPU
        // number (from rseq or the vDSO) and returns -1 on failure.
        unsafe { libc::sched_getcpu() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        -1
    }
}

/// The CPUs the calling thread may run on now (for tests).
#[cfg(all(test, target_os = "linux", not(loom), not(miri)))]
pub(crate) fn linux_own_cpus() -> Vec<usize> {
    linux::own_cpus()
}

/// For tests that steer: this thread's CPUs, or `None` (saying so) when
/// there is only one and so nothing to steer away from.
#[cfg(all(test, target_os = "linux", not(loom), not(miri)))]
pub(crate) fn cpus_to_steer_between() -> Option<Vec<usize>> {
    let cpus = linux::own_cpus();
    if cpus.len() < 2 {
        eprintln!("one CPU available: nothing to steer away from");
        return None;
    }
    Some(cpus)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem;

    /// A thread id with the CPU set the thread started with.
    pub(super) struct Thread {
        tid: libc::pid_t,
        home: libc::cpu_set_t,
    }

    impl Thread {
        pub(super) fn current() -> Thread {
            // SAFETY: cpu_set_t is a plain bit array; all zeroes is the
            // empty set, a valid value.
            let mut home: libc::cpu_set_t = unsafe { mem::zeroed() };
            // On failure `home` is emptied, which `exclude` treats as "never
            // steer".
            // SAFETY: gettid has no preconditions; sched_getaffinity(0, ..)
            // writes at most size_of::<cpu_set_t>() bytes, `home`'s size.
            let tid = unsafe {
                if libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut home) != 0 {
                    home = mem::zeroed();
                }
                libc::gettid()
            };
            Thread { tid, home }
        }

        /// Narrows the thread's affinity to its home set without `cpu`;
        /// false (nothing changed) when that would leave no CPU.
        pub(super) fn exclude(&self, cpu: i32) -> bool {
            let mut set = self.home;
            match usize::try_from(cpu) {
                Ok(cpu) if contains(&set, cpu) => {
                    // SAFETY: `contains` checked that `cpu` is inside the set.
                    unsafe { libc::CPU_CLR(cpu, &mut set) }
                }
                _ => return false,
            }
            // `tid` is a live worker of this process: the waker took it off
            // the sleeper list, and it leaves `Sleep::sleep` (and can exit)
            // only after taking that list's lock, which the waker holds.
            super::AFFINITY_CALLS.fetch_add(1, super::Relaxed);
            // SAFETY: CPU_COUNT reads `set`, a valid cpu_set_t of the size
            // passed to sched_setaffinity, which only reads it.
            unsafe {
                libc::CPU_COUNT(&set) > 0
                    && libc::sched_setaffinity(self.tid, mem::size_of_val(&set), &set) == 0
            }
        }

        /// Gives the thread its home set back; called on the thread itself.
        pub(super) fn restore(&self) {
            super::AFFINITY_CALLS.fetch_add(1, super::Relaxed);
            // SAFETY: as in `exclude`; a failure leaves the narrowed set,
            // which still contains CPUs, so the worker keeps running.
            unsafe {
                libc::sched_setaffinity(self.tid, mem::size_of_val(&self.home), &self.home);
            }
        }
    }

    /// Whether `cpu` is in `set` (false beyond the set's size).
    pub(super) fn contains(set: &libc::cpu_set_t, cpu: usize) -> bool {
        // SAFETY: CPU_ISSET reads one bit of `set`; `cpu` is below
        // CPU_SETSIZE, the number of bits in a cpu_set_t.
        cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, set) }
    }

    /// The CPUs the calling thread may run on now.
    #[cfg(all(test, not(loom)))]
    pub(super) fn own_cpus() -> Vec<usize> {
        let now = Thread::current().home;
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| contains(&now, c))
            .collect()
    }
}

#[cfg(all(test, target_os = "linux", not(loom), not(miri)))]
mod tests {
    use super::*;
    use crate::sched::placement::{cpus_to_steer_between, linux_own_cpus as own_cpus};
    use std::sync::{mpsc, Arc};

    #[test]
    fn a_steered_thread_loses_one_cpu_until_it_restores() {
        let _serial = AFFINITY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(home) = cpus_to_steer_between() else {
            return;
        };
        let place = Arc::new(Place::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let sleeper = {
            let place = place.clone();
            std::thread::spawn(move || {
                place.register();
                ready_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                let steered = own_cpus();
                place.restore();
                (steered, own_cpus())
            })
        };
        ready_rx.recv().unwrap();
        let away = home[0] as i32;
        assert!(!place.steer_away_from(-1));
        assert!(!place.steer_away_from(libc::CPU_SETSIZE));
        assert!(place.steer_away_from(away));
        go_tx.send(()).unwrap();
        let (steered, restored) = sleeper.join().unwrap();
        assert_eq!(steered, home[1..]);
        assert_eq!(restored, home);
    }

    #[test]
    fn an_unregistered_place_is_never_steered() {
        assert!(!Place::default().steer_away_from(0));
    }
}
