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
//! `dlopen`ed (from Python, or as a plugin) like any other library.

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
/// `ptr` came from [`alloc`].
#[cfg(all(feature = "mimalloc", not(loom)))]
unsafe fn dealloc(ptr: *mut u8, _layout: Layout) {
    // SAFETY: `mi_free` takes any pointer from either `mi_malloc` function.
    unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
}

#[cfg(not(all(feature = "mimalloc", not(loom))))]
use std::alloc::{alloc, dealloc};

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
