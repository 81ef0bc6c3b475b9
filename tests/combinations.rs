//! The combination matrix (as tokio's `task_combinations.rs`): a task that
//! panics or not × handle kept or released early × cancel before, during,
//! after or never × a done-callback or not. In every cell the closure runs
//! at most once, its captures drop exactly once, the callback runs exactly
//! once, and the final state and the runtime's counters agree.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use wsrt::{Runtime, ShutdownMode, TaskError, TaskState};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cancel {
    Never,
    Before,
    During,
    After,
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn cell(panics: bool, keep_handle: bool, cancel: Cancel, callback: bool) {
    let what = format!("panics={panics} keep={keep_handle} cancel={cancel:?} callback={callback}");
    let rt = Runtime::builder().workers(1).build().unwrap();
    // Hold the only worker so the task is PENDING until we say so.
    let (hold, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (h, r) = (hold.clone(), release.clone());
    let blocker = rt.spawn(move || {
        h.wait();
        r.wait();
    });
    hold.wait();

    let runs = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let callbacks = Arc::new(AtomicUsize::new(0));
    // `During`: the task signals it started, then waits for the cancel.
    let started = Arc::new(Barrier::new(2));
    let cancelled = Arc::new(Barrier::new(2));
    let saw_request = Arc::new(AtomicBool::new(false));
    let task = {
        let (runs, guard) = (runs.clone(), Counted(drops.clone()));
        let (started, cancelled, saw) = (started.clone(), cancelled.clone(), saw_request.clone());
        rt.spawn(move || {
            let _guard = guard;
            runs.fetch_add(1, Ordering::SeqCst);
            if cancel == Cancel::During {
                started.wait();
                cancelled.wait();
                saw.store(wsrt::cancel_requested(), Ordering::SeqCst);
            }
            if panics {
                panic!("cell panics");
            }
            7u32
        })
    };
    if callback {
        let c = callbacks.clone();
        task.on_done(move |t| {
            assert!(t.is_done());
            c.fetch_add(1, Ordering::SeqCst);
        });
    }
    let observer = task.as_task_ref().clone();
    if cancel == Cancel::Before {
        assert!(task.cancel(), "{what}");
    }
    let task = if keep_handle { Some(task) } else { None };
    release.wait();
    blocker.join().unwrap();
    if cancel == Cancel::During {
        started.wait();
        assert!(observer.cancel(), "{what}");
        cancelled.wait();
    }
    observer.wait();
    if cancel == Cancel::After {
        assert!(!observer.cancel(), "{what}");
    }
    rt.shutdown(ShutdownMode::Drain).unwrap();

    let ran = cancel != Cancel::Before;
    assert_eq!(runs.load(Ordering::SeqCst), usize::from(ran), "{what}");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "{what}");
    assert_eq!(
        callbacks.load(Ordering::SeqCst),
        usize::from(callback),
        "{what}"
    );
    assert_eq!(
        saw_request.load(Ordering::SeqCst),
        cancel == Cancel::During,
        "{what}"
    );
    let expected = match (ran, panics) {
        (false, _) => TaskState::Cancelled,
        (true, true) => TaskState::Failed,
        (true, false) => TaskState::Succeeded,
    };
    assert_eq!(observer.state(), expected, "{what}");
    let stats = rt.stats();
    assert_eq!(stats.spawned, 2, "{what}");
    assert_eq!(
        (stats.succeeded, stats.failed, stats.cancelled),
        (
            1 + u64::from(expected == TaskState::Succeeded),
            u64::from(expected == TaskState::Failed),
            u64::from(expected == TaskState::Cancelled)
        ),
        "{what}"
    );
    if let Some(task) = task {
        let result = task.join();
        match expected {
            TaskState::Succeeded => assert_eq!(result, Ok(7), "{what}"),
            TaskState::Failed => assert_eq!(
                result,
                Err(TaskError::Panicked("cell panics".into())),
                "{what}"
            ),
            _ => assert_eq!(result, Err(TaskError::Cancelled), "{what}"),
        }
    }
}

#[test]
fn every_combination_keeps_its_counts() {
    for panics in [false, true] {
        for keep_handle in [false, true] {
            for cancel in [Cancel::Never, Cancel::Before, Cancel::During, Cancel::After] {
                for callback in [false, true] {
                    cell(panics, keep_handle, cancel, callback);
                }
            }
        }
    }
}
