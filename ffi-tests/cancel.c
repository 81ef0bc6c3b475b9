/*
 * cancel.c: wsrt_task_cancel in every state a task can be in, through the C
 * ABI, with exact codes and states.
 *
 * Covers: cancel of a PENDING task (done before cancel returns, the function
 * never called); of a RUNNING task (a request: honoured, ignored, or answered
 * by a yield, which ends the task); of a SUSPENDED task (yielded or
 * awaiting); of a done task (nothing changes); arg_drop exactly once and
 * result_drop never for a cancelled task.
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

#define SECTION(name) printf("cancel: %s\n", name)

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
/* SUSPENDED tasks: yielded and awaiting                               */
/* ------------------------------------------------------------------ */

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

    /* As in test_yield (await.c): the canceller runs right after the first
       yield. */
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

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_cancel_pending();
    test_cancel_running();
    test_cancel_ignored();
    test_cancel_running_then_yield();
    test_cancel_done();
    test_cancel_yielded();
    test_cancel_suspended();

    printf("cancel: all passed\n");
    return 0;
}
