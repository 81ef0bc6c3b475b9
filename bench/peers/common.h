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
