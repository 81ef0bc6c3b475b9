/*
 * sleep.c: a sleeping task is not done, and holds no thread.
 *
 * A task that calls wsrt_sleep() returns WSRT_TASK_YIELD; it is SUSPENDED
 * until the time has passed, then its function is called again (same arg).
 * Meanwhile its worker runs other tasks: here the runtime has one worker,
 * and a quick task still runs while two tasks sleep. A cancel ends a
 * sleeping task CANCELLED at once; its arg_drop runs then.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/sleep.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o sleep
 */
#define _POSIX_C_SOURCE 200809L /* for sched_yield */

#include "wsrt.h"

#include <sched.h>
#include <stdio.h>

#define MS (1000 * 1000LL)

typedef struct {
    const char *name;
    int64_t sleep_ns;
    int calls;
    int dropped;
} napper;

/* First call: sleep. Second call: done. */
static int32_t nap(void *arg, void **result) {
    napper *n = arg;
    (void)result;
    if (n->calls++ == 0) {
        printf("  %s: going to sleep for %lld ms\n", n->name, (long long)(n->sleep_ns / MS));
        return wsrt_sleep(n->sleep_ns);
    }
    printf("  %s: woke up\n", n->name);
    return WSRT_TASK_OK;
}

static void nap_drop(void *arg) { ((napper *)arg)->dropped++; }

static int32_t quick(void *arg, void **result) {
    (void)arg;
    (void)result;
    puts("  quick: ran while the others slept");
    return WSRT_TASK_OK;
}

static const char *state_name(wsrt_task *t) {
    switch (wsrt_task_state(t)) {
    case WSRT_STATE_PENDING: return "PENDING";
    case WSRT_STATE_RUNNING: return "RUNNING";
    case WSRT_STATE_SUSPENDED: return "SUSPENDED";
    case WSRT_STATE_SUCCEEDED: return "SUCCEEDED";
    case WSRT_STATE_FAILED: return "FAILED";
    case WSRT_STATE_CANCELLED: return "CANCELLED";
    }
    return "?";
}

static wsrt_task *spawn_napper(wsrt_runtime *rt, napper *n) {
    wsrt_spawn_opts opts = {0};
    opts.name = n->name;
    opts.arg_drop = nap_drop;
    wsrt_task *t = NULL;
    wsrt_spawn(rt, nap, n, &opts, &t);
    /* Until its first call has returned (it then sleeps). */
    while (wsrt_task_state(t) == WSRT_STATE_PENDING || wsrt_task_state(t) == WSRT_STATE_RUNNING)
        sched_yield();
    return t;
}

int main(void) {
    wsrt_runtime *rt = NULL;
    if (wsrt_runtime_new(1, &rt) != WSRT_OK) return 1; /* one worker */

    napper short_nap = {"short", 200 * MS, 0, 0};
    napper long_nap = {"long", 3600 * 1000 * MS, 0, 0}; /* an hour: we cancel it */
    wsrt_task *s = spawn_napper(rt, &short_nap);
    wsrt_task *l = spawn_napper(rt, &long_nap);
    printf("short is %s (done: %d), long is %s\n", state_name(s), wsrt_task_done(s),
           state_name(l));

    wsrt_task *q = NULL;
    wsrt_spawn(rt, quick, NULL, NULL, &q);
    wsrt_task_join(q, NULL, NULL); /* the only worker is free */

    wsrt_task_cancel(l);
    printf("long after cancel: %s, arg dropped %d time(s)\n", state_name(l), long_nap.dropped);

    wsrt_task_wait(s, -1);
    printf("short after wait: %s, called %d times\n", state_name(s), short_nap.calls);

    int ok = wsrt_task_state(s) == WSRT_STATE_SUCCEEDED && short_nap.calls == 2 &&
             wsrt_task_state(l) == WSRT_STATE_CANCELLED && long_nap.calls == 1 &&
             long_nap.dropped == 1;
    wsrt_task_release(s);
    wsrt_task_release(l);
    wsrt_runtime_free(rt);
    return ok ? 0 : 1;
}
