//! Where task memory comes from: task cells and callback lists.
//!
//! With the `mimalloc` feature (on by default) they come from mimalloc,
//! called directly: the process's global allocator is left alone. A task is
//! typically allocated on one thread and freed on another (spawned from
//! outside, finished by a worker); mimalloc batches such remote frees per
//! page where glibc's malloc pays for them on both sides. Without the
//! feature they come from the global allocator, which is what ASan and
//! valgrind track (`.ci/run` runs them that way). mimalloc is built with
//! local-dynamic TLS so that `libwsrt.so` can be `dlopen`ed.
//!
//! # Workers free in batches
//!
//! Tasks spawned from one thread sit side by side in the same mimalloc
//! pages; two workers freeing them one at a time would push onto the same
//! page's remote-free list at once, bouncing its cache line. So a worker
//! keeps up to `BATCH` cells it freed itself in its [`FreeBatch`] and
//! frees them together when the batch is full, before it sleeps and when
//! it exits. Every other free happens at once.

use std::alloc::{handle_alloc_error, Layout};
use std::ptr::NonNull;

/// A worker's mimalloc heap (v3's thread-local "theap"), found once when
/// the worker's thread starts (`WorkerThread::run`). Allocating through it
/// skips mimalloc's own thread-local look-up, which in `libwsrt.so` is a
/// call to `__tls_get_addr` at every spawn (mimalloc offers the call for
/// "runtimes that already have a thread-local context"). Only workers keep
/// one: a worker runs tasks only inside `run`, while its thread and so its
/// heap are alive, whereas another thread may still spawn from a
/// destructor after mimalloc let go of its heap.
#[derive(Clone, Copy)]
pub(crate) struct Heap {
    #[cfg(all(feature = "mimalloc", not(loom)))]
    theap: NonNull<std::ffi::c_void>,
}

// mimalloc v3's thread-local heap calls (`mimalloc.h`), compiled into the
// library libmimalloc-sys links, which does not declare these two.
#[cfg(all(feature = "mimalloc", not(loom)))]
extern "C" {
    fn mi_theap_get_default() -> *mut std::ffi::c_void;
    fn mi_theap_malloc(theap: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void;
}

impl Heap {
    /// The calling thread's heap; `None` without mimalloc.
    pub(crate) fn this_thread() -> Option<Heap> {
        #[cfg(all(feature = "mimalloc", not(loom)))]
        {
            // SAFETY: no preconditions; it returns the thread's default
            // heap, made on first use.
            let theap = unsafe { mi_theap_get_default() };
            NonNull::new(theap).map(|theap| Heap { theap })
        }
        #[cfg(not(all(feature = "mimalloc", not(loom))))]
        None
    }
}

/// # Safety
/// `layout` has a non-zero size; `heap` is the calling thread's.
#[cfg(all(feature = "mimalloc", not(loom)))]
unsafe fn alloc(layout: Layout, heap: Option<Heap>) -> *mut u8 {
    use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
    // `mi_malloc` returns pointer-aligned memory (at least) and skips the
    // aligned path's extra work, which showed in the profiles.
    // SAFETY: plain C allocation calls; a null result is handled by
    // `boxed_in`; the heap is this thread's (caller's duty).
    unsafe {
        if layout.align() > std::mem::align_of::<usize>() {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        } else if let Some(heap) = heap {
            mi_theap_malloc(heap.theap.as_ptr(), layout.size()).cast()
        } else {
            mi_malloc(layout.size()).cast()
        }
    }
}

/// # Safety
/// `layout` has a non-zero size.
#[cfg(not(all(feature = "mimalloc", not(loom))))]
unsafe fn alloc(layout: Layout, _heap: Option<Heap>) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { std::alloc::alloc(layout) }
}

/// # Safety
/// `ptr` came from [`alloc`] and is not used again.
#[cfg(all(feature = "mimalloc", not(loom)))]
unsafe fn dealloc(ptr: *mut u8, _layout: Layout) {
    // SAFETY: `mi_free` takes any pointer from either `mi_malloc` function.
    unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
}

#[cfg(not(all(feature = "mimalloc", not(loom))))]
use std::alloc::dealloc;

/// How many freed cells a worker keeps before it frees them.
#[cfg(all(feature = "mimalloc", not(loom)))]
const BATCH: usize = 64;

/// The cells a worker freed and has not yet given back (module docs).
/// Without the `mimalloc` feature it keeps nothing, so that ASan and
/// valgrind see every free at once.
pub(crate) struct FreeBatch {
    #[cfg(all(feature = "mimalloc", not(loom)))]
    len: std::cell::Cell<usize>,
    #[cfg(all(feature = "mimalloc", not(loom)))]
    cells: [std::cell::Cell<*mut u8>; BATCH],
}

// SAFETY: the cells are freed memory that nobody else uses, and mimalloc
// frees a block from any thread; a batch is only moved (to its worker's
// thread when that starts), never shared (`Cell` keeps it `!Sync`).
unsafe impl Send for FreeBatch {}

impl FreeBatch {
    pub(crate) fn new() -> FreeBatch {
        FreeBatch {
            #[cfg(all(feature = "mimalloc", not(loom)))]
            len: std::cell::Cell::new(0),
            #[cfg(all(feature = "mimalloc", not(loom)))]
            cells: [const { std::cell::Cell::new(std::ptr::null_mut()) }; BATCH],
        }
    }

    /// Frees `cell` now or later, in a batch (and the batch once full).
    ///
    /// # Safety
    /// As for [`dealloc`]: `cell` came from [`alloc`] with `layout`, and is
    /// not used again.
    unsafe fn dealloc(&self, cell: *mut u8, layout: Layout) {
        #[cfg(all(feature = "mimalloc", not(loom)))]
        {
            let _ = layout;
            let len = self.len.get();
            self.cells[len].set(cell);
            self.len.set(len + 1);
            if len + 1 == BATCH {
                self.flush();
            }
        }
        #[cfg(not(all(feature = "mimalloc", not(loom))))]
        // SAFETY: forwarded.
        unsafe {
            dealloc(cell, layout)
        };
    }

    /// Frees every cell kept (a worker about to sleep, or exiting).
    pub(crate) fn flush(&self) {
        #[cfg(all(feature = "mimalloc", not(loom)))]
        {
            for cell in &self.cells[..self.len.get()] {
                // SAFETY: `dealloc` only keeps cells from `alloc` that their
                // owner gave up, each once.
                unsafe { libmimalloc_sys::mi_free(cell.get().cast()) };
            }
            self.len.set(0);
        }
    }

    /// How many cells are kept.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn held(&self) -> usize {
        #[cfg(feature = "mimalloc")]
        return self.len.get();
        #[cfg(not(feature = "mimalloc"))]
        0
    }
}

impl Drop for FreeBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Puts the value `make` returns on the heap. `T` is never zero-sized here
/// (task cells and callback lists have fields); the compiler checks it.
///
/// The value is made after the memory is taken, so that it is written in
/// place rather than built on the stack and copied (a copy's wide loads of
/// narrow stores still in the store buffer stall).
#[inline(always)]
pub(crate) fn boxed<T>(make: impl FnOnce() -> T) -> NonNull<T> {
    boxed_in(None, make)
}

/// [`boxed`], from `heap` if given (a worker's, on its own thread).
#[inline(always)]
pub(crate) fn boxed_in<T>(heap: Option<Heap>, make: impl FnOnce() -> T) -> NonNull<T> {
    const { assert!(std::mem::size_of::<T>() > 0) };
    let layout = Layout::new::<T>();
    // SAFETY: the layout has a non-zero size (checked above); a heap given
    // is the calling worker's (`Heap`).
    let ptr = unsafe { alloc(layout, heap) }.cast::<T>();
    let Some(ptr) = NonNull::new(ptr) else {
        handle_alloc_error(layout)
    };
    // SAFETY: fresh memory of `T`'s layout.
    unsafe { ptr.as_ptr().write(make()) };
    ptr
}

/// Drops the value in place and frees its memory.
///
/// # Safety
/// `ptr` came from [`boxed::<T>`] and is not used again.
pub(crate) unsafe fn free<T>(ptr: NonNull<T>) {
    // SAFETY: forwarded.
    unsafe { free_in(ptr, None) }
}

/// [`free`], into `batch` if given (module docs).
///
/// # Safety
/// As for [`free`].
pub(crate) unsafe fn free_in<T>(ptr: NonNull<T>, batch: Option<&FreeBatch>) {
    /// Frees even if the destructor unwinds.
    struct Dealloc<'a>(*mut u8, Layout, Option<&'a FreeBatch>);
    impl Drop for Dealloc<'_> {
        fn drop(&mut self) {
            // SAFETY: allocated by `boxed` with this layout (caller's duty).
            unsafe {
                match self.2 {
                    Some(batch) => batch.dealloc(self.0, self.1),
                    None => dealloc(self.0, self.1),
                }
            }
        }
    }
    let _dealloc = Dealloc(ptr.as_ptr().cast(), Layout::new::<T>(), batch);
    // SAFETY: the value is live and never used again (caller's duty).
    unsafe { std::ptr::drop_in_place(ptr.as_ptr()) };
}
