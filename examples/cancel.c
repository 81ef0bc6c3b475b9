/*
 * cancel.c: cancelling tasks, the asyncio way.
 *
 * wsrt_task_cancel() is a request:
 *   - a task that has not started (PENDING) is cancelled at once and its
 *     function is never called;
 *   - a task that is running is only asked: it sees wsrt_cancel_requested()
 *     and decides, here by returning WSRT_TASK_CANCELLED;
 *   - a task that is already done cannot be cancelled (cancel returns false).
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/cancel.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o cancel
 */
#define _POSIX_C_SOURCE 200809L /* for sched_yield */

#include "wsrt.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

static atomic_bool worker_started; /* set by the long task when it runs */
static atomic_int chunks_done;     /* how much work the long task did */
static atomic_int quick_calls;     /* how often the quick task ran */

/* A long job, done in small chunks; between chunks it checks whether it was
   asked to stop. */
static int32_t long_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_store(&worker_started, true);
    while (!wsrt_cancel_requested())
        atomic_fetch_add(&chunks_done, 1); /* one chunk of "work" */
    puts("  long job: cancel requested, stopping");
    return WSRT_TASK_CANCELLED; /* end CANCELLED */
}

static int32_t quick_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add(&quick_calls, 1);
    return WSRT_TASK_OK;
}

/* arg_drop: wsrt calls it exactly once when the task is done with its arg,
   even if the function never ran. */
static atomic_int args_dropped;
static void drop_arg(void *arg) {
    (void)arg;
    atomic_fetch_add(&args_dropped, 1);
}

int main(void) {
    int ok = 1;
    wsrt_runtime *rt = NULL;
    if (wsrt_runtime_new(1, &rt) != WSRT_OK) /* a single worker */
        return 1;

    /* 1. Start the long job and wait until the worker runs it. */
    wsrt_task *job = NULL;
    wsrt_spawn(rt, long_job, NULL, NULL, &job);
    while (!atomic_load(&worker_started))
        sched_yield(); /* it starts as soon as the worker picks it up */

    /* 2. The only worker is busy, so this one stays PENDING... */
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = drop_arg;
    wsrt_task *queued = NULL;
    wsrt_spawn(rt, quick_job, NULL, &opts, &queued);

    /* ...and cancelling it ends it right away. */
    bool was_cancelled = wsrt_task_cancel(queued);
    printf("cancel a pending task: %s, now cancelled=%d\n",
           was_cancelled ? "true" : "false", wsrt_task_cancelled(queued));
    ok &= was_cancelled && wsrt_task_cancelled(queued);
    ok &= atomic_load(&args_dropped) == 1; /* its arg was released already */

    /* 3. Cancelling the running job only asks it to stop (it may take a
          moment to notice: it decides when and how to end). */
    was_cancelled = wsrt_task_cancel(job);
    printf("cancel a running task: %s, requested=%d\n",
           was_cancelled ? "true" : "false", wsrt_task_cancel_requested(job));
    ok &= was_cancelled && wsrt_task_cancel_requested(job);

    /* It notices, returns WSRT_TASK_CANCELLED, and ends CANCELLED. */
    wsrt_task_wait(job, -1);
    void *result;
    wsrt_status s = wsrt_task_result(job, &result);
    printf("long job: cancelled=%d after %d chunks, result: %s\n",
           wsrt_task_cancelled(job), atomic_load(&chunks_done), wsrt_status_str(s));
    ok &= wsrt_task_cancelled(job) && s == WSRT_ERR_CANCELLED;

    /* 4. A finished task cannot be cancelled any more. */
    wsrt_task *done = NULL;
    wsrt_spawn(rt, quick_job, NULL, NULL, &done);
    wsrt_task_wait(done, -1);
    was_cancelled = wsrt_task_cancel(done);
    printf("cancel a finished task: %s\n", was_cancelled ? "true" : "false");
    ok &= !was_cancelled && wsrt_task_state(done) == WSRT_STATE_SUCCEEDED;

    wsrt_task_release(job);
    wsrt_task_release(queued);
    wsrt_task_release(done);
    wsrt_runtime_free(rt);

    /* The cancelled quick job never ran; the other one ran once. */
    ok &= atomic_load(&quick_calls) == 1 && atomic_load(&args_dropped) == 1;
    puts(ok ? "cancel: OK" : "cancel: UNEXPECTED BEHAVIOUR");
    return ok ? 0 : 1;
}
