/*
 * Shared harness of the external benchmark programs (C and C++).
 *
 * Command line: PROGRAM WORKLOAD WARMUPS RUNS [P1 [P2]]
 * Each run prints one line that bench/src/main.rs parses:
 *
 *     run key=value key=value ...      (a measured run)
 *     warmup key=value ...             (a warm-up run, ignored)
 *
 * A workload the program does not implement prints "error unknown workload"
 * and exits with status 2. Fatal errors print "error <message>" and exit 1.
 *
 * Everything here is `static` so that each program compiles its own copy with
 * its own compiler (the sequential fib baseline must come from the same
 * compiler as the parallel code).
 */
#ifndef WSRT_PEERS_COMMON_H
#define WSRT_PEERS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* One workload: runs once with the size parameters, prints via report(). */
typedef void (*workload_fn)(const long *p);

struct workload {
    const char *name;
    workload_fn run;
};

static int g_measured; /* 0 during warm-up runs */

/*
 * For a struct holding a variable that tasks write from every thread: the
 * struct gets 128 bytes (two cache lines: the adjacent-line prefetcher pairs
 * them) to itself. Next to data the spawning thread reads at every spawn
 * (wsrt_bench's runtime pointer sat next to the counter every tiny task
 * increments), each spawn waited for the line.
 */
#ifdef __cplusplus
#define ALONE alignas(128)
#else
#define ALONE _Alignas(128)
#endif

static __attribute__((unused)) void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(1);
}

/* Prints one result line: "run ..." or "warmup ...". */
static __attribute__((unused)) void report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(g_measured ? "run " : "warmup ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static __attribute__((unused)) void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static __attribute__((unused)) uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static __attribute__((unused)) void sleep_ns(uint64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* User + system CPU seconds of the whole process (all threads). */
static __attribute__((unused)) double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Resident set size from /proc/self/statm. */
static __attribute__((unused)) long rss_bytes(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) die("cannot read /proc/self/statm");
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static __attribute__((unused)) long num_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* The sequential baseline and the leaves of every parallel fib. */
static __attribute__((unused)) __attribute__((noinline)) uint64_t fib_seq(long n) {
    return n < 2 ? (uint64_t)n : fib_seq(n - 1) + fib_seq(n - 2);
}

/* fib_cutoff pairs a sequential and a parallel run. Started right after the
 * sequential one, a pool whose calling thread blocks (rather than working
 * itself) often gets both workers on one CPU for several ms (scheduler load
 * tracking: measured here with rayon too), so a short pause separates them. */
static __attribute__((unused)) void settle_after_seq(void) { sleep_ns(20000000u); }

/* Number of parallel nodes (forks) of fib(n) when n < cutoff runs sequentially. */
static __attribute__((unused)) uint64_t fib_nodes(long n, long cutoff) {
    /* nodes(k) = 0 below the cutoff, else 1 + nodes(k-1) + nodes(k-2) */
    uint64_t a = 0, b = 0; /* nodes(k-2), nodes(k-1) */
    if (n < cutoff) return 0;
    for (long k = 0; k <= n; k++) {
        uint64_t c = k < cutoff ? 0 : 1 + a + b;
        a = b;
        b = c;
    }
    return b;
}

/* fib(k) with k < g_cutoff runs sequentially (fib_seq); set by run_fib*. */
static long g_cutoff;

/* fib N with no cutoff: time one `parallel(n)`; count = forks, plus `extra`
 * tasks the system spawns itself (wsrt's root task). */
static __attribute__((unused)) void run_fib(long n, uint64_t (*parallel)(long), uint64_t extra) {
    g_cutoff = 2;
    uint64_t t0 = now_ns();
    uint64_t r = parallel(n);
    uint64_t t1 = now_ns();
    report("ns=%llu count=%llu ok=%d", (unsigned long long)(t1 - t0),
           (unsigned long long)(fib_nodes(n, g_cutoff) + extra), r == fib_seq(n));
}

/* fib_cutoff N CUTOFF: sequential then parallel, paired in the same run. */
static __attribute__((unused)) void run_fib_cutoff(long n, long cutoff, uint64_t (*parallel)(long)) {
    g_cutoff = cutoff;
    uint64_t t0 = now_ns();
    uint64_t s = fib_seq(n);
    uint64_t t1 = now_ns();
    settle_after_seq();
    uint64_t t2 = now_ns();
    uint64_t r = parallel(n);
    uint64_t t3 = now_ns();
    report("seq_ns=%llu par_ns=%llu ok=%d", (unsigned long long)(t1 - t0),
           (unsigned long long)(t3 - t2), r == s);
}

static __attribute__((unused)) int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the latencies (ns) and reports p50 and p99 in microseconds. */
static __attribute__((unused)) void report_latencies(uint64_t *lat, long n) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    report("p50_us=%.3f p99_us=%.3f samples=%ld", lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, n);
}

/* idle_cpu MILLIS SETTLE_MS, after the pool did some work: lets it settle
 * (finish spinning), then reports the CPU time of the idle process. */
static __attribute__((unused)) void measure_idle(const long *p) {
    sleep_ns((uint64_t)p[1] * 1000000u);
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
    sleep_ns((uint64_t)p[0] * 1000000u);
    double c1 = cpu_seconds();
    uint64_t t1 = now_ns();
    report("cpu_s=%.6f wall_s=%.6f", c1 - c0, (t1 - t0) / 1e9);
}

/* ---- recursive kernels: nqueens, cilksort, uts ----
 *
 * The serial parts and the checks, shared by the three programs; each program
 * has its own parallel recursion (task + join at every node of the same shape
 * as the serial elision here). Each run pairs them as fib_cutoff does: the
 * serial elision, a pause, then the parallel version, both on the same input
 * and both checked; it reports seq_ns, par_ns, count and ok. */

/* ---- nqueens N DEPTH: count the placements of N queens; the boards of rows
 * 0 .. DEPTH-1 spawn one task per queen placed in their row, deeper ones
 * recurse serially. ---- */

#define NQ_MAX 16 /* the largest N with a known count below */

/* Solutions of n-queens, n = 0..16: every run checks against it. */
static const uint64_t nq_known[NQ_MAX + 1] = {1,   1,     0,     0,      2,       10,      4,        40,      92,
                                              352, 724, 2680, 14200, 73712, 365596, 2279184, 14772512};

/* Rows 0 .. row-1 hold a queen each. Bit c of each set: column c of the next
 * row is attacked along its column, its left diagonal, its right diagonal. */
struct nq_board {
    uint32_t cols, left, right;
    int row;
};

static struct {
    int n, depth;
    uint32_t all; /* the n columns */
} g_nq;

/* The columns of the next row where a queen can go. */
static inline uint32_t nq_free(const struct nq_board *b) { return g_nq.all & ~(b->cols | b->left | b->right); }

/* `b` with a queen on column `bit` of its next row. */
static inline struct nq_board nq_place(const struct nq_board *b, uint32_t bit) {
    struct nq_board c;
    c.cols = b->cols | bit;
    c.left = ((b->left | bit) << 1) & g_nq.all;
    c.right = (b->right | bit) >> 1;
    c.row = b->row + 1;
    return c;
}

/* Writes the boards after each placement in the next row of `b` to `out`
 * (room for NQ_MAX); returns how many. */
static __attribute__((unused)) int nq_children(const struct nq_board *b, struct nq_board *out) {
    int k = 0;
    for (uint32_t f = nq_free(b); f; f &= f - 1) out[k++] = nq_place(b, f & (0u - f));
    return k;
}

/* Completions of `b`, serially: the leaves of the parallel versions. */
static __attribute__((unused)) uint64_t nq_serial(const struct nq_board *b) {
    if (b->row == g_nq.n) return 1;
    uint64_t count = 0;
    for (uint32_t f = nq_free(b); f; f &= f - 1) {
        struct nq_board c = nq_place(b, f & (0u - f));
        count += nq_serial(&c);
    }
    return count;
}

/* nqueens N DEPTH: serial, then `parallel` from the empty board. */
static __attribute__((unused)) void run_nqueens(const long *p, uint64_t (*parallel)(const struct nq_board *)) {
    if (p[0] < 1 || p[0] > NQ_MAX) die("nqueens: N must be 1..%d", NQ_MAX);
    g_nq.n = (int)p[0];
    g_nq.depth = p[1] < p[0] ? (int)p[1] : g_nq.n; /* a full board is a leaf */
    g_nq.all = (1u << g_nq.n) - 1;
    struct nq_board root = {0, 0, 0, 0};
    uint64_t t0 = now_ns();
    uint64_t s = nq_serial(&root);
    uint64_t t1 = now_ns();
    settle_after_seq();
    uint64_t t2 = now_ns();
    uint64_t r = parallel(&root);
    uint64_t t3 = now_ns();
    report("seq_ns=%llu par_ns=%llu count=%llu ok=%d", (unsigned long long)(t1 - t0),
           (unsigned long long)(t3 - t2), (unsigned long long)r, r == s && s == nq_known[g_nq.n]);
}

/* ---- cilksort N: sort N 32-bit ints, Cilk's mergesort: sort the four
 * quarters (in parallel), merge them pairwise into tmp (in parallel), merge
 * the two halves back; a merge splits its longer input at the middle,
 * binary-searches that value in the other, places it, and merges the two
 * sides in parallel. Cutoffs as Cilk's cilksort: serial quicksort below
 * 2048 elements, serial merge below 2048 (both inputs together). ---- */

#define CS_QUICK_BELOW 2048
#define CS_MERGE_BELOW 2048
#define CS_INSERTION_BELOW 16 /* inside the quicksort */

/* Merge a[0..na) and b[0..nb) (both sorted) into dst. */
struct cs_merge {
    const uint32_t *a;
    size_t na;
    const uint32_t *b;
    size_t nb;
    uint32_t *dst;
};

/* Sort a[0..n) with tmp[0..n) as scratch. */
struct cs_sort {
    uint32_t *a, *tmp;
    size_t n;
};

static void cs_insertion(uint32_t *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

static inline void cs_swap(uint32_t *x, uint32_t *y) {
    uint32_t t = *x;
    *x = *y;
    *y = t;
}

/* Serial quicksort: median-of-three pivot, Hoare partition, recursion on the
 * smaller side, insertion sort for short ranges. */
static void cs_quick(uint32_t *a, size_t n) {
    while (n >= CS_INSERTION_BELOW) {
        size_t mid = n / 2;
        if (a[mid] < a[0]) cs_swap(&a[mid], &a[0]);
        if (a[n - 1] < a[0]) cs_swap(&a[n - 1], &a[0]);
        if (a[n - 1] < a[mid]) cs_swap(&a[n - 1], &a[mid]);
        uint32_t pivot = a[mid];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            cs_swap(&a[i], &a[j]);
            i++;
            j--;
        }
        /* a[0..j] <= pivot <= a[j+1..n) */
        size_t left = j + 1;
        if (left < n - left) {
            cs_quick(a, left);
            a += left;
            n -= left;
        } else {
            cs_quick(a + left, n - left);
            n = left;
        }
    }
    cs_insertion(a, n);
}

static void cs_merge_serial(struct cs_merge m) {
    size_t i = 0, j = 0, k = 0;
    while (i < m.na && j < m.nb) m.dst[k++] = m.b[j] < m.a[i] ? m.b[j++] : m.a[i++];
    if (i < m.na) memcpy(m.dst + k, m.a + i, (m.na - i) * sizeof *m.a);
    if (j < m.nb) memcpy(m.dst + k, m.b + j, (m.nb - j) * sizeof *m.b);
}

/* The first index of b[0..n) whose value is >= v (n if none). */
static size_t cs_lower_bound(const uint32_t *b, size_t n, uint32_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Splits merge `m` into two independent merges *lo and *hi (to run in
 * parallel) and returns 1; or, below the cutoff, merges serially and returns
 * 0. The middle value v of the longer input goes straight to its place in dst:
 * *lo merges what is <= v on the left, *hi what is >= v on the right. */
static __attribute__((unused)) int cs_merge_split(struct cs_merge m, struct cs_merge *lo, struct cs_merge *hi) {
    if (m.na < m.nb) {
        const uint32_t *t = m.a;
        m.a = m.b;
        m.b = t;
        size_t tn = m.na;
        m.na = m.nb;
        m.nb = tn;
    }
    if (m.na + m.nb < CS_MERGE_BELOW || m.nb == 0) {
        cs_merge_serial(m);
        return 0;
    }
    size_t mid = m.na / 2, j = cs_lower_bound(m.b, m.nb, m.a[mid]);
    m.dst[mid + j] = m.a[mid];
    lo->a = m.a;
    lo->na = mid;
    lo->b = m.b;
    lo->nb = j;
    lo->dst = m.dst;
    hi->a = m.a + mid + 1;
    hi->na = m.na - mid - 1;
    hi->b = m.b + j;
    hi->nb = m.nb - j;
    hi->dst = m.dst + mid + j + 1;
    return 1;
}

/* Splits sort `s` into four quarter sorts q[0..4) (to run in parallel), then
 * merges m[0], m[1] (quarters pairwise into tmp, in parallel), then m[2] (the
 * halves back into a), and returns 1; or, below the cutoff, quicksorts and
 * returns 0. */
static __attribute__((unused)) int cs_sort_split(struct cs_sort s, struct cs_sort q[4], struct cs_merge m[3]) {
    if (s.n < CS_QUICK_BELOW) {
        cs_quick(s.a, s.n);
        return 0;
    }
    size_t quarter = s.n / 4;
    for (int i = 0; i < 4; i++) {
        q[i].a = s.a + (size_t)i * quarter;
        q[i].tmp = s.tmp + (size_t)i * quarter;
        q[i].n = i < 3 ? quarter : s.n - 3 * quarter;
    }
    struct cs_merge m0 = {q[0].a, quarter, q[1].a, quarter, s.tmp};
    struct cs_merge m1 = {q[2].a, quarter, q[3].a, q[3].n, q[2].tmp};
    struct cs_merge m2 = {s.tmp, 2 * quarter, q[2].tmp, s.n - 2 * quarter, s.a};
    m[0] = m0;
    m[1] = m1;
    m[2] = m2;
    return 1;
}

/* The serial elision: the same recursion without tasks. */
static void cs_merge_rec_serial(struct cs_merge m) {
    struct cs_merge lo, hi;
    if (!cs_merge_split(m, &lo, &hi)) return;
    cs_merge_rec_serial(lo);
    cs_merge_rec_serial(hi);
}

static void cs_sort_serial(struct cs_sort s) {
    struct cs_sort q[4];
    struct cs_merge m[3];
    if (!cs_sort_split(s, q, m)) return;
    for (int i = 0; i < 4; i++) cs_sort_serial(q[i]);
    for (int i = 0; i < 3; i++) cs_merge_rec_serial(m[i]);
}

static inline uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The input (xorshift64 from a fixed seed, the high 32 bits of each step)
 * and its fingerprint: the sum of the values and the sum of their hashes,
 * which a sort must keep. */
static struct {
    uint32_t *a, *tmp;
    size_t n;
    uint64_t sum, hash_sum;
} g_cs;

static void cs_fill(void) {
    uint64_t x = 0x2545f4914f6cdd1du, sum = 0, hash_sum = 0;
    for (size_t i = 0; i < g_cs.n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t v = (uint32_t)(x >> 32);
        g_cs.a[i] = v;
        sum += v;
        hash_sum += mix64(v);
    }
    g_cs.sum = sum;
    g_cs.hash_sum = hash_sum;
}

/* Sorted, and the same values as the input (by the fingerprint). */
static int cs_check(void) {
    uint64_t sum = 0, hash_sum = 0;
    int sorted = 1;
    for (size_t i = 0; i < g_cs.n; i++) {
        if (i > 0 && g_cs.a[i - 1] > g_cs.a[i]) sorted = 0;
        sum += g_cs.a[i];
        hash_sum += mix64(g_cs.a[i]);
    }
    return sorted && sum == g_cs.sum && hash_sum == g_cs.hash_sum;
}

/* cilksort N: serial, then `parallel`, each on a fresh copy of the input
 * (made and checked outside the timed part). The buffers stay for the
 * process's later runs, so no run but the warm-up takes their page faults. */
static __attribute__((unused)) void run_cilksort(const long *p, void (*parallel)(struct cs_sort)) {
    size_t n = (size_t)p[0];
    if (n != g_cs.n) {
        free(g_cs.a);
        free(g_cs.tmp);
        g_cs.a = (uint32_t *)xmalloc(n * sizeof *g_cs.a);
        g_cs.tmp = (uint32_t *)xmalloc(n * sizeof *g_cs.tmp);
        memset(g_cs.tmp, 0, n * sizeof *g_cs.tmp);
        g_cs.n = n;
    }
    struct cs_sort s = {g_cs.a, g_cs.tmp, n};
    cs_fill();
    uint64_t t0 = now_ns();
    cs_sort_serial(s);
    uint64_t t1 = now_ns();
    int ok = cs_check();
    cs_fill();
    settle_after_seq();
    uint64_t t2 = now_ns();
    parallel(s);
    uint64_t t3 = now_ns();
    ok = ok && cs_check();
    report("seq_ns=%llu par_ns=%llu count=%llu ok=%d", (unsigned long long)(t1 - t0),
           (unsigned long long)(t3 - t2), (unsigned long long)n, ok);
}

/* ---- uts B0 Q_PPM M: count the nodes of an unbalanced tree (a binomial
 * tree, as UTS's T3 family): the root has B0 children; every other node has
 * M children with probability Q_PPM / 1e6, else none. A node is a 64-bit id;
 * its child count and its children's ids are hashes (mix64) of it, so every
 * run on every system walks the same tree. One task per node, no cutoff.
 *
 * With B0 2000, Q 0.124875 (124875 ppm), M 8 (q*m = 0.999) and the root id
 * below, the tree has 4,053,145 nodes and a depth of 1,231 (the deepest leaf
 * 1,231 edges below the root); 506,393 of its nodes below the root have 8
 * children. ---- */

#define UTS_ROOT 42u /* the root's id */

static struct {
    long b0, m;
    uint64_t threshold; /* a node has children if its hash is below: q * 2^64 */
} g_uts;

/* Children of a node other than the root: M or none. */
static inline long uts_kids(uint64_t id) {
    return mix64(id ^ 0xd1b54a32d192ed03u) < g_uts.threshold ? g_uts.m : 0;
}

/* The id of child i of `id`. */
static inline uint64_t uts_child(uint64_t id, long i) {
    return mix64(id + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u);
}

/* Nodes of the subtree of `id` (which has `kids` children), serially. */
static uint64_t uts_serial(uint64_t id, long kids) {
    uint64_t count = 1;
    for (long i = 0; i < kids; i++) {
        uint64_t c = uts_child(id, i);
        count += uts_serial(c, uts_kids(c));
    }
    return count;
}

/* uts B0 Q_PPM M: serial, then `parallel` (which walks from UTS_ROOT with
 * g_uts.b0 children). */
static __attribute__((unused)) void run_uts(const long *p, uint64_t (*parallel)(void)) {
    if (p[0] < 0 || p[1] < 0 || p[1] >= 1000000 || p[2] < 0) die("uts: B0 >= 0, 0 <= Q_PPM < 1e6, M >= 0");
    g_uts.b0 = p[0];
    g_uts.m = p[2];
    g_uts.threshold = (uint64_t)((double)p[1] / 1e6 * 18446744073709551616.0);
    uint64_t t0 = now_ns();
    uint64_t s = uts_serial(UTS_ROOT, g_uts.b0);
    uint64_t t1 = now_ns();
    settle_after_seq();
    uint64_t t2 = now_ns();
    uint64_t r = parallel();
    uint64_t t3 = now_ns();
    report("seq_ns=%llu par_ns=%llu count=%llu ok=%d", (unsigned long long)(t1 - t0),
           (unsigned long long)(t3 - t2), (unsigned long long)r, r == s);
}

/* Runs WORKLOAD WARMUPS RUNS [P1 [P2]] against the program's table. */
static __attribute__((unused)) int peers_main(int argc, char **argv, const struct workload *table, size_t len) {
    long p[3] = {0, 0, 0};
    if (argc < 4) {
        fprintf(stderr, "usage: %s WORKLOAD WARMUPS RUNS [P1 [P2 [P3]]]\n", argv[0]);
        return 2;
    }
    for (int i = 4; i < argc && i < 7; i++) p[i - 4] = atol(argv[i]);
    int warmups = atoi(argv[2]), runs = atoi(argv[3]);
    for (size_t w = 0; w < len; w++) {
        if (strcmp(table[w].name, argv[1]) != 0) continue;
        for (int r = 0; r < warmups + runs; r++) {
            g_measured = r >= warmups;
            table[w].run(p);
        }
        return 0;
    }
    printf("error unknown workload %s\n", argv[1]);
    return 2;
}

#endif /* WSRT_PEERS_COMMON_H */
