/*
 * callbacks.c: run code when a task is done.
 *
 * wsrt_task_add_done_callback(task, fn, user) arranges for fn(task, user) to
 * be called once the task is done (SUCCEEDED, FAILED or CANCELLED):
 *   - each callback runs exactly once, in the order they were added, after
 *     the task's state is final;
 *   - a callback removed with wsrt_task_remove_done_callback never runs;
 *   - a callback added to a task that is already done runs immediately,
 *     before wsrt_task_add_done_callback returns.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/callbacks.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o callbacks
 */
#include "wsrt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The callbacks write their names here, so we can check the order. Only one
   task finishes, and its callbacks run one after the other on one thread. */
static char trace[128];

/* A done-callback: `user` is whatever pointer we passed when adding it. */
static void say(wsrt_task *task, void *user) {
    const char *word = user;
    char name[32];
    wsrt_task_name(task, name, sizeof name);
    int32_t code = -1;
    wsrt_task_error(task, &code); /* 0 for a task that succeeded */
    printf("  callback \"%s\": task %s is done (failure code %d)\n", word, name,
           (int)code);
    strcat(trace, word);
    strcat(trace, " ");
}

/* The task waits for a "go" from main, so that all callbacks are in place
   (and one removed) before it can finish. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool go = false;

static int32_t work(void *arg, void **result) {
    (void)arg;
    (void)result;
    pthread_mutex_lock(&mu);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return WSRT_TASK_OK;
}

int main(void) {
    wsrt_runtime *rt = NULL;
    if (wsrt_runtime_new(2, &rt) != WSRT_OK)
        return 1;

    /* Give the task a name: callbacks can print it. */
    wsrt_spawn_opts opts = {0};
    opts.name = "download";
    wsrt_task *task = NULL;
    wsrt_spawn(rt, work, NULL, &opts, &task);

    /* Three callbacks, then one of them removed again (the task cannot
       finish yet: it waits for "go"). */
    printf("adding callbacks \"one\", \"two\", \"three\", removing \"two\"\n");
    static char one[] = "one", two[] = "two", three[] = "three";
    wsrt_task_add_done_callback(task, say, one);
    wsrt_task_add_done_callback(task, say, two);
    wsrt_task_add_done_callback(task, say, three);
    size_t removed = wsrt_task_remove_done_callback(task, say, two);

    /* Let the task finish: its callbacks run on the worker that ran it. */
    pthread_mutex_lock(&mu);
    go = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);

    /* Freeing the runtime waits for every task and its callbacks. The task
       handle stays valid: it is ours until we release it. */
    wsrt_runtime_free(rt);

    /* A callback added now, after the task is done, runs right away. */
    static char late[] = "late";
    printf("adding callback \"late\" to the finished task\n");
    wsrt_task_add_done_callback(task, say, late);
    printf("trace: %s\n", trace);

    int ok = removed == 1 && strcmp(trace, "one three late ") == 0;
    wsrt_task_release(task);
    puts(ok ? "callbacks: OK" : "callbacks: UNEXPECTED BEHAVIOUR");
    return ok ? 0 : 1;
}
