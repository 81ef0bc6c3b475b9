//! The work-stealing deque of a worker, and of a lane (`sched/lanes.rs`).
//!
//! Chase and Lev's deque ("Dynamic Circular Work-Stealing Deque", SPAA
//! 2005) with the orderings of Lê, Pop, Cohen and Zappa Nardelli
//! ("Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP
//! 2013): the owner pushes and pops at `bottom` with plain stores and one
//! `SeqCst` fence per pop; thieves take from `top` with a compare-exchange.
//! Only the owner's pop of the last job races a thief, and the
//! compare-exchange on `top` settles it.
//!
//! Memory: a buffer only grows (fourfold), and a buffer grown out of is
//! kept until the deque is dropped, so a thief may read any buffer it
//! loaded without pinning an epoch, and the owner never shrinks and
//! regrows. The price: the old buffers, a third of the largest at most.
//!
//! *Hidden* jobs: a worker's owner may push a job where no thief looks
//! yet, above `bottom` ([`Worker::push_hidden`]). Popping it back is a
//! plain load, with no fence: the fork-join fast path (heartbeat
//! scheduling's idea: work becomes stealable only when someone could
//! steal it). [`Worker::show_oldest`] makes the oldest hidden job an
//! ordinary one by moving `bottom` over it; every other owner operation
//! that moves `bottom` shows them all first, so the hidden jobs are
//! always the newest, in order, right above `bottom`.
//!
//! Two kinds: a *LIFO* deque (a worker's) is popped by its owner, so a
//! thief takes a batch one job at a time, each by its own compare-exchange;
//! a *push-only* deque (a lane: its thread never runs jobs) has no owner
//! pops to race, and a thief claims a whole batch with one. In both a thief
//! takes about half of what it saw, at most [`STEAL_LIMIT`], runs one and
//! pushes the rest on its own deque, as crossbeam-deque's
//! `steal_batch_and_pop` does; [`Steal`] is crossbeam's, so the injector's
//! answers and ours are one type.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crossbeam_utils::CachePadded;

use crate::sync::loom::atomic::{fence, AtomicIsize, AtomicPtr, Ordering};
use crate::sync::loom::{Arc, Mutex};

/// The capacity of a new deque's buffer, in jobs (in the loom models, two:
/// a third job makes it grow).
#[cfg(not(loom))]
const MIN_CAPACITY: usize = 64;
#[cfg(loom)]
const MIN_CAPACITY: usize = 2;

/// The most jobs a thief takes in one steal, the one it runs included.
pub(crate) const STEAL_LIMIT: usize = 32;

/// What a deque holds: a non-null pointer, handed over by value.
pub(crate) trait Item: Copy {
    fn into_raw(self) -> NonNull<()>;
    /// # Safety
    /// `ptr` came from `into_raw` of an item of this type.
    unsafe fn from_raw(ptr: NonNull<()>) -> Self;
}

/// The outcome of a steal: crossbeam-deque's type, which the injector
/// (`crossbeam_deque::Injector`) answers with too.
pub(crate) use crossbeam_deque::Steal;

struct Buffer {
    slots: Box<[AtomicPtr<()>]>,
}

impl Buffer {
    fn new(capacity: usize) -> std::sync::Arc<Buffer> {
        debug_assert!(capacity.is_power_of_two());
        std::sync::Arc::new(Buffer {
            slots: null_slots(capacity),
        })
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn at(&self, index: isize) -> &AtomicPtr<()> {
        // The capacity is a power of two: the mask is the modulo, also for
        // an index that wrapped around.
        let i = index as usize & (self.slots.len() - 1);
        debug_assert!(i < self.slots.len());
        // SAFETY: the capacity is a non-zero power of two (`Buffer::new`),
        // so the masked index is below it.
        unsafe { self.slots.get_unchecked(i) }
    }
}

/// `capacity` null slots, from zeroed memory: a large buffer (a lane whose
/// workers are all busy grows to hold every spawn) then comes as fresh
/// pages, already zero, instead of being written through.
#[cfg(not(loom))]
fn null_slots(capacity: usize) -> Box<[AtomicPtr<()>]> {
    let layout = std::alloc::Layout::array::<AtomicPtr<()>>(capacity).expect("deque too large");
    assert!(layout.size() > 0);
    // SAFETY: the layout is not zero-sized (asserted).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let slots = std::ptr::slice_from_raw_parts_mut(ptr.cast::<AtomicPtr<()>>(), capacity);
    // SAFETY: a live allocation of the global allocator with the layout of
    // `capacity` slots, which is how a `Box<[AtomicPtr<()>]>` of that
    // length frees it; all zeros is a valid `AtomicPtr` (null).
    unsafe { Box::from_raw(slots) }
}

/// loom's atomics are not plain memory: built one by one.
#[cfg(loom)]
fn null_slots(capacity: usize) -> Box<[AtomicPtr<()>]> {
    (0..capacity)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect()
}

struct Inner {
    /// `top` (where thieves take from; it only grows) at index 0, and
    /// `bottom` (where the owner pushes and pops) at `BOTTOM_LIFO` or
    /// `BOTTOM_PUSH_ONLY`, by the kind of deque (see there).
    ends: CachePadded<[AtomicIsize; ENDS]>,
    bottom_at: usize,
    /// The current buffer, one of `buffers`.
    buffer: AtomicPtr<Buffer>,
    /// Every buffer the deque had, so none is freed while a thief may read
    /// it: they go when the last of the owner and its stealers does. Each
    /// on the heap of its own, so that `buffer` stays valid when the list
    /// grows (a std `Arc`, not a `Box`: moving a `Box` asserts it is the
    /// only pointer to its buffer, which `buffer` is not).
    buffers: Mutex<Vec<std::sync::Arc<Buffer>>>,
    /// False for a push-only deque (module docs).
    lifo: bool,
}

/// Room for `top` and `bottom` on two 128-byte lines (`CachePadded`'s).
const ENDS: usize = 32;

/// A worker's `bottom`, a line away from `top`: its owner pushes and pops
/// at `bottom` all the time and thieves come now and then, so each keeps
/// its own line.
const BOTTOM_LIFO: usize = 16;

/// A lane's `bottom`, next to `top`: its thread pushes all the time and
/// workers steal a batch from it every few microseconds, reading both ends
/// and moving `top`; on one line, a steal and the next push each take one
/// line, not two.
const BOTTOM_PUSH_ONLY: usize = 1;

impl Inner {
    #[inline]
    fn top(&self) -> &AtomicIsize {
        &self.ends[0]
    }

    #[inline]
    fn bottom(&self) -> &AtomicIsize {
        // Masked: the compiler then knows the index is in bounds.
        &self.ends[self.bottom_at & (ENDS - 1)]
    }

    #[inline]
    fn buffer(&self, order: Ordering) -> &Buffer {
        // SAFETY: `buffer` always points to a buffer in `buffers`, which
        // keeps every buffer it got as long as `self` lives; buffers are
        // only read through shared references (their slots are atomics).
        unsafe { &*self.buffer.load(order) }
    }

    fn len(&self) -> usize {
        self.len_and_bottom().0
    }

    /// The number of jobs, and `bottom`.
    fn len_and_bottom(&self) -> (usize, isize) {
        let b = self.bottom().load(Ordering::Relaxed);
        let t = self.top().load(Ordering::Relaxed);
        (b.wrapping_sub(t).max(0) as usize, b)
    }
}

/// The owner's end: only the thread that owns it pushes (and, for a LIFO
/// deque, pops); it moves between threads but is not shared (`!Sync`).
pub(crate) struct Worker<T> {
    inner: Arc<Inner>,
    /// How many hidden jobs lie at `bottom..bottom + hidden` (module docs).
    hidden: Cell<isize>,
    _item: PhantomData<T>,
}

/// A thief's end, shared by every thread that steals.
pub(crate) struct Stealer<T> {
    inner: Arc<Inner>,
    _item: PhantomData<T>,
}

// SAFETY: a `Stealer` only reads slots by atomic loads and claims them by
// compare-exchange on `top`; the items are pointers that the deque hands
// over by value, as `Worker` does, which is `Send` for `T: Send`.
unsafe impl<T: Send> Send for Stealer<T> {}
// SAFETY: as above: every access through `&Stealer` is atomic.
unsafe impl<T: Send> Sync for Stealer<T> {}

impl<T> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Stealer {
            inner: self.inner.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: Item> Worker<T> {
    /// A worker's deque: the owner pops the job it pushed last.
    pub(crate) fn new_lifo() -> Worker<T> {
        Worker::new(true)
    }

    /// A lane: the owner only pushes; thieves take the oldest first.
    pub(crate) fn new_push_only() -> Worker<T> {
        Worker::new(false)
    }

    fn new(lifo: bool) -> Worker<T> {
        let first = Buffer::new(MIN_CAPACITY);
        let buffer = AtomicPtr::new(std::sync::Arc::as_ptr(&first).cast_mut());
        Worker {
            inner: Arc::new(Inner {
                ends: CachePadded::new(std::array::from_fn(|_| AtomicIsize::new(0))),
                bottom_at: if lifo { BOTTOM_LIFO } else { BOTTOM_PUSH_ONLY },
                buffer,
                buffers: Mutex::new(vec![first]),
                lifo,
            }),
            hidden: Cell::new(0),
            _item: PhantomData,
        }
    }

    pub(crate) fn stealer(&self) -> Stealer<T> {
        Stealer {
            inner: self.inner.clone(),
            _item: PhantomData,
        }
    }

    /// The jobs thieves can see (hidden ones not counted).
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    #[inline]
    pub(crate) fn push(&self, item: T) {
        let (buffer, b) = self.reserve(1);
        buffer
            .at(b)
            .store(item.into_raw().as_ptr(), Ordering::Relaxed);
        self.publish(b.wrapping_add(1));
    }

    /// Room for `n` more jobs: the buffer to write them in, from the
    /// returned index on, before [`publish`](Self::publish) makes them
    /// visible. (A thief writes the jobs it takes straight into its own
    /// deque this way, as crossbeam's did.)
    #[inline]
    fn reserve(&self, n: usize) -> (&Buffer, isize) {
        // Jobs go right above `bottom`, where the hidden ones are.
        self.show_all();
        let inner = &*self.inner;
        // Relaxed: only this thread writes `bottom` and `buffer`.
        let b = inner.bottom().load(Ordering::Relaxed);
        // Acquire: a thief read the slot we may reuse before its
        // compare-exchange moved `top` past it; seeing the new `top` orders
        // that read before our writes after this.
        let t = inner.top().load(Ordering::Acquire);
        let buffer = inner.buffer(Ordering::Relaxed);
        let needed = b.wrapping_sub(t) as usize + n;
        if needed > buffer.capacity() {
            return (self.grow(b, t, needed), b);
        }
        (buffer, b)
    }

    /// Pushes `item` hidden from thieves (module docs): only [`pop`]
    /// takes it back, until [`show_oldest`] or another push shows it. Only
    /// for a LIFO deque.
    ///
    /// [`pop`]: Self::pop
    /// [`show_oldest`]: Self::show_oldest
    #[inline]
    pub(crate) fn push_hidden(&self, item: T) {
        debug_assert!(self.inner.lifo, "a push-only deque is never popped");
        let inner = &*self.inner;
        let hidden = self.hidden.get();
        // Relaxed: only this thread writes `bottom` and `buffer`.
        let at = inner.bottom().load(Ordering::Relaxed).wrapping_add(hidden);
        // Acquire: as in `reserve`.
        let t = inner.top().load(Ordering::Acquire);
        let mut buffer = inner.buffer(Ordering::Relaxed);
        let needed = at.wrapping_sub(t) as usize + 1;
        if needed > buffer.capacity() {
            // The hidden jobs move with the others.
            buffer = self.grow(at, t, needed);
        }
        // Relaxed: no thief reads a slot at or above `bottom`; `publish`
        // releases it when it is shown.
        buffer
            .at(at)
            .store(item.into_raw().as_ptr(), Ordering::Relaxed);
        self.hidden.set(hidden + 1);
    }

    /// Shows the oldest hidden job to thieves; false if none is hidden.
    #[inline]
    pub(crate) fn show_oldest(&self) -> bool {
        let hidden = self.hidden.get();
        if hidden == 0 {
            return false;
        }
        self.hidden.set(hidden - 1);
        let b = self.inner.bottom().load(Ordering::Relaxed);
        self.publish(b.wrapping_add(1));
        true
    }

    /// Shows every hidden job to thieves.
    #[inline]
    pub(crate) fn show_all(&self) {
        let hidden = self.hidden.replace(0);
        if hidden != 0 {
            let b = self.inner.bottom().load(Ordering::Relaxed);
            self.publish(b.wrapping_add(hidden));
        }
    }

    /// Makes the jobs written below `bottom` visible to thieves.
    #[inline]
    fn publish(&self, bottom: isize) {
        // Release: a thief that sees the new `bottom` sees the slots (and a
        // buffer grown in `reserve`, stored before).
        self.inner.bottom().store(bottom, Ordering::Release);
    }

    /// Moves jobs `t..b` to a buffer that holds at least `needed` (at
    /// least four times as large: module docs) and makes it current.
    #[cold]
    fn grow(&self, b: isize, t: isize, needed: usize) -> &Buffer {
        let inner = &*self.inner;
        let old = inner.buffer(Ordering::Relaxed);
        let new = Buffer::new(needed.next_power_of_two().max(old.capacity() * 4));
        // In runs that wrap around in neither buffer: a tight loop with no
        // index arithmetic per job.
        let mut i = t;
        while i != b {
            let from = i as usize & (old.capacity() - 1);
            let to = i as usize & (new.capacity() - 1);
            let run = (b.wrapping_sub(i) as usize)
                .min(old.capacity() - from)
                .min(new.capacity() - to);
            for (dst, src) in new.slots[to..to + run]
                .iter()
                .zip(&old.slots[from..from + run])
            {
                dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            i = i.wrapping_add(run as isize);
        }
        let ptr = std::sync::Arc::as_ptr(&new).cast_mut();
        // The old buffer stays in the list: a thief may still read it.
        inner.buffers.lock().unwrap().push(new);
        // Release: a thief that loads this buffer (after seeing a `bottom`
        // stored after this) sees the copies.
        inner.buffer.store(ptr, Ordering::Release);
        inner.buffer(Ordering::Relaxed)
    }

    /// True if `item` is what [`pop`](Self::pop) would take now, the job
    /// pushed last: a look by the owner, which takes nothing. A thief may
    /// still take it first if it is the last one shown; `pop` then finds
    /// nothing. Only for a LIFO deque.
    #[inline(always)]
    pub(crate) fn is_newest(&self, item: &T) -> bool
    where
        T: Copy,
    {
        let inner = &*self.inner;
        let hidden = self.hidden.get();
        let b = inner.bottom().load(Ordering::Relaxed);
        let at = if hidden != 0 {
            b.wrapping_add(hidden - 1)
        } else if b.wrapping_sub(inner.top().load(Ordering::Relaxed)) > 0 {
            b.wrapping_sub(1)
        } else {
            return false;
        };
        // Only this thread writes the slots, and a stale `top` only makes
        // the deque look fuller: the slot holds what was pushed there.
        let slot = inner
            .buffer(Ordering::Relaxed)
            .at(at)
            .load(Ordering::Relaxed);
        slot == item.into_raw().as_ptr()
    }

    /// The job pushed last, unless a thief took it: a hidden one if any
    /// (no thief can take it: no fence), else one at `bottom`. Only for a
    /// LIFO deque.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<T> {
        let inner = &*self.inner;
        debug_assert!(inner.lifo, "a push-only deque is never popped");
        let hidden = self.hidden.get();
        if hidden != 0 {
            self.hidden.set(hidden - 1);
            let at = inner
                .bottom()
                .load(Ordering::Relaxed)
                .wrapping_add(hidden - 1);
            let ptr = inner
                .buffer(Ordering::Relaxed)
                .at(at)
                .load(Ordering::Relaxed);
            // SAFETY: `push_hidden` stored an item there (copied along if
            // the buffer grew), and no thief reads at or above `bottom`.
            return Some(unsafe { T::from_raw(claimed(ptr)) });
        }
        let b = inner.bottom().load(Ordering::Relaxed);
        // Empty without the fence: `top` only grows, so a stale `top` only
        // makes the deque look fuller than it is.
        if b.wrapping_sub(inner.top().load(Ordering::Relaxed)) <= 0 {
            return None;
        }
        let b = b.wrapping_sub(1);
        // Release, here and below: a thief that loads this `bottom` must
        // see the slots under it, and since C++20 (Rust's model) a later
        // Relaxed store by the same thread no longer carries the Release of
        // `publish` along. Free on x86; the fence below costs more on Arm.
        inner.bottom().store(b, Ordering::Release);
        // SeqCst: orders our store of `bottom` before our load of `top`
        // against a thief's load of `top` then `bottom` (its own fence):
        // either it sees the smaller `bottom` or we see its larger `top`.
        fence(Ordering::SeqCst);
        let t = inner.top().load(Ordering::Relaxed);
        let size = b.wrapping_sub(t);
        if size < 0 {
            // A thief took the last job first.
            inner.bottom().store(b.wrapping_add(1), Ordering::Release);
            return None;
        }
        let ptr = inner
            .buffer(Ordering::Relaxed)
            .at(b)
            .load(Ordering::Relaxed);
        if size == 0 {
            // The last job: a thief may be taking it too; `top` decides.
            let won = inner
                .top()
                .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
            inner.bottom().store(b.wrapping_add(1), Ordering::Release);
            if !won {
                return None;
            }
        }
        // SAFETY: the slot holds what `push` stored for index `b` (copied
        // along if the buffer grew): only this thread writes this deque's
        // slots, and no thief took `b` (it stayed above `top`, or we won it).
        Some(unsafe { T::from_raw(claimed(ptr)) })
    }
}

impl<T: Item> Stealer<T> {
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of jobs, and how many were ever pushed (`bottom`, which
    /// only grows in a push-only deque): two looks that see the same count
    /// saw no push in between.
    pub(crate) fn len_and_pushes(&self) -> (usize, isize) {
        self.inner.len_and_bottom()
    }

    /// Looks at the front: `(top, bottom)`, with the fence that orders
    /// this look against an owner's pop (`Worker::pop`).
    fn look(&self) -> (isize, isize) {
        let inner = &*self.inner;
        // Acquire: pairs with other thieves' compare-exchange (and the
        // owner's), so the slots they read are not ours to reuse.
        let t = inner.top().load(Ordering::Acquire);
        // SeqCst: see `Worker::pop`.
        fence(Ordering::SeqCst);
        // Acquire: pairs with `push`'s Release: the slots below are written.
        let b = inner.bottom().load(Ordering::Acquire);
        (t, b)
    }

    /// Slot `t` as a thief reads it: only meaningful if `claim` then
    /// moves `top` from `t` (a slot below `top` may not have been copied
    /// into a grown buffer, so may read null).
    fn read(&self, t: isize) -> *mut () {
        // Acquire: after `look`'s load of `bottom`, so this is the buffer
        // that holds the slots below it (or a later copy of it).
        self.inner
            .buffer(Ordering::Acquire)
            .at(t)
            .load(Ordering::Relaxed)
    }

    /// Moves `top` from `t` past `count` jobs; false if another thread
    /// moved it first. On success, the slots read at `t..t + count` since
    /// `look` hold the jobs pushed there: `top` stayed at or below `t`
    /// meanwhile, so the owner neither reused them nor grew without them.
    fn claim(&self, t: isize, count: usize) -> bool {
        self.inner
            .top()
            .compare_exchange(
                t,
                t.wrapping_add(count as isize),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// After a look: `top`, and how many jobs a batch steal takes from
    /// there (about half of those seen, at most [`STEAL_LIMIT`]); None if
    /// it saw none.
    fn batch(&self) -> Option<(isize, usize)> {
        let (t, b) = self.look();
        let len = b.wrapping_sub(t);
        (len > 0).then(|| (t, (len as usize).div_ceil(2).min(STEAL_LIMIT)))
    }

    /// Steals about half of the jobs, at most [`STEAL_LIMIT`], and returns
    /// one to run; the others go on `dest`. From a push-only deque (a
    /// queue) the oldest is run and `dest` pops the rest oldest first; from
    /// a LIFO deque (a stack) the taken part keeps its order: `dest` gets
    /// the older jobs and the newest taken is run first, as its owner would
    /// have. (Both as crossbeam-deque's `steal_batch_and_pop` does.)
    pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        let Some((t, count)) = self.batch() else {
            return Steal::Empty;
        };
        let taken = if self.inner.lifo {
            self.take_lifo(t, count, dest)
        } else {
            self.take_push_only(t, count, dest)
        };
        match taken {
            // SAFETY: a slot we claimed holds an item `push` stored.
            Some(ptr) => Steal::Success(unsafe { T::from_raw(ptr) }),
            None => Steal::Retry,
        }
    }

    /// [`steal_batch_and_pop`](Self::steal_batch_and_pop) from a push-only
    /// deque into a plain vector, oldest first: for a lane's owner taking
    /// its own jobs back (`sched/wait.rs`), which would otherwise pay a
    /// fenced pop for each job of a deque nobody else can reach. As in
    /// `take_push_only`, one compare-exchange claims the batch, whose
    /// slots are read before it.
    pub(crate) fn steal_batch_into(&self, out: &mut Vec<T>) -> Steal<()> {
        debug_assert!(
            !self.inner.lifo,
            "only a push-only deque's jobs come out in one claim"
        );
        let Some((t, count)) = self.batch() else {
            return Steal::Empty;
        };
        let mut slots = [ptr::null_mut(); STEAL_LIMIT];
        // Acquire: as in `read`.
        let source = self.inner.buffer(Ordering::Acquire);
        for (i, slot) in slots[..count].iter_mut().enumerate() {
            *slot = source
                .at(t.wrapping_add(i as isize))
                .load(Ordering::Relaxed);
        }
        if !self.claim(t, count) {
            return Steal::Retry;
        }
        out.extend(slots[..count].iter().map(|&p| {
            // SAFETY: the slots we claimed hold items `push` stored.
            unsafe { T::from_raw(claimed(p)) }
        }));
        Steal::Success(())
    }

    /// One job at a time, each after a fresh look: the owner may pop what
    /// we meant to take next. Returns the newest taken.
    fn take_lifo(&self, t: isize, count: usize, dest: &Worker<T>) -> Option<NonNull<()>> {
        let (slots, db) = dest.reserve(count - 1);
        let mut newest = self.read(t);
        if !self.claim(t, 1) {
            return None;
        }
        let mut moved = 0;
        while moved + 1 < count {
            let (t, b) = self.look();
            if b.wrapping_sub(t) <= 0 {
                break;
            }
            let ptr = self.read(t);
            if !self.claim(t, 1) {
                break;
            }
            slots
                .at(db.wrapping_add(moved as isize))
                .store(newest, Ordering::Relaxed);
            newest = ptr;
            moved += 1;
        }
        if moved > 0 {
            dest.publish(db.wrapping_add(moved as isize));
        }
        Some(claimed(newest))
    }

    /// Nobody pops a push-only deque, so `count` jobs from `t` are claimed
    /// by one compare-exchange. Returns the oldest; the others go to
    /// `dest` newest first, so that it pops them oldest first. They are
    /// written there before the claim, unseen until published after it.
    fn take_push_only(&self, t: isize, count: usize, dest: &Worker<T>) -> Option<NonNull<()>> {
        let (slots, db) = dest.reserve(count - 1);
        // Acquire: as in `read`.
        let source = self.inner.buffer(Ordering::Acquire);
        let oldest = source.at(t).load(Ordering::Relaxed);
        for i in 1..count {
            let ptr = source
                .at(t.wrapping_add(i as isize))
                .load(Ordering::Relaxed);
            let to = db.wrapping_add((count - 1 - i) as isize);
            slots.at(to).store(ptr, Ordering::Relaxed);
        }
        if !self.claim(t, count) {
            return None;
        }
        dest.publish(db.wrapping_add(count as isize - 1));
        Some(claimed(oldest))
    }
}

/// A slot read by whoever then took its job (a thief that claimed it, the
/// owner that popped it): `push` stored a job there.
#[inline]
fn claimed(ptr: *mut ()) -> NonNull<()> {
    NonNull::new(ptr).expect("a claimed slot holds a job")
}

/// The item of the unit tests and the loom models: a number, carried as
/// the pointer's address.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct N(pub(crate) usize);

#[cfg(test)]
impl Item for N {
    fn into_raw(self) -> NonNull<()> {
        NonNull::new((self.0 + 1) as *mut ()).unwrap()
    }
    unsafe fn from_raw(ptr: NonNull<()>) -> N {
        N(ptr.as_ptr() as usize - 1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU8};

    fn drain(w: &Worker<N>) -> Vec<usize> {
        std::iter::from_fn(|| w.pop()).map(|n| n.0).collect()
    }

    #[test]
    fn the_owner_pops_the_newest_first_across_growth() {
        let w = Worker::new_lifo();
        for i in 0..1000 {
            w.push(N(i));
        }
        assert_eq!(w.len(), 1000);
        assert_eq!(drain(&w), (0..1000).rev().collect::<Vec<_>>());
        assert_eq!(w.pop(), None);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_batch_into_a_vector_is_the_oldest_half_in_order() {
        let w = Worker::new_push_only();
        for i in 0..5 {
            w.push(N(i));
        }
        let mut out = Vec::new();
        assert_eq!(w.stealer().steal_batch_into(&mut out), Steal::Success(()));
        assert_eq!(out, [N(0), N(1), N(2)]);
        assert_eq!(w.stealer().steal_batch_into(&mut out), Steal::Success(()));
        assert_eq!(out, [N(0), N(1), N(2), N(3)], "appended");
        out.clear();
        assert_eq!(w.stealer().steal_batch_into(&mut out), Steal::Success(()));
        assert_eq!(w.stealer().steal_batch_into(&mut out), Steal::Empty);
        assert_eq!(out, [N(4)]);
    }

    #[test]
    fn the_newest_look_names_what_pop_takes_next() {
        let (w, thief) = (Worker::new_lifo(), Worker::new_lifo());
        assert!(!w.is_newest(&N(0)), "an empty deque has none");
        w.push(N(0));
        w.push(N(1));
        assert!(w.is_newest(&N(1)) && !w.is_newest(&N(0)));
        // A hidden job is above every shown one.
        w.push_hidden(N(2));
        assert!(w.is_newest(&N(2)) && !w.is_newest(&N(1)));
        assert_eq!(w.pop(), Some(N(2)));
        assert!(w.is_newest(&N(1)));
        // Stolen: the look no longer names it.
        assert_eq!(
            w.stealer().steal_batch_and_pop(&thief),
            Steal::Success(N(0))
        );
        assert!(w.is_newest(&N(1)));
        assert_eq!(w.pop(), Some(N(1)));
        assert!(!w.is_newest(&N(1)));
    }

    #[test]
    fn hidden_jobs_are_popped_first_and_stolen_only_once_shown() {
        let (w, thief) = (Worker::new_lifo(), Worker::new_lifo());
        w.push(N(0));
        w.push_hidden(N(1));
        w.push_hidden(N(2));
        w.push_hidden(N(3));
        // Thieves see only the job below the hidden ones.
        assert_eq!(w.len(), 1);
        assert_eq!(
            w.stealer().steal_batch_and_pop(&thief),
            Steal::Success(N(0))
        );
        assert_eq!(w.stealer().steal_batch_and_pop(&thief), Steal::Empty);
        // The oldest hidden job is shown: a thief takes it, not the others.
        assert!(w.show_oldest());
        assert_eq!(w.len(), 1);
        assert_eq!(
            w.stealer().steal_batch_and_pop(&thief),
            Steal::Success(N(1))
        );
        // A push shows every hidden job first, and lands above them.
        w.push(N(4));
        assert_eq!(w.len(), 3);
        w.push_hidden(N(5));
        assert_eq!(drain(&w), [5, 4, 3, 2]);
        assert!(!w.show_oldest());
    }

    #[test]
    fn hidden_jobs_move_with_the_buffer_when_it_grows() {
        let w = Worker::new_lifo();
        for i in 0..10 {
            w.push(N(i));
        }
        for i in 10..1000 {
            w.push_hidden(N(i));
        }
        assert_eq!(w.len(), 10);
        w.show_all();
        assert_eq!(w.len(), 1000);
        assert_eq!(drain(&w), (0..1000).rev().collect::<Vec<_>>());
    }

    #[test]
    fn a_lifo_steal_takes_the_older_half_and_runs_the_newest_of_it() {
        let (victim, thief) = (Worker::new_lifo(), Worker::new_lifo());
        for i in 0..10 {
            victim.push(N(i));
        }
        assert_eq!(
            victim.stealer().steal_batch_and_pop(&thief),
            Steal::Success(N(4))
        );
        assert_eq!(drain(&thief), [3, 2, 1, 0]);
        assert_eq!(drain(&victim), [9, 8, 7, 6, 5]);
        assert_eq!(victim.stealer().steal_batch_and_pop(&thief), Steal::Empty);
    }

    #[test]
    fn a_push_only_steal_runs_the_oldest_and_leaves_the_rest_in_order() {
        let (lane, thief) = (Worker::new_push_only(), Worker::new_lifo());
        for i in 0..9 {
            lane.push(N(i));
        }
        let stealer = lane.stealer();
        assert_eq!(stealer.steal_batch_and_pop(&thief), Steal::Success(N(0)));
        assert_eq!(drain(&thief), [1, 2, 3, 4]);
        assert_eq!(stealer.len(), 4);
        assert_eq!(stealer.steal_batch_and_pop(&thief), Steal::Success(N(5)));
        assert_eq!(drain(&thief), [6]);
        assert_eq!(stealer.steal_batch_and_pop(&thief), Steal::Success(N(7)));
        assert_eq!(stealer.steal_batch_and_pop(&thief), Steal::Success(N(8)));
        assert!(stealer.is_empty());
        assert_eq!(stealer.steal_batch_and_pop(&thief), Steal::Empty);
    }

    #[test]
    fn a_steal_takes_at_most_the_limit() {
        for victim in [Worker::new_lifo(), Worker::new_push_only()] {
            let thief = Worker::new_lifo();
            for i in 0..200 {
                victim.push(N(i));
            }
            assert!(matches!(
                victim.stealer().steal_batch_and_pop(&thief),
                Steal::Success(_)
            ));
            assert_eq!(thief.len(), STEAL_LIMIT - 1);
            assert_eq!(victim.len(), 200 - STEAL_LIMIT);
        }
    }

    #[test]
    fn a_lane_grows_while_thieves_take_from_the_front() {
        // `top` far from 0, so the buffer wraps around before and after
        // it grows; every job comes out once, in order.
        let (lane, thief) = (Worker::new_push_only(), Worker::new_lifo());
        let stealer = lane.stealer();
        let mut out = Vec::new();
        let mut next = 0;
        for round in 0..50 {
            for _ in 0..(round * 7) % 150 + 1 {
                lane.push(N(next));
                next += 1;
            }
            while let Steal::Success(n) = stealer.steal_batch_and_pop(&thief) {
                out.push(n.0);
                out.extend(drain(&thief));
                if round % 3 == 0 {
                    break; // leave some behind for the next round's growth
                }
            }
        }
        while let Steal::Success(n) = stealer.steal_batch_and_pop(&thief) {
            out.push(n.0);
            out.extend(drain(&thief));
        }
        assert_eq!(out, (0..next).collect::<Vec<_>>());
    }

    /// One owner pushing (and, for a worker's deque, popping all it
    /// pushed, so that it races the thieves for the last job over and
    /// over), two thieves stealing, on real threads: every job is taken
    /// exactly once.
    fn every_job_taken_once(lifo: bool) {
        use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        const JOBS: usize = if cfg!(miri) { 300 } else { 1_000_000 };
        let owner = if lifo {
            Worker::new_lifo()
        } else {
            Worker::new_push_only()
        };
        let taken: Vec<AtomicU8> = (0..JOBS).map(|_| AtomicU8::new(0)).collect();
        let take = |n: N| {
            taken[n.0].fetch_add(1, Relaxed);
        };
        let done = AtomicBool::new(false);
        let start = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            for thief in 0..2 {
                let stealer = owner.stealer();
                let (take, done, start) = (&take, &done, &start);
                // From a lane, one thief takes batches into a vector, as
                // a lane's owner taking its jobs back does.
                let into_vec = !lifo && thief == 1;
                s.spawn(move || {
                    let mine = Worker::new_lifo();
                    let mut batch = Vec::new();
                    start.wait();
                    loop {
                        // Read before the steal: once it is set, an empty
                        // look means there is nothing left.
                        let last = done.load(Acquire);
                        let stolen = if into_vec {
                            match stealer.steal_batch_into(&mut batch) {
                                Steal::Success(()) => Steal::Success(None),
                                Steal::Empty => Steal::Empty,
                                Steal::Retry => Steal::Retry,
                            }
                        } else {
                            match stealer.steal_batch_and_pop(&mine) {
                                Steal::Success(n) => Steal::Success(Some(n)),
                                Steal::Empty => Steal::Empty,
                                Steal::Retry => Steal::Retry,
                            }
                        };
                        match stolen {
                            Steal::Success(first) => {
                                first.into_iter().chain(batch.drain(..)).for_each(take);
                                while let Some(n) = mine.pop() {
                                    take(n);
                                }
                            }
                            Steal::Empty if last => break,
                            _ => {}
                        }
                    }
                });
            }
            start.wait();
            let mut i = 0;
            while i < JOBS {
                for _ in 0..(i % 3 + 1).min(JOBS - i) {
                    // A worker's deque also gets hidden jobs, some shown.
                    match i % 4 {
                        1 | 2 if lifo => owner.push_hidden(N(i)),
                        _ => owner.push(N(i)),
                    }
                    if lifo && i % 8 == 2 {
                        owner.show_oldest();
                    }
                    i += 1;
                }
                if lifo {
                    while let Some(n) = owner.pop() {
                        take(n);
                    }
                }
            }
            done.store(true, Release);
        });
        let counts: Vec<u8> = taken.iter().map(|c| c.load(Relaxed)).collect();
        assert!(
            counts.iter().all(|&c| c == 1),
            "a job was lost or taken twice"
        );
    }

    #[test]
    fn every_job_of_a_worker_deque_is_taken_once_under_contention() {
        every_job_taken_once(true);
    }

    #[test]
    fn every_job_of_a_lane_is_taken_once_under_contention() {
        every_job_taken_once(false);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Run with the task models (`src/task/loom_tests.rs`); the buffer
    //! starts at two slots here (`MIN_CAPACITY`), so a third push grows it.

    use super::*;
    use crate::sync::loom::model;
    use loom::thread;

    /// Runs `steals` steals on a thread while the owner runs `owner`, and
    /// checks that the jobs `0..jobs` were each taken exactly once.
    fn check(lifo: bool, before: usize, jobs: usize, owner: fn(&Worker<N>, &mut Vec<usize>)) {
        model(move || {
            let w = if lifo {
                Worker::new_lifo()
            } else {
                Worker::new_push_only()
            };
            for i in 0..before {
                w.push(N(i));
            }
            let stealer = w.stealer();
            let thief = thread::spawn(move || {
                let mine = Worker::new_lifo();
                let mut got = Vec::new();
                if let Steal::Success(n) = stealer.steal_batch_and_pop(&mine) {
                    got.push(n.0);
                    while let Some(n) = mine.pop() {
                        got.push(n.0);
                    }
                }
                got
            });
            let mut got = Vec::new();
            owner(&w, &mut got);
            got.extend(thief.join().unwrap());
            if lifo {
                while let Some(n) = w.pop() {
                    got.push(n.0);
                }
            } else {
                let mine = Worker::new_lifo();
                while let Steal::Success(n) = w.stealer().steal_batch_and_pop(&mine) {
                    got.push(n.0);
                    while let Some(n) = mine.pop() {
                        got.push(n.0);
                    }
                }
            }
            got.sort_unstable();
            assert_eq!(got, (0..jobs).collect::<Vec<_>>());
        });
    }

    #[test]
    fn loom_deque_owner_pop_races_a_steal_for_the_last_job() {
        check(true, 1, 1, |w, got| got.extend(w.pop().map(|n| n.0)));
    }

    #[test]
    fn loom_deque_owner_pops_race_a_batch_steal() {
        check(true, 3, 3, |w, got| {
            got.extend(w.pop().map(|n| n.0));
            got.extend(w.pop().map(|n| n.0));
        });
    }

    #[test]
    fn loom_deque_shown_hidden_job_races_the_owners_pops() {
        // A job shown while a thief looks: taken once, by the thief or by
        // the owner's pops (a hidden one first, with no fence).
        check(true, 1, 3, |w, got| {
            w.push_hidden(N(1));
            w.push_hidden(N(2));
            w.show_oldest();
            got.extend(w.pop().map(|n| n.0));
            got.extend(w.pop().map(|n| n.0));
        });
    }

    #[test]
    fn loom_deque_newest_look_then_pop_races_a_steal() {
        // A wait's first step (`WorkerThread::run_if_newest`): the owner
        // looks at its newest job, then pops; the pop gives that job, or
        // nothing if the thief took it as the last one.
        check(true, 1, 1, |w, got| {
            if w.is_newest(&N(0)) {
                if let Some(n) = w.pop() {
                    assert_eq!(n, N(0), "the pop took another job");
                    got.push(n.0);
                }
            }
        });
    }

    #[test]
    fn loom_deque_batch_into_a_vector_races_a_batch_steal() {
        // A lane's owner takes its jobs back (`steal_batch_into`) while a
        // worker steals from the lane, which grows meanwhile.
        check(false, 2, 3, |w, got| {
            w.push(N(2));
            let mut out = Vec::new();
            while let Steal::Success(()) | Steal::Retry = w.stealer().steal_batch_into(&mut out) {}
            got.extend(out.iter().map(|n| n.0));
        });
    }

    #[test]
    fn loom_deque_growth_races_a_steal() {
        // The third push grows the two-slot buffer while a thief reads it.
        check(true, 2, 3, |w, _| w.push(N(2)));
    }

    #[test]
    fn loom_deque_push_only_growth_races_a_batch_steal() {
        check(false, 2, 4, |w, _| {
            w.push(N(2));
            w.push(N(3));
        });
    }
}
