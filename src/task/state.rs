//! The task state word: one `AtomicU64` holding the lifecycle, the flags,
//! the first callback's slot state and the reference count.
//!
//! This file is the only place that knows the bit layout. Every change of the
//! word goes through [`State::fetch_update`], so each named transition is one
//! CAS loop whose precondition and effect can be read in one place.
//!
//! ```text
//!  63             25  24  23  22  21  20 19 18  17  16  15    7  6   5   4   3   2..0
//! +-----------------+---+---+---+---+---+-----+---+---+-------+---+---+---+---+------+
//! | reference count | K | R | I | H | G |kind | F | U | shard | T | C | X | S | life |
//! +-----------------+---+---+---+---+---+-----+---+---+-------+---+---+---+---+------+
//!   K = CLAIMED (a cancel owns the stage), R = ISOLATION_ROOT;
//!   I, H, G = ISOLATED, SHIELDED, GROUPED (set at spawn, never changed);
//!   kind, F, U = the first callback's slot: its kind, SLOT_FULL, SLOT_USED;
//!   shard = task-list shard (immutable), T = TAKEN, C = CALLBACKS,
//!   X = CANCEL_REQUESTED, S = SCHEDULED, life = TaskState
//! ```
//!
//! Orderings: a transition that hands the task's stage (closure and output)
//! from one thread to another is `AcqRel` on success, so the thread that wins
//! the next transition sees everything written before it. Loads that only
//! answer a query (`state()`, `is_done()`) are `Acquire`, so a caller that sees
//! a final state also sees the output stored before it.

use crate::sync::loom::atomic::{AtomicU64, Ordering};

/// Where a task is in its life. Stored in the low three bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TaskState {
    /// Spawned, not started yet.
    Pending = 0,
    /// A worker is running the task's function.
    Running = 1,
    /// Not done; the function returned "yield" or awaits another task.
    Suspended = 2,
    /// Done: the function returned a value.
    Succeeded = 3,
    /// Done: the function failed (error code or panic).
    Failed = 4,
    /// Done: cancelled before it ran, while suspended, or by its own choice.
    Cancelled = 5,
}

impl TaskState {
    /// True for the three final states.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

const LIFE_MASK: u64 = 0b111;
/// Some queue owns (or is about to own) a reference to the task and will run
/// it. Set at spawn, by a wake-up of a suspended task, and by a wake-up that
/// arrives while the task runs ("notified": the runner reschedules it).
const SCHEDULED: u64 = 1 << 3;
/// `cancel()` was called while the task was running. Never cleared.
const CANCEL_REQUESTED: u64 = 1 << 4;
/// The callback list may be non-empty. Only ever set while the task is not
/// done, so the thread that makes the task final knows whether to look.
const CALLBACKS: u64 = 1 << 5;
/// The success value was moved out by `Task::join`. Set once, only when
/// SUCCEEDED, so exactly one joiner gets the value.
const TAKEN: u64 = 1 << 6;
/// Which live-task registry shard lists the task: set at spawn, never
/// changed (kept here because these bits were free).
const SHARD_SHIFT: u32 = 7;
/// Number of registry shards the word can name.
pub(crate) const SHARDS_MAX: usize = 1 << 9;
/// The first callback's slot (`callbacks.rs`) was taken by an adder. Set
/// once, never cleared: later callbacks go to the list, after it.
const SLOT_USED: u64 = 1 << 16;
/// The slot holds an entry, of kind `SLOT_KIND` (its adder may still be
/// writing it: `callbacks.rs` waits for it). Set with SLOT_USED, only while
/// the task is not done; cleared only by a removal while not done. So the
/// thread that makes the task final owns a slot it sees full.
const SLOT_FULL: u64 = 1 << 17;
const SLOT_KIND_SHIFT: u32 = 18;
const SLOT_KIND_MASK: u64 = 0b11 << SLOT_KIND_SHIFT;
/// Debug builds: the word of a freed task, a lifecycle no task has, so
/// that a handle used after its last release is caught while its memory
/// is not reused yet (`ffi::handles::borrow_task`, `ref_inc`).
const POISONED: u64 = LIFE_MASK;
/// The task belongs to a group: its header's `owner` is the group, not
/// the pool (`sched/group.rs`). Set at spawn, never changed.
const GROUPED: u64 = 1 << 20;
/// Its group's cancel leaves it alone (`WSRT_SPAWN_SHIELDED`). Set at
/// spawn, never changed.
const SHIELDED: u64 = 1 << 21;
/// It was spawned inside an isolated wait: its header's `links.next` holds
/// that wait's isolation tag (`sched/wait.rs`). Set at spawn, never changed.
const ISOLATED: u64 = 1 << 22;
/// An isolated wait waits for it: while it runs, its own waits are
/// isolated with its id as their tag, and its spawns carry that tag
/// (`sched/wait.rs`). Set once, by the first isolated wait; never cleared.
const ISOLATION_ROOT: u64 = 1 << 23;
/// A cancel won the stage of a PENDING or SUSPENDED task: nobody runs or
/// wakes it any more, and it is not done until the canceller has dropped
/// its body (so its `arg_drop` comes before anything that sees it done:
/// a wait, a done-callback). Cleared when it is made final.
const CLAIMED: u64 = 1 << 24;
const REF_SHIFT: u32 = 25;
/// One reference in the count.
const REF_ONE: u64 = 1 << REF_SHIFT;
const REF_MASK: u64 = !(REF_ONE - 1);

/// A copy of the state word, decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    pub(crate) fn lifecycle(self) -> TaskState {
        match self.0 & LIFE_MASK {
            0 => TaskState::Pending,
            1 => TaskState::Running,
            2 => TaskState::Suspended,
            3 => TaskState::Succeeded,
            4 => TaskState::Failed,
            5 => TaskState::Cancelled,
            other => unreachable!("corrupt task state {other}"),
        }
    }
    fn set_lifecycle(&mut self, life: TaskState) {
        self.0 = (self.0 & !LIFE_MASK) | life as u64;
    }
    pub(crate) fn is_done(self) -> bool {
        self.lifecycle().is_done()
    }
    pub(crate) fn is_scheduled(self) -> bool {
        self.0 & SCHEDULED != 0
    }
    fn set_scheduled(&mut self, on: bool) {
        self.set_flag(SCHEDULED, on);
    }
    pub(crate) fn is_cancel_requested(self) -> bool {
        self.0 & CANCEL_REQUESTED != 0
    }
    pub(crate) fn has_callbacks(self) -> bool {
        self.0 & CALLBACKS != 0
    }
    /// The success value was moved out by `take_output`.
    pub(crate) fn is_taken(self) -> bool {
        self.0 & TAKEN != 0
    }
    /// The kind of the entry in the first callback's slot, if it is full.
    pub(crate) fn slot(self) -> Option<u8> {
        (self.0 & SLOT_FULL != 0).then_some(((self.0 & SLOT_KIND_MASK) >> SLOT_KIND_SHIFT) as u8)
    }
    pub(crate) fn shard(self) -> usize {
        ((self.0 >> SHARD_SHIFT) as usize) & (SHARDS_MAX - 1)
    }
    pub(crate) fn ref_count(self) -> u64 {
        self.0 >> REF_SHIFT
    }
    /// The task belongs to a group (its `owner` is the group).
    pub(crate) fn is_grouped(self) -> bool {
        self.0 & GROUPED != 0
    }
    /// A group cancel leaves the task alone.
    pub(crate) fn is_shielded(self) -> bool {
        self.0 & SHIELDED != 0
    }
    /// The task carries an isolation tag (in `links.next`).
    pub(crate) fn is_isolated(self) -> bool {
        self.0 & ISOLATED != 0
    }
    /// In no group, and neither spawned inside an isolated wait nor waited
    /// for by one: its run changes nothing but the running task.
    pub(crate) fn is_plain(self) -> bool {
        self.0 & (GROUPED | ISOLATED | ISOLATION_ROOT) == 0
    }
    /// ISOLATED or ISOLATION_ROOT: its run has an isolation tag of its own.
    pub(crate) fn has_isolation(self) -> bool {
        self.0 & (ISOLATED | ISOLATION_ROOT) != 0
    }
    /// An isolated wait waits for the task.
    pub(crate) fn is_isolation_root(self) -> bool {
        self.0 & ISOLATION_ROOT != 0
    }
    /// A cancel owns the task's stage and will make it final.
    pub(crate) fn is_claimed(self) -> bool {
        self.0 & CLAIMED != 0
    }
    fn set_flag(&mut self, flag: u64, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("lifecycle", &self.lifecycle())
            .field("scheduled", &self.is_scheduled())
            .field("cancel_requested", &self.is_cancel_requested())
            .field("callbacks", &self.has_callbacks())
            .field("slot", &self.slot())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// Result of [`State::transition_to_running`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// The caller now runs the task and owns its stage.
    Run {
        /// The task was SUSPENDED (resumed) rather than PENDING (first run).
        resumed: bool,
        /// The state the transition stored (its spawn flags included).
        now: Snapshot,
    },
    /// The task became done while queued (cancelled): drop the queue's reference.
    Done,
}

/// Result of [`State::transition_to_suspended`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToSuspended {
    /// SUSPENDED and unscheduled ("parked"): the task keeps the runner's
    /// reference; the wake-up that schedules it moves that reference to the
    /// queue, a cancel that ends it drops it.
    Parked,
    /// SUSPENDED and scheduled: the caller pushes the task back on a queue.
    Reschedule,
    /// A cancel was requested while it ran: the task stays RUNNING and the
    /// caller, which still owns the stage, drops the body and then ends it
    /// CANCELLED (`transition_to_complete`).
    Cancelled,
}

/// Result of [`State::transition_to_cancelled`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToCancelled {
    /// It was PENDING or SUSPENDED (`was`) and is CLAIMED now: no one runs
    /// or wakes it any more, and it is not done yet. The caller owns the
    /// stage: it drops the body, then makes the task final
    /// ([`State::finish_cancel`]) and finishes it (callbacks).
    Claimed {
        was: TaskState,
        /// It was SUSPENDED and unscheduled: the caller now also owns the
        /// scheduler reference the parked task kept.
        parked: bool,
        now: Snapshot,
    },
    /// It is running: the request flag is set, the function decides.
    Requested,
    /// It was already done, or another cancel claimed it; nothing changed.
    AlreadyDone,
}

/// Result of [`State::publish_slot`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PublishSlot {
    /// The slot is the caller's entry's: the caller writes it now.
    Published,
    /// Some earlier callback took it: use the list.
    Used,
    /// The task is done: the caller runs its callback itself.
    Done,
}

/// Result of [`State::transition_to_notified`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotified {
    /// It was parked: the caller must push it on a queue, which takes over
    /// the reference the parked task kept.
    Schedule,
    /// Nothing to do: done, already scheduled, or running (it will be
    /// rescheduled by its runner).
    Nothing,
}

/// The flags a task is spawned with (set once, never changed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpawnKind {
    /// Its `owner` is a group (`GROUPED`).
    pub(crate) grouped: bool,
    /// A group cancel leaves it alone (`SHIELDED`).
    pub(crate) shielded: bool,
    /// It carries an isolation tag (`ISOLATED`).
    pub(crate) isolated: bool,
}

/// The atomic state word of one task.
pub(crate) struct State(AtomicU64);

impl State {
    /// A new PENDING, scheduled task with `refs` references, listed in
    /// task-list shard `shard` (< `SHARDS_MAX`), with the flags `kind` sets.
    pub(crate) fn new(refs: u64, shard: usize, kind: SpawnKind) -> State {
        debug_assert!(shard < SHARDS_MAX);
        let flags = if kind.grouped { GROUPED } else { 0 }
            | if kind.shielded { SHIELDED } else { 0 }
            | if kind.isolated { ISOLATED } else { 0 };
        State(AtomicU64::new(
            TaskState::Pending as u64
                | SCHEDULED
                | ((shard as u64) << SHARD_SHIFT)
                | flags
                | (refs * REF_ONE),
        ))
    }

    /// The current state. `Acquire`: a caller that sees a final state also
    /// sees the output and everything the finishing thread did before.
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// The one read-modify-write loop. `f` returns the new word or `Err` to
    /// leave it unchanged; the result tells which and carries the old value.
    fn fetch_update<T>(
        &self,
        mut f: impl FnMut(Snapshot) -> Result<Snapshot, T>,
    ) -> Result<Snapshot, T> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = f(Snapshot(current))?;
            match self
                .0
                .compare_exchange_weak(current, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(next),
                Err(actual) => current = actual,
            }
        }
    }

    /// A worker popped the task: PENDING|SUSPENDED + SCHEDULED → RUNNING.
    pub(crate) fn transition_to_running(&self) -> ToRunning {
        let mut resumed = false;
        let result = self.fetch_update(|mut s| {
            if s.is_done() || s.is_claimed() {
                return Err(());
            }
            debug_assert!(s.is_scheduled(), "ran an unscheduled task: {s:?}");
            resumed = match s.lifecycle() {
                TaskState::Pending => false,
                TaskState::Suspended => true,
                other => unreachable!("task popped while {other:?}"),
            };
            s.set_lifecycle(TaskState::Running);
            s.set_scheduled(false);
            Ok(s)
        });
        match result {
            Ok(now) => ToRunning::Run { resumed, now },
            Err(()) => ToRunning::Done,
        }
    }

    /// The function returned "not done yet". `reschedule` asks to be queued
    /// again right away (a plain yield); otherwise the task waits for a wake.
    /// A pending cancel request ends the task CANCELLED instead.
    pub(crate) fn transition_to_suspended(&self, reschedule: bool) -> ToSuspended {
        let next = self.fetch_update::<()>(|mut s| {
            debug_assert_eq!(s.lifecycle(), TaskState::Running);
            if s.is_cancel_requested() {
                // Stays RUNNING: the runner drops the body, then ends
                // it (`transition_to_complete`).
                return Err(());
            } else {
                s.set_lifecycle(TaskState::Suspended);
                if reschedule {
                    s.set_scheduled(true);
                }
            }
            Ok(s)
        });
        let next = match next {
            Ok(next) => next,
            Err(()) => return ToSuspended::Cancelled,
        };
        if next.is_scheduled() {
            ToSuspended::Reschedule
        } else {
            ToSuspended::Parked
        }
    }

    /// The function finished: RUNNING → `end` (a final lifecycle). Returns the
    /// new state, whose `has_callbacks` tells the caller to run the list.
    pub(crate) fn transition_to_complete(&self, end: TaskState) -> Snapshot {
        debug_assert!(end.is_done());
        self.fetch_update::<()>(|mut s| {
            debug_assert_eq!(s.lifecycle(), TaskState::Running);
            s.set_lifecycle(end);
            s.set_scheduled(false);
            Ok(s)
        })
        .unwrap_or_else(|()| unreachable!())
    }

    /// `cancel()`: the asyncio rules in one CAS.
    pub(crate) fn transition_to_cancelled(&self) -> ToCancelled {
        let mut was = TaskState::Pending;
        let mut parked = false;
        let result = self.fetch_update(|mut s| match s.lifecycle() {
            _ if s.is_claimed() => Err(()),
            life @ (TaskState::Pending | TaskState::Suspended) => {
                was = life;
                parked = life == TaskState::Suspended && !s.is_scheduled();
                s.set_flag(CLAIMED, true);
                s.set_scheduled(false);
                Ok(s)
            }
            TaskState::Running => {
                s.set_flag(CANCEL_REQUESTED, true);
                Ok(s)
            }
            _ => Err(()),
        });
        match result {
            Ok(now) if now.is_claimed() => ToCancelled::Claimed { was, parked, now },
            Ok(_) => ToCancelled::Requested,
            Err(()) => ToCancelled::AlreadyDone,
        }
    }

    /// After [`transition_to_cancelled`](Self::transition_to_cancelled)
    /// claimed the task and its body was dropped: CANCELLED, final. Returns
    /// the final word (its callbacks are the ones to run).
    pub(crate) fn finish_cancel(&self) -> Snapshot {
        self.fetch_update::<()>(|mut s| {
            debug_assert!(s.is_claimed(), "finished a cancel never claimed: {s:?}");
            s.set_flag(CLAIMED, false);
            s.set_lifecycle(TaskState::Cancelled);
            Ok(s)
        })
        .unwrap_or_else(|()| unreachable!())
    }

    /// A wake-up (an awaited task finished, or a `Waker` fired).
    pub(crate) fn transition_to_notified(&self) -> ToNotified {
        let result = self.fetch_update(|mut s| {
            if s.is_done() || s.is_scheduled() || s.is_claimed() {
                return Err(());
            }
            s.set_scheduled(true);
            Ok(s)
        });
        match result {
            Ok(s) if s.lifecycle() == TaskState::Suspended => ToNotified::Schedule,
            _ => ToNotified::Nothing,
        }
    }

    /// Marks the task as waited for by an isolated wait (once; nothing on
    /// a done task). Its runner sees the flag when it wins RUNNING, or, if
    /// it already runs, at its next wait (`sched/context.rs`).
    pub(crate) fn mark_isolation_root(&self) {
        if !self.load().is_isolation_root() {
            let _ = self.fetch_update(|mut s| {
                if s.is_done() {
                    return Err(());
                }
                s.set_flag(ISOLATION_ROOT, true);
                Ok(s)
            });
        }
    }

    /// Announce a callback about to be listed. Fails (false) once the task is
    /// done: the caller then runs the callback itself. The caller holds the
    /// callback-list lock, so the finishing thread, which takes that lock
    /// after seeing the flag, finds the entry.
    pub(crate) fn set_callbacks(&self) -> bool {
        self.fetch_update(|mut s| {
            if s.is_done() {
                return Err(());
            }
            s.set_flag(CALLBACKS, true);
            Ok(s)
        })
        .is_ok()
    }

    /// Take the first callback's slot for an entry of `kind` (< 4) and mark
    /// it full: once per task, only while not done. The entry is written
    /// after this (`callbacks.rs`): one read-modify-write for the adder,
    /// whose thread usually just spawned the task (claiming the slot, then
    /// publishing what was written in it, took two).
    pub(crate) fn publish_slot(&self, kind: u8) -> PublishSlot {
        debug_assert!(kind < 4);
        let result = self.fetch_update(|mut s| {
            if s.is_done() {
                return Err(PublishSlot::Done);
            }
            if s.0 & SLOT_USED != 0 {
                return Err(PublishSlot::Used);
            }
            s.0 = (s.0 & !SLOT_KIND_MASK)
                | SLOT_USED
                | SLOT_FULL
                | (u64::from(kind) << SLOT_KIND_SHIFT);
            Ok(s)
        });
        result.map_or_else(|e| e, |_| PublishSlot::Published)
    }

    /// Withdraw the slot's entry (a removal). True for one caller, only while
    /// the task is not done; the caller then owns the entry.
    pub(crate) fn unpublish_slot(&self) -> bool {
        self.fetch_update(|mut s| {
            if s.is_done() || s.0 & SLOT_FULL == 0 {
                return Err(());
            }
            s.set_flag(SLOT_FULL, false);
            Ok(s)
        })
        .is_ok()
    }

    /// Claim the success value. True for exactly one caller, and only once
    /// the task SUCCEEDED.
    pub(crate) fn take_output(&self) -> bool {
        self.fetch_update(|mut s| {
            if s.lifecycle() != TaskState::Succeeded || s.0 & TAKEN != 0 {
                return Err(());
            }
            s.set_flag(TAKEN, true);
            Ok(s)
        })
        .is_ok()
    }

    /// Marks the success value taken, by the holder of the only reference
    /// (`raw::take_output_and_free`). A plain store: with one reference
    /// left, nobody else can read or change the word any more.
    pub(crate) fn set_taken_by_last_owner(&self, now: Snapshot) {
        debug_assert_eq!(now.ref_count(), 1);
        self.0.store(now.0 | TAKEN, Ordering::Relaxed);
    }

    /// Debug builds: marks the word of a task about to be freed (its last
    /// reference is gone, so nobody may read it any more).
    pub(crate) fn poison(&self) {
        if cfg!(debug_assertions) {
            self.0.store(POISONED, Ordering::Relaxed);
        }
    }

    /// Debug builds: true if the task was freed (`poison`), as far as its
    /// memory still says so. Always false in release builds.
    pub(crate) fn is_poisoned(&self) -> bool {
        cfg!(debug_assertions) && self.0.load(Ordering::Relaxed) == POISONED
    }

    /// Add a reference. `Relaxed` is enough: the caller already holds one, so
    /// the task cannot be freed concurrently (as `Arc::clone`).
    pub(crate) fn ref_inc(&self) {
        debug_assert!(!self.is_poisoned(), "a released task handle was used");
        let prev = self.0.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev & REF_MASK == REF_MASK {
            // More than 2^48 references: the count would wrap.
            std::process::abort();
        }
    }

    /// Drop a reference; true if it was the last and the task must be freed.
    /// `AcqRel`: every use of the task by other holders happens before the
    /// free (as `Arc::drop`).
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.0.fetch_sub(REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= 1);
        prev.ref_count() == 1
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pending() -> State {
        State::new(2, 5, SpawnKind::default())
    }

    #[test]
    fn spawn_flags_stay_through_transitions_and_leave_the_rest_alone() {
        let kind = SpawnKind {
            grouped: true,
            shielded: true,
            isolated: false,
        };
        let st = State::new(1, 7, kind);
        let s = st.load();
        assert!(s.is_grouped() && s.is_shielded() && !s.is_isolated());
        assert_eq!(
            (s.lifecycle(), s.shard(), s.ref_count()),
            (TaskState::Pending, 7, 1)
        );
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        st.ref_inc();
        let end = st.transition_to_complete(TaskState::Failed);
        assert!(end.is_grouped() && end.is_shielded() && !end.is_isolated());
        assert_eq!(end.ref_count(), 2);
        let isolated = State::new(
            1,
            0,
            SpawnKind {
                isolated: true,
                ..SpawnKind::default()
            },
        );
        assert!(isolated.load().is_isolated() && !isolated.load().is_grouped());
    }

    #[test]
    fn new_task_is_pending_scheduled_with_refs() {
        let s = pending().load();
        assert_eq!(s.lifecycle(), TaskState::Pending);
        assert!(s.is_scheduled() && !s.is_cancel_requested() && !s.has_callbacks());
        assert_eq!(s.ref_count(), 2);
        assert_eq!(s.shard(), 5);
    }

    #[test]
    fn pending_runs_then_succeeds() {
        let st = pending();
        assert!(matches!(
            st.transition_to_running(),
            ToRunning::Run { resumed: false, .. }
        ));
        assert_eq!(st.load().lifecycle(), TaskState::Running);
        assert!(!st.load().is_scheduled());
        let end = st.transition_to_complete(TaskState::Succeeded);
        assert_eq!(end.lifecycle(), TaskState::Succeeded);
        assert!(end.is_done());
    }

    #[test]
    fn every_final_state_is_reachable_from_running() {
        for end in [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Cancelled,
        ] {
            let st = pending();
            assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
            assert_eq!(st.transition_to_complete(end).lifecycle(), end);
        }
    }

    #[test]
    fn cancel_pending_claims_it_then_makes_it_final_and_wins_over_start() {
        let st = pending();
        assert!(
            matches!(st.transition_to_cancelled(), ToCancelled::Claimed { was: TaskState::Pending, parked: false, now } if now.lifecycle() == TaskState::Pending && now.is_claimed())
        );
        // Claimed: not done, never run, never woken, not cancelled twice.
        assert!(!st.load().is_done());
        assert_eq!(st.transition_to_running(), ToRunning::Done);
        assert_eq!(st.transition_to_notified(), ToNotified::Nothing);
        assert_eq!(st.transition_to_cancelled(), ToCancelled::AlreadyDone);
        let now = st.finish_cancel();
        assert_eq!(now.lifecycle(), TaskState::Cancelled);
        assert!(!now.is_claimed());
        assert_eq!(st.transition_to_cancelled(), ToCancelled::AlreadyDone);
    }

    #[test]
    fn cancel_running_only_requests() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_cancelled(), ToCancelled::Requested);
        assert_eq!(st.transition_to_cancelled(), ToCancelled::Requested);
        let s = st.load();
        assert_eq!(s.lifecycle(), TaskState::Running);
        assert!(s.is_cancel_requested());
        // The function may ignore the request.
        assert_eq!(
            st.transition_to_complete(TaskState::Succeeded).lifecycle(),
            TaskState::Succeeded
        );
        assert_eq!(st.transition_to_cancelled(), ToCancelled::AlreadyDone);
    }

    #[test]
    fn cancel_done_changes_nothing() {
        for end in [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Cancelled,
        ] {
            let st = pending();
            assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
            let before = st.transition_to_complete(end);
            assert_eq!(st.transition_to_cancelled(), ToCancelled::AlreadyDone);
            assert_eq!(st.load(), before);
        }
    }

    #[test]
    fn yield_reschedules_and_resumes() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_suspended(true), ToSuspended::Reschedule);
        let s = st.load();
        assert_eq!(s.lifecycle(), TaskState::Suspended);
        assert!(s.is_scheduled());
        assert!(matches!(
            st.transition_to_running(),
            ToRunning::Run { resumed: true, .. }
        ));
    }

    #[test]
    fn await_parks_until_notified_once() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_suspended(false), ToSuspended::Parked);
        assert!(!st.load().is_scheduled());
        assert_eq!(st.transition_to_notified(), ToNotified::Schedule);
        assert_eq!(st.transition_to_notified(), ToNotified::Nothing);
        assert!(matches!(
            st.transition_to_running(),
            ToRunning::Run { resumed: true, .. }
        ));
    }

    #[test]
    fn wake_while_running_reschedules_at_suspend() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_notified(), ToNotified::Nothing);
        assert_eq!(st.transition_to_suspended(false), ToSuspended::Reschedule);
    }

    #[test]
    fn wake_of_done_task_does_nothing() {
        let st = pending();
        assert!(matches!(
            st.transition_to_cancelled(),
            ToCancelled::Claimed { .. }
        ));
        let _ = st.finish_cancel();
        assert_eq!(st.transition_to_notified(), ToNotified::Nothing);
        assert_eq!(st.load().lifecycle(), TaskState::Cancelled);
    }

    #[test]
    fn cancel_suspended_is_immediate() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_suspended(false), ToSuspended::Parked);
        assert!(matches!(
            st.transition_to_cancelled(),
            ToCancelled::Claimed {
                was: TaskState::Suspended,
                parked: true,
                ..
            }
        ));
        assert_eq!(st.transition_to_notified(), ToNotified::Nothing);
    }

    #[test]
    fn suspend_with_cancel_request_ends_cancelled() {
        let st = pending();
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert_eq!(st.transition_to_cancelled(), ToCancelled::Requested);
        // It stays RUNNING: the runner drops the body, then ends it.
        assert_eq!(st.transition_to_suspended(true), ToSuspended::Cancelled);
        assert_eq!(st.load().lifecycle(), TaskState::Running);
        let now = st.transition_to_complete(TaskState::Cancelled);
        assert_eq!(now.lifecycle(), TaskState::Cancelled);
    }

    #[test]
    fn callbacks_flag_only_before_done() {
        let st = pending();
        assert!(st.set_callbacks());
        assert!(st.load().has_callbacks());
        assert!(matches!(
            st.transition_to_cancelled(),
            ToCancelled::Claimed { .. }
        ));
        // While claimed a callback may still be added: the final word has it.
        assert!(st.set_callbacks());
        assert!(st.finish_cancel().has_callbacks());
        assert!(!st.set_callbacks());
    }

    #[test]
    fn output_is_taken_once_and_only_after_success() {
        let st = pending();
        assert!(!st.take_output());
        assert!(matches!(st.transition_to_running(), ToRunning::Run { .. }));
        assert!(!st.take_output());
        let _ = st.transition_to_complete(TaskState::Succeeded);
        assert!(st.take_output());
        assert!(!st.take_output());
        let failed = pending();
        assert!(matches!(
            failed.transition_to_running(),
            ToRunning::Run { .. }
        ));
        let _ = failed.transition_to_complete(TaskState::Failed);
        assert!(!failed.take_output());
    }

    #[test]
    fn refcount_counts() {
        let st = pending();
        st.ref_inc();
        assert_eq!(st.load().ref_count(), 3);
        assert!(!st.ref_dec());
        assert!(!st.ref_dec());
        assert!(st.ref_dec());
    }

    #[test]
    fn the_callback_slot_is_published_once_and_owned_by_one_side() {
        let st = pending();
        assert_eq!(st.publish_slot(2), PublishSlot::Published);
        assert_eq!(st.load().slot(), Some(2));
        assert_eq!(st.publish_slot(1), PublishSlot::Used, "taken once per task");
        assert_eq!(st.load().slot(), Some(2), "a refused adder changes nothing");
        // A removal withdraws it once; the slot stays used.
        assert!(st.unpublish_slot());
        assert!(!st.unpublish_slot());
        assert_eq!(st.load().slot(), None);
        assert_eq!(st.publish_slot(0), PublishSlot::Used);
        // Flags and refs are untouched by the slot bits.
        let s = st.load();
        assert_eq!(
            (s.lifecycle(), s.shard(), s.ref_count()),
            (TaskState::Pending, 5, 2)
        );
    }

    #[test]
    fn a_done_task_refuses_the_slot_and_its_finisher_keeps_a_published_entry() {
        // Done first: the adder keeps its entry.
        let st = pending();
        assert!(matches!(
            st.transition_to_cancelled(),
            ToCancelled::Claimed { .. }
        ));
        assert_eq!(st.finish_cancel().slot(), None);
        assert_eq!(st.publish_slot(1), PublishSlot::Done);
        assert_eq!(st.load().slot(), None);

        // Published, then done: the final state carries it, removal fails.
        let st = pending();
        assert_eq!(st.publish_slot(3), PublishSlot::Published);
        assert!(matches!(
            st.transition_to_cancelled(),
            ToCancelled::Claimed { .. }
        ));
        assert_eq!(st.finish_cancel().slot(), Some(3));
        assert!(!st.unpublish_slot());
        assert_eq!(st.publish_slot(0), PublishSlot::Done);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic]
    fn completing_a_pending_task_is_illegal() {
        let _ = pending().transition_to_complete(TaskState::Succeeded);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic]
    fn suspending_a_pending_task_is_illegal() {
        let _ = pending().transition_to_suspended(false);
    }
}
