//! A worker's table of the tasks it spawned (its shard of the task list,
//! `mod.rs`), which the worker lists and unlists without a lock.
//!
//! A task's address sits in a *slot*; slots come in chunks that never move
//! (chunk `k` holds `FIRST_CHUNK << k` of them), so a slot's address is
//! its name, for as long as the table lives. A slot holds 0 (never used),
//! an odd value (free: the address of the next free slot, `| 1`), or a
//! task's address (even, non-zero).
//!
//! Three kinds of users:
//! - **the owner** (the worker): lists a task in a slot from its own free
//!   slots, and unlists the tasks it ran to their end into them, with plain
//!   loads and stores;
//! - **other threads** unlisting a task of this table (a task stolen and
//!   finished elsewhere, cancelled from outside, or a worker's batch of
//!   finished tasks): they hold the shard's lock, and give the slot back
//!   through `remote`, a stack the owner empties at once when its own free
//!   slots run out;
//! - **walkers** (`all_tasks`, shutdown), holding the shard's lock too,
//!   which read every slot and take a reference to each listed task.
//!
//! The lock keeps walkers and the other threads apart. What keeps a walker
//! from a task the owner unlists and then frees is the `walking` flag, a
//! store-then-load on each side with a full fence between (Dekker's): the
//! owner frees the slot, then (later: [`Table::wait_for_walkers`], once
//! for a batch of removals) fences and reads `walking`; the walker sets
//! `walking`, fences, then reads the slots. One of them sees the other's
//! store: either the walker finds the slot free, or the owner finds a walk
//! going on and waits for it to end. The owner drops the references of the
//! tasks it removed only after that, so its fence is paid once per batch,
//! not per task, and needs no help from the kernel.

use std::cell::UnsafeCell;

use crossbeam_utils::CachePadded;

use crate::sync::loom::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Slots in the first chunk (in the loom models, two: a third task opens a
/// second chunk).
#[cfg(not(loom))]
const FIRST_CHUNK: usize = 64;
#[cfg(loom)]
const FIRST_CHUNK: usize = 2;

/// Chunks at most: `FIRST_CHUNK << 40` slots in the last one.
const CHUNKS: usize = 40;

pub(crate) struct Table {
    owned: CachePadded<Owned>,
    /// Free slots given back by other threads (a chain through the slots,
    /// 0 if none); pushed under the shard's lock, emptied by the owner.
    remote: CachePadded<AtomicUsize>,
}

struct Owned {
    /// Chunk `k`, null until the owner opens it.
    chunks: [AtomicPtr<AtomicUsize>; CHUNKS],
    /// Set by a walker for the length of its walk (module docs).
    walking: AtomicBool,
    /// Touched by the owner only.
    owner: UnsafeCell<OwnerSide>,
}

struct OwnerSide {
    /// The owner's first free slot, 0 if none.
    free: usize,
    /// The next slot never used: chunk and index in it.
    chunk: usize,
    index: usize,
}

// SAFETY: `owner` is touched only by the owner (the callers of the
// `unsafe fn`s promise it); everything else is atomic.
unsafe impl Sync for Table {}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            owned: CachePadded::new(Owned {
                chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
                walking: AtomicBool::new(false),
                owner: UnsafeCell::new(OwnerSide {
                    free: 0,
                    chunk: 0,
                    index: 0,
                }),
            }),
            remote: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Lists `value` (even, non-zero) and returns its slot's address,
    /// which `before` gets first, before a walker can see `value`.
    ///
    /// # Safety
    /// Called by the owner only.
    #[inline]
    pub(crate) unsafe fn insert(&self, value: usize, before: impl FnOnce(usize)) -> usize {
        debug_assert!(value != 0 && value & 1 == 0);
        // SAFETY: the owner's side is the caller's alone.
        let owner = unsafe { &mut *self.owned.owner.get() };
        if owner.free == 0 {
            self.refill(owner);
        }
        let slot = owner.free;
        // SAFETY: free slots are this table's (`refill`, `remove_*`).
        let s = unsafe { slot_at(slot) };
        // The owner wrote this free slot, or took it from `remote` with
        // `Acquire` after the writer's `Release`: `Relaxed` reads it.
        owner.free = s.load(Ordering::Relaxed) & !1;
        before(slot);
        // Release: a walker that reads the address (`Acquire`) sees the
        // task as it was written before it was listed, `before`'s writes
        // too (a walker may cancel the task, which unlists it).
        s.store(value, Ordering::Release);
        slot
    }

    /// The owner's free slots ran out: those given back by other threads,
    /// else a slot never used.
    #[cold]
    #[inline(never)]
    fn refill(&self, owner: &mut OwnerSide) {
        // A plain look first: the swap is a read-modify-write.
        if self.remote.load(Ordering::Relaxed) != 0 {
            // Acquire: pairs with the `Release` of the pushes, whose slot
            // writes (the chain) we follow.
            owner.free = self.remote.swap(0, Ordering::Acquire);
            if owner.free != 0 {
                return;
            }
        }
        let size = FIRST_CHUNK << owner.chunk;
        if owner.index == size {
            owner.chunk += 1;
            owner.index = 0;
        }
        assert!(owner.chunk < CHUNKS, "task table full");
        let chunk = &self.owned.chunks[owner.chunk];
        let mut base = chunk.load(Ordering::Relaxed);
        if base.is_null() {
            let slots: Box<[AtomicUsize]> = (0..FIRST_CHUNK << owner.chunk)
                .map(|_| AtomicUsize::new(0))
                .collect();
            base = Box::into_raw(slots).cast::<AtomicUsize>();
            // Release: a walker that sees the chunk sees its zeroed slots.
            chunk.store(base, Ordering::Release);
        }
        // SAFETY: `index` < the chunk's length.
        let slot = unsafe { base.add(owner.index) };
        owner.index += 1;
        // A fresh slot holds 0, which reads as "no next free slot".
        owner.free = slot as usize;
    }

    /// Unlists the task in `slot`, which the owner ran to its end. A
    /// walker may still reach the task until the owner's next
    /// [`wait_for_walkers`](Self::wait_for_walkers): the caller keeps the
    /// reference that keeps the task alive until then.
    ///
    /// # Safety
    /// Called by the owner only, with a slot `insert` returned and not
    /// freed since.
    #[inline]
    pub(crate) unsafe fn remove_own(&self, slot: usize) {
        // SAFETY: the owner's side is the caller's alone.
        let owner = unsafe { &mut *self.owned.owner.get() };
        // SAFETY: a slot of this table (the caller's promise).
        unsafe { slot_at(slot) }.store(owner.free | 1, Ordering::Relaxed);
        owner.free = slot;
    }

    /// When this returns, no walker can reach a task the owner removed
    /// with [`remove_own`](Self::remove_own) before the call: the owner may
    /// drop the references that kept them alive.
    ///
    /// # Safety
    /// Called by the owner only.
    pub(crate) unsafe fn wait_for_walkers(&self) {
        // Dekker's store-then-load (module docs): the slots' stores of
        // `remove_own` are ordered before the load of `walking`.
        fence(Ordering::SeqCst);
        // Acquire: a `false` read may be a walk's end (`Release`), and
        // what that walker did with the tasks must come before our drops.
        if self.owned.walking.load(Ordering::Acquire) {
            self.wait_for_walker();
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_for_walker(&self) {
        #[cfg(not(all(test, loom)))]
        let backoff = crossbeam_utils::Backoff::new();
        // Acquire: pairs with the walker's `Release` when it is done, so
        // the references it took are counted before ours is dropped.
        while self.owned.walking.load(Ordering::Acquire) {
            #[cfg(all(test, loom))]
            loom::thread::yield_now();
            #[cfg(not(all(test, loom)))]
            backoff.snooze();
        }
    }

    /// Unlists the task in `slot` from another thread than the owner
    /// (or from the owner, the slow way).
    ///
    /// # Safety
    /// The caller holds the shard's lock (which walkers take too), and
    /// `slot` is a slot `insert` returned and not freed since.
    pub(crate) unsafe fn remove_remote(&self, slot: usize) {
        // SAFETY: a slot of this table (the caller's promise).
        let s = unsafe { slot_at(slot) };
        let mut head = self.remote.load(Ordering::Relaxed);
        loop {
            s.store(head | 1, Ordering::Relaxed);
            // Release: the owner that takes the chain reads the link above.
            // Pushes are serialized by the lock and the owner only takes
            // the whole stack, so a head seen again is the same chain (no
            // ABA).
            match self.remote.compare_exchange_weak(
                head,
                slot,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Calls `f` with every listed value. Each stays listed (and so its
    /// task alive) until `f` returns, or the walk ends, whichever is later.
    ///
    /// # Safety
    /// The caller holds the shard's lock.
    pub(crate) unsafe fn walk(&self, mut f: impl FnMut(usize)) {
        let owned = &*self.owned;
        owned.walking.store(true, Ordering::Relaxed);
        // Dekker's store-then-load, the walker's side (module docs).
        fence(Ordering::SeqCst);
        for (k, chunk) in owned.chunks.iter().enumerate() {
            // Acquire: pairs with `refill`'s `Release`.
            let base = chunk.load(Ordering::Acquire);
            if base.is_null() {
                break;
            }
            // SAFETY: an open chunk holds `FIRST_CHUNK << k` slots and
            // lives as long as the table.
            let slots = unsafe { std::slice::from_raw_parts(base, FIRST_CHUNK << k) };
            for s in slots {
                // Acquire: pairs with `insert`'s `Release`.
                let value = s.load(Ordering::Acquire);
                if value != 0 && value & 1 == 0 {
                    f(value);
                }
            }
        }
        // Release: the owner waiting in `wait_for_walkers` sees what `f` did.
        owned.walking.store(false, Ordering::Release);
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for (k, chunk) in self.owned.chunks.iter().enumerate() {
            let base = chunk.load(Ordering::Relaxed);
            if base.is_null() {
                break;
            }
            let slots = std::ptr::slice_from_raw_parts_mut(base, FIRST_CHUNK << k);
            // SAFETY: `refill` made it from a boxed slice of this length.
            drop(unsafe { Box::from_raw(slots) });
        }
    }
}

/// The slot at address `slot`.
///
/// # Safety
/// `slot` is the address of a slot of a table that outlives `'a`.
unsafe fn slot_at<'a>(slot: usize) -> &'a AtomicUsize {
    debug_assert!(slot != 0 && slot % std::mem::align_of::<AtomicUsize>() == 0);
    // SAFETY: the caller's promise; chunks never move.
    unsafe { &*(slot as *const AtomicUsize) }
}

#[cfg(test)]
mod tests {
    //! The unit tests run the table on one thread; the loom models (under
    //! `cfg(loom)`) race a walker against the owner's unlisting.

    use super::*;

    // The table's calls, for tests whose thread is the owner (or, for
    // `remove_remote`, the only thread unlisting remotely, which stands
    // for the lock) and that free each slot once.
    fn insert(t: &Table, value: usize) -> usize {
        // SAFETY: see above.
        unsafe { t.insert(value, |_| {}) }
    }
    fn remove_own(t: &Table, slot: usize) {
        // SAFETY: see above.
        unsafe { t.remove_own(slot) }
    }
    fn remove_remote(t: &Table, slot: usize) {
        // SAFETY: see above.
        unsafe { t.remove_remote(slot) }
    }
    #[cfg(loom)]
    fn wait_for_walkers(t: &Table) {
        // SAFETY: see above.
        unsafe { t.wait_for_walkers() }
    }
    fn walk(t: &Table, f: impl FnMut(usize)) {
        // SAFETY: the only walker, and no remote unlisting meanwhile.
        unsafe { t.walk(f) }
    }

    /// Every value listed, sorted.
    fn listed(t: &Table) -> Vec<usize> {
        let mut v = Vec::new();
        walk(t, |x| v.push(x));
        v.sort_unstable();
        v
    }

    #[cfg(not(loom))]
    #[test]
    fn a_walk_sees_exactly_what_is_listed_across_chunks() {
        let t = Table::new();
        let n = FIRST_CHUNK * 3 + 5; // into the third chunk
        let slots: Vec<usize> = (1..=n).map(|i| insert(&t, 2 * i)).collect();
        assert_eq!(listed(&t), (1..=n).map(|i| 2 * i).collect::<Vec<_>>());
        for (i, &slot) in slots.iter().enumerate() {
            match i % 3 {
                0 => remove_own(&t, slot),
                1 => remove_remote(&t, slot),
                _ => {}
            }
        }
        let left: Vec<usize> = (1..=n)
            .filter(|i| (i - 1) % 3 == 2)
            .map(|i| 2 * i)
            .collect();
        assert_eq!(listed(&t), left);
    }

    #[cfg(not(loom))]
    #[test]
    fn freed_slots_are_reused_own_ones_first_then_the_remote_ones() {
        let t = Table::new();
        let [a, b, c, d] = [2, 4, 6, 8].map(|v| insert(&t, v));
        remove_remote(&t, a);
        remove_remote(&t, b);
        remove_own(&t, c);
        remove_own(&t, d);
        // The owner's own, last freed first; then the remote ones, last
        // given back first; then a slot never used.
        let again: Vec<usize> = (5..10).map(|i| insert(&t, 2 * i)).collect();
        assert_eq!(again[..4], [d, c, b, a]);
        assert!(![a, b, c, d].contains(&again[4]));
        assert_eq!(listed(&t), vec![10, 12, 14, 16, 18]);
    }

    #[cfg(loom)]
    mod loom_models {
        use super::*;
        use crate::sync::loom::model;
        use loom::sync::Arc;
        use loom::thread;

        /// Two tasks, as values 2 and 4; "freeing" one writes its cell,
        /// and the walker reads the cell of each value it sees: loom fails
        /// the model if a read is not ordered before the write (it does
        /// with either side's fence removed, or the owner's look at
        /// `walking` made `Relaxed`). The owner unlists both, then waits
        /// for walkers once, then frees both: its batch.
        #[test]
        fn loom_table_walk_races_the_owner_unlisting_and_freeing() {
            model(|| {
                let table = Arc::new(Table::new());
                let cells = Arc::new([0u32, 0].map(loom::cell::UnsafeCell::new));
                let first = insert(&table, 2);
                let walker = {
                    let (table, cells) = (table.clone(), cells.clone());
                    thread::spawn(move || {
                        walk(&table, |v| {
                            assert!(v == 2 || v == 4);
                            cells[v / 2 - 1].with(|p| {
                                // SAFETY: loom checks this read against the
                                // owner's write.
                                assert_eq!(unsafe { *p }, 0)
                            });
                        })
                    })
                };
                let second = insert(&table, 4);
                remove_own(&table, first);
                remove_own(&table, second);
                wait_for_walkers(&table);
                for cell in cells.iter() {
                    // SAFETY: as above.
                    cell.with_mut(|p| unsafe { *p = 1 });
                }
                walker.join().unwrap();
            });
        }

        /// Another thread gives a slot back while the owner, out of free
        /// slots, takes what was given back: no slot is handed out twice.
        #[test]
        fn loom_table_remote_unlisting_races_the_owner_refilling() {
            model(|| {
                let table = Arc::new(Table::new());
                // The chunk (two slots here) is full.
                let (a, b) = (insert(&table, 2), insert(&table, 4));
                let remote = {
                    let table = table.clone();
                    thread::spawn(move || remove_remote(&table, a))
                };
                // Takes `a` if given back already, else a fresh slot.
                let c = insert(&table, 6);
                remote.join().unwrap();
                let d = insert(&table, 8);
                assert!(c != b && d != b && c != d);
                assert!(c == a || d == a);
                assert_eq!(listed(&table), vec![4, 6, 8]);
            });
        }
    }
}
