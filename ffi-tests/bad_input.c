/*
 * bad_input.c: every exported function given bad input gives the exact
 * documented result, and unusual-but-legal calls behave.
 *
 * Covers: NULL for each pointer argument of every function (WSRT_ERR_NULL,
 * or false / 0 / NULL / WSRT_STATE_PENDING for functions returning a value;
 * wsrt_task_release(NULL) is a no-op); out-of-range enum values; invalid
 * UTF-8 names in opts.name and wsrt_task_set_name; a worker count above the
 * limit; spawn after shutdown; shutdown twice; wsrt_task_wait with timeout 0,
 * INT64_MAX and negative values; a task waiting for itself
 * (WSRT_ERR_WOULD_DEADLOCK); all_tasks with buf NULL and cap > 0; calls
 * made from inside a task or outside one; done-callbacks that spawn a task,
 * cancel another task, wait on another task (on the worker thread), add a
 * callback to their own done task, and release their own task's last handle.
 *
 * On every failed call, outputs must be untouched and arg_drop not called.
 *
 * Races are never ordered by sleeping: a blocker task holds the worker
 * between two events (a mutex and a condition variable) that the test sets,
 * and a one-worker runtime runs its queue in order.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define SECTION(name) printf("bad_input: %s\n", name)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Blocks its worker from `started` until `release`. */
typedef struct {
    event started;
    event release;
} blocker;

static int32_t blocker_fn(void *arg, void **result) {
    blocker *b = arg;
    (void)result;
    event_set(&b->started);
    event_wait(&b->release);
    return WSRT_TASK_OK;
}

/* Counts calls and arg drops. */
typedef struct {
    atomic_int calls;
    atomic_int arg_drops;
} counter;

static void counter_init(counter *c) {
    atomic_init(&c->calls, 0);
    atomic_init(&c->arg_drops, 0);
}

static int32_t counter_fn(void *arg, void **result) {
    counter *c = arg;
    (void)result;
    atomic_fetch_add(&c->calls, 1);
    return WSRT_TASK_OK;
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

static void noop_cb(wsrt_task *t, void *user) {
    (void)t;
    (void)user;
}

static wsrt_runtime *new_runtime(size_t workers) {
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new(workers, &rt));
    CHECK(rt != NULL);
    return rt;
}

static wsrt_task *spawn(wsrt_runtime *rt, wsrt_task_fn fn, void *arg,
                        wsrt_drop_fn arg_drop) {
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = arg_drop;
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, fn, arg, &opts, &t));
    CHECK(t != NULL);
    return t;
}

/* A pointer value that no function may write over an output. */
static int sentinel_storage;
#define SENTINEL_TASK ((wsrt_task *)(void *)&sentinel_storage)
#define SENTINEL_RT ((wsrt_runtime *)(void *)&sentinel_storage)

/* ------------------------------------------------------------------ */
/* NULL arguments                                                      */
/* ------------------------------------------------------------------ */

static void test_null_runtime_functions(void) {
    SECTION("NULL arguments: runtime functions");
    CHECK_STATUS(wsrt_runtime_new(1, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_shutdown(NULL, WSRT_SHUTDOWN_DRAIN), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_shutdown(NULL, WSRT_SHUTDOWN_CANCEL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_free(NULL), WSRT_ERR_NULL);
    CHECK_EQ(wsrt_runtime_workers(NULL), 0);

    wsrt_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_STATUS(wsrt_runtime_stats(NULL, &st), WSRT_ERR_NULL);
    CHECK_EQ(st.spawned, 0xABABABABABABABABull); /* untouched */

    wsrt_runtime *rt = new_runtime(1);
    CHECK_STATUS(wsrt_runtime_stats(rt, NULL), WSRT_ERR_NULL);
    CHECK_EQ(wsrt_runtime_workers(rt), 1);

    wsrt_task *buf[4] = {0};
    size_t len = 77;
    CHECK_STATUS(wsrt_runtime_all_tasks(NULL, buf, 4, &len), WSRT_ERR_NULL);
    CHECK_EQ(len, 77);
    CHECK_STATUS(wsrt_runtime_all_tasks(NULL, NULL, 0, &len), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_all_tasks(rt, buf, 4, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_all_tasks(rt, NULL, 0, NULL), WSRT_ERR_NULL);
    /* buf NULL with cap > 0 */
    CHECK_STATUS(wsrt_runtime_all_tasks(rt, NULL, 4, &len), WSRT_ERR_NULL);
    CHECK_EQ(len, 77);
    /* buf NULL with cap 0 asks for the count */
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);
    /* a real buffer with cap 0 is fine too and writes nothing */
    buf[0] = SENTINEL_TASK;
    CHECK_OK(wsrt_runtime_all_tasks(rt, buf, 0, &len));
    CHECK_EQ(len, 0);
    CHECK(buf[0] == SENTINEL_TASK);

    CHECK_OK(wsrt_runtime_free(rt));
}

static void test_null_spawn(void) {
    SECTION("NULL arguments: wsrt_spawn");
    wsrt_runtime *rt = new_runtime(1);
    counter c;
    counter_init(&c);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;

    wsrt_task *out = SENTINEL_TASK;
    CHECK_STATUS(wsrt_spawn(NULL, counter_fn, &c, &opts, &out), WSRT_ERR_NULL);
    CHECK(out == SENTINEL_TASK);
    CHECK_STATUS(wsrt_spawn(NULL, counter_fn, &c, &opts, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_spawn(rt, NULL, &c, &opts, &out), WSRT_ERR_NULL);
    CHECK(out == SENTINEL_TASK);
    CHECK_STATUS(wsrt_spawn(rt, NULL, &c, NULL, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_spawn(NULL, NULL, NULL, NULL, NULL), WSRT_ERR_NULL);
    CHECK_EQ(atomic_load(&c.arg_drops), 0); /* failed spawns never drop */

    /* opts NULL, arg NULL and out NULL are all allowed. */
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, NULL, NULL));
    CHECK_OK(wsrt_spawn(rt, counter_fn, &c, &opts, NULL)); /* detached */
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, NULL, &t));
    CHECK(t != NULL);
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK(wsrt_task_arg(t) == NULL);
    wsrt_task_release(t);

    CHECK_OK(wsrt_runtime_free(rt));
    CHECK_EQ(atomic_load(&c.calls), 1);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
}

static void test_null_task_functions(void) {
    SECTION("NULL arguments: task functions");
    /* Functions returning a value give false / 0 / NULL. */
    CHECK(wsrt_task_retain(NULL) == NULL);
    wsrt_task_release(NULL); /* no-op */
    CHECK_EQ(wsrt_task_id(NULL), 0);
    CHECK_EQ(wsrt_task_state(NULL), WSRT_STATE_PENDING);
    CHECK(!wsrt_task_done(NULL));
    CHECK(!wsrt_task_cancelled(NULL));
    CHECK(!wsrt_task_cancel_requested(NULL));
    CHECK(!wsrt_task_cancel(NULL));
    CHECK(wsrt_task_arg(NULL) == NULL);
    char name[8];
    memset(name, 'x', sizeof name);
    CHECK_EQ(wsrt_task_name(NULL, name, sizeof name), 0);
    CHECK_EQ(wsrt_task_name(NULL, NULL, 0), 0);
    CHECK_EQ(wsrt_task_remove_done_callback(NULL, noop_cb, NULL), 0);

    /* Functions returning a status give WSRT_ERR_NULL. */
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(NULL, &out), WSRT_ERR_NULL);
    CHECK(out == &out);
    int32_t code = -5;
    CHECK_STATUS(wsrt_task_error(NULL, &code), WSRT_ERR_NULL);
    CHECK_EQ(code, -5);
    CHECK_STATUS(wsrt_task_wait(NULL, 0), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_wait(NULL, -1), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_wait(NULL, INT64_MAX), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_add_done_callback(NULL, noop_cb, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_set_name(NULL, "x"), WSRT_ERR_NULL);

    /* The same with a real task and a NULL second argument. */
    wsrt_runtime *rt = new_runtime(1);
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL);
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_STATUS(wsrt_task_result(t, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_error(t, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_task_add_done_callback(t, NULL, NULL), WSRT_ERR_NULL);
    CHECK_EQ(wsrt_task_remove_done_callback(t, NULL, NULL), 0);
    CHECK_STATUS(wsrt_task_set_name(t, NULL), WSRT_ERR_NULL);
    /* The name did not change. */
    char expected[32];
    snprintf(expected, sizeof expected, "Task-%llu", (unsigned long long)wsrt_task_id(t));
    char buf[32];
    CHECK_EQ(wsrt_task_name(t, buf, sizeof buf), strlen(expected));
    CHECK(strcmp(buf, expected) == 0);
    wsrt_task_release(t);
    CHECK_OK(wsrt_runtime_free(rt));
}

static void test_outside_a_task(void) {
    SECTION("calls meant for inside a task, made outside one");
    CHECK(wsrt_current_task() == NULL);
    CHECK(!wsrt_cancel_requested());
    CHECK_EQ(wsrt_await(NULL), WSRT_TASK_YIELD);

    wsrt_runtime *rt = new_runtime(1);
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL);
    CHECK_EQ(wsrt_await(t), WSRT_TASK_YIELD); /* only a plain yield value */
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(t);
    CHECK_OK(wsrt_runtime_free(rt));
    CHECK(wsrt_current_task() == NULL);
}

/* ------------------------------------------------------------------ */
/* Out-of-range values                                                 */
/* ------------------------------------------------------------------ */

static void test_out_of_range(void) {
    SECTION("out-of-range values");
    const char *unknown = wsrt_status_str((wsrt_status)99);
    CHECK(unknown != NULL);
    CHECK(strcmp(unknown, "unknown status") == 0);
    CHECK(wsrt_status_str((wsrt_status)-1) != NULL);
    CHECK(wsrt_status_str((wsrt_status)INT32_MAX) != NULL);
    CHECK(wsrt_status_str((wsrt_status)INT32_MIN) != NULL);
    CHECK(wsrt_version() != NULL);

    /* More than 4096 workers. */
    wsrt_runtime *rt = SENTINEL_RT;
    CHECK_STATUS(wsrt_runtime_new(4097, &rt), WSRT_ERR_INVALID_ARG);
    CHECK(rt == SENTINEL_RT);
    CHECK_STATUS(wsrt_runtime_new(SIZE_MAX, &rt), WSRT_ERR_INVALID_ARG);
    CHECK(rt == SENTINEL_RT);

    /* A bad shutdown mode does nothing: the runtime keeps running. */
    rt = new_runtime(1);
    CHECK_STATUS(wsrt_runtime_shutdown(rt, (wsrt_shutdown_mode)7), WSRT_ERR_INVALID_ARG);
    CHECK_STATUS(wsrt_runtime_shutdown(rt, (wsrt_shutdown_mode)-1), WSRT_ERR_INVALID_ARG);
    CHECK_STATUS(wsrt_runtime_shutdown(rt, (wsrt_shutdown_mode)2), WSRT_ERR_INVALID_ARG);
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL);
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(t);
    CHECK_OK(wsrt_runtime_free(rt));

    /* workers = 0: one per CPU, at least one. */
    rt = new_runtime(0);
    CHECK(wsrt_runtime_workers(rt) >= 1);
    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.workers, wsrt_runtime_workers(rt));
    CHECK_OK(wsrt_runtime_free(rt));
}

/* ------------------------------------------------------------------ */
/* Invalid UTF-8 names                                                 */
/* ------------------------------------------------------------------ */

static void test_invalid_utf8(void) {
    SECTION("invalid UTF-8 names");
    wsrt_runtime *rt = new_runtime(1);
    counter c;
    counter_init(&c);
    const char *bad[] = {
        "\xff\xfe",           /* never valid bytes */
        "abc\x80",            /* stray continuation byte */
        "\xc3",               /* truncated sequence */
        "\xc0\xaf",           /* overlong encoding */
        "\xed\xa0\x80",       /* UTF-16 surrogate */
        "\xf4\x90\x80\x80",   /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsrt_spawn_opts opts = {0};
        opts.name = bad[i];
        opts.arg_drop = counter_drop;
        wsrt_task *out = SENTINEL_TASK;
        CHECK_STATUS(wsrt_spawn(rt, counter_fn, &c, &opts, &out), WSRT_ERR_INVALID_ARG);
        CHECK(out == SENTINEL_TASK);
        CHECK_STATUS(wsrt_spawn(rt, counter_fn, &c, &opts, NULL), WSRT_ERR_INVALID_ARG);
    }

    /* set_name: refused, the old name stays. */
    wsrt_spawn_opts opts = {0};
    opts.name = "good";
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, &opts, &t));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STATUS(wsrt_task_set_name(t, bad[i]), WSRT_ERR_INVALID_ARG);
    char buf[16];
    CHECK_EQ(wsrt_task_name(t, buf, sizeof buf), 4);
    CHECK(strcmp(buf, "good") == 0);
    /* Valid multi-byte UTF-8 is fine: U+10FFFF is the largest code point. */
    CHECK_OK(wsrt_task_set_name(t, "\xf4\x8f\xbf\xbf"));
    CHECK_EQ(wsrt_task_name(t, buf, sizeof buf), 4);
    CHECK_OK(wsrt_task_wait(t, -1));
    wsrt_task_release(t);

    CHECK_OK(wsrt_runtime_free(rt));
    CHECK_EQ(atomic_load(&c.calls), 0);
    CHECK_EQ(atomic_load(&c.arg_drops), 0);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                            */
/* ------------------------------------------------------------------ */

static void test_shutdown_edges(void) {
    SECTION("spawn after shutdown, shutdown twice");
    counter c;
    counter_init(&c);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    opts.name = "late";

    /* DRAIN twice, then CANCEL (an upgrade), all OK. */
    wsrt_runtime *rt = new_runtime(2);
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_CANCEL));
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    CHECK_STATUS(wsrt_runtime_shutdown(rt, (wsrt_shutdown_mode)7), WSRT_ERR_INVALID_ARG);
    wsrt_task *out = SENTINEL_TASK;
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &c, &opts, &out), WSRT_ERR_SHUTDOWN);
    CHECK(out == SENTINEL_TASK);
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &c, &opts, NULL), WSRT_ERR_SHUTDOWN);
    /* Argument checks still come first. */
    CHECK_STATUS(wsrt_spawn(rt, NULL, &c, &opts, &out), WSRT_ERR_NULL);
    size_t len = 9;
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);
    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.spawned, 0); /* refused spawns are not counted */
    CHECK_OK(wsrt_runtime_free(rt));

    /* CANCEL twice. */
    rt = new_runtime(1);
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_CANCEL));
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_CANCEL));
    CHECK_STATUS(wsrt_spawn(rt, counter_fn, &c, &opts, &out), WSRT_ERR_SHUTDOWN);
    CHECK(out == SENTINEL_TASK);
    CHECK_OK(wsrt_runtime_free(rt));

    /* Free without an explicit shutdown drains. */
    rt = new_runtime(1);
    counter d;
    counter_init(&d);
    for (int i = 0; i < 10; i++)
        CHECK_OK(wsrt_spawn(rt, counter_fn, &d, &opts, NULL));
    CHECK_OK(wsrt_runtime_free(rt));
    CHECK_EQ(atomic_load(&d.calls), 10);
    CHECK_EQ(atomic_load(&d.arg_drops), 10);

    CHECK_EQ(atomic_load(&c.calls), 0);
    CHECK_EQ(atomic_load(&c.arg_drops), 0);
}

/* ------------------------------------------------------------------ */
/* Wait timeouts                                                       */
/* ------------------------------------------------------------------ */

static void *release_thread(void *arg) {
    blocker *b = arg;
    event_set(&b->release);
    return NULL;
}

static void test_wait_extremes(void) {
    SECTION("wsrt_task_wait with 0, INT64_MAX and negative timeouts");
    wsrt_runtime *rt = new_runtime(1);
    blocker b;
    event_init(&b.started);
    event_init(&b.release);
    wsrt_task *t = spawn(rt, blocker_fn, &b, NULL);
    event_wait(&b.started);

    CHECK_STATUS(wsrt_task_wait(t, 0), WSRT_ERR_TIMEOUT);
    /* INT64_MAX (about 292 years) waits until done: another thread releases. */
    pthread_t th;
    CHECK(pthread_create(&th, NULL, release_thread, &b) == 0);
    CHECK_OK(wsrt_task_wait(t, INT64_MAX));
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(wsrt_task_done(t));

    /* Once done, every timeout answers WSRT_OK at once. */
    CHECK_OK(wsrt_task_wait(t, 0));
    CHECK_OK(wsrt_task_wait(t, INT64_MAX));
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_OK(wsrt_task_wait(t, INT64_MIN));
    wsrt_task_release(t);

    /* INT64_MAX on a task that finishes by itself. */
    t = spawn(rt, noop_fn, NULL, NULL);
    CHECK_OK(wsrt_task_wait(t, INT64_MAX));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(t);

    CHECK_OK(wsrt_runtime_free(rt));
    event_destroy(&b.started);
    event_destroy(&b.release);
}

/* A task that waits for itself: refused, whatever the timeout. */
typedef struct {
    wsrt_status forever, zero, timed;
} self_wait;

static int32_t self_wait_fn(void *arg, void **result) {
    self_wait *w = arg;
    (void)result;
    wsrt_task *me = wsrt_current_task();
    w->forever = wsrt_task_wait(me, -1);
    w->zero = wsrt_task_wait(me, 0);
    w->timed = wsrt_task_wait(me, 1000000);
    return WSRT_TASK_OK;
}

/* A done-callback waiting for its own task, which is done: fine. */
static void wait_self_cb(wsrt_task *t, void *user) {
    wsrt_status *status = user;
    *status = wsrt_task_wait(t, -1);
}

static void test_wait_for_self(void) {
    SECTION("a task waiting for itself");
    wsrt_runtime *rt = new_runtime(1);
    self_wait w = {WSRT_OK, WSRT_OK, WSRT_OK};
    wsrt_task *t = spawn(rt, self_wait_fn, &w, NULL);
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK_STATUS(w.forever, WSRT_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(w.zero, WSRT_ERR_WOULD_DEADLOCK);
    CHECK_STATUS(w.timed, WSRT_ERR_WOULD_DEADLOCK);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);

    wsrt_status from_cb = WSRT_ERR_PANIC;
    CHECK_OK(wsrt_task_add_done_callback(t, wait_self_cb, &from_cb)); /* runs now */
    CHECK_OK(from_cb);
    wsrt_task_release(t);
    CHECK_OK(wsrt_runtime_free(rt));
}

/* ------------------------------------------------------------------ */
/* Re-entrant done-callbacks                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    wsrt_runtime *rt;
    pthread_t main_thread;
    /* spawn from a callback */
    wsrt_task *spawned;
    counter spawned_counter;
    /* cancel another (pending) task */
    wsrt_task *victim;
    bool cancel_ret;
    wsrt_state victim_state_after;
    int victim_drops_after;
    counter victim_counter;
    /* wait on another (queued) task */
    wsrt_task *waited;
    wsrt_status wait_status;
    wsrt_state waited_state_after;
    counter waited_counter;
    /* add a callback to the (done) task from inside its callback */
    int nested_runs;
    bool nested_ran_inside;
    bool in_callback;
    /* which threads */
    bool on_worker;
    event all_done;
} reentrant;

static void spawn_cb(wsrt_task *t, void *user) {
    (void)t;
    reentrant *r = user;
    r->on_worker = !pthread_equal(pthread_self(), r->main_thread);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    CHECK_OK(wsrt_spawn(r->rt, counter_fn, &r->spawned_counter, &opts, &r->spawned));
}

static void cancel_cb(wsrt_task *t, void *user) {
    (void)t;
    reentrant *r = user;
    /* The victim is queued behind us on the only worker: still PENDING. */
    r->cancel_ret = wsrt_task_cancel(r->victim);
    r->victim_state_after = wsrt_task_state(r->victim);
    r->victim_drops_after = atomic_load(&r->victim_counter.arg_drops);
}

static void wait_cb(wsrt_task *t, void *user) {
    (void)t;
    reentrant *r = user;
    /* Queued on this very worker: the wait must run it, not deadlock. */
    r->wait_status = wsrt_task_wait(r->waited, -1);
    r->waited_state_after = wsrt_task_state(r->waited);
}

static void nested_cb(wsrt_task *t, void *user) {
    (void)t;
    reentrant *r = user;
    r->nested_runs++;
    r->nested_ran_inside = r->in_callback;
}

static void add_cb(wsrt_task *t, void *user) {
    reentrant *r = user;
    r->in_callback = true;
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    /* The task is done: the new callback runs now, before add returns. */
    CHECK_OK(wsrt_task_add_done_callback(t, nested_cb, r));
    r->in_callback = false;
    CHECK_EQ(r->nested_runs, 1);
}

static void last_cb(wsrt_task *t, void *user) {
    (void)t;
    reentrant *r = user;
    event_set(&r->all_done);
}

static void test_reentrant_callbacks(void) {
    SECTION("callbacks that spawn, cancel, wait and add callbacks");
    wsrt_runtime *rt = new_runtime(1);
    reentrant r;
    memset(&r, 0, sizeof r);
    r.rt = rt;
    r.main_thread = pthread_self();
    counter_init(&r.spawned_counter);
    counter_init(&r.victim_counter);
    counter_init(&r.waited_counter);
    event_init(&r.all_done);

    /* Worker busy; queue: t, victim, waited. */
    blocker b;
    event_init(&b.started);
    event_init(&b.release);
    wsrt_task *occ = spawn(rt, blocker_fn, &b, NULL);
    event_wait(&b.started);
    wsrt_task *t = spawn(rt, noop_fn, NULL, NULL);
    r.victim = spawn(rt, counter_fn, &r.victim_counter, counter_drop);
    r.waited = spawn(rt, counter_fn, &r.waited_counter, counter_drop);

    CHECK_OK(wsrt_task_add_done_callback(t, spawn_cb, &r));
    CHECK_OK(wsrt_task_add_done_callback(t, cancel_cb, &r));
    CHECK_OK(wsrt_task_add_done_callback(t, wait_cb, &r));
    CHECK_OK(wsrt_task_add_done_callback(t, add_cb, &r));
    CHECK_OK(wsrt_task_add_done_callback(t, last_cb, &r));
    event_set(&b.release);
    event_wait(&r.all_done);

    CHECK(r.on_worker);
    CHECK(r.spawned != NULL);
    CHECK_OK(wsrt_task_wait(r.spawned, -1));
    CHECK_EQ(wsrt_task_state(r.spawned), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&r.spawned_counter.calls), 1);
    CHECK_EQ(atomic_load(&r.spawned_counter.arg_drops), 1);
    CHECK(wsrt_task_id(r.spawned) > wsrt_task_id(r.waited));

    CHECK(r.cancel_ret);
    CHECK_EQ(r.victim_state_after, WSRT_STATE_CANCELLED);
    CHECK_EQ(r.victim_drops_after, 1);

    CHECK_OK(r.wait_status);
    CHECK_EQ(r.waited_state_after, WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&r.waited_counter.calls), 1);

    CHECK_EQ(r.nested_runs, 1);
    CHECK(r.nested_ran_inside);

    wsrt_task_release(r.spawned);
    wsrt_task_release(r.victim);
    wsrt_task_release(r.waited);
    wsrt_task_release(t);
    wsrt_task_release(occ);
    CHECK_OK(wsrt_runtime_free(rt));
    CHECK_EQ(atomic_load(&r.victim_counter.calls), 0);
    CHECK_EQ(atomic_load(&r.victim_counter.arg_drops), 1);
    CHECK_EQ(atomic_load(&r.waited_counter.arg_drops), 1);
    event_destroy(&r.all_done);
    event_destroy(&b.started);
    event_destroy(&b.release);
}

/* A callback that holds the only handle of its task and releases it. */
static atomic_int self_release_drops;
static event self_release_done;

static void count_result_drop(void *p) {
    CHECK(p == &self_release_drops);
    atomic_fetch_add(&self_release_drops, 1);
}

static int32_t result_fn(void *arg, void **result) {
    (void)arg;
    *result = &self_release_drops;
    return WSRT_TASK_OK;
}

static void release_self_cb(wsrt_task *t, void *user) {
    wsrt_task *handle = user;
    CHECK(wsrt_task_id(handle) == wsrt_task_id(t));
    wsrt_task_release(handle); /* the last handle: allowed from a callback */
    event_set(&self_release_done);
}

static void test_callback_releases_last_handle(void) {
    SECTION("a callback releases its own task's last handle");
    wsrt_runtime *rt = new_runtime(1);
    event_init(&self_release_done);

    /* Before done: the callback runs on the worker. */
    wsrt_spawn_opts opts = {0};
    opts.result_drop = count_result_drop;
    blocker b;
    event_init(&b.started);
    event_init(&b.release);
    wsrt_task *occ = spawn(rt, blocker_fn, &b, NULL);
    event_wait(&b.started);
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, result_fn, NULL, &opts, &t));
    CHECK_OK(wsrt_task_add_done_callback(t, release_self_cb, t));
    t = NULL; /* the callback owns the handle now */
    event_set(&b.release);
    event_wait(&self_release_done);

    /* After done: the callback runs here, inside add. */
    wsrt_task *u = NULL;
    CHECK_OK(wsrt_spawn(rt, result_fn, NULL, &opts, &u));
    CHECK_OK(wsrt_task_wait(u, -1));
    CHECK_OK(wsrt_task_add_done_callback(u, release_self_cb, u));
    u = NULL;

    wsrt_task_release(occ);
    CHECK_OK(wsrt_runtime_free(rt));
    /* Both results were dropped exactly once, when the tasks were freed. */
    CHECK_EQ(atomic_load(&self_release_drops), 2);
    event_destroy(&self_release_done);
    event_destroy(&b.started);
    event_destroy(&b.release);
}

int main(void) {
    alarm(600); /* a bug must fail the test, not hang it */
    setvbuf(stdout, NULL, _IONBF, 0);

    test_null_runtime_functions();
    test_null_spawn();
    test_null_task_functions();
    test_outside_a_task();
    test_out_of_range();
    test_invalid_utf8();
    test_shutdown_edges();
    test_wait_extremes();
    test_wait_for_self();
    test_reentrant_callbacks();
    test_callback_releases_last_handle();

    printf("bad_input: all passed\n");
    return 0;
}
