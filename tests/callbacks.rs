//! Done-callbacks: order, exactly once, after the end, inline when added
//! after the end, never when removed, panics contained.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use wsrt::{Runtime, TaskState};

fn gated(rt: &Runtime) -> (wsrt::Task<u32>, Arc<Barrier>) {
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let t = rt.spawn(move || {
        g.wait();
        9
    });
    (t, gate)
}

#[test]
fn callbacks_run_once_in_order_after_the_state_is_final() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (t, gate) = gated(&rt);
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let log = log.clone();
        t.on_done(move |t| log.lock().unwrap().push((i, t.state(), t.is_done())));
    }
    gate.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    let log = log.lock().unwrap().clone();
    let expected: Vec<_> = (0..5).map(|i| (i, TaskState::Succeeded, true)).collect();
    assert_eq!(log, expected);
}

#[test]
fn callback_added_after_done_runs_before_on_done_returns_on_this_thread() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let t = rt.spawn(|| 1);
    t.wait();
    let here = std::thread::current().id();
    let ran_on = Arc::new(Mutex::new(None));
    let r = ran_on.clone();
    t.on_done(move |_| *r.lock().unwrap() = Some(std::thread::current().id()));
    assert_eq!(*ran_on.lock().unwrap(), Some(here));
}

#[test]
fn removed_callback_never_runs_and_others_keep_their_order() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (t, gate) = gated(&rt);
    let log = Arc::new(Mutex::new(Vec::new()));
    let keys: Vec<_> = (0..4)
        .map(|i| {
            let log = log.clone();
            t.on_done(move |_| log.lock().unwrap().push(i))
        })
        .collect();
    assert!(t.remove_done_callback(keys[1]));
    assert!(
        !t.remove_done_callback(keys[1]),
        "second removal finds nothing"
    );
    gate.wait();
    t.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![0, 2, 3]);
    assert!(!t.remove_done_callback(keys[0]), "already ran");
}

#[test]
fn removing_the_first_callback_keeps_the_order_of_the_rest_and_of_later_ones() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (t, gate) = gated(&rt);
    let log = Arc::new(Mutex::new(Vec::new()));
    let add = |i: u32| {
        let log = log.clone();
        t.on_done(move |_| log.lock().unwrap().push(i))
    };
    // The first entry is kept in the task itself, the rest in a list.
    let first = add(0);
    add(1);
    add(2);
    assert!(t.remove_done_callback(first));
    assert!(
        !t.remove_done_callback(first),
        "second removal finds nothing"
    );
    // A later callback goes after the others, not into the freed place.
    add(3);
    gate.wait();
    t.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_callback_may_remove_a_later_one() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (t, gate) = gated(&rt);
    let log = Arc::new(Mutex::new(Vec::new()));
    let later_key = Arc::new(Mutex::new(None));
    let (l, k) = (log.clone(), later_key.clone());
    t.on_done(move |t| {
        l.lock().unwrap().push("first");
        let key = k.lock().unwrap().take().unwrap();
        assert!(t.remove_done_callback(key));
    });
    let l = log.clone();
    *later_key.lock().unwrap() = Some(t.on_done(move |_| l.lock().unwrap().push("second")));
    gate.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["first"]);
}

#[test]
fn typed_callback_sees_the_task() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (t, gate) = gated(&rt);
    let id = Arc::new(AtomicUsize::new(0));
    let i = id.clone();
    t.on_done(move |t: &wsrt::Task<u32>| i.store(t.id() as usize, Ordering::SeqCst));
    gate.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(id.load(Ordering::SeqCst) as u64, t.id());
}

#[test]
fn panicking_callback_is_contained_and_counted() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (t, gate) = gated(&rt);
    let after = Arc::new(AtomicUsize::new(0));
    t.on_done(|_| panic!("callback panics"));
    let a = after.clone();
    t.on_done(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    gate.wait();
    t.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert_eq!(rt.stats().callback_panics, 1);
    assert_eq!(t.join(), Ok(9));
}

#[test]
fn callbacks_may_spawn_and_release_their_task() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (t, gate) = gated(&rt);
    let child_ran = Arc::new(AtomicUsize::new(0));
    let c = child_ran.clone();
    let handle = t.as_task_ref().clone();
    let mut slot = Some(handle);
    let slot = Mutex::new(slot.take());
    t.on_done(move |_| {
        drop(slot.lock().unwrap().take()); // release a handle inside its own callback
        wsrt::spawn(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
    });
    drop(t);
    gate.wait();
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(child_ran.load(Ordering::SeqCst), 1);
}

/// Many adders racing the end: every callback runs exactly once.
#[test]
fn callbacks_added_while_the_task_finishes_run_exactly_once() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 2_000;
    for _ in 0..TASKS {
        let t = rt.spawn(|| ());
        for _ in 0..3 {
            let r = runs.clone();
            t.on_done(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
    }
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), TASKS * 3);
}
