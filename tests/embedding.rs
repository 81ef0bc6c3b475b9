//! A runtime inside someone else's process: thread options and hooks,
//! stacks, shutdown with a time limit, threads gone after drop, a runtime
//! dropped on its own worker, and a handle used after its release.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use wsrt::{Error, Runtime, ShutdownMode, TaskState};

/// The names of this process's threads that start with `prefix`
/// (`/proc/self/task/*/comm`; Linux keeps 15 bytes of a name).
fn threads_named(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Waits until no thread of this process is named with `prefix`. A joined
/// thread runs no code any more, but the kernel may list it for a moment
/// while it reaps it: a state certain to come (a minute's deadline).
fn wait_for_no_threads_named(prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !threads_named(prefix).is_empty() {
        assert!(
            Instant::now() < deadline,
            "threads {prefix}-* left after drop"
        );
        std::thread::yield_now();
    }
}

#[test]
fn hooks_run_once_per_worker_on_that_worker_and_names_are_the_prefix_and_index() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (started.clone(), stopped.clone());
    let rt = Runtime::builder()
        .workers(3)
        .thread_name("embhook")
        .on_thread_start(move |i| {
            let name = std::thread::current().name().map(str::to_owned);
            s.lock().unwrap().push((i, name));
        })
        .on_thread_stop(move |i| t.lock().unwrap().push(i))
        .build()
        .unwrap();
    // Every worker ran its start hook before its first task: a task on
    // each worker (three tasks meeting at a barrier) sees its own index.
    let meet = Arc::new(Barrier::new(3));
    let names: BTreeSet<String> = (0..3)
        .map(|_| {
            let meet = meet.clone();
            rt.spawn(move || {
                meet.wait();
                std::thread::current().name().unwrap().to_owned()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let expected: BTreeSet<String> = (0..3).map(|i| format!("embhook-{i}")).collect();
    assert_eq!(names, expected);
    assert_eq!(threads_named("embhook"), Vec::from_iter(expected.clone()));
    assert!(stopped.lock().unwrap().is_empty());
    drop(rt);
    let mut started = started.lock().unwrap().clone();
    started.sort();
    let want: Vec<(usize, Option<String>)> =
        (0..3).map(|i| (i, Some(format!("embhook-{i}")))).collect();
    assert_eq!(
        started, want,
        "each worker's start hook once, on that worker"
    );
    let mut stopped = stopped.lock().unwrap().clone();
    stopped.sort();
    assert_eq!(stopped, [0, 1, 2]);
    wait_for_no_threads_named("embhook");
}

#[test]
fn a_panicking_hook_is_caught_and_counted() {
    let rt = Runtime::builder()
        .workers(2)
        .on_thread_start(|i| {
            if i == 1 {
                panic!("hook of worker 1");
            }
        })
        .build()
        .unwrap();
    let meet = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let meet = meet.clone();
            rt.spawn(move || meet.wait())
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    assert_eq!(rt.stats().callback_panics, 1);
}

/// Recurses `depth` times with 64 KiB of stack a frame, and returns a sum
/// of every frame's bytes (so no frame can be left out).
fn deep(depth: usize) -> u64 {
    let mut frame = [0u8; 64 << 10];
    frame[depth % frame.len()] = depth as u8;
    let frame = std::hint::black_box(&mut frame);
    let below = if depth == 0 { 0 } else { deep(depth - 1) };
    below + u64::from(frame[depth % frame.len()])
}

#[test]
fn a_task_gets_the_stack_it_asks_for() {
    // 8 MiB of frames on a 16 MiB stack.
    let rt = Runtime::builder()
        .workers(1)
        .stack_size(16 << 20)
        .build()
        .unwrap();
    let expected = (0..=128u64).map(|d| d % 256).sum::<u64>();
    assert_eq!(rt.spawn(|| deep(128)).join(), Ok(expected));
}

#[test]
fn the_default_stack_is_the_platform_s_not_two_mib() {
    // RLIMIT_STACK is usually 8 MiB (unlimited reads as 8 MiB): 4 MiB of
    // frames, twice Rust's default thread stack, fits.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let expected = (0..=64u64).map(|d| d % 256).sum::<u64>();
    assert_eq!(rt.spawn(|| deep(64)).join(), Ok(expected));
}

#[test]
fn shutdown_with_a_time_limit_gives_up_then_a_later_call_waits_and_drop_joins() {
    let rt = Runtime::builder()
        .workers(2)
        .thread_name("embstop")
        .build()
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let (r, s) = (release.clone(), started.clone());
    // Ignores its cancel request until released.
    let stubborn = rt.spawn(move || {
        s.wait();
        while !r.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        wsrt::cancel_requested()
    });
    started.wait();
    let limit = Duration::from_millis(50);
    let begun = Instant::now();
    let first = rt.shutdown_timeout(ShutdownMode::Cancel, limit);
    assert!(matches!(first, Err(Error::Timeout)), "{first:?}");
    assert!(begun.elapsed() >= limit, "gave up before the limit");
    assert!(stubborn.is_cancel_requested());
    assert_eq!(stubborn.state(), TaskState::Running);
    // Refused from the first call on.
    assert!(rt.try_spawn(|| ()).is_err());
    release.store(true, Ordering::SeqCst);
    assert!(matches!(
        rt.shutdown_timeout(ShutdownMode::Cancel, Duration::from_secs(60)),
        Ok(())
    ));
    assert_eq!(
        stubborn.join(),
        Ok(true),
        "it saw the request and ignored it"
    );
    assert_eq!(threads_named("embstop").len(), 2);
    drop(rt);
    wait_for_no_threads_named("embstop");
}

#[test]
fn a_runtime_dropped_on_its_own_worker_refuses_later_spawns_instead_of_losing_them() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    h.spawn(move || drop(rt)).wait();
    assert!(h.is_shutdown());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let late = h.spawn(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    // Refused: CANCELLED at once, never pending.
    assert_eq!(late.state(), TaskState::Cancelled);
    assert!(h.try_spawn(|| ()).is_err());
    let r = ran.clone();
    assert!(!h.spawn_detached(move || {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// Run in a child process (this binary again): spawns through the C ABI,
/// releases the handle, then uses it.
#[test]
fn a_handle_used_after_its_release_is_caught_in_debug_builds() {
    const CHILD: &str = "WSRT_TEST_USE_AFTER_RELEASE";
    if std::env::var_os(CHILD).is_some() {
        use wsrt::ffi::*;
        let mut rt = std::ptr::null_mut();
        assert_eq!(wsrt_runtime_new(1, &mut rt), wsrt_status::WSRT_OK);
        extern "C" fn noop(_: *mut std::ffi::c_void, _: *mut *mut std::ffi::c_void) -> i32 {
            0
        }
        let mut t = std::ptr::null_mut();
        let status = wsrt_spawn(
            rt,
            Some(noop),
            std::ptr::null_mut(),
            std::ptr::null(),
            &mut t,
        );
        assert_eq!(status, wsrt_status::WSRT_OK);
        assert_eq!(wsrt_task_wait(t, -1), wsrt_status::WSRT_OK);
        assert_eq!(wsrt_runtime_free(rt), wsrt_status::WSRT_OK);
        wsrt_task_release(t); // the last reference: the runtime's is gone
        let _ = wsrt_task_state(t); // undefined behaviour, caught in debug
        std::process::exit(0);
    }
    if !cfg!(debug_assertions) {
        return; // release builds do not look
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_handle_used_after_its_release_is_caught_in_debug_builds",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child went on: {stderr}");
    // Caught by wsrt's check, or first by AddressSanitizer or
    // ThreadSanitizer (the sanitizer steps of CI): either way, not
    // silently.
    assert!(
        stderr.contains("used after its last wsrt_task_release")
            || stderr.contains("AddressSanitizer")
            || stderr.contains("ThreadSanitizer: heap-use-after-free"),
        "{stderr}"
    );
}
