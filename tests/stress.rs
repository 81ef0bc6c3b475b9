//! Stress tests through the C ABI (ignored by default; `.ci/run` runs them
//! in release): many threads spawning, cancelling, adding and removing
//! callbacks, waiting and releasing, while tasks spawn children, fail or end
//! cancelled. Afterwards every per-task counter is checked exactly. The
//! group tests do the same with tasks in nested groups (some shielded,
//! some sleeping) while other threads cancel the groups, set, replace and
//! remove their deadlines, and wait for them (a spawning thread's untimed
//! wait for a cancelled group ends what its lane still holds, racing the
//! workers that steal from it); then each task's end is
//! checked against what could have ended it, and each group's stats
//! against the tasks counted into it.
//!
//! `cargo test --release --test stress -- --ignored`; `WSRT_STRESS_SCALE`
//! (default 1) multiplies the sizes.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
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

// ---------------------------------------------------------------------------
// Groups (0.2): the same races with tasks spawned into nested groups, some
// shielded, while other threads cancel the groups, give them deadlines that
// expire, are replaced or removed, cancel sleeping tasks, add callbacks, wait
// for the groups and join the tasks. Every outcome is checked exactly once
// the runtime is freed: each task against what could have ended it, each
// group's stats against the tasks counted into it.

/// What a group test's task does (`GRecord::kind`).
const G_OK: u32 = 0;
/// Fails with `FAIL_CODE`.
const G_FAIL: u32 = 1;
/// Ends itself CANCELLED.
const G_CANCEL: u32 = 2;
/// Spawns a detached child (which joins its group), then succeeds.
const G_CHILD: u32 = 3;
/// Yields once, then succeeds.
const G_YIELD: u32 = 4;
/// `wsrt_sleep`s once (a short nap, or a plain yield for 0), then succeeds.
const G_NAP: u32 = 5;
/// Sleeps an hour at every call: only a cancel (its own or its group's)
/// ends it, so the waits for it also wait for that cancel.
const G_SENTINEL: u32 = 6;
const G_KINDS: usize = 7;
const FAIL_CODE: i32 = 7;
const HOUR_NS: i64 = 3_600_000_000_000;

/// A state as records keep it: `wsrt_state as u32 + 1`, 0 for none seen.
fn enc(state: wsrt_state) -> u32 {
    state as u32 + 1
}

/// Per-task record of the group tests, shared by the test and the task's arg.
struct GRecord {
    /// Runs, arg_drops, callbacks by slot: 0 `on_done_state` (added right
    /// after the spawn), 1 `on_done` (removed from some), 2 `on_done`
    /// (added by the controller thread while the task goes on).
    base: Record,
    kind: u32,
    /// Index of its group in the round.
    group: usize,
    shielded: bool,
    /// `wsrt_group_cancelled` of its group just before its spawn.
    cancelled_before_spawn: bool,
    /// The state its first callback saw (`enc`).
    final_state: AtomicU32,
    /// The state a handle showed after a group wait (`enc`; 0: not looked).
    handle_state: AtomicU32,
    /// `wsrt_task_join`'s status + 1 (0: not joined), and the code it gave.
    joined: AtomicU32,
    join_code: AtomicI32,
    own_cancel_tried: AtomicBool,
    /// `wsrt_task_cancel` returned true.
    own_cancel_won: AtomicBool,
    slot2_added: AtomicBool,
    /// `wsrt_cancel_requested()` was true inside one of its runs.
    saw_cancel_request: AtomicBool,
    /// `wsrt_current_group()` was not the group it was spawned into.
    wrong_group: AtomicBool,
    /// A wait for its own group inside it did not give WOULD_DEADLOCK.
    bad_own_wait: AtomicBool,
}

impl GRecord {
    fn new(kind: u32, group: usize, shielded: bool, cancelled_before_spawn: bool) -> GRecord {
        GRecord {
            base: Record::default(),
            kind,
            group,
            shielded,
            cancelled_before_spawn,
            final_state: AtomicU32::new(0),
            handle_state: AtomicU32::new(0),
            joined: AtomicU32::new(0),
            join_code: AtomicI32::new(0),
            own_cancel_tried: AtomicBool::new(false),
            own_cancel_won: AtomicBool::new(false),
            slot2_added: AtomicBool::new(false),
            saw_cancel_request: AtomicBool::new(false),
            wrong_group: AtomicBool::new(false),
            bad_own_wait: AtomicBool::new(false),
        }
    }
}

/// Per-group counts of the children that `G_CHILD` tasks spawn (detached,
/// so only their args report on them).
#[derive(Default)]
struct GroupTally {
    children_spawned: AtomicU64,
    children_refused: AtomicU64,
    children_ran: AtomicU64,
    children_dropped: AtomicU64,
    /// Children that ran more than once, ran in another group, or ran
    /// although spawned into a group already seen cancelled.
    children_wrong: AtomicU64,
}

struct GArg {
    record: Arc<GRecord>,
    rt: *mut wsrt_runtime,
    group: *mut wsrt_group,
    root: *mut wsrt_group,
    tally: Arc<GroupTally>,
    nap_ns: i64,
}

struct ChildArg {
    tally: Arc<GroupTally>,
    group: *mut wsrt_group,
    cancelled_before_spawn: bool,
    runs: AtomicU32,
}

unsafe extern "C" fn group_task_fn(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Box<GArg>` given to `wsrt_spawn`, alive until arg_drop.
    let arg = unsafe { &*(arg as *const GArg) };
    let record = &arg.record;
    let runs = record.base.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if wsrt_current_group() != arg.group {
        record.wrong_group.store(true, Ordering::SeqCst);
    }
    if wsrt_cancel_requested() {
        record.saw_cancel_request.store(true, Ordering::SeqCst);
    }
    match record.kind {
        G_FAIL => FAIL_CODE,
        G_CANCEL => WSRT_TASK_CANCELLED,
        G_CHILD => {
            // A task can wait neither for its group nor for one above it.
            if wsrt_group_wait(arg.group, 0) != wsrt_status::WSRT_ERR_WOULD_DEADLOCK
                || wsrt_group_wait(arg.root, -1) != wsrt_status::WSRT_ERR_WOULD_DEADLOCK
            {
                record.bad_own_wait.store(true, Ordering::SeqCst);
            }
            let child = Box::into_raw(Box::new(ChildArg {
                tally: arg.tally.clone(),
                group: arg.group,
                cancelled_before_spawn: wsrt_group_cancelled(arg.group),
                runs: AtomicU32::new(0),
            }));
            // No group given: the child joins this task's.
            let opts = wsrt_spawn_opts {
                arg_drop: Some(drop_group_child),
                ..Default::default()
            };
            let status = wsrt_spawn(
                arg.rt,
                Some(group_child_fn),
                child.cast(),
                &opts,
                ptr::null_mut(),
            );
            if status == wsrt_status::WSRT_OK {
                arg.tally.children_spawned.fetch_add(1, Ordering::SeqCst);
            } else {
                arg.tally.children_refused.fetch_add(1, Ordering::SeqCst);
                // SAFETY: refused: the arg is still ours.
                drop(unsafe { Box::from_raw(child) });
            }
            WSRT_TASK_OK
        }
        G_YIELD if runs == 1 => WSRT_TASK_YIELD,
        G_NAP if runs == 1 => wsrt_sleep(arg.nap_ns),
        G_SENTINEL => wsrt_sleep(HOUR_NS),
        _ => WSRT_TASK_OK,
    }
}

unsafe extern "C" fn drop_group_arg(arg: *mut c_void) {
    // SAFETY: the `Box<GArg>` from the spawn; arg_drop runs once.
    let arg = unsafe { Box::from_raw(arg as *mut GArg) };
    arg.record.base.arg_drops.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn group_child_fn(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    // SAFETY: the `Box<ChildArg>` from the spawn, alive until arg_drop.
    let child = unsafe { &*(arg as *const ChildArg) };
    child.runs.fetch_add(1, Ordering::SeqCst);
    child.tally.children_ran.fetch_add(1, Ordering::SeqCst);
    if child.cancelled_before_spawn || wsrt_current_group() != child.group {
        child.tally.children_wrong.fetch_add(1, Ordering::SeqCst);
    }
    WSRT_TASK_OK
}

unsafe extern "C" fn drop_group_child(arg: *mut c_void) {
    // SAFETY: as `drop_group_arg`.
    let child = unsafe { Box::from_raw(arg as *mut ChildArg) };
    if child.runs.load(Ordering::SeqCst) > 1 {
        child.tally.children_wrong.fetch_add(1, Ordering::SeqCst);
    }
    child.tally.children_dropped.fetch_add(1, Ordering::SeqCst);
}

/// Callback slot 0: notes the final state its task shows, and checks that
/// the task's arg_drop ran before (also when another thread cancels it
/// while this callback is added).
unsafe extern "C" fn on_done_state(task: *mut wsrt_task, user: *mut c_void) {
    // SAFETY: `user` points to a `GRecord` kept alive by the test.
    let record = unsafe { &*(user as *const GRecord) };
    assert!(wsrt_task_done(task), "callback before the state was final");
    assert_eq!(
        record.base.arg_drops.load(Ordering::SeqCst),
        1,
        "a done-callback ran before the task's arg_drop"
    );
    record
        .final_state
        .store(enc(wsrt_task_state(task)), Ordering::SeqCst);
    record.base.callbacks[0].fetch_add(1, Ordering::SeqCst);
}

/// `wsrt_task_cancel` through a handle, noted in the record. A cancel that
/// returns true leaves the task done, or RUNNING with the request (which
/// ends it CANCELLED if it yields or sleeps): never PENDING or SUSPENDED.
fn cancel_task(task: *mut wsrt_task, record: &GRecord) {
    record.own_cancel_tried.store(true, Ordering::SeqCst);
    if wsrt_task_cancel(task) {
        record.own_cancel_won.store(true, Ordering::SeqCst);
        let state = wsrt_task_state(task);
        assert!(
            state != wsrt_state::WSRT_STATE_PENDING && state != wsrt_state::WSRT_STATE_SUSPENDED,
            "a cancelled task is {state:?}"
        );
    }
}

/// `wsrt_task_join`, noted in the record (the handle is gone afterwards).
fn join_task(task: *mut wsrt_task, record: &GRecord) {
    let mut result = ptr::null_mut();
    let mut code = 0;
    let status = wsrt_task_join(task, &mut result, &mut code);
    assert!(result.is_null(), "no task of these tests sets a result");
    record.joined.store(status as u32 + 1, Ordering::SeqCst);
    record.join_code.store(code, Ordering::SeqCst);
}

/// Where a group sits in a round's tree.
#[derive(Clone, Copy)]
struct GroupSpec {
    /// Index of its parent (always lower), or none for a top-level group.
    parent: Option<usize>,
    /// Made by the controller while the tasks are spawned, rather than
    /// before (its parent is made before).
    late: bool,
}

/// True if group `a` is `b` or below it.
fn is_in(specs: &[GroupSpec], mut a: usize, b: usize) -> bool {
    loop {
        if a == b {
            return true;
        }
        match specs[a].parent {
            Some(p) => a = p,
            None => return false,
        }
    }
}

/// What the controller does once the spawners have spawned `at` tasks.
#[derive(Clone, Copy, Debug)]
enum Event {
    Make(usize),
    Cancel(usize),
    /// A deadline for the group; with `true` (the last of the group's
    /// plan, and short) a sentinel is spawned into the group right after it,
    /// so that the waits for the group also wait for the deadline.
    Deadline(usize, i64, bool),
}

/// A task handle handed to the controller, which adds a callback, may
/// cancel it, and releases it.
struct BoardEntry {
    task: SendPtr<wsrt_task>,
    record: Arc<GRecord>,
    cancel: bool,
}

/// One group test: sizes, the tree of groups, how often each thing happens.
struct GroupTest {
    workers: usize,
    rounds: usize,
    spawners: usize,
    per_spawner: usize,
    tree: Vec<GroupSpec>,
    /// Relative weights of the task kinds, by `G_*`.
    weights: [u64; G_KINDS],
    /// Longest nap, in ns.
    nap_max_ns: u64,
    /// Chances in 8 that a group gets an explicit cancel, a deadline plan,
    /// and `WSRT_GROUP_CANCEL_ON_FAILURE`.
    cancel_in_8: u64,
    deadline_in_8: u64,
    cancel_on_failure_in_8: u64,
}

/// What a round shares between its threads.
struct RoundShared {
    rt: SendPtr<wsrt_runtime>,
    tree: Vec<GroupSpec>,
    groups: Vec<AtomicPtr<wsrt_group>>,
    flags: Vec<u32>,
    /// Planned to be cancelled for sure (its explicit cancel, a deadline
    /// left set, or one of a group above it): sentinels may go there.
    certain: Vec<bool>,
    tallies: Vec<Arc<GroupTally>>,
    accepted: Vec<AtomicU64>,
    progress: AtomicUsize,
    spawners_done: AtomicUsize,
    board: std::sync::Mutex<Vec<BoardEntry>>,
}

impl RoundShared {
    fn group(&self, i: usize) -> *mut wsrt_group {
        self.groups[i].load(Ordering::SeqCst)
    }
}

/// What a round leaves for the final checks.
struct RoundResult {
    tree: Vec<GroupSpec>,
    flags: Vec<u32>,
    /// Planned to be cancelled for sure / possibly (a deadline that may
    /// have fired before it was replaced or removed), with groups above.
    certain: Vec<bool>,
    possible: Vec<bool>,
    /// `wsrt_group_cancelled` once the round's tasks were all done.
    cancelled: Vec<bool>,
    stats: Vec<wsrt_group_counts>,
    tallies: Vec<Arc<GroupTally>>,
    accepted: Vec<u64>,
    records: Vec<Arc<GRecord>>,
}

fn pick_kind(weights: &[u64; G_KINDS], rng: &mut Rng) -> u32 {
    let mut r = rng.next() % weights.iter().sum::<u64>();
    for (kind, &w) in weights.iter().enumerate() {
        if r < w {
            return kind as u32;
        }
        r -= w;
    }
    unreachable!()
}

/// Spawns a task of `kind` into the round's group `i` (made), with callback
/// slots 0 and 1 added; returns its handle and record.
fn spawn_grouped(
    round: &RoundShared,
    i: usize,
    kind: u32,
    shielded: bool,
    nap_ns: i64,
    named: bool,
) -> (*mut wsrt_task, Arc<GRecord>) {
    let rt = round.rt.0;
    let g = round.group(i);
    let cancelled_before_spawn = wsrt_group_cancelled(g);
    let record = Arc::new(GRecord::new(kind, i, shielded, cancelled_before_spawn));
    let arg = Box::into_raw(Box::new(GArg {
        record: record.clone(),
        rt,
        group: g,
        root: round.group(0),
        tally: round.tallies[i].clone(),
        nap_ns,
    }));
    let opts = wsrt_spawn_opts {
        name: if named {
            c"grouped".as_ptr()
        } else {
            ptr::null()
        },
        arg_drop: Some(drop_group_arg),
        group: g,
        flags: if shielded { WSRT_SPAWN_SHIELDED } else { 0 },
        ..Default::default()
    };
    let mut task = ptr::null_mut();
    let status = wsrt_spawn(rt, Some(group_task_fn), arg.cast(), &opts, &mut task);
    assert_eq!(status, wsrt_status::WSRT_OK);
    round.accepted[i].fetch_add(1, Ordering::SeqCst);
    let user = Arc::as_ptr(&record) as *mut c_void;
    assert_eq!(
        wsrt_task_add_done_callback(task, Some(on_done_state), user),
        wsrt_status::WSRT_OK
    );
    let user = &record.base.callbacks[1] as *const AtomicU32 as *mut c_void;
    assert_eq!(
        wsrt_task_add_done_callback(task, Some(on_done), user),
        wsrt_status::WSRT_OK
    );
    (task, record)
}

/// Spawns the round's tasks from one thread, does something with each
/// handle, then waits for the groups and checks the handles it kept.
fn group_spawner(cfg: &GroupTest, round: &RoundShared, t: usize, seed: u64) -> Vec<Arc<GRecord>> {
    let mut rng = Rng(seed);
    let root = round.group(0);
    let n = round.tree.len();
    let mut records = Vec::with_capacity(cfg.per_spawner);
    let mut live: Vec<(SendPtr<wsrt_task>, Arc<GRecord>)> = Vec::new();
    for _ in 0..cfg.per_spawner {
        // A random group, or the nearest one above it that is made.
        let mut i = (rng.next() % n as u64) as usize;
        while round.group(i).is_null() {
            i = round.tree[i]
                .parent
                .expect("top-level groups are made first");
        }
        let shielded = rng.next() % 4 == 0;
        let kind = pick_kind(&cfg.weights, &mut rng);
        // A sentinel ends only by a cancel: its group's, planned for sure,
        // or the controller's, which this then asks for.
        let needs_cancel = kind == G_SENTINEL && (shielded || !round.certain[i]);
        let nap_ns = match rng.next() % 8 {
            0 => 0,
            _ => (rng.next() % cfg.nap_max_ns) as i64,
        };
        let named = rng.next() % 2 == 0;
        let (task, record) = spawn_grouped(round, i, kind, shielded, nap_ns, named);
        round.progress.fetch_add(1, Ordering::SeqCst);
        let user = &record.base.callbacks[1] as *const AtomicU32 as *mut c_void;
        if rng.next() % 4 == 0 && wsrt_task_remove_done_callback(task, Some(on_done), user) == 1 {
            record.base.removed[1].store(true, Ordering::SeqCst);
        }
        let action = if needs_cancel { 2 } else { rng.next() % 16 };
        match action {
            0 | 1 => {
                cancel_task(task, &record);
                if rng.next() % 2 == 0 {
                    wsrt_task_release(task);
                } else {
                    live.push((SendPtr(task), record.clone()));
                }
            }
            2..=5 => {
                let cancel = needs_cancel || rng.next() % 2 == 0;
                round.board.lock().unwrap().push(BoardEntry {
                    task: SendPtr(task),
                    record: record.clone(),
                    cancel,
                });
            }
            // A sentinel's join could wait for this thread's own progress.
            6 | 7 if kind != G_SENTINEL => join_task(task, &record),
            8 => {
                let status = wsrt_task_wait(task, 50_000);
                assert!(
                    matches!(status, wsrt_status::WSRT_OK | wsrt_status::WSRT_ERR_TIMEOUT),
                    "{status:?}"
                );
                live.push((SendPtr(task), record.clone()));
            }
            9..=12 => wsrt_task_release(task),
            _ => live.push((SendPtr(task), record.clone())),
        }
        records.push(record);
    }
    round.spawners_done.fetch_add(1, Ordering::SeqCst);

    // Join some of the rest while the others still spawn, cancel and wait.
    let mut rest = Vec::new();
    for (task, record) in live {
        if record.kind != G_SENTINEL && rng.next() % 2 == 0 {
            join_task(task.0, &record);
        } else {
            rest.push((task, record));
        }
    }
    // Wait for the whole tree, each thread its own way.
    match t % 3 {
        0 => assert_eq!(wsrt_group_wait(root, -1), wsrt_status::WSRT_OK),
        1 => loop {
            match wsrt_group_wait(root, 1_000_000) {
                wsrt_status::WSRT_OK => break,
                wsrt_status::WSRT_ERR_TIMEOUT => {}
                other => panic!("unexpected {other:?}"),
            }
        },
        _ => {
            // The groups below first (made ones), the root last.
            for i in (0..n).rev() {
                let g = round.group(i);
                if !g.is_null() {
                    assert_eq!(wsrt_group_wait(g, -1), wsrt_status::WSRT_OK);
                }
            }
        }
    }
    // Every task this thread spawned is done now.
    for (task, record) in rest {
        let task = task.0;
        assert!(
            wsrt_task_done(task),
            "a task not done after its group's wait"
        );
        let state = wsrt_task_state(task);
        record.handle_state.store(enc(state), Ordering::SeqCst);
        assert_eq!(wsrt_task_wait(task, 0), wsrt_status::WSRT_OK);
        let mut code = -1;
        let error = wsrt_task_error(task, &mut code);
        match state {
            wsrt_state::WSRT_STATE_SUCCEEDED => {
                assert_eq!((error, code), (wsrt_status::WSRT_OK, 0));
            }
            wsrt_state::WSRT_STATE_FAILED => {
                assert_eq!((error, code), (wsrt_status::WSRT_OK, FAIL_CODE));
            }
            wsrt_state::WSRT_STATE_CANCELLED => {
                assert_eq!(error, wsrt_status::WSRT_ERR_CANCELLED);
                assert!(wsrt_task_cancelled(task));
            }
            other => panic!("done but {other:?}"),
        }
        if rng.next() % 2 == 0 {
            join_task(task, &record);
        } else {
            wsrt_task_release(task);
        }
    }
    records
}

/// The round's other thread: makes the late groups, cancels groups, sets,
/// replaces and removes deadlines as the spawners progress; adds a callback
/// to the handles on the board, cancels some (sleeping or not), releases
/// them; looks at the groups meanwhile. Then waits for the tree too.
fn group_controller(
    round: &RoundShared,
    events: &[(usize, Event)],
    spawners: usize,
    seed: u64,
) -> Vec<Arc<GRecord>> {
    let mut rng = Rng(seed);
    let rt = round.rt.0;
    let n = round.tree.len();
    let mut witnesses = Vec::new();
    // Sentinels that only a group cancel ends, kept to look at when one comes.
    let mut held: Vec<BoardEntry> = Vec::new();
    let mut next = 0;
    loop {
        let all_spawned = round.spawners_done.load(Ordering::SeqCst) == spawners;
        let entries = std::mem::take(&mut *round.board.lock().unwrap());
        let idle = entries.is_empty();
        for entry in entries {
            let record = &entry.record;
            let user = &record.base.callbacks[2] as *const AtomicU32 as *mut c_void;
            record.slot2_added.store(true, Ordering::SeqCst);
            assert_eq!(
                wsrt_task_add_done_callback(entry.task.0, Some(on_done), user),
                wsrt_status::WSRT_OK
            );
            if entry.cancel {
                cancel_task(entry.task.0, record);
            }
            if record.kind == G_SENTINEL && !record.shielded && !entry.cancel {
                held.push(entry);
            } else {
                wsrt_task_release(entry.task.0);
            }
        }
        let progress = round.progress.load(Ordering::SeqCst);
        while next < events.len() && events[next].0 <= progress {
            match events[next].1 {
                Event::Make(i) => {
                    let parent =
                        round.group(round.tree[i].parent.expect("a late group has a parent"));
                    let parent_cancelled = wsrt_group_cancelled(parent);
                    let mut g = ptr::null_mut();
                    assert_eq!(
                        wsrt_group_new(rt, parent, round.flags[i], &mut g),
                        wsrt_status::WSRT_OK
                    );
                    if parent_cancelled {
                        assert!(
                            wsrt_group_cancelled(g),
                            "a group made below a cancelled one"
                        );
                    }
                    round.groups[i].store(g, Ordering::SeqCst);
                }
                Event::Cancel(i) => {
                    // A sentinel seen SUSPENDED before the cancel stays so
                    // until a cancel: it is CANCELLED when this one returns.
                    let seen: Vec<(usize, wsrt_state)> = held
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| is_in(&round.tree, e.record.group, i))
                        .map(|(k, e)| (k, wsrt_task_state(e.task.0)))
                        .collect();
                    if wsrt_group_cancel(round.group(i)) {
                        for (k, before) in seen {
                            if before == wsrt_state::WSRT_STATE_SUSPENDED {
                                assert!(
                                    wsrt_task_cancelled(held[k].task.0),
                                    "a sleeping task outlived its group's cancel"
                                );
                            }
                        }
                    }
                    for j in 0..n {
                        let g = round.group(j);
                        if is_in(&round.tree, j, i) && !g.is_null() {
                            assert!(wsrt_group_cancelled(g));
                        }
                    }
                }
                Event::Deadline(i, ns, witness) => {
                    assert_eq!(
                        wsrt_group_set_deadline(round.group(i), ns),
                        wsrt_status::WSRT_OK
                    );
                    if witness {
                        let (task, record) = spawn_grouped(round, i, G_SENTINEL, false, 0, true);
                        witnesses.push(record.clone());
                        held.push(BoardEntry {
                            task: SendPtr(task),
                            record,
                            cancel: false,
                        });
                    }
                }
            }
            next += 1;
        }
        // A look at a group while all this goes on.
        let g = round.group((rng.next() % n as u64) as usize);
        if !g.is_null() {
            let status = wsrt_group_wait(g, 0);
            assert!(
                matches!(status, wsrt_status::WSRT_OK | wsrt_status::WSRT_ERR_TIMEOUT),
                "{status:?}"
            );
            let mut counts = wsrt_group_counts::default();
            assert_eq!(wsrt_group_stats(g, &mut counts), wsrt_status::WSRT_OK);
        }
        if all_spawned && idle && next == events.len() {
            break;
        }
        if idle {
            std::thread::yield_now();
        }
    }
    for entry in held {
        wsrt_task_release(entry.task.0);
    }
    assert_eq!(wsrt_group_wait(round.group(0), -1), wsrt_status::WSRT_OK);
    witnesses
}

/// A progress point from `from` (included) to `total` (excluded).
fn later(rng: &mut Rng, from: usize, total: usize) -> usize {
    from + (rng.next() % (total - from) as u64) as usize
}

/// A round's plan: the flags of its groups, the controller's events sorted
/// by progress, and which groups the plan cancels for sure / possibly (a
/// deadline that may expire before it is replaced or removed), counting
/// the groups above.
struct Plan {
    flags: Vec<u32>,
    events: Vec<(usize, Event)>,
    certain: Vec<bool>,
    possible: Vec<bool>,
}

fn plan_round(cfg: &GroupTest, rng: &mut Rng) -> Plan {
    let n = cfg.tree.len();
    let total = cfg.spawners * cfg.per_spawner;
    let mut plan = Plan {
        flags: vec![0; n],
        events: Vec::new(),
        certain: vec![false; n],
        possible: vec![false; n],
    };
    let is_small = |ns: i64| (0..HOUR_NS).contains(&ns);
    for i in 0..n {
        // (Not the root's: one failure would cancel the whole tree.)
        if i > 0 && rng.next() % 8 < cfg.cancel_on_failure_in_8 {
            plan.flags[i] = WSRT_GROUP_CANCEL_ON_FAILURE;
        }
        // Its events come after it is made.
        let made = if cfg.tree[i].late {
            let at = later(rng, 0, total);
            plan.events.push((at, Event::Make(i)));
            at
        } else {
            0
        };
        if rng.next() % 8 < cfg.cancel_in_8 {
            plan.events
                .push((later(rng, made, total), Event::Cancel(i)));
            plan.certain[i] = true;
        }
        if rng.next() % 8 < cfg.deadline_in_8 {
            let variant = rng.next() % 6;
            // Up to 0.2, 2 or 20 ms: expiring before, while or after the
            // round's tasks run.
            let mut small = || {
                let r = rng.next();
                (r % [200_000, 2_000_000, 20_000_000][(r >> 32) as usize % 3]) as i64
            };
            let steps = match variant {
                0 => vec![small()],
                1 => vec![small(), small()],
                2 => vec![HOUR_NS, small()],
                3 => vec![small(), -1],
                4 => vec![small(), HOUR_NS],
                _ => vec![HOUR_NS, -1],
            };
            let mut at = made;
            for (k, &ns) in steps.iter().enumerate() {
                at = later(rng, at, total);
                let witness = k + 1 == steps.len() && is_small(ns);
                plan.events.push((at, Event::Deadline(i, ns, witness)));
            }
            plan.certain[i] |= is_small(*steps.last().unwrap());
            plan.possible[i] |= steps.iter().any(|&ns| is_small(ns));
        }
        if let Some(p) = cfg.tree[i].parent {
            plan.certain[i] |= plan.certain[p];
            plan.possible[i] |= plan.possible[p];
        }
        plan.possible[i] |= plan.certain[i];
    }
    // Stable: a group's deadlines keep their order, and it is made first.
    plan.events
        .sort_by_key(|&(at, e)| (at, !matches!(e, Event::Make(_))));
    plan
}

fn run_group_test(cfg: &GroupTest) {
    assert!(cfg.tree[0].parent.is_none() && !cfg.tree[0].late);
    for (i, spec) in cfg.tree.iter().enumerate() {
        // Parents come first and are made before the round.
        assert!(spec.parent.map_or(true, |p| p < i && !cfg.tree[p].late));
    }
    let mut rt = ptr::null_mut();
    assert_eq!(wsrt_runtime_new(cfg.workers, &mut rt), wsrt_status::WSRT_OK);
    let rt = SendPtr(rt);
    let mut rng = Rng(0x5DEE_CE66_D1CE);
    let mut results = Vec::with_capacity(cfg.rounds);
    for round_no in 0..cfg.rounds {
        let Plan {
            flags,
            events,
            certain,
            possible,
        } = plan_round(cfg, &mut rng);
        let n = cfg.tree.len();
        let round = RoundShared {
            rt: SendPtr(rt.0),
            tree: cfg.tree.clone(),
            groups: (0..n).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            flags,
            certain: certain.clone(),
            tallies: (0..n).map(|_| Arc::new(GroupTally::default())).collect(),
            accepted: (0..n).map(|_| AtomicU64::new(0)).collect(),
            progress: AtomicUsize::new(0),
            spawners_done: AtomicUsize::new(0),
            board: std::sync::Mutex::new(Vec::new()),
        };
        for i in 0..n {
            if !cfg.tree[i].late {
                let parent = cfg.tree[i]
                    .parent
                    .map_or(ptr::null_mut(), |p| round.group(p));
                let mut g = ptr::null_mut();
                assert_eq!(
                    wsrt_group_new(rt.0, parent, round.flags[i], &mut g),
                    wsrt_status::WSRT_OK
                );
                round.groups[i].store(g, Ordering::SeqCst);
            }
        }
        let seed = rng.next();
        let records: Vec<Arc<GRecord>> = std::thread::scope(|s| {
            let round = &round;
            let events = &events;
            let handles: Vec<_> = (0..cfg.spawners)
                .map(|t| {
                    s.spawn(move || {
                        group_spawner(cfg, round, t, seed ^ ((t as u64 + 1) * 0x9E37_79B9))
                    })
                })
                .collect();
            let controller =
                s.spawn(move || group_controller(round, events, cfg.spawners, seed ^ 0x00C0_FFEE));
            let mut records: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            records.extend(controller.join().unwrap());
            records
        });

        // Every task of the round is done and counted once the root's wait
        // returns; each group below is done too.
        let root = round.group(0);
        assert_eq!(wsrt_group_wait(root, -1), wsrt_status::WSRT_OK);
        let mut stats = Vec::with_capacity(n);
        let mut cancelled = Vec::with_capacity(n);
        for i in 0..n {
            let g = round.group(i);
            assert!(!g.is_null(), "round {round_no}: group {i} never made");
            assert_eq!(wsrt_group_wait(g, 0), wsrt_status::WSRT_OK);
            assert_eq!(wsrt_group_wait(g, 1_000), wsrt_status::WSRT_OK);
            let mut counts = wsrt_group_counts::default();
            assert_eq!(wsrt_group_stats(g, &mut counts), wsrt_status::WSRT_OK);
            assert_eq!(
                counts.succeeded + counts.failed + counts.cancelled,
                counts.spawned,
                "round {round_no}, group {i}: {counts:?}"
            );
            assert_eq!(
                counts.pending + counts.running + counts.suspended,
                0,
                "round {round_no}, group {i}: {counts:?}"
            );
            stats.push(counts);
            // Cancelled, or below a cancelled group (whose cancel reaches
            // the groups below one after the other).
            let above = cfg.tree[i].parent.is_some_and(|p| cancelled[p]);
            cancelled.push(wsrt_group_cancelled(g) || above);
        }
        // Their arg_drops ran before the wait returned.
        for record in &records {
            assert_eq!(record.base.arg_drops.load(Ordering::SeqCst), 1);
        }
        for tally in &round.tallies {
            assert_eq!(
                tally.children_dropped.load(Ordering::SeqCst),
                tally.children_spawned.load(Ordering::SeqCst)
            );
        }
        for i in 0..n {
            wsrt_group_release(round.group(i));
        }
        results.push(RoundResult {
            tree: cfg.tree.clone(),
            flags: round.flags,
            certain,
            possible,
            cancelled,
            stats,
            tallies: round.tallies,
            accepted: round
                .accepted
                .iter()
                .map(|a| a.load(Ordering::SeqCst))
                .collect(),
            records,
        });
    }
    assert_eq!(wsrt_runtime_shutdown(rt.0, 0), wsrt_status::WSRT_OK);
    let mut stats = wsrt_stats::default();
    assert_eq!(wsrt_runtime_stats(rt.0, &mut stats), wsrt_status::WSRT_OK);
    assert_eq!(wsrt_runtime_free(rt.0), wsrt_status::WSRT_OK);

    // Every task of the runtime was grouped: its counts are the groups'.
    let sum = |f: fn(&wsrt_group_counts) -> u64| -> u64 {
        results.iter().flat_map(|r| r.stats.iter()).map(f).sum()
    };
    assert_eq!(stats.spawned, sum(|c| c.spawned));
    assert_eq!(stats.succeeded, sum(|c| c.succeeded));
    assert_eq!(stats.failed, sum(|c| c.failed));
    assert_eq!(stats.cancelled, sum(|c| c.cancelled));
    assert_eq!(stats.pending + stats.running + stats.suspended, 0);
    for (round_no, result) in results.iter().enumerate() {
        check_group_round(round_no, result);
    }
}

/// The exact checks of a round, once its runtime is freed (every callback
/// has run).
fn check_group_round(round_no: usize, r: &RoundResult) {
    let n = r.tree.len();
    const SUCCEEDED: usize = wsrt_state::WSRT_STATE_SUCCEEDED as usize;
    const FAILED: usize = wsrt_state::WSRT_STATE_FAILED as usize;
    const CANCELLED: usize = wsrt_state::WSRT_STATE_CANCELLED as usize;
    // Final states of the tasks spawned into each group, by `wsrt_state`.
    let mut ends = vec![[0u64; 6]; n];
    for record in &r.records {
        let ctx = format!("round {round_no}, group {}", record.group);
        check_group_task(record, r.cancelled[record.group], &ctx);
        let state = record.final_state.load(Ordering::SeqCst) as usize - 1;
        ends[record.group][state] += 1;
    }
    // What cancelled the groups: only what the plan allowed, and all that
    // it made certain (a failure in a CANCEL_ON_FAILURE group included).
    let mut certain = vec![false; n];
    let mut possible = vec![false; n];
    for i in 0..n {
        let parent = r.tree[i].parent;
        certain[i] = r.certain[i]
            || (r.flags[i] == WSRT_GROUP_CANCEL_ON_FAILURE && ends[i][FAILED] > 0)
            || parent.is_some_and(|p| certain[p]);
        possible[i] = r.possible[i] || certain[i] || parent.is_some_and(|p| possible[p]);
        let ctx = format!("round {round_no}, group {i}");
        assert!(!certain[i] || r.cancelled[i], "{ctx}: was to be cancelled");
        assert!(
            !r.cancelled[i] || possible[i],
            "{ctx}: cancelled by nothing"
        );

        let tally = &r.tallies[i];
        let spawned = tally.children_spawned.load(Ordering::SeqCst);
        let ran = tally.children_ran.load(Ordering::SeqCst);
        assert_eq!(tally.children_refused.load(Ordering::SeqCst), 0, "{ctx}");
        assert_eq!(tally.children_wrong.load(Ordering::SeqCst), 0, "{ctx}");
        assert_eq!(
            tally.children_dropped.load(Ordering::SeqCst),
            spawned,
            "{ctx}"
        );
        let c = &r.stats[i];
        assert_eq!(c.spawned, r.accepted[i] + spawned, "{ctx}: {c:?}");
        assert_eq!(c.succeeded, ends[i][SUCCEEDED] + ran, "{ctx}: {c:?}");
        assert_eq!(c.failed, ends[i][FAILED], "{ctx}: {c:?}");
        assert_eq!(
            c.cancelled,
            ends[i][CANCELLED] + spawned - ran,
            "{ctx}: {c:?}"
        );
    }
}

/// Everything one task's record must show, given whether its group ended
/// up cancelled.
fn check_group_task(r: &GRecord, group_cancelled: bool, ctx: &str) {
    let ctx = format!("{ctx}, kind {}, shielded {}", r.kind, r.shielded);
    let runs = r.base.runs.load(Ordering::SeqCst);
    let own_won = r.own_cancel_won.load(Ordering::SeqCst);
    assert_eq!(r.base.arg_drops.load(Ordering::SeqCst), 1, "{ctx}");
    assert_eq!(r.base.callbacks[0].load(Ordering::SeqCst), 1, "{ctx}");
    let slot1 = u32::from(!r.base.removed[1].load(Ordering::SeqCst));
    assert_eq!(r.base.callbacks[1].load(Ordering::SeqCst), slot1, "{ctx}");
    let slot2 = u32::from(r.slot2_added.load(Ordering::SeqCst));
    assert_eq!(r.base.callbacks[2].load(Ordering::SeqCst), slot2, "{ctx}");
    assert!(
        !r.wrong_group.load(Ordering::SeqCst),
        "{ctx}: ran in another group"
    );
    assert!(
        !r.bad_own_wait.load(Ordering::SeqCst),
        "{ctx}: waited for its own group"
    );

    let state = r.final_state.load(Ordering::SeqCst);
    let succeeded = enc(wsrt_state::WSRT_STATE_SUCCEEDED);
    let failed = enc(wsrt_state::WSRT_STATE_FAILED);
    let cancelled = enc(wsrt_state::WSRT_STATE_CANCELLED);
    // The runs and the end it has if nothing cancels it.
    let (full_runs, natural) = match r.kind {
        G_OK | G_CHILD => (1, succeeded),
        G_FAIL => (1, failed),
        G_CANCEL => (1, cancelled),
        G_YIELD | G_NAP => (2, succeeded),
        _ => (2, 0), // a sentinel never ends by itself
    };
    let ctx = format!("{ctx}: state {state}, runs {runs}, own cancel {own_won}");
    if state == cancelled {
        // Ended by itself, or cancelled before its last run: by its own
        // cancel, or its group's (never a shielded task).
        let by_itself = r.kind == G_CANCEL && runs == 1;
        assert!(by_itself || runs < full_runs, "{ctx}");
        assert!(
            by_itself || own_won || (group_cancelled && !r.shielded),
            "{ctx}: cancelled by nothing that may"
        );
    } else {
        assert_eq!(state, natural, "{ctx}");
        assert_eq!(runs, full_runs, "{ctx}");
    }
    if !own_won && (r.shielded || !group_cancelled) {
        assert_eq!(state, natural, "{ctx}: not cancelled, yet not its own end");
    }
    if r.cancelled_before_spawn && !r.shielded {
        assert_eq!(
            (state, runs),
            (cancelled, 0),
            "{ctx}: ran in a cancelled group"
        );
    }
    if r.shielded && r.saw_cancel_request.load(Ordering::SeqCst) {
        assert!(
            r.own_cancel_tried.load(Ordering::SeqCst),
            "{ctx}: a shielded task saw its group's cancel"
        );
    }
    let seen = r.handle_state.load(Ordering::SeqCst);
    assert!(
        seen == 0 || seen == state,
        "{ctx}: its handle showed {seen}"
    );
    let expected_join = match state {
        s if s == succeeded => (wsrt_status::WSRT_OK, 0),
        s if s == failed => (wsrt_status::WSRT_ERR_FAILED, FAIL_CODE),
        _ => (wsrt_status::WSRT_ERR_CANCELLED, 0),
    };
    match r.joined.load(Ordering::SeqCst) {
        0 => {}
        j => assert_eq!(
            (j, r.join_code.load(Ordering::SeqCst)),
            (expected_join.0 as u32 + 1, expected_join.1),
            "{ctx}: joined"
        ),
    }
}

fn spec(parent: Option<usize>, late: bool) -> GroupSpec {
    GroupSpec { parent, late }
}

#[test]
#[ignore = "stress: run with --ignored in release (.ci/run does)"]
fn groups_cancels_and_shields_under_contention() {
    // root; two below it; one below the first; one made late below the second.
    let tree = vec![
        spec(None, false),
        spec(Some(0), false),
        spec(Some(0), false),
        spec(Some(1), false),
        spec(Some(2), true),
    ];
    run_group_test(&GroupTest {
        workers: 3,
        rounds: 60 * scale(),
        spawners: 3,
        per_spawner: 1_500,
        tree,
        // OK, FAIL, CANCEL, CHILD, YIELD, NAP, SENTINEL
        weights: [3, 2, 1, 2, 2, 4, 2],
        nap_max_ns: 500_000,
        cancel_in_8: 2,
        deadline_in_8: 2,
        cancel_on_failure_in_8: 2,
    });
}

#[test]
#[ignore = "stress: run with --ignored in release (.ci/run does)"]
fn group_deadlines_and_sleepers_under_contention() {
    // root; four below it; two below each of those, one of them made late.
    let mut tree = vec![spec(None, false)];
    for _ in 0..4 {
        tree.push(spec(Some(0), false));
    }
    for c in 1..=4 {
        tree.push(spec(Some(c), false));
        tree.push(spec(Some(c), true));
    }
    run_group_test(&GroupTest {
        workers: 2,
        rounds: 150 * scale(),
        spawners: 3,
        per_spawner: 300,
        tree,
        weights: [2, 1, 1, 2, 1, 6, 3],
        nap_max_ns: 2_000_000,
        cancel_in_8: 1,
        deadline_in_8: 5,
        cancel_on_failure_in_8: 1,
    });
}
