//! The benchmark's Rust fork-join kernels: fib(n) through `wsrt::join`,
//! `rayon::join`, and the heartbeat-scheduled joins of chili
//! (`Scope::join`) and forte (`Worker::join`), sequential below a cutoff
//! (2: a fork per node).
//!
//! They are compiled twice. As a dependency of `wsrt-bench`, with the
//! workspace's release profile (fat LTO across wsrt, rayon and chili). And
//! in the `downstream_bench` program (`src/main.rs`), with the workspace's
//! `downstream` profile: cargo's default release profile, so wsrt is an
//! ordinary dependency compiled without LTO, as a user's crate gets it.

/// fib(n), sequentially. Not inlined, so that every system calls the same
/// code below its cutoff.
#[inline(never)]
pub fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

/// Forks (joins) of fib(n) when n < cutoff runs sequentially.
pub fn fib_nodes(n: u64, cutoff: u64) -> u64 {
    let (mut a, mut b) = (0u64, 0u64); // nodes(k-2), nodes(k-1)
    for k in 0..=n {
        let c = if k < cutoff { 0 } else { 1 + a + b };
        (a, b) = (b, c);
    }
    b
}

/// fib(n) with `wsrt::join`; call it on a worker of the runtime to use.
pub fn fib_wsrt(n: u64, cutoff: u64) -> u64 {
    if n < cutoff {
        return fib_seq(n);
    }
    let (a, b) = wsrt::join(|| fib_wsrt(n - 1, cutoff), || fib_wsrt(n - 2, cutoff));
    a + b
}

/// fib(n) with `rayon::join`; call it inside the pool to use.
pub fn fib_rayon(n: u64, cutoff: u64) -> u64 {
    if n < cutoff {
        return fib_seq(n);
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1, cutoff), || fib_rayon(n - 2, cutoff));
    a + b
}

/// fib(n) with chili's `Scope::join` (a fork is a plain push; work becomes
/// stealable at the pool's heartbeat).
pub fn fib_chili(n: u64, cutoff: u64, s: &mut chili::Scope<'_>) -> u64 {
    if n < cutoff {
        return fib_seq(n);
    }
    let (a, b) = s.join(
        |s| fib_chili(n - 1, cutoff, s),
        |s| fib_chili(n - 2, cutoff, s),
    );
    a + b
}

/// fib(n) with forte's `Worker::join` (heartbeat scheduling behind
/// rayon-core's API).
pub fn fib_forte(n: u64, cutoff: u64, w: &forte::Worker) -> u64 {
    if n < cutoff {
        return fib_seq(n);
    }
    let (a, b) = w.join(
        |w| fib_forte(n - 1, cutoff, w),
        |w| fib_forte(n - 2, cutoff, w),
    );
    a + b
}

/// forte's pools are statics. A thread that calls `FORTE.with_worker`
/// works as one of them (forte's model): with `threads` workers in all,
/// the pool gets `threads - 1` threads of its own.
pub static FORTE: forte::ThreadPool = forte::ThreadPool::new();

/// Sizes [`FORTE`] for `threads` workers, the calling thread included.
pub fn forte_pool(threads: usize) -> &'static forte::ThreadPool {
    FORTE.resize_to(threads.max(1) - 1);
    &FORTE
}

/// A chili pool of `threads` threads, with chili's default heartbeat.
pub fn chili_pool(threads: usize) -> chili::ThreadPool {
    chili::ThreadPool::with_config(chili::Config {
        thread_count: std::num::NonZeroUsize::new(threads.max(1)),
        ..chili::Config::default()
    })
}
