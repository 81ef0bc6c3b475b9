/*
 * groups.c: structured cancellation through the C ABI.
 *
 * Covers: wsrt_group_new (top level, below a parent, bad flags, a parent of
 * another runtime), spawning into a group and inheriting it inside a task,
 * wsrt_group_cancel of PENDING, SUSPENDED and RUNNING tasks with exact
 * states, arg_drop counts and codes, down to groups below and grandchild
 * tasks; WSRT_GROUP_CANCEL_ON_FAILURE; WSRT_SPAWN_SHIELDED; deadlines (set,
 * replaced, removed); wsrt_group_wait codes (WOULD_DEADLOCK inside its own
 * task, TIMEOUT); an untimed wsrt_group_wait outside the pool ending the
 * cancelled tasks its thread queued (callbacks on that thread, shielded
 * and other groups' tasks left to the workers); wsrt_group_stats;
 * retain/release; NULL handling.
 *
 * Races are never ordered by sleeping: tasks block on events the test
 * sets, a one-worker runtime runs its queue in order, and the only polling
 * loops wait for a state that is certain to come.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("groups: %s\n", name)

static wsrt_group_counts counts_of(const wsrt_group *g) {
    wsrt_group_counts c;
    CHECK_OK(wsrt_group_stats(g, &c));
    return c;
}

/* Runs until its group is cancelled, then returns WSRT_TASK_CANCELLED. */
typedef struct {
    event started;
    atomic_int arg_drops;
} spinner;

static int32_t spinner_fn(void *arg, void **result) {
    spinner *s = arg;
    (void)result;
    event_set(&s->started);
    while (!wsrt_cancel_requested()) sched_yield();
    return WSRT_TASK_CANCELLED;
}

static void spinner_drop(void *arg) { atomic_fetch_add(&((spinner *)arg)->arg_drops, 1); }

static void spinner_init(spinner *s) {
    event_init(&s->started);
    atomic_init(&s->arg_drops, 0);
}

static void test_new_and_bad_input(void) {
    SECTION("wsrt_group_new, retain, release, NULL");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_runtime *other = new_runtime(1);
    wsrt_group *g = NULL;
    CHECK_STATUS(wsrt_group_new(NULL, NULL, 0, &g), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_group_new(rt, NULL, 0, NULL), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_group_new(rt, NULL, 0x80, &g), WSRT_ERR_INVALID_ARG);
    CHECK(g == NULL);
    CHECK_OK(wsrt_group_new(rt, NULL, WSRT_GROUP_CANCEL_ON_FAILURE, &g));
    wsrt_group *child = NULL;
    CHECK_STATUS(wsrt_group_new(other, g, 0, &child), WSRT_ERR_INVALID_ARG);
    CHECK_OK(wsrt_group_new(rt, g, 0, &child));
    CHECK(wsrt_group_retain(g) == g);
    wsrt_group_release(g);
    CHECK(wsrt_group_retain(NULL) == NULL);
    wsrt_group_release(NULL);
    CHECK(!wsrt_group_cancel(NULL));
    CHECK(!wsrt_group_cancelled(NULL));
    CHECK_STATUS(wsrt_group_wait(NULL, 0), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_group_set_deadline(NULL, 0), WSRT_ERR_NULL);
    wsrt_group_counts c;
    CHECK_STATUS(wsrt_group_stats(NULL, &c), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_group_stats(g, NULL), WSRT_ERR_NULL);
    CHECK(wsrt_current_group() == NULL);

    /* A spawn with an unknown flag, or into another runtime's group. */
    wsrt_spawn_opts opts = {0};
    opts.flags = 0x10;
    wsrt_task *t = NULL;
    CHECK_STATUS(wsrt_spawn(rt, noop_fn, NULL, &opts, &t), WSRT_ERR_INVALID_ARG);
    opts.flags = 0;
    opts.group = g;
    CHECK_STATUS(wsrt_spawn(other, noop_fn, NULL, &opts, &t), WSRT_ERR_INVALID_ARG);
    CHECK(t == NULL);

    /* An empty group is done. */
    CHECK_OK(wsrt_group_wait(g, 0));
    CHECK_OK(wsrt_group_wait(child, -1));
    wsrt_group_release(child);
    wsrt_group_release(g);
    free_runtime(other);
    free_runtime(rt);
}

static void test_cancel_pending_suspended_running(void) {
    SECTION("wsrt_group_cancel: PENDING, SUSPENDED, RUNNING, groups below");
    wsrt_runtime *rt = new_runtime(2);
    wsrt_runtime *rt_b = new_runtime(1);
    blocker b;
    blocker_init(&b);
    wsrt_task *bt = occupy(rt_b, &b);

    wsrt_group *g = NULL, *below = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &g));
    CHECK_OK(wsrt_group_new(rt, g, 0, &below));

    /* RUNNING: a spinner in the group below. */
    spinner s;
    spinner_init(&s);
    wsrt_task *running = spawn_into(rt, below, 0, spinner_fn, &s, spinner_drop);
    event_wait(&s.started);

    /* SUSPENDED: awaits B (of the other runtime, held). */
    awaiter a;
    awaiter_init(&a, bt);
    wsrt_task *suspended = spawn_into(rt, g, 0, awaiter_fn, &a, awaiter_drop);
    wait_for_state(suspended, WSRT_STATE_SUSPENDED);

    /* PENDING: behind a blocker that holds the second worker. */
    blocker hold;
    blocker_init(&hold);
    wsrt_task *held = occupy(rt, &hold);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    wsrt_task *pending = spawn_into(rt, below, 0, counter_fn, &c, counter_drop);
    CHECK_EQ(wsrt_task_state(pending), WSRT_STATE_PENDING);

    wsrt_group_counts n = counts_of(g);
    CHECK_EQ(n.spawned, 1);
    CHECK_EQ(n.suspended, 1);
    n = counts_of(below);
    CHECK_EQ(n.spawned, 2);
    CHECK_EQ(n.running, 1);
    CHECK_EQ(n.pending, 1);

    CHECK(wsrt_group_cancel(g));
    CHECK(!wsrt_group_cancel(g));
    CHECK(wsrt_group_cancelled(below));
    /* SUSPENDED: ended before cancel returned, arg_drop run here. */
    CHECK_EQ(wsrt_task_state(suspended), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&a.arg_drops), 1);
    CHECK_EQ(atomic_load(&a.calls), 1);

    /* A spawn into a cancelled group ends CANCELLED without running. */
    counter late;
    counter_init(&late, WSRT_TASK_OK);
    wsrt_task *refused = spawn_into(rt, below, 0, counter_fn, &late, counter_drop);

    event_set(&hold.release);
    CHECK_OK(wsrt_group_wait(g, -1));
    CHECK_EQ(wsrt_task_state(running), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&s.arg_drops), 1);
    CHECK_EQ(wsrt_task_state(pending), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&c.calls), 0);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    wait_ok(refused);
    CHECK_EQ(wsrt_task_state(refused), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&late.calls), 0);
    CHECK_EQ(atomic_load(&late.arg_drops), 1);
    void *out = NULL;
    CHECK_STATUS(wsrt_task_result(pending, &out), WSRT_ERR_CANCELLED);

    n = counts_of(below);
    CHECK_EQ(n.spawned, 3);
    CHECK_EQ(n.cancelled, 3);
    CHECK_EQ(n.pending + n.running + n.suspended, 0);
    n = counts_of(g);
    CHECK_EQ(n.cancelled, 1);

    event_set(&b.release);
    wait_ok(bt);
    wait_ok(held);
    wsrt_task_release(refused);
    wsrt_task_release(pending);
    wsrt_task_release(running);
    wsrt_task_release(suspended);
    wsrt_task_release(held);
    wsrt_task_release(bt);
    wsrt_group_release(below);
    wsrt_group_release(g);
    free_runtime(rt_b);
    free_runtime(rt);
    blocker_destroy(&b);
    blocker_destroy(&hold);
    event_destroy(&s.started);
}

/* Spawns a child with no group given: it inherits the spawning task's. */
typedef struct {
    wsrt_runtime *rt;
    wsrt_task *child;
    wsrt_group *seen;
    spinner s;
    wsrt_status own_wait;
} parent_args;

static int32_t parent_fn(void *arg, void **result) {
    parent_args *p = arg;
    (void)result;
    p->seen = wsrt_current_group();
    p->child = spawn(p->rt, spinner_fn, &p->s, spinner_drop, NULL);
    p->own_wait = wsrt_group_wait(p->seen, -1);
    return WSRT_TASK_OK;
}

static void test_inherited_group_and_own_wait(void) {
    SECTION("a task's children join its group; a task cannot wait for its own group");
    wsrt_runtime *rt = new_runtime(2);
    wsrt_group *g = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &g));
    parent_args p = {.rt = rt};
    spinner_init(&p.s);
    wsrt_task *parent = spawn_into(rt, g, 0, parent_fn, &p, NULL);
    wait_ok(parent);
    CHECK(p.seen == g);
    CHECK_STATUS(p.own_wait, WSRT_ERR_WOULD_DEADLOCK);
    event_wait(&p.s.started);
    CHECK_STATUS(wsrt_group_wait(g, 0), WSRT_ERR_TIMEOUT);
    CHECK_EQ(counts_of(g).spawned, 2);
    CHECK(wsrt_group_cancel(g));
    CHECK_OK(wsrt_group_wait(g, -1));
    CHECK_EQ(wsrt_task_state(p.child), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&p.s.arg_drops), 1);
    wsrt_task_release(p.child);
    wsrt_task_release(parent);
    wsrt_group_release(g);
    free_runtime(rt);
    event_destroy(&p.s.started);
}

static void test_cancel_on_failure_and_shield(void) {
    SECTION("WSRT_GROUP_CANCEL_ON_FAILURE and WSRT_SPAWN_SHIELDED");
    wsrt_runtime *rt = new_runtime(1);
    blocker hold;
    blocker_init(&hold);
    wsrt_task *held = occupy(rt, &hold);
    wsrt_group *g = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, WSRT_GROUP_CANCEL_ON_FAILURE, &g));
    counter fails, after, shielded;
    counter_init(&fails, 42);
    counter_init(&after, WSRT_TASK_OK);
    counter_init(&shielded, WSRT_TASK_OK);
    wsrt_task *tf = spawn_into(rt, g, 0, counter_fn, &fails, counter_drop);
    wsrt_task *ta = spawn_into(rt, g, 0, counter_fn, &after, counter_drop);
    wsrt_task *ts = spawn_into(rt, g, WSRT_SPAWN_SHIELDED, counter_fn, &shielded, counter_drop);
    event_set(&hold.release);
    CHECK_OK(wsrt_group_wait(g, -1));
    CHECK(wsrt_group_cancelled(g));
    int32_t code = 0;
    CHECK_STATUS(wsrt_task_join(tf, NULL, &code), WSRT_ERR_FAILED);
    CHECK_EQ(code, 42);
    CHECK_EQ(wsrt_task_state(ta), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&after.calls), 0);
    CHECK_EQ(wsrt_task_state(ts), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&shielded.calls), 1);
    wsrt_group_counts n = counts_of(g);
    CHECK_EQ(n.failed, 1);
    CHECK_EQ(n.cancelled, 1);
    CHECK_EQ(n.succeeded, 1);
    CHECK_EQ(atomic_load(&fails.arg_drops) + atomic_load(&after.arg_drops) +
                 atomic_load(&shielded.arg_drops),
             3);
    wsrt_task_release(ta);
    wsrt_task_release(ts);
    wait_ok(held);
    wsrt_task_release(held);
    wsrt_group_release(g);
    free_runtime(rt);
    blocker_destroy(&hold);
}

static void test_deadlines(void) {
    SECTION("wsrt_group_set_deadline: set, replaced, removed");
    wsrt_runtime *rt = new_runtime(2);
    wsrt_group *removed = NULL, *replaced = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &removed));
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &replaced));
    CHECK_OK(wsrt_group_set_deadline(removed, 5 * 1000000));
    CHECK_OK(wsrt_group_set_deadline(removed, -1));
    spinner s;
    spinner_init(&s);
    wsrt_task *t = spawn_into(rt, replaced, 0, spinner_fn, &s, spinner_drop);
    event_wait(&s.started);
    CHECK_OK(wsrt_group_set_deadline(replaced, INT64_MAX));
    CHECK_OK(wsrt_group_set_deadline(replaced, 20 * 1000000));
    CHECK_OK(wsrt_group_wait(replaced, -1));
    CHECK(wsrt_group_cancelled(replaced));
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_CANCELLED);
    /* The timer fires in deadline order: the removed entry (5 ms) fired
     * before the 20 ms one, into nothing. */
    CHECK(!wsrt_group_cancelled(removed));
    wsrt_task_release(t);
    wsrt_group_release(removed);
    wsrt_group_release(replaced);
    free_runtime(rt);
    event_destroy(&s.started);
}

static void test_released_group_keeps_its_tasks(void) {
    SECTION("a released group's tasks run to their end; freeing waits for them");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_group *g = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &g));
    blocker b;
    blocker_init(&b);
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = blocker_drop;
    opts.group = g;
    wsrt_task *t = NULL;
    CHECK_OK(wsrt_spawn(rt, blocker_fn, &b, &opts, &t));
    event_wait(&b.started);
    wsrt_group_release(g);
    event_set(&b.release);
    wait_ok(t);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    wsrt_task_release(t);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&b.arg_drops), 1);
    blocker_destroy(&b);
}

/* The done-callbacks of test_wait_ends_own_cancelled_tasks: count the tasks
 * that ended CANCELLED on the waiting thread, and say when all did. */
enum { OWN_TASKS = 64 };
static pthread_t own_waiter;
static atomic_int own_ended_here;
static event own_all_ended;

static void own_on_done(wsrt_task *t, void *user) {
    (void)user;
    if (pthread_equal(pthread_self(), own_waiter) && wsrt_task_state(t) == WSRT_STATE_CANCELLED &&
        atomic_fetch_add(&own_ended_here, 1) + 1 == OWN_TASKS)
        event_set(&own_all_ended);
}

/* Lets the held worker go once every own task ended on the waiting thread,
 * or after DEADLINE_S (so that a failure ends the test instead of hanging
 * it); returns 1 (as a pointer) if it had to give up. */
typedef struct {
    blocker *hold;
} watchdog;

static void *watchdog_fn(void *arg) {
    watchdog *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)DEADLINE_S;
    int rc = 0;
    pthread_mutex_lock(&own_all_ended.mu);
    while (!own_all_ended.set && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&own_all_ended.cv, &own_all_ended.mu, &until);
    bool gave_up = !own_all_ended.set;
    pthread_mutex_unlock(&own_all_ended.mu);
    event_set(&w->hold->release);
    return gave_up ? (void *)1 : NULL;
}

static void test_wait_ends_own_cancelled_tasks(void) {
    SECTION("wsrt_group_wait outside the pool ends the cancelled tasks it queued");
    wsrt_runtime *rt = new_runtime(1);
    blocker hold;
    blocker_init(&hold);
    wsrt_task *held = occupy(rt, &hold);
    wsrt_group *g = NULL, *below = NULL, *other = NULL;
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &g));
    CHECK_OK(wsrt_group_new(rt, g, 0, &below));
    CHECK_OK(wsrt_group_new(rt, NULL, 0, &other));

    /* Queued from this thread while the only worker is held: the group's
     * tasks (half in the group below), another group's, a shielded one. */
    own_waiter = pthread_self();
    atomic_init(&own_ended_here, 0);
    event_init(&own_all_ended);
    counter mine, theirs, shielded;
    counter_init(&mine, WSRT_TASK_OK);
    counter_init(&theirs, WSRT_TASK_OK);
    counter_init(&shielded, WSRT_TASK_OK);
    wsrt_task *own[OWN_TASKS], *others[OWN_TASKS];
    wsrt_task *kept = spawn_into(rt, g, WSRT_SPAWN_SHIELDED, counter_fn, &shielded, counter_drop);
    for (int i = 0; i < OWN_TASKS; i++) {
        own[i] = spawn_into(rt, i % 2 ? below : g, 0, counter_fn, &mine, counter_drop);
        CHECK_OK(wsrt_task_add_done_callback(own[i], own_on_done, NULL));
        others[i] = spawn_into(rt, other, 0, counter_fn, &theirs, counter_drop);
    }
    CHECK(wsrt_group_cancel(g));

    /* The worker is let go only once every own task ended here: the wait
     * ends them itself, then waits for the shielded one, which runs. */
    watchdog w = {&hold};
    pthread_t dog;
    CHECK(pthread_create(&dog, NULL, watchdog_fn, &w) == 0);
    CHECK_OK(wsrt_group_wait(g, -1));
    void *gave_up = NULL;
    CHECK(pthread_join(dog, &gave_up) == 0);
    CHECK(gave_up == NULL);
    CHECK_EQ(atomic_load(&own_ended_here), OWN_TASKS);
    for (int i = 0; i < OWN_TASKS; i++) CHECK_EQ(wsrt_task_state(own[i]), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&mine.calls), 0);
    CHECK_EQ(atomic_load(&mine.arg_drops), OWN_TASKS);
    CHECK_EQ(wsrt_task_state(kept), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&shielded.calls), 1);
    wsrt_group_counts n = counts_of(g);
    CHECK_EQ(n.spawned, OWN_TASKS / 2 + 1);
    CHECK_EQ(n.cancelled, OWN_TASKS / 2);
    CHECK_EQ(n.succeeded, 1);
    n = counts_of(below);
    CHECK_EQ(n.cancelled, OWN_TASKS / 2);
    CHECK_EQ(n.pending + n.running + n.suspended, 0);

    /* The other group's tasks went back to the workers, and run. */
    CHECK_OK(wsrt_group_wait(other, -1));
    CHECK_EQ(atomic_load(&theirs.calls), OWN_TASKS);
    CHECK_EQ(atomic_load(&theirs.arg_drops), OWN_TASKS);
    CHECK_EQ(counts_of(other).succeeded, OWN_TASKS);

    wait_ok(held);
    for (int i = 0; i < OWN_TASKS; i++) {
        wsrt_task_release(own[i]);
        wsrt_task_release(others[i]);
    }
    wsrt_task_release(kept);
    wsrt_task_release(held);
    wsrt_group_release(other);
    wsrt_group_release(below);
    wsrt_group_release(g);
    free_runtime(rt);
    blocker_destroy(&hold);
    event_destroy(&own_all_ended);
}

int main(void) {
    test_new_and_bad_input();
    test_cancel_pending_suspended_running();
    test_inherited_group_and_own_wait();
    test_cancel_on_failure_and_shield();
    test_deadlines();
    test_released_group_keeps_its_tasks();
    test_wait_ends_own_cancelled_tasks();
    puts("groups: ok");
    return 0;
}
