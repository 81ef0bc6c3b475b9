//! loom models of a group cancel (`group.rs`) racing its tasks: one that
//! parks, two that park, one spawned into the group and run. They drive the
//! real handshake ([`CancelFlags`]) and the real task state word
//! (`task/state.rs`); what `harness.rs` does around them (`run`, `suspend`,
//! `cancel`) and the cancel's walk of the live tasks (`cancel_parked`) are
//! restated here, step for step, on those two. And one of an isolated wait
//! taking the last job of a worker whose plain wait then checks the
//! isolation mark (`wait.rs`, `admit`). Run with the crate's other models:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release --lib --target-dir target/loom loom_
//! ```

use std::collections::BTreeSet;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::group::{Cancel, CancelFlags};
use crate::sync::deque::{Steal, Worker, N};
use crate::sync::loom::model;
use crate::task::state::{SpawnKind, State, TaskState, ToCancelled, ToRunning, ToSuspended};

/// Runs `f` as a loom model, then checks that its executions, between
/// them, reached each outcome in `expected` (every execution returns the
/// name of its own): a path no execution takes is a path nothing checks.
fn model_reaching(expected: &[&str], f: impl Fn() -> &'static str + Sync + Send + 'static) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    {
        let seen = seen.clone();
        model(move || {
            let outcome = f();
            seen.lock().unwrap().insert(outcome);
        });
    }
    let seen = seen.lock().unwrap();
    for outcome in expected {
        assert!(
            seen.contains(outcome),
            "never reached {outcome:?}: {seen:?}"
        );
    }
}

/// What a task's stage holds: its body until the body runs to its end or
/// is dropped unrun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Body,
    Ran,
    Dropped,
}

/// A grouped task: the real state word, and its stage in a loom cell, so
/// that a thread touching the stage without having won it through the
/// state word (which hands it on with `AcqRel`) is a reported race.
struct Task {
    state: State,
    stage: UnsafeCell<Stage>,
}

impl Task {
    /// Just spawned into a group: PENDING and queued, with `refs`
    /// references (the queue's and the handles').
    fn pending(refs: u64) -> Task {
        let kind = SpawnKind {
            grouped: true,
            ..SpawnKind::default()
        };
        Task {
            state: State::new(refs, 0, kind),
            stage: UnsafeCell::new(Stage::Body),
        }
    }

    /// Popped and started by a worker, which owns the stage now.
    fn running(refs: u64) -> Task {
        let task = Task::pending(refs);
        assert!(matches!(
            task.state.transition_to_running(),
            ToRunning::Run { resumed: false, .. }
        ));
        task
    }

    /// The running body uses its state (the stage's owner writes it).
    fn run_a_step(&self) {
        self.stage.with_mut(|stage| {
            // SAFETY: loom checks that this thread owns the stage.
            assert_eq!(unsafe { *stage }, Stage::Body);
        });
    }

    /// The stage's owner ends the body (`how`: ran or dropped); only once.
    fn end_body(&self, how: Stage) {
        self.stage.with_mut(|stage| {
            // SAFETY: loom checks that this thread owns the stage.
            let was = unsafe { std::mem::replace(&mut *stage, how) };
            assert_eq!(was, Stage::Body, "the body ended twice");
        });
    }

    /// Read once every thread of the model is joined.
    fn stage(&self) -> Stage {
        // SAFETY: loom checks the joins ordered the writes before this.
        self.stage.with(|stage| unsafe { *stage })
    }

    /// Drops a reference that must not be the last (a handle still holds
    /// the task in every model).
    fn drop_ref(&self) {
        assert!(!self.state.ref_dec(), "a reference too many was dropped");
    }
}

/// `harness::cancel` (`TaskRef::cancel`): whoever claims a PENDING or
/// SUSPENDED task owns the stage, drops the body, makes it CANCELLED, and,
/// if the task was parked, drops the scheduler's reference it kept.
/// A cancel that finds the task claimed by another waits until that one
/// made it final (`harness::cancel` parks; here, a loom yield loop).
fn cancel(task: &Task) -> ToCancelled {
    let result = task.state.transition_to_cancelled();
    match result {
        ToCancelled::Claimed { parked, .. } => {
            task.end_body(Stage::Dropped);
            let _ = task.state.finish_cancel();
            if parked {
                task.drop_ref();
            }
        }
        ToCancelled::AlreadyDone => {
            while task.state.load().is_claimed() {
                thread::yield_now();
            }
        }
        ToCancelled::Requested => {}
    }
    result
}

/// `GroupCore::cancel` of a group without children, whose live-task walk
/// (`cancel_parked`) meets `tasks`. True if this call cancelled it.
fn cancel_group(flags: &CancelFlags, tasks: &[&Task]) -> bool {
    let Cancel { won, walk } = flags.cancel();
    if won && walk {
        for task in tasks {
            let s = task.state.load();
            // `live_tasks` skips done tasks; ours are grouped, not shielded.
            if !s.is_done() && s.is_grouped() && !s.is_shielded() {
                let _ = cancel(task);
            }
        }
    }
    won
}

/// `harness::suspend` of a grouped task that parks (awaits, sleeps, or
/// waits for its waker): the worker owns the stage and the scheduler's
/// reference, and takes one of its own (`me`) for what it does after.
/// Returns what this thread saw, for `model_reaching`.
fn park(task: &Task, flags: &CancelFlags) -> &'static str {
    task.state.ref_inc();
    flags.note_parked();
    let outcome = match task.state.transition_to_suspended(false) {
        ToSuspended::Parked => {
            // Either the cancel's walk finds it parked, or this sees the
            // flag (after the note).
            if !flags.is_cancelled() {
                "parked, flag not seen"
            } else if let ToCancelled::Claimed { .. } = cancel(task) {
                "parked, then cancelled itself"
            } else {
                "parked, flag seen after the walk cancelled it"
            }
        }
        ToSuspended::Cancelled => {
            // The walk asked while it ran: it ends here, the body first.
            task.end_body(Stage::Dropped);
            let _ = task.state.transition_to_complete(TaskState::Cancelled);
            task.drop_ref();
            "cancelled at its suspend (the walk asked)"
        }
        ToSuspended::Reschedule => unreachable!("no wake in these models"),
    };
    task.drop_ref();
    outcome
}

/// `harness::run` of a grouped task popped from a queue, whose reference
/// it consumes. A task of a cancelled group ends CANCELLED unrun. Returns
/// what happened, for `model_reaching`.
fn run(task: &Task, flags: &CancelFlags) -> &'static str {
    let outcome = match task.state.transition_to_running() {
        ToRunning::Done => "found done by its worker",
        ToRunning::Run { .. } => {
            let (end, outcome) = if flags.is_cancelled() {
                task.end_body(Stage::Dropped);
                (TaskState::Cancelled, "ended unrun by its worker")
            } else {
                task.end_body(Stage::Ran);
                (TaskState::Succeeded, "ran")
            };
            let _ = task.state.transition_to_complete(end);
            outcome
        }
    };
    task.drop_ref();
    outcome
}

/// What every model checks once its threads are joined: the task is
/// CANCELLED (never left SUSPENDED), its body was dropped (once: a second
/// end panics in `end_body`), and only the handle's reference is left.
fn assert_cancelled_once(task: &Task) {
    let s = task.state.load();
    assert_eq!(s.lifecycle(), TaskState::Cancelled, "{s:?}");
    assert_eq!(task.stage(), Stage::Dropped);
    assert_eq!(s.ref_count(), 1, "{s:?}");
}

/// A running grouped task parks while its group is cancelled: whatever the
/// interleaving it ends CANCELLED exactly once, and if the canceller saw
/// it SUSPENDED before it began, it is CANCELLED when the cancel returns.
#[test]
fn loom_group_cancel_races_a_parking_task() {
    let outcomes = [
        "parked, flag not seen",
        "parked, then cancelled itself",
        "parked, flag seen after the walk cancelled it",
        "cancelled at its suspend (the walk asked)",
    ];
    model_reaching(&outcomes, || {
        let flags = Arc::new(CancelFlags::new());
        // The worker's (the scheduler's) reference and a handle.
        let task = Arc::new(Task::running(2));
        let worker = {
            let (task, flags) = (task.clone(), flags.clone());
            thread::spawn(move || {
                task.run_a_step();
                park(&task, &flags)
            })
        };
        let before = task.state.load().lifecycle();
        assert!(cancel_group(&flags, &[&task]));
        if before == TaskState::Suspended {
            let after = task.state.load().lifecycle();
            assert_eq!(after, TaskState::Cancelled, "parked before the cancel");
        }
        let outcome = worker.join().unwrap();
        assert_cancelled_once(&task);
        outcome
    });
}

/// Two tasks of a group park while it is cancelled. The second parker may
/// find `has_parked` already set by the first and skip its store: its
/// fence still orders it against the cancel's, and its state word alone
/// hands its stage to the walk that cancels it.
#[test]
fn loom_group_cancel_races_two_parking_tasks() {
    model(|| {
        let flags = Arc::new(CancelFlags::new());
        let tasks = [Arc::new(Task::running(2)), Arc::new(Task::running(2))];
        let workers = tasks.clone().map(|task| {
            let flags = flags.clone();
            thread::spawn(move || {
                task.run_a_step();
                let _ = park(&task, &flags);
            })
        });
        let before = tasks.each_ref().map(|t| t.state.load().lifecycle());
        assert!(cancel_group(&flags, &[&tasks[0], &tasks[1]]));
        for (task, before) in tasks.iter().zip(before) {
            if before == TaskState::Suspended {
                let after = task.state.load().lifecycle();
                assert_eq!(after, TaskState::Cancelled, "parked before the cancel");
            }
        }
        for worker in workers {
            worker.join().unwrap();
        }
        for task in &tasks {
            assert_cancelled_once(task);
        }
    });
}

/// A task spawned into a group (listed, then queued) and run by a worker
/// that checks the group's flag once it wins RUNNING, while the group is
/// cancelled; with `walk`, a task of the group parked once before, so the
/// cancel also walks the live tasks and may cancel the new one itself.
/// The body runs (only if its worker's look at the flag came before the
/// cancel set it: never if it was spawned after the cancel returned) or is
/// dropped unrun, exactly once.
fn spawn_races_group_cancel(walk: bool, outcomes: &[&str]) {
    model_reaching(outcomes, move || {
        let flags = Arc::new(CancelFlags::new());
        if walk {
            flags.note_parked();
        }
        // The queue's reference and the spawner's handle.
        let task = Arc::new(Task::pending(2));
        // The live-task list the walk reads (one entry), and a note that
        // the cancel returned.
        let listed = Arc::new(AtomicBool::new(false));
        let cancel_returned = Arc::new(AtomicBool::new(false));
        let spawner = {
            let (task, flags) = (task.clone(), flags.clone());
            let (listed, cancel_returned) = (listed.clone(), cancel_returned.clone());
            thread::spawn(move || {
                let after_cancel = cancel_returned.load(Ordering::Acquire);
                // Listed, then queued: popped by this worker (its deque).
                listed.store(true, Ordering::Release);
                (after_cancel, run(&task, &flags))
            })
        };
        let meets: &[&Task] = if listed.load(Ordering::Acquire) {
            &[&task]
        } else {
            &[]
        };
        assert!(cancel_group(&flags, meets));
        cancel_returned.store(true, Ordering::Release);
        let (after_cancel, outcome) = spawner.join().unwrap();
        let s = task.state.load();
        match task.stage() {
            Stage::Ran => {
                assert!(!after_cancel, "spawned after the cancel, and ran");
                assert_eq!(s.lifecycle(), TaskState::Succeeded);
            }
            Stage::Dropped => assert_eq!(s.lifecycle(), TaskState::Cancelled),
            Stage::Body => panic!("neither ran nor dropped: {s:?}"),
        }
        assert_eq!(s.ref_count(), 1, "{s:?}");
        outcome
    });
}

#[test]
fn loom_group_cancel_races_a_spawn_into_the_group() {
    spawn_races_group_cancel(false, &["ran", "ended unrun by its worker"]);
}

#[test]
fn loom_group_cancel_walk_races_a_spawned_task_starting() {
    let outcomes = [
        "ran",
        "ended unrun by its worker",
        "found done by its worker",
    ];
    spawn_races_group_cancel(true, &outcomes);
}

/// An isolated wait marks the task it waits for (ISOLATION_ROOT), then
/// steals; here it takes the last job of the worker that runs that task,
/// whose plain wait finds its deque empty, takes a job elsewhere, and
/// checks the mark after an Acquire fence before running it (`wait.rs`,
/// `admit`). Whenever the steal is why the deque was empty, the check must
/// see the mark, or the wait would run a job the isolation forbids. (The
/// model also passes without `admit`'s fence: the pop's SeqCst fence and
/// compare-exchange order the check after the steal already.)
#[test]
fn loom_a_plain_wait_that_lost_its_last_job_sees_the_isolation_mark() {
    model_reaching(&["popped", "stolen"], || {
        let task = Arc::new(State::new(2, 0, SpawnKind::default()));
        let deque = Worker::new_lifo();
        deque.push(N(0));
        let stealer = deque.stealer();
        let marker = task.clone();
        let isolated_wait = thread::spawn(move || {
            marker.mark_isolation_root();
            let mine = Worker::new_lifo();
            matches!(stealer.steal_batch_and_pop(&mine), Steal::Success(_))
        });
        // The plain wait: its own deque first.
        let popped = deque.pop().is_some();
        if !popped {
            // It takes another job (from elsewhere), then `admit`.
            loom::sync::atomic::fence(Ordering::Acquire);
            assert!(
                task.load().is_isolation_root(),
                "a plain wait missed the mark of the isolated wait that took its job"
            );
        }
        let stolen = isolated_wait.join().unwrap();
        assert_ne!(popped, stolen, "the job was taken once");
        if popped {
            "popped"
        } else {
            "stolen"
        }
    });
}
