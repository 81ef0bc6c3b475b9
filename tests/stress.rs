//! Stress tests through the C ABI (ignored by default; `.ci/run` runs them
//! in release): many threads spawning, cancelling, adding and removing
//! callbacks, waiting and releasing, while tasks spawn children, fail or end
//! cancelled. Afterwards every per-task counter is checked exactly.
//!
//! `cargo test --release --test stress -- --ignored`; `WSRT_STRESS_SCALE`
//! (default 1) multiplies the sizes.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use wsrt::ffi::*;

fn scale() -> usize {
    std::env::var("WSRT_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Per-task record, shared by the test and the task's arg.
#[derive(Default)]
struct Record {
    runs: AtomicU32,
    arg_drops: AtomicU32,
    /// Callback runs, by callback slot (0..3).
    callbacks: [AtomicU32; 3],
    /// Slots whose callback was removed before it ran.
    removed: [AtomicBool; 3],
}

struct Arg {
    record: Arc<Record>,
    rt: *mut wsrt_runtime,
    /// What the task does: 0 succeed, 1 fail, 2 end cancelled, 3 spawn a
    /// detached child then succeed, 4 yield once then succeed.
    kind: u32,
    children: Arc<AtomicUsize>,
}

unsafe extern "C" fn task_fn(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Box<Arg>` given to `wsrt_spawn`, alive until arg_drop.
    let arg = unsafe { &*(arg as *const Arg) };
    let runs = arg.record.runs.fetch_add(1, Ordering::SeqCst) + 1;
    match arg.kind {
        1 => 7,
        2 => WSRT_TASK_CANCELLED,
        3 => {
            let child = Box::into_raw(Box::new(Arg {
                record: Arc::new(Record::default()),
                rt: arg.rt,
                kind: 0,
                children: arg.children.clone(),
            }));
            let opts = wsrt_spawn_opts {
                arg_drop: Some(drop_child),
                ..Default::default()
            };
            if wsrt_spawn(arg.rt, Some(task_fn), child.cast(), &opts, ptr::null_mut())
                != wsrt_status::WSRT_OK
            {
                // Refused (shutdown): the arg is still ours.
                // SAFETY: not handed over.
                drop(unsafe { Box::from_raw(child) });
            }
            WSRT_TASK_OK
        }
        4 if runs == 1 => WSRT_TASK_YIELD,
        _ => WSRT_TASK_OK,
    }
}

unsafe extern "C" fn drop_arg(arg: *mut c_void) {
    // SAFETY: the `Box<Arg>` from the spawn; arg_drop runs once.
    let arg = unsafe { Box::from_raw(arg as *mut Arg) };
    arg.record.arg_drops.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn drop_child(arg: *mut c_void) {
    // SAFETY: as `drop_arg`.
    let arg = unsafe { Box::from_raw(arg as *mut Arg) };
    assert!(arg.record.runs.load(Ordering::SeqCst) <= 1);
    arg.children.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn on_done(task: *mut wsrt_task, user: *mut c_void) {
    // SAFETY: `user` points to a counter inside a `Record` kept alive by the test.
    let counter = unsafe { &*(user as *const AtomicU32) };
    assert!(wsrt_task_done(task), "callback before the state was final");
    counter.fetch_add(1, Ordering::SeqCst);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct SendPtr<T>(*mut T);
// SAFETY: the runtime and handles are thread-safe C objects.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

#[test]
#[ignore = "stress: run with --ignored in release (.ci/run does)"]
fn spawn_cancel_callbacks_under_contention() {
    const THREADS: usize = 4;
    let per_thread = 20_000 * scale();
    let mut rt = ptr::null_mut();
    assert_eq!(wsrt_runtime_new(3, &mut rt), wsrt_status::WSRT_OK);
    let rt = SendPtr(rt);
    let children = Arc::new(AtomicUsize::new(0));
    let records: Vec<Vec<Arc<Record>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (rt, children) = (&rt, children.clone());
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9 + t as u64);
                    let mut records = Vec::with_capacity(per_thread);
                    let mut live = Vec::new();
                    for _ in 0..per_thread {
                        let record = Arc::new(Record::default());
                        let arg = Box::into_raw(Box::new(Arg {
                            record: record.clone(),
                            rt: rt.0,
                            kind: (rng.next() % 5) as u32,
                            children: children.clone(),
                        }));
                        let opts = wsrt_spawn_opts {
                            name: c"stress".as_ptr(),
                            arg_drop: Some(drop_arg),
                            ..Default::default()
                        };
                        let mut task = ptr::null_mut();
                        let status = wsrt_spawn(rt.0, Some(task_fn), arg.cast(), &opts, &mut task);
                        assert_eq!(status, wsrt_status::WSRT_OK);
                        for slot in 0..3 {
                            let user = &record.callbacks[slot] as *const AtomicU32 as *mut c_void;
                            assert_eq!(
                                wsrt_task_add_done_callback(task, Some(on_done), user),
                                wsrt_status::WSRT_OK
                            );
                        }
                        // Remove slot 1 from a quarter of the tasks.
                        if rng.next() % 4 == 0 {
                            let user = &record.callbacks[1] as *const AtomicU32 as *mut c_void;
                            if wsrt_task_remove_done_callback(task, Some(on_done), user) == 1 {
                                record.removed[1].store(true, Ordering::SeqCst);
                            }
                        }
                        match rng.next() % 6 {
                            0 | 1 => {
                                wsrt_task_cancel(task);
                            }
                            2 => {
                                assert_eq!(wsrt_task_wait(task, -1), wsrt_status::WSRT_OK);
                            }
                            _ => {}
                        }
                        if rng.next() % 2 == 0 {
                            wsrt_task_release(task);
                        } else {
                            live.push(SendPtr(task));
                        }
                        records.push(record);
                    }
                    for task in live {
                        assert_eq!(wsrt_task_wait(task.0, -1), wsrt_status::WSRT_OK);
                        assert!(wsrt_task_done(task.0));
                        wsrt_task_release(task.0);
                    }
                    records
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(wsrt_runtime_shutdown(rt.0, 0), wsrt_status::WSRT_OK);
    let mut stats = wsrt_stats::default();
    assert_eq!(wsrt_runtime_stats(rt.0, &mut stats), wsrt_status::WSRT_OK);
    assert_eq!(wsrt_runtime_free(rt.0), wsrt_status::WSRT_OK);

    let total = THREADS * per_thread;
    for record in records.iter().flatten() {
        assert!(
            record.runs.load(Ordering::SeqCst) <= 2,
            "ran more than a yield allows"
        );
        assert_eq!(record.arg_drops.load(Ordering::SeqCst), 1);
        for slot in 0..3 {
            let expected = u32::from(!record.removed[slot].load(Ordering::SeqCst));
            assert_eq!(record.callbacks[slot].load(Ordering::SeqCst), expected);
        }
    }
    let spawned_children = stats.spawned as usize - total;
    assert_eq!(children.load(Ordering::SeqCst), spawned_children);
    assert_eq!(
        stats.succeeded + stats.failed + stats.cancelled,
        stats.spawned
    );
    assert_eq!(stats.pending + stats.running + stats.suspended, 0);
}

#[test]
#[ignore = "stress: run with --ignored in release (.ci/run does)"]
fn shutdown_and_free_while_spawners_spawn() {
    for round in 0..(20 * scale()) {
        let mut rt = ptr::null_mut();
        assert_eq!(wsrt_runtime_new(2, &mut rt), wsrt_status::WSRT_OK);
        let rt = SendPtr(rt);
        let accepted = Arc::new(AtomicUsize::new(0));
        let record = Arc::new(Record::default());
        let children = Arc::new(AtomicUsize::new(0));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..3 {
                let (rt, accepted, record, children, stop) =
                    (&rt, &accepted, &record, &children, &stop);
                s.spawn(move || {
                    let mut rng = Rng(round as u64 * 31 + t + 1);
                    while !stop.load(Ordering::SeqCst) {
                        let arg = Box::into_raw(Box::new(Arg {
                            record: record.clone(),
                            rt: rt.0,
                            kind: (rng.next() % 5) as u32,
                            children: children.clone(),
                        }));
                        let opts = wsrt_spawn_opts {
                            arg_drop: Some(drop_arg),
                            ..Default::default()
                        };
                        match wsrt_spawn(rt.0, Some(task_fn), arg.cast(), &opts, ptr::null_mut()) {
                            wsrt_status::WSRT_OK => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            wsrt_status::WSRT_ERR_SHUTDOWN => {
                                // Ownership stayed with us: arg_drop must not have run.
                                // SAFETY: not handed over.
                                drop(unsafe { Box::from_raw(arg) });
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                });
            }
            // Let them spawn for a moment, then shut down underneath them.
            while accepted.load(Ordering::SeqCst) < 2_000 {
                std::thread::yield_now();
            }
            let mode = (round % 2) as i32;
            assert_eq!(wsrt_runtime_shutdown(rt.0, mode), wsrt_status::WSRT_OK);
            stop.store(true, Ordering::SeqCst);
        });
        let mut stats = wsrt_stats::default();
        assert_eq!(wsrt_runtime_stats(rt.0, &mut stats), wsrt_status::WSRT_OK);
        assert_eq!(wsrt_runtime_free(rt.0), wsrt_status::WSRT_OK);
        let accepted = accepted.load(Ordering::SeqCst);
        assert_eq!(record.arg_drops.load(Ordering::SeqCst) as usize, accepted);
        assert_eq!(
            stats.spawned as usize,
            accepted + children.load(Ordering::SeqCst)
        );
        assert_eq!(
            stats.succeeded + stats.failed + stats.cancelled,
            stats.spawned
        );
        assert_eq!(stats.pending + stats.running + stats.suspended, 0);
    }
}
