/*
 * test_tasks.c: the asyncio task model through the C ABI, with exact codes
 * and states.
 *
 * Covers: the state of a task before, while and after it runs; polling
 * wsrt_task_done; cancel of a PENDING task, of a RUNNING task (honoured,
 * ignored, or answered by a yield), of a SUSPENDED task (yielded or
 * awaiting) and of a done task; failure codes, results and result_drop;
 * done-callbacks (order, exactly once, final state, thread, removal, added
 * after done); names (default, opts.name, set_name, snprintf truncation);
 * ids; wsrt_current_task; all_tasks and finding a task by its arg;
 * WSRT_TASK_YIELD; wsrt_await (also of a task of another runtime; a
 * request lives only in the run that made it, across a helping wait);
 * wsrt_task_wait timeouts; fork-join through handles on one worker; stats;
 * shutdown DRAIN and CANCEL (queued, suspended and running tasks, children
 * spawned meanwhile, spawns refused afterwards); wsrt_runtime_free from
 * inside a task or a callback; handles after wsrt_runtime_free;
 * wsrt_version and wsrt_status_str.
 *
 * Races are never ordered by sleeping: tasks block on events (a mutex and a
 * condition variable) that the test sets, and a one-worker runtime runs its
 * queue in order. The only polling loops wait for a state that is certain to
 * come, with a deadline so that a bug fails the test instead of hanging it.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static bool event_is_set(event *e) {
    pthread_mutex_lock(&e->mu);
    bool set = e->set;
    pthread_mutex_unlock(&e->mu);
    return set;
}

/* Seconds on the monotonic clock. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A generous deadline for states that are certain to come (valgrind is slow). */
#define DEADLINE_S 120.0

/* Spins (yielding the CPU) until the task reaches `state`. */
static void wait_for_state(wsrt_task *t, wsrt_state state) {
    double end = now_s() + DEADLINE_S;
    while (wsrt_task_state(t) != state) {
        CHECK(now_s() < end);
        sched_yield();
    }
}

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

static void blocker_init(blocker *b) {
    event_init(&b->started);
    event_init(&b->release);
    atomic_init(&b->calls, 0);
    atomic_init(&b->arg_drops, 0);
    atomic_init(&b->saw_cancel, 0);
    b->honor_cancel = false;
    b->ret = WSRT_TASK_OK;
    b->result = NULL;
}

static void blocker_destroy(blocker *b) {
    event_destroy(&b->started);
    event_destroy(&b->release);
}

static int32_t blocker_fn(void *arg, void **result) {
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

static void blocker_drop(void *arg) {
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

static void counter_init(counter *c, int32_t ret) {
    atomic_init(&c->calls, 0);
    atomic_init(&c->arg_drops, 0);
    c->ret = ret;
    c->result = NULL;
}

static int32_t counter_fn(void *arg, void **result) {
    counter *c = arg;
    atomic_fetch_add(&c->calls, 1);
    *result = c->result;
    return c->ret;
}

static void counter_drop(void *arg) {
    counter *c = arg;
    atomic_fetch_add(&c->arg_drops, 1);
}

static int32_t noop_fn(void *arg, void **result) {
    (void)arg;
    (void)result;
    return WSRT_TASK_OK;
}

/* Results freed by result_drop are counted here. */
static atomic_int result_drops;

static void result_free(void *p) {
    atomic_fetch_add(&result_drops, 1);
    free(p);
}

/* A result_drop that must never be called. */
static atomic_int bad_result_drops;

static void result_must_not_drop(void *p) {
    (void)p;
    atomic_fetch_add(&bad_result_drops, 1);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static wsrt_runtime *new_runtime(size_t workers) {
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new(workers, &rt));
    CHECK(rt != NULL);
    CHECK_EQ(wsrt_runtime_workers(rt), workers);
    return rt;
}

static wsrt_task *spawn(wsrt_runtime *rt, wsrt_task_fn fn, void *arg,
                        wsrt_drop_fn arg_drop, wsrt_drop_fn result_drop) {
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = arg_drop;
    opts.result_drop = result_drop;
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, fn, arg, &opts, &t));
    CHECK(t != NULL);
    return t;
}

/* Spawns a blocker and waits until it runs: the worker is then busy. */
static wsrt_task *occupy(wsrt_runtime *rt, blocker *b) {
    wsrt_task *t = spawn(rt, blocker_fn, b, blocker_drop, NULL);
    event_wait(&b->started);
    return t;
}

static void wait_ok(wsrt_task *t) {
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK(wsrt_task_done(t));
}

/*
 * On a one-worker runtime: runs an empty task and waits for it. When it has
 * run, every task queued before it has finished completely (the worker ran
 * them one after the other), including dropping its own references.
 */
static void flush(wsrt_runtime *rt) {
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL, NULL);
    wait_ok(t);
    wsrt_task_release(t);
}

static void free_runtime(wsrt_runtime *rt) { CHECK_OK(wsrt_runtime_free(rt)); }

#define SECTION(name) printf("test_tasks: %s\n", name)

/* ------------------------------------------------------------------ */
/* Status before, while and after running                              */
/* ------------------------------------------------------------------ */

static void test_status_lifecycle(void) {
    SECTION("status before/while/after running");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy, b;
    blocker_init(&busy);
    blocker_init(&b);
    int value = 7;
    b.result = &value;

    wsrt_task *occ = occupy(rt, &busy);
    CHECK_EQ(wsrt_task_state(occ), WSRT_STATE_RUNNING);

    /* The only worker is busy: the new task is PENDING. */
    wsrt_task *t = spawn(rt, blocker_fn, &b, blocker_drop, NULL);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_PENDING);
    CHECK(!wsrt_task_done(t));
    CHECK(!wsrt_task_cancelled(t));
    CHECK(!wsrt_task_cancel_requested(t));
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_INVALID_STATE);
    CHECK(out == &out); /* untouched on error */
    int32_t code = -99;
    CHECK_STATUS(wsrt_task_error(t, &code), WSRT_ERR_INVALID_STATE);
    CHECK_EQ(code, -99);
    CHECK_STATUS(wsrt_task_wait(t, 0), WSRT_ERR_TIMEOUT);

    /* Free the worker: our task starts and blocks: RUNNING. */
    event_set(&busy.release);
    event_wait(&b.started);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_RUNNING);
    CHECK(!wsrt_task_done(t));
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_INVALID_STATE);
    CHECK_STATUS(wsrt_task_error(t, &code), WSRT_ERR_INVALID_STATE);
    CHECK(wsrt_task_done(occ));
    CHECK_EQ(wsrt_task_state(occ), WSRT_STATE_SUCCEEDED);

    /* Let it finish, and poll wsrt_task_done until it is. */
    event_set(&b.release);
    double end = now_s() + DEADLINE_S;
    while (!wsrt_task_done(t)) {
        CHECK(now_s() < end);
        wsrt_status s = wsrt_task_wait(t, 1000000); /* 1 ms */
        CHECK(s == WSRT_OK || s == WSRT_ERR_TIMEOUT);
    }
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    CHECK(!wsrt_task_cancelled(t));
    CHECK_OK(wsrt_task_result(t, &out));
    CHECK(out == &value);
    code = -99;
    CHECK_OK(wsrt_task_error(t, &code));
    CHECK_EQ(code, 0);
    CHECK_EQ(atomic_load(&b.calls), 1);
    CHECK_EQ(atomic_load(&b.arg_drops), 1); /* before the state became final */

    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
    blocker_destroy(&b);
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                        */
/* ------------------------------------------------------------------ */

static void test_cancel_pending(void) {
    SECTION("cancel a PENDING task");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter c;
    counter_init(&c, WSRT_TASK_OK);

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t = spawn(rt, counter_fn, &c, counter_drop, result_must_not_drop);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_PENDING);

    CHECK(wsrt_task_cancel(t));
    /* CANCELLED before cancel returned, and arg_drop ran on this thread. */
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_done(t));
    CHECK(wsrt_task_cancelled(t));
    CHECK(!wsrt_task_cancel_requested(t)); /* it never ran */
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_CANCELLED);
    CHECK(out == &out);
    int32_t code = -99;
    CHECK_STATUS(wsrt_task_error(t, &code), WSRT_ERR_CANCELLED);
    CHECK_EQ(code, -99);
    CHECK_OK(wsrt_task_wait(t, 0));

    /* A second cancel finds it done. */
    CHECK(!wsrt_task_cancel(t));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);

    /* Let the worker reach the queue entry: the function is still not called. */
    event_set(&busy.release);
    wait_ok(occ);
    flush(rt);
    CHECK_EQ(atomic_load(&c.calls), 0);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);

    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&c.calls), 0);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
    blocker_destroy(&busy);
}

static void test_cancel_running(void) {
    SECTION("cancel a RUNNING task that honours the request");
    wsrt_runtime *rt = new_runtime(1);
    blocker b;
    blocker_init(&b);
    b.honor_cancel = true;

    wsrt_task *t = spawn(rt, blocker_fn, &b, blocker_drop, result_must_not_drop);
    event_wait(&b.started);
    CHECK(!wsrt_task_cancel_requested(t));

    CHECK(wsrt_task_cancel(t));
    /* Only a request: the function decides. */
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_RUNNING);
    CHECK(wsrt_task_cancel_requested(t));
    CHECK(!wsrt_task_done(t));
    CHECK(!wsrt_task_cancelled(t));
    CHECK_EQ(atomic_load(&b.arg_drops), 0);
    /* Asking again is still a request, still true. */
    CHECK(wsrt_task_cancel(t));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_RUNNING);

    event_set(&b.release);
    wait_ok(t);
    CHECK_EQ(atomic_load(&b.saw_cancel), 1);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_cancelled(t));
    CHECK(wsrt_task_cancel_requested(t));
    void *out = NULL;
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_CANCELLED);
    CHECK_EQ(atomic_load(&b.calls), 1);
    CHECK_EQ(atomic_load(&b.arg_drops), 1);
    CHECK(!wsrt_task_cancel(t));

    wsrt_task_release(t);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
    blocker_destroy(&b);
}

static void test_cancel_ignored(void) {
    SECTION("cancel a RUNNING task that ignores the request");
    wsrt_runtime *rt = new_runtime(1);
    blocker b;
    blocker_init(&b);
    b.honor_cancel = false;
    int value = 3;
    b.result = &value;

    wsrt_task *t = spawn(rt, blocker_fn, &b, blocker_drop, NULL);
    event_wait(&b.started);
    CHECK(wsrt_task_cancel(t));
    CHECK(wsrt_task_cancel_requested(t));
    event_set(&b.release);
    wait_ok(t);

    CHECK_EQ(atomic_load(&b.saw_cancel), 1);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    CHECK(!wsrt_task_cancelled(t));
    CHECK(wsrt_task_cancel_requested(t));
    void *out = NULL;
    CHECK_OK(wsrt_task_result(t, &out));
    CHECK(out == &value);
    CHECK(!wsrt_task_cancel(t));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);

    wsrt_task_release(t);
    free_runtime(rt);
    blocker_destroy(&b);
}

static void test_cancel_running_then_yield(void) {
    SECTION("cancel a RUNNING task that then yields");
    wsrt_runtime *rt = new_runtime(1);
    blocker b;
    blocker_init(&b);
    b.honor_cancel = false;
    b.ret = WSRT_TASK_YIELD; /* it asks to run again */

    wsrt_task *t = spawn(rt, blocker_fn, &b, blocker_drop, NULL);
    event_wait(&b.started);
    CHECK(wsrt_task_cancel(t));
    event_set(&b.release);
    wait_ok(t);

    /* Suspending with a cancel request pending ends it: not called again. */
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_cancelled(t));
    CHECK_EQ(atomic_load(&b.arg_drops), 1);
    flush(rt);
    CHECK_EQ(atomic_load(&b.calls), 1);

    wsrt_task_release(t);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&b.calls), 1);
    CHECK_EQ(atomic_load(&b.arg_drops), 1);
    blocker_destroy(&b);
}

static void test_cancel_done(void) {
    SECTION("cancel a done task");
    wsrt_runtime *rt = new_runtime(1);
    counter ok, bad;
    counter_init(&ok, WSRT_TASK_OK);
    counter_init(&bad, 9);
    wsrt_task *a = spawn(rt, counter_fn, &ok, counter_drop, NULL);
    wsrt_task *b = spawn(rt, counter_fn, &bad, counter_drop, NULL);
    wait_ok(a);
    wait_ok(b);

    CHECK(!wsrt_task_cancel(a));
    CHECK(!wsrt_task_cancel(b));
    CHECK_EQ(wsrt_task_state(a), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(wsrt_task_state(b), WSRT_STATE_FAILED);
    CHECK(!wsrt_task_cancel_requested(a));
    CHECK(!wsrt_task_cancelled(a));
    CHECK(!wsrt_task_cancelled(b));
    int32_t code = -99;
    CHECK_OK(wsrt_task_error(b, &code));
    CHECK_EQ(code, 9);

    wsrt_task_release(a);
    wsrt_task_release(b);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&ok.calls), 1);
    CHECK_EQ(atomic_load(&bad.calls), 1);
    CHECK_EQ(atomic_load(&ok.arg_drops), 1);
    CHECK_EQ(atomic_load(&bad.arg_drops), 1);
}

/* ------------------------------------------------------------------ */
/* Failure codes, results, result_drop                                 */
/* ------------------------------------------------------------------ */

static int32_t self_cancel_fn(void *arg, void **result) {
    (void)arg;
    *result = &result_drops; /* ignored: only a SUCCEEDED task keeps a result */
    return WSRT_TASK_CANCELLED;
}

static void test_failure_and_results(void) {
    SECTION("failure codes and results");
    wsrt_runtime *rt = new_runtime(1);
    int dummy = 0;

    counter failing;
    counter_init(&failing, 42);
    failing.result = &dummy; /* set, but a failed task has no result */
    wsrt_task *f = spawn(rt, counter_fn, &failing, counter_drop, result_must_not_drop);

    counter negative;
    counter_init(&negative, -1000);
    wsrt_task *n = spawn(rt, counter_fn, &negative, NULL, NULL);

    wsrt_task *sc = spawn(rt, self_cancel_fn, NULL, NULL, result_must_not_drop);

    counter ok;
    counter_init(&ok, WSRT_TASK_OK);
    ok.result = &dummy;
    wsrt_task *s = spawn(rt, counter_fn, &ok, NULL, NULL);

    wait_ok(f);
    wait_ok(n);
    wait_ok(sc);
    wait_ok(s);

    /* return 42 -> FAILED, result -> WSRT_ERR_FAILED, error -> 42 */
    CHECK_EQ(wsrt_task_state(f), WSRT_STATE_FAILED);
    CHECK(!wsrt_task_cancelled(f));
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(f, &out), WSRT_ERR_FAILED);
    CHECK(out == &out);
    int32_t code = 0;
    CHECK_OK(wsrt_task_error(f, &code));
    CHECK_EQ(code, 42);
    CHECK_EQ(atomic_load(&failing.arg_drops), 1);

    /* Any value other than 0, -1, -2 is a failure code. */
    CHECK_EQ(wsrt_task_state(n), WSRT_STATE_FAILED);
    CHECK_OK(wsrt_task_error(n, &code));
    CHECK_EQ(code, -1000);

    /* A task may end itself CANCELLED without a request. */
    CHECK_EQ(wsrt_task_state(sc), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_cancelled(sc));
    CHECK(!wsrt_task_cancel_requested(sc));
    CHECK_STATUS(wsrt_task_result(sc, &out), WSRT_ERR_CANCELLED);
    code = -99;
    CHECK_STATUS(wsrt_task_error(sc, &code), WSRT_ERR_CANCELLED);
    CHECK_EQ(code, -99);

    /* wsrt_task_error of a SUCCEEDED task gives 0. */
    CHECK_EQ(wsrt_task_state(s), WSRT_STATE_SUCCEEDED);
    code = -99;
    CHECK_OK(wsrt_task_error(s, &code));
    CHECK_EQ(code, 0);
    CHECK_OK(wsrt_task_result(s, &out));
    CHECK(out == &dummy);
    /* Reading the result twice gives it twice (it stays owned by the task). */
    out = NULL;
    CHECK_OK(wsrt_task_result(s, &out));
    CHECK(out == &dummy);

    wsrt_task_release(f);
    wsrt_task_release(n);
    wsrt_task_release(sc);
    wsrt_task_release(s);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
}

static int32_t alloc_result_fn(void *arg, void **result) {
    int *v = malloc(sizeof *v);
    CHECK(v != NULL);
    *v = (int)(intptr_t)arg;
    *result = v;
    return WSRT_TASK_OK;
}

static void test_result_drop(void) {
    SECTION("result_drop runs once, with the last handle");
    wsrt_runtime *rt = new_runtime(1);
    atomic_store(&result_drops, 0);

    wsrt_task *h1 = spawn(rt, alloc_result_fn, (void *)(intptr_t)77, NULL, result_free);
    wsrt_task *h2 = wsrt_task_retain(h1);
    CHECK(h2 == h1);
    wait_ok(h1);
    /* The worker that ran the task may hold its own reference for a moment
       after the task is done; once it has run the next task it has dropped
       it, and the handles are the only references left. */
    flush(rt);
    void *out = NULL;
    CHECK_OK(wsrt_task_result(h2, &out));
    CHECK(out != NULL && *(int *)out == 77);

    wsrt_task_release(h1);
    CHECK_EQ(atomic_load(&result_drops), 0); /* h2 still holds it */
    CHECK_OK(wsrt_task_result(h2, &out));
    CHECK_EQ(*(int *)out, 77);
    wsrt_task_release(h2);
    CHECK_EQ(atomic_load(&result_drops), 1);

    /* A detached task's result is dropped once too, when it is freed. */
    CHECK_OK(wsrt_spawn(rt, alloc_result_fn, (void *)(intptr_t)5,
                        &(wsrt_spawn_opts){.result_drop = result_free}, NULL));
    flush(rt);
    CHECK_EQ(atomic_load(&result_drops), 2);

    free_runtime(rt);
    CHECK_EQ(atomic_load(&result_drops), 2);
}

/* ------------------------------------------------------------------ */
/* Done-callbacks                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    int n;
    int order[16];
    wsrt_state states[16];
    bool done[16];
    int arg_drops[16];  /* the task's arg_drop count when the callback ran */
    pthread_t threads[16];
    event last;         /* set by the callback whose id is `last_id` */
    int last_id;
    counter *task_arg;  /* the counter the task runs with */
} cb_log;

typedef struct {
    cb_log *log;
    int id;
} cb_entry;

static void cb_log_init(cb_log *log, counter *task_arg, int last_id) {
    CHECK(pthread_mutex_init(&log->mu, NULL) == 0);
    log->n = 0;
    event_init(&log->last);
    log->last_id = last_id;
    log->task_arg = task_arg;
}

static void cb_log_destroy(cb_log *log) {
    event_destroy(&log->last);
    pthread_mutex_destroy(&log->mu);
}

static void log_cb(wsrt_task *t, void *user) {
    cb_entry *e = user;
    cb_log *log = e->log;
    pthread_mutex_lock(&log->mu);
    CHECK(log->n < 16);
    int i = log->n++;
    log->order[i] = e->id;
    log->states[i] = wsrt_task_state(t);
    log->done[i] = wsrt_task_done(t);
    log->arg_drops[i] = log->task_arg ? atomic_load(&log->task_arg->arg_drops) : -1;
    log->threads[i] = pthread_self();
    pthread_mutex_unlock(&log->mu);
    if (e->id == log->last_id)
        event_set(&log->last);
}

static void never_cb(wsrt_task *t, void *user) {
    (void)t;
    (void)user;
    fprintf(stderr, "a removed callback ran\n");
    exit(1);
}

static void test_callbacks(void) {
    SECTION("done-callbacks: order, once, final state, removal");
    wsrt_runtime *rt = new_runtime(1);
    pthread_t main_thread = pthread_self();
    blocker busy;
    blocker_init(&busy);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    cb_log log;
    cb_log_init(&log, &c, 3);
    cb_entry e1 = {&log, 1}, e2 = {&log, 2}, e3 = {&log, 3};
    int other_user = 0;

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_PENDING);

    /* The first entry sits in the task's slot, the others in its list:
       removal and order must not care. */
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &other_user));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e2));
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &other_user));
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e3));

    /* (cb, user) added twice is removed twice; the user pointer matters. */
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &other_user), 2);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &other_user), 0);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &e1), 1);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &e2), 0);
    CHECK_EQ(wsrt_task_remove_done_callback(t, log_cb, &other_user), 0);

    event_set(&busy.release);
    wait_ok(t);
    event_wait(&log.last);
    flush(rt);

    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(log.order[i], i + 1);
        CHECK_EQ(log.states[i], WSRT_STATE_SUCCEEDED);
        CHECK(log.done[i]);
        CHECK_EQ(log.arg_drops[i], 1); /* arg_drop runs before the callbacks */
        /* Finished by the worker: the callbacks ran there. */
        CHECK(!pthread_equal(log.threads[i], main_thread));
        CHECK(pthread_equal(log.threads[i], log.threads[0]));
    }
    pthread_mutex_unlock(&log.mu);

    /* Removing after they ran removes nothing. */
    CHECK_EQ(wsrt_task_remove_done_callback(t, log_cb, &e1), 0);

    /* Added after done: runs now, on this thread, before add returns. */
    cb_entry e4 = {&log, 4};
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e4));
    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 4);
    CHECK_EQ(log.order[3], 4);
    CHECK_EQ(log.states[3], WSRT_STATE_SUCCEEDED);
    CHECK(pthread_equal(log.threads[3], main_thread));
    pthread_mutex_unlock(&log.mu);

    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(log.n, 4); /* nothing ran twice */
    cb_log_destroy(&log);
    blocker_destroy(&busy);
}

static void test_callbacks_on_cancel(void) {
    SECTION("done-callbacks of a cancelled PENDING task run in cancel()");
    wsrt_runtime *rt = new_runtime(1);
    pthread_t main_thread = pthread_self();
    blocker busy;
    blocker_init(&busy);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    cb_log log;
    cb_log_init(&log, &c, 2);
    cb_entry e1 = {&log, 1}, e2 = {&log, 2};

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e2));
    CHECK(wsrt_task_cancel(t));

    /* Before cancel returned, on this thread, after arg_drop. */
    CHECK(event_is_set(&log.last));
    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(log.order[i], i + 1);
        CHECK_EQ(log.states[i], WSRT_STATE_CANCELLED);
        CHECK_EQ(log.arg_drops[i], 1);
        CHECK(pthread_equal(log.threads[i], main_thread));
    }
    pthread_mutex_unlock(&log.mu);

    event_set(&busy.release);
    wait_ok(occ);
    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(log.n, 2);
    CHECK_EQ(atomic_load(&c.calls), 0);
    cb_log_destroy(&log);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* Names, ids, current task                                            */
/* ------------------------------------------------------------------ */

static void check_name(wsrt_task *t, const char *expected) {
    char buf[128];
    memset(buf, 'x', sizeof buf);
    size_t n = wsrt_task_name(t, buf, sizeof buf);
    CHECK_EQ(n, strlen(expected));
    if (strcmp(buf, expected) != 0) {
        fprintf(stderr, "name is \"%s\", expected \"%s\"\n", buf, expected);
        exit(1);
    }
}

static void test_names(void) {
    SECTION("names");
    wsrt_runtime *rt = new_runtime(1);

    /* Default: "Task-<id>", with opts NULL or opts.name NULL. */
    wsrt_task *a = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, NULL, &a));
    wsrt_task *b = spawn(rt, noop_fn, NULL, NULL, NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "Task-%" PRIu64, wsrt_task_id(a));
    check_name(a, expected);
    snprintf(expected, sizeof expected, "Task-%" PRIu64, wsrt_task_id(b));
    check_name(b, expected);

    /* opts.name is copied. */
    char name[] = "fetch-7";
    wsrt_spawn_opts opts = {0};
    opts.name = name;
    wsrt_task *c = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, &opts, &c));
    name[0] = 'X';
    check_name(c, "fetch-7");

    /* set_name at any time: before and after done. */
    CHECK_OK(wsrt_task_set_name(c, "renamed"));
    check_name(c, "renamed");
    wait_ok(c);
    CHECK_OK(wsrt_task_set_name(c, "after-done"));
    check_name(c, "after-done");
    CHECK_OK(wsrt_task_set_name(c, "renamed"));

    /* snprintf rules: at most cap-1 bytes and a NUL; returns the full length. */
    char buf[16];
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 4), 7);
    CHECK(memcmp(buf, "ren\0", 4) == 0);
    CHECK_EQ(buf[4], 'x'); /* nothing written past cap */

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 1), 7);
    CHECK_EQ(buf[0], '\0');
    CHECK_EQ(buf[1], 'x');

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 0), 7); /* cap 0: nothing written */
    CHECK_EQ(buf[0], 'x');
    CHECK_EQ(wsrt_task_name(c, NULL, 0), 7); /* buf may be NULL with cap 0 */

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 7), 7); /* one short: "rename" */
    CHECK(strcmp(buf, "rename") == 0);
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 8), 7); /* exactly fits */
    CHECK(strcmp(buf, "renamed") == 0);

    /* The empty name and a multi-byte UTF-8 name. */
    CHECK_OK(wsrt_task_set_name(c, ""));
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, sizeof buf), 0);
    CHECK_EQ(buf[0], '\0');
    CHECK_OK(wsrt_task_set_name(c, "t\xc3\xa2" "che")); /* "tâche": 6 bytes */
    check_name(c, "t\xc3\xa2" "che");

    /* Invalid UTF-8 leaves the name as it was. */
    CHECK_STATUS(wsrt_task_set_name(c, "\xff\xfe"), WSRT_ERR_INVALID_ARG);
    check_name(c, "t\xc3\xa2" "che");

    wait_ok(a);
    wait_ok(b);
    wsrt_task_release(a);
    wsrt_task_release(b);
    wsrt_task_release(c);
    free_runtime(rt);
}

typedef struct {
    uint64_t id;        /* wsrt_task_id(wsrt_current_task()) */
    void *arg;          /* wsrt_task_arg(wsrt_current_task()) */
    uint64_t child_id;  /* id of a task spawned from inside */
    bool cancel_requested;
    wsrt_runtime *rt;
} whoami;

static int32_t whoami_fn(void *arg, void **result) {
    whoami *w = arg;
    (void)result;
    wsrt_task *me = wsrt_current_task();
    CHECK(me != NULL);
    w->id = wsrt_task_id(me);
    w->arg = wsrt_task_arg(me);
    w->cancel_requested = wsrt_cancel_requested();
    if (w->rt != NULL) {
        wsrt_task *child = NULL;
        CHECK_OK(wsrt_spawn(w->rt, noop_fn, NULL, NULL, &child));
        w->child_id = wsrt_task_id(child);
        CHECK_OK(wsrt_task_wait(child, -1));
        wsrt_task_release(child);
    }
    return WSRT_TASK_OK;
}

static void test_ids_and_current_task(void) {
    SECTION("ids and wsrt_current_task");
    wsrt_runtime *rt = new_runtime(2);

    CHECK(wsrt_current_task() == NULL);
    CHECK(!wsrt_cancel_requested());

    enum { N = 6 };
    whoami w[N];
    wsrt_task *t[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        w[i].rt = (i % 2) ? rt : NULL;
        t[i] = spawn(rt, whoami_fn, &w[i], NULL, NULL);
        CHECK(wsrt_task_id(t[i]) != 0);
        if (i > 0)
            CHECK(wsrt_task_id(t[i]) > wsrt_task_id(t[i - 1]));
    }
    for (int i = 0; i < N; i++) {
        wait_ok(t[i]);
        CHECK_EQ(wsrt_task_state(t[i]), WSRT_STATE_SUCCEEDED);
        CHECK_EQ(w[i].id, wsrt_task_id(t[i]));
        CHECK(w[i].arg == &w[i]);
        CHECK(wsrt_task_arg(t[i]) == &w[i]);
        CHECK(!w[i].cancel_requested);
        if (w[i].rt != NULL) /* spawned later than its parent */
            CHECK(w[i].child_id > wsrt_task_id(t[i]));
    }
    CHECK(wsrt_current_task() == NULL);

    for (int i = 0; i < N; i++)
        wsrt_task_release(t[i]);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ */
/* all_tasks and wsrt_task_arg                                         */
/* ------------------------------------------------------------------ */

static void test_all_tasks(void) {
    SECTION("wsrt_runtime_all_tasks and finding a task by its arg");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter c[3];
    for (int i = 0; i < 3; i++)
        counter_init(&c[i], WSRT_TASK_OK);

    size_t len = 99;
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t0 = spawn(rt, counter_fn, &c[0], counter_drop, NULL);
    wsrt_task *t1 = spawn(rt, counter_fn, &c[1], counter_drop, NULL);
    /* c[2] is detached: no handle, reachable only through all_tasks. */
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    CHECK_OK(wsrt_spawn(rt, counter_fn, &c[2], &opts, NULL));

    /* Count only. */
    len = 0;
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 4);

    /* cap smaller than the total: the total is still reported. */
    wsrt_task *buf[8] = {0};
    len = 0;
    CHECK_OK(wsrt_runtime_all_tasks(rt, buf, 2, &len));
    CHECK_EQ(len, 4);
    CHECK(buf[0] != NULL && buf[1] != NULL);
    CHECK(buf[2] == NULL);
    wsrt_task_release(buf[0]);
    wsrt_task_release(buf[1]);

    /* Everything, then find the detached task by its arg. */
    memset(buf, 0, sizeof buf);
    CHECK_OK(wsrt_runtime_all_tasks(rt, buf, 8, &len));
    CHECK_EQ(len, 4);
    wsrt_task *found = NULL;
    int seen_occ = 0, seen_t0 = 0, seen_t1 = 0;
    for (size_t i = 0; i < len; i++) {
        CHECK(buf[i] != NULL);
        CHECK(!wsrt_task_done(buf[i]));
        void *arg = wsrt_task_arg(buf[i]);
        if (arg == &c[2])
            found = wsrt_task_retain(buf[i]);
        seen_occ += wsrt_task_id(buf[i]) == wsrt_task_id(occ);
        seen_t0 += wsrt_task_id(buf[i]) == wsrt_task_id(t0);
        seen_t1 += wsrt_task_id(buf[i]) == wsrt_task_id(t1);
        wsrt_task_release(buf[i]);
    }
    CHECK_EQ(seen_occ, 1);
    CHECK_EQ(seen_t0, 1);
    CHECK_EQ(seen_t1, 1);
    CHECK(found != NULL);
    CHECK(wsrt_task_arg(t0) == &c[0]);
    CHECK_EQ(wsrt_task_state(found), WSRT_STATE_PENDING);
    CHECK(wsrt_task_id(found) > wsrt_task_id(t1));

    /* The handle from all_tasks is a real handle: cancel through it. */
    CHECK(wsrt_task_cancel(found));
    CHECK_EQ(wsrt_task_state(found), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&c[2].arg_drops), 1);
    CHECK(wsrt_task_arg(found) == &c[2]); /* still the same pointer value */
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 3); /* done tasks are not listed */

    event_set(&busy.release);
    wait_ok(t0);
    wait_ok(t1);
    flush(rt);
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);
    CHECK_EQ(atomic_load(&c[0].calls), 1);
    CHECK_EQ(atomic_load(&c[1].calls), 1);
    CHECK_EQ(atomic_load(&c[2].calls), 0);

    wsrt_task_release(found);
    wsrt_task_release(t0);
    wsrt_task_release(t1);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* WSRT_TASK_YIELD                                                     */
/* ------------------------------------------------------------------ */

typedef struct {
    atomic_int calls;
    atomic_int arg_drops;
    int yields; /* yield this many times, then succeed */
} yielder;

static void yielder_init(yielder *y, int yields) {
    atomic_init(&y->calls, 0);
    atomic_init(&y->arg_drops, 0);
    y->yields = yields;
}

static void yielder_drop(void *arg) {
    yielder *y = arg;
    atomic_fetch_add(&y->arg_drops, 1);
}

static int32_t yielder_fn(void *arg, void **result) {
    yielder *y = arg;
    (void)result;
    int call = atomic_fetch_add(&y->calls, 1) + 1;
    /* Each call sees the same arg and no cancel request. */
    CHECK(!wsrt_cancel_requested());
    return call <= y->yields ? WSRT_TASK_YIELD : WSRT_TASK_OK;
}

/* A probe that records the state of another task when it runs. */
typedef struct {
    wsrt_task *target;   /* set by the test before the probe can run */
    wsrt_state seen;
    int target_calls;    /* the yielder's call count when the probe ran */
    yielder *y;
} probe;

static int32_t probe_fn(void *arg, void **result) {
    probe *p = arg;
    (void)result;
    p->seen = wsrt_task_state(p->target);
    p->target_calls = atomic_load(&p->y->calls);
    return WSRT_TASK_OK;
}

static void test_yield(void) {
    SECTION("WSRT_TASK_YIELD");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    yielder y;
    yielder_init(&y, 3);
    probe p = {NULL, WSRT_STATE_PENDING, 0, &y};

    /*
     * Worker busy; queue: yielder, probe. The yielder runs once and yields:
     * a yielded task runs again after the work already queued, so the probe
     * runs next and sees it SUSPENDED after exactly one call.
     */
    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *yt = spawn(rt, yielder_fn, &y, NULL, NULL);
    p.target = yt;
    wsrt_task *pt = spawn(rt, probe_fn, &p, NULL, NULL);
    event_set(&busy.release);

    wait_ok(yt);
    wait_ok(pt);
    CHECK_EQ(p.seen, WSRT_STATE_SUSPENDED);
    CHECK_EQ(p.target_calls, 1);
    CHECK_EQ(atomic_load(&y.calls), 4);
    CHECK_EQ(wsrt_task_state(yt), WSRT_STATE_SUCCEEDED);
    CHECK(!wsrt_task_cancel_requested(yt));

    wsrt_task_release(yt);
    wsrt_task_release(pt);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&y.calls), 4);
    blocker_destroy(&busy);
}

/* Cancels `target` from inside a task and records what it saw. */
typedef struct {
    wsrt_task *target;
    wsrt_state before;
    bool ret;
    wsrt_state after;
    int drops_after;
    yielder *y;
} canceller;

static int32_t canceller_fn(void *arg, void **result) {
    canceller *k = arg;
    (void)result;
    k->before = wsrt_task_state(k->target);
    k->ret = wsrt_task_cancel(k->target);
    k->after = wsrt_task_state(k->target);
    k->drops_after = atomic_load(&k->y->arg_drops);
    return WSRT_TASK_OK;
}

static void test_cancel_yielded(void) {
    SECTION("cancel a SUSPENDED (yielded) task");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    yielder y;
    yielder_init(&y, 1000000); /* would yield for a long time */
    canceller k = {NULL, WSRT_STATE_PENDING, false, WSRT_STATE_PENDING, -1, &y};

    /* As in test_yield: the canceller runs right after the first yield. */
    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *yt = spawn(rt, yielder_fn, &y, yielder_drop, result_must_not_drop);
    k.target = yt;
    wsrt_task *kt = spawn(rt, canceller_fn, &k, NULL, NULL);
    event_set(&busy.release);
    wait_ok(kt);
    wait_ok(yt);

    CHECK_EQ(k.before, WSRT_STATE_SUSPENDED);
    CHECK(k.ret);
    CHECK_EQ(k.after, WSRT_STATE_CANCELLED);
    CHECK_EQ(k.drops_after, 1);
    CHECK_EQ(wsrt_task_state(yt), WSRT_STATE_CANCELLED);
    flush(rt); /* its queue entry is reached and skipped */
    CHECK_EQ(atomic_load(&y.calls), 1);

    wsrt_task_release(yt);
    wsrt_task_release(kt);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&y.calls), 1);
    CHECK_EQ(atomic_load(&y.arg_drops), 1);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* wsrt_await                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    wsrt_task *other;
    atomic_int calls;
    atomic_int arg_drops;
    int32_t await_ret;
    bool other_done_on_resume;
} awaiter;

static void awaiter_init(awaiter *a, wsrt_task *other) {
    a->other = other;
    atomic_init(&a->calls, 0);
    atomic_init(&a->arg_drops, 0);
    a->await_ret = 0;
    a->other_done_on_resume = false;
}

static int32_t awaiter_fn(void *arg, void **result) {
    awaiter *a = arg;
    (void)result;
    if (atomic_fetch_add(&a->calls, 1) == 0) {
        a->await_ret = wsrt_await(a->other);
        return a->await_ret;
    }
    a->other_done_on_resume = wsrt_task_done(a->other);
    return WSRT_TASK_OK;
}

static void awaiter_drop(void *arg) {
    awaiter *a = arg;
    atomic_fetch_add(&a->arg_drops, 1);
}

static void test_await(void) {
    SECTION("wsrt_await");
    /* Two workers: one is blocked in B, the other runs A. */
    wsrt_runtime *rt = new_runtime(2);

    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt, &b);
    awaiter a;
    awaiter_init(&a, bt);
    wsrt_task *at = spawn(rt, awaiter_fn, &a, awaiter_drop, NULL);

    /* A runs once, awaits B, and is SUSPENDED (not done) until B is. */
    wait_for_state(at, WSRT_STATE_SUSPENDED);
    CHECK_EQ(atomic_load(&a.calls), 1);
    CHECK_EQ(a.await_ret, WSRT_TASK_YIELD);
    CHECK(!wsrt_task_done(at));
    CHECK_STATUS(wsrt_task_wait(at, 0), WSRT_ERR_TIMEOUT);
    void *out = NULL;
    CHECK_STATUS(wsrt_task_result(at, &out), WSRT_ERR_INVALID_STATE);
    CHECK_EQ(atomic_load(&a.arg_drops), 0);

    event_set(&b.release);
    wait_ok(at);
    CHECK_EQ(wsrt_task_state(at), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&a.calls), 2);
    CHECK(a.other_done_on_resume);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);

    /* Awaiting a task that is already done resumes at once. */
    awaiter a2;
    awaiter_init(&a2, bt);
    wsrt_task *at2 = spawn(rt, awaiter_fn, &a2, awaiter_drop, NULL);
    wait_ok(at2);
    CHECK_EQ(wsrt_task_state(at2), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&a2.calls), 2);

    /* wsrt_await(NULL) is a plain yield. */
    awaiter a3;
    awaiter_init(&a3, NULL);
    wsrt_task *at3 = spawn(rt, awaiter_fn, &a3, awaiter_drop, NULL);
    wait_ok(at3);
    CHECK_EQ(wsrt_task_state(at3), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&a3.calls), 2);
    CHECK_EQ(a3.await_ret, WSRT_TASK_YIELD);

    wsrt_task_release(at);
    wsrt_task_release(at2);
    wsrt_task_release(at3);
    wsrt_task_release(bt);
    free_runtime(rt);
    blocker_destroy(&b);
}

static void test_await_other_runtime(void) {
    SECTION("wsrt_await a task of another runtime");
    wsrt_runtime *rt1 = new_runtime(1);
    wsrt_runtime *rt2 = new_runtime(1);
    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt2, &b);
    awaiter a;
    awaiter_init(&a, bt);
    wsrt_task *at = spawn(rt1, awaiter_fn, &a, awaiter_drop, NULL);
    wait_for_state(at, WSRT_STATE_SUSPENDED);
    CHECK_EQ(atomic_load(&a.calls), 1);

    event_set(&b.release);
    wait_ok(at);
    CHECK_EQ(wsrt_task_state(at), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&a.calls), 2);
    CHECK(a.other_done_on_resume);

    wsrt_task_release(at);
    wsrt_task_release(bt);
    free_runtime(rt2);
    free_runtime(rt1);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    blocker_destroy(&b);
}

/* An outer task asks to await B, then (before it returns) waits for an
 * inner task, which the helping wait runs on the same worker: the inner
 * task's plain yields must stay plain yields, and the outer's request must
 * still be there when it returns. */
typedef struct {
    wsrt_runtime *rt;
    wsrt_task *other;
    atomic_int calls;
    atomic_int inner_calls;
    wsrt_state inner_state;
    wsrt_status inner_wait;
} nested_awaiter;

static int32_t inner_yields_once(void *arg, void **result) {
    nested_awaiter *n = arg;
    (void)result;
    return atomic_fetch_add(&n->inner_calls, 1) == 0 ? WSRT_TASK_YIELD : WSRT_TASK_OK;
}

static int32_t outer_awaits_then_helps(void *arg, void **result) {
    nested_awaiter *n = arg;
    (void)result;
    if (atomic_fetch_add(&n->calls, 1) > 0) return WSRT_TASK_OK;
    int32_t ret = wsrt_await(n->other);
    wsrt_task *inner = spawn(n->rt, inner_yields_once, n, NULL, NULL);
    n->inner_wait = wsrt_task_wait(inner, 10 * 1000 * 1000 * 1000LL);
    n->inner_state = wsrt_task_state(inner);
    wsrt_task_release(inner);
    return ret;
}

/* Asks to await B, then returns OK: the request has nothing to do. */
static int32_t awaits_then_returns(void *arg, void **result) {
    awaiter *a = arg;
    (void)result;
    atomic_fetch_add(&a->calls, 1);
    a->await_ret = wsrt_await(a->other);
    return WSRT_TASK_OK;
}

static void test_await_requests_stay_with_their_run(void) {
    SECTION("wsrt_await: a request belongs to the run that made it");
    /* One worker, so the helping wait runs the inner task; B blocks the
     * worker of another runtime. */
    wsrt_runtime *rt = new_runtime(1);
    wsrt_runtime *rt_b = new_runtime(1);
    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt_b, &b);

    nested_awaiter n = {.rt = rt, .other = bt, .inner_state = WSRT_STATE_PENDING};
    atomic_init(&n.calls, 0);
    atomic_init(&n.inner_calls, 0);
    wsrt_task *outer = spawn(rt, outer_awaits_then_helps, &n, NULL, NULL);
    wait_for_state(outer, WSRT_STATE_SUSPENDED);
    CHECK_STATUS(n.inner_wait, WSRT_OK);
    CHECK_EQ(n.inner_state, WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&n.inner_calls), 2);
    CHECK_EQ(atomic_load(&n.calls), 1);

    /* A request followed by OK: the task ends SUCCEEDED, B unaffected. */
    awaiter a;
    awaiter_init(&a, bt);
    wsrt_task *at = spawn(rt, awaits_then_returns, &a, awaiter_drop, NULL);
    wait_ok(at);
    CHECK_EQ(wsrt_task_state(at), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(a.await_ret, WSRT_TASK_YIELD);
    CHECK_EQ(atomic_load(&a.calls), 1);
    CHECK_EQ(wsrt_task_state(outer), WSRT_STATE_SUSPENDED);
    CHECK_EQ(wsrt_task_state(bt), WSRT_STATE_RUNNING);

    event_set(&b.release);
    wait_ok(outer);
    CHECK_EQ(wsrt_task_state(outer), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&n.calls), 2);

    wsrt_task_release(at);
    wsrt_task_release(outer);
    wsrt_task_release(bt);
    free_runtime(rt_b);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    blocker_destroy(&b);
}

static void test_cancel_suspended(void) {
    SECTION("cancel a SUSPENDED (awaiting) task");
    wsrt_runtime *rt = new_runtime(2);
    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt, &b);
    awaiter a;
    awaiter_init(&a, bt);
    wsrt_task *at = spawn(rt, awaiter_fn, &a, awaiter_drop, result_must_not_drop);
    wait_for_state(at, WSRT_STATE_SUSPENDED);

    CHECK(wsrt_task_cancel(at));
    CHECK_EQ(wsrt_task_state(at), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_cancelled(at));
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    CHECK(!wsrt_task_cancel(at));

    /* B finishing must not call A again. */
    event_set(&b.release);
    wait_ok(bt);
    wsrt_task_release(bt);
    free_runtime(rt); /* quiescent: nothing can still run */
    CHECK_EQ(atomic_load(&a.calls), 1);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    CHECK_EQ(wsrt_task_state(at), WSRT_STATE_CANCELLED);
    wsrt_task_release(at);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
    blocker_destroy(&b);
}

/* ------------------------------------------------------------------ */
/* wsrt_task_wait timeouts                                             */
/* ------------------------------------------------------------------ */

static void test_wait_timeouts(void) {
    SECTION("wsrt_task_wait timeouts");
    wsrt_runtime *rt = new_runtime(1);
    blocker b;
    blocker_init(&b);
    wsrt_task *t = occupy(rt, &b);

    CHECK_STATUS(wsrt_task_wait(t, 0), WSRT_ERR_TIMEOUT);
    double before = now_s();
    CHECK_STATUS(wsrt_task_wait(t, 20 * 1000000), WSRT_ERR_TIMEOUT); /* 20 ms */
    CHECK(now_s() - before >= 0.019); /* it did wait */
    CHECK_STATUS(wsrt_task_wait(t, 1), WSRT_ERR_TIMEOUT);
    CHECK(!wsrt_task_done(t));

    event_set(&b.release);
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_OK(wsrt_task_wait(t, 0));
    CHECK_OK(wsrt_task_wait(t, 1000000));
    CHECK_OK(wsrt_task_wait(t, INT64_MIN));

    wsrt_task_release(t);
    free_runtime(rt);
    blocker_destroy(&b);
}

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

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

static void test_stats(void) {
    SECTION("wsrt_runtime_stats after shutdown");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter s1, s2, f1, c1, c2, d1;
    counter_init(&s1, WSRT_TASK_OK);
    counter_init(&s2, WSRT_TASK_OK);
    counter_init(&f1, 5);
    counter_init(&c1, WSRT_TASK_OK);
    counter_init(&c2, WSRT_TASK_CANCELLED);
    counter_init(&d1, WSRT_TASK_OK);
    yielder y;
    yielder_init(&y, 2);

    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.workers, 1);

    wsrt_task *occ = occupy(rt, &busy);                    /* succeeds */
    wsrt_task *t[6];
    t[0] = spawn(rt, counter_fn, &s1, NULL, NULL);          /* succeeds */
    t[1] = spawn(rt, counter_fn, &s2, NULL, NULL);          /* succeeds */
    t[2] = spawn(rt, counter_fn, &f1, NULL, NULL);          /* fails */
    t[3] = spawn(rt, counter_fn, &c1, counter_drop, NULL);  /* cancelled pending */
    t[4] = spawn(rt, counter_fn, &c2, NULL, NULL);          /* cancels itself */
    t[5] = spawn(rt, yielder_fn, &y, NULL, NULL);           /* yields, succeeds */
    CHECK_OK(wsrt_spawn(rt, counter_fn, &d1, NULL, NULL));  /* detached, succeeds */
    CHECK(wsrt_task_cancel(t[3]));
    event_set(&busy.release);

    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.spawned, 8);
    CHECK_EQ(st.succeeded, 5);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.cancelled, 2);
    CHECK_EQ(st.spawned, st.succeeded + st.failed + st.cancelled);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.running, 0);
    CHECK_EQ(st.suspended, 0);
    CHECK_EQ(st.workers, 1);
    CHECK_EQ(atomic_load(&y.calls), 3);
    CHECK_EQ(atomic_load(&d1.calls), 1);
    CHECK_EQ(atomic_load(&c1.calls), 0);

    for (int i = 0; i < 6; i++)
        wsrt_task_release(t[i]);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    wsrt_runtime *rt;
    wsrt_shutdown_mode mode;
    wsrt_status status;
} shutdown_job;

static void *shutdown_thread(void *arg) {
    shutdown_job *job = arg;
    job->status = wsrt_runtime_shutdown(job->rt, job->mode);
    return NULL;
}

/*
 * Waits until shutdown has begun, i.e. until a spawn from outside is
 * refused. Spawns that were still accepted are empty detached tasks, which
 * run (DRAIN) or are cancelled (CANCEL); both drop their arg exactly once.
 */
static atomic_int probe_drops;
static int probes_accepted;

static void probe_drop(void *arg) {
    (void)arg;
    atomic_fetch_add(&probe_drops, 1);
}

static void wait_for_shutdown_to_begin(wsrt_runtime *rt) {
    double end = now_s() + DEADLINE_S;
    for (;;) {
        wsrt_spawn_opts opts = {0};
        opts.arg_drop = probe_drop;
        wsrt_task *out = (wsrt_task *)&out; /* must stay untouched on error */
        wsrt_status s = wsrt_spawn(rt, noop_fn, NULL, &opts, &out);
        if (s == WSRT_ERR_SHUTDOWN) {
            CHECK(out == (wsrt_task *)&out);
            return;
        }
        CHECK_OK(s);
        probes_accepted++;
        wsrt_task_release(out);
        CHECK(now_s() < end);
        sched_yield();
    }
}

static void test_shutdown_drain(void) {
    SECTION("shutdown DRAIN runs queued tasks");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter q[3];
    wsrt_task *t[3];
    atomic_store(&probe_drops, 0);
    probes_accepted = 0;

    wsrt_task *occ = occupy(rt, &busy);
    for (int i = 0; i < 3; i++) {
        counter_init(&q[i], WSRT_TASK_OK);
        t[i] = spawn(rt, counter_fn, &q[i], counter_drop, NULL);
    }

    shutdown_job job = {rt, WSRT_SHUTDOWN_DRAIN, WSRT_ERR_PANIC};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, shutdown_thread, &job) == 0);
    wait_for_shutdown_to_begin(rt);
    /* Shutting down, with three tasks still queued behind a busy worker. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wsrt_task_state(t[i]), WSRT_STATE_PENDING);
    event_set(&busy.release);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(job.status);

    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wsrt_task_state(t[i]), WSRT_STATE_SUCCEEDED);
        CHECK_EQ(atomic_load(&q[i].calls), 1);
        CHECK_EQ(atomic_load(&q[i].arg_drops), 1);
    }
    CHECK_EQ(wsrt_task_state(occ), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&probe_drops), probes_accepted); /* refused: not dropped */

    /* Spawning after shutdown: refused, arg_drop not called, out untouched. */
    counter late;
    counter_init(&late, WSRT_TASK_OK);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    wsrt_task *out = NULL;
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &late, &opts, &out), WSRT_ERR_SHUTDOWN);
    CHECK(out == NULL);
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &late, &opts, NULL), WSRT_ERR_SHUTDOWN);
    CHECK_EQ(atomic_load(&late.arg_drops), 0);
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN)); /* idempotent */

    for (int i = 0; i < 3; i++)
        wsrt_task_release(t[i]);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&late.calls), 0);
    CHECK_EQ(atomic_load(&late.arg_drops), 0);
    blocker_destroy(&busy);
}

static void test_shutdown_cancel(void) {
    SECTION("shutdown CANCEL cancels queued and suspended tasks");
    wsrt_runtime *rt = new_runtime(2);
    blocker b1, b2;
    blocker_init(&b1);
    blocker_init(&b2);
    b1.honor_cancel = true;
    b2.honor_cancel = false; /* ignores the request: ends SUCCEEDED */
    counter q[3];
    wsrt_task *t[3];
    atomic_store(&probe_drops, 0);
    probes_accepted = 0;

    /* Worker 1 blocked in B1; A awaits B1 on worker 2 (SUSPENDED); then
       worker 2 blocked in B2; three tasks queued. */
    wsrt_task *bt1 = occupy(rt, &b1);
    awaiter a;
    awaiter_init(&a, bt1);
    wsrt_task *at = spawn(rt, awaiter_fn, &a, awaiter_drop, NULL);
    wait_for_state(at, WSRT_STATE_SUSPENDED);
    wsrt_task *bt2 = occupy(rt, &b2);
    for (int i = 0; i < 3; i++) {
        counter_init(&q[i], WSRT_TASK_OK);
        t[i] = spawn(rt, counter_fn, &q[i], counter_drop, NULL);
    }

    shutdown_job job = {rt, WSRT_SHUTDOWN_CANCEL, WSRT_ERR_PANIC};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, shutdown_thread, &job) == 0);
    wait_for_shutdown_to_begin(rt);
    /* Running tasks get a request; wait until both have it. */
    double end = now_s() + DEADLINE_S;
    while (!wsrt_task_cancel_requested(bt1) || !wsrt_task_cancel_requested(bt2)) {
        CHECK(now_s() < end);
        sched_yield();
    }
    /* A request only: they are still running. */
    CHECK_EQ(wsrt_task_state(bt1), WSRT_STATE_RUNNING);
    CHECK_EQ(wsrt_task_state(bt2), WSRT_STATE_RUNNING);
    event_set(&b1.release);
    event_set(&b2.release);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(job.status);

    CHECK_EQ(wsrt_task_state(bt1), WSRT_STATE_CANCELLED);
    CHECK_EQ(wsrt_task_state(bt2), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&a.calls), 1);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wsrt_task_state(t[i]), WSRT_STATE_CANCELLED);
        CHECK_EQ(atomic_load(&q[i].calls), 0);
        CHECK_EQ(atomic_load(&q[i].arg_drops), 1);
    }

    counter late;
    counter_init(&late, WSRT_TASK_OK);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    wsrt_task *out = NULL;
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &late, &opts, &out), WSRT_ERR_SHUTDOWN);
    CHECK(out == NULL);
    CHECK_EQ(atomic_load(&late.arg_drops), 0);

    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.spawned, 6 + (uint64_t)probes_accepted);
    CHECK_EQ(st.succeeded, 1);
    CHECK_EQ(st.failed, 0);
    CHECK_EQ(st.cancelled, 5 + (uint64_t)probes_accepted);

    for (int i = 0; i < 3; i++)
        wsrt_task_release(t[i]);
    wsrt_task_release(at);
    wsrt_task_release(bt1);
    wsrt_task_release(bt2);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&probe_drops), probes_accepted);
    CHECK_EQ(atomic_load(&q[0].arg_drops), 1);
    blocker_destroy(&b1);
    blocker_destroy(&b2);
}

/* A task that, once released, spawns a child and waits for it. */
typedef struct {
    wsrt_runtime *rt;
    blocker gate;
    counter child_arg;
    wsrt_status spawn_status;
    wsrt_state child_state;
} parent;

static int32_t parent_fn(void *arg, void **result) {
    parent *p = arg;
    (void)result;
    event_set(&p->gate.started);
    event_wait(&p->gate.release);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    wsrt_task *child = NULL;
    p->spawn_status = wsrt_spawn(p->rt, counter_fn, &p->child_arg, &opts, &child);
    if (p->spawn_status == WSRT_OK) {
        CHECK_OK(wsrt_task_wait(child, -1));
        p->child_state = wsrt_task_state(child);
        wsrt_task_release(child);
    } else {
        CHECK(child == NULL);
    }
    return WSRT_TASK_OK; /* ignores any cancel request */
}

static void run_parent_during_shutdown(wsrt_shutdown_mode mode, parent *p) {
    wsrt_runtime *rt = new_runtime(1);
    p->rt = rt;
    blocker_init(&p->gate);
    counter_init(&p->child_arg, WSRT_TASK_OK);
    p->spawn_status = WSRT_ERR_PANIC;
    p->child_state = WSRT_STATE_PENDING;
    atomic_store(&probe_drops, 0);
    probes_accepted = 0;

    wsrt_task *pt = spawn(rt, parent_fn, p, NULL, NULL);
    event_wait(&p->gate.started);
    shutdown_job job = {rt, mode, WSRT_ERR_PANIC};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, shutdown_thread, &job) == 0);
    wait_for_shutdown_to_begin(rt);
    event_set(&p->gate.release);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(job.status);
    CHECK_EQ(wsrt_task_state(pt), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(pt);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&probe_drops), probes_accepted);
    blocker_destroy(&p->gate);
}

static void test_shutdown_children(void) {
    SECTION("spawning children while shutting down");
    /* DRAIN: running tasks may still spawn children, which run. */
    parent p;
    run_parent_during_shutdown(WSRT_SHUTDOWN_DRAIN, &p);
    CHECK_OK(p.spawn_status);
    CHECK_EQ(p.child_state, WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&p.child_arg.calls), 1);
    CHECK_EQ(atomic_load(&p.child_arg.arg_drops), 1);

    /* CANCEL: refused, and the child's arg is not dropped. */
    run_parent_during_shutdown(WSRT_SHUTDOWN_CANCEL, &p);
    CHECK_STATUS(p.spawn_status, WSRT_ERR_SHUTDOWN);
    CHECK_EQ(atomic_load(&p.child_arg.calls), 0);
    CHECK_EQ(atomic_load(&p.child_arg.arg_drops), 0);
}

/* ------------------------------------------------------------------ */
/* Freeing a runtime from inside, handles after free                   */
/* ------------------------------------------------------------------ */

typedef struct {
    wsrt_runtime *rt;
    wsrt_status free_status;
    wsrt_status shutdown_status;
} self_free;

static int32_t self_free_fn(void *arg, void **result) {
    self_free *sf = arg;
    (void)result;
    sf->free_status = wsrt_runtime_free(sf->rt);
    sf->shutdown_status = wsrt_runtime_shutdown(sf->rt, WSRT_SHUTDOWN_CANCEL);
    return WSRT_TASK_OK;
}

static void self_free_cb(wsrt_task *t, void *user) {
    (void)t;
    self_free *sf = user;
    sf->free_status = wsrt_runtime_free(sf->rt);
}

static void test_free_from_inside(void) {
    SECTION("wsrt_runtime_free from inside a task");
    wsrt_runtime *rt = new_runtime(1);
    self_free sf = {rt, WSRT_OK, WSRT_OK};
    wsrt_task *t = spawn(rt, self_free_fn, &sf, NULL, NULL);
    wait_ok(t);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    CHECK_STATUS(sf.free_status, WSRT_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(sf.shutdown_status, WSRT_ERR_WOULD_DEADLOCK);
    wsrt_task_release(t);

    /* From a done-callback running on a worker: refused too. */
    blocker busy;
    blocker_init(&busy);
    wsrt_task *occ = occupy(rt, &busy);
    self_free sf2 = {rt, WSRT_OK, WSRT_OK};
    wsrt_task *t2 = spawn(rt, noop_fn, NULL, NULL, NULL);
    CHECK_OK(wsrt_task_add_done_callback(t2, self_free_cb, &sf2));
    event_set(&busy.release);
    wait_ok(t2);
    flush(rt); /* the callback has run */
    CHECK_STATUS(sf2.free_status, WSRT_ERR_WOULD_DEADLOCK);

    /* Nothing was freed or shut down: the runtime still works. */
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    wsrt_task *u = spawn(rt, counter_fn, &c, NULL, NULL);
    wait_ok(u);
    CHECK_EQ(wsrt_task_state(u), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&c.calls), 1);
    wsrt_task_release(u);
    wsrt_task_release(t2);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
}

typedef struct {
    int runs;
    pthread_t thread;
} once_cb_data;

static void record_cb(wsrt_task *t, void *user) {
    (void)t;
    once_cb_data *d = user;
    d->runs++;
    d->thread = pthread_self();
}

static void test_handles_after_free(void) {
    SECTION("handles stay queryable after wsrt_runtime_free");
    wsrt_runtime *rt = new_runtime(1);
    atomic_store(&result_drops, 0);
    blocker busy;
    blocker_init(&busy);
    counter f;
    counter_init(&f, 3);

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_spawn_opts opts = {0};
    opts.name = "keeper";
    opts.result_drop = result_free;
    wsrt_task *s = NULL;
    CHECK_OK(wsrt_spawn(rt, alloc_result_fn, (void *)(intptr_t)11, &opts, &s));
    wsrt_task *ft = spawn(rt, counter_fn, &f, counter_drop, NULL);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    wsrt_task *ct = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK(wsrt_task_cancel(ct));
    uint64_t sid = wsrt_task_id(s);
    event_set(&busy.release);
    free_runtime(rt); /* drains first */

    /* Everything still answers. */
    CHECK_EQ(wsrt_task_id(s), sid);
    CHECK_EQ(wsrt_task_state(s), WSRT_STATE_SUCCEEDED);
    CHECK(wsrt_task_done(s));
    CHECK(!wsrt_task_cancelled(s));
    void *out = NULL;
    CHECK_OK(wsrt_task_result(s, &out));
    CHECK_EQ(*(int *)out, 11);
    int32_t code = -1;
    CHECK_OK(wsrt_task_error(s, &code));
    CHECK_EQ(code, 0);
    check_name(s, "keeper");
    CHECK_OK(wsrt_task_set_name(s, "kept"));
    check_name(s, "kept");
    CHECK(!wsrt_task_cancel(s));
    CHECK_OK(wsrt_task_wait(s, 0));
    CHECK_OK(wsrt_task_wait(s, -1));
    CHECK(wsrt_task_arg(s) == (void *)(intptr_t)11);
    once_cb_data d = {0, pthread_self()};
    CHECK_OK(wsrt_task_add_done_callback(s, record_cb, &d));
    CHECK_EQ(d.runs, 1);
    CHECK_EQ(wsrt_task_remove_done_callback(s, record_cb, &d), 0);

    CHECK_EQ(wsrt_task_state(ft), WSRT_STATE_FAILED);
    CHECK_OK(wsrt_task_error(ft, &code));
    CHECK_EQ(code, 3);
    CHECK_STATUS(wsrt_task_result(ft, &out), WSRT_ERR_FAILED);
    CHECK_EQ(wsrt_task_state(ct), WSRT_STATE_CANCELLED);
    CHECK_STATUS(wsrt_task_result(ct, &out), WSRT_ERR_CANCELLED);
    wsrt_task *extra = wsrt_task_retain(ct);
    wsrt_task_release(extra);

    CHECK_EQ(atomic_load(&result_drops), 0);
    wsrt_task_release(s);
    CHECK_EQ(atomic_load(&result_drops), 1);
    wsrt_task_release(ft);
    wsrt_task_release(ct);
    wsrt_task_release(occ);
    CHECK_EQ(atomic_load(&f.arg_drops), 1);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    CHECK_EQ(atomic_load(&c.calls), 0);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* Version and status strings                                          */
/* ------------------------------------------------------------------ */

static void test_version_and_status_str(void) {
    SECTION("wsrt_version and wsrt_status_str");
    const char *v = wsrt_version();
    CHECK(v != NULL);
    CHECK(strcmp(v, WSRT_VERSION_STRING) == 0);
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", WSRT_VERSION_MAJOR,
             WSRT_VERSION_MINOR, WSRT_VERSION_PATCH);
    CHECK(strcmp(v, expected) == 0);
    CHECK(wsrt_version() == v); /* static */

    const char *unknown = wsrt_status_str((wsrt_status)99);
    CHECK(unknown != NULL);
    CHECK(strcmp(unknown, "unknown status") == 0);
    CHECK(wsrt_status_str((wsrt_status)-1) != NULL);
    CHECK(wsrt_status_str((wsrt_status)(WSRT_ERR_PANIC + 1)) != NULL);
    for (int s = WSRT_OK; s <= WSRT_ERR_PANIC; s++) {
        const char *str = wsrt_status_str((wsrt_status)s);
        CHECK(str != NULL);
        CHECK(str[0] != '\0');
        CHECK(strcmp(str, unknown) != 0);
        for (int o = WSRT_OK; o < s; o++) /* each is distinct */
            CHECK(strcmp(str, wsrt_status_str((wsrt_status)o)) != 0);
    }
}

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_version_and_status_str();
    test_status_lifecycle();
    test_cancel_pending();
    test_cancel_running();
    test_cancel_ignored();
    test_cancel_running_then_yield();
    test_cancel_done();
    test_failure_and_results();
    test_result_drop();
    test_callbacks();
    test_callbacks_on_cancel();
    test_names();
    test_ids_and_current_task();
    test_all_tasks();
    test_yield();
    test_cancel_yielded();
    test_await();
    test_await_other_runtime();
    test_await_requests_stay_with_their_run();
    test_cancel_suspended();
    test_wait_timeouts();
    test_fork_join();
    test_stats();
    test_shutdown_drain();
    test_shutdown_cancel();
    test_shutdown_children();
    test_free_from_inside();
    test_handles_after_free();

    printf("test_tasks: all passed\n");
    return 0;
}
