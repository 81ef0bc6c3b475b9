//! The rarely used parts of a task: its name and its done-callback list.
//!
//! They live in a second allocation made on first use, so a task that is
//! never named and never waited on from outside pays one null pointer. The
//! protocol between adders and the finishing thread is in `task/mod.rs`.

use std::collections::VecDeque;
use std::ptr::{self, NonNull};
use std::thread::Thread;

use super::state::State;
use super::TaskRef;
use crate::alloc;
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

/// A C callback: `f(task, a, b)`, removable by `(f, a, b)`.
pub(crate) type RawCallbackFn = unsafe fn(&TaskRef, usize, usize);

/// One entry of the callback list.
pub(crate) enum Callback {
    /// A Rust closure (`on_done`).
    Boxed(Box<dyn FnOnce(&TaskRef) + Send>),
    /// A C function pointer with its user data, no allocation.
    Raw {
        f: RawCallbackFn,
        a: usize,
        b: usize,
    },
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
            Callback::Raw { f, a, b } => {
                // SAFETY: `f` was registered together with `a` and `b` by the
                // C layer, which promises they stay valid until the call.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { f(task, a, b) }))
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

/// The list is `first` then `rest`: most tasks have at most one callback
/// (or one waiter), which then costs no allocation beyond `Extras` itself.
#[derive(Default)]
struct Inner {
    name: Option<Box<str>>,
    first: Option<Entry>,
    rest: VecDeque<Entry>,
    next_key: u64,
}

impl Inner {
    fn push(&mut self, entry: Entry) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(entry);
        } else {
            self.rest.push_back(entry);
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    /// Removes the entries matching `pred`; returns how many.
    fn remove_where(&mut self, mut pred: impl FnMut(&Entry) -> bool) -> usize {
        let mut removed = 0;
        if self.first.as_ref().is_some_and(&mut pred) {
            self.first = None;
            removed += 1;
        }
        let before = self.rest.len();
        self.rest.retain(|e| !pred(e));
        removed + before - self.rest.len()
    }
}

/// Lazily allocated name and callback list.
pub(crate) struct Extras(AtomicPtr<Mutex<Inner>>);

impl Extras {
    pub(crate) fn new() -> Extras {
        Extras(AtomicPtr::new(ptr::null_mut()))
    }

    fn get(&self) -> Option<&Mutex<Inner>> {
        // Acquire: pairs with the Release of the CAS that published it.
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published by `get_or_init` and is
        // freed only in `drop`, when no reference to the task remains.
        unsafe { p.as_ref() }
    }

    fn get_or_init(&self) -> &Mutex<Inner> {
        if let Some(inner) = self.get() {
            return inner;
        }
        let fresh = alloc::boxed(Mutex::new(Inner::default()));
        match self.0.compare_exchange(
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
        // A done task never lists anything again: skip the list (and its
        // allocation). Only an optimisation; rule 1 below decides.
        if state.load().is_done() {
            return Err(callback);
        }
        let mut inner = self.lock();
        // Rule 1: the flag is set (and the task checked not done) with the
        // lock held, so the finishing thread cannot drain before we push.
        if !state.set_callbacks() {
            return Err(callback);
        }
        let key = inner.next_key;
        inner.next_key += 1;
        inner.push(Entry { key, callback });
        Ok(key)
    }

    /// Removes the entry with `key`; true if it had not been run yet.
    pub(crate) fn remove(&self, key: u64) -> bool {
        let Some(inner) = self.get() else {
            return false;
        };
        // Keys are unique: at most one entry matches.
        lock(inner).remove_where(|e| e.key == key) == 1
    }

    /// Removes every raw entry equal to `(f, a, b)`; returns how many.
    pub(crate) fn remove_raw(&self, f: RawCallbackFn, a: usize, b: usize) -> usize {
        let Some(inner) = self.get() else { return 0 };
        lock(inner).remove_where(|e| {
            matches!(e.callback, Callback::Raw { f: ef, a: ea, b: eb }
                if ef as usize == f as usize && ea == a && eb == b)
        })
    }

    /// Rule 2: the next entry to run, in insertion order.
    pub(crate) fn pop_front(&self) -> Option<Callback> {
        let inner = self.get()?;
        let entry = lock(inner).pop();
        entry.map(|e| e.callback)
    }
}

impl Drop for Extras {
    fn drop(&mut self) {
        if let Some(p) = NonNull::new(self.0.load(Ordering::Acquire)) {
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
