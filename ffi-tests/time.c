/*
 * time.c: wsrt_sleep through the C ABI.
 *
 * Covers: wsrt_sleep outside a task (WSRT_TASK_CANCELLED); a sleeping task
 * is SUSPENDED and holds no worker; it is called again once the time has
 * passed; a cancel (its own, its group's, a cancelling shutdown) ends it
 * CANCELLED at once with its arg_drop run once; wsrt_sleep(0) is a plain
 * yield; the last of wsrt_sleep and wsrt_await in a run wins; a draining
 * free waits for a sleeper.
 *
 * Races are never ordered by sleeping on the test's side: the only polling
 * loops wait for a state that is certain to come.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("time: %s\n", name)

#define MS (1000 * 1000LL)
#define HOUR (3600 * 1000 * MS)

/* Sleeps `ns` on its first call, then returns OK; records when. */
typedef struct {
    int64_t ns;
    atomic_int calls;
    atomic_int arg_drops;
    double first, second;
} sleeper;

static void sleeper_init(sleeper *s, int64_t ns) {
    s->ns = ns;
    atomic_init(&s->calls, 0);
    atomic_init(&s->arg_drops, 0);
    s->first = s->second = 0;
}

static int32_t sleeper_fn(void *arg, void **result) {
    sleeper *s = arg;
    (void)result;
    if (atomic_fetch_add(&s->calls, 1) == 0) {
        s->first = now_s();
        return wsrt_sleep(s->ns);
    }
    s->second = now_s();
    return WSRT_TASK_OK;
}

static void sleeper_drop(void *arg) { atomic_fetch_add(&((sleeper *)arg)->arg_drops, 1); }

static wsrt_task *spawn_sleeper(wsrt_runtime *rt, wsrt_group *g, sleeper *s) {
    return spawn_into(rt, g, 0, sleeper_fn, s, sleeper_drop);
}

static void test_outside_a_task(void) {
    SECTION("wsrt_sleep outside a task");
    CHECK_EQ(wsrt_sleep(MS), WSRT_TASK_CANCELLED);
    CHECK_EQ(wsrt_sleep(0), WSRT_TASK_CANCELLED);
    CHECK_EQ(wsrt_sleep(-1), WSRT_TASK_CANCELLED);
}

static void test_sleeper_holds_no_worker_and_cancels_at_once(void) {
    SECTION("a sleeper is SUSPENDED, holds no worker, and a cancel ends it at once");
    wsrt_runtime *rt = new_runtime(1);
    sleeper s;
    sleeper_init(&s, HOUR);
    wsrt_task *t = spawn_sleeper(rt, NULL, &s);
    wait_for_state(t, WSRT_STATE_SUSPENDED);
    /* The only worker is free. */
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    wsrt_task *other = spawn(rt, counter_fn, &c, NULL, NULL);
    wait_ok(other);
    CHECK_EQ(atomic_load(&c.calls), 1);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUSPENDED);
    CHECK(wsrt_task_cancel(t));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&s.arg_drops), 1);
    CHECK_EQ(atomic_load(&s.calls), 1);
    wsrt_task_release(other);
    wsrt_task_release(t);
    free_runtime(rt); /* does not wait for the hour */
}

static void test_sleeper_wakes_after_its_time(void) {
    SECTION("a sleeper is called again once its time has passed");
    wsrt_runtime *rt = new_runtime(2);
    sleeper s, zero;
    sleeper_init(&s, 20 * MS);
    sleeper_init(&zero, 0);
    wsrt_task *t = spawn_sleeper(rt, NULL, &s);
    wsrt_task *z = spawn_sleeper(rt, NULL, &zero);
    wait_ok(t);
    wait_ok(z);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&s.calls), 2);
    CHECK(s.second - s.first >= 0.020);
    CHECK_EQ(atomic_load(&zero.calls), 2); /* a plain yield */
    wsrt_task_release(t);
    wsrt_task_release(z);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&s.arg_drops), 1);
}

/* wsrt_sleep then wsrt_await in one run (the await wins), or the reverse. */
typedef struct {
    wsrt_task *other;
    bool sleep_last;
    atomic_int calls;
} mixed;

static int32_t mixed_fn(void *arg, void **result) {
    mixed *m = arg;
    (void)result;
    if (atomic_fetch_add(&m->calls, 1) > 0) return WSRT_TASK_OK;
    if (m->sleep_last) {
        wsrt_await(m->other);
        return wsrt_sleep(MS);
    }
    wsrt_sleep(HOUR);
    return wsrt_await(m->other);
}

static void test_last_request_wins(void) {
    SECTION("the last of wsrt_sleep and wsrt_await in a run wins");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_runtime *rt_b = new_runtime(1);
    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt_b, &b);
    wsrt_task *done = spawn(rt, noop_fn, NULL, NULL, NULL);
    wait_ok(done);

    /* Sleep an hour, then await a done task: resumes at once. */
    mixed first = {.other = done, .sleep_last = false};
    atomic_init(&first.calls, 0);
    wsrt_task *t1 = spawn(rt, mixed_fn, &first, NULL, NULL);
    wait_ok(t1);
    CHECK_EQ(atomic_load(&first.calls), 2);

    /* Await a held task, then sleep 1 ms: resumes after the sleep. */
    mixed second = {.other = bt, .sleep_last = true};
    atomic_init(&second.calls, 0);
    wsrt_task *t2 = spawn(rt, mixed_fn, &second, NULL, NULL);
    wait_ok(t2);
    CHECK_EQ(atomic_load(&second.calls), 2);
    CHECK(!wsrt_task_done(bt));

    event_set(&b.release);
    wait_ok(bt);
    wsrt_task_release(t1);
    wsrt_task_release(t2);
    wsrt_task_release(done);
    wsrt_task_release(bt);
    free_runtime(rt_b);
    free_runtime(rt);
    blocker_destroy(&b);
}

static void test_group_cancel_and_shutdown_end_sleepers(void) {
    SECTION("a group cancel and a cancelling shutdown end sleepers; a drain waits");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_group *g = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &g));
    sleeper in_group, plain, short_one;
    sleeper_init(&in_group, HOUR);
    sleeper_init(&plain, HOUR);
    sleeper_init(&short_one, 10 * MS);
    wsrt_task *tg = spawn_sleeper(rt, g, &in_group);
    wait_for_state(tg, WSRT_STATE_SUSPENDED);
    CHECK(wsrt_group_cancel(g));
    CHECK_EQ(wsrt_task_state(tg), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&in_group.arg_drops), 1);

    wsrt_task *tp = spawn_sleeper(rt, NULL, &plain);
    wait_for_state(tp, WSRT_STATE_SUSPENDED);
    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_CANCEL));
    CHECK_EQ(wsrt_task_state(tp), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&plain.arg_drops), 1);
    wsrt_task_release(tg);
    wsrt_task_release(tp);
    wsrt_group_release(g);
    free_runtime(rt);

    /* Freeing drains: it waits for the sleeper, which wakes on time. */
    rt = new_runtime(1);
    wsrt_task *ts = spawn_sleeper(rt, NULL, &short_one);
    free_runtime(rt);
    CHECK_EQ(wsrt_task_state(ts), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&short_one.calls), 2);
    CHECK_EQ(atomic_load(&short_one.arg_drops), 1);
    wsrt_task_release(ts);
}

int main(void) {
    test_outside_a_task();
    test_sleeper_holds_no_worker_and_cancels_at_once();
    test_sleeper_wakes_after_its_time();
    test_last_request_wins();
    test_group_cancel_and_shutdown_end_sleepers();
    puts("time: ok");
    return 0;
}
