/*
 * helpers.h: the task functions and runtime helpers the topic files
 * (spawn.c, cancel.c, callbacks.c, await.c, join.c, shutdown.c) share: a
 * blocker task that is RUNNING between two events, a counting task, a
 * yielding task, an awaiting task, result_drop functions, and spawn / wait /
 * flush helpers. bad_input.c has its own, simpler blocker and counter and
 * includes only common.h.
 *
 * Every function is static inline (and the two counters are marked unused)
 * so that a file may leave any of them unused under -Werror. The counters
 * are per program: each file checks them over its own tests.
 */
#ifndef WSRT_FFI_TESTS_HELPERS_H
#define WSRT_FFI_TESTS_HELPERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "wsrt.h"

/* ------------------------------------------------------------------ */
/* Task functions                                                      */
/* ------------------------------------------------------------------ */

/*
 * A task that announces it started, then blocks until the test releases it:
 * it is RUNNING, deterministically, between `started` and `release`.
 */
typedef struct {
    event started;
    event release;
    atomic_int calls;
    atomic_int arg_drops;
    atomic_int saw_cancel;  /* wsrt_cancel_requested() was true after release */
    bool honor_cancel;      /* return WSRT_TASK_CANCELLED when asked to */
    int32_t ret;            /* what to return otherwise */
    void *result;           /* what to store in *result */
} blocker;

static inline void blocker_init(blocker *b) {
    event_init(&b->started);
    event_init(&b->release);
    atomic_init(&b->calls, 0);
    atomic_init(&b->arg_drops, 0);
    atomic_init(&b->saw_cancel, 0);
    b->honor_cancel = false;
    b->ret = WSRT_TASK_OK;
    b->result = NULL;
}

static inline void blocker_destroy(blocker *b) {
    event_destroy(&b->started);
    event_destroy(&b->release);
}

static inline int32_t blocker_fn(void *arg, void **result) {
    blocker *b = arg;
    atomic_fetch_add(&b->calls, 1);
    event_set(&b->started);
    event_wait(&b->release);
    if (wsrt_cancel_requested()) {
        atomic_store(&b->saw_cancel, 1);
        if (b->honor_cancel)
            return WSRT_TASK_CANCELLED;
    }
    *result = b->result;
    return b->ret;
}

static inline void blocker_drop(void *arg) {
    blocker *b = arg;
    atomic_fetch_add(&b->arg_drops, 1);
}

/* A task that counts its calls and returns `ret` with `result`. */
typedef struct {
    atomic_int calls;
    atomic_int arg_drops;
    int32_t ret;
    void *result;
} counter;

static inline void counter_init(counter *c, int32_t ret) {
    atomic_init(&c->calls, 0);
    atomic_init(&c->arg_drops, 0);
    c->ret = ret;
    c->result = NULL;
}

static inline int32_t counter_fn(void *arg, void **result) {
    counter *c = arg;
    atomic_fetch_add(&c->calls, 1);
    *result = c->result;
    return c->ret;
}

static inline void counter_drop(void *arg) {
    counter *c = arg;
    atomic_fetch_add(&c->arg_drops, 1);
}

static inline int32_t noop_fn(void *arg, void **result) {
    (void)arg;
    (void)result;
    return WSRT_TASK_OK;
}

/* Results freed by result_drop are counted here. */
static atomic_int __attribute__((unused)) result_drops;

static inline void result_free(void *p) {
    atomic_fetch_add(&result_drops, 1);
    free(p);
}

/* A result_drop that must never be called. */
static atomic_int __attribute__((unused)) bad_result_drops;

static inline void result_must_not_drop(void *p) {
    (void)p;
    atomic_fetch_add(&bad_result_drops, 1);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static inline wsrt_runtime *new_runtime(size_t workers) {
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new(workers, &rt));
    CHECK(rt != NULL);
    CHECK_EQ(wsrt_runtime_workers(rt), workers);
    return rt;
}

static inline wsrt_task *spawn(wsrt_runtime *rt, wsrt_task_fn fn, void *arg,
                        wsrt_drop_fn arg_drop, wsrt_drop_fn result_drop) {
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = arg_drop;
    opts.result_drop = result_drop;
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, fn, arg, &opts, &t));
    CHECK(t != NULL);
    return t;
}

/* Spawns into `group` (NULL: none, or the spawning task's) with
 * WSRT_SPAWN_* `flags`. */
static inline wsrt_task *spawn_into(wsrt_runtime *rt, wsrt_group *group, uint32_t flags,
                                    wsrt_task_fn fn, void *arg, wsrt_drop_fn arg_drop) {
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = arg_drop;
    opts.group = group;
    opts.flags = flags;
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, fn, arg, &opts, &t));
    CHECK(t != NULL);
    return t;
}

/* Spawns a blocker and waits until it runs: the worker is then busy. */
static inline wsrt_task *occupy(wsrt_runtime *rt, blocker *b) {
    wsrt_task *t = spawn(rt, blocker_fn, b, blocker_drop, NULL);
    event_wait(&b->started);
    return t;
}

static inline void wait_ok(wsrt_task *t) {
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK(wsrt_task_done(t));
}

/*
 * On a one-worker runtime: runs an empty task and waits for it. When it has
 * run, every task queued before it has finished completely (the worker ran
 * them one after the other), including dropping its own references.
 */
static inline void flush(wsrt_runtime *rt) {
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL, NULL);
    wait_ok(t);
    wsrt_task_release(t);
}

static inline void free_runtime(wsrt_runtime *rt) { CHECK_OK(wsrt_runtime_free(rt)); }

static inline int32_t alloc_result_fn(void *arg, void **result) {
    int *v = malloc(sizeof *v);
    CHECK(v != NULL);
    *v = (int)(intptr_t)arg;
    *result = v;
    return WSRT_TASK_OK;
}

static inline void check_name(wsrt_task *t, const char *expected) {
    char buf[128];
    memset(buf, 'x', sizeof buf);
    size_t n = wsrt_task_name(t, buf, sizeof buf);
    CHECK_EQ(n, strlen(expected));
    if (strcmp(buf, expected) != 0) {
        fprintf(stderr, "name is \"%s\", expected \"%s\"\n", buf, expected);
        exit(1);
    }
}

/* ------------------------------------------------------------------ */
/* Yielding and awaiting tasks                                         */
/* ------------------------------------------------------------------ */

typedef struct {
    atomic_int calls;
    atomic_int arg_drops;
    int yields; /* yield this many times, then succeed */
} yielder;

static inline void yielder_init(yielder *y, int yields) {
    atomic_init(&y->calls, 0);
    atomic_init(&y->arg_drops, 0);
    y->yields = yields;
}

static inline void yielder_drop(void *arg) {
    yielder *y = arg;
    atomic_fetch_add(&y->arg_drops, 1);
}

static inline int32_t yielder_fn(void *arg, void **result) {
    yielder *y = arg;
    (void)result;
    int call = atomic_fetch_add(&y->calls, 1) + 1;
    /* Each call sees the same arg and no cancel request. */
    CHECK(!wsrt_cancel_requested());
    return call <= y->yields ? WSRT_TASK_YIELD : WSRT_TASK_OK;
}

typedef struct {
    wsrt_task *other;
    atomic_int calls;
    atomic_int arg_drops;
    int32_t await_ret;
    bool other_done_on_resume;
} awaiter;

static inline void awaiter_init(awaiter *a, wsrt_task *other) {
    a->other = other;
    atomic_init(&a->calls, 0);
    atomic_init(&a->arg_drops, 0);
    a->await_ret = 0;
    a->other_done_on_resume = false;
}

static inline int32_t awaiter_fn(void *arg, void **result) {
    awaiter *a = arg;
    (void)result;
    if (atomic_fetch_add(&a->calls, 1) == 0) {
        a->await_ret = wsrt_await(a->other);
        return a->await_ret;
    }
    a->other_done_on_resume = wsrt_task_done(a->other);
    return WSRT_TASK_OK;
}

static inline void awaiter_drop(void *arg) {
    awaiter *a = arg;
    atomic_fetch_add(&a->arg_drops, 1);
}

#endif /* WSRT_FFI_TESTS_HELPERS_H */
