//! loom models of the task state word and the callbacks (slot and list): every
//! interleaving (up to the preemption bound) of the races the runtime
//! relies on. Run with
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release --lib --target-dir target/loom loom_
//! ```
//!
//! (`.ci/run` does; its own target dir keeps the normal build cached).

use std::ffi::c_void;
use std::ptr;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::callbacks::{Callback, Extras};
use super::state::{SpawnKind, State, TaskState, ToCancelled, ToNotified, ToRunning, ToSuspended};
use crate::sync::loom::model;

/// Runs a listed callback the way the finisher does. The models' callbacks
/// ignore the task handle, so NULL is enough.
fn run(callback: Callback) {
    let _panicked = callback.run(ptr::null_mut());
}

/// The models' C callback: counts its runs in the `AtomicUsize` at `user`.
unsafe extern "C" fn count_c(_task: *mut c_void, user: *mut c_void) {
    // SAFETY: the models pass a counter that outlives the model's threads.
    unsafe { &*user.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
}

/// A task the caller has started: RUNNING with `refs` references.
fn running(refs: u64) -> Arc<State> {
    let st = State::new(refs, 0, SpawnKind::default());
    assert!(matches!(
        st.transition_to_running(),
        ToRunning::Run { resumed: false }
    ));
    Arc::new(st)
}

/// The finishing thread: make it final, then drain the list (rule 2).
fn complete_and_drain(st: &State, extras: &Extras) {
    let now = st.transition_to_complete(TaskState::Succeeded);
    extras.drain(now, run);
}

/// A callback that counts its runs and checks the state is final.
fn counting(st: Arc<State>, runs: Arc<AtomicUsize>) -> Callback {
    Callback::Boxed(Box::new(move |_| {
        assert!(
            st.load().is_done(),
            "callback ran before the state was final"
        );
        runs.fetch_add(1, Ordering::SeqCst);
    }))
}

#[test]
fn loom_cancel_races_start_exactly_one_wins() {
    model(|| {
        let st = Arc::new(State::new(1, 0, SpawnKind::default()));
        let worker = {
            let st = st.clone();
            thread::spawn(move || st.transition_to_running())
        };
        let cancel = st.transition_to_cancelled();
        let run = worker.join().unwrap();
        match (run, cancel) {
            (ToRunning::Run { .. }, ToCancelled::Requested) => {
                let s = st.load();
                assert_eq!(s.lifecycle(), TaskState::Running);
                assert!(s.is_cancel_requested());
            }
            (ToRunning::Done, ToCancelled::Cancelled { was, .. }) => {
                assert_eq!(was, TaskState::Pending);
                assert_eq!(st.load().lifecycle(), TaskState::Cancelled);
            }
            (run, cancel) => panic!("both or neither won: {run:?} {cancel:?}"),
        }
    });
}

#[test]
fn loom_cancel_races_complete() {
    model(|| {
        let st = running(1);
        let finisher = {
            let st = st.clone();
            thread::spawn(move || st.transition_to_complete(TaskState::Succeeded))
        };
        let cancel = st.transition_to_cancelled();
        finisher.join().unwrap();
        let s = st.load();
        assert_eq!(s.lifecycle(), TaskState::Succeeded);
        match cancel {
            ToCancelled::Requested => assert!(s.is_cancel_requested()),
            ToCancelled::AlreadyDone => assert!(!s.is_cancel_requested()),
            ToCancelled::Cancelled { .. } => panic!("cancelled a running task"),
        }
    });
}

#[test]
fn loom_callback_added_while_completing_runs_exactly_once() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let finisher = {
            let (st, extras) = (st.clone(), extras.clone());
            thread::spawn(move || complete_and_drain(&st, &extras))
        };
        if let Err(inline) = extras.add(&st, counting(st.clone(), runs.clone())) {
            run(inline);
        }
        finisher.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn loom_two_adders_and_a_finisher_keep_every_callback() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let adder = {
            let (st, extras, runs) = (st.clone(), extras.clone(), runs.clone());
            thread::spawn(move || {
                if let Err(inline) = extras.add(&st, counting(st.clone(), runs)) {
                    run(inline);
                }
            })
        };
        let finisher = {
            let (st, extras) = (st.clone(), extras.clone());
            thread::spawn(move || complete_and_drain(&st, &extras))
        };
        if let Err(inline) = extras.add(&st, counting(st.clone(), runs.clone())) {
            run(inline);
        }
        adder.join().unwrap();
        finisher.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn loom_removed_callback_runs_xor_is_removed() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let key = extras
            .add(&st, counting(st.clone(), runs.clone()))
            .unwrap_or_else(|_| unreachable!("not done yet"));
        let finisher = {
            let (st, extras) = (st.clone(), extras.clone());
            thread::spawn(move || complete_and_drain(&st, &extras))
        };
        let removed = extras.remove(&st, key);
        finisher.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst) + usize::from(removed), 1);
    });
}

/// A removal by value (`wsrt_task_remove_done_callback`) may find the slot
/// published but not yet written (module docs of `callbacks.rs`): whatever
/// the interleaving, the entry is removed xor runs at the end. (What the
/// remover reads after its wait is not checked here: the slot's second word
/// is plain memory, which loom does not track. A finisher that took a boxed
/// entry without waiting would crash the model above, and under TSan the
/// stress test's finishers race its adders' writes.)
#[test]
fn loom_c_callback_removed_while_being_added_runs_xor_is_removed() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let user = Arc::as_ptr(&runs) as usize;
        let adder = {
            let (st, extras) = (st.clone(), extras.clone());
            thread::spawn(move || {
                extras
                    .add(&st, Callback::C { cb: count_c, user })
                    .unwrap_or_else(|_| unreachable!("not done yet"))
            })
        };
        let removed = extras.remove_c(&st, count_c, user);
        assert_eq!(adder.join().unwrap(), 0, "the slot's key");
        complete_and_drain(&st, &extras);
        assert_eq!(runs.load(Ordering::SeqCst) + removed, 1);
    });
}

#[test]
fn loom_removed_list_callback_runs_xor_is_removed() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new());
        let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // The first goes to the slot, the second to the list.
        let slot_key = extras
            .add(&st, counting(st.clone(), first.clone()))
            .unwrap_or_else(|_| unreachable!("not done yet"));
        let list_key = extras
            .add(&st, counting(st.clone(), second.clone()))
            .unwrap_or_else(|_| unreachable!("not done yet"));
        assert_ne!(slot_key, list_key);
        let finisher = {
            let (st, extras) = (st.clone(), extras.clone());
            thread::spawn(move || complete_and_drain(&st, &extras))
        };
        let removed = extras.remove(&st, list_key);
        finisher.join().unwrap();
        assert_eq!(first.load(Ordering::SeqCst), 1);
        assert_eq!(second.load(Ordering::SeqCst) + usize::from(removed), 1);
    });
}

#[test]
fn loom_last_release_is_seen_by_exactly_one_thread() {
    model(|| {
        // The scheduler's reference and one handle.
        let st = running(2);
        let finisher = {
            let st = st.clone();
            thread::spawn(move || {
                let _ = st.transition_to_complete(TaskState::Succeeded);
                st.ref_dec()
            })
        };
        let handle_was_last = st.ref_dec();
        let runner_was_last = finisher.join().unwrap();
        assert!(handle_was_last ^ runner_was_last);
        if handle_was_last {
            // Acquire through the count: the completion is visible.
            assert!(st.load().is_done());
        }
    });
}

#[test]
fn loom_wake_races_suspend_and_schedules_once() {
    model(|| {
        let st = running(1);
        let waker = {
            let st = st.clone();
            thread::spawn(move || st.transition_to_notified())
        };
        let suspended = st.transition_to_suspended(false);
        let woken = waker.join().unwrap();
        let schedules = usize::from(suspended == ToSuspended::Reschedule)
            + usize::from(woken == ToNotified::Schedule);
        assert_eq!(schedules, 1, "{suspended:?} {woken:?}");
        assert_eq!(st.load().lifecycle(), TaskState::Suspended);
        assert!(st.load().is_scheduled());
    });
}

#[test]
fn loom_cancel_races_wake_of_a_suspended_task() {
    model(|| {
        let st = running(1);
        assert_eq!(st.transition_to_suspended(false), ToSuspended::Parked);
        let waker = {
            let st = st.clone();
            thread::spawn(move || st.transition_to_notified())
        };
        let cancel = st.transition_to_cancelled();
        let woken = waker.join().unwrap();
        assert!(matches!(
            cancel,
            ToCancelled::Cancelled {
                was: TaskState::Suspended,
                ..
            }
        ));
        if woken == ToNotified::Schedule {
            // Queued before the cancel: the worker that pops it finds it done.
            assert_eq!(st.transition_to_running(), ToRunning::Done);
        }
        assert_eq!(st.load().lifecycle(), TaskState::Cancelled);
    });
}

#[test]
fn loom_output_is_taken_by_one_joiner() {
    model(|| {
        let st = running(1);
        let _ = st.transition_to_complete(TaskState::Succeeded);
        let other = {
            let st = st.clone();
            thread::spawn(move || st.take_output())
        };
        let mine = st.take_output();
        assert!(mine ^ other.join().unwrap());
    });
}
