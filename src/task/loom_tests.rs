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

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::ptr;

use loom::cell::UnsafeCell;
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
        ToRunning::Run { resumed: false, .. }
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
            (ToRunning::Done, ToCancelled::Claimed { was, .. }) => {
                assert_eq!(was, TaskState::Pending);
                // Claimed: not done until the canceller makes it final.
                assert!(!st.load().is_done());
                assert_eq!(st.finish_cancel().lifecycle(), TaskState::Cancelled);
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
            ToCancelled::Claimed { .. } => panic!("cancelled a running task"),
        }
    });
}

#[test]
fn loom_callback_added_while_completing_runs_exactly_once() {
    model(|| {
        let st = running(1);
        let extras = Arc::new(Extras::new(1));
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
        let extras = Arc::new(Extras::new(1));
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
        let extras = Arc::new(Extras::new(1));
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
        let extras = Arc::new(Extras::new(1));
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
        let extras = Arc::new(Extras::new(1));
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
            ToCancelled::Claimed {
                was: TaskState::Suspended,
                ..
            }
        ));
        if woken == ToNotified::Schedule {
            // Queued before the cancel: the worker that pops it finds it
            // claimed (and leaves it to the canceller).
            assert_eq!(st.transition_to_running(), ToRunning::Done);
        }
        assert_eq!(st.finish_cancel().lifecycle(), TaskState::Cancelled);
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

/// A sleeping task (SUSPENDED, parked) is woken by the timer
/// (`Alarm::Wake(TaskRef)` fires `wake()`, then drops its reference) and
/// by another waker at once, while a handle cancels it
/// (`loom_cancel_races_wake_of_a_suspended_task` races one wake against
/// the cancel; this adds the second waker, the run of the woken task and
/// the reference counts). A wake that schedules it hands the parked
/// task's reference to a queue, and the worker that pops it (here the
/// waking thread, from its own deque) runs it. Exactly one of {scheduled
/// once, then run; cancelled} happens: never scheduled twice, never
/// scheduled after the cancel, and every reference taken is given back
/// once.
#[test]
fn loom_timer_and_a_waker_race_a_cancel_of_a_sleeping_task() {
    /// The wake-up (`harness::wake`), by a holder of a reference, which it
    /// then drops; if it scheduled the task, the run (`harness::run`) with
    /// the queue's reference. The body, in a loom cell, is the stage the
    /// runner owns once it wins RUNNING.
    fn wake_then_run(st: &State, body: &UnsafeCell<bool>) -> (ToNotified, Option<ToRunning>) {
        let woken = st.transition_to_notified();
        let ran = (woken == ToNotified::Schedule).then(|| {
            let run = st.transition_to_running();
            if matches!(run, ToRunning::Run { resumed: true, .. }) {
                // SAFETY: loom checks that this thread owns the stage.
                let had = body.with_mut(|b| unsafe { std::mem::replace(&mut *b, false) });
                assert!(had, "ran a body already dropped");
                let _ = st.transition_to_complete(TaskState::Succeeded);
            }
            assert!(
                !st.ref_dec(),
                "a reference dropped twice: the queue's was the last"
            );
            run
        });
        assert!(
            !st.ref_dec(),
            "a reference dropped twice: the waker's was the last"
        );
        (woken, ran)
    }

    let outcomes = [
        "cancelled parked, before any wake",
        "cancelled queued, found done by its worker",
        "asked while it ran",
        "cancelled after its end",
    ];
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let seen_in_model = seen.clone();
    model(move || {
        // The handle's, the scheduler's, the timer entry's, the waker's.
        let st = running(4);
        let body = Arc::new(UnsafeCell::new(true));
        assert_eq!(st.transition_to_suspended(false), ToSuspended::Parked);
        let wakers = [(); 2].map(|()| {
            let (st, body) = (st.clone(), body.clone());
            thread::spawn(move || wake_then_run(&st, &body))
        });
        let cancel = st.transition_to_cancelled();
        if let ToCancelled::Claimed { was, parked, .. } = cancel {
            assert_eq!(was, TaskState::Suspended);
            // SAFETY: loom checks that this thread owns the stage.
            let had = body.with_mut(|b| unsafe { std::mem::replace(&mut *b, false) });
            assert!(had, "dropped a body already run");
            // Final only once the body is gone (its `arg_drop` ran).
            let _ = st.finish_cancel();
            if parked {
                assert!(
                    !st.ref_dec(),
                    "a reference dropped twice: the parked task's was the last"
                );
            }
        }
        let [timer, waker] = wakers.map(|w| w.join().unwrap());
        let runs: Vec<&ToRunning> = [&timer.1, &waker.1].into_iter().flatten().collect();
        assert!(runs.len() <= 1, "scheduled twice: {timer:?} {waker:?}");
        let ran = matches!(runs.first(), Some(ToRunning::Run { resumed: true, .. }));
        let s = st.load();
        let outcome = match cancel {
            ToCancelled::Claimed { parked, .. } => {
                // Before any wake (nothing to schedule after it), or after
                // one, whose worker then finds it done.
                assert_eq!(runs.is_empty(), parked, "{timer:?} {waker:?}");
                assert!(!ran);
                assert_eq!(s.lifecycle(), TaskState::Cancelled);
                if parked {
                    outcomes[0]
                } else {
                    outcomes[1]
                }
            }
            // Woken and started first: the cancel only asked, or came
            // after the end.
            ToCancelled::Requested | ToCancelled::AlreadyDone => {
                assert!(ran, "{cancel:?} {timer:?} {waker:?}");
                assert_eq!(s.lifecycle(), TaskState::Succeeded);
                if cancel == ToCancelled::Requested {
                    outcomes[2]
                } else {
                    outcomes[3]
                }
            }
        };
        // SAFETY: the joins ordered every write before this read.
        assert!(
            !body.with(|b| unsafe { *b }),
            "the body was neither run nor dropped"
        );
        assert!(!s.is_scheduled(), "a done task left scheduled: {s:?}");
        assert_eq!(s.ref_count(), 1, "only the handle's is left: {s:?}");
        assert!(st.ref_dec());
        seen_in_model.lock().unwrap().insert(outcome);
    });
    // Every path was taken by some execution (or nothing checked it).
    let seen = seen.lock().unwrap();
    for outcome in outcomes {
        assert!(
            seen.contains(outcome),
            "never reached {outcome:?}: {seen:?}"
        );
    }
}
