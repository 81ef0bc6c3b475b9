//! A task's done-callbacks and its name.
//!
//! The first callback (or waiter) goes in a 16-byte slot inside the task,
//! claimed and published through the state word: no allocation and no lock,
//! which is what most tasks need. Later callbacks, and the name, live in a
//! second allocation made on first use. The protocol between adders and the
//! finishing thread is in `task/mod.rs`.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};
use std::thread::Thread;

use super::state::{ClaimSlot, Snapshot, State};
use super::TaskRef;
use crate::alloc;
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

/// A C done-callback, `cb(task handle, user)`.
pub(crate) type CDoneFn = unsafe extern "C" fn(*mut c_void, *mut c_void);

/// The key of the entry in the slot; list entries count from 1.
const SLOT_KEY: u64 = 0;

/// A Rust done-callback (`on_done`).
pub(crate) type BoxedFn = Box<dyn FnOnce(&TaskRef) + Send>;

/// One callback, in the slot or the list.
pub(crate) enum Callback {
    /// A Rust closure (`on_done`).
    Boxed(BoxedFn),
    /// A C function with its user data (`wsrt_task_add_done_callback`),
    /// removable by `(cb, user)`.
    C { cb: CDoneFn, user: usize },
    /// Wake a thread blocked in `wait`/`join`.
    Unpark(Thread),
    /// Reschedule a task suspended on this one (`wsrt_await`); holds the
    /// suspended task's scheduler reference.
    Resume(TaskRef),
}

impl Callback {
    /// Runs the entry. True if a user callback panicked (the panic is
    /// caught here so it never unwinds into a worker or across `extern "C"`).
    pub(crate) fn run(self, task: &TaskRef) -> bool {
        match self {
            Callback::Boxed(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(task))).is_err()
            }
            Callback::C { cb, user } => {
                // The C handle of a task is its header's address.
                let handle = task.as_ptr().as_ptr().cast::<c_void>();
                // SAFETY: the C caller registered `cb` with `user` and promises
                // both stay valid until the call; `task` is borrowed for it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                    cb(handle, user as *mut c_void)
                }))
                .is_err()
            }
            Callback::Unpark(thread) => {
                thread.unpark();
                false
            }
            Callback::Resume(suspended) => {
                suspended.wake();
                false
            }
        }
    }
}

struct Entry {
    key: u64,
    callback: Callback,
}

/// The slot's contents; which field is live is the kind in the state word.
/// 16 bytes: every kind fits without a discriminant of its own.
union SlotData {
    boxed: ManuallyDrop<BoxedFn>,
    c: (CDoneFn, usize),
    unpark: ManuallyDrop<Thread>,
    resume: ManuallyDrop<TaskRef>,
}

const _: () = assert!(std::mem::size_of::<SlotData>() <= 16);

const KIND_BOXED: u8 = 0;
const KIND_C: u8 = 1;
const KIND_UNPARK: u8 = 2;
const KIND_RESUME: u8 = 3;

impl Callback {
    fn into_slot(self) -> (u8, SlotData) {
        match self {
            Callback::Boxed(f) => (
                KIND_BOXED,
                SlotData {
                    boxed: ManuallyDrop::new(f),
                },
            ),
            Callback::C { cb, user } => (KIND_C, SlotData { c: (cb, user) }),
            Callback::Unpark(t) => (
                KIND_UNPARK,
                SlotData {
                    unpark: ManuallyDrop::new(t),
                },
            ),
            Callback::Resume(t) => (
                KIND_RESUME,
                SlotData {
                    resume: ManuallyDrop::new(t),
                },
            ),
        }
    }

    /// # Safety
    /// `data` was made by `into_slot` with this `kind`, and is used once.
    unsafe fn from_slot(kind: u8, data: SlotData) -> Callback {
        // SAFETY: the field read is the one `into_slot` wrote (caller's duty).
        unsafe {
            match kind {
                KIND_BOXED => Callback::Boxed(ManuallyDrop::into_inner(data.boxed)),
                KIND_C => Callback::C {
                    cb: data.c.0,
                    user: data.c.1,
                },
                KIND_UNPARK => Callback::Unpark(ManuallyDrop::into_inner(data.unpark)),
                _ => Callback::Resume(ManuallyDrop::into_inner(data.resume)),
            }
        }
    }
}

/// The name and the callbacks after the slot's, in insertion order. (The
/// slot already spares the common single callback any allocation, so the
/// list needs no inline first entry of its own.)
struct Inner {
    name: Option<Box<str>>,
    entries: VecDeque<Entry>,
    next_key: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            name: None,
            entries: VecDeque::new(),
            next_key: SLOT_KEY + 1,
        }
    }
}

impl Inner {
    /// Removes the entries matching `pred`; returns how many.
    fn remove_where(&mut self, mut pred: impl FnMut(&Entry) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !pred(e));
        before - self.entries.len()
    }
}

/// The first callback's slot, then the lazily allocated name and list.
pub(crate) struct Extras {
    /// Written by the adder that claimed it, before it publishes; then
    /// owned by whoever wins the entry (the finisher, or one remover).
    slot: UnsafeCell<MaybeUninit<SlotData>>,
    list: AtomicPtr<Mutex<Inner>>,
}

impl Extras {
    pub(crate) fn new() -> Extras {
        Extras {
            slot: UnsafeCell::new(MaybeUninit::uninit()),
            list: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn get(&self) -> Option<&Mutex<Inner>> {
        // Acquire: pairs with the Release of the CAS that published it.
        let p = self.list.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published by `get_or_init` and is
        // freed only in `drop`, when no reference to the task remains.
        unsafe { p.as_ref() }
    }

    fn get_or_init(&self) -> &Mutex<Inner> {
        if let Some(inner) = self.get() {
            return inner;
        }
        let fresh = alloc::boxed(|| Mutex::new(Inner::default()));
        match self.list.compare_exchange(
            ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: we just published `fresh`; it lives as long as `self`.
            Ok(_) => unsafe { fresh.as_ref() },
            Err(winner) => {
                // SAFETY: `fresh` was never shared; `winner` was published.
                unsafe {
                    alloc::free(fresh);
                    &*winner
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(self.get_or_init())
    }

    pub(crate) fn name(&self) -> Option<String> {
        let inner = self.get()?;
        lock(inner).name.as_deref().map(str::to_owned)
    }

    pub(crate) fn set_name(&self, name: &str) {
        self.lock().name = Some(name.into());
    }

    /// Lists `callback` unless the task is done; then it is handed back for
    /// the caller to run at once. Returns the entry's key.
    pub(crate) fn add(&self, state: &State, callback: Callback) -> Result<u64, Callback> {
        match state.claim_slot() {
            ClaimSlot::Done => return Err(callback),
            ClaimSlot::Claimed => {
                let (kind, data) = callback.into_slot();
                // SAFETY: the claim makes us the slot's only user until we
                // publish (rule 1 of `task/mod.rs`).
                unsafe { (*self.slot.get()).write(data) };
                if state.publish_slot(kind) {
                    return Ok(SLOT_KEY);
                }
                // Done meanwhile; its finisher saw the slot empty and left it.
                // SAFETY: still ours; written just above.
                let data = unsafe { (*self.slot.get()).assume_init_read() };
                // SAFETY: made by `into_slot` with `kind`, read once.
                return Err(unsafe { Callback::from_slot(kind, data) });
            }
            ClaimSlot::Used => {}
        }
        let mut inner = self.lock();
        // Rule 1: the flag is set (and the task checked not done) with the
        // lock held, so the finishing thread cannot drain before we push.
        if !state.set_callbacks() {
            return Err(callback);
        }
        let key = inner.next_key;
        inner.next_key += 1;
        inner.entries.push_back(Entry { key, callback });
        Ok(key)
    }

    /// Removes the entry with `key`; true if it had not been run yet.
    pub(crate) fn remove(&self, state: &State, key: u64) -> bool {
        if key == SLOT_KEY {
            return self.unpublish(state).is_some();
        }
        let Some(inner) = self.get() else {
            return false;
        };
        // Keys are unique: at most one entry matches.
        lock(inner).remove_where(|e| e.key == key) == 1
    }

    /// Removes every C entry equal to `(cb, user)`; returns how many.
    pub(crate) fn remove_c(&self, state: &State, cb: CDoneFn, user: usize) -> usize {
        let same = |f: CDoneFn, u: usize| f as usize == cb as usize && u == user;
        let mut removed = 0;
        if state.load().slot() == Some(KIND_C) {
            // SAFETY: a published slot is only read from here on (by us, and
            // by the finisher when it takes it), and a C entry is plain data.
            let (f, u) = unsafe { (*self.slot.get()).assume_init_ref().c };
            if same(f, u) && self.unpublish(state).is_some() {
                removed += 1;
            }
        }
        if let Some(inner) = self.get() {
            removed += lock(inner).remove_where(
                |e| matches!(e.callback, Callback::C { cb: f, user: u } if same(f, u)),
            );
        }
        removed
    }

    /// Withdraws the slot's entry if it is still published; the caller gets it.
    fn unpublish(&self, state: &State) -> Option<Callback> {
        let kind = state.load().slot()?;
        if !state.unpublish_slot() {
            return None;
        }
        // SAFETY: winning the withdrawal makes the published entry ours.
        let data = unsafe { (*self.slot.get()).assume_init_read() };
        // SAFETY: published with `kind` (the slot is written once per task).
        Some(unsafe { Callback::from_slot(kind, data) })
    }

    /// Rule 2: runs every entry, slot first then the list in insertion
    /// order, as `now` (the state the caller made final) says there are.
    pub(crate) fn drain(&self, now: Snapshot, mut run: impl FnMut(Callback)) {
        if let Some(callback) = self.take_slot(now) {
            run(callback);
        }
        if now.has_callbacks() {
            while let Some(callback) = self.pop_front() {
                run(callback);
            }
        }
    }

    /// The slot's entry, if `now` shows it published. The caller owns it.
    fn take_slot(&self, now: Snapshot) -> Option<Callback> {
        debug_assert!(now.is_done());
        let kind = now.slot()?;
        // SAFETY: published before the task became final and not withdrawn
        // (withdrawal fails once done), so it is live and ours alone.
        let data = unsafe { (*self.slot.get()).assume_init_read() };
        // SAFETY: published with `kind`.
        Some(unsafe { Callback::from_slot(kind, data) })
    }

    /// The next list entry to run, in insertion order.
    fn pop_front(&self) -> Option<Callback> {
        let inner = self.get()?;
        let entry = lock(inner).entries.pop_front();
        entry.map(|e| e.callback)
    }
}

impl Drop for Extras {
    /// Frees the list. The slot needs nothing: a published entry is always
    /// taken, by the finisher or a remover, before the task can be freed.
    fn drop(&mut self) {
        if let Some(p) = NonNull::new(self.list.load(Ordering::Acquire)) {
            // SAFETY: published by `get_or_init` (so from `alloc::boxed`); the
            // task is being freed, nobody else can reach it.
            unsafe { alloc::free(p) };
        }
    }
}

/// Locks ignoring poison: user code never runs under this lock, so a poisoned
/// lock can only come from an allocation failure, and the list stays valid.
fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
