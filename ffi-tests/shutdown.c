/*
 * shutdown.c: ending a runtime, through the C ABI.
 *
 * Covers: shutdown DRAIN and CANCEL (queued, suspended and running tasks,
 * children spawned meanwhile, spawns refused afterwards with arg_drop not
 * called); wsrt_runtime_free and wsrt_runtime_shutdown from inside a task or
 * a done-callback (WSRT_ERR_WOULD_DEADLOCK, nothing freed); handles staying
 * queryable after wsrt_runtime_free.
 *
 * Races are never ordered by sleeping: tasks block on events (a mutex and a
 * condition variable) that the test sets, and a one-worker runtime runs its
 * queue in order. The only polling loops wait for a state that is certain to
 * come, with a deadline so that a bug fails the test instead of hanging it.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("shutdown: %s\n", name)

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

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_shutdown_drain();
    test_shutdown_cancel();
    test_shutdown_children();
    test_free_from_inside();
    test_handles_after_free();

    printf("shutdown: all passed\n");
    return 0;
}
