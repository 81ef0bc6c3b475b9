//! The Rust systems of `bench/src/main.rs`: wsrt through its Rust API,
//! rayon, chili, forte and tokio, each run in a process of its own
//! (`--child`). One
//! function per workload per system; each builds its own pool (one thread
//! per CPU), measures one run, drops the pool, and returns the run's
//! figures. The C and C++ systems are in bench/peers/.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

pub use wsrt_bench_kernels::fib_seq;
use wsrt_bench_kernels::{
    chili_pool, fib_chili, fib_forte, fib_nodes, fib_rayon, fib_wsrt, forte_pool,
};

use crate::harness::{cpu_seconds, now_ns, percentile, rss_bytes, wait_until, Sample};
use crate::Sizes;

// ---- shared pieces ----

/// What every tiny task does. The counters that tasks write from every
/// thread have their cache lines to themselves, as in `bench/peers/`
/// (`ALONE` in common.h).
static HITS: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

fn hit() {
    HITS.fetch_add(1, Relaxed);
}

fn hits() -> u64 {
    HITS.load(SeqCst)
}

fn reset() {
    HITS.store(0, SeqCst);
    DROPS.store(0, SeqCst);
    CALLBACKS.store(0, SeqCst);
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn wsrt_rt() -> wsrt::Runtime {
    wsrt_rt_of(cores())
}

fn wsrt_rt_of(workers: usize) -> wsrt::Runtime {
    wsrt::Runtime::builder()
        .workers(workers)
        .build()
        .expect("wsrt runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .build()
        .expect("tokio runtime")
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon_pool_of(cores())
}

fn rayon_pool_of(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// Keeps workers busy (each in a blocking wait) until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    started: AtomicUsize,
}

impl Gate {
    /// The body of a blocking task: returns once the gate opens.
    fn block(&self) {
        self.started.fetch_add(1, SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    /// Starts `workers` blockers with `spawn` and waits until all run,
    /// one at a time: spawned together, a worker may take two of them in
    /// one batch and block in the first with the second in its queue
    /// (seen with tokio: the memory child hung until the 120 s limit).
    fn occupy(self: &Arc<Self>, workers: usize, mut spawn: impl FnMut(Arc<Gate>)) {
        for i in 1..=workers {
            spawn(self.clone());
            wait_until(|| self.started.load(SeqCst) >= i);
        }
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Drops counted, as a C task's `arg_drop`.
static DROPS: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Relaxed);
    }
}

static CALLBACKS: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

// ---- spawn_wait: N tasks with handles from the main thread, then wait each ----

pub fn spawn_wait_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let start = Instant::now();
    let tasks: Vec<_> = (0..sz.tasks).map(|_| rt.spawn(hit)).collect();
    for t in tasks {
        t.join().expect("task");
    }
    Sample::timed(start.elapsed(), sz.tasks, hits() == sz.tasks)
}

pub fn spawn_wait_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    reset();
    let start = Instant::now();
    let tasks: Vec<_> = (0..sz.tasks).map(|_| rt.spawn(async { hit() })).collect();
    rt.block_on(async {
        for t in tasks {
            t.await.expect("task");
        }
    });
    Sample::timed(start.elapsed(), sz.tasks, hits() == sz.tasks)
}

// ---- detached: the same without handles; wait for the counter ----

pub fn detached_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let start = Instant::now();
    for _ in 0..sz.tasks {
        rt.spawn_detached(hit);
    }
    wait_until(|| hits() >= sz.tasks);
    Sample::timed(start.elapsed(), sz.tasks, true)
}

pub fn detached_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    reset();
    let start = Instant::now();
    pool.scope(|s| {
        for _ in 0..sz.tasks {
            s.spawn(|_| hit());
        }
    });
    Sample::timed(start.elapsed(), sz.tasks, hits() == sz.tasks)
}

// ---- fib and fib_cutoff: fork-join below `cutoff` runs sequentially ----

/// One fib run with `par` (no cutoff): ns per fork.
fn fib_run(n: u64, par: impl FnOnce(u64) -> u64) -> Sample {
    let start = Instant::now();
    let r = par(black_box(n));
    Sample::timed(start.elapsed(), fib_nodes(n, 2), r == fib_seq(n))
}

/// One fib_cutoff run: sequential then parallel, paired.
fn fib_cutoff_run(n: u64, par: impl FnOnce(u64) -> u64) -> Sample {
    let t0 = Instant::now();
    let s = fib_seq(black_box(n));
    let t1 = Instant::now();
    // As settle_after_seq() in bench/peers/common.h: without a pause, a
    // pool whose caller blocks often starts with both workers on one CPU.
    std::thread::sleep(Duration::from_millis(20));
    let t2 = Instant::now();
    let r = par(black_box(n));
    let t3 = Instant::now();
    Sample::new()
        .set("seq_ns", (t1 - t0).as_nanos() as f64)
        .set("par_ns", (t3 - t2).as_nanos() as f64)
        .set("ok", f64::from(u8::from(r == s)))
}

pub fn fib_wsrt_join(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    fib_run(sz.fib, |n| {
        rt.spawn(move || fib_wsrt(n, 2)).join().expect("fib")
    })
}

pub fn fib_rayon_join(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    fib_run(sz.fib, |n| pool.install(|| fib_rayon(n, 2)))
}

pub fn fib_chili_join(sz: &Sizes) -> Sample {
    let pool = chili_pool(cores());
    fib_run(sz.fib, |n| fib_chili(n, 2, &mut pool.scope()))
}

/// forte: the calling thread is one of the workers (`forte_pool`).
pub fn fib_forte_join(sz: &Sizes) -> Sample {
    let pool = forte_pool(cores());
    fib_run(sz.fib, |n| pool.with_worker(|w| fib_forte(n, 2, w)))
}

pub fn fib_cutoff_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    let (n, cutoff) = sz.fib_cutoff;
    fib_cutoff_run(n, |n| {
        rt.spawn(move || fib_wsrt(n, cutoff)).join().expect("fib")
    })
}

pub fn fib_cutoff_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    let (n, cutoff) = sz.fib_cutoff;
    fib_cutoff_run(n, |n| pool.install(|| fib_rayon(n, cutoff)))
}

// ---- oversubscribed: fib_cutoff with more workers than CPUs ----

pub fn oversubscribed_wsrt(sz: &Sizes) -> Sample {
    let (n, cutoff, workers) = sz.oversubscribed;
    let rt = wsrt_rt_of(workers as usize);
    fib_cutoff_run(n, |n| {
        rt.spawn(move || fib_wsrt(n, cutoff)).join().expect("fib")
    })
}

pub fn oversubscribed_rayon(sz: &Sizes) -> Sample {
    let (n, cutoff, workers) = sz.oversubscribed;
    let pool = rayon_pool_of(workers as usize);
    fib_cutoff_run(n, |n| pool.install(|| fib_rayon(n, cutoff)))
}

// ---- nested: a root task spawns children, each spawns leaves; every level waits ----

fn nested_sample(sz: &Sizes, start: Instant) -> Sample {
    let (children, leaves) = sz.nested;
    Sample::timed(
        start.elapsed(),
        1 + children + children * leaves,
        hits() == children * leaves,
    )
}

pub fn nested_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let (children, leaves) = sz.nested;
    let start = Instant::now();
    let root = rt.spawn(move || {
        let kids: Vec<_> = (0..children)
            .map(|_| {
                wsrt::spawn(move || {
                    let leaves: Vec<_> = (0..leaves).map(|_| wsrt::spawn(hit)).collect();
                    for t in leaves {
                        t.join().expect("leaf");
                    }
                })
            })
            .collect();
        for t in kids {
            t.join().expect("child");
        }
    });
    root.join().expect("root");
    nested_sample(sz, start)
}

pub fn nested_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    reset();
    let (children, leaves) = sz.nested;
    let start = Instant::now();
    let root = rt.spawn(async move {
        let kids: Vec<_> = (0..children)
            .map(|_| {
                tokio::spawn(async move {
                    let leaves: Vec<_> =
                        (0..leaves).map(|_| tokio::spawn(async { hit() })).collect();
                    for t in leaves {
                        t.await.expect("leaf");
                    }
                })
            })
            .collect();
        for t in kids {
            t.await.expect("child");
        }
    });
    rt.block_on(root).expect("root");
    nested_sample(sz, start)
}

pub fn nested_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    reset();
    let (children, leaves) = sz.nested;
    let start = Instant::now();
    pool.scope(|s| {
        s.spawn(move |s| {
            for _ in 0..children {
                s.spawn(move |s| {
                    for _ in 0..leaves {
                        s.spawn(|_| hit());
                    }
                });
            }
        });
    });
    nested_sample(sz, start)
}

// ---- cancel: N tasks behind busy workers, each cancelled while pending ----

pub fn cancel_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let gate = Arc::new(Gate::default());
    gate.occupy(rt.workers(), |g| {
        rt.spawn_detached(move || g.block());
    });
    let n = sz.tasks;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let counted = Counted;
            rt.spawn(move || {
                let _counted = counted;
                hit();
            })
        })
        .collect();
    let cancelled = tasks.iter().filter(|t| t.cancel()).count() as u64;
    drop(tasks);
    let elapsed = start.elapsed();
    // wsrt drops a cancelled pending task's closure inside cancel().
    let drops = DROPS.load(SeqCst);
    gate.release();
    drop(rt);
    Sample::timed(elapsed, n, drops == n && cancelled == n && hits() == 0)
        .set("drops", drops as f64)
        .set("cancelled", cancelled as f64)
}

pub fn cancel_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    reset();
    let gate = Arc::new(Gate::default());
    gate.occupy(cores(), |g| {
        rt.spawn(async move { g.block() });
    });
    let n = sz.tasks;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let counted = Counted;
            rt.spawn(async move {
                let _counted = counted;
                hit();
            })
        })
        .collect();
    for t in &tasks {
        t.abort();
    }
    drop(tasks);
    let elapsed = start.elapsed();
    // tokio drops an aborted task's future only when a worker gets to it.
    let drops_at_cancel = DROPS.load(SeqCst);
    gate.release();
    drop(rt);
    let drops = DROPS.load(SeqCst);
    Sample::timed(elapsed, n, drops == n && hits() == 0)
        .set("drops", drops as f64)
        .set("drops_at_cancel", drops_at_cancel as f64)
}

// ---- group_cancel: N tasks of one group behind busy workers, one group cancel ----

/// Timed: the cancel and the group's wait, in which the workers (let go
/// after the cancel) end each cancelled task as they pop it, and this
/// thread those still queued on its lane: a group cancel walks no task
/// (src/sched/group.rs, src/sched/wait.rs). The spawns are not timed
/// (the `cancel` row times a spawn and a cancel per task).
pub fn group_cancel_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let gate = Arc::new(Gate::default());
    gate.occupy(rt.workers(), |g| {
        rt.spawn_detached(move || g.block());
    });
    let group = rt.group();
    let n = sz.tasks;
    for _ in 0..n {
        let counted = Counted;
        // Group::spawn always makes a handle: dropped at once (the C
        // program spawns without one).
        drop(group.spawn(move || {
            let _counted = counted;
            hit();
        }));
    }
    let start = Instant::now();
    let first = group.cancel();
    gate.release();
    group.wait();
    let elapsed = start.elapsed();
    // Once the wait returned, every end is counted (and each closure was
    // dropped before its end was).
    let stats = group.stats();
    let drops = DROPS.load(SeqCst);
    drop(rt);
    Sample::timed(
        elapsed,
        n,
        first && stats.spawned == n && stats.cancelled == n && drops == n && hits() == 0,
    )
    .set("drops", drops as f64)
    .set("cancelled", stats.cancelled as f64)
}

// ---- callbacks: spawn_wait with one done-callback per task ----

/// Each run measures callbacks and, in the same process right before or
/// after it (the order alternates), spawn_wait: the target is the ratio of
/// the two, and this host changes speed between processes (one spawn_wait
/// process at 41 ns a task, the next at 55).
pub fn callbacks_wsrt(sz: &Sizes) -> Sample {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    paired_with_spawn_wait(sz, &RUNS, callbacks_only_wsrt)
}

/// A run of `measured` and a spawn_wait run next to it, in this process;
/// spawn_wait first in every other call (`runs` counts them).
fn paired_with_spawn_wait(sz: &Sizes, runs: &AtomicU64, measured: fn(&Sizes) -> Sample) -> Sample {
    let spawn_wait_first = runs.fetch_add(1, Relaxed) % 2 == 0;
    let before = spawn_wait_first.then(|| spawn_wait_wsrt(sz));
    let sample = measured(sz);
    let reference = before.unwrap_or_else(|| spawn_wait_wsrt(sz));
    sample.paired_with("spawn_wait_ns", &reference)
}

fn callbacks_only_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let n = sz.tasks;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let t = rt.spawn(hit);
            t.on_done(|_| {
                CALLBACKS.fetch_add(1, Relaxed);
            });
            t
        })
        .collect();
    for t in tasks {
        t.join().expect("task");
    }
    let elapsed = start.elapsed();
    // A callback may still be running on a worker after join returned.
    wait_until(|| CALLBACKS.load(SeqCst) >= n);
    Sample::timed(elapsed, n, hits() == n && CALLBACKS.load(SeqCst) == n)
}

// ---- grouped_spawn: spawn_wait with every task in one group ----

/// Paired with spawn_wait in the same process, as callbacks is.
pub fn grouped_spawn_wsrt(sz: &Sizes) -> Sample {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    paired_with_spawn_wait(sz, &RUNS, grouped_spawn_only_wsrt)
}

fn grouped_spawn_only_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    reset();
    let group = rt.group();
    let n = sz.tasks;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| group.spawn(hit)).collect();
    for t in tasks {
        t.join().expect("task");
    }
    let elapsed = start.elapsed();
    // A join may return a moment before its task's end is counted.
    group.wait();
    let stats = group.stats();
    Sample::timed(
        elapsed,
        n,
        hits() == n && stats.spawned == n && stats.succeeded == n,
    )
}

// ---- idle_cpu: one task, then the pool sits idle; CPU time of the process ----

/// Lets the pool settle (finish any spinning after the last task), then
/// measures the CPU time of the idle process.
fn idle_sample(sz: &Sizes) -> Sample {
    std::thread::sleep(Duration::from_millis(sz.idle_settle_ms));
    let (c0, t0) = (cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_millis(sz.idle_ms));
    let (c1, t1) = (cpu_seconds(), Instant::now());
    Sample::new()
        .set("cpu_s", c1 - c0)
        .set("wall_s", (t1 - t0).as_secs_f64())
}

pub fn idle_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    rt.spawn(hit).join().expect("task");
    idle_sample(sz)
}

pub fn idle_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    rt.block_on(rt.spawn(async { hit() })).expect("task");
    idle_sample(sz)
}

pub fn idle_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    pool.install(hit);
    idle_sample(sz)
}

// ---- bursty: bursts of tiny tasks (each burst waited for), a gap between ----

fn bursty_run(sz: &Sizes, mut burst: impl FnMut(u64)) -> Sample {
    reset();
    let (bursts, size, gap_us) = sz.bursty;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..bursts {
        burst(size);
        std::thread::sleep(Duration::from_micros(gap_us));
    }
    let (c1, t1) = (cpu_seconds(), Instant::now());
    Sample::new()
        .set("cpu_s", c1 - c0)
        .set("wall_s", (t1 - t0).as_secs_f64())
        .set("ok", f64::from(u8::from(hits() == bursts * size)))
}

pub fn bursty_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    bursty_run(sz, |k| {
        let tasks: Vec<_> = (0..k).map(|_| rt.spawn(hit)).collect();
        for t in tasks {
            t.join().expect("task");
        }
    })
}

pub fn bursty_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    bursty_run(sz, |k| {
        let tasks: Vec<_> = (0..k).map(|_| rt.spawn(async { hit() })).collect();
        rt.block_on(async {
            for t in tasks {
                t.await.expect("task");
            }
        });
    })
}

pub fn bursty_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    bursty_run(sz, |k| {
        pool.scope(|s| {
            for _ in 0..k {
                s.spawn(|_| hit());
            }
        })
    })
}

// ---- wake_latency: spawn onto an idle pool; the task stamps when it starts ----

static STARTED: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

fn stamp() {
    STARTED.store(now_ns(), Release);
}

/// `spawn` must start a task that calls `stamp()`.
fn wake_run(sz: &Sizes, spawn: impl Fn()) -> Sample {
    let (samples, gap_us) = sz.wake;
    let mut latencies: Vec<u64> = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        STARTED.store(0, SeqCst);
        let t0 = now_ns();
        spawn();
        std::thread::sleep(Duration::from_micros(gap_us));
        let mut started = STARTED.load(Acquire);
        while started == 0 {
            std::thread::sleep(Duration::from_micros(10));
            started = STARTED.load(Acquire);
        }
        latencies.push(started - t0);
    }
    Sample::new()
        .set("p50_us", percentile(&mut latencies, 50) as f64 / 1e3)
        .set("p99_us", percentile(&mut latencies, 99) as f64 / 1e3)
}

pub fn wake_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    wake_run(sz, || {
        rt.spawn_detached(stamp);
    })
}

pub fn wake_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    wake_run(sz, || {
        rt.spawn(async { stamp() });
    })
}

pub fn wake_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    wake_run(sz, || pool.spawn(stamp))
}

// ---- timers: N tasks that each sleep once, 1–10 ms; CPU time and lateness ----

/// How long task `i` of the `sz.timers` tasks sleeps: spread evenly over
/// [shortest, longest), in an order scrambled by a multiplicative step (a
/// permutation of 0..n when n is not a multiple of 7919), so that
/// deadlines do not come in spawn order. wsrt_bench.c's timer_ns is the
/// same.
fn timer_duration(sz: &Sizes, i: u64) -> Duration {
    let (n, lo_us, hi_us) = sz.timers;
    let k = i * 7919 % n;
    Duration::from_nanos(lo_us * 1_000 + k * (hi_us - lo_us) * 1_000 / n)
}

/// Each task's lateness (wake − deadline, ns): one slot per task, made
/// once per process (every run has the same number of tasks).
fn lateness_slots(n: u64) -> &'static [AtomicI64] {
    static SLOTS: OnceLock<Vec<AtomicI64>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| (0..n).map(|_| AtomicI64::new(0)).collect());
    assert_eq!(slots.len() as u64, n, "one timers size per process");
    slots
}

/// The deadline of a sleep of `d` starting now, before the sleep itself
/// takes the time (its own deadline is then at or after this one).
fn deadline_ns(d: Duration) -> i64 {
    (now_ns() + d.as_nanos() as u64) as i64
}

/// `run` spawns the tasks (task `i` sleeps `timer_duration(sz, i)` once,
/// then stores its lateness in `slots[i]` and hits) and waits for all.
fn timers_run(sz: &Sizes, run: impl FnOnce(&'static [AtomicI64])) -> Sample {
    let n = sz.timers.0;
    let slots = lateness_slots(n);
    for s in slots {
        s.store(i64::MIN, SeqCst);
    }
    reset();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    run(slots);
    let (c1, t1) = (cpu_seconds(), Instant::now());
    let late: Vec<i64> = slots.iter().map(|s| s.load(SeqCst)).collect();
    let woke = late.iter().filter(|&&l| l != i64::MIN).count() as u64;
    // A sleep that ended before its deadline fails the check.
    let early = late.iter().filter(|&&l| l != i64::MIN && l < 0).count() as u64;
    let mut late: Vec<u64> = late.iter().map(|&l| l.max(0) as u64).collect();
    Sample::new()
        .set("cpu_s", c1 - c0)
        .set("wall_s", (t1 - t0).as_secs_f64())
        .set("p50_us", percentile(&mut late, 50) as f64 / 1e3)
        .set("p99_us", percentile(&mut late, 99) as f64 / 1e3)
        .set("count", n as f64)
        .set("early", early as f64)
        .set(
            "ok",
            f64::from(u8::from(woke == n && early == 0 && hits() == n)),
        )
}

pub fn timers_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt();
    timers_run(sz, |slots| {
        let tasks: Vec<_> = (0..sz.timers.0)
            .map(|i| {
                let d = timer_duration(sz, i);
                rt.spawn_async(async move {
                    let deadline = deadline_ns(d);
                    wsrt::sleep(d).await;
                    slots[i as usize].store(now_ns() as i64 - deadline, Relaxed);
                    hit();
                })
            })
            .collect();
        for t in tasks {
            t.join().expect("timer task");
        }
    })
}

pub fn timers_tokio(sz: &Sizes) -> Sample {
    // tokio_rt() without the time driver, which the other workloads do not use.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_time()
        .build()
        .expect("tokio runtime");
    timers_run(sz, |slots| {
        let tasks: Vec<_> = (0..sz.timers.0)
            .map(|i| {
                let d = timer_duration(sz, i);
                rt.spawn(async move {
                    let deadline = deadline_ns(d);
                    tokio::time::sleep(d).await;
                    slots[i as usize].store(now_ns() as i64 - deadline, Relaxed);
                    hit();
                })
            })
            .collect();
        rt.block_on(async {
            for t in tasks {
                t.await.expect("timer task");
            }
        });
    })
}

// ---- memory: RSS growth for N pending tasks (run in a fresh child process) ----

/// Spawns `n` tasks with `spawn` while every worker is blocked and returns
/// the RSS growth. Leaks everything: the child process exits right after.
fn memory_run<H>(n: u64, mut spawn: impl FnMut() -> H) -> Sample {
    let mut handles: Vec<H> = Vec::with_capacity(n as usize);
    // Touch the handle array first: it is the caller's memory, not the runtime's.
    for slot in handles.spare_capacity_mut() {
        *slot = MaybeUninit::zeroed();
    }
    let before = rss_bytes();
    for _ in 0..n {
        handles.push(spawn());
    }
    let after = rss_bytes();
    std::mem::forget(handles);
    Sample::new()
        .set("bytes", after as f64 - before as f64)
        .set("count", n as f64)
}

pub fn memory_wsrt(sz: &Sizes) -> Sample {
    memory_run_wsrt(sz, |rt| rt.spawn(hit))
}

pub fn memory_detached_wsrt(sz: &Sizes) -> Sample {
    memory_run_wsrt(sz, |rt| rt.spawn_detached(hit))
}

/// [`memory_run`] of `spawn` on a wsrt runtime whose workers are blocked.
fn memory_run_wsrt<H>(sz: &Sizes, spawn: impl Fn(&wsrt::Runtime) -> H) -> Sample {
    let rt = wsrt_rt();
    let gate = Arc::new(Gate::default());
    gate.occupy(rt.workers(), |g| {
        rt.spawn_detached(move || g.block());
    });
    let sample = memory_run(sz.memory, || spawn(&rt));
    std::mem::forget(rt);
    sample
}

pub fn memory_tokio(sz: &Sizes) -> Sample {
    let rt = tokio_rt();
    let gate = Arc::new(Gate::default());
    gate.occupy(cores(), |g| {
        rt.spawn(async move { g.block() });
    });
    let sample = memory_run(sz.memory, || rt.spawn(async { hit() }));
    std::mem::forget(rt);
    sample
}

/// rayon has no task handles: pending `ThreadPool::spawn` jobs.
pub fn memory_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool();
    let gate = Arc::new(Gate::default());
    gate.occupy(cores(), |g| pool.spawn(move || g.block()));
    let sample = memory_run(sz.memory, || pool.spawn(hit));
    std::mem::forget(pool);
    sample
}

// ---- wait_stack: the stack each nested helping wait takes ----

/// The stack addresses of the first and the last level of a chain.
#[derive(Default)]
struct Marks {
    first: AtomicUsize,
    last: AtomicUsize,
}

impl Marks {
    /// Notes where the stack of `level` (of `depth`) is.
    #[inline(never)]
    fn mark(&self, level: u64, depth: u64) {
        let marker = 0u8;
        let here = black_box(&marker) as *const u8 as usize;
        if level == 1 {
            self.first.store(here, Relaxed);
        }
        if level == depth {
            self.last.store(here, Relaxed);
        }
    }

    /// Bytes per level from the first level to the last.
    fn sample(&self, depth: u64, ok: bool) -> Sample {
        let bytes = self
            .first
            .load(Relaxed)
            .wrapping_sub(self.last.load(Relaxed));
        Sample::new()
            .set("bytes", bytes as f64)
            .set("count", (depth - 1) as f64)
            .set("ok", f64::from(u8::from(ok)))
    }
}

/// A task that spawns the next level and joins it (a helping wait that
/// runs it on this stack, with one worker).
fn wsrt_chain(level: u64, depth: u64, marks: Arc<Marks>) -> u64 {
    marks.mark(level, depth);
    if level == depth {
        return level;
    }
    let here = wsrt::Handle::current().expect("a worker");
    here.spawn(move || wsrt_chain(level + 1, depth, marks))
        .join()
        .expect("chain")
}

pub fn wait_stack_wsrt(sz: &Sizes) -> Sample {
    let rt = wsrt_rt_of(1);
    let marks = Arc::new(Marks::default());
    let (m, depth) = (marks.clone(), sz.wait_stack);
    let r = rt
        .spawn(move || wsrt_chain(1, depth, m))
        .join()
        .expect("chain");
    marks.sample(depth, r == depth)
}

/// rayon's helping wait: a scope whose spawned job runs the next level.
fn rayon_chain(level: u64, depth: u64, marks: &Marks) -> u64 {
    marks.mark(level, depth);
    if level == depth {
        return level;
    }
    let mut r = 0;
    rayon::scope(|s| s.spawn(|_| r = rayon_chain(level + 1, depth, marks)));
    r
}

pub fn wait_stack_rayon(sz: &Sizes) -> Sample {
    let pool = rayon_pool_of(1);
    let marks = Marks::default();
    let depth = sz.wait_stack;
    let r = pool.install(|| rayon_chain(1, depth, &marks));
    marks.sample(depth, r == depth)
}
