//! Fork-join: `wsrt::join`, `scope`, and helping waits that never deadlock.

use std::sync::atomic::{AtomicUsize, Ordering};

use wsrt::Runtime;

fn fib_spawn(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let child = wsrt::spawn(move || fib_spawn(n - 1));
    let b = fib_spawn(n - 2);
    child.join().unwrap() + b
}

/// fib(n), plainly, for the expected values.
fn fib(n: u64) -> u64 {
    (0..n).fold((0, 1), |(a, b), _| (b, a + b)).0
}

/// The size of the fib trees below: smaller under Miri, which interprets.
const N: u64 = if cfg!(miri) { 10 } else { 20 };

fn fib_join(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = wsrt::join(|| fib_join(n - 1), || fib_join(n - 2));
    a + b
}

#[test]
fn fib_through_spawn_and_join_on_one_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.spawn(|| fib_spawn(N)).join(), Ok(fib(N)));
    // fib_spawn(N) spawns fib(N + 1) - 1 children (10945 for 20), plus the root.
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(rt.stats().spawned, fib(N + 1));
    assert_eq!(rt.stats().succeeded, fib(N + 1));
}

#[test]
fn fib_through_join_inside_and_outside_the_pool() {
    assert_eq!(fib_join(N + 5), fib(N + 5));
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.spawn(|| fib_join(N + 2)).join(), Ok(fib(N + 2)));
    assert_eq!(rt.join(|| fib_join(10), || fib_join(11)), (55, 89));
}

#[test]
fn join_propagates_a_panic_after_both_sides_ran() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let b_ran = AtomicUsize::new(0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.join(
            || panic!("left side"),
            || {
                b_ran.fetch_add(1, Ordering::SeqCst);
            },
        )
    }));
    assert!(result.is_err());
    assert_eq!(b_ran.load(Ordering::SeqCst), 1);
}

#[test]
fn join_inside_a_task_reports_the_task_on_both_sides() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = rt.spawn(|| {
        let id = wsrt::current_task().unwrap().id();
        let (a, b) = wsrt::join(
            || wsrt::current_task().map(|t| t.id()),
            || wsrt::current_task().map(|t| t.id()),
        );
        (id, a, b)
    });
    let (id, a, b) = t.join().unwrap();
    assert_eq!((a, b), (Some(id), Some(id)));
}

#[test]
fn scope_borrows_from_the_stack_and_joins_everything() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let mut data = vec![0u64; 1000];
    let counter = AtomicUsize::new(0);
    rt.scope(|s| {
        for (i, slot) in data.iter_mut().enumerate() {
            let counter = &counter;
            s.spawn(move |s| {
                *slot = i as u64 * 2;
                s.spawn(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            });
        }
    });
    assert_eq!(counter.load(Ordering::SeqCst), 1000);
    assert!(data.iter().enumerate().all(|(i, &v)| v == i as u64 * 2));
}

#[test]
fn scope_inside_a_task_on_one_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let h = rt.handle().clone();
    let t = rt.spawn(move || {
        let mut sum = 0u64;
        let parts: Vec<u64> = (1..=100).collect();
        let total = AtomicUsize::new(0);
        h.scope(|s| {
            for chunk in parts.chunks(10) {
                let total = &total;
                s.spawn(move |_| {
                    total.fetch_add(chunk.iter().sum::<u64>() as usize, Ordering::SeqCst);
                });
            }
        });
        sum += total.load(Ordering::SeqCst) as u64;
        sum
    });
    assert_eq!(t.join(), Ok(5050));
}

#[test]
fn scope_propagates_a_job_panic_after_all_jobs() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let done = AtomicUsize::new(0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.scope(|s| {
            s.spawn(|_| panic!("job panics"));
            for _ in 0..10 {
                s.spawn(|_| {
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    assert!(result.is_err());
    assert_eq!(done.load(Ordering::SeqCst), 10);
}

#[test]
fn a_timed_wait_on_a_worker_gives_up_at_its_deadline_then_waits_again() {
    use std::sync::mpsc::channel;
    use std::time::{Duration, Instant};

    let rt = Runtime::builder().workers(2).build().unwrap();
    let (started_tx, started_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    // Occupies one worker until released, so it is running, not queued
    // where the waiter could pick it up and block itself.
    let blocked = rt.spawn(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        7
    });
    started_rx.recv().unwrap();

    // On the other worker: a helping wait with a deadline and nothing to run
    // (it spins, then sleeps until the deadline), then an unbounded one.
    let (timed_out_tx, timed_out_rx) = channel();
    let target = blocked.clone();
    let waiter = rt.spawn(move || {
        let before = Instant::now();
        let first = target.wait_timeout(Duration::from_millis(20));
        let waited = before.elapsed();
        timed_out_tx.send(()).unwrap();
        let second = target.wait_timeout(Duration::from_secs(3600));
        (first, waited, second, target.is_done())
    });
    // A deadline that is not honoured fails here instead of hanging (the
    // unwinding drops `release_tx`, which ends the blocked task).
    timed_out_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the 20 ms wait did not return");
    assert!(!blocked.is_done());
    release_tx.send(()).unwrap();

    let (first, waited, second, done_after) = waiter.join().unwrap();
    assert!(!first, "the 20 ms wait must time out: the task was blocked");
    assert!(
        waited >= Duration::from_millis(19),
        "gave up after {waited:?}"
    );
    assert!(second && done_after);
    assert_eq!(blocked.join(), Ok(7));
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(rt.stats().succeeded, 2);
}

#[test]
fn a_join_half_goes_to_an_idle_worker_at_a_later_join() {
    // The second half of a join stays hidden from thieves until a worker
    // looks for work; a later join of its worker then hands it out. Here
    // the first half joins (empty halves) until the second half has run
    // on another thread: it would never end if the hidden half were never
    // shown.
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = rt.spawn(|| {
        let ran_on = std::sync::Mutex::new(None);
        wsrt::join(
            || {
                while ran_on.lock().unwrap().is_none() {
                    wsrt::join(|| (), || ());
                }
            },
            || *ran_on.lock().unwrap() = Some(std::thread::current().id()),
        );
        let ran_on = ran_on.into_inner().unwrap();
        ran_on != Some(std::thread::current().id())
    });
    if !t.wait_timeout(std::time::Duration::from_secs(60)) {
        // Leave the runtime (its drop would wait for the task) and fail.
        std::mem::forget(rt);
        panic!("the hidden half was never handed to the idle worker");
    }
    assert!(
        t.join().unwrap(),
        "the second half ran on the joining thread"
    );
}
