/*
 * fork_join.c: divide and conquer with task handles.
 *
 * fib(n) = fib(n-1) + fib(n-2), computed in parallel: each task spawns
 * fib(n-1) as a child task (the "fork"), computes fib(n-2) itself, then
 * waits for the child (the "join"). Below a cutoff it is cheaper to compute
 * sequentially than to spawn, so small problems are not split.
 *
 * Waiting inside a task does not block the worker: wsrt_task_wait, called
 * on a worker thread, runs other queued tasks (often the child itself)
 * until the child is done. That is why this never deadlocks, even with
 * one worker.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/fork_join.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o fork_join
 */
#include "wsrt.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define N 25
#define CUTOFF 15 /* below this, plain recursion */

static wsrt_runtime *rt; /* the tasks spawn their children here */

static int64_t fib_seq(int64_t n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

static int32_t fib_task(void *arg, void **result);

static int64_t fib_par(int64_t n) {
    if (n < CUTOFF)
        return fib_seq(n);

    /* Fork: fib(n-1) becomes a task. Small integers travel in the pointers
       themselves, so there is nothing to allocate or free. */
    wsrt_task *child = NULL;
    if (wsrt_spawn(rt, fib_task, (void *)(intptr_t)(n - 1), NULL, &child) != WSRT_OK)
        return -1;

    /* Meanwhile, compute the other half here. */
    int64_t b = fib_par(n - 2);

    /* Join: wait for the child, read its result, release the handle. */
    wsrt_task_wait(child, -1);
    void *a = NULL;
    wsrt_status s = wsrt_task_result(child, &a);
    wsrt_task_release(child);
    return s == WSRT_OK ? (int64_t)(intptr_t)a + b : -1;
}

/* A task function: arg is n, the result is fib(n). */
static int32_t fib_task(void *arg, void **result) {
    int64_t v = fib_par((int64_t)(intptr_t)arg);
    *result = (void *)(intptr_t)v;
    return v < 0 ? 1 : WSRT_TASK_OK; /* a failure code if something went wrong */
}

int main(void) {
    /* 0 workers: one per CPU. */
    if (wsrt_runtime_new(0, &rt) != WSRT_OK)
        return 1;
    printf("computing fib(%d) on %zu workers\n", N, wsrt_runtime_workers(rt));

    wsrt_task *root = NULL;
    wsrt_spawn(rt, fib_task, (void *)(intptr_t)N, NULL, &root);
    wsrt_task_wait(root, -1);
    void *result = NULL;
    wsrt_status s = wsrt_task_result(root, &result);
    int64_t got = (int64_t)(intptr_t)result;
    wsrt_task_release(root);

    /* Shut down (waits for everything), then read the counters. */
    wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN);
    wsrt_stats st;
    wsrt_runtime_stats(rt, &st);
    wsrt_runtime_free(rt);

    int64_t expected = fib_seq(N);
    printf("fib(%d) = %" PRId64 " (expected %" PRId64 ")\n", N, got, expected);
    printf("%" PRIu64 " tasks spawned, %" PRIu64 " succeeded, %" PRIu64 " stolen\n",
           st.spawned, st.succeeded, st.steals);

    int ok = s == WSRT_OK && got == expected && expected == 75025 &&
             st.spawned == st.succeeded;
    puts(ok ? "fork_join: OK" : "fork_join: UNEXPECTED BEHAVIOUR");
    return ok ? 0 : 1;
}
