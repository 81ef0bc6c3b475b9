//! Shutdown in both modes, spawns after shutdown, and handles that outlive
//! their runtime.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use wsrt::{Runtime, ShutdownMode, TaskError, TaskState};

struct Busy {
    rt: Runtime,
    release: Arc<Barrier>,
    running: wsrt::Task<bool>,
    queued: Vec<wsrt::Task<u32>>,
    queued_runs: Arc<AtomicUsize>,
}

/// One worker, one task running (it reports whether it saw a cancel
/// request), ten queued behind it.
fn busy() -> Busy {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (s, r) = (started.clone(), release.clone());
    let running = rt.spawn(move || {
        s.wait();
        r.wait();
        wsrt::cancel_requested()
    });
    started.wait();
    let queued_runs = Arc::new(AtomicUsize::new(0));
    let queued = (0..10)
        .map(|i| {
            let q = queued_runs.clone();
            rt.spawn(move || {
                q.fetch_add(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    Busy {
        rt,
        release,
        running,
        queued,
        queued_runs,
    }
}

#[test]
fn drain_runs_everything_queued() {
    let b = busy();
    let rt = Arc::new(b.rt);
    let r2 = rt.clone();
    let shutdown = std::thread::spawn(move || r2.shutdown(ShutdownMode::Drain));
    // Spawns from outside are refused once shutdown began; wait until it has.
    while !rt.is_shutdown() {
        std::thread::yield_now();
    }
    let refused = rt.spawn(|| 5);
    assert_eq!(refused.state(), TaskState::Cancelled);
    // A refused closure comes back whole: its captures neither dropped nor copied.
    let token = Arc::new(());
    let captured = token.clone();
    let back = rt
        .try_spawn(move || Arc::strong_count(&captured))
        .expect_err("refused after shutdown began");
    assert_eq!(Arc::strong_count(&token), 2);
    assert_eq!(back(), 2);
    assert_eq!(Arc::strong_count(&token), 1);
    b.release.wait();
    shutdown.join().unwrap().unwrap();
    assert_eq!(b.running.join(), Ok(false));
    assert_eq!(b.queued_runs.load(Ordering::SeqCst), 10);
    for (i, t) in b.queued.into_iter().enumerate() {
        assert_eq!(t.join(), Ok(i as u32));
    }
    let stats = rt.stats();
    assert_eq!(
        (stats.spawned, stats.succeeded, stats.cancelled),
        (11, 11, 0)
    );
}

#[test]
fn cancel_cancels_queued_and_requests_running() {
    let b = busy();
    let rt = Arc::new(b.rt);
    let r2 = rt.clone();
    let shutdown = std::thread::spawn(move || r2.shutdown(ShutdownMode::Cancel));
    // The queued tasks become CANCELLED before the running one finishes.
    for t in &b.queued {
        while !t.is_done() {
            std::thread::yield_now();
        }
        assert_eq!(t.state(), TaskState::Cancelled);
    }
    // Shutdown cancels the tasks it listed one after another, in no set
    // order (the running one is often last): wait for its request, with a
    // bound so that a runtime that never asks fails instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.running.is_cancel_requested() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(b.running.is_cancel_requested());
    b.release.wait();
    shutdown.join().unwrap().unwrap();
    assert_eq!(
        b.running.join(),
        Ok(true),
        "the running task saw the request"
    );
    assert_eq!(b.queued_runs.load(Ordering::SeqCst), 0);
    for t in b.queued {
        assert_eq!(t.join(), Err(TaskError::Cancelled));
    }
    let stats = rt.stats();
    assert_eq!(
        (stats.spawned, stats.succeeded, stats.cancelled),
        (11, 1, 10)
    );
}

#[test]
fn shutdown_is_idempotent_and_drop_after_it_is_fine() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = rt.spawn(|| 1);
    rt.shutdown(ShutdownMode::Drain).unwrap();
    rt.shutdown(ShutdownMode::Drain).unwrap();
    rt.shutdown(ShutdownMode::Cancel).unwrap();
    assert_eq!(t.join(), Ok(1));
    assert!(!rt.spawn_detached(|| ()));
}

#[test]
fn shutdown_from_own_worker_would_deadlock() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let h = rt.handle().clone();
    let t = rt.spawn(move || h.shutdown(ShutdownMode::Drain).map_err(|e| e.to_string()));
    let result = t.join().unwrap();
    assert!(
        matches!(result, Err(ref e) if e.contains("deadlock")),
        "{result:?}"
    );
    assert!(!rt.is_shutdown());
}

#[test]
fn handles_stay_queryable_after_the_runtime_is_dropped() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let ok = rt.spawn(|| 3);
    let failed = rt.spawn(|| -> u32 { panic!("late") });
    let slow_flag = Arc::new(AtomicBool::new(false));
    let f = slow_flag.clone();
    let slow = rt.spawn(move || {
        std::thread::yield_now();
        f.store(true, Ordering::SeqCst);
    });
    drop(rt); // drains
    assert!(slow_flag.load(Ordering::SeqCst));
    assert_eq!(slow.state(), TaskState::Succeeded);
    assert_eq!(ok.state(), TaskState::Succeeded);
    assert!(!ok.cancel());
    assert!(ok.wait_timeout(std::time::Duration::ZERO));
    assert_eq!(ok.name(), format!("Task-{}", ok.id()));
    let after = Arc::new(AtomicUsize::new(0));
    let a = after.clone();
    ok.on_done(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert_eq!(
        failed.clone().join(),
        Err(TaskError::Panicked("late".into()))
    );
    assert_eq!(ok.join(), Ok(3));
}

#[test]
fn drain_waits_for_tasks_spawned_by_running_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let leaves = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let leaves = leaves.clone();
        rt.spawn_detached(move || {
            for _ in 0..100 {
                let leaves = leaves.clone();
                wsrt::spawn(move || {
                    leaves.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
    }
    rt.shutdown(ShutdownMode::Drain).unwrap();
    assert_eq!(leaves.load(Ordering::SeqCst), 1000);
    assert_eq!(rt.stats().succeeded, 1010);
}

#[test]
fn all_tasks_while_tasks_are_spawned_and_finished_everywhere() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    // Done before the listing starts: it must never be listed.
    let first = rt.spawn(|| ());
    first.wait();
    let first = first.id();
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    const PER_SPAWNER: usize = 20_000;
    // Two outside spawners, and tasks that spawn children from the workers:
    // registry shards of both kinds are written while we read them.
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let (rt, runs) = (rt.handle().clone(), runs.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_SPAWNER {
                    let (inner_rt, runs) = (rt.clone(), runs.clone());
                    rt.spawn_detached(move || {
                        runs.fetch_add(1, Ordering::Relaxed);
                        let runs = runs.clone();
                        inner_rt.spawn_detached(move || {
                            runs.fetch_add(1, Ordering::Relaxed);
                        });
                    });
                }
            })
        })
        .collect();
    let lister = {
        let (rt, stop) = (rt.handle().clone(), stop.clone());
        std::thread::spawn(move || {
            let mut listings = 0;
            while !stop.load(Ordering::Relaxed) || listings == 0 {
                let mut ids: Vec<u64> = rt.all_tasks().iter().map(|t| t.id()).collect();
                let n = ids.len();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), n, "a task listed twice");
                assert!(ids.iter().all(|&id| id > first), "a finished task listed");
                listings += 1;
            }
        })
    };
    for s in spawners {
        s.join().unwrap();
    }
    rt.shutdown(ShutdownMode::Drain).unwrap();
    stop.store(true, Ordering::Relaxed);
    lister.join().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2 * 2 * PER_SPAWNER);
    assert!(rt.all_tasks().is_empty());
}

#[test]
fn shutdown_while_outside_threads_cancel_pending_tasks() {
    for round in 0..200 {
        let rt = Runtime::builder().workers(1).build().unwrap();
        // The only worker spins until released, so the rest stay pending.
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let blocker = rt.spawn(move || {
            while !r.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        });
        let tasks: Arc<Vec<_>> = Arc::new((0..40).map(|_| rt.spawn(|| ())).collect());
        // The last canceller to finish releases the worker, so every task
        // is still pending (or already cancelled) when it is cancelled.
        let finished = Arc::new(AtomicUsize::new(0));
        let cancellers: Vec<_> = (0..2)
            .map(|half| {
                let (tasks, release) = (tasks.clone(), release.clone());
                let finished = finished.clone();
                std::thread::spawn(move || {
                    let mine = tasks.iter().skip(half).step_by(2);
                    let cancelled = mine.filter(|t| t.cancel()).count();
                    if finished.fetch_add(1, Ordering::SeqCst) == 1 {
                        release.store(true, Ordering::SeqCst);
                    }
                    cancelled
                })
            })
            .collect();
        let mode = if round % 2 == 0 {
            ShutdownMode::Drain
        } else {
            ShutdownMode::Cancel
        };
        // Races the cancels: must neither hang nor lose a count.
        rt.shutdown(mode).unwrap();
        let by_cancellers: usize = cancellers.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(blocker.is_done());
        assert!(tasks.iter().all(|t| t.is_done()));
        let ended_cancelled = tasks.iter().filter(|t| t.is_cancelled()).count();
        if mode == ShutdownMode::Drain {
            assert_eq!(ended_cancelled, by_cancellers);
        }
        // Shutdown(Cancel) may also catch the blocker before it started.
        let st = rt.stats();
        assert_eq!(st.spawned, 41);
        let blocker_cancelled = usize::from(blocker.is_cancelled());
        assert_eq!(st.cancelled as usize, ended_cancelled + blocker_cancelled);
        assert_eq!(st.succeeded + st.failed + st.cancelled, st.spawned);
    }
}

#[test]
fn an_outside_cancel_that_ends_the_last_task_finishes_the_drain() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    // Suspended forever: in no queue, so no worker will ever end it.
    let parked = rt.spawn_async(std::future::pending::<()>());
    while parked.state() != TaskState::Suspended {
        std::thread::yield_now();
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handle = rt.handle().clone();
    let drainer = std::thread::spawn(move || {
        let result = handle.shutdown(ShutdownMode::Drain);
        done_tx.send(result).unwrap();
    });
    // Wait until the drain has begun (outside spawns refused); accepted
    // probes run on the worker and end before the cancel below.
    while let Ok(probe) = rt.try_spawn(|| ()) {
        probe.wait();
    }
    // The last live task ends here, on this thread: this cancel must be
    // the one that lets the drain finish.
    assert!(parked.cancel());
    // A watchdog, not a timing: a lost wake-up would hang forever. On
    // failure the runtime is leaked, since dropping it would hang as well.
    let Ok(result) = done_rx.recv_timeout(std::time::Duration::from_secs(60)) else {
        std::mem::forget(rt);
        panic!("the drain never finished after the last task was cancelled");
    };
    assert!(result.is_ok(), "{result:?}");
    drainer.join().unwrap();
    assert_eq!(parked.state(), TaskState::Cancelled);
}

#[test]
fn all_tasks_lists_the_live_ones() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let gate = Arc::new(Barrier::new(2));
    let started = Arc::new(Barrier::new(2));
    let (g, s) = (gate.clone(), started.clone());
    let running = rt.spawn(move || {
        s.wait();
        g.wait();
    });
    started.wait();
    let queued: Vec<_> = (0..3).map(|_| rt.spawn(|| ())).collect();
    let done = queued[0].clone();
    assert!(done.cancel());
    let mut ids: Vec<u64> = rt.all_tasks().iter().map(|t| t.id()).collect();
    ids.sort();
    assert_eq!(ids, vec![running.id(), queued[1].id(), queued[2].id()]);
    gate.wait();
    rt.shutdown(ShutdownMode::Drain).unwrap();
    assert!(rt.all_tasks().is_empty());
}

/// A worker lists the tasks it spawns in a table whose freed rows it
/// reuses (`registry.rs`): after cancels by the worker and from outside,
/// and spawns into the freed rows, the listing is exactly the live tasks.
#[test]
fn all_tasks_lists_a_worker_s_spawns_exactly_as_rows_are_reused() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let gate = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let g = gate.clone();
    let parent = rt.spawn(move || {
        // The only worker runs this, so its children stay pending.
        let first: Vec<_> = (0..100).map(|_| wsrt::spawn(|| ())).collect();
        for (i, t) in first.iter().enumerate() {
            if i % 2 == 0 {
                assert!(t.cancel());
            }
        }
        let second: Vec<_> = (0..30).map(|_| wsrt::spawn(|| ())).collect();
        tx.send((first, second)).unwrap();
        g.wait();
    });
    let (first, second) = rx.recv().unwrap();
    // From outside now: every third of the first batch's survivors (17).
    for t in first.iter().skip(1).step_by(6) {
        assert!(t.cancel());
    }
    let mut expected: Vec<u64> = first
        .iter()
        .chain(&second)
        .filter(|t| !t.is_done())
        .map(|t| t.id())
        .chain([parent.id()])
        .collect();
    expected.sort_unstable();
    let mut ids: Vec<u64> = rt.all_tasks().iter().map(|t| t.id()).collect();
    ids.sort_unstable();
    // Let the worker go before asserting, so that a failure cannot hang.
    gate.wait();
    // The parent, 50 - 17 of the first hundred, the 30 after.
    assert_eq!(expected.len(), 1 + 33 + 30);
    assert_eq!(ids, expected);
    rt.shutdown(ShutdownMode::Drain).unwrap();
    assert!(rt.all_tasks().is_empty());
    assert!(second.iter().all(|t| t.state() == TaskState::Succeeded));
}

/// More workers than the state word has worker shards for (256): those
/// beyond list their spawns in outside shards, under the lock, and the
/// listing and the counts are as exact as for the others.
#[test]
fn all_tasks_lists_the_spawns_of_workers_beyond_the_tables() {
    const WORKERS: usize = 300;
    let rt = Runtime::builder().workers(WORKERS).build().unwrap();
    // Every parent holds its worker from `all_running` on, so once all
    // have passed it each worker runs one (those past 256 too), and only
    // then does each spawn its child: no child can run before `release`.
    let all_running = Arc::new(Barrier::new(WORKERS + 1));
    let release = Arc::new(Barrier::new(WORKERS + 1));
    let (tx, rx) = std::sync::mpsc::channel();
    let parents: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (all_running, release, tx) = (all_running.clone(), release.clone(), tx.clone());
            rt.spawn(move || {
                all_running.wait();
                tx.send(wsrt::spawn(|| ())).unwrap();
                release.wait();
            })
        })
        .collect();
    all_running.wait();
    let children: Vec<_> = (0..WORKERS).map(|_| rx.recv().unwrap()).collect();
    let mut ids: Vec<u64> = rt.all_tasks().iter().map(|t| t.id()).collect();
    ids.sort_unstable();
    let mut expected: Vec<u64> = parents.iter().chain(&children).map(|t| t.id()).collect();
    expected.sort_unstable();
    let pending = children
        .iter()
        .filter(|t| t.state() == TaskState::Pending)
        .count();
    // Let the workers go before asserting, so that a failure cannot hang.
    release.wait();
    assert_eq!(pending, WORKERS);
    assert_eq!(ids, expected);
    rt.shutdown(ShutdownMode::Drain).unwrap();
    assert!(rt.all_tasks().is_empty());
    assert_eq!(rt.stats().succeeded, 2 * WORKERS as u64);
}

#[test]
fn join_and_scope_through_a_handle_outliving_its_runtime_run_inline() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let here = std::thread::current().id();
    let (a, b) = handle.join(
        || std::thread::current().id(),
        || std::thread::current().id(),
    );
    assert_eq!((a, b), (here, here));
    let mut v = [1, 2, 3];
    handle.scope(|s| {
        for x in v.iter_mut() {
            s.spawn(move |_| *x += 1);
        }
    });
    assert_eq!(v, [2, 3, 4]);
    assert_eq!(handle.spawn(|| 1).join(), Err(TaskError::Cancelled));
}
