/*
 * wsrt through its C ABI: the BENCH.md workloads, for bench/src/main.rs.
 * Built by build.sh against include/wsrt.h and target/release/libwsrt.so.
 * Usage and output format: common.h. Every runtime has one worker per CPU
 * (oversubscribed: as many as it is told).
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#include "wsrt.h"

#define CHECK(call)                                                                    \
    do {                                                                               \
        wsrt_status s_ = (call);                                                       \
        if (s_ != WSRT_OK) die("%s failed: %s", #call, wsrt_status_str(s_));           \
    } while (0)

static wsrt_runtime *g_rt;     /* the runtime of the current run */
static struct { ALONE atomic_ulong v; } g_hits;      /* what the tiny tasks increment */
static struct { ALONE atomic_ulong v; } g_drops;     /* arg_drop calls */
static struct { ALONE atomic_ulong v; } g_callbacks; /* done-callback calls */

/* A runtime of `workers` threads (0: one per CPU), counters reset. */
static void rt_start_of(size_t workers) {
    CHECK(wsrt_runtime_new(workers, &g_rt));
    atomic_store(&g_hits.v, 0);
    atomic_store(&g_drops.v, 0);
    atomic_store(&g_callbacks.v, 0);
}

static void rt_start(void) { rt_start_of(0); }

static void rt_free(void) {
    CHECK(wsrt_runtime_free(g_rt));
    g_rt = NULL;
}

static int32_t add_one(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add_explicit(&g_hits.v, 1, memory_order_relaxed);
    return WSRT_TASK_OK;
}

static wsrt_task *spawn_handle(wsrt_task_fn fn, void *arg, const wsrt_spawn_opts *opts) {
    wsrt_task *t = NULL;
    CHECK(wsrt_spawn(g_rt, fn, arg, opts, &t));
    return t;
}

static void wait_release(wsrt_task *t) {
    CHECK(wsrt_task_wait(t, -1));
    wsrt_task_release(t);
}

/* Spawns n tasks with handles (and `opts`), then waits for and releases each. */
static void spawn_and_wait_opts(long n, wsrt_task_fn fn, const wsrt_spawn_opts *opts) {
    wsrt_task **h = xmalloc((size_t)n * sizeof *h);
    for (long i = 0; i < n; i++) h[i] = spawn_handle(fn, NULL, opts);
    for (long i = 0; i < n; i++) wait_release(h[i]);
    free(h);
}

static void spawn_and_wait(long n, wsrt_task_fn fn) { spawn_and_wait_opts(n, fn, NULL); }

/* Waits (without spinning) until the counter reaches n. */
static void wait_count(atomic_ulong *c, unsigned long n) {
    while (atomic_load(c) < n) sleep_ns(20000);
}

/* ---- a gate that keeps every worker busy until opened ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_long started;
} g_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static int32_t blocker(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add(&g_gate.started, 1);
    pthread_mutex_lock(&g_gate.mu);
    while (!g_gate.open) pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    pthread_mutex_unlock(&g_gate.mu);
    return WSRT_TASK_OK;
}

static void block_workers(void) {
    long workers = (long)wsrt_runtime_workers(g_rt);
    g_gate.open = 0;
    atomic_store(&g_gate.started, 0);
    for (long i = 0; i < workers; i++) CHECK(wsrt_spawn(g_rt, blocker, NULL, NULL, NULL));
    while (atomic_load(&g_gate.started) < workers) sleep_ns(20000);
}

static void open_gate(void) {
    pthread_mutex_lock(&g_gate.mu);
    g_gate.open = 1;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
}

/* ---- workloads ---- */

/* One spawn_wait run of n tasks on a fresh runtime: its ns; *ok = its check. */
static uint64_t spawn_wait_run(long n, int *ok) {
    rt_start();
    uint64_t t0 = now_ns();
    spawn_and_wait(n, add_one);
    uint64_t t1 = now_ns();
    *ok = (long)atomic_load(&g_hits.v) == n;
    rt_free();
    return t1 - t0;
}

/* spawn_wait N: N tasks with handles from the main thread, then wait + release each. */
static void w_spawn_wait(const long *p) {
    int ok;
    uint64_t ns = spawn_wait_run(p[0], &ok);
    report("ns=%llu count=%ld ok=%d", (unsigned long long)ns, p[0], ok);
}

/* detached N: N detached tasks, wait for the counter. */
static void w_detached(const long *p) {
    long n = p[0];
    rt_start();
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) CHECK(wsrt_spawn(g_rt, add_one, NULL, NULL, NULL));
    wait_count(&g_hits.v, (unsigned long)n);
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=1", (unsigned long long)(t1 - t0), n);
    rt_free();
}

/* fib through handles: spawn the child fib(n-1), compute fib(n-2) here, wait (helping). */
static int32_t fib_task(void *arg, void **result) {
    long n = (long)(intptr_t)arg;
    if (n < g_cutoff) {
        *result = (void *)(intptr_t)fib_seq(n);
        return WSRT_TASK_OK;
    }
    wsrt_task *child = spawn_handle(fib_task, (void *)(intptr_t)(n - 1), NULL);
    void *b = NULL;
    fib_task((void *)(intptr_t)(n - 2), &b);
    void *a = NULL;
    CHECK(wsrt_task_wait(child, -1));
    CHECK(wsrt_task_result(child, &a));
    wsrt_task_release(child);
    *result = (void *)((intptr_t)a + (intptr_t)b);
    return WSRT_TASK_OK;
}

static uint64_t fib_parallel(long n) {
    wsrt_task *root = spawn_handle(fib_task, (void *)(intptr_t)n, NULL);
    void *r = NULL;
    CHECK(wsrt_task_wait(root, -1));
    CHECK(wsrt_task_result(root, &r));
    wsrt_task_release(root);
    return (uint64_t)(intptr_t)r;
}

/* fib N: no cutoff; count = forks + the root task. */
static void w_fib(const long *p) {
    rt_start();
    run_fib(p[0], fib_parallel, 1);
    rt_free();
}

static void w_fib_cutoff(const long *p) {
    rt_start();
    run_fib_cutoff(p[0], p[1], fib_parallel);
    rt_free();
}

/* oversubscribed N CUTOFF WORKERS: fib_cutoff on a runtime of WORKERS threads. */
static void w_oversubscribed(const long *p) {
    rt_start_of((size_t)p[2]);
    run_fib_cutoff(p[0], p[1], fib_parallel);
    rt_free();
}

/* nested CHILDREN LEAVES: a root task spawns children, each spawns leaves (handles). */
static long g_children, g_leaves;

static int32_t nested_child(void *arg, void **result) {
    (void)arg;
    (void)result;
    spawn_and_wait(g_leaves, add_one);
    return WSRT_TASK_OK;
}

static int32_t nested_root(void *arg, void **result) {
    (void)arg;
    (void)result;
    spawn_and_wait(g_children, nested_child);
    return WSRT_TASK_OK;
}

static void w_nested(const long *p) {
    g_children = p[0];
    g_leaves = p[1];
    rt_start();
    uint64_t t0 = now_ns();
    wait_release(spawn_handle(nested_root, NULL, NULL));
    uint64_t t1 = now_ns();
    report("ns=%llu count=%ld ok=%d", (unsigned long long)(t1 - t0), 1 + g_children + g_children * g_leaves,
           (long)atomic_load(&g_hits.v) == g_children * g_leaves);
    rt_free();
}

/* cancel N: every worker blocked; spawn N tasks (with arg_drop), cancel each, release. */
static void count_drop(void *arg) {
    (void)arg;
    atomic_fetch_add_explicit(&g_drops.v, 1, memory_order_relaxed);
}

static void w_cancel(const long *p) {
    long n = p[0];
    static char arg; /* a non-NULL arg for arg_drop */
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = count_drop;
    rt_start();
    block_workers();
    wsrt_task **h = xmalloc((size_t)n * sizeof *h);
    long cancelled = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) h[i] = spawn_handle(add_one, &arg, &opts);
    for (long i = 0; i < n; i++) cancelled += wsrt_task_cancel(h[i]);
    for (long i = 0; i < n; i++) wsrt_task_release(h[i]);
    uint64_t t1 = now_ns();
    unsigned long drops = atomic_load(&g_drops.v);
    open_gate();
    rt_free();
    report("ns=%llu count=%ld ok=%d drops=%lu cancelled=%ld ran=%lu", (unsigned long long)(t1 - t0), n,
           (long)drops == n && cancelled == n && atomic_load(&g_hits.v) == 0, drops, cancelled,
           atomic_load(&g_hits.v));
    free(h);
}

/* group_cancel N [HELD]: every worker blocked; N tasks (with arg_drop) spawned into
 * one group without handles, one group cancel, the gate opened, the group's wait (the
 * workers end the cancelled tasks as they pop them, the waiting thread those still
 * queued from it). Every task must end CANCELLED. With HELD 1 the gate opens only
 * after the wait: the waiting thread ends every task itself (docs/performance.md). */
static void w_group_cancel(const long *p) {
    long n = p[0];
    int held = p[1] != 0;
    static char arg; /* a non-NULL arg for arg_drop */
    rt_start();
    wsrt_group *g = NULL;
    CHECK(wsrt_group_new(g_rt, NULL, 0, &g));
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = count_drop;
    opts.group = g;
    block_workers();
    for (long i = 0; i < n; i++) CHECK(wsrt_spawn(g_rt, add_one, &arg, &opts, NULL));
    uint64_t t0 = now_ns(); /* the cancel and the wait (the cancel row times spawn + cancel) */
    int first = wsrt_group_cancel(g);
    if (!held) open_gate();
    CHECK(wsrt_group_wait(g, -1));
    uint64_t t1 = now_ns();
    if (held) open_gate();
    /* Once the wait returned every end is counted, each arg_drop before its end. */
    wsrt_group_counts c;
    CHECK(wsrt_group_stats(g, &c));
    unsigned long drops = atomic_load(&g_drops.v);
    wsrt_group_release(g);
    rt_free();
    report("ns=%llu count=%ld ok=%d drops=%lu cancelled=%llu ran=%lu", (unsigned long long)(t1 - t0), n,
           first && (long)c.spawned == n && (long)c.cancelled == n && (long)drops == n &&
               atomic_load(&g_hits.v) == 0,
           drops, (unsigned long long)c.cancelled, atomic_load(&g_hits.v));
}

/* Reports a run of `measured` (ns, *ok) paired with a spawn_wait run right before
 * or after it (the order alternates with *runs) in this process: the target is
 * the ratio of the two, and this host changes speed between processes. */
static void report_paired_with_spawn_wait(long n, uint64_t (*measured)(long, int *), long *runs) {
    int first = (*runs)++ % 2 == 0, ok_m, ok_sw;
    uint64_t sw = first ? spawn_wait_run(n, &ok_sw) : 0;
    uint64_t m = measured(n, &ok_m);
    if (!first) sw = spawn_wait_run(n, &ok_sw);
    report("ns=%llu count=%ld spawn_wait_ns=%llu ok=%d", (unsigned long long)m, n,
           (unsigned long long)sw, ok_m && ok_sw);
}

/* callbacks N: spawn_wait with one done-callback added to each task. */
static void on_done(wsrt_task *t, void *user) {
    (void)t;
    atomic_fetch_add_explicit((atomic_ulong *)user, 1, memory_order_relaxed);
}

static uint64_t callbacks_run(long n, int *ok) {
    rt_start();
    wsrt_task **h = xmalloc((size_t)n * sizeof *h);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        h[i] = spawn_handle(add_one, NULL, NULL);
        CHECK(wsrt_task_add_done_callback(h[i], on_done, &g_callbacks.v));
    }
    for (long i = 0; i < n; i++) wait_release(h[i]);
    uint64_t t1 = now_ns();
    wait_count(&g_callbacks.v, (unsigned long)n); /* the last few may still be running */
    *ok = (long)atomic_load(&g_hits.v) == n && (long)atomic_load(&g_callbacks.v) == n;
    free(h);
    rt_free();
    return t1 - t0;
}

/* Each run also measures spawn_wait, right before or after. */
static void w_callbacks(const long *p) {
    static long runs;
    report_paired_with_spawn_wait(p[0], callbacks_run, &runs);
}

/* grouped_spawn N: spawn_wait with every task spawned into one group. */
static uint64_t grouped_spawn_run(long n, int *ok) {
    rt_start();
    wsrt_group *g = NULL;
    CHECK(wsrt_group_new(g_rt, NULL, 0, &g));
    wsrt_spawn_opts opts = {0};
    opts.group = g;
    uint64_t t0 = now_ns();
    spawn_and_wait_opts(n, add_one, &opts);
    uint64_t t1 = now_ns();
    /* A task wait may return a moment before its task's end is counted. */
    CHECK(wsrt_group_wait(g, -1));
    wsrt_group_counts c;
    CHECK(wsrt_group_stats(g, &c));
    *ok = (long)atomic_load(&g_hits.v) == n && (long)c.spawned == n && (long)c.succeeded == n;
    wsrt_group_release(g);
    rt_free();
    return t1 - t0;
}

/* Each run also measures spawn_wait, right before or after, as callbacks does. */
static void w_grouped_spawn(const long *p) {
    static long runs;
    report_paired_with_spawn_wait(p[0], grouped_spawn_run, &runs);
}

/* idle_cpu MILLIS SETTLE_MS: one task, then the runtime sits idle; CPU time of the process. */
static void w_idle_cpu(const long *p) {
    rt_start();
    wait_release(spawn_handle(add_one, NULL, NULL));
    measure_idle(p);
    rt_free();
}

/* bursty BURSTS SIZE GAP_US: bursts of tiny tasks (handles, waited), a gap between. */
static void w_bursty(const long *p) {
    rt_start();
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
    for (long b = 0; b < p[0]; b++) {
        spawn_and_wait(p[1], add_one);
        sleep_ns((uint64_t)p[2] * 1000u);
    }
    double c1 = cpu_seconds();
    uint64_t t1 = now_ns();
    report("cpu_s=%.6f wall_s=%.6f ok=%d", c1 - c0, (t1 - t0) / 1e9, (long)atomic_load(&g_hits.v) == p[0] * p[1]);
    rt_free();
}

/* wake_latency SAMPLES GAP_US: spawn onto an idle runtime, the task stamps its start. */
static struct { ALONE _Atomic uint64_t v; } g_started;

static int32_t stamp(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_store_explicit(&g_started.v, now_ns(), memory_order_release);
    return WSRT_TASK_OK;
}

static void w_wake_latency(const long *p) {
    long n = p[0];
    uint64_t *lat = xmalloc((size_t)n * sizeof *lat);
    rt_start();
    for (long i = 0; i < n; i++) {
        atomic_store(&g_started.v, 0);
        uint64_t t0 = now_ns();
        CHECK(wsrt_spawn(g_rt, stamp, NULL, NULL, NULL));
        sleep_ns((uint64_t)p[1] * 1000u);
        uint64_t s;
        while ((s = atomic_load_explicit(&g_started.v, memory_order_acquire)) == 0) sleep_ns(10000);
        lat[i] = s - t0;
    }
    rt_free();
    report_latencies(lat, n);
    free(lat);
}

/* timers N SHORTEST_US LONGEST_US: N tasks, each sleeping once (wsrt_sleep) for a
 * time spread over [SHORTEST, LONGEST) µs, spawned at once with handles, then each
 * waited; CPU time of the process over the run, and lateness (wake - deadline). */
static long g_timer_n, g_timer_lo_us, g_timer_hi_us;
static int64_t *g_deadline; /* per task: 0 before its first call */
static int64_t *g_late;     /* per task: INT64_MIN until it woke */

/* Task i's sleep: as timer_duration in bench/src/systems.rs (spread evenly, the
 * order scrambled by a multiplicative step so that deadlines do not come in
 * spawn order). */
static int64_t timer_ns(long i) {
    uint64_t n = (uint64_t)g_timer_n, k = (uint64_t)i * 7919u % n;
    return (int64_t)((uint64_t)g_timer_lo_us * 1000u + k * (uint64_t)(g_timer_hi_us - g_timer_lo_us) * 1000u / n);
}

/* First call: sleep; second call (after the time): note the lateness, done. */
static int32_t timer_task(void *arg, void **result) {
    (void)result;
    long i = (long)(intptr_t)arg;
    if (g_deadline[i] == 0) {
        int64_t d = timer_ns(i);
        g_deadline[i] = (int64_t)now_ns() + d;
        return wsrt_sleep(d);
    }
    g_late[i] = (int64_t)now_ns() - g_deadline[i];
    atomic_fetch_add_explicit(&g_hits.v, 1, memory_order_relaxed);
    return WSRT_TASK_OK;
}

static void w_timers(const long *p) {
    long n = p[0];
    g_timer_n = n;
    g_timer_lo_us = p[1];
    g_timer_hi_us = p[2];
    g_deadline = xmalloc((size_t)n * sizeof *g_deadline);
    g_late = xmalloc((size_t)n * sizeof *g_late);
    for (long i = 0; i < n; i++) {
        g_deadline[i] = 0;
        g_late[i] = INT64_MIN;
    }
    wsrt_task **h = xmalloc((size_t)n * sizeof *h);
    rt_start();
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) h[i] = spawn_handle(timer_task, (void *)(intptr_t)i, NULL);
    for (long i = 0; i < n; i++) wait_release(h[i]);
    double c1 = cpu_seconds();
    uint64_t t1 = now_ns();
    rt_free();
    /* A sleep that ended before its deadline fails the check. */
    long woke = 0, early = 0;
    uint64_t *late = xmalloc((size_t)n * sizeof *late);
    for (long i = 0; i < n; i++) {
        woke += g_late[i] != INT64_MIN;
        early += g_late[i] != INT64_MIN && g_late[i] < 0;
        late[i] = g_late[i] > 0 ? (uint64_t)g_late[i] : 0;
    }
    qsort(late, (size_t)n, sizeof *late, cmp_u64);
    report("cpu_s=%.6f wall_s=%.6f p50_us=%.3f p99_us=%.3f count=%ld early=%ld ok=%d", c1 - c0,
           (t1 - t0) / 1e9, late[n / 2] / 1e3, late[n * 99 / 100] / 1e3, n, early,
           woke == n && early == 0 && (long)atomic_load(&g_hits.v) == n);
    free(late);
    free(h);
    free(g_late);
    free(g_deadline);
}

/* ---- recursive kernels (common.h): a task per child through handles,
 * wsrt_spawn each, then wsrt_task_join each (a helping wait); the root is a
 * task spawned from the main thread, as fib's. ---- */

/* Joins t, which succeeded; its result. */
static void *join_result(wsrt_task *t) {
    void *r = NULL;
    CHECK(wsrt_task_join(t, &r, NULL));
    return r;
}

/* nqueens: a task per placement while the board is above the depth. */
static uint64_t nq_node(const struct nq_board *b);

static int32_t nq_task(void *arg, void **result) {
    *result = (void *)(uintptr_t)nq_node((const struct nq_board *)arg);
    return WSRT_TASK_OK;
}

static uint64_t nq_node(const struct nq_board *b) {
    if (b->row >= g_nq.depth) return nq_serial(b);
    struct nq_board child[NQ_MAX];
    wsrt_task *h[NQ_MAX];
    int k = nq_children(b, child);
    for (int i = 0; i < k; i++) h[i] = spawn_handle(nq_task, &child[i], NULL);
    uint64_t count = 0;
    for (int i = 0; i < k; i++) count += (uintptr_t)join_result(h[i]);
    return count;
}

static uint64_t nq_parallel(const struct nq_board *root) {
    return (uintptr_t)join_result(spawn_handle(nq_task, (void *)root, NULL));
}

static void w_nqueens(const long *p) {
    rt_start();
    run_nqueens(p, nq_parallel);
    rt_free();
}

/* cilksort: the quarter sorts and the pairwise merges each spawn all but the
 * last part and do that one themselves (as Cilk's spawn before sync does). */
static void cs_merge_node(struct cs_merge m);

static int32_t cs_merge_task(void *arg, void **result) {
    (void)result;
    cs_merge_node(*(struct cs_merge *)arg);
    return WSRT_TASK_OK;
}

static void cs_merge_node(struct cs_merge m) {
    struct cs_merge lo, hi;
    if (!cs_merge_split(m, &lo, &hi)) return;
    wsrt_task *t = spawn_handle(cs_merge_task, &lo, NULL);
    cs_merge_node(hi);
    join_result(t);
}

static void cs_sort_node(struct cs_sort s);

static int32_t cs_sort_task(void *arg, void **result) {
    (void)result;
    cs_sort_node(*(struct cs_sort *)arg);
    return WSRT_TASK_OK;
}

static void cs_sort_node(struct cs_sort s) {
    struct cs_sort q[4];
    struct cs_merge m[3];
    if (!cs_sort_split(s, q, m)) return;
    wsrt_task *h[3];
    for (int i = 0; i < 3; i++) h[i] = spawn_handle(cs_sort_task, &q[i], NULL);
    cs_sort_node(q[3]);
    for (int i = 0; i < 3; i++) join_result(h[i]);
    wsrt_task *t = spawn_handle(cs_merge_task, &m[0], NULL);
    cs_merge_node(m[1]);
    join_result(t);
    cs_merge_node(m[2]);
}

static void cs_parallel(struct cs_sort s) { join_result(spawn_handle(cs_sort_task, &s, NULL)); }

static void w_cilksort(const long *p) {
    rt_start();
    run_cilksort(p, cs_parallel);
    rt_free();
}

/* uts: a task per node; a node's id is its task's argument, its subtree's
 * node count the result. */
static uint64_t uts_node(uint64_t id, long kids);

static int32_t uts_task(void *arg, void **result) {
    uint64_t id = (uintptr_t)arg;
    *result = (void *)(uintptr_t)uts_node(id, uts_kids(id));
    return WSRT_TASK_OK;
}

static int32_t uts_root_task(void *arg, void **result) {
    (void)arg;
    *result = (void *)(uintptr_t)uts_node(UTS_ROOT, g_uts.b0);
    return WSRT_TASK_OK;
}

static uint64_t uts_node(uint64_t id, long kids) {
    wsrt_task *local[16];
    wsrt_task **h = kids <= 16 ? local : xmalloc((size_t)kids * sizeof *h);
    for (long i = 0; i < kids; i++) {
        uint64_t c = uts_child(id, i);
        h[i] = spawn_handle(uts_task, (void *)(uintptr_t)c, NULL);
    }
    uint64_t count = 1;
    for (long i = 0; i < kids; i++) count += (uintptr_t)join_result(h[i]);
    if (h != local) free(h);
    return count;
}

static uint64_t uts_parallel(void) { return (uintptr_t)join_result(spawn_handle(uts_root_task, NULL, NULL)); }

static void w_uts(const long *p) {
    rt_start();
    run_uts(p, uts_parallel);
    rt_free();
}

/* wait_stack DEPTH: on one worker, a chain of DEPTH tasks, each spawning the
 * next and joining it: every join is a helping wait that runs the next task
 * on the same stack. Reports the stack from the first level to the last. */
static long g_chain_depth;
static uintptr_t g_chain_first, g_chain_last;

static int32_t chain_task(void *arg, void **result) {
    long level = (long)(intptr_t)arg;
    volatile char marker = 0;
    uintptr_t here = (uintptr_t)&marker;
    if (level == 1) g_chain_first = here;
    if (level == g_chain_depth) {
        g_chain_last = here;
        *result = (void *)(intptr_t)level;
        return WSRT_TASK_OK;
    }
    wsrt_task *child = spawn_handle(chain_task, (void *)(intptr_t)(level + 1), NULL);
    int32_t code = 0;
    CHECK(wsrt_task_join(child, result, &code));
    return WSRT_TASK_OK;
}

static void w_wait_stack(const long *p) {
    g_chain_depth = p[0];
    rt_start_of(1);
    wsrt_task *root = spawn_handle(chain_task, (void *)(intptr_t)1, NULL);
    void *r = NULL;
    int32_t code = 0;
    CHECK(wsrt_task_join(root, &r, &code));
    rt_free();
    report("bytes=%llu count=%ld ok=%d", (unsigned long long)(g_chain_first - g_chain_last),
           g_chain_depth - 1, (long)(intptr_t)r == g_chain_depth);
}

/* memory N: RSS growth for N pending tasks with handles (run in a fresh process). */
static void w_memory(const long *p) {
    long n = p[0];
    rt_start();
    block_workers();
    wsrt_task **h = xmalloc((size_t)n * sizeof *h);
    memset(h, 0, (size_t)n * sizeof *h); /* the handle array is not the runtime's */
    long before = rss_bytes();
    for (long i = 0; i < n; i++) h[i] = spawn_handle(add_one, NULL, NULL);
    long after = rss_bytes();
    report("bytes=%ld count=%ld", after - before, n);
    /* The process exists for this one measurement: skip the teardown. */
    fflush(stdout);
    _exit(0);
}

/* memory_detached N: as memory, without handles (out NULL). */
static void w_memory_detached(const long *p) {
    long n = p[0];
    rt_start();
    block_workers();
    long before = rss_bytes();
    for (long i = 0; i < n; i++) CHECK(wsrt_spawn(g_rt, add_one, NULL, NULL, NULL));
    long after = rss_bytes();
    report("bytes=%ld count=%ld", after - before, n);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    static const struct workload table[] = {
        {"spawn_wait", w_spawn_wait},     {"detached", w_detached},
        {"fib", w_fib},                   {"fib_cutoff", w_fib_cutoff},
        {"oversubscribed", w_oversubscribed}, {"nested", w_nested},
        {"cancel", w_cancel},             {"group_cancel", w_group_cancel},
        {"callbacks", w_callbacks},       {"grouped_spawn", w_grouped_spawn},
        {"idle_cpu", w_idle_cpu},         {"bursty", w_bursty},
        {"wake_latency", w_wake_latency}, {"timers", w_timers},
        {"memory", w_memory},             {"nqueens", w_nqueens},
        {"cilksort", w_cilksort},         {"uts", w_uts},
        {"wait_stack", w_wait_stack},     {"memory_detached", w_memory_detached},
    };
    return peers_main(argc, argv, table, sizeof table / sizeof table[0]);
}
