/*
 * oneTBB task_group on the BENCH.md workloads, as a peer for
 * bench/src/main.rs. TBB's default concurrency: the main thread plus one
 * worker per remaining CPU; the main thread works while it waits.
 * Usage and output format: common.h.
 *
 * Not here: spawn_wait, cancel, callbacks (task_group tasks have no
 * handles). memory measures pending task_group tasks (no handles).
 */
#include "common.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

static struct { ALONE std::atomic<unsigned long> v; } g_hits;

static void add_one() { g_hits.v.fetch_add(1, std::memory_order_relaxed); }

/* detached N: N task_group tasks from the main thread, then wait(). */
static void w_detached(const long *p) {
    long n = p[0];
    g_hits.v = 0;
    uint64_t t0 = now_ns();
    tbb::task_group g;
    for (long i = 0; i < n; i++) g.run(add_one);
    g.wait();
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=%d", (unsigned long long)(t1 - t0), n, (long)g_hits.v == n);
}

static uint64_t fib_task(long n) {
    if (n < g_cutoff) return fib_seq(n);
    uint64_t a, b;
    tbb::task_group g;
    g.run([&] { a = fib_task(n - 1); });
    b = fib_task(n - 2);
    g.wait();
    return a + b;
}

/* fib N: no cutoff; count = forks. */
static void w_fib(const long *p) {
    run_fib(p[0], fib_task, 0);
}

static void w_fib_cutoff(const long *p) {
    run_fib_cutoff(p[0], p[1], fib_task);
}

/* oversubscribed N CUTOFF THREADS: fib_cutoff in an arena of THREADS threads (the
 * main thread one of them; global_control lets TBB make more workers than CPUs). */
static tbb::task_arena *g_arena;

static uint64_t fib_in_arena(long n) {
    uint64_t r = 0;
    g_arena->execute([&] { r = fib_task(n); });
    return r;
}

static void w_oversubscribed(const long *p) {
    int threads = (int)p[2];
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, (size_t)threads);
    tbb::task_arena arena(threads);
    arena.initialize();
    g_arena = &arena;
    run_fib_cutoff(p[0], p[1], fib_in_arena);
    g_arena = nullptr;
}

template <typename F>
static void spawn_and_wait(long n, F f) {
    tbb::task_group g;
    for (long i = 0; i < n; i++) g.run(f);
    g.wait();
}

/* nested CHILDREN LEAVES: root task -> children -> leaves, each level waits. */
static void w_nested(const long *p) {
    long children = p[0], leaves = p[1];
    g_hits.v = 0;
    uint64_t t0 = now_ns();
    spawn_and_wait(1, [=] { spawn_and_wait(children, [=] { spawn_and_wait(leaves, add_one); }); });
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=%d", (unsigned long long)(t1 - t0), 1 + children + children * leaves,
           (long)g_hits.v == children * leaves);
}

/* idle_cpu MILLIS SETTLE_MS: one task, then the workers sit idle. */
static void w_idle_cpu(const long *p) {
    spawn_and_wait(2, add_one);
    measure_idle(p);
}

/* bursty BURSTS SIZE GAP_US */
static void w_bursty(const long *p) {
    g_hits.v = 0;
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
    for (long b = 0; b < p[0]; b++) {
        spawn_and_wait(p[1], add_one);
        sleep_ns((uint64_t)p[2] * 1000u);
    }
    double c1 = cpu_seconds();
    uint64_t t1 = now_ns();
    report("cpu_s=%.6f wall_s=%.6f ok=%d", c1 - c0, (t1 - t0) / 1e9, (long)g_hits.v == p[0] * p[1]);
}

/* wake_latency SAMPLES GAP_US: task_arena::enqueue (run by a worker, the main
 * thread does not join), the task stamps its start. */
static void w_wake_latency(const long *p) {
    long n = p[0];
    std::vector<uint64_t> lat((size_t)n);
    std::atomic<uint64_t> started{0};
    tbb::task_arena arena;
    for (long i = 0; i < n; i++) {
        started = 0;
        uint64_t t0 = now_ns();
        arena.enqueue([&] { started.store(now_ns(), std::memory_order_release); });
        sleep_ns((uint64_t)p[1] * 1000u);
        uint64_t s;
        while ((s = started.load(std::memory_order_acquire)) == 0) sleep_ns(10000);
        lat[(size_t)i] = s - t0;
    }
    report_latencies(lat.data(), n);
}

/* memory N: RSS growth for N pending task_group tasks while the worker is blocked. */
static void w_memory(const long *p) {
    long n = p[0];
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    std::atomic<long> started{0};
    tbb::task_group g;
    long workers = num_cpus() - 1; /* TBB's default worker count; main is the spawner */
    for (long i = 0; i < workers; i++)
        g.run([&] {
            started++;
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return open; });
        });
    while (started.load() < workers) sleep_ns(20000);
    long before = rss_bytes();
    for (long i = 0; i < n; i++) g.run(add_one);
    long after = rss_bytes();
    report("bytes=%ld count=%ld", after - before, n);
    /* The process exists for this one measurement: skip the teardown. */
    fflush(stdout);
    _exit(0);
}

/* ---- recursive kernels (common.h): a task_group per node, run() per
 * child, wait(); the root runs on the main thread, as fib's. ---- */

/* nqueens: a task per placement while the board is above the depth. */
static uint64_t nq_node(const struct nq_board *b) {
    if (b->row >= g_nq.depth) return nq_serial(b);
    struct nq_board child[NQ_MAX];
    uint64_t counts[NQ_MAX];
    int k = nq_children(b, child);
    tbb::task_group g;
    for (int i = 0; i < k; i++) g.run([&, i] { counts[i] = nq_node(&child[i]); });
    g.wait();
    uint64_t count = 0;
    for (int i = 0; i < k; i++) count += counts[i];
    return count;
}

static void w_nqueens(const long *p) { run_nqueens(p, nq_node); }

/* cilksort: the quarter sorts and the pairwise merges each run all but the
 * last part as tasks and do that one themselves. */
static void cs_merge_node(struct cs_merge m) {
    struct cs_merge lo, hi;
    if (!cs_merge_split(m, &lo, &hi)) return;
    tbb::task_group g;
    g.run([&] { cs_merge_node(lo); });
    cs_merge_node(hi);
    g.wait();
}

static void cs_sort_node(struct cs_sort s) {
    struct cs_sort q[4];
    struct cs_merge m[3];
    if (!cs_sort_split(s, q, m)) return;
    tbb::task_group g;
    for (int i = 0; i < 3; i++) g.run([&, i] { cs_sort_node(q[i]); });
    cs_sort_node(q[3]);
    g.wait();
    g.run([&] { cs_merge_node(m[0]); });
    cs_merge_node(m[1]);
    g.wait();
    cs_merge_node(m[2]);
}

static void w_cilksort(const long *p) { run_cilksort(p, cs_sort_node); }

/* uts: a task per node. */
static uint64_t uts_node(uint64_t id, long kids) {
    uint64_t local[16];
    uint64_t *counts = kids <= 16 ? local : static_cast<uint64_t *>(xmalloc((size_t)kids * sizeof *counts));
    tbb::task_group g;
    for (long i = 0; i < kids; i++)
        g.run([=] {
            uint64_t c = uts_child(id, i);
            counts[i] = uts_node(c, uts_kids(c));
        });
    g.wait();
    uint64_t count = 1;
    for (long i = 0; i < kids; i++) count += counts[i];
    if (counts != local) free(counts);
    return count;
}

static uint64_t uts_parallel() { return uts_node(UTS_ROOT, g_uts.b0); }

static void w_uts(const long *p) { run_uts(p, uts_parallel); }

int main(int argc, char **argv) {
    static const struct workload table[] = {
        {"detached", w_detached}, {"fib", w_fib},           {"fib_cutoff", w_fib_cutoff},
        {"oversubscribed", w_oversubscribed},
        {"nested", w_nested},     {"idle_cpu", w_idle_cpu}, {"bursty", w_bursty},
        {"wake_latency", w_wake_latency}, {"memory", w_memory},
        {"nqueens", w_nqueens},   {"cilksort", w_cilksort}, {"uts", w_uts},
    };
    return peers_main(argc, argv, table, sizeof table / sizeof table[0]);
}
