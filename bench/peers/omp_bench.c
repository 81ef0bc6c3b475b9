/*
 * OpenMP tasks (gcc -fopenmp, libgomp) on the BENCH.md workloads, as a peer
 * for bench/src/main.rs. One thread per CPU; the "main thread" is the one
 * running the `single` block (oversubscribed: as many threads as it is told).
 * Usage and output format: common.h.
 *
 * Not here: spawn_wait, cancel, callbacks (no task handles in OpenMP) and
 * memory (libgomp runs tasks at once instead of queueing more than about
 * 64 per thread, so a million pending tasks cannot exist).
 */
#include "common.h"

#include <omp.h>

static struct { ALONE unsigned long v; } g_hits;

static void add_one(void) {
#pragma omp atomic
    g_hits.v++;
}

static int g_threads; /* 0: one thread per CPU (oversubscribed sets more) */

static int threads(void) { return g_threads ? g_threads : (int)num_cpus(); }

/* detached N: the single thread creates N tasks; the barrier waits for them. */
static void w_detached(const long *p) {
    long n = p[0];
    g_hits.v = 0;
    uint64_t t0 = now_ns();
#pragma omp parallel num_threads(threads())
#pragma omp single
    for (long i = 0; i < n; i++) {
#pragma omp task
        add_one();
    }
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=%d", (unsigned long long)(t1 - t0), n, (long)g_hits.v == n);
}

static uint64_t fib_task(long n) {
    if (n < g_cutoff) return fib_seq(n);
    uint64_t a, b;
#pragma omp task shared(a)
    a = fib_task(n - 1);
    b = fib_task(n - 2);
#pragma omp taskwait
    return a + b;
}

static uint64_t fib_parallel(long n) {
    uint64_t r = 0;
#pragma omp parallel num_threads(threads())
#pragma omp single
    r = fib_task(n);
    return r;
}

/* fib N: no cutoff; count = forks. */
static void w_fib(const long *p) {
    run_fib(p[0], fib_parallel, 0);
}

static void w_fib_cutoff(const long *p) {
    run_fib_cutoff(p[0], p[1], fib_parallel);
}

/* oversubscribed N CUTOFF THREADS: fib_cutoff in a parallel region of THREADS threads. */
static void w_oversubscribed(const long *p) {
    g_threads = (int)p[2];
    run_fib_cutoff(p[0], p[1], fib_parallel);
    g_threads = 0;
}

/* nested CHILDREN LEAVES: root task -> children tasks -> leaf tasks, each level waits. */
static void w_nested(const long *p) {
    long children = p[0], leaves = p[1];
    g_hits.v = 0;
    uint64_t t0 = now_ns();
#pragma omp parallel num_threads(threads())
#pragma omp single
    {
#pragma omp task
        {
            for (long c = 0; c < children; c++) {
#pragma omp task
                {
                    for (long l = 0; l < leaves; l++) {
#pragma omp task
                        add_one();
                    }
#pragma omp taskwait
                }
            }
#pragma omp taskwait
        }
#pragma omp taskwait
    }
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=%d", (unsigned long long)(t1 - t0), 1 + children + children * leaves,
           (long)g_hits.v == children * leaves);
}

/* idle_cpu MILLIS SETTLE_MS: one parallel region, then the thread pool sits idle. */
static void w_idle_cpu(const long *p) {
    g_hits.v = 0;
#pragma omp parallel num_threads(threads())
#pragma omp single
    {
#pragma omp task
        add_one();
    }
    measure_idle(p);
}

/* bursty BURSTS SIZE GAP_US: inside one parallel region, bursts of tasks + taskwait, a gap. */
static void w_bursty(const long *p) {
    g_hits.v = 0;
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
#pragma omp parallel num_threads(threads())
#pragma omp single
    for (long b = 0; b < p[0]; b++) {
        for (long i = 0; i < p[1]; i++) {
#pragma omp task
            add_one();
        }
#pragma omp taskwait
        sleep_ns((uint64_t)p[2] * 1000u);
    }
    double c1 = cpu_seconds();
    uint64_t t1 = now_ns();
    report("cpu_s=%.6f wall_s=%.6f ok=%d", c1 - c0, (t1 - t0) / 1e9, (long)g_hits.v == p[0] * p[1]);
}

/* wake_latency SAMPLES GAP_US: the single thread creates a task and sleeps; another thread
 * (waiting at the end of `single`) picks it up and stamps its start. */
static void w_wake_latency(const long *p) {
    long n = p[0];
    uint64_t *lat = xmalloc((size_t)n * sizeof *lat);
#pragma omp parallel num_threads(threads())
#pragma omp single
    for (long i = 0; i < n; i++) {
        uint64_t started = 0;
        uint64_t t0 = now_ns();
#pragma omp task shared(started)
        {
#pragma omp atomic write
            started = now_ns();
        }
        sleep_ns((uint64_t)p[1] * 1000u);
        uint64_t s;
        for (;;) {
#pragma omp atomic read
            s = started;
            if (s) break;
            sleep_ns(10000);
        }
        lat[i] = s - t0;
#pragma omp taskwait
    }
    report_latencies(lat, n);
    free(lat);
}

/* ---- recursive kernels (common.h): `omp task` per child, `taskwait`; the
 * root runs on the thread of a `single` region, as fib's. ---- */

/* nqueens: a task per placement while the board is above the depth. */
static uint64_t nq_node(const struct nq_board *b) {
    if (b->row >= g_nq.depth) return nq_serial(b);
    struct nq_board child[NQ_MAX];
    uint64_t counts[NQ_MAX];
    int k = nq_children(b, child);
    for (int i = 0; i < k; i++) {
#pragma omp task shared(child, counts)
        counts[i] = nq_node(&child[i]);
    }
#pragma omp taskwait
    uint64_t count = 0;
    for (int i = 0; i < k; i++) count += counts[i];
    return count;
}

static uint64_t nq_parallel(const struct nq_board *root) {
    uint64_t r = 0;
#pragma omp parallel num_threads(threads())
#pragma omp single
    r = nq_node(root);
    return r;
}

static void w_nqueens(const long *p) { run_nqueens(p, nq_parallel); }

/* cilksort: the quarter sorts and the pairwise merges each make tasks of all
 * but the last part and do that one themselves. */
static void cs_merge_node(struct cs_merge m) {
    struct cs_merge lo, hi;
    if (!cs_merge_split(m, &lo, &hi)) return;
#pragma omp task shared(lo)
    cs_merge_node(lo);
    cs_merge_node(hi);
#pragma omp taskwait
}

static void cs_sort_node(struct cs_sort s) {
    struct cs_sort q[4];
    struct cs_merge m[3];
    if (!cs_sort_split(s, q, m)) return;
    for (int i = 0; i < 3; i++) {
#pragma omp task shared(q)
        cs_sort_node(q[i]);
    }
    cs_sort_node(q[3]);
#pragma omp taskwait
#pragma omp task shared(m)
    cs_merge_node(m[0]);
    cs_merge_node(m[1]);
#pragma omp taskwait
    cs_merge_node(m[2]);
}

static void cs_parallel(struct cs_sort s) {
#pragma omp parallel num_threads(threads())
#pragma omp single
    cs_sort_node(s);
}

static void w_cilksort(const long *p) { run_cilksort(p, cs_parallel); }

/* uts: a task per node. */
static uint64_t uts_node(uint64_t id, long kids) {
    uint64_t local[16];
    uint64_t *counts = kids <= 16 ? local : xmalloc((size_t)kids * sizeof *counts);
    for (long i = 0; i < kids; i++) {
#pragma omp task shared(counts)
        {
            uint64_t c = uts_child(id, i);
            counts[i] = uts_node(c, uts_kids(c));
        }
    }
#pragma omp taskwait
    uint64_t count = 1;
    for (long i = 0; i < kids; i++) count += counts[i];
    if (counts != local) free(counts);
    return count;
}

static uint64_t uts_parallel(void) {
    uint64_t r = 0;
#pragma omp parallel num_threads(threads())
#pragma omp single
    r = uts_node(UTS_ROOT, g_uts.b0);
    return r;
}

static void w_uts(const long *p) { run_uts(p, uts_parallel); }

int main(int argc, char **argv) {
    static const struct workload table[] = {
        {"detached", w_detached}, {"fib", w_fib},       {"fib_cutoff", w_fib_cutoff},
        {"oversubscribed", w_oversubscribed},
        {"nested", w_nested},     {"idle_cpu", w_idle_cpu}, {"bursty", w_bursty},
        {"wake_latency", w_wake_latency},
        {"nqueens", w_nqueens},   {"cilksort", w_cilksort}, {"uts", w_uts},
    };
    return peers_main(argc, argv, table, sizeof table / sizeof table[0]);
}
