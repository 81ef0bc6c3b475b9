/*
 * await.c: tasks that suspend and tasks that wait, through the C ABI.
 *
 * Covers: WSRT_TASK_YIELD (a yielded task is SUSPENDED and runs again after
 * the work already queued); wsrt_await (SUSPENDED until the other task is
 * done, at once if it already is, wsrt_await(NULL) as a plain yield, a task
 * of another runtime; a request lives only in the run that made it, across a
 * helping wait); wsrt_task_wait timeouts.
 *
 * Races are never ordered by sleeping: tasks block on events (a mutex and a
 * condition variable) that the test sets, and a one-worker runtime runs its
 * queue in order. The only polling loops wait for a state that is certain to
 * come, with a deadline so that a bug fails the test instead of hanging it.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("await: %s\n", name)

/* ------------------------------------------------------------------ */
/* WSRT_TASK_YIELD                                                     */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* wsrt_await                                                          */
/* ------------------------------------------------------------------ */

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
    /* No limit: a wait with one runs no task (it could make it late). */
    n->inner_wait = wsrt_task_wait(inner, -1);
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

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_yield();
    test_await();
    test_await_other_runtime();
    test_await_requests_stay_with_their_run();
    test_wait_timeouts();

    printf("await: all passed\n");
    return 0;
}
