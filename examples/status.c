/*
 * status.c: watch a task's status before, during and after it runs.
 *
 * A task moves through PENDING (spawned, waiting for a worker), RUNNING
 * (a worker is calling its function) and finally one of SUCCEEDED, FAILED
 * or CANCELLED. This example makes each state visible on purpose: it uses a
 * runtime with a single worker and keeps that worker busy with a first task
 * until we say "go", so a second task has to wait in the queue.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/status.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o status
 */
#include "wsrt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

/* A "go" signal that the main thread gives to the first task. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool started = false; /* set by the first task when it runs */
static bool go = false;      /* set by main to let it finish */

/* The first task: says it started, then waits for "go". */
static int32_t wait_for_go(void *arg, void **result) {
    (void)arg;
    (void)result;
    pthread_mutex_lock(&mu);
    started = true;
    pthread_cond_broadcast(&cv);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return WSRT_TASK_OK; /* 0: success */
}

/* The second task: computes 6 * 7 and hands it back as its result. */
static int answer = 0;
static int32_t compute(void *arg, void **result) {
    (void)arg;
    answer = 6 * 7;
    *result = &answer; /* the result is any pointer you like */
    return WSRT_TASK_OK;
}

static const char *state_name(wsrt_state s) {
    switch (s) {
    case WSRT_STATE_PENDING: return "PENDING";
    case WSRT_STATE_RUNNING: return "RUNNING";
    case WSRT_STATE_SUSPENDED: return "SUSPENDED";
    case WSRT_STATE_SUCCEEDED: return "SUCCEEDED";
    case WSRT_STATE_FAILED: return "FAILED";
    case WSRT_STATE_CANCELLED: return "CANCELLED";
    }
    return "?";
}

int main(void) {
    int ok = 1;

    /* One worker thread, so that tasks have to take turns. */
    wsrt_runtime *rt = NULL;
    if (wsrt_runtime_new(1, &rt) != WSRT_OK)
        return 1;

    /* Spawn the first task and wait until the worker is running it. */
    wsrt_task *first = NULL;
    wsrt_spawn(rt, wait_for_go, NULL, NULL, &first);
    pthread_mutex_lock(&mu);
    while (!started)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    /* The worker is busy, so the second task waits in the queue. */
    wsrt_task *second = NULL;
    wsrt_spawn(rt, compute, NULL, NULL, &second);
    printf("before: first is %s, second is %s\n",
           state_name(wsrt_task_state(first)), state_name(wsrt_task_state(second)));
    ok &= wsrt_task_state(first) == WSRT_STATE_RUNNING;
    ok &= wsrt_task_state(second) == WSRT_STATE_PENDING;

    /* Asking for a result too early is an error, not a crash. */
    void *result = NULL;
    wsrt_status s = wsrt_task_result(second, &result);
    printf("result of a pending task: %s\n", wsrt_status_str(s));
    ok &= s == WSRT_ERR_INVALID_STATE;

    /* Say "go": the first task finishes, then the worker runs the second. */
    pthread_mutex_lock(&mu);
    go = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);

    /* Block until the second task is done (-1: no time limit). */
    wsrt_task_wait(second, -1);
    printf("after:  first is %s, second is %s\n",
           state_name(wsrt_task_state(first)), state_name(wsrt_task_state(second)));
    ok &= wsrt_task_state(first) == WSRT_STATE_SUCCEEDED;
    ok &= wsrt_task_state(second) == WSRT_STATE_SUCCEEDED;

    /* Now the result is there. */
    s = wsrt_task_result(second, &result);
    ok &= s == WSRT_OK && result == &answer && answer == 42;
    if (s == WSRT_OK)
        printf("result of the second task: %d\n", *(int *)result);

    /* Every handle is released once; the runtime is freed last. */
    wsrt_task_release(first);
    wsrt_task_release(second);
    wsrt_runtime_free(rt);

    puts(ok ? "status: OK" : "status: UNEXPECTED BEHAVIOUR");
    return ok ? 0 : 1;
}
