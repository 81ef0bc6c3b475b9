/*
 * join.c: fork-join through task handles, through the C ABI.
 *
 * Covers: fib(15) where every task spawns a child, computes the other half
 * and joins it with wsrt_task_wait, on one worker (so the waiting task must
 * run its children meanwhile), its result, and the exact stats totals.
 *
 * Races are never ordered by sleeping: on one worker nothing runs in
 * parallel, and every wait is for a task that is certain to finish.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("join: %s\n", name)

/* ------------------------------------------------------------------ */
/* Fork-join through handles                                           */
/* ------------------------------------------------------------------ */

static wsrt_runtime *fib_rt;

static int32_t fib_task(void *arg, void **result);

/* fib(n): spawn fib(n-1) as a child task, compute fib(n-2) here, join. */
static intptr_t fib_split(intptr_t n) {
    if (n < 2)
        return n;
    wsrt_task *child = NULL;
    CHECK_OK(wsrt_spawn(fib_rt, fib_task, (void *)(n - 1), NULL, &child));
    intptr_t b = fib_split(n - 2);
    /* On a worker, waiting runs other tasks (here: the child) meanwhile. */
    CHECK_OK(wsrt_task_wait(child, -1));
    void *a = NULL;
    CHECK_OK(wsrt_task_result(child, &a));
    wsrt_task_release(child);
    return (intptr_t)a + b;
}

static int32_t fib_task(void *arg, void **result) {
    *result = (void *)fib_split((intptr_t)arg);
    return WSRT_TASK_OK;
}

static void test_fork_join(void) {
    SECTION("fork-join fib(15) on one worker");
    fib_rt = new_runtime(1);
    wsrt_task *root = spawn(fib_rt, fib_task, (void *)(intptr_t)15, NULL, NULL);
    wait_ok(root);
    void *r = NULL;
    CHECK_OK(wsrt_task_result(root, &r));
    CHECK_EQ((intptr_t)r, 610);
    wsrt_task_release(root);

    CHECK_OK(wsrt_runtime_shutdown(fib_rt, WSRT_SHUTDOWN_DRAIN));
    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(fib_rt, &st));
    /* fib_split(n) spawns fib(n+1)-1 tasks; plus the root: fib(16) = 987. */
    CHECK_EQ(st.spawned, 987);
    CHECK_EQ(st.succeeded, 987);
    CHECK_EQ(st.failed, 0);
    CHECK_EQ(st.cancelled, 0);
    free_runtime(fib_rt);
    fib_rt = NULL;
}

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_fork_join();

    printf("join: all passed\n");
    return 0;
}
