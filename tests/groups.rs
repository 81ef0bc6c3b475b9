//! Groups: structured cancellation, their waits, deadlines and counts.
//!
//! Races are never ordered by sleeping: a one-worker runtime whose worker a
//! test holds with a gate runs its queue only when the test says so, and
//! the only polling loops wait for a state that is certain to come.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wsrt::{GroupFlags, GroupStats, Runtime, ShutdownMode, TaskError, TaskState};

mod common;
use common::{busy_runtime, wait_for_state, wait_until, DropCounter};

#[test]
fn cancel_ends_suspended_tasks_at_once_and_pending_ones_without_running() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let g = rt.group();
    let drops = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));

    // SUSPENDED: awaits a future that never completes.
    let guard = DropCounter(drops.clone());
    let suspended = g.spawn_async(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    wait_for_state(&suspended, TaskState::Suspended);

    // PENDING behind an ungrouped task that holds the only worker.
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let blocker = rt.spawn(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
    });
    started.recv().unwrap();
    let pending: Vec<_> = (0..5)
        .map(|_| {
            let (runs, guard) = (runs.clone(), DropCounter(drops.clone()));
            g.spawn(move || {
                let _guard = &guard;
                runs.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert_eq!(g.stats().pending, 5);
    assert_eq!(g.stats().suspended, 1);

    assert!(g.cancel());
    assert!(!g.cancel(), "a second cancel returns false");
    assert!(g.is_cancelled());
    // The suspended task ended before cancel() returned, its future
    // dropped on this thread. (The walk that finds a parked task ends the
    // pending ones it meets too: all six closures are dropped already.)
    assert_eq!(suspended.state(), TaskState::Cancelled);
    assert_eq!(drops.load(Ordering::SeqCst), 6);

    release.send(()).unwrap();
    g.wait();
    for t in &pending {
        assert_eq!(t.state(), TaskState::Cancelled);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "a cancelled group's task ran"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        6,
        "every closure dropped once"
    );
    assert_eq!(
        g.stats(),
        GroupStats {
            spawned: 6,
            succeeded: 0,
            failed: 0,
            cancelled: 6,
            pending: 0,
            running: 0,
            suspended: 0,
        }
    );
    blocker.join().unwrap();
    assert_eq!(rt.spawn(|| 7).join(), Ok(7), "ungrouped work is untouched");
}

#[test]
fn a_running_task_is_asked_and_decides() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let g = rt.group();
    let (started_tx, started) = mpsc::channel::<()>();
    let honours = g.spawn_cancellable(move || {
        started_tx.send(()).unwrap();
        while !wsrt::cancel_requested() {
            std::hint::spin_loop();
        }
        Err::<(), _>(wsrt::Cancelled)
    });
    started.recv().unwrap();
    assert_eq!(honours.state(), TaskState::Running);
    assert!(g.cancel());
    // The task's own flag is not set: the group's is what it sees.
    assert!(!honours.is_cancel_requested());
    g.wait();
    assert_eq!(honours.state(), TaskState::Cancelled);
    assert_eq!(g.stats().cancelled, 1);
}

#[test]
fn cancel_reaches_child_groups_and_tasks_spawned_inside_tasks() {
    let busy = busy_runtime();
    let g = busy.rt.group();
    let child = g.child();
    let grandchild = child.child();
    let runs = Arc::new(AtomicUsize::new(0));
    let spawn_counted = |group: &wsrt::Group| {
        let runs = runs.clone();
        group.spawn(move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };
    let queued = [
        spawn_counted(&g),
        spawn_counted(&child),
        spawn_counted(&grandchild),
    ];
    assert!(g.cancel());
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    assert!(!child.cancel(), "already cancelled from above");
    // A group made below a cancelled one is cancelled; a task spawned into
    // one ends CANCELLED without running.
    let late = grandchild.child();
    assert!(late.is_cancelled());
    let refused = spawn_counted(&late);
    busy.release.wait();
    g.wait();
    refused.wait();
    for t in queued.iter().chain([&refused]) {
        assert_eq!(t.state(), TaskState::Cancelled);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    busy.finish();
}

#[test]
fn tasks_spawned_inside_a_grouped_task_join_its_group_down_to_grandchildren() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let g = rt.group();
    let (tx, rx) = mpsc::channel::<wsrt::Task<()>>();
    let (running_tx, running) = mpsc::channel::<()>();
    let parent = g.spawn(move || {
        let here = wsrt::Handle::current().unwrap();
        assert!(wsrt::current_group().is_some());
        let tx2 = tx.clone();
        let child = here.spawn(move || {
            let here = wsrt::Handle::current().unwrap();
            // The grandchild runs until its group is cancelled.
            let grandchild = here.spawn(move || {
                running_tx.send(()).unwrap();
                while !wsrt::cancel_requested() {
                    std::hint::spin_loop();
                }
            });
            tx2.send(grandchild).unwrap();
        });
        tx.send(child).unwrap();
    });
    running.recv().unwrap();
    let child = rx.recv().unwrap();
    let grandchild = rx.recv().unwrap();
    assert_eq!(g.stats().spawned, 3, "parent, child and grandchild");
    // Only the cancel of the group ends the grandchild: waiting here
    // without it would never return.
    assert!(!g.wait_timeout(Duration::ZERO));
    g.cancel();
    g.wait();
    for t in [&parent, &child, &grandchild] {
        assert_eq!(t.state(), TaskState::Succeeded);
    }
    assert!(wsrt::current_group().is_none(), "outside a task: no group");
}

#[test]
fn the_first_failure_cancels_a_cancel_on_failure_group() {
    let busy = busy_runtime();
    let g = busy.rt.group_with(GroupFlags::CANCEL_ON_FAILURE);
    let fails = g.spawn(|| -> u32 { panic!("first failure") });
    let runs = Arc::new(AtomicUsize::new(0));
    let after: Vec<_> = (0..3)
        .map(|_| {
            let runs = runs.clone();
            g.spawn(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    busy.release.wait();
    g.wait();
    assert!(g.is_cancelled());
    assert!(matches!(fails.join(), Err(TaskError::Panicked(_))));
    for t in &after {
        assert_eq!(t.state(), TaskState::Cancelled);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let stats = g.stats();
    assert_eq!((stats.failed, stats.cancelled), (1, 3));

    // Without the flag a failure cancels nothing.
    let plain = busy.rt.group();
    let failed = plain.spawn(|| -> u32 { panic!("alone") });
    let fine = plain.spawn(|| 1);
    plain.wait();
    assert!(!plain.is_cancelled());
    assert!(failed.join().is_err());
    assert_eq!(fine.join(), Ok(1));
    busy.finish();
}

#[test]
fn a_shielded_task_is_left_alone_but_still_waited_for() {
    let busy = busy_runtime();
    let g = busy.rt.group();
    let saw_cancel = Arc::new(AtomicBool::new(true));
    let seen = saw_cancel.clone();
    let (tx, rx) = mpsc::channel::<wsrt::Task<u32>>();
    let shielded = g.spawn_shielded(move || {
        seen.store(wsrt::cancel_requested(), Ordering::SeqCst);
        // Its children are not shielded: they belong to the group.
        let child = wsrt::Handle::current().unwrap().spawn(|| 2);
        tx.send(child).unwrap();
        1
    });
    let plain = g.spawn(|| 3);
    g.cancel();
    busy.release.wait();
    g.wait();
    assert_eq!(shielded.join(), Ok(1), "the shielded task ran");
    assert!(!saw_cancel.load(Ordering::SeqCst), "and was not asked");
    assert_eq!(plain.state(), TaskState::Cancelled);
    let child = rx.recv().unwrap();
    assert_eq!(
        child.state(),
        TaskState::Cancelled,
        "its child was cancelled"
    );
    let stats = g.stats();
    assert_eq!((stats.spawned, stats.succeeded, stats.cancelled), (3, 1, 2));
    busy.finish();
}

#[test]
fn a_deadline_cancels_the_group_and_a_removed_one_does_not() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    // Returns once the task runs: the cancel then reaches it RUNNING.
    let spinner = |g: &wsrt::Group| {
        let (started_tx, started) = mpsc::channel::<()>();
        let t = g.spawn(move || {
            started_tx.send(()).unwrap();
            while !wsrt::cancel_requested() {
                std::hint::spin_loop();
            }
        });
        started.recv().unwrap();
        t
    };
    // Removed: set, then cleared. Replaced: set far, then near.
    let removed = rt.group();
    removed.set_deadline(Duration::from_millis(5));
    removed.clear_deadline();
    let replaced = rt.group();
    let t = spinner(&replaced);
    replaced.set_deadline(Duration::from_secs(3600));
    replaced.set_deadline(Duration::from_millis(20));
    replaced.wait();
    assert!(replaced.is_cancelled());
    assert_eq!(t.state(), TaskState::Succeeded);
    // The timer fires in deadline order: the removed group's entry (5 ms)
    // fired before the replaced group's (20 ms), into nothing.
    assert!(!removed.is_cancelled());
    // A deadline that has passed already cancels at once, through the
    // timer.
    let past = rt.group();
    let t = spinner(&past);
    past.set_deadline(Duration::ZERO);
    past.wait();
    assert!(past.is_cancelled());
    assert_eq!(t.state(), TaskState::Succeeded);
}

#[test]
fn a_task_cannot_wait_for_its_own_group() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let g = rt.group();
    let inner = g.clone();
    let child = g.child();
    let t = g.spawn(move || {
        let own = inner.wait_timeout(Duration::from_secs(3600));
        let above =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.wait())).is_err();
        // A group below its own is not its own: it may wait for that one.
        let below_ok = child.wait_timeout(Duration::ZERO);
        (own, above, below_ok)
    });
    assert_eq!(t.join(), Ok((false, true, true)));
    g.wait();
}

#[test]
fn a_group_wait_on_a_worker_runs_only_the_groups_tasks() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let outer = rt.spawn(move || {
        let here = wsrt::Handle::current().unwrap();
        let g = here.group();
        for i in 0..3 {
            let o = o.clone();
            g.spawn(move || o.lock().unwrap().push(format!("group {i}")));
        }
        // Queued after (so popped first by a plain wait): not the group's.
        let o2 = o.clone();
        let other = here.spawn(move || o2.lock().unwrap().push("other".to_string()));
        g.wait();
        o.lock().unwrap().push("waited".into());
        other
    });
    let other = outer.join().unwrap();
    other.wait();
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 5);
    assert_eq!(
        order[3], "waited",
        "the other task ran during the group wait: {order:?}"
    );
    assert_eq!(order[4], "other");
}

#[test]
fn counts_follow_the_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let g = rt.group();
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, gate) = mpsc::channel::<()>();
    let running = g.spawn(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
    });
    started.recv().unwrap();
    let ok = g.spawn(|| 1);
    let failed = g.spawn(|| -> u32 { panic!("counted") });
    ok.wait();
    failed.wait();
    // An end is counted just after the state is final: a task wait may
    // return a moment before (a group wait never does).
    wait_until(|| g.stats().succeeded + g.stats().failed == 2);
    let stats = g.stats();
    assert_eq!(
        (stats.spawned, stats.succeeded, stats.failed, stats.running),
        (3, 1, 1, 1)
    );
    release.send(()).unwrap();
    g.wait();
    assert_eq!(running.state(), TaskState::Succeeded);
    let stats = g.stats();
    assert_eq!((stats.succeeded, stats.running, stats.pending), (2, 0, 0));
}

#[test]
fn a_group_whose_handles_are_gone_still_runs_its_tasks() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let t = {
        let g = rt.group();
        g.spawn(move || gate.recv().unwrap())
    };
    // The group handle is gone; its task reaches it when it ends.
    release.send(()).unwrap();
    t.join().unwrap();
    // A new group lets go of the orphan whose tasks are done.
    let g = rt.group();
    assert_eq!(g.spawn(|| 2).join(), Ok(2));
    wait_until(|| g.stats().succeeded == 1);
}

#[test]
fn shutdown_with_cancel_ends_grouped_tasks_and_group_waits_return() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let g = rt.group();
    let parked = g.spawn_async(std::future::pending::<()>());
    wait_for_state(&parked, TaskState::Suspended);
    rt.shutdown(ShutdownMode::Cancel).unwrap();
    assert_eq!(parked.state(), TaskState::Cancelled);
    g.wait();
    // A spawn into a group of a shut-down runtime ends CANCELLED.
    let late = g.spawn(|| 1);
    assert_eq!(late.join(), Err(TaskError::Cancelled));
}

/// Lets the held worker of a `busy_runtime` go once `cond` holds, or once
/// `wait_until` gives up on it (so that a failure ends the test instead of
/// hanging it); joins to true if `cond` held.
fn release_when(
    release: Arc<Barrier>,
    cond: impl FnMut() -> bool + Send + 'static,
) -> JoinHandle<bool> {
    std::thread::spawn(move || {
        let held =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_until(cond))).is_ok();
        release.wait();
        held
    })
}

#[test]
fn a_wait_outside_the_pool_ends_the_cancelled_tasks_it_queued() {
    // The only worker is held until this thread's wait has returned: the
    // wait ends the tasks this thread queued itself, callbacks included.
    let busy = busy_runtime();
    let g = busy.rt.group();
    let below = g.child();
    let other = busy.rt.group();
    let (drops, runs, ended_here) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let waiter = std::thread::current().id();
    let mut own = Vec::new();
    let mut others = Vec::new();
    for i in 0..100u32 {
        let (guard, runs) = (DropCounter(drops.clone()), runs.clone());
        let into = if i % 2 == 0 { &g } else { &below };
        let task = into.spawn(move || {
            let _guard = &guard;
            runs.fetch_add(1, Ordering::SeqCst);
        });
        let here = ended_here.clone();
        task.on_done(move |t| {
            if std::thread::current().id() == waiter && t.state() == TaskState::Cancelled {
                here.fetch_add(1, Ordering::SeqCst);
            }
        });
        own.push(task);
        others.push(other.spawn(move || i));
    }
    let waited = Arc::new(AtomicBool::new(false));
    let seen = waited.clone();
    let released = release_when(busy.release.clone(), move || seen.load(Ordering::SeqCst));
    assert!(g.cancel());
    g.wait();

    assert_eq!(
        ended_here.load(Ordering::SeqCst),
        100,
        "ended on this thread"
    );
    assert!(own.iter().all(|t| t.state() == TaskState::Cancelled));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 100);
    assert_eq!((g.stats().cancelled, below.stats().cancelled), (50, 50));
    // The other group's tasks went back to the workers: still pending.
    assert!(others.iter().all(|t| t.state() == TaskState::Pending));
    assert_eq!(other.stats().pending, 100);

    waited.store(true, Ordering::SeqCst);
    assert!(released.join().unwrap());
    for (i, t) in others.into_iter().enumerate() {
        assert_eq!(t.join(), Ok(i as u32));
    }
    busy.finish();
}

#[test]
fn a_shielded_task_a_wait_takes_back_is_left_to_the_workers() {
    let busy = busy_runtime();
    let g = busy.rt.group();
    let shielded = g.spawn_shielded(|| 1);
    let plain: Vec<_> = (0..50).map(|_| g.spawn(|| 2)).collect();
    // The worker is let go once the wait ended the plain tasks itself;
    // the wait then returns once the worker ran the shielded one.
    let watched: Vec<wsrt::TaskRef> = plain.iter().map(|t| t.as_task_ref().clone()).collect();
    let released = release_when(busy.release.clone(), move || {
        watched.iter().all(|t| t.state() == TaskState::Cancelled)
    });
    assert!(g.cancel());
    g.wait();
    assert!(
        released.join().unwrap(),
        "the plain tasks waited for the worker"
    );
    assert_eq!(shielded.join(), Ok(1));
    assert!(plain.iter().all(|t| t.state() == TaskState::Cancelled));
    let stats = g.stats();
    assert_eq!(
        (stats.spawned, stats.succeeded, stats.cancelled),
        (51, 1, 50)
    );
    busy.finish();
}

#[test]
fn a_timed_group_wait_leaves_the_cancelled_tasks_to_the_workers() {
    // A wait with a limit runs no user code (callbacks, drops): it only
    // looks, so it times out while the worker is held.
    let busy = busy_runtime();
    let g = busy.rt.group();
    let task = g.spawn(|| 1);
    assert!(g.cancel());
    assert!(!g.wait_timeout(Duration::from_millis(20)));
    assert_eq!(task.state(), TaskState::Pending);
    busy.release.wait();
    g.wait();
    assert_eq!(task.state(), TaskState::Cancelled);
    busy.finish();
}
