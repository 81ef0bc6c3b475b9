//! Spawning, ids, names, states, join, and exact totals under load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use wsrt::{Runtime, TaskError, TaskState};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn spawn_and_join_returns_the_value() {
    let rt = runtime(2);
    let t = rt.spawn(|| 40 + 2);
    assert_eq!(t.join(), Ok(42));
}

#[test]
fn ids_are_nonzero_and_increase_in_spawn_order() {
    let rt = runtime(2);
    let tasks: Vec<_> = (0..100).map(|_| rt.spawn(|| ())).collect();
    assert!(tasks[0].id() > 0);
    for pair in tasks.windows(2) {
        assert!(pair[0].id() < pair[1].id());
    }
}

#[test]
fn default_name_then_renamed() {
    let rt = runtime(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let t = rt.spawn(move || {
        g.wait();
    });
    assert_eq!(t.name(), format!("Task-{}", t.id()));
    t.set_name("worker of the week");
    assert_eq!(t.name(), "worker of the week");
    gate.wait();
    t.wait();
    t.set_name("renamed after done");
    assert_eq!(t.name(), "renamed after done");
}

#[test]
fn states_before_during_and_after() {
    let rt = runtime(1);
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    // Occupy the only worker so the next task stays PENDING.
    let (s, r) = (started.clone(), release.clone());
    let blocker = rt.spawn(move || {
        s.wait();
        r.wait();
        7
    });
    started.wait();
    assert_eq!(blocker.state(), TaskState::Running);
    let queued = rt.spawn(|| 1);
    assert_eq!(queued.state(), TaskState::Pending);
    assert!(!queued.is_done());
    release.wait();
    assert_eq!(blocker.clone().join(), Ok(7));
    assert_eq!(blocker.state(), TaskState::Succeeded);
    assert!(blocker.is_done() && !blocker.is_cancelled());
    queued.wait();
    assert_eq!(queued.state(), TaskState::Succeeded);
}

#[test]
fn join_through_two_clones_gives_the_value_once() {
    let rt = runtime(2);
    let t = rt.spawn(|| String::from("once"));
    let other = t.clone();
    assert_eq!(t.join(), Ok(String::from("once")));
    assert_eq!(other.join(), Err(TaskError::ResultTaken));
}

/// Counts its drops in the given counter.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_output_is_dropped_exactly_once_taken_or_not() {
    let rt = runtime(2);
    // Taken by `join`: dropped by the joiner, never again with the task.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t = rt.spawn(move || Output(d));
    let clone = t.clone();
    let value = t.join().map_err(|_| ()).expect("succeeds");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(value);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(clone.is_done());
    drop(clone);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Never taken: dropped with the last reference, which is the handle's
    // or, a moment later, the worker's; all gone once the runtime is.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t = rt.spawn(move || Output(d));
    t.wait();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(t);
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A task whose output counts its drops, finished on `rt`'s only worker,
/// which has then run another task: a worker keeps some finished tasks for
/// a while (to take them off the registry in batches), but never one whose
/// output has a `Drop`, so the handle now holds the last reference.
fn finished_and_let_go(rt: &Runtime) -> (wsrt::Task<Output>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t = rt.spawn(move || Output(d));
    t.wait();
    assert_eq!(rt.spawn(|| ()).join(), Ok(()));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    (t, drops)
}

#[test]
fn an_output_with_a_drop_goes_with_the_last_handle_after_the_worker_moved_on() {
    let rt = runtime(1);
    let (t, drops) = finished_and_let_go(&rt);
    drop(t);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn join_by_the_last_reference_moves_the_value_out_and_frees_the_task() {
    // `join` by the last reference takes the value and frees the task
    // without touching the reference count (`raw::take_output_and_free`).
    // The value must leave intact: not dropped with the task, and dropped
    // once by its new owner.
    let rt = runtime(1);
    let (t, drops) = finished_and_let_go(&rt);
    let value = t.join().map_err(|_| ()).expect("succeeds");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(value);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn try_join_before_done_hands_the_task_back() {
    let rt = runtime(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let t = rt.spawn(move || {
        g.wait();
        5
    });
    let t = t.try_join().expect_err("not done yet");
    gate.wait();
    t.wait();
    assert_eq!(t.try_join().ok(), Some(Ok(5)));
}

#[test]
fn panicking_task_fails_with_its_message_and_the_worker_survives() {
    let rt = runtime(1);
    let t = rt.spawn(|| -> u32 { panic!("boom {}", 7) });
    assert_eq!(t.clone().join(), Err(TaskError::Panicked("boom 7".into())));
    assert_eq!(t.state(), TaskState::Failed);
    assert_eq!(t.error(), Some(TaskError::Panicked("boom 7".into())));
    assert_eq!(rt.spawn(|| 3).join(), Ok(3));
    drop(rt);
}

#[test]
fn wait_timeout_zero_only_looks() {
    let rt = runtime(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let t = rt.spawn(move || {
        g.wait();
    });
    assert!(!t.wait_timeout(std::time::Duration::ZERO));
    assert!(!t.wait_timeout(std::time::Duration::from_millis(5)));
    gate.wait();
    assert!(t.wait_timeout(std::time::Duration::from_secs(3600)));
}

#[test]
fn current_task_inside_and_outside() {
    let rt = runtime(2);
    assert!(wsrt::current_task().is_none());
    assert!(!wsrt::cancel_requested());
    let t = rt.spawn(|| wsrt::current_task().map(|c| c.id()));
    let id = t.id();
    assert_eq!(t.join(), Ok(Some(id)));
}

#[test]
fn spawn_detached_runs() {
    let rt = runtime(2);
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let n = n.clone();
        assert!(rt.spawn_detached(move || {
            n.fetch_add(1, Ordering::Relaxed);
        }));
    }
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 1000);
    let stats = rt.stats();
    assert_eq!((stats.spawned, stats.succeeded), (1000, 1000));
}

/// 8 workers on a 2-core machine (oversubscribed), 1,000,000 tasks from 4
/// spawning threads, half of them nested: every task runs exactly once.
#[test]
fn a_million_tasks_on_eight_workers_exact_totals() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 125_000; // each spawns one child: 1,000,000 total
    let rt = runtime(8);
    let runs = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (rt, runs, sum) = (&rt, runs.clone(), sum.clone());
            s.spawn(move || {
                let mut handles = Vec::with_capacity(PER_THREAD as usize);
                for i in 0..PER_THREAD {
                    let (runs, sum) = (runs.clone(), sum.clone());
                    let value = t * PER_THREAD + i;
                    handles.push(rt.spawn(move || {
                        runs.fetch_add(1, Ordering::Relaxed);
                        sum.fetch_add(value, Ordering::Relaxed);
                        let (runs2, sum2) = (runs.clone(), sum.clone());
                        wsrt::spawn(move || {
                            runs2.fetch_add(1, Ordering::Relaxed);
                            sum2.fetch_add(value, Ordering::Relaxed);
                        })
                        .join()
                        .unwrap();
                        value
                    }));
                }
                let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
                let n = PER_THREAD;
                assert_eq!(total, t * n * n + n * (n - 1) / 2);
            });
        }
    });
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    let n = THREADS * PER_THREAD;
    assert_eq!(runs.load(Ordering::Relaxed), 2 * n);
    assert_eq!(sum.load(Ordering::Relaxed), 2 * (n * (n - 1) / 2));
    let stats = rt.stats();
    assert_eq!(stats.spawned, 2 * n);
    assert_eq!(stats.succeeded, 2 * n);
    assert_eq!(
        stats.failed + stats.cancelled + stats.pending + stats.running + stats.suspended,
        0
    );
}

#[test]
fn a_task_waiting_for_itself_panics_instead_of_hanging() {
    let rt = runtime(1);
    let t = rt.spawn(|| {
        let me = wsrt::current_task().unwrap();
        assert!(!me.wait_timeout(std::time::Duration::from_secs(3600)));
        me.wait();
    });
    match t.join() {
        Err(TaskError::Panicked(msg)) => assert!(msg.contains("cannot wait for itself"), "{msg}"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn ids_are_unique_and_increase_per_spawning_thread_across_threads_and_workers() {
    let rt = runtime(2);
    const EACH: usize = 3000;
    // Threads outside the pool, and a task spawning from a worker: each
    // sees its own ids increase; no id is given twice.
    let mut per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
        let outside: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    (0..EACH)
                        .map(|_| rt.spawn(|| ()).id())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        outside.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let from_worker = rt
        .spawn(|| {
            (0..EACH)
                .map(|_| wsrt::spawn(|| ()).id())
                .collect::<Vec<u64>>()
        })
        .join()
        .unwrap();
    per_thread.push(from_worker);
    for ids in &per_thread {
        assert!(ids[0] > 0);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids of one thread go down"
        );
    }
    let mut all: Vec<u64> = per_thread.concat();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an id given twice");
}
