//! Waits that keep their promises: isolated waits never hand a task that
//! holds a lock another task taking the same lock (rayon #592); timed waits
//! never start a task that could make them late; waits for several tasks.
//!
//! Every scenario that could deadlock runs under a watchdog, so a bug fails
//! the test instead of hanging it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use wsrt::{Error, Runtime, TaskState};

/// Runs `f` on a thread of its own; fails if it does not finish in time.
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what}: no answer in 120 s (deadlocked?)"))
}

thread_local! {
    /// Set while this thread holds the test's lock.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs the child the lock holder waits for.
    static IN_CHILD: Cell<bool> = const { Cell::new(false) };
}

/// How the task holding the lock waits for its child.
#[derive(Clone, Copy)]
enum How {
    Plain,
    Isolated,
}

/// rayon #592: a task takes a lock, spawns a child, then queues tasks that
/// take the same lock, and waits for the child while holding the lock.
/// Returns how many of those tasks ran on the waiting thread while it held
/// the lock, or inside the child's run on any thread (which the holder
/// waits for): each would have deadlocked on the lock, so they only count
/// instead, and the hazard shows as a number rather than a hang. The others
/// take the lock for real.
fn lock_holder_waits(workers: usize, how: How) -> usize {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    let lock = Arc::new(Mutex::new(0u32));
    let reentered = Arc::new(AtomicUsize::new(0));
    let (l, r) = (lock.clone(), reentered.clone());
    let outer = rt.spawn(move || {
        let here = wsrt::Handle::current().unwrap();
        let mut guard = l.lock().unwrap();
        HOLDING.with(|h| h.set(true));
        let child = here.spawn(|| {
            IN_CHILD.with(|c| c.set(true));
            // A nested wait inside the isolated one is isolated too, also
            // when this run began on another worker before that wait did.
            let grandchild = wsrt::Handle::current().unwrap().spawn(|| 20);
            let sum = grandchild.join().unwrap() + 1;
            IN_CHILD.with(|c| c.set(false));
            sum
        });
        let takers: Vec<_> = (0..16)
            .map(|_| {
                let (l, r) = (l.clone(), r.clone());
                here.spawn(move || {
                    if HOLDING.with(Cell::get) || IN_CHILD.with(Cell::get) {
                        r.fetch_add(1, Ordering::SeqCst);
                    } else {
                        *l.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        match how {
            How::Plain => child.wait(),
            How::Isolated => child.wait_isolated(),
        }
        *guard += child.join().unwrap();
        HOLDING.with(|h| h.set(false));
        drop(guard);
        takers
    });
    let takers = outer.join().unwrap();
    for t in takers {
        t.join().unwrap();
    }
    let reentered = reentered.load(Ordering::SeqCst);
    let expected = 21 + 16 - reentered as u32;
    assert_eq!(*lock.lock().unwrap(), expected);
    reentered
}

#[test]
fn a_plain_wait_holding_a_lock_runs_tasks_that_take_it() {
    // The hazard the isolated wait exists for: on one worker, a plain
    // helping wait runs the queued takers (newest first) on the thread
    // that holds the lock.
    let reentered = watchdog("plain wait", || lock_holder_waits(1, How::Plain));
    assert_eq!(reentered, 16);
}

#[test]
fn an_isolated_wait_holding_a_lock_runs_only_its_own_tasks_on_one_worker() {
    let reentered = watchdog("isolated wait, 1 worker", || {
        lock_holder_waits(1, How::Isolated)
    });
    assert_eq!(reentered, 0);
}

#[test]
fn an_isolated_wait_holding_a_lock_runs_only_its_own_tasks_on_two_workers() {
    for _ in 0..100 {
        let reentered = watchdog("isolated wait, 2 workers", || {
            lock_holder_waits(2, How::Isolated)
        });
        assert_eq!(reentered, 0);
    }
}

#[test]
fn an_isolated_wait_finds_its_task_in_another_workers_deque_behind_outside_work() {
    // The awaited task sits in the deque of a worker that is blocked, and
    // tasks the wait may not run are queued from outside, more than a lane
    // keeps behind for later, so the wait takes them first: those it puts
    // aside on the injector must not hide the deque where its task is.
    let answer = watchdog("isolated wait, task in a blocked worker's deque", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (to_main, from_spawner) = mpsc::channel();
        let (to_waiter, from_main) = mpsc::channel::<wsrt::Task<usize>>();
        let (release, gate) = mpsc::channel::<()>();
        // Each takes a worker and blocks: the waiter until it gets the task
        // to wait for, the spawner (after spawning that task onto its own
        // deque) until the wait is over.
        let waiter = rt.spawn(move || {
            let awaited = from_main.recv().unwrap();
            awaited.wait_isolated();
            awaited.join().unwrap()
        });
        let spawner = rt.spawn(move || {
            let me = wsrt::Handle::current().unwrap();
            to_main.send(me.spawn(|| 7)).unwrap();
            gate.recv().unwrap();
        });
        let awaited = from_spawner.recv().unwrap();
        let outside: Vec<_> = (0..300).map(|i| rt.spawn(move || i)).collect();
        to_waiter.send(awaited).unwrap();
        let answer = waiter.join().unwrap();
        release.send(()).unwrap();
        spawner.join().unwrap();
        let sum: usize = outside.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, 300 * 299 / 2);
        answer
    });
    assert_eq!(answer, 7);
}

/// A one-worker runtime running a task that waits, with a long task queued
/// behind it on the same worker that must not start during the wait, and
/// something to wait for that never ends in time (a task of another
/// runtime, blocked).
fn timed_wait_with_long_task_queued<T: Send + 'static>(
    wait: impl FnOnce(&wsrt::TaskRef) -> T + Send + 'static,
) -> (T, bool) {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let other = Runtime::builder().workers(1).build().unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let never = other.spawn(move || gate.recv().unwrap());
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let waiter = rt.spawn(move || {
        let (release_long, long_gate) = mpsc::channel::<()>();
        let s2 = s.clone();
        let long = wsrt::Handle::current().unwrap().spawn(move || {
            s2.store(true, Ordering::SeqCst);
            long_gate.recv().unwrap();
        });
        let out = wait(&never);
        let long_started = s.load(Ordering::SeqCst);
        release_long.send(()).unwrap();
        drop(long);
        (out, long_started)
    });
    let (out, long_started) = waiter.join().unwrap();
    release.send(()).unwrap();
    (out, long_started)
}

#[test]
fn a_timed_task_wait_starts_no_task_and_times_out() {
    let (done, long_started) = watchdog("timed wait", || {
        timed_wait_with_long_task_queued(|t| t.wait_timeout(Duration::from_millis(20)))
    });
    assert!(!done);
    assert!(
        !long_started,
        "a timed wait started a task that could make it late"
    );
}

#[test]
fn timed_isolated_any_and_all_waits_start_no_task_either() {
    let (timed_out, long_started) = watchdog("timed waits", || {
        timed_wait_with_long_task_queued(|t| {
            let d = Duration::from_millis(10);
            [
                !t.wait_isolated_timeout(d),
                matches!(wsrt::wait_any_timeout(&[t], d), Err(Error::Timeout)),
                matches!(wsrt::wait_all_timeout(&[t], d), Err(Error::Timeout)),
            ]
        })
    });
    assert_eq!(timed_out, [true; 3]);
    assert!(!long_started);
}

#[test]
fn a_timed_group_wait_starts_no_task() {
    let (timed_out, long_started) = watchdog("timed group wait", || {
        timed_wait_with_long_task_queued(|_| {
            let here = wsrt::Handle::current().unwrap();
            let g = here.group();
            let (release, gate) = mpsc::channel::<()>();
            // The group's own task is queued too: even that one is not run.
            let t = g.spawn(move || gate.recv().unwrap());
            let timed_out = !g.wait_timeout(Duration::from_millis(10));
            let state = t.state();
            release.send(()).unwrap();
            (timed_out, state)
        })
    });
    assert_eq!(timed_out, (true, TaskState::Pending));
    assert!(!long_started);
}

#[test]
fn wait_any_gives_the_first_done_in_the_order_given() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let slow = rt.spawn(move || gate.recv().unwrap());
    let a = rt.spawn(|| 1);
    let b = rt.spawn(|| 2);
    a.wait();
    b.wait();
    assert_eq!(wsrt::wait_any(&[&slow, &b, &a]), 1);
    assert!(matches!(
        wsrt::wait_any_timeout(&[&slow], Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        wsrt::wait_any_timeout(&[], Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    // Waited for again and again, while it runs: still answers.
    for _ in 0..100 {
        assert!(matches!(
            wsrt::wait_any_timeout(&[&slow], Duration::ZERO),
            Err(Error::Timeout)
        ));
    }
    assert!(matches!(
        wsrt::wait_all_timeout(&[&a, &slow], Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    release.send(()).unwrap();
    wsrt::wait_all(&[&a, &b, &slow]);
    assert!(slow.is_done());
    assert!(wsrt::wait_all_timeout(&[&a, &slow], Duration::ZERO).is_ok());
}

#[test]
fn wait_any_on_a_worker_helps_until_one_is_done() {
    // One worker: the awaited tasks are queued behind the waiter, so only
    // its helping can run them.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let t = rt.spawn(|| {
        let here = wsrt::Handle::current().unwrap();
        let a = here.spawn(|| 1);
        let b = here.spawn(|| 2);
        let first = wsrt::wait_any(&[&a, &b]);
        wsrt::wait_all(&[&a, &b]);
        (first, a.join().unwrap() + b.join().unwrap())
    });
    let (first, sum) = t.join().unwrap();
    assert!(first < 2);
    assert_eq!(sum, 3);
}

#[test]
fn a_task_waiting_for_itself_is_refused() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let t = rt.spawn(|| {
        let me = wsrt::current_task().unwrap();
        (
            wsrt::wait_any_timeout(&[&me], Duration::from_secs(3600)),
            wsrt::wait_all_timeout(&[&me], Duration::from_secs(3600)),
            me.wait_isolated_timeout(Duration::from_secs(3600)),
        )
    });
    let (any, all, isolated) = t.join().unwrap();
    assert!(matches!(any, Err(Error::WouldDeadlock)), "{any:?}");
    assert!(matches!(all, Err(Error::WouldDeadlock)), "{all:?}");
    assert!(!isolated);
}
