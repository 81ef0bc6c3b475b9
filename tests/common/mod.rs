//! What several test files share: a drop counter, a one-worker runtime
//! held busy, and waits for states that are certain to come.
#![allow(dead_code)] // each test file uses a part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use wsrt::{Runtime, ShutdownMode, TaskState};

/// Counts drops of the value a closure captures.
pub struct DropCounter(pub Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A 1-worker runtime whose worker is held by an ungrouped task until
/// `release`.
pub struct Busy {
    pub rt: Runtime,
    pub release: Arc<Barrier>,
    pub blocker: wsrt::Task<()>,
}

pub fn busy_runtime() -> Busy {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (s, r) = (started.clone(), release.clone());
    let blocker = rt.spawn(move || {
        s.wait();
        r.wait();
    });
    started.wait();
    Busy {
        rt,
        release,
        blocker,
    }
}

impl Busy {
    /// After `release`: the blocker ends, the runtime drains.
    pub fn finish(self) {
        self.blocker.join().unwrap();
        self.rt.shutdown(ShutdownMode::Drain).unwrap();
    }
}

/// Spins (yielding) until `f()`; fails after a generous time (valgrind and
/// the sanitizers are slow), so a bug fails the test instead of hanging it.
pub fn wait_until(mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < end, "condition never came");
        std::thread::yield_now();
    }
}

/// Spins until `t` is in `state` (see [`wait_until`]).
pub fn wait_for_state(t: &wsrt::TaskRef, state: TaskState) {
    wait_until(|| t.state() == state);
}
