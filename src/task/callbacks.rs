//! A task's done-callbacks and its name.
//!
//! The first callback (or waiter) goes in a two-word slot inside the task,
//! published through the state word: no allocation and no lock, which is
//! what most tasks need. Later callbacks, and the name, live in a second
//! allocation made on first use. The protocol between adders and the
//! finishing thread is in `task/mod.rs`.
//!
//! # Publish, then fill
//!
//! The adder marks the slot full in the state word first (one
//! compare-exchange, which fails if the task is done) and writes the entry
//! after: its second word, then its first with `Release`. The first word is
//! never null in a written entry, and null in a new task, so whoever takes
//! the entry (the finisher, or a remover) waits for it to turn non-null
//! (`Acquire`) before it reads the second. The wait is the few
//! instructions between the adder's compare-exchange and its store, unless
//! the adder's thread is preempted right there; then the waiter yields
//! (crossbeam's `Backoff`) until it runs again. (Claiming the slot, writing
//! it, then publishing it would take a second compare-exchange on the state
//! word, at every adder.)

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};
use std::thread::Thread;

use crossbeam_utils::Backoff;

use super::state::{PublishSlot, Snapshot, State};
use crate::sync::alloc;
use crate::sync::loom::atomic::{AtomicPtr, AtomicU64, Ordering};
use crate::sync::loom::{Mutex, MutexGuard};

/// A C done-callback, `cb(task handle, user)`.
pub(crate) type CDoneFn = unsafe extern "C" fn(*mut c_void, *mut c_void);

/// The key of the entry in the slot; list entries count from 1.
const SLOT_KEY: u64 = 0;

/// A Rust done-callback: it gets the task as its C handle (the address of
/// its header), which `handle.rs` turns back into a borrowed `TaskRef`.
pub(crate) type BoxedFn = Box<dyn FnOnce(*mut c_void) + Send>;

/// One callback, in the slot or the list. Every kind gets the finished
/// task as its C handle: this module stores and orders callbacks, and
/// needs no task type to run them.
pub(crate) enum Callback {
    /// A Rust closure (`on_done`, a future's waker).
    Boxed(BoxedFn),
    /// A C function with its user data (`wsrt_task_add_done_callback`, and
    /// the scheduler's resume of a task suspended on this one), removable
    /// by `(cb, user)`.
    C { cb: CDoneFn, user: usize },
    /// Wake a thread blocked in `wait`/`join`.
    Unpark(Thread),
}

impl Callback {
    /// Runs the entry for the finished `task` (its C handle). True if a
    /// user callback panicked (the panic is caught here so it never
    /// unwinds into a worker or across `extern "C"`).
    pub(crate) fn run(self, task: *mut c_void) -> bool {
        match self {
            Callback::Boxed(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(task))).is_err()
            }
            Callback::C { cb, user } => {
                // SAFETY: the C caller registered `cb` with `user` and promises
                // both stay valid until the call; `task` is borrowed for it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                    cb(task, user as *mut c_void)
                }))
                .is_err()
            }
            Callback::Unpark(thread) => {
                thread.unpark();
                false
            }
        }
    }
}

struct Entry {
    key: u64,
    callback: Callback,
}

/// An entry's second word in the slot; which field is live is the kind in
/// the state word.
union Tail {
    /// A boxed closure's second pointer word.
    ptr: *mut (),
    /// A C callback's user data.
    user: usize,
    unpark: ManuallyDrop<Thread>,
}

const _: () = assert!(mem::size_of::<Tail>() == mem::size_of::<usize>());

const KIND_BOXED: u8 = 0;
const KIND_C: u8 = 1;
const KIND_UNPARK: u8 = 2;

/// The first word of an entry whose second word holds all of it.
const MARK: *mut () = NonNull::<()>::dangling().as_ptr();

/// A boxed closure as a raw pointer: two words (`transmute` checks it).
type RawFn = *mut (dyn FnOnce(*mut c_void) + Send);

impl Callback {
    fn kind(&self) -> u8 {
        match self {
            Callback::Boxed(_) => KIND_BOXED,
            Callback::C { .. } => KIND_C,
            Callback::Unpark(_) => KIND_UNPARK,
        }
    }

    /// The entry as the slot's two words. The first is never null: a
    /// boxed closure's two words are its data pointer (non-null in a `Box`,
    /// even for a closure of size zero) and its vtable's address; a C
    /// entry's first is its function; the others' is [`MARK`].
    fn into_words(self) -> (*mut (), Tail) {
        match self {
            Callback::Boxed(f) => {
                let raw = Box::into_raw(f);
                // SAFETY: a pointer to a trait object is two pointer-sized
                // words (`transmute` refuses other sizes), moved as they are
                // and put back together unchanged by `from_words`.
                let [first, second] = unsafe { mem::transmute::<RawFn, [*mut (); 2]>(raw) };
                (first, Tail { ptr: second })
            }
            Callback::C { cb, user } => (cb as *mut (), Tail { user }),
            Callback::Unpark(t) => (
                MARK,
                Tail {
                    unpark: ManuallyDrop::new(t),
                },
            ),
        }
    }

    /// # Safety
    /// `first` and `second` were made by `into_words` from an entry of
    /// this `kind`, and are used once.
    unsafe fn from_words(kind: u8, first: *mut (), second: Tail) -> Callback {
        // SAFETY: each arm reads back what `into_words` wrote for `kind`
        // (caller's duty): the two words of a `Box::into_raw`, a
        // `CDoneFn`, or the field it filled.
        unsafe {
            match kind {
                KIND_BOXED => {
                    Callback::Boxed(Box::from_raw(mem::transmute::<[*mut (); 2], RawFn>([
                        first, second.ptr,
                    ])))
                }
                KIND_C => Callback::C {
                    cb: mem::transmute::<*mut (), CDoneFn>(first),
                    user: second.user,
                },
                _ => Callback::Unpark(ManuallyDrop::into_inner(second.unpark)),
            }
        }
    }
}

/// The first callback's slot: written once, by the adder that published it
/// (module docs).
struct Slot {
    /// Null until the entry is written; then its first word (never null).
    first: AtomicPtr<()>,
    /// Written before `first`; read only after `first` was seen non-null.
    second: UnsafeCell<MaybeUninit<Tail>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            first: AtomicPtr::new(ptr::null_mut()),
            // Zeroed though never read before it is written: with the words
            // around it zero too, a spawn writes them with wider stores.
            second: UnsafeCell::new(MaybeUninit::zeroed()),
        }
    }

    /// Writes the entry of the adder that published the slot. Nothing here
    /// can block or panic: takers wait for these few instructions.
    fn fill(&self, callback: Callback) {
        let (first, second) = callback.into_words();
        // SAFETY: publishing made us the slot's only writer, once per task,
        // and nobody reads `second` before `first` is non-null.
        unsafe { (*self.second.get()).write(second) };
        // Release: whoever sees `first` sees `second`.
        self.first.store(first, Ordering::Release);
    }

    /// The entry's first word, once its adder wrote it (module docs).
    fn written(&self) -> *mut () {
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with `fill`'s Release.
            let first = self.first.load(Ordering::Acquire);
            if !first.is_null() {
                return first;
            }
            crate::sync::loom::snooze(&backoff);
        }
    }

    /// Takes the published entry, of `kind`.
    ///
    /// # Safety
    /// The caller owns the entry (it made the task final with the slot full,
    /// or withdrew it): nobody takes it twice.
    unsafe fn take(&self, kind: u8) -> Callback {
        let first = self.written();
        // SAFETY: written before `first` (seen above); ours alone (caller).
        let second = unsafe { (*self.second.get()).assume_init_read() };
        // SAFETY: made by `into_words` with `kind`, taken once.
        unsafe { Callback::from_words(kind, first, second) }
    }

    /// A published C entry's `(cb, user)`, read without taking it.
    ///
    /// # Safety
    /// The slot's entry is of kind C (a C entry is plain data: reading it
    /// races nothing, taking it only copies it).
    unsafe fn peek_c(&self) -> (*mut (), usize) {
        let first = self.written();
        // SAFETY: written before `first`; the kind is C (caller's duty).
        (first, unsafe {
            (*self.second.get()).assume_init_ref().user
        })
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

/// The first callback's slot, then the task's id and, made on first use,
/// the name and the list.
pub(crate) struct Extras {
    /// Written by the adder that published it; then owned by whoever wins
    /// the entry (the finisher, or one remover).
    slot: Slot,
    /// `(id << 1) | ID_TAG` until the task gets a name or a second
    /// callback; then the address of a [`Listed`] (even, as every
    /// allocation of it is), which holds the id from then on. It changes
    /// once. One word for both: every task needs its id, few the list, and
    /// the word saved keeps a task cell in a smaller allocator size class.
    id_or_listed: AtomicU64,
}

/// What [`Extras`] makes on first use.
struct Listed {
    /// The task's id, moved out of [`Extras::id_or_listed`].
    id: u64,
    inner: Mutex<Inner>,
}

/// The low bit of [`Extras::id_or_listed`] while it holds the id.
const ID_TAG: u64 = 1;

impl Extras {
    /// The extras of a new task whose id is `id` (below 2^63).
    pub(crate) fn new(id: u64) -> Extras {
        debug_assert!(id < 1 << 63, "ids stay below 2^63");
        Extras {
            slot: Slot::new(),
            id_or_listed: AtomicU64::new(id << 1 | ID_TAG),
        }
    }

    /// The task's id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        match self.listed() {
            Ok(listed) => listed.id,
            Err(id) => id,
        }
    }

    /// The [`Listed`] if it was made, else the id.
    #[inline]
    fn listed(&self) -> Result<&Listed, u64> {
        // Acquire: pairs with the Release of the CAS that published the
        // `Listed`, whose fields were written before it.
        let word = self.id_or_listed.load(Ordering::Acquire);
        if word & ID_TAG != 0 {
            return Err(word >> 1);
        }
        Ok(self.listed_at(word))
    }

    /// The [`Listed`] at `word`, an untagged value of `id_or_listed`.
    #[inline]
    fn listed_at(&self, word: u64) -> &Listed {
        debug_assert_eq!(word & ID_TAG, 0);
        // SAFETY: an untagged word is the address of a `Listed` published
        // by `get_or_init` (the word changes once, from the id to it), freed
        // only in `drop`, when no reference to the task remains.
        unsafe { &*(word as usize as *const Listed) }
    }

    fn get(&self) -> Option<&Mutex<Inner>> {
        self.listed().ok().map(|listed| &listed.inner)
    }

    fn get_or_init(&self) -> &Mutex<Inner> {
        let id = match self.listed() {
            Ok(listed) => return &listed.inner,
            Err(id) => id,
        };
        let fresh = alloc::boxed(|| Listed {
            id,
            inner: Mutex::new(Inner::default()),
        });
        match self.id_or_listed.compare_exchange(
            id << 1 | ID_TAG,
            fresh.as_ptr() as usize as u64,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: we just published `fresh`; it lives as long as `self`.
            Ok(_) => unsafe { &fresh.as_ref().inner },
            Err(winner) => {
                // SAFETY: `fresh` was never shared.
                unsafe { alloc::free(fresh) };
                // Another thread published its `Listed` first.
                &self.listed_at(winner).inner
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
        match state.publish_slot(callback.kind()) {
            PublishSlot::Done => return Err(callback),
            PublishSlot::Published => {
                self.slot.fill(callback);
                return Ok(SLOT_KEY);
            }
            PublishSlot::Used => {}
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
        let same = |f: usize, u: usize| f == cb as usize && u == user;
        let mut removed = 0;
        if state.load().slot() == Some(KIND_C) {
            // SAFETY: the kind is C (the slot is written once per task).
            let (f, u) = unsafe { self.slot.peek_c() };
            if same(f as usize, u) && self.unpublish(state).is_some() {
                removed += 1;
            }
        }
        if let Some(inner) = self.get() {
            removed += lock(inner).remove_where(
                |e| matches!(e.callback, Callback::C { cb: f, user: u } if same(f as usize, u)),
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
        // SAFETY: winning the withdrawal makes the published entry ours; it
        // is of `kind` (the slot is published once per task).
        Some(unsafe { self.slot.take(kind) })
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
        // (withdrawal fails once done), so it is ours alone, of `kind`.
        Some(unsafe { self.slot.take(kind) })
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
        let word = self.id_or_listed.load(Ordering::Acquire);
        if word & ID_TAG == 0 {
            let listed = word as usize as *mut Listed;
            // SAFETY: an untagged word is the address of a `Listed` published
            // by `get_or_init` (so from `alloc::boxed`, not null); the task
            // is being freed, nobody else can reach it.
            unsafe { alloc::free(NonNull::new_unchecked(listed)) };
        }
    }
}

/// Locks ignoring poison: user code never runs under this lock, so a poisoned
/// lock can only come from an allocation failure, and the list stays valid.
fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Extras;

    #[test]
    fn the_id_stays_the_same_once_the_list_is_made() {
        for id in [1, 42, (1 << 62) + 7, (1 << 63) - 1] {
            let extras = Extras::new(id);
            assert_eq!(extras.id(), id);
            assert_eq!(extras.name(), None);
            extras.set_name("named");
            assert_eq!(extras.id(), id);
            assert_eq!(extras.name().as_deref(), Some("named"));
            extras.set_name("renamed");
            assert_eq!(extras.id(), id);
            assert_eq!(extras.name().as_deref(), Some("renamed"));
        }
    }
}
