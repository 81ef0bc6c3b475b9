/*
 * waits.c: the waits of 0.2 through the C ABI.
 *
 * Covers: wsrt_task_join (result handed over, failure code, CANCELLED, the
 * handle released in every case, a task joining itself, NULL);
 * wsrt_task_wait_isolated with a lock held (rayon #592: the plain wait
 * re-enters, the isolated one never does) on one and two workers; a timed
 * wait starts no task, so it returns on time with a long task queued;
 * wsrt_wait_any / wsrt_wait_all (indexes, timeouts, bad input).
 *
 * Races are never ordered by sleeping: tasks block on events the test
 * sets, and a one-worker runtime runs its queue in order.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("waits: %s\n", name)

#define MS (1000 * 1000LL)

static int32_t fails_fn(void *arg, void **result) {
    (void)result;
    return (int32_t)(intptr_t)arg;
}

static void test_join(void) {
    SECTION("wsrt_task_join");
    wsrt_runtime *rt = new_runtime(2);
    int before = atomic_load(&result_drops);

    /* SUCCEEDED: the result is the caller's; result_drop is not called. */
    wsrt_task *t = spawn(rt, alloc_result_fn, (void *)(intptr_t)7, NULL, result_free);
    void *result = NULL;
    int32_t code = -5;
    CHECK_OK(wsrt_task_join(t, &result, &code));
    CHECK(result != NULL);
    CHECK_EQ(*(int *)result, 7);
    CHECK_EQ(code, -5); /* untouched */
    free(result);
    /* Without `result` the task keeps it and frees it with its last
     * reference (checked after the runtime is freed, when that is sure). */
    t = spawn(rt, alloc_result_fn, (void *)(intptr_t)8, NULL, result_free);
    CHECK_OK(wsrt_task_join(t, NULL, NULL));

    /* FAILED with its code. */
    t = spawn(rt, fails_fn, (void *)(intptr_t)33, NULL, NULL);
    result = (void *)&code;
    CHECK_STATUS(wsrt_task_join(t, &result, &code), WSRT_ERR_FAILED);
    CHECK_EQ(code, 33);
    CHECK(result == (void *)&code); /* untouched */

    /* CANCELLED. */
    blocker b;
    blocker_init(&b);
    wsrt_task *held1 = occupy(rt, &b);
    blocker b2;
    blocker_init(&b2);
    wsrt_task *held2 = occupy(rt, &b2);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    t = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK(wsrt_task_cancel(t));
    CHECK_STATUS(wsrt_task_join(t, NULL, NULL), WSRT_ERR_CANCELLED);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    event_set(&b.release);
    event_set(&b2.release);
    CHECK_OK(wsrt_task_join(held1, NULL, NULL));
    CHECK_OK(wsrt_task_join(held2, NULL, NULL));

    CHECK_STATUS(wsrt_task_join(NULL, NULL, NULL), WSRT_ERR_NULL);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&result_drops), before + 1);
    blocker_destroy(&b);
    blocker_destroy(&b2);
}

static int32_t joins_itself_fn(void *arg, void **result) {
    (void)result;
    wsrt_status *out = arg;
    *out = wsrt_task_join(wsrt_task_retain(wsrt_current_task()), NULL, NULL);
    return WSRT_TASK_OK;
}

static void test_join_itself(void) {
    SECTION("wsrt_task_join of itself: WOULD_DEADLOCK, handle released");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_status got = WSRT_OK;
    wsrt_task *t = spawn(rt, joins_itself_fn, &got, NULL, NULL);
    wait_ok(t);
    CHECK_STATUS(got, WSRT_ERR_WOULD_DEADLOCK);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(t);
    free_runtime(rt); /* valgrind: the retained handle was released */
}

/* rayon #592: a task holds a lock, queues tasks that take it, and waits for
 * a child. A taker that runs on the holder's thread while it holds the lock
 * would deadlock on a real lock: it only counts (`reentered`). */
static _Thread_local bool holding;

typedef struct {
    wsrt_runtime *rt;
    pthread_mutex_t lock;
    atomic_int reentered;
    atomic_int took;
    bool isolated;
    wsrt_status wait;
    wsrt_task *takers[16];
} lock_case;

static int32_t taker_fn(void *arg, void **result) {
    lock_case *lc = arg;
    (void)result;
    if (holding) {
        atomic_fetch_add(&lc->reentered, 1);
    } else {
        pthread_mutex_lock(&lc->lock);
        atomic_fetch_add(&lc->took, 1);
        pthread_mutex_unlock(&lc->lock);
    }
    return WSRT_TASK_OK;
}

static int32_t child_fn(void *arg, void **result) {
    (void)arg;
    *result = (void *)(intptr_t)21;
    return WSRT_TASK_OK;
}

static int32_t holder_fn(void *arg, void **result) {
    lock_case *lc = arg;
    (void)result;
    pthread_mutex_lock(&lc->lock);
    holding = true;
    wsrt_task *child = spawn(lc->rt, child_fn, NULL, NULL, NULL);
    for (int i = 0; i < 16; i++) lc->takers[i] = spawn(lc->rt, taker_fn, lc, NULL, NULL);
    lc->wait = lc->isolated ? wsrt_task_wait_isolated(child, -1) : wsrt_task_wait(child, -1);
    void *v = NULL;
    CHECK_OK(wsrt_task_join(child, &v, NULL));
    CHECK_EQ((intptr_t)v, 21);
    holding = false;
    pthread_mutex_unlock(&lc->lock);
    return WSRT_TASK_OK;
}

static int run_lock_case(size_t workers, bool isolated) {
    lock_case lc = {.isolated = isolated};
    lc.rt = new_runtime(workers);
    pthread_mutex_init(&lc.lock, NULL);
    atomic_init(&lc.reentered, 0);
    atomic_init(&lc.took, 0);
    wsrt_task *holder = spawn(lc.rt, holder_fn, &lc, NULL, NULL);
    CHECK_OK(wsrt_task_join(holder, NULL, NULL));
    CHECK_OK(lc.wait);
    for (int i = 0; i < 16; i++) CHECK_OK(wsrt_task_join(lc.takers[i], NULL, NULL));
    CHECK_EQ(atomic_load(&lc.reentered) + atomic_load(&lc.took), 16);
    free_runtime(lc.rt);
    pthread_mutex_destroy(&lc.lock);
    return atomic_load(&lc.reentered);
}

static void test_isolated_wait_with_a_lock_held(void) {
    SECTION("wsrt_task_wait_isolated with a lock held (rayon #592)");
    /* The hazard: one worker, a plain helping wait runs every taker on the
     * thread that holds the lock. */
    CHECK_EQ(run_lock_case(1, false), 16);
    CHECK_EQ(run_lock_case(1, true), 0);
    for (int i = 0; i < 20; i++) CHECK_EQ(run_lock_case(2, true), 0);
    CHECK_STATUS(wsrt_task_wait_isolated(NULL, 0), WSRT_ERR_NULL);
}

/* Waits with a limit for a task that stays blocked, with a long task
 * queued behind it on the same (only) worker. */
typedef struct {
    wsrt_runtime *rt;
    wsrt_task *never;
    blocker long_task;
    wsrt_status task_wait, isolated, any, all, group;
    bool long_started;
} timed_case;

static int32_t timed_waiter_fn(void *arg, void **result) {
    timed_case *tc = arg;
    (void)result;
    wsrt_task *long_t = spawn(tc->rt, blocker_fn, &tc->long_task, NULL, NULL);
    tc->task_wait = wsrt_task_wait(tc->never, 10 * MS);
    tc->isolated = wsrt_task_wait_isolated(tc->never, 10 * MS);
    size_t index = 99;
    tc->any = wsrt_wait_any(&tc->never, 1, 10 * MS, &index);
    CHECK_EQ(index, 99);
    tc->all = wsrt_wait_all(&tc->never, 1, 10 * MS);
    wsrt_group *g = NULL;
    CHECK_OK(wsrt_group_new(tc->rt, NULL, 0, &g));
    wsrt_spawn_opts opts = {0};
    opts.group = g;
    wsrt_task *queued = NULL;
    CHECK_OK(wsrt_spawn(tc->rt, noop_fn, NULL, &opts, &queued));
    tc->group = wsrt_group_wait(g, 10 * MS);
    CHECK_EQ(wsrt_task_state(queued), WSRT_STATE_PENDING);
    tc->long_started = event_is_set(&tc->long_task.started);
    event_set(&tc->long_task.release);
    wsrt_task_release(queued);
    wsrt_task_release(long_t);
    wsrt_group_release(g);
    return WSRT_TASK_OK;
}

static void test_timed_waits_start_no_task(void) {
    SECTION("a wait with a limit starts no task, so it keeps the limit");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_runtime *rt_b = new_runtime(1);
    blocker b;
    blocker_init(&b);
    timed_case tc = {.rt = rt};
    tc.never = occupy(rt_b, &b);
    blocker_init(&tc.long_task);
    wsrt_task *t = spawn(rt, timed_waiter_fn, &tc, NULL, NULL);
    CHECK_OK(wsrt_task_join(t, NULL, NULL));
    CHECK_STATUS(tc.task_wait, WSRT_ERR_TIMEOUT);
    CHECK_STATUS(tc.isolated, WSRT_ERR_TIMEOUT);
    CHECK_STATUS(tc.any, WSRT_ERR_TIMEOUT);
    CHECK_STATUS(tc.all, WSRT_ERR_TIMEOUT);
    CHECK_STATUS(tc.group, WSRT_ERR_TIMEOUT);
    CHECK(!tc.long_started);
    event_set(&b.release);
    CHECK_OK(wsrt_task_join(tc.never, NULL, NULL));
    free_runtime(rt);
    free_runtime(rt_b);
    blocker_destroy(&b);
    blocker_destroy(&tc.long_task);
}

static void test_wait_any_all(void) {
    SECTION("wsrt_wait_any and wsrt_wait_all");
    wsrt_runtime *rt = new_runtime(2);
    blocker b;
    blocker_init(&b);
    wsrt_task *slow = occupy(rt, &b);
    wsrt_task *fast = spawn(rt, noop_fn, NULL, NULL, NULL);
    wait_ok(fast);
    wsrt_task *tasks[2] = {slow, fast};
    size_t index = 99;
    CHECK_OK(wsrt_wait_any(tasks, 2, -1, &index));
    CHECK_EQ(index, 1);
    CHECK_OK(wsrt_wait_any(tasks, 2, 0, NULL));
    CHECK_STATUS(wsrt_wait_any(tasks, 1, 5 * MS, &index), WSRT_ERR_TIMEOUT);
    CHECK_STATUS(wsrt_wait_all(tasks, 2, 5 * MS), WSRT_ERR_TIMEOUT);
    /* Waited for again and again while it runs: each wait takes its
     * wake-up entry back (valgrind would see them otherwise). */
    for (int i = 0; i < 100; i++) CHECK_STATUS(wsrt_wait_any(tasks, 1, 0, NULL), WSRT_ERR_TIMEOUT);

    CHECK_STATUS(wsrt_wait_any(tasks, 0, -1, &index), WSRT_ERR_INVALID_ARG);
    CHECK_STATUS(wsrt_wait_all(tasks, 0, -1), WSRT_ERR_INVALID_ARG);
    CHECK_STATUS(wsrt_wait_any(NULL, 2, -1, &index), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_wait_all(NULL, 2, -1), WSRT_ERR_NULL);
    wsrt_task *with_null[2] = {fast, NULL};
    CHECK_STATUS(wsrt_wait_any(with_null, 2, -1, &index), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_wait_all(with_null, 2, -1), WSRT_ERR_NULL);

    event_set(&b.release);
    CHECK_OK(wsrt_wait_all(tasks, 2, -1));
    CHECK(wsrt_task_done(slow));
    wsrt_task_release(slow);
    wsrt_task_release(fast);
    free_runtime(rt);
    blocker_destroy(&b);
}

int main(void) {
    test_join();
    test_join_itself();
    test_isolated_wait_with_a_lock_held();
    test_timed_waits_start_no_task();
    test_wait_any_all();
    puts("waits: ok");
    return 0;
}
