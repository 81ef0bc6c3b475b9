//! Where task memory comes from: task cells and callback lists.
//!
//! With the `mimalloc` feature (on by default) they come from mimalloc,
//! called directly: the process's global allocator is left alone. A task is
//! typically allocated on one thread and freed on another (spawned from
//! outside, finished by a worker); glibc's malloc pays for that on both
//! sides, mimalloc batches remote frees per page. Measured with
//! `cargo run --release [--no-default-features] --example bench`, two
//! alternating runs each (medians of 5 per run, before the release profile
//! had LTO), without → with:
//! spawn_wait Rust 302–320 → 252–255 ns, C 339–354 → 190–193 ns; detached
//! Rust 327–364 → 246–249 ns, C 371–410 → 236–253 ns; nested Rust 127–141 →
//! 100–106 ns; callbacks Rust 571–574 → 433–471 ns; cancel unchanged
//! (a million fresh cells cost page faults either way); memory 112 → 109
//! B/task.
//!
//! Without the feature they come from the global allocator (yours, if you
//! set one), which is what ASan and valgrind track: `.ci/run` runs them that
//! way, so a task freed too early or never is reported.
//!
//! mimalloc is built with local-dynamic TLS so that `libwsrt.so` can be
//! `dlopen`ed (from Python, or as a plugin) like any other library
//! (`ffi-tests/dlopen/`, also from a thread that existed before). Built
//! with initial-exec TLS instead, it measured no faster here.
//!
//! # Workers free in batches
//!
//! Tasks spawned from one thread are allocated one after another, in the
//! same mimalloc pages, and the workers finish them side by side: freed one
//! at a time, two workers push blocks of the same page onto that page's
//! remote-free list at once, and its cache line travels between their CPUs
//! at every free. So a worker thread (between [`batch_frees`] and the drop
//! of its guard) keeps up to 64 freed cells and frees them together,
//! when the batch is full, before it sleeps ([`flush_frees`]) and when it
//! exits; back to back, the frees of one page find its line in the CPU's
//! cache. Other threads free at once. Measured through the C ABI
//! (`target/peers/wsrt_bench W 1 7 ...`, per-process medians of 7 runs,
//! 4 processes each, old and new library alternating): detached 226–241 →
//! 210–217 ns; nested, fib, spawn_wait and callbacks unchanged.

use std::alloc::{handle_alloc_error, Layout};
use std::ptr::NonNull;

/// # Safety
/// `layout` has a non-zero size.
#[cfg(all(feature = "mimalloc", not(loom)))]
unsafe fn alloc(layout: Layout) -> *mut u8 {
    use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
    // `mi_malloc` returns pointer-aligned memory (at least) and skips the
    // aligned path's extra work, which showed in the profiles.
    // SAFETY: plain C allocation calls; a null result is handled by `boxed`.
    unsafe {
        if layout.align() <= std::mem::align_of::<usize>() {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }
}

/// # Safety
/// `ptr` came from [`alloc`] and is not used again.
#[cfg(all(feature = "mimalloc", not(loom)))]
unsafe fn dealloc(ptr: *mut u8, _layout: Layout) {
    if !batch::defer(ptr) {
        // SAFETY: `mi_free` takes any pointer from either `mi_malloc` function.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }
}

/// The frees a worker thread defers (module docs).
#[cfg(all(feature = "mimalloc", not(loom)))]
mod batch {
    use std::cell::Cell;
    use std::ptr;

    /// How many freed cells a worker keeps before it frees them.
    const BATCH: usize = 64;

    struct Batch {
        on: Cell<bool>,
        len: Cell<usize>,
        cells: [Cell<*mut u8>; BATCH],
    }

    thread_local! {
        // No destructor: reachable until the thread is gone, and what is
        // left at exit is freed by the worker's guard.
        static BATCH_OF_THREAD: Batch = const {
            Batch {
                on: Cell::new(false),
                len: Cell::new(0),
                cells: [const { Cell::new(ptr::null_mut()) }; BATCH],
            }
        };
    }

    /// Keeps `cell` to free later if this thread batches its frees (and
    /// frees the batch once full). False: free it now.
    pub(super) fn defer(cell: *mut u8) -> bool {
        BATCH_OF_THREAD.with(|b| {
            if !b.on.get() {
                return false;
            }
            let len = b.len.get();
            b.cells[len].set(cell);
            b.len.set(len + 1);
            if len + 1 == BATCH {
                free_all(b);
            }
            true
        })
    }

    pub(super) fn set_on(on: bool) {
        BATCH_OF_THREAD.with(|b| {
            free_all(b);
            b.on.set(on);
        });
    }

    pub(super) fn flush() {
        BATCH_OF_THREAD.with(free_all);
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn held() -> usize {
        BATCH_OF_THREAD.with(|b| b.len.get())
    }

    fn free_all(b: &Batch) {
        for cell in &b.cells[..b.len.get()] {
            // SAFETY: `defer` only keeps cells from `alloc` that their owner
            // gave up (`dealloc`'s contract), each once.
            unsafe { libmimalloc_sys::mi_free(cell.get().cast()) };
        }
        b.len.set(0);
    }
}

#[cfg(not(all(feature = "mimalloc", not(loom))))]
mod batch {
    pub(super) fn set_on(_: bool) {}
    pub(super) fn flush() {}
    #[cfg(all(test, not(loom)))]
    pub(super) fn held() -> usize {
        0
    }
}

#[cfg(not(all(feature = "mimalloc", not(loom))))]
use std::alloc::{alloc, dealloc};

/// Makes this thread free in batches (module docs) until the guard drops,
/// which frees what is left. Worker threads hold one while they run.
/// Without the `mimalloc` feature frees are never deferred, so that ASan
/// and valgrind see each at once.
pub(crate) fn batch_frees() -> BatchGuard {
    batch::set_on(true);
    BatchGuard(())
}

pub(crate) struct BatchGuard(());

impl Drop for BatchGuard {
    fn drop(&mut self) {
        batch::set_on(false);
    }
}

/// Frees the cells this thread deferred (a worker about to sleep).
pub(crate) fn flush_frees() {
    batch::flush();
}

/// Moves `value` to the heap. `T` is never zero-sized here (task cells and
/// callback lists have fields); the compiler checks it.
pub(crate) fn boxed<T>(value: T) -> NonNull<T> {
    const { assert!(std::mem::size_of::<T>() > 0) };
    let layout = Layout::new::<T>();
    // SAFETY: the layout has a non-zero size (checked above).
    let ptr = unsafe { alloc(layout) }.cast::<T>();
    let Some(ptr) = NonNull::new(ptr) else {
        handle_alloc_error(layout)
    };
    // SAFETY: fresh memory of `T`'s layout.
    unsafe { ptr.as_ptr().write(value) };
    ptr
}

/// Drops the value in place and frees its memory.
///
/// # Safety
/// `ptr` came from [`boxed::<T>`] and is not used again.
pub(crate) unsafe fn free<T>(ptr: NonNull<T>) {
    /// Frees even if the destructor unwinds.
    struct Dealloc(*mut u8, Layout);
    impl Drop for Dealloc {
        fn drop(&mut self) {
            // SAFETY: allocated by `boxed` with this layout (caller's duty).
            unsafe { dealloc(self.0, self.1) };
        }
    }
    let _dealloc = Dealloc(ptr.as_ptr().cast(), Layout::new::<T>());
    // SAFETY: the value is live and never used again (caller's duty).
    unsafe { std::ptr::drop_in_place(ptr.as_ptr()) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::batch;
    use crate::Runtime;

    const BATCHING: bool = cfg!(feature = "mimalloc");

    #[test]
    fn a_worker_keeps_its_frees_until_it_sleeps() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let kept = rt.spawn(|| {
            let before = batch::held();
            // Children on this worker's deque, run by the helping joins here;
            // each join drops the last reference: ten frees on this worker.
            let children: Vec<_> = (0..10).map(|_| crate::spawn(|| 7)).collect();
            for child in children {
                assert_eq!(child.join(), Ok(7));
            }
            batch::held() - before
        });
        assert_eq!(kept.join(), Ok(if BATCHING { 10 } else { 0 }));

        rt.handle().shared.sleep.wait_for_sleepers(1);
        // It freed them before it slept (and woke up for this task).
        assert_eq!(rt.spawn(batch::held).join(), Ok(0));
    }
}
