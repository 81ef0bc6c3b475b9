//! Cancellation: asyncio's rules, and that a closure is dropped exactly once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use wsrt::{Runtime, TaskError, TaskState};

mod common;
use common::{busy_runtime, DropCounter};

#[test]
fn cancel_pending_is_immediate_and_the_closure_never_runs() {
    let busy = busy_runtime();
    let ran = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicUsize::new(0));
    let (r, guard) = (ran.clone(), DropCounter(drops.clone()));
    let t = busy.rt.spawn(move || {
        let _guard = &guard;
        r.store(true, Ordering::SeqCst);
        1
    });
    assert_eq!(t.state(), TaskState::Pending);
    assert!(t.cancel());
    // Final before cancel() returned, closure dropped exactly once already.
    assert_eq!(t.state(), TaskState::Cancelled);
    assert!(t.is_cancelled() && t.is_done());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!t.cancel(), "cancel of a done task returns false");
    busy.release.wait();
    busy.blocker.join().unwrap();
    busy.rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(t.join(), Err(TaskError::Cancelled));
    let stats = busy.rt.stats();
    assert_eq!((stats.succeeded, stats.cancelled), (1, 1));
}

#[test]
fn cancel_running_only_requests_and_the_task_may_succeed() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let started = Arc::new(Barrier::new(2));
    let cancelled = Arc::new(Barrier::new(2));
    let (s, c) = (started.clone(), cancelled.clone());
    let t = rt.spawn(move || {
        assert!(!wsrt::cancel_requested());
        s.wait();
        c.wait();
        // Sees the request, ignores it.
        wsrt::cancel_requested()
    });
    started.wait();
    assert!(t.cancel());
    assert_eq!(t.state(), TaskState::Running);
    assert!(t.is_cancel_requested());
    cancelled.wait();
    t.wait();
    assert_eq!(t.state(), TaskState::Succeeded);
    assert!(!t.is_cancelled());
    assert!(!t.cancel());
    assert_eq!(t.join(), Ok(true));
}

#[test]
fn cancel_done_returns_false_and_changes_nothing() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let ok = rt.spawn(|| 1);
    ok.wait();
    assert!(!ok.cancel());
    assert_eq!(ok.state(), TaskState::Succeeded);
    let failed = rt.spawn(|| -> u8 { panic!("x") });
    failed.wait();
    assert!(!failed.cancel());
    assert_eq!(failed.state(), TaskState::Failed);
    assert_eq!(ok.join(), Ok(1));
}

#[test]
fn callbacks_of_a_cancelled_pending_task_run_on_the_cancelling_thread() {
    let busy = busy_runtime();
    let t = busy.rt.spawn(|| ());
    let here = std::thread::current().id();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    t.on_done(move |t| {
        *s.lock().unwrap() = Some((std::thread::current().id(), t.state()));
    });
    assert!(t.cancel());
    assert_eq!(*seen.lock().unwrap(), Some((here, TaskState::Cancelled)));
    busy.release.wait();
}

/// Cancel racing a worker starting the task: exactly one wins, every time.
#[test]
fn cancel_races_start_and_exactly_one_wins() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let mut cancelled_pending = 0;
    const N: usize = if cfg!(miri) { 200 } else { 20_000 };
    for _ in 0..N {
        let (r, guard) = (ran.clone(), DropCounter(drops.clone()));
        let t = rt.spawn(move || {
            let _g = &guard;
            r.fetch_add(1, Ordering::SeqCst);
        });
        if t.cancel() && t.state() == TaskState::Cancelled {
            cancelled_pending += 1;
        }
    }
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    let stats = rt.stats();
    assert_eq!(drops.load(Ordering::SeqCst), N);
    assert_eq!(ran.load(Ordering::SeqCst) + cancelled_pending, N);
    assert_eq!(stats.cancelled as usize, cancelled_pending);
    assert_eq!(stats.succeeded as usize + cancelled_pending, N);
}

/// Signals that its drop began, then blocks until released.
struct SlowDrop {
    entered: mpsc::Sender<()>,
    release: Arc<Barrier>,
}
impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.entered.send(()).unwrap();
        self.release.wait();
    }
}

#[test]
fn a_cancelled_task_is_done_only_after_its_closure_was_dropped() {
    let busy = busy_runtime();
    let (entered_tx, entered) = mpsc::channel();
    let release = Arc::new(Barrier::new(2));
    let guard = SlowDrop {
        entered: entered_tx,
        release: release.clone(),
    };
    let t = busy.rt.spawn(move || {
        let _guard = &guard;
    });
    let canceller = {
        let t = t.clone();
        std::thread::spawn(move || t.cancel())
    };
    entered.recv().unwrap();
    // The closure is being dropped on the canceller's thread: the task is
    // not done yet, so a wait would wait, and a callback added now runs
    // after the drop, not before.
    assert!(!t.is_done());
    assert!(!t.wait_timeout(std::time::Duration::ZERO));
    let ran_at = Arc::new(AtomicUsize::new(0));
    let r = ran_at.clone();
    t.on_done(move |_| {
        r.store(1, Ordering::SeqCst);
    });
    assert_eq!(
        ran_at.load(Ordering::SeqCst),
        0,
        "a callback ran before the drop ended"
    );
    release.wait();
    assert!(canceller.join().unwrap());
    assert_eq!(t.state(), TaskState::Cancelled);
    assert_eq!(ran_at.load(Ordering::SeqCst), 1);
    busy.release.wait();
    busy.blocker.join().unwrap();
}
