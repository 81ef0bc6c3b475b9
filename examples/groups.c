/*
 * groups.c: structured cancellation, timers and a fork-join, from C.
 *
 * A "search" spawns workers into one group with a deadline. Each worker
 * polls, sleeping between tries without holding a thread (wsrt_sleep), and
 * spawns a helper that joins the same group. The first worker to find the
 * answer cancels the group: the others stop at their next check, pending
 * and sleeping ones end CANCELLED at once; the deadline would have stopped
 * them all otherwise. wsrt_group_wait then waits for every one of them.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c11 -pthread -I include examples/groups.c \
 *      -L target/debug -lwsrt -Wl,-rpath,target/debug -o groups
 */
#include "wsrt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define WORKERS 8
#define MS (1000 * 1000LL)

static atomic_int tries;
static atomic_int helpers_run;

static int32_t helper(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add(&helpers_run, 1);
    return WSRT_TASK_OK;
}

/* Searcher 5 finds the answer on its third try; the others never do. */
typedef struct {
    wsrt_runtime *rt;
    int index;
    int tries;
} searcher;

static int32_t search(void *arg, void **result) {
    searcher *s = arg;
    if (wsrt_cancel_requested()) return WSRT_TASK_CANCELLED;
    atomic_fetch_add(&tries, 1);
    if (++s->tries == 1) {
        /* Spawned inside a grouped task, the helper joins the group. */
        wsrt_spawn(s->rt, helper, NULL, NULL, NULL);
    }
    if (s->index == 5 && s->tries == 3) {
        *result = (void *)(intptr_t)(1000 + s->index);
        wsrt_group_cancel(wsrt_current_group()); /* the others can stop */
        return WSRT_TASK_OK;
    }
    return wsrt_sleep(2 * MS); /* try again in 2 ms, holding no thread */
}

int main(void) {
    wsrt_runtime *rt = NULL;
    if (wsrt_runtime_new(2, &rt) != WSRT_OK) return 1;
    wsrt_group *g = NULL;
    wsrt_group_new(rt, NULL, 0, &g);
    wsrt_group_set_deadline(g, 5000 * MS); /* a bound, should nobody find it */

    searcher args[WORKERS];
    wsrt_task *tasks[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        args[i] = (searcher){.rt = rt, .index = i, .tries = 0};
        wsrt_spawn_opts opts = {0};
        opts.group = g;
        wsrt_spawn(rt, search, &args[i], &opts, &tasks[i]);
    }

    size_t first = 0;
    wsrt_wait_any(tasks, WORKERS, -1, &first); /* the first one done */
    wsrt_group_wait(g, -1);                    /* then all of them */

    int found = 0, cancelled = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *value = NULL;
        wsrt_status s = wsrt_task_join(tasks[i], &value, NULL); /* releases it */
        if (s == WSRT_OK) found = (int)(intptr_t)value;
        if (s == WSRT_ERR_CANCELLED) cancelled++;
    }
    wsrt_group_counts c;
    wsrt_group_stats(g, &c);
    printf("found %d; %d searchers cancelled; group: %llu spawned, %llu succeeded, "
           "%llu cancelled\n",
           found, cancelled, (unsigned long long)c.spawned, (unsigned long long)c.succeeded,
           (unsigned long long)c.cancelled);
    wsrt_group_release(g);
    wsrt_runtime_free(rt);
    return found == 1005 && cancelled == WORKERS - 1 ? 0 : 1;
}
